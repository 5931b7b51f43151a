//! The unmatched-mail queue over the API and the page: a message that matched no customer
//! is listed with its sender, subject and arrival, a collector assigns it (audited), and it
//! is then processed as matched. Compliance reads and assigns nothing.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::{Method, StatusCode};
use serde_json::json;

use argent_agent::mail_in::MAIL_ASSIGNED;
use argent_store::AuditFilter;
use common::*;

#[tokio::test]
async fn an_unmatched_message_is_assigned_from_the_api_then_processed_and_audited() {
    let f = fixture().await;
    receive_unmatched(&f, "in-u1", "Ann Lee <ann.home@example.org>", "My bill").await;

    let (s, body) = f
        .as_user("cy", Method::GET, "/api/mail/unmatched", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], "in-u1");
    assert_eq!(items[0]["from_addr"], "ann.home@example.org");
    assert_eq!(items[0]["subject"], "My bill");
    assert_eq!(items[0]["status"], "unmatched");
    assert_eq!(items[0]["received_at"], "2026-11-20T18:00:00Z");

    let (s, _) = f
        .as_user("eve", Method::GET, "/api/mail/unmatched", None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an evaluator does not read mail");
    let (s, _) = f
        .as_user(
            "cy",
            Method::POST,
            "/api/mail/in-u1/assign",
            Some(json!({"customer_id": "C-ANN"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "compliance reads, assigns nothing"
    );
    let (s, body) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/mail/in-u1/assign",
            Some(json!({"customer_id": "C-NOPE"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    let (s, body) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/mail/in-u1/assign",
            Some(json!({"customer": "C-ANN"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");

    let (s, body) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/mail/in-u1/assign",
            Some(json!({"customer_id": "C-ANN"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["mail"]["status"], "processed");
    assert_eq!(body["mail"]["customer_id"], "C-ANN");
    assert_eq!(body["mail"]["matched_by"], "assigned");
    assert_eq!(body["report"]["processed"], 1);
    assert_eq!(body["report"]["runs"], 1);

    let ev = f
        .store()
        .audit_events(&AuditFilter {
            kind: Some(MAIL_ASSIGNED.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].actor, "collector:alice");
    assert_eq!(ev[0].customer_id.as_deref(), Some("C-ANN"));
    assert_eq!(ev[0].payload["inbound_id"], "in-u1");

    let (s, body) = f
        .as_user(
            "mo",
            Method::POST,
            "/api/mail/in-u1/assign",
            Some(json!({"customer_id": "C-BO"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    let (_, body) = f
        .as_user("alice", Method::GET, "/api/mail/unmatched", None)
        .await;
    assert!(body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_unmatched_page_lists_and_assigns() {
    let f = fixture().await;
    receive_unmatched(
        &f,
        "in-u2",
        "Someone <someone@example.org>",
        "Invoice question",
    )
    .await;
    let mut b = Browser::sign_in(&f.app, "alice").await;
    let page = b.get("/mail/unmatched").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("someone@example.org"));
    assert!(page.body.contains("Invoice question"));
    assert!(page.body.contains("action=\"/mail/in-u2/assign\""));
    let res = b
        .submit(
            "/mail/unmatched",
            "/mail/in-u2/assign",
            &[("customer_id", "C-BO")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let page = b.get(res.location.as_deref().unwrap()).await;
    assert!(
        page.body.contains("in-u2 assigned to C-BO"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("someone@example.org"));
    let row = f.store().inbound_mail("in-u2").await.unwrap();
    assert_eq!(row.customer_id.as_deref(), Some("C-BO"));

    let mut cy = Browser::sign_in(&f.app, "cy").await;
    let page = cy.get("/mail/unmatched").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        !page.body.contains("<form method=\"post\" action=\"/mail/"),
        "compliance sees no assign form"
    );
}
