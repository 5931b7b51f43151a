//! Dunning procedures: per risk segment, an ordered ladder of steps (pre-due reminder →
//! due-date notice → overdue notice → call request → account-manager alert → credit hold →
//! formal demand → agency referral), kept as versioned TOML documents under `procedures/`.
//!
//! This crate is pure: it parses and validates procedure documents and decides, from an
//! account's facts, its state in its procedure and the time, which step is due and why an
//! account is paused. The scheduler (`argent tick`) turns due steps into work items
//! ([`StepWork`] payloads, kind [`WORK_KIND`]) and the workers execute them.
//!
//! Must not know: the database, the model, the mail system.

use serde::{Deserialize, Serialize};

pub mod doc;
pub mod plan;

pub use doc::{
    ASSIGNMENT, Anchor, Assignment, Conditions, Hours, Problem, Procedure, ProcedureSet, Rule,
    Step, parse_assignment, parse_procedure, validate,
};
pub use plan::{
    DueStep, PauseReason, Plan, PlanError, PromiseOutcome, Snapshot, State, Status,
    in_business_hours, plan, schedule,
};

/// The `kind` of the work items that carry a [`StepWork`].
pub const WORK_KIND: &str = "procedure_step";

/// What a step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The agent drafts an email through the normal loop with the step's prompt; policy
    /// and approval apply unchanged.
    Email,
    /// A task for a collector to call, with a call script the agent drafts.
    CallTask,
    /// An internal notification to the customer's account manager.
    AccountManagerAlert,
    /// Sets the credit-hold flag on the customer (exported for the ERP).
    CreditHold,
    /// An email or letter with legal language; always needs a person's approval.
    FormalDemand,
    /// Referral to a collection agency; needs a manager, and produces the documentation
    /// package (invoices, contact history, audit extract).
    AgencyReferral,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Email => "email",
            StepKind::CallTask => "call_task",
            StepKind::AccountManagerAlert => "account_manager_alert",
            StepKind::CreditHold => "credit_hold",
            StepKind::FormalDemand => "formal_demand",
            StepKind::AgencyReferral => "agency_referral",
        }
    }

    /// Whether the step contacts the customer (stopped by cease-contact, bankruptcy and
    /// attorney flags).
    pub fn contacts_customer(self) -> bool {
        matches!(
            self,
            StepKind::Email | StepKind::CallTask | StepKind::FormalDemand
        )
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The payload of a `procedure_step` work item: one step due for one account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepWork {
    /// Procedure document name (`standard`).
    pub procedure: String,
    /// The procedure document's version the step was planned from.
    pub version: i64,
    /// Step id within the procedure (`overdue_notice`).
    pub step: String,
    pub kind: StepKind,
    /// Which time round the ladder this is for the account: 1 for its first dunning
    /// cycle; a new cycle starts when an account that was cleared falls overdue again.
    pub cycle: i64,
    /// The prompt template the agent drafts with (`step/overdue_notice`), for the kinds
    /// the agent drafts.
    pub prompt: Option<String>,
    /// The overdue invoices the step covers (one contact for all of them).
    pub invoices: Vec<String>,
    /// For a broken-promise follow-up: the promise.
    pub promise_id: Option<String>,
    /// Why the step is due, for people (`7 days past the oldest due date`).
    pub reason: String,
}

impl StepWork {
    /// The work item's idempotency key: one item per (account, procedure, version, step,
    /// cycle), and for a broken-promise follow-up per promise too (a cycle can see two
    /// promises broken).
    pub fn dedupe_key(&self, customer_id: &str) -> String {
        let key = format!(
            "step|{customer_id}|{}|{}|{}|{}",
            self.procedure, self.version, self.step, self.cycle
        );
        match &self.promise_id {
            Some(p) => format!("{key}|{p}"),
            None => key,
        }
    }
}
