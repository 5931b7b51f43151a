#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! A customer's thread on both backends (SQLite, and PostgreSQL when
//! ARGENT_TEST_POSTGRES_URL is set): the messages the customer sent (from the runs they
//! started, and received mail that started none) and the emails we wrote, oldest first,
//! each once, and no other customer's.

use chrono::{DateTime, Utc};
use serde_json::json;

use argent_store::mail_in::{InboundOutcome, NewInbound};
use argent_store::testkit::{TestStore, two_consumer_portfolio};
use argent_store::{Direction, OutboxEmail, RunRecord, RunStatus};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn run(id: &str, customer: &str, trigger: serde_json::Value, created: &str) -> RunRecord {
    RunRecord {
        id: id.into(),
        customer_id: customer.into(),
        trigger,
        status: RunStatus::Finished,
        step: 1,
        tokens: 0,
        state: json!({"messages": []}),
        model: "offline".into(),
        prompt_version: "p1".into(),
        policy_version: "v1".into(),
        created_at: at(created),
        updated_at: at(created),
        lease_owner: None,
        lease_until: None,
    }
}

fn inbound(at_: &str, body: &str) -> serde_json::Value {
    json!({"kind": "inbound", "from": "ann@mail.example", "subject": "My account", "body": body, "received_at": at_})
}

#[tokio::test]
async fn a_customers_thread_is_every_message_once_oldest_first() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        store
            .import_portfolio(&two_consumer_portfolio(), "t")
            .await
            .unwrap();
        let runs = [
            run(
                "R1",
                "C-ANN",
                inbound("2026-11-01T09:00:00Z", "Can I pay later?"),
                "2026-11-01T09:00:01Z",
            ),
            run(
                "R2",
                "C-ANN",
                json!({"kind": "step", "step": "overdue_notice"}),
                "2026-11-05T10:00:00Z",
            ),
            run(
                "R3",
                "C-ANN",
                inbound("2026-11-20T18:00:00Z", "Could I get 20% off?"),
                "2026-11-20T18:00:01Z",
            ),
            run(
                "R9",
                "C-BO",
                inbound("2026-11-10T12:00:00Z", "Bo's message"),
                "2026-11-10T12:00:01Z",
            ),
        ];
        for r in &runs {
            store.create_run(r).await.unwrap();
        }
        // Received mail: one that started R3 (shown once), an out-of-office that started
        // nothing, and one still waiting to be processed (no customer yet: not shown).
        for (id, key) in [("IN-3", "k3"), ("IN-OOO", "kooo"), ("IN-NEW", "knew")] {
            assert!(
                store
                    .insert_inbound_row(&NewInbound {
                        id: id.into(),
                        dedupe_key: key.into(),
                        message_id: None,
                        source: "webhook".into(),
                        raw: b"Subject: x\r\n\r\nhello\r\n".to_vec(),
                        raw_sha256: format!("sha-{key}"),
                        received_at: at("2026-11-06T08:00:00Z"),
                    })
                    .await
                    .unwrap()
            );
        }
        let mut tx = store.begin().await.unwrap();
        for (id, run, kind) in [
            ("IN-3", Some("R3"), "human"),
            ("IN-OOO", None, "out_of_office"),
        ] {
            tx.settle_inbound(
                id,
                "new",
                &InboundOutcome {
                    status: "processed".into(),
                    customer_id: Some("C-ANN".into()),
                    from_addr: Some("ann@mail.example".into()),
                    subject: Some("Re: your account".into()),
                    kind: Some(kind.into()),
                    matched_by: Some("thread".into()),
                    run_id: run.map(str::to_string),
                    processed_at: at("2026-11-06T08:00:01Z"),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        for (id, customer, created) in [
            ("E1", "C-ANN", "2026-11-05T10:00:05Z"),
            ("E2", "C-ANN", "2026-11-20T18:00:05Z"),
            ("E9", "C-BO", "2026-11-10T12:00:05Z"),
        ] {
            assert!(
                tx.enqueue_email(&OutboxEmail {
                    id: id.into(),
                    call_id: format!("call-{id}"),
                    customer_id: customer.into(),
                    to_addr: "ann@mail.example".into(),
                    subject: format!("About your account ({id})"),
                    body: format!("Dear customer ({id})"),
                    created_at: at(created),
                    status: "pending".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
            );
        }
        tx.commit().await.unwrap();

        let thread = store.customer_thread("C-ANN").await.unwrap();
        let got: Vec<(&str, &str, Direction)> = thread
            .iter()
            .map(|m| (m.source.as_str(), m.source_id.as_str(), m.direction))
            .collect();
        assert_eq!(
            got,
            [
                ("runs", "R1", Direction::Inbound),
                ("outbox", "E1", Direction::Outbound),
                ("inbound_mail", "IN-OOO", Direction::Inbound),
                ("runs", "R3", Direction::Inbound),
                ("outbox", "E2", Direction::Outbound),
            ],
            "{label}"
        );
        assert_eq!(
            thread[0].body.as_deref(),
            Some("Can I pay later?"),
            "{label}"
        );
        assert_eq!(thread[0].at, at("2026-11-01T09:00:00Z"), "{label}");
        assert_eq!(
            thread[1].body.as_deref(),
            Some("Dear customer (E1)"),
            "{label}"
        );
        assert_eq!(thread[1].status, "pending", "{label}");
        assert_eq!(thread[2].status, "out_of_office", "{label}");
        assert_eq!(
            thread[2].body, None,
            "{label}: its text is in the raw message"
        );
        assert_eq!(
            store.inbound_raw("IN-OOO").await.unwrap(),
            b"Subject: x\r\n\r\nhello\r\n",
            "{label}"
        );
        let bo = store.customer_thread("C-BO").await.unwrap();
        assert_eq!(bo.len(), 2, "{label}: {bo:?}");
        assert!(store.customer_thread("C-NOBODY").await.unwrap().is_empty());
        ts.cleanup().await;
    }
}
