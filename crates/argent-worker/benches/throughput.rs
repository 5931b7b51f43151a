//! Worker throughput against a fake OpenAI-compatible server with a fixed latency.
//!
//! For each concurrency (default 8, 32, 100) on a fresh store: imports N customers with an
//! overdue invoice, enqueues one `overdue_notice` email step each (N = runs per slot ×
//! concurrency), runs a worker with `--once` over them through the real HTTP model client
//! and reports runs per second against the latency bound, concurrency ÷ (model calls per
//! run × latency). The target is 80% of the bound. Every run must end `done` with one
//! email per customer, or the benchmark fails.
//!
//! `cargo bench --bench throughput` (release); environment: `ARGENT_BENCH_CONCURRENCY`
//! (comma-separated), `ARGENT_BENCH_LATENCY_MS` (300), `ARGENT_BENCH_RUNS_PER_SLOT` (4);
//! PostgreSQL too when `ARGENT_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use argent_llm::{OpenAiConfig, OpenAiModel, RetryPolicy};
use argent_procedure::StepKind;
use argent_store::testkit::TestStore;
use argent_store::{WorkFilter, WorkStatus};
use common::fake_openai::FakeOpenAi;
use common::*;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let concurrencies: Vec<usize> = std::env::var("ARGENT_BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "8,32,100".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let latency = Duration::from_millis(env_or("ARGENT_BENCH_LATENCY_MS", 300));
    let per_slot: usize = env_or("ARGENT_BENCH_RUNS_PER_SLOT", 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "worker throughput, fake OpenAI server at {} ms per model call",
            latency.as_millis()
        );
        println!(
            "{:<9} {:>11} {:>6} {:>8} {:>8} {:>9} {:>10} {:>7}",
            "backend", "concurrency", "runs", "calls/r", "secs", "runs/s", "bound/s", "of bound"
        );
        for c in &concurrencies {
            for ts in TestStore::all().await.unwrap() {
                let label = ts.label;
                let n = (c * per_slot).max(8);
                let fake = FakeOpenAi::start(latency, 0).await;
                let m = measure(&ts, &fake, *c, n).await;
                let calls = fake.agent_requests() as f64 / n as f64;
                let bound = *c as f64 / (calls * latency.as_secs_f64());
                println!(
                    "{label:<9} {c:>11} {n:>6} {calls:>8.2} {:>8.2} {:>9.1} {bound:>10.1} {:>6.0}%",
                    m.as_secs_f64(),
                    n as f64 / m.as_secs_f64(),
                    100.0 * (n as f64 / m.as_secs_f64()) / bound
                );
                ts.cleanup().await;
            }
        }
    });
}

async fn measure(ts: &TestStore, fake: &FakeOpenAi, concurrency: usize, n: usize) -> Duration {
    import(&ts.store, n).await;
    let items: Vec<_> = (1..=n)
        .map(|i| {
            let invoice = format!("I{i}");
            item(
                &format!("C{i}"),
                &step(
                    StepKind::Email,
                    "overdue_notice",
                    Some("step/overdue_notice"),
                    &[invoice.as_str()],
                ),
            )
        })
        .collect();
    ts.store.enqueue_work(&items, now()).await.unwrap();
    let model = OpenAiModel::new(
        OpenAiConfig::new("fake-model")
            .with_base_url(fake.base_url.clone())
            .with_api_key("bench")
            .with_timeout(Duration::from_secs(60))
            .with_retry(RetryPolicy::new(
                0,
                Duration::from_millis(10),
                Duration::from_millis(10),
            )),
    )
    .unwrap();
    let agent = agent_with(ts.store.clone(), Arc::new(model));
    let mut cfg = config("bench", concurrency);
    cfg.sweep_every = None;
    let started = Instant::now();
    let report = run_once(agent, cfg).await;
    let took = started.elapsed();
    assert_eq!(report.done as usize, n, "{report:?}");
    let done = ts
        .store
        .work_items(&WorkFilter {
            status: Some(WorkStatus::Done),
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(done.len(), n);
    assert_eq!(
        ts.store.emails(None).await.unwrap().len(),
        n,
        "one email per customer"
    );
    took
}
