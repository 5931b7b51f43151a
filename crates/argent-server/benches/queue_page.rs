//! The collector's approval-queue page with 10,000 pending items (issue #6: "renders in
//! under 50 ms median (paginated)").
//!
//! A SQLite file database opened as `argent serve` opens it, 10,000 customers each with a
//! pending `propose_plan` item (`argent_agent::testing::seed_plan_queue`), a collector
//! signed in through the login form; then criterion times whole requests through the
//! router (session lookup, the store's page and count queries, rendering, the body
//! collected): the first page, a page deep in the queue, and one item's page.
//!
//! Run: `cargo bench -p argent-server --bench queue_page`.

#![allow(clippy::unwrap_used)] // a benchmark: a panic is the failure report

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use tower::ServiceExt;

use argent_agent::testing::seed_plan_queue;
use argent_agent::{Agent, AgentConfig, Clock};
use argent_llm::ScriptedModel;
use argent_server::{AppState, ServerConfig, UserRole, create_user, router};
use argent_store::Store;
use argent_store::testkit::consumer_portfolio;

const ITEMS: usize = 10_000;
const PASSWORD: &str = "bench password 1";

fn repo(dir: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

async fn get(app: &Router, uri: &str, cookie: &str) -> (StatusCode, usize) {
    let req = Request::builder()
        .uri(uri)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, body.len())
}

/// Signs in through the form; the `argent_session=…` cookie.
async fn sign_in(app: &Router, name: &str) -> String {
    let res = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/login")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let login_cookie = res.headers()["set-cookie"].to_str().unwrap();
    let login_cookie = login_cookie.split(';').next().unwrap().to_string();
    let token = login_cookie.split_once('=').unwrap().1.to_string();
    let form = serde_urlencoded::to_string([
        ("_csrf", token.as_str()),
        ("name", name),
        ("password", PASSWORD),
    ])
    .unwrap();
    let res = app
        .clone()
        .oneshot(
            Request::builder()
                .method("POST")
                .uri("/login")
                .header("cookie", &login_cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("argent_session="))
        .unwrap()
}

fn queue_page(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (app, cookie, item) = rt.block_on(async {
        let store = Store::open(&dir.path().join("argent.db").to_string_lossy())
            .await
            .unwrap();
        let agent = Agent::from_dirs(
            store.clone(),
            Arc::new(ScriptedModel::new()),
            &repo("prompts"),
            &repo("policies"),
            AgentConfig {
                clock: Clock::Fixed("2026-11-20T18:00:00Z".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        let ids = seed_plan_queue(&agent, &consumer_portfolio(ITEMS))
            .await
            .unwrap();
        assert_eq!(ids.len(), ITEMS);
        create_user(&store, "bench-collector", UserRole::Collector, PASSWORD)
            .await
            .unwrap();
        let app = router(AppState::new(Arc::new(agent), ServerConfig::default()));
        let cookie = sign_in(&app, "bench-collector").await;
        let (status, len) = get(&app, "/queue", &cookie).await;
        assert_eq!(status, StatusCode::OK);
        assert!(len > 10_000, "a full page of 50 items");
        (app, cookie, ids[ITEMS / 2].clone())
    });
    let mut g = c.benchmark_group("queue_page_10k_pending");
    for (name, uri) in [
        ("first_page", "/queue".to_string()),
        ("page_150_of_200", "/queue?page=150".to_string()),
        ("one_item", format!("/queue/{item}")),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let (status, _) = rt.block_on(get(&app, &uri, &cookie));
                assert_eq!(status, StatusCode::OK);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, queue_page);
criterion_main!(benches);
