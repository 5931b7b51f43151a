//! The activation gate's setup, shared by the gate's router tests and the browser tests:
//! a loosened us-consumer draft (the FDCPA attorney stop deleted, the high-risk discount
//! ceiling raised to 90%), the cases that stand in for the shipped tests it breaks, and a
//! store where that draft flips a pending approval and a past refusal.

use std::sync::Arc;

use serde_json::Value;

use argent_agent::testing::{ann_plan_20_percent, plan_args};
use argent_agent::{Agent, AgentConfig, Clock, DocumentSet};
use argent_core::RiskSegment;
use argent_llm::{ScriptedModel, ToolCall};
use argent_server::{AppState, ServerConfig, UserRole, create_user};
use argent_store::testkit::two_consumer_portfolio;
use argent_store::{ApprovalStatus, AuditFilter, Store};

use super::{PASSWORD, inbound, now, repo};

pub const ATTORNEY_STOP: &str = r#"[[stop]]
id = "us.attorney-represented"
when = "attorney_represented"
actions = ["send_email", "propose_plan", "request_call"]
effect = "deny"
message = "The consumer is represented by an attorney; communicate with the attorney, not the consumer."
citation = "15 U.S.C. 1692c(a)(2); 12 CFR 1006.6(b)(2)"
"#;

pub const HIGH_RISK_CEILING: &str = "id = \"us.plan.high-risk.ceiling\"\nmax_discount_percent = 20";

/// Cases standing in for the three shipped ones that assert the attorney stop.
pub const CARRIED: &str =
    include_str!("../../../argent-policy/tests/fixtures/gate-carried-attorney.toml");

/// The shipped policy tests the loosened draft fails.
pub const FAILING: [&str; 3] = [
    "us-consumer.toml: an attorney-represented consumer is not emailed",
    "us-consumer-contact.toml: a call to an attorney-represented consumer is denied",
    "us-consumer-signals.toml: once confirmed, the flag's own rule stops the email (attorney_represented)",
];

/// The shipped us-consumer pack without the attorney stop and with the high-risk ceiling's
/// discount raised from 20% to 90%.
pub fn loosened(text: &str) -> String {
    assert!(text.contains(ATTORNEY_STOP) && text.contains(HIGH_RISK_CEILING));
    text.replace(ATTORNEY_STOP, "").replace(
        HIGH_RISK_CEILING,
        "id = \"us.plan.high-risk.ceiling\"\nmax_discount_percent = 90",
    )
}

/// 30% off Bo's 15,000.00: past the high-risk ceiling (20%), inside a 90% one.
pub fn bo_plan_30_percent() -> Value {
    plan_args(
        "C-BO",
        "15000.00",
        "4500.00",
        "2100.00",
        &[
            ("2026-12-20", "2100.00"),
            ("2027-01-20", "2100.00"),
            ("2027-02-20", "2100.00"),
            ("2027-03-20", "2100.00"),
        ],
    )
}

pub struct GateStore {
    /// Served with the shipped policy tests configured, so the gate runs them.
    pub state: AppState,
    /// Ann's pending plan: queued, then Ann turned out to have an attorney.
    pub ann_item: String,
    /// Bo's refused plan's tool call.
    pub bo_call: String,
}

/// Both consumers judged high-risk; Ann's 20% plan waits for a person and Bo's 30% plan
/// was refused by the ceiling; then Ann's account is flagged attorney-represented. Users
/// `mo` (manager) and `cy` (compliance); the repository's documents seeded as version 1.
pub async fn gate_store(store: &Store) -> GateStore {
    let mut portfolio = two_consumer_portfolio();
    store.import_portfolio(&portfolio, "test").await.unwrap();
    let model = ScriptedModel::new();
    model.push_tool_calls(vec![ToolCall::new(
        "a0",
        "propose_plan",
        ann_plan_20_percent().to_string(),
    )]);
    model.push_text("Done.");
    model.push_tool_calls(vec![ToolCall::new(
        "b0",
        "propose_plan",
        bo_plan_30_percent().to_string(),
    )]);
    model.push_text("Done.");
    let agent = Agent::from_dirs(
        store.clone(),
        Arc::new(model),
        &repo("prompts"),
        &repo("policies"),
        AgentConfig {
            clock: Clock::Fixed(now()),
            segment_override: Some(RiskSegment::High),
            ..Default::default()
        },
    )
    .unwrap();
    let ann = agent
        .start("C-ANN", inbound("ann@mail.example", "Could I get 20% off?"))
        .await
        .unwrap();
    let bo = agent
        .start("C-BO", inbound("bo@mail.example", "Could I get 30% off?"))
        .await
        .unwrap();
    let pending = store
        .approvals(Some(ApprovalStatus::Pending), 10, 0)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1, "Ann's plan waits: {ann:?}");
    let bo_call = store
        .audit_events(&AuditFilter {
            customer_id: Some("C-BO".into()),
            kind: Some("refused".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(bo_call.len(), 1, "Bo's plan was refused: {bo:?}");
    let bo_call = bo_call[0].payload["call_id"].as_str().unwrap().to_string();
    // Ann's lawyer writes; the flag is set on her account.
    for c in &mut portfolio.customers {
        if c.id == "C-ANN" {
            c.flags.attorney_represented = true;
        }
    }
    store.import_portfolio(&portfolio, "test").await.unwrap();

    create_user(store, "mo", UserRole::Manager, PASSWORD)
        .await
        .unwrap();
    create_user(store, "cy", UserRole::Compliance, PASSWORD)
        .await
        .unwrap();
    let docs = DocumentSet::from_dirs(&repo("prompts"), &repo("policies")).unwrap();
    store.seed_documents(&docs.entries(), "seed").await.unwrap();
    let state = AppState::new(
        Arc::new(agent),
        ServerConfig {
            policy_tests_dir: Some(repo("policies/tests")),
            ..ServerConfig::default()
        },
    );
    GateStore {
        state,
        ann_item: pending[0].id.clone(),
        bo_call,
    }
}
