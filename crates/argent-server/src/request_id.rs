//! A request id for every request: a fresh random id, visible to the handler (and to
//! [`crate::AppError`]'s response) through a task-local and returned in `x-request-id`.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, or `-` outside one.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "-".to_string())
}

fn new_request_id() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

/// Middleware: runs the rest of the stack with a request id in scope and sets the header.
pub async fn with_request_id(req: Request, next: Next) -> Response {
    let id = new_request_id();
    let mut res = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    res
}
