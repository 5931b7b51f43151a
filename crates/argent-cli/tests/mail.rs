//! `argent mail` as a process against a real Dovecot on 127.0.0.1 (the harness of
//! argent-worker's tests), on SQLite and (with ARGENT_TEST_POSTGRES_URL) PostgreSQL:
//! `mail fetch` stores each message once and nothing on a second run, survives kill -9 at
//! any point without losing or duplicating a message, and `mail receive` dedupes with what
//! IMAP stored.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

#[path = "common/db.rs"]
mod db;
use db::Db;

#[path = "../../argent-worker/tests/dovecot/mod.rs"]
mod dovecot;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use argent_store::Store;
use dovecot::{Dovecot, PASSWORD, USER, message, received_events};

fn mail_cmd(server: &Dovecot, db: &Db, mailbox: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_argent"));
    c.arg("-d").arg(&db.url).arg("mail").args(args);
    for var in argent_mail::imap::ENV_VARS {
        c.env_remove(var);
    }
    c.env("ARGENT_IMAP_HOST", "127.0.0.1")
        .env("ARGENT_IMAP_PORT", server.port.to_string())
        .env("ARGENT_IMAP_TLS", "plain")
        .env("ARGENT_IMAP_USER", USER)
        .env("ARGENT_IMAP_PASSWORD", PASSWORD)
        .env("ARGENT_IMAP_MAILBOX", mailbox)
        .env("ARGENT_IMAP_BATCH", "5");
    c
}

fn ok(out: Output, what: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn mail_fetch_stores_once_and_survives_kill_9() {
    let Some(server) = Dovecot::start() else {
        return;
    };
    const N: usize = 120;
    for db in Db::all("argent_m").await {
        let label = db.label;
        let mailbox = format!("KILL-{label}");
        let mut s = server.session().await;
        server.create(&mut s, &mailbox).await;
        for i in 0..N {
            let body = format!("Reply {i}. {}", "quoted history\r\n> ".repeat(50));
            server
                .append(
                    &mut s,
                    &mailbox,
                    &message(Some(&format!("k{i}@debtor.example")), "Re", &body),
                )
                .await;
        }
        // Kill the fetch with SIGKILL at growing delays until a run completes: whatever
        // was committed stays, whatever was not is fetched again, nothing twice.
        let mut kills = 0;
        let mut after_kills: Vec<i64> = Vec::new();
        let mut delay = Duration::from_millis(30);
        let started = Instant::now();
        loop {
            let mut child = mail_cmd(&server, &db, &mailbox, &["fetch", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(delay);
            if child.try_wait().unwrap().is_some() {
                let out = child.wait_with_output().unwrap();
                ok(out, &format!("{label}: a fetch that finished"));
                break;
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
            let probe = Store::open(&db.url).await.unwrap();
            after_kills.push(probe.count_inbound(None).await.unwrap());
            probe.close().await;
            delay += Duration::from_millis(40);
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "{label}: never finished"
            );
        }
        // A batch (5 messages) commits whole with its checkpoint, or not at all.
        assert!(
            after_kills.iter().all(|n| n % 5 == 0),
            "{label}: a batch was split: {after_kills:?}"
        );
        let store = Store::open(&db.url).await.unwrap();
        assert_eq!(
            store.count_inbound(None).await.unwrap(),
            i64::try_from(N).unwrap(),
            "{label}: every message once after {kills} kills"
        );
        assert_eq!(
            received_events(&store).await,
            N,
            "{label}: audited once each"
        );
        let cp = store.mailbox_checkpoint(&mailbox).await.unwrap().unwrap();
        assert_eq!(cp.last_uid, i64::try_from(N).unwrap(), "{label}");
        eprintln!(
            "{label}: {N} messages, fetch killed {kills} times (stored after each kill: {after_kills:?}), stored once each"
        );

        // Again: nothing new.
        let again = ok(
            mail_cmd(&server, &db, &mailbox, &["fetch", "--json"])
                .output()
                .unwrap(),
            label,
        );
        assert_eq!(again["stored"], 0, "{label}: {again}");
        assert_eq!(again["fetched"], 0, "{label}: {again}");

        // The same message handed over on the command line: already there, same id.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k0.eml");
        std::fs::write(&file, message(Some("k0@debtor.example"), "Re", "again")).unwrap();
        let out = mail_cmd(&server, &db, &mailbox, &["receive", file.to_str().unwrap()])
            .output()
            .unwrap();
        ok(out.clone(), label);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!(
                "already received as {}",
                argent_store::inbound_id("k0@debtor.example")
            )),
            "{label}: {text}"
        );
        // A new one is received.
        std::fs::write(&file, message(Some("cli-1@debtor.example"), "Re", "new")).unwrap();
        let out = mail_cmd(&server, &db, &mailbox, &["receive", file.to_str().unwrap()])
            .output()
            .unwrap();
        ok(out.clone(), label);
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("received in-"));
        let out = mail_cmd(&server, &db, &mailbox, &["list", "--limit", "500"])
            .output()
            .unwrap();
        ok(out.clone(), label);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            N + 1,
            "{label}"
        );
        // Not configured: a clear error naming what to set.
        let out = Command::new(env!("CARGO_BIN_EXE_argent"))
            .arg("-d")
            .arg(&db.url)
            .args(["mail", "fetch"])
            .env_remove("ARGENT_IMAP_HOST")
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("ARGENT_IMAP_HOST"));
        store.close().await;
        s.logout().await.unwrap();
        db.drop_schema().await;
    }
}

/// `argent worker` with IMAP configured reads the mailbox continuously (IDLE): mail
/// delivered while it runs is stored, and SIGTERM stops the reader with the worker.
#[tokio::test]
async fn the_worker_reads_the_mailbox_while_it_runs() {
    let Some(server) = Dovecot::start() else {
        return;
    };
    for db in Db::all("argent_m").await {
        let label = db.label;
        let mailbox = format!("WORKER-{label}");
        let mut s = server.session().await;
        server.create(&mut s, &mailbox).await;
        server
            .append(
                &mut s,
                &mailbox,
                &message(Some("w0@debtor.example"), "Re", "first"),
            )
            .await;
        // The database exists (migrated) before the worker opens it.
        let store = Store::open(&db.url).await.unwrap();
        let c = mail_cmd(&server, &db, &mailbox, &[]);
        // `argent -d DB mail` → `argent -d DB worker`: same environment, other command.
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_argent"));
        cmd.arg("-d")
            .arg(&db.url)
            .args(["worker", "--grace-seconds", "1"]);
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let child = cmd
            .env_remove("ARGENT_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let wait_for = |n: i64| {
            let store = store.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let have = store.count_inbound(None).await.unwrap();
                    if have >= n {
                        return have;
                    }
                    if Instant::now() > deadline {
                        return have;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let first = wait_for(1).await;
        if first != 1 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{label}: {first} stored, waiting for 1; worker: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        server
            .append(
                &mut s,
                &mailbox,
                &message(Some("w1@debtor.example"), "Re", "second"),
            )
            .await;
        assert_eq!(wait_for(2).await, 2, "{label}");
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("reading mailbox {mailbox}")),
            "{label}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(store.count_inbound(None).await.unwrap(), 2, "{label}");
        store.close().await;
        s.logout().await.unwrap();
        db.drop_schema().await;
    }
}
