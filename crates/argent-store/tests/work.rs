#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Conformance (SQLite, and PostgreSQL when ARGENT_TEST_POSTGRES_URL is set): work items are
//! enqueued once per key whoever enqueues, claimed by one worker at a time, taken over
//! when a lease expires, and only moved on by the lease holder.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use argent_store::testkit::TestStore;
use argent_store::{NewWorkItem, StoreError, WorkFilter, WorkStatus, work_id};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn item(key: &str, customer: &str, due: DateTime<Utc>) -> NewWorkItem {
    NewWorkItem {
        kind: "procedure_step".into(),
        dedupe_key: key.into(),
        customer_id: customer.into(),
        payload: json!({"step": key}),
        due_at: due,
    }
}

#[tokio::test]
async fn enqueue_is_idempotent_across_concurrent_enqueuers() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let now = at("2026-03-02T09:00:00Z");
        let batch: Vec<NewWorkItem> = (0..30)
            .map(|i| {
                item(
                    &format!("C{i:02}|std|1|overdue|0"),
                    &format!("C{i:02}"),
                    now,
                )
            })
            .collect();
        // Two enqueuers on two connections (two "processes" on PostgreSQL; on SQLite a
        // second store over the same file), at once.
        let other = ts.reopen().await.unwrap();
        let (a, b) = tokio::join!(
            ts.store.enqueue_work(&batch, now),
            other.enqueue_work(&batch, now)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.len() + b.len(), 30, "{label}: each key inserted once");
        let all: HashSet<String> = a.iter().chain(b.iter()).cloned().collect();
        assert_eq!(all.len(), 30, "{label}");
        // Again later: nothing new.
        assert!(ts.store.enqueue_work(&batch, now).await.unwrap().is_empty());
        let listed = ts
            .store
            .work_items(&WorkFilter {
                status: Some(WorkStatus::Queued),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(listed.len(), 30, "{label}");
        let first = ts
            .store
            .work_item(&work_id("C00|std|1|overdue|0"))
            .await
            .unwrap();
        assert_eq!(first.customer_id, "C00");
        assert_eq!(first.payload, json!({"step": "C00|std|1|overdue|0"}));
        assert_eq!((first.attempts, first.status), (0, WorkStatus::Queued));
        // And again, many times over with new keys: an enqueuer that meets the other's
        // uncommitted row for the same key skips it (the id is derived from the key, so
        // the two rows clash on the id as well as on the key), never fails.
        for round in 0..20 {
            let more: Vec<NewWorkItem> = (0..30)
                .map(|i| item(&format!("R{round}|C{i:02}"), &format!("C{i:02}"), now))
                .collect();
            let (a, b) = tokio::join!(
                ts.store.enqueue_work(&more, now),
                other.enqueue_work(&more, now)
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(a.len() + b.len(), 30, "{label}: round {round}");
        }
        other.close().await;
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn claims_are_exclusive_due_only_and_expired_leases_are_taken_over() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let store = ts.store.clone();
        let now = at("2026-03-02T09:00:00Z");
        let mut batch: Vec<NewWorkItem> = (0..40)
            .map(|i| {
                item(
                    &format!("K{i:02}"),
                    &format!("C{i:02}"),
                    now - Duration::minutes(i),
                )
            })
            .collect();
        batch.push(item("FUTURE", "C99", now + Duration::hours(1)));
        store.enqueue_work(&batch, now).await.unwrap();

        let until = now + Duration::minutes(5);
        let mut tasks = Vec::new();
        for w in 0..4 {
            let s = if w % 2 == 0 {
                store.clone()
            } else {
                ts.reopen().await.unwrap()
            };
            tasks.push(tokio::spawn(async move {
                let owner = format!("worker{w}");
                let mut got = Vec::new();
                loop {
                    let batch = s.claim_work(&owner, now, until, 3, None).await.unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    for i in &batch {
                        assert_eq!(i.lease_owner.as_deref(), Some(owner.as_str()));
                        assert_eq!((i.status, i.attempts), (WorkStatus::Leased, 1));
                    }
                    got.extend(batch.into_iter().map(|i| (i.id, owner.clone())));
                }
                got
            }));
        }
        let mut seen = HashSet::new();
        let mut holder = std::collections::HashMap::new();
        for t in tasks {
            for (id, owner) in t.await.unwrap() {
                assert!(seen.insert(id.clone()), "{label}: {id} claimed twice");
                holder.insert(id, owner);
            }
        }
        assert_eq!(
            seen.len(),
            40,
            "{label}: every due item, not the future one"
        );
        assert!(!seen.contains(&work_id("FUTURE")));

        // Only the holder moves an item on.
        let k0 = work_id("K00");
        let owner = holder[&k0].clone();
        let mut tx = store.begin().await.unwrap();
        let err = tx
            .finish_work(&k0, "intruder", WorkStatus::Done, None, None, now)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{label}: {err}");
        tx.rollback().await.unwrap();
        assert!(
            !store
                .heartbeat_work(&k0, "intruder", until, now)
                .await
                .unwrap()
        );
        assert!(
            store
                .heartbeat_work(&k0, &owner, until + Duration::minutes(5), now)
                .await
                .unwrap()
        );
        let mut tx = store.begin().await.unwrap();
        tx.set_work_run(&k0, &owner, "run-1").await.unwrap();
        tx.finish_work(
            &k0,
            &owner,
            WorkStatus::Done,
            Some(&json!({"emails": 1})),
            None,
            now,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let done = store.work_item(&k0).await.unwrap();
        assert_eq!(done.status, WorkStatus::Done);
        assert_eq!(done.run_id.as_deref(), Some("run-1"));
        assert_eq!(done.result, Some(json!({"emails": 1})));
        assert_eq!((done.lease_owner, done.lease_until), (None, None));

        // Nothing is claimable until the leases expire; then they are taken over (K00 is
        // done and was heartbeaten, so it is not among them), with the attempt counted.
        assert!(
            store
                .claim_work("late", now, until, 100, None)
                .await
                .unwrap()
                .is_empty()
        );
        let later = until + Duration::seconds(1);
        let taken = store
            .claim_work("late", later, later + Duration::minutes(5), 100, None)
            .await
            .unwrap();
        assert_eq!(taken.len(), 39, "{label}: the 39 expired leases");
        assert!(
            taken
                .iter()
                .all(|i| i.id != k0 && i.id != work_id("FUTURE"))
        );
        let k1 = taken.iter().find(|i| i.id == work_id("K01")).unwrap();
        assert_eq!(k1.attempts, 2);
        // The worker that lost K01's lease cannot finish it.
        let lost = holder[&work_id("K01")].clone();
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.finish_work(&k1.id, &lost, WorkStatus::Done, None, None, later)
                .await
                .is_err()
        );
        tx.rollback().await.unwrap();
        // Release gives it back, due at once.
        assert!(store.release_work(&k1.id, "late", later).await.unwrap());
        let again = store
            .claim_work(
                "w2",
                later,
                later + Duration::minutes(5),
                10,
                Some(&["procedure_step"]),
            )
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, k1.id);
        assert!(
            store
                .claim_work("w3", later, later, 10, Some(&["other_kind"]))
                .await
                .unwrap()
                .is_empty()
        );
        // Finishing as queued is not an end.
        let mut tx = store.begin().await.unwrap();
        assert!(matches!(
            tx.finish_work(&k1.id, "w2", WorkStatus::Queued, None, None, later)
                .await,
            Err(StoreError::Invalid(_))
        ));
        tx.rollback().await.unwrap();
        // The future item becomes claimable at its due time (with the leases that have
        // expired by then).
        let due = now + Duration::hours(1);
        let future = store
            .claim_work("w4", due, due + Duration::minutes(5), 100, None)
            .await
            .unwrap();
        assert!(future.iter().any(|i| i.id == work_id("FUTURE")), "{label}");
        assert!(
            future.iter().all(|i| i.id != k0),
            "{label}: done stays done"
        );
        let counts = store.work_counts().await.unwrap();
        assert!(
            counts.contains(&(WorkStatus::Done, 1)),
            "{label}: {counts:?}"
        );
        ts.cleanup().await;
    }
}
