//! A fake OpenAI-compatible HTTP server for tests, bound to 127.0.0.1:0.

#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::unwrap_used)] // test support: a failure here should panic the test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use argent_llm::{
    ChatMessage, ChatRequest, OpenAiConfig, OpenAiModel, RetryPolicy, ToolDefinition,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// What the fake server answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Json(u16, Value),
    Text(u16, String),
    WithHeader(&'static str, String, Box<Reply>),
    /// Wait this long, then answer.
    Delay(Duration, Box<Reply>),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

type Behavior = dyn Fn(usize) -> Reply + Send + Sync;

struct ServerState {
    received: Mutex<Vec<Received>>,
    behavior: Box<Behavior>,
}

pub struct FakeServer {
    /// `http://127.0.0.1:PORT`
    pub root: String,
    /// `http://127.0.0.1:PORT/v1`
    pub base_url: String,
    state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    /// Start a server whose answer to the n-th request (from 0) is `behavior(n)`.
    pub async fn start(behavior: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ServerState {
            received: Mutex::new(Vec::new()),
            behavior: Box::new(behavior),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeServer {
            root: format!("http://{addr}"),
            base_url: format!("http://{addr}/v1"),
            state,
            task,
        }
    }

    /// Requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn hits(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(state): State<Arc<ServerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = {
        let mut received = state.received.lock().unwrap();
        received.push(Received {
            method,
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        received.len() - 1
    };
    let mut reply = (state.behavior)(n);
    let mut extra: Vec<(&'static str, String)> = Vec::new();
    loop {
        match reply {
            Reply::Delay(d, inner) => {
                tokio::time::sleep(d).await;
                reply = *inner;
            }
            Reply::WithHeader(name, value, inner) => {
                extra.push((name, value));
                reply = *inner;
            }
            Reply::Json(status, v) => {
                return respond(status, "application/json", v.to_string(), extra);
            }
            Reply::Text(status, t) => return respond(status, "text/plain", t, extra),
        }
    }
}

fn respond(
    status: u16,
    content_type: &str,
    body: String,
    extra: Vec<(&'static str, String)>,
) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, content_type.to_string())],
        body,
    )
        .into_response();
    for (name, value) in extra {
        resp.headers_mut().insert(name, value.parse().unwrap());
    }
    resp
}

/// A chat.completion body with this message and finish reason.
pub fn completion(message: Value, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "fake-model-2024",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    })
}

pub fn text_completion(text: &str) -> Value {
    completion(json!({"role": "assistant", "content": text}), "stop")
}

/// A completion calling tools given as (id, name, raw arguments).
pub fn tool_completion(calls: &[(&str, &str, &str)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
        })
        .collect();
    completion(
        json!({"role": "assistant", "content": null, "tool_calls": calls}),
        "tool_calls",
    )
}

pub fn openai_error(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// A client for `server` with a tiny timeout/backoff so tests stay fast.
pub fn model_for(server: &FakeServer, max_retries: u32) -> OpenAiModel {
    OpenAiModel::new(config_for(server, max_retries)).unwrap()
}

pub fn config_for(server: &FakeServer, max_retries: u32) -> OpenAiConfig {
    OpenAiConfig::new("gpt-4o-mini")
        .with_base_url(&server.base_url)
        .with_api_key("test-key")
        .with_timeout(Duration::from_secs(5))
        .with_retry(RetryPolicy::new(
            max_retries,
            Duration::from_millis(1),
            Duration::from_millis(5),
        ))
}

pub fn read_aging_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"customer_id": {"type": "string", "description": "Customer id, e.g. C-1"}},
        "required": ["customer_id"],
        "additionalProperties": false
    })
}

pub fn log_promise_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "customer_id": {"type": "string"},
            "amount_minor": {"type": "integer", "minimum": 1},
            "due_date": {"type": "string", "format": "date"}
        },
        "required": ["customer_id", "amount_minor", "due_date"]
    })
}

/// A realistic first request of a collections run.
pub fn collections_request(inbound: &str) -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::system(
            "You are argent, a collections assistant for ACME Supplies. Be courteous and factual.",
        ),
        ChatMessage::user(inbound),
    ])
    .with_tools(vec![
        ToolDefinition::new(
            "read_aging",
            "Read the aging buckets of a customer",
            read_aging_schema(),
        ),
        ToolDefinition::new(
            "log_promise",
            "Record a promise to pay",
            log_promise_schema(),
        ),
    ])
    .with_temperature(0.2)
    .with_max_tokens(256)
}
