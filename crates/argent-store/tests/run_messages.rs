#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Conformance (SQLite, and PostgreSQL when ARGENT_TEST_POSTGRES_URL is set): a run's
//! conversation saved message by message (delta checkpoints), and the writes of a run step
//! that answer nothing (queued on the SQLite writer): a tool call recorded once with its
//! outcome, an outbox email and a call task kept once per call, an approval item.

use chrono::{DateTime, Utc};
use serde_json::json;

use argent_store::testkit::{TestStore, two_consumer_portfolio};
use argent_store::{
    CallTask, CallTaskStatus, NewApproval, OutboxEmail, RunRecord, RunStatus, StoreError,
    ToolCallStatus,
};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn run(id: &str) -> RunRecord {
    RunRecord {
        id: id.into(),
        customer_id: "C-ANN".into(),
        trigger: json!({"kind": "step", "step": "overdue_notice"}),
        status: RunStatus::Running,
        step: 0,
        tokens: 0,
        state: json!({"delta": {"messages": 0}, "invalid_turns": 0}),
        model: "m".into(),
        prompt_version: "p".into(),
        policy_version: "v".into(),
        created_at: at("2026-11-20T10:00:00Z"),
        updated_at: at("2026-11-20T10:00:00Z"),
        lease_owner: None,
        lease_until: None,
    }
}

#[tokio::test]
async fn a_runs_messages_are_saved_in_steps_and_read_back_in_order() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let mut tx = store.begin().await.unwrap();
        tx.create_run(&run("R1")).await.unwrap();
        tx.append_run_messages(
            "R1",
            0,
            &[
                (json!({"role": "system", "content": "s"}), None),
                (json!({"role": "user", "content": "u"}), None),
            ],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.append_run_messages(
            "R1",
            2,
            &[(
                json!({"role": "tool", "tool_call_id": "c1", "content": "done"}),
                Some(json!({"call_id": "R1/2/c1", "status": "executed"})),
            )],
        )
        .await
        .unwrap();
        tx.checkpoint_run("R1", 1, 10, &json!({"delta": {"messages": 3}}))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let saved = store.run_messages("R1").await.unwrap();
        let idx: Vec<i64> = saved.iter().map(|m| m.idx).collect();
        assert_eq!(idx, [0, 1, 2], "{label}");
        assert_eq!(saved[1].message["content"], "u", "{label}");
        assert_eq!(saved[0].outcome, None, "{label}");
        assert_eq!(
            saved[2].outcome,
            Some(json!({"call_id": "R1/2/c1", "status": "executed"})),
            "{label}"
        );
        let r = store.run("R1").await.unwrap();
        assert_eq!((r.step, r.tokens), (1, 10), "{label}");
        assert_eq!(r.state, json!({"delta": {"messages": 3}}), "{label}");

        // A place already taken fails the whole transaction (two drivers of one run).
        let mut tx = store.begin().await.unwrap();
        tx.checkpoint_run("R1", 2, 20, &json!({"delta": {"messages": 4}}))
            .await
            .unwrap();
        let failed = match tx
            .append_run_messages("R1", 2, &[(json!({"role": "user", "content": "x"}), None)])
            .await
        {
            Ok(()) => tx.commit().await,
            Err(e) => {
                drop(tx);
                Err(e)
            }
        };
        assert!(
            matches!(failed, Err(StoreError::Db(_))),
            "{label}: {failed:?}"
        );
        assert_eq!(store.run_messages("R1").await.unwrap().len(), 3, "{label}");
        assert_eq!(
            store.run("R1").await.unwrap().step,
            1,
            "{label}: rolled back"
        );
        assert!(
            store.run_messages("R404").await.unwrap().is_empty(),
            "{label}"
        );

        // A checkpoint of an unknown run is NotFound (on the SQLite writer, at commit).
        let mut tx = store.begin().await.unwrap();
        let missing = match tx.checkpoint_run("R404", 1, 1, &json!({})).await {
            Ok(()) => tx.commit().await,
            Err(e) => {
                drop(tx);
                Err(e)
            }
        };
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{label}: {missing:?}"
        );
        ts.cleanup().await;
    }
}

/// A step's messages are written together (one statement on PostgreSQL): however many a
/// step has (a model's answer can carry any number of tool calls, each with its result),
/// more than one statement's bind parameters allow, they are all saved, in order; and a
/// place already taken fails the step as with one message.
#[tokio::test]
async fn a_step_with_more_messages_than_one_statement_binds_is_saved_whole() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let mut tx = store.begin().await.unwrap();
        tx.create_run(&run("R1")).await.unwrap();
        // PostgreSQL takes at most 65,535 bind parameters a statement, 4 a message.
        let many: Vec<_> = (0..17_000)
            .map(|i| {
                (
                    json!({"role": "tool", "tool_call_id": format!("c{i}"), "content": "done"}),
                    Some(json!({"call_id": format!("R1/1/c{i}"), "status": "executed"})),
                )
            })
            .collect();
        tx.append_run_messages("R1", 0, &many).await.unwrap();
        tx.commit().await.unwrap();
        let saved = store.run_messages("R1").await.unwrap();
        assert_eq!(saved.len(), 17_000, "{label}");
        assert!(
            saved
                .iter()
                .enumerate()
                .all(|(i, m)| m.idx == i as i64 && m.message["tool_call_id"] == format!("c{i}")),
            "{label}: in order"
        );

        let mut tx = store.begin().await.unwrap();
        let failed = match tx
            .append_run_messages(
                "R1",
                16_999,
                &[
                    (json!({"role": "user", "content": "x"}), None),
                    (json!({"role": "user", "content": "y"}), None),
                ],
            )
            .await
        {
            Ok(()) => tx.commit().await,
            Err(e) => {
                drop(tx);
                Err(e)
            }
        };
        assert!(
            matches!(failed, Err(StoreError::Db(_))),
            "{label}: {failed:?}"
        );
        assert_eq!(
            store.run_messages("R1").await.unwrap().len(),
            17_000,
            "{label}: nothing of the failed step saved"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_fresh_tool_call_is_recorded_once_with_its_outcome() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let outcome = json!({"call_id": "R1/2/c1", "status": "executed"});
        let mut tx = store.begin().await.unwrap();
        tx.insert_tool_call(
            "R1/2/c1",
            "R1",
            "C-ANN",
            "read_aging",
            "{}",
            ToolCallStatus::Executed,
            &outcome,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let rec = store.tool_call("R1/2/c1").await.unwrap().unwrap();
        assert_eq!(rec.status, ToolCallStatus::Executed, "{label}");
        assert_eq!(rec.result, Some(outcome.clone()), "{label}");

        // The same id again: Conflict, and nothing of the transaction stays.
        let mut tx = store.begin().await.unwrap();
        let again = match tx
            .insert_tool_call(
                "R1/2/c1",
                "R1",
                "C-ANN",
                "send_email",
                "{}",
                ToolCallStatus::Queued,
                &json!({}),
            )
            .await
        {
            Ok(()) => tx.commit().await,
            Err(e) => {
                drop(tx);
                Err(e)
            }
        };
        assert!(
            matches!(again, Err(StoreError::Conflict(_))),
            "{label}: {again:?}"
        );
        let rec = store.tool_call("R1/2/c1").await.unwrap().unwrap();
        assert_eq!(
            (rec.name.as_str(), rec.result),
            ("read_aging", Some(outcome)),
            "{label}"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn an_email_and_a_call_task_are_kept_once_per_call_and_an_approval_is_queued() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        store
            .import_portfolio(&two_consumer_portfolio(), "t")
            .await
            .unwrap();
        let email = |id: &str, subject: &str| OutboxEmail {
            id: id.into(),
            call_id: "R1/2/c1".into(),
            customer_id: "C-ANN".into(),
            to_addr: "ann@mail.example".into(),
            subject: subject.into(),
            body: "Dear Ann".into(),
            created_at: at("2026-11-20T10:00:00Z"),
            status: "pending".into(),
            message_id: Some(format!("{id}@argent.example")),
            ..Default::default()
        };
        let task = |id: &str| CallTask {
            id: id.into(),
            call_id: "R1/2/c2".into(),
            customer_id: "C-ANN".into(),
            reason: "overdue".into(),
            script: "hello".into(),
            not_before: None,
            status: CallTaskStatus::Open,
            created_at: at("2026-11-20T10:00:00Z"),
            done_at: None,
        };
        for round in ["first", "again"] {
            let mut tx = store.begin().await.unwrap();
            tx.add_email(&email(&format!("EM-{round}"), round))
                .await
                .unwrap();
            tx.add_call_task(&task(&format!("CALL-{round}")))
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let emails = store.emails(None).await.unwrap();
        assert_eq!(emails.len(), 1, "{label}");
        assert_eq!(
            (emails[0].id.as_str(), emails[0].subject.as_str()),
            ("EM-first", "first"),
            "{label}"
        );
        assert_eq!(
            emails[0].message_id.as_deref(),
            Some("EM-first@argent.example"),
            "{label}"
        );
        let tasks = store.call_tasks(Some("C-ANN"), false).await.unwrap();
        assert_eq!(tasks.len(), 1, "{label}");
        assert_eq!(tasks[0].id, "CALL-first", "{label}");

        let approval = NewApproval {
            id: "A1".into(),
            call_id: "R1/2/c3".into(),
            run_id: "R1".into(),
            customer_id: "C-ANN".into(),
            tool: "propose_plan".into(),
            action: json!({"customer_id": "C-ANN"}),
            decision: json!({"outcome": "needs_approval"}),
            context: json!({}),
            priority: 7,
            amount_minor: 120_000,
            currency: "USD".into(),
            required_role: "collector".into(),
            bundle_of: None,
        };
        let mut tx = store.begin().await.unwrap();
        tx.add_approval(&approval).await.unwrap();
        tx.commit().await.unwrap();
        let item = store.approval("A1").await.unwrap();
        assert_eq!(
            (item.call_id.as_str(), item.priority),
            ("R1/2/c3", 7),
            "{label}"
        );
        // One approval per call: a second item for the call fails its transaction.
        let mut tx = store.begin().await.unwrap();
        let dup = NewApproval {
            id: "A2".into(),
            ..approval
        };
        let second = match tx.add_approval(&dup).await {
            Ok(()) => tx.commit().await,
            Err(e) => {
                drop(tx);
                Err(e)
            }
        };
        assert!(second.is_err(), "{label}");
        assert!(store.approval("A2").await.is_err(), "{label}");
        ts.cleanup().await;
    }
}
