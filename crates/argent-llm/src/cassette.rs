//! Record/replay of model exchanges ("cassettes").
//!
//! A [`Recorder`] wraps any [`ChatModel`] and writes every exchange to a
//! cassette file; a [`Replayer`] serves a cassette offline, in order, and fails
//! loudly when a request differs from the recorded one. The file format is
//! documented in the crate docs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::LlmError;
use crate::model::ChatModel;
use crate::types::{ChatMessage, ChatRequest, ChatResponse, ToolCall};

/// The `cassette.format` marker of every cassette file.
pub const CASSETTE_FORMAT: &str = "argent-llm-cassette";
/// The cassette format version this crate writes and reads.
pub const CASSETTE_VERSION: u32 = 1;

/// The header of a cassette file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CassetteHeader {
    /// Always [`CASSETTE_FORMAT`].
    pub format: String,
    /// Always [`CASSETTE_VERSION`] for files this crate writes.
    pub version: u32,
    /// [`ChatModel::name`] of the model that was recorded.
    pub model: String,
}

/// An error outcome as recorded in a cassette.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedError {
    /// [`LlmError::kind`] of the original error.
    pub kind: String,
    /// Its full message.
    pub message: String,
}

/// One recorded request and its outcome: a response, or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// Position in the cassette, from 0; replay checks it.
    pub index: usize,
    pub request: ChatRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ChatResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordedError>,
}

/// A whole cassette: header plus exchanges in call order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cassette {
    #[serde(rename = "cassette")]
    pub header: CassetteHeader,
    pub exchanges: Vec<Exchange>,
}

impl Cassette {
    /// An empty cassette for the model named `model`.
    pub fn new(model: impl Into<String>) -> Self {
        Cassette {
            header: CassetteHeader {
                format: CASSETTE_FORMAT.to_string(),
                version: CASSETTE_VERSION,
                model: model.into(),
            },
            exchanges: Vec::new(),
        }
    }

    /// The canonical text of the cassette: pretty-printed JSON, two-space
    /// indent, object keys sorted at every level, trailing newline. The same
    /// cassette always gives the same bytes, so recordings diff cleanly.
    pub fn to_canonical_json(&self) -> Result<String, serde_json::Error> {
        // Serialize to text first so f32 fields keep their short form (0.2,
        // not 0.20000000298023224), then sort keys.
        let value: Value = serde_json::from_str(&serde_json::to_string(self)?)?;
        let mut text = serde_json::to_string_pretty(&sort_keys(value))?;
        text.push('\n');
        Ok(text)
    }

    /// Parse and check a cassette's text. `path` only labels errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, LlmError> {
        let err = |message: String| LlmError::Cassette {
            path: path.to_path_buf(),
            message,
        };
        let cassette: Cassette = serde_json::from_str(text)
            .map_err(|e| err(format!("not a valid cassette file: {e}")))?;
        if cassette.header.format != CASSETTE_FORMAT {
            return Err(err(format!(
                "cassette.format is {:?}, expected {CASSETTE_FORMAT:?}",
                cassette.header.format
            )));
        }
        if cassette.header.version != CASSETTE_VERSION {
            return Err(err(format!(
                "cassette version {} is not supported by this build (it reads version {CASSETTE_VERSION}); re-record it",
                cassette.header.version
            )));
        }
        for (i, ex) in cassette.exchanges.iter().enumerate() {
            if ex.index != i {
                return Err(err(format!(
                    "exchange at position {i} has index {}; exchanges must be numbered 0, 1, 2... in order",
                    ex.index
                )));
            }
            if ex.response.is_some() == ex.error.is_some() {
                return Err(err(format!(
                    "exchange #{i} must have exactly one of \"response\" or \"error\""
                )));
            }
        }
        Ok(cassette)
    }

    /// Read a cassette file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, LlmError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|e| LlmError::Cassette {
            path: path.to_path_buf(),
            message: format!("cannot read the cassette: {e}"),
        })?;
        Cassette::from_json(&text, path)
    }

    /// Write the cassette atomically (temporary file, then rename), so a
    /// crash never leaves a half-written file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), LlmError> {
        let path = path.as_ref();
        let err = |message: String| LlmError::Cassette {
            path: path.to_path_buf(),
            message,
        };
        let text = self
            .to_canonical_json()
            .map_err(|e| err(format!("cannot serialize the cassette: {e}")))?;
        let mut tmp_name = path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "cassette".into());
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| err(format!("cannot write the cassette: {e}")))
    }
}

fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wraps a model and records every exchange to a cassette file.
///
/// The file is rewritten (atomically) after each exchange, so it is complete
/// and valid at every point of a run. Errors from the wrapped model are
/// recorded too (their kind and message) and passed through unchanged. If the
/// cassette cannot be written the call fails: a recording that silently
/// misses exchanges would not replay.
pub struct Recorder {
    inner: Arc<dyn ChatModel>,
    path: PathBuf,
    cassette: Mutex<Cassette>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("inner", &self.inner.name())
            .field("path", &self.path)
            .field("exchanges", &self.exchange_count())
            .finish()
    }
}

impl Recorder {
    /// Start recording `inner` to `path` (created or truncated at once, with
    /// its parent directories, so a bad path fails here and not mid-run).
    pub fn new(inner: Arc<dyn ChatModel>, path: impl Into<PathBuf>) -> Result<Self, LlmError> {
        let path = path.into();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| LlmError::Cassette {
                path: path.clone(),
                message: format!("cannot create directory {}: {e}", parent.display()),
            })?;
        }
        let cassette = Cassette::new(inner.name());
        cassette.save(&path)?;
        tracing::info!(path = %path.display(), model = %inner.name(), "recording model exchanges");
        Ok(Recorder {
            inner,
            path,
            cassette: Mutex::new(cassette),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Exchanges recorded so far.
    pub fn exchange_count(&self) -> usize {
        lock(&self.cassette).exchanges.len()
    }

    /// A copy of what has been recorded so far.
    pub fn cassette(&self) -> Cassette {
        lock(&self.cassette).clone()
    }
}

#[async_trait]
impl ChatModel for Recorder {
    fn name(&self) -> String {
        format!(
            "{} (recording to {})",
            self.inner.name(),
            self.path.display()
        )
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let outcome = self.inner.chat(req).await;
        let mut cassette = lock(&self.cassette);
        let index = cassette.exchanges.len();
        let (response, error) = match &outcome {
            Ok(r) => (Some(r.clone()), None),
            Err(e) => (
                None,
                Some(RecordedError {
                    kind: e.kind().to_string(),
                    message: e.to_string(),
                }),
            ),
        };
        cassette.exchanges.push(Exchange {
            index,
            request: req.clone(),
            response,
            error,
        });
        cassette.save(&self.path)?;
        tracing::debug!(path = %self.path.display(), index, "recorded model exchange");
        outcome
    }

    fn check_continuation(&self, messages: &[ChatMessage]) -> Result<(), LlmError> {
        self.inner.check_continuation(messages)
    }
}

/// Serves a cassette offline, in order.
///
/// Request `n` must equal recorded exchange `n` (messages, tools, tool choice
/// and sampling settings); otherwise the call fails with
/// [`LlmError::CassetteMismatch`] naming the exchange and what differs, and the
/// position does not advance. A request past the end fails with
/// [`LlmError::CassetteExhausted`]. [`Replayer::finish`] reports exchanges
/// that were never requested.
#[derive(Debug)]
pub struct Replayer {
    path: PathBuf,
    cassette: Cassette,
    next: Mutex<usize>,
}

impl Replayer {
    /// Load the cassette at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, LlmError> {
        let path = path.into();
        let cassette = Cassette::load(&path)?;
        Ok(Replayer::from_cassette(cassette, path))
    }

    /// Replay an in-memory cassette; `path` labels errors.
    pub fn from_cassette(cassette: Cassette, path: impl Into<PathBuf>) -> Self {
        Replayer {
            path: path.into(),
            cassette,
            next: Mutex::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn cassette(&self) -> &Cassette {
        &self.cassette
    }

    /// Exchanges served so far.
    pub fn played(&self) -> usize {
        *lock(&self.next)
    }

    /// Exchanges not yet served.
    pub fn remaining(&self) -> usize {
        self.cassette.exchanges.len().saturating_sub(self.played())
    }

    /// `Ok` if every recorded exchange was served; otherwise an error saying
    /// how many were not (the run made fewer model calls than recorded).
    pub fn finish(&self) -> Result<(), LlmError> {
        let played = self.played();
        let total = self.cassette.exchanges.len();
        if played < total {
            return Err(LlmError::Cassette {
                path: self.path.clone(),
                message: format!(
                    "only {played} of {total} recorded exchange(s) were replayed; \
                     the run made fewer model calls than when it was recorded"
                ),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ChatModel for Replayer {
    fn name(&self) -> String {
        format!(
            "replay of {} from {}",
            self.cassette.header.model,
            self.path.display()
        )
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut next = lock(&self.next);
        let index = *next;
        let Some(exchange) = self.cassette.exchanges.get(index) else {
            return Err(LlmError::CassetteExhausted {
                path: self.path.clone(),
                recorded: self.cassette.exchanges.len(),
            });
        };
        let differences = diff_requests(&exchange.request, req);
        if !differences.is_empty() {
            return Err(LlmError::CassetteMismatch {
                path: self.path.clone(),
                index,
                diff: format_differences(&differences),
            });
        }
        *next += 1;
        match (&exchange.response, &exchange.error) {
            (Some(response), _) => Ok(response.clone()),
            (None, Some(e)) => Err(LlmError::Replayed {
                path: self.path.clone(),
                index,
                kind: e.kind.clone(),
                message: e.message.clone(),
            }),
            (None, None) => Err(LlmError::Cassette {
                path: self.path.clone(),
                message: format!("exchange #{index} has neither a response nor an error"),
            }),
        }
    }

    /// `messages` must begin the next recorded request: every one equal to the recorded
    /// message at its position, and no more of them than it holds. Past the last
    /// exchange there is nothing to compare with (a recording that ended with tool
    /// results, as a step budget ends a run), and the next request, if any, fails as
    /// exhausted. The position does not move.
    fn check_continuation(&self, messages: &[ChatMessage]) -> Result<(), LlmError> {
        let index = self.played();
        let Some(exchange) = self.cassette.exchanges.get(index) else {
            return Ok(());
        };
        let recorded = &exchange.request.messages;
        let mut out = Vec::new();
        for (i, (r, n)) in recorded.iter().zip(messages).enumerate() {
            diff_message(i, r, n, &mut out);
        }
        for (i, m) in messages.iter().enumerate().skip(recorded.len()).take(3) {
            out.push(format!(
                "message[{i}] ({}) is not in the recorded request: {:?}",
                m.role(),
                excerpt(m.content().unwrap_or(""), 0, 80)
            ));
        }
        if out.is_empty() {
            return Ok(());
        }
        out.insert(
            0,
            format!(
                "(found before the last tool result was committed: the run's {} message(s) do not begin the recorded request, which has {})",
                messages.len(),
                recorded.len()
            ),
        );
        Err(LlmError::CassetteMismatch {
            path: self.path.clone(),
            index,
            diff: format_differences(&out),
        })
    }
}

const MAX_LISTED_DIFFERENCES: usize = 20;

fn format_differences(differences: &[String]) -> String {
    let mut out: Vec<String> = differences
        .iter()
        .take(MAX_LISTED_DIFFERENCES)
        .map(|d| format!("  - {d}"))
        .collect();
    if differences.len() > MAX_LISTED_DIFFERENCES {
        out.push(format!(
            "  - ... and {} more difference(s)",
            differences.len() - MAX_LISTED_DIFFERENCES
        ));
    }
    out.join("\n")
}

/// What differs between a recorded request and a new one, one line per
/// difference (empty when they are equal): message count, each differing
/// message's role, text (with the first differing position and context),
/// tool calls and tool-call ids, the offered tools' names, descriptions and
/// schemas, tool choice and sampling settings.
pub fn diff_requests(recorded: &ChatRequest, now: &ChatRequest) -> Vec<String> {
    let mut out = Vec::new();
    if recorded.messages.len() != now.messages.len() {
        out.push(format!(
            "message count: recorded {}, now {}",
            recorded.messages.len(),
            now.messages.len()
        ));
    }
    for (i, (r, n)) in recorded.messages.iter().zip(&now.messages).enumerate() {
        diff_message(i, r, n, &mut out);
    }
    let common = recorded.messages.len().min(now.messages.len());
    for (i, m) in recorded.messages.iter().enumerate().skip(common).take(3) {
        out.push(format!(
            "message[{i}] ({}) only in the recording: {:?}",
            m.role(),
            excerpt(m.content().unwrap_or(""), 0, 80)
        ));
    }
    for (i, m) in now.messages.iter().enumerate().skip(common).take(3) {
        out.push(format!(
            "message[{i}] ({}) only in the new request: {:?}",
            m.role(),
            excerpt(m.content().unwrap_or(""), 0, 80)
        ));
    }

    let (rn, nn) = (recorded.tool_names(), now.tool_names());
    if rn != nn {
        out.push(format!(
            "tool names: recorded [{}], now [{}]",
            rn.join(", "),
            nn.join(", ")
        ));
    } else {
        for (r, n) in recorded.tools.iter().zip(now.tools.iter()) {
            if r.description != n.description {
                out.push(format!(
                    "tool `{}` description: {}",
                    r.name,
                    text_diff(&r.description, &n.description)
                ));
            }
            if r.parameters != n.parameters {
                out.push(format!(
                    "tool `{}` parameters (JSON Schema): recorded {}, now {}",
                    r.name,
                    excerpt(&r.parameters.to_string(), 0, 200),
                    excerpt(&n.parameters.to_string(), 0, 200)
                ));
            }
        }
    }
    fn setting<T: PartialEq + std::fmt::Debug>(name: &str, r: &T, n: &T, out: &mut Vec<String>) {
        if r != n {
            out.push(format!("{name}: recorded {r:?}, now {n:?}"));
        }
    }
    setting(
        "tool_choice",
        &recorded.tool_choice,
        &now.tool_choice,
        &mut out,
    );
    setting(
        "temperature",
        &recorded.temperature,
        &now.temperature,
        &mut out,
    );
    setting("top_p", &recorded.top_p, &now.top_p, &mut out);
    setting(
        "max_tokens",
        &recorded.max_tokens,
        &now.max_tokens,
        &mut out,
    );
    setting("seed", &recorded.seed, &now.seed, &mut out);
    setting(
        "parallel_tool_calls",
        &recorded.parallel_tool_calls,
        &now.parallel_tool_calls,
        &mut out,
    );
    if out.is_empty() && recorded != now {
        out.push("the requests differ (no field-level difference was identified)".into());
    }
    out
}

fn diff_message(i: usize, r: &ChatMessage, n: &ChatMessage, out: &mut Vec<String>) {
    if r == n {
        return;
    }
    if r.role() != n.role() {
        out.push(format!(
            "message[{i}] role: recorded {}, now {}",
            r.role(),
            n.role()
        ));
        return;
    }
    let role = r.role();
    if r.content() != n.content() {
        match (r.content(), n.content()) {
            (Some(a), Some(b)) => out.push(format!(
                "message[{i}] ({role}) content: {}",
                text_diff(a, b)
            )),
            (a, b) => out.push(format!(
                "message[{i}] ({role}) content: recorded {}, now {}",
                a.map_or("none".to_string(), |s| format!("{:?}", excerpt(s, 0, 80))),
                b.map_or("none".to_string(), |s| format!("{:?}", excerpt(s, 0, 80)))
            )),
        }
    }
    match (r, n) {
        (
            ChatMessage::Tool {
                tool_call_id: a, ..
            },
            ChatMessage::Tool {
                tool_call_id: b, ..
            },
        ) if a != b => out.push(format!(
            "message[{i}] (tool) tool_call_id: recorded {a:?}, now {b:?}"
        )),
        _ => {}
    }
    let (rc, nc) = (r.tool_calls(), n.tool_calls());
    if rc != nc {
        let show = |calls: &[ToolCall]| {
            calls
                .iter()
                .map(|c| format!("{}#{}({})", c.name, c.id, excerpt(&c.arguments, 0, 60)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!(
            "message[{i}] (assistant) tool calls: recorded [{}], now [{}]",
            show(rc),
            show(nc)
        ));
    }
}

/// `differs at character N: recorded "...a..." now "...b..."`.
fn text_diff(a: &str, b: &str) -> String {
    let pos = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let start = pos.saturating_sub(30);
    format!(
        "differs at character {pos} (recorded {} chars, now {}): recorded {:?}, now {:?}",
        a.chars().count(),
        b.chars().count(),
        excerpt(a, start, 70),
        excerpt(b, start, 70)
    )
}

/// Up to `len` characters of `s` from character `start`, with `…` marking cuts.
fn excerpt(s: &str, start: usize, len: usize) -> String {
    let total = s.chars().count();
    let body: String = s.chars().skip(start).take(len).collect();
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.push_str(&body);
    if start + len < total {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToolDefinition;
    use serde_json::json;

    fn req(user: &str) -> ChatRequest {
        ChatRequest::new(vec![
            ChatMessage::system("You are a collections assistant."),
            ChatMessage::user(user),
        ])
        .with_tools(vec![ToolDefinition::new(
            "read_aging",
            "Read aging",
            json!({"type": "object", "properties": {"customer_id": {"type": "string"}}}),
        )])
        .with_temperature(0.2)
    }

    #[test]
    fn equal_requests_have_no_differences() {
        assert!(diff_requests(&req("hi"), &req("hi")).is_empty());
    }

    #[test]
    fn content_difference_names_the_message_and_position() {
        let d = diff_requests(
            &req("Please refund $50 to ACME."),
            &req("Please refund $500 to ACME."),
        );
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].starts_with("message[1] (user) content: differs at character 17"),
            "{}",
            d[0]
        );
        assert!(
            d[0].contains("$50 to") && d[0].contains("$500 to"),
            "{}",
            d[0]
        );
    }

    #[test]
    fn count_tools_and_settings_differences_are_listed() {
        let mut now = req("hi");
        now.messages.push(ChatMessage::tool_result("c1", "ok"));
        std::sync::Arc::make_mut(&mut now.tools)[0].name = "read_balance".into();
        now.temperature = None;
        let d = diff_requests(&req("hi"), &now);
        assert!(
            d.contains(&"message count: recorded 2, now 3".to_string()),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|l| l.contains("message[2] (tool) only in the new request")),
            "{d:?}"
        );
        assert!(
            d.contains(&"tool names: recorded [read_aging], now [read_balance]".to_string()),
            "{d:?}"
        );
        assert!(
            d.contains(&"temperature: recorded Some(0.2), now None".to_string()),
            "{d:?}"
        );

        let mut schema = req("hi");
        std::sync::Arc::make_mut(&mut schema.tools)[0].parameters = json!({"type": "object"});
        let d = diff_requests(&req("hi"), &schema);
        assert!(d[0].starts_with("tool `read_aging` parameters"), "{d:?}");

        let mut role = req("hi");
        role.messages[1] = ChatMessage::assistant("hi");
        let d = diff_requests(&req("hi"), &role);
        assert_eq!(d, ["message[1] role: recorded user, now assistant"]);
    }

    #[test]
    fn tool_call_differences_show_raw_arguments() {
        let mk = |args: &str| {
            ChatRequest::new(vec![ChatMessage::assistant_tool_calls(
                None,
                vec![ToolCall::new("c1", "log_promise", args)],
            )])
        };
        let d = diff_requests(&mk("{\"amount\": 10}"), &mk("{\"amount\": 10"));
        assert_eq!(d.len(), 1);
        assert!(
            d[0].contains("log_promise#c1({\"amount\": 10})"),
            "{}",
            d[0]
        );
        assert!(
            d[0].contains("now [log_promise#c1({\"amount\": 10)]"),
            "{}",
            d[0]
        );
    }

    #[test]
    fn canonical_json_sorts_keys_and_keeps_short_floats() {
        let mut c = Cassette::new("m");
        let mut r = req("hi");
        std::sync::Arc::make_mut(&mut r.tools)[0].parameters =
            json!({"z": 1, "a": {"y": 2, "b": 3}});
        c.exchanges.push(Exchange {
            index: 0,
            request: r,
            response: Some(ChatResponse::text("ok")),
            error: None,
        });
        let text = c.to_canonical_json().unwrap();
        assert!(text.contains("\"temperature\": 0.2"), "{text}");
        assert!(text.find("\"a\"").unwrap() < text.find("\"z\"").unwrap());
        assert!(text.find("\"b\"").unwrap() < text.find("\"y\"").unwrap());
        assert!(text.find("\"cassette\"").unwrap() < text.find("\"exchanges\"").unwrap());
        assert!(text.ends_with("}\n"));
        let back = Cassette::from_json(&text, Path::new("x")).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.to_canonical_json().unwrap(), text);
    }

    #[tokio::test]
    async fn a_continuation_is_checked_against_the_next_recorded_request() {
        let first = req("I will pay on Friday.");
        let mut second = first.clone();
        second.messages.push(ChatMessage::assistant_tool_calls(
            None,
            vec![ToolCall::new("c1", "log_promise", "{}")],
        ));
        second
            .messages
            .push(ChatMessage::tool_result("c1", r#"{"status":"executed"}"#));
        let mut c = Cassette::new("m");
        for (index, request) in [first.clone(), second.clone()].into_iter().enumerate() {
            c.exchanges.push(Exchange {
                index,
                request,
                response: Some(ChatResponse::text("ok")),
                error: None,
            });
        }
        let r = Replayer::from_cassette(c, "c.json");
        // Before the first exchange is served, the next request is the first one.
        r.check_continuation(&first.messages).unwrap();
        r.chat(&first).await.unwrap();
        // A prefix of the next recorded request, and the whole of it, follow it.
        r.check_continuation(&second.messages[..3]).unwrap();
        r.check_continuation(&second.messages).unwrap();
        assert_eq!(r.played(), 1, "checking never advances the position");

        let mut refused = second.messages.clone();
        refused[3] = ChatMessage::tool_result("c1", r#"{"status":"refused"}"#);
        let e = r.check_continuation(&refused).unwrap_err();
        assert_eq!(e.kind(), "cassette_mismatch");
        let text = e.to_string();
        assert!(text.contains("request #1"), "{text}");
        assert!(
            text.contains("before the last tool result was committed"),
            "{text}"
        );
        assert!(text.contains("message[3] (tool) content"), "{text}");

        let mut longer = second.messages.clone();
        longer.push(ChatMessage::tool_result("c2", "extra"));
        let e = r.check_continuation(&longer).unwrap_err().to_string();
        assert!(
            e.contains("message[4] (tool) is not in the recorded request"),
            "{e}"
        );

        r.chat(&second).await.unwrap();
        // Past the last exchange there is nothing to compare with.
        r.check_continuation(&longer).unwrap();
    }

    #[tokio::test]
    async fn live_models_accept_any_continuation() {
        let m = crate::ScriptedModel::new();
        m.check_continuation(&req("x").messages).unwrap();
        let shared: Arc<dyn ChatModel> =
            Arc::new(Replayer::from_cassette(Cassette::new("m"), "e.json"));
        shared.check_continuation(&req("x").messages).unwrap();
    }

    #[test]
    fn malformed_cassettes_are_rejected_with_reasons() {
        let p = Path::new("c.json");
        let e = Cassette::from_json("{", p).unwrap_err().to_string();
        assert!(
            e.contains("c.json") && e.contains("not a valid cassette"),
            "{e}"
        );

        let mut c = Cassette::new("m");
        c.header.version = 99;
        let e = Cassette::from_json(&c.to_canonical_json().unwrap(), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("version 99"), "{e}");

        let mut c = Cassette::new("m");
        c.exchanges.push(Exchange {
            index: 0,
            request: req("x"),
            response: None,
            error: None,
        });
        let e = Cassette::from_json(&c.to_canonical_json().unwrap(), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("exactly one of"), "{e}");
    }
}
