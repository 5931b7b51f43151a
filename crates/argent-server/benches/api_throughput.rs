//! Load test of the approval API (issue #6: "the API sustains at least 2,000
//! approve/reject requests per second on SQLite on this machine"). Not criterion: one
//! measured run that drives the real server over real sockets until the queue is empty.
//!
//! For each backend: a fresh database (a SQLite file in a temp directory, WAL, opened by
//! `Store::open` exactly as `argent serve` opens it; PostgreSQL in a throwaway schema when
//! `ARGENT_BENCH_POSTGRES_URL` is set), `ARGENT_BENCH_ITEMS` (default 10,000) customers
//! each with a pending `propose_plan` item a collector may approve
//! (`argent_agent::testing::seed_plan_queue`), a collector signed in through
//! `POST /api/login`, and `argent_server::serve` on 127.0.0.1:0. Then
//! `ARGENT_BENCH_CONCURRENCY` (default 16) clients, each its own keep-alive HTTP
//! connection, take items in queue order and approve the even ones and reject the odd ones
//! (with a note) until every item is decided. Printed: requests, seconds, requests per
//! second, latency percentiles and non-2xx responses; then the store is checked: no
//! non-2xx, every item decided exactly once as asked (one `approval_decided` event each),
//! every approved item's plan written, and the audit chain intact.
//!
//! The agent runs on a fixed clock (2026-11-20 18:00 UTC, daytime for every seeded
//! customer) so quiet-hours rules do not make the result depend on when it is run.
//!
//! Run: `cargo bench -p argent-server --bench api_throughput`.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argent_agent::testing::seed_plan_queue;
use argent_agent::{Agent, AgentConfig, Clock};
use argent_llm::ScriptedModel;
use argent_server::{AppState, ServerConfig, UserRole, create_user, serve};
use argent_store::testkit::{TestStore, consumer_portfolio};
use argent_store::{ApprovalStatus, AuditFilter, AuditVerification, Store, ToolCallStatus};

/// The allocator `argent serve` runs with (see argent-cli's main).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const NOW: &str = "2026-11-20T18:00:00Z";
const USER: &str = "bench-collector";
const PASSWORD: &str = "bench password 1";
const REJECT_NOTE: &str = r#"{"note":"Customer withdrew the request."}"#;

fn env_usize(name: &str, default: usize) -> BoxResult<usize> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v
            .parse()
            .map_err(|e| format!("{name}={v} is not a count: {e}"))?),
        _ => Ok(default),
    }
}

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    approved: Vec<String>,
    rejected: Vec<String>,
    /// (status, body) of every non-2xx answer.
    failures: Vec<(u16, String)>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// This process's user + system CPU time so far (Linux: /proc/self/stat, in clock ticks
/// of 10 ms), or `None` where that cannot be read.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn client_loop(
    base: Arc<str>,
    token: Arc<str>,
    ids: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
) -> BoxResult<Tally> {
    // One client per worker, so each worker holds one keep-alive connection of its own.
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .build()?;
    let auth = format!("Bearer {token}");
    let mut t = Tally::default();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(id) = ids.get(i) else {
            return Ok(t);
        };
        let approve = i.is_multiple_of(2);
        let (url, body) = if approve {
            (format!("{base}/api/approvals/{id}/approve"), "")
        } else {
            (format!("{base}/api/approvals/{id}/reject"), REJECT_NOTE)
        };
        let started = Instant::now();
        let res = http
            .post(url)
            .header("authorization", auth.as_str())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = res.status();
        let text = res.text().await?;
        t.latencies.push(started.elapsed());
        if !status.is_success() {
            t.failures.push((status.as_u16(), text));
        } else if approve {
            t.approved.push(id.clone());
        } else {
            t.rejected.push(id.clone());
        }
    }
}

async fn bench(label: &str, store: Store, items: usize, clients: usize) -> BoxResult<()> {
    println!("api_throughput [{label}]: {items} pending items, {clients} concurrent clients");
    let config = AgentConfig {
        clock: Clock::Fixed(NOW.parse()?),
        ..Default::default()
    };
    let agent = Agent::from_dirs(
        store.clone(),
        Arc::new(ScriptedModel::new()),
        &repo("prompts"),
        &repo("policies"),
        config,
    )?;

    let started = Instant::now();
    let ids = seed_plan_queue(&agent, &consumer_portfolio(items)).await?;
    println!(
        "  seeded {} pending propose_plan items in {:.2} s",
        ids.len(),
        started.elapsed().as_secs_f64()
    );
    let audit_before = match store.audit_verify().await? {
        AuditVerification::Intact { events, .. } => events,
        broken => return Err(format!("the seeded audit chain is broken: {broken:?}").into()),
    };
    create_user(&store, USER, UserRole::Collector, PASSWORD)
        .await
        .map_err(|e| format!("creating the collector: {e}"))?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base: Arc<str> = format!("http://{}", listener.local_addr()?).into();
    let server = tokio::spawn(serve(
        listener,
        AppState::new(Arc::new(agent), ServerConfig::default()),
    ));

    let login = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .post(format!("{base}/api/login"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"name":"{USER}","password":"{PASSWORD}"}}"#))
        .send()
        .await?;
    if !login.status().is_success() {
        return Err(format!("login answered {}", login.status()).into());
    }
    let body: serde_json::Value = serde_json::from_str(&login.text().await?)?;
    let token: Arc<str> = body["token"]
        .as_str()
        .ok_or("login answered no token")?
        .into();

    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let trips_before = store.writer_round_trips().await;
    let cpu_before = cpu_time();
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            tokio::spawn(client_loop(
                base.clone(),
                token.clone(),
                ids.clone(),
                next.clone(),
            ))
        })
        .collect();
    let mut all = Tally::default();
    for w in workers {
        let t = w.await??;
        all.latencies.extend(t.latencies);
        all.approved.extend(t.approved);
        all.rejected.extend(t.rejected);
        all.failures.extend(t.failures);
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    server.abort();

    let requests = all.latencies.len();
    all.latencies.sort();
    println!(
        "  {requests} requests ({} approve, {} reject) in {:.2} s = {:.0} req/s",
        all.approved.len(),
        all.rejected.len(),
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency p50 {}  p95 {}  p99 {}  max {}",
        ms(percentile(&all.latencies, 50.0)),
        ms(percentile(&all.latencies, 95.0)),
        ms(percentile(&all.latencies, 99.0)),
        ms(percentile(&all.latencies, 100.0)),
    );
    if let Some(cpu) = cpu {
        println!(
            "  CPU (server and clients, user + system): {:.2} s = {:.0} µs per request, {:.2} cores busy",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / requests.max(1) as f64,
            cpu.as_secs_f64() / elapsed.as_secs_f64()
        );
    }
    if let (Some(after), Some(before)) = (store.writer_round_trips().await, trips_before) {
        println!(
            "  SQLite writer: {:.2} round trips to its thread per request",
            (after - before) as f64 / requests.max(1) as f64
        );
    }
    println!("  non-2xx responses: {}", all.failures.len());
    for (status, body) in all.failures.iter().take(5) {
        println!("    {status}: {body}");
    }
    if !all.failures.is_empty() {
        return Err(format!("{} requests were not answered 2xx", all.failures.len()).into());
    }

    // Every item decided exactly once, as asked.
    if requests != items {
        return Err(format!("{requests} requests for {items} items").into());
    }
    if store.count_approvals(Some(ApprovalStatus::Pending)).await? != 0 {
        return Err("items are still pending".into());
    }
    let want: HashMap<&str, (ApprovalStatus, ToolCallStatus)> = all
        .approved
        .iter()
        .map(|id| {
            (
                id.as_str(),
                (ApprovalStatus::Approved, ToolCallStatus::Approved),
            )
        })
        .chain(all.rejected.iter().map(|id| {
            (
                id.as_str(),
                (ApprovalStatus::Rejected, ToolCallStatus::Rejected),
            )
        }))
        .collect();
    let decided = store.approvals(None, i64::MAX, 0).await?;
    if decided.len() != items {
        return Err(format!("{} items stored, {items} seeded", decided.len()).into());
    }
    for item in &decided {
        let (status, call_status) = want
            .get(item.id.as_str())
            .ok_or_else(|| format!("item {} was never decided by a client", item.id))?;
        if item.status != *status || item.decided_by.as_deref() != Some(USER) {
            return Err(format!(
                "item {} is {:?} by {:?}, want {status:?} by {USER}",
                item.id, item.status, item.decided_by
            )
            .into());
        }
        let call = store
            .tool_call(&item.call_id)
            .await?
            .ok_or_else(|| format!("tool call {} is missing", item.call_id))?;
        if call.status != *call_status {
            return Err(format!("tool call {} is {:?}", item.call_id, call.status).into());
        }
    }
    let events = store
        .audit_events(&AuditFilter {
            kind: Some("approval_decided".into()),
            ..Default::default()
        })
        .await?;
    let once: HashSet<&str> = events
        .iter()
        .filter_map(|e| e.payload["approval_id"].as_str())
        .collect();
    if events.len() != items || once.len() != items {
        return Err(format!(
            "{} approval_decided events for {} distinct items; want {items} for {items}",
            events.len(),
            once.len()
        )
        .into());
    }
    let plans = store.plans(None).await?.len();
    if plans != all.approved.len() {
        return Err(format!("{plans} plans written for {} approvals", all.approved.len()).into());
    }
    // Approving writes approval_decided, policy_decision and executed; rejecting writes
    // approval_decided.
    let want_events = audit_before + 3 * all.approved.len() as i64 + all.rejected.len() as i64;
    match store.audit_verify().await? {
        AuditVerification::Intact { events, .. } if events == want_events => {
            println!(
                "  verified: every item decided exactly once as asked; {plans} plans; \
                 audit chain intact ({events} events)"
            );
            Ok(())
        }
        other => Err(format!("audit chain: {other:?} (want {want_events} events)").into()),
    }
}

fn main() -> BoxResult<()> {
    // Plain HTTP only, but reqwest (with the TLS feature argent-llm turns on) insists on a
    // crypto provider before it builds a client.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let items = env_usize("ARGENT_BENCH_ITEMS", 10_000)?;
    let clients = env_usize("ARGENT_BENCH_CONCURRENCY", 16)?.max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("argent.db");
        let store = Store::open(&path.to_string_lossy()).await?;
        bench("sqlite", store.clone(), items, clients).await?;
        store.close().await;

        match std::env::var("ARGENT_BENCH_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => {
                let ts = TestStore::postgres(&url).await?;
                let result = bench("postgres", ts.store.clone(), items, clients).await;
                ts.cleanup().await;
                result?;
            }
            _ => println!("api_throughput [postgres]: skipped (set ARGENT_BENCH_POSTGRES_URL)"),
        }
        Ok(())
    })
}
