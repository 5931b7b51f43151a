//! Issue #17, "No lost work": the real `OpenAiModel` (async-openai) against a scripted
//! OpenAI-compatible server on 127.0.0.1 that answers what a small local model behind a
//! strict server (llama.cpp) answers: tool-call arguments that are not JSON, HTTP 500s
//! naming them, unknown tool names, and an endpoint that goes down. Every run ends either
//! finished with what it executed, or `needs_person` with a collector's task: never lost.
//!
//! The server is strict like llama.cpp's: a request whose history carries tool-call
//! arguments that are not JSON is refused with HTTP 500 ("Failed to parse tool call
//! arguments as JSON") without consuming the script.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use argent_agent::{Agent, AgentConfig, CallStatus, Clock, RunOutcome, Trigger};
use argent_core::{Role, TaskStatus};
use argent_llm::{OpenAiConfig, OpenAiModel, RetryPolicy};
use argent_store::testkit::TestStore;
use argent_store::{AuditFilter, AuditVerification, RunStatus, Store};

const LLAMA_PARSE_ERROR: &str = "Failed to parse tool call arguments as JSON: [json.exception.parse_error.101] parse error at line 1, column 27: syntax error while parsing object - unexpected end of input";

/// One scripted answer: an HTTP status and its JSON body.
type Answer = (u16, Value);

struct Inner {
    script: Mutex<VecDeque<Answer>>,
    /// Every request body received, in order.
    requests: Mutex<Vec<Value>>,
}

struct ScriptedServer {
    base_url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedServer {
    async fn start(script: Vec<Answer>) -> ScriptedServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            script: Mutex::new(script.into()),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ScriptedServer {
            base_url: format!("http://{addr}/v1"),
            inner,
            task,
        }
    }

    fn requests(&self) -> Vec<Value> {
        self.inner.requests.lock().unwrap().clone()
    }

    fn left(&self) -> usize {
        self.inner.script.lock().unwrap().len()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Tool-call arguments in the request's history that a strict server cannot parse.
fn broken_history(body: &Value) -> bool {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["tool_calls"].as_array().into_iter().flatten())
        .any(|c| {
            c["function"]["arguments"]
                .as_str()
                .is_none_or(|a| serde_json::from_str::<Value>(a).is_err())
        })
}

async fn handle(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.requests.lock().unwrap().push(body.clone());
    let (status, answer) = if broken_history(&body) {
        (
            500,
            json!({"error": {"code": 500, "message": LLAMA_PARSE_ERROR, "type": "server_error"}}),
        )
    } else {
        inner.script.lock().unwrap().pop_front().unwrap_or((
            500,
            json!({"error": {"message": "the test's script is exhausted"}}),
        ))
    };
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        answer.to_string(),
    )
        .into_response()
}

fn completion(content: Option<&str>, calls: &[(&str, &str, &str)]) -> Answer {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
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
    (
        200,
        json!({
            "id": "chatcmpl-scripted", "object": "chat.completion", "created": 1_700_000_000,
            "model": "small-local",
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }),
    )
}

fn error(status: u16, message: &str) -> Answer {
    (
        status,
        json!({"error": {"code": status, "message": message, "type": "server_error"}}),
    )
}

fn escalate_args() -> String {
    json!({"customer_id": "C-ANN", "reason": "The customer asked for a person.", "urgency": "normal"})
        .to_string()
}

fn now() -> DateTime<Utc> {
    "2026-11-20T18:00:00Z".parse().unwrap()
}

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

async fn agent(store: &Store, server: &ScriptedServer) -> Agent {
    let config = OpenAiConfig::new("small-local")
        .with_base_url(server.base_url.clone())
        .with_timeout(Duration::from_secs(10))
        .with_retry(RetryPolicy::new(
            1,
            Duration::from_millis(1),
            Duration::from_millis(5),
        ));
    let model = Arc::new(OpenAiModel::new(config).unwrap());
    Agent::from_dirs(
        store.clone(),
        model,
        &repo("prompts"),
        &repo("policies"),
        AgentConfig {
            clock: Clock::Fixed(now()),
            ..Default::default()
        },
    )
    .unwrap()
}

const BODY: &str = "I want to talk to a person about my invoice.";

fn inbound() -> Trigger {
    Trigger::Inbound {
        from: "ann@mail.example".into(),
        subject: "Help".into(),
        body: BODY.into(),
        received_at: now(),
        message_id: None,
        references: Vec::new(),
        mail: None,
    }
}

async fn events(store: &Store, run_id: &str, kind: &str) -> Vec<argent_store::AuditEvent> {
    store
        .audit_events(&AuditFilter {
            run_id: Some(run_id.into()),
            kind: Some(kind.into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

/// Never lost: a run ends finished with an executed call, or needs a person and a
/// collector's open task (with the customer's message and the run) exists for it.
async fn assert_not_lost(store: &Store, out: &RunOutcome, label: &str) {
    let stored = store.run(&out.run_id).await.unwrap();
    assert_eq!(stored.status, out.status, "{label}");
    match out.status {
        RunStatus::Finished => assert!(
            out.calls.iter().any(|c| c.status == CallStatus::Executed),
            "{label}: finished without executing: {out:?}"
        ),
        RunStatus::NeedsPerson => {
            let id = out
                .task_id
                .clone()
                .expect("a needs_person run names its task");
            let task = store.task(&id).await.unwrap();
            assert_eq!(task.owner_role, Role::Collector, "{label}");
            assert_eq!(task.status, TaskStatus::Open, "{label}");
            assert_eq!(task.customer_id, "C-ANN", "{label}");
            assert_eq!(task.source, out.run_id, "{label}");
            assert!(task.body.contains(BODY), "{label}: {}", task.body);
            assert!(task.body.contains(&out.run_id), "{label}: {}", task.body);
            let why = out.ended_because.as_deref().unwrap();
            assert!(task.body.contains(why), "{label}: {}", task.body);
            // The task committed with the run's end: its events are in the run's trail.
            let finished = events(store, &out.run_id, "run_finished").await;
            assert_eq!(finished.len(), 1, "{label}");
            assert_eq!(finished[0].payload["task_id"], json!(id), "{label}");
            let created = store
                .audit_events(&AuditFilter {
                    customer_id: Some("C-ANN".into()),
                    kind: Some("task.created".into()),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert!(
                created.iter().any(|e| e.payload.to_string().contains(&id)),
                "{label}: {created:?}"
            );
        }
        other => panic!("{label}: run {} ended {other:?}: lost", out.run_id),
    }
}

/// The model's arguments are not JSON: the call is invalid and the error goes back to the
/// model, but the history sent next carries `{}` in their place, so the strict server
/// accepts it; the model then calls validly and the run finishes.
#[tokio::test]
async fn broken_arguments_are_not_sent_back_verbatim() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        ts.store
            .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
            .await
            .unwrap();
        let broken = r#"{"customer_id": "C-ANN", "reason": "needs a person"#;
        let server = ScriptedServer::start(vec![
            completion(None, &[("call_1", "escalate", broken)]),
            completion(None, &[("call_2", "escalate", &escalate_args())]),
            completion(Some("I have passed this to a colleague."), &[]),
        ])
        .await;
        let out = agent(&ts.store, &server)
            .await
            .start("C-ANN", inbound())
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Finished, "{label}: {out:?}");
        let statuses: Vec<CallStatus> = out.calls.iter().map(|c| c.status).collect();
        assert_eq!(
            statuses,
            [CallStatus::Invalid, CallStatus::Executed],
            "{label}"
        );
        // The transcript keeps what the model wrote.
        assert_eq!(out.calls[0].arguments, broken, "{label}");
        let requests = server.requests();
        assert_eq!(requests.len(), 3, "{label}: no request was refused");
        let second = &requests[1]["messages"];
        let assistant = second
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "assistant")
            .unwrap();
        assert_eq!(
            assistant["tool_calls"][0]["function"]["arguments"], "{}",
            "{label}"
        );
        let result = second
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "tool")
            .unwrap();
        assert!(
            result["content"]
                .as_str()
                .unwrap()
                .contains("invalid_arguments"),
            "{label}: {result}"
        );
        assert!(!second.to_string().contains("needs a person\""), "{label}");
        assert_not_lost(&ts.store, &out, label).await;
        ts.cleanup().await;
    }
}

/// A 500 naming unparseable arguments is not retried verbatim: the model gets a repair
/// turn (the error as a note, parallel tool calls off), audited, and finishes the run.
#[tokio::test]
async fn a_500_naming_the_arguments_gets_a_repair_turn() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        ts.store
            .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
            .await
            .unwrap();
        let server = ScriptedServer::start(vec![
            error(500, LLAMA_PARSE_ERROR),
            completion(None, &[("call_1", "escalate", &escalate_args())]),
            completion(Some("Passed to a colleague."), &[]),
        ])
        .await;
        let out = agent(&ts.store, &server)
            .await
            .start("C-ANN", inbound())
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Finished, "{label}: {out:?}");
        let requests = server.requests();
        // One request per answer: the 500 was not retried as it was.
        assert_eq!(requests.len(), 3, "{label}");
        assert!(requests[0].get("parallel_tool_calls").is_none(), "{label}");
        let repaired = &requests[1];
        assert_eq!(repaired["parallel_tool_calls"], false, "{label}");
        let last = repaired["messages"].as_array().unwrap().last().unwrap();
        assert_eq!(last["role"], "user", "{label}");
        let note = last["content"].as_str().unwrap();
        assert!(
            note.contains("Failed to parse tool call arguments"),
            "{note}"
        );
        assert!(note.contains("not from the customer"), "{note}");
        let repairs = events(&ts.store, &out.run_id, "model_repair").await;
        assert_eq!(repairs.len(), 1, "{label}");
        assert_eq!(repairs[0].payload["kind"], "model_output", "{label}");
        assert_eq!(repairs[0].payload["repair"], 1, "{label}");
        assert_not_lost(&ts.store, &out, label).await;
        assert!(matches!(
            ts.store.audit_verify().await.unwrap(),
            AuditVerification::Intact { .. }
        ));
        ts.cleanup().await;
    }
}

/// The server keeps refusing what the model produces, an unknown tool name included:
/// two repairs (each audited), then the run needs a person; no request was repeated
/// verbatim, and the collector's task carries the customer's message, the run and the
/// error. The run's checkpoint counts the repairs.
#[tokio::test]
async fn repeated_refusals_end_in_needs_person_with_a_task() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        ts.store
            .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
            .await
            .unwrap();
        let server = ScriptedServer::start(vec![
            error(500, LLAMA_PARSE_ERROR),
            error(400, "Unknown tool 'send_mail' in the model's tool call"),
            error(500, LLAMA_PARSE_ERROR),
            completion(Some("never reached"), &[]),
        ])
        .await;
        let out = agent(&ts.store, &server)
            .await
            .start("C-ANN", inbound())
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::NeedsPerson, "{label}: {out:?}");
        assert_eq!(server.requests().len(), 3, "{label}");
        assert_eq!(server.left(), 1, "{label}");
        let why = out.ended_because.clone().unwrap();
        assert!(why.starts_with(argent_agent::MODEL_FAILED), "{why}");
        assert!(why.contains("Failed to parse tool call arguments"), "{why}");
        assert_eq!(
            events(&ts.store, &out.run_id, "model_repair").await.len(),
            2
        );
        let errors = events(&ts.store, &out.run_id, "model_error").await;
        assert_eq!(errors.len(), 1, "{label}");
        assert_eq!(errors[0].payload["repairs"], 2, "{label}");
        let stored = ts.store.run(&out.run_id).await.unwrap();
        assert_eq!(stored.state["repairs"], 2, "{label}: {}", stored.state);
        let listed = ts.store.runs(Some(RunStatus::NeedsPerson)).await.unwrap();
        assert_eq!(listed.len(), 1, "{label}");
        assert_not_lost(&ts.store, &out, label).await;
        ts.cleanup().await;
    }
}

/// An unknown tool name in a 200 answer is an invalid call shown to the model; the run
/// goes on and finishes with what the model then does.
#[tokio::test]
async fn an_unknown_tool_is_an_invalid_call_and_the_run_goes_on() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        ts.store
            .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
            .await
            .unwrap();
        let server = ScriptedServer::start(vec![
            completion(None, &[("call_1", "send_mail", r#"{"to": "ann"}"#)]),
            completion(None, &[("call_2", "escalate", &escalate_args())]),
            completion(Some("Done."), &[]),
        ])
        .await;
        let out = agent(&ts.store, &server)
            .await
            .start("C-ANN", inbound())
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Finished, "{label}: {out:?}");
        assert_eq!(out.calls[0].status, CallStatus::Invalid, "{label}");
        assert_eq!(out.calls[1].status, CallStatus::Executed, "{label}");
        assert_not_lost(&ts.store, &out, label).await;
        ts.cleanup().await;
    }
}

/// The endpoint goes down after a call took effect: transport-class errors keep their
/// backoff (retried), and the run needs a person whose task lists the executed call.
#[tokio::test]
async fn a_model_that_goes_down_after_acting_leaves_a_task_listing_what_it_did() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        ts.store
            .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
            .await
            .unwrap();
        let server = ScriptedServer::start(vec![
            completion(None, &[("call_1", "escalate", &escalate_args())]),
            error(503, "loading model"),
            error(503, "loading model"),
        ])
        .await;
        let out = agent(&ts.store, &server)
            .await
            .start("C-ANN", inbound())
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::NeedsPerson, "{label}: {out:?}");
        // The 503 was retried once (the retry policy), not repaired.
        assert_eq!(server.requests().len(), 3, "{label}");
        assert!(
            events(&ts.store, &out.run_id, "model_repair")
                .await
                .is_empty()
        );
        assert_eq!(out.calls.len(), 1, "{label}");
        assert_eq!(out.calls[0].status, CallStatus::Executed, "{label}");
        assert_eq!(out.tokens, 120, "{label}");
        let task = ts
            .store
            .task(out.task_id.as_deref().unwrap())
            .await
            .unwrap();
        assert!(task.body.contains("- escalate executed"), "{}", task.body);
        assert_not_lost(&ts.store, &out, label).await;
        ts.cleanup().await;
    }
}
