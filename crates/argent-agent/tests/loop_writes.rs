//! What the planner loop writes per step: one writer round trip per model step on SQLite,
//! delta checkpoints (the conversation saved message by message), and resuming from them
//! (and from a checkpoint saved whole, before delta checkpoints) on both backends.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

use argent_agent::{Agent, AgentConfig, CallStatus, Clock, RunOutcome, Trigger};
use argent_llm::{
    ChatMessage, ChatModel, ChatRequest, ChatResponse, LlmError, ScriptedModel, ToolCall,
};
use argent_store::testkit::TestStore;
use argent_store::{AuditFilter, AuditVerification, RunRecord, RunStatus, Store};

fn now() -> DateTime<Utc> {
    "2026-11-20T18:00:00Z".parse().unwrap()
}

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

fn agent(store: &Store, model: Arc<dyn ChatModel>) -> Agent {
    let config = AgentConfig {
        clock: Clock::Fixed(now()),
        ..Default::default()
    };
    Agent::from_dirs(
        store.clone(),
        model,
        &repo("prompts"),
        &repo("policies"),
        config,
    )
    .unwrap()
}

async fn import(store: &Store) {
    store
        .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
        .await
        .unwrap();
}

fn step() -> Trigger {
    Trigger::Step {
        step: "overdue_notice".into(),
    }
}

fn aging() -> ToolCall {
    ToolCall::new(
        "call_1",
        "read_aging",
        json!({"customer_id": "C-ANN"}).to_string(),
    )
}

/// Answers the first request with a `read_aging` call and never answers the second (a
/// process that dies while its second model call is in flight).
struct HangsOnSecond(AtomicUsize);

#[async_trait]
impl ChatModel for HangsOnSecond {
    fn name(&self) -> String {
        "hangs on the second call".into()
    }

    async fn chat(&self, _req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            return Ok(ChatResponse::tool_calls(vec![aging()]));
        }
        std::future::pending().await
    }
}

/// Two episodes for C-ANN whose model answers `calls` and then "Done."; the second's
/// outcome and its writer round trips (the first warms the writer: the first write after
/// opening reads the audit head).
async fn second_episode(store: &Store, calls: Vec<ToolCall>) -> (Agent, RunOutcome, u64) {
    let model = ScriptedModel::new();
    for _ in 0..2 {
        model.push_tool_calls(calls.clone());
        model.push_text("Done.");
    }
    let agent = agent(store, Arc::new(model));
    agent.start("C-ANN", step()).await.unwrap();
    let before = store.writer_round_trips().await.unwrap();
    let out = agent.start("C-ANN", step()).await.unwrap();
    let trips = store.writer_round_trips().await.unwrap() - before;
    (agent, out, trips)
}

async fn runs_state(store: &Store, id: &str) -> RunRecord {
    store.run(id).await.unwrap()
}

/// An episode (model call -> read_aging -> model call -> final) is three writer round trips
/// on SQLite: the run's creation (before the first model call, so a crash during it
/// leaves a run to resume), the first step (its model call's event, the call, its audit
/// events and the checkpoint), and the last answer with the run's end.
#[tokio::test]
async fn an_episode_is_one_writer_round_trip_per_model_step() {
    let ts = TestStore::sqlite().await.unwrap();
    import(&ts.store).await;
    let (agent, out, trips) = second_episode(&ts.store, vec![aging()]).await;
    assert_eq!(out.status, RunStatus::Finished);
    assert_eq!(out.steps, 2);
    assert_eq!(out.calls.len(), 1);
    assert_eq!(out.calls[0].status, CallStatus::Executed);
    assert_eq!(trips, 3, "run start, step 1, step 2 with the finish");

    // The checkpoint is the conversation saved message by message, and a small header.
    let run = runs_state(&ts.store, &out.run_id).await;
    assert_eq!(
        run.state,
        json!({"delta": {"messages": 5}, "invalid_turns": 0})
    );
    let saved = ts.store.run_messages(&out.run_id).await.unwrap();
    let idx: Vec<i64> = saved.iter().map(|m| m.idx).collect();
    assert_eq!(idx, [0, 1, 2, 3, 4]);
    let roles: Vec<&str> = saved
        .iter()
        .map(|m| m.message["role"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "assistant"]);
    // Only the tool result carries an outcome: the call's.
    let outcomes: Vec<bool> = saved.iter().map(|m| m.outcome.is_some()).collect();
    assert_eq!(outcomes, [false, false, false, true, false]);
    assert_eq!(saved[3].outcome.as_ref().unwrap()["tool"], "read_aging");
    // A resumed finished run rebuilds the same outcome from them.
    let again = agent.resume(&out.run_id).await.unwrap();
    assert_eq!(again.calls, out.calls);
    assert_eq!(again.final_text.as_deref(), Some("Done."));
    ts.cleanup().await;
}

/// A turn that reads the aging and then acts commits once: the reading (which writes
/// nothing another call's judgment reads) is recorded in the next call's transaction.
/// Both calls, their audit events and the checkpoint are there after the commit, in order.
#[tokio::test]
async fn a_reading_commits_with_the_next_call_of_its_turn() {
    let ts = TestStore::sqlite().await.unwrap();
    import(&ts.store).await;
    let escalate = || {
        ToolCall::new(
            "call_2",
            "escalate",
            json!({"customer_id": "C-ANN", "reason": "Customer asked for a person.", "urgency": "normal"})
                .to_string(),
        )
    };
    let (_, out, trips) = second_episode(&ts.store, vec![aging(), escalate()]).await;
    assert_eq!(out.status, RunStatus::Finished);
    let calls: Vec<(&str, CallStatus)> = out
        .calls
        .iter()
        .map(|c| (c.tool.as_str(), c.status))
        .collect();
    assert_eq!(
        calls,
        [
            ("read_aging", CallStatus::Executed),
            ("escalate", CallStatus::Executed)
        ]
    );
    assert_eq!(
        trips, 3,
        "run start, the turn's two calls together, the finish"
    );
    let saved = ts.store.run_messages(&out.run_id).await.unwrap();
    let tools: Vec<&str> = saved
        .iter()
        .filter_map(|m| m.outcome.as_ref())
        .map(|o| o["tool"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(tools, ["read_aging", "escalate"]);
    let events = ts
        .store
        .audit_events(&AuditFilter {
            run_id: Some(out.run_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "executed").count(),
        2,
        "{kinds:?}"
    );
    let tool_calls: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "tool_call")
        .map(|e| e.payload["tool"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(tool_calls, ["read_aging", "escalate"], "{kinds:?}");
    assert!(matches!(
        ts.store.audit_verify().await.unwrap(),
        AuditVerification::Intact { .. }
    ));
}

/// A run whose process died during its second model call is resumed from its delta
/// checkpoint: the conversation is rebuilt (the model is shown all four messages), the call
/// is not carried out again, and the trail is whole.
#[tokio::test]
async fn a_run_cut_off_after_a_step_resumes_from_its_saved_messages() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        import(&ts.store).await;
        let first = agent(&ts.store, Arc::new(HangsOnSecond(AtomicUsize::new(0))));
        let cut =
            tokio::time::timeout(Duration::from_millis(500), first.start("C-ANN", step())).await;
        assert!(cut.is_err(), "{label}: the second model call never returns");
        let running = ts.store.runs(Some(RunStatus::Running)).await.unwrap();
        assert_eq!(running.len(), 1, "{label}");
        let run_id = running[0].id.clone();
        assert_eq!(running[0].step, 1, "{label}");
        assert_eq!(
            running[0].state,
            json!({"delta": {"messages": 4}, "invalid_turns": 0}),
            "{label}"
        );

        let model = Arc::new(ScriptedModel::new());
        model.push_text("Done.");
        let second = agent(&ts.store, model.clone());
        let out = second.resume(&run_id).await.unwrap();
        assert_eq!(out.status, RunStatus::Finished, "{label}");
        assert_eq!(out.steps, 2, "{label}");
        assert_eq!(out.calls.len(), 1, "{label}");
        assert_eq!(out.calls[0].tool, "read_aging", "{label}");
        let shown = &model.requests()[0].messages;
        assert_eq!(shown.len(), 4, "{label}");
        assert!(matches!(shown[0], ChatMessage::System { .. }), "{label}");
        assert!(matches!(shown[3], ChatMessage::Tool { .. }), "{label}");
        let executed = ts
            .store
            .audit_events(&AuditFilter {
                kind: Some("executed".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(executed.len(), 1, "{label}: read_aging ran once");
        assert_eq!(
            ts.store.run_messages(&run_id).await.unwrap().len(),
            5,
            "{label}"
        );
        assert!(
            matches!(
                ts.store.audit_verify().await.unwrap(),
                AuditVerification::Intact { .. }
            ),
            "{label}"
        );
        ts.cleanup().await;
    }
}

/// A run checkpointed whole (as before delta checkpoints) with a call not yet answered is
/// resumed from `runs.state`: the call is carried out once and the run goes on being
/// checkpointed whole.
#[tokio::test]
async fn a_run_checkpointed_whole_resumes_from_its_state() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        import(&ts.store).await;
        let turn = ChatMessage::assistant_tool_calls(None, vec![aging()]);
        let state = json!({
            "messages": [ChatMessage::system("You collect."), ChatMessage::user("Remind them."), turn],
            "invalid_turns": 0,
            "outcomes": [],
        });
        let run = RunRecord {
            id: "run-whole".into(),
            customer_id: "C-ANN".into(),
            trigger: serde_json::to_value(step()).unwrap(),
            status: RunStatus::Running,
            step: 1,
            tokens: 0,
            state,
            model: "scripted".into(),
            prompt_version: "p".into(),
            policy_version: "v".into(),
            created_at: now(),
            updated_at: now(),
            lease_owner: None,
            lease_until: None,
        };
        ts.store.create_run(&run).await.unwrap();
        let model = Arc::new(ScriptedModel::new());
        model.push_text("Done.");
        let out = agent(&ts.store, model.clone())
            .resume("run-whole")
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Finished, "{label}");
        assert_eq!(out.calls.len(), 1, "{label}");
        assert_eq!(out.calls[0].status, CallStatus::Executed, "{label}");
        assert_eq!(model.requests()[0].messages.len(), 4, "{label}");
        let stored = ts.store.run("run-whole").await.unwrap().state;
        assert_eq!(
            stored["messages"].as_array().map(Vec::len),
            Some(5),
            "{label}"
        );
        assert_eq!(
            stored["outcomes"].as_array().map(Vec::len),
            Some(1),
            "{label}"
        );
        assert!(
            ts.store.run_messages("run-whole").await.unwrap().is_empty(),
            "{label}"
        );
        assert!(
            ts.store
                .tool_call("run-whole/2/call_1")
                .await
                .unwrap()
                .is_some(),
            "{label}"
        );
        ts.cleanup().await;
    }
}
