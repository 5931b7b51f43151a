//! Issue #12, consistency between actions: an email that confirms an action still waiting
//! for a person is held with it (one decision for both), one that confirms a refused or
//! missing action is denied, and terms offered in an email need a plan behind them. Through
//! the planner loop and the approval queue, on a real store (SQLite, and PostgreSQL when
//! ARGENT_TEST_POSTGRES_URL is set).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use argent_agent::testing::plan_args;
use argent_agent::{Agent, AgentConfig, AgentError, CallStatus, Clock, Reviewer, Trigger};
use argent_core::Role;
use argent_llm::{ChatModel, ScriptedModel, ToolCall};
use argent_store::testkit::TestStore;
use argent_store::{ApprovalStatus, Store, ToolCallStatus};

const FOOTER: &str =
    "This communication is from a debt collector. To stop receiving emails from us, reply STOP.";

fn now() -> DateTime<Utc> {
    "2026-11-20T18:00:00Z".parse().unwrap() // noon in Chicago
}

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

async fn agent(store: &Store, model: Arc<dyn ChatModel>) -> Agent {
    store
        .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
        .await
        .unwrap();
    let config = AgentConfig {
        clock: Clock::Fixed(now()),
        assume_initial_sent: true,
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

/// One turn with these calls, then done.
fn scripted(calls: &[(&str, Value)]) -> Arc<ScriptedModel> {
    let m = ScriptedModel::new();
    m.push_tool_calls(
        calls
            .iter()
            .enumerate()
            .map(|(i, (tool, args))| ToolCall::new(format!("c{i}"), *tool, args.to_string()))
            .collect(),
    );
    m.push_text("Done.");
    Arc::new(m)
}

fn inbound(body: &str) -> Trigger {
    Trigger::Inbound {
        from: "ann@mail.example".into(),
        subject: "My account".into(),
        body: body.into(),
        received_at: now(),
        message_id: None,
        references: Vec::new(),
        mail: None,
    }
}

fn email(body: &str) -> Value {
    json!({
        "customer_id": "C-ANN",
        "to": "ann@mail.example",
        "subject": "Your payment",
        "body": format!("Dear Ann,\n\n{body}\n\nKind regards,\nAccounts Receivable\n\n{FOOTER}"),
    })
}

/// Ann promises her 1,200.00 for a date 66 days out: the promise needs a collector.
fn far_promise() -> Value {
    json!({"customer_id": "C-ANN", "amount": "1200.00", "currency": "USD", "promised_date": "2027-01-25", "invoice_numbers": ["INV-ANN-1"]})
}

fn collector() -> Reviewer {
    Reviewer {
        name: "alice".into(),
        role: Role::Collector,
    }
}

/// Runs the promise + "we've recorded your promise" turn; returns (promise item, email item).
async fn held_pair(agent: &Agent, label: &str) -> (String, String) {
    let out = agent
        .start("C-ANN", inbound("I will pay the 1,200 on 25 January."))
        .await
        .unwrap();
    assert_eq!(out.calls.len(), 2, "{label}: {:?}", out.calls);
    assert_eq!(
        out.calls[0].status,
        CallStatus::Queued,
        "{label}: {:?}",
        out.calls[0]
    );
    assert_eq!(
        out.calls[1].status,
        CallStatus::Queued,
        "{label}: {:?}",
        out.calls[1]
    );
    assert!(
        out.calls[1]
            .rules
            .contains(&"engine.held-with-action".to_string()),
        "{label}: {:?}",
        out.calls[1].rules
    );
    let promise = out.calls[0].approval_id.clone().unwrap();
    let mail = out.calls[1].approval_id.clone().unwrap();
    assert!(
        out.calls[1].model_text.contains(&promise),
        "the model is told what the email waits for: {}",
        out.calls[1].model_text
    );
    let item = agent.store.approval(&mail).await.unwrap();
    assert_eq!(item.bundle_of.as_deref(), Some(promise.as_str()), "{label}");
    let held: Vec<String> = agent
        .store
        .bundled_with(&promise)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(held, vec![mail.clone()], "{label}");
    (promise, mail)
}

fn pair_model() -> Arc<ScriptedModel> {
    scripted(&[
        ("log_promise", far_promise()),
        (
            "send_email",
            email("Thank you. We've recorded your promise to pay $1,200.00 on 25 January 2027."),
        ),
    ])
}

#[tokio::test]
async fn a_confirmation_of_a_pending_promise_is_held_and_rejected_with_it() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let agent = agent(&ts.store, pair_model()).await;
        let (promise, mail) = held_pair(&agent, label).await;
        // The email cannot be decided on its own while its promise waits.
        let alone = agent.approve(&mail, &collector(), None).await.unwrap_err();
        assert!(
            matches!(alone, AgentError::NotPermitted(_)),
            "{label}: {alone}"
        );
        let alone = agent.reject(&mail, &collector(), "no").await.unwrap_err();
        assert!(
            matches!(alone, AgentError::NotPermitted(_)),
            "{label}: {alone}"
        );
        // Rejecting the promise rejects its confirmation: neither executes.
        agent
            .reject(&promise, &collector(), "customer cannot wait that long")
            .await
            .unwrap();
        for id in [&promise, &mail] {
            assert_eq!(
                agent.store.approval(id).await.unwrap().status,
                ApprovalStatus::Rejected,
                "{label} {id}"
            );
        }
        assert!(
            agent
                .store
                .promises(Some("C-ANN"))
                .await
                .unwrap()
                .is_empty(),
            "{label}"
        );
        assert!(
            agent.store.emails(Some("C-ANN")).await.unwrap().is_empty(),
            "{label}"
        );
        let call = agent.store.approval(&mail).await.unwrap().call_id;
        assert_eq!(
            agent.store.tool_call(&call).await.unwrap().unwrap().status,
            ToolCallStatus::Rejected,
            "{label}"
        );
        assert!(
            matches!(
                agent.store.audit_verify().await.unwrap(),
                argent_store::AuditVerification::Intact { .. }
            ),
            "{label}"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn approving_the_promise_executes_it_and_then_its_confirmation() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let agent = agent(&ts.store, pair_model()).await;
        let (promise, mail) = held_pair(&agent, label).await;
        agent
            .approve(&promise, &collector(), Some("ok"))
            .await
            .unwrap();
        for id in [&promise, &mail] {
            let item = agent.store.approval(id).await.unwrap();
            assert_eq!(item.status, ApprovalStatus::Approved, "{label} {id}");
            assert_eq!(item.decided_by.as_deref(), Some("alice"), "{label} {id}");
        }
        let promises = agent.store.promises(Some("C-ANN")).await.unwrap();
        assert_eq!(promises.len(), 1, "{label}");
        let emails = agent.store.emails(Some("C-ANN")).await.unwrap();
        assert_eq!(emails.len(), 1, "{label}");
        assert!(emails[0].body.contains("recorded your promise"), "{label}");
        assert!(
            matches!(
                agent.store.audit_verify().await.unwrap(),
                argent_store::AuditVerification::Intact { .. }
            ),
            "{label}"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn an_email_applying_a_90_percent_discount_with_no_plan_is_denied() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let model = scripted(&[(
            "send_email",
            email("Following a review, we have applied a 90% discount to your account."),
        )]);
        let agent = agent(&ts.store, model).await;
        let out = agent
            .start("C-ANN", inbound("Can you help?"))
            .await
            .unwrap();
        assert_eq!(
            out.calls[0].status,
            CallStatus::Refused,
            "{label}: {:?}",
            out.calls
        );
        assert_eq!(
            out.calls[0].rules,
            vec!["us.offer-unbacked".to_string()],
            "{label}"
        );
        assert!(
            agent.store.emails(Some("C-ANN")).await.unwrap().is_empty(),
            "{label}"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn confirming_a_plan_the_policy_refused_is_denied() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        // 90% off: past the ceiling, refused; then an email saying it is in place.
        let plan = plan_args(
            "C-ANN",
            "1200.00",
            "1080.00",
            "20.00",
            &[("2026-12-20", "100.00")],
        );
        let model = scripted(&[
            ("propose_plan", plan),
            (
                "send_email",
                email("Good news: your payment plan has been approved and is now in place."),
            ),
        ]);
        let agent = agent(&ts.store, model).await;
        let out = agent
            .start("C-ANN", inbound("Can I pay less?"))
            .await
            .unwrap();
        assert_eq!(
            out.calls[0].status,
            CallStatus::Refused,
            "{label}: {:?}",
            out.calls[0]
        );
        assert_eq!(
            out.calls[1].status,
            CallStatus::Refused,
            "{label}: {:?}",
            out.calls[1]
        );
        assert!(
            out.calls[1]
                .rules
                .contains(&"engine.unbacked-confirmation".to_string()),
            "{label}: {:?}",
            out.calls[1].rules
        );
        assert!(
            out.calls[1].model_text.contains("refused plan"),
            "the model is told why: {}",
            out.calls[1].model_text
        );
        ts.cleanup().await;
    }
}
