//! Test support for crates that drive the agent: `propose_plan` arguments for the
//! two-consumer fixture in `argent_store::testkit::two_consumer_portfolio`, and
//! [`seed_plan_queue`], a large approval queue written in one transaction for load tests.

use std::collections::HashMap;

use chrono::Duration;
use serde_json::{Value, json};

use argent_core::{Currency, Invoice, Money, Outcome, Payment, Portfolio};
use argent_policy::evaluate;
use argent_store::testkit::{QueuedCall, seed_queue};
use argent_store::{RunRecord, RunStatus};

use crate::context::Account;
use crate::run::decision_json;
use crate::{Agent, AgentError, CallOutcome, CallStatus, Trigger};

/// `propose_plan` arguments in USD starting 2026-11-20.
pub fn plan_args(
    customer: &str,
    balance: &str,
    discount: &str,
    down: &str,
    installments: &[(&str, &str)],
) -> Value {
    json!({
        "customer_id": customer, "currency": "USD", "balance": balance, "discount": discount,
        "down_payment": down, "start_date": "2026-11-20",
        "installments": installments.iter().map(|(d, a)| json!({"due_date": d, "amount": a})).collect::<Vec<_>>(),
    })
}

/// 20% off Ann's 1200.00: inside the hard ceiling, outside what may run unreviewed; a
/// collector may approve it.
pub fn ann_plan_20_percent() -> Value {
    plan_args(
        "C-ANN",
        "1200.00",
        "240.00",
        "96.00",
        &[
            ("2026-12-20", "288.00"),
            ("2027-01-20", "288.00"),
            ("2027-02-20", "288.00"),
        ],
    )
}

/// A pending `propose_plan` item for every customer of `portfolio`, for load tests and
/// benchmarks (e.g. over `argent_store::testkit::consumer_portfolio`). Writes the portfolio
/// and everything the planner loop leaves behind for a queued call — a finished run, the
/// tool call (queued, with its outcome), the approval item and the run's audit events
/// (`run_started`, `tool_call`, `policy_decision`, `approval_requested`, `run_finished`;
/// no `model_call`, since no model is asked) — in one transaction, via
/// `argent_store::testkit::seed_queue`. Returns the approval ids in portfolio order.
///
/// Each plan takes 20% off the customer's open balance, 10% of the rest down today and the
/// remainder in three monthly installments. The arguments go through the tool registry
/// and the policy exactly as a model's would, against the account as the agent would load
/// it (the customers must be new to the store); an `Invariant` error says the policy did
/// not hold a plan for review.
pub async fn seed_plan_queue(
    agent: &Agent,
    portfolio: &Portfolio,
) -> Result<Vec<String>, AgentError> {
    let now = agent.now();
    let today = now.date_naive();
    let mut invoices: HashMap<&str, Vec<Invoice>> = HashMap::new();
    for i in &portfolio.invoices {
        invoices
            .entry(i.customer_id.as_str())
            .or_default()
            .push(i.clone());
    }
    let mut payments: HashMap<&str, Vec<Payment>> = HashMap::new();
    for p in &portfolio.payments {
        payments
            .entry(p.customer_id.as_str())
            .or_default()
            .push(p.clone());
    }
    let mut calls = Vec::with_capacity(portfolio.customers.len());
    for customer in &portfolio.customers {
        let id = customer.id.clone();
        let email = customer
            .primary_contact()
            .and_then(|c| c.email.clone())
            .unwrap_or_default();
        let account = agent.with_overrides(Account::assemble(
            customer.clone(),
            invoices.remove(id.as_str()).unwrap_or_default(),
            payments.remove(id.as_str()).unwrap_or_default(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            false,
            now,
        )?);
        let (currency, balance) = account.balances().into_iter().next().ok_or_else(|| {
            AgentError::Invariant(format!("customer {id} has nothing open to plan"))
        })?;
        let currency: Currency = currency
            .parse()
            .map_err(|e| AgentError::Invariant(format!("customer {id}: {e}")))?;
        let money = |minor: i64| Money::new(minor, currency).amount_string();
        let discount = balance / 5;
        let rest = balance - discount;
        let down = rest / 10;
        let each = (rest - down) / 3;
        let last = rest - down - 2 * each;
        let due = |months: i64| (today + Duration::days(30 * months)).to_string();
        let arguments = json!({
            "customer_id": id, "currency": currency.as_str(), "balance": money(balance),
            "discount": money(discount), "down_payment": money(down), "start_date": today.to_string(),
            "installments": [
                {"due_date": due(1), "amount": money(each)},
                {"due_date": due(2), "amount": money(each)},
                {"due_date": due(3), "amount": money(last)},
            ],
            "note": "Asked for three months and something off; pays on time historically.",
        })
        .to_string();
        let action = agent
            .registry
            .parse("propose_plan", &arguments)
            .map_err(|e| AgentError::Invariant(format!("customer {id}: {e}")))?;
        let decision = evaluate(
            agent.policy_for(&account)?,
            &action,
            &account.policy_context(),
        );
        if decision.outcome != Outcome::NeedsApproval {
            return Err(AgentError::Invariant(format!(
                "customer {id}: the plan was judged {}, not needs_approval",
                decision.outcome.as_str()
            )));
        }
        let trigger = Trigger::Inbound {
            from: email,
            subject: "My account".into(),
            body: "Could I pay this over three months, with something off?".into(),
            received_at: now,
            message_id: None,
            references: Vec::new(),
            mail: None,
        };
        let mut run = RunRecord {
            id: agent.new_id("run"),
            customer_id: id.clone(),
            trigger: serde_json::to_value(&trigger).unwrap_or(Value::Null),
            status: RunStatus::Finished,
            step: 2,
            tokens: 0,
            state: Value::Null,
            model: agent.model.name(),
            prompt_version: agent.prompts.version().to_string(),
            policy_version: agent.policy_version.clone(),
            created_at: now,
            updated_at: now,
            lease_owner: None,
            lease_until: None,
        };
        // system, user, then the assistant turn (index 2) that made the call.
        let call_id = format!("{}/2/call_1", run.id);
        let (approval, model_text) =
            agent.approval_item(&run, &call_id, "propose_plan", &action, &decision, &account);
        let outcome = CallOutcome {
            call_id: call_id.clone(),
            tool: "propose_plan".into(),
            arguments: arguments.clone(),
            status: CallStatus::Queued,
            rules: decision.decisive_rules().map(|r| r.id.clone()).collect(),
            approval_id: Some(approval.id.clone()),
            model_text,
        };
        let outcome = serde_json::to_value(&outcome).unwrap_or(Value::Null);
        run.state = json!({"messages": [], "invalid_turns": 0, "outcomes": [outcome]});
        let events = vec![
            agent.audit(
                &run,
                "run_started",
                json!({"trigger": run.trigger, "model": run.model, "prompt_version": run.prompt_version, "policy_version": run.policy_version}),
            ),
            agent.audit(
                &run,
                "tool_call",
                json!({"call_id": call_id, "tool": "propose_plan", "action": action}),
            ),
            agent.audit(&run, "policy_decision", decision_json(&call_id, &decision)),
            agent.audit(
                &run,
                "approval_requested",
                json!({"call_id": call_id, "approval_id": approval.id, "approvers": decision.approvers()}),
            ),
            agent.audit(
                &run,
                "run_finished",
                json!({"status": "Finished", "why": "model finished", "steps": 2, "tokens": 0,
                       "executed": 0, "queued": 1, "refused": 0, "invalid": 0}),
            ),
        ];
        calls.push(QueuedCall {
            run,
            arguments,
            outcome,
            approval,
            events,
        });
    }
    seed_queue(&agent.store, portfolio, &calls).await?;
    Ok(calls.into_iter().map(|c| c.approval.id).collect())
}
