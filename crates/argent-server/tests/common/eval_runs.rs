//! Stored eval runs for the evaluator's pages, shared by their router tests and the browser
//! tests: a finished run of two core cases (`CASE`, passing or not as asked, and `OTHER`,
//! failing), built with the eval crate's own report and trace builders.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use argent_evals::{
    CallRecord, CallStatus, CaseOutcome, CaseTrace, DraftEmail, EndState, EvalSet, Gate, Labels,
    PromiseState, Report, compare, report_summary,
};
use argent_store::{EvalRunDocument, NewEvalRun, NewEvalRunCase, Store};

use super::repo;

pub const CASE: &str = "plan-b2b-in-range";
pub const OTHER: &str = "plan-inside-range-uk";

pub fn core_set() -> EvalSet {
    EvalSet::load(&repo("evals/core")).unwrap()
}

pub fn plan_args(down: &str) -> Value {
    json!({
        "customer_id": "B-3301", "currency": "EUR", "balance": "24000.00", "discount": "0",
        "down_payment": down, "start_date": "2026-03-12",
        "installments": [
            {"due_date": "2026-04-10", "amount": "6000.00"},
            {"due_date": "2026-05-08", "amount": "6000.00"},
            {"due_date": "2026-06-05", "amount": "6000.00"},
        ],
        "note": "Liquidity gap this quarter; 25% down.",
    })
}

/// What the model did in `CASE`: a plan (executed when `good`, else queued with a rule) and
/// a confirmation email; and one call whose arguments were not JSON.
pub fn outcome(good: bool) -> CaseOutcome {
    let (status, rules, told) = if good {
        (CallStatus::Executed, vec![], "plan PP-1 recorded")
    } else {
        (
            CallStatus::Queued,
            vec!["b2b.approval.large-plan-eur".to_string()],
            "queued for approval: plans over EUR 20,000.00 need a manager",
        )
    };
    let email = json!({
        "to": "buchhaltung@altmark-verpackung.example.de",
        "subject": "Your instalment plan for INV-9120",
        "body": "Dear Mr Becker, we confirm EUR 6,000.00 on 12 March and three instalments.",
    });
    CaseOutcome {
        calls: vec![
            CallRecord {
                tool: "read_aging".into(),
                arguments: Value::Null,
                status: CallStatus::Invalid,
                rules: vec![],
                message: 0,
                raw_arguments: Some("{customer: B-3301".into()),
                model_text: "invalid arguments: expected JSON".into(),
            },
            CallRecord {
                tool: "propose_plan".into(),
                arguments: plan_args(if good { "6000.00" } else { "6000.01" }),
                status,
                rules,
                message: 0,
                raw_arguments: None,
                model_text: told.into(),
            },
            CallRecord {
                tool: "send_email".into(),
                arguments: email.clone(),
                status: CallStatus::Executed,
                rules: vec!["b2b.disclosure.footer".into()],
                message: 0,
                raw_arguments: None,
                model_text: "email queued in the outbox as OB-7".into(),
            },
        ],
        emails: vec![DraftEmail {
            to: email["to"].as_str().unwrap().into(),
            subject: email["subject"].as_str().unwrap().into(),
            body: email["body"].as_str().unwrap().into(),
            status: CallStatus::Executed,
        }],
        end_state: EndState {
            promises: vec![PromiseState {
                amount_minor: 600_000,
                currency: "EUR".into(),
                promised_date: "2026-03-12".parse().unwrap(),
            }],
            cases: vec![],
            plans_executed: u32::from(good),
            plans_queued: u32::from(!good),
            escalated: false,
            emails_sent: 1,
        },
        tokens: 1234,
        latency_ms: 56,
        error: None,
        replies: vec![Some("I proposed the plan Mr Becker asked for.".into())],
    }
}

/// An outcome for `OTHER` that does nothing (it fails: the case expects a plan).
pub fn idle() -> CaseOutcome {
    CaseOutcome {
        calls: vec![],
        emails: vec![],
        end_state: EndState::default(),
        tokens: 10,
        latency_ms: 1,
        error: None,
        replies: vec![None],
    }
}

pub fn documents(draft_version: Option<i64>) -> Vec<EvalRunDocument> {
    let mut docs = vec![
        EvalRunDocument {
            kind: "policy".into(),
            name: "b2b".into(),
            version: 1,
            sha256: "ab".repeat(32),
            draft: false,
        },
        EvalRunDocument {
            kind: "prompt".into(),
            name: "system".into(),
            version: 4,
            sha256: "cd".repeat(32),
            draft: false,
        },
    ];
    if let Some(v) = draft_version {
        docs[0].version = v;
        docs[0].draft = true;
        docs[0].sha256 = "ef".repeat(32);
    }
    docs
}

/// Stores a finished run of `CASE` (and `OTHER`, which fails) with `good` deciding how
/// `CASE` went; compared with `baseline` when given. Returns the report.
pub async fn store_run(
    store: &Store,
    id: &str,
    good: bool,
    baseline: Option<(&str, &Report)>,
    draft_version: Option<i64>,
) -> Report {
    let set = core_set();
    let case = set.cases.iter().find(|c| c.id == CASE).unwrap();
    let other = set.cases.iter().find(|c| c.id == OTHER).unwrap();
    let deny = BTreeSet::new();
    let labels = Labels {
        model: "offline".into(),
        prompts: "1111222233334444".into(),
        policies: "5555666677778888".into(),
        extra: Default::default(),
    };
    let results = vec![(case, vec![outcome(good)]), (other, vec![idle()])];
    let report = Report::build(&set.name, labels, 1, &deny, &results);
    let traces: Vec<NewEvalRunCase> = results
        .iter()
        .map(|(c, o)| {
            let t = CaseTrace::build(c, o, &deny);
            NewEvalRunCase {
                case_id: t.id.clone(),
                title: t.title.clone(),
                passed: t.passed,
                trace: serde_json::to_value(&t).unwrap(),
            }
        })
        .collect();
    store
        .insert_eval_run_with_documents(
            &NewEvalRun {
                id: id.into(),
                label: match draft_version {
                    Some(v) => format!("draft policy b2b v{v}"),
                    None => "active".into(),
                },
                model: "offline".into(),
                subject: "test".into(),
                doc_kind: draft_version.map(|_| "policy".into()),
                doc_name: draft_version.map(|_| "b2b".into()),
                doc_version: draft_version,
                baseline_id: baseline.map(|(b, _)| b.to_string()),
                started_by: "manager:mo".into(),
            },
            &documents(draft_version),
        )
        .await
        .unwrap();
    let comparison = baseline.map(|(_, b)| compare(b, &report, &Gate::default()));
    let mut summary = report_summary(&report);
    if let Some(c) = &comparison {
        summary = summary.with_comparison(c);
    }
    store
        .finish_eval_run_with_cases(
            id,
            &serde_json::to_value(&summary).unwrap(),
            &serde_json::to_value(&report).unwrap(),
            comparison
                .map(|c| serde_json::to_value(c).unwrap())
                .as_ref(),
            &traces,
        )
        .await
        .unwrap();
    report
}
