//! Receiving mail: raw messages into `inbound_mail` exactly once (migration `0015_mail`).
//!
//! Receiving is separate from processing (parsing, matching, acting), like the outbox is
//! separate from delivery: a message is stored raw with status `new`, and the processing
//! step reads [`Store::pending_inbound`]. Exactly once:
//! - every message has a `dedupe_key` (its `Message-ID` without angle brackets, else
//!   `sha256:` and the hash of its bytes; the caller computes it, `argent_mail::raw`), and an
//!   IMAP message is also unique by `(mailbox, uidvalidity, uid)`. A message already there
//!   by either is skipped (`INSERT … ON CONFLICT DO NOTHING`), never an error: two readers
//!   of one mailbox, a webhook and a reader delivering the same message, a UIDVALIDITY
//!   change that makes the reader start over, all store it once;
//! - an IMAP batch and its mailbox's checkpoint commit in one transaction
//!   ([`Store::receive_imap_batch`]), so a reader killed at any point re-fetches at most the
//!   batch that did not commit, and that batch is then skipped as duplicates if it had;
//! - each stored message is audited as one `mail_received` event (its id, source, dedupe
//!   key, SHA-256, size, and for IMAP the mailbox, UIDVALIDITY and UID), in the same
//!   transaction; never its body.
//!
//! A message the reader will not take whole (over the size cap) is recorded with the
//! headers it fetched as `raw`, status `failed` and the reason in `error`, so it is seen by
//! a person instead of lost, and the reader moves past it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::tx::{dispatch_tx, tx_write};
use crate::{NewAuditEvent, Result, Store, StoreError, StoreTx, dispatch, now, parse_col};

/// Where a message came from (`inbound_mail.source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailSource {
    Imap,
    Webhook,
    Cli,
}
crate::str_enum!(MailSource {
    Imap => "imap",
    Webhook => "webhook",
    Cli => "cli",
});

/// `inbound_mail.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundStatus {
    New,
    Processed,
    Unmatched,
    Ignored,
    Failed,
}
crate::str_enum!(InboundStatus {
    New => "new",
    Processed => "processed",
    Unmatched => "unmatched",
    Ignored => "ignored",
    Failed => "failed",
});

/// The longest dedupe key stored (a Message-ID is at most a 998-octet line).
const MAX_DEDUPE_KEY: usize = 1000;

/// A raw message about to be received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInbound {
    /// `Message-ID` without angle brackets, or `sha256:` + the raw hash.
    pub dedupe_key: String,
    pub message_id: Option<String>,
    /// The raw RFC 822 bytes (for a refused message: what was kept of it, its headers).
    pub raw: Vec<u8>,
    /// The IMAP UID (in the batch's mailbox and UIDVALIDITY); `None` for other sources.
    pub uid: Option<i64>,
    /// Set when the message was not taken whole: stored as `failed` with this reason.
    pub refused: Option<String>,
}

/// The messages of one IMAP mailbox fetched together, and the checkpoint they advance to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImapBatch {
    pub mailbox: String,
    pub uidvalidity: i64,
    /// The highest UID this batch covers (every UID up to it was fetched or is gone).
    pub last_uid: i64,
    pub messages: Vec<NewInbound>,
}

/// What receiving an IMAP batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchReceived {
    /// The ids of the messages stored by this call, in the batch's order.
    pub stored: Vec<String>,
    /// Messages skipped because they were already there (by dedupe key or UID).
    pub duplicates: usize,
    /// Of `stored`, those stored as `failed` (refused, e.g. over the size cap).
    pub refused: usize,
}

/// What receiving one message did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Received {
    pub id: String,
    /// `false`: the message was already there; `id` is the existing row's.
    pub created: bool,
}

/// A mailbox's checkpoint: its UIDVALIDITY and the highest UID received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MailboxCheckpoint {
    pub mailbox: String,
    pub uidvalidity: i64,
    pub last_uid: i64,
    pub updated_at: DateTime<Utc>,
}

/// A message waiting to be processed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingInbound {
    pub id: String,
    pub raw: Vec<u8>,
    pub received_at: DateTime<Utc>,
    pub source: MailSource,
    pub message_id: Option<String>,
}

/// A stored message, as read back (without its raw bytes: see [`Store::inbound_raw`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InboundRecord {
    pub id: String,
    pub dedupe_key: String,
    pub message_id: Option<String>,
    pub source: MailSource,
    pub mailbox: Option<String>,
    pub uidvalidity: Option<i64>,
    pub uid: Option<i64>,
    pub raw_sha256: String,
    pub size: i64,
    pub received_at: DateTime<Utc>,
    pub status: InboundStatus,
    pub customer_id: Option<String>,
    pub error: Option<String>,
}

/// The id of the message with this dedupe key: `in-` and 32 hex digits of its SHA-256, so
/// whoever receives a message first names it the same.
pub fn inbound_id(dedupe_key: &str) -> String {
    let h = hex::encode(Sha256::digest(dedupe_key.as_bytes()));
    format!("in-{}", &h[..32])
}

fn check(m: &NewInbound) -> Result<()> {
    if m.dedupe_key.trim().is_empty() || m.dedupe_key.len() > MAX_DEDUPE_KEY {
        return Err(StoreError::Invalid(format!(
            "an inbound message's dedupe key must be 1 to {MAX_DEDUPE_KEY} bytes (got {})",
            m.dedupe_key.len()
        )));
    }
    if m.raw.is_empty() {
        return Err(StoreError::Invalid(format!(
            "inbound message {} is empty",
            m.dedupe_key
        )));
    }
    Ok(())
}

const INSERT_SQL: &str = "INSERT INTO inbound_mail \
     (id, dedupe_key, message_id, source, mailbox, uidvalidity, uid, raw, raw_sha256, \
      received_at, status, error) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING";

impl StoreTx {
    /// Inserts one message unless it is there already (by dedupe key, or by mailbox,
    /// UIDVALIDITY and UID), and audits it when inserted. `Some(id)` when inserted.
    async fn insert_inbound(
        &mut self,
        source: MailSource,
        imap: Option<(&str, i64)>,
        m: &NewInbound,
    ) -> Result<Option<String>> {
        check(m)?;
        let id = inbound_id(&m.dedupe_key);
        let sha = hex::encode(Sha256::digest(&m.raw));
        let status = if m.refused.is_some() {
            InboundStatus::Failed
        } else {
            InboundStatus::New
        };
        let (mailbox, uidvalidity) = match imap {
            Some((mb, v)) => (Some(mb), Some(v)),
            None => (None, None),
        };
        let uid = imap.and(m.uid);
        let at = now();
        let n = dispatch_tx!(self, |conn| {
            sqlx::query(INSERT_SQL)
                .bind(id.as_str())
                .bind(m.dedupe_key.as_str())
                .bind(m.message_id.as_deref())
                .bind(source.as_str())
                .bind(mailbox)
                .bind(uidvalidity)
                .bind(uid)
                .bind(m.raw.as_slice())
                .bind(sha.as_str())
                .bind(at)
                .bind(status.as_str())
                .bind(m.refused.as_deref())
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Ok(None);
        }
        self.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: None,
            actor: format!("mail:{source}"),
            kind: "mail_received".into(),
            payload: json!({
                "inbound_id": id,
                "source": source.as_str(),
                "dedupe_key": m.dedupe_key,
                "message_id": m.message_id,
                "sha256": sha,
                "size": m.raw.len(),
                "mailbox": mailbox,
                "uidvalidity": uidvalidity,
                "uid": uid,
                "status": status.as_str(),
                "error": m.refused,
            }),
        })
        .await?;
        Ok(Some(id))
    }
}

impl Store {
    /// Receives a batch of one IMAP mailbox and moves its checkpoint to
    /// (`uidvalidity`, `last_uid`), in one transaction (see the module docs). The
    /// checkpoint never moves back within one UIDVALIDITY (a slower reader of the same
    /// mailbox cannot undo a faster one's progress); a new UIDVALIDITY replaces it.
    pub async fn receive_imap_batch(&self, batch: &ImapBatch) -> Result<BatchReceived> {
        if batch.mailbox.is_empty() || batch.uidvalidity < 0 || batch.last_uid < 0 {
            return Err(StoreError::Invalid(format!(
                "IMAP batch of mailbox '{}' (uidvalidity {}, last uid {})",
                batch.mailbox, batch.uidvalidity, batch.last_uid
            )));
        }
        for m in &batch.messages {
            match m.uid {
                Some(uid) if uid > 0 && uid <= batch.last_uid => {}
                other => {
                    return Err(StoreError::Invalid(format!(
                        "message {} of mailbox '{}' has UID {other:?}, outside 1..={}",
                        m.dedupe_key, batch.mailbox, batch.last_uid
                    )));
                }
            }
        }
        let mut tx = self.begin().await?;
        let mut out = BatchReceived::default();
        for m in &batch.messages {
            let imap = Some((batch.mailbox.as_str(), batch.uidvalidity));
            match tx.insert_inbound(MailSource::Imap, imap, m).await? {
                Some(id) => {
                    if m.refused.is_some() {
                        out.refused += 1;
                    }
                    out.stored.push(id);
                }
                None => out.duplicates += 1,
            }
        }
        let sql = "INSERT INTO mailbox_checkpoints (mailbox, uidvalidity, last_uid, updated_at) \
                   VALUES ($1, $2, $3, $4) ON CONFLICT (mailbox) DO UPDATE SET \
                   last_uid = CASE WHEN mailbox_checkpoints.uidvalidity = excluded.uidvalidity \
                                    AND mailbox_checkpoints.last_uid > excluded.last_uid \
                               THEN mailbox_checkpoints.last_uid ELSE excluded.last_uid END, \
                   uidvalidity = excluded.uidvalidity, updated_at = excluded.updated_at";
        tx_write!(
            tx,
            sql,
            [
                batch.mailbox.as_str(),
                batch.uidvalidity,
                batch.last_uid,
                now()
            ]
        );
        tx.commit().await?;
        Ok(out)
    }

    /// Receives one message from the webhook or the command line (not IMAP: use
    /// [`Store::receive_imap_batch`]). A duplicate is not an error: its existing id comes
    /// back with `created: false`.
    pub async fn receive_inbound(&self, source: MailSource, m: &NewInbound) -> Result<Received> {
        if source == MailSource::Imap {
            return Err(StoreError::Invalid(
                "an IMAP message is received with its mailbox's batch".into(),
            ));
        }
        let mut tx = self.begin().await?;
        if let Some(id) = tx.insert_inbound(source, None, m).await? {
            tx.commit().await?;
            return Ok(Received { id, created: true });
        }
        let sql = "SELECT id FROM inbound_mail WHERE dedupe_key = $1";
        let existing: Option<String> = dispatch_tx!(tx, |conn| {
            match sqlx::query(sql)
                .bind(m.dedupe_key.as_str())
                .fetch_optional(&mut *conn)
                .await?
            {
                Some(r) => Some(r.try_get("id")?),
                None => None,
            }
        });
        tx.rollback().await?;
        match existing {
            Some(id) => Ok(Received { id, created: false }),
            None => Err(StoreError::Conflict(format!(
                "inbound message {} was neither stored nor found",
                m.dedupe_key
            ))),
        }
    }

    /// The checkpoint of an IMAP mailbox, if it was ever read.
    pub async fn mailbox_checkpoint(&self, mailbox: &str) -> Result<Option<MailboxCheckpoint>> {
        let sql = "SELECT mailbox, uidvalidity, last_uid, updated_at FROM mailbox_checkpoints \
                   WHERE mailbox = $1";
        Ok(dispatch!(self, |pool| {
            match sqlx::query(sql).bind(mailbox).fetch_optional(pool).await? {
                Some(r) => Some(MailboxCheckpoint {
                    mailbox: r.try_get("mailbox")?,
                    uidvalidity: r.try_get("uidvalidity")?,
                    last_uid: r.try_get("last_uid")?,
                    updated_at: r.try_get("updated_at")?,
                }),
                None => None,
            }
        }))
    }

    /// Up to `limit` messages with status `new`, oldest first (then by id): what the
    /// processing step works through.
    pub async fn pending_inbound(&self, limit: i64) -> Result<Vec<PendingInbound>> {
        let sql = "SELECT id, raw, received_at, source, message_id FROM inbound_mail \
                   WHERE status = 'new' ORDER BY received_at, id LIMIT $1";
        type PendingRow = (String, Vec<u8>, DateTime<Utc>, String, Option<String>);
        let rows: Vec<PendingRow> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(sql).bind(limit.max(0)).fetch_all(pool).await? {
                out.push((
                    r.try_get("id")?,
                    r.try_get("raw")?,
                    r.try_get("received_at")?,
                    r.try_get("source")?,
                    r.try_get("message_id")?,
                ));
            }
            out
        });
        rows.into_iter()
            .map(|(id, raw, received_at, source, message_id)| {
                Ok(PendingInbound {
                    source: parse_col("inbound source", &id, &source)?,
                    id,
                    raw,
                    received_at,
                    message_id,
                })
            })
            .collect()
    }

    /// Stored messages, newest first (then by id), optionally of one status.
    pub async fn inbound_messages(
        &self,
        status: Option<InboundStatus>,
        limit: i64,
    ) -> Result<Vec<InboundRecord>> {
        let sql = format!(
            "SELECT id, dedupe_key, message_id, source, mailbox, uidvalidity, uid, raw_sha256, \
             LENGTH(raw) AS size, received_at, status, customer_id, error FROM inbound_mail \
             WHERE {} ORDER BY received_at DESC, id DESC LIMIT $2",
            crate::eq_or_all("status", status.map(|s| s.as_str()))
        );
        type RowT = (
            (String, String, Option<String>, String, Option<String>),
            (Option<i64>, Option<i64>, String, i64, DateTime<Utc>),
            (String, Option<String>, Option<String>),
        );
        let rows: Vec<RowT> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql)
                .bind(status.map(|s| s.as_str()))
                .bind(limit.max(0))
                .fetch_all(pool)
                .await?
            {
                let size: i64 = match r.try_get::<i64, _>("size") {
                    Ok(n) => n,
                    Err(_) => i64::from(r.try_get::<i32, _>("size")?),
                };
                out.push((
                    (
                        r.try_get("id")?,
                        r.try_get("dedupe_key")?,
                        r.try_get("message_id")?,
                        r.try_get("source")?,
                        r.try_get("mailbox")?,
                    ),
                    (
                        r.try_get("uidvalidity")?,
                        r.try_get("uid")?,
                        r.try_get("raw_sha256")?,
                        size,
                        r.try_get("received_at")?,
                    ),
                    (
                        r.try_get("status")?,
                        r.try_get("customer_id")?,
                        r.try_get("error")?,
                    ),
                ));
            }
            out
        });
        rows.into_iter()
            .map(
                |(
                    (id, dedupe_key, message_id, source, mailbox),
                    (uidvalidity, uid, raw_sha256, size, received_at),
                    (status, customer_id, error),
                )| {
                    Ok(InboundRecord {
                        source: parse_col("inbound source", &id, &source)?,
                        status: parse_col("inbound status", &id, &status)?,
                        id,
                        dedupe_key,
                        message_id,
                        mailbox,
                        uidvalidity,
                        uid,
                        raw_sha256,
                        size,
                        received_at,
                        customer_id,
                        error,
                    })
                },
            )
            .collect()
    }

    /// A stored message's raw bytes. `NotFound` for an unknown id.
    pub async fn inbound_raw(&self, id: &str) -> Result<Vec<u8>> {
        let sql = "SELECT raw FROM inbound_mail WHERE id = $1";
        let raw: Option<Vec<u8>> = dispatch!(self, |pool| {
            match sqlx::query(sql).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(r.try_get("raw")?),
                None => None,
            }
        });
        raw.ok_or_else(|| StoreError::NotFound(format!("inbound message {id}")))
    }

    /// How many messages are stored, optionally of one status.
    pub async fn count_inbound(&self, status: Option<InboundStatus>) -> Result<i64> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM inbound_mail WHERE {}",
            crate::eq_or_all("status", status.map(|s| s.as_str()))
        );
        Ok(dispatch!(self, |pool| {
            sqlx::query(&sql)
                .bind(status.map(|s| s.as_str()))
                .fetch_one(pool)
                .await?
                .try_get("n")?
        }))
    }
}
