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
//! (comma-separated), `ARGENT_BENCH_LATENCY_MS` (300), `ARGENT_BENCH_RUNS_PER_SLOT` (4),
//! `ARGENT_BENCH_JITTER_MS` (0: every answer after exactly the latency, so the slots move
//! in lock step and every run's writes and CPU work arrive at once; otherwise each answer's
//! latency is spread uniformly over latency ± jitter, with the same mean, as a real
//! endpoint's vary); PostgreSQL too when `ARGENT_TEST_POSTGRES_URL` is set
//! (`ARGENT_BENCH_BACKENDS`, e.g. `postgres`, keeps only the ones named). Printed with
//! each row: the machine's CPU busy share over the run (every process: the bench, its fake
//! server, PostgreSQL) and this process's CPU per run (the worker and the fake server).

#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use argent_procedure::StepKind;
use argent_store::testkit::TestStore;
use argent_store::{WorkFilter, WorkStatus};
use common::fake_openai::FakeOpenAi;
use common::*;

/// The allocator the `argent` binary runs with (see argent-cli's main).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let jitter = Duration::from_millis(env_or("ARGENT_BENCH_JITTER_MS", 0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "worker throughput, fake OpenAI server at {} ms ± {} ms per model call",
            latency.as_millis(),
            jitter.as_millis()
        );
        println!(
            "{:<9} {:>11} {:>6} {:>8} {:>8} {:>9} {:>10} {:>8} {:>9} {:>10}",
            "backend",
            "concurrency",
            "runs",
            "calls/r",
            "secs",
            "runs/s",
            "bound/s",
            "of bound",
            "cpu busy",
            "proc ms/r"
        );
        for c in &concurrencies {
            for ts in TestStore::all().await.unwrap() {
                let label = ts.label;
                if let Ok(only) = std::env::var("ARGENT_BENCH_BACKENDS")
                    && !only.split(',').any(|b| b.trim() == label)
                {
                    ts.cleanup().await;
                    continue;
                }
                let n = (c * per_slot).max(8);
                let fake = FakeOpenAi::start(latency, 0).await;
                fake.set_jitter(jitter);
                let (m, cpu) = measure(&ts, &fake, *c, n).await;
                let calls = fake.agent_requests() as f64 / n as f64;
                let bound = *c as f64 / (calls * latency.as_secs_f64());
                let (busy, proc_ms) = match cpu {
                    Some(u) => (
                        format!("{:.0}%", 100.0 * u.busy_share()),
                        format!("{:.1}", u.process_ms() / n as f64),
                    ),
                    None => ("n/a".into(), "n/a".into()),
                };
                println!(
                    "{label:<9} {c:>11} {n:>6} {calls:>8.2} {:>8.2} {:>9.1} {bound:>10.1} {:>7.0}% {busy:>9} {proc_ms:>10}",
                    m.as_secs_f64(),
                    n as f64 / m.as_secs_f64(),
                    100.0 * (n as f64 / m.as_secs_f64()) / bound
                );
                ts.cleanup().await;
            }
        }
    });
}

/// CPU use over a measurement, from Linux's `/proc` (`None` elsewhere): the machine's busy
/// share (every process: the bench, its fake server and the PostgreSQL server) and this
/// process's own CPU time. Says whether the machine's 2 cores, not the latency, bound a run.
/// Clock ticks: cumulative in a sample, a difference in a use.
#[derive(Clone, Copy)]
struct CpuUse {
    busy: u64,
    total: u64,
    process: u64,
}

impl CpuUse {
    fn busy_share(&self) -> f64 {
        self.busy as f64 / self.total.max(1) as f64
    }
    /// This process's CPU in milliseconds (clock ticks are 10 ms on Linux).
    fn process_ms(&self) -> f64 {
        self.process as f64 * 10.0
    }
}

fn cpu_sample() -> Option<CpuUse> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = cpu.iter().sum();
    // idle and iowait
    let idle = cpu.get(3)? + cpu.get(4).copied().unwrap_or(0);
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at the last ')'.
    let rest: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the ')'.
    let process = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
    Some(CpuUse {
        busy: total - idle,
        total,
        process,
    })
}

fn cpu_since(start: Option<CpuUse>) -> Option<CpuUse> {
    let (a, b) = (start?, cpu_sample()?);
    Some(CpuUse {
        busy: b.busy.saturating_sub(a.busy),
        total: b.total.saturating_sub(a.total),
        process: b.process.saturating_sub(a.process),
    })
}

async fn measure(
    ts: &TestStore,
    fake: &FakeOpenAi,
    concurrency: usize,
    n: usize,
) -> (Duration, Option<CpuUse>) {
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
    let model = fake.bench_model();
    let agent = agent_with(ts.store.clone(), Arc::new(model));
    let mut cfg = config("bench", concurrency);
    cfg.sweep_every = None;
    let cpu = cpu_sample();
    let started = Instant::now();
    let report = run_once(agent, cfg).await;
    let took = started.elapsed();
    let cpu = cpu_since(cpu);
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
    (took, cpu)
}
