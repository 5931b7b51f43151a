//! The planner loop's own cost: one episode is `agent.start` of an `overdue_notice` step
//! run in which the model calls `read_aging`, then answers with text (model call ->
//! `read_aging` -> model call -> final: two model steps). Every step does what a real run
//! does: prompt rendering, schema validation, a policy decision, the executor, the
//! hash-chained audit events and the checkpoint.
//!
//! Two models, zero model latency:
//! - `scripted`: an `argent_llm::ScriptedModel` (one per concurrent slot, its answers
//!   queued up front, keeping no copy of the requests), so nothing but argent is measured;
//! - `openai`: the real `OpenAiModel` (HTTP, JSON, retries) against the fake
//!   OpenAI-compatible server of the worker tests, started on 127.0.0.1 and answering the
//!   same episode.
//!
//! Each is run sequentially and with 8 episodes at once (each slot runs its share one
//! after the other), on a SQLite file database and, when `ARGENT_TEST_POSTGRES_URL` is
//! set, on PostgreSQL. Printed per case: episodes a second, wall time per episode
//! (sequential: the episode's latency; concurrent: the wall time divided by the episodes,
//! i.e. the inverse throughput) and per model step, and on SQLite the writer round trips
//! per episode (`Store::writer_round_trips`). Every episode is checked: finished, one
//! executed `read_aging`.
//!
//! `cargo bench --bench planner_loop` (release). Environment: `ARGENT_BENCH_EPISODES`
//! (per round, default 400), `ARGENT_BENCH_ROUNDS` (default 3; the median round is
//! printed), `ARGENT_BENCH_CONCURRENCY` (default `1,8`), `ARGENT_BENCH_LATENCY_MS` (the
//! fake server's latency, default 0), `ARGENT_BENCH_JITTER_MS` (each answer's latency
//! spread uniformly over latency ± jitter, same mean; default 0: every answer after
//! exactly the latency, so concurrent episodes move in lock step), `ARGENT_BENCH_MODELS`
//! (default `scripted,openai`),
//! `ARGENT_BENCH_TRACE` (when set, sqlx's statement log on stderr: each statement, its rows
//! and its time, to count an episode's statements).
//! Where the time goes by component: `benches/attribute.py` over a `perf record` of it.

#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

#[path = "../../argent-worker/tests/common/fake_openai.rs"]
mod fake_openai;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

use argent_agent::{
    Agent, AgentConfig, CallStatus, Clock, Compiled, ManualClock, RunOutcome, Trigger,
};
use argent_llm::{
    ChatMessage, ChatModel, ChatRequest, ChatResponse, LlmError, ScriptedModel, ToolCall,
};
use argent_store::RunStatus;
use argent_store::testkit::{TestStore, consumer_portfolio};
use fake_openai::FakeOpenAi;

/// The allocator the `argent` binary runs with (see argent-cli's main).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CUSTOMERS: usize = 64;
const STEPS: f64 = 2.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now() -> DateTime<Utc> {
    "2026-11-20T18:00:00Z".parse().unwrap()
}

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

fn customer(i: usize) -> String {
    format!("C-{:05}", i % CUSTOMERS + 1)
}

fn trigger() -> Trigger {
    Trigger::Step {
        step: "overdue_notice".into(),
    }
}

fn read_aging(customer_id: &str) -> ToolCall {
    ToolCall::new(
        "call_1",
        "read_aging",
        json!({ "customer_id": customer_id }).to_string(),
    )
}

const FINAL: &str = "The aging report is read; the overdue notice can wait for tomorrow.";

/// The fake server's answers: `read_aging` for the customer the system prompt's context
/// names, then a closing text.
struct AgingThenDone;

#[async_trait]
impl ChatModel for AgingThenDone {
    fn name(&self) -> String {
        "aging-then-done".into()
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let answered = req
            .messages
            .iter()
            .any(|m| matches!(m, ChatMessage::Assistant { .. }));
        if answered {
            return Ok(ChatResponse::text(FINAL).with_usage(900, 20));
        }
        let system = req
            .messages
            .iter()
            .find_map(|m| match m {
                ChatMessage::System { content } => Some(content.as_str()),
                _ => None,
            })
            .unwrap_or_default();
        let id = system
            .split("\"customer_id\": \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default();
        Ok(ChatResponse::tool_calls(vec![read_aging(id)]).with_usage(800, 15))
    }
}

/// Microseconds after [`now`] of the next episode's instant.
static NEXT_INSTANT: AtomicI64 = AtomicI64::new(0);

/// A slot's agent: the documents compiled once for every slot, and a clock the slot moves
/// on before each episode ([`next_instant`]). Every episode starts at its own instant, as a
/// real clock's would: a run's id derives from its customer, trigger and instant, and
/// with a fixed clock the k-th episode for a customer looked up k taken ids before it
/// found a free one (up to ~20 reads an episode by the third round; production does one).
async fn agent(ts: &TestStore, model: Arc<dyn ChatModel>) -> (Arc<Agent>, &'static ManualClock) {
    static COMPILED: std::sync::OnceLock<Compiled> = std::sync::OnceLock::new();
    let compiled =
        COMPILED.get_or_init(|| Compiled::from_dirs(&repo("prompts"), &repo("policies")).unwrap());
    let clock = ManualClock::leak(now());
    let config = AgentConfig {
        clock: Clock::Manual(clock),
        ..Default::default()
    };
    let agent = Agent::from_compiled(ts.store.clone(), model, compiled, config).unwrap();
    (Arc::new(agent), clock)
}

/// Moves `clock` to an instant no episode has started at.
fn next_instant(clock: &ManualClock) {
    let us = NEXT_INSTANT.fetch_add(1, Ordering::Relaxed);
    clock.set(now() + chrono::Duration::microseconds(us));
}

fn check(out: &RunOutcome) {
    assert_eq!(out.status, RunStatus::Finished, "{out:?}");
    assert_eq!(out.steps, 2, "{out:?}");
    assert_eq!(out.calls.len(), 1, "{out:?}");
    assert_eq!(out.calls[0].tool, "read_aging");
    assert_eq!(out.calls[0].status, CallStatus::Executed, "{out:?}");
    assert_eq!(out.final_text.as_deref(), Some(FINAL));
}

#[derive(Clone, Copy)]
enum Variant {
    Scripted,
    OpenAi,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Scripted => "scripted",
            Variant::OpenAi => "openai",
        }
    }
}

/// The `openai` variant's endpoint: the fake server and the one client every slot's agent
/// shares, as in production, where a process builds its model once (`build_agent`) and
/// its workers share it. A client per slot loaded the system's root certificates 500
/// times over (23% of the 500-concurrent case's CPU samples, in set-up, and ~95 of its
/// ~296 MiB peak).
struct Endpoint {
    // Kept alive for the client's sake; dropped (the server stopped) with the endpoint.
    _fake: FakeOpenAi,
    model: Arc<dyn ChatModel>,
}

impl Endpoint {
    async fn start(latency: Duration, jitter: Duration) -> Endpoint {
        let fake = FakeOpenAi::start_with(latency, 0, Arc::new(AgingThenDone))
            .await
            .forgetting_bodies();
        fake.set_jitter(jitter);
        let model = fake.bench_model();
        Endpoint {
            _fake: fake,
            model: Arc::new(model),
        }
    }
}

/// One slot's agent and the episodes it runs (customer index `first`, `first + stride`…).
async fn slot_agent(
    ts: &TestStore,
    variant: Variant,
    endpoint: &Option<Endpoint>,
    first: usize,
    stride: usize,
    episodes: usize,
) -> (Arc<Agent>, &'static ManualClock) {
    match (variant, endpoint) {
        (Variant::OpenAi, Some(endpoint)) => agent(ts, endpoint.model.clone()).await,
        _ => {
            // It keeps no copy of the requests: that would be the test double's cost.
            let model = ScriptedModel::new().forgetting_requests();
            for k in 0..episodes {
                let id = customer(first + k * stride);
                model.push_response(
                    ChatResponse::tool_calls(vec![read_aging(&id)]).with_usage(800, 15),
                );
                model.push_response(ChatResponse::text(FINAL).with_usage(900, 20));
            }
            agent(ts, Arc::new(model)).await
        }
    }
}

/// Runs `episodes` episodes on `concurrency` slots; returns the wall time.
async fn round(
    ts: &TestStore,
    variant: Variant,
    endpoint: &Option<Endpoint>,
    concurrency: usize,
    episodes: usize,
    offset: usize,
) -> Duration {
    let per = episodes / concurrency;
    let mut agents = Vec::new();
    for s in 0..concurrency {
        agents.push(slot_agent(ts, variant, endpoint, offset + s, concurrency, per).await);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (s, (agent, clock)) in agents.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for k in 0..per {
                let id = customer(offset + s + k * concurrency);
                next_instant(clock);
                let out = agent.start(&id, trigger()).await.unwrap();
                check(&out);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

fn main() {
    let episodes: usize = env_or("ARGENT_BENCH_EPISODES", 400);
    let rounds: usize = env_or("ARGENT_BENCH_ROUNDS", 3).max(1);
    let latency = Duration::from_millis(env_or("ARGENT_BENCH_LATENCY_MS", 0));
    let jitter = Duration::from_millis(env_or("ARGENT_BENCH_JITTER_MS", 0));
    let concurrencies: Vec<usize> = std::env::var("ARGENT_BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "1,8".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .filter(|c| *c > 0)
        .collect();
    let models: Vec<String> = std::env::var("ARGENT_BENCH_MODELS")
        .unwrap_or_else(|_| "scripted,openai".into())
        .split(',')
        .map(|m| m.trim().to_string())
        .collect();
    // A bench's own diagnostic, not the product's logging: stderr, sqlx's statements only.
    if std::env::var("ARGENT_BENCH_TRACE").is_ok() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("sqlx::query=debug"))
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "planner loop: model call -> read_aging -> model call -> final ({STEPS} steps), \
             {episodes} episodes a round, median of {rounds} rounds, model latency {} ms ± {} ms",
            latency.as_millis(),
            jitter.as_millis()
        );
        println!(
            "{:<9} {:<9} {:>5} {:>11} {:>12} {:>10} {:>9}",
            "backend", "model", "conc", "episodes/s", "ms/episode", "ms/step", "writer rt"
        );
        for ts in TestStore::all().await.unwrap() {
            ts.store
                .import_portfolio(&consumer_portfolio(CUSTOMERS), "bench")
                .await
                .unwrap();
            for variant in [Variant::Scripted, Variant::OpenAi] {
                if !models.iter().any(|m| m == variant.label()) {
                    continue;
                }
                let endpoint = match variant {
                    Variant::OpenAi => Some(Endpoint::start(latency, jitter).await),
                    Variant::Scripted => None,
                };
                // Warm up: connections, page cache, the HTTP client's pool.
                round(&ts, variant, &endpoint, 1, 20, 0).await;
                for &c in &concurrencies {
                    let n = (episodes / c).max(1) * c;
                    let mut walls = Vec::new();
                    let mut trips = Vec::new();
                    for r in 0..rounds {
                        let before = ts.store.writer_round_trips().await;
                        walls.push(round(&ts, variant, &endpoint, c, n, r * 7).await);
                        let after = ts.store.writer_round_trips().await;
                        if let (Some(b), Some(a)) = (before, after) {
                            trips.push((a - b) as f64 / n as f64);
                        }
                    }
                    let mut sorted = walls.clone();
                    sorted.sort();
                    let wall = sorted[sorted.len() / 2];
                    let per_episode = wall.as_secs_f64() * 1000.0 / n as f64;
                    let rt = trips.first().map_or("-".to_string(), |t| format!("{t:.1}"));
                    println!(
                        "{:<9} {:<9} {:>5} {:>11.0} {:>12.3} {:>10.3} {:>9}",
                        ts.label,
                        variant.label(),
                        c,
                        n as f64 / wall.as_secs_f64(),
                        per_episode,
                        per_episode / STEPS,
                        rt
                    );
                }
            }
            ts.cleanup().await;
        }
    });
}
