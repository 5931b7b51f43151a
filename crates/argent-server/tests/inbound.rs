//! `POST /api/inbound` (SQLite, and PostgreSQL with ARGENT_TEST_POSTGRES_URL): its own
//! bearer token (not a user's), the media type, the size limit, and exactly-once storage
//! (a duplicate answers 200 with the existing id).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use argent_agent::{Agent, AgentConfig};
use argent_llm::ScriptedModel;
use argent_server::{AppState, ServerConfig, UserRole, create_user, router};
use argent_store::testkit::TestStore;
use argent_store::{AuditFilter, InboundStatus, MailSource, Store};

const TOKEN: &str = "inbound-webhook-token-0123456789";

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

fn app(store: &Store, config: ServerConfig) -> Router {
    let agent = Agent::from_dirs(
        store.clone(),
        Arc::new(ScriptedModel::new()),
        &repo("prompts"),
        &repo("policies"),
        AgentConfig::default(),
    )
    .unwrap();
    router(AppState::new(Arc::new(agent), config))
}

fn configured(max: usize) -> ServerConfig {
    ServerConfig {
        inbound_token: Some(TOKEN.into()),
        inbound_max_bytes: max,
        ..ServerConfig::default()
    }
}

async fn post(
    app: &Router,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method("POST").uri("/api/inbound");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

fn message(id: Option<&str>, body: &str) -> Vec<u8> {
    let mut m = String::from("From: Debtor <debtor@example.net>\r\nTo: ar@example.com\r\n");
    if let Some(id) = id {
        m.push_str(&format!("Message-ID: <{id}>\r\n"));
    }
    m.push_str(&format!("Subject: Re: invoice\r\n\r\n{body}\r\n"));
    m.into_bytes()
}

#[tokio::test]
async fn a_message_is_stored_once_and_a_duplicate_returns_the_existing_id() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let app = app(&ts.store, configured(64 * 1024));
        let m = message(Some("reply-1@debtor.example"), "I will pay on Friday.");
        let (status, body) = post(&app, Some(TOKEN), Some("message/rfc822"), m.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{label}: {body}");
        let id = body["id"].as_str().unwrap().to_string();
        assert_eq!(body["duplicate"], false, "{label}");
        assert_eq!(body["dedupe_key"], "reply-1@debtor.example", "{label}");
        // The provider retries: 200 with the same id, nothing new stored.
        let (status, body) = post(
            &app,
            Some(TOKEN),
            Some("application/octet-stream"),
            m.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert_eq!(body["id"], id.as_str(), "{label}");
        assert_eq!(body["duplicate"], true, "{label}");
        // A message without a Message-ID is keyed by its bytes.
        let anon = message(None, "no id here");
        let (status, body) = post(
            &app,
            Some(TOKEN),
            Some("message/rfc822; charset=utf-8"),
            anon.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{label}: {body}");
        assert!(body["dedupe_key"].as_str().unwrap().starts_with("sha256:"));

        let pending = ts.store.pending_inbound(10).await.unwrap();
        assert_eq!(pending.len(), 2, "{label}");
        let stored = pending.iter().find(|p| p.id == id).unwrap();
        assert_eq!(stored.raw, m, "{label}: the raw bytes as sent");
        assert_eq!(stored.source, MailSource::Webhook, "{label}");
        assert_eq!(
            ts.store
                .count_inbound(Some(InboundStatus::New))
                .await
                .unwrap(),
            2
        );
        let events = ts
            .store
            .audit_events(&AuditFilter {
                kind: Some("mail_received".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(events.len(), 2, "{label}");
        assert_eq!(events[0].actor, "mail:webhook", "{label}");
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn only_the_inbound_token_is_accepted() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let app = app(&ts.store, configured(64 * 1024));
        let m = message(Some("x@y"), "hi");
        for token in [None, Some("wrong"), Some(&TOKEN[..TOKEN.len() - 1])] {
            let (status, body) = post(&app, token, Some("message/rfc822"), m.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{label}: {token:?} {body}"
            );
            assert!(body["error"].is_string(), "{label}");
        }
        // A user's API token is not the webhook's.
        create_user(
            &ts.store,
            "col",
            UserRole::Collector,
            "correct horse battery",
        )
        .await
        .unwrap();
        let login = Request::builder()
            .method("POST")
            .uri("/api/login")
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"name":"col","password":"correct horse battery"}"#,
            ))
            .unwrap();
        let res = app.clone().oneshot(login).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let user_token: Value = serde_json::from_slice(&bytes).unwrap();
        let user_token = user_token["token"].as_str().unwrap();
        let (status, _) = post(&app, Some(user_token), Some("message/rfc822"), m.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}");
        // Not configured: nothing gets in, whatever the token.
        let off = self::app(&ts.store, ServerConfig::default());
        let (status, _) = post(&off, Some(TOKEN), Some("message/rfc822"), m.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}");
        assert_eq!(ts.store.count_inbound(None).await.unwrap(), 0, "{label}");
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn wrong_media_type_empty_and_oversized_bodies_are_refused() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let app = app(&ts.store, configured(1024));
        let m = message(Some("x@y"), "hi");
        for ct in [None, Some("application/json"), Some("text/plain")] {
            let (status, body) = post(&app, Some(TOKEN), ct, m.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{label}: {ct:?} {body}"
            );
        }
        let (status, _) = post(&app, Some(TOKEN), Some("message/rfc822"), Vec::new()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        let big = message(Some("big@y"), &"x".repeat(2000));
        let (status, body) = post(&app, Some(TOKEN), Some("message/rfc822"), big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{label}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("1024"),
            "{label}: {body}"
        );
        // Streamed without a Content-Length: refused as it streams in.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..10).map(|_| Ok(vec![b'a'; 300])).collect();
        let req = Request::builder()
            .method("POST")
            .uri("/api/inbound")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "message/rfc822")
            .body(Body::from_stream(futures_util_stream(chunks)))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "{label}");
        // The default limit is 10 MiB.
        assert_eq!(ServerConfig::default().inbound_max_bytes, 10 * 1024 * 1024);
        assert_eq!(ts.store.count_inbound(None).await.unwrap(), 0, "{label}");
        ts.cleanup().await;
    }
}

/// A stream of chunks (no Content-Length), without a futures dependency.
fn futures_util_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    struct Chunks(std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Chunks(chunks.into_iter())
}

/// With processing on (as `argent serve` runs it), a stored message is processed in the
/// background: one from a sender no customer has waits in the unmatched queue, settled
/// once and audited, while the provider got its 202 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_processes_a_received_message_in_the_background() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let app = app(
            store,
            ServerConfig {
                process_inbound: true,
                ..configured(1 << 20)
            },
        );
        let (status, body) = post(
            &app,
            Some(TOKEN),
            Some("message/rfc822"),
            message(Some("bg-1@example.net"), "Who is this about?"),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{label}: {body}");
        let id = body["id"].as_str().unwrap().to_string();
        let mut status = String::new();
        for _ in 0..100 {
            status = store.inbound_mail(&id).await.unwrap().status;
            if status != "new" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(status, "unmatched", "{label}");
        let events = store
            .audit_events(&AuditFilter {
                kind: Some("mail_processed".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "{label}: {events:?}");
        ts.cleanup().await;
    }
}
