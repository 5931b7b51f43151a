//! Throwaway stores for tests of this crate and the crates above it: a SQLite file in the
//! temp directory, and — when `ARGENT_TEST_POSTGRES_URL` is set — a PostgreSQL schema of
//! its own, so tests run in parallel without seeing each other's rows.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Result, Store, dispatch};

/// The environment variable naming the PostgreSQL server the conformance suite also runs on.
pub const POSTGRES_URL_ENV: &str = "ARGENT_TEST_POSTGRES_URL";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// A store that removes itself when [`TestStore::cleanup`] runs (or, for SQLite, on drop).
pub struct TestStore {
    pub store: Store,
    /// `sqlite` or `postgres`, for assertion messages.
    pub label: &'static str,
    sqlite_file: Option<PathBuf>,
    pg: Option<(String, String)>,
}

impl TestStore {
    pub async fn sqlite() -> Result<TestStore> {
        let path = std::env::temp_dir().join(format!("{}.db", unique("argent_test")));
        let store = Store::open(&path.to_string_lossy()).await?;
        Ok(TestStore {
            store,
            label: "sqlite",
            sqlite_file: Some(path),
            pg: None,
        })
    }

    pub async fn postgres(url: &str) -> Result<TestStore> {
        let schema = unique("argent_t");
        let store = Store::open_postgres_schema(url, &schema).await?;
        Ok(TestStore {
            store,
            label: "postgres",
            sqlite_file: None,
            pg: Some((url.to_string(), schema)),
        })
    }

    /// SQLite always; PostgreSQL too when `ARGENT_TEST_POSTGRES_URL` is set.
    pub async fn all() -> Result<Vec<TestStore>> {
        let mut out = vec![TestStore::sqlite().await?];
        if let Ok(url) = std::env::var(POSTGRES_URL_ENV)
            && !url.is_empty()
        {
            out.push(TestStore::postgres(&url).await?);
        }
        Ok(out)
    }

    /// The SQLite file, if this is a SQLite store.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        self.sqlite_file.as_deref()
    }

    /// A second, independent store (its own connection pool) on the same database, for
    /// tests of concurrent writers.
    pub async fn reopen(&self) -> Result<Store> {
        match (&self.sqlite_file, &self.pg) {
            (Some(path), _) => Store::open(&path.to_string_lossy()).await,
            (None, Some((url, schema))) => Store::open_postgres_schema(url, schema).await,
            (None, None) => Err(crate::StoreError::BadUrl(
                "test store without a database".into(),
            )),
        }
    }

    pub async fn cleanup(mut self) {
        self.store.close().await;
        if let Some((url, schema)) = self.pg.take() {
            let _ = Store::drop_postgres_schema(&url, &schema).await;
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(path) = self.sqlite_file.take() {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Runs raw SQL against a store, bypassing its API: for tests that play an attacker with
/// database access (tampering with the audit trail) or check what the database refuses.
pub async fn raw_execute(store: &Store, sql: &str) -> Result<u64> {
    Ok(dispatch!(store, |pool| sqlx::raw_sql(sql)
        .execute(pool)
        .await?
        .rows_affected()))
}
