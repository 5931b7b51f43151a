//! Per-case traces: what happened in one case of a run, in enough detail to read the case
//! on its own — the inbound messages, every tool call with its arguments, status, the rules
//! that fired and what the model was told, the model's closing text after each message,
//! the drafted emails, the account as the run left it, and how each attempt was scored.
//!
//! A [`Report`](crate::Report) keeps the figures of a run (small, listed and compared); the
//! traces are kept beside it, one per case (the server stores them per case so a
//! drill-down page loads one case, not the whole run). [`run_set_traced`](crate::run_set_traced)
//! and [`run_documents_traced`](crate::run_documents_traced) return both.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::case::{EvalCase, InboundMessage};
use crate::outcome::{CallRecord, CaseOutcome, DraftEmail, EndState};
use crate::report::Report;
use crate::score::score_with;

/// Identifies the trace format (kept in each stored trace).
pub const TRACE_VERSION: u32 = 1;

/// One case of a run, every attempt in full.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseTrace {
    pub version: u32,
    pub id: String,
    pub title: String,
    pub tags: Vec<String>,
    pub customer_id: String,
    pub customer_name: String,
    /// The instant the case ran at.
    pub now: DateTime<Utc>,
    /// What the customer wrote, in the order the agent was given it.
    pub messages: Vec<InboundMessage>,
    /// Every attempt passed (what the report's case says).
    pub passed: bool,
    pub attempts: Vec<AttemptTrace>,
}

/// One attempt at one case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptTrace {
    pub attempt: u32,
    pub passed: bool,
    /// One reason per unmet expectation.
    pub failures: Vec<String>,
    /// Executed policy violations (also among the failures).
    pub violations: Vec<String>,
    /// The run failed with an operator error.
    pub error: Option<String>,
    pub tokens: u64,
    pub latency_ms: u64,
    /// Every tool call, in order, each with the message it answered.
    pub calls: Vec<CallRecord>,
    /// The model's closing text after each message (`None`: it ended without one).
    pub replies: Vec<Option<String>>,
    /// Every `send_email` the model attempted, with how it ended.
    pub emails: Vec<DraftEmail>,
    pub end_state: EndState,
}

impl CaseTrace {
    /// The trace of `case` from its attempts' outcomes (in attempt order), scored as the
    /// report scores them. Pure.
    pub fn build(
        case: &EvalCase,
        outcomes: &[CaseOutcome],
        deny_rules: &BTreeSet<String>,
    ) -> CaseTrace {
        let attempts: Vec<AttemptTrace> = outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let s = score_with(case, o, deny_rules);
                AttemptTrace {
                    attempt: u32::try_from(i).unwrap_or(u32::MAX),
                    passed: s.passed,
                    failures: s.failures,
                    violations: s.violations,
                    error: o.error.clone(),
                    tokens: o.tokens,
                    latency_ms: o.latency_ms,
                    calls: o.calls.clone(),
                    replies: o.replies.clone(),
                    emails: o.emails.clone(),
                    end_state: o.end_state.clone(),
                }
            })
            .collect();
        CaseTrace {
            version: TRACE_VERSION,
            id: case.id.clone(),
            title: case.title.clone(),
            tags: case.tags.clone(),
            customer_id: case.customer.id.clone(),
            customer_name: case.customer.name.clone(),
            now: case.now,
            messages: case.messages.clone(),
            passed: !attempts.is_empty() && attempts.iter().all(|a| a.passed),
            attempts,
        }
    }
}

impl AttemptTrace {
    /// The calls made in answer to message `index`.
    pub fn calls_for(&self, index: u32) -> impl Iterator<Item = &CallRecord> {
        self.calls.iter().filter(move |c| c.message == index)
    }
}

/// A run's report and the trace of each of its cases (in the report's case order).
#[derive(Clone, Debug, PartialEq)]
pub struct TracedReport {
    pub report: Report,
    pub traces: Vec<CaseTrace>,
}
