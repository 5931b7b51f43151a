//! Throwaway stores for tests of this crate and the crates above it: a SQLite file in the
//! temp directory, and — when `ARGENT_TEST_POSTGRES_URL` is set — a PostgreSQL schema of
//! its own, so tests run in parallel without seeing each other's rows. Also the shared
//! ledger fixtures, and [`seed_queue`], which writes a large approval queue in one
//! transaction for load tests and benchmarks.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{Duration, NaiveDate};

use argent_core::{
    Contact, Currency, Customer, CustomerFlags, Invoice, Jurisdiction, Money, Payment, Portfolio,
    Tier,
};

use serde_json::Value;
use sqlx::QueryBuilder;

use crate::ledger::import_rows;
use crate::tx::dispatch_tx;
use crate::{NewApproval, NewAuditEvent, Result, RunRecord, Store, dispatch, micros, now, to_json};

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

    /// The URL `argent --database` would be given for this store (PostgreSQL: the schema
    /// as the connection's `search_path` option), so a caller can open it as `argent`
    /// does, with [`Store::open`] (no `CREATE SCHEMA` round trip first, as in
    /// [`TestStore::reopen`]). `None` for an in-memory store.
    pub fn argent_url(&self) -> Option<String> {
        match (&self.sqlite_file, &self.pg) {
            (Some(path), _) => Some(path.to_string_lossy().into_owned()),
            (None, Some((url, schema))) => {
                let sep = if url.contains('?') { '&' } else { '?' };
                Some(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
            }
            (None, None) => None,
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

/// PostgreSQL: SQL that stages an audit event of `kind` (customer C9, run R9) as a
/// committed transaction leaves it when its store's chainer is gone before chaining it,
/// for [`raw_execute`]: an orphan the next reader, appender or chaining must chain.
pub fn staged_orphan_sql(kind: &str) -> String {
    format!(
        "INSERT INTO audit_staged (grp, ord, prefix, at, run_id, customer_id, actor, kind, rule_ids) \
         VALUES (nextval('audit_staged_group'), 1, '{{\"actor\":\"agent\",\"at\":\"2026-12-01T10:00:00.000000Z\",\
         \"customer_id\":\"C9\",\"kind\":\"{kind}\",\"payload\":{{}},\"run_id\":\"R9\",\"seq\":', \
         '2026-12-01T10:00:00Z', 'R9', 'C9', 'agent', '{kind}', '')"
    )
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
}

/// A shared fixture for the agent and server tests: two US consumers in Chicago. Ann (low
/// risk) owes 1,200.00 (INV-ANN-1); Bo owes 15,000.00 (INV-BO-1). Both have six invoices
/// of history, each paid a day early, and were sent their validation notice by letter on
/// 2025-01-06 (long over), as an account in collection would have been.
pub fn two_consumer_portfolio() -> Portfolio {
    let facts = argent_core::AccountFacts {
        validation_notice: Some(argent_core::ValidationNotice {
            sent_on: date("2025-01-06"),
            channel: argent_core::Channel::Letter,
        }),
        ..Default::default()
    };
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
        facts: facts.clone(),
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

/// `n` US consumers shaped like Ann in [`two_consumer_portfolio`], for load tests: customer
/// `C-00001`… in Chicago, New York, Denver or Los Angeles, each with four invoices of
/// history paid a day early and one open invoice (`INV-00001`…, issued 2026-10-10, due
/// 2026-10-31) of 600.00 to 8,400.00 USD — under the 10,000.00 above which plans need a
/// manager.
pub fn consumer_portfolio(n: usize) -> Portfolio {
    let zones = [
        chrono_tz::America::Chicago,
        chrono_tz::America::New_York,
        chrono_tz::America::Denver,
        chrono_tz::America::Los_Angeles,
    ];
    let mut p = Portfolio::default();
    for i in 1..=n {
        let id = format!("C-{i:05}");
        let name = format!("Consumer {i:05}");
        p.customers.push(Customer {
            id: id.clone(),
            name: name.clone(),
            tier: Tier::Small,
            jurisdiction: Jurisdiction::UsConsumer,
            time_zone: zones[i % zones.len()],
            contacts: vec![Contact {
                name,
                email: Some(format!("c{i:05}@mail.example")),
                phone: None,
                opted_out: vec![],
            }],
            flags: CustomerFlags::default(),
            facts: Default::default(),
        });
        let history = 150_00 + (i as i64 % 7) * 25_00;
        for k in 0..4 {
            let issued = date("2026-03-05") + Duration::days(30 * k);
            let number = format!("INV-{i:05}-H{k}");
            p.invoices.push(Invoice {
                number: number.clone(),
                customer_id: id.clone(),
                issue_date: issued,
                due_date: issued + Duration::days(21),
                amount: Money::new(history, Currency::USD),
                disputed: false,
            });
            p.payments.push(Payment {
                id: format!("import:{number}"),
                customer_id: id.clone(),
                invoice_number: number,
                amount: Money::new(history, Currency::USD),
                received_on: issued + Duration::days(20),
            });
        }
        p.invoices.push(Invoice {
            number: format!("INV-{i:05}"),
            customer_id: id,
            issue_date: date("2026-10-10"),
            due_date: date("2026-10-31"),
            amount: Money::new(600_00 + (i as i64 % 40) * 200_00, Currency::USD),
            disputed: false,
        });
    }
    p
}

/// One tool call waiting in the approval queue, as the agent leaves it: its run, the
/// call's arguments as the model sent them and the outcome recorded for it, the approval
/// item, and the audit events the agent wrote (appended in order, after those of the calls
/// before it).
#[derive(Clone, Debug)]
pub struct QueuedCall {
    pub run: RunRecord,
    pub arguments: String,
    /// The tool call's stored result (the agent's `CallOutcome` for a queued call).
    pub outcome: Value,
    /// The item; `call_id`, `run_id`, `customer_id` and `tool` also name the tool call.
    pub approval: NewApproval,
    pub events: Vec<NewAuditEvent>,
}

/// Rows per multi-row INSERT when seeding (at most 18 binds a row).
const SEED_CHUNK: usize = 500;

/// Writes `portfolio` and then every call's run, tool call (status `queued`), pending
/// approval item and audit events, in one transaction: either all of it is stored or none.
/// The audit events are chained exactly as if the agent had appended them one by one.
/// Meant for load tests: 10,000 calls take a second or two on SQLite.
pub async fn seed_queue(store: &Store, portfolio: &Portfolio, calls: &[QueuedCall]) -> Result<()> {
    let mut tx = store.begin().await?;
    let at = now();
    dispatch_tx!(tx, |conn| {
        import_rows!(&mut *conn, portfolio, "seed_queue");
        for chunk in calls.chunks(SEED_CHUNK) {
            let mut q = QueryBuilder::new(
                "INSERT INTO runs (id, customer_id, run_trigger, status, step, tokens, state, model, \
                 prompt_version, policy_version, created_at, updated_at, lease_owner, lease_until) ",
            );
            q.push_values(chunk, |mut b, c| {
                let r = &c.run;
                b.push_bind(r.id.as_str())
                    .push_bind(r.customer_id.as_str())
                    .push_bind(to_json(&r.trigger))
                    .push_bind(r.status.as_str())
                    .push_bind(r.step)
                    .push_bind(r.tokens)
                    .push_bind(to_json(&r.state))
                    .push_bind(r.model.as_str())
                    .push_bind(r.prompt_version.as_str())
                    .push_bind(r.policy_version.as_str())
                    .push_bind(micros(r.created_at))
                    .push_bind(micros(r.updated_at))
                    .push_bind(r.lease_owner.as_deref())
                    .push_bind(r.lease_until.map(micros));
            });
            q.build().execute(&mut *conn).await?;

            let mut q = QueryBuilder::new(
                "INSERT INTO tool_calls (call_id, run_id, customer_id, name, arguments, status, result, \
                 created_at, updated_at) ",
            );
            q.push_values(chunk, |mut b, c| {
                let a = &c.approval;
                b.push_bind(a.call_id.as_str())
                    .push_bind(a.run_id.as_str())
                    .push_bind(a.customer_id.as_str())
                    .push_bind(a.tool.as_str())
                    .push_bind(c.arguments.as_str())
                    .push_bind(crate::ToolCallStatus::Queued.as_str())
                    .push_bind(to_json(&c.outcome))
                    .push_bind(at)
                    .push_bind(at);
            });
            q.build().execute(&mut *conn).await?;

            let mut q = QueryBuilder::new(
                "INSERT INTO approvals (id, call_id, run_id, customer_id, tool, action, decision, context, \
                 priority, amount_minor, currency, required_role, status, created_at, \
                 segment, jurisdiction, rule_ids, search) ",
            );
            q.push_values(chunk, |mut b, c| {
                let a = &c.approval;
                let f = crate::queue::facets(a);
                b.push_bind(a.id.as_str())
                    .push_bind(a.call_id.as_str())
                    .push_bind(a.run_id.as_str())
                    .push_bind(a.customer_id.as_str())
                    .push_bind(a.tool.as_str())
                    .push_bind(to_json(&a.action))
                    .push_bind(to_json(&a.decision))
                    .push_bind(to_json(&a.context))
                    .push_bind(a.priority)
                    .push_bind(a.amount_minor)
                    .push_bind(a.currency.as_str())
                    .push_bind(a.required_role.as_str())
                    .push_bind("pending")
                    .push_bind(at)
                    .push_bind(f.segment)
                    .push_bind(f.jurisdiction)
                    .push_bind(f.rule_ids)
                    .push_bind(f.search);
            });
            q.build().execute(&mut *conn).await?;
        }
    });
    tx.audit_append_many(
        calls
            .iter()
            .flat_map(|c| c.events.iter().cloned())
            .collect(),
    )
    .await?;
    tx.commit().await
}

/// A database file made read-only for a test of what the store does then (and after), put
/// back as it was when dropped. Permissions bind ordinary users; a root test process (which
/// permissions do not bind) makes the file immutable with `chattr +i` instead.
#[derive(Debug)]
pub struct ReadOnlyFile {
    path: PathBuf,
    mode: u32,
    immutable: bool,
}

impl ReadOnlyFile {
    /// Makes `path` read-only; `None` if this process cannot make it so (root without the
    /// `chattr` tool or on a file system without the attribute), so the caller can skip.
    #[cfg(unix)]
    pub fn make(path: &std::path::Path) -> std::io::Result<Option<ReadOnlyFile>> {
        use std::os::unix::fs::PermissionsExt;
        let writable =
            |p: &std::path::Path| std::fs::OpenOptions::new().write(true).open(p).is_ok();
        let mode = std::fs::metadata(path)?.permissions().mode();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444))?;
        let mut guard = ReadOnlyFile {
            path: path.to_path_buf(),
            mode,
            immutable: false,
        };
        if !writable(path) {
            return Ok(Some(guard));
        }
        guard.immutable = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        Ok((!writable(path)).then_some(guard))
    }

    /// Puts the file back as it was (what dropping the guard does).
    pub fn restore(self) {}
}

#[cfg(unix)]
impl Drop for ReadOnlyFile {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.immutable {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.path)
                .status();
        }
        let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(self.mode));
    }
}
