//! Throwaway stores for tests of this crate and the crates above it: a SQLite file in the
//! temp directory, and — when `ARGENT_TEST_POSTGRES_URL` is set — a PostgreSQL schema of
//! its own, so tests run in parallel without seeing each other's rows.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{Duration, NaiveDate};

use argent_core::{
    Contact, Currency, Customer, CustomerFlags, Invoice, Jurisdiction, Money, Payment, Portfolio,
    Tier,
};

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

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
}

/// A shared fixture for the agent and server tests: two US consumers in Chicago. Ann (low
/// risk) owes 1,200.00 (INV-ANN-1); Bo owes 15,000.00 (INV-BO-1). Both have six invoices
/// of history, each paid a day early.
pub fn two_consumer_portfolio() -> Portfolio {
    let customer = |id: &str, name: &str, email: &str| Customer {
        id: id.into(),
        name: name.into(),
        tier: Tier::Small,
        jurisdiction: Jurisdiction::UsConsumer,
        time_zone: chrono_tz::America::Chicago,
        contacts: vec![Contact {
            name: name.into(),
            email: Some(email.into()),
            phone: None,
            opted_out: vec![],
        }],
        flags: CustomerFlags::default(),
    };
    let mut p = Portfolio {
        customers: vec![
            customer("C-ANN", "Ann Lee", "ann@mail.example"),
            customer("C-BO", "Bo Diaz", "bo@mail.example"),
        ],
        ..Default::default()
    };
    for (cust, amount) in [("C-ANN", 200_00), ("C-BO", 500_00)] {
        for k in 0..6 {
            let issued = date("2026-01-05") + Duration::days(30 * k);
            let number = format!("{cust}-H{k}");
            p.invoices.push(Invoice {
                number: number.clone(),
                customer_id: cust.into(),
                issue_date: issued,
                due_date: issued + Duration::days(21),
                amount: Money::new(amount, Currency::USD),
                disputed: false,
            });
            p.payments.push(Payment {
                id: format!("import:{number}"),
                customer_id: cust.into(),
                invoice_number: number,
                amount: Money::new(amount, Currency::USD),
                received_on: issued + Duration::days(20),
            });
        }
    }
    for (cust, number, amount) in [
        ("C-ANN", "INV-ANN-1", 1200_00),
        ("C-BO", "INV-BO-1", 15_000_00),
    ] {
        p.invoices.push(Invoice {
            number: number.into(),
            customer_id: cust.into(),
            issue_date: date("2026-10-10"),
            due_date: date("2026-10-31"),
            amount: Money::new(amount, Currency::USD),
            disputed: false,
        });
    }
    p
}
