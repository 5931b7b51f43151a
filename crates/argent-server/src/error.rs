//! The one error type every handler returns.
//!
//! Under `/api` the body is JSON: `{"error": <message>, "request_id": <id>}` (plus
//! `"rules"` when policy denied an action). For a page it is the same message as an HTML
//! page, and a missing or expired session is a redirect to `/login`. Messages for 4xx say
//! what the client did wrong; a 500 says only "internal error": the cause is logged with
//! the request id, never sent.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use thiserror::Error;

use argent_agent::AgentError;
use argent_core::{FiredRule, MoneyError};
use argent_store::StoreError;

use crate::request_id::{current_page, current_request_id};

#[derive(Debug, Error)]
pub enum AppError {
    /// No token, or a token that is unknown, expired or revoked (401).
    #[error("authentication required")]
    Unauthorized,
    /// Wrong name or password at login (401; the same message either way).
    #[error("unknown user or wrong password")]
    BadCredentials,
    /// A request body or document larger than the server accepts (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A limit on concurrent work, e.g. eval runs per user (429).
    #[error("{0}")]
    Busy(String),
    /// Too many failed sign-ins for this user name from this address lately (429, with
    /// `Retry-After`).
    #[error(
        "too many failed sign-ins for this user from this address; try again in {retry_after_secs} s or ask an admin to unlock the user"
    )]
    TooManyAttempts { retry_after_secs: u64 },
    /// Signed in, but this role may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The path exists, the method does not (405).
    #[error("method not allowed here")]
    MethodNotAllowed,
    /// A body that is not `application/json` where JSON is expected (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Malformed request: bad JSON, bad query parameter (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request conflicts with the current state, e.g. an item already decided (409).
    #[error("{0}")]
    Conflict(String),
    /// Well-formed but unacceptable content, e.g. edited arguments that fail the schema (422).
    #[error("{0}")]
    Unprocessable(String),
    /// Policy denies the action; nobody may approve it (422, with the rules that fired).
    #[error("policy forbids the action: {message}")]
    Denied {
        message: String,
        rules: Vec<FiredRule>,
    },
    /// Anything else. The detail is logged, never returned (500).
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    pub fn internal(e: impl std::fmt::Display) -> AppError {
        AppError::Internal(e.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthorized | AppError::BadCredentials => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::TooManyAttempts { .. } | AppError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Unprocessable(_) | AppError::Denied { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        let status = self.status();
        if let AppError::Internal(detail) = &self {
            tracing::error!(request_id = %request_id, error = %detail, "internal error");
        }
        if let Some(page) = current_page() {
            return crate::web::error_page(&self, status, &page, &request_id);
        }
        let mut body = json!({"error": self.to_string(), "request_id": request_id});
        if let AppError::Denied { rules, .. } = &self {
            body["rules"] = serde_json::to_value(rules).unwrap_or_default();
        }
        let mut res = (status, Json(body)).into_response();
        if let AppError::TooManyAttempts { retry_after_secs } = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"argent\""),
            );
        }
        res
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => AppError::NotFound(format!("{what} not found")),
            StoreError::Conflict(why) => AppError::Conflict(why),
            other => AppError::internal(other),
        }
    }
}

impl From<AgentError> for AppError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Store(s) => s.into(),
            AgentError::AlreadyDecided(id) => {
                AppError::Conflict(format!("approval {id} was already decided"))
            }
            AgentError::NotPermitted(why) => AppError::Forbidden(format!("not permitted: {why}")),
            AgentError::EditInvalid(why) => {
                AppError::Unprocessable(format!("the edited arguments are invalid: {why}"))
            }
            AgentError::Denied(message) => AppError::Denied {
                message,
                rules: Vec::new(),
            },
            AgentError::Money(e) => e.into(),
            other => AppError::internal(other),
        }
    }
}

/// A figure of the stored ledger that cannot be computed (a sum past `i64` minor units,
/// which only amounts beyond the import bounds reach): said plainly, as the ledger's
/// problem, not hidden behind "internal error" (422).
impl From<MoneyError> for AppError {
    fn from(e: MoneyError) -> Self {
        AppError::Unprocessable(format!("the ledger's figures cannot be computed: {e}"))
    }
}

impl From<argent_core::bounds::OutOfRange> for AppError {
    fn from(e: argent_core::bounds::OutOfRange) -> Self {
        AppError::BadRequest(e.to_string())
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(format!(
                "the request body is larger than the {} KiB this server reads",
                crate::limits::MAX_REQUEST_BYTES / 1024
            )),
            StatusCode::UNPROCESSABLE_ENTITY => AppError::Unprocessable(r.body_text()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMediaType(r.body_text()),
            _ => AppError::BadRequest(r.body_text()),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        AppError::BadRequest(r.body_text())
    }
}

impl From<PathRejection> for AppError {
    fn from(r: PathRejection) -> Self {
        AppError::BadRequest(r.body_text())
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;
    use argent_core::Currency;

    /// A ledger figure that overflows is said plainly (422 with the sum named), from the
    /// core directly or through the agent, never a bare 500.
    #[test]
    fn a_money_overflow_is_a_clear_422() {
        let e = MoneyError::SumOverflow {
            what: "the open invoices of all customers".into(),
            currency: Currency::USD,
        };
        for err in [
            AppError::from(e.clone()),
            AppError::from(AgentError::Money(e)),
        ] {
            assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
            assert!(
                err.to_string().starts_with(
                    "the ledger's figures cannot be computed: the open invoices of all \
                     customers in USD add up to more than"
                ),
                "{err}"
            );
        }
    }
}
