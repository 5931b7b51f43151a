//! What the server does with documents and work that could crash it or stall other users:
//! a self-including prompt, documents over the size cap, heavy validation while a collector
//! works the queue, and eval runs started from the web (issue #11, items 1, 3 and 14).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use tower::ServiceExt;

use argent_server::ServerConfig;
use argent_store::{DocKind, EvalRunStatus};
use common::*;

/// The size cap on a document (`argent_agent::MAX_DOCUMENT_BYTES`).
const CAP: usize = 64 * 1024;

/// A valid `tone/*` partial of exactly `bytes` bytes: long paragraphs with a variable and
/// a block each, a tag every 40 bytes (the shipped `system.hbs` has one every 62), so a
/// document at the size cap stays under the 2,000-tag bound.
fn partial_of(bytes: usize) -> String {
    let para = "When you write for {{company}}, be brief and clear.\n{{#if company}}Name the amount and the date, and ask for a reply.{{/if}}\n\n";
    let mut body = para.repeat(bytes / para.len());
    body.push_str(&"x".repeat(bytes - body.len()));
    body
}

#[tokio::test]
async fn a_self_including_prompt_is_a_validation_error_not_a_crash() {
    let f = fixture().await;
    // A read-only role, one small request: this aborted the server (stack overflow).
    let body = "Be firm.\n{{#if company}}\n  {{> tone/firm}}\n{{/if}}\n";
    let (s, v) = f
        .as_user(
            "eve",
            Method::POST,
            "/api/documents/prompt/tone%2Ffirm/validate",
            Some(json!({ "body": body })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(
        (
            v["errors"][0]["line"].clone(),
            v["errors"][0]["column"].clone()
        ),
        (json!(3), json!(3)),
        "{v}"
    );
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("tone/firm → tone/firm"), "{message}");

    // The manager's Validate button: the edit page, with the problem at its line.
    let mut mo = Browser::sign_in(&f.app, "mo").await;
    let res = mo
        .submit(
            "/documents/prompt/tone%2Ffirm/edit",
            "/documents/prompt/tone%2Ffirm",
            &[("body", body), ("action", "validate")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(res.body.contains("line 3"), "{}", res.body);
    assert!(res.body.contains("tone/firm → tone/firm"), "{}", res.body);

    // Through another template: tone/careful (active) includes tone/firm; a tone/firm
    // that includes tone/careful closes the cycle.
    let (s, v) = f
        .as_user(
            "mo",
            Method::POST,
            "/api/documents/prompt/tone%2Fcareful",
            Some(json!({ "body": "Careful.\n{{> tone/firm}}\n" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Made active directly in the store (four eyes are tests/four_eyes.rs's subject).
    f.store()
        .activate_document(DocKind::Prompt, "tone/careful", 2, "manager:mo")
        .await
        .unwrap();
    let (s, v) = f
        .as_user(
            "eve",
            Method::POST,
            "/api/documents/prompt/tone%2Ffirm/validate",
            Some(json!({ "body": "Firm.\n{{> tone/careful}}\n" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["errors"][0]["line"], 2, "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("tone/firm → tone/careful → tone/firm"),
        "{v}"
    );
    // And it cannot be saved.
    let (s, v) = f
        .as_user(
            "mo",
            Method::POST,
            "/api/documents/prompt/tone%2Ffirm",
            Some(json!({ "body": "Firm.\n{{> tone/careful}}\n" })),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // The server is still serving.
    let (s, _) = f
        .as_user("alice", Method::GET, "/api/approvals", None)
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn documents_over_the_size_cap_are_refused_with_413() {
    let f = fixture().await;
    let at_cap = partial_of(CAP);
    let over = partial_of(CAP + 1);

    // At the cap: validated as usual.
    let (s, v) = f
        .as_user(
            "eve",
            Method::POST,
            "/api/documents/prompt/tone%2Ffirm/validate",
            Some(json!({ "body": at_cap })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], true, "{v}");

    // One byte over: 413, naming the size and the cap; through create, nothing stored.
    for (user, path) in [
        ("eve", "/api/documents/prompt/tone%2Ffirm/validate"),
        ("mo", "/api/documents/prompt/tone%2Ffirm"),
        ("mo", "/api/documents/policy/b2b/validate"),
    ] {
        let (s, v) = f
            .as_user(user, Method::POST, path, Some(json!({ "body": over })))
            .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {v}");
        let message = v["error"].as_str().unwrap();
        assert!(
            message.contains(&(CAP + 1).to_string()) && message.contains("64 KiB"),
            "{message}"
        );
    }
    assert_eq!(
        f.store()
            .document_versions(DocKind::Prompt, "tone/firm")
            .await
            .unwrap()
            .len(),
        1
    );

    // The page: 413 with the message, and the text kept in the form.
    let mut mo = Browser::sign_in(&f.app, "mo").await;
    for action in ["validate", "save"] {
        let res = mo
            .submit(
                "/documents/prompt/tone%2Ffirm/edit",
                "/documents/prompt/tone%2Ffirm",
                &[("body", &over), ("action", action)],
            )
            .await;
        assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE, "{action}");
        assert!(res.body.contains("64 KiB"), "{action}");
        assert!(
            res.body
                .contains("When you write for {{company}}, be brief and clear."),
            "{action}: the text is not lost"
        );
    }

    // A body far past any document is refused as it streams in, never read whole.
    let read = Arc::new(AtomicUsize::new(0));
    let counter = read.clone();
    let chunk = bytes_chunk();
    let stream = futures_stream(16 * 1024 * 1024 / chunk.len(), chunk, counter);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/documents/prompt/tone%2Ffirm/validate")
        .header("authorization", format!("Bearer {}", f.tokens["eve"]))
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap();
    let res = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let read = read.load(Ordering::SeqCst);
    assert!(read < 2 * 1024 * 1024, "read {read} bytes of 16 MiB");
}

fn bytes_chunk() -> axum::body::Bytes {
    axum::body::Bytes::from(format!("{{\"body\": \"{}", "a".repeat(64 * 1024 - 11)))
}

/// `n` chunks, counting the bytes handed out.
fn futures_stream(
    n: usize,
    chunk: axum::body::Bytes,
    counter: Arc<AtomicUsize>,
) -> impl futures_core::Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Send {
    struct Chunks {
        left: usize,
        chunk: axum::body::Bytes,
        counter: Arc<AtomicUsize>,
    }
    impl futures_core::Stream for Chunks {
        type Item = Result<axum::body::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.left == 0 {
                return std::task::Poll::Ready(None);
            }
            self.left -= 1;
            self.counter.fetch_add(self.chunk.len(), Ordering::SeqCst);
            std::task::Poll::Ready(Some(Ok(self.chunk.clone())))
        }
    }
    Chunks {
        left: n,
        chunk,
        counter,
    }
}

/// The test's runtime has one thread (tokio's default for tests): work done on it holds up
/// every other request until it is done. Validation runs on blocking threads, behind the
/// CPU slots; the test holds every slot, so the validations are certainly still waiting
/// (not merely slow) when the queue page is served.
#[tokio::test]
async fn the_queue_page_is_served_while_maximum_size_documents_validate() {
    let f = fixture().await;
    let mut alice = Browser::sign_in(&f.app, "alice").await;
    let hold = f.state.cpu.hold_all().await.unwrap();
    const N: usize = 3;
    let done = Arc::new(AtomicUsize::new(0));
    let mut heavy = Vec::new();
    for i in 0..N {
        let app = f.app.clone();
        let token = f.tokens["eve"].clone();
        let done = done.clone();
        let body = partial_of(CAP - i);
        heavy.push(tokio::spawn(async move {
            let (s, _, v) = call(
                &app,
                Method::POST,
                "/api/documents/prompt/tone%2Ffirm/validate",
                Some(&token),
                Some(json!({ "body": body })),
            )
            .await;
            done.fetch_add(1, Ordering::SeqCst);
            (s, v)
        }));
    }
    // Let every validation start.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    let page = alice.get("/queue").await;
    assert_eq!(page.status, StatusCode::OK);
    let finished_first = done.load(Ordering::SeqCst);
    assert_eq!(finished_first, 0, "a validation ran without a CPU slot");
    drop(hold);
    for h in heavy {
        let (s, v) = h.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["valid"], true, "{v}");
    }
    assert!(
        finished_first < N,
        "all {N} validations finished before the queue page did"
    );
}

async fn seeded() -> Fixture {
    fixture_with(ServerConfig {
        evals_dir: Some(repo("evals/core")),
        eval_filter: Some("tag:plan".into()),
        ..ServerConfig::default()
    })
    .await
}

async fn wait_done(f: &Fixture, id: &str) -> argent_store::EvalRunRecord {
    for _ in 0..600 {
        let r = f.store().eval_run(id).await.unwrap();
        if r.run.status != EvalRunStatus::Running {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("eval run {id} did not finish in two minutes");
}

#[tokio::test]
async fn eval_runs_are_limited_per_user_and_in_total() {
    let f = seeded().await;
    // Runs wait for a CPU slot: holding them all keeps the runs going while the limits
    // are tried.
    let hold = f.state.cpu.hold_all().await.unwrap();
    let runs = || async { f.store().count_eval_runs().await.unwrap() };
    let (s, v) = f.as_user("eve", Method::POST, "/api/evals", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let first = v["id"].as_str().unwrap().to_string();
    let stored = runs().await;

    // The same user again while the first runs: refused, nothing stored.
    let (s, v) = f.as_user("eve", Method::POST, "/api/evals", None).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(v["error"].as_str().unwrap().contains("already"), "{v}");
    assert_eq!(runs().await, stored);

    // Another user: a second run, which is as many as run at once.
    let (s, v) = f.as_user("mo", Method::POST, "/api/evals", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let second = v["id"].as_str().unwrap().to_string();
    let stored = runs().await;
    let (s, v) = f.as_user("root", Method::POST, "/api/evals", None).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(v["error"].as_str().unwrap().contains("at once"), "{v}");
    // The page's form says so too.
    let mut root = Browser::sign_in(&f.app, "root").await;
    let res = root.submit("/evals", "/evals", &[]).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
    assert!(res.body.contains("at once"), "{}", res.body);
    assert_eq!(runs().await, stored);

    // When they finish, their slots free.
    drop(hold);
    assert_eq!(wait_done(&f, &first).await.run.status, EvalRunStatus::Done);
    assert_eq!(wait_done(&f, &second).await.run.status, EvalRunStatus::Done);
    let (s, v) = f.as_user("eve", Method::POST, "/api/evals", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let third = v["id"].as_str().unwrap().to_string();
    assert_eq!(wait_done(&f, &third).await.run.status, EvalRunStatus::Done);
}

#[tokio::test]
async fn a_failed_eval_run_frees_its_slot() {
    let f = seeded().await;
    // An active set the eval runner cannot load (written past validation, straight into
    // the store): the run fails.
    let store = f.store();
    let v = store
        .create_document_version(
            DocKind::Prompt,
            "system",
            "{{#if x}}",
            "manager:mo",
            Some("broken"),
        )
        .await
        .unwrap();
    store
        .activate_document(DocKind::Prompt, "system", v.version, "manager:mo")
        .await
        .unwrap();
    let (s, v) = f.as_user("eve", Method::POST, "/api/evals", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let rec = wait_done(&f, &id).await;
    assert_eq!(rec.run.status, EvalRunStatus::Failed);
    assert_eq!(f.state.evals.running(), 0);
    let (s, v) = f.as_user("eve", Method::POST, "/api/evals", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "the slot was freed: {v}");
    wait_done(&f, v["id"].as_str().unwrap()).await;
}
