//! Record/replay round trips: a run recorded against the real provider (fake
//! server on 127.0.0.1) replays offline, byte-stable cassettes, and loud
//! failures on mismatch, exhaustion and unplayed exchanges.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use argent_llm::{
    Cassette, ChatMessage, ChatModel, ChatRequest, ChatResponse, LlmError, Recorder, Replayer,
    ScriptedModel, ToolCall,
};
use common::*;
use serde_json::Value;

/// Truncated JSON, as a model sometimes produces it.
const MALFORMED: &str =
    r#"{"customer_id": "C-1", "amount_minor": 120050, "due_date": "2025-07-04""#;

/// What the planner loop does, in miniature: ask, answer each tool call (a
/// malformed argument string becomes an error result), ask again.
async fn two_step_run(model: &dyn ChatModel, inbound: &str) -> Result<Vec<ChatResponse>, LlmError> {
    let mut req = collections_request(inbound);
    let first = model.chat(&req).await?;
    req.messages.push(first.to_message());
    for call in &first.tool_calls {
        let result = match serde_json::from_str::<Value>(&call.arguments) {
            Ok(_) => "ok: promise logged".to_string(),
            // No parser wording in the text: it is part of the recorded request.
            Err(_) => "error: arguments are not valid JSON; send the call again".to_string(),
        };
        req.messages
            .push(ChatMessage::tool_result(&call.id, result));
    }
    let second = model.chat(&req).await?;
    Ok(vec![first, second])
}

const INBOUND: &str = "We will pay 1,200.50 on July 4th.";

fn scripted_run_model() -> ScriptedModel {
    let m = ScriptedModel::new();
    m.push_response(
        ChatResponse::tool_calls(vec![ToolCall::new("call_1", "log_promise", MALFORMED)])
            .with_usage(180, 30)
            .with_model("gpt-4o-mini-2024-07-18"),
    );
    m.push_response(
        ChatResponse::text("Thank you. I have noted your promise to pay 1,200.50 on July 4th.")
            .with_usage(240, 22)
            .with_model("gpt-4o-mini-2024-07-18"),
    );
    m
}

async fn record_scripted(path: &Path) -> Vec<ChatResponse> {
    let recorder = Recorder::new(Arc::new(scripted_run_model()), path).expect("start recording");
    let out = two_step_run(&recorder, INBOUND)
        .await
        .expect("scripted run succeeds");
    assert_eq!(recorder.exchange_count(), 2);
    out
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[tokio::test]
async fn a_run_recorded_against_the_real_provider_replays_offline() {
    let server = FakeServer::start(|n| {
        if n == 0 {
            Reply::Json(
                200,
                tool_completion(&[("call_1", "log_promise", MALFORMED)]),
            )
        } else {
            Reply::Json(
                200,
                text_completion("Thank you, I have noted your promise."),
            )
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cassettes/promise.cassette.json");

    let recorder = Recorder::new(Arc::new(model_for(&server, 0)), &path).unwrap();
    assert!(recorder.name().contains("recording to"));
    let recorded = two_step_run(&recorder, INBOUND).await.unwrap();
    assert_eq!(server.hits(), 2);
    assert_eq!(recorded[0].tool_calls[0].arguments, MALFORMED);
    // The second request told the model its arguments were malformed.
    let second_request = &server.received()[1].body;
    assert!(
        second_request["messages"][3]["content"]
            .as_str()
            .unwrap()
            .starts_with("error: arguments are not valid JSON")
    );
    drop(server); // from here on, nothing listens: replay must be offline

    let replayer = Replayer::open(&path).unwrap();
    assert!(
        replayer
            .name()
            .starts_with("replay of gpt-4o-mini at http://127.0.0.1:"),
        "{}",
        replayer.name()
    );
    let replayed = two_step_run(&replayer, INBOUND).await.unwrap();
    assert_eq!(replayed, recorded);
    assert_eq!(
        replayed[0].tool_calls[0].arguments, MALFORMED,
        "raw arguments survive the cassette"
    );
    assert_eq!(replayer.played(), 2);
    replayer.finish().unwrap();

    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(file["cassette"]["format"], "argent-llm-cassette");
    assert_eq!(file["cassette"]["version"], 1);
    assert_eq!(file["exchanges"].as_array().unwrap().len(), 2);
    assert_eq!(
        file["exchanges"][0]["response"]["tool_calls"][0]["arguments"],
        MALFORMED
    );
    assert_eq!(
        file["exchanges"][1]["request"]["messages"][3]["role"],
        "tool"
    );
    assert_eq!(
        file["exchanges"][1]["response"]["usage"]["prompt_tokens"],
        12
    );
}

#[tokio::test]
async fn recordings_are_byte_stable_and_match_the_committed_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    record_scripted(&a).await;
    record_scripted(&b).await;
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(&b).unwrap(),
        "same run, same bytes"
    );

    let golden = fixture("promise_to_pay.cassette.json");
    if std::env::var_os("ARGENT_UPDATE_FIXTURES").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with ARGENT_UPDATE_FIXTURES=1 to create it",
            golden.display()
        )
    });
    assert_eq!(
        text, expected,
        "the cassette format changed; if intended, re-run with ARGENT_UPDATE_FIXTURES=1 and review the diff"
    );
}

#[tokio::test]
async fn the_committed_fixture_replays() {
    let replayer = Replayer::open(fixture("promise_to_pay.cassette.json")).unwrap();
    let out = two_step_run(&replayer, INBOUND).await.unwrap();
    assert_eq!(
        out[0].tool_calls,
        vec![ToolCall::new("call_1", "log_promise", MALFORMED)]
    );
    assert_eq!(
        out[1].content.as_deref(),
        Some("Thank you. I have noted your promise to pay 1,200.50 on July 4th.")
    );
    assert_eq!(out[1].usage.total(), 262);
    replayer.finish().unwrap();
}

#[tokio::test]
async fn a_changed_prompt_fails_replay_with_the_exchange_and_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.json");
    record_scripted(&path).await;
    let replayer = Replayer::open(&path).unwrap();

    let err = two_step_run(&replayer, "We will pay 1,500.00 on July 4th.")
        .await
        .unwrap_err();
    let LlmError::CassetteMismatch { index, diff, .. } = &err else {
        panic!("expected a mismatch, got {err:?}");
    };
    assert_eq!(*index, 0);
    assert!(
        diff.contains("message[1] (user) content: differs at character 14"),
        "{diff}"
    );
    assert!(
        diff.contains("1,200.50") && diff.contains("1,500.00"),
        "{diff}"
    );
    let text = err.to_string();
    assert!(
        text.contains("run.json") && text.contains("request #0"),
        "{text}"
    );
    assert!(text.contains("re-record"), "{text}");

    // The position did not advance: the recorded run still replays.
    assert_eq!(replayer.played(), 0);
    two_step_run(&replayer, INBOUND).await.unwrap();
}

#[tokio::test]
async fn a_changed_tool_set_or_history_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.json");
    record_scripted(&path).await;

    // Tool dropped from the request.
    let replayer = Replayer::open(&path).unwrap();
    let mut req = collections_request(INBOUND);
    std::sync::Arc::make_mut(&mut req.tools).truncate(1);
    let err = replayer.chat(&req).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("tool names: recorded [read_aging, log_promise], now [read_aging]"),
        "{err}"
    );

    // Second request lost the tool result: count and position of the difference.
    let replayer = Replayer::open(&path).unwrap();
    let mut req = collections_request(INBOUND);
    let first = replayer.chat(&req).await.unwrap();
    req.messages.push(first.to_message());
    let err = replayer.chat(&req).await.unwrap_err();
    let LlmError::CassetteMismatch { index, diff, .. } = &err else {
        panic!("expected a mismatch, got {err:?}");
    };
    assert_eq!(*index, 1);
    assert!(diff.contains("message count: recorded 4, now 3"), "{diff}");
    assert!(
        diff.contains("message[3] (tool) only in the recording"),
        "{diff}"
    );
}

#[tokio::test]
async fn an_extra_call_exhausts_the_cassette_and_a_short_run_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.json");
    record_scripted(&path).await;

    let replayer = Replayer::open(&path).unwrap();
    two_step_run(&replayer, INBOUND).await.unwrap();
    let err = replayer
        .chat(&ChatRequest::new(vec![ChatMessage::user("one more")]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::CassetteExhausted { recorded: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("holds 2 exchange(s)"), "{err}");

    let short = Replayer::open(&path).unwrap();
    short.chat(&collections_request(INBOUND)).await.unwrap();
    assert_eq!(short.remaining(), 1);
    let err = short.finish().unwrap_err();
    assert!(
        err.to_string().contains("only 1 of 2 recorded exchange(s)"),
        "{err}"
    );
}

#[tokio::test]
async fn errors_are_recorded_passed_through_and_replayed() {
    let inner = ScriptedModel::new();
    let timeout = LlmError::Timeout {
        endpoint: "http://127.0.0.1:9/v1/chat/completions".into(),
        timeout: Duration::from_secs(30),
        attempts: 4,
    };
    inner
        .push_error(timeout.clone())
        .push_text("second try worked");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errors.json");
    let recorder = Recorder::new(Arc::new(inner), &path).unwrap();
    let req = collections_request(INBOUND);

    assert_eq!(
        recorder.chat(&req).await.unwrap_err(),
        timeout,
        "passed through unchanged"
    );
    assert_eq!(
        Cassette::load(&path).unwrap().exchanges.len(),
        1,
        "written after each exchange"
    );
    recorder.chat(&req).await.unwrap();

    let cassette = Cassette::load(&path).unwrap();
    let recorded = cassette.exchanges[0].error.as_ref().unwrap();
    assert_eq!(recorded.kind, "timeout");
    assert_eq!(recorded.message, timeout.to_string());

    let replayer = Replayer::open(&path).unwrap();
    let err = replayer.chat(&req).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::Replayed { index: 0, kind, message, .. } if kind == "timeout" && *message == timeout.to_string()),
        "{err:?}"
    );
    let ok = replayer.chat(&req).await.unwrap();
    assert_eq!(ok.content.as_deref(), Some("second try worked"));
    replayer.finish().unwrap();
}

#[tokio::test]
async fn an_unwritable_cassette_path_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, "x").unwrap();
    let err = Recorder::new(Arc::new(ScriptedModel::new()), file.join("run.json")).unwrap_err();
    assert!(matches!(&err, LlmError::Cassette { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-directory"), "{err}");

    let err = Replayer::open(dir.path().join("missing.json")).unwrap_err();
    assert!(
        err.to_string().contains("cannot read the cassette"),
        "{err}"
    );
}
