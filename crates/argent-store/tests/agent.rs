//! Conformance tests for the planner loop's persistence: transactions, the audit chain,
//! tool calls, the approval queue, the outbox, the contact log, runs and leases. Every test
//! runs on SQLite and, when ARGENT_TEST_POSTGRES_URL is set, on PostgreSQL too.

use std::collections::HashSet;
use std::sync::Arc;

use argent_core::CustomerFlags;
use argent_core::demo::{DemoConfig, generate};
use argent_store::testkit::{
    QueuedCall, TestStore, consumer_portfolio, raw_execute, seed_queue, staged_orphan_sql,
};
use argent_store::{
    ApprovalStatus, AuditFilter, AuditVerification, Backend, GENESIS_HASH, NewApproval,
    NewAuditEvent, OutboxEmail, RunRecord, RunStatus, Store, StoreError, ToolCallStatus,
    audit_to_csv, audit_to_jsonl,
};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn ev(customer: &str, run: &str, actor: &str, kind: &str, payload: Value) -> NewAuditEvent {
    NewAuditEvent {
        run_id: Some(run.into()),
        customer_id: Some(customer.into()),
        actor: actor.into(),
        kind: kind.into(),
        payload,
    }
}

async fn append_n(store: &Store, n: usize) -> Vec<argent_store::AuditEvent> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            store
                .audit_append(ev(
                    &format!("C{}", i % 3),
                    &format!("R{}", i % 2),
                    "agent",
                    "tool_call",
                    json!({"i": i, "marker": format!("TAMPER-ME-{i:04}"), "nested": {"b": 1, "a": [1, 2]}}),
                ))
                .await
                .expect("append"),
        );
    }
    out
}

fn broken_at(v: &AuditVerification) -> Option<i64> {
    match v {
        AuditVerification::Broken { seq, .. } => Some(*seq),
        AuditVerification::Intact { .. } => None,
    }
}

/// Lets a test play an attacker with write access to the database: switches the
/// append-only triggers off (PostgreSQL: as superuser, `DISABLE TRIGGER`; SQLite: drop them).
async fn disable_audit_triggers(store: &Store) {
    let sql = match store.backend() {
        Backend::Sqlite => {
            "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;"
        }
        Backend::Postgres => "ALTER TABLE audit_events DISABLE TRIGGER USER",
    };
    raw_execute(store, sql).await.expect("disable triggers");
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("RFC 3339 instant")
}

// ---------------------------------------------------------------------------------------
// Audit chain

#[tokio::test]
async fn audit_chain_verifies_after_many_appends() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        assert_eq!(
            store.audit_verify().await.unwrap(),
            AuditVerification::Intact {
                events: 0,
                head: GENESIS_HASH.into()
            },
            "{label}"
        );
        let written = append_n(store, 250).await;
        let got = store.audit_events(&AuditFilter::default()).await.unwrap();
        assert_eq!(got, written, "{label}: events read back exactly");
        assert_eq!(
            got.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=250).collect::<Vec<_>>(),
            "{label}"
        );
        assert_eq!(got[0].prev_hash, GENESIS_HASH, "{label}");
        for w in got.windows(2) {
            assert_eq!(w[1].prev_hash, w[0].hash, "{label}");
        }
        // The hash is SHA-256 over prev_hash + the canonical event (sorted keys, RFC 3339
        // microseconds), recomputable by anyone from the exported fields.
        let e = &got[0];
        let canonical = format!(
            r#"{{"actor":"agent","at":"{}","customer_id":"C0","kind":"tool_call","payload":{{"i":0,"marker":"TAMPER-ME-0000","nested":{{"a":[1,2],"b":1}}}},"run_id":"R0","seq":1}}"#,
            e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        );
        let want = hex::encode(Sha256::digest(format!("{GENESIS_HASH}{canonical}")));
        assert_eq!(e.hash, want, "{label}");
        assert_eq!(
            store.audit_verify().await.unwrap(),
            AuditVerification::Intact {
                events: 250,
                head: got[249].hash.clone()
            },
            "{label}"
        );
        ts.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_keep_one_unbroken_chain() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let mut stores = vec![ts.store.clone(), ts.store.clone()];
        stores.push(ts.reopen().await.unwrap());
        stores.push(ts.reopen().await.unwrap());
        let mut tasks = Vec::new();
        for (t, store) in stores.iter().enumerate() {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..30 {
                    if i % 3 == 0 {
                        // Appends inside a larger transaction interleave with the others.
                        let mut tx = store.begin().await.unwrap();
                        tx.record_tool_call(
                            &format!("call-{t}-{i}"),
                            "R",
                            "C",
                            "send_email",
                            "{}",
                            ToolCallStatus::Received,
                        )
                        .await
                        .unwrap();
                        tx.audit_append(ev(
                            "C",
                            "R",
                            &format!("task{t}"),
                            "tool_call",
                            json!({"i": i}),
                        ))
                        .await
                        .unwrap();
                        tx.commit().await.unwrap();
                    } else {
                        store
                            .audit_append(ev(
                                "C",
                                "R",
                                &format!("task{t}"),
                                "note",
                                json!({"i": i}),
                            ))
                            .await
                            .unwrap();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let events = ts
            .store
            .audit_events(&AuditFilter::default())
            .await
            .unwrap();
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=120).collect::<Vec<_>>(),
            "{label}: no gaps, no duplicates"
        );
        assert!(
            matches!(
                ts.store.audit_verify().await.unwrap(),
                AuditVerification::Intact { events: 120, .. }
            ),
            "{label}"
        );
        for s in &stores[2..] {
            s.close().await;
        }
        ts.cleanup().await;
    }
}

/// Transactions that append several events (non-ASCII text among them) around other
/// writes, from several stores at once: each one's events are stored together, in the order
/// appended, the chain verifies, and each event read back is the one hashed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_multi_event_transactions_keep_their_events_together_and_in_order() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let mut stores = vec![ts.store.clone(), ts.store.clone()];
        stores.push(ts.reopen().await.unwrap());
        stores.push(ts.reopen().await.unwrap());
        let mut tasks = Vec::new();
        for (t, store) in stores.iter().enumerate() {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20 {
                    let mut tx = store.begin().await.unwrap();
                    let run = format!("R{t}-{i}");
                    tx.audit_append(ev(
                        "C",
                        &run,
                        "agent",
                        "first",
                        json!({"n": 0, "text": "Zahlung fällig — 5 000 € «bitte»"}),
                    ))
                    .await
                    .unwrap();
                    tx.record_tool_call(
                        &format!("call-{t}-{i}"),
                        &run,
                        "C",
                        "send_email",
                        "{}",
                        ToolCallStatus::Received,
                    )
                    .await
                    .unwrap();
                    tx.audit_append_many(vec![
                        ev(
                            "C",
                            &run,
                            "agent",
                            "second",
                            json!({"n": 1, "quote": "a \"b\" \\ \u{0}"}),
                        ),
                        ev(
                            "C",
                            &run,
                            "agent",
                            "third",
                            json!({"n": 2, "rules": [{"id": "r.x"}]}),
                        ),
                    ])
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let events = ts
            .store
            .audit_events(&AuditFilter::default())
            .await
            .unwrap();
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=240).collect::<Vec<_>>(),
            "{label}: no gaps, no duplicates"
        );
        for triple in events.chunks(3) {
            let run = triple[0].run_id.clone();
            assert!(
                triple.iter().all(|e| e.run_id == run),
                "{label}: a transaction's events are adjacent: {triple:?}"
            );
            assert_eq!(
                triple.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
                ["first", "second", "third"],
                "{label}: in the order appended"
            );
            assert!(triple.iter().all(|e| e.hash_is_consistent()), "{label}");
        }
        assert_eq!(
            events[0].payload["text"], "Zahlung fällig — 5 000 € «bitte»",
            "{label}"
        );
        assert!(
            matches!(
                ts.store.audit_verify().await.unwrap(),
                AuditVerification::Intact { events: 240, .. }
            ),
            "{label}"
        );
        for s in &stores[2..] {
            s.close().await;
        }
        ts.cleanup().await;
    }
}

/// An event appended in a transaction while another store appends and commits first is
/// chained after that one: the chain has no fork and `Store::audit_append` returns the
/// event as stored.
#[tokio::test]
async fn an_append_committed_after_a_later_one_is_chained_on_it() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        if ts.store.backend() != Backend::Postgres {
            // SQLite: a transaction holds the write lock from its first statement, so the
            // other store's append would wait for it (covered in `tx`'s unit tests).
            ts.cleanup().await;
            continue;
        }
        let other = ts.reopen().await.unwrap();
        append_n(&ts.store, 2).await;
        let mut tx = ts.store.begin().await.unwrap();
        tx.audit_append(ev("C", "R", "agent", "slow", json!({})))
            .await
            .unwrap();
        let quick = other
            .audit_append(ev("C", "R", "agent", "quick", json!({})))
            .await
            .unwrap();
        assert_eq!(quick.seq, 3, "{label}");
        tx.commit().await.unwrap();
        let stored = ts
            .store
            .audit_events(&AuditFilter::default())
            .await
            .unwrap();
        assert_eq!(
            stored
                .iter()
                .map(|e| (e.seq, e.kind.as_str()))
                .collect::<Vec<_>>(),
            [
                (1, "tool_call"),
                (2, "tool_call"),
                (3, "quick"),
                (4, "slow")
            ],
            "{label}"
        );
        assert_eq!(stored[2], quick, "{label}: returned as stored");
        assert_eq!(stored[3].prev_hash, quick.hash, "{label}");
        assert!(
            matches!(
                ts.store.audit_verify().await.unwrap(),
                AuditVerification::Intact { events: 4, .. }
            ),
            "{label}"
        );
        other.close().await;
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn audit_filters_select_by_account_run_actor_kind_rule_and_time() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let t0 = Utc::now() - Duration::seconds(1);
        store
            .audit_append(ev("C1", "R1", "model", "model_call", json!({"tokens": 12})))
            .await
            .unwrap();
        store
            .audit_append(ev(
                "C1",
                "R1",
                "policy",
                "policy_decision",
                json!({"outcome": "deny", "rules": [{"id": "us.quiet_hours"}, {"id": "us.cease"}]}),
            ))
            .await
            .unwrap();
        store
            .audit_append(ev(
                "C2",
                "R2",
                "policy",
                "policy_decision",
                json!({"decision": {"rules": [{"id": "us.quiet-hours"}]}}),
            ))
            .await
            .unwrap();
        let mid = Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        store
            .audit_append(NewAuditEvent {
                run_id: None,
                customer_id: None,
                actor: "alice".into(),
                kind: "approval".into(),
                payload: json!({"note": "ok"}),
            })
            .await
            .unwrap();
        let seqs = |f: AuditFilter| async move {
            store
                .audit_events(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            seqs(AuditFilter {
                customer_id: Some("C1".into()),
                ..Default::default()
            })
            .await,
            vec![1, 2],
            "{label}"
        );
        assert_eq!(
            seqs(AuditFilter {
                run_id: Some("R2".into()),
                ..Default::default()
            })
            .await,
            vec![3],
            "{label}"
        );
        assert_eq!(
            seqs(AuditFilter {
                actor: Some("policy".into()),
                kind: Some("policy_decision".into()),
                ..Default::default()
            })
            .await,
            vec![2, 3],
            "{label}"
        );
        // Exact rule ids: `us.quiet_hours` is not `us.quiet-hours`, and no prefix matches.
        assert_eq!(
            seqs(AuditFilter {
                rule_id: Some("us.quiet_hours".into()),
                ..Default::default()
            })
            .await,
            vec![2],
            "{label}"
        );
        assert_eq!(
            seqs(AuditFilter {
                rule_id: Some("us.quiet-hours".into()),
                ..Default::default()
            })
            .await,
            vec![3],
            "{label}"
        );
        assert!(
            seqs(AuditFilter {
                rule_id: Some("us".into()),
                ..Default::default()
            })
            .await
            .is_empty(),
            "{label}"
        );
        assert_eq!(
            seqs(AuditFilter {
                since: Some(t0),
                until: Some(mid),
                ..Default::default()
            })
            .await,
            vec![1, 2, 3],
            "{label}"
        );
        assert_eq!(
            seqs(AuditFilter {
                since: Some(mid),
                ..Default::default()
            })
            .await,
            vec![4],
            "{label}"
        );
        assert_eq!(
            seqs(AuditFilter {
                limit: Some(2),
                offset: Some(1),
                ..Default::default()
            })
            .await,
            vec![2, 3],
            "{label}"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn audit_exports_jsonl_and_csv() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        append_n(store, 3).await;
        store
            .audit_append(ev(
                "C9",
                "R9",
                "bob",
                "approval",
                json!({"note": "line one\nline \"two\", with comma"}),
            ))
            .await
            .unwrap();
        let events = store.audit_events(&AuditFilter::default()).await.unwrap();
        let jsonl = audit_to_jsonl(&events);
        let back: Vec<argent_store::AuditEvent> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, events, "{label}");

        let csv = audit_to_csv(&events);
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let headers: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(
            headers,
            [
                "seq",
                "at",
                "run_id",
                "customer_id",
                "actor",
                "kind",
                "payload",
                "prev_hash",
                "hash"
            ],
            "{label}"
        );
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(rows.len(), 4, "{label}");
        let last = &rows[3];
        assert_eq!(&last[0], "4");
        assert_eq!(&last[4], "bob");
        let payload: Value = serde_json::from_str(&last[6]).unwrap();
        assert_eq!(payload, events[3].payload, "{label}");
        assert_eq!(&last[8], events[3].hash.as_str());
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn the_database_refuses_update_and_delete_of_audit_events() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        append_n(store, 3).await;
        for sql in [
            "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2",
            "DELETE FROM audit_events WHERE seq = 3",
            "DELETE FROM audit_events",
        ] {
            let err = raw_execute(store, sql).await.unwrap_err();
            assert!(
                err.to_string().contains("append-only"),
                "{label}: {sql}: {err}"
            );
        }
        if store.backend() == Backend::Postgres {
            let err = raw_execute(store, "TRUNCATE audit_events")
                .await
                .unwrap_err();
            assert!(err.to_string().contains("append-only"), "{label}: {err}");
        }
        // The head only moves forward and cannot be removed.
        assert!(
            raw_execute(store, "UPDATE audit_head SET seq = 1")
                .await
                .is_err(),
            "{label}"
        );
        assert!(
            raw_execute(store, "DELETE FROM audit_head").await.is_err(),
            "{label}"
        );
        assert!(
            matches!(
                store.audit_verify().await.unwrap(),
                AuditVerification::Intact { events: 3, .. }
            ),
            "{label}"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn verify_detects_a_single_changed_byte() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        append_n(&ts.store, 10).await;
        let target = b"TAMPER-ME-0006";
        let reopened = match ts.sqlite_path() {
            Some(path) => {
                // Flip one byte of event 7's payload inside the database file itself.
                raw_execute(&ts.store, "PRAGMA wal_checkpoint(TRUNCATE)")
                    .await
                    .unwrap();
                ts.store.close().await;
                let mut bytes = std::fs::read(path).unwrap();
                let hits: Vec<usize> = bytes
                    .windows(target.len())
                    .enumerate()
                    .filter(|(_, w)| *w == target)
                    .map(|(i, _)| i)
                    .collect();
                assert_eq!(hits.len(), 1, "the marker is stored once in the file");
                let last = hits[0] + target.len() - 1;
                bytes[last] = b'7';
                std::fs::write(path, &bytes).unwrap();
                Some(Store::open(&path.to_string_lossy()).await.unwrap())
            }
            None => {
                disable_audit_triggers(&ts.store).await;
                let n = raw_execute(
                    &ts.store,
                    "UPDATE audit_events SET canonical = replace(canonical, 'TAMPER-ME-0006', 'TAMPER-ME-0007') \
                     WHERE seq = 7",
                )
                .await
                .unwrap();
                assert_eq!(n, 1);
                None
            }
        };
        let store = reopened.as_ref().unwrap_or(&ts.store);
        let v = store.audit_verify().await.unwrap();
        assert_eq!(broken_at(&v), Some(7), "{label}: {v:?}");
        if let AuditVerification::Broken { reason, .. } = &v {
            assert!(reason.contains("altered"), "{label}: {reason}");
        }
        if let Some(s) = reopened {
            s.close().await;
        }
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn verify_detects_deleted_reordered_and_reindexed_rows() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        append_n(store, 8).await;
        disable_audit_triggers(store).await;

        // (a) Two rows' contents swapped (the rows reordered).
        raw_execute(
            store,
            "UPDATE audit_events SET seq = -3 WHERE seq = 3; \
             UPDATE audit_events SET seq = 3 WHERE seq = 4; \
             UPDATE audit_events SET seq = 4 WHERE seq = -3;",
        )
        .await
        .unwrap();
        let v = store.audit_verify().await.unwrap();
        assert_eq!(broken_at(&v), Some(3), "{label}: swapped: {v:?}");
        // Swap back: intact again.
        raw_execute(
            store,
            "UPDATE audit_events SET seq = -3 WHERE seq = 3; \
             UPDATE audit_events SET seq = 3 WHERE seq = 4; \
             UPDATE audit_events SET seq = 4 WHERE seq = -3;",
        )
        .await
        .unwrap();
        assert!(
            broken_at(&store.audit_verify().await.unwrap()).is_none(),
            "{label}"
        );

        // (b) An index column rewritten without touching the hashed text.
        raw_execute(
            store,
            "UPDATE audit_events SET customer_id = 'C7' WHERE seq = 2",
        )
        .await
        .unwrap();
        let v = store.audit_verify().await.unwrap();
        assert_eq!(broken_at(&v), Some(2), "{label}: reindexed: {v:?}");
        raw_execute(
            store,
            "UPDATE audit_events SET customer_id = 'C1' WHERE seq = 2",
        )
        .await
        .unwrap();
        assert!(
            broken_at(&store.audit_verify().await.unwrap()).is_none(),
            "{label}"
        );

        // (c) The last row deleted: the chain is whole but shorter than the head says.
        raw_execute(store, "DELETE FROM audit_events WHERE seq = 8")
            .await
            .unwrap();
        let v = store.audit_verify().await.unwrap();
        assert_eq!(broken_at(&v), Some(8), "{label}: tail deleted: {v:?}");

        // (d) A row in the middle deleted.
        raw_execute(store, "DELETE FROM audit_events WHERE seq = 5")
            .await
            .unwrap();
        let v = store.audit_verify().await.unwrap();
        assert_eq!(broken_at(&v), Some(5), "{label}: row deleted: {v:?}");
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_rolled_back_append_leaves_no_gap() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        append_n(store, 2).await;
        {
            let mut tx = store.begin().await.unwrap();
            tx.audit_append(ev("C", "R", "agent", "x", json!({})))
                .await
                .unwrap();
            // dropped: rolled back
        }
        let e = store
            .audit_append(ev("C", "R", "agent", "y", json!({})))
            .await
            .unwrap();
        assert_eq!(e.seq, 3, "{label}");
        assert!(
            matches!(
                store.audit_verify().await.unwrap(),
                AuditVerification::Intact { events: 3, .. }
            ),
            "{label}"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn appending_many_events_at_once_chains_like_one_by_one() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        append_n(store, 2).await;
        let mut tx = store.begin().await.unwrap();
        tx.audit_append_many(Vec::new()).await.unwrap();
        // More than one multi-row INSERT's worth.
        let many: Vec<NewAuditEvent> = (0..1201)
            .map(|i| {
                ev(
                    &format!("C{}", i % 5),
                    "R9",
                    "agent",
                    "policy_decision",
                    json!({"i": i, "rules": [{"id": format!("rule.{}", i % 3)}]}),
                )
            })
            .collect();
        tx.audit_append_many(many.clone()).await.unwrap();
        tx.commit().await.unwrap();
        let written = store
            .audit_events(&AuditFilter {
                run_id: Some("R9".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            written.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (3..=1203).collect::<Vec<_>>(),
            "{label}"
        );
        assert_eq!(
            written
                .iter()
                .map(|e| e.payload["i"].clone())
                .collect::<Vec<_>>(),
            many.iter()
                .map(|e| e.payload["i"].clone())
                .collect::<Vec<_>>(),
            "{label}: in the order given"
        );
        for w in written.windows(2) {
            assert_eq!(w[1].prev_hash, w[0].hash, "{label}: chained one by one");
        }
        let last = store
            .audit_append(ev("C", "R", "agent", "after", json!({})))
            .await
            .unwrap();
        assert_eq!(last.seq, 1204, "{label}");
        assert_eq!(last.prev_hash, written[1200].hash, "{label}");
        let by_rule = store
            .audit_events(&AuditFilter {
                rule_id: Some("rule.1".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by_rule.len(), 400, "{label}: rule ids indexed");
        // A rolled-back batch leaves no gap.
        {
            let mut tx = store.begin().await.unwrap();
            tx.audit_append_many(vec![ev("C", "R", "agent", "x", json!({})); 3])
                .await
                .unwrap();
        }
        assert_eq!(
            store.audit_verify().await.unwrap(),
            AuditVerification::Intact {
                events: 1204,
                head: last.hash.clone()
            },
            "{label}"
        );
        ts.cleanup().await;
    }
}

/// A transaction dropped half-way (an early `?` return) must not keep the database's write
/// lock: another process — here a second store on the same file — writes straight after,
/// and the first store's next transaction finds nothing of the dropped one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_transaction_frees_the_writer_for_everyone() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let other = ts.reopen().await.unwrap();
        for round in 0..3 {
            let mut tx = store.begin().await.unwrap();
            tx.insert_approval(&approval(
                &format!("D{round}"),
                &format!("dropped{round}"),
                1,
            ))
            .await
            .unwrap();
            tx.audit_append(ev("C", "R", "agent", "dropped", json!({})))
                .await
                .unwrap();
            drop(tx);
            let started = std::time::Instant::now();
            let mut tx = other.begin().await.unwrap();
            tx.insert_approval(&approval(&format!("K{round}"), &format!("kept{round}"), 1))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{label}: the other store waited {:?} for the lock",
                started.elapsed()
            );
            let mut tx = store.begin().await.unwrap();
            tx.audit_append(ev("C", "R", "agent", "kept", json!({})))
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let ids: HashSet<String> = store
            .approvals(None, 100, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(
            ids,
            ["K0", "K1", "K2"].map(String::from).into_iter().collect(),
            "{label}"
        );
        assert!(
            matches!(
                store.audit_verify().await.unwrap(),
                AuditVerification::Intact { events: 3, .. }
            ),
            "{label}"
        );
        other.close().await;
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn account_records_are_the_single_table_reads() {
    use argent_core::{Case, CaseKind, CaseStatus, Currency, Money, PromiseStatus, PromiseToPay};
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        store
            .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
            .await
            .unwrap();
        let mut tx = store.begin().await.unwrap();
        for (id, cust) in [("CASE-1", "C-ANN"), ("CASE-2", "C-BO")] {
            tx.insert_case(&Case {
                id: id.into(),
                customer_id: cust.into(),
                kind: CaseKind::Dispute,
                status: CaseStatus::Open,
                invoice_numbers: vec!["INV-ANN-1".into()],
                disputed_amount: Some(Money::new(100_00, Currency::USD)),
                summary: "says it was paid".into(),
                opened_at: at("2026-11-19T10:00:00Z"),
            })
            .await
            .unwrap();
        }
        tx.insert_promise(&PromiseToPay {
            id: "PTP-1".into(),
            customer_id: "C-ANN".into(),
            invoice_numbers: vec![],
            amount: Money::new(300_00, Currency::USD),
            promised_date: "2026-12-01".parse().unwrap(),
            created_at: at("2026-11-19T11:00:00Z"),
            status: PromiseStatus::Open,
        })
        .await
        .unwrap();
        tx.record_contact("C-ANN", "email", at("2026-11-18T15:00:00Z"), "call-1")
            .await
            .unwrap();
        tx.enqueue_email(&email("EM-1", "call-1", "C-ANN", "2026-11-18T15:00:00Z"))
            .await
            .unwrap();
        // The plans, queue items and refused calls an email is judged against; the texts
        // the model wrote (a quote, a semicolon, a dollar sign) come back as written.
        let hostile = r#"{"note": "x'); DROP TABLE invoices; -- $1 \u0000"}"#;
        for (i, cust) in ["C-ANN", "C-BO", "C-ANN"].into_iter().enumerate() {
            let call = format!("refused-{i}");
            tx.record_tool_call(
                &call,
                "R1",
                cust,
                "propose_plan",
                hostile,
                ToolCallStatus::Refused,
            )
            .await
            .unwrap();
        }
        tx.record_tool_call(
            "call-2",
            "R1",
            "C-ANN",
            "propose_plan",
            "{}",
            ToolCallStatus::Queued,
        )
        .await
        .unwrap();
        tx.insert_approval(&NewApproval {
            customer_id: "C-ANN".into(),
            ..approval("A-ANN", "call-2", 1)
        })
        .await
        .unwrap();
        tx.insert_plan(&argent_core::PaymentPlan {
            id: "PLAN-ANN".into(),
            customer_id: "C-ANN".into(),
            currency: Currency::USD,
            balance_minor: 900_00,
            discount_minor: 0,
            down_payment_minor: 300_00,
            start_date: "2026-12-01".parse().unwrap(),
            installments: vec![argent_core::Installment {
                due_date: "2027-01-01".parse().unwrap(),
                amount_minor: 600_00,
            }],
            status: argent_core::PlanStatus::Proposed,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();

        let ann = store.account_records("C-ANN").await.unwrap();
        assert_eq!(
            ann.plans,
            store.plans(Some("C-ANN")).await.unwrap(),
            "{label}"
        );
        assert_eq!(ann.plans.len(), 1, "{label}");
        let approvals = store
            .customer_approvals("C-ANN", argent_store::ACCOUNT_RECENT)
            .await
            .unwrap();
        assert_eq!(ann.approvals.len(), 1, "{label}");
        assert_eq!(ann.approvals, approvals, "{label}");
        let refused = store
            .refused_tool_calls("C-ANN", argent_store::ACCOUNT_RECENT)
            .await
            .unwrap();
        assert_eq!(
            ann.refused_calls.len(),
            2,
            "{label}: only Ann's refused calls"
        );
        assert_eq!(ann.refused_calls, refused, "{label}");
        assert!(
            ann.refused_calls.iter().all(|c| c.arguments == hostile),
            "{label}: {:?}",
            ann.refused_calls
        );
        assert_eq!(
            ann.customer,
            store.customer("C-ANN").await.unwrap(),
            "{label}"
        );
        assert_eq!(ann.invoices, store.invoices(Some("C-ANN")).await.unwrap());
        assert_eq!(ann.invoices.len(), 7, "{label}");
        assert_eq!(ann.payments, store.payments(Some("C-ANN")).await.unwrap());
        assert_eq!(ann.cases, store.cases(Some("C-ANN")).await.unwrap());
        assert_eq!(ann.cases.len(), 1, "{label}: only Ann's case");
        assert_eq!(ann.promises, store.promises(Some("C-ANN")).await.unwrap());
        assert_eq!(ann.contacts, store.contacts("C-ANN").await.unwrap());
        assert_eq!(ann.contacts.len(), 1, "{label}");
        assert!(ann.emailed, "{label}");
        let bo = store.account_records("C-BO").await.unwrap();
        assert!(!bo.emailed && bo.promises.is_empty() && bo.contacts.is_empty());
        assert_eq!(bo.cases.len(), 1, "{label}");
        assert!(matches!(
            store.account_records("NOBODY").await,
            Err(StoreError::NotFound(_))
        ));
        // An id that would end a quoted literal is only ever a value: no customer by it,
        // and every table still there.
        for hostile in ["x'); DROP TABLE invoices; --", "$1", "\\'"] {
            assert!(
                matches!(
                    store.account_records(hostile).await,
                    Err(StoreError::NotFound(_))
                ),
                "{label}: {hostile:?}"
            );
        }
        assert_eq!(
            store.account_records("C-ANN").await.unwrap().invoices.len(),
            7,
            "{label}"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn seeding_a_queue_is_one_transaction() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let portfolio = consumer_portfolio(3);
        assert_eq!(portfolio.customers.len(), 3);
        assert_eq!(portfolio.invoices.len(), 15, "four paid, one open each");
        assert_eq!(portfolio.payments.len(), 12);
        let t = at("2026-11-20T18:00:00Z");
        let call = |i: usize, approval_id: &str| {
            let run = RunRecord {
                id: format!("run-{i}"),
                customer_id: format!("C-{i:05}"),
                trigger: json!({"kind": "step", "step": "overdue_notice"}),
                status: RunStatus::Finished,
                step: 2,
                tokens: 10,
                state: json!({}),
                model: "m".into(),
                prompt_version: "p".into(),
                policy_version: "v".into(),
                created_at: t,
                updated_at: t,
                lease_owner: None,
                lease_until: None,
            };
            let mut a = approval(approval_id, &format!("run-{i}/2/c"), i as i64);
            a.run_id = run.id.clone();
            a.customer_id = run.customer_id.clone();
            QueuedCall {
                events: vec![ev(
                    &a.customer_id,
                    &run.id,
                    "agent",
                    "approval_requested",
                    json!({"approval_id": approval_id}),
                )],
                run,
                arguments: "{}".into(),
                outcome: json!({"status": "queued"}),
                approval: a,
            }
        };
        // The third item reuses the first's id: the whole seed is refused.
        let bad = [call(1, "A1"), call(2, "A2"), call(3, "A1")];
        assert!(
            seed_queue(store, &portfolio, &bad).await.is_err(),
            "{label}"
        );
        assert!(
            store.customers().await.unwrap().is_empty(),
            "{label}: nothing kept"
        );
        assert_eq!(store.count_approvals(None).await.unwrap(), 0, "{label}");
        assert!(
            matches!(
                store.audit_verify().await.unwrap(),
                AuditVerification::Intact { events: 0, .. }
            ),
            "{label}"
        );

        let good = [call(1, "A1"), call(2, "A2"), call(3, "A3")];
        seed_queue(store, &portfolio, &good).await.unwrap();
        assert_eq!(store.customers().await.unwrap().len(), 3, "{label}");
        assert_eq!(store.invoices(None).await.unwrap().len(), 15, "{label}");
        assert_eq!(
            store
                .count_approvals(Some(ApprovalStatus::Pending))
                .await
                .unwrap(),
            3,
            "{label}"
        );
        let item = store.approval("A2").await.unwrap();
        assert_eq!(item.customer_id, "C-00002", "{label}");
        assert_eq!(item.status, ApprovalStatus::Pending);
        let tc = store.tool_call(&item.call_id).await.unwrap().unwrap();
        assert_eq!(tc.status, ToolCallStatus::Queued, "{label}");
        assert_eq!(tc.result, Some(json!({"status": "queued"})), "{label}");
        assert_eq!(
            store.run("run-2").await.unwrap().status,
            RunStatus::Finished
        );
        assert!(
            matches!(
                store.audit_verify().await.unwrap(),
                AuditVerification::Intact { events: 3, .. }
            ),
            "{label}"
        );
        ts.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// Transactions

fn approval(id: &str, call: &str, priority: i64) -> NewApproval {
    NewApproval {
        id: id.into(),
        call_id: call.into(),
        run_id: "R1".into(),
        customer_id: "C1".into(),
        tool: "propose_plan".into(),
        action: json!({"tool": "propose_plan", "discount_pct": 40}),
        decision: json!({"outcome": "needs_approval", "rules": [{"id": "b2b.max_discount"}]}),
        context: json!({"balance_minor": 120000}),
        priority,
        amount_minor: 48_000_00,
        currency: "USD".into(),
        required_role: "manager".into(),
        bundle_of: None,
    }
}

fn email(id: &str, call: &str, customer: &str, created: &str) -> OutboxEmail {
    OutboxEmail {
        id: id.into(),
        call_id: call.into(),
        customer_id: customer.into(),
        to_addr: "ap@example.com".into(),
        subject: "Your account".into(),
        body: "Dear customer, …".into(),
        created_at: at(created),
        status: "pending".into(),
        sent_at: None,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_dropped_transaction_leaves_nothing() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let p = generate(&DemoConfig {
            customers: 2,
            ..Default::default()
        });
        store.import_portfolio(&p, "t").await.unwrap();
        let cust = p.customers[0].id.clone();
        {
            let mut tx = store.begin().await.unwrap();
            assert!(
                tx.record_tool_call(
                    "call-1",
                    "R1",
                    &cust,
                    "send_email",
                    "{}",
                    ToolCallStatus::Received
                )
                .await
                .unwrap()
            );
            tx.insert_approval(&approval("A1", "call-1", 1))
                .await
                .unwrap();
            assert!(
                tx.enqueue_email(&email("E1", "call-1", &cust, "2026-01-01T00:00:00Z"))
                    .await
                    .unwrap()
            );
            tx.record_contact(&cust, "email", at("2026-01-01T00:00:00Z"), "call-1")
                .await
                .unwrap();
            tx.set_customer_flags(
                &cust,
                &CustomerFlags {
                    cease_contact: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            tx.audit_append(ev(&cust, "R1", "agent", "tool_call", json!({})))
                .await
                .unwrap();
            // Seen inside the transaction …
            assert!(tx.tool_call("call-1").await.unwrap().is_some());
            // … and dropped without commit.
        }
        assert!(
            store.tool_call("call-1").await.unwrap().is_none(),
            "{label}"
        );
        assert_eq!(store.count_approvals(None).await.unwrap(), 0, "{label}");
        assert!(store.emails(None).await.unwrap().is_empty(), "{label}");
        assert!(store.contacts(&cust).await.unwrap().is_empty(), "{label}");
        assert!(
            !store.customer(&cust).await.unwrap().flags.cease_contact,
            "{label}"
        );
        assert!(
            store
                .audit_events(&AuditFilter::default())
                .await
                .unwrap()
                .is_empty(),
            "{label}"
        );

        // The same writes, committed, are all there.
        let mut tx = store.begin().await.unwrap();
        tx.record_tool_call(
            "call-1",
            "R1",
            &cust,
            "send_email",
            "{}",
            ToolCallStatus::Received,
        )
        .await
        .unwrap();
        tx.set_customer_flags(
            &cust,
            &CustomerFlags {
                cease_contact: true,
                attorney_represented: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert!(
            store.tool_call("call-1").await.unwrap().is_some(),
            "{label}"
        );
        let flags = store.customer(&cust).await.unwrap().flags;
        assert!(flags.cease_contact && flags.attorney_represented && !flags.bankrupt);

        let mut tx = store.begin().await.unwrap();
        let err = match tx
            .set_customer_flags("NOBODY", &CustomerFlags::default())
            .await
        {
            Err(e) => {
                drop(tx);
                e
            }
            // The SQLite writer queues the update: its error comes with the commit.
            Ok(()) => tx.commit().await.unwrap_err(),
        };
        assert_eq!(err.to_string(), "customer NOBODY not found", "{label}");
        ts.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// Tool calls

/// One transaction: a tool call recorded, an audit event, then a status update of a call
/// that was never recorded (which must fail with `NotFound`), then the recorded call's.
async fn record_then_update_a_missing_call(store: &Store) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    tx.record_tool_call(
        "call-1",
        "R1",
        "C1",
        "send_email",
        "{}",
        ToolCallStatus::Received,
    )
    .await?;
    tx.audit_append(ev("C1", "R1", "agent", "tool_call", json!({})))
        .await?;
    tx.set_tool_call("no-such-call", ToolCallStatus::Executed, None)
        .await?;
    tx.set_tool_call("call-1", ToolCallStatus::Executed, None)
        .await?;
    tx.commit().await
}

/// A write that must change a row and changes none fails its operation with the
/// operation's own error: at once on PostgreSQL, and on the SQLite writer (which queues
/// such writes for the transaction's next round trip) by `commit` at the latest. Either
/// way nothing of the transaction is stored, and the store writes normally afterwards.
#[tokio::test]
async fn a_write_that_changes_nothing_fails_the_whole_transaction() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        match record_then_update_a_missing_call(store).await {
            Err(StoreError::NotFound(what)) => {
                assert_eq!(what, "tool call no-such-call", "{label}")
            }
            other => panic!("{label}: want NotFound for the missing call, got {other:?}"),
        }
        assert!(
            store.tool_call("call-1").await.unwrap().is_none(),
            "{label}"
        );
        assert!(
            matches!(
                store.audit_verify().await.unwrap(),
                AuditVerification::Intact { events: 0, .. }
            ),
            "{label}"
        );
        // The writer is clean: the same writes without the missing call commit.
        let mut tx = store.begin().await.unwrap();
        tx.record_tool_call(
            "call-1",
            "R1",
            "C1",
            "send_email",
            "{}",
            ToolCallStatus::Received,
        )
        .await
        .unwrap();
        tx.audit_append(ev("C1", "R1", "agent", "tool_call", json!({})))
            .await
            .unwrap();
        tx.set_tool_call(
            "call-1",
            ToolCallStatus::Executed,
            Some(&json!({"ok": true})),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let call = store.tool_call("call-1").await.unwrap().unwrap();
        assert_eq!(call.status, ToolCallStatus::Executed, "{label}");
        assert!(
            matches!(
                store.audit_verify().await.unwrap(),
                AuditVerification::Intact { events: 1, .. }
            ),
            "{label}"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn tool_calls_are_recorded_once_per_call_id() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.record_tool_call(
                "call-9",
                "R1",
                "C1",
                "send_email",
                "{\"to\":",
                ToolCallStatus::Received
            )
            .await
            .unwrap()
        );
        assert!(
            !tx.record_tool_call(
                "call-9",
                "R2",
                "C2",
                "open_case",
                "{}",
                ToolCallStatus::Executed
            )
            .await
            .unwrap(),
            "{label}: a replayed call id is not new"
        );
        tx.commit().await.unwrap();
        let r = store.tool_call("call-9").await.unwrap().unwrap();
        assert_eq!(
            (
                r.run_id.as_str(),
                r.name.as_str(),
                r.arguments.as_str(),
                r.status
            ),
            ("R1", "send_email", "{\"to\":", ToolCallStatus::Received),
            "{label}: the first record stands"
        );
        assert_eq!(r.result, None);

        let mut tx = store.begin().await.unwrap();
        tx.set_tool_call(
            "call-9",
            ToolCallStatus::Invalid,
            Some(&json!({"error": "EOF"})),
        )
        .await
        .unwrap();
        tx.set_tool_call("call-9", ToolCallStatus::Executed, None)
            .await
            .unwrap();
        let inside = tx.tool_call("call-9").await.unwrap().unwrap();
        assert_eq!(inside.status, ToolCallStatus::Executed);
        assert_eq!(inside.result, Some(json!({"error": "EOF"})));
        let err = match tx
            .set_tool_call("nope", ToolCallStatus::Executed, None)
            .await
        {
            Err(e) => {
                drop(tx);
                e
            }
            // The SQLite writer queues the update: its error comes with the commit, and
            // the transaction rolls back whole.
            Ok(()) => tx.commit().await.unwrap_err(),
        };
        assert!(matches!(err, StoreError::NotFound(_)), "{label}: {err}");
        assert_eq!(
            store.tool_call("call-9").await.unwrap().unwrap().status,
            ToolCallStatus::Received,
            "{label}"
        );
        assert!(store.tool_call("call-404").await.unwrap().is_none());
        for s in ToolCallStatus::ALL {
            assert_eq!(s.as_str().parse::<ToolCallStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        ts.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// Approval queue

#[tokio::test]
async fn approval_queue_orders_counts_and_decides_once() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let mut tx = store.begin().await.unwrap();
        tx.insert_approval(&approval("A-low", "c1", 1))
            .await
            .unwrap();
        tx.insert_approval(&approval("A-high", "c2", 9))
            .await
            .unwrap();
        tx.insert_approval(&approval("A-mid", "c3", 5))
            .await
            .unwrap();
        tx.commit().await.unwrap();

        // One approval per call.
        let mut tx = store.begin().await.unwrap();
        let err = tx
            .insert_approval(&approval("A-dup", "c1", 1))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Db(_)), "{label}: {err}");
        drop(tx);

        let ids =
            |v: Vec<argent_store::ApprovalItem>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.approvals(None, 10, 0).await.unwrap()),
            ["A-high", "A-mid", "A-low"],
            "{label}"
        );
        assert_eq!(
            ids(store
                .approvals(Some(ApprovalStatus::Pending), 1, 1)
                .await
                .unwrap()),
            ["A-mid"],
            "{label}"
        );
        assert_eq!(store.count_approvals(None).await.unwrap(), 3);

        let item = store.approval("A-high").await.unwrap();
        assert_eq!(item.status, ApprovalStatus::Pending);
        assert_eq!(item.action, approval("A-high", "c2", 9).action);
        assert_eq!(item.amount_minor, 48_000_00);
        assert!(item.decided_at.is_none() && item.final_action.is_none());
        let err = store.approval("A-404").await.unwrap_err();
        assert_eq!(err.to_string(), "approval A-404 not found", "{label}");

        let edited = json!({"tool": "propose_plan", "discount_pct": 20});
        decide(
            store,
            "A-high",
            ApprovalStatus::Approved,
            "alice",
            Some("20% is within my limit"),
            Some(&edited),
        )
        .await
        .unwrap();
        for id in ["A-high", "A-404"] {
            let err = decide(store, id, ApprovalStatus::Rejected, "bob", None, None)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::Conflict(m) if *m == format!("approval {id} is not pending")),
                "{label}: {id}: {err:?}"
            );
        }
        let mut tx = store.begin().await.unwrap();
        assert!(matches!(
            tx.decide_approval(
                "A-low",
                ApprovalStatus::Pending,
                "bob",
                "collector",
                None,
                None
            )
            .await,
            Err(StoreError::Invalid(_))
        ));
        drop(tx);

        let item = store.approval("A-high").await.unwrap();
        assert_eq!(item.status, ApprovalStatus::Approved, "{label}");
        assert_eq!(item.decided_by.as_deref(), Some("alice"));
        assert_eq!(item.decided_role.as_deref(), Some("manager"));
        assert_eq!(item.note.as_deref(), Some("20% is within my limit"));
        assert_eq!(item.final_action, Some(edited));
        assert!(item.decided_at.is_some());
        assert_eq!(
            store
                .count_approvals(Some(ApprovalStatus::Pending))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            ids(store
                .approvals(Some(ApprovalStatus::Approved), 10, 0)
                .await
                .unwrap()),
            ["A-high"]
        );
        ts.cleanup().await;
    }
}

/// Decides one item in a transaction of its own.
async fn decide(
    store: &Store,
    id: &str,
    status: ApprovalStatus,
    by: &str,
    note: Option<&str>,
    final_action: Option<&Value>,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    tx.decide_approval(id, status, by, "manager", note, final_action)
        .await?;
    tx.commit().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_reviewers_deciding_one_item_exactly_one_wins() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        // Two independent stores (separate pools, so separate connections).
        let a = ts.store.clone();
        let b = ts.reopen().await.unwrap();
        for round in 0..10 {
            let id = format!("A{round}");
            let mut tx = a.begin().await.unwrap();
            tx.insert_approval(&approval(&id, &format!("call{round}"), 1))
                .await
                .unwrap();
            tx.commit().await.unwrap();

            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let mut tasks = Vec::new();
            for (who, store, status) in [
                ("alice", a.clone(), ApprovalStatus::Approved),
                ("bob", b.clone(), ApprovalStatus::Rejected),
            ] {
                let (barrier, id) = (barrier.clone(), id.clone());
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    let mut tx = store.begin().await.unwrap();
                    // The decision and its audit event commit together or not at all.
                    let decided = async {
                        tx.decide_approval(&id, status, who, "manager", Some(who), None)
                            .await?;
                        tx.audit_append(ev("C1", "R1", who, "approval", json!({"id": id})))
                            .await?;
                        tx.commit().await
                    }
                    .await;
                    let won = match decided {
                        Ok(()) => true,
                        Err(StoreError::Conflict(_)) => false,
                        Err(e) => panic!("{who}: {e}"),
                    };
                    (who, won)
                }));
            }
            let mut winners = Vec::new();
            for t in tasks {
                let (who, won) = t.await.unwrap();
                if won {
                    winners.push(who);
                }
            }
            assert_eq!(winners.len(), 1, "{label} round {round}: {winners:?}");
            let item = a.approval(&id).await.unwrap();
            assert_eq!(item.decided_by.as_deref(), Some(winners[0]), "{label}");
            assert_eq!(item.note.as_deref(), Some(winners[0]), "{label}");
        }
        let audit = a
            .audit_events(&AuditFilter {
                kind: Some("approval".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(audit.len(), 10, "{label}");
        b.close().await;
        ts.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// Outbox and contact log

#[tokio::test]
async fn outbox_is_idempotent_per_call_and_sends_once() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.enqueue_email(&email("E1", "call-1", "C1", "2026-03-01T10:00:00.123456Z"))
                .await
                .unwrap()
        );
        assert!(
            !tx.enqueue_email(&email("E1-again", "call-1", "C1", "2026-03-01T11:00:00Z"))
                .await
                .unwrap(),
            "{label}: the same call enqueues once"
        );
        assert!(
            tx.enqueue_email(&email("E2", "call-2", "C2", "2026-03-01T09:00:00Z"))
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        // A resumed run in a later transaction cannot enqueue it again either.
        let mut tx = store.begin().await.unwrap();
        assert!(
            !tx.enqueue_email(&email("E1-resumed", "call-1", "C1", "2026-03-02T00:00:00Z"))
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();

        let pending = store.pending_emails(10).await.unwrap();
        assert_eq!(
            pending.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["E2", "E1"],
            "{label}: oldest first"
        );
        assert_eq!(
            pending[1],
            email("E1", "call-1", "C1", "2026-03-01T10:00:00.123456Z")
        );
        assert_eq!(store.pending_emails(1).await.unwrap().len(), 1);

        let sent_at = at("2026-03-01T12:00:00Z");
        // Marking an email sent is part of a transaction, with the event that records it:
        // rolled back, neither is there; committed, both are.
        let delivered = || {
            ev(
                "C1",
                "R1",
                "outbox",
                "email_delivered",
                json!({"outbox_id": "E1"}),
            )
        };
        let mut tx = store.begin().await.unwrap();
        tx.mark_email_sent("E1", sent_at).await.unwrap();
        tx.audit_append(delivered()).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(store.pending_emails(10).await.unwrap().len(), 2, "{label}");
        assert!(
            store
                .audit_events(&AuditFilter::default())
                .await
                .unwrap()
                .is_empty()
        );
        let mut tx = store.begin().await.unwrap();
        tx.mark_email_sent("E1", sent_at).await.unwrap();
        tx.audit_append(delivered()).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store
                .audit_events(&AuditFilter::default())
                .await
                .unwrap()
                .len(),
            1
        );
        // Only from pending, and only a known email: a conflict, and nothing is committed.
        for id in ["E1", "E404"] {
            let attempt = async {
                let mut tx = store.begin().await?;
                tx.mark_email_sent(id, sent_at).await?;
                tx.audit_append(delivered()).await?;
                tx.commit().await
            };
            assert!(
                matches!(attempt.await, Err(StoreError::Conflict(_))),
                "{label}: {id}"
            );
        }
        assert_eq!(
            store
                .audit_events(&AuditFilter::default())
                .await
                .unwrap()
                .len(),
            1
        );
        let mine = store.emails(Some("C1")).await.unwrap();
        assert_eq!(mine.len(), 1, "{label}");
        assert_eq!(mine[0].status, "sent");
        assert_eq!(mine[0].sent_at, Some(sent_at));
        assert_eq!(store.emails(None).await.unwrap().len(), 2);
        assert_eq!(
            store
                .pending_emails(10)
                .await
                .unwrap()
                .iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>(),
            ["E2"]
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn contacts_are_logged_in_time_order() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let mut tx = store.begin().await.unwrap();
        tx.record_contact("C1", "email", at("2026-03-02T10:00:00Z"), "c2")
            .await
            .unwrap();
        tx.record_contact("C1", "sms", at("2026-03-01T10:00:00.5Z"), "c1")
            .await
            .unwrap();
        tx.record_contact("C2", "email", at("2026-03-01T10:00:00Z"), "c3")
            .await
            .unwrap();
        // Replaying the same call does not count a second contact.
        tx.record_contact("C1", "email", at("2026-03-02T10:00:00Z"), "c2")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.contacts("C1").await.unwrap(),
            vec![
                (at("2026-03-01T10:00:00.5Z"), "sms".to_string(), false),
                (at("2026-03-02T10:00:00Z"), "email".to_string(), false),
            ],
            "{label}"
        );
        assert!(store.contacts("C9").await.unwrap().is_empty());
        ts.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// Runs

fn run(id: &str, created: DateTime<Utc>) -> RunRecord {
    RunRecord {
        id: id.into(),
        customer_id: "C1".into(),
        trigger: json!({"kind": "inbound", "message": "I can pay next week"}),
        status: RunStatus::Running,
        step: 0,
        tokens: 0,
        state: json!({"messages": []}),
        model: "offline".into(),
        prompt_version: "p1".into(),
        policy_version: "v3".into(),
        created_at: created,
        updated_at: created,
        lease_owner: None,
        lease_until: None,
    }
}

/// SQLite reads a run on the writer's connection when nothing holds it (`ReadConn`): a
/// read while a transaction holds the writer neither waits for it nor sees its writes, and
/// a read after a commit sees them.
#[tokio::test]
async fn reading_a_run_neither_waits_for_an_open_transaction_nor_sees_it() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let t = at("2026-03-01T10:00:00Z");
        store.create_run(&run("R1", t)).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.create_run(&run("R2", t)).await.unwrap();
        let state = json!({"messages": [{"role": "user", "content": "hi"}]});
        tx.checkpoint_run("R1", 4, 100, &state).await.unwrap();
        // A read in the transaction sends its queued writes, so they are in the database,
        // uncommitted, while the store reads.
        assert!(tx.tool_call("no-such-call").await.unwrap().is_none());
        let during = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            (store.run("R1").await, store.run("R2").await)
        })
        .await
        .unwrap_or_else(|_| panic!("{label}: a read waited for the open transaction"));
        assert_eq!(during.0.unwrap().step, 0, "{label}: the committed step");
        assert!(
            matches!(during.1, Err(StoreError::NotFound(_))),
            "{label}: an uncommitted run is not read: {:?}",
            during.1
        );
        tx.commit().await.unwrap();
        assert_eq!(store.run("R1").await.unwrap().step, 4, "{label}");
        assert_eq!(store.run("R2").await.unwrap(), run("R2", t), "{label}");
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn runs_checkpoint_and_finish() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let t = at("2026-03-01T10:00:00.654321Z");
        store.create_run(&run("R1", t)).await.unwrap();
        store
            .create_run(&run("R2", t + Duration::seconds(1)))
            .await
            .unwrap();
        assert_eq!(store.run("R1").await.unwrap(), run("R1", t), "{label}");

        let state = json!({"messages": [{"role": "user", "content": "hi"}], "pending": ["call-1"]});
        store.checkpoint_run("R1", 2, 340, &state).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.checkpoint_run("R1", 3, 512, &state).await.unwrap();
        tx.commit().await.unwrap();
        let r = store.run("R1").await.unwrap();
        assert_eq!((r.step, r.tokens, &r.state), (3, 512, &state), "{label}");
        assert!(r.updated_at > t);

        store
            .finish_run("R1", RunStatus::BudgetExhausted)
            .await
            .unwrap();
        assert_eq!(
            store.run("R1").await.unwrap().status,
            RunStatus::BudgetExhausted
        );
        // In a transaction, with its last checkpoint.
        let mut tx = store.begin().await.unwrap();
        tx.checkpoint_run("R2", 1, 10, &state).await.unwrap();
        tx.finish_run("R2", RunStatus::Finished).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(
            store.run("R2").await.unwrap().status,
            RunStatus::Running,
            "{label}"
        );
        // No such run: NotFound at once, or (a write queued on SQLite's writer) at the commit.
        let mut tx = store.begin().await.unwrap();
        let finished = match tx.finish_run("R404", RunStatus::Failed).await {
            Err(e) => {
                drop(tx); // rolled back (and the connection freed)
                Err(e)
            }
            Ok(()) => tx.commit().await,
        };
        assert!(
            matches!(finished, Err(StoreError::NotFound(_))),
            "{label}: {finished:?}"
        );
        assert_eq!(
            store
                .runs(Some(RunStatus::Running))
                .await
                .unwrap()
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>(),
            ["R2"],
            "{label}"
        );
        assert_eq!(store.runs(None).await.unwrap().len(), 2);
        assert_eq!(
            store.run("R404").await.unwrap_err().to_string(),
            "run R404 not found"
        );
        assert!(matches!(
            store.checkpoint_run("R404", 1, 1, &json!({})).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.finish_run("R404", RunStatus::Failed).await,
            Err(StoreError::NotFound(_))
        ));
        ts.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_leasers_never_lease_a_run_twice() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let store = ts.store.clone();
        let base = at("2026-03-01T00:00:00Z");
        for i in 0..40 {
            store
                .create_run(&run(&format!("R{i:02}"), base + Duration::seconds(i)))
                .await
                .unwrap();
        }
        store.finish_run("R05", RunStatus::Finished).await.unwrap();
        // One with a live lease held by someone else, one whose lease expired.
        let mut held = run("R-held", base);
        held.lease_owner = Some("other".into());
        held.lease_until = Some(base + Duration::hours(2));
        store.create_run(&held).await.unwrap();
        let mut expired = run("R-expired", base);
        expired.lease_owner = Some("dead-worker".into());
        expired.lease_until = Some(base - Duration::minutes(1));
        store.create_run(&expired).await.unwrap();

        let now = base + Duration::hours(1);
        let until = now + Duration::minutes(5);
        let other = ts.reopen().await.unwrap();
        let mut tasks = Vec::new();
        for (w, s) in [store.clone(), other.clone(), store.clone(), other.clone()]
            .into_iter()
            .enumerate()
        {
            tasks.push(tokio::spawn(async move {
                let owner = format!("worker{w}");
                let mut got = Vec::new();
                loop {
                    let batch = s.lease_runs(&owner, now, until, 3).await.unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    for r in &batch {
                        assert_eq!(r.lease_owner.as_deref(), Some(owner.as_str()));
                        assert_eq!(r.lease_until, Some(until));
                    }
                    got.extend(batch.into_iter().map(|r| r.id));
                }
                (owner, got)
            }));
        }
        let mut seen = HashSet::new();
        let mut total = 0;
        for t in tasks {
            let (owner, got) = t.await.unwrap();
            for id in got {
                total += 1;
                assert!(
                    seen.insert(id.clone()),
                    "{label}: {id} leased twice ({owner})"
                );
            }
        }
        // 40 created, minus the finished one, plus the expired lease; not the held one.
        assert_eq!(total, 40, "{label}");
        assert!(seen.contains("R-expired") && !seen.contains("R-held") && !seen.contains("R05"));
        // Nothing left to lease until the leases expire …
        assert!(
            store
                .lease_runs("late", now, until, 100)
                .await
                .unwrap()
                .is_empty()
        );
        // … then they can be taken over, oldest first.
        let later = until + Duration::seconds(1);
        let taken = store
            .lease_runs("late", later, later + Duration::minutes(5), 2)
            .await
            .unwrap();
        assert_eq!(
            taken.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["R-expired", "R00"],
            "{label}"
        );
        // A finished run releases its lease.
        store.finish_run("R00", RunStatus::Finished).await.unwrap();
        let r = store.run("R00").await.unwrap();
        assert_eq!((r.lease_owner, r.lease_until), (None, None), "{label}");
        other.close().await;
        ts.cleanup().await;
    }
}

/// PostgreSQL: a transaction's commit stages its events and hands them to the store's
/// background chainer, which chains them with nobody reading or appending (the committer
/// does not wait for it); the chain is whole after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_leaves_its_events_to_the_background_chainer() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let mut tx = store.begin().await.unwrap();
        for i in 0..3 {
            tx.audit_append(ev("C1", "R1", "agent", "bg", json!({"i": i})))
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        if store.backend() == Backend::Postgres {
            // Counted without reading the trail (a reader would chain them itself).
            let mut staged = u64::MAX;
            for _ in 0..200 {
                staged = raw_execute(store, "SELECT 1 FROM audit_staged")
                    .await
                    .unwrap();
                if staged == 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            assert_eq!(staged, 0, "{label}: the background chainer chained them");
        }
        assert_eq!(
            store.audit_chain_staged().await.unwrap(),
            0,
            "{label}: nothing left to chain"
        );
        assert!(
            matches!(
                store.audit_verify().await.unwrap(),
                AuditVerification::Intact { events: 3, .. }
            ),
            "{label}"
        );
        ts.cleanup().await;
    }
}

/// PostgreSQL stages an audited transaction's events with its commit and chains them
/// after it (so no transaction holds the chain through its durable commit). Events
/// committed but not chained yet (the background chainer has not run, or the process died
/// in between) are chained by the next reader of the trail, the next appender, before its
/// own, or by verification; several stores appending at once leave one gapless chain whose
/// events are the ones each appender was told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_events_are_chained_by_the_next_reader_appender_or_verification() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        if store.backend() != Backend::Postgres {
            // SQLite chains inside the transaction: nothing is ever staged.
            assert_eq!(store.audit_chain_staged().await.unwrap(), 0, "{label}");
            ts.cleanup().await;
            continue;
        }
        append_n(store, 2).await;
        raw_execute(store, &staged_orphan_sql("orphan.one"))
            .await
            .unwrap();
        assert!(
            raw_execute(store, "UPDATE audit_staged SET kind = 'changed'")
                .await
                .is_err(),
            "{label}: a staged event is never changed"
        );
        let read = store.audit_events(&AuditFilter::default()).await.unwrap();
        assert_eq!(
            read.iter()
                .map(|e| (e.seq, e.kind.as_str()))
                .collect::<Vec<_>>()[2..],
            [(3, "orphan.one")],
            "{label}: a reader of the trail chains what was committed and left staged"
        );
        raw_execute(store, &staged_orphan_sql("orphan.two"))
            .await
            .unwrap();
        let mine = store
            .audit_append(ev("C1", "R1", "agent", "after", json!({"x": 1})))
            .await
            .unwrap();
        let all = store.audit_events(&AuditFilter::default()).await.unwrap();
        assert_eq!(
            all.iter()
                .map(|e| (e.seq, e.kind.as_str()))
                .collect::<Vec<_>>()[3..],
            [(4, "orphan.two"), (5, "after")],
            "{label}: the orphan is chained first, then the appender's own event"
        );
        assert_eq!(
            all[4], mine,
            "{label}: the appender is told what was stored"
        );
        raw_execute(store, &staged_orphan_sql("orphan.three"))
            .await
            .unwrap();
        assert_eq!(
            store.audit_chain_staged().await.unwrap(),
            1,
            "{label}: the orphan was still staged"
        );
        raw_execute(store, &staged_orphan_sql("orphan.four"))
            .await
            .unwrap();
        let verified = store.audit_verify().await.unwrap();
        assert_eq!(
            verified,
            AuditVerification::Intact {
                events: 7,
                head: store.audit_events(&AuditFilter::default()).await.unwrap()[6]
                    .hash
                    .clone()
            },
            "{label}: verification chains what was left staged"
        );

        // Four stores (four pools), 25 concurrent single-event transactions each.
        let mut tasks = Vec::new();
        for s in 0..4 {
            let other = ts.reopen().await.unwrap();
            for i in 0..25 {
                let other = other.clone();
                tasks.push(tokio::spawn(async move {
                    other
                        .audit_append(ev(
                            &format!("C{s}"),
                            &format!("R{s}-{i}"),
                            "agent",
                            "concurrent",
                            json!({"s": s, "i": i}),
                        ))
                        .await
                        .unwrap()
                }));
            }
        }
        let mut told = Vec::new();
        for t in tasks {
            told.push(t.await.unwrap());
        }
        told.sort_by_key(|e| e.seq);
        let stored: Vec<_> = store
            .audit_events(&AuditFilter {
                kind: Some("concurrent".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            stored, told,
            "{label}: each appender was told its stored event"
        );
        assert_eq!(
            stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (8..108).collect::<Vec<_>>(),
            "{label}: gapless"
        );
        assert!(
            matches!(
                store.audit_verify().await.unwrap(),
                AuditVerification::Intact { events: 107, .. }
            ),
            "{label}"
        );
        ts.cleanup().await;
    }
}
