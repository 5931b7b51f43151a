//! What the server's integration tests share: a small portfolio with approval items made
//! by running the agent with a scripted model, users of every role, and a request helper.

#![allow(dead_code)] // each test file uses a different part

pub mod browser;
pub mod eval_runs;
pub mod gate;
#[allow(unused_imports)] // the API tests use no browser
pub use browser::*;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use chrono::{DateTime, NaiveDate, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use argent_agent::testing::{ann_plan_20_percent, plan_args};
use argent_agent::{Agent, AgentConfig, Clock, Trigger};
use argent_llm::{ScriptedModel, ToolCall};
use argent_server::{AppState, ServerConfig, UserRole, create_user, router};
use argent_store::testkit::TestStore;
use argent_store::{ApprovalStatus, Store};

pub const NOW: &str = "2026-11-20T18:00:00Z"; // noon in Chicago
pub const PASSWORD: &str = "correct horse battery";
/// Ann's 20% plans queued for a collector (or manager, or admin).
pub const ANN_ITEMS: usize = 10;

pub fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// 5% off: within what may run without review.
pub fn ann_plan_fair() -> Value {
    plan_args(
        "C-ANN",
        "1200.00",
        "60.00",
        "120.00",
        &[
            ("2026-12-20", "340.00"),
            ("2027-01-20", "340.00"),
            ("2027-02-20", "340.00"),
        ],
    )
}

/// 90% off: past the hard ceiling; nobody may approve it.
pub fn ann_plan_greedy() -> Value {
    plan_args(
        "C-ANN",
        "1200.00",
        "1080.00",
        "0.00",
        &[("2026-12-20", "120.00")],
    )
}

/// Bo's 15,000.00 in three payments: needs a manager.
pub fn bo_plan() -> Value {
    plan_args(
        "C-BO",
        "15000.00",
        "0.00",
        "1500.00",
        &[
            ("2026-12-20", "4500.00"),
            ("2027-01-20", "4500.00"),
            ("2027-02-20", "4500.00"),
        ],
    )
}

pub fn inbound(from: &str, body: &str) -> Trigger {
    Trigger::Inbound {
        from: from.into(),
        subject: "My account".into(),
        body: body.into(),
        received_at: now(),
        message_id: None,
        references: Vec::new(),
        mail: None,
    }
}

pub fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

pub struct Fixture {
    pub ts: TestStore,
    /// The state `app` was built from, for serving it on a real socket.
    pub state: AppState,
    pub app: Router,
    /// Bearer tokens by user name.
    pub tokens: HashMap<&'static str, String>,
    /// Ann's items (collector-approvable), in queue order.
    pub ann: Vec<String>,
    /// Bo's item (manager or admin only).
    pub bo: String,
}

pub const USERS: &[(&str, UserRole)] = &[
    ("alice", UserRole::Collector),
    ("mo", UserRole::Manager),
    ("cy", UserRole::Compliance),
    ("eve", UserRole::Evaluator),
    ("root", UserRole::Admin),
];

pub fn user_of(role: UserRole) -> &'static str {
    USERS.iter().find(|(_, r)| *r == role).unwrap().0
}

pub async fn fixture() -> Fixture {
    fixture_with(ServerConfig::default()).await
}

/// The fixture with a server configuration of the test's own; the database also holds the
/// repository's prompts and policies as active documents (as `argent serve` seeds them).
pub async fn fixture_with(server_config: ServerConfig) -> Fixture {
    fixture_on(TestStore::sqlite().await.unwrap(), server_config).await
}

/// The fixture on a store of the test's choosing (`TestStore::all()` for both backends).
pub async fn fixture_on(ts: TestStore, server_config: ServerConfig) -> Fixture {
    let store = ts.store.clone();
    store
        .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
        .await
        .unwrap();
    let model = ScriptedModel::new();
    model.push_tool_calls(
        (0..ANN_ITEMS)
            .map(|i| {
                // Each its own action (a run does not repeat an action it took): the
                // same plan, with a note of its own.
                let mut plan = ann_plan_20_percent();
                plan["note"] = serde_json::json!(format!("Offer {} of {ANN_ITEMS}", i + 1));
                ToolCall::new(format!("a{i}"), "propose_plan", plan.to_string())
            })
            .collect(),
    );
    model.push_text("Done.");
    model.push_tool_calls(vec![ToolCall::new(
        "b0",
        "propose_plan",
        bo_plan().to_string(),
    )]);
    model.push_text("Done.");
    let config = AgentConfig {
        clock: Clock::Fixed(now()),
        ..Default::default()
    };
    let agent = Agent::from_dirs(
        store.clone(),
        Arc::new(model),
        &repo("prompts"),
        &repo("policies"),
        config,
    )
    .unwrap();
    agent
        .start("C-ANN", inbound("ann@mail.example", "Could I get 20% off?"))
        .await
        .unwrap();
    agent
        .start(
            "C-BO",
            inbound("bo@mail.example", "Can we do three payments?"),
        )
        .await
        .unwrap();
    let items = store
        .approvals(Some(ApprovalStatus::Pending), 100, 0)
        .await
        .unwrap();
    assert_eq!(items.len(), ANN_ITEMS + 1, "every plan was queued");
    let ann = items
        .iter()
        .filter(|i| i.customer_id == "C-ANN")
        .map(|i| i.id.clone())
        .collect();
    let bo = items
        .iter()
        .find(|i| i.customer_id == "C-BO")
        .unwrap()
        .id
        .clone();

    for (name, role) in USERS {
        create_user(&store, name, *role, PASSWORD).await.unwrap();
    }
    let docs = argent_agent::DocumentSet::from_dirs(&repo("prompts"), &repo("policies")).unwrap();
    store.seed_documents(&docs.entries(), "seed").await.unwrap();
    let state = AppState::new(Arc::new(agent), server_config);
    let app = router(state.clone());
    let mut tokens = HashMap::new();
    for (name, _) in USERS {
        let (status, _, body) = call(
            &app,
            Method::POST,
            "/api/login",
            None,
            Some(json!({"name": name, "password": PASSWORD})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        tokens.insert(*name, body["token"].as_str().unwrap().to_string());
    }
    Fixture {
        ts,
        state,
        app,
        tokens,
        ann,
        bo,
    }
}

pub async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, headers, body)
}

impl Fixture {
    pub async fn as_user(
        &self,
        user: &str,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, _, b) = call(&self.app, method, uri, Some(&self.tokens[user]), body).await;
        (s, b)
    }

    pub fn store(&self) -> &Store {
        &self.ts.store
    }
}

/// Receives a message from `from` that matches no customer and processes it: it waits in
/// the unmatched-mail queue.
pub async fn receive_unmatched(f: &Fixture, id: &str, from: &str, subject: &str) {
    let raw = format!(
        "From: {from}\r\nTo: ar@acme-ar.example\r\nSubject: {subject}\r\nDate: Fri, 20 Nov 2026 17:30:00 +0000\r\nMessage-ID: <{id}@example.org>\r\n\r\nCan I pay in two parts?\r\n"
    );
    f.store()
        .insert_inbound_row(&argent_store::mail_in::NewInbound {
            id: id.into(),
            dedupe_key: id.into(),
            message_id: Some(format!("{id}@example.org")),
            source: "webhook".into(),
            raw: raw.into_bytes(),
            raw_sha256: format!("sha-{id}"),
            received_at: now(),
        })
        .await
        .unwrap();
    // Processing never asks this model: an unmatched message starts no run.
    let agent = Agent::from_dirs(
        f.store().clone(),
        Arc::new(ScriptedModel::new()),
        &repo("prompts"),
        &repo("policies"),
        AgentConfig {
            clock: Clock::Fixed(now()),
            ..Default::default()
        },
    )
    .unwrap();
    let r = argent_agent::mail_in::process_pending(&agent, 10)
        .await
        .unwrap();
    assert_eq!(r.unmatched, 1, "{r:?}");
}

/// An earlier message from Ann (2026-11-02 15:30 UTC, a finished run) and our answer
/// (2026-11-03 14:00 UTC, in the outbox), before the one that queued her items: her item
/// pages show the whole thread.
pub async fn earlier_thread(store: &Store) {
    store
        .create_run(&argent_store::RunRecord {
            id: "run-earlier".into(),
            customer_id: "C-ANN".into(),
            trigger: json!({"kind": "inbound", "from": "ann@mail.example", "subject": "Invoice",
                            "body": "Is INV-ANN-1 the right amount?", "received_at": "2026-11-02T15:30:00Z"}),
            status: argent_store::RunStatus::Finished,
            step: 1,
            tokens: 0,
            state: json!({"messages": []}),
            model: "offline".into(),
            prompt_version: "p".into(),
            policy_version: "v".into(),
            created_at: "2026-11-02T15:30:01Z".parse().unwrap(),
            updated_at: "2026-11-02T15:30:01Z".parse().unwrap(),
            lease_owner: None,
            lease_until: None,
        })
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.enqueue_email(&argent_store::OutboxEmail {
        id: "em-earlier".into(),
        call_id: "call-earlier".into(),
        customer_id: "C-ANN".into(),
        to_addr: "ann@mail.example".into(),
        subject: "Re: Invoice".into(),
        body: "Yes, 1,200.00 is right.".into(),
        created_at: "2026-11-03T14:00:00Z".parse().unwrap(),
        status: "pending".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
}
