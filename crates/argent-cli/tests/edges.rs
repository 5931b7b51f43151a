//! The `argent` binary at its edges (issue #11): dates and periods out of range, and
//! standard output closed by the reader (`argent … | head`).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn argent(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_argent"))
        .arg("--database")
        .arg(db)
        .args(args)
        .env_remove("ARGENT_DATABASE_URL")
        .output()
        .expect("run argent")
}

fn repo(dir: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
        .display()
        .to_string()
}

/// A database with a small ledger in it.
fn ledger_db(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("e.db");
    let csv = dir.join("e.csv");
    let out = argent(
        &db,
        &[
            "demo-data",
            "--customers",
            "5",
            "--as-of",
            "2026-11-01",
            "--out",
            csv.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = argent(&db, &["import", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    db
}

#[test]
fn dates_and_periods_out_of_range_are_refused_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let db = ledger_db(dir.path());
    let range = "1970-01-01..=2199-12-31";
    let cases: &[(&[&str], &str, &str)] = &[
        (&["aging", "--as-of=-262143-01-01"], "--as-of", range),
        (&["aging", "--as-of=+262142-12-31"], "--as-of", range),
        (&["aging", "--as-of", "2200-01-01"], "--as-of", range),
        (&["aging", "--as-of", "1969-12-31"], "--as-of", range),
        (
            &["aging", "--dso-days", "4294967295"],
            "--dso-days",
            "1..=3660",
        ),
        (&["aging", "--dso-days", "0"], "--dso-days", "1..=3660"),
        (&["segments", "--as-of=-262143-01-01"], "--as-of", range),
        (&["demo-data", "--as-of=-262143-01-01"], "--as-of", range),
        (&["demo-data", "--as-of", "2200-01-01"], "--as-of", range),
        (
            &["--now", "2200-01-01T00:00:00Z", "approvals", "list"],
            "--now",
            range,
        ),
        (&["--now", "1969-12-31T23:00:00Z", "resume"], "--now", range),
        (
            &["audit", "export", "--since", "2200-01-01T00:00:00Z"],
            "--since",
            range,
        ),
        (
            &["audit", "export", "--until", "0001-01-01T00:00:00Z"],
            "--until",
            range,
        ),
        (
            &["serve", "--token-ttl-hours", "4294967295"],
            "--token-ttl-hours",
            "1..=8760",
        ),
        (
            &["serve", "--session-ttl-hours", "4294967295"],
            "--session-ttl-hours",
            "1..=8760",
        ),
    ];
    for (args, option, allowed) in cases {
        let out = argent(&db, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.contains(option), "{args:?} names {option}: {err}");
        assert!(err.contains(allowed), "{args:?} says {allowed}: {err}");
    }
    // The edges of the range work.
    for args in [
        &["aging", "--as-of", "1970-01-01", "--dso-days", "3660"][..],
        &["aging", "--as-of", "2199-12-31", "--dso-days", "3660"][..],
        &["segments", "--as-of", "2199-12-31"][..],
        &["--now", "2199-12-31T23:59:59Z", "approvals", "list"][..],
    ] {
        let out = argent(&db, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs `argent args` with its standard output a pipe whose reading end is closed before
/// the child writes anything (what `| head` does after its lines, made certain).
fn with_closed_stdout(db: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_argent"))
        .arg("--database")
        .arg(db)
        .args(args)
        .env_remove("ARGENT_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    Output {
        status,
        stdout: Vec::new(),
        stderr: stderr.into_bytes(),
    }
}

#[test]
fn a_reader_that_stops_early_ends_the_cli_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let db = ledger_db(dir.path());
    let policies = repo("policies");
    for args in [
        &["approvals", "list"][..],
        &["aging", "--as-of", "2026-11-01"][..],
        &["aging", "--as-of", "2026-11-01", "--format", "json"][..],
        &["segments", "--as-of", "2026-11-01"][..],
        &["demo-data", "--customers", "50"][..],
        &["policy", "check", "--dir", &policies][..],
        &["audit", "export"][..],
        &["docs", "list"][..],
    ] {
        let out = with_closed_stdout(&db, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        assert!(
            out.status.success() || out.status.code() == Some(141),
            "{args:?}: {:?} (signal {:?}): {err}",
            out.status,
            out.status.signal()
        );
    }
}
