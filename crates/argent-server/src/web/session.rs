//! Signing in and out in the browser.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use serde::Deserialize;
use serde_json::json;

use argent_store::{Store, TokenKind};

use super::{Posted, check_csrf, check_same_origin, cookie_value, cookie_values, render};
use crate::ServerConfig;
use crate::auth::{
    ClientAddr, LoginThrottle, SignedIn, UserRole, check_credentials, hash_token, issue_token,
    new_token,
};
use crate::error::{AppError, AppResult};
use crate::extract::ApiQuery;

/// The session cookie's name over plain HTTP.
pub const SESSION_COOKIE: &str = "argent_session";
/// The session cookie's name with `--secure-cookies` (HTTPS): the `__Host-` prefix makes a
/// browser accept it only from this very host (`Secure`, `Path=/`, no `Domain`), so a
/// sibling subdomain of the same site cannot plant one.
pub const SECURE_SESSION_COOKIE: &str = "__Host-argent_session";
/// The login form's double-submit CSRF cookie, plain and `__Host-` prefixed.
const LOGIN_COOKIE: &str = "argent_login";
const SECURE_LOGIN_COOKIE: &str = "__Host-argent_login";

/// The session cookie's name under `config`: [`SECURE_SESSION_COOKIE`] with secure cookies,
/// else [`SESSION_COOKIE`]. The other name is never read.
pub fn session_cookie_name(config: &ServerConfig) -> &'static str {
    if config.secure_cookies {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

fn login_cookie_name(config: &ServerConfig) -> &'static str {
    if config.secure_cookies {
        SECURE_LOGIN_COOKIE
    } else {
        LOGIN_COOKIE
    }
}

fn cookie(
    name: &'static str,
    value: String,
    config: &ServerConfig,
    max_age: Option<i64>,
) -> String {
    let mut c = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(config.secure_cookies);
    if let Some(secs) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(secs));
    }
    c.build().to_string()
}

/// `next` if it is a path on this site a browser will not take anywhere else: it starts
/// with one `/` (not `//`, not `/\`), and neither it nor what it decodes to (once or
/// repeatedly) holds a backslash, whitespace, a control character or anything but printable
/// ASCII, or starts with `//` — browsers drop tabs and newlines from URLs and read `\` as
/// `/`, so `/<TAB>/evil.example` or `/\evil.example` would leave the site. The pages' own
/// links are printable ASCII (percent-encoded), so nothing legitimate is refused. Anything
/// else is `None`: the caller goes to the user's start page instead.
pub(crate) fn safe_next(next: Option<&str>) -> Option<String> {
    fn plain_path(s: &[u8]) -> bool {
        s.first() == Some(&b'/')
            && !matches!(s.get(1), Some(b'/' | b'\\'))
            && s.iter().all(|b| b.is_ascii_graphic() && *b != b'\\')
    }
    /// One round of percent-decoding; `None` when nothing was encoded.
    fn decode(s: &[u8]) -> Option<Vec<u8>> {
        let hex = |b: u8| char::from(b).to_digit(16);
        let mut out = Vec::with_capacity(s.len());
        let mut changed = false;
        let mut i = 0;
        while i < s.len() {
            match (
                s[i],
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            ) {
                (b'%', Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    changed = true;
                    i += 3;
                }
                (b, _, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        changed.then_some(out)
    }
    let next = next?;
    let mut s = next.as_bytes().to_vec();
    // Every decoding must stay a plain path (a handful of rounds covers any nesting a
    // link could carry; deeper nesting is refused rather than followed).
    for _ in 0..4 {
        if !plain_path(&s) {
            return None;
        }
        match decode(&s) {
            Some(d) => s = d,
            None => return Some(next.to_string()),
        }
    }
    None
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    pub next: Option<String>,
}

fn login_form(
    config: &ServerConfig,
    status: StatusCode,
    next: Option<&str>,
    name: &str,
    error: Option<&str>,
) -> AppResult<Response> {
    let csrf = new_token();
    let html = render(
        "login",
        &json!({
            "title": "Sign in",
            "chrome": null,
            "csrf": csrf,
            "next": next.unwrap_or(""),
            "name": name,
            "error": error,
        }),
    )?;
    let mut res = (status, Html(html)).into_response();
    if let Ok(v) = cookie(login_cookie_name(config), csrf, config, Some(3600)).parse() {
        res.headers_mut().append(SET_COOKIE, v);
    }
    Ok(res)
}

/// `GET /login`: the form, or straight on for someone already signed in.
pub async fn login_page(
    State(store): State<Store>,
    State(config): State<Arc<ServerConfig>>,
    ApiQuery(q): ApiQuery<LoginQuery>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let next = safe_next(q.next.as_deref());
    if let Some(role) = signed_in(&store, &config, &headers).await? {
        let to = next.unwrap_or_else(|| role.home().to_string());
        return Ok(Redirect::to(&to).into_response());
    }
    login_form(&config, StatusCode::OK, next.as_deref(), "", None)
}

/// The role of whoever the request's session cookie belongs to, if anyone's (and if the
/// request carries one session cookie, not two).
async fn signed_in(
    store: &Store,
    config: &ServerConfig,
    headers: &HeaderMap,
) -> AppResult<Option<UserRole>> {
    let Ok([token]) = <[String; 1]>::try_from(cookie_values(headers, session_cookie_name(config)))
    else {
        return Ok(None);
    };
    match crate::auth::token_owner(store, &token, TokenKind::Session).await {
        Ok((_, role, _)) => Ok(Some(role)),
        Err(AppError::Unauthorized) => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub password: String,
    pub next: Option<String>,
}

/// `POST /login`: checks the password and starts a session.
///
/// Refused (403) before anything else: a post a browser says came from another origin
/// (including a sibling subdomain, which SameSite cookies let through), and one without the
/// form's double-submit pair (its cookie and the same value in `_csrf`). A success ends
/// the session the browser came with, if any, and starts a fresh one.
pub async fn login(
    State(store): State<Store>,
    State(config): State<Arc<ServerConfig>>,
    State(throttle): State<Arc<LoginThrottle>>,
    address: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    check_same_origin(&headers)?;
    let expected = cookie_value(&headers, login_cookie_name(&config), "sign-in form cookie")?
        .unwrap_or_default();
    if expected.is_empty() {
        return Err(AppError::Forbidden(
            "the sign-in form has expired (or cookies are off); reload the page".into(),
        ));
    }
    check_csrf(&body, &expected)?;
    let form: LoginForm = serde_urlencoded::from_bytes(&body)
        .map_err(|e| AppError::BadRequest(format!("the sign-in form is malformed: {e}")))?;
    let next = safe_next(form.next.as_deref().filter(|n| !n.is_empty()));
    let (name, role) =
        match check_credentials(&store, &throttle, &form.name, &form.password, &address).await {
            Ok(u) => u,
            Err(e @ (AppError::BadCredentials | AppError::TooManyAttempts { .. })) => {
                return login_form(
                    &config,
                    e.status(),
                    next.as_deref(),
                    &form.name,
                    Some(&e.to_string()),
                );
            }
            Err(e) => return Err(e),
        };
    // Whatever session the browser came with (its own, or one planted on it) ends here.
    for old in cookie_values(&headers, session_cookie_name(&config)) {
        store.delete_token(&hash_token(&old)).await?;
    }
    let (token, _) = issue_token(&store, &name, TokenKind::Session, config.session_ttl).await?;
    tracing::info!(user = %name, role = %role, "signed in (browser)");
    let to = next.unwrap_or_else(|| role.home().to_string());
    let mut res = Redirect::to(&to).into_response();
    let ttl = config.session_ttl.num_seconds();
    for c in [
        cookie(session_cookie_name(&config), token, &config, Some(ttl)),
        cookie(login_cookie_name(&config), String::new(), &config, Some(0)),
    ] {
        if let Ok(v) = c.parse() {
            res.headers_mut().append(SET_COOKIE, v);
        }
    }
    Ok(res)
}

/// `POST /logout`: ends the session (the token is deleted, not just the cookie).
pub async fn logout(
    State(store): State<Store>,
    State(config): State<Arc<ServerConfig>>,
    Posted(user, _, _): Posted<SignedIn, Vec<(String, String)>>,
) -> AppResult<Response> {
    store.delete_token(&user.token_hash).await?;
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = cookie(
        session_cookie_name(&config),
        String::new(),
        &config,
        Some(0),
    )
    .parse()
    {
        res.headers_mut().append(SET_COOKIE, v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_plain_paths_are_next() {
        for ok in [
            "/",
            "/queue?status=pending",
            "/documents/prompt/tone%2Ffirm",
            "/a?b=100%25",
        ] {
            assert_eq!(safe_next(Some(ok)).as_deref(), Some(ok), "{ok}");
        }
        for bad in [
            "",
            "queue",
            "//x",
            "/\\x",
            "/\tx",
            "/%09/x",
            "/%2F/x",
            "/%252F%252Fx",
            "/%5Cx",
            "/%255Cx",
            "/a b",
            "/\u{e9}",
            "https://x",
            "/%25252525252F/x",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(safe_next(None), None);
    }
}
