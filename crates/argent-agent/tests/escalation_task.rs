//! An `escalate` tool call also creates a task in the named role's inbox, in the same
//! transaction as its case, due by its urgency in the customer's business days; a person's
//! action (`Agent::act_for_person`) goes through the same registry and policy as the
//! agent's tool calls. On both backends.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use argent_agent::{Agent, AgentConfig, CallStatus, Clock, Trigger};
use argent_core::{Role, TaskKind, TaskStatus};
use argent_llm::{ScriptedModel, ToolCall};
use argent_store::testkit::TestStore;
use argent_store::{AuditFilter, AuditVerification, Store, TaskFilter};

/// A Friday, noon in Chicago (Ann's zone).
fn now() -> DateTime<Utc> {
    "2026-11-20T18:00:00Z".parse().unwrap()
}

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

async fn agent(store: &Store, model: Arc<ScriptedModel>) -> Agent {
    store
        .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
        .await
        .unwrap();
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

#[tokio::test]
async fn an_escalation_is_a_task_for_its_role_due_by_urgency() {
    for ts in TestStore::all().await.unwrap() {
        let model = Arc::new(ScriptedModel::new());
        model.push_tool_calls(vec![
            ToolCall::new(
                "e1",
                "escalate",
                json!({"customer_id": "C-ANN", "reason": "Wants to speak to a manager.", "to_role": "manager", "urgency": "high"}).to_string(),
            ),
            ToolCall::new(
                "e2",
                "escalate",
                json!({"customer_id": "C-ANN", "reason": "Asked for a person."}).to_string(),
            ),
        ]);
        model.push_text("Done.");
        let agent = agent(&ts.store, model).await;
        let out = agent
            .start(
                "C-ANN",
                Trigger::Inbound {
                    from: "ann@mail.example".into(),
                    subject: "Help".into(),
                    body: "I want to talk to a manager.".into(),
                    received_at: now(),
                    message_id: None,
                    references: Vec::new(),
                    mail: None,
                },
            )
            .await
            .unwrap();
        assert!(
            out.calls.iter().all(|c| c.status == CallStatus::Executed),
            "{}: {:?}",
            ts.label,
            out.calls
        );
        // The model's result is unchanged (recorded conversations replay it).
        assert!(out.calls[0].model_text.contains("escalation_case_id"));
        assert!(!out.calls[0].model_text.contains("TASK-"));

        let tasks = ts.store.tasks(&TaskFilter::open()).await.unwrap();
        assert_eq!(tasks.len(), 2, "{}: {tasks:?}", ts.label);
        let high = tasks
            .iter()
            .find(|t| t.owner_role == Role::Manager)
            .unwrap();
        assert_eq!(high.kind, TaskKind::Escalation);
        assert_eq!(high.status, TaskStatus::Open);
        assert_eq!(high.body, "Wants to speak to a manager.");
        assert!(high.title.contains("Ann Lee") && high.title.contains("high"));
        // High: four hours.
        assert_eq!(high.due_at, Some("2026-11-20T22:00:00Z".parse().unwrap()));
        assert_eq!(high.id, format!("TASK-{}", high.source));
        assert!(high.source.ends_with("/e1"), "{}", high.source);
        // Normal, to the default role: the next business day in Chicago — Monday, noon.
        let normal = tasks
            .iter()
            .find(|t| t.owner_role == Role::Collector)
            .unwrap();
        assert_eq!(normal.due_at, Some("2026-11-23T18:00:00Z".parse().unwrap()));

        // Each task's creation is audited, and the chain holds.
        let created = ts
            .store
            .audit_events(&AuditFilter {
                kind: Some("task.created".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(created.len(), 2, "{}", ts.label);
        assert!(matches!(
            ts.store.audit_verify().await.unwrap(),
            AuditVerification::Intact { .. }
        ));
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_persons_action_is_judged_by_the_same_policy() {
    for ts in TestStore::all().await.unwrap() {
        let agent = agent(&ts.store, Arc::new(ScriptedModel::new())).await;
        let promise = |date: &str| {
            json!({"customer_id": "C-ANN", "amount": "300.00", "currency": "USD", "promised_date": date, "invoice_numbers": ["INV-ANN-1"]}).to_string()
        };
        let o = agent
            .act_for_person(
                "collector:alice",
                "C-ANN",
                "k1",
                "test",
                "log_promise",
                &promise("2026-11-27"),
            )
            .await
            .unwrap();
        assert_eq!(o.status, CallStatus::Executed, "{}: {o:?}", ts.label);
        assert_eq!(ts.store.promises(Some("C-ANN")).await.unwrap().len(), 1);
        // The same action submitted again (same key) runs once: the first outcome.
        let again = agent
            .act_for_person(
                "collector:alice",
                "C-ANN",
                "k1",
                "test",
                "log_promise",
                &promise("2026-11-27"),
            )
            .await
            .unwrap();
        assert_eq!(again, o);
        assert_eq!(ts.store.promises(Some("C-ANN")).await.unwrap().len(), 1);

        // A dispute on the invoice, then a promise on it: policy refuses the promise,
        // for the person exactly as for the agent.
        let o = agent
            .act_for_person(
                "collector:alice",
                "C-ANN",
                "k2",
                "test",
                "open_case",
                &json!({"customer_id": "C-ANN", "kind": "dispute", "invoice_numbers": ["INV-ANN-1"], "summary": "Says the goods never arrived."}).to_string(),
            )
            .await
            .unwrap();
        assert_eq!(o.status, CallStatus::Executed, "{}: {o:?}", ts.label);
        let o = agent
            .act_for_person(
                "collector:alice",
                "C-ANN",
                "k3",
                "test",
                "log_promise",
                &promise("2026-11-30"),
            )
            .await
            .unwrap();
        assert_eq!(o.status, CallStatus::Refused, "{}: {o:?}", ts.label);
        assert!(!o.rules.is_empty());
        assert_eq!(ts.store.promises(Some("C-ANN")).await.unwrap().len(), 1);

        // Arguments the schema refuses are invalid, and nothing is done.
        let o = agent
            .act_for_person("collector:alice", "C-ANN", "k9", "test", "log_promise", &json!({"customer_id": "C-ANN", "amount": "-5", "currency": "USD", "promised_date": "2026-11-30"}).to_string())
            .await
            .unwrap();
        assert_eq!(o.status, CallStatus::Invalid, "{o:?}");

        // The runs and every event of them name the person.
        let started = ts
            .store
            .audit_events(&AuditFilter {
                kind: Some("run_started".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(started.len(), 4);
        assert!(started.iter().all(|e| e.actor == "collector:alice"));
        let decisions = ts
            .store
            .audit_events(&AuditFilter {
                kind: Some("policy_decision".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(decisions.len(), 3, "{}", ts.label);
        assert!(
            decisions.iter().all(|e| e.actor == "collector:alice"),
            "the person's decisions are theirs, not the agent's"
        );
        ts.cleanup().await;
    }
}
