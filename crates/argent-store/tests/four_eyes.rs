//! Four eyes on documents (`doc_requests.rs`, migration 0021): requests, approvals by a
//! second person, rejections, withdrawals, rollbacks with and without the emergency flag,
//! and the audit trail's account of each; on SQLite and (when ARGENT_TEST_POSTGRES_URL is
//! set) PostgreSQL.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use argent_store::testkit::{TestStore, raw_execute};
use argent_store::{
    AuditFilter, AuditVerification, DocActor, DocKind, DocRequestStatus, DocStatus, Store,
    StoreError,
};

async fn kinds_of(s: &Store, prefix: &str) -> Vec<String> {
    s.audit_events(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.starts_with(prefix))
        .map(|e| e.kind)
        .collect()
}

fn mo() -> DocActor {
    DocActor::new("mo", "manager")
}
fn cy() -> DocActor {
    DocActor::new("cy", "compliance")
}

/// Version 1 active (seeded), version 2 a draft.
async fn two_versions(s: &Store) {
    s.seed_documents(
        &[(DocKind::Policy, "b2b".into(), "id = 'b2b' # v1".into())],
        "seed",
    )
    .await
    .unwrap();
    s.create_document_version(DocKind::Policy, "b2b", "id = 'b2b' # v2", "mo", None)
        .await
        .unwrap();
}

async fn status_of(s: &Store, v: i64) -> DocStatus {
    s.document(DocKind::Policy, "b2b", v).await.unwrap().status
}

async fn intact(s: &Store, l: &str) {
    assert!(
        matches!(
            s.audit_verify().await.unwrap(),
            AuditVerification::Intact { .. }
        ),
        "{l}"
    );
    assert_eq!(s.document_problems().await.unwrap(), vec![], "{l}");
    s.active_documents().await.unwrap();
}

#[tokio::test]
async fn a_request_activates_nothing_until_a_second_person_approves_it() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let l = ts.label;
        two_versions(s).await;

        // A reason is required.
        let e = s
            .request_document_activation(DocKind::Policy, "b2b", 2, &mo(), "  ")
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{l}: {e}");

        let req = s
            .request_document_activation(DocKind::Policy, "b2b", 2, &mo(), "plainer words")
            .await
            .unwrap();
        assert_eq!(req.status, DocRequestStatus::Pending, "{l}");
        assert_eq!(req.from_version, Some(1), "{l}");
        assert_eq!(status_of(s, 2).await, DocStatus::Draft, "{l}: nothing yet");
        // One pending request per document.
        let e = s
            .request_document_activation(DocKind::Policy, "b2b", 2, &cy(), "again")
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{l}: {e}");

        // The requester cannot approve, whatever role they hold now.
        let e = s
            .approve_document_request(&req.id, &DocActor::new("mo", "admin"), None)
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Conflict(ref m) if m.contains("second person")),
            "{l}: {e}"
        );
        assert_eq!(status_of(s, 2).await, DocStatus::Draft, "{l}");

        // A second person approves: active, the previous retired, both events.
        let (done, doc) = s
            .approve_document_request(&req.id, &cy(), Some("reviewed"))
            .await
            .unwrap();
        assert_eq!(done.status, DocRequestStatus::Approved, "{l}");
        assert_eq!(done.decided_by.as_deref(), Some("cy"), "{l}");
        assert_eq!(doc.status, DocStatus::Active, "{l}");
        assert_eq!(doc.activated_by.as_deref(), Some("compliance:cy"), "{l}");
        assert_eq!(status_of(s, 1).await, DocStatus::Retired, "{l}");
        assert_eq!(
            kinds_of(s, "document.").await,
            vec![
                "document.seed",
                "document.draft",
                "document.activation_requested",
                "document.activation_approved",
                "document.activate"
            ],
            "{l}"
        );
        let act = s
            .audit_events(&AuditFilter {
                kind: Some("document.activate".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(act[0].payload["request_id"], req.id.as_str(), "{l}");
        assert_eq!(act[0].payload["requested_by"], "mo", "{l}");
        assert_eq!(act[0].actor, "compliance:cy", "{l}");
        // Decided once.
        let e = s
            .approve_document_request(&req.id, &DocActor::new("max", "manager"), None)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{l}: {e}");
        intact(s, l).await;
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_rejection_or_withdrawal_activates_nothing() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let l = ts.label;
        two_versions(s).await;
        let req = s
            .request_document_activation(DocKind::Policy, "b2b", 2, &mo(), "try it")
            .await
            .unwrap();
        let e = s
            .reject_document_request(&req.id, &cy(), "")
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid(_)),
            "{l}: a rejection says why"
        );
        let r = s
            .reject_document_request(&req.id, &cy(), "not this quarter")
            .await
            .unwrap();
        assert_eq!(r.status, DocRequestStatus::Rejected, "{l}");
        assert_eq!(status_of(s, 2).await, DocStatus::Draft, "{l}");
        assert_eq!(status_of(s, 1).await, DocStatus::Active, "{l}");
        // Rejected is final.
        assert!(
            s.approve_document_request(&req.id, &cy(), None)
                .await
                .is_err(),
            "{l}"
        );
        // The requester withdraws their own.
        let again = s
            .request_document_activation(DocKind::Policy, "b2b", 2, &mo(), "once more")
            .await
            .unwrap();
        let w = s
            .reject_document_request(&again.id, &mo(), "wrong draft")
            .await
            .unwrap();
        assert_eq!(w.status, DocRequestStatus::Withdrawn, "{l}");
        assert_eq!(status_of(s, 2).await, DocStatus::Draft, "{l}");
        let kinds = kinds_of(s, "document.activation").await;
        assert_eq!(
            kinds,
            vec![
                "document.activation_requested",
                "document.activation_rejected",
                "document.activation_requested",
                "document.activation_withdrawn"
            ],
            "{l}"
        );
        assert_eq!(
            s.document_requests(None, Some((DocKind::Policy, "b2b")))
                .await
                .unwrap()
                .len(),
            2,
            "{l}"
        );
        assert!(
            s.document_requests(Some(DocRequestStatus::Pending), None)
                .await
                .unwrap()
                .is_empty(),
            "{l}"
        );
        intact(s, l).await;
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn an_approval_made_against_a_version_no_longer_active_is_refused() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let l = ts.label;
        two_versions(s).await;
        s.create_document_version(DocKind::Policy, "b2b", "id = 'b2b' # v3", "mo", None)
            .await
            .unwrap();
        let req = s
            .request_document_activation(DocKind::Policy, "b2b", 2, &mo(), "v2")
            .await
            .unwrap();
        // Meanwhile version 3 became active another way.
        s.activate_document(DocKind::Policy, "b2b", 3, "manager:mo")
            .await
            .unwrap();
        let e = s
            .approve_document_request(&req.id, &cy(), None)
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Conflict(ref m) if m.contains("active now")),
            "{l}: {e}"
        );
        assert_eq!(status_of(s, 3).await, DocStatus::Active, "{l}");
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_rollback_is_a_request_unless_it_is_an_emergency() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let l = ts.label;
        two_versions(s).await;
        // Nothing to roll back to while version 1 was never replaced.
        assert!(matches!(
            s.request_document_rollback(DocKind::Policy, "b2b", &mo(), "undo")
                .await
                .unwrap_err(),
            StoreError::Conflict(_)
        ));
        let req = s
            .request_document_activation(DocKind::Policy, "b2b", 2, &mo(), "v2")
            .await
            .unwrap();
        s.approve_document_request(&req.id, &cy(), None)
            .await
            .unwrap();
        assert_eq!(
            s.previous_document_version(DocKind::Policy, "b2b")
                .await
                .unwrap(),
            Some(1),
            "{l}"
        );

        // With four eyes: a request for version 1, marked as a rollback.
        let rb = s
            .request_document_rollback(DocKind::Policy, "b2b", &mo(), "v2 denies too much")
            .await
            .unwrap();
        assert_eq!(
            (rb.version, rb.rollback, rb.from_version),
            (1, true, Some(2)),
            "{l}"
        );
        assert_eq!(status_of(s, 2).await, DocStatus::Active, "{l}: not yet");
        assert!(
            s.approve_document_request(&rb.id, &mo(), None)
                .await
                .is_err(),
            "{l}: not by its requester"
        );
        s.approve_document_request(&rb.id, &cy(), Some("agreed"))
            .await
            .unwrap();
        assert_eq!(status_of(s, 1).await, DocStatus::Active, "{l}");
        assert_eq!(status_of(s, 2).await, DocStatus::Retired, "{l}");

        // Emergency: at once, by one person, with the flag and the reason.
        let e = s
            .rollback_document_emergency(DocKind::Policy, "b2b", 2, &mo(), " ")
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid(_)),
            "{l}: a reason is required"
        );
        let e = s
            .rollback_document_emergency(DocKind::Policy, "b2b", 1, &mo(), "x")
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Conflict(_)),
            "{l}: 1 is not the previous one"
        );
        let doc = s
            .rollback_document_emergency(DocKind::Policy, "b2b", 2, &mo(), "v1 sends at night")
            .await
            .unwrap();
        assert_eq!(doc.version, 2, "{l}");
        assert_eq!(status_of(s, 2).await, DocStatus::Active, "{l}");
        let events = s
            .audit_events(&AuditFilter {
                actor: Some("manager:mo".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let last: Vec<(&str, &serde_json::Value)> = events
            .iter()
            .rev()
            .take(2)
            .map(|e| (e.kind.as_str(), &e.payload))
            .collect();
        assert_eq!(last[0].0, "document.activate", "{l}");
        assert_eq!(last[0].1["emergency"], true, "{l}");
        assert_eq!(last[0].1["reason"], "v1 sends at night", "{l}");
        assert_eq!(last[1].0, "document.rollback_emergency", "{l}");
        assert_eq!(last[1].1["from_version"], 1, "{l}");
        intact(s, l).await;
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn the_database_refuses_an_approval_by_the_requester_even_around_the_store() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let l = ts.label;
        two_versions(s).await;
        let req = s
            .request_document_activation(DocKind::Policy, "b2b", 2, &mo(), "v2")
            .await
            .unwrap();
        let r = raw_execute(
            s,
            &format!(
                "UPDATE document_requests SET status = 'approved', decided_by = 'mo' WHERE id = '{}'",
                req.id
            ),
        )
        .await;
        assert!(r.is_err(), "{l}: the CHECK constraint refuses it");
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn an_activation_naming_a_request_nobody_else_approved_is_reported() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let l = ts.label;
        two_versions(s).await;
        // An activation event that claims a request, written without its approval.
        let mut tx = s.begin().await.unwrap();
        tx.audit_append(argent_store::NewAuditEvent {
            run_id: None,
            customer_id: None,
            actor: "manager:mo".into(),
            kind: "document.activate".into(),
            payload: serde_json::json!({
                "kind": "policy",
                "name": "b2b",
                "version": 2,
                "sha256": argent_store::body_sha256("id = 'b2b' # v2"),
                "request_id": "dr-forged",
            }),
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        raw_execute(
            s,
            "UPDATE documents SET status = 'retired' WHERE kind = 'policy' AND name = 'b2b' AND version = 1",
        )
        .await
        .unwrap();
        raw_execute(
            s,
            "UPDATE documents SET status = 'active' WHERE kind = 'policy' AND name = 'b2b' AND version = 2",
        )
        .await
        .unwrap();
        let problems = s.document_problems().await.unwrap();
        assert_eq!(problems.len(), 1, "{l}: {problems:?}");
        assert!(
            problems[0]
                .1
                .contains("no document.activation_approved event approves it"),
            "{l}: {problems:?}"
        );
        assert!(matches!(
            s.active_documents().await.unwrap_err(),
            StoreError::Tampered(_)
        ));
        ts.cleanup().await;
    }
}
