//! Transactions: [`StoreTx`] wraps a sqlx transaction of either backend.
//!
//! On SQLite every `StoreTx` is a write transaction started with `BEGIN IMMEDIATE`: it
//! takes the database's write lock up front, so a concurrent writer waits (up to the
//! connection's busy timeout) instead of failing with `SQLITE_BUSY` when a deferred
//! transaction tries to upgrade a stale read snapshot. On PostgreSQL it is an ordinary
//! READ COMMITTED transaction; row locks (the audit head, conditional updates,
//! `FOR UPDATE SKIP LOCKED`) do the serializing.

use argent_core::CustomerFlags;
use sqlx::{Postgres, Sqlite, Transaction};

use crate::{Backend, Pool, Result, Store, StoreError, now};

pub(crate) enum TxInner {
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
/// Like `dispatch!`, the body is compiled once per backend.
macro_rules! dispatch_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match &mut $tx.inner {
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
        let inner = match &self.pool {
            Pool::Sqlite(p) => TxInner::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => TxInner::Postgres(p.begin().await?),
        };
        Ok(StoreTx { inner })
    }
}

impl StoreTx {
    pub fn backend(&self) -> Backend {
        match self.inner {
            TxInner::Sqlite(_) => Backend::Sqlite,
            TxInner::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn commit(self) -> Result<()> {
        match self.inner {
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Rolls back explicitly (dropping the transaction does the same, lazily).
    pub async fn rollback(self) -> Result<()> {
        match self.inner {
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
