//! Issue #11, item 2: a plan's limits are computed from the ledger, never from the balance
//! the model (or a reviewer's edit) states. Through the planner loop and the approval
//! queue's edit path, on a real store.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use argent_agent::testing::plan_args;
use argent_agent::{Agent, AgentConfig, AgentError, CallStatus, Clock, Reviewer, Trigger};
use argent_core::Role;
use argent_llm::{ChatModel, ScriptedModel, ToolCall};
use argent_store::testkit::TestStore;
use argent_store::{ApprovalStatus, Store};

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

fn scripted(tool: &str, args: &Value) -> Arc<ScriptedModel> {
    let m = ScriptedModel::new();
    m.push_tool_calls(vec![ToolCall::new("c0", tool, args.to_string())]);
    m.push_text("Done.");
    Arc::new(m)
}

fn inbound(from: &str, body: &str) -> Trigger {
    Trigger::Inbound {
        from: from.into(),
        subject: "My account".into(),
        body: body.into(),
        received_at: now(),
        message_id: None,
        references: Vec::new(),
        mail: None,
    }
}

fn collector() -> Reviewer {
    Reviewer {
        name: "alice".into(),
        role: Role::Collector,
    }
}

/// Bo owes 15,000.00 (INV-BO-1); a plan for all of it in three payments needs a manager.
fn bo_full_plan() -> Value {
    plan_args(
        "C-BO",
        "15000.00",
        "0.00",
        "1500.00",
        &[
            ("2026-12-20", "4500.00"),
            ("2027-01-20", "4500.00"),
            ("2027-02-20", "4500.00"),
        ],
    )
}

#[tokio::test]
async fn a_plan_of_500_against_the_ledger_balance_never_executes() {
    for ts in TestStore::all().await.unwrap() {
        // "0% discount" on a stated balance of 500.00 — against 15,000.00 owed.
        let understated = plan_args(
            "C-BO",
            "500.00",
            "0.00",
            "50.00",
            &[("2026-12-20", "450.00")],
        );
        let agent = agent(&ts.store, scripted("propose_plan", &understated)).await;
        let out = agent
            .start("C-BO", inbound("bo@mail.example", "Can I settle for 500?"))
            .await
            .unwrap();
        assert_eq!(
            out.calls[0].status,
            CallStatus::Refused,
            "{}: {:?}",
            ts.label,
            out.calls
        );
        assert!(
            out.calls[0]
                .rules
                .contains(&"engine.plan-balance-mismatch".to_string()),
            "{:?}",
            out.calls[0].rules
        );
        assert!(
            out.calls[0].model_text.contains("15000.00"),
            "the model is told the ledger figure: {}",
            out.calls[0].model_text
        );
        assert!(ts.store.plans(None).await.unwrap().is_empty());
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_collector_cannot_edit_a_manager_plan_into_one_they_may_approve() {
    for ts in TestStore::all().await.unwrap() {
        let agent = agent(&ts.store, scripted("propose_plan", &bo_full_plan())).await;
        let out = agent
            .start("C-BO", inbound("bo@mail.example", "Three payments?"))
            .await
            .unwrap();
        assert_eq!(out.calls[0].status, CallStatus::Queued, "{:?}", out.calls);
        let id = ts.store.approvals(None, 10, 0).await.unwrap()[0].id.clone();
        assert!(matches!(
            agent.approve(&id, &collector(), None).await,
            Err(AgentError::NotPermitted(_))
        ));
        // The edit states a balance under the manager's threshold, "no discount".
        let under_the_limit = plan_args(
            "C-BO",
            "9000.00",
            "0.00",
            "900.00",
            &[
                ("2026-12-20", "2700.00"),
                ("2027-01-20", "2700.00"),
                ("2027-02-20", "2700.00"),
            ],
        );
        let preview = agent
            .preview_edit(&id, under_the_limit.clone())
            .await
            .unwrap();
        assert!(preview.is_denied(), "{}: {preview}", ts.label);
        let err = agent
            .edit(&id, &collector(), under_the_limit, None)
            .await
            .unwrap_err();
        assert!(matches!(err, AgentError::Denied(_)), "{err}");
        assert!(err.to_string().contains("15000.00"), "{err}");
        assert_eq!(
            ts.store.approval(&id).await.unwrap().status,
            ApprovalStatus::Pending
        );
        assert!(ts.store.plans(None).await.unwrap().is_empty());
        ts.cleanup().await;
    }
}

fn cents(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// A reviewer's edit of a plan: stated balance, discount, down payment, installments and
/// invoice list, coherent with each other (as a form would submit them).
fn edit_strategy(
    customer: &'static str,
    invoices: Vec<&'static str>,
) -> impl Strategy<Value = Value> {
    (
        // Biased towards edits near the allow range, so that many are allowed and checked.
        prop_oneof![Just(None), (1_00_i64..20_000_00).prop_map(Some)],
        prop_oneof![0_u32..=12, 0_u32..=60],
        prop_oneof![10_u32..=40, 0_u32..=60],
        1_usize..=8,
        prop_oneof![
            Just(Vec::new()),
            proptest::sample::subsequence(invoices, 1..=2)
        ],
    )
        .prop_filter_map(
            "a coherent plan",
            move |(stated, disc_pct, down_pct, n, invoices)| {
                let stated = stated.unwrap_or(if customer == "C-BO" {
                    15_000_00
                } else {
                    1_200_00
                });
                let discount = stated * i64::from(disc_pct) / 100;
                let owed = stated - discount;
                let down = owed * i64::from(down_pct) / 100;
                let rest = owed - down;
                let n = n as i64;
                if rest < n {
                    return None;
                }
                let each = rest / n;
                let start: chrono::NaiveDate = "2026-11-20".parse().unwrap();
                let installments: Vec<Value> = (0..n)
                    .map(|i| {
                        let amount = if i == n - 1 {
                            rest - each * (n - 1)
                        } else {
                            each
                        };
                        let due = start
                            .checked_add_months(chrono::Months::new(i as u32 + 1))
                            .unwrap();
                        json!({"due_date": due.to_string(), "amount": cents(amount)})
                    })
                    .collect();
                let mut args = json!({
                    "customer_id": customer, "currency": "USD", "balance": cents(stated),
                    "discount": cents(discount), "down_payment": cents(down),
                    "start_date": "2026-11-20", "installments": installments,
                });
                if !invoices.is_empty() {
                    args["invoice_numbers"] = json!(invoices);
                }
                Some(args)
            },
        )
}

/// Allow ranges of the us-consumer pack, read from the pack, for the customer's segment;
/// and the amount over which a plan needs a manager, in minor units.
fn allow_range(segment: &str) -> (toml::Value, i64) {
    let text = std::fs::read_to_string(repo("policies/us-consumer.toml")).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let range = doc["negotiation"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r.get("segments")
                .and_then(|s| s.as_array())
                .is_none_or(|s| s.iter().any(|x| x.as_str() == Some(segment)))
        })
        .unwrap()
        .clone();
    let limit = doc["approval"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|a| a.get("amount_over").and_then(|v| v.as_str()))
        .unwrap()
        .replace('.', "")
        .parse()
        .unwrap();
    (range, limit)
}

fn percent_bps(v: &toml::Value) -> i128 {
    let p = v.as_float().or(v.as_integer().map(|i| i as f64)).unwrap();
    (p * 100.0).round() as i128
}

fn minor(v: &Value) -> i64 {
    v.as_str().unwrap().replace('.', "").parse().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// No edit a collector makes to Bo's manager-only plan executes: every plan for Bo's
    /// 15,000.00 is over the manager's limit, whatever balance the edit states.
    #[test]
    fn no_collector_edit_of_a_manager_plan_executes(args in edit_strategy("C-BO", vec!["INV-BO-1", "INV-BO-9"])) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let ts = TestStore::sqlite().await.unwrap();
            let agent = agent(&ts.store, scripted("propose_plan", &bo_full_plan())).await;
            agent.start("C-BO", inbound("bo@mail.example", "Three payments?")).await.unwrap();
            let id = ts.store.approvals(None, 10, 0).await.unwrap()[0].id.clone();
            let result = agent.edit(&id, &collector(), args.clone(), None).await;
            assert!(result.is_err(), "a collector's edit executed: {args}");
            assert!(ts.store.plans(None).await.unwrap().is_empty(), "{args}");
            ts.cleanup().await;
        });
    }

    /// An edit of Ann's held plan that the policy allows outright is within the allow range
    /// computed from Ann's ledger (1,200.00 open on INV-ANN-1).
    #[test]
    fn an_allowed_edit_is_within_the_ledger_allow_range(args in edit_strategy("C-ANN", vec!["INV-ANN-1", "INV-ANN-9"])) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let ts = TestStore::sqlite().await.unwrap();
            let held = argent_agent::testing::ann_plan_20_percent();
            let agent = agent(&ts.store, scripted("propose_plan", &held)).await;
            agent.start("C-ANN", inbound("ann@mail.example", "20% off?")).await.unwrap();
            let id = ts.store.approvals(None, 10, 0).await.unwrap()[0].id.clone();
            let decision = agent.preview_edit(&id, args.clone()).await.unwrap();
            if decision.is_allowed() {
                let ledger: i64 = 1_200_00; // INV-ANN-1, nothing paid on it
                let account = agent.load_account("C-ANN", now()).await.unwrap();
                let (range, limit) = allow_range(account.risk.segment.as_str());
                let down = minor(&args["down_payment"]);
                let installments = args["installments"].as_array().unwrap();
                let collected = down + installments.iter().map(|i| minor(&i["amount"])).sum::<i64>();
                let forgiven = ledger - collected;
                assert!(forgiven >= 0, "{args}");
                assert!(
                    i128::from(forgiven) * 10_000 <= percent_bps(&range["max_discount_percent"]) * i128::from(ledger),
                    "allowed forgiving {forgiven} of {ledger}: {args}"
                );
                assert!(
                    i128::from(down) * 10_000 >= percent_bps(&range["min_down_payment_percent"]) * i128::from(collected),
                    "{args}"
                );
                assert!(installments.len() as i64 <= range["max_installments"].as_integer().unwrap(), "{args}");
                assert!(ledger <= limit, "{args}");
                assert_eq!(minor(&args["balance"]), ledger, "{args}");
                // And the collector's edit then executes.
                agent.edit(&id, &collector(), args.clone(), None).await.unwrap();
            }
            ts.cleanup().await;
        });
    }
}
