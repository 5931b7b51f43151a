//! argent's workers: the collections desk runs itself.
//!
//! The scheduler (`argent tick`) enqueues a work item per procedure step due for an
//! account (`argent_store::work`, payload [`argent_procedure::StepWork`]); a worker
//! ([`Worker`], `argent worker`, or in-process under `argent serve --desk`) claims due
//! items with a lease, heartbeats while it runs them, and runs each step
//! ([`StepExecutor`]):
//!
//! | step kind | what the worker does |
//! | --- | --- |
//! | `email` | an agent run with the step's prompt; policy and approvals apply unchanged |
//! | `formal_demand` | the same, and every email it drafts is held for a manager (`procedure.formal-demand`) |
//! | `call_task` | an agent run asked to `request_call` with a script; if it made no call request at all, a call task with a generic script |
//! | `account_manager_alert` | an internal task for the account manager ([`AlertSink`]) |
//! | `credit_hold` | a credit hold on the customer (exported for the ERP) |
//! | `agency_referral` | a pending referral for a manager with its documentation package |
//!
//! **Nothing twice.** A step's side effect and the end of its work item commit together:
//! the plain writes (hold, alert, referral) are made in the transaction that finishes the
//! item, conditional on the worker still holding the lease. An agent run is created in one
//! transaction with its `run_started` event and the item's link to it; the run's id is
//! derived from the item, and a worker that takes an expired item over resumes the linked
//! run from its checkpoint, where a tool call that took effect is never repeated.
//!
//! The pure parts (lease arithmetic, backoff, what a failure becomes) are in [`lease`];
//! the loop is [`runtime`]; the executors are [`steps`] and [`package`]. [`sim`] runs the
//! whole desk over simulated days against a seeded model of debtors (`argent demo`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use argent_store::WorkItem;

pub mod lease;
pub mod mail;
pub mod package;
pub mod runtime;
pub mod scheduler;
pub mod sim;
pub mod steps;

pub use lease::{AfterFailure, LeaseConfig};
pub use runtime::{Worker, WorkerConfig, WorkerReport, default_owner, shutdown_on_signals};
pub use scheduler::{ProcedureTick, Scheduler, run_scheduler};
pub use steps::{AlertSink, InternalAlert, StepExecutor, TaskAlertSink};

/// The lease a worker holds on an item while it runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub until: DateTime<Utc>,
}

/// Why an attempt did not finish its item.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The worker no longer holds the lease (another worker took the item over): nothing
    /// was committed by this attempt's last transaction; stop.
    #[error("the lease was lost")]
    LeaseLost,
    /// The attempt failed; `retryable` errors are tried again with backoff.
    #[error("{message}")]
    Failed { message: String, retryable: bool },
}

impl ExecError {
    pub fn retryable(message: impl Into<String>) -> ExecError {
        ExecError::Failed {
            message: message.into(),
            retryable: true,
        }
    }

    pub fn permanent(message: impl Into<String>) -> ExecError {
        ExecError::Failed {
            message: message.into(),
            retryable: false,
        }
    }
}

impl From<argent_store::StoreError> for ExecError {
    fn from(e: argent_store::StoreError) -> Self {
        match e {
            // Only the lease holder can finish or link an item: a conflict there is a lost
            // lease.
            argent_store::StoreError::Conflict(m) if m.contains("is not leased by") => {
                ExecError::LeaseLost
            }
            other => ExecError::retryable(other.to_string()),
        }
    }
}

/// Runs one claimed work item to its end: does the work and finishes the item
/// (`StoreTx::finish_work` with the lease's owner) in the transaction of its last side
/// effect. Returns the item's result.
#[async_trait]
pub trait Execute: Send + Sync {
    async fn execute(&self, item: &WorkItem, lease: &Lease) -> Result<Value, ExecError>;
}
