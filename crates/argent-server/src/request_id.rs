//! A request id for every request: a fresh random id, visible to the handler (and to
//! [`crate::AppError`]'s response) through a task-local and returned in `x-request-id`.
//! The same task-local tells [`crate::AppError`] whether the request was for a page
//! (answered as HTML, a missing session redirecting to `/login`) or for `/api` (JSON).

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

#[derive(Clone, Debug)]
struct RequestInfo {
    id: String,
    /// The path and query of a page request; `None` under `/api`.
    page: Option<String>,
}

tokio::task_local! {
    static REQUEST: RequestInfo;
}

/// The id of the request being handled, or `-` outside one.
pub fn current_request_id() -> String {
    REQUEST
        .try_with(|r| r.id.clone())
        .unwrap_or_else(|_| "-".to_string())
}

/// The path and query of the page being requested; `None` for an `/api` request (and
/// outside any request).
pub fn current_page() -> Option<String> {
    REQUEST.try_with(|r| r.page.clone()).ok().flatten()
}

fn new_request_id() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || path == "/openapi.json"
}

/// Middleware: runs the rest of the stack with a request id in scope and sets the header.
pub async fn with_request_id(req: Request, next: Next) -> Response {
    let id = new_request_id();
    let uri = req.uri();
    let page = (!is_api(uri.path())).then(|| {
        uri.path_and_query()
            .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string())
    });
    let info = RequestInfo {
        id: id.clone(),
        page,
    };
    let mut res = REQUEST.scope(info, next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    res
}
