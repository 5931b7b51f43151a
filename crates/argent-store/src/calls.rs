//! The dispute lifecycle (a case moved along, audited, conditional on its current state),
//! call tasks the agent requests for a collector, and logged telephone contacts (attempts
//! and conversations) in the contact log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

use argent_core::{Case, CaseStatus};

use crate::audit::NewAuditEvent;
use crate::records::{CaseRow, case_row, cases_from};
use crate::tx::{dispatch_tx, tx_write};
use crate::{Result, Store, StoreError, StoreTx, dispatch, eq_or_all, micros};

/// Where a call task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallTaskStatus {
    /// Waiting for a collector.
    Open,
    /// A collector logged a call for it.
    Done,
}

impl CallTaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallTaskStatus::Open => "open",
            CallTaskStatus::Done => "done",
        }
    }
}

impl std::str::FromStr for CallTaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(CallTaskStatus::Open),
            "done" => Ok(CallTaskStatus::Done),
            _ => Err(format!("'{s}' is not a call task status (open, done)")),
        }
    }
}

/// A telephone call the agent asked a collector to make.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallTask {
    pub id: String,
    /// The tool call that requested it (one task per call).
    pub call_id: String,
    pub customer_id: String,
    pub reason: String,
    pub script: String,
    pub not_before: Option<DateTime<Utc>>,
    pub status: CallTaskStatus,
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
}

const CASE_SQL: &str = "SELECT id, customer_id, kind, status, invoice_numbers, disputed_currency, \
                        disputed_minor, summary, opened_at FROM cases WHERE id = $1";

const CALL_TASK_COLS: &str =
    "id, call_id, customer_id, reason, script, not_before, status, created_at, done_at";

macro_rules! call_task_row {
    ($r:expr) => {{
        let id: String = $r.try_get("id")?;
        let status: String = $r.try_get("status")?;
        CallTask {
            status: status.parse().map_err(|why| StoreError::Corrupt {
                what: "call task status",
                id: id.clone(),
                why,
            })?,
            call_id: $r.try_get("call_id")?,
            customer_id: $r.try_get("customer_id")?,
            reason: $r.try_get("reason")?,
            script: $r.try_get("script")?,
            not_before: $r.try_get("not_before")?,
            created_at: $r.try_get("created_at")?,
            done_at: $r.try_get("done_at")?,
            id,
        }
    }};
}

impl StoreTx {
    /// The case `id` as this transaction sees it (`NotFound` when there is none).
    pub async fn case(&mut self, id: &str) -> Result<Case> {
        let rows = dispatch_tx!(self, |conn| {
            let mut out: Vec<CaseRow> = Vec::new();
            for r in sqlx::query(CASE_SQL).bind(id).fetch_all(&mut *conn).await? {
                out.push(case_row!(r));
            }
            out
        });
        cases_from(rows)?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("case {id}")))
    }

    /// Moves case `id` to `to`, if that is a step of its kind's lifecycle from its current
    /// status (`Invalid` naming why not), with an audit event `case.<to>` naming the actor,
    /// the step and the note, in this transaction. The update is conditional on the status
    /// read, so of two concurrent moves from one state exactly one wins (the other is
    /// `Conflict`). Returns the case as it now is.
    pub async fn advance_case(
        &mut self,
        id: &str,
        to: CaseStatus,
        actor: &str,
        note: Option<&str>,
    ) -> Result<Case> {
        let mut case = self.case(id).await?;
        let from = case.status;
        case.kind
            .check_transition(from, to)
            .map_err(|e| StoreError::Invalid(format!("case {id}: {e}")))?;
        tx_write!(
            self,
            "UPDATE cases SET status = $1 WHERE id = $2 AND status = $3",
            [to.as_str(), id, from.as_str()],
            or: StoreError::Conflict(format!("case {id} is no longer {from}"))
        );
        self.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: Some(case.customer_id.clone()),
            actor: actor.to_string(),
            kind: format!("case.{}", to.as_str()),
            payload: json!({
                "case_id": id,
                "kind": case.kind.as_str(),
                "from": from.as_str(),
                "to": to.as_str(),
                "invoices": case.invoice_numbers,
                "note": note,
            }),
        })
        .await?;
        case.status = to;
        Ok(case)
    }

    /// Stores a call task (the executor of `request_call`). Idempotent per tool call:
    /// returns whether it was new.
    pub async fn insert_call_task(&mut self, t: &CallTask) -> Result<bool> {
        let sql = "INSERT INTO call_tasks (id, call_id, customer_id, reason, script, not_before, \
                   status, created_at, done_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                   ON CONFLICT (call_id) DO NOTHING";
        let n = dispatch_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(t.id.as_str())
                .bind(t.call_id.as_str())
                .bind(t.customer_id.as_str())
                .bind(t.reason.as_str())
                .bind(t.script.as_str())
                .bind(t.not_before.map(micros))
                .bind(t.status.as_str())
                .bind(micros(t.created_at))
                .bind(t.done_at.map(micros))
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Logs a telephone contact with the customer made by `actor` at `at`: an attempt, or
    /// (`conversation`) a call in which the collector spoke with the customer. With `task`,
    /// the open call task it answers is marked done (`NotFound` if there is no such open
    /// task for this customer). `log_id` identifies the entry (a replay with the same id
    /// logs nothing more). Audited as `call.logged`.
    #[allow(clippy::too_many_arguments)]
    pub async fn log_call(
        &mut self,
        log_id: &str,
        customer_id: &str,
        at: DateTime<Utc>,
        conversation: bool,
        task: Option<&str>,
        actor: &str,
        note: Option<&str>,
    ) -> Result<()> {
        if let Some(task) = task {
            tx_write!(
                self,
                "UPDATE call_tasks SET status = 'done', done_at = $1 \
                 WHERE id = $2 AND customer_id = $3 AND status = 'open'",
                [micros(at), task, customer_id],
                or: StoreError::NotFound(format!("open call task {task} of customer {customer_id}"))
            );
        }
        tx_write!(
            self,
            "INSERT INTO contact_log (customer_id, channel, at, call_id, conversation) \
             VALUES ($1, 'phone', $2, $3, $4) ON CONFLICT (call_id, channel) DO NOTHING",
            [customer_id, micros(at), log_id, conversation]
        );
        self.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: Some(customer_id.to_string()),
            actor: actor.to_string(),
            kind: "call.logged".into(),
            payload: json!({
                "log_id": log_id,
                "at": micros(at),
                "conversation": conversation,
                "task": task,
                "note": note,
            }),
        })
        .await?;
        Ok(())
    }
}

impl Store {
    /// The case `id` (`NotFound` when there is none).
    pub async fn case(&self, id: &str) -> Result<Case> {
        let rows = dispatch!(self, |pool| {
            let mut out: Vec<CaseRow> = Vec::new();
            for r in sqlx::query(CASE_SQL).bind(id).fetch_all(pool).await? {
                out.push(case_row!(r));
            }
            out
        });
        cases_from(rows)?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("case {id}")))
    }

    /// [`StoreTx::advance_case`] in a transaction of its own.
    pub async fn advance_case(
        &self,
        id: &str,
        to: CaseStatus,
        actor: &str,
        note: Option<&str>,
    ) -> Result<Case> {
        let mut tx = self.begin().await?;
        let case = tx.advance_case(id, to, actor, note).await?;
        tx.commit().await?;
        Ok(case)
    }

    /// [`StoreTx::log_call`] in a transaction of its own. The customer must exist.
    #[allow(clippy::too_many_arguments)]
    pub async fn log_call(
        &self,
        log_id: &str,
        customer_id: &str,
        at: DateTime<Utc>,
        conversation: bool,
        task: Option<&str>,
        actor: &str,
        note: Option<&str>,
    ) -> Result<()> {
        // NotFound for an unknown customer, before anything is written.
        self.customer(customer_id).await?;
        let mut tx = self.begin().await?;
        tx.log_call(log_id, customer_id, at, conversation, task, actor, note)
            .await?;
        tx.commit().await
    }

    /// Call tasks, oldest first: one customer's or everyone's, open ones only or all.
    pub async fn call_tasks(
        &self,
        customer_id: Option<&str>,
        open_only: bool,
    ) -> Result<Vec<CallTask>> {
        let status = if open_only {
            " AND status = 'open'"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {CALL_TASK_COLS} FROM call_tasks WHERE {}{status} ORDER BY created_at, id",
            eq_or_all("customer_id", customer_id)
        );
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(customer_id).fetch_all(pool).await? {
                out.push(call_task_row!(r));
            }
            out
        }))
    }
}
