//! Headers every response carries, pages, API answers and errors alike: nothing of argent
//! may be framed by another site (clickjacking), no response is sniffed into another
//! type, no URL leaks to other sites in `Referer`, and the Content-Security-Policy lets a
//! page load nothing but this site's own stylesheet and script files (the approval
//! workbench's keyboard shortcuts, `/static/workbench.js`) — no inline script, no `eval`,
//! no inline styles, no plugins, forms posting only here.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::middleware::Next;
use axum::response::Response;

/// The Content-Security-Policy of every response. `default-src 'none'` refuses frames,
/// fonts, connections and everything not named after it; scripts only from this site's
/// own files (never inline, never `eval`).
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Middleware: sets the security headers on whatever the rest of the stack answered.
pub async fn with_security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}
