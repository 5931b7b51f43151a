//! `argent timeline` and `argent contacts report` on a real database: an import, a dunning
//! run that queues an email, and what the two commands print.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output};

const CSV: &str = "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date\n\
     C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H1,2026-03-01,2026-03-31,GBP,100.00,100.00,2026-03-30\n\
     C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H2,2026-05-01,2026-05-31,GBP,100.00,100.00,2026-05-30\n\
     C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H3,2026-07-01,2026-07-31,GBP,100.00,100.00,2026-07-29\n\
     C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,I1,2026-09-01,2026-10-01,GBP,1500.00,,\n";

fn argent(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_argent"))
        .arg("--database")
        .arg(db)
        .args(args)
        .env_remove("ARGENT_DATABASE_URL")
        .output()
        .expect("run argent")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "argent failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn timeline_and_contact_report_print_the_accounts_history() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let csv = dir.path().join("acme.csv");
    std::fs::write(&csv, CSV).unwrap();
    ok(argent(&db, &["import", csv.to_str().unwrap()]));
    ok(argent(
        &db,
        &[
            "--now",
            "2026-11-20T14:00:00Z",
            "run",
            "--customer",
            "C1",
            "--step",
            "overdue_notice",
        ],
    ));

    let out = ok(argent(&db, &["timeline", "--customer", "C1"]));
    assert!(out.starts_with("Acme Ltd (C1) — "), "{out}");
    assert!(out.contains("times in Europe/London"), "{out}");
    for want in [
        "email.drafted",
        "email.queued",
        "run ",
        "invoice.due",
        "payment",
    ] {
        assert!(out.contains(want), "{want}:\n{out}");
    }
    // Invoice I1 fell due at midnight in London (BST, +01:00, on 1 October).
    assert!(
        out.contains("2026-10-01T00:00:00+01:00  invoice.due"),
        "{out}"
    );
    // Paged: a cursor to the rest.
    let first = ok(argent(
        &db,
        &["timeline", "--customer", "C1", "--limit", "2"],
    ));
    let more = first
        .lines()
        .find_map(|l| l.strip_prefix("more: argent timeline --customer C1 --after "))
        .unwrap();
    let second = ok(argent(
        &db,
        &[
            "timeline",
            "--customer",
            "C1",
            "--limit",
            "2",
            "--after",
            more,
        ],
    ));
    let body = |s: &str| {
        s.lines()
            .skip(1)
            .take(2)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let all: Vec<String> = out.lines().skip(1).map(str::to_string).collect();
    assert_eq!(body(&first), all[..2]);
    assert_eq!(body(&second), all[2..4]);
    let json = ok(argent(
        &db,
        &["timeline", "--customer", "C1", "--format", "json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["customer_id"], "C1");

    let report = ok(argent(&db, &["contacts", "report", "--customer", "C1"]));
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert!(lines[0].starts_with("at_utc,at_local,time_zone,channel,recipient"));
    assert!(
        lines[1].contains(",Europe/London,email,ap@acme.example,"),
        "{report}"
    );
    assert!(lines[1].contains(",queued,allow,"), "{report}");
    let jsonl = ok(argent(
        &db,
        &[
            "contacts",
            "report",
            "--customer",
            "C1",
            "--format",
            "jsonl",
            "--to",
            "2026-01-01",
        ],
    ));
    assert_eq!(jsonl, "", "nothing before 2026");

    let bad = argent(&db, &["timeline", "--customer", "NOBODY"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("NOBODY"));
    let bad = argent(
        &db,
        &[
            "contacts",
            "report",
            "--customer",
            "C1",
            "--from",
            "2026-13-01",
        ],
    );
    assert!(!bad.status.success());
}
