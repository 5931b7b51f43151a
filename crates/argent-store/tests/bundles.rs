//! Conformance tests for approval bundles (migration 0009): an email held with the action
//! it confirms is stored as an item whose `bundle_of` names the action's item, read back
//! with it, decided with it in one transaction; and the account reads the agent uses to
//! know what else happened (pending and rejected items, refused calls). Every test runs on
//! SQLite and, when ARGENT_TEST_POSTGRES_URL is set, on PostgreSQL too.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use argent_core::demo::{DemoConfig, generate};
use argent_store::testkit::TestStore;
use argent_store::{ApprovalStatus, NewApproval, Store, ToolCallStatus};
use serde_json::json;

fn item(id: &str, call: &str, customer: &str, tool: &str, bundle_of: Option<&str>) -> NewApproval {
    NewApproval {
        id: id.into(),
        call_id: call.into(),
        run_id: "R1".into(),
        customer_id: customer.into(),
        tool: tool.into(),
        action: json!({"customer_id": customer}),
        decision: json!({"outcome": "needs_approval", "rules": []}),
        context: json!({}),
        priority: 1,
        amount_minor: 0,
        currency: String::new(),
        required_role: "collector".into(),
        bundle_of: bundle_of.map(str::to_string),
    }
}

/// Two customers' ledgers; returns their ids.
async fn ledger(store: &Store) -> (String, String) {
    let p = generate(&DemoConfig {
        customers: 2,
        ..Default::default()
    });
    store.import_portfolio(&p, "t").await.unwrap();
    (p.customers[0].id.clone(), p.customers[1].id.clone())
}

async fn queue(store: &Store, items: &[NewApproval]) {
    let mut tx = store.begin().await.unwrap();
    for a in items {
        tx.record_tool_call(
            &a.call_id,
            "R1",
            &a.customer_id,
            &a.tool,
            "{}",
            ToolCallStatus::Queued,
        )
        .await
        .unwrap();
        tx.insert_approval(a).await.unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_held_email_is_stored_with_its_action_and_read_back_under_it() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let (c1, c2) = ledger(store).await;
        queue(
            store,
            &[
                item("A1", "call-1", &c1, "log_promise", None),
                item("A2", "call-2", &c1, "send_email", Some("A1")),
                item("B1", "call-3", &c2, "log_promise", None),
            ],
        )
        .await;
        assert_eq!(
            store.approval("A2").await.unwrap().bundle_of.as_deref(),
            Some("A1"),
            "{label}"
        );
        assert_eq!(
            store.approval("A1").await.unwrap().bundle_of,
            None,
            "{label}"
        );
        let held: Vec<String> = store
            .bundled_with("A1")
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(held, vec!["A2".to_string()], "{label}");
        assert!(
            store.bundled_with("B1").await.unwrap().is_empty(),
            "{label}"
        );
        // The account's pending items: both of c1's, none of c2's.
        let mut mine: Vec<String> = store
            .customer_approvals(&c1, 50)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        mine.sort();
        assert_eq!(mine, vec!["A1".to_string(), "A2".to_string()], "{label}");
        // The queue lists the held item with its bundle named.
        let page = store
            .approvals(Some(ApprovalStatus::Pending), 10, 0)
            .await
            .unwrap();
        assert!(
            page.iter()
                .any(|i| i.id == "A2" && i.bundle_of.as_deref() == Some("A1")),
            "{label}"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_bundle_is_decided_in_one_transaction() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let (c1, _) = ledger(store).await;
        queue(
            store,
            &[
                item("A1", "call-1", &c1, "log_promise", None),
                item("A2", "call-2", &c1, "send_email", Some("A1")),
            ],
        )
        .await;
        // Deciding both and dropping the transaction leaves both pending.
        {
            let mut tx = store.begin().await.unwrap();
            for id in ["A1", "A2"] {
                tx.decide_approval(
                    id,
                    ApprovalStatus::Rejected,
                    "ann",
                    "collector",
                    Some("no"),
                    None,
                )
                .await
                .unwrap();
            }
        }
        for id in ["A1", "A2"] {
            assert_eq!(
                store.approval(id).await.unwrap().status,
                ApprovalStatus::Pending,
                "{label} {id}"
            );
        }
        // Committed: both rejected, and they stay in the account's history as rejected.
        let mut tx = store.begin().await.unwrap();
        for id in ["A1", "A2"] {
            tx.decide_approval(
                id,
                ApprovalStatus::Rejected,
                "ann",
                "collector",
                Some("no"),
                None,
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        for id in ["A1", "A2"] {
            assert_eq!(
                store.approval(id).await.unwrap().status,
                ApprovalStatus::Rejected,
                "{label} {id}"
            );
        }
        assert_eq!(
            store.customer_approvals(&c1, 50).await.unwrap().len(),
            2,
            "{label}"
        );
        // If one of the two was already decided, the other is not decided either.
        queue(
            store,
            &[
                item("A3", "call-3", &c1, "log_promise", None),
                item("A4", "call-4", &c1, "send_email", Some("A3")),
            ],
        )
        .await;
        let mut tx = store.begin().await.unwrap();
        let first = tx
            .decide_approval(
                "A3",
                ApprovalStatus::Approved,
                "ann",
                "collector",
                None,
                None,
            )
            .await;
        let second = match first {
            Ok(()) => {
                tx.decide_approval(
                    "A1",
                    ApprovalStatus::Approved,
                    "ann",
                    "collector",
                    None,
                    None,
                )
                .await
            }
            Err(e) => Err(e),
        };
        let done = match second {
            Ok(()) => tx.commit().await,
            Err(e) => {
                drop(tx);
                Err(e)
            }
        };
        assert!(
            done.is_err(),
            "{label}: deciding a decided item must fail the transaction"
        );
        assert_eq!(
            store.approval("A3").await.unwrap().status,
            ApprovalStatus::Pending,
            "{label}"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_bundle_must_name_an_existing_item() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let (c1, _) = ledger(store).await;
        let mut tx = store.begin().await.unwrap();
        tx.record_tool_call(
            "call-9",
            "R1",
            &c1,
            "send_email",
            "{}",
            ToolCallStatus::Queued,
        )
        .await
        .unwrap();
        let inserted = tx
            .insert_approval(&item("A9", "call-9", &c1, "send_email", Some("NOPE")))
            .await;
        let done = match inserted {
            Ok(()) => tx.commit().await,
            Err(e) => {
                drop(tx);
                Err(e)
            }
        };
        assert!(
            done.is_err(),
            "{label}: a bundle of an unknown item was stored"
        );
        assert!(store.approval("A9").await.is_err(), "{label}");
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn refused_calls_are_read_per_customer_newest_first() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let (c1, c2) = ledger(store).await;
        let mut tx = store.begin().await.unwrap();
        for (call, customer, status) in [
            ("r-1", &c1, ToolCallStatus::Refused),
            ("r-2", &c1, ToolCallStatus::Executed),
            ("r-3", &c2, ToolCallStatus::Refused),
            ("r-4", &c1, ToolCallStatus::Refused),
        ] {
            tx.record_tool_call(
                call,
                "R1",
                customer,
                "log_promise",
                "{\"amount\":\"1.00\"}",
                ToolCallStatus::Received,
            )
            .await
            .unwrap();
            tx.set_tool_call(call, status, None).await.unwrap();
        }
        tx.commit().await.unwrap();
        let refused: Vec<String> = store
            .refused_tool_calls(&c1, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.call_id)
            .collect();
        assert_eq!(refused.len(), 2, "{label}: {refused:?}");
        assert!(
            refused.contains(&"r-1".to_string()) && refused.contains(&"r-4".to_string()),
            "{label}"
        );
        assert_eq!(
            store.refused_tool_calls(&c1, 1).await.unwrap().len(),
            1,
            "{label}"
        );
        assert_eq!(
            store.refused_tool_calls(&c2, 10).await.unwrap()[0].arguments,
            "{\"amount\":\"1.00\"}",
            "{label}"
        );
        ts.cleanup().await;
    }
}
