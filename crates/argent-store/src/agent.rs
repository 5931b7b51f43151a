//! The planner loop's records: tool calls (the idempotency key of every side effect), the
//! approval queue, the email outbox, the contact log, and runs with their checkpoints and
//! work leases.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::tx::{Arg, ReadConn, dispatch_tx, tx_write};
use crate::{
    Backend, Pool, Result, Store, StoreError, StoreTx, dispatch, eq_or_all, from_json, micros, now,
    parse_col, str_enum, to_json,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallStatus {
    /// Parsed from the model's reply, not yet judged.
    Received,
    /// Arguments failed the tool's schema.
    Invalid,
    /// Policy denied it.
    Refused,
    /// Waiting in the approval queue.
    Queued,
    Approved,
    Rejected,
    /// Its side effect happened (or was enqueued in the outbox).
    Executed,
}
str_enum!(ToolCallStatus {
    Received => "received",
    Invalid => "invalid",
    Refused => "refused",
    Queued => "queued",
    Approved => "approved",
    Rejected => "rejected",
    Executed => "executed",
});

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    pub call_id: String,
    pub run_id: String,
    pub customer_id: String,
    pub name: String,
    /// The arguments exactly as the model sent them (possibly not even JSON).
    pub arguments: String,
    pub status: ToolCallStatus,
    pub result: Option<Value>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
}
str_enum!(ApprovalStatus {
    Pending => "pending",
    Approved => "approved",
    Rejected => "rejected",
});

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewApproval {
    pub id: String,
    /// The one tool call this approval is for (unique: one approval per call).
    pub call_id: String,
    pub run_id: String,
    pub customer_id: String,
    pub tool: String,
    pub action: Value,
    pub decision: Value,
    pub context: Value,
    /// Higher first in the queue.
    pub priority: i64,
    pub amount_minor: i64,
    pub currency: String,
    pub required_role: String,
    /// The pending item this one is held with and decided with (an email confirming, or
    /// offering the terms of, that item's action). `None` for an item on its own.
    #[serde(default)]
    pub bundle_of: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalItem {
    pub id: String,
    pub call_id: String,
    pub run_id: String,
    pub customer_id: String,
    pub tool: String,
    pub action: Value,
    pub decision: Value,
    pub context: Value,
    pub priority: i64,
    pub amount_minor: i64,
    pub currency: String,
    pub required_role: String,
    pub status: ApprovalStatus,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub decided_role: Option<String>,
    pub note: Option<String>,
    pub final_action: Option<Value>,
    /// The item this one is held with and decided with; `None` for an item on its own.
    #[serde(default)]
    pub bundle_of: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutboxEmail {
    pub id: String,
    /// The tool call that wrote it: at most one email per call.
    pub call_id: String,
    pub customer_id: String,
    pub to_addr: String,
    pub subject: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// `pending`, `sent`, `failed` (refused for good by the mail server: `last_error` has
    /// its answer) or `uncertain` (an SMTP attempt was never concluded; see
    /// `outbox_delivery`).
    pub status: String,
    pub sent_at: Option<DateTime<Utc>>,
    /// The `Message-ID` (without angle brackets), chosen when the email is queued.
    #[serde(default)]
    pub message_id: Option<String>,
    /// The customer's message it answers (`In-Reply-To`), without angle brackets.
    #[serde(default)]
    pub in_reply_to: Option<String>,
    /// `References`: message ids without angle brackets, space-separated.
    #[serde(default)]
    pub references_hdr: Option<String>,
    /// SMTP attempts started.
    #[serde(default)]
    pub attempts: i64,
    /// Not to be tried again before this (a temporary failure, a rate limit).
    #[serde(default)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The mail server's last answer, or the connection error.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl OutboxEmail {
    /// The hex SHA-256 of what the email says and to whom: the canonical JSON (sorted keys,
    /// no whitespace) of its id, call id, customer id, recipient, subject and body. The
    /// `executed` event of the call that queued it records this hash, and delivery refuses
    /// an email whose stored content no longer has it (see `integrity`).
    pub fn content_sha256(&self) -> String {
        let doc = serde_json::json!({
            "id": self.id,
            "call_id": self.call_id,
            "customer_id": self.customer_id,
            "to_addr": self.to_addr,
            "subject": self.subject,
            "body": self.body,
        });
        hex::encode(Sha256::digest(
            crate::audit::canonical_json(&doc).as_bytes(),
        ))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Finished,
    /// Ended by an operator or infrastructure error a person at the desk cannot fix for
    /// the customer (misconfigured model, key or cassette): the caller gets the error.
    Failed,
    /// Ended by a spent budget before `needs_person` existed (older rows only: a run
    /// whose budget is spent now ends `needs_person`).
    BudgetExhausted,
    /// The run could not finish (the model kept failing, a budget was spent, too many
    /// invalid turns): a collector's task carrying the trigger, the run and the error was
    /// created in the transaction that ended it.
    NeedsPerson,
}
str_enum!(RunStatus {
    Running => "running",
    Finished => "finished",
    Failed => "failed",
    BudgetExhausted => "budget_exhausted",
    NeedsPerson => "needs_person",
});

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub customer_id: String,
    pub trigger: Value,
    pub status: RunStatus,
    pub step: i64,
    pub tokens: i64,
    /// The loop's checkpoint: whatever it needs to resume.
    pub state: Value,
    pub model: String,
    pub prompt_version: String,
    pub policy_version: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
}

fn opt_json(what: &'static str, id: &str, v: Option<String>) -> Result<Option<Value>> {
    v.map(|s| from_json(what, id, &s)).transpose()
}

// ---------------------------------------------------------------------------------------
// Tool calls

const TOOL_CALL_SQL: &str = "SELECT call_id, run_id, customer_id, name, arguments, status, result, updated_at \
                             FROM tool_calls WHERE call_id = $1";

pub(crate) type ToolCallRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
);

macro_rules! tool_call_row {
    ($r:expr) => {
        (
            $r.try_get("call_id")?,
            $r.try_get("run_id")?,
            $r.try_get("customer_id")?,
            $r.try_get("name")?,
            $r.try_get("arguments")?,
            $r.try_get("status")?,
            $r.try_get("result")?,
            $r.try_get("updated_at")?,
        )
    };
}
pub(crate) use tool_call_row;

pub(crate) fn tool_call_record(r: ToolCallRow) -> Result<ToolCallRecord> {
    let (call_id, run_id, customer_id, name, arguments, status, result, updated_at) = r;
    Ok(ToolCallRecord {
        status: parse_col("tool call status", &call_id, &status)?,
        result: opt_json("tool call result", &call_id, result)?,
        call_id,
        run_id,
        customer_id,
        name,
        arguments,
        updated_at,
    })
}

impl StoreTx {
    /// Records a tool call under its id. Returns `false` (and changes nothing) if a call
    /// with this id was already recorded: the caller is replaying a step.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_tool_call(
        &mut self,
        call_id: &str,
        run_id: &str,
        customer_id: &str,
        name: &str,
        arguments: &str,
        status: ToolCallStatus,
    ) -> Result<bool> {
        let sql = "INSERT INTO tool_calls (call_id, run_id, customer_id, name, arguments, status, result, \
                   created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7) \
                   ON CONFLICT (call_id) DO NOTHING";
        let at = now();
        let n = dispatch_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(call_id)
                .bind(run_id)
                .bind(customer_id)
                .bind(name)
                .bind(arguments)
                .bind(status.as_str())
                .bind(at)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Moves a recorded call to `status`, with its result (`None` keeps the stored result).
    /// `NotFound` if the call was never recorded.
    pub async fn set_tool_call(
        &mut self,
        call_id: &str,
        status: ToolCallStatus,
        result: Option<&Value>,
    ) -> Result<()> {
        let sql = "UPDATE tool_calls SET status = $1, result = COALESCE($2, result), updated_at = $3 \
                   WHERE call_id = $4";
        let result = result.map(to_json);
        tx_write!(
            self,
            sql,
            [status.as_str(), result.as_deref(), now(), call_id],
            or: StoreError::NotFound(format!("tool call {call_id}"))
        );
        Ok(())
    }

    pub async fn tool_call(&mut self, call_id: &str) -> Result<Option<ToolCallRecord>> {
        let row: Option<ToolCallRow> = dispatch_tx!(self, |conn| {
            match sqlx::query(TOOL_CALL_SQL)
                .bind(call_id)
                .fetch_optional(&mut *conn)
                .await?
            {
                Some(r) => Some(tool_call_row!(r)),
                None => None,
            }
        });
        row.map(tool_call_record).transpose()
    }
}

impl Store {
    pub async fn tool_call(&self, call_id: &str) -> Result<Option<ToolCallRecord>> {
        let row: Option<ToolCallRow> = dispatch!(self, |pool| {
            match sqlx::query(TOOL_CALL_SQL)
                .bind(call_id)
                .fetch_optional(pool)
                .await?
            {
                Some(r) => Some(tool_call_row!(r)),
                None => None,
            }
        });
        row.map(tool_call_record).transpose()
    }
}

// ---------------------------------------------------------------------------------------
// Approval queue

pub(crate) const APPROVAL_COLS: &str = "id, call_id, run_id, customer_id, tool, action, decision, context, priority, \
                             amount_minor, currency, required_role, status, created_at, decided_at, decided_by, \
                             decided_role, note, final_action, bundle_of";

pub(crate) struct ApprovalRow {
    pub(crate) id: String,
    pub(crate) call_id: String,
    pub(crate) run_id: String,
    pub(crate) customer_id: String,
    pub(crate) tool: String,
    pub(crate) action: String,
    pub(crate) decision: String,
    pub(crate) context: String,
    pub(crate) priority: i64,
    pub(crate) amount_minor: i64,
    pub(crate) currency: String,
    pub(crate) required_role: String,
    pub(crate) status: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) decided_at: Option<DateTime<Utc>>,
    pub(crate) decided_by: Option<String>,
    pub(crate) decided_role: Option<String>,
    pub(crate) note: Option<String>,
    pub(crate) final_action: Option<String>,
    pub(crate) bundle_of: Option<String>,
}

macro_rules! approval_row {
    ($r:expr) => {
        ApprovalRow {
            id: $r.try_get("id")?,
            call_id: $r.try_get("call_id")?,
            run_id: $r.try_get("run_id")?,
            customer_id: $r.try_get("customer_id")?,
            tool: $r.try_get("tool")?,
            action: $r.try_get("action")?,
            decision: $r.try_get("decision")?,
            context: $r.try_get("context")?,
            priority: $r.try_get("priority")?,
            amount_minor: $r.try_get("amount_minor")?,
            currency: $r.try_get("currency")?,
            required_role: $r.try_get("required_role")?,
            status: $r.try_get("status")?,
            created_at: $r.try_get("created_at")?,
            decided_at: $r.try_get("decided_at")?,
            decided_by: $r.try_get("decided_by")?,
            decided_role: $r.try_get("decided_role")?,
            note: $r.try_get("note")?,
            final_action: $r.try_get("final_action")?,
            bundle_of: $r.try_get("bundle_of")?,
        }
    };
}
pub(crate) use approval_row;

impl ApprovalRow {
    pub(crate) fn into_item(self) -> Result<ApprovalItem> {
        let id = self.id;
        Ok(ApprovalItem {
            action: from_json("approval action", &id, &self.action)?,
            decision: from_json("approval decision", &id, &self.decision)?,
            context: from_json("approval context", &id, &self.context)?,
            status: parse_col("approval status", &id, &self.status)?,
            final_action: opt_json("approval final action", &id, self.final_action)?,
            bundle_of: self.bundle_of,
            call_id: self.call_id,
            run_id: self.run_id,
            customer_id: self.customer_id,
            tool: self.tool,
            priority: self.priority,
            amount_minor: self.amount_minor,
            currency: self.currency,
            required_role: self.required_role,
            created_at: self.created_at,
            decided_at: self.decided_at,
            decided_by: self.decided_by,
            decided_role: self.decided_role,
            note: self.note,
            id,
        })
    }
}

impl StoreTx {
    /// Queues an action for a human, as `pending`. Fails (unique violation) if the call
    /// already has an approval item.
    pub async fn insert_approval(&mut self, a: &NewApproval) -> Result<()> {
        let sql = "INSERT INTO approvals (id, call_id, run_id, customer_id, tool, action, decision, context, \
                   priority, amount_minor, currency, required_role, status, created_at, bundle_of, \
                   segment, jurisdiction, rule_ids, search) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', $13, $14, \
                   $15, $16, $17, $18)";
        let f = crate::queue::facets(a);
        dispatch_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(a.id.as_str())
                .bind(a.call_id.as_str())
                .bind(a.run_id.as_str())
                .bind(a.customer_id.as_str())
                .bind(a.tool.as_str())
                .bind(to_json(&a.action))
                .bind(to_json(&a.decision))
                .bind(to_json(&a.context))
                .bind(a.priority)
                .bind(a.amount_minor)
                .bind(a.currency.as_str())
                .bind(a.required_role.as_str())
                .bind(now())
                .bind(a.bundle_of.as_deref())
                .bind(f.segment.as_str())
                .bind(f.jurisdiction.as_str())
                .bind(f.rule_ids.as_str())
                .bind(f.search.as_str())
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }

    /// Decides a pending item: one conditional UPDATE, so of any number of concurrent
    /// deciders exactly one succeeds; everyone else (and anyone deciding an item that is
    /// already decided or does not exist) fails with [`StoreError::Conflict`] and the
    /// transaction changes nothing. On the SQLite writer the update is queued (see `tx`),
    /// so the conflict is reported by a later call of the transaction, by `commit` at the
    /// latest.
    #[allow(clippy::too_many_arguments)]
    pub async fn decide_approval(
        &mut self,
        id: &str,
        status: ApprovalStatus,
        by: &str,
        role: &str,
        note: Option<&str>,
        final_action: Option<&Value>,
    ) -> Result<()> {
        if status == ApprovalStatus::Pending {
            return Err(StoreError::Invalid(format!(
                "approval {id} cannot be decided back to pending"
            )));
        }
        let sql = "UPDATE approvals SET status = $1, decided_at = $2, decided_by = $3, decided_role = $4, \
                   note = $5, final_action = $6 WHERE id = $7 AND status = 'pending'";
        let final_action = final_action.map(to_json);
        tx_write!(
            self,
            sql,
            [
                status.as_str(),
                now(),
                by,
                role,
                note,
                final_action.as_deref(),
                id,
            ],
            or: StoreError::Conflict(format!("approval {id} is not pending"))
        );
        Ok(())
    }
}

impl Store {
    /// The queue, highest priority first, then oldest, then by id.
    pub async fn approvals(
        &self,
        status: Option<ApprovalStatus>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ApprovalItem>> {
        // The page's ids come from the queue index alone (it holds status, the order and
        // the id), so the items skipped by `offset` are never read; only the page's rows
        // are. (`status = $1` must stand on its own for the index to be used.)
        let sql = format!(
            "SELECT {APPROVAL_COLS} FROM approvals WHERE id IN \
             (SELECT id FROM approvals WHERE {filter} \
              ORDER BY priority DESC, created_at, id LIMIT $2 OFFSET $3) \
             ORDER BY priority DESC, created_at, id",
            filter = eq_or_all("status", status.map(|sv| sv.as_str()))
        );
        let rows: Vec<ApprovalRow> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql)
                .bind(status.map(|s| s.as_str()))
                .bind(limit.max(0))
                .bind(offset.max(0))
                .fetch_all(pool)
                .await?
            {
                out.push(approval_row!(r));
            }
            out
        });
        rows.into_iter().map(ApprovalRow::into_item).collect()
    }

    pub async fn count_approvals(&self, status: Option<ApprovalStatus>) -> Result<i64> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM approvals WHERE {}",
            eq_or_all("status", status.map(|sv| sv.as_str()))
        );
        Ok(dispatch!(self, |pool| {
            sqlx::query(&sql)
                .bind(status.map(|s| s.as_str()))
                .fetch_one(pool)
                .await?
                .try_get("n")?
        }))
    }

    pub async fn approval(&self, id: &str) -> Result<ApprovalItem> {
        let sql = format!("SELECT {APPROVAL_COLS} FROM approvals WHERE id = $1");
        let row: Option<ApprovalRow> = dispatch!(self, |pool| {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(approval_row!(r)),
                None => None,
            }
        });
        row.ok_or_else(|| StoreError::NotFound(format!("approval {id}")))?
            .into_item()
    }
}

// ---------------------------------------------------------------------------------------
// Outbox

const OUTBOX_INSERT_COLS: &str = "id, call_id, customer_id, to_addr, subject, body, created_at, \
     status, sent_at, message_id, in_reply_to, references_hdr";
pub(crate) const OUTBOX_COLS: &str = "id, call_id, customer_id, to_addr, subject, body, \
     created_at, status, sent_at, message_id, in_reply_to, references_hdr, attempts, \
     next_attempt_at, last_error";

macro_rules! outbox_row {
    ($r:expr) => {
        OutboxEmail {
            id: $r.try_get("id")?,
            call_id: $r.try_get("call_id")?,
            customer_id: $r.try_get("customer_id")?,
            to_addr: $r.try_get("to_addr")?,
            subject: $r.try_get("subject")?,
            body: $r.try_get("body")?,
            created_at: $r.try_get("created_at")?,
            status: $r.try_get("status")?,
            sent_at: $r.try_get("sent_at")?,
            message_id: $r.try_get("message_id")?,
            in_reply_to: $r.try_get("in_reply_to")?,
            references_hdr: $r.try_get("references_hdr")?,
            attempts: $r.try_get("attempts")?,
            next_attempt_at: $r.try_get("next_attempt_at")?,
            last_error: $r.try_get("last_error")?,
        }
    };
}

impl StoreTx {
    /// Puts an email in the outbox. `false` (and nothing written) if the call already
    /// enqueued one: a resumed run cannot send twice.
    pub async fn enqueue_email(&mut self, e: &OutboxEmail) -> Result<bool> {
        let sql = format!(
            "INSERT INTO outbox ({OUTBOX_INSERT_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (call_id) DO NOTHING"
        );
        let n = dispatch_tx!(self, |conn| {
            sqlx::query(&sql)
                .bind(e.id.as_str())
                .bind(e.call_id.as_str())
                .bind(e.customer_id.as_str())
                .bind(e.to_addr.as_str())
                .bind(e.subject.as_str())
                .bind(e.body.as_str())
                .bind(micros(e.created_at))
                .bind(e.status.as_str())
                .bind(e.sent_at.map(micros))
                .bind(e.message_id.as_deref())
                .bind(e.in_reply_to.as_deref())
                .bind(e.references_hdr.as_deref())
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }
}

const MARK_SENT_SQL: &str =
    "UPDATE outbox SET status = 'sent', sent_at = $1 WHERE id = $2 AND status = 'pending'";

impl StoreTx {
    /// Marks a pending email sent, in this transaction, so that the status change commits
    /// with the audit event that records the delivery (append it in the same transaction).
    /// [`StoreError::Conflict`] if the email is unknown or no longer pending (another
    /// deliverer won); on the SQLite writer the update is queued, so the conflict is
    /// reported by a later call of the transaction, `commit` at the latest.
    pub async fn mark_email_sent(&mut self, id: &str, at: DateTime<Utc>) -> Result<()> {
        tx_write!(
            self,
            MARK_SENT_SQL,
            [micros(at), id],
            or: StoreError::Conflict(format!("outbox email {id} is not pending"))
        );
        Ok(())
    }
}

impl Store {
    /// Emails waiting for delivery, oldest first.
    pub async fn pending_emails(&self, limit: i64) -> Result<Vec<OutboxEmail>> {
        let sql = format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE status = 'pending' ORDER BY created_at, id LIMIT $1"
        );
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(limit.max(0)).fetch_all(pool).await? {
                out.push(outbox_row!(r));
            }
            out
        }))
    }

    /// Every email, or one customer's, oldest first.
    pub async fn emails(&self, customer_id: Option<&str>) -> Result<Vec<OutboxEmail>> {
        let sql = format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE {filter} ORDER BY created_at, id",
            filter = eq_or_all("customer_id", customer_id)
        );
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(customer_id).fetch_all(pool).await? {
                out.push(outbox_row!(r));
            }
            out
        }))
    }
}

// ---------------------------------------------------------------------------------------
// Contact log

impl StoreTx {
    /// Records that the customer was contacted. Idempotent per (call_id, channel).
    pub async fn record_contact(
        &mut self,
        customer_id: &str,
        channel: &str,
        at: DateTime<Utc>,
        call_id: &str,
    ) -> Result<()> {
        let sql = "INSERT INTO contact_log (customer_id, channel, at, call_id) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (call_id, channel) DO NOTHING";
        tx_write!(self, sql, [customer_id, channel, micros(at), call_id,]);
        Ok(())
    }
}

pub(crate) const CONTACTS_SQL: &str = "SELECT at, channel, conversation FROM contact_log \
                                       WHERE customer_id = $1 ORDER BY at, id";

/// A customer's contacts as (at, channel, conversation), oldest first, through executor
/// `$ex`.
macro_rules! select_contacts {
    ($ex:expr, $customer:expr) => {{
        let mut out: Vec<(DateTime<Utc>, String, bool)> = Vec::new();
        for r in ::sqlx::query($crate::agent::CONTACTS_SQL)
            .bind($customer)
            .fetch_all($ex)
            .await?
        {
            out.push((
                r.try_get("at")?,
                r.try_get("channel")?,
                r.try_get("conversation")?,
            ));
        }
        out
    }};
}

impl Store {
    /// A customer's contacts as (at, channel, whether a conversation took place), oldest
    /// first.
    pub async fn contacts(&self, customer_id: &str) -> Result<Vec<(DateTime<Utc>, String, bool)>> {
        Ok(dispatch!(self, |pool| select_contacts!(pool, customer_id)))
    }
}

// ---------------------------------------------------------------------------------------
// Runs

const RUN_COLS: &str = "id, customer_id, run_trigger, status, step, tokens, state, model, prompt_version, \
                        policy_version, created_at, updated_at, lease_owner, lease_until";

struct RunRow {
    id: String,
    customer_id: String,
    trigger: String,
    status: String,
    step: i64,
    tokens: i64,
    state: String,
    model: String,
    prompt_version: String,
    policy_version: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    lease_owner: Option<String>,
    lease_until: Option<DateTime<Utc>>,
}

macro_rules! run_row {
    ($r:expr) => {
        RunRow {
            id: $r.try_get("id")?,
            customer_id: $r.try_get("customer_id")?,
            trigger: $r.try_get("run_trigger")?,
            status: $r.try_get("status")?,
            step: $r.try_get("step")?,
            tokens: $r.try_get("tokens")?,
            state: $r.try_get("state")?,
            model: $r.try_get("model")?,
            prompt_version: $r.try_get("prompt_version")?,
            policy_version: $r.try_get("policy_version")?,
            created_at: $r.try_get("created_at")?,
            updated_at: $r.try_get("updated_at")?,
            lease_owner: $r.try_get("lease_owner")?,
            lease_until: $r.try_get("lease_until")?,
        }
    };
}

impl RunRow {
    fn into_record(self) -> Result<RunRecord> {
        let id = self.id;
        Ok(RunRecord {
            trigger: from_json("run trigger", &id, &self.trigger)?,
            status: parse_col("run status", &id, &self.status)?,
            state: from_json("run state", &id, &self.state)?,
            customer_id: self.customer_id,
            step: self.step,
            tokens: self.tokens,
            model: self.model,
            prompt_version: self.prompt_version,
            policy_version: self.policy_version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            lease_owner: self.lease_owner,
            lease_until: self.lease_until,
            id,
        })
    }
}

pub(crate) const CHECKPOINT_SQL: &str =
    "UPDATE runs SET step = $1, tokens = $2, state = $3, updated_at = $4 WHERE id = $5";
pub(crate) const FINISH_RUN_SQL: &str = "UPDATE runs SET status = $1, updated_at = $2, lease_owner = NULL, \
     lease_until = NULL WHERE id = $3";

impl StoreTx {
    /// Saves the loop's progress, in the same transaction as the step's other writes.
    /// `NotFound` if there is no such run (on the SQLite writer the update is queued, so
    /// from a later call of the transaction, `commit` at the latest).
    pub async fn checkpoint_run(
        &mut self,
        id: &str,
        step: i64,
        tokens: i64,
        state: &Value,
    ) -> Result<()> {
        tx_write!(
            self,
            CHECKPOINT_SQL,
            [step, tokens, to_json(state), now(), id],
            or: StoreError::NotFound(format!("run {id}"))
        );
        Ok(())
    }

    /// Ends a run with `status` and releases its lease, in this transaction (e.g. with its
    /// last checkpoint and its `run_finished` event). `NotFound` if there is no such run.
    pub async fn finish_run(&mut self, id: &str, status: RunStatus) -> Result<()> {
        tx_write!(
            self,
            FINISH_RUN_SQL,
            [status.as_str(), now(), id],
            or: StoreError::NotFound(format!("run {id}"))
        );
        Ok(())
    }
}

impl StoreTx {
    /// Creates the run record in this transaction (with its `run_started` event and, for a
    /// worker, the link from its work item, so the three commit together). On the SQLite
    /// writer the insert is queued: a run id already taken fails a later call of the
    /// transaction (`commit` at the latest).
    pub async fn create_run(&mut self, r: &RunRecord) -> Result<()> {
        tx_write!(
            self,
            CREATE_RUN_SQL,
            [
                r.id.as_str(),
                r.customer_id.as_str(),
                to_json(&r.trigger),
                r.status.as_str(),
                r.step,
                r.tokens,
                to_json(&r.state),
                r.model.as_str(),
                r.prompt_version.as_str(),
                r.policy_version.as_str(),
                micros(r.created_at),
                micros(r.updated_at),
                r.lease_owner.as_deref(),
                r.lease_until.map(micros),
            ]
        );
        Ok(())
    }
}

pub(crate) const CREATE_RUN_SQL: &str = "INSERT INTO runs (id, customer_id, run_trigger, status, step, \
     tokens, state, model, prompt_version, policy_version, created_at, updated_at, lease_owner, \
     lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

impl Store {
    pub async fn create_run(&self, r: &RunRecord) -> Result<()> {
        let _writer = self.write_lock().await?;
        let sql = format!(
            "INSERT INTO runs ({RUN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        );
        dispatch!(self, |pool| {
            sqlx::query(&sql)
                .bind(r.id.as_str())
                .bind(r.customer_id.as_str())
                .bind(to_json(&r.trigger))
                .bind(r.status.as_str())
                .bind(r.step)
                .bind(r.tokens)
                .bind(to_json(&r.state))
                .bind(r.model.as_str())
                .bind(r.prompt_version.as_str())
                .bind(r.policy_version.as_str())
                .bind(micros(r.created_at))
                .bind(micros(r.updated_at))
                .bind(r.lease_owner.as_deref())
                .bind(r.lease_until.map(micros))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn checkpoint_run(
        &self,
        id: &str,
        step: i64,
        tokens: i64,
        state: &Value,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.checkpoint_run(id, step, tokens, state).await?;
        tx.commit().await
    }

    /// Ends a run with `status` and releases its lease.
    pub async fn finish_run(&self, id: &str, status: RunStatus) -> Result<()> {
        let _writer = self.write_lock().await?;
        let sql = FINISH_RUN_SQL;
        let n = dispatch!(self, |pool| {
            sqlx::query(sql)
                .bind(status.as_str())
                .bind(now())
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound(format!("run {id}")));
        }
        Ok(())
    }

    pub async fn run(&self, id: &str) -> Result<RunRecord> {
        let sql = format!("SELECT {RUN_COLS} FROM runs WHERE id = $1");
        // SQLite: on one of the store's reader connections (a run's start looks its id up;
        // see `ReadConn`).
        let row: Option<RunRow> = match &self.pool {
            Pool::Sqlite(pool) => {
                let mut read = ReadConn::take(self, pool).await?;
                let args = [Arg::of(id)];
                let on_handle = read
                    .on_handle(|db| crate::direct::query(db, &sql, &args))
                    .await?;
                match on_handle {
                    Some(rows) => match rows.first() {
                        Some(r) => Some(run_row!(r)),
                        None => None,
                    },
                    None => {
                        let query = sqlx::query(&sql).bind(id);
                        match query.fetch_optional(read.conn()?).await? {
                            Some(r) => Some(run_row!(r)),
                            None => None,
                        }
                    }
                }
            }
            Pool::Postgres(pool) => match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(run_row!(r)),
                None => None,
            },
        };
        row.ok_or_else(|| StoreError::NotFound(format!("run {id}")))?
            .into_record()
    }

    /// All runs, or those with `status`, oldest first.
    pub async fn runs(&self, status: Option<RunStatus>) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM runs WHERE {filter} ORDER BY created_at, id",
            filter = eq_or_all("status", status.map(|sv| sv.as_str()))
        );
        let rows: Vec<RunRow> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql)
                .bind(status.map(|s| s.as_str()))
                .fetch_all(pool)
                .await?
            {
                out.push(run_row!(r));
            }
            out
        });
        rows.into_iter().map(RunRow::into_record).collect()
    }

    /// Claims up to `limit` running runs whose lease is empty or expired at `now`, for
    /// `owner` until `until`, oldest first, and returns them as leased. Concurrent leasers
    /// (other tasks, processes or machines) never get the same run: on PostgreSQL the
    /// candidates are locked with `FOR UPDATE SKIP LOCKED`, on SQLite the claim runs in a
    /// `BEGIN IMMEDIATE` transaction.
    pub async fn lease_runs(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<RunRecord>> {
        let lock = match self.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let pick = format!(
            "SELECT id FROM runs WHERE status = 'running' AND (lease_until IS NULL OR lease_until <= $1) \
             ORDER BY created_at, id LIMIT $2{lock}"
        );
        let claim = "UPDATE runs SET lease_owner = $1, lease_until = $2 WHERE id = $3";
        let read = format!("SELECT {RUN_COLS} FROM runs WHERE id = $1");
        let (now, until) = (micros(now), micros(until));
        let mut tx = self.begin().await?;
        let rows: Vec<RunRow> = dispatch_tx!(tx, |conn| {
            let mut ids: Vec<String> = Vec::new();
            for r in sqlx::query(&pick)
                .bind(now)
                .bind(limit.max(0))
                .fetch_all(&mut *conn)
                .await?
            {
                ids.push(r.try_get("id")?);
            }
            let mut out = Vec::new();
            for id in &ids {
                sqlx::query(claim)
                    .bind(owner)
                    .bind(until)
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await?;
                let r = sqlx::query(&read)
                    .bind(id.as_str())
                    .fetch_one(&mut *conn)
                    .await?;
                out.push(run_row!(r));
            }
            out
        });
        tx.commit().await?;
        rows.into_iter().map(RunRow::into_record).collect()
    }
}

// ---------------------------------------------------------------------------------------
// What an email may refer to: the account's queued and refused actions, and bundles.

impl Store {
    /// The items held with `id` (its bundle), oldest first, whatever their status.
    pub async fn bundled_with(&self, id: &str) -> Result<Vec<ApprovalItem>> {
        let sql = format!(
            "SELECT {APPROVAL_COLS} FROM approvals WHERE bundle_of = $1 ORDER BY created_at, id"
        );
        let rows: Vec<ApprovalRow> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(id).fetch_all(pool).await? {
                out.push(approval_row!(r));
            }
            out
        });
        rows.into_iter().map(ApprovalRow::into_item).collect()
    }

    /// The customer's approval items that are pending or were rejected, newest first, at
    /// most `limit`.
    pub async fn customer_approvals(
        &self,
        customer_id: &str,
        limit: i64,
    ) -> Result<Vec<ApprovalItem>> {
        let sql = customer_approvals_sql(limit);
        let rows: Vec<ApprovalRow> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(customer_id).fetch_all(pool).await? {
                out.push(approval_row!(r));
            }
            out
        });
        rows.into_iter().map(ApprovalRow::into_item).collect()
    }

    /// The tool calls of run `run_id` that took effect or went to a person (status
    /// `executed`, `queued`, `approved` or `rejected`), in the order they were recorded:
    /// what a repeated call of the run is compared with (`argent_agent::run`). Uses the
    /// `tool_calls_run` index.
    pub async fn run_effective_tool_calls(&self, run_id: &str) -> Result<Vec<ToolCallRecord>> {
        let sql = "SELECT call_id, run_id, customer_id, name, arguments, status, result, updated_at \
                   FROM tool_calls WHERE run_id = $1 AND status IN ('executed', 'queued', 'approved', 'rejected') \
                   ORDER BY created_at, call_id";
        let rows: Vec<ToolCallRow> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(sql).bind(run_id).fetch_all(pool).await? {
                out.push(tool_call_row!(r));
            }
            out
        });
        rows.into_iter().map(tool_call_record).collect()
    }

    /// The customer's tool calls the policy refused, newest first, at most `limit`.
    pub async fn refused_tool_calls(
        &self,
        customer_id: &str,
        limit: i64,
    ) -> Result<Vec<ToolCallRecord>> {
        let sql = refused_tool_calls_sql(limit);
        let rows: Vec<ToolCallRow> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(customer_id).fetch_all(pool).await? {
                out.push(tool_call_row!(r));
            }
            out
        });
        rows.into_iter().map(tool_call_record).collect()
    }
}

/// Customer `$1`'s approval items that are pending or were rejected, newest first, at most
/// `limit` (written into the text: an integer).
pub(crate) fn customer_approvals_sql(limit: i64) -> String {
    format!(
        "SELECT {APPROVAL_COLS} FROM approvals WHERE customer_id = $1 \
         AND status IN ('pending', 'rejected') ORDER BY created_at DESC, id DESC LIMIT {}",
        limit.max(0)
    )
}

/// Customer `$1`'s refused tool calls, newest first, at most `limit` (written into the
/// text: an integer).
pub(crate) fn refused_tool_calls_sql(limit: i64) -> String {
    format!(
        "SELECT call_id, run_id, customer_id, name, arguments, status, result, updated_at \
         FROM tool_calls WHERE customer_id = $1 AND status = 'refused' \
         ORDER BY updated_at DESC, call_id DESC LIMIT {}",
        limit.max(0)
    )
}
