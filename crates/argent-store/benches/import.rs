//! Import throughput: a 10,000-invoice aging export, parsed and written in one transaction
//! into a fresh database. PostgreSQL is measured too when ARGENT_TEST_POSTGRES_URL is set.

use std::time::{Duration, Instant};

use argent_core::demo::{DemoConfig, generate};
use argent_core::import::{parse_aging_csv, to_csv};
use argent_store::testkit::TestStore;
use criterion::{Criterion, criterion_group, criterion_main};

fn ten_thousand_invoices() -> Vec<u8> {
    // ~19.7 invoices per customer with the default generator; trim to exactly 10,000.
    let mut p = generate(&DemoConfig {
        customers: 520,
        ..Default::default()
    });
    p.invoices.truncate(10_000);
    let keep: std::collections::HashSet<&str> =
        p.invoices.iter().map(|i| i.number.as_str()).collect();
    let payments = p
        .payments
        .iter()
        .filter(|x| keep.contains(x.invoice_number.as_str()))
        .cloned()
        .collect();
    p.payments = payments;
    to_csv(&p).expect("sums fit")
}

fn bench(c: &mut Criterion) {
    let csv = ten_thousand_invoices();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut g = c.benchmark_group("import_10k_invoices");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("parse_csv", |b| {
        b.iter(|| parse_aging_csv(&csv).expect("valid csv"))
    });
    let mut backends = vec!["sqlite"];
    if std::env::var("ARGENT_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        backends.push("postgres");
    }
    for backend in backends {
        g.bench_function(format!("parse_and_import_{backend}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let ts = match backend {
                            "sqlite" => TestStore::sqlite().await,
                            _ => {
                                TestStore::postgres(
                                    &std::env::var("ARGENT_TEST_POSTGRES_URL").unwrap_or_default(),
                                )
                                .await
                            }
                        }
                        .expect("test store");
                        let start = Instant::now();
                        let p = parse_aging_csv(&csv).expect("valid csv");
                        ts.store
                            .import_portfolio(&p, "bench")
                            .await
                            .expect("import");
                        total += start.elapsed();
                        ts.cleanup().await;
                    }
                    total
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
