//! Honest replays from the command line (issue #17): `run --model record:FILE` against an
//! OpenAI-compatible endpoint (a fake on 127.0.0.1) records the same bytes twice and
//! replays them twice with the same outcome; a replay that diverges fails with nothing of
//! the model's doing written; `run --inbound` takes its received time from `--now` or the
//! message's `Date:`; `eval run --model record:DIR` writes one cassette per case and
//! `replay:DIR` replays them; a demo recorded at `--now` replays. On SQLite, and on
//! PostgreSQL too when ARGENT_TEST_POSTGRES_URL is set.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

#[path = "common/db.rs"]
mod db;
use db::Db;

#[path = "../../argent-worker/tests/common/fake_openai.rs"]
mod fake_openai;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use argent_store::Store;
use fake_openai::FakeOpenAi;

const NOW: &str = "2026-11-20T14:00:00Z";

const LEDGER: &str = "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date
C1,Customer 1 Ltd,standard,b2b,Europe/London,ap@c1.example,H1-0,2026-03-01,2026-03-31,GBP,100.00,100.00,2026-03-30
C1,Customer 1 Ltd,standard,b2b,Europe/London,ap@c1.example,H1-1,2026-05-01,2026-05-31,GBP,100.00,100.00,2026-05-30
C1,Customer 1 Ltd,standard,b2b,Europe/London,ap@c1.example,H1-2,2026-07-01,2026-07-31,GBP,100.00,100.00,2026-07-29
C1,Customer 1 Ltd,standard,b2b,Europe/London,ap@c1.example,I1,2026-09-01,2026-10-01,GBP,1500.00,,
";

const PROMISE: &str = "From: ap@c1.example
Subject: Invoice I1
Date: Fri, 20 Nov 2026 09:15:00 +0000

Sorry for the delay. We will pay GBP 1,500.00 on December 4th.
";

/// One fresh database of backend number `i` (0: SQLite, 1: PostgreSQL when configured).
async fn fresh(i: usize, prefix: &str) -> Db {
    let mut all = Db::all(prefix).await;
    let db = all.remove(i);
    for other in all {
        other.drop_schema().await;
    }
    db
}

fn backends() -> usize {
    if std::env::var("ARGENT_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        2
    } else {
        1
    }
}

fn openai_env(fake: &FakeOpenAi) -> Vec<(String, String)> {
    [
        ("ARGENT_LLM_BASE_URL", fake.base_url.as_str()),
        ("ARGENT_LLM_MODEL", "fake-model"),
        ("ARGENT_LLM_API_KEY", "test-key"),
        ("ARGENT_LLM_MAX_RETRIES", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Runs `argent` (off the runtime's threads, so the fake server keeps answering).
async fn argent(args: Vec<String>, envs: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_argent"));
        c.args(&args)
            .env_remove("ARGENT_DATABASE_URL")
            .env_remove("ARGENT_TEST_CRASH_AFTER")
            .env_remove("ARGENT_LLM_BASE_URL")
            .env_remove("ARGENT_LLM_MODEL")
            .env_remove("ARGENT_LLM_API_KEY")
            .env_remove("ARGENT_MAIL_CONFIG")
            .env_remove("ARGENT_SMTP_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().unwrap()
    })
    .await
    .unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

async fn import(db: &Db, dir: &Path) {
    let csv = dir.join("ledger.csv");
    std::fs::write(&csv, LEDGER).unwrap();
    let out = argent(
        strings(&["--database", &db.url, "import", csv.to_str().unwrap()]),
        Vec::new(),
    )
    .await;
    ok(&out, "import");
}

/// `argent --now NOW --model MODEL [--policies P] run --customer C1 --inbound MSG`.
async fn run(
    db: &Db,
    model: &str,
    msg: &Path,
    policies: Option<&Path>,
    envs: Vec<(String, String)>,
) -> Output {
    let mut args = strings(&["--database", &db.url, "--now", NOW, "--model", model]);
    if let Some(p) = policies {
        args.extend(strings(&["--policies", p.to_str().unwrap()]));
    }
    args.extend(strings(&[
        "run",
        "--customer",
        "C1",
        "--inbound",
        msg.to_str().unwrap(),
    ]));
    argent(args, envs).await
}

/// What the model's calls left in the store: promises, emails, cases, approval items.
async fn effects(store: &Store) -> Value {
    let promises: Vec<Value> = store
        .promises(Some("C1"))
        .await
        .unwrap()
        .into_iter()
        .map(|p| serde_json::json!([p.id, p.amount.to_string(), p.promised_date]))
        .collect();
    let emails: Vec<Value> = store
        .emails(Some("C1"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::json!([e.id, e.to_addr, e.subject, e.body]))
        .collect();
    let cases: Vec<String> = store
        .cases(Some("C1"))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let approvals: Vec<String> = store
        .approvals(None, 100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    serde_json::json!({"promises": promises, "emails": emails, "cases": cases, "approvals": approvals})
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

/// The policies with the b2b promise horizon cut to 5 days: the promise the recording
/// logged (14 days ahead) now waits for a collector.
fn stricter_policies(dir: &Path) -> PathBuf {
    let out = dir.join("strict-policies");
    std::fs::create_dir_all(&out).unwrap();
    for e in std::fs::read_dir(repo("policies")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let mut t = std::fs::read_to_string(&p).unwrap();
            if p.file_name().is_some_and(|n| n == "b2b.toml") {
                assert!(t.contains("max_days_ahead = 60"));
                t = t.replace("max_days_ahead = 60", "max_days_ahead = 5");
            }
            std::fs::write(out.join(p.file_name().unwrap()), t).unwrap();
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_run_replays_byte_for_byte_and_a_diverging_replay_writes_nothing() {
    let fake = FakeOpenAi::start(Duration::ZERO, 0).await;
    for b in 0..backends() {
        let dir = tempfile::tempdir().unwrap();
        let msg = dir.path().join("promise.txt");
        std::fs::write(&msg, PROMISE).unwrap();

        // Record twice, on two fresh databases: the same requests on the wire, byte for
        // byte, and the same cassette file.
        let before = fake.agent_bodies().len();
        let mut recorded = Vec::new();
        for n in 0..2 {
            let db = fresh(b, &format!("rec{n}")).await;
            import(&db, dir.path()).await;
            let tape = dir.path().join(format!("rec{n}.json"));
            let out = run(
                &db,
                &format!("record:{}", tape.display()),
                &msg,
                None,
                openai_env(&fake),
            )
            .await;
            let stdout = ok(&out, "recording");
            assert!(stdout.contains("log_promise   executed"), "{stdout}");
            assert!(stdout.contains("send_email    executed"), "{stdout}");
            recorded.push((
                stdout,
                std::fs::read(&tape).unwrap(),
                effects(&db.store().await).await,
            ));
            db.drop_schema().await;
        }
        let bodies = fake.agent_bodies()[before..].to_vec();
        assert_eq!(bodies.len(), 4, "two model calls per recording");
        assert_eq!(bodies[0], bodies[2], "the first requests, byte for byte");
        assert_eq!(bodies[1], bodies[3], "the second requests, byte for byte");
        assert_eq!(recorded[0], recorded[1]);
        let (stdout, _, effects_recorded) = &recorded[0];
        let tape = dir.path().join("rec0.json");
        // The model was shown ids of what its calls created, derived from the run's id.
        let second = text(&bodies[1]);
        assert!(second.contains("PTP-run-"), "{second}");

        // Replay twice, on fresh databases, with no endpoint at all: the same output (the
        // same run id), the same rows.
        let hits = fake.hits();
        for n in 0..2 {
            let db = fresh(b, &format!("replay{n}")).await;
            import(&db, dir.path()).await;
            let out = run(
                &db,
                &format!("replay:{}", tape.display()),
                &msg,
                None,
                Vec::new(),
            )
            .await;
            assert_eq!(&ok(&out, "replay"), stdout, "replay {n}");
            assert_eq!(&effects(&db.store().await).await, effects_recorded);
            db.drop_schema().await;
        }
        assert_eq!(fake.hits(), hits, "a replay calls no endpoint");

        // The policy now holds the promise: the first tool result differs from the
        // recording, and the replay fails before that call's writes commit.
        let db = fresh(b, "diverge").await;
        import(&db, dir.path()).await;
        let strict = stricter_policies(dir.path());
        let out = run(
            &db,
            &format!("replay:{}", tape.display()),
            &msg,
            Some(&strict),
            Vec::new(),
        )
        .await;
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(
            err.contains("before the last tool result was committed"),
            "{err}"
        );
        let store = db.store().await;
        let none = serde_json::json!({"promises": [], "emails": [], "cases": [], "approvals": []});
        assert_eq!(effects(&store).await, none);
        let runs = store.runs(None).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, argent_store::RunStatus::Failed);
        store.close().await;
        db.drop_schema().await;

        // Another message: the first request differs; nothing is written either.
        let db = fresh(b, "diverge2").await;
        import(&db, dir.path()).await;
        let other = dir.path().join("other.txt");
        std::fs::write(&other, PROMISE.replace("1,500.00", "1,400.00")).unwrap();
        let out = run(
            &db,
            &format!("replay:{}", tape.display()),
            &other,
            None,
            Vec::new(),
        )
        .await;
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(err.contains("request #0 does not match"), "{err}");
        assert_eq!(effects(&db.store().await).await, none);
        db.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_inbound_is_received_at_now_or_at_its_date() {
    for b in 0..backends() {
        let dir = tempfile::tempdir().unwrap();
        let db = fresh(b, "received").await;
        import(&db, dir.path()).await;
        let dated = dir.path().join("dated.txt");
        std::fs::write(&dated, PROMISE).unwrap();
        let undated = dir.path().join("undated.txt");
        std::fs::write(
            &undated,
            "From: ap@c1.example\nSubject: Hello\n\nWhat do I owe?\n",
        )
        .unwrap();
        let future = dir.path().join("future.txt");
        std::fs::write(
            &future,
            PROMISE.replace("Fri, 20 Nov 2026 09:15:00", "Sat, 21 Nov 2026 09:15:00"),
        )
        .unwrap();
        for f in [&dated, &undated, &future] {
            ok(&run(&db, "offline", f, None, Vec::new()).await, "run");
        }
        let store = db.store().await;
        let mut received: Vec<(String, String)> = store
            .runs(None)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.trigger["subject"].as_str().unwrap().to_string(),
                    r.trigger["received_at"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        received.sort();
        assert_eq!(
            received,
            [
                // No Date: header: --now.
                ("Hello".to_string(), "2026-11-20T14:00:00Z".to_string()),
                // The Date: header, earlier than --now.
                ("Invoice I1".to_string(), "2026-11-20T09:15:00Z".to_string()),
                // Dated after --now: received at --now.
                ("Invoice I1".to_string(), "2026-11-20T14:00:00Z".to_string()),
            ]
        );
        store.close().await;

        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, PROMISE.replace("Fri, 20 Nov 2026", "yesterday-ish")).unwrap();
        let out = run(&db, "offline", &bad, None, Vec::new()).await;
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(
            err.contains("bad.txt") && err.contains("Date:") && err.contains("RFC 2822"),
            "{err}"
        );
        db.drop_schema().await;
    }
}

/// Drops what differs between two runs of the same report: timings and the model label.
fn comparable(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                // Timings, and the endpoint and settings the run was configured with
                // (labels of the run, not outcomes: a recording names the endpoint it
                // called, a replay calls none).
                for k in [
                    "latency_ms",
                    "duration_ms",
                    "started_at",
                    "mean_latency_ms",
                    "model_settings",
                    "endpoint",
                ] {
                    m.remove(k);
                }
                for (_, c) in m.iter_mut() {
                    strip(c);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    if let Some(l) = v.get_mut("labels") {
        l["model"] = Value::Null;
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_records_one_cassette_per_case_and_replays_them() {
    let fake = FakeOpenAi::start(Duration::ZERO, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let tapes = dir.path().join("tapes");
    let cases = [
        "chronic-late-next-friday-b2b",
        "dispute-wrong-goods-b2b",
        "hardship-illness-uk",
    ];
    let eval = |model: String, out: PathBuf, extra: Vec<String>| {
        let mut args = strings(&["--model", &model, "eval", "run", "core", "--filter"]);
        args.push(cases.join(","));
        args.extend(strings(&[
            "--concurrency",
            "2",
            "--out",
            out.to_str().unwrap(),
        ]));
        args.extend(extra);
        args
    };
    let report =
        |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };

    let rec = dir.path().join("rec.json");
    let out = argent(
        eval(
            format!("record:{}", tapes.display()),
            rec.clone(),
            Vec::new(),
        ),
        openai_env(&fake),
    )
    .await;
    ok(&out, "eval record");
    // Recording calls the live endpoint: a line per case as it ends, with its time.
    let log = text(&out.stderr);
    for (n, case) in cases.iter().enumerate() {
        assert!(
            log.lines().any(|l| l.contains(case) && l.contains(" s (")),
            "no progress line for {case} (#{n}) in:\n{log}"
        );
    }
    assert!(log.contains(&format!("[{0}/{0}]", cases.len())), "{log}");
    let mut files: Vec<String> = std::fs::read_dir(&tapes)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let expected: Vec<String> = cases.iter().map(|c| format!("{c}.json")).collect();
    assert_eq!(files, expected, "one cassette per case");
    let agent_requests = fake.agent_requests();
    assert!(agent_requests >= cases.len());
    for f in &files {
        let c = argent_llm::Cassette::load(tapes.join(f)).unwrap();
        assert!(!c.exchanges.is_empty(), "{f}");
        assert!(c.header.model.contains("fake-model"), "{}", c.header.model);
    }
    let recorded = report(&rec);
    assert_eq!(recorded["cases"].as_array().unwrap().len(), cases.len());
    assert!(
        recorded["labels"]["extra"]["endpoint"]
            .as_str()
            .is_some_and(|e| e.starts_with("fake-model at http://127.0.0.1:")),
        "a recording's report names the endpoint: {}",
        recorded["labels"]
    );

    let mut replays = Vec::new();
    for n in 0..2 {
        let p = dir.path().join(format!("replay{n}.json"));
        let out = argent(
            eval(format!("replay:{}", tapes.display()), p.clone(), Vec::new()),
            Vec::new(),
        )
        .await;
        ok(&out, "eval replay");
        let r = report(&p);
        for c in r["cases"].as_array().unwrap() {
            for a in c["attempts"].as_array().unwrap() {
                assert!(a["error"].is_null(), "{}: {}", c["id"], a["error"]);
            }
        }
        replays.push(comparable(r));
    }
    assert_eq!(
        fake.agent_requests(),
        agent_requests,
        "replays call no endpoint"
    );
    assert_eq!(replays[0], replays[1]);
    assert_eq!(replays[0], comparable(recorded));

    // A case's cassette holds one attempt.
    let out = argent(
        eval(
            format!("record:{}", tapes.display()),
            dir.path().join("x.json"),
            strings(&["--repeat", "2"]),
        ),
        openai_env(&fake),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--repeat 1"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_recorded_at_now_replays_on_another_day() {
    let fake = FakeOpenAi::start(Duration::ZERO, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let tape = dir.path().join("demo.json");
    let demo = |model: String, db: &str| {
        strings(&[
            "--now",
            "2026-11-20T18:00:00Z",
            "--model",
            &model,
            "demo",
            "--db",
            dir.path().join(db).to_str().unwrap(),
            "--customers",
            "20",
            "--dunning",
            "2",
            "--days",
            "0",
        ])
    };
    // The model line names the model (the endpoint, or the cassette replayed).
    let body = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.starts_with("model:") && !l.contains(".db"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let out = argent(
        demo(format!("record:{}", tape.display()), "rec.db"),
        openai_env(&fake),
    )
    .await;
    let recorded = ok(&out, "demo record");
    let exchanges = argent_llm::Cassette::load(&tape).unwrap().exchanges.len();
    assert!(exchanges > 0);
    assert_eq!(fake.agent_requests(), exchanges);
    for n in 0..2 {
        let out = argent(
            demo(
                format!("replay:{}", tape.display()),
                &format!("replay{n}.db"),
            ),
            Vec::new(),
        )
        .await;
        assert_eq!(
            body(&ok(&out, "demo replay")),
            body(&recorded),
            "replay {n}"
        );
    }
    assert_eq!(fake.agent_requests(), exchanges, "replays call no endpoint");
}
