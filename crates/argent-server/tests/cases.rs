//! The dispute lifecycle over the API: `POST /api/cases/{id}/verification` and
//! `POST /api/cases/{id}/resolve` move a case along as the signed-in user, audited, only
//! along its lifecycle, and their answers match openapi.json.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::{Method, StatusCode};
use serde_json::json;

use argent_core::{Case, CaseKind, CaseStatus};
use argent_store::AuditFilter;
use common::*;

fn dispute(id: &str) -> Case {
    Case {
        id: id.into(),
        customer_id: "C-ANN".into(),
        kind: CaseKind::Dispute,
        status: CaseStatus::Open,
        invoice_numbers: vec!["INV-ANN-1".into()],
        disputed_amount: None,
        summary: "says the goods never arrived".into(),
        opened_at: now(),
    }
}

#[tokio::test]
async fn a_dispute_is_verified_then_resolved_through_the_api() {
    let f = fixture().await;
    f.store().insert_case(&dispute("K1")).await.unwrap();
    let resolve = |outcome: &str, note: &str| json!({"outcome": outcome, "note": note});

    // Resolving before the verification is a 422 naming why.
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/cases/K1/resolve",
            Some(resolve("resolved", "paid?")),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"].as_str().unwrap().contains("verification"), "{b}");
    // Compliance and evaluators do not move cases; an empty note is refused.
    for user in ["cy", "eve"] {
        let (s, b) = f
            .as_user(
                user,
                Method::POST,
                "/api/cases/K1/verification",
                Some(json!({"note": "sent"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{user}: {b}");
    }
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/cases/K1/verification",
            Some(json!({"note": "  "})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(f.store().case("K1").await.unwrap().status, CaseStatus::Open);

    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/cases/K1/verification",
            Some(json!({"note": "proof of delivery mailed 2026-11-20"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"case_id": "K1", "customer_id": "C-ANN", "kind": "dispute", "status": "verification_sent"})
    );
    let (s, b) = f
        .as_user(
            "mo",
            Method::POST,
            "/api/cases/K1/resolve",
            Some(resolve("resolved", "customer accepted the proof")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "resolved");
    // Closed: a further step is a 422, an unknown case a 404, a bad outcome a 4xx.
    let (s, _) = f
        .as_user(
            "mo",
            Method::POST,
            "/api/cases/K1/resolve",
            Some(resolve("upheld", "changed my mind")),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = f
        .as_user(
            "mo",
            Method::POST,
            "/api/cases/NOPE/resolve",
            Some(resolve("upheld", "x")),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = f
        .as_user(
            "mo",
            Method::POST,
            "/api/cases/K1/resolve",
            Some(resolve("forgotten", "x")),
        )
        .await;
    assert!(s.is_client_error(), "{s}");

    let events = f
        .store()
        .audit_events(&AuditFilter {
            customer_id: Some("C-ANN".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let steps: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.kind.starts_with("case."))
        .map(|e| (e.kind.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        steps,
        vec![("case.verification_sent", "alice"), ("case.resolved", "mo")]
    );
}

#[tokio::test]
async fn an_upheld_dispute_is_final() {
    let f = fixture().await;
    f.store().insert_case(&dispute("K2")).await.unwrap();
    let (s, b) = f
        .as_user(
            "root",
            Method::POST,
            "/api/cases/K2/resolve",
            Some(json!({"outcome": "upheld", "note": "credit note issued"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "upheld");
    let (s, _) = f
        .as_user(
            "root",
            Method::POST,
            "/api/cases/K2/verification",
            Some(json!({"note": "sent anyway"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(f.store().case("K2").await.unwrap().pauses("INV-ANN-1"));
}
