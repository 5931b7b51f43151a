#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The approval workbench's filters on both backends (SQLite, and PostgreSQL when
//! ARGENT_TEST_POSTGRES_URL is set): each facet narrows the queue, search reads names,
//! ids, invoice numbers and senders, "next" follows queue order under a filter, and
//! migration 0019's backfill gives items queued before it the same facets.

use argent_store::testkit::{TestStore, raw_execute};
use argent_store::{ApprovalStatus, NewApproval, QueueFilter, Store};
use serde_json::json;

#[allow(clippy::too_many_arguments)]
fn item(
    id: &str,
    customer: &str,
    name: &str,
    tool: &str,
    segment: &str,
    jurisdiction: &str,
    rules: &[&str],
    roles: &str,
    amount: i64,
    currency: &str,
    priority: i64,
) -> NewApproval {
    NewApproval {
        id: id.into(),
        call_id: format!("call-{id}"),
        run_id: format!("run-{id}"),
        customer_id: customer.into(),
        tool: tool.into(),
        action: json!({"customer_id": customer}),
        decision: json!({"outcome": "needs_approval", "rules": rules.iter().map(|r| json!({"id": r, "outcome": "needs_approval", "message": "m", "citation": "c", "approvers": ["collector"]})).collect::<Vec<_>>()}),
        context: json!({
            "customer": {"id": customer, "name": name, "jurisdiction": jurisdiction},
            "segment": segment,
            "invoices": [{"number": format!("INV-{customer}-1")}],
            "trigger": {"kind": "inbound", "from": format!("{}@example.com", name.to_lowercase().replace(' ', "."))},
        }),
        priority,
        amount_minor: amount,
        currency: currency.into(),
        required_role: roles.into(),
        bundle_of: None,
    }
}

async fn seed(store: &Store) {
    let items = [
        item(
            "A1",
            "C-1",
            "Ann Smith",
            "propose_plan",
            "high",
            "us-consumer",
            &["us.plan.high-risk"],
            "collector,manager",
            150_000,
            "USD",
            9,
        ),
        item(
            "A2",
            "C-2",
            "Bo Jones",
            "send_email",
            "medium",
            "uk-consumer",
            &["uk.tone"],
            "manager",
            0,
            "",
            7,
        ),
        item(
            "A3",
            "C-3",
            "Cy Corp",
            "log_promise",
            "low",
            "b2b",
            &["b2b.promise-large", "b2b.x"],
            "collector",
            90_000,
            "EUR",
            5,
        ),
        item(
            "A4",
            "C-4",
            "Di 50%_Off",
            "propose_plan",
            "high",
            "us-consumer",
            &["us.plan.high-risk.ceiling"],
            "manager",
            300_000,
            "USD",
            3,
        ),
        item(
            "A5",
            "C-1",
            "Ann Smith",
            "send_email",
            "high",
            "us-consumer",
            &["engine.held-with-action"],
            "collector",
            0,
            "",
            1,
        ),
    ];
    let mut tx = store.begin().await.unwrap();
    for a in &items {
        tx.insert_approval(a).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn ids(store: &Store, f: &QueueFilter) -> Vec<String> {
    let page = store.queue_page(f, 50, 0).await.unwrap();
    assert_eq!(
        store.queue_count(f).await.unwrap(),
        page.len() as i64,
        "count and page agree for {f:?}"
    );
    page.into_iter().map(|i| i.id).collect()
}

#[tokio::test]
async fn every_facet_narrows_the_queue_on_both_backends() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        seed(store).await;
        let all = QueueFilter::default();
        assert_eq!(
            ids(store, &all).await,
            ["A1", "A2", "A3", "A4", "A5"],
            "{label}"
        );
        let f = |g: fn(&mut QueueFilter)| {
            let mut q = QueueFilter::default();
            g(&mut q);
            q
        };
        let cases: Vec<(QueueFilter, Vec<&str>)> = vec![
            (
                f(|q| q.approvable_by = Some("collector".into())),
                vec!["A1", "A3", "A5"],
            ),
            (
                f(|q| q.approvable_by = Some("manager".into())),
                vec!["A1", "A2", "A4"],
            ),
            (
                f(|q| q.tool = Some("propose_plan".into())),
                vec!["A1", "A4"],
            ),
            // A whole rule id, not a prefix of another.
            (f(|q| q.rule = Some("us.plan.high-risk".into())), vec!["A1"]),
            (f(|q| q.rule = Some("b2b.x".into())), vec!["A3"]),
            (
                f(|q| q.segment = Some("high".into())),
                vec!["A1", "A4", "A5"],
            ),
            (f(|q| q.jurisdiction = Some("b2b".into())), vec!["A3"]),
            (f(|q| q.currency = Some("USD".into())), vec!["A1", "A4"]),
            (
                f(|q| {
                    q.min_amount = Some(100_000);
                    q.max_amount = Some(200_000);
                }),
                vec!["A1"],
            ),
            // Search: name (any case), customer id, invoice number, sender.
            (f(|q| q.search = Some("ann SMITH".into())), vec!["A1", "A5"]),
            (f(|q| q.search = Some("inv-c-3".into())), vec!["A3"]),
            (f(|q| q.search = Some("bo.jones@".into())), vec!["A2"]),
            // LIKE's wildcards are matched literally.
            (f(|q| q.search = Some("50%_".into())), vec!["A4"]),
            (f(|q| q.search = Some("%".into())), vec!["A4"]),
            (
                f(|q| {
                    q.segment = Some("high".into());
                    q.approvable_by = Some("collector".into());
                    q.tool = Some("send_email".into());
                }),
                vec!["A5"],
            ),
            (f(|q| q.status = Some(ApprovalStatus::Approved)), vec![]),
        ];
        for (filter, want) in &cases {
            assert_eq!(&ids(store, filter).await, want, "{label}: {filter:?}");
        }
        // Older than: everything was queued just now.
        let past = chrono::Utc::now() - chrono::Duration::hours(1);
        let old = QueueFilter {
            queued_before: Some(past),
            ..QueueFilter::default()
        };
        assert!(ids(store, &old).await.is_empty(), "{label}");

        // Next under a filter, in queue order; the first when the item is not there.
        let high = QueueFilter {
            segment: Some("high".into()),
            ..QueueFilter::default()
        };
        let next = |id: &'static str| {
            let high = high.clone();
            async move { store.queue_next(&high, id).await.unwrap().map(|i| i.id) }
        };
        assert_eq!(next("A1").await.as_deref(), Some("A4"), "{label}");
        assert_eq!(next("A4").await.as_deref(), Some("A5"), "{label}");
        assert_eq!(next("A5").await, None, "{label}");
        assert_eq!(
            next("A2").await.as_deref(),
            Some("A4"),
            "{label}: after A2's place"
        );
        assert_eq!(next("nope").await.as_deref(), Some("A1"), "{label}");
        // Previous: the mirror image.
        let prev = |id: &'static str| {
            let high = high.clone();
            async move { store.queue_prev(&high, id).await.unwrap().map(|i| i.id) }
        };
        assert_eq!(prev("A5").await.as_deref(), Some("A4"), "{label}");
        assert_eq!(prev("A4").await.as_deref(), Some("A1"), "{label}");
        assert_eq!(prev("A1").await, None, "{label}");
        assert_eq!(
            prev("A2").await.as_deref(),
            Some("A1"),
            "{label}: before A2's place"
        );
        assert_eq!(prev("nope").await.as_deref(), Some("A5"), "{label}");
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn the_migration_backfills_items_queued_before_it() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        seed(store).await;
        raw_execute(
            store,
            "UPDATE approvals SET segment = '', jurisdiction = '', rule_ids = '', search = ''",
        )
        .await
        .unwrap();
        let high = QueueFilter {
            segment: Some("high".into()),
            ..QueueFilter::default()
        };
        assert!(ids(store, &high).await.is_empty(), "{label}: facets wiped");
        let migration = match label {
            "postgres" => include_str!("../../../migrations/postgres/0019_queue_facets.sql"),
            _ => include_str!("../../../migrations/sqlite/0019_queue_facets.sql"),
        };
        let update = &migration[migration.find("UPDATE approvals").unwrap()..];
        raw_execute(store, update).await.unwrap();
        assert_eq!(ids(store, &high).await, ["A1", "A4", "A5"], "{label}");
        let rule = QueueFilter {
            rule: Some("b2b.x".into()),
            ..QueueFilter::default()
        };
        assert_eq!(ids(store, &rule).await, ["A3"], "{label}");
        let search = QueueFilter {
            search: Some("bo.jones@example.com".into()),
            ..QueueFilter::default()
        };
        assert_eq!(ids(store, &search).await, ["A2"], "{label}");
        let search = QueueFilter {
            search: Some("inv-c-3-1".into()),
            ..QueueFilter::default()
        };
        assert_eq!(ids(store, &search).await, ["A3"], "{label}");
        ts.cleanup().await;
    }
}
