//! Issue #17 at the command line: a run the model cannot finish needs a person and is
//! listed by `argent runs list --status needs_person`; help texts say what is true.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

fn argent(db: &Path, args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_argent"));
    cmd.arg("--database")
        .arg(db)
        .args(args)
        .env_remove("ARGENT_DATABASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ARGENT_LLM_API_KEY")
        .env_remove("ARGENT_CHECK_MODEL");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run argent")
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

/// An OpenAI-compatible endpoint on 127.0.0.1 that answers every request HTTP 503 (a
/// model server that is down); returns its base URL.
fn down_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            // Read the headers, then the body by Content-Length.
            while let Ok(n) = s.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            let body = r#"{"error":{"message":"the model is loading","type":"server_error"}}"#;
            let _ = write!(
                s,
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/v1")
}

#[test]
fn a_run_the_model_cannot_finish_is_listed_as_needing_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let csv = dir.path().join("r.csv");
    std::fs::write(
        &csv,
        "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,I1,2026-09-01,2026-10-01,GBP,1500.00,,\n",
    )
    .unwrap();
    ok(argent(&db, &["import", csv.to_str().unwrap()], &[]));
    let envs = [
        ("ARGENT_LLM_MODEL", "small-local".to_string()),
        ("ARGENT_LLM_BASE_URL", down_server()),
        ("ARGENT_LLM_MAX_RETRIES", "0".to_string()),
    ];
    let run = argent(
        &db,
        &[
            "--now",
            "2026-11-20T14:00:00Z",
            "--model",
            "openai",
            "run",
            "--customer",
            "C1",
            "--step",
            "overdue_notice",
        ],
        &envs,
    );
    let out = ok(run);
    assert!(out.contains("needs_person"), "{out}");
    assert!(out.contains("HTTP 503"), "{out}");
    let run_id = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let task = format!("TASK-RUN-{run_id}");
    assert!(out.contains(&task), "{out}");

    let listed = ok(argent(
        &db,
        &["runs", "list", "--status", "needs_person"],
        &[],
    ));
    assert!(listed.contains(&run_id), "{listed}");
    assert!(listed.contains(&task), "{listed}");
    let finished = ok(argent(&db, &["runs", "list", "--status", "finished"], &[]));
    assert!(finished.contains("no runs"), "{finished}");
    let bad = argent(&db, &["runs", "list", "--status", "lost"], &[]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("needs_person"));

    let shown = ok(argent(&db, &["runs", "show", &run_id], &[]));
    assert!(
        shown.contains("#0 system") && shown.contains("#1 user"),
        "{shown}"
    );

    let tasks = ok(argent(&db, &["tasks", "list"], &[]));
    assert!(tasks.contains(&task), "{tasks}");
}

#[test]
fn help_texts_say_what_is_true() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let demo = ok(argent(&db, &["demo", "--help"], &[]));
    assert!(
        demo.contains("With the default `--model offline`: no network, no key"),
        "{demo}"
    );
    assert!(demo.contains("With `--model openai`"), "{demo}");
    let eval = ok(argent(&db, &["eval", "run", "--help"], &[]));
    assert!(
        eval.contains("`eval run` takes `offline`, `openai`, `replay`"),
        "{eval}"
    );
    // What `eval run` refuses is refused with the values it takes.
    let refused = argent(&db, &["--model", "scripted:x", "eval", "run", "core"], &[]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("offline, replay, openai, record-offline, record:DIR or replay:DIR"),
        "{err}"
    );
}
