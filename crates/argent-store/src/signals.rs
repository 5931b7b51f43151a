//! Account signals: what the inbound classifier recognised in a customer's message, and
//! a person's decision on each (migration `0007_account_signals`).
//!
//! The store keeps the rows; what a signal does to the account (the pending fact, the
//! flag a confirmation sets) is `argent_core::signal`, applied by the agent inside the
//! same transaction as the row and its audit event. One signal per customer, kind and
//! message (`UNIQUE (customer_id, kind, message_sha256)`): recording the same message
//! again changes nothing. Deciding is one conditional UPDATE on `pending`, so of two
//! reviewers exactly one wins.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use argent_core::{Contact, Customer, SignalDetail, SignalKind, SignalStatus};

use crate::tx::{dispatch_tx, tx_write};
use crate::{Backend, Result, Store, StoreError, StoreTx, dispatch, from_json, now, parse_col};

/// A signal about to be recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSignal {
    pub id: String,
    pub customer_id: String,
    pub kind: SignalKind,
    /// The address the message came from.
    pub contact: Option<String>,
    pub excerpt: String,
    /// SHA-256 (hex) of the message.
    pub message_sha256: String,
    pub run_id: Option<String>,
    pub detail: SignalDetail,
    pub detected_at: DateTime<Utc>,
}

/// A recorded signal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalRecord {
    pub id: String,
    pub customer_id: String,
    pub kind: SignalKind,
    pub contact: Option<String>,
    pub excerpt: String,
    pub message_sha256: String,
    pub run_id: Option<String>,
    pub detail: SignalDetail,
    pub detected_at: DateTime<Utc>,
    pub status: SignalStatus,
    pub decided_by: Option<String>,
    pub decided_role: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
}

const SIGNAL_COLS: &str = "id, customer_id, kind, contact, excerpt, message_sha256, run_id, detail, \
                           detected_at, status, decided_by, decided_role, decided_at, note";

struct SignalRow {
    id: String,
    customer_id: String,
    kind: String,
    contact: Option<String>,
    excerpt: String,
    message_sha256: String,
    run_id: Option<String>,
    detail: String,
    detected_at: DateTime<Utc>,
    status: String,
    decided_by: Option<String>,
    decided_role: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    note: Option<String>,
}

macro_rules! signal_row {
    ($r:expr) => {
        SignalRow {
            id: $r.try_get("id")?,
            customer_id: $r.try_get("customer_id")?,
            kind: $r.try_get("kind")?,
            contact: $r.try_get("contact")?,
            excerpt: $r.try_get("excerpt")?,
            message_sha256: $r.try_get("message_sha256")?,
            run_id: $r.try_get("run_id")?,
            detail: $r.try_get("detail")?,
            detected_at: $r.try_get("detected_at")?,
            status: $r.try_get("status")?,
            decided_by: $r.try_get("decided_by")?,
            decided_role: $r.try_get("decided_role")?,
            decided_at: $r.try_get("decided_at")?,
            note: $r.try_get("note")?,
        }
    };
}

impl SignalRow {
    fn into_record(self) -> Result<SignalRecord> {
        let id = self.id;
        Ok(SignalRecord {
            kind: parse_col("signal kind", &id, &self.kind)?,
            status: parse_col("signal status", &id, &self.status)?,
            detail: from_json("signal detail", &id, &self.detail)?,
            customer_id: self.customer_id,
            contact: self.contact,
            excerpt: self.excerpt,
            message_sha256: self.message_sha256,
            run_id: self.run_id,
            detected_at: self.detected_at,
            decided_by: self.decided_by,
            decided_role: self.decided_role,
            decided_at: self.decided_at,
            note: self.note,
            id,
        })
    }
}

impl StoreTx {
    /// Records a signal as `pending`. `false` (and nothing written) when this customer
    /// already has a signal of this kind from this message.
    pub async fn insert_signal(&mut self, s: &NewSignal) -> Result<bool> {
        let sql = format!(
            "INSERT INTO account_signals ({SIGNAL_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', NULL, NULL, NULL, NULL) \
             ON CONFLICT (customer_id, kind, message_sha256) DO NOTHING"
        );
        let detail = crate::to_json(&s.detail);
        let n = dispatch_tx!(self, |conn| {
            sqlx::query(&sql)
                .bind(s.id.as_str())
                .bind(s.customer_id.as_str())
                .bind(s.kind.as_str())
                .bind(s.contact.as_deref())
                .bind(s.excerpt.as_str())
                .bind(s.message_sha256.as_str())
                .bind(s.run_id.as_deref())
                .bind(detail.as_str())
                .bind(crate::micros(s.detected_at))
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Whether this customer already has a signal of `kind` from the message with this
    /// hash (whatever its status).
    pub async fn signal_exists(
        &mut self,
        customer_id: &str,
        kind: SignalKind,
        message_sha256: &str,
    ) -> Result<bool> {
        let sql = "SELECT 1 AS one FROM account_signals \
                   WHERE customer_id = $1 AND kind = $2 AND message_sha256 = $3";
        Ok(dispatch_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(customer_id)
                .bind(kind.as_str())
                .bind(message_sha256)
                .fetch_optional(&mut *conn)
                .await?
                .is_some()
        }))
    }

    /// Decides a pending signal: one conditional UPDATE, so of any number of concurrent
    /// deciders exactly one succeeds; everyone else (and anyone deciding a signal that is
    /// already decided or does not exist) fails with [`StoreError::Conflict`] and the
    /// transaction can only roll back. On the SQLite writer the update is queued, so the
    /// conflict may be reported by a later call of the transaction (`commit` at the latest).
    pub async fn decide_signal(
        &mut self,
        id: &str,
        status: SignalStatus,
        by: &str,
        role: &str,
        note: Option<&str>,
    ) -> Result<()> {
        if status == SignalStatus::Pending {
            return Err(StoreError::Invalid(format!(
                "signal {id} cannot be decided back to pending"
            )));
        }
        let sql = "UPDATE account_signals SET status = $1, decided_by = $2, decided_role = $3, \
                   decided_at = $4, note = $5 WHERE id = $6 AND status = 'pending'";
        tx_write!(
            self,
            sql,
            [status.as_str(), by, role, now(), note, id],
            or: StoreError::Conflict(format!("signal {id} is not pending"))
        );
        Ok(())
    }

    /// How many signals of `kind` on this customer are pending, other than `except_id`.
    pub async fn other_pending_signals(
        &mut self,
        customer_id: &str,
        kind: SignalKind,
        except_id: &str,
    ) -> Result<i64> {
        let sql = "SELECT COUNT(*) AS n FROM account_signals \
                   WHERE customer_id = $1 AND kind = $2 AND status = 'pending' AND id <> $3";
        Ok(dispatch_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(customer_id)
                .bind(kind.as_str())
                .bind(except_id)
                .fetch_one(&mut *conn)
                .await?
                .try_get("n")?
        }))
    }

    /// The customer, read inside the transaction to be changed by it: on PostgreSQL the
    /// row is locked (`FOR UPDATE`) until the transaction ends, so two transactions that
    /// read-modify-write one customer's facts or contacts take turns; a SQLite write
    /// transaction holds the database's write lock already. `NotFound` if unknown.
    pub async fn customer_for_update(&mut self, id: &str) -> Result<Customer> {
        let mut sql = crate::ledger::customer_sql();
        if self.backend() == Backend::Postgres {
            sql.push_str(" FOR UPDATE");
        }
        let row = dispatch_tx!(self, |conn| crate::ledger::select_customer!(
            &mut *conn, &sql, id
        ));
        crate::ledger::customer_from(id, row)
    }

    /// Replaces a customer's contacts (e.g. an email opt-out recognised in a reply). The
    /// caller audits the change in the same transaction. `NotFound` if unknown.
    pub async fn set_customer_contacts(
        &mut self,
        customer_id: &str,
        contacts: &[Contact],
    ) -> Result<()> {
        let sql = "UPDATE customers SET contacts = $1, updated_at = $2 WHERE id = $3";
        tx_write!(
            self,
            sql,
            [crate::to_json(&contacts), now(), customer_id],
            or: StoreError::NotFound(format!("customer {customer_id}"))
        );
        Ok(())
    }
}

impl Store {
    /// Signals, oldest first (then by id), optionally of one status and one customer.
    pub async fn signals(
        &self,
        status: Option<SignalStatus>,
        customer_id: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<SignalRecord>> {
        let status_filter = match status {
            Some(_) => "status = $1",
            None => "$1 IS NULL",
        };
        let customer_filter = match customer_id {
            Some(_) => "customer_id = $2",
            None => "$2 IS NULL",
        };
        let sql = format!(
            "SELECT {SIGNAL_COLS} FROM account_signals WHERE {status_filter} AND {customer_filter} \
             ORDER BY detected_at, id LIMIT $3 OFFSET $4"
        );
        let rows: Vec<SignalRow> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql)
                .bind(status.map(|s| s.as_str()))
                .bind(customer_id)
                .bind(limit.max(0))
                .bind(offset.max(0))
                .fetch_all(pool)
                .await?
            {
                out.push(signal_row!(r));
            }
            out
        });
        rows.into_iter().map(SignalRow::into_record).collect()
    }

    /// How many signals there are, optionally of one status.
    pub async fn count_signals(&self, status: Option<SignalStatus>) -> Result<i64> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM account_signals WHERE {}",
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

    /// One signal. `NotFound` for an unknown id.
    pub async fn signal(&self, id: &str) -> Result<SignalRecord> {
        let sql = format!("SELECT {SIGNAL_COLS} FROM account_signals WHERE id = $1");
        let row: Option<SignalRow> = dispatch!(self, |pool| {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(signal_row!(r)),
                None => None,
            }
        });
        row.ok_or_else(|| StoreError::NotFound(format!("signal {id}")))?
            .into_record()
    }
}
