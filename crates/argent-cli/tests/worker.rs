//! `argent worker` as real processes: killed mid-run and taken over after its lease
//! expired (one email, one `run_started`), three workers over one queue (each item once),
//! and SIGTERM (the running item finishes, or is released and resumed later). On SQLite,
//! and on PostgreSQL too when ARGENT_TEST_POSTGRES_URL is set.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

#[path = "common/db.rs"]
mod db;
use db::Db;

#[path = "../../argent-worker/tests/common/fake_openai.rs"]
mod fake_openai;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use argent_procedure::{StepKind, StepWork, WORK_KIND};
use argent_store::{AuditFilter, NewWorkItem, RunStatus, Store, WorkStatus, work_id};
use fake_openai::FakeOpenAi;

const NOW: &str = "2026-11-20T14:00:00Z";

fn now() -> chrono::DateTime<chrono::Utc> {
    NOW.parse().unwrap()
}

fn ledger_csv(n: usize) -> String {
    let mut csv = String::from(
        "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date\n",
    );
    for i in 1..=n {
        for (k, (issued, due, paid)) in [
            ("2026-03-01", "2026-03-31", "2026-03-30"),
            ("2026-05-01", "2026-05-31", "2026-05-30"),
            ("2026-07-01", "2026-07-31", "2026-07-29"),
        ]
        .iter()
        .enumerate()
        {
            csv.push_str(&format!(
                "C{i},Customer {i} Ltd,standard,b2b,Europe/London,ap@c{i}.example,H{i}-{k},{issued},{due},GBP,100.00,100.00,{paid}\n"
            ));
        }
        csv.push_str(&format!(
            "C{i},Customer {i} Ltd,standard,b2b,Europe/London,ap@c{i}.example,I{i},2026-09-01,2026-10-01,GBP,1500.00,,\n"
        ));
    }
    csv
}

/// Imports `n` customers and enqueues an overdue-notice email step for each; returns the
/// work item ids.
async fn seed(store: &Store, n: usize) -> Vec<String> {
    let parsed = argent_core::import::parse(ledger_csv(n).as_bytes()).unwrap();
    store.import_file(&parsed, "test").await.unwrap();
    let items: Vec<NewWorkItem> = (1..=n)
        .map(|i| {
            let c = format!("C{i}");
            let work = StepWork {
                procedure: "standard".into(),
                version: 1,
                step: "overdue_notice".into(),
                kind: StepKind::Email,
                cycle: 1,
                prompt: Some("step/overdue_notice".into()),
                invoices: vec![format!("I{i}")],
                promise_id: None,
                reason: "50 days past the oldest due date".into(),
            };
            NewWorkItem {
                kind: WORK_KIND.into(),
                dedupe_key: work.dedupe_key(&c),
                customer_id: c,
                payload: serde_json::to_value(&work).unwrap(),
                due_at: now(),
            }
        })
        .collect();
    let ids: Vec<String> = items.iter().map(|i| work_id(&i.dedupe_key)).collect();
    store.enqueue_work(&items, now()).await.unwrap();
    ids
}

fn worker_cmd(db: &Db, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_argent"));
    c.args(["--database", &db.url, "--now", NOW, "worker"])
        .args(args)
        .env_remove("ARGENT_DATABASE_URL")
        .env_remove("ARGENT_TEST_CRASH_AFTER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

fn openai_env(fake: &FakeOpenAi) -> Vec<(&'static str, String)> {
    vec![
        ("ARGENT_LLM_BASE_URL", fake.base_url.clone()),
        ("ARGENT_LLM_MODEL", "fake-model".into()),
        ("ARGENT_LLM_API_KEY", "test-key".into()),
        ("ARGENT_LLM_MAX_RETRIES", "0".into()),
    ]
}

/// Waits for a child without blocking the runtime (the fake server runs on it).
async fn wait(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "worker did not end within {limit:?}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn until(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn count(store: &Store, kind: &str) -> usize {
    store
        .audit_events(&AuditFilter {
            kind: Some(kind.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

/// Runs three `argent worker --once --concurrency 4` processes at once over the queue and
/// returns how many items their reports say they finished.
async fn three_workers_once(db: &Db, label: &str) -> usize {
    let children: Vec<Child> = (0..3)
        .map(|_| {
            worker_cmd(db, &["--once", "--concurrency", "4"], &[])
                .spawn()
                .unwrap()
        })
        .collect();
    let mut done = 0;
    for c in children {
        let out = wait(c, Duration::from_secs(240)).await;
        assert!(out.status.success(), "{label}: {}", text(&out));
        let t = text(&out);
        let line = t.lines().find(|l| l.contains(" done,")).unwrap();
        done += line
            .split("argent worker: ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|d| d.parse::<usize>().ok())
            .unwrap();
    }
    done
}

/// Exactly one email and one run (started once, finished) per item, items done, the
/// trail intact.
async fn assert_once_each(store: &Store, ids: &[String], label: &str) {
    for (i, id) in ids.iter().enumerate() {
        let item = store.work_item(id).await.unwrap();
        assert_eq!(item.status, WorkStatus::Done, "{label}: {id} {item:?}");
        let c = format!("C{}", i + 1);
        assert_eq!(
            store.emails(Some(&c)).await.unwrap().len(),
            1,
            "{label}: one email for {c}"
        );
    }
    assert_eq!(count(store, "run_started").await, ids.len(), "{label}");
    assert_eq!(count(store, "run_finished").await, ids.len(), "{label}");
    assert!(
        store
            .runs(Some(RunStatus::Running))
            .await
            .unwrap()
            .is_empty(),
        "{label}"
    );
    assert!(matches!(
        store.audit_verify().await.unwrap(),
        argent_store::AuditVerification::Intact { .. }
    ));
}

/// The worker dies (SIGABRT) right after the email's transaction committed and before the
/// run checkpointed it; after the lease expires another worker takes the item over and
/// resumes the same run: one email, one `run_started`.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_after_sending_is_taken_over_without_sending_twice() {
    for db in Db::all("argent_w").await {
        let label = db.label;
        let store = db.store().await;
        let ids = seed(&store, 1).await;

        let crashed = worker_cmd(
            &db,
            &["--once", "--lease-seconds", "5"],
            &[("ARGENT_TEST_CRASH_AFTER", "send_email")],
        )
        .spawn()
        .unwrap();
        let out = wait(crashed, Duration::from_secs(60)).await;
        assert!(!out.status.success(), "{label}: the child must have died");
        assert!(
            text(&out).contains("aborting after commit"),
            "{label}: {}",
            text(&out)
        );
        let item = store.work_item(&ids[0]).await.unwrap();
        assert_eq!(item.status, WorkStatus::Leased, "{label}");
        let run_id = item.run_id.clone().unwrap();
        assert_eq!(store.run(&run_id).await.unwrap().status, RunStatus::Running);
        assert_eq!(store.emails(None).await.unwrap().len(), 1, "{label}");

        // Before the lease expires, another worker finds nothing to do (when this machine
        // is slow enough that the lease ran out first, that worker takes the item over)…
        let lease_until = item.lease_until.unwrap();
        let early = wait(
            worker_cmd(&db, &["--once"], &[]).spawn().unwrap(),
            Duration::from_secs(60),
        )
        .await;
        assert!(early.status.success(), "{label}: {}", text(&early));
        let early_took_over = chrono::Utc::now() >= lease_until && text(&early).contains("1 done");
        if !early_took_over {
            assert!(text(&early).contains("0 done"), "{label}: {}", text(&early));
            // …after it, it takes the item over and finishes the same run.
            until("the lease to expire", Duration::from_secs(30), async || {
                lease_until <= chrono::Utc::now()
            })
            .await;
            let taken = wait(
                worker_cmd(&db, &["--once"], &[]).spawn().unwrap(),
                Duration::from_secs(60),
            )
            .await;
            assert!(taken.status.success(), "{label}: {}", text(&taken));
            assert!(text(&taken).contains("1 done"), "{label}: {}", text(&taken));
        }
        let item = store.work_item(&ids[0]).await.unwrap();
        assert_eq!(
            item.run_id.as_deref(),
            Some(run_id.as_str()),
            "{label}: the same run"
        );
        assert_eq!(item.attempts, 2, "{label}: {item:?}");
        assert_once_each(&store, &ids, label).await;
        store.close().await;
        db.drop_schema().await;
    }
}

/// The worker is SIGKILLed while its model call is in flight (the fake OpenAI server holds
/// the first request); the next worker resumes the run after the lease expired.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_during_the_model_call_is_resumed_by_another() {
    for db in Db::all("argent_w").await {
        let label = db.label;
        let store = db.store().await;
        let ids = seed(&store, 1).await;
        let fake = FakeOpenAi::start(Duration::from_millis(10), 1).await;
        let env = openai_env(&fake);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

        let mut child = worker_cmd(&db, &["--model", "openai", "--lease-seconds", "4"], &env)
            .spawn()
            .unwrap();
        until("the model call", Duration::from_secs(60), async || {
            fake.agent_requests() >= 1
        })
        .await;
        child.kill().unwrap(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        let item = store.work_item(&ids[0]).await.unwrap();
        assert_eq!(item.status, WorkStatus::Leased, "{label}");
        assert!(store.emails(None).await.unwrap().is_empty(), "{label}");
        let run_id = item.run_id.clone().unwrap();

        until("the lease to expire", Duration::from_secs(10), async || {
            store.work_item(&ids[0]).await.unwrap().lease_until.unwrap() <= chrono::Utc::now()
        })
        .await;
        let taken = wait(
            worker_cmd(&db, &["--model", "openai", "--once"], &env)
                .spawn()
                .unwrap(),
            Duration::from_secs(60),
        )
        .await;
        assert!(taken.status.success(), "{label}: {}", text(&taken));
        let item = store.work_item(&ids[0]).await.unwrap();
        assert_eq!(item.run_id.as_deref(), Some(run_id.as_str()), "{label}");
        assert_once_each(&store, &ids, label).await;
        store.close().await;
        db.drop_schema().await;
    }
}

/// Three worker processes at once over one queue: every item is run exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn three_workers_run_each_item_exactly_once() {
    for db in Db::all("argent_w").await {
        let label = db.label;
        let store = db.store().await;
        let n = 24;
        let ids = seed(&store, n).await;
        let done = three_workers_once(&db, label).await;
        assert_eq!(done, n, "{label}: the workers' reports add up to the items");
        assert_once_each(&store, &ids, label).await;
        store.close().await;
        db.drop_schema().await;
    }
}

/// SIGTERM while an item runs: with a grace period it finishes (the process exits 0); with
/// none it is released, and the next worker resumes its run.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_or_releases_the_running_item() {
    for db in Db::all("argent_w").await {
        let label = db.label;
        let store = db.store().await;
        let ids = seed(&store, 2).await;
        let fake = FakeOpenAi::start(Duration::from_millis(1500), 0).await;
        let env = openai_env(&fake);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

        // Grace: the item in flight finishes; the other is not started.
        let child = worker_cmd(
            &db,
            &[
                "--model",
                "openai",
                "--concurrency",
                "1",
                "--grace-seconds",
                "60",
            ],
            &env,
        )
        .spawn()
        .unwrap();
        until(
            "the first model call",
            Duration::from_secs(60),
            async || fake.agent_requests() >= 1,
        )
        .await;
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let out = wait(child, Duration::from_secs(60)).await;
        assert!(out.status.success(), "{label}: {}", text(&out));
        assert!(text(&out).contains("1 done"), "{label}: {}", text(&out));
        let items: Vec<_> = futures_join(&store, &ids).await;
        let statuses: Vec<WorkStatus> = items.iter().map(|i| i.status).collect();
        assert!(
            statuses.contains(&WorkStatus::Done),
            "{label}: {statuses:?}"
        );
        assert!(
            statuses.contains(&WorkStatus::Queued),
            "{label}: {statuses:?}"
        );
        assert_eq!(store.emails(None).await.unwrap().len(), 1, "{label}");

        // No grace: the item in flight is released (its run stays linked) …
        let before = fake.agent_requests();
        let child = worker_cmd(
            &db,
            &[
                "--model",
                "openai",
                "--concurrency",
                "1",
                "--grace-seconds",
                "0",
            ],
            &env,
        )
        .spawn()
        .unwrap();
        until("the next model call", Duration::from_secs(60), async || {
            fake.agent_requests() > before
        })
        .await;
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let out = wait(child, Duration::from_secs(60)).await;
        assert!(out.status.success(), "{label}: {}", text(&out));
        assert!(text(&out).contains("1 released"), "{label}: {}", text(&out));
        let left = futures_join(&store, &ids)
            .await
            .into_iter()
            .find(|i| i.status != WorkStatus::Done)
            .unwrap();
        assert_eq!(left.status, WorkStatus::Queued, "{label}");
        assert!(left.lease_owner.is_none());
        let run_id = left.run_id.clone().unwrap();
        // … and the next worker resumes that run.
        let out = wait(
            worker_cmd(&db, &["--model", "openai", "--once"], &env)
                .spawn()
                .unwrap(),
            Duration::from_secs(60),
        )
        .await;
        assert!(out.status.success(), "{label}: {}", text(&out));
        let item = store.work_item(&left.id).await.unwrap();
        assert_eq!(item.run_id.as_deref(), Some(run_id.as_str()), "{label}");
        assert_once_each(&store, &ids, label).await;
        store.close().await;
        db.drop_schema().await;
    }
}

async fn futures_join(store: &Store, ids: &[String]) -> Vec<argent_store::WorkItem> {
    let mut out = Vec::new();
    for id in ids {
        out.push(store.work_item(id).await.unwrap());
    }
    out
}

fn argent_cmd(db: &Db, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut c = Command::new(env!("CARGO_BIN_EXE_argent"));
    c.args(["--database", &db.url, "--now", NOW])
        .args(args)
        .env_remove("ARGENT_DATABASE_URL")
        .env_remove("ARGENT_TOKEN")
        .env("ARGENT_TOKEN_FILE", "/nonexistent/argent-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn step_item(customer: &str, kind: StepKind, step: &str) -> NewWorkItem {
    let work = StepWork {
        procedure: "standard".into(),
        version: 1,
        step: step.into(),
        kind,
        cycle: 1,
        prompt: None,
        invoices: vec!["I1".into()],
        promise_id: None,
        reason: "90 days past the oldest due date".into(),
    };
    NewWorkItem {
        kind: WORK_KIND.into(),
        dedupe_key: work.dedupe_key(customer),
        customer_id: customer.into(),
        payload: serde_json::to_value(&work).unwrap(),
        due_at: now(),
    }
}

/// A credit-hold step reaches the ERP export (CSV and JSON) and a manager clears it; a
/// referral step waits for a manager, who alone may approve it.
#[tokio::test(flavor = "multi_thread")]
async fn holds_and_referrals_from_the_cli() {
    let db = Db::all("argent_w").await.into_iter().next().unwrap();
    let store = db.store().await;
    let parsed = argent_core::import::parse(ledger_csv(1).as_bytes()).unwrap();
    store.import_file(&parsed, "test").await.unwrap();
    store
        .enqueue_work(
            &[
                step_item("C1", StepKind::CreditHold, "credit_hold"),
                step_item("C1", StepKind::AgencyReferral, "agency_referral"),
            ],
            now(),
        )
        .await
        .unwrap();
    let out = wait(
        worker_cmd(&db, &["--once"], &[]).spawn().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    assert!(text(&out).contains("2 done"), "{}", text(&out));

    let csv = argent_cmd(&db, &["credit-holds", "export"], None);
    assert!(csv.status.success(), "{}", text(&csv));
    let csv = String::from_utf8(csv.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("customer_id,status,reason"), "{csv}");
    assert!(
        lines[1].starts_with("C1,active,procedure standard v1 step credit_hold"),
        "{csv}"
    );
    let json = argent_cmd(&db, &["credit-holds", "export", "--format", "json"], None);
    let holds: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(holds.as_array().unwrap().len(), 1);
    assert_eq!(holds[0]["customer_id"], "C1");

    let list = argent_cmd(&db, &["referrals", "list"], None);
    let list = String::from_utf8(list.stdout).unwrap();
    let id = list.split_whitespace().next().unwrap().to_string();
    assert!(
        id.starts_with("REF-") && list.contains("pending") && list.contains("C1"),
        "{list}"
    );
    let package = argent_cmd(&db, &["referrals", "package", &id], None);
    let package: serde_json::Value = serde_json::from_slice(&package.stdout).unwrap();
    assert_eq!(package["format"], "argent.referral-package/1");
    assert_eq!(package["customer"]["id"], "C1");

    for (name, role) in [("mia", "manager"), ("cole", "collector")] {
        let out = argent_cmd(
            &db,
            &["users", "add", name, "--role", role, "--password-stdin"],
            Some("a long enough password\n"),
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    let refused = argent_cmd(
        &db,
        &[
            "referrals",
            "approve",
            &id,
            "--user",
            "cole",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("only a manager"),
        "{}",
        text(&refused)
    );
    let approved = argent_cmd(
        &db,
        &[
            "referrals",
            "approve",
            &id,
            "--note",
            "agency A",
            "--user",
            "mia",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(approved.status.success(), "{}", text(&approved));
    assert!(
        text(&approved).contains("approved by mia"),
        "{}",
        text(&approved)
    );
    let cleared = argent_cmd(
        &db,
        &[
            "credit-holds",
            "clear",
            "C1",
            "--reason",
            "paid by card",
            "--user",
            "mia",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(cleared.status.success(), "{}", text(&cleared));
    let csv = argent_cmd(&db, &["credit-holds", "export"], None);
    assert_eq!(
        String::from_utf8(csv.stdout).unwrap().lines().count(),
        1,
        "only the header"
    );
    let all = argent_cmd(&db, &["credit-holds", "export", "--all"], None);
    let all = String::from_utf8(all.stdout).unwrap();
    assert!(
        all.contains("C1,cleared,") && all.contains("mia") && all.contains("paid by card"),
        "{all}"
    );
    store.close().await;
}

/// `argent serve --desk` runs the queue in the server's process; SIGTERM stops the worker
/// and then the server.
#[tokio::test(flavor = "multi_thread")]
async fn serve_desk_runs_the_queue_in_process() {
    let db = Db::all("argent_w").await.into_iter().next().unwrap();
    let store = db.store().await;
    let ids = seed(&store, 2).await;
    let child = Command::new(env!("CARGO_BIN_EXE_argent"))
        .args([
            "--database",
            &db.url,
            "--now",
            NOW,
            "serve",
            "--desk",
            "--addr",
            "127.0.0.1:0",
            "--concurrency",
            "2",
        ])
        .env_remove("ARGENT_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until(
        "the desk to run both items",
        Duration::from_secs(90),
        async || {
            let mut done = 0;
            for id in &ids {
                if store.work_item(id).await.unwrap().status == WorkStatus::Done {
                    done += 1;
                }
            }
            done == ids.len()
        },
    )
    .await;
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = wait(child, Duration::from_secs(60)).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("serving on http://127.0.0.1:"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("desk stopped: 2 done"),
        "{}",
        text(&out)
    );
    assert_once_each(&store, &ids, "sqlite").await;
    store.close().await;
}

/// The whole desk as separate processes: a fresh database with an imported portfolio, two
/// `argent tick`s at once and three `argent worker`s: every overdue account is contacted
/// exactly once for its step (one work item, one run, one email each), and ticking again
/// enqueues nothing new.
#[tokio::test(flavor = "multi_thread")]
async fn two_ticks_and_three_workers_contact_each_overdue_account_once() {
    for db in Db::all("argent_w").await {
        let label = db.label;
        let store = db.store().await;
        let n = 12;
        let parsed = argent_core::import::parse(ledger_csv(n).as_bytes()).unwrap();
        store.import_file(&parsed, "test").await.unwrap();
        let tick = || {
            let mut c = Command::new(env!("CARGO_BIN_EXE_argent"));
            c.args(["--database", &db.url, "--now", NOW, "tick", "--batch", "5"])
                .env_remove("ARGENT_DATABASE_URL")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c
        };
        // The first tick seeds the procedure documents; two at once must not both seed or
        // enqueue twice.
        let ticks: Vec<Child> = (0..2).map(|_| tick().spawn().unwrap()).collect();
        for t in ticks {
            let out = wait(t, Duration::from_secs(120)).await;
            assert!(out.status.success(), "{label}: {}", text(&out));
        }
        let items = store
            .work_items(&argent_store::WorkFilter::default())
            .await
            .unwrap();
        assert_eq!(
            items.len(),
            n,
            "{label}: one step per overdue account: {items:?}"
        );
        assert_eq!(count(&store, "procedure.step_enqueued").await, n, "{label}");
        assert_eq!(three_workers_once(&db, label).await, n, "{label}");
        for i in 1..=n {
            let c = format!("C{i}");
            let step: StepWork = serde_json::from_value(
                items
                    .iter()
                    .find(|w| w.customer_id == c)
                    .unwrap()
                    .payload
                    .clone(),
            )
            .unwrap();
            assert_eq!(step.kind, StepKind::Email, "{label}: {step:?}");
            assert_eq!(step.invoices, vec![format!("I{i}")], "{label}");
        }
        // Done, one email and one run per account, the trail intact.
        let ids: Vec<String> = (1..=n)
            .map(|i| {
                let c = format!("C{i}");
                items
                    .iter()
                    .find(|w| w.customer_id == c)
                    .unwrap()
                    .id
                    .clone()
            })
            .collect();
        assert_once_each(&store, &ids, label).await;
        // Ticking again at the same instant changes nothing.
        let out = wait(tick().spawn().unwrap(), Duration::from_secs(120)).await;
        assert!(out.status.success(), "{label}: {}", text(&out));
        assert_eq!(
            store
                .work_items(&argent_store::WorkFilter::default())
                .await
                .unwrap()
                .len(),
            n,
            "{label}"
        );
        store.close().await;
        db.drop_schema().await;
    }
}
