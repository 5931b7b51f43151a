//! `argent mail process|unmatched|assign` on the embedded SQLite store: received messages
//! are processed, the one that matches no customer waits in the unmatched queue, and a
//! signed-in collector assigns it (audited), after which it is processed as matched.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output, Stdio};

use argent_store::mail_in::NewInbound;
use argent_store::{AuditFilter, Store};

const NOW: &str = "2026-11-20T18:00:00Z";

fn argent(db: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_argent"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
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

async fn receive(store: &Store, id: &str, from: &str, extra: &str, body: &str) {
    let raw = format!(
        "From: {from}\r\nTo: ar@acme-ar.example\r\nSubject: Message {id}\r\nDate: Fri, 20 Nov 2026 17:30:00 +0000\r\nMessage-ID: <{id}@example.org>\r\n{extra}\r\n{body}\r\n"
    );
    assert!(
        store
            .insert_inbound_row(&NewInbound {
                id: id.into(),
                dedupe_key: id.into(),
                message_id: Some(format!("{id}@example.org")),
                source: "cli".into(),
                raw: raw.into_bytes(),
                raw_sha256: format!("sha-{id}"),
                received_at: NOW.parse().unwrap(),
            })
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn mail_is_processed_and_an_unmatched_message_assigned_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    {
        let store = Store::open(db.to_str().unwrap()).await.unwrap();
        store
            .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "t")
            .await
            .unwrap();
        receive(
            &store,
            "u1",
            "Stranger <stranger@example.org>",
            "",
            "Who are you?",
        )
        .await;
        receive(
            &store,
            "o1",
            "bo@mail.example",
            "Auto-Submitted: auto-replied\r\n",
            "I am out of the office until 30 November 2026.",
        )
        .await;
        store.close().await;
    }
    ok(argent(
        &db,
        &[
            "users",
            "add",
            "alice",
            "--role",
            "collector",
            "--password-stdin",
        ],
        Some("alice's long password\n"),
    ));

    let out = ok(argent(&db, &["mail", "process"], None));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["seen"], 2, "{out}");
    assert_eq!(report["unmatched"], 1, "{out}");
    assert_eq!(report["ignored"], 1, "{out}");

    let out = ok(argent(&db, &["mail", "unmatched"], None));
    assert!(
        out.contains("u1") && out.contains("stranger@example.org"),
        "{out}"
    );
    assert!(out.contains("1 unmatched message(s)"), "{out}");
    assert!(!out.contains("o1"), "{out}");

    let out = ok(argent(
        &db,
        &[
            "mail",
            "assign",
            "u1",
            "C-ANN",
            "--user",
            "alice",
            "--password-stdin",
        ],
        Some("alice's long password\n"),
    ));
    assert!(
        out.contains("u1: processed (customer C-ANN, matched by assigned)"),
        "{out}"
    );
    let out = ok(argent(&db, &["mail", "unmatched"], None));
    assert!(out.contains("0 unmatched message(s)"), "{out}");

    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    let ev = store
        .audit_events(&AuditFilter {
            kind: Some("mail.assigned".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].actor, "collector:alice");
    let bo = store.customer("C-BO").await.unwrap();
    assert_eq!(bo.facts.contact_paused_until, "2026-11-30".parse().ok());
    store.close().await;
}
