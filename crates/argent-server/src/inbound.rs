//! `POST /api/inbound`: a raw RFC 822 message forwarded by a mail provider, for teams
//! whose inbound mail arrives over HTTP rather than IMAP.
//!
//! - **Authentication** by a bearer token of its own ([`ServerConfig::inbound_token`],
//!   `ARGENT_INBOUND_TOKEN`), never a user's session or API token: the provider holds it,
//!   not a person. Compared in constant time (the SHA-256 of each, compared without an
//!   early exit). No token configured: the endpoint refuses everything (401).
//! - **Body**: the raw message, `Content-Type: message/rfc822` or
//!   `application/octet-stream` (415 otherwise), at most
//!   [`ServerConfig::inbound_max_bytes`] (default 10 MiB; 413 above it, refused as it
//!   streams in, before anything is stored). Empty: 400.
//! - **Exactly once**: stored raw with status `new` under its dedupe key (Message-ID, else
//!   the hash of the bytes): 202 with the new id, or 200 with the existing id when the
//!   message is already there (a provider's retry, or the same mail read over IMAP).
//!   `argent serve` then processes it in the background (`ServerConfig::process_inbound`).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use argent_mail::raw::RawFacts;

/// Messages one background processing pass takes.
const PROCESS_BATCH: i64 = 50;

/// One background processing pass at a time in this process.
static PROCESSING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
use argent_store::{MailSource, NewInbound};

use crate::AppState;
use crate::error::{AppError, AppResult};

/// Whether `given` is the configured token, in time independent of where they differ.
pub fn token_matches(configured: &str, given: &str) -> bool {
    let a = Sha256::digest(configured.as_bytes());
    let b = Sha256::digest(given.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let h = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

fn media_type_ok(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("message/rfc822")
        || essence.eq_ignore_ascii_case("application/octet-stream")
}

/// `POST /api/inbound` (see the module docs).
pub async fn receive(State(state): State<AppState>, request: Request) -> AppResult<Response> {
    let (parts, body) = request.into_parts();
    let Some(configured) = state.config.inbound_token.as_deref() else {
        return Err(AppError::Unauthorized);
    };
    match bearer(&parts.headers) {
        Some(given) if token_matches(configured, given) => {}
        _ => return Err(AppError::Unauthorized),
    }
    if !media_type_ok(&parts.headers) {
        return Err(AppError::UnsupportedMediaType(
            "send the raw message as message/rfc822 or application/octet-stream".into(),
        ));
    }
    let max = state.config.inbound_max_bytes;
    let too_large = |size: String| {
        AppError::PayloadTooLarge(format!(
            "the message is {size} bytes; the limit is {max} bytes"
        ))
    };
    if let Some(len) = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > max
    {
        return Err(too_large(len.to_string()));
    }
    let raw = axum::body::to_bytes(body, max).await.map_err(|e| {
        // The only error reading a body here is the limit or a broken connection.
        let is_limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if is_limit {
            too_large(format!("more than {max}"))
        } else {
            AppError::BadRequest(format!("reading the message: {e}"))
        }
    })?;
    if raw.is_empty() {
        return Err(AppError::BadRequest(
            "the body is empty: send one raw RFC 822 message".into(),
        ));
    }
    let facts = RawFacts::of(&raw);
    let received = state
        .store
        .receive_inbound(
            MailSource::Webhook,
            &NewInbound {
                dedupe_key: facts.dedupe_key.clone(),
                message_id: facts.message_id.clone(),
                raw: raw.to_vec(),
                uid: None,
                refused: None,
            },
        )
        .await?;
    // Processing (parse, match, act) runs in the background, so the provider gets its
    // answer without waiting for the agent; one pass at a time per process (a message is
    // settled once whoever processes it). A failure leaves the message `new` for the
    // next pass or `argent mail process`.
    if received.created && state.config.process_inbound {
        let agent = state.agent.current();
        tokio::spawn(async move {
            let _one_pass = PROCESSING.lock().await;
            if let Err(e) = argent_agent::mail_in::process_pending(&agent, PROCESS_BATCH).await {
                tracing::warn!("processing received mail failed: {e}");
            }
        });
    }
    let status = if received.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({
            "id": received.id,
            "duplicate": !received.created,
            "dedupe_key": facts.dedupe_key,
        })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(token_matches(
            "a-long-inbound-token",
            "a-long-inbound-token"
        ));
        assert!(!token_matches(
            "a-long-inbound-token",
            "a-long-inbound-tokeN"
        ));
        assert!(!token_matches(
            "a-long-inbound-token",
            "a-long-inbound-token "
        ));
        assert!(!token_matches("a-long-inbound-token", ""));
    }
}
