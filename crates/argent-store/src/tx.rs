//! Transactions: [`StoreTx`] is a write transaction on either backend.
//!
//! On SQLite every `StoreTx` is a write transaction started with `BEGIN IMMEDIATE`, which
//! takes the database's write lock up front, so a writer of another process waits (up to
//! the busy timeout) instead of failing with `SQLITE_BUSY` when a deferred transaction
//! tries to upgrade a stale read snapshot. Within one `Store` (a file database) every
//! transaction runs on the store's one writer connection, taken through an async mutex:
//! writers queue in FIFO order without touching SQLite's busy handler (which sleeps 1, 2,
//! 5, 10… ms between retries, leaving the database idle while the lock is free), and the
//! writer's page cache stays valid from one transaction to the next because no other
//! connection of the store writes. The writer does not checkpoint the WAL inside the
//! transaction's commit; every [`CHECKPOINT_EVERY`] commits (or after a second) a PASSIVE
//! checkpoint runs on a pooled connection in the background, while writing goes on.
//! An in-memory database (one connection) uses plain pooled transactions.
//!
//! On PostgreSQL it is an ordinary READ COMMITTED transaction; row locks (the audit head,
//! conditional updates, `FOR UPDATE SKIP LOCKED`) do the serializing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use argent_core::CustomerFlags;
use sqlx::{Connection, Postgres, Row, Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::{Backend, Pool, Result, Store, StoreError, now};

/// Commits after which the writer starts a background WAL checkpoint.
pub const CHECKPOINT_EVERY: u32 = 32;
/// …or the time since the last one after which any commit starts one.
const CHECKPOINT_AFTER: Duration = Duration::from_secs(1);

/// The one connection a SQLite file store writes through (see the module docs).
pub(crate) struct Writer {
    /// `None` once the store is closed.
    conn: Option<SqliteConnection>,
    /// A transaction was begun and not yet committed or rolled back.
    open: bool,
    commits: u32,
    last_checkpoint: Instant,
    checkpointing: Arc<AtomicBool>,
}

pub(crate) type SharedWriter = Arc<Mutex<Writer>>;

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("open", &self.open)
            .field("closed", &self.conn.is_none())
            .finish()
    }
}

impl Writer {
    pub(crate) fn new(conn: SqliteConnection) -> SharedWriter {
        Arc::new(Mutex::new(Writer {
            conn: Some(conn),
            open: false,
            commits: 0,
            last_checkpoint: Instant::now(),
            checkpointing: Arc::new(AtomicBool::new(false)),
        }))
    }

    fn conn(&mut self) -> Result<&mut SqliteConnection> {
        self.conn
            .as_mut()
            .ok_or(StoreError::Db(sqlx::Error::PoolClosed))
    }

    /// Rolls back a transaction a dropped `StoreTx` left open, if any.
    async fn settle(&mut self) -> Result<()> {
        if self.open {
            sqlx::query("ROLLBACK").execute(self.conn()?).await?;
            self.open = false;
        }
        Ok(())
    }

    pub(crate) async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}

/// Takes the writer, with any transaction a dropped `StoreTx` left open rolled back.
pub(crate) async fn lock_writer(w: &SharedWriter) -> Result<OwnedMutexGuard<Writer>> {
    let mut guard = w.clone().lock_owned().await;
    guard.settle().await?;
    Ok(guard)
}

/// A transaction on the writer connection. Dropped unfinished, it rolls back on a task of
/// its own that holds the writer until done (or, outside a runtime, the next user of the
/// writer rolls back first).
pub(crate) struct WriterTx {
    guard: Option<OwnedMutexGuard<Writer>>,
    /// For the background checkpoint.
    pool: SqlitePool,
    /// The audit chain's head (seq, hash), read in the same round trip as `BEGIN
    /// IMMEDIATE`, so after the write lock was taken: nothing but this transaction can
    /// move it until it ends, and its appends keep it current (see `audit_append_many`).
    pub(crate) audit_head: Option<(i64, String)>,
}

impl WriterTx {
    pub(crate) fn conn(&mut self) -> Result<&mut SqliteConnection> {
        match self.guard.as_mut() {
            Some(w) => w.conn(),
            None => Err(StoreError::Invalid("the transaction has ended".into())),
        }
    }

    async fn commit(mut self) -> Result<()> {
        let Some(mut w) = self.guard.take() else {
            return Err(StoreError::Invalid("the transaction has ended".into()));
        };
        if let Err(e) = sqlx::query("COMMIT").execute(w.conn()?).await {
            // Whatever is left of the transaction is rolled back before the writer is used
            // again (by `settle`, as `open` is still set).
            return Err(e.into());
        }
        w.open = false;
        w.commits += 1;
        let due = w.commits >= CHECKPOINT_EVERY || w.last_checkpoint.elapsed() >= CHECKPOINT_AFTER;
        let checkpointing = w.checkpointing.clone();
        if due && !checkpointing.swap(true, Ordering::AcqRel) {
            w.commits = 0;
            w.last_checkpoint = Instant::now();
            drop(w);
            let pool = self.pool.clone();
            tokio::spawn(async move {
                // PASSIVE: copies what it can without waiting for readers or the writer;
                // it never invokes the busy handler.
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    tracing::debug!(error = %e, "background WAL checkpoint");
                }
                checkpointing.store(false, Ordering::Release);
            });
        }
        Ok(())
    }

    async fn rollback(mut self) -> Result<()> {
        let Some(mut w) = self.guard.take() else {
            return Ok(());
        };
        w.settle().await
    }
}

impl Drop for WriterTx {
    fn drop(&mut self) {
        if let Some(mut w) = self.guard.take()
            && w.open
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                if let Err(e) = w.settle().await {
                    tracing::warn!(error = %e, "rolling back a dropped transaction");
                }
            });
        }
    }
}

pub(crate) enum TxInner {
    /// A SQLite file database: the store's writer connection.
    SqliteWriter(WriterTx),
    /// A SQLite in-memory database: a pooled transaction on its one connection.
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// A database transaction. [`StoreTx::commit`] makes its writes durable; dropping it
/// without committing rolls everything back.
pub struct StoreTx {
    pub(crate) inner: TxInner,
}

impl std::fmt::Debug for StoreTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTx")
            .field("backend", &self.backend())
            .finish()
    }
}

/// Runs `$body` with `$conn` bound to the transaction's concrete connection
/// (`&mut SqliteConnection` or `&mut PgConnection`); use `&mut *$conn` as the executor.
/// Like `dispatch!`, the body is compiled once per backend. Must be used in a function
/// returning `crate::Result` (a transaction that has ended returns its error).
macro_rules! dispatch_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match &mut $tx.inner {
            $crate::tx::TxInner::SqliteWriter(w) => {
                let $conn: &mut ::sqlx::SqliteConnection = w.conn()?;
                $body
            }
            $crate::tx::TxInner::Sqlite(t) => {
                let $conn: &mut ::sqlx::SqliteConnection = &mut **t;
                $body
            }
            $crate::tx::TxInner::Postgres(t) => {
                let $conn: &mut ::sqlx::PgConnection = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use dispatch_tx;

impl Store {
    /// Begins a write transaction (see the module docs for what that means per backend).
    pub async fn begin(&self) -> Result<StoreTx> {
        let inner = match (&self.pool, &self.writer) {
            (Pool::Sqlite(pool), Some(writer)) => {
                let mut w = lock_writer(writer).await?;
                // One round trip: take the write lock, then read the audit head under it.
                let began =
                    sqlx::query("BEGIN IMMEDIATE; SELECT seq, hash FROM audit_head WHERE id = 1")
                        .fetch_optional(w.conn()?)
                        .await;
                let head = match began {
                    Ok(Some(r)) => Some((r.try_get("seq")?, r.try_get("hash")?)),
                    Ok(None) => None,
                    Err(e) => {
                        // BEGIN may have succeeded before the SELECT failed.
                        let _ = sqlx::query("ROLLBACK").execute(w.conn()?).await;
                        return Err(e.into());
                    }
                };
                w.open = true;
                TxInner::SqliteWriter(WriterTx {
                    guard: Some(w),
                    pool: pool.clone(),
                    audit_head: head,
                })
            }
            (Pool::Sqlite(p), None) => TxInner::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            (Pool::Postgres(p), _) => TxInner::Postgres(p.begin().await?),
        };
        Ok(StoreTx { inner })
    }
}

impl StoreTx {
    pub fn backend(&self) -> Backend {
        match self.inner {
            TxInner::SqliteWriter(_) | TxInner::Sqlite(_) => Backend::Sqlite,
            TxInner::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn commit(self) -> Result<()> {
        match self.inner {
            TxInner::SqliteWriter(w) => w.commit().await?,
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Rolls back explicitly (dropping the transaction does the same, lazily).
    pub async fn rollback(self) -> Result<()> {
        match self.inner {
            TxInner::SqliteWriter(w) => w.rollback().await?,
            TxInner::Sqlite(t) => t.rollback().await?,
            TxInner::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    /// Sets a customer's contact-restricting flags (cease contact, dispute, bankruptcy,
    /// attorney). `NotFound` if there is no such customer.
    pub async fn set_customer_flags(
        &mut self,
        customer_id: &str,
        flags: &CustomerFlags,
    ) -> Result<()> {
        let sql = "UPDATE customers SET cease_contact = $1, disputed = $2, bankrupt = $3, \
                   attorney_represented = $4, updated_at = $5 WHERE id = $6";
        let n = dispatch_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(flags.cease_contact)
                .bind(flags.disputed)
                .bind(flags.bankrupt)
                .bind(flags.attorney_represented)
                .bind(now())
                .bind(customer_id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound(format!("customer {customer_id}")));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use sqlx::{Connection, Row, SqliteConnection};

    /// The SQLite writer saves round trips by sending two statements in one query with
    /// bind parameters (`BEGIN IMMEDIATE; SELECT … audit_head`, and an audit INSERT with
    /// the head's UPDATE). sqlx-sqlite runs every statement of such a query, binding `$N`
    /// by number; sqlx has discussed dropping that (launchbadge/sqlx#3108). If an upgrade
    /// does, this fails first, by name.
    #[tokio::test]
    async fn sqlite_runs_every_statement_of_a_query_with_bind_parameters() {
        let mut c = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (a INTEGER NOT NULL, b TEXT NOT NULL)")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t (a, b) VALUES ($1, 'x'), ($1 + 1, 'x'); UPDATE t SET b = $2 WHERE a = $1")
            .bind(7_i64)
            .bind("y")
            .execute(&mut c)
            .await
            .unwrap();
        let row =
            sqlx::query("BEGIN IMMEDIATE; SELECT count(*) AS n, min(b) AS b FROM t WHERE a >= $1")
                .bind(7_i64)
                .fetch_optional(&mut c)
                .await
                .unwrap()
                .unwrap();
        assert_eq!(row.get::<i64, _>("n"), 2);
        assert_eq!(row.get::<String, _>("b"), "x");
        let b: String = sqlx::query("SELECT b FROM t WHERE a = 7")
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get("b");
        assert_eq!(b, "y", "the second statement ran");
        // And the first one began a transaction.
        sqlx::query("COMMIT").execute(&mut c).await.unwrap();
    }
}
