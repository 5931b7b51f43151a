//! The work queues over the API and the pages: the tasks inbox with its role rules, the
//! case list, the promise tracker in the viewer's zone, the collectors' day with call
//! outcomes that go through the agent's policy, and the managers' counts. Answers are
//! checked against openapi.json.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use argent_core::{
    Case, CaseKind, CaseStatus, Currency, Money, PromiseStatus, PromiseToPay, Role, TaskKind,
    TaskStatus,
};
use argent_server::OPENAPI;
use argent_store::{CallTask, CallTaskStatus, NewTask};
use common::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Checks `body` against the documented response of `method path` for `status`.
fn check(method: &str, path: &str, status: StatusCode, body: &Value) {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let schema = &doc["paths"][path][method]["responses"][status.as_str()]["content"]["application/json"]
        ["schema"];
    assert!(schema.is_object(), "{method} {path} documents {status}");
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    let v = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap();
    let errors: Vec<String> = v
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {errors:?}\n{body:#}"
    );
}

fn task(id: &str, customer: &str, role: Role, due: &str) -> NewTask {
    NewTask {
        id: id.into(),
        kind: TaskKind::Escalation,
        customer_id: customer.into(),
        owner_role: role,
        assignee: None,
        title: format!("Escalation: {customer}"),
        body: "Asked for a person.".into(),
        due_at: Some(at(due)),
        source: format!("run-x/0/{id}"),
        created_at: at("2026-11-19T10:00:00Z"),
        actor: "agent".into(),
    }
}

async fn seed_tasks(f: &Fixture) {
    f.store()
        .create_task(&task(
            "T-COL",
            "C-ANN",
            Role::Collector,
            "2026-11-20T20:00:00Z",
        ))
        .await
        .unwrap();
    f.store()
        .create_task(&task(
            "T-MGR",
            "C-BO",
            Role::Manager,
            "2026-11-21T10:00:00Z",
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_inbox_follows_the_role_rules() {
    let f = fixture().await;
    seed_tasks(&f).await;

    // Alice (collector) sees the collector task only; the manager sees both.
    let (s, b) = f.as_user("alice", Method::GET, "/api/tasks", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    check("get", "/api/tasks", s, &b);
    let ids: Vec<&str> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["T-COL"]);
    let (_, b) = f.as_user("mo", Method::GET, "/api/tasks", None).await;
    assert_eq!(b["items"].as_array().unwrap().len(), 2);
    let (_, b) = f
        .as_user("mo", Method::GET, "/api/tasks?role=manager", None)
        .await;
    assert_eq!(b["items"][0]["id"], "T-MGR");
    // Evaluators work no queue.
    let (s, _) = f.as_user("eve", Method::GET, "/api/tasks", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The manager's task does not exist for Alice: she can neither see nor close it.
    let (s, b) = f
        .as_user("alice", Method::GET, "/api/tasks/T-MGR", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    check("get", "/api/tasks/{id}", s, &b);
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/tasks/T-MGR/close",
            Some(json!({"outcome": "done"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert_eq!(
        f.store().task("T-MGR").await.unwrap().status,
        TaskStatus::Open
    );
    // Compliance sees it, but may not close it.
    let (s, _) = f.as_user("cy", Method::GET, "/api/tasks/T-MGR", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = f
        .as_user(
            "cy",
            Method::POST,
            "/api/tasks/T-MGR/close",
            Some(json!({"outcome": "done"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    check("post", "/api/tasks/{id}/close", s, &b);

    // Alice takes her role's task, comments, and closes it with an outcome.
    let (s, b) = f
        .as_user("alice", Method::POST, "/api/tasks/T-COL/assign", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    check("post", "/api/tasks/{id}/assign", s, &b);
    assert_eq!(
        (b["assignee"].as_str(), b["status"].as_str()),
        (Some("alice"), Some("in_progress"))
    );
    // She may not hand it to someone else.
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/tasks/T-COL/assign",
            Some(json!({"to": "mo"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/tasks/T-COL/comment",
            Some(json!({"body": "Called, no answer."})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    check("post", "/api/tasks/{id}/comment", s, &b);
    assert_eq!(b["comments"][0]["author"], "alice");
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/tasks/T-COL/close",
            Some(json!({"outcome": "   "})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/tasks/T-COL/close",
            Some(json!({"outcome": "Promise logged on the call."})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    check("post", "/api/tasks/{id}/close", s, &b);
    assert_eq!(b["status"], "done");
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/tasks/T-COL/close",
            Some(json!({"outcome": "again"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    // Only to a user who works the queues.
    for to in ["nobody", "eve"] {
        let (s, b) = f
            .as_user(
                "mo",
                Method::POST,
                "/api/tasks/T-MGR/assign",
                Some(json!({"to": to})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{to}: {b}");
        check("post", "/api/tasks/{id}/assign", s, &b);
    }
    // The manager assigns the manager task to Alice: now she sees and may close it.
    let (s, _) = f
        .as_user(
            "mo",
            Method::POST,
            "/api/tasks/T-MGR/assign",
            Some(json!({"to": "alice"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = f
        .as_user("alice", Method::GET, "/api/tasks?assignee=me", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["items"][0]["id"], "T-MGR");
    let (s, _) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/tasks/T-MGR/close",
            Some(json!({"outcome": "handled", "status": "cancelled"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        f.store().task("T-MGR").await.unwrap().status,
        TaskStatus::Cancelled
    );
    // Bad filters are 400s naming the parameter.
    let (s, b) = f
        .as_user("mo", Method::GET, "/api/tasks?status=closed", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"].as_str().unwrap().contains("status"), "{b}");
}

fn case(id: &str, kind: CaseKind, customer: &str, opened: &str) -> Case {
    Case {
        id: id.into(),
        customer_id: customer.into(),
        kind,
        status: CaseStatus::Open,
        invoice_numbers: vec![
            if customer == "C-ANN" {
                "INV-ANN-1"
            } else {
                "INV-BO-1"
            }
            .into(),
        ],
        disputed_amount: None,
        summary: "reason given".into(),
        opened_at: at(opened),
    }
}

#[tokio::test]
async fn the_case_list_filters_and_cases_are_taken_and_rejected() {
    let f = fixture().await;
    for c in [
        case("K1", CaseKind::Dispute, "C-ANN", "2026-11-10T18:00:00Z"),
        case(
            "K2",
            CaseKind::PaymentClaimed,
            "C-BO",
            "2026-11-19T18:00:00Z",
        ),
        case("K3", CaseKind::Hardship, "C-BO", "2026-11-20T12:00:00Z"),
    ] {
        f.store().insert_case(&c).await.unwrap();
    }
    let (s, b) = f.as_user("cy", Method::GET, "/api/cases", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    check("get", "/api/cases", s, &b);
    let rows: Vec<(&str, &str, i64)> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap(),
                c["age_bucket"].as_str().unwrap(),
                c["sla_age_hours"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("K1", ">=7d", 240), ("K2", "1-3d", 24), ("K3", "<1d", 6)]
    );
    assert_eq!(b["items"][0]["invoice_numbers"][0], "INV-ANN-1");

    let (s, b) = f
        .as_user("alice", Method::POST, "/api/cases/K1/take", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    check("post", "/api/cases/{id}/take", s, &b);
    assert_eq!(b["status"], "in_progress");
    let (s, _) = f
        .as_user("cy", Method::POST, "/api/cases/K2/take", None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "compliance moves no case");
    let (_, b) = f
        .as_user("alice", Method::GET, "/api/cases?owner=me", None)
        .await;
    assert_eq!(b["items"].as_array().unwrap().len(), 1);
    assert_eq!(b["items"][0]["owner"], "alice");
    let (_, b) = f
        .as_user(
            "alice",
            Method::GET,
            "/api/cases?kind=payment_claimed,hardship",
            None,
        )
        .await;
    assert_eq!(b["items"].as_array().unwrap().len(), 2);

    // A payment claim that does not stand is rejected through the existing resolve path;
    // a dispute cannot be.
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/cases/K2/resolve",
            Some(json!({"outcome": "rejected", "note": "no payment received"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    check("post", "/api/cases/{id}/resolve", s, &b);
    assert_eq!(b["status"], "rejected");
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/cases/K1/resolve",
            Some(json!({"outcome": "rejected", "note": "no"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (_, b) = f
        .as_user("alice", Method::GET, "/api/cases?status=all", None)
        .await;
    assert_eq!(b["items"].as_array().unwrap().len(), 3);
    let (_, b) = f.as_user("alice", Method::GET, "/api/cases", None).await;
    assert_eq!(
        b["items"].as_array().unwrap().len(),
        2,
        "rejected is not active"
    );
    let (s, _) = f
        .as_user("alice", Method::GET, "/api/cases?kind=complaint", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

fn promise(
    id: &str,
    cust: &str,
    minor: i64,
    date: &str,
    made: &str,
    invoices: &[&str],
) -> PromiseToPay {
    PromiseToPay {
        id: id.into(),
        customer_id: cust.into(),
        invoice_numbers: invoices.iter().map(|s| s.to_string()).collect(),
        amount: Money::new(minor, Currency::USD),
        promised_date: d(date),
        created_at: at(made),
        status: PromiseStatus::Open,
    }
}

async fn seed_promises(f: &Fixture) {
    for p in [
        // Today in Chicago (Friday 2026-11-20), still open.
        promise(
            "P-TODAY",
            "C-ANN",
            100_00,
            "2026-11-20",
            "2026-11-15T10:00:00Z",
            &["INV-ANN-1"],
        ),
        // Sunday of the same week.
        promise(
            "P-WEEK",
            "C-BO",
            50_00,
            "2026-11-22",
            "2026-11-15T10:00:00Z",
            &[],
        ),
        // Broken: nothing came.
        promise(
            "P-BROKEN",
            "C-BO",
            100_00,
            "2026-11-05",
            "2026-11-01T10:00:00Z",
            &["INV-BO-1"],
        ),
        // 200.00 of 300.00 came on 2026-06-24, inside the window: partially kept.
        promise(
            "P-PART",
            "C-ANN",
            300_00,
            "2026-06-22",
            "2026-06-20T10:00:00Z",
            &["C-ANN-H5"],
        ),
        // 500.00 of 500.00 came: kept.
        promise(
            "P-KEPT",
            "C-BO",
            500_00,
            "2026-06-22",
            "2026-06-20T10:00:00Z",
            &["C-BO-H5"],
        ),
    ] {
        f.store().insert_promise(&p).await.unwrap();
    }
}

#[tokio::test]
async fn the_promise_tracker_groups_by_the_viewers_today() {
    let f = fixture().await;
    seed_promises(&f).await;
    let ids = |b: &Value| -> Vec<String> {
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, b) = f
        .as_user(
            "alice",
            Method::GET,
            "/api/promises?due=today&tz=America/Chicago",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    check("get", "/api/promises", s, &b);
    assert_eq!(ids(&b), ["P-TODAY"]);
    assert_eq!(b["today"], "2026-11-20");
    // In Tokyo it is already Saturday: nothing is due today there.
    let (_, b) = f
        .as_user(
            "alice",
            Method::GET,
            "/api/promises?due=today&tz=Asia/Tokyo",
            None,
        )
        .await;
    assert_eq!(b["today"], "2026-11-21");
    assert_eq!(ids(&b), Vec::<String>::new());
    let (_, b) = f
        .as_user(
            "alice",
            Method::GET,
            "/api/promises?due=week&tz=America/Chicago",
            None,
        )
        .await;
    assert_eq!(ids(&b), ["P-TODAY", "P-WEEK"]);
    let (_, b) = f
        .as_user("alice", Method::GET, "/api/promises?due=broken", None)
        .await;
    assert_eq!(ids(&b), ["P-BROKEN"]);
    let (_, b) = f
        .as_user("alice", Method::GET, "/api/promises?due=partial", None)
        .await;
    assert_eq!(ids(&b), ["P-PART"]);
    assert_eq!(b["items"][0]["received"], "200.00");
    assert_eq!(b["items"][0]["standing"], "partially_kept");
    let (_, b) = f
        .as_user("alice", Method::GET, "/api/promises?due=kept", None)
        .await;
    assert_eq!(ids(&b), ["P-KEPT"]);
    assert_eq!(
        b["counts"],
        json!({"open": 2, "kept": 1, "partially_kept": 1, "broken": 1, "cancelled": 0})
    );
    let (s, b) = f
        .as_user("alice", Method::GET, "/api/promises?tz=Mars/Olympus", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"].as_str().unwrap().contains("tz"), "{b}");
}

async fn call_task(f: &Fixture, id: &str, customer: &str) {
    let mut tx = f.store().begin().await.unwrap();
    tx.insert_call_task(&CallTask {
        id: id.into(),
        call_id: format!("run-y/0/{id}"),
        customer_id: customer.into(),
        reason: "Two emails unanswered.".into(),
        script: "Hello, this is Argent Supplies calling about your account.".into(),
        not_before: None,
        status: CallTaskStatus::Open,
        created_at: at("2026-11-20T15:00:00Z"),
        done_at: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn call_outcomes_go_through_the_agents_policy_and_log_the_call() {
    let f = fixture().await;
    for (id, cust) in [
        ("CALL-1", "C-ANN"),
        ("CALL-2", "C-ANN"),
        ("CALL-3", "C-ANN"),
        ("CALL-4", "C-BO"),
        ("CALL-5", "C-BO"),
    ] {
        call_task(&f, id, cust).await;
    }
    // A call not to be made before Monday waits for Monday's page.
    let mut tx = f.store().begin().await.unwrap();
    tx.insert_call_task(&CallTask {
        id: "CALL-LATER".into(),
        call_id: "run-y/0/later".into(),
        customer_id: "C-BO".into(),
        reason: "After the weekend.".into(),
        script: "Hello.".into(),
        not_before: Some(at("2026-11-23T15:00:00Z")),
        status: CallTaskStatus::Open,
        created_at: at("2026-11-20T15:00:00Z"),
        done_at: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    seed_tasks(&f).await;
    seed_promises(&f).await;
    let (s, b) = f
        .as_user("alice", Method::GET, "/api/today?tz=America/Chicago", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    check("get", "/api/today", s, &b);
    assert_eq!(b["calls"].as_array().unwrap().len(), 5);
    let first = &b["calls"][0];
    assert_eq!(first["customer_name"], "Ann Lee");
    assert!(
        first["script"]
            .as_str()
            .unwrap()
            .contains("Argent Supplies")
    );
    assert_eq!(first["aging"][0]["total"], "USD 1200.00", "{first}");
    assert_eq!(first["open_promises"][0]["id"], "P-TODAY");
    // Alice's tasks due by the end of her day (the manager's is not hers to see).
    let due: Vec<&str> = b["tasks_due"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(due, ["T-COL"]);
    assert_eq!(b["promises_due"][0]["id"], "P-TODAY");

    // A promise missing its date is refused before anything is logged.
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/calls/CALL-1/outcome",
            Some(json!({"outcome": "promise", "amount": "300.00", "currency": "USD"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("promised_date"),
        "{b}"
    );
    assert_eq!(f.store().call_tasks(None, true).await.unwrap().len(), 6);
    // So is one the tool's schema refuses.
    let (s, b) = f
        .as_user("alice", Method::POST, "/api/calls/CALL-1/outcome", Some(json!({"outcome": "promise", "amount": "3,00", "currency": "USD", "promised_date": "2026-11-27"})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(f.store().call_tasks(None, true).await.unwrap().len(), 6);

    // Reached, promise: the agent's log_promise, allowed by policy; the call is a
    // conversation and the task is done.
    let (s, b) = f
        .as_user("alice", Method::POST, "/api/calls/CALL-1/outcome", Some(json!({"outcome": "promise", "amount": "300.00", "currency": "usd", "promised_date": "2026-11-27", "invoices": "INV-ANN-1", "note": "will pay Friday"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    check("post", "/api/calls/{id}/outcome", s, &b);
    assert_eq!(b["action"]["tool"], "log_promise");
    assert_eq!(b["action"]["status"], "executed", "{b}");
    assert_eq!(b["conversation"], true);
    let promises = f.store().promises(Some("C-ANN")).await.unwrap();
    assert!(
        promises
            .iter()
            .any(|p| p.amount.minor == 300_00 && p.promised_date == d("2026-11-27"))
    );
    // Reached, dispute: open_case through policy, which then refuses a promise on the
    // disputed invoice — for the collector as for the agent.
    let (s, b) = f
        .as_user("alice", Method::POST, "/api/calls/CALL-2/outcome", Some(json!({"outcome": "dispute", "invoices": "INV-ANN-1", "summary": "Says the goods never arrived."})))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["action"]["status"], "executed", "{b}");
    assert!(
        f.store()
            .cases(Some("C-ANN"))
            .await
            .unwrap()
            .iter()
            .any(|c| c.kind == CaseKind::Dispute)
    );
    let (s, b) = f
        .as_user("alice", Method::POST, "/api/calls/CALL-3/outcome", Some(json!({"outcome": "promise", "amount": "50.00", "currency": "USD", "promised_date": "2026-11-30", "invoices": "INV-ANN-1"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["action"]["status"], "refused", "{b}");
    assert!(!b["action"]["rules"].as_array().unwrap().is_empty());
    assert!(
        !f.store()
            .promises(Some("C-ANN"))
            .await
            .unwrap()
            .iter()
            .any(|p| p.amount.minor == 50_00)
    );
    // Not reached: an attempt, nothing else.
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/calls/CALL-4/outcome",
            Some(json!({"outcome": "not_reached"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["conversation"].as_bool(), b["action"].is_null()),
        (Some(false), true)
    );
    // Wrong number: a follow-up task for the collectors.
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/calls/CALL-5/outcome",
            Some(json!({"outcome": "wrong_number"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let follow = f
        .store()
        .task(b["follow_up_task"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        (follow.kind, follow.owner_role),
        (TaskKind::FollowUp, Role::Collector)
    );
    let left: Vec<String> = f
        .store()
        .call_tasks(None, true)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(left, ["CALL-LATER"]);
    // A call task already done is gone.
    let (s, _) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/calls/CALL-4/outcome",
            Some(json!({"outcome": "not_reached"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Compliance records nothing.
    let (s, _) = f
        .as_user(
            "cy",
            Method::POST,
            "/api/calls/CALL-4/outcome",
            Some(json!({"outcome": "not_reached"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The managers' counts.
    let (s, b) = f.as_user("mo", Method::GET, "/api/queues", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    check("get", "/api/queues", s, &b);
    let collector_open = b["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["owner_role"] == "collector" && t["status"] == "open")
        .unwrap();
    assert_eq!(collector_open["count"], 2, "{b}"); // T-COL and the wrong-number follow-up
    assert_eq!(b["cases"][0]["kind"], "dispute");
    assert_eq!(b["cases"][0]["by_age"]["<1d"], 1);
}

#[tokio::test]
async fn the_pages_list_and_work_the_queues_with_csrf_forms() {
    let f = fixture().await;
    seed_tasks(&f).await;
    seed_promises(&f).await;
    call_task(&f, "CALL-1", "C-ANN").await;
    f.store()
        .insert_case(&case(
            "K1",
            CaseKind::Dispute,
            "C-ANN",
            "2026-11-10T18:00:00Z",
        ))
        .await
        .unwrap();
    let mut alice = Browser::sign_in(&f.app, "alice").await;

    let today = alice.get("/today?tz=America/Chicago").await;
    assert_eq!(today.status, StatusCode::OK, "{}", today.body);
    assert!(today.body.contains("data-id=\"CALL-1\""));
    assert!(today.body.contains("Hello, this is Argent Supplies"));
    let token = csrf(&today.body);
    let res = alice
        .post(
            "/today/calls/CALL-1",
            &[
                ("_csrf", &token),
                ("outcome", "not_reached"),
                ("amount", ""),
                ("note", "voicemail"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(res.location.as_deref().unwrap().starts_with("/today?done="));
    assert!(f.store().call_tasks(None, true).await.unwrap().is_empty());
    // Without the token, nothing.
    let res = alice.post("/tasks/T-COL/assign", &[("to", "")]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    let list = alice.get("/tasks").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("T-COL") && !list.body.contains("T-MGR"));
    let page = alice.get("/tasks/T-COL").await;
    assert!(page.body.contains("id=\"take\""), "{}", page.body);
    let token = csrf(&page.body);
    let res = alice
        .post("/tasks/T-COL/assign", &[("_csrf", &token), ("to", "")])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let res = alice
        .post(
            "/tasks/T-COL/comment",
            &[("_csrf", &token), ("body", "on it")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let res = alice
        .post(
            "/tasks/T-COL/close",
            &[("_csrf", &token), ("status", "done"), ("outcome", "sorted")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let t = f.store().task("T-COL").await.unwrap();
    assert_eq!(
        (t.status, t.assignee.as_deref(), t.outcome.as_deref()),
        (TaskStatus::Done, Some("alice"), Some("sorted"))
    );
    let page = alice.get("/tasks/T-COL").await;
    assert!(page.body.contains("on it") && page.body.contains("sorted"));
    assert_eq!(
        alice.get("/tasks/T-MGR").await.status,
        StatusCode::NOT_FOUND
    );

    let cases = alice.get("/cases").await;
    assert_eq!(cases.status, StatusCode::OK, "{}", cases.body);
    assert!(cases.body.contains("data-id=\"K1\"") && cases.body.contains("10 d 0 h"));
    let token = csrf(&cases.body);
    let res = alice.post("/cases/K1/take", &[("_csrf", &token)]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let res = alice
        .post(
            "/cases/K1/step",
            &[
                ("_csrf", &token),
                ("to", "verification_sent"),
                ("note", "mailed"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        f.store().case("K1").await.unwrap().status,
        CaseStatus::VerificationSent
    );

    let promises = alice.get("/promises?due=partial").await;
    assert_eq!(promises.status, StatusCode::OK);
    assert!(promises.body.contains("P-PART") && !promises.body.contains("P-KEPT"));

    let mut mo = Browser::sign_in(&f.app, "mo").await;
    let dash = mo.get("/dashboard").await;
    assert_eq!(dash.status, StatusCode::OK, "{}", dash.body);
    assert!(
        dash.body.contains("id=\"work-queues\"") && dash.body.contains("data-role=\"manager\"")
    );
}

/// The desk page: active credit holds for everyone who may read them, referrals only for
/// managers, compliance and admins, decided by a manager only through CSRF forms (a
/// rejection needs a reason), each decision once, and the package as a download.
#[tokio::test]
async fn the_desk_page_shows_holds_and_a_manager_decides_referrals() {
    let f = fixture().await;
    let store = f.store();
    let now = Utc::now();
    store
        .place_credit_hold(&argent_store::NewCreditHold {
            id: "hold-1".into(),
            customer_id: "C-ANN".into(),
            reason: "procedure standard v1 step credit_hold".into(),
            placed_by: "worker".into(),
            work_id: Some("work-1".into()),
            now,
        })
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    for id in ["REF-1", "REF-2"] {
        tx.create_referral(&argent_store::NewReferral {
            id: id.into(),
            customer_id: "C-BO".into(),
            reason: "procedure standard v1 step agency_referral".into(),
            package: json!({"format": "argent.referral-package/1", "customer": {"id": "C-BO"}}),
            work_id: Some(format!("work-{id}")),
            created_by: "worker".into(),
            now,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let mut alice = Browser::sign_in(&f.app, "alice").await;
    let page = alice.get("/desk").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("data-id=\"hold-1\""), "{}", page.body);
    assert!(
        !page.body.contains("REF-1"),
        "a collector does not see referrals"
    );
    assert!(
        page.body.contains("href=\"/desk\""),
        "the nav links the page"
    );
    let token = csrf(&page.body);
    let res = alice
        .post(
            "/desk/referrals/REF-1/approve",
            &[("_csrf", &token), ("note", "")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    assert_eq!(
        alice.get("/desk/referrals/REF-1/package").await.status,
        StatusCode::FORBIDDEN
    );

    let mut cy = Browser::sign_in(&f.app, "cy").await;
    let page = cy.get("/desk").await;
    assert!(page.body.contains("data-id=\"REF-1\""), "{}", page.body);
    assert!(
        !page.body.contains("/desk/referrals/REF-1/approve"),
        "compliance reads only"
    );

    let mut mo = Browser::sign_in(&f.app, "mo").await;
    let page = mo.get("/desk").await;
    assert!(
        page.body.contains("/desk/referrals/REF-1/approve"),
        "{}",
        page.body
    );
    let token = csrf(&page.body);
    // No token: refused before anything happens.
    let res = mo
        .post("/desk/referrals/REF-1/approve", &[("note", "ok")])
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    // A rejection must say why.
    let res = mo
        .post(
            "/desk/referrals/REF-2/reject",
            &[("_csrf", &token), ("note", " ")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(res.body.contains("note"), "{}", res.body);
    let res = mo
        .post(
            "/desk/referrals/REF-1/approve",
            &[("_csrf", &token), ("note", "")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let res = mo
        .post(
            "/desk/referrals/REF-2/reject",
            &[("_csrf", &token), ("note", "paying on a plan")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    // Decided once: a second approval is a conflict, and nothing changed.
    let res = mo
        .post(
            "/desk/referrals/REF-2/approve",
            &[("_csrf", &token), ("note", "")],
        )
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.body);
    let r1 = store.referral("REF-1").await.unwrap();
    let r2 = store.referral("REF-2").await.unwrap();
    assert_eq!(r1.status, argent_store::ReferralStatus::Approved);
    assert_eq!(r1.decided_by.as_deref(), Some("mo"));
    assert_eq!(r2.status, argent_store::ReferralStatus::Rejected);
    assert_eq!(r2.note.as_deref(), Some("paying on a plan"));
    let page = mo.get("/desk").await;
    assert!(
        page.body.contains("mo, "),
        "the decision is shown: {}",
        page.body
    );
    assert!(!page.body.contains("/desk/referrals/REF-1/approve"));

    let pkg = mo.get("/desk/referrals/REF-1/package").await;
    assert_eq!(pkg.status, StatusCode::OK);
    let v: Value = serde_json::from_str(&pkg.body).unwrap();
    assert_eq!(v["package"]["customer"]["id"], "C-BO");
    assert_eq!(v["package_sha256"], r1.package_sha256.as_str());
}
