//! End-to-end tests of the `argent` binary on the embedded SQLite store.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output};

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
fn every_subcommand_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let top = ok(argent(&db, &["--help"]));
    let subcommands = [
        "import",
        "demo-data",
        "aging",
        "segments",
        "policy",
        "run",
        "resume",
        "approvals",
        "audit",
        "outbox",
        "eval",
        "demo",
        "serve",
        "users",
        "docs",
        "login",
        "logout",
        "facts",
    ];
    for sub in subcommands {
        assert!(top.contains(sub), "top-level help lists {sub}");
        let help = ok(argent(&db, &[sub, "--help"]));
        assert!(
            help.contains(&format!("Usage: argent {sub}")),
            "{sub} --help:\n{help}"
        );
    }
    assert!(!db.exists(), "help must not create a database");
}

#[test]
fn a_broken_csv_leaves_the_database_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let good = dir.path().join("good.csv");
    ok(argent(
        &db,
        &[
            "demo-data",
            "--customers",
            "50",
            "--as-of",
            "2026-11-01",
            "--out",
            good.to_str().unwrap(),
        ],
    ));
    ok(argent(&db, &["import", good.to_str().unwrap()]));
    let snapshot = |db: &Path| {
        (
            ok(argent(
                db,
                &["aging", "--as-of", "2026-11-01", "--format", "json"],
            )),
            ok(argent(
                db,
                &["segments", "--as-of", "2026-11-01", "--format", "json"],
            )),
        )
    };
    let before = snapshot(&db);

    // A newer export of a larger ledger, valid for 800 rows, then a bad due date. (The
    // same seed: its first 50 customers are the ledger already imported, so the file agrees
    // with the stored invoices and payments; a different seed would reuse the invoice
    // numbers for other customers and amounts, which a re-import may not do.)
    let newer = dir.path().join("newer.csv");
    ok(argent(
        &db,
        &[
            "demo-data",
            "--customers",
            "80",
            "--as-of",
            "2026-11-01",
            "--out",
            newer.to_str().unwrap(),
        ],
    ));
    let text = std::fs::read_to_string(&newer).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut cells: Vec<String> = lines[800].split(',').map(str::to_string).collect();
    cells[12] = "2026-02-30".into(); // due_date
    lines[800] = cells.join(",");
    let broken = dir.path().join("broken.csv");
    std::fs::write(&broken, lines.join("\n")).unwrap();

    let out = argent(&db, &["import", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "line 801, column 13 (due_date): '2026-02-30' is not a date (expected YYYY-MM-DD)"
        ),
        "{err}"
    );
    assert_eq!(
        snapshot(&db),
        before,
        "nothing of the broken file was imported"
    );

    // The same file, fixed, imports.
    ok(argent(&db, &["import", newer.to_str().unwrap()]));
    assert_ne!(snapshot(&db), before);
}

/// A re-import that contradicts the stored ledger, or a row beyond the import's bounds, is
/// refused with its line and column, exit code 2, and nothing of the file imported.
#[test]
fn a_reimport_against_the_ledger_is_refused_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let header = "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date\n";
    let first = dir.path().join("first.csv");
    std::fs::write(
        &first,
        format!(
            "{header}C1,Acme Ltd,standard,b2b,UTC,ap@acme.example,I1,2026-08-01,2026-08-31,GBP,1000.00,400.00,2026-09-10\n"
        ),
    )
    .unwrap();
    ok(argent(&db, &["import", first.to_str().unwrap()]));
    let aging = || {
        ok(argent(
            &db,
            &["aging", "--as-of", "2026-11-15", "--format", "json"],
        ))
    };
    let before = aging();
    let cases = [
        (
            "C2,Bolt Inc,small,b2b,UTC,bo@bolt.example,I1,2026-08-01,2026-08-31,GBP,1000.00,,",
            "line 3, column 1 (customer_id): invoice I1 belongs to customer C1 in the ledger; a re-import cannot move it to customer C2",
        ),
        (
            "C1,Acme Ltd,standard,b2b,UTC,ap@acme.example,I1,2026-08-01,2026-08-31,GBP,300.00,,",
            "line 3, column 11 (amount): invoice I1 has GBP 400.00 paid on it; a re-import cannot lower its amount to GBP 300.00",
        ),
        (
            "C1,Acme Ltd,standard,b2b,UTC,ap@acme.example,I2,2026-08-01,2226-08-31,GBP,1.00,,",
            "line 3, column 9 (due_date): 2226-08-31 is outside the dates argent accepts (1970-01-01 to 2199-12-31)",
        ),
        (
            "C1,Acme Ltd,standard,b2b,UTC,ap@acme.example,I2,2026-08-01,2026-08-31,XYZ,1.00,,",
            "line 3, column 10 (currency): 'XYZ' is not an ISO 4217 currency code",
        ),
    ];
    for (bad, want) in cases {
        let file = dir.path().join("again.csv");
        std::fs::write(
            &file,
            format!(
                "{header}C3,Cole,small,b2b,UTC,c@cole.example,I3,2026-10-01,2026-10-31,GBP,5.00,,\n{bad}\n"
            ),
        )
        .unwrap();
        let out = argent(&db, &["import", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
        assert_eq!(aging(), before, "nothing of {bad} was imported");
    }
}

#[test]
fn aging_prints_buckets_and_dso() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let csv = dir.path().join("g.csv");
    std::fs::write(
        &csv,
        "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,I1,2026-08-01,2026-08-31,GBP,1000.00,400.00,2026-09-10\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,I2,2026-10-01,2026-10-31,GBP,500.00,,\n\
         C2,Bolt Inc,small,us-consumer,America/Chicago,bo@bolt.example,I3,2026-10-20,2026-11-10,USD,80.00,,\n",
    )
    .unwrap();
    ok(argent(&db, &["import", csv.to_str().unwrap()]));
    let out = ok(argent(
        &db,
        &["aging", "--as-of", "2026-11-15", "--dso-days", "90"],
    ));
    // GBP: I1 76 days past due (600.00 in 61-90), I2 15 days (500.00 in 1-30).
    assert!(out.contains("C1 Acme Ltd"), "{out}");
    let gbp = out
        .lines()
        .find(|l| l.starts_with("all customers") && l.contains("GBP"))
        .unwrap();
    let cols: Vec<&str> = gbp.split_whitespace().collect();
    assert_eq!(
        &cols[3..],
        ["0.00", "500.00", "0.00", "600.00", "0.00", "1100.00"],
        "{gbp}"
    );
    // Credit sales in the 90 days to 2026-11-15: I1 (Aug 1 is 106 days back) is out, I2 in.
    assert!(
        out.contains("DSO GBP: 198.0 days (open AR 1100.00 / credit sales 500.00 over 90 days)"),
        "{out}"
    );
    assert!(out.contains("DSO USD: 90.0 days"), "{out}");
}

#[test]
fn demo_runs_offline_on_a_fresh_database() {
    let dir = tempfile::tempdir().unwrap();
    let demo_db = dir.path().join("demo.db");
    let out = ok(Command::new(env!("CARGO_BIN_EXE_argent"))
        .args([
            "demo",
            "--customers",
            "30",
            "--days",
            "8",
            "--db",
            demo_db.to_str().unwrap(),
        ])
        .output()
        .unwrap());
    assert!(out.contains("sample portfolio of 30 customers"), "{out}");
    // The desk over simulated days, saying that the debtors are simulated, with a line
    // per day and DSO per currency at both ends.
    assert!(out.contains("8 simulated days from"), "{out}");
    assert!(out.contains("DEBTORS ARE SIMULATED"), "{out}");
    let days = out
        .lines()
        .filter(|l| l.contains(" steps enqueued, "))
        .count();
    assert_eq!(days, 8, "{out}");
    assert!(out.contains("procedure steps (enqueued"), "{out}");
    assert!(out.contains("DSO (90-day period) per currency"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("USD ") && l.contains(" -> ")),
        "{out}"
    );
    assert!(out.contains("risk segments (30 customers)"), "{out}");
    assert!(
        out.contains("offline (deterministic stand-in, not an LLM)"),
        "the stand-in is named: {out}"
    );
    assert!(out.contains("hash chain intact"), "{out}");
    let injection = out
        .lines()
        .filter(|l| l.starts_with("prompt injection"))
        .collect::<Vec<_>>();
    assert!(
        injection
            .iter()
            .any(|l| l.contains("propose_plan") && l.contains("refused")),
        "the 90% plan is refused: {out}"
    );
    assert!(
        !injection
            .iter()
            .any(|l| l.contains("propose_plan") && l.contains("executed")),
        "{out}"
    );
    assert!(ok(argent(&demo_db, &["audit", "verify"])).contains("intact"));

    // A compact copy of the demo database (VACUUM INTO: no WAL, no stale pages), then one
    // byte of one stored audit event flipped in the file: verify must fail.
    let copy = dir.path().join("copy.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = argent_store::Store::open(demo_db.to_str().unwrap())
            .await
            .unwrap();
        let sql = format!("VACUUM INTO '{}'", copy.display());
        argent_store::testkit::raw_execute(&s, &sql).await.unwrap();
        s.close().await;
    });
    // The file may also hold stale copies of pages (free pages), so try each place the
    // bytes of a model_call event appear: flip one byte, verify, put it back, until the
    // flipped byte is in a live event. Exactly then verify must fail.
    let original = std::fs::read(&copy).unwrap();
    let needle = br#""kind":"model_call""#;
    let hits: Vec<usize> = original
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| w == needle)
        .map(|(i, _)| i)
        .collect();
    assert!(!hits.is_empty(), "audit events are in the file");
    let mut detected = false;
    for at in hits {
        let mut bytes = original.clone();
        bytes[at + 9] ^= 0x01; // "model_call" -> "mndel_call"
        std::fs::write(&copy, &bytes).unwrap();
        let verify = argent(&copy, &["audit", "verify"]);
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
        }
        if verify.status.code() == Some(2) {
            let err = String::from_utf8_lossy(&verify.stderr).to_string();
            assert!(
                err.contains("BROKEN") && err.contains("was altered"),
                "{err}"
            );
            detected = true;
            break;
        }
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }
    assert!(
        detected,
        "a changed byte in a live audit event must break the chain"
    );
}

#[test]
fn policy_test_runs_the_shipped_cases_and_fails_a_broken_pack() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let out = ok(argent(
        &db,
        &[
            "policy",
            "test",
            "--quiet",
            "--dir",
            policies.to_str().unwrap(),
        ],
    ));
    let totals = out.lines().find(|l| l.ends_with(" failed")).unwrap();
    assert!(totals.ends_with(", 0 failed"), "{out}");
    let passed: usize = totals.split_whitespace().next().unwrap().parse().unwrap();
    assert!(passed >= 60, "{passed} cases");
    assert_eq!(out.lines().last(), Some(totals), "{out}");

    // Without --quiet every case is listed and the totals are still a line of their own,
    // the last one (they used to run into the next line).
    let full = ok(argent(
        &db,
        &["policy", "test", "--dir", policies.to_str().unwrap()],
    ));
    let last = full.lines().last().unwrap();
    assert_eq!(last, format!("{passed} passed, 0 failed"), "{full}");
    assert_eq!(
        full.lines().filter(|l| l.starts_with("PASS ")).count(),
        passed
    );
    assert!(
        full.lines()
            .any(|l| l.starts_with("expected outcomes: ") && l.ends_with(" deny")),
        "{full}"
    );

    // A copy of the packs whose US discount range is raised to 90% must fail its tests.
    let copy = dir.path().join("policies");
    std::fs::create_dir_all(copy.join("tests")).unwrap();
    for entry in std::fs::read_dir(&policies)
        .unwrap()
        .chain(std::fs::read_dir(policies.join("tests")).unwrap())
    {
        let p = entry.unwrap().path();
        if p.is_file() {
            let rel = p.strip_prefix(&policies).unwrap();
            let mut text = std::fs::read_to_string(&p).unwrap();
            if rel == Path::new("us-consumer.toml") {
                text = text
                    .replace("max_discount_percent = 30", "max_discount_percent = 95")
                    .replace("max_discount_percent = 25", "max_discount_percent = 95")
                    .replace("max_discount_percent = 20", "max_discount_percent = 95");
            }
            std::fs::write(copy.join(rel), text).unwrap();
        }
    }
    let out = argent(
        &db,
        &["policy", "test", "--quiet", "--dir", copy.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("policy test(s) failed"));
}

#[test]
fn a_run_killed_after_sending_resumes_without_sending_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let csv = dir.path().join("k.csv");
    std::fs::write(
        &csv,
        "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H1,2026-03-01,2026-03-31,GBP,100.00,100.00,2026-03-30\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H2,2026-05-01,2026-05-31,GBP,100.00,100.00,2026-05-30\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H3,2026-07-01,2026-07-31,GBP,100.00,100.00,2026-07-29\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,I1,2026-09-01,2026-10-01,GBP,1500.00,,\n",
    )
    .unwrap();
    ok(argent(&db, &["import", csv.to_str().unwrap()]));
    let now = "2026-11-20T14:00:00Z";

    // The child dies (SIGABRT) right after the send_email transaction commits, before the
    // run checkpoints that call's result.
    let crashed = Command::new(env!("CARGO_BIN_EXE_argent"))
        .args([
            "--database",
            db.to_str().unwrap(),
            "--now",
            now,
            "run",
            "--customer",
            "C1",
            "--step",
            "overdue_notice",
        ])
        .env("ARGENT_TEST_CRASH_AFTER", "send_email")
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the child must have died");
    assert!(String::from_utf8_lossy(&crashed.stderr).contains("aborting after commit"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = db.to_str().unwrap().to_string();
    let (emails, runs) = rt.block_on(async {
        let s = argent_store::Store::open(&url).await.unwrap();
        let out = (
            s.emails(None).await.unwrap().len(),
            s.runs(Some(argent_store::RunStatus::Running))
                .await
                .unwrap()
                .len(),
        );
        s.close().await;
        out
    });
    assert_eq!(
        (emails, runs),
        (1, 1),
        "the email is queued once and the run is unfinished"
    );

    let resumed = ok(argent(&db, &["--now", now, "resume"]));
    assert!(resumed.contains("finished after"), "{resumed}");
    assert!(resumed.contains("send_email    executed"), "{resumed}");
    rt.block_on(async {
        let s = argent_store::Store::open(&url).await.unwrap();
        assert_eq!(
            s.emails(None).await.unwrap().len(),
            1,
            "resuming did not send it again"
        );
        assert!(
            s.runs(Some(argent_store::RunStatus::Running))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            s.audit_verify().await.unwrap(),
            argent_store::AuditVerification::Intact { .. }
        ));
        let executed = s
            .audit_events(&argent_store::AuditFilter {
                kind: Some("executed".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            executed
                .iter()
                .filter(|e| e.payload["tool"] == "send_email")
                .count(),
            1
        );
        s.close().await;
    });
    assert!(ok(argent(&db, &["audit", "verify"])).contains("intact"));
    assert!(ok(argent(&db, &["--now", now, "resume"])).contains("no unfinished runs"));
}

#[test]
fn eval_run_writes_reports_and_compare_gates_a_weakened_policy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let base = dir.path().join("base.json");
    let out = ok(argent(
        &db,
        &[
            "eval",
            "run",
            "core",
            "--filter",
            "tag:injection,tag:plan",
            "--out",
            base.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("executed policy violations 0"), "{out}");
    let html = std::fs::read_to_string(base.with_extension("html")).unwrap();
    assert!(
        html.contains("<svg") && !html.contains("<script src"),
        "self-contained HTML"
    );
    // Same inputs: compare passes.
    ok(argent(
        &db,
        &[
            "eval",
            "compare",
            base.to_str().unwrap(),
            base.to_str().unwrap(),
        ],
    ));

    let policies = dir.path().join("weak");
    std::fs::create_dir_all(&policies).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    for pack in ["us-consumer.toml", "uk-consumer.toml", "b2b.toml"] {
        let text = std::fs::read_to_string(repo.join(pack)).unwrap();
        let weak: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("max_discount_percent") {
                    "max_discount_percent = 90".into()
                } else {
                    l.to_string()
                }
            })
            .collect();
        std::fs::write(policies.join(pack), weak.join("\n")).unwrap();
    }
    let weak = dir.path().join("weak.json");
    ok(argent(
        &db,
        &[
            "--policies",
            policies.to_str().unwrap(),
            "eval",
            "run",
            "core",
            "--filter",
            "tag:injection,tag:plan",
            "--out",
            weak.to_str().unwrap(),
        ],
    ));
    let cmp = argent(
        &db,
        &[
            "eval",
            "compare",
            base.to_str().unwrap(),
            weak.to_str().unwrap(),
        ],
    );
    assert_eq!(
        cmp.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&cmp.stdout)
    );
    assert!(String::from_utf8_lossy(&cmp.stderr).contains("regresses"));
}

#[test]
fn the_database_is_seeded_once_and_then_its_active_documents_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let csv = dir.path().join("d.csv");
    std::fs::write(
        &csv,
        "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H1,2026-03-01,2026-03-31,GBP,100.00,100.00,2026-03-30\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,I1,2026-09-01,2026-10-01,GBP,1500.00,,\n",
    )
    .unwrap();
    ok(argent(&db, &["import", csv.to_str().unwrap()]));
    assert!(ok(argent(&db, &["docs", "list"])).contains("no documents yet"));

    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let files = argent_agent::DocumentSet::from_dirs(&repo.join("prompts"), &repo.join("policies"))
        .unwrap();
    let now = "2026-11-20T14:00:00Z";
    let step = [
        "--now",
        now,
        "run",
        "--customer",
        "C1",
        "--step",
        "overdue_notice",
    ];
    let out = argent(&db, &step);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("seeded"),
        "the first run says it seeded"
    );
    ok(out);
    let listed = ok(argent(&db, &["docs", "list"]));
    let count = files.prompts.len() + files.policies.len() + files.procedures.len();
    assert!(listed.contains(&format!("{count} document(s)")), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["policy", "b2b", "1", "1", "1"]),
        "{listed}"
    );

    // A manager's new b2b version, activated: the next run uses it, and the directories
    // (here: ones that do not exist) are not read again.
    let b2b = files.policies["b2b"].clone() + "\n# reviewed by the manager\n";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = db.to_str().unwrap().to_string();
    rt.block_on(async {
        let s = argent_store::Store::open(&url).await.unwrap();
        let v = s
            .create_document_version(argent_store::DocKind::Policy, "b2b", &b2b, "maria", None)
            .await
            .unwrap();
        assert_eq!(v.version, 2);
        s.activate_document(argent_store::DocKind::Policy, "b2b", 2, "maria")
            .await
            .unwrap();
        s.close().await;
    });
    let out = argent(
        &db,
        &[
            "--prompts",
            "/nonexistent/prompts",
            "--policies",
            "/nonexistent/policies",
            "--now",
            now,
            "run",
            "--customer",
            "C1",
            "--step",
            "pre_due_reminder",
        ],
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("seeded"));
    ok(out);
    let expected = files.with_document(argent_store::DocKind::Policy, "b2b", &b2b);
    rt.block_on(async {
        let s = argent_store::Store::open(&url).await.unwrap();
        let started = s
            .audit_events(&argent_store::AuditFilter {
                kind: Some("run_started".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let versions: Vec<(String, String)> = started
            .iter()
            .map(|e| {
                (
                    e.payload["prompt_version"].as_str().unwrap().to_string(),
                    e.payload["policy_version"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            versions,
            vec![
                (files.prompt_version(), files.policy_version()),
                (expected.prompt_version(), expected.policy_version()),
            ]
        );
        let seeded = s
            .audit_events(&argent_store::AuditFilter {
                kind: Some("document.seed".into()),
                actor: Some("seed".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(seeded.len(), count);
        s.close().await;
    });
    assert!(ok(argent(&db, &["audit", "verify"])).contains("intact"));
    let listed = ok(argent(&db, &["docs", "list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["policy", "b2b", "2", "2", "2"]),
        "{listed}"
    );
}

#[test]
fn docs_validate_prints_each_problem_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v.db");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let us = std::fs::read_to_string(repo.join("policies/us-consumer.toml")).unwrap();
    let good = dir.path().join("us-consumer.toml");
    std::fs::write(&good, &us).unwrap();
    let out = ok(argent(
        &db,
        &["docs", "validate", "policy", good.to_str().unwrap()],
    ));
    assert!(out.starts_with("ok  "), "{out}");

    let line = us
        .lines()
        .position(|l| l.starts_with("max_discount_percent"))
        .unwrap()
        + 1;
    let bad_text = us.replacen(
        us.lines().nth(line - 1).unwrap(),
        "max_discount_percent = 150",
        1,
    );
    let bad = dir.path().join("bad").join("us-consumer.toml");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(&bad, bad_text).unwrap();
    let out = argent(&db, &["docs", "validate", "policy", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!(
            "{}:{line}:1: negotiation[0].max_discount_percent: ",
            bad.display()
        )),
        "{stdout}"
    );

    let prompt = dir.path().join("prompts").join("tone").join("firm.hbs");
    std::fs::create_dir_all(prompt.parent().unwrap()).unwrap();
    std::fs::write(&prompt, "Be firm.\n{{#if overdue}}\nAsk for a date.\n").unwrap();
    let out = argent(
        &db,
        &["docs", "validate", "prompt", prompt.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!("{}:2:1: ", prompt.display())),
        "{stdout}"
    );
    std::fs::write(&prompt, "Be firm with {{customer.name}}.\n").unwrap();
    let out = argent(
        &db,
        &["docs", "validate", "prompt", prompt.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(":1:"), "{stdout}");
    assert!(stdout.contains("customer.name"), "{stdout}");
    assert!(!db.exists(), "validate does not open the database");
}

#[test]
fn docs_validate_reports_a_self_including_prompt_and_an_oversized_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v.db");
    let prompt = dir.path().join("prompts").join("tone").join("firm.hbs");
    std::fs::create_dir_all(prompt.parent().unwrap()).unwrap();
    // This aborted the process with a stack overflow.
    std::fs::write(
        &prompt,
        "Be firm.\n{{#if company}}\n  {{> tone/firm}}\n{{/if}}\n",
    )
    .unwrap();
    let out = argent(
        &db,
        &["docs", "validate", "prompt", prompt.to_str().unwrap()],
    );
    // A problem (exit 2), not a crash (a signal, no exit code).
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!("{}:3:3: ", prompt.display())),
        "{stdout}"
    );
    assert!(stdout.contains("tone/firm → tone/firm"), "{stdout}");

    std::fs::write(&prompt, "x".repeat(64 * 1024 + 1)).unwrap();
    let out = argent(
        &db,
        &["docs", "validate", "prompt", prompt.to_str().unwrap()],
    );
    // A problem (exit 2), not a crash (a signal, no exit code).
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("65537 bytes") && stdout.contains("64 KiB"),
        "{stdout}"
    );
}

fn argent_as(user: Option<&str>, db: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_argent"));
    cmd.arg("--database")
        .arg(db)
        .args(args)
        .env_remove("ARGENT_DATABASE_URL");
    match user {
        Some(u) => cmd.env("USER", u),
        None => cmd.env_remove("USER"),
    };
    cmd.output().expect("run argent")
}

#[test]
fn eval_run_save_stores_the_run_and_its_comparison_for_the_web() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let first = dir.path().join("first.json");
    let args = |out: &Path| -> Vec<String> {
        [
            "eval",
            "run",
            "core",
            "--filter",
            "tag:injection",
            "--save",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.to_str().unwrap().to_string()])
        .collect()
    };
    let a: Vec<String> = args(&first);
    let out = ok(argent_as(
        Some("evaluator-eve"),
        &db,
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("saved as eval run "))
        .unwrap_or_else(|| panic!("no run id in:\n{out}"))
        .to_string();

    // --baseline compares with the stored run; without $USER the run is the CLI's.
    let second = dir.path().join("second.json");
    let mut b = args(&second);
    b.extend(["--baseline".to_string(), id.clone()]);
    b.extend(["--label".to_string(), "nightly".to_string()]);
    let out = ok(argent_as(
        None,
        &db,
        &b.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert!(out.contains("verdict: OK"), "{out}");
    let id2 = out
        .lines()
        .find_map(|l| l.strip_prefix("saved as eval run "))
        .unwrap()
        .to_string();

    // An unknown baseline is refused before anything runs or is stored.
    let mut c = args(&dir.path().join("third.json"));
    c.extend(["--baseline".to_string(), "no-such-run".to_string()]);
    let refused = argent_as(None, &db, &c.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no-such-run"));
    // --baseline without --save is a usage error.
    let usage = argent(&db, &["eval", "run", "core", "--baseline", &id]);
    assert!(!usage.status.success());

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = argent_store::Store::open(db.to_str().unwrap())
            .await
            .unwrap();
        assert_eq!(s.count_eval_runs().await.unwrap(), 2);
        let runs = s.eval_runs(10, 0).await.unwrap();
        assert_eq!(runs[0].id, id2, "newest first");
        assert_eq!(runs[1].id, id);

        let r1 = s.eval_run(&id).await.unwrap();
        assert_eq!(r1.run.status, argent_store::EvalRunStatus::Done);
        assert_eq!(r1.run.started_by, "evaluator-eve");
        assert_eq!(
            (
                r1.run.label.as_str(),
                r1.run.model.as_str(),
                r1.run.subject.as_str()
            ),
            ("core", "offline", "active")
        );
        // The stored report is the one written to --out.
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
        assert_eq!(r1.report.as_ref(), Some(&written));
        let summary = r1.run.summary.unwrap();
        assert!(summary["cases"].as_u64().unwrap() > 0, "{summary}");
        assert_eq!(summary["cases"], written["totals"]["cases"]);
        assert_eq!(summary["executed_violations"], 0);
        assert!(summary["regressed"].is_null() && r1.comparison.is_none());

        let r2 = s.eval_run(&id2).await.unwrap();
        assert_eq!(r2.run.started_by, "cli");
        assert_eq!(r2.run.label, "nightly");
        assert_eq!(r2.run.baseline_id.as_deref(), Some(id.as_str()));
        assert_eq!(r2.run.summary.unwrap()["regressed"], false);
        let cmp = r2.comparison.unwrap();
        assert!(cmp["regressions"].as_array().unwrap().is_empty(), "{cmp}");
        s.close().await;
    });
}

/// Runs argent with extra environment variables and, if given, `stdin` as standard input.
/// The caller's ARGENT_TOKEN / ARGENT_TOKEN_FILE never leak in.
fn argent_env(db: &Path, args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_argent"));
    cmd.arg("--database")
        .arg(db)
        .args(args)
        .env_remove("ARGENT_DATABASE_URL")
        .env_remove("ARGENT_TOKEN")
        .env_remove("ARGENT_TOKEN_FILE")
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run argent");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn failed(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected a refusal: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

const ACME_CSV: &str = "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date\n\
     C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H1,2026-03-01,2026-03-31,GBP,100.00,100.00,2026-03-30\n\
     C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H2,2026-05-01,2026-05-31,GBP,100.00,100.00,2026-05-30\n\
     C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,H3,2026-07-01,2026-07-31,GBP,100.00,100.00,2026-07-29\n\
     C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,I1,2026-09-01,2026-10-01,GBP,1500.00,,\n";

/// A database where the agent sent Acme an overdue notice (queued in the outbox).
fn acme_with_a_queued_email(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("acme.db");
    let csv = dir.join("acme.csv");
    std::fs::write(&csv, ACME_CSV).unwrap();
    ok(argent(&db, &["import", csv.to_str().unwrap()]));
    let out = ok(argent(
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
    assert!(out.contains("send_email    executed"), "{out}");
    db
}

fn with_store<T>(db: &Path, f: impl AsyncFnOnce(&argent_store::Store) -> T) -> T {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = argent_store::Store::open(db.to_str().unwrap())
            .await
            .unwrap();
        let out = f(&s).await;
        s.close().await;
        out
    })
}

/// Issue #11 item 9: the delivery's status change and its audit event commit together, so
/// a process killed right after the status change committed has also committed the event.
#[test]
fn a_crash_while_delivering_never_leaves_an_email_sent_without_its_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = acme_with_a_queued_email(dir.path());
    let mail = dir.path().join("mail");
    let crashed = argent_env(
        &db,
        &["outbox", "deliver", "--dir", mail.to_str().unwrap()],
        &[("ARGENT_TEST_CRASH_AFTER", "email_delivered")],
        None,
    );
    assert!(!crashed.status.success(), "the child must have died");
    assert!(String::from_utf8_lossy(&crashed.stderr).contains("aborting"));
    let (sent, delivered) = with_store(&db, async |s| {
        let sent: Vec<String> = s
            .emails(None)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.status == "sent")
            .map(|e| e.id)
            .collect();
        let delivered: Vec<String> = s
            .audit_events(&argent_store::AuditFilter {
                kind: Some("email_delivered".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.payload["outbox_id"].as_str().unwrap().to_string())
            .collect();
        (sent, delivered)
    });
    assert_eq!(
        sent.len(),
        1,
        "the crash came after the status change committed"
    );
    assert_eq!(
        sent, delivered,
        "marked sent only with its email_delivered event"
    );
    assert!(ok(argent(&db, &["audit", "verify"])).contains("intact"));
    let again = ok(argent(
        &db,
        &["outbox", "deliver", "--dir", mail.to_str().unwrap()],
    ));
    assert!(again.contains("delivered 0 email(s)"), "{again}");
}

/// Issue #11 item 8: `audit keygen`, `audit checkpoint`, and `audit verify --checkpoints`
/// on the command line; a tail removed with the triggers dropped is invisible to the chain
/// alone and reported as a truncation against the checkpoint.
#[test]
fn signed_checkpoints_outside_the_database_detect_a_truncated_tail() {
    let dir = tempfile::tempdir().unwrap();
    let db = acme_with_a_queued_email(dir.path());
    let key = dir.path().join("keys").join("audit.key");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    let out = argent(&db, &["audit", "keygen", "--out", key.to_str().unwrap()]);
    let public = ok(out).trim().to_string();
    assert_eq!(public.len(), 64, "{public}");
    assert!(public.bytes().all(|b| b.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let before = std::fs::read(&key).unwrap();
    let again = failed(&argent(
        &db,
        &["audit", "keygen", "--out", key.to_str().unwrap()],
    ));
    assert!(again.contains("refusing to overwrite"), "{again}");
    assert_eq!(std::fs::read(&key).unwrap(), before);

    let cps = dir.path().join("checkpoints.jsonl");
    let written = ok(argent(
        &db,
        &[
            "audit",
            "checkpoint",
            "--key",
            key.to_str().unwrap(),
            "--out",
            cps.to_str().unwrap(),
        ],
    ));
    let head: i64 = with_store(&db, async |s| match s.audit_verify().await.unwrap() {
        argent_store::AuditVerification::Intact { events, .. } => events,
        other => panic!("{other:?}"),
    });
    assert!(written.contains(&format!("event {head}")), "{written}");
    let pub_file = dir.path().join("audit.pub");
    std::fs::write(&pub_file, format!("{public}\n")).unwrap();
    for pk in [public.as_str(), pub_file.to_str().unwrap()] {
        let out = ok(argent(
            &db,
            &[
                "audit",
                "verify",
                "--checkpoints",
                cps.to_str().unwrap(),
                "--public-key",
                pk,
            ],
        ));
        assert!(out.contains("audit trail intact"), "{out}");
        assert!(
            out.contains(&format!("the newest signs event {head}")),
            "{out}"
        );
    }

    // An insider removes the last three events and moves the head back.
    let keep = head - 3;
    with_store(&db, async |s| {
        argent_store::testkit::raw_execute(
            s,
            &format!(
                "DROP TRIGGER audit_events_no_delete; DROP TRIGGER audit_head_forward_only; \
                 DELETE FROM audit_events WHERE seq > {keep}; \
                 UPDATE audit_head SET seq = {keep}, \
                 hash = (SELECT hash FROM audit_events WHERE seq = {keep}) WHERE id = 1;"
            ),
        )
        .await
        .unwrap();
    });
    let alone = argent(&db, &["audit", "verify"]);
    assert!(
        String::from_utf8_lossy(&alone.stdout)
            .contains(&format!("audit chain: intact, {keep} events")),
        "the chain alone cannot tell: {}",
        String::from_utf8_lossy(&alone.stdout)
    );
    let out = argent(
        &db,
        &[
            "audit",
            "verify",
            "--checkpoints",
            cps.to_str().unwrap(),
            "--public-key",
            &public,
        ],
    );
    let err = failed(&out);
    assert!(
        err.contains(&format!(
            "truncation: the checkpoint on line 1 signed event {head}, but the chain now ends at event {keep}"
        )),
        "{err}"
    );
    // A checkpoint is not signed on top of it.
    let refused = failed(&argent(
        &db,
        &[
            "audit",
            "checkpoint",
            "--key",
            key.to_str().unwrap(),
            "--out",
            cps.to_str().unwrap(),
        ],
    ));
    assert!(refused.contains("not signing a checkpoint"), "{refused}");
}

/// Issue #11 item 8(b) from the command line: a policy whose text was changed in the
/// database is not loaded by `argent run`, and `audit verify` names it.
#[test]
fn a_policy_changed_in_the_database_is_refused_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = acme_with_a_queued_email(dir.path());
    with_store(&db, async |s| {
        argent_store::testkit::raw_execute(
            s,
            "DROP TRIGGER documents_version_immutable; \
             UPDATE documents SET body = body || '\n# weakened' WHERE kind = 'policy' AND name = 'b2b'",
        )
        .await
        .unwrap();
    });
    let err = failed(&argent(
        &db,
        &[
            "--now",
            "2026-11-20T14:00:00Z",
            "run",
            "--customer",
            "C1",
            "--step",
            "pre_due_reminder",
        ],
    ));
    assert!(
        err.contains("refusing to load the active documents")
            && err.contains("policy 'b2b' version 1"),
        "{err}"
    );
    let err = failed(&argent(&db, &["audit", "verify"]));
    assert!(err.contains("document: policy 'b2b' version 1"), "{err}");
}

/// Issue #11 item 19: approvals are decided as a real, signed-in user with the role the
/// database gives them; `--as/--role` are refused; `audit verify` cross-checks the
/// approval rows against their decision events.
#[test]
fn cli_decisions_are_made_as_a_signed_in_user() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let now = "2026-11-20T18:00:00Z";
    // Two pending plans for Ann, queued by the agent over the database's documents.
    let ids: Vec<String> = with_store(&db, async |s| {
        s.import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
            .await
            .unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let files =
            argent_agent::DocumentSet::from_dirs(&repo.join("prompts"), &repo.join("policies"))
                .unwrap();
        s.seed_documents(&files.entries(), "seed").await.unwrap();
        let model = argent_llm::ScriptedModel::new();
        for i in 0..2 {
            model.push_tool_calls(vec![argent_llm::ToolCall::new(
                format!("c{i}"),
                "propose_plan",
                argent_agent::testing::ann_plan_20_percent().to_string(),
            )]);
            model.push_text("Done.");
        }
        let agent = argent_agent::Agent::from_documents(
            s.clone(),
            Arc::new(model),
            &files,
            argent_agent::AgentConfig {
                clock: argent_agent::Clock::Fixed(now.parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        for _ in 0..2 {
            agent
                .start(
                    "C-ANN",
                    argent_agent::Trigger::Step {
                        step: "overdue_notice".into(),
                    },
                )
                .await
                .unwrap();
        }
        s.approvals(Some(argent_store::ApprovalStatus::Pending), 10, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect()
    });
    assert_eq!(ids.len(), 2);
    let token_file = dir.path().join("home").join("argent-token");
    let tf = token_file.to_str().unwrap();
    let home = dir.path().join("home");
    let env = [("ARGENT_TOKEN_FILE", tf), ("HOME", home.to_str().unwrap())];
    let approve = |id: &str, extra: &[&str], envs: &[(&str, &str)], stdin: Option<&str>| {
        let mut args = vec!["--now", now, "approvals", "approve", id, "--note", "ok"];
        args.extend_from_slice(extra);
        argent_env(&db, &args, envs, stdin)
    };

    // A self-declared identity is refused, signed in or not.
    let err = failed(&approve(
        &ids[0],
        &["--as", "mallory", "--role", "admin"],
        &env,
        None,
    ));
    assert!(
        err.contains("--as and --role are no longer accepted"),
        "{err}"
    );
    let err = failed(&approve(&ids[0], &[], &env, None));
    assert!(err.contains("not signed in"), "{err}");

    for (name, role) in [("alice", "collector"), ("eve", "evaluator")] {
        ok(argent_env(
            &db,
            &["users", "add", name, "--role", role, "--password-stdin"],
            &[],
            Some(&format!("{name}'s long password\n")),
        ));
    }
    // No user mallory, and a wrong password, are the same refusal.
    for (name, pw) in [
        ("mallory", "whatever it is\n"),
        ("alice", "not her password\n"),
    ] {
        let err = failed(&argent_env(
            &db,
            &["login", name, "--password-stdin"],
            &env,
            Some(pw),
        ));
        assert!(err.contains("wrong user name or password"), "{err}");
    }
    assert!(!token_file.exists());
    // An evaluator does not decide queue items.
    let err = failed(&approve(
        &ids[0],
        &["--user", "eve", "--password-stdin"],
        &env,
        Some("eve's long password\n"),
    ));
    assert!(err.contains("user eve is evaluator"), "{err}");

    let out = ok(argent_env(
        &db,
        &["login", "alice", "--password-stdin"],
        &env,
        Some("alice's long password\n"),
    ));
    assert!(out.contains("signed in as alice (collector)"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let out = ok(approve(&ids[0], &[], &env, None));
    assert!(out.contains(&format!("approved {}", ids[0])), "{out}");

    // The token also works from ARGENT_TOKEN, with no token file.
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    let elsewhere = dir.path().join("none");
    let by_env = [
        ("ARGENT_TOKEN", token.as_str()),
        ("ARGENT_TOKEN_FILE", elsewhere.to_str().unwrap()),
    ];
    ok(argent_env(
        &db,
        &["--now", now, "approvals", "reject", &ids[1], "--note", "no"],
        &by_env,
        None,
    ));

    let (actors, decided): (Vec<String>, Vec<(String, String)>) = with_store(&db, async |s| {
        let actors = s
            .audit_events(&argent_store::AuditFilter {
                kind: Some("approval_decided".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.actor)
            .collect();
        let mut decided = Vec::new();
        for id in &ids {
            let a = s.approval(id).await.unwrap();
            decided.push((a.decided_by.unwrap(), a.decided_role.unwrap()));
        }
        (actors, decided)
    });
    assert_eq!(actors, ["collector:alice", "collector:alice"]);
    assert_eq!(
        decided,
        [
            ("alice".to_string(), "collector".to_string()),
            ("alice".to_string(), "collector".to_string())
        ]
    );
    assert!(ok(argent(&db, &["audit", "verify"])).contains("audit trail intact"));

    // Signed out, the token is revoked wherever it is used.
    ok(argent_env(&db, &["logout"], &env, None));
    assert!(!token_file.exists());
    let err = failed(&argent_env(
        &db,
        &["--now", now, "approvals", "reject", &ids[0], "--note", "x"],
        &by_env,
        None,
    ));
    assert!(err.contains("unknown or has expired"), "{err}");

    // The decider of an approval changed in the database: verify names both.
    with_store(&db, async |s| {
        argent_store::testkit::raw_execute(
            s,
            &format!(
                "UPDATE approvals SET decided_by = 'mallory', decided_role = 'admin' WHERE id = '{}'",
                ids[0]
            ),
        )
        .await
        .unwrap();
    });
    let err = failed(&argent(&db, &["audit", "verify"]));
    assert!(
        err.contains(&format!("approval decision: approval {}", ids[0]))
            && err.contains("approved by admin:mallory")
            && err.contains("says approved by collector:alice"),
        "{err}"
    );
}

/// Issue #11 item 8(b): a queued email whose body or recipient was changed in the database
/// is not delivered; the refusal names both hashes and is audited.
#[test]
fn a_queued_email_changed_in_the_database_is_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let db = acme_with_a_queued_email(dir.path());
    with_store(&db, async |s| {
        argent_store::testkit::raw_execute(
            s,
            "UPDATE outbox SET to_addr = 'mallory@evil.example', body = body || ' Wire it to us.'",
        )
        .await
        .unwrap();
    });
    let mail = dir.path().join("mail");
    let err = failed(&argent(
        &db,
        &["outbox", "deliver", "--dir", mail.to_str().unwrap()],
    ));
    assert!(
        err.contains("1 email(s) not sent") && err.contains("recorded"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&mail).map_or(0, |d| d.count()),
        0,
        "nothing delivered"
    );
    let refused = with_store(&db, async |s| {
        s.audit_events(&argent_store::AuditFilter {
            kind: Some("email_refused".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
    });
    assert_eq!(refused, 1);
    let err = failed(&argent(&db, &["audit", "verify"]));
    assert!(err.contains("outbox content"), "{err}");
}

#[test]
fn docs_requests_lists_the_activation_requests_waiting_for_a_second_person() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let url = db.to_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let s = argent_store::Store::open(&url).await.unwrap();
        let kind = argent_store::DocKind::Policy;
        s.seed_documents(&[(kind, "b2b".into(), "id = 'b2b'".into())], "seed")
            .await
            .unwrap();
        s.create_document_version(kind, "b2b", "id = 'b2b' # 2", "mo", None)
            .await
            .unwrap();
        let who = argent_store::DocActor::new("mo", "manager");
        let r = s
            .request_document_activation(kind, "b2b", 2, &who, "tighter terms")
            .await
            .unwrap();
        s.close().await;
        r.id
    });
    let pending = ok(argent(&db, &["docs", "requests"]));
    assert!(pending.contains(&id), "{pending}");
    assert!(pending.contains("b2b 1 → 2"), "{pending}");
    assert!(pending.contains("by manager:mo"), "{pending}");
    assert!(pending.contains("tighter terms"), "{pending}");
    assert!(pending.contains("1 request(s)"), "{pending}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = argent_store::Store::open(&url).await.unwrap();
        let cy = argent_store::DocActor::new("cy", "compliance");
        s.reject_document_request(&id, &cy, "not now")
            .await
            .unwrap();
        s.close().await;
    });
    assert!(ok(argent(&db, &["docs", "requests"])).contains("0 request(s)"));
    let all = ok(argent(&db, &["docs", "requests", "--all"]));
    assert!(all.contains("rejected"), "{all}");
}
