//! Work items: due work for the workers (migration `0011_work_items`).
//!
//! The scheduler enqueues an item per piece of due work (a procedure step for one account)
//! and workers claim items with a lease, heartbeat while they work, and finish or release
//! them. The invariants:
//!
//! - **Enqueueing is idempotent.** Each item has a `dedupe_key` (unique) and an id derived
//!   from it ([`work_id`]); enqueueing a key that exists changes nothing, whichever process
//!   or transaction gets there first. So two schedulers running at once enqueue each piece
//!   of work exactly once.
//! - **A claim is exclusive.** An item is claimable when it is `queued` and due, or
//!   `leased` with a lease that has expired (its worker died). Claiming sets the lease
//!   owner and expiry and counts the attempt; on PostgreSQL candidates are locked with
//!   `FOR UPDATE SKIP LOCKED` (pick, lease and return in one statement), on SQLite the
//!   claim runs in a `BEGIN IMMEDIATE` transaction,
//!   so two claimers never get the same item.
//! - **Only the lease holder moves an item on.** Heartbeat, finish and release are
//!   conditional updates on `(id, lease_owner, status = 'leased')`: a worker whose lease
//!   expired and was taken over gets `Conflict` (finish) or `false` (heartbeat) and must
//!   stop. Side effects are made exactly once by the work itself (an agent run resumed
//!   from its checkpoint, or a write in the same transaction as [`StoreTx::finish_work`]),
//!   not by this table.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::tx::{dispatch_tx, tx_write};
use crate::{Backend, Result, Store, StoreError, StoreTx, dispatch, from_json, micros, parse_col};

/// Where a work item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkStatus {
    /// Waiting for its due time and a worker.
    Queued,
    /// A worker holds it until `lease_until`.
    Leased,
    /// Finished; `result` says how.
    Done,
    /// Given up on; `last_error` says why.
    Failed,
    /// No longer wanted (e.g. the account was paused or paid before it ran).
    Cancelled,
}
crate::str_enum!(WorkStatus {
    Queued => "queued",
    Leased => "leased",
    Done => "done",
    Failed => "failed",
    Cancelled => "cancelled",
});

/// A piece of work about to be enqueued.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewWorkItem {
    /// What the work is (`procedure_step`); workers dispatch on it.
    pub kind: String,
    /// Identifies the work: the same key is never enqueued twice.
    pub dedupe_key: String,
    pub customer_id: String,
    pub payload: Value,
    /// Not claimable before this instant.
    pub due_at: DateTime<Utc>,
}

/// A stored work item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    pub id: String,
    pub kind: String,
    pub dedupe_key: String,
    pub customer_id: String,
    pub payload: Value,
    pub due_at: DateTime<Utc>,
    pub status: WorkStatus,
    /// Claims so far (a claim after a lease expired counts again).
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    /// The agent run doing the work, once started.
    pub run_id: Option<String>,
    pub result: Option<Value>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The id of the work item with `dedupe_key`: `work-` and the first 24 hex digits of its
/// SHA-256, so every enqueuer computes the same id.
pub fn work_id(dedupe_key: &str) -> String {
    let h = hex::encode(Sha256::digest(dedupe_key.as_bytes()));
    format!("work-{}", &h[..24])
}

const WORK_COLS: &str = "id, kind, dedupe_key, customer_id, payload, due_at, status, attempts, \
                         lease_owner, lease_until, run_id, result, last_error, created_at, updated_at";

struct WorkRow {
    id: String,
    kind: String,
    dedupe_key: String,
    customer_id: String,
    payload: String,
    due_at: DateTime<Utc>,
    status: String,
    attempts: i64,
    lease_owner: Option<String>,
    lease_until: Option<DateTime<Utc>>,
    run_id: Option<String>,
    result: Option<String>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

macro_rules! work_row {
    ($r:expr) => {
        WorkRow {
            id: $r.try_get("id")?,
            kind: $r.try_get("kind")?,
            dedupe_key: $r.try_get("dedupe_key")?,
            customer_id: $r.try_get("customer_id")?,
            payload: $r.try_get("payload")?,
            due_at: $r.try_get("due_at")?,
            status: $r.try_get("status")?,
            attempts: $r.try_get("attempts")?,
            lease_owner: $r.try_get("lease_owner")?,
            lease_until: $r.try_get("lease_until")?,
            run_id: $r.try_get("run_id")?,
            result: $r.try_get("result")?,
            last_error: $r.try_get("last_error")?,
            created_at: $r.try_get("created_at")?,
            updated_at: $r.try_get("updated_at")?,
        }
    };
}

impl WorkRow {
    fn into_item(self) -> Result<WorkItem> {
        let id = self.id;
        Ok(WorkItem {
            status: parse_col("work item status", &id, &self.status)?,
            payload: from_json("work item payload", &id, &self.payload)?,
            result: match self.result {
                Some(r) => Some(from_json("work item result", &id, &r)?),
                None => None,
            },
            kind: self.kind,
            dedupe_key: self.dedupe_key,
            customer_id: self.customer_id,
            due_at: self.due_at,
            attempts: self.attempts,
            lease_owner: self.lease_owner,
            lease_until: self.lease_until,
            run_id: self.run_id,
            last_error: self.last_error,
            created_at: self.created_at,
            updated_at: self.updated_at,
            id,
        })
    }
}

fn items(rows: Vec<WorkRow>) -> Result<Vec<WorkItem>> {
    rows.into_iter().map(WorkRow::into_item).collect()
}

/// Which work items to list.
#[derive(Clone, Debug, Default)]
pub struct WorkFilter<'a> {
    pub status: Option<WorkStatus>,
    pub customer_id: Option<&'a str>,
    pub kind: Option<&'a str>,
    /// At most this many (newest due first); 0 means 1000.
    pub limit: i64,
}

impl StoreTx {
    /// Enqueues every item whose `dedupe_key` is new, as `queued`, in this transaction, and
    /// returns the ids of those inserted (items whose key exists are left as they are).
    /// `ON CONFLICT DO NOTHING` with no target: the id is derived from the key, so a
    /// concurrent enqueuer's row for the same key clashes on the id too, and PostgreSQL
    /// skips a clash only on an index it arbitrates (with `(dedupe_key)` alone, the second
    /// enqueuer failed on `work_items_pkey`).
    pub async fn enqueue_work(
        &mut self,
        new: &[NewWorkItem],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let sql = format!(
            "INSERT INTO work_items ({WORK_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, NULL, NULL, NULL, NULL, NULL, $7, $7) \
             ON CONFLICT DO NOTHING"
        );
        let now = micros(now);
        let mut inserted = Vec::new();
        for item in new {
            let id = work_id(&item.dedupe_key);
            let payload = crate::to_json(&item.payload);
            let n = dispatch_tx!(self, |conn| {
                sqlx::query(&sql)
                    .bind(id.as_str())
                    .bind(item.kind.as_str())
                    .bind(item.dedupe_key.as_str())
                    .bind(item.customer_id.as_str())
                    .bind(payload.as_str())
                    .bind(micros(item.due_at))
                    .bind(now)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected()
            });
            if n > 0 {
                inserted.push(id);
            }
        }
        Ok(inserted)
    }

    /// Records the agent run doing item `id`, if `owner` still holds its lease
    /// (`Conflict` otherwise). Do this in the transaction that creates the run, so a
    /// worker that takes the item over resumes that run instead of starting another.
    pub async fn set_work_run(&mut self, id: &str, owner: &str, run_id: &str) -> Result<()> {
        let sql = "UPDATE work_items SET run_id = $1 \
                   WHERE id = $2 AND lease_owner = $3 AND status = 'leased'";
        // Queued on the SQLite writer: a lost lease fails a later call of the transaction
        // (`commit` at the latest) with the same `Conflict`.
        tx_write!(
            self,
            sql,
            [run_id, id, owner],
            or: StoreError::Conflict(format!("work item {id} is not leased by {owner}"))
        );
        Ok(())
    }

    /// Ends item `id` as `status` (`Done`, `Failed` or `Cancelled`) with its result or
    /// error, if `owner` still holds its lease (`Conflict` otherwise: another worker took
    /// it over, and this transaction must not commit its side effects).
    pub async fn finish_work(
        &mut self,
        id: &str,
        owner: &str,
        status: WorkStatus,
        result: Option<&Value>,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if matches!(status, WorkStatus::Queued | WorkStatus::Leased) {
            return Err(StoreError::Invalid(format!(
                "work item {id}: finishing as {status} is not an end"
            )));
        }
        let sql = "UPDATE work_items SET status = $1, result = $2, last_error = $3, \
                   lease_owner = NULL, lease_until = NULL, updated_at = $4 \
                   WHERE id = $5 AND lease_owner = $6 AND status = 'leased'";
        let result = result.map(crate::to_json);
        let n = dispatch_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(status.as_str())
                .bind(result.as_deref())
                .bind(error)
                .bind(micros(now))
                .bind(id)
                .bind(owner)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "work item {id} is not leased by {owner}"
            )));
        }
        Ok(())
    }

    /// Cancels queued items of `customer_id` (e.g. its balance was paid), returning how
    /// many. Leased items are left to their workers.
    pub async fn cancel_queued_work(
        &mut self,
        customer_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let sql = "UPDATE work_items SET status = 'cancelled', last_error = $1, updated_at = $2 \
                   WHERE customer_id = $3 AND status = 'queued'";
        let n = dispatch_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(reason)
                .bind(micros(now))
                .bind(customer_id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(n)
    }
}

impl Store {
    /// [`StoreTx::enqueue_work`] in a transaction of its own.
    pub async fn enqueue_work(
        &self,
        new: &[NewWorkItem],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        let ids = tx.enqueue_work(new, now).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Claims up to `limit` items that are due at `now` (`queued` with `due_at <= now`, or
    /// `leased` with an expired lease), of `kinds` when given, for `owner` until `until`,
    /// earliest due first, and returns them as leased. Concurrent claimers never get the
    /// same item (see the module docs).
    pub async fn claim_work(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: i64,
        kinds: Option<&[&str]>,
    ) -> Result<Vec<WorkItem>> {
        self.claim_due_work(owner, now, now, until, limit, kinds)
            .await
    }

    /// [`Store::claim_work`] with the due cutoff apart from the lease clock: items
    /// `queued` with `due_at <= due_by`, or `leased` with `lease_until <= now`. Workers
    /// run leases on the wall clock and may judge what is due at another instant (`--now`).
    /// The agent run an item already has (`run_id`) is leased to `owner` too, so
    /// `argent resume` leaves it to the worker.
    pub async fn claim_due_work(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        due_by: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: i64,
        kinds: Option<&[&str]>,
    ) -> Result<Vec<WorkItem>> {
        let lock = match self.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        // Kinds are matched against a bound JSON-free list: one placeholder per kind.
        let kinds: Vec<&str> = kinds.map(<[&str]>::to_vec).unwrap_or_default();
        // PostgreSQL binds the owner and the lease's end as $4 and $5 (one statement).
        let first_kind = match self.backend() {
            Backend::Sqlite => 4,
            Backend::Postgres => 6,
        };
        let kind_clause = if kinds.is_empty() {
            String::new()
        } else {
            let ph: Vec<String> = (0..kinds.len())
                .map(|i| format!("${}", i + first_kind))
                .collect();
            format!(" AND kind IN ({})", ph.join(", "))
        };
        let pick = format!(
            "SELECT id FROM work_items \
             WHERE ((status = 'queued' AND due_at <= $3) OR (status = 'leased' AND lease_until <= $1)){kind_clause} \
             ORDER BY due_at, id LIMIT $2{lock}"
        );
        let (now, until, due_by) = (micros(now), micros(until), micros(due_by));
        if let crate::Pool::Postgres(pool) = &self.pool {
            // One statement, its own transaction: pick (skipping rows other claimers
            // hold), lease the picked items and the runs they already have, return the
            // items. One round trip however many items, where the loop below takes three
            // an item and two for the transaction.
            let claim_all = format!(
                "WITH picked AS ({pick}), \
                 claimed AS (UPDATE work_items SET status = 'leased', lease_owner = $4, lease_until = $5, \
                     attempts = attempts + 1, updated_at = $1 \
                     WHERE id IN (SELECT id FROM picked) RETURNING {WORK_COLS}), \
                 runs_leased AS (UPDATE runs SET lease_owner = $4, lease_until = $5 \
                     WHERE id IN (SELECT run_id FROM claimed) AND status = 'running') \
                 SELECT {WORK_COLS} FROM claimed ORDER BY due_at, id"
            );
            let mut q = sqlx::query(&claim_all)
                .bind(now)
                .bind(limit.max(0))
                .bind(due_by)
                .bind(owner)
                .bind(until);
            for k in &kinds {
                q = q.bind(*k);
            }
            let mut rows = Vec::new();
            for r in q.fetch_all(pool).await? {
                rows.push(work_row!(r));
            }
            return items(rows);
        }
        let run_lease = "UPDATE runs SET lease_owner = $1, lease_until = $2 \
                         WHERE id = (SELECT run_id FROM work_items WHERE id = $3) AND status = 'running'";
        let claim = "UPDATE work_items SET status = 'leased', lease_owner = $1, lease_until = $2, \
                     attempts = attempts + 1, updated_at = $3 WHERE id = $4";
        let read = format!("SELECT {WORK_COLS} FROM work_items WHERE id = $1");
        let mut tx = self.begin().await?;
        let rows: Vec<WorkRow> = dispatch_tx!(tx, |conn| {
            let mut q = sqlx::query(&pick).bind(now).bind(limit.max(0)).bind(due_by);
            for k in &kinds {
                q = q.bind(*k);
            }
            let mut ids: Vec<String> = Vec::new();
            for r in q.fetch_all(&mut *conn).await? {
                ids.push(r.try_get("id")?);
            }
            let mut out = Vec::new();
            for id in &ids {
                sqlx::query(claim)
                    .bind(owner)
                    .bind(until)
                    .bind(now)
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(run_lease)
                    .bind(owner)
                    .bind(until)
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await?;
                let r = sqlx::query(&read)
                    .bind(id.as_str())
                    .fetch_one(&mut *conn)
                    .await?;
                out.push(work_row!(r));
            }
            out
        });
        tx.commit().await?;
        items(rows)
    }

    /// Extends `owner`'s lease on item `id` to `until`. `false` when `owner` no longer
    /// holds it (expired and taken over, or finished): the worker must stop working on it.
    pub async fn heartbeat_work(
        &self,
        id: &str,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = "UPDATE work_items SET lease_until = $1, updated_at = $2 \
                   WHERE id = $3 AND lease_owner = $4 AND status = 'leased'";
        let run_lease = "UPDATE runs SET lease_owner = $1, lease_until = $2 \
                         WHERE id = (SELECT run_id FROM work_items WHERE id = $3) AND status = 'running'";
        let mut tx = self.begin().await?;
        let n = dispatch_tx!(tx, |conn| {
            let n = sqlx::query(sql)
                .bind(micros(until))
                .bind(micros(now))
                .bind(id)
                .bind(owner)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if n > 0 {
                sqlx::query(run_lease)
                    .bind(owner)
                    .bind(micros(until))
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            }
            n
        });
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Gives item `id` back (`queued`, due now, no lease) if `owner` holds it, e.g. a
    /// worker shutting down before it started the work. `false` when it did not hold it.
    pub async fn release_work(&self, id: &str, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        let sql = "UPDATE work_items SET status = 'queued', lease_owner = NULL, lease_until = NULL, \
                   updated_at = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'leased'";
        let mut tx = self.begin().await?;
        let n = dispatch_tx!(tx, |conn| {
            sqlx::query(sql)
                .bind(micros(now))
                .bind(id)
                .bind(owner)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Puts item `id` back in the queue after a failed attempt, due again at `due_at`,
    /// with `error` as its last error, if `owner` holds it (`false` otherwise). The
    /// attempt stays counted.
    pub async fn retry_work(
        &self,
        id: &str,
        owner: &str,
        due_at: DateTime<Utc>,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = "UPDATE work_items SET status = 'queued', lease_owner = NULL, lease_until = NULL, \
                   due_at = $1, last_error = $2, updated_at = $3 \
                   WHERE id = $4 AND lease_owner = $5 AND status = 'leased'";
        let mut tx = self.begin().await?;
        let n = dispatch_tx!(tx, |conn| {
            sqlx::query(sql)
                .bind(micros(due_at))
                .bind(error)
                .bind(micros(now))
                .bind(id)
                .bind(owner)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Item `id` (`NotFound` when there is none).
    pub async fn work_item(&self, id: &str) -> Result<WorkItem> {
        let sql = format!("SELECT {WORK_COLS} FROM work_items WHERE id = $1");
        let rows = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(id).fetch_all(pool).await? {
                out.push(work_row!(r));
            }
            out
        });
        items(rows)?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("work item {id}")))
    }

    /// Work items matching `filter`, latest due first.
    pub async fn work_items(&self, filter: &WorkFilter<'_>) -> Result<Vec<WorkItem>> {
        let limit = if filter.limit <= 0 {
            1000
        } else {
            filter.limit
        };
        let sql = format!(
            "SELECT {WORK_COLS} FROM work_items \
             WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR customer_id = $2) \
             AND ($3 IS NULL OR kind = $3) ORDER BY due_at DESC, id LIMIT $4"
        );
        let status = filter.status.map(|s| s.as_str());
        let rows = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql)
                .bind(status)
                .bind(filter.customer_id)
                .bind(filter.kind)
                .bind(limit)
                .fetch_all(pool)
                .await?
            {
                out.push(work_row!(r));
            }
            out
        });
        items(rows)
    }

    /// How many items are in each status.
    pub async fn work_counts(&self) -> Result<Vec<(WorkStatus, i64)>> {
        let sql = "SELECT status, COUNT(*) AS n FROM work_items GROUP BY status ORDER BY status";
        let rows: Vec<(String, i64)> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(sql).fetch_all(pool).await? {
                out.push((r.try_get("status")?, r.try_get("n")?));
            }
            out
        });
        rows.into_iter()
            .map(|(s, n)| Ok((parse_col("work item status", "(count)", &s)?, n)))
            .collect()
    }
}
