//! What one step of the planner loop writes, as queued writes: the run's conversation as
//! it grows (delta checkpoints, `run_messages`), and the rows of a tool call and its side
//! effects for callers that need no answer back. On a SQLite file store's writer each of
//! these is queued and sent with the transaction's `COMMIT` (see [`tx`](crate::tx)), so a
//! step of a run (its model call's event, the call's row, decision, audit events, side
//! effect and checkpoint) commits in one round trip; elsewhere they run when called.

use serde_json::Value;
use sqlx::Row;

use crate::calls::CallTask;
use crate::tx::tx_write;
use crate::{
    NewApproval, OutboxEmail, Result, Store, StoreError, StoreTx, ToolCallStatus, dispatch,
    from_json, micros, now, to_json,
};

/// One saved message of a run's conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct RunMessage {
    /// Its place in the conversation, from 0.
    pub idx: i64,
    /// The chat message (the agent's JSON form).
    pub message: Value,
    /// For a tool result: what became of the call (the agent's JSON form).
    pub outcome: Option<Value>,
}

pub(crate) const APPEND_MESSAGE_SQL: &str =
    "INSERT INTO run_messages (run_id, idx, message, outcome) VALUES ($1, $2, $3, $4)";
const RUN_MESSAGES_SQL: &str =
    "SELECT idx, message, outcome FROM run_messages WHERE run_id = $1 ORDER BY idx";
pub(crate) const INSERT_CALL_SQL: &str = "INSERT INTO tool_calls (call_id, run_id, customer_id, name, \
     arguments, status, result, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
     ON CONFLICT (call_id) DO NOTHING";
const ADD_EMAIL_SQL: &str = "INSERT INTO outbox (id, call_id, customer_id, to_addr, subject, \
     body, created_at, status, sent_at, message_id, in_reply_to, references_hdr) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (call_id) DO NOTHING";
const ADD_CALL_TASK_SQL: &str = "INSERT INTO call_tasks (id, call_id, customer_id, reason, \
     script, not_before, status, created_at, done_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (call_id) DO NOTHING";
const ADD_APPROVAL_SQL: &str = "INSERT INTO approvals (id, call_id, run_id, customer_id, tool, \
     action, decision, context, priority, amount_minor, currency, required_role, status, \
     created_at, bundle_of, segment, jurisdiction, rule_ids, search) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', $13, $14, $15, $16, \
     $17, $18)";

impl StoreTx {
    /// Saves `messages` (each with its outcome, for a tool result) as run `run_id`'s
    /// messages `first`, `first + 1`, … A place already taken fails the transaction (a
    /// unique violation, reported on the SQLite writer by a later call, `commit` at the
    /// latest): two drivers of one run cannot both save the same step.
    pub async fn append_run_messages(
        &mut self,
        run_id: &str,
        first: i64,
        messages: &[(Value, Option<Value>)],
    ) -> Result<()> {
        let index = |k: usize| {
            i64::try_from(k)
                .ok()
                .and_then(|k| first.checked_add(k))
                .ok_or_else(|| {
                    StoreError::Invalid(format!("run {run_id}: message index overflows"))
                })
        };
        for (k, (message, outcome)) in messages.iter().enumerate() {
            let idx = index(k)?;
            tx_write!(
                self,
                APPEND_MESSAGE_SQL,
                [run_id, idx, to_json(message), outcome.as_ref().map(to_json)]
            );
        }
        Ok(())
    }

    /// Records a fresh tool call with what became of it (`status`, `result`), without
    /// answering: [`StoreError::Conflict`] (on the SQLite writer, from a later call of the
    /// transaction, `commit` at the latest) if a call with this id is already recorded, so
    /// a call is never carried out twice under one id.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_tool_call(
        &mut self,
        call_id: &str,
        run_id: &str,
        customer_id: &str,
        name: &str,
        arguments: &str,
        status: ToolCallStatus,
        result: &Value,
    ) -> Result<()> {
        tx_write!(
            self,
            INSERT_CALL_SQL,
            [call_id, run_id, customer_id, name, arguments, status.as_str(), to_json(result), now()],
            or: StoreError::Conflict(format!("tool call {call_id} is already recorded"))
        );
        Ok(())
    }

    /// [`StoreTx::enqueue_email`] without the answer (whether the email is new): queued on
    /// the SQLite writer. An email the call already enqueued stays as it is.
    pub async fn add_email(&mut self, e: &OutboxEmail) -> Result<()> {
        tx_write!(
            self,
            ADD_EMAIL_SQL,
            [
                e.id.as_str(),
                e.call_id.as_str(),
                e.customer_id.as_str(),
                e.to_addr.as_str(),
                e.subject.as_str(),
                e.body.as_str(),
                micros(e.created_at),
                e.status.as_str(),
                e.sent_at.map(micros),
                e.message_id.as_deref(),
                e.in_reply_to.as_deref(),
                e.references_hdr.as_deref(),
            ]
        );
        Ok(())
    }

    /// [`StoreTx::insert_call_task`] without the answer: queued on the SQLite writer. A
    /// task the call already created stays as it is.
    pub async fn add_call_task(&mut self, t: &CallTask) -> Result<()> {
        tx_write!(
            self,
            ADD_CALL_TASK_SQL,
            [
                t.id.as_str(),
                t.call_id.as_str(),
                t.customer_id.as_str(),
                t.reason.as_str(),
                t.script.as_str(),
                t.not_before.map(micros),
                t.status.as_str(),
                micros(t.created_at),
                t.done_at.map(micros),
            ]
        );
        Ok(())
    }

    /// [`StoreTx::insert_approval`], queued on the SQLite writer: a call that already has
    /// an approval item fails the transaction when the batch runs (`commit` at the latest).
    pub async fn add_approval(&mut self, a: &NewApproval) -> Result<()> {
        let f = crate::queue::facets(a);
        tx_write!(
            self,
            ADD_APPROVAL_SQL,
            [
                a.id.as_str(),
                a.call_id.as_str(),
                a.run_id.as_str(),
                a.customer_id.as_str(),
                a.tool.as_str(),
                to_json(&a.action),
                to_json(&a.decision),
                to_json(&a.context),
                a.priority,
                a.amount_minor,
                a.currency.as_str(),
                a.required_role.as_str(),
                now(),
                a.bundle_of.as_deref(),
                f.segment.as_str(),
                f.jurisdiction.as_str(),
                f.rule_ids.as_str(),
                f.search.as_str(),
            ]
        );
        Ok(())
    }
}

impl Store {
    /// Run `run_id`'s saved messages, in order (none for a run checkpointed whole).
    pub async fn run_messages(&self, run_id: &str) -> Result<Vec<RunMessage>> {
        let rows: Vec<(i64, String, Option<String>)> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(RUN_MESSAGES_SQL)
                .bind(run_id)
                .fetch_all(pool)
                .await?
            {
                out.push((
                    r.try_get("idx")?,
                    r.try_get("message")?,
                    r.try_get("outcome")?,
                ));
            }
            out
        });
        rows.into_iter()
            .map(|(idx, message, outcome)| {
                Ok(RunMessage {
                    idx,
                    message: from_json("run message", run_id, &message)?,
                    outcome: outcome
                        .map(|o| from_json("run message outcome", run_id, &o))
                        .transpose()?,
                })
            })
            .collect()
    }
}
