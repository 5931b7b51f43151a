//! Processing received mail (`inbound_mail`, migrations 0015 and 0018): the rows waiting
//! to be processed, settling one (its outcome, in the transaction of its effects and its
//! `mail_processed` audit event), the unmatched-mail queue, and matching a message to a
//! customer by thread (`outbox.message_id`).
//!
//! **Invariants.** Settling is one conditional UPDATE on the status the processor read
//! (`new`, or `unmatched` for a collector's assignment), so a message is settled once: a
//! second processor (or a second assignment) gets [`StoreError::Conflict`] and its
//! transaction rolls back with everything it would have written. The raw message is only
//! ever read here, never changed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::tx::{dispatch_tx, tx_write};
use crate::{Result, Store, StoreError, StoreTx, dispatch, micros};

/// A received message as processing sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMail {
    pub id: String,
    pub message_id: Option<String>,
    pub source: String,
    pub received_at: DateTime<Utc>,
    /// new | processed | unmatched | ignored | failed
    pub status: String,
    pub customer_id: Option<String>,
    pub processed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub from_addr: Option<String>,
    pub subject: Option<String>,
    /// human | auto_reply | out_of_office | hard_bounce | soft_bounce
    pub kind: Option<String>,
    /// thread | sender | assigned
    pub matched_by: Option<String>,
    /// The Authentication-Results verdicts (JSON), as processing recorded them.
    pub auth: Option<serde_json::Value>,
    pub run_id: Option<String>,
}

/// A message to record as received ([`Store::receive_inbound`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInbound {
    pub id: String,
    pub dedupe_key: String,
    pub message_id: Option<String>,
    /// imap | webhook | cli
    pub source: String,
    pub raw: Vec<u8>,
    pub raw_sha256: String,
    pub received_at: DateTime<Utc>,
}

/// What processing found and decided for one message ([`StoreTx::settle_inbound`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InboundOutcome {
    /// processed | unmatched | ignored | failed
    pub status: String,
    pub customer_id: Option<String>,
    pub error: Option<String>,
    pub from_addr: Option<String>,
    pub subject: Option<String>,
    pub kind: Option<String>,
    pub matched_by: Option<String>,
    pub auth: Option<serde_json::Value>,
    pub run_id: Option<String>,
    pub processed_at: DateTime<Utc>,
}

const COLS: &str = "id, message_id, source, received_at, status, customer_id, processed_at, \
                    error, from_addr, subject, kind, matched_by, auth, run_id";

macro_rules! inbound_row {
    ($r:expr) => {{
        let auth: Option<String> = $r.try_get("auth")?;
        InboundMail {
            id: $r.try_get("id")?,
            message_id: $r.try_get("message_id")?,
            source: $r.try_get("source")?,
            received_at: $r.try_get("received_at")?,
            status: $r.try_get("status")?,
            customer_id: $r.try_get("customer_id")?,
            processed_at: $r.try_get("processed_at")?,
            error: $r.try_get("error")?,
            from_addr: $r.try_get("from_addr")?,
            subject: $r.try_get("subject")?,
            kind: $r.try_get("kind")?,
            matched_by: $r.try_get("matched_by")?,
            auth: auth.and_then(|a| serde_json::from_str(&a).ok()),
            run_id: $r.try_get("run_id")?,
        }
    }};
}

impl Store {
    /// Inserts a message as `new` with the id and time the caller gives, unaudited: for
    /// tests and fixtures. Receiving goes through [`Store::receive_inbound`] and
    /// [`Store::receive_imap_batch`] (audited, ids derived from the dedupe key). `false`
    /// (nothing written) when a message with the same dedupe key is already there.
    pub async fn insert_inbound_row(&self, m: &NewInbound) -> Result<bool> {
        let sql = "INSERT INTO inbound_mail (id, dedupe_key, message_id, source, raw, raw_sha256, \
                   received_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, 'new') \
                   ON CONFLICT (dedupe_key) DO NOTHING";
        let mut tx = self.begin().await?;
        let n = dispatch_tx!(tx, |conn| {
            sqlx::query(sql)
                .bind(m.id.as_str())
                .bind(m.dedupe_key.as_str())
                .bind(m.message_id.as_deref())
                .bind(m.source.as_str())
                .bind(m.raw.as_slice())
                .bind(m.raw_sha256.as_str())
                .bind(micros(m.received_at))
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Up to `limit` messages waiting to be processed (`new`), oldest first.
    pub async fn inbound_pending(&self, limit: i64) -> Result<Vec<InboundMail>> {
        let sql = format!(
            "SELECT {COLS} FROM inbound_mail WHERE status = 'new' \
             ORDER BY received_at, id LIMIT $1"
        );
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(limit).fetch_all(pool).await? {
                out.push(inbound_row!(r));
            }
            out
        }))
    }

    /// Messages with `status` (all when `None`), newest first, at most `limit`.
    pub async fn inbound_list(&self, status: Option<&str>, limit: i64) -> Result<Vec<InboundMail>> {
        let sql = format!(
            "SELECT {COLS} FROM inbound_mail WHERE {} \
             ORDER BY received_at DESC, id DESC LIMIT $2",
            crate::eq_or_all("status", status)
        );
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql)
                .bind(status)
                .bind(limit)
                .fetch_all(pool)
                .await?
            {
                out.push(inbound_row!(r));
            }
            out
        }))
    }

    /// Customer `customer_id`'s messages, oldest first.
    pub async fn inbound_for_customer(&self, customer_id: &str) -> Result<Vec<InboundMail>> {
        let sql = format!(
            "SELECT {COLS} FROM inbound_mail WHERE customer_id = $1 ORDER BY received_at, id"
        );
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(customer_id).fetch_all(pool).await? {
                out.push(inbound_row!(r));
            }
            out
        }))
    }

    /// The message `id` (`NotFound` when there is none).
    pub async fn inbound_mail(&self, id: &str) -> Result<InboundMail> {
        let sql = format!("SELECT {COLS} FROM inbound_mail WHERE id = $1");
        let found = dispatch!(self, |pool| {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(inbound_row!(r)),
                None => None,
            }
        });
        found.ok_or_else(|| StoreError::NotFound(format!("inbound mail {id}")))
    }

    // The raw bytes of a message: `Store::inbound_raw` (inbound_mail.rs).

    /// The customer an email we sent with one of `message_ids` went to: the first id
    /// (in the order given) that is the Message-ID of an outbox email.
    pub async fn customer_by_sent_message(&self, message_ids: &[String]) -> Result<Option<String>> {
        let sql = "SELECT customer_id FROM outbox WHERE message_id = $1";
        for id in message_ids {
            let found: Option<String> = dispatch!(self, |pool| {
                match sqlx::query(sql)
                    .bind(id.as_str())
                    .fetch_optional(pool)
                    .await?
                {
                    Some(r) => Some(r.try_get("customer_id")?),
                    None => None,
                }
            });
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}

impl StoreTx {
    /// Settles message `id` with `o`, on condition that it is still `expected` (`new`, or
    /// `unmatched` for an assignment): otherwise [`StoreError::Conflict`] (settled by
    /// someone else), at the latest when the transaction commits.
    pub async fn settle_inbound(
        &mut self,
        id: &str,
        expected: &str,
        o: &InboundOutcome,
    ) -> Result<()> {
        let auth = o.auth.as_ref().map(crate::to_json);
        tx_write!(
            self,
            "UPDATE inbound_mail SET status = $1, customer_id = $2, processed_at = $3, error = $4, \
             from_addr = $5, subject = $6, kind = $7, matched_by = $8, auth = $9, run_id = $10 \
             WHERE id = $11 AND status = $12",
            [
                o.status.as_str(),
                o.customer_id.as_deref(),
                micros(o.processed_at),
                o.error.as_deref(),
                o.from_addr.as_deref(),
                o.subject.as_deref(),
                o.kind.as_deref(),
                o.matched_by.as_deref(),
                auth.as_deref(),
                o.run_id.as_deref(),
                id,
                expected,
            ],
            or: StoreError::Conflict(format!("inbound mail {id} is no longer {expected}"))
        );
        Ok(())
    }
}

impl Store {
    /// Records the agent run message `id` started (once: a run already recorded stays).
    pub async fn set_inbound_run(&self, id: &str, run_id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        tx_write!(
            tx,
            "UPDATE inbound_mail SET run_id = $1 WHERE id = $2 AND run_id IS NULL",
            [run_id, id]
        );
        tx.commit().await?;
        Ok(())
    }
}
