//! Errors of the LLM boundary.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong talking to a model, recording or replaying.
///
/// Every message names the endpoint or file involved and, where one exists,
/// what an operator can do about it. The type is `Clone` (it holds only plain
/// data) so scripted models can queue errors and callers can keep copies for
/// the audit trail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// Every attempt ran past the per-request timeout.
    #[error(
        "model request to {endpoint} timed out: none of {attempts} attempt(s) answered within {timeout:?}; \
         the server may be overloaded or the timeout too short (ARGENT_LLM_TIMEOUT_SECS)"
    )]
    Timeout {
        endpoint: String,
        timeout: Duration,
        attempts: u32,
    },

    /// The provider kept answering HTTP 429 until the retries ran out.
    #[error(
        "rate limited by {endpoint} (HTTP 429) on all {attempts} attempt(s): {message}; \
         wait and retry, lower concurrency, or raise ARGENT_LLM_MAX_RETRIES"
    )]
    RateLimited {
        endpoint: String,
        attempts: u32,
        message: String,
    },

    /// The provider answered with a non-success HTTP status (a 4xx other than
    /// 429 at once, a 5xx after the retries ran out).
    #[error("{endpoint} answered HTTP {status} (after {attempts} attempt(s)): {message}{}", status_hint(*.status))]
    Http {
        endpoint: String,
        status: u16,
        attempts: u32,
        message: String,
    },

    /// The provider refused the request because of what the model itself produced: an
    /// HTTP 400/422/500 whose body names tool-call arguments it could not parse as JSON
    /// (llama.cpp: "Failed to parse tool call arguments as JSON") or a tool name it does
    /// not know. Sending the same request again gets the same answer, so it is not
    /// retried unchanged: the agent shows the error to the model in a repair turn.
    #[error(
        "{endpoint} answered HTTP {status} because of the model's own output: {message}; \
         not retried unchanged (the same request fails the same way)"
    )]
    ModelOutput {
        endpoint: String,
        status: u16,
        message: String,
    },

    /// The endpoint could not be reached (connection refused, DNS, TLS, reset).
    #[error(
        "could not reach {endpoint} after {attempts} attempt(s): {message}; \
         check ARGENT_LLM_BASE_URL and that the server is running"
    )]
    Transport {
        endpoint: String,
        attempts: u32,
        message: String,
    },

    /// The endpoint answered 2xx with something that is not a chat completion.
    #[error("invalid response from {endpoint}: {message}")]
    InvalidResponse { endpoint: String, message: String },

    /// Replay: the request differs from the one recorded at this position.
    #[error(
        "cassette {}: request #{index} does not match the recorded exchange #{index}:\n{diff}\n\
         (the prompt, tools or conversation changed since recording; re-record the cassette if the change is intended)",
        .path.display()
    )]
    CassetteMismatch {
        path: PathBuf,
        index: usize,
        diff: String,
    },

    /// Replay: more requests than the cassette holds.
    #[error(
        "cassette {} is exhausted: it holds {recorded} exchange(s) but request #{recorded} was made; \
         the run now makes more model calls than when it was recorded (re-record the cassette if intended)",
        .path.display()
    )]
    CassetteExhausted { path: PathBuf, recorded: usize },

    /// Reading, parsing or writing a cassette failed, or it was left unfinished.
    #[error("cassette {}: {message}", .path.display())]
    Cassette { path: PathBuf, message: String },

    /// Replay of an exchange whose recorded outcome was an error.
    #[error("replayed error from cassette {}, exchange #{index} ({kind}): {message}", .path.display())]
    Replayed {
        path: PathBuf,
        index: usize,
        kind: String,
        message: String,
    },

    /// The scripted test model was asked for more responses than it was given.
    #[error(
        "scripted model has no response left for request #{index}: the test scripted fewer responses than the code under test requested"
    )]
    ScriptExhausted { index: usize },

    /// The model client is misconfigured (missing model, bad URL, bad key...).
    #[error("LLM configuration error: {0}")]
    Config(String),
}

impl LlmError {
    /// A short, stable name for the kind of error (`timeout`, `rate_limited`,
    /// `http`, `model_output`, `transport`, `invalid_response`, `cassette_mismatch`,
    /// `cassette_exhausted`, `cassette`, `replayed`, `script_exhausted`,
    /// `config`), for logs, audit events and cassettes.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Timeout { .. } => "timeout",
            LlmError::RateLimited { .. } => "rate_limited",
            LlmError::Http { .. } => "http",
            LlmError::ModelOutput { .. } => "model_output",
            LlmError::Transport { .. } => "transport",
            LlmError::InvalidResponse { .. } => "invalid_response",
            LlmError::CassetteMismatch { .. } => "cassette_mismatch",
            LlmError::CassetteExhausted { .. } => "cassette_exhausted",
            LlmError::Cassette { .. } => "cassette",
            LlmError::Replayed { .. } => "replayed",
            LlmError::ScriptExhausted { .. } => "script_exhausted",
            LlmError::Config(_) => "config",
        }
    }
}

impl LlmError {
    /// The provider refused what the model produced ([`LlmError::ModelOutput`], also when
    /// replayed from a cassette): a repair turn may get past it, a plain retry cannot.
    pub fn is_model_output(&self) -> bool {
        match self {
            LlmError::ModelOutput { .. } => true,
            LlmError::Replayed { kind, .. } => kind == "model_output",
            _ => false,
        }
    }

    /// An error an operator must fix and a person at the desk cannot work around for the
    /// customer: the configuration (model, URL, key: HTTP 401/403/404, an account out of
    /// quota), a cassette, a test script. Everything else that ends a model call (the
    /// server down or overloaded past the retries, a model whose output the server keeps
    /// refusing) is the model failing the run, which then needs a person.
    pub fn is_operator_error(&self) -> bool {
        match self {
            LlmError::Config(_)
            | LlmError::CassetteMismatch { .. }
            | LlmError::CassetteExhausted { .. }
            | LlmError::Cassette { .. }
            | LlmError::ScriptExhausted { .. } => true,
            LlmError::Http {
                status, message, ..
            } => matches!(status, 401 | 403 | 404) || message.contains(QUOTA_NOTE),
            LlmError::Replayed { kind, .. } => matches!(
                kind.as_str(),
                "config"
                    | "cassette"
                    | "cassette_mismatch"
                    | "cassette_exhausted"
                    | "script_exhausted"
            ),
            _ => false,
        }
    }
}

/// What [`LlmError::Http`]'s message ends with when the account is out of quota.
pub(crate) const QUOTA_NOTE: &str = "(the account is out of quota; retrying will not help)";

fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => "; check the API key (ARGENT_LLM_API_KEY or OPENAI_API_KEY)",
        404 => "; check ARGENT_LLM_BASE_URL (it usually ends in /v1) and ARGENT_LLM_MODEL",
        413 => "; the prompt is too large for this endpoint",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_endpoint_and_a_remedy() {
        let e = LlmError::Http {
            endpoint: "http://127.0.0.1:1/v1/chat/completions".into(),
            status: 401,
            attempts: 1,
            message: "bad key".into(),
        };
        let s = e.to_string();
        assert!(s.contains("HTTP 401"), "{s}");
        assert!(s.contains("ARGENT_LLM_API_KEY"), "{s}");
        assert_eq!(e.kind(), "http");

        let e = LlmError::CassetteExhausted {
            path: "x.json".into(),
            recorded: 2,
        };
        assert!(e.to_string().contains("holds 2 exchange(s)"));
    }
}
