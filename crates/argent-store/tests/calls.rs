#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Conformance (SQLite, and PostgreSQL when ARGENT_TEST_POSTGRES_URL is set): the dispute
//! lifecycle moved along with audit events and conditional on the current status; call
//! tasks; logged telephone attempts and conversations in the contact log.

use chrono::{DateTime, Utc};

use argent_core::{Case, CaseKind, CaseStatus};
use argent_store::testkit::{TestStore, two_consumer_portfolio};
use argent_store::{AuditFilter, CallTask, CallTaskStatus, Store, StoreError};

async fn on_every_backend<F, Fut>(test: F)
where
    F: Fn(Store, &'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for ts in TestStore::all().await.expect("open test stores") {
        test(ts.store.clone(), ts.label).await;
        ts.cleanup().await;
    }
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn case(id: &str, kind: CaseKind) -> Case {
    Case {
        id: id.into(),
        customer_id: "C-ANN".into(),
        kind,
        status: CaseStatus::Open,
        invoice_numbers: vec!["INV-ANN-1".into()],
        disputed_amount: None,
        summary: "says the goods never arrived".into(),
        opened_at: at("2026-11-02T10:00:00Z"),
    }
}

async fn kinds(store: &Store, customer: &str) -> Vec<String> {
    store
        .audit_events(&AuditFilter {
            customer_id: Some(customer.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test]
async fn a_dispute_moves_open_verification_sent_resolved_with_audit_events() {
    on_every_backend(|store, label| async move {
        store
            .import_portfolio(&two_consumer_portfolio(), "t")
            .await
            .unwrap();
        store
            .insert_case(&case("K1", CaseKind::Dispute))
            .await
            .unwrap();
        // Resolving before the verification is refused, and nothing changes.
        let e = store
            .advance_case("K1", CaseStatus::Resolved, "carol", Some("paid?"))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("verification")),
            "{label}: {e}"
        );
        assert_eq!(store.case("K1").await.unwrap().status, CaseStatus::Open);
        let c = store
            .advance_case(
                "K1",
                CaseStatus::VerificationSent,
                "carol",
                Some("proof of delivery mailed"),
            )
            .await
            .unwrap();
        assert_eq!(c.status, CaseStatus::VerificationSent, "{label}");
        assert_eq!(
            store.case("K1").await.unwrap().status,
            CaseStatus::VerificationSent
        );
        // The account the agent loads sees it.
        let rec = store.account_records("C-ANN").await.unwrap();
        assert_eq!(rec.cases[0].status, CaseStatus::VerificationSent, "{label}");
        // Twice is refused.
        let e = store
            .advance_case("K1", CaseStatus::VerificationSent, "carol", None)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{label}: {e}");
        store
            .advance_case(
                "K1",
                CaseStatus::Resolved,
                "dave",
                Some("customer accepted"),
            )
            .await
            .unwrap();
        // Closed for good.
        let e = store
            .advance_case("K1", CaseStatus::Upheld, "dave", None)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{label}: {e}");
        assert_eq!(
            kinds(&store, "C-ANN").await,
            vec!["case.verification_sent", "case.resolved"],
            "{label}"
        );
        let events = store
            .audit_events(&AuditFilter {
                kind: Some("case.verification_sent".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(events[0].actor, "carol", "{label}");
        assert_eq!(events[0].payload["from"], "open", "{label}");
        assert_eq!(
            events[0].payload["note"], "proof of delivery mailed",
            "{label}"
        );
        assert!(
            matches!(
                store.audit_verify().await.unwrap(),
                argent_store::AuditVerification::Intact { .. }
            ),
            "{label}"
        );
        // Unknown cases are NotFound.
        let e = store
            .advance_case("NOPE", CaseStatus::Resolved, "dave", None)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)), "{label}: {e}");
    })
    .await;
}

#[tokio::test]
async fn an_upheld_dispute_and_other_kinds_follow_their_lifecycles() {
    on_every_backend(|store, label| async move {
        store
            .import_portfolio(&two_consumer_portfolio(), "t")
            .await
            .unwrap();
        store
            .insert_case(&case("K2", CaseKind::Dispute))
            .await
            .unwrap();
        store
            .insert_case(&case("K3", CaseKind::Hardship))
            .await
            .unwrap();
        let c = store
            .advance_case(
                "K2",
                CaseStatus::Upheld,
                "carol",
                Some("credit note issued"),
            )
            .await
            .unwrap();
        assert!(
            c.pauses("INV-ANN-1"),
            "{label}: an upheld dispute never resumes"
        );
        let e = store
            .advance_case("K3", CaseStatus::VerificationSent, "carol", None)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{label}: {e}");
        store
            .advance_case("K3", CaseStatus::Resolved, "carol", None)
            .await
            .unwrap();
        assert_eq!(
            kinds(&store, "C-ANN").await,
            vec!["case.upheld", "case.resolved"],
            "{label}"
        );
    })
    .await;
}

#[tokio::test]
async fn of_two_concurrent_steps_from_one_status_exactly_one_wins() {
    on_every_backend(|store, label| async move {
        store
            .import_portfolio(&two_consumer_portfolio(), "t")
            .await
            .unwrap();
        store
            .insert_case(&case("K4", CaseKind::Dispute))
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            store.advance_case("K4", CaseStatus::VerificationSent, "a", None),
            store.advance_case("K4", CaseStatus::VerificationSent, "b", None),
        );
        let wins = [a.is_ok(), b.is_ok()].iter().filter(|x| **x).count();
        assert_eq!(wins, 1, "{label}: {a:?} {b:?}");
        for r in [a, b] {
            if let Err(e) = r {
                assert!(
                    matches!(e, StoreError::Conflict(_) | StoreError::Invalid(_)),
                    "{label}: {e}"
                );
            }
        }
        assert_eq!(kinds(&store, "C-ANN").await.len(), 1, "{label}");
    })
    .await;
}

#[tokio::test]
async fn call_tasks_and_logged_calls_feed_the_contact_log() {
    on_every_backend(|store, label| async move {
        store
            .import_portfolio(&two_consumer_portfolio(), "t")
            .await
            .unwrap();
        let task = CallTask {
            id: "CALL-c1".into(),
            call_id: "c1".into(),
            customer_id: "C-ANN".into(),
            reason: "no reply to two emails".into(),
            script: "This is a debt collector calling about your account.".into(),
            not_before: Some(at("2026-11-03T15:00:00Z")),
            status: CallTaskStatus::Open,
            created_at: at("2026-11-02T10:00:00.123456Z"),
            done_at: None,
        };
        let mut tx = store.begin().await.unwrap();
        assert!(tx.insert_call_task(&task).await.unwrap(), "{label}");
        // Idempotent per tool call.
        assert!(!tx.insert_call_task(&task).await.unwrap(), "{label}");
        tx.commit().await.unwrap();
        assert_eq!(
            store.call_tasks(Some("C-ANN"), true).await.unwrap(),
            vec![task.clone()],
            "{label}"
        );
        assert!(
            store
                .call_tasks(Some("C-BO"), false)
                .await
                .unwrap()
                .is_empty()
        );

        store
            .log_call(
                "log-1",
                "C-ANN",
                at("2026-11-03T15:05:00Z"),
                false,
                None,
                "carol",
                Some("voicemail"),
            )
            .await
            .unwrap();
        store
            .log_call(
                "log-2",
                "C-ANN",
                at("2026-11-03T16:00:00Z"),
                true,
                Some("CALL-c1"),
                "carol",
                Some("agreed to pay Friday"),
            )
            .await
            .unwrap();
        // The same entry again logs nothing more in the contact log.
        store
            .log_call(
                "log-1",
                "C-ANN",
                at("2026-11-03T15:05:00Z"),
                false,
                None,
                "carol",
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            store.contacts("C-ANN").await.unwrap(),
            vec![
                (at("2026-11-03T15:05:00Z"), "phone".to_string(), false),
                (at("2026-11-03T16:00:00Z"), "phone".to_string(), true),
            ],
            "{label}"
        );
        assert_eq!(
            store.account_records("C-ANN").await.unwrap().contacts,
            store.contacts("C-ANN").await.unwrap(),
            "{label}"
        );
        // The task is done; answering it again is NotFound, and nothing of that is kept.
        let tasks = store.call_tasks(Some("C-ANN"), false).await.unwrap();
        assert_eq!(tasks[0].status, CallTaskStatus::Done, "{label}");
        assert_eq!(
            tasks[0].done_at,
            Some(at("2026-11-03T16:00:00Z")),
            "{label}"
        );
        assert!(store.call_tasks(None, true).await.unwrap().is_empty());
        let e = store
            .log_call(
                "log-3",
                "C-ANN",
                at("2026-11-04T16:00:00Z"),
                true,
                Some("CALL-c1"),
                "carol",
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)), "{label}: {e}");
        assert_eq!(store.contacts("C-ANN").await.unwrap().len(), 2, "{label}");
        // An unknown customer is NotFound.
        let e = store
            .log_call(
                "log-4",
                "NOBODY",
                at("2026-11-04T16:00:00Z"),
                false,
                None,
                "carol",
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)), "{label}: {e}");
        assert_eq!(
            kinds(&store, "C-ANN").await,
            vec!["call.logged", "call.logged", "call.logged"],
            "{label}"
        );
    })
    .await;
}
