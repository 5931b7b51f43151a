//! Honest replays (issue #17): a run recorded on one store replays on another, byte for
//! byte (its id, and every id the model is shown, derived from what the run is), twice;
//! and a replay that diverges in a tool result fails before that call's side effect is
//! written. On SQLite, and on PostgreSQL too when ARGENT_TEST_POSTGRES_URL is set.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use argent_agent::{Agent, AgentConfig, CallStatus, Clock, OfflineModel, RunOutcome, Trigger};
use argent_llm::{Cassette, ChatModel, Recorder, Replayer};
use argent_store::testkit::TestStore;
use argent_store::{AuditFilter, AuditVerification, RunStatus, Store};

const NOW: &str = "2026-11-20T18:00:00Z"; // noon in Chicago

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

fn repo(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

/// A fresh store of the backend `label` names.
async fn fresh(label: &str) -> TestStore {
    let ts = match label {
        "sqlite" => TestStore::sqlite().await.unwrap(),
        _ => TestStore::postgres(&std::env::var("ARGENT_TEST_POSTGRES_URL").unwrap())
            .await
            .unwrap(),
    };
    ts.store
        .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
        .await
        .unwrap();
    ts
}

fn backends() -> Vec<&'static str> {
    let mut out = vec!["sqlite"];
    if std::env::var("ARGENT_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        out.push("postgres");
    }
    out
}

fn agent(store: &Store, model: Arc<dyn ChatModel>, policies: &Path) -> Agent {
    let config = AgentConfig {
        clock: Clock::Fixed(now()),
        ..Default::default()
    };
    Agent::from_dirs(store.clone(), model, &repo("prompts"), policies, config).unwrap()
}

fn promise() -> Trigger {
    Trigger::Inbound {
        from: "ann@mail.example".into(),
        subject: "My account".into(),
        body: "Sorry for the delay. I will pay $1,200.00 on December 4th.".into(),
        received_at: now(),
        message_id: None,
        references: Vec::new(),
        mail: None,
    }
}

/// The policies with the US consumer promise horizon cut to 5 days: the promise the
/// recording logged (14 days ahead) now waits for a collector. Nothing the model is shown
/// before its first tool result changes.
fn stricter_policies(dir: &Path) -> PathBuf {
    let out = dir.join("policies");
    std::fs::create_dir_all(&out).unwrap();
    for e in std::fs::read_dir(repo("policies")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            let text = if p.file_name().is_some_and(|n| n == "us-consumer.toml") {
                assert!(text.contains("max_days_ahead = 45"));
                text.replace("max_days_ahead = 45", "max_days_ahead = 5")
            } else {
                text
            };
            std::fs::write(out.join(p.file_name().unwrap()), text).unwrap();
        }
    }
    out
}

/// What a run left in the store that the model's calls could have caused.
async fn effects(store: &Store) -> (usize, usize, usize, usize) {
    (
        store.promises(Some("C-ANN")).await.unwrap().len(),
        store.emails(Some("C-ANN")).await.unwrap().len(),
        store.cases(Some("C-ANN")).await.unwrap().len(),
        store.approvals(None, 100, 0).await.unwrap().len(),
    )
}

async fn kinds(store: &Store, run_id: &str) -> Vec<String> {
    store
        .audit_events(&AuditFilter {
            run_id: Some(run_id.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// The exchanges of a cassette as canonical JSON (its header names the model that
/// answered, which differs between a recording and a replay).
fn exchanges_text(c: &Cassette) -> String {
    let mut c = c.clone();
    c.header.model = String::new();
    c.to_canonical_json().unwrap()
}

#[tokio::test]
async fn a_recorded_run_replays_byte_for_byte_and_a_diverging_replay_writes_nothing() {
    for label in backends() {
        let dir = tempfile::tempdir().unwrap();
        let tape = dir.path().join("run.json");

        // Record on one store.
        let a = fresh(label).await;
        let recorder = Arc::new(Recorder::new(Arc::new(OfflineModel), &tape).unwrap());
        let recorded = agent(&a.store, recorder.clone(), &repo("policies"))
            .start("C-ANN", promise())
            .await
            .unwrap();
        let statuses: Vec<(&str, CallStatus)> = recorded
            .calls
            .iter()
            .map(|c| (c.tool.as_str(), c.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("log_promise", CallStatus::Executed),
                ("send_email", CallStatus::Executed)
            ],
            "{label}"
        );
        assert_eq!(recorder.exchange_count(), 2, "{label}");
        // The model was shown the ids of what it created: they carry the run's id.
        assert!(
            recorded.calls[0]
                .model_text
                .contains(&format!("PTP-{}/", recorded.run_id)),
            "{label}: {}",
            recorded.calls[0].model_text
        );

        // Replay it twice, each on a fresh store: the same run id, the same outcome, and
        // the same requests byte for byte (re-recorded through the replayer).
        let mut replays: Vec<RunOutcome> = Vec::new();
        for n in 0..2 {
            let b = fresh(label).await;
            let replayer = Arc::new(Replayer::open(&tape).unwrap());
            let again = dir.path().join(format!("again-{n}.json"));
            let rerecord = Arc::new(Recorder::new(replayer.clone(), &again).unwrap());
            let out = agent(&b.store, rerecord.clone(), &repo("policies"))
                .start("C-ANN", promise())
                .await
                .unwrap();
            replayer.finish().unwrap();
            assert_eq!(
                exchanges_text(&rerecord.cassette()),
                exchanges_text(&Cassette::load(&tape).unwrap()),
                "{label}: replay {n} made the recorded requests byte for byte"
            );
            assert_eq!(effects(&b.store).await, (1, 1, 0, 0), "{label}");
            assert_eq!(
                b.store.emails(Some("C-ANN")).await.unwrap()[0].body,
                a.store.emails(Some("C-ANN")).await.unwrap()[0].body
            );
            replays.push(out);
            b.cleanup().await;
        }
        let value = |o: &RunOutcome| serde_json::to_value(o).unwrap();
        assert_eq!(value(&replays[0]), value(&recorded), "{label}");
        assert_eq!(value(&replays[1]), value(&recorded), "{label}");

        // A replay whose first tool result differs (the policy now holds the promise):
        // it fails at that result, before the call's writes commit. No promise, no
        // approval item, no email, no case; the run failed with the mismatch audited.
        let c = fresh(label).await;
        let strict = stricter_policies(dir.path());
        let replayer = Arc::new(Replayer::open(&tape).unwrap());
        let err = agent(&c.store, replayer.clone(), &strict)
            .start("C-ANN", promise())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("before the last tool result was committed"),
            "{label}: {err}"
        );
        assert!(err.contains("message[3] (tool) content"), "{label}: {err}");
        assert!(err.contains("\\\"approval_id\\\""), "{label}: {err}");
        assert_eq!(effects(&c.store).await, (0, 0, 0, 0), "{label}");
        let run = c.store.run(&recorded.run_id).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed, "{label}");
        assert!(
            c.store
                .tool_call(&format!("{}/2/call_1_1", run.id))
                .await
                .unwrap()
                .is_none(),
            "{label}: the call's row rolled back"
        );
        let k = kinds(&c.store, &run.id).await;
        assert_eq!(
            k,
            ["run_started", "model_call", "model_error", "run_finished"],
            "{label}"
        );
        assert!(matches!(
            c.store.audit_verify().await.unwrap(),
            AuditVerification::Intact { .. }
        ));
        // The run's checkpoint holds the answer and no result for its calls.
        let saved = c.store.run_messages(&run.id).await.unwrap();
        let roles: Vec<&str> = saved
            .iter()
            .map(|m| m.message["role"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(roles, ["system", "user", "assistant"], "{label}");

        // A replay whose first request differs (another message) fails at the model
        // call, before anything the model asks for.
        let d = fresh(label).await;
        let mut other = promise();
        if let Trigger::Inbound { body, .. } = &mut other {
            *body = "Sorry for the delay. I will pay $1,100.00 on December 4th.".into();
        }
        let replayer = Arc::new(Replayer::open(&tape).unwrap());
        let err = agent(&d.store, replayer, &repo("policies"))
            .start("C-ANN", other)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("request #0 does not match"), "{label}: {err}");
        assert_eq!(effects(&d.store).await, (0, 0, 0, 0), "{label}");

        for ts in [a, c, d] {
            ts.cleanup().await;
        }
    }
}

/// The run id is derived from the customer, the trigger and the instant; the same trigger
/// twice at the same instant gets a second id, not a conflict.
#[tokio::test]
async fn the_same_trigger_twice_at_one_instant_gets_two_runs() {
    for label in backends() {
        let ts = fresh(label).await;
        let a = agent(&ts.store, Arc::new(OfflineModel), &repo("policies"));
        let step = Trigger::Step {
            step: "overdue_notice".into(),
        };
        let first = a.start("C-BO", step.clone()).await.unwrap();
        let second = a.start("C-BO", step).await.unwrap();
        assert!(first.run_id.starts_with("run-"), "{}", first.run_id);
        assert_eq!(first.run_id.len(), "run-".len() + 32, "{}", first.run_id);
        assert_eq!(second.run_id, format!("{}-2", first.run_id), "{label}");
        // Another instant, another id.
        let later = agent_at(&ts.store, now() + chrono::Duration::seconds(1))
            .start(
                "C-BO",
                Trigger::Step {
                    step: "overdue_notice".into(),
                },
            )
            .await
            .unwrap();
        assert!(!later.run_id.starts_with(&first.run_id), "{label}");
        ts.cleanup().await;
    }
}

/// A model whose tool call's arguments are not JSON (a reply cut at its length limit):
/// the requests carry `{}` in their place (see `wire_history`), and the replay's
/// continuation check compares the same wire form. Found by replaying the real-model set:
/// the check compared the transcript's raw arguments and failed every such replay.
#[tokio::test]
async fn a_run_with_unparseable_arguments_replays() {
    let dir = tempfile::tempdir().unwrap();
    let tape = dir.path().join("run.json");
    let scripted = argent_llm::ScriptedModel::new();
    scripted.push_tool_calls(vec![argent_llm::ToolCall::new(
        "call_1",
        "send_email",
        r#"{"body": "Dear Ann, thank you for"#,
    )]);
    scripted.push_tool_calls(vec![argent_llm::ToolCall::new(
        "call_2",
        "read_aging",
        r#"{"customer_id": "C-ANN"}"#,
    )]);
    scripted.push_text("Done.");
    let a = fresh("sqlite").await;
    let recorder = Arc::new(Recorder::new(Arc::new(scripted), &tape).unwrap());
    let recorded = agent(&a.store, recorder.clone(), &repo("policies"))
        .start("C-ANN", promise())
        .await
        .unwrap();
    assert_eq!(recorder.exchange_count(), 3);
    let b = fresh("sqlite").await;
    let replayer = Arc::new(Replayer::open(&tape).unwrap());
    let replayed = agent(&b.store, replayer.clone(), &repo("policies"))
        .start("C-ANN", promise())
        .await
        .unwrap();
    replayer.finish().unwrap();
    let value = |o: &RunOutcome| serde_json::to_value(o).unwrap();
    assert_eq!(value(&replayed), value(&recorded));
    assert_eq!(recorded.calls[0].status, CallStatus::Invalid);
    a.cleanup().await;
    b.cleanup().await;
}

/// The same, started at once from several tasks of one agent (a worker's slots, a bench's
/// episodes): each start gets its own id (`-2`, `-3`, …), none fails on the runs table's
/// unique key. Found by the planner-loop bench at 500 concurrent episodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_trigger_started_concurrently_at_one_instant_gets_distinct_runs() {
    for label in backends() {
        let ts = fresh(label).await;
        let a = Arc::new(agent(&ts.store, Arc::new(OfflineModel), &repo("policies")));
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let a = a.clone();
            tasks.push(tokio::spawn(async move {
                a.start(
                    "C-BO",
                    Trigger::Step {
                        step: "overdue_notice".into(),
                    },
                )
                .await
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(out) => ids.push(out.run_id),
                Err(e) => panic!("{label}: a concurrent start failed: {e}"),
            }
        }
        ids.sort();
        let base = ids[0].clone();
        let mut expected: Vec<String> = std::iter::once(base.clone())
            .chain((2..=6).map(|n| format!("{base}-{n}")))
            .collect();
        expected.sort();
        assert_eq!(ids, expected, "{label}");
        ts.cleanup().await;
    }
}

fn agent_at(store: &Store, at: DateTime<Utc>) -> Agent {
    let config = AgentConfig {
        clock: Clock::Fixed(at),
        ..Default::default()
    };
    Agent::from_dirs(
        store.clone(),
        Arc::new(OfflineModel),
        &repo("prompts"),
        &repo("policies"),
        config,
    )
    .unwrap()
}
