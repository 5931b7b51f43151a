//! The scheduler's tick: every account, planned against its procedure, with the steps due
//! enqueued as work items (`argent tick`, and `argent serve`'s in-process scheduler).
//!
//! A tick reads the active procedure documents (the database's, checked against the audit
//! trail like every active document), then pages through the customers in id order
//! ([`Store::tick_batch`], the next page read while the current one is planned and
//! written; a page's states are its own customers', so the overlap changes nothing), runs the pure planner ([`argent_procedure::plan`]) on each
//! account and writes each page in one transaction ([`StoreTx::apply_tick`]): promises
//! judged kept or broken, changed states, and the due steps as `procedure_step` work items
//! keyed by [`StepWork::dedupe_key`]. Invariants:
//!
//! - **Exactly once.** Planning is a pure function of what is stored and `now`; enqueueing
//!   is idempotent by key and marking a promise is conditional on it still being open, so
//!   a tick run twice, or two ticks at once (two processes), enqueue each (account,
//!   procedure, version, step, cycle) once and audit it once.
//! - **One step per account per tick**, whatever it owes (the planner's rule).
//! - An account the planner cannot plan (a sum overflowing `i64` minor units) is skipped
//!   and named in the report; the others go on.
//!
//! [`StoreTx::apply_tick`]: argent_store::StoreTx::apply_tick

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use argent_procedure::{PauseReason, ProcedureSet, Snapshot, StepWork, WORK_KIND};
use argent_store::{DocKind, NewWorkItem, Store, TickWrite};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::AgentError;
use crate::documents::DocumentSet;

/// The actor recorded on what a tick writes.
pub const SCHEDULER_ACTOR: &str = "scheduler";

/// Customers per page (one read per table and one write transaction per page).
pub const DEFAULT_BATCH: i64 = 2000;

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TickReport {
    pub now: DateTime<Utc>,
    pub customers: usize,
    /// Steps the planner found due.
    pub due: usize,
    /// Of those, the ones this tick enqueued (the rest were already there).
    pub enqueued: usize,
    pub promises_broken: usize,
    pub promises_kept: usize,
    pub states_written: usize,
    /// Queued steps cancelled because the account's balance was cleared or it became
    /// paused.
    pub cancelled: u64,
    /// Steps due by step id.
    pub due_by_step: BTreeMap<String, usize>,
    /// Accounts paused, by reason.
    pub paused: BTreeMap<String, usize>,
    /// Accounts with no procedure (risk in review, no rule).
    pub unassigned: usize,
    /// Accounts that could not be planned, with why.
    pub errors: Vec<String>,
    /// Where the time went (`read_ms`: waiting for pages, which are read ahead).
    pub read_ms: u128,
    pub plan_ms: u128,
    pub write_ms: u128,
}

/// The active procedures, with their versions, validated as a set together with the
/// active prompts (a step's prompt must exist). A database without procedure documents is
/// an error naming how to get them.
pub async fn active_procedures(store: &Store) -> Result<ProcedureSet, AgentError> {
    let active = store.active_documents().await?;
    let versions: BTreeMap<String, i64> = active
        .iter()
        .filter(|v| v.kind == DocKind::Procedure)
        .map(|v| (v.name.clone(), v.version))
        .collect();
    if versions.is_empty() {
        return Err(AgentError::Io(
            "the database has no active procedure documents: seed them from procedures/ \
             (argent tick does so on a database that has none)"
                .into(),
        ));
    }
    DocumentSet::from_versions(&active)
        .procedure_set_versions(&versions)
        .map_err(AgentError::Io)
}

/// Runs one tick at `now` over every customer, `batch` customers at a time.
pub async fn tick(
    store: &Store,
    set: &ProcedureSet,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<TickReport, AgentError> {
    let mut report = TickReport {
        now,
        ..TickReport::default()
    };
    let (mut read, mut planning, mut write) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    // The next page is read while this one is planned and written (`read` counts only
    // the time spent waiting for it).
    let fetch = |after: String| {
        let store = store.clone();
        tokio::spawn(async move { store.tick_batch(&after, batch).await })
    };
    let mut pending = fetch(String::new());
    loop {
        let t = Instant::now();
        let b = pending
            .await
            .map_err(|e| AgentError::Invariant(format!("reading a page of accounts: {e}")))??;
        read += t.elapsed();
        let Some(last) = b.customers.last() else {
            break;
        };
        pending = fetch(last.id.clone());
        let t = Instant::now();
        let mut w = TickWrite::default();
        for c in &b.customers {
            report.customers += 1;
            let snap = Snapshot {
                customer: c,
                invoices: b.invoices.get(&c.id).map_or(&[], Vec::as_slice),
                payments: b.payments.get(&c.id).map_or(&[], Vec::as_slice),
                cases: b.cases.get(&c.id).map_or(&[], Vec::as_slice),
                promises: b.promises.get(&c.id).map_or(&[], Vec::as_slice),
                last_contact: b.last_contact.get(&c.id).copied(),
            };
            let prior = b.states.get(&c.id);
            let plan = match argent_procedure::plan(&snap, prior, set, now) {
                Ok(p) => p,
                Err(e) => {
                    report.errors.push(e.to_string());
                    continue;
                }
            };
            match plan.state.status {
                argent_procedure::Status::Paused => {
                    let r = plan
                        .state
                        .paused_reason
                        .map_or("unknown", |r: PauseReason| r.as_str());
                    *report.paused.entry(r.to_string()).or_default() += 1;
                    if prior.is_none_or(|p| p.status != argent_procedure::Status::Paused) {
                        w.paused.push((c.id.clone(), r.to_string()));
                    }
                }
                argent_procedure::Status::Unassigned => report.unassigned += 1,
                _ => {}
            }
            for o in &plan.promises {
                w.promises.push((c.id.clone(), o.clone()));
            }
            if plan.ended {
                w.ended.push(c.id.clone());
            }
            if let Some(due) = &plan.due {
                report.due += 1;
                *report.due_by_step.entry(due.work.step.clone()).or_default() += 1;
                w.work.push(work_item(&c.id, &due.work, due.due_at));
            }
            // Only changed states are written; a customer seen for the first time is
            // written once, so it shows in the summary.
            if prior != Some(&plan.state) {
                w.states.push(plan.state);
            }
        }
        planning += t.elapsed();
        let t = Instant::now();
        let mut tx = store.begin().await?;
        let written = tx.apply_tick(&w, SCHEDULER_ACTOR, now).await?;
        tx.commit().await?;
        write += t.elapsed();
        report.enqueued += written.enqueued.len();
        report.promises_broken += written.promises_broken;
        report.promises_kept += written.promises_kept;
        report.states_written += written.states;
        report.cancelled += written.cancelled;
    }
    report.read_ms = read.as_millis();
    report.plan_ms = planning.as_millis();
    report.write_ms = write.as_millis();
    Ok(report)
}

/// The work item for a due step.
pub fn work_item(customer_id: &str, work: &StepWork, due_at: DateTime<Utc>) -> NewWorkItem {
    NewWorkItem {
        kind: WORK_KIND.to_string(),
        dedupe_key: work.dedupe_key(customer_id),
        customer_id: customer_id.to_string(),
        // Serializing a plain struct cannot fail.
        payload: serde_json::to_value(work).unwrap_or_default(),
        due_at,
    }
}
