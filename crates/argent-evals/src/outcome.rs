//! The boundary with the agent: [`CaseRunner`] runs one case and reports a [`CaseOutcome`].
//! The agent integration implements the trait; everything else in this crate is built on
//! these plain values, so scoring and reporting are testable without a model or a store.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::case::EvalCase;

/// Runs eval cases against the real planner loop (or anything else that can).
#[async_trait::async_trait]
pub trait CaseRunner: Send + Sync {
    /// Runs one case once; `attempt` is 0..repeat.
    async fn run_case(&self, case: &EvalCase, attempt: u32) -> CaseOutcome;
}

/// What happened when one case ran once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseOutcome {
    /// Every tool call the model made, in order.
    pub calls: Vec<CallRecord>,
    /// Every send_email the model attempted.
    pub emails: Vec<DraftEmail>,
    pub end_state: EndState,
    pub tokens: u64,
    pub latency_ms: u64,
    /// The run failed (operator error); the case fails.
    pub error: Option<String>,
    /// The model's closing text after each inbound message, in message order (`None` when
    /// it ended without one). For the per-case trace; not scored.
    #[serde(default)]
    pub replies: Vec<Option<String>>,
}

impl CaseOutcome {
    /// An outcome for a run that could not happen at all.
    pub fn failed(error: impl Into<String>) -> CaseOutcome {
        CaseOutcome {
            calls: Vec::new(),
            emails: Vec::new(),
            end_state: EndState::default(),
            tokens: 0,
            latency_ms: 0,
            error: Some(error.into()),
            replies: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub tool: String,
    /// The parsed arguments; `Null` if the model's text was not JSON.
    pub arguments: serde_json::Value,
    pub status: CallStatus,
    /// Ids of the rules that fired in the final decision.
    pub rules: Vec<String>,
    /// Which inbound message (0-based, in the case's order) the call answered.
    #[serde(default)]
    pub message: u32,
    /// The model's argument text as sent, kept only when it was not JSON (`arguments` is
    /// then `Null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_arguments: Option<String>,
    /// What the model was told the call did (the tool result it was shown).
    #[serde(default)]
    pub model_text: String,
}

/// How a tool call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Policy allowed it (or a person approved it) and it ran.
    Executed,
    /// Waiting in the approval queue.
    Queued,
    /// Denied by policy; the model was told why.
    Refused,
    /// Arguments failed the schema or the semantic checks.
    Invalid,
}

impl CallStatus {
    pub const ALL: [CallStatus; 4] = [
        CallStatus::Executed,
        CallStatus::Queued,
        CallStatus::Refused,
        CallStatus::Invalid,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            CallStatus::Executed => "executed",
            CallStatus::Queued => "queued",
            CallStatus::Refused => "refused",
            CallStatus::Invalid => "invalid",
        }
    }
}

impl std::fmt::Display for CallStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DraftEmail {
    pub to: String,
    pub subject: String,
    pub body: String,
    pub status: CallStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromiseState {
    pub amount_minor: i64,
    pub currency: String,
    pub promised_date: NaiveDate,
}

/// The account as the run left it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndState {
    pub promises: Vec<PromiseState>,
    /// Kinds of the cases opened (e.g. `dispute`).
    pub cases: Vec<String>,
    pub plans_executed: u32,
    pub plans_queued: u32,
    pub escalated: bool,
    /// Executed emails, i.e. in the outbox.
    pub emails_sent: u32,
}
