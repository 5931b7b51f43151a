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
    let csv = write_portfolio(dir.path());
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
    // Each tick also snapshots the dashboard of the last complete UTC day, once.
    assert_eq!(r["snapshot"]["as_of"], "2026-11-19", "{out}");
    assert_eq!(r["snapshot"]["result"]["outcome"], "taken", "{out}");
    assert_eq!(again["snapshot"]["result"]["outcome"], "already_taken");
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

fn write_portfolio(dir: &Path) -> std::path::PathBuf {
    let csv = dir.join("p.csv");
    std::fs::write(
        &csv,
        "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H1,2026-03-01,2026-03-31,GBP,100.00,100.00,2026-03-30\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H2,2026-04-01,2026-04-30,GBP,100.00,100.00,2026-04-29\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H3,2026-05-01,2026-05-31,GBP,100.00,100.00,2026-05-30\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,I1,2026-10-01,2026-11-01,GBP,1500.00,,\n",
    )
    .unwrap();
    csv
}

/// `argent snapshot`: one date (default: yesterday per --now), or a backfill of a range;
/// a date that has a snapshot is left as it is; a backwards range is refused.
#[test]
fn snapshot_takes_each_date_once_and_backfills_a_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let csv = write_portfolio(dir.path());
    ok(argent(&db, &["import", csv.to_str().unwrap()]));
    let now = "2026-11-20T10:00:00Z";
    let out = ok(argent(&db, &["--now", now, "snapshot", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["as_of"], "2026-11-19", "{out}");
    assert_eq!(v[0]["result"]["outcome"], "taken", "{out}");
    // GBP total plus its one segment row.
    assert_eq!(v[0]["result"]["rows"], 2, "{out}");
    let out = ok(argent(
        &db,
        &["snapshot", "--from", "2026-11-17", "--as-of", "2026-11-19"],
    ));
    assert!(out.contains("2026-11-17  taken (2 rows)"), "{out}");
    assert!(out.contains("2026-11-18  taken (2 rows)"), "{out}");
    assert!(out.contains("2026-11-19  already taken"), "{out}");
    assert!(out.contains("2 of 3 dates snapshotted now"), "{out}");
    let back = argent(
        &db,
        &["snapshot", "--from", "2026-11-19", "--as-of", "2026-11-17"],
    );
    assert!(!back.status.success());
    let err = String::from_utf8_lossy(&back.stderr);
    assert!(
        err.contains("2026-11-19 is after --as-of 2026-11-17"),
        "{err}"
    );
    // Recorded in the trail, once per date.
    let trail = ok(argent(
        &db,
        &["audit", "export", "--kind", "dashboard.snapshot"],
    ));
    assert_eq!(trail.lines().count(), 3, "{trail}");
    assert!(
        trail.lines().all(|l| l.contains("dashboard.snapshot")),
        "{trail}"
    );
}
