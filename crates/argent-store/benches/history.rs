//! Reading a customer's history on a 20,000-customer, 100,000-invoice ledger: global search
//! (a case-insensitive substring match, so a scan of customers and invoices: no index
//! helps `LIKE '%…%'`), and one customer's timeline and contact history (index reads by
//! customer). PostgreSQL is measured too when ARGENT_TEST_POSTGRES_URL is set.
//!
//! `cargo bench -p argent-store --bench history`

use std::time::Duration;

use argent_store::TimelineQuery;
use argent_store::testkit::{TestStore, consumer_portfolio};
use criterion::{Criterion, criterion_group, criterion_main};

const CUSTOMERS: usize = 20_000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut backends = vec!["sqlite"];
    if std::env::var("ARGENT_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        backends.push("postgres");
    }
    let portfolio = consumer_portfolio(CUSTOMERS);
    let mut g = c.benchmark_group("history_20k_customers");
    g.sample_size(20).measurement_time(Duration::from_secs(6));
    for backend in backends {
        let ts = rt
            .block_on(async {
                let ts = match backend {
                    "sqlite" => TestStore::sqlite().await,
                    _ => {
                        TestStore::postgres(
                            &std::env::var("ARGENT_TEST_POSTGRES_URL").unwrap_or_default(),
                        )
                        .await
                    }
                }?;
                ts.store.import_portfolio(&portfolio, "bench").await?;
                Ok::<_, argent_store::StoreError>(ts)
            })
            .expect("store with the portfolio");
        let store = ts.store.clone();
        for (name, q) in [
            ("search_id", "C-12345"),
            ("search_invoice", "INV-12345"),
            ("search_no_match", "no such customer"),
        ] {
            g.bench_function(format!("{name}_{backend}"), |b| {
                b.iter(|| rt.block_on(store.search(q, 25)).expect("search"))
            });
        }
        let query = TimelineQuery {
            limit: 100,
            after: None,
            as_of: "2026-11-20".parse().expect("date"),
            promise_grace_days: 3,
        };
        g.bench_function(format!("timeline_{backend}"), |b| {
            b.iter(|| {
                rt.block_on(store.timeline("C-12345", &query))
                    .expect("timeline")
            })
        });
        g.bench_function(format!("contact_history_{backend}"), |b| {
            b.iter(|| {
                rt.block_on(store.contact_history("C-12345", None, None))
                    .expect("contacts")
            })
        });
        rt.block_on(ts.cleanup());
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
