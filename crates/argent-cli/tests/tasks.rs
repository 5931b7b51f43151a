//! `argent tasks`, `argent cases list|take` and `argent promises list` on the embedded
//! SQLite store: writes act as the signed-in user with that user's role, and the store's
//! role rules refuse a collector what is not theirs.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output, Stdio};

use argent_core::{
    Case, CaseKind, CaseStatus, Currency, Money, PromiseStatus, PromiseToPay, Role, TaskKind,
};
use argent_store::{NewTask, Store};

const NOW: &str = "2026-11-20T18:00:00Z";

fn argent(db: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_argent"))
        .arg("--database")
        .arg(db)
        .arg("--now")
        .arg(NOW)
        .args(args)
        .env_remove("ARGENT_DATABASE_URL")
        .env_remove("ARGENT_TOKEN")
        .env_remove("ARGENT_TOKEN_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run argent");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "argent failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(out: Output) -> String {
    assert!(
        !out.status.success(),
        "expected a refusal: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn as_user<'a>(name: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend_from_slice(&["--user", name, "--password-stdin"]);
    v
}

async fn seed(db: &Path) {
    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    store
        .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "t")
        .await
        .unwrap();
    for (id, cust, role) in [
        ("T-COL", "C-ANN", Role::Collector),
        ("T-MGR", "C-BO", Role::Manager),
    ] {
        store
            .create_task(&NewTask {
                id: id.into(),
                kind: TaskKind::Escalation,
                customer_id: cust.into(),
                owner_role: role,
                assignee: None,
                title: format!("Escalation for {cust}"),
                body: "Asked for a person.".into(),
                due_at: Some("2026-11-21T10:00:00Z".parse().unwrap()),
                source: format!("run-1/0/{id}"),
                created_at: "2026-11-19T10:00:00Z".parse().unwrap(),
                actor: "agent".into(),
            })
            .await
            .unwrap();
    }
    store
        .insert_case(&Case {
            id: "K1".into(),
            customer_id: "C-BO".into(),
            kind: CaseKind::PaymentClaimed,
            status: CaseStatus::Open,
            invoice_numbers: vec!["INV-BO-1".into()],
            disputed_amount: None,
            summary: "says it was paid by wire".into(),
            opened_at: "2026-11-18T18:00:00Z".parse().unwrap(),
        })
        .await
        .unwrap();
    store
        .insert_promise(&PromiseToPay {
            id: "P-BROKEN".into(),
            customer_id: "C-BO".into(),
            invoice_numbers: vec!["INV-BO-1".into()],
            amount: Money::new(100_00, Currency::USD),
            promised_date: "2026-11-05".parse().unwrap(),
            created_at: "2026-11-01T10:00:00Z".parse().unwrap(),
            status: PromiseStatus::Open,
        })
        .await
        .unwrap();
    store.close().await;
}

#[tokio::test]
async fn tasks_cases_and_promises_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    seed(&db).await;
    for (name, role) in [("alice", "collector"), ("mo", "manager")] {
        ok(argent(
            &db,
            &["users", "add", name, "--role", role, "--password-stdin"],
            Some(&format!("{name}'s long password\n")),
        ));
    }
    let pw = |name: &str| format!("{name}'s long password\n");

    let out = ok(argent(&db, &["tasks", "list"], None));
    assert!(out.contains("T-COL") && out.contains("T-MGR"), "{out}");
    let out = ok(argent(&db, &["tasks", "list", "--role", "manager"], None));
    assert!(!out.contains("T-COL") && out.contains("T-MGR"), "{out}");

    // A collector may not close the manager's task.
    let err = refused(argent(
        &db,
        &as_user("alice", &["tasks", "close", "T-MGR", "--outcome", "done"]),
        Some(&pw("alice")),
    ));
    assert!(err.contains("not permitted"), "{err}");
    // She takes, comments on and closes her role's.
    let out = ok(argent(
        &db,
        &as_user("alice", &["tasks", "assign", "T-COL"]),
        Some(&pw("alice")),
    ));
    assert!(out.contains("assigned to alice"), "{out}");
    ok(argent(
        &db,
        &as_user(
            "alice",
            &["tasks", "comment", "T-COL", "--body", "called twice"],
        ),
        Some(&pw("alice")),
    ));
    let out = ok(argent(
        &db,
        &as_user(
            "alice",
            &["tasks", "close", "T-COL", "--outcome", "promise logged"],
        ),
        Some(&pw("alice")),
    ));
    assert!(out.contains("is done"), "{out}");
    let out = ok(argent(&db, &["tasks", "show", "T-COL"], None));
    assert!(
        out.contains("alice: called twice") && out.contains("outcome: promise logged"),
        "{out}"
    );
    let out = ok(argent(&db, &["tasks", "list"], None));
    assert!(
        !out.contains("T-COL"),
        "closed tasks leave the active list: {out}"
    );
    // The manager cancels his.
    ok(argent(
        &db,
        &as_user(
            "mo",
            &[
                "tasks",
                "close",
                "T-MGR",
                "--outcome",
                "duplicate",
                "--cancel",
            ],
        ),
        Some(&pw("mo")),
    ));
    let out = ok(argent(
        &db,
        &["tasks", "list", "--status", "cancelled"],
        None,
    ));
    assert!(out.contains("T-MGR"), "{out}");

    // Cases: listed with age and invoices, taken, rejected.
    let out = ok(argent(&db, &["cases", "list"], None));
    assert!(
        out.contains("K1") && out.contains("age 2 d 0 h") && out.contains("INV-BO-1"),
        "{out}"
    );
    let out = ok(argent(
        &db,
        &as_user("alice", &["cases", "take", "K1"]),
        Some(&pw("alice")),
    ));
    assert!(out.contains("in progress, owned by alice"), "{out}");
    let out = ok(argent(&db, &["cases", "list", "--owner", "alice"], None));
    assert!(
        out.contains("in_progress") && out.contains("owner alice"),
        "{out}"
    );
    ok(argent(
        &db,
        &as_user(
            "alice",
            &[
                "cases",
                "resolve",
                "K1",
                "--outcome",
                "rejected",
                "--note",
                "no wire found",
            ],
        ),
        Some(&pw("alice")),
    ));
    let out = ok(argent(
        &db,
        &["cases", "list", "--status", "rejected"],
        None,
    ));
    assert!(out.contains("K1"), "{out}");

    // Promises: the broken one, in the viewer's zone.
    let out = ok(argent(
        &db,
        &[
            "promises",
            "list",
            "--due",
            "broken",
            "--tz",
            "America/Chicago",
        ],
        None,
    ));
    assert!(out.contains("P-BROKEN") && out.contains("broken"), "{out}");
    let out = ok(argent(&db, &["promises", "list", "--due", "today"], None));
    assert!(out.contains("no promises (2026-11-20 in UTC)"), "{out}");
    let err = refused(argent(
        &db,
        &["promises", "list", "--tz", "Mars/Base"],
        None,
    ));
    assert!(err.contains("--tz"), "{err}");
}
