//! A fake OpenAI-compatible chat server on 127.0.0.1 for worker tests and the throughput
//! benchmark: it answers `/v1/chat/completions` as the offline model would (the request's
//! messages, converted, go through `argent_agent::OfflineModel`), after a configurable
//! latency; a request without tools (the compliance check) gets `{"compliant": true}`.
//! Optionally the first N requests hang (a worker killed while its model call is in
//! flight). [`FakeOpenAi::start_with`] answers through another model instead (the
//! planner-loop benchmark's fixed episode).

#![allow(dead_code)] // each user needs a different part
#![allow(clippy::unwrap_used)] // test support: a failure here should panic the test

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use argent_agent::OfflineModel;
use argent_llm::{
    ChatMessage, ChatModel, ChatRequest, OpenAiConfig, OpenAiModel, RetryPolicy, ToolCall,
};

struct Inner {
    latency: Duration,
    /// Each answer's latency is spread uniformly over `latency ± jitter` (nanoseconds;
    /// 0: every answer after exactly `latency`), by a fixed sequence, so runs repeat.
    jitter_ns: AtomicU64,
    /// What answers the agent's requests; `None`: the offline model, without its token
    /// count (this server reports a fixed usage, and counting with tiktoken was an eighth
    /// of the throughput bench's CPU).
    model: Option<Arc<dyn ChatModel>>,
    hang_first: usize,
    hits: AtomicUsize,
    tool_requests: AtomicUsize,
    /// Whether the agent's requests are kept (see [`FakeOpenAi::forgetting_bodies`]).
    keep_bodies: std::sync::atomic::AtomicBool,
    /// The agent's requests as received, byte for byte.
    bodies: std::sync::Mutex<Vec<Vec<u8>>>,
}

pub struct FakeOpenAi {
    /// `http://127.0.0.1:PORT/v1`
    pub base_url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeOpenAi {
    /// Starts the server: every answer after `latency`; the first `hang_first` agent
    /// requests never answered.
    pub async fn start(latency: Duration, hang_first: usize) -> FakeOpenAi {
        FakeOpenAi::serve(latency, hang_first, None).await
    }

    /// As [`FakeOpenAi::start`], with the agent's requests (the messages as received,
    /// converted back) answered by `model`.
    pub async fn start_with(
        latency: Duration,
        hang_first: usize,
        model: Arc<dyn ChatModel>,
    ) -> FakeOpenAi {
        FakeOpenAi::serve(latency, hang_first, Some(model)).await
    }

    async fn serve(
        latency: Duration,
        hang_first: usize,
        model: Option<Arc<dyn ChatModel>>,
    ) -> FakeOpenAi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            latency,
            jitter_ns: AtomicU64::new(0),
            model,
            hang_first,
            hits: AtomicUsize::new(0),
            tool_requests: AtomicUsize::new(0),
            keep_bodies: std::sync::atomic::AtomicBool::new(true),
            bodies: std::sync::Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeOpenAi {
            base_url: format!("http://{addr}/v1"),
            inner,
            task,
        }
    }

    /// Spreads each answer's latency uniformly over `latency ± jitter` (capped at the
    /// latency), as a real endpoint's answers vary, instead of answering every request
    /// after exactly the latency (which makes concurrent runs move in lock step).
    pub fn set_jitter(&self, jitter: Duration) {
        let ns = u64::try_from(jitter.min(self.inner.latency).as_nanos()).unwrap_or(u64::MAX);
        self.inner.jitter_ns.store(ns, Ordering::SeqCst);
    }

    /// Keeps no copy of the agent's requests ([`FakeOpenAi::agent_bodies`] is then
    /// empty): a benchmark's process would otherwise hold every request it sent, the
    /// test double's memory, not the client's.
    pub fn forgetting_bodies(self) -> FakeOpenAi {
        self.inner.keep_bodies.store(false, Ordering::SeqCst);
        self
    }

    /// A benchmark's client of this server: the real `OpenAiModel`, no retries (a failed
    /// call should fail the benchmark), a timeout far above any latency it sets.
    pub fn bench_model(&self) -> OpenAiModel {
        OpenAiModel::new(
            OpenAiConfig::new("fake-model")
                .with_base_url(self.base_url.clone())
                .with_api_key("bench")
                .with_timeout(Duration::from_secs(60))
                .with_retry(RetryPolicy::new(
                    0,
                    Duration::from_millis(10),
                    Duration::from_millis(10),
                )),
        )
        .unwrap()
    }

    /// Requests received.
    pub fn hits(&self) -> usize {
        self.inner.hits.load(Ordering::SeqCst)
    }

    /// Requests with tools (the agent's, not the compliance check's).
    pub fn agent_requests(&self) -> usize {
        self.inner.tool_requests.load(Ordering::SeqCst)
    }

    /// The bodies of the agent's requests so far, byte for byte as received, in order.
    pub fn agent_bodies(&self) -> Vec<Vec<u8>> {
        self.inner.bodies.lock().unwrap().clone()
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The parts of a chat request this server reads, borrowed where the JSON has no escapes;
/// the tool definitions are skipped, not built (a `serde_json::Value` of each ~10 KB
/// request and its drop were three quarters of this server's CPU in the 500-concurrent
/// bench, whose process it shares with the client it stands in for a remote endpoint to).
#[derive(serde::Deserialize)]
struct Request<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    messages: Vec<Message<'a>>,
    #[serde(default)]
    tools: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(serde::Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_call_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<Call<'a>>>,
}

#[derive(serde::Deserialize)]
struct Call<'a> {
    #[serde(borrow, default)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    function: Function<'a>,
}

#[derive(serde::Deserialize)]
struct Function<'a> {
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Cow<'a, str>,
}

fn to_messages(messages: Vec<Message<'_>>) -> Vec<ChatMessage> {
    let mut out = Vec::new();
    for m in messages {
        let content = m.content.clone().unwrap_or_default().into_owned();
        match m.role.as_ref() {
            "system" | "developer" => out.push(ChatMessage::system(content)),
            "user" => out.push(ChatMessage::user(content)),
            "tool" => out.push(ChatMessage::tool_result(
                m.tool_call_id.as_deref().unwrap_or_default(),
                content,
            )),
            _ => {
                let calls: Vec<ToolCall> = m
                    .tool_calls
                    .iter()
                    .flatten()
                    .map(|c| ToolCall::new(&*c.id, &*c.function.name, &*c.function.arguments))
                    .collect();
                let text = m.content.map(Cow::into_owned);
                out.push(ChatMessage::assistant_tool_calls(text, calls));
            }
        }
    }
    out
}

/// The latency of answer `n`: `latency ± jitter`, drawn from a generator seeded with `n`,
/// so the same run of requests gets the same latencies.
fn latency_of(inner: &Inner, n: usize) -> Duration {
    use rand::{Rng, SeedableRng};
    let jitter = inner.jitter_ns.load(Ordering::SeqCst);
    if jitter == 0 {
        return inner.latency;
    }
    let offset = rand::rngs::StdRng::seed_from_u64(n as u64).random_range(0..=2 * jitter);
    (inner.latency + Duration::from_nanos(offset)).saturating_sub(Duration::from_nanos(jitter))
}

/// Waits `latency`; none at all for zero (tokio's timer would still wait for its next
/// millisecond tick, a millisecond an answer the client never caused).
async fn wait(latency: Duration) {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

async fn handle(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let n = inner.hits.fetch_add(1, Ordering::SeqCst);
    let latency = latency_of(&inner, n);
    let parsed: Request<'_> = serde_json::from_slice(&body).unwrap_or(Request {
        model: None,
        messages: Vec::new(),
        tools: None,
    });
    let has_tools = parsed.tools.as_ref().is_some_and(|t| !t.is_empty());
    if has_tools && inner.keep_bodies.load(Ordering::SeqCst) {
        inner.bodies.lock().unwrap().push(body.to_vec());
    }
    let model = parsed.model.as_deref().unwrap_or("fake").to_string();
    if !has_tools {
        wait(latency).await;
        return completion(&model, Some("{\"compliant\": true}".into()), Vec::new());
    }
    let k = inner.tool_requests.fetch_add(1, Ordering::SeqCst);
    if k < inner.hang_first {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    wait(latency).await;
    let req = ChatRequest::new(to_messages(parsed.messages));
    let answer = match &inner.model {
        Some(model) => model.chat(&req).await,
        None => OfflineModel.reply(&req),
    };
    match answer {
        Ok(r) => completion(&model, r.content, r.tool_calls),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            json!({"error": {"message": e.to_string(), "type": "invalid_request_error"}})
                .to_string(),
        )
            .into_response(),
    }
}

fn completion(model: &str, content: Option<String>, calls: Vec<ToolCall>) -> Response {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
        .collect();
    let mut message = json!({"role": "assistant", "content": content});
    if !tool_calls.is_empty() {
        message["tool_calls"] = json!(tool_calls);
    }
    let finish = if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    let body = json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}
