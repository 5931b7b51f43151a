//! Delivering the outbox over SMTP (migration `0016_smtp`): attempts recorded before the
//! message is handed to the mail server, their conclusion, and what a collector sees.
//!
//! **Exactly once, as far as SMTP allows.** A deliverer first commits an
//! `outbox_attempts` row ([`StoreTx::start_attempt`]), then talks to the server, then
//! concludes the attempt in one transaction with the email's new status and its audit
//! event. SMTP has no way to ask a server whether it already accepted a message, so an
//! attempt found unconcluded after its lease (the process died between the commit of the
//! attempt and the commit of its answer: before DATA, during it, or after the server's
//! 250) is concluded `uncertain` and the email becomes `uncertain`: it is never resent
//! automatically; a collector looks (the recipient's mailbox, the server's logs) and
//! marks it sent or sends it again ([`StoreTx::resolve_uncertain_email`]). At most one
//! attempt per email is open at a time (a partial unique index), so two deliverers never
//! send the same email at once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::agent::OUTBOX_COLS;
use crate::tx::{dispatch_tx, tx_write};
use crate::{OutboxEmail, Result, Store, StoreError, StoreTx, dispatch, micros};

/// How an SMTP attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The server accepted the message (250 after DATA).
    Sent,
    /// A temporary failure (4xx, a connection error, a timeout): tried again later.
    Retry,
    /// A permanent failure (5xx): the email is `failed`.
    Failed,
    /// Found unconcluded after its lease: whether the server took it is unknown.
    Uncertain,
}
crate::str_enum!(AttemptOutcome {
    Sent => "sent",
    Retry => "retry",
    Failed => "failed",
    Uncertain => "uncertain",
});

/// One SMTP attempt of an outbox email.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxAttempt {
    /// `<outbox id>#<attempt>`.
    pub id: String,
    pub outbox_id: String,
    pub attempt: i64,
    pub message_id: String,
    /// The recipient's domain (lower case), which rate limits count by.
    pub domain: String,
    /// Who made it (a process name and id).
    pub owner: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `None` while in flight (or its process died).
    pub outcome: Option<String>,
    /// The server's answer or the error.
    pub response: Option<String>,
}

const ATTEMPT_COLS: &str =
    "id, outbox_id, attempt, message_id, domain, owner, started_at, finished_at, outcome, response";

macro_rules! attempt_row {
    ($r:expr) => {
        OutboxAttempt {
            id: $r.try_get("id")?,
            outbox_id: $r.try_get("outbox_id")?,
            attempt: $r.try_get("attempt")?,
            message_id: $r.try_get("message_id")?,
            domain: $r.try_get("domain")?,
            owner: $r.try_get("owner")?,
            started_at: $r.try_get("started_at")?,
            finished_at: $r.try_get("finished_at")?,
            outcome: $r.try_get("outcome")?,
            response: $r.try_get("response")?,
        }
    };
}

/// The id of attempt `n` of email `outbox_id`.
pub fn attempt_id(outbox_id: &str, n: i64) -> String {
    format!("{outbox_id}#{n}")
}

impl Store {
    /// Pending emails whose next attempt is due at `now` and that no attempt is working on,
    /// oldest first.
    pub async fn deliverable_emails(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxEmail>> {
        let sql = format!(
            "SELECT {OUTBOX_COLS} FROM outbox o WHERE status = 'pending' \
             AND (next_attempt_at IS NULL OR next_attempt_at <= $1) \
             AND NOT EXISTS (SELECT 1 FROM outbox_attempts a \
                             WHERE a.outbox_id = o.id AND a.outcome IS NULL) \
             ORDER BY created_at, id LIMIT $2"
        );
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql)
                .bind(micros(now))
                .bind(limit.max(0))
                .fetch_all(pool)
                .await?
            {
                out.push(outbox_row!(r));
            }
            out
        }))
    }

    /// Attempts still open that started before `before` (their process is presumed dead).
    pub async fn stale_attempts(&self, before: DateTime<Utc>) -> Result<Vec<OutboxAttempt>> {
        let sql = format!(
            "SELECT {ATTEMPT_COLS} FROM outbox_attempts WHERE outcome IS NULL AND started_at < $1 \
             ORDER BY started_at, id"
        );
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql)
                .bind(micros(before))
                .fetch_all(pool)
                .await?
            {
                out.push(attempt_row!(r));
            }
            out
        }))
    }

    /// Attempts started to recipient `domain` at or after `since` (rate limits).
    pub async fn attempts_to_domain_since(
        &self,
        domain: &str,
        since: DateTime<Utc>,
    ) -> Result<i64> {
        let sql =
            "SELECT COUNT(*) AS n FROM outbox_attempts WHERE domain = $1 AND started_at >= $2";
        Ok(dispatch!(self, |pool| {
            sqlx::query(sql)
                .bind(domain)
                .bind(micros(since))
                .fetch_one(pool)
                .await?
                .try_get("n")?
        }))
    }

    /// The start instants of the attempts to `domain` at or after `since`, oldest first.
    pub async fn attempt_starts_to_domain(
        &self,
        domain: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>> {
        let sql = "SELECT started_at FROM outbox_attempts WHERE domain = $1 AND started_at >= $2 \
                   ORDER BY started_at";
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(sql)
                .bind(domain)
                .bind(micros(since))
                .fetch_all(pool)
                .await?
            {
                out.push(r.try_get("started_at")?);
            }
            out
        }))
    }

    /// An email's attempts, first first.
    pub async fn outbox_attempts(&self, outbox_id: &str) -> Result<Vec<OutboxAttempt>> {
        let sql = format!(
            "SELECT {ATTEMPT_COLS} FROM outbox_attempts WHERE outbox_id = $1 ORDER BY attempt"
        );
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(outbox_id).fetch_all(pool).await? {
                out.push(attempt_row!(r));
            }
            out
        }))
    }

    /// One outbox email.
    pub async fn email(&self, id: &str) -> Result<OutboxEmail> {
        let sql = format!("SELECT {OUTBOX_COLS} FROM outbox WHERE id = $1");
        let row: Option<OutboxEmail> = dispatch!(self, |pool| {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(outbox_row!(r)),
                None => None,
            }
        });
        row.ok_or_else(|| StoreError::NotFound(format!("outbox email {id}")))
    }

    /// Emails in a status (`failed`, `uncertain`, …), oldest first.
    pub async fn emails_with_status(&self, status: &str) -> Result<Vec<OutboxEmail>> {
        let sql =
            format!("SELECT {OUTBOX_COLS} FROM outbox WHERE status = $1 ORDER BY created_at, id");
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(status).fetch_all(pool).await? {
                out.push(outbox_row!(r));
            }
            out
        }))
    }
}

impl StoreTx {
    /// Gives a pending email without one (queued before `0015_mail`) its Message-ID.
    /// `false` if it already had one (the stored one stands).
    pub async fn assign_message_id(&mut self, id: &str, message_id: &str) -> Result<bool> {
        let sql = "UPDATE outbox SET message_id = $1 WHERE id = $2 AND message_id IS NULL";
        let n = dispatch_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(message_id)
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Records attempt number `email.attempts + 1` of a pending email, before anything is
    /// sent (commit it first). `None` (nothing written) when the email is no longer
    /// pending, has no Message-ID, another attempt is open, or another deliverer recorded
    /// this attempt first.
    pub async fn start_attempt(
        &mut self,
        email: &OutboxEmail,
        domain: &str,
        owner: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<OutboxAttempt>> {
        let Some(message_id) = email.message_id.clone() else {
            return Ok(None);
        };
        let n = email.attempts + 1;
        let id = attempt_id(&email.id, n);
        let sql = "INSERT INTO outbox_attempts (id, outbox_id, attempt, message_id, domain, owner, \
                   started_at) \
                   SELECT $1, id, $2, $3, $4, $5, $6 FROM outbox \
                   WHERE id = $7 AND status = 'pending' AND attempts = $8 AND message_id = $3 \
                   ON CONFLICT DO NOTHING";
        let inserted = dispatch_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(id.as_str())
                .bind(n)
                .bind(message_id.as_str())
                .bind(domain)
                .bind(owner)
                .bind(micros(at))
                .bind(email.id.as_str())
                .bind(email.attempts)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if inserted != 1 {
            return Ok(None);
        }
        tx_write!(
            self,
            "UPDATE outbox SET attempts = attempts + 1 WHERE id = $1",
            [email.id.as_str()]
        );
        Ok(Some(OutboxAttempt {
            id,
            outbox_id: email.id.clone(),
            attempt: n,
            message_id,
            domain: domain.to_string(),
            owner: owner.to_string(),
            started_at: micros(at),
            finished_at: None,
            outcome: None,
            response: None,
        }))
    }

    /// Concludes an open attempt. [`StoreError::Conflict`] if it is not open (concluded by
    /// someone else, e.g. found stale and marked uncertain); on the SQLite writer reported
    /// by a later call of the transaction, `commit` at the latest.
    pub async fn conclude_attempt(
        &mut self,
        attempt_id: &str,
        outcome: AttemptOutcome,
        response: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        tx_write!(
            self,
            "UPDATE outbox_attempts SET outcome = $1, response = $2, finished_at = $3 \
             WHERE id = $4 AND outcome IS NULL",
            [outcome.as_str(), response, micros(at), attempt_id],
            or: StoreError::Conflict(format!("outbox attempt {attempt_id} is not open"))
        );
        Ok(())
    }

    /// A pending email is tried again at `next_at` (a temporary failure or a rate limit);
    /// `error` is kept as its last error.
    pub async fn defer_email(
        &mut self,
        id: &str,
        next_at: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        tx_write!(
            self,
            "UPDATE outbox SET next_attempt_at = $1, last_error = $2 \
             WHERE id = $3 AND status = 'pending'",
            [micros(next_at), error, id],
            or: StoreError::Conflict(format!("outbox email {id} is not pending"))
        );
        Ok(())
    }

    /// A pending email becomes `failed` (`failed`: refused for good) or `uncertain`, with
    /// `error` as its last error.
    pub async fn end_email(&mut self, id: &str, status: &str, error: &str) -> Result<()> {
        if !matches!(status, "failed" | "uncertain") {
            return Err(StoreError::Invalid(format!(
                "outbox email {id}: '{status}' is not an end status (failed, uncertain)"
            )));
        }
        tx_write!(
            self,
            "UPDATE outbox SET status = $1, last_error = $2 WHERE id = $3 AND status = 'pending'",
            [status, error, id],
            or: StoreError::Conflict(format!("outbox email {id} is not pending"))
        );
        Ok(())
    }

    /// A collector's answer for an `uncertain` email: it did arrive (`sent`, at `at`), or
    /// it did not and goes back to `pending` to be sent again (with the same Message-ID).
    /// Append the audit event in the same transaction.
    pub async fn resolve_uncertain_email(
        &mut self,
        id: &str,
        arrived: bool,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let err = || StoreError::Conflict(format!("outbox email {id} is not uncertain"));
        if arrived {
            tx_write!(
                self,
                "UPDATE outbox SET status = 'sent', sent_at = $1 WHERE id = $2 AND status = 'uncertain'",
                [micros(at), id],
                or: err()
            );
        } else {
            tx_write!(
                self,
                "UPDATE outbox SET status = 'pending', next_attempt_at = NULL \
                 WHERE id = $1 AND status = 'uncertain'",
                [id],
                or: err()
            );
        }
        Ok(())
    }
}
