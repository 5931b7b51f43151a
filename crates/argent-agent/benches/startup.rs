//! The fixed cost of starting `argent run` (or any command that builds an agent over a
//! database) on a warm database, phase by phase: opening the store (the pool, SQLite's
//! writer thread, the migrations check), reading the active documents, and compiling
//! them (prompt templates, the tool registry; the policy packs' headers only, since a pack
//! compiles when first needed). Process start and argument parsing are not included
//! (measure `argent` itself for those). Measured apart in the same round: what the first
//! judgement of an account then adds (compiling its jurisdiction's pack, US consumer),
//! what compiling all three packs in parallel costs (what `serve` and `worker` do on a
//! thread of their own at start), and the full check of every pack (what activation and
//! `argent docs validate` do, and what start-up did before packs compiled lazily).
//!
//! `cargo bench --bench startup` (release). A SQLite file database (and, when
//! `ARGENT_TEST_POSTGRES_URL` is set, a throwaway PostgreSQL schema) is created, migrated
//! and seeded with the repository's documents first; then each round opens it afresh with
//! `Store::open` and the URL `argent --database` would be given (`TestStore::argent_url`;
//! on PostgreSQL the schema is the connection's `search_path`), as a new process would.
//! Environment: `ARGENT_BENCH_ROUNDS` (default 40; medians and the 90th percentile are
//! printed).

#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use argent_agent::{Compiled, DocumentSet};
use argent_core::Jurisdiction;
use argent_store::Store;
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
    /// After the fixed start-up: the first judgement's pack compile, all packs in
    /// parallel, and the full check of every pack (one after another, as before).
    first_pack: Vec<Duration>,
    all_packs: Vec<Duration>,
    full_check: Vec<Duration>,
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
    let url = ts.argent_url().unwrap();
    for _ in 0..rounds {
        let t0 = Instant::now();
        let store = Store::open(&url).await.unwrap();
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
        docs.validated_packs().unwrap();
        p.policies.push(t.elapsed());
        let t = Instant::now();
        compiled
            .policies
            .for_jurisdiction(Jurisdiction::UsConsumer)
            .unwrap()
            .unwrap();
        p.first_pack.push(t.elapsed());
        let t = Instant::now();
        assert!(docs.validated_packs().unwrap().compile_now().is_empty());
        p.all_packs.push(t.elapsed());
        let t = Instant::now();
        docs.policy_set().unwrap();
        p.full_check.push(t.elapsed());
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
            "{:<9} compile's parts: policy packs' headers {}, prompts {}, tool registry {}",
            "",
            cell(&p.policies),
            cell(&p.prompts),
            cell(&p.registry)
        );
        println!(
            "{:<9} then: first judgement's pack {}; all packs in parallel {}; full check of all packs {}",
            "",
            cell(&p.first_pack),
            cell(&p.all_packs),
            cell(&p.full_check)
        );
    }
}
