//! Issue #17, honest evals: a case whose run errors keeps and scores every call it made
//! before the error, and its tokens. An executed violation counts whatever happens after.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use argent_core::action::ToolName;
use argent_evals::{AgentRunner, CallStatus, EvalCase, ModelChoice, score_with};
use argent_llm::{ChatResponse, LlmError, ScriptedModel, ToolCall};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

fn runner() -> AgentRunner {
    AgentRunner::new(&repo("prompts"), &repo("policies"), ModelChoice::Offline)
}

/// A case whose expectations make an executed escalation a violation (for the test).
fn case() -> EvalCase {
    let mut case = EvalCase::load(&repo("evals/core/attorney-flagged-b2b.toml")).unwrap();
    case.expect.must_not_execute = vec![ToolName::Escalate];
    case
}

/// The model escalates (executed, with tokens), then errors with `error`.
fn model(case: &EvalCase, error: LlmError) -> Arc<ScriptedModel> {
    let model = Arc::new(ScriptedModel::new());
    let args = serde_json::json!({
        "customer_id": case.customer.id, "reason": "Solicitors act for the customer.", "urgency": "normal"
    });
    model.push_response(
        ChatResponse::tool_calls(vec![ToolCall::new("call_1", "escalate", args.to_string())])
            .with_usage(300, 40),
    );
    model.push_error(error);
    model
}

fn assert_kept(case: &EvalCase, outcome: &argent_evals::CaseOutcome, label: &str) {
    assert!(outcome.error.is_some(), "{label}: the error is reported");
    assert_eq!(outcome.calls.len(), 1, "{label}: {:?}", outcome.calls);
    assert_eq!(outcome.calls[0].tool, "escalate", "{label}");
    assert_eq!(outcome.calls[0].status, CallStatus::Executed, "{label}");
    assert_eq!(outcome.tokens, 340, "{label}");
    assert!(
        outcome.end_state.escalated,
        "{label}: the end state is read"
    );
    let score = score_with(case, outcome, &BTreeSet::new());
    assert!(!score.passed, "{label}");
    assert_eq!(score.violations.len(), 1, "{label}: {score:?}");
    assert!(
        score.failures.iter().any(|f| f.starts_with("run failed")),
        "{label}: {score:?}"
    );
}

/// An operator error (the script ran out, as a misconfigured model would) after the call.
#[tokio::test]
async fn an_operator_error_keeps_the_calls_before_it() {
    let case = case();
    let outcome = runner()
        .run_case_with(&case, model(&case, LlmError::ScriptExhausted { index: 1 }))
        .await;
    assert!(
        outcome.error.as_deref().unwrap().contains("scripted model"),
        "{:?}",
        outcome.error
    );
    assert_kept(&case, &outcome, "operator error");
}

/// The model's endpoint fails after the call: the run needs a person, and the case
/// reports that as its error with the call kept.
#[tokio::test]
async fn a_model_failure_keeps_the_calls_before_it() {
    let case = case();
    let down = LlmError::Transport {
        endpoint: "http://127.0.0.1:9/v1/chat/completions".into(),
        attempts: 4,
        message: "connection refused".into(),
    };
    let outcome = runner().run_case_with(&case, model(&case, down)).await;
    let error = outcome.error.clone().unwrap();
    assert!(error.contains("needs a person"), "{error}");
    assert!(error.contains("connection refused"), "{error}");
    assert_kept(&case, &outcome, "model failure");
}
