//! The collector's "approve & next" round trip with 10,000 pending items (issue #15:
//! "p95 under 150 ms"). Not criterion: each round trip consumes an item, so the bench
//! measures a fixed number of them and prints their percentiles.
//!
//! For each backend: a fresh database (a SQLite file in a temp directory, opened by
//! `Store::open` exactly as `argent serve` opens it; PostgreSQL in a throwaway schema when
//! `ARGENT_BENCH_POSTGRES_URL` or `ARGENT_TEST_POSTGRES_URL` is set), `ARGENT_BENCH_ITEMS`
//! (default 10,000) customers each with a pending `propose_plan` item a collector may
//! approve (`argent_agent::testing::seed_plan_queue`), and `argent_server::serve` on
//! 127.0.0.1:0. A collector signs in through the login form and opens the first item
//! under the "I can approve" filter (`/queue?mine=1`). Then, `ARGENT_BENCH_ROUNDS`
//! (default 300) times after 20 unmeasured ones, one round trip, as the browser makes it
//! over a keep-alive connection: `POST /queue/{id}/approve` with `next=1` and
//! `back=mine=1` (the approval: re-judged, executed and audited; then the next item under
//! the filter), its 303 to `/queue/{next}?mine=1`, and `GET` of that page (the item, its
//! aging, the whole thread, the draft, the decision, the plan editor), body read. Printed:
//! p50 / p95 / p99 / max of the round trip and of each half. Then the store is checked:
//! exactly the items approved were decided, in queue order.
//!
//! Run: `cargo bench --bench approve_next` (add `-p argent-server` only where feature
//! unification does not matter).

use std::error::Error;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argent_agent::testing::seed_plan_queue;
use argent_agent::{Agent, AgentConfig, Clock};
use argent_llm::ScriptedModel;
use argent_server::{AppState, ServerConfig, UserRole, create_user, serve};
use argent_store::testkit::{TestStore, consumer_portfolio};
use argent_store::{ApprovalStatus, Store};

/// The allocator `argent serve` runs with (see argent-cli's main).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const NOW: &str = "2026-11-20T18:00:00Z";
const USER: &str = "bench-collector";
const PASSWORD: &str = "bench password 1";
const WARMUP: usize = 20;
/// The target for the round trip's 95th percentile.
const TARGET_P95: Duration = Duration::from_millis(150);

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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn summary(name: &str, mut v: Vec<Duration>) -> Duration {
    v.sort();
    let p95 = percentile(&v, 95.0);
    println!(
        "  {name:<22} p50 {:>9}  p95 {:>9}  p99 {:>9}  max {:>9}",
        ms(percentile(&v, 50.0)),
        ms(p95),
        ms(percentile(&v, 99.0)),
        ms(v.last().copied().unwrap_or_default()),
    );
    p95
}

/// The value of the first `_csrf` hidden field on a page.
fn csrf(html: &str) -> BoxResult<String> {
    let marker = "name=\"_csrf\" value=\"";
    let at = html.find(marker).ok_or("no _csrf field on the page")? + marker.len();
    let rest = &html[at..];
    Ok(rest[..rest.find('"').ok_or("unterminated _csrf")?].to_string())
}

/// `name=value` of the cookie called `name` among a response's `set-cookie` headers.
fn cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

async fn bench(label: &str, store: Store, items: usize, rounds: usize) -> BoxResult<Duration> {
    println!("approve_next [{label}]: {items} pending items, {rounds} measured round trips");
    let agent = Agent::from_dirs(
        store.clone(),
        Arc::new(ScriptedModel::new()),
        &repo("prompts"),
        &repo("policies"),
        AgentConfig {
            clock: Clock::Fixed(NOW.parse()?),
            ..Default::default()
        },
    )?;
    let started = Instant::now();
    let ids = seed_plan_queue(&agent, &consumer_portfolio(items)).await?;
    println!(
        "  seeded {} pending items in {:.1} s",
        ids.len(),
        started.elapsed().as_secs_f64()
    );
    if ids.len() < rounds + WARMUP + 1 {
        return Err(format!("{} items are too few for {rounds} rounds", ids.len()).into());
    }
    create_user(&store, USER, UserRole::Collector, PASSWORD)
        .await
        .map_err(|e| format!("creating the collector: {e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(serve(
        listener,
        AppState::new(Arc::new(agent), ServerConfig::default()),
    ));
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    // Sign in through the form.
    let form = http.get(format!("{base}/login")).send().await?;
    let login_cookie = cookie(&form, "argent_login").ok_or("no login cookie")?;
    let token = csrf(&form.text().await?)?;
    let res = http
        .post(format!("{base}/login"))
        .header("cookie", &login_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([
            ("_csrf", token.as_str()),
            ("name", USER),
            ("password", PASSWORD),
        ])?)
        .send()
        .await?;
    let session = cookie(&res, "argent_session").ok_or("signing in set no session")?;

    // Queue order under "I can approve", and its first item, as the list links it.
    let order: Vec<String> = store
        .queue_page(
            &argent_store::QueueFilter {
                status: Some(ApprovalStatus::Pending),
                approvable_by: Some("collector".into()),
                ..Default::default()
            },
            (rounds + WARMUP) as i64,
            0,
        )
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect();
    let mut at = format!(
        "/queue/{}?mine=1",
        order.first().ok_or("nothing to approve")?
    );
    let first = http
        .get(format!("{base}{at}"))
        .header("cookie", &session)
        .send()
        .await?;
    if first.status() != 200 {
        return Err(format!("GET {at}: {}", first.status()).into());
    }
    let token = csrf(&first.text().await?)?;

    let (mut trips, mut posts, mut gets) = (Vec::new(), Vec::new(), Vec::new());
    let mut approved = Vec::new();
    for round in 0..rounds + WARMUP {
        let id = at
            .strip_prefix("/queue/")
            .and_then(|r| r.split('?').next())
            .ok_or_else(|| format!("not an item page: {at}"))?
            .to_string();
        let t0 = Instant::now();
        let res = http
            .post(format!("{base}/queue/{id}/approve"))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string([
                ("_csrf", token.as_str()),
                ("note", ""),
                ("next", "1"),
                ("back", "mine=1"),
            ])?)
            .send()
            .await?;
        let status = res.status();
        let next = res
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        let _ = res.bytes().await?;
        let t1 = Instant::now();
        let next = match (status.as_u16(), next) {
            (303, Some(n)) if n.starts_with("/queue/") => n,
            (s, n) => return Err(format!("approving {id}: {s} to {n:?}").into()),
        };
        let page = http
            .get(format!("{base}{next}"))
            .header("cookie", &session)
            .send()
            .await?;
        let status = page.status();
        let body = page.bytes().await?;
        let t2 = Instant::now();
        if status != 200 || body.len() < 2_000 {
            return Err(format!("GET {next}: {status}, {} bytes", body.len()).into());
        }
        approved.push(id);
        if round >= WARMUP {
            trips.push(t2 - t0);
            posts.push(t1 - t0);
            gets.push(t2 - t1);
        }
        at = next;
    }
    let p95 = summary("approve & next + GET", trips);
    summary("  POST approve & next", posts);
    summary("  GET next item page", gets);
    println!(
        "  target: p95 < {} — {}",
        ms(TARGET_P95),
        if p95 < TARGET_P95 { "met" } else { "NOT met" }
    );

    // The store agrees: exactly these were approved, one after another in queue order.
    let done = store
        .count_approvals(Some(ApprovalStatus::Approved))
        .await?;
    if done != approved.len() as i64 {
        return Err(format!(
            "{done} approved in the store, {} by the bench",
            approved.len()
        )
        .into());
    }
    if approved != order {
        return Err("approve & next did not follow queue order".into());
    }
    server.abort();
    Ok(p95)
}

fn main() -> BoxResult<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let items = env_usize("ARGENT_BENCH_ITEMS", 10_000)?;
    let rounds = env_usize("ARGENT_BENCH_ROUNDS", 300)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("argent.db").to_string_lossy()).await?;
        bench("sqlite", store.clone(), items, rounds).await?;
        store.close().await;
        let pg = ["ARGENT_BENCH_POSTGRES_URL", "ARGENT_TEST_POSTGRES_URL"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()));
        if let Some(url) = pg {
            let ts = TestStore::postgres(&url).await?;
            let r = bench("postgres", ts.store.clone(), items, rounds).await;
            ts.cleanup().await;
            r?;
        } else {
            println!("approve_next [postgres]: skipped (set ARGENT_BENCH_POSTGRES_URL)");
        }
        Ok(())
    })
}
