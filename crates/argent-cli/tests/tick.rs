//! `argent tick` and `argent procedures status` on a fresh database: the documents
//! (procedures included) are seeded, every overdue account gets its step once, a re-run
//! enqueues nothing, and the status shows where accounts stand.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output};

fn argent(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_argent"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .arg("--database")
        .arg(db)
        .args(args)
        .env_remove("ARGENT_DATABASE_URL")
        .output()
        .unwrap()
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

#[test]
fn tick_enqueues_each_step_once_and_status_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let csv = dir.path().join("p.csv");
    std::fs::write(
        &csv,
        "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H1,2026-03-01,2026-03-31,GBP,100.00,100.00,2026-03-30\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H2,2026-04-01,2026-04-30,GBP,100.00,100.00,2026-04-29\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H3,2026-05-01,2026-05-31,GBP,100.00,100.00,2026-05-30\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,I1,2026-10-01,2026-11-01,GBP,1500.00,,\n",
    )
    .unwrap();
    ok(argent(&db, &["import", csv.to_str().unwrap()]));
    let now = "2026-11-20T10:00:00Z";
    let out = ok(argent(&db, &["--now", now, "tick", "--format", "json"]));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["customers"], 1, "{out}");
    assert_eq!(r["due"], 1, "{out}");
    assert_eq!(r["enqueued"], 1, "{out}");
    let again: serde_json::Value = serde_json::from_str(&ok(argent(
        &db,
        &["--now", now, "tick", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(again["enqueued"], 0);
    let listed = ok(argent(&db, &["docs", "list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("procedure") && l.contains("standard")),
        "{listed}"
    );
    let status = ok(argent(&db, &["procedures", "status", "--customer", "C1"]));
    assert!(status.contains("status     active"), "{status}");
    assert!(status.contains("overdue_notice"), "{status}");
    let summary = ok(argent(&db, &["--now", now, "procedures", "status"]));
    assert!(summary.contains("1 accounts, 1 due today"), "{summary}");
    let unknown = argent(&db, &["procedures", "status", "--customer", "NOPE"]);
    assert!(!unknown.status.success());
}
