//! SMTP delivery records (migration 0016): one open attempt per email, attempts committed
//! before sending, their conclusions, legacy emails without a Message-ID, rate-limit
//! counts. On SQLite, and on PostgreSQL too when ARGENT_TEST_POSTGRES_URL is set.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use argent_core::demo::{DemoConfig, generate};
use argent_store::testkit::TestStore;
use argent_store::{AttemptOutcome, OutboxEmail, StoreError};
use chrono::{DateTime, Duration, Utc};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn email(id: &str, customer: &str, message_id: Option<&str>) -> OutboxEmail {
    OutboxEmail {
        id: id.into(),
        call_id: format!("call-{id}"),
        customer_id: customer.into(),
        to_addr: "ap@example.com".into(),
        subject: "Your account".into(),
        body: "Dear customer".into(),
        created_at: at("2026-11-20T10:00:00Z"),
        status: "pending".into(),
        message_id: message_id.map(str::to_string),
        in_reply_to: Some("m1@cust.test".into()),
        references_hdr: Some("m0@cust.test m1@cust.test".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn attempts_are_exclusive_and_concluded_once() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let p = generate(&DemoConfig {
            customers: 1,
            ..Default::default()
        });
        store.import_portfolio(&p, "t").await.unwrap();
        let cust = p.customers[0].id.clone();
        let t0 = at("2026-11-20T10:00:00Z");
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.enqueue_email(&email("EM-1", &cust, Some("EM-1@a.test")))
                .await
                .unwrap()
        );
        assert!(tx.enqueue_email(&email("EM-2", &cust, None)).await.unwrap());
        tx.commit().await.unwrap();

        let stored = store.email("EM-1").await.unwrap();
        assert_eq!(stored.message_id.as_deref(), Some("EM-1@a.test"), "{label}");
        assert_eq!(
            stored.references_hdr.as_deref(),
            Some("m0@cust.test m1@cust.test"),
            "{label}"
        );
        assert_eq!(stored.attempts, 0, "{label}");

        // A legacy email gets its id once; an email without one cannot be attempted.
        let legacy = store.email("EM-2").await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.start_attempt(&legacy, "example.com", "w1", t0)
                .await
                .unwrap()
                .is_none(),
            "{label}"
        );
        assert!(
            tx.assign_message_id("EM-2", "EM-2@a.test").await.unwrap(),
            "{label}"
        );
        assert!(
            !tx.assign_message_id("EM-2", "other@a.test").await.unwrap(),
            "{label}"
        );
        tx.commit().await.unwrap();
        assert_eq!(
            store.email("EM-2").await.unwrap().message_id.as_deref(),
            Some("EM-2@a.test")
        );

        // Two deliverers read the same row: one attempt is recorded.
        let mut tx = store.begin().await.unwrap();
        let a = tx
            .start_attempt(&stored, "example.com", "w1", t0)
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.start_attempt(&stored, "example.com", "w2", t0)
                .await
                .unwrap()
                .is_none(),
            "{label}"
        );
        tx.commit().await.unwrap();
        assert_eq!(a.id, "EM-1#1", "{label}");
        // Open: not deliverable, counted for the rate limit, stale once its lease is over.
        let due: Vec<String> = store
            .deliverable_emails(t0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(due, vec!["EM-2".to_string()], "{label}");
        assert_eq!(
            store
                .attempts_to_domain_since("example.com", t0)
                .await
                .unwrap(),
            1,
            "{label}"
        );
        assert!(
            store.stale_attempts(t0).await.unwrap().is_empty(),
            "{label}"
        );
        assert_eq!(
            store
                .stale_attempts(t0 + Duration::seconds(1))
                .await
                .unwrap()
                .len(),
            1,
            "{label}"
        );

        // A 4xx: concluded retry, deferred.
        let mut tx = store.begin().await.unwrap();
        tx.conclude_attempt(&a.id, AttemptOutcome::Retry, "451 later", t0)
            .await
            .unwrap();
        tx.defer_email("EM-1", t0 + Duration::minutes(1), "451 later")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        // Reported by the write itself, or (queued on the SQLite writer) by the commit.
        let err = match tx
            .conclude_attempt(&a.id, AttemptOutcome::Sent, "250", t0)
            .await
        {
            Err(e) => {
                tx.rollback().await.unwrap();
                e
            }
            Ok(()) => tx.commit().await.unwrap_err(),
        };
        assert!(
            matches!(err, StoreError::Conflict(_)),
            "{label}: concluded twice: {err}"
        );
        let e1 = store.email("EM-1").await.unwrap();
        assert_eq!(
            (e1.attempts, e1.last_error.as_deref()),
            (1, Some("451 later")),
            "{label}"
        );
        assert!(
            store
                .deliverable_emails(t0, 10)
                .await
                .unwrap()
                .iter()
                .all(|e| e.id != "EM-1"),
            "{label}"
        );
        let later = store
            .deliverable_emails(t0 + Duration::minutes(1), 10)
            .await
            .unwrap();
        assert!(later.iter().any(|e| e.id == "EM-1"), "{label}");

        // Attempt 2 is then marked uncertain; a collector sends it again, then it is sent.
        let mut tx = store.begin().await.unwrap();
        let b = tx
            .start_attempt(&e1, "example.com", "w1", t0)
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(b.attempt, 2, "{label}");
        let mut tx = store.begin().await.unwrap();
        tx.conclude_attempt(&b.id, AttemptOutcome::Uncertain, "died", t0)
            .await
            .unwrap();
        tx.end_email("EM-1", "uncertain", "died").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.emails_with_status("uncertain").await.unwrap().len(),
            1,
            "{label}"
        );
        let mut tx = store.begin().await.unwrap();
        tx.resolve_uncertain_email("EM-1", false, t0).await.unwrap();
        tx.commit().await.unwrap();
        let e1 = store.email("EM-1").await.unwrap();
        assert_eq!((e1.status.as_str(), e1.attempts), ("pending", 2), "{label}");
        let mut tx = store.begin().await.unwrap();
        let c = tx
            .start_attempt(&e1, "example.com", "w1", t0)
            .await
            .unwrap()
            .unwrap();
        tx.conclude_attempt(&c.id, AttemptOutcome::Sent, "250 ok", t0)
            .await
            .unwrap();
        tx.mark_email_sent("EM-1", t0).await.unwrap();
        tx.commit().await.unwrap();
        let outcomes: Vec<Option<String>> = store
            .outbox_attempts("EM-1")
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.outcome)
            .collect();
        assert_eq!(
            outcomes,
            vec![
                Some("retry".into()),
                Some("uncertain".into()),
                Some("sent".into())
            ],
            "{label}"
        );
        // A 5xx: failed, not pending any more.
        let e2 = store.email("EM-2").await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let d = tx
            .start_attempt(&e2, "example.com", "w1", t0)
            .await
            .unwrap()
            .unwrap();
        tx.conclude_attempt(&d.id, AttemptOutcome::Failed, "550 no such user", t0)
            .await
            .unwrap();
        tx.end_email("EM-2", "failed", "550 no such user")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.email("EM-2").await.unwrap().status,
            "failed",
            "{label}"
        );
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.end_email("EM-2", "sent", "x").await.is_err(),
            "{label}: not an end status"
        );
        drop(tx);
        assert_eq!(
            store
                .attempts_to_domain_since("example.com", t0)
                .await
                .unwrap(),
            4,
            "{label}"
        );
        ts.cleanup().await;
    }
}
