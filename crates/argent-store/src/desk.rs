//! What the collections desk's plain-write procedure steps leave (migration `0014_desk`):
//! credit holds and agency referrals.
//!
//! Invariants:
//!
//! - **One active credit hold per customer** (a partial unique index). Placing a hold on a
//!   customer already on hold changes nothing and says so; a hold is never deleted, only
//!   cleared (who, when, why), so the ERP export and the audit trail agree on its history.
//! - **Every write is audited in its own transaction**: `credit_hold.placed`,
//!   `credit_hold.cleared`, `referral.created`, `referral.approved` / `referral.rejected`
//!   are appended in the transaction that writes the row. A worker places a hold or makes a
//!   referral in the transaction that finishes its work item
//!   ([`StoreTx::finish_work`]), so a crash never makes either twice.
//! - **A referral is decided once**: approving or rejecting is a conditional UPDATE on
//!   `pending`, so of two managers exactly one wins (`Conflict` for the other).
//! - A referral's documentation package is stored with its SHA-256 (recorded in the
//!   `referral.created` event too); the store does not interpret the package.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::audit::NewAuditEvent;
use crate::tx::dispatch_tx;
use crate::{Result, Store, StoreError, StoreTx, dispatch, from_json, micros, parse_col};

/// Whether a credit hold is in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditHoldStatus {
    Active,
    Cleared,
}
crate::str_enum!(CreditHoldStatus {
    Active => "active",
    Cleared => "cleared",
});

/// A credit hold: the customer may not be sold to on credit while it is active.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditHold {
    pub id: String,
    pub customer_id: String,
    pub status: CreditHoldStatus,
    /// Why it was placed (for a step: the step and why it was due).
    pub reason: String,
    pub placed_by: String,
    pub placed_at: DateTime<Utc>,
    /// The work item whose step placed it (none when a person did).
    pub work_id: Option<String>,
    pub cleared_by: Option<String>,
    pub cleared_at: Option<DateTime<Utc>>,
    pub clear_reason: Option<String>,
}

/// A hold to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCreditHold {
    pub id: String,
    pub customer_id: String,
    pub reason: String,
    pub placed_by: String,
    pub work_id: Option<String>,
    pub now: DateTime<Utc>,
}

/// Where a referral is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralStatus {
    /// Waiting for a manager.
    Pending,
    Approved,
    Rejected,
}
crate::str_enum!(ReferralStatus {
    Pending => "pending",
    Approved => "approved",
    Rejected => "rejected",
});

/// A proposed hand-over of an account to a collection agency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Referral {
    pub id: String,
    pub customer_id: String,
    pub status: ReferralStatus,
    pub reason: String,
    /// The documentation package (JSON the store does not interpret); `Null` in listings.
    pub package: Value,
    /// Hex SHA-256 of the package as stored.
    pub package_sha256: String,
    pub work_id: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
}

/// A referral to record.
#[derive(Clone, Debug, PartialEq)]
pub struct NewReferral {
    pub id: String,
    pub customer_id: String,
    pub reason: String,
    pub package: Value,
    pub work_id: Option<String>,
    pub created_by: String,
    pub now: DateTime<Utc>,
}

const HOLD_COLS: &str = "id, customer_id, status, reason, placed_by, placed_at, work_id, \
                         cleared_by, cleared_at, clear_reason";

macro_rules! hold_row {
    ($r:expr) => {{
        let id: String = $r.try_get("id")?;
        let status: String = $r.try_get("status")?;
        CreditHold {
            status: parse_col("credit hold status", &id, &status)?,
            customer_id: $r.try_get("customer_id")?,
            reason: $r.try_get("reason")?,
            placed_by: $r.try_get("placed_by")?,
            placed_at: $r.try_get("placed_at")?,
            work_id: $r.try_get("work_id")?,
            cleared_by: $r.try_get("cleared_by")?,
            cleared_at: $r.try_get("cleared_at")?,
            clear_reason: $r.try_get("clear_reason")?,
            id,
        }
    }};
}

const REFERRAL_COLS: &str = "id, customer_id, status, reason, package, package_sha256, work_id, \
                             created_by, created_at, decided_by, decided_at, note";

macro_rules! referral_row {
    ($r:expr, $with_package:expr) => {{
        let id: String = $r.try_get("id")?;
        let status: String = $r.try_get("status")?;
        let package: String = $r.try_get("package")?;
        Referral {
            status: parse_col("referral status", &id, &status)?,
            package: if $with_package {
                from_json("referral package", &id, &package)?
            } else {
                Value::Null
            },
            customer_id: $r.try_get("customer_id")?,
            reason: $r.try_get("reason")?,
            package_sha256: $r.try_get("package_sha256")?,
            work_id: $r.try_get("work_id")?,
            created_by: $r.try_get("created_by")?,
            created_at: $r.try_get("created_at")?,
            decided_by: $r.try_get("decided_by")?,
            decided_at: $r.try_get("decided_at")?,
            note: $r.try_get("note")?,
            id,
        }
    }};
}

fn audit(customer: &str, actor: &str, kind: &str, payload: Value) -> NewAuditEvent {
    NewAuditEvent {
        run_id: None,
        customer_id: Some(customer.to_string()),
        actor: actor.to_string(),
        kind: kind.to_string(),
        payload,
    }
}

impl StoreTx {
    /// The customer's active hold, as this transaction sees it.
    pub async fn active_credit_hold(&mut self, customer_id: &str) -> Result<Option<CreditHold>> {
        let sql = format!(
            "SELECT {HOLD_COLS} FROM credit_holds WHERE customer_id = $1 AND status = 'active'"
        );
        let rows = dispatch_tx!(self, |conn| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql)
                .bind(customer_id)
                .fetch_all(&mut *conn)
                .await?
            {
                out.push(hold_row!(r));
            }
            out
        });
        Ok(rows.into_iter().next())
    }

    /// Places a credit hold on the customer with its `credit_hold.placed` event, unless it
    /// is already on hold: then nothing is written and the active hold is returned with
    /// `false`. `NotFound` for an unknown customer.
    pub async fn place_credit_hold(&mut self, h: &NewCreditHold) -> Result<(CreditHold, bool)> {
        if let Some(existing) = self.active_credit_hold(&h.customer_id).await? {
            return Ok((existing, false));
        }
        let known = dispatch_tx!(self, |conn| {
            sqlx::query("SELECT id FROM customers WHERE id = $1")
                .bind(h.customer_id.as_str())
                .fetch_optional(&mut *conn)
                .await?
                .is_some()
        });
        if !known {
            return Err(StoreError::NotFound(format!("customer {}", h.customer_id)));
        }
        let now = micros(h.now);
        // Two placers at once: the partial unique index makes the second wait for the
        // first and then insert nothing; it returns the first's hold.
        let sql = format!(
            "INSERT INTO credit_holds ({HOLD_COLS}) \
             VALUES ($1, $2, 'active', $3, $4, $5, $6, NULL, NULL, NULL) \
             ON CONFLICT (customer_id) WHERE status = 'active' DO NOTHING"
        );
        let inserted = dispatch_tx!(self, |conn| {
            sqlx::query(&sql)
                .bind(h.id.as_str())
                .bind(h.customer_id.as_str())
                .bind(h.reason.as_str())
                .bind(h.placed_by.as_str())
                .bind(now)
                .bind(h.work_id.as_deref())
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if inserted == 0 {
            let existing = self
                .active_credit_hold(&h.customer_id)
                .await?
                .ok_or_else(|| {
                    StoreError::Conflict(format!(
                        "customer {}: a concurrent credit hold was cleared meanwhile",
                        h.customer_id
                    ))
                })?;
            return Ok((existing, false));
        }
        self.audit_append(audit(
            &h.customer_id,
            &h.placed_by,
            "credit_hold.placed",
            json!({"hold_id": h.id, "reason": h.reason, "work_id": h.work_id}),
        ))
        .await?;
        Ok((
            CreditHold {
                id: h.id.clone(),
                customer_id: h.customer_id.clone(),
                status: CreditHoldStatus::Active,
                reason: h.reason.clone(),
                placed_by: h.placed_by.clone(),
                placed_at: now,
                work_id: h.work_id.clone(),
                cleared_by: None,
                cleared_at: None,
                clear_reason: None,
            },
            true,
        ))
    }

    /// Clears the customer's active hold (`NotFound` when it has none) with its
    /// `credit_hold.cleared` event naming who and why.
    pub async fn clear_credit_hold(
        &mut self,
        customer_id: &str,
        actor: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<CreditHold> {
        let Some(mut hold) = self.active_credit_hold(customer_id).await? else {
            return Err(StoreError::NotFound(format!(
                "an active credit hold on customer {customer_id}"
            )));
        };
        let now = micros(now);
        let sql = "UPDATE credit_holds SET status = 'cleared', cleared_by = $1, cleared_at = $2, \
                   clear_reason = $3 WHERE id = $4 AND status = 'active'";
        let n = dispatch_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(actor)
                .bind(now)
                .bind(reason)
                .bind(hold.id.as_str())
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "credit hold {} was cleared meanwhile",
                hold.id
            )));
        }
        self.audit_append(audit(
            customer_id,
            actor,
            "credit_hold.cleared",
            json!({"hold_id": hold.id, "reason": reason, "placed_at": hold.placed_at}),
        ))
        .await?;
        hold.status = CreditHoldStatus::Cleared;
        hold.cleared_by = Some(actor.to_string());
        hold.cleared_at = Some(now);
        hold.clear_reason = Some(reason.to_string());
        Ok(hold)
    }

    /// Records a pending referral with its package and `referral.created` event. A
    /// referral for a work item that already made one is not made again: the existing one
    /// is returned with `false`.
    pub async fn create_referral(&mut self, r: &NewReferral) -> Result<(Referral, bool)> {
        if let Some(work) = &r.work_id {
            let sql = format!("SELECT {REFERRAL_COLS} FROM referrals WHERE work_id = $1");
            let existing = dispatch_tx!(self, |conn| {
                let mut out = Vec::new();
                for row in sqlx::query(&sql)
                    .bind(work.as_str())
                    .fetch_all(&mut *conn)
                    .await?
                {
                    out.push(referral_row!(row, true));
                }
                out
            });
            if let Some(e) = existing.into_iter().next() {
                return Ok((e, false));
            }
        }
        let package = crate::to_json(&r.package);
        let sha = hex::encode(Sha256::digest(package.as_bytes()));
        let now = micros(r.now);
        let sql = format!(
            "INSERT INTO referrals ({REFERRAL_COLS}) \
             VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, NULL, NULL, NULL)"
        );
        dispatch_tx!(self, |conn| {
            sqlx::query(&sql)
                .bind(r.id.as_str())
                .bind(r.customer_id.as_str())
                .bind(r.reason.as_str())
                .bind(package.as_str())
                .bind(sha.as_str())
                .bind(r.work_id.as_deref())
                .bind(r.created_by.as_str())
                .bind(now)
                .execute(&mut *conn)
                .await?;
        });
        self.audit_append(audit(
            &r.customer_id,
            &r.created_by,
            "referral.created",
            json!({"referral_id": r.id, "reason": r.reason, "package_sha256": sha, "work_id": r.work_id}),
        ))
        .await?;
        Ok((
            Referral {
                id: r.id.clone(),
                customer_id: r.customer_id.clone(),
                status: ReferralStatus::Pending,
                reason: r.reason.clone(),
                package: r.package.clone(),
                package_sha256: sha,
                work_id: r.work_id.clone(),
                created_by: r.created_by.clone(),
                created_at: now,
                decided_by: None,
                decided_at: None,
                note: None,
            },
            true,
        ))
    }
}

impl Store {
    /// Credit holds, newest first: only the active ones, or all.
    pub async fn credit_holds(&self, active_only: bool) -> Result<Vec<CreditHold>> {
        let filter = if active_only {
            "WHERE status = 'active' "
        } else {
            ""
        };
        let sql =
            format!("SELECT {HOLD_COLS} FROM credit_holds {filter}ORDER BY placed_at DESC, id");
        let rows = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).fetch_all(pool).await? {
                out.push(hold_row!(r));
            }
            out
        });
        Ok(rows)
    }

    /// [`StoreTx::place_credit_hold`] in a transaction of its own.
    pub async fn place_credit_hold(&self, h: &NewCreditHold) -> Result<(CreditHold, bool)> {
        let mut tx = self.begin().await?;
        let out = tx.place_credit_hold(h).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// [`StoreTx::clear_credit_hold`] in a transaction of its own.
    pub async fn clear_credit_hold(
        &self,
        customer_id: &str,
        actor: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<CreditHold> {
        let mut tx = self.begin().await?;
        let out = tx
            .clear_credit_hold(customer_id, actor, reason, now)
            .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Clears every active hold whose customer owes nothing any more (its payments cover
    /// its invoices), each with its audit event naming `actor` and "balance paid"; returns
    /// the customers cleared. The workers run this as they poll.
    pub async fn clear_settled_credit_holds(
        &self,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let sql = "SELECT h.customer_id FROM credit_holds h WHERE h.status = 'active' \
                   AND (SELECT COALESCE(SUM(i.amount_minor), 0) FROM invoices i WHERE i.customer_id = h.customer_id) \
                   <= (SELECT COALESCE(SUM(p.amount_minor), 0) FROM payments p WHERE p.customer_id = h.customer_id) \
                   ORDER BY h.customer_id";
        let customers: Vec<String> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(sql).fetch_all(pool).await? {
                out.push(r.try_get("customer_id")?);
            }
            out
        });
        let mut cleared = Vec::new();
        for c in customers {
            let mut tx = self.begin().await?;
            match tx.clear_credit_hold(&c, actor, "balance paid", now).await {
                Ok(_) => {
                    tx.commit().await?;
                    cleared.push(c);
                }
                // Cleared by someone else meanwhile: nothing to do.
                Err(StoreError::NotFound(_) | StoreError::Conflict(_)) => tx.rollback().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(cleared)
    }

    /// Referrals, newest first, of `status` when given (packages left out: `Null`).
    pub async fn referrals(&self, status: Option<ReferralStatus>) -> Result<Vec<Referral>> {
        let sql = format!(
            "SELECT {REFERRAL_COLS} FROM referrals WHERE ($1 IS NULL OR status = $1) \
             ORDER BY created_at DESC, id"
        );
        let status = status.map(|s| s.as_str());
        let rows = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(status).fetch_all(pool).await? {
                out.push(referral_row!(r, false));
            }
            out
        });
        Ok(rows)
    }

    /// Referral `id` with its package (`NotFound` when there is none).
    pub async fn referral(&self, id: &str) -> Result<Referral> {
        let sql = format!("SELECT {REFERRAL_COLS} FROM referrals WHERE id = $1");
        let rows = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(id).fetch_all(pool).await? {
                out.push(referral_row!(r, true));
            }
            out
        });
        rows.into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(format!("referral {id}")))
    }

    /// Approves (`approve`) or rejects a pending referral as `actor`, with its
    /// `referral.approved` / `referral.rejected` event, in one transaction. `Conflict` when
    /// it was already decided, `NotFound` when there is none. Whether `actor` may decide is
    /// the caller's check (a manager).
    pub async fn decide_referral(
        &self,
        id: &str,
        approve: bool,
        actor: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Referral> {
        let current = self.referral(id).await?;
        let to = if approve {
            ReferralStatus::Approved
        } else {
            ReferralStatus::Rejected
        };
        let now = micros(now);
        let mut tx = self.begin().await?;
        let sql = "UPDATE referrals SET status = $1, decided_by = $2, decided_at = $3, note = $4 \
                   WHERE id = $5 AND status = 'pending'";
        let n = dispatch_tx!(tx, |conn| {
            sqlx::query(sql)
                .bind(to.as_str())
                .bind(actor)
                .bind(now)
                .bind(note)
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if n == 0 {
            tx.rollback().await?;
            return Err(StoreError::Conflict(format!(
                "referral {id} was already decided"
            )));
        }
        tx.audit_append(audit(
            &current.customer_id,
            actor,
            &format!("referral.{}", to.as_str()),
            json!({"referral_id": id, "note": note, "package_sha256": current.package_sha256}),
        ))
        .await?;
        tx.commit().await?;
        Ok(Referral {
            status: to,
            decided_by: Some(actor.to_string()),
            decided_at: Some(now),
            note: note.map(str::to_string),
            ..current
        })
    }
}
