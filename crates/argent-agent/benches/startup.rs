//! The fixed cost of starting `argent run` (or any command that builds an agent over a
//! database) on a warm database, phase by phase: opening the store (the pool, SQLite's
//! writer thread, the migrations check), reading the active documents, and compiling
//! them (policy packs, prompt templates, the tool registry). Process start and argument
//! parsing are not included (measure `argent` itself for those).
//!
//! `cargo bench --bench startup` (release). A SQLite file database (and, when
//! `ARGENT_TEST_POSTGRES_URL` is set, a throwaway PostgreSQL schema) is created, migrated
//! and seeded with the repository's documents first; then each round opens it afresh
//! (`TestStore::reopen`), as a new process would. On PostgreSQL the open includes the
//! schema's `CREATE SCHEMA IF NOT EXISTS` round trip, which `argent` does not make.
//! Environment: `ARGENT_BENCH_ROUNDS` (default 40; medians and the 90th percentile are
//! printed).

#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use argent_agent::{Compiled, DocumentSet};
use argent_store::testkit::TestStore;

/// The allocator the `argent` binary runs with (see argent-cli's main).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Phases {
    open: Vec<Duration>,
    read: Vec<Duration>,
    compile: Vec<Duration>,
    total: Vec<Duration>,
    /// The compile phase's parts, measured apart in the same round.
    policies: Vec<Duration>,
    prompts: Vec<Duration>,
    registry: Vec<Duration>,
}

fn quantile(v: &[Duration], q: f64) -> f64 {
    let mut v: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    let i = ((v.len().saturating_sub(1)) as f64 * q).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

async fn measure(ts: &TestStore, rounds: usize) -> Phases {
    let mut p = Phases::default();
    for _ in 0..rounds {
        let t0 = Instant::now();
        let store = ts.reopen().await.unwrap();
        let t1 = Instant::now();
        let docs = DocumentSet::from_versions(&store.active_documents().await.unwrap());
        let t2 = Instant::now();
        let compiled = Compiled::from_documents(&docs).unwrap();
        let t3 = Instant::now();
        assert!(!compiled.policy_version.is_empty());
        p.open.push(t1 - t0);
        p.read.push(t2 - t1);
        p.compile.push(t3 - t2);
        p.total.push(t3 - t0);
        let t = Instant::now();
        docs.policy_set().unwrap();
        p.policies.push(t.elapsed());
        let t = Instant::now();
        docs.prompt_set().unwrap();
        p.prompts.push(t.elapsed());
        let t = Instant::now();
        argent_tools::Registry::builtin().unwrap();
        p.registry.push(t.elapsed());
        store.close().await;
    }
    p
}

async fn seed(ts: &TestStore) {
    let files = DocumentSet::from_dirs(&repo("prompts"), &repo("policies")).unwrap();
    ts.store
        .seed_documents(&files.entries(), "bench")
        .await
        .unwrap();
}

fn main() {
    let rounds: usize = env_or("ARGENT_BENCH_ROUNDS", 40);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("agent start-up on a warm database, {rounds} rounds, ms (median / p90)");
    println!(
        "{:<9} {:>15} {:>15} {:>15} {:>15}",
        "backend", "open+migrations", "read documents", "compile", "total"
    );
    for ts in rt.block_on(TestStore::all()).unwrap() {
        let label = ts.label;
        let p = rt.block_on(async {
            seed(&ts).await;
            measure(&ts, 3).await; // warm the page cache and the server's
            measure(&ts, rounds).await
        });
        rt.block_on(ts.cleanup());
        let cell = |v: &[Duration]| format!("{:.2} / {:.2}", quantile(v, 0.5), quantile(v, 0.9));
        println!(
            "{label:<9} {:>15} {:>15} {:>15} {:>15}",
            cell(&p.open),
            cell(&p.read),
            cell(&p.compile),
            cell(&p.total)
        );
        println!(
            "{:<9} compile's parts: policies {}, prompts {}, tool registry {}",
            "",
            cell(&p.policies),
            cell(&p.prompts),
            cell(&p.registry)
        );
    }
}
