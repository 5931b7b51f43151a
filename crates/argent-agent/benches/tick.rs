//! The scheduler's tick over a large ledger: 100,000 customers and 1,000,000 invoices by
//! default (`ARGENT_BENCH_CUSTOMERS`, ten invoices each), on PostgreSQL when
//! `ARGENT_BENCH_POSTGRES_URL` (or `ARGENT_TEST_POSTGRES_URL`) is set, and on a SQLite file.
//!
//! Setup is outside the measurement: the ledger is bulk-loaded with multi-row INSERTs of
//! 2,000 rows (eight invoices of paid history per customer with their payments, one
//! overdue invoice, one not yet due; 2% with an open promise, 1% with an open dispute),
//! and the shipped documents are seeded. Then three ticks are timed:
//!
//! 1. the first tick of the day: every account planned, every state written, the steps
//!    due enqueued and audited;
//! 2. the same tick again (a second scheduler, a re-run): everything read and planned,
//!    nothing new written;
//! 3. eight days later: promises broken, next steps enqueued.
//!
//! Each prints the wall time and where it went (read / plan / write). Run with
//! `cargo bench -p argent-agent --bench tick` (a release build).

use std::fmt::Write as _;
use std::time::Instant;

use argent_agent::DocumentSet;
use argent_agent::tick::{DEFAULT_BATCH, TickReport, active_procedures, tick};
use argent_core::{Case, CaseKind, CaseStatus, Currency, Money, PromiseStatus, PromiseToPay};
use argent_store::Store;
use argent_store::testkit::raw_execute;
use chrono::{DateTime, Duration, NaiveDate, Utc};

const INVOICES_PER: usize = 10;
const ROWS: usize = 2000;

fn repo(p: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(p)
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap_or_default()
}

async fn exec_rows(store: &Store, head: &str, rows: &[String]) {
    for chunk in rows.chunks(ROWS) {
        let mut sql = String::with_capacity(chunk.len() * 120 + head.len());
        sql.push_str(head);
        sql.push_str(&chunk.join(","));
        if let Err(e) = raw_execute(store, &sql).await {
            panic!("bulk load: {e}");
        }
    }
}

/// Loads `n` customers with ten invoices each; returns the load time in seconds.
async fn load(store: &Store, n: usize) -> f64 {
    let t = Instant::now();
    let zones = [
        "America/Chicago",
        "America/New_York",
        "Europe/London",
        "Europe/Berlin",
    ];
    let jurisdictions = ["us-consumer", "us-consumer", "uk-consumer", "b2b"];
    let tiers = ["small", "standard", "strategic"];
    let today = day("2026-11-20");
    let mut customers = Vec::with_capacity(ROWS);
    let mut invoices = Vec::with_capacity(ROWS * INVOICES_PER);
    let mut payments = Vec::with_capacity(ROWS * 8);
    for i in 0..n {
        let id = format!("C{i:07}");
        let k = i % 4;
        customers.push(format!(
            "('{id}','Customer {i}','{}','{}','{}','[{{\"name\":\"C {i}\",\"email\":\"c{i}@mail.example\",\"phone\":null,\"opted_out\":[]}}]','2026-11-01T00:00:00Z')",
            tiers[i % 3],
            jurisdictions[k],
            zones[k]
        ));
        let cur = if k == 2 {
            "GBP"
        } else if k == 3 {
            "EUR"
        } else {
            "USD"
        };
        // How late this customer pays: 0-24 days.
        let late = i64::try_from(i % 25).unwrap_or(0);
        for h in 0..8_i64 {
            let issued = today - Duration::days(300 - 30 * h);
            let due = issued + Duration::days(30);
            let num = format!("I{i:07}-{h}");
            let amount = 100_00 + (i64::try_from(i % 50).unwrap_or(0)) * 37_00;
            invoices.push(format!(
                "('{num}','{id}','{issued}','{due}','{cur}',{amount},FALSE)"
            ));
            payments.push(format!(
                "('P{num}','{id}','{num}','{cur}',{amount},'{}')",
                due + Duration::days(late)
            ));
        }
        let overdue_by = i64::try_from(i % 90).unwrap_or(0) - 5;
        let due = today - Duration::days(overdue_by);
        invoices.push(format!(
            "('I{i:07}-8','{id}','{}','{due}','{cur}',{},FALSE)",
            due - Duration::days(30),
            250_00 + i64::try_from(i % 70).unwrap_or(0) * 50_00
        ));
        let due = today + Duration::days(12);
        invoices.push(format!(
            "('I{i:07}-9','{id}','{}','{due}','{cur}',{},FALSE)",
            due - Duration::days(30),
            180_00
        ));
        if customers.len() >= ROWS {
            flush(store, &mut customers, &mut invoices, &mut payments).await;
        }
    }
    flush(store, &mut customers, &mut invoices, &mut payments).await;
    // A few promises and disputes, through the store as the agent records them.
    for i in (0..n).step_by(50) {
        let cur = match i % 4 {
            2 => Currency::GBP,
            3 => Currency::EUR,
            _ => Currency::USD,
        };
        let p = PromiseToPay {
            id: format!("PTP-{i}"),
            customer_id: format!("C{i:07}"),
            invoice_numbers: vec![],
            amount: Money::new(100_00, cur),
            promised_date: today + Duration::days(2),
            created_at: at("2026-11-15"),
            status: PromiseStatus::Open,
        };
        store.insert_promise(&p).await.unwrap_or_default();
    }
    for i in (25..n).step_by(100) {
        let c = Case {
            id: format!("K-{i}"),
            customer_id: format!("C{i:07}"),
            kind: CaseKind::Dispute,
            status: CaseStatus::Open,
            invoice_numbers: vec![format!("I{i:07}-8")],
            disputed_amount: None,
            summary: "bench".into(),
            opened_at: at("2026-11-10"),
        };
        store.insert_case(&c).await.unwrap_or_default();
    }
    t.elapsed().as_secs_f64()
}

async fn flush(
    store: &Store,
    customers: &mut Vec<String>,
    invoices: &mut Vec<String>,
    payments: &mut Vec<String>,
) {
    exec_rows(
        store,
        "INSERT INTO customers (id, name, tier, jurisdiction, time_zone, contacts, updated_at) VALUES ",
        customers,
    )
    .await;
    exec_rows(
        store,
        "INSERT INTO invoices (number, customer_id, issue_date, due_date, currency, amount_minor, disputed) VALUES ",
        invoices,
    )
    .await;
    exec_rows(
        store,
        "INSERT INTO payments (id, customer_id, invoice_number, currency, amount_minor, received_on) VALUES ",
        payments,
    )
    .await;
    customers.clear();
    invoices.clear();
    payments.clear();
}

fn at(d: &str) -> DateTime<Utc> {
    format!("{d}T15:00:00Z").parse().unwrap_or_default()
}

fn line(what: &str, secs: f64, r: &TickReport) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{what:<34} {secs:>7.2} s  (read {:>6} ms, plan {:>6} ms, write {:>6} ms)  due {:>6}, enqueued {:>6}, states {:>6}, promises broken {:>5}",
        r.read_ms, r.plan_ms, r.write_ms, r.due, r.enqueued, r.states_written, r.promises_broken
    );
    s
}

async fn bench(label: &str, store: &Store, n: usize) {
    let load_s = load(store, n).await;
    let docs = match DocumentSet::from_dirs(&repo("prompts"), &repo("policies")) {
        Ok(d) => d,
        Err(e) => panic!("documents: {e}"),
    };
    if let Err(e) = store.seed_documents(&docs.entries(), "seed").await {
        panic!("seeding: {e}");
    }
    let set = match active_procedures(store).await {
        Ok(s) => s,
        Err(e) => panic!("procedures: {e}"),
    };
    let (c, i, p) = store.counts().await.unwrap_or_default();
    println!("{label}: {c} customers, {i} invoices, {p} payments loaded in {load_s:.1} s");
    for (what, now) in [
        ("first tick of the day", at("2026-11-20")),
        (
            "the same tick again",
            at("2026-11-20") + Duration::minutes(10),
        ),
        ("eight days later", at("2026-11-28")),
    ] {
        let t = Instant::now();
        match tick(store, &set, now, DEFAULT_BATCH).await {
            Ok(r) => println!("{label}: {}", line(what, t.elapsed().as_secs_f64(), &r)),
            Err(e) => panic!("tick: {e}"),
        }
    }
}

fn main() {
    // `cargo test --benches` runs benches once with `--bench` absent: keep that quick.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("ARGENT_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 100_000 } else { 200 });
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    rt.block_on(async {
        let pg = std::env::var("ARGENT_BENCH_POSTGRES_URL")
            .or_else(|_| std::env::var("ARGENT_TEST_POSTGRES_URL"))
            .ok()
            .filter(|u| !u.is_empty());
        if let Some(url) = pg {
            let schema = format!("argent_bench_tick_{}", std::process::id());
            let store = match Store::open_postgres_schema(&url, &schema).await {
                Ok(s) => s,
                Err(e) => panic!("postgres: {e}"),
            };
            bench("postgres", &store, n).await;
            store.close().await;
            let _ = Store::drop_postgres_schema(&url, &schema).await;
        }
        if std::env::var("ARGENT_BENCH_SKIP_SQLITE").is_err() {
            let dir = match tempfile::tempdir() {
                Ok(d) => d,
                Err(e) => panic!("tempdir: {e}"),
            };
            let path = dir.path().join("tick.db");
            let store = match Store::open(&path.to_string_lossy()).await {
                Ok(s) => s,
                Err(e) => panic!("sqlite: {e}"),
            };
            bench("sqlite", &store, n).await;
            store.close().await;
        }
    });
}
