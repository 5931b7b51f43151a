//! `argent users add` and `argent serve` as a real child process on 127.0.0.1: a user is
//! added with the password on standard input, the server picks a free port, and a login
//! and an authorised call go over a real socket.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn argent(db: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_argent"));
    c.arg("--database")
        .arg(db)
        .env_remove("ARGENT_DATABASE_URL")
        .args(["--model", "offline"]);
    c
}

fn add_user(db: &Path, name: &str, role: &str, password: &str) -> std::process::Output {
    let mut child = argent(db)
        .args(["users", "add", name, "--role", role, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// One HTTP/1.1 request; returns (status, body).
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn users_are_added_from_stdin_and_sign_in_to_the_served_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");

    let out = add_user(&db, "root", "admin", "a long enough password");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = add_user(&db, "eve", "evaluator", "another good password");
    assert!(out.status.success());
    // Taken names, unknown roles, short passwords and a missing --password-stdin fail.
    assert!(
        !add_user(&db, "root", "admin", "a long enough password")
            .status
            .success()
    );
    assert!(
        !add_user(&db, "bob", "root", "a long enough password")
            .status
            .success()
    );
    assert!(!add_user(&db, "bob", "collector", "short").status.success());
    let out = argent(&db)
        .args(["users", "add", "bob", "--role", "collector"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let list = argent(&db).args(["users", "list"]).output().unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.contains("root") && list.contains("admin"), "{list}");
    assert!(list.contains("eve") && list.contains("evaluator"), "{list}");
    assert!(!list.contains("bob"));
    assert!(!list.contains("password"), "{list}");

    // An eval run a previous server left `running` (it was killed mid-run).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = argent_store::Store::open(&db.to_string_lossy())
            .await
            .unwrap();
        store
            .insert_eval_run(&argent_store::NewEvalRun {
                id: "eval-cut-off".into(),
                label: "active".into(),
                model: "offline".into(),
                subject: "the active documents".into(),
                doc_kind: None,
                doc_name: None,
                doc_version: None,
                baseline_id: None,
                started_by: "manager:mo".into(),
            })
            .await
            .unwrap();
        store.close().await;
    });

    let mut child = argent(&db)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let (status, _) = http(&addr, "GET", "/api/aging", None, "");
    assert_eq!(status, 401);
    let (status, body) = http(
        &addr,
        "POST",
        "/api/login",
        None,
        r#"{"name":"root","password":"a long enough password"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = v["token"].as_str().unwrap();
    let (status, body) = http(&addr, "GET", "/api/aging", Some(token), "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&addr, "GET", "/api/audit/verify", Some(token), "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("intact"), "{body}");

    let (_, body) = http(
        &addr,
        "POST",
        "/api/login",
        None,
        r#"{"name":"eve","password":"another good password"}"#,
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (status, _) = http(&addr, "GET", "/api/approvals", v["token"].as_str(), "");
    assert_eq!(status, 403, "evaluators do not see the queue");
    let (status, body) = http(
        &addr,
        "GET",
        "/api/evals/eval-cut-off",
        v["token"].as_str(),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let run: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        run["status"], "failed",
        "a run the last server left running: {run}"
    );
    assert!(run["error"].as_str().unwrap().contains("server stopped"));
}

/// Issue #11 item 8: `argent serve --checkpoint-key K --checkpoint-file F` signs the chain's
/// head at start and again whenever it moved, and the file verifies.
#[test]
fn serve_signs_checkpoints_while_the_chain_moves() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let key = dir.path().join("audit.key");
    let out = argent(&db)
        .args(["audit", "keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let cps = dir.path().join("checkpoints.jsonl");
    let mut child = argent(&db)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--checkpoint-key",
            key.to_str().unwrap(),
            "--checkpoint-file",
            cps.to_str().unwrap(),
            "--checkpoint-every",
            "1s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.contains("serving on"), "{line}");
    // Seeding the documents moved the chain: the first checkpoint is written at start.
    let lines = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&cps).unwrap_or_default();
            if text.lines().count() >= n {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint {n} within a minute: {text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let first = lines(1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let seq = rt.block_on(async {
        let store = argent_store::Store::open(&db.to_string_lossy())
            .await
            .unwrap();
        let e = store
            .audit_append(argent_store::NewAuditEvent {
                run_id: None,
                customer_id: None,
                actor: "test".into(),
                kind: "note".into(),
                payload: serde_json::json!({"moved": true}),
            })
            .await
            .unwrap();
        store.close().await;
        e.seq
    });
    let second = lines(2);
    assert!(second.starts_with(&first), "appended, not rewritten");
    assert!(
        second
            .lines()
            .nth(1)
            .unwrap()
            .contains(&format!("\"seq\":{seq}")),
        "{second}"
    );
    let out = argent(&db)
        .args([
            "audit",
            "verify",
            "--checkpoints",
            cps.to_str().unwrap(),
            "--public-key",
            &public,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing moved: no third line.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(std::fs::read_to_string(&cps).unwrap().lines().count(), 2);
}
