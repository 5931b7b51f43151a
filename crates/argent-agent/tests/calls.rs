//! Issue #12 §1, calls: the agent's `request_call` is judged by the pack's call-frequency
//! rule on the calls collectors logged (attempts and conversations), and an allowed one
//! becomes a call task for a collector.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use argent_agent::{Agent, AgentConfig, CallStatus, Clock, RunOutcome, Trigger};
use argent_llm::{ScriptedModel, ToolCall};
use argent_store::testkit::TestStore;
use argent_store::{CallTaskStatus, Store};

/// 12:00 in Chicago, where Ann lives.
fn now() -> DateTime<Utc> {
    "2026-11-20T18:00:00Z".parse().unwrap()
}

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

async fn run_request_call(store: &Store) -> RunOutcome {
    let model = Arc::new(ScriptedModel::new());
    let args = json!({
        "customer_id": "C-ANN",
        "reason": "Two emails unanswered; a person should try the phone.",
        "script": "This is a debt collector calling about your account. Can we agree a payment date?"
    });
    model.push_tool_calls(vec![ToolCall::new(
        "call_phone",
        "request_call",
        args.to_string(),
    )]);
    model.push_text("Done.");
    let agent = Agent::from_dirs(
        store.clone(),
        model,
        &repo("prompts"),
        &repo("policies"),
        AgentConfig {
            clock: Clock::Fixed(now()),
            ..Default::default()
        },
    )
    .unwrap();
    agent
        .start(
            "C-ANN",
            Trigger::Inbound {
                from: "ann@mail.example".into(),
                subject: "Re: your account".into(),
                body: "I will look at it.".into(),
                received_at: now(),
                message_id: None,
                references: Vec::new(),
                mail: None,
            },
        )
        .await
        .unwrap()
}

async fn log_calls(store: &Store, hours_ago: &[i64], conversation: bool) {
    for h in hours_ago {
        store
            .log_call(
                &format!("log-{h}"),
                "C-ANN",
                now() - Duration::hours(*h),
                conversation,
                None,
                "carol",
                None,
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_eighth_call_attempt_in_seven_days_is_refused_by_the_pack_rule() {
    for ts in TestStore::all().await.unwrap() {
        let store = &ts.store;
        store
            .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
            .await
            .unwrap();
        // Seven attempts in the last week (the oldest 6 days 20 hours ago).
        log_calls(store, &[4, 20, 44, 68, 92, 116, 164], false).await;
        let out = run_request_call(store).await;
        assert_eq!(out.calls.len(), 1, "{}: {:?}", ts.label, out.calls);
        assert_eq!(out.calls[0].status, CallStatus::Refused, "{:?}", out.calls);
        assert_eq!(out.calls[0].rules, vec!["us.call-frequency".to_string()]);
        assert!(
            out.calls[0].model_text.contains("7 contact attempts"),
            "{}",
            out.calls[0].model_text
        );
        assert!(store.call_tasks(None, false).await.unwrap().is_empty());
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_call_within_seven_days_of_a_conversation_is_refused_and_later_ones_are_tasks() {
    for ts in TestStore::all().await.unwrap() {
        let store = &ts.store;
        store
            .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
            .await
            .unwrap();
        // One conversation three days ago.
        log_calls(store, &[72], true).await;
        let out = run_request_call(store).await;
        assert_eq!(
            out.calls[0].status,
            CallStatus::Refused,
            "{}: {:?}",
            ts.label,
            out.calls
        );
        assert_eq!(out.calls[0].rules, vec!["us.call-frequency".to_string()]);
        assert!(out.calls[0].model_text.contains("conversation"));
        assert!(store.call_tasks(None, false).await.unwrap().is_empty());
        ts.cleanup().await;
    }
    for ts in TestStore::all().await.unwrap() {
        let store = &ts.store;
        store
            .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
            .await
            .unwrap();
        // A conversation eight days ago and six attempts since: a seventh attempt is fine.
        log_calls(store, &[192], true).await;
        log_calls(store, &[4, 20, 44, 68, 92, 116], false).await;
        let out = run_request_call(store).await;
        assert_eq!(
            out.calls[0].status,
            CallStatus::Executed,
            "{}: {:?}",
            ts.label,
            out.calls
        );
        let tasks = store.call_tasks(Some("C-ANN"), true).await.unwrap();
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        assert_eq!(tasks[0].status, CallTaskStatus::Open);
        assert!(
            tasks[0].call_id.ends_with("/call_phone"),
            "{}",
            tasks[0].call_id
        );
        assert!(tasks[0].script.contains("debt collector"));
        ts.cleanup().await;
    }
}
