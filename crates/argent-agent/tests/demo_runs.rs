//! Issue #17: `argent demo` shows each run as it ends, and one run's error does not stop
//! the others.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::NaiveDate;

use argent_agent::{Agent, AgentConfig, Clock};
use argent_core::demo::{DemoConfig, generate};
use argent_llm::{ChatModel, ChatRequest, ChatResponse, LlmError};
use argent_store::RunStatus;
use argent_store::testkit::TestStore;

/// Fails its first call with an operator error (a misconfiguration), answers every other
/// with a closing text; records, at each call, how many runs the demo had reported.
struct FailsFirst {
    calls: AtomicUsize,
    reported: Arc<AtomicUsize>,
    seen: Mutex<Vec<usize>>,
}

#[async_trait]
impl ChatModel for FailsFirst {
    fn name(&self) -> String {
        "fails-first".into()
    }

    async fn chat(&self, _req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.seen
            .lock()
            .unwrap()
            .push(self.reported.load(Ordering::SeqCst));
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(LlmError::Config(
                "the first run's model is misconfigured".into(),
            ));
        }
        Ok(ChatResponse::text("Nothing to do for now."))
    }
}

#[tokio::test]
async fn each_run_is_reported_as_it_ends_and_an_error_does_not_stop_the_rest() {
    for ts in TestStore::all().await.unwrap() {
        let as_of = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        ts.store
            .import_portfolio(
                &generate(&DemoConfig {
                    customers: 40,
                    as_of,
                    ..Default::default()
                }),
                "demo",
            )
            .await
            .unwrap();
        let reported = Arc::new(AtomicUsize::new(0));
        let model = Arc::new(FailsFirst {
            calls: AtomicUsize::new(0),
            reported: reported.clone(),
            seen: Mutex::new(Vec::new()),
        });
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let agent = Agent::from_dirs(
            ts.store.clone(),
            model.clone(),
            &repo.join("prompts"),
            &repo.join("policies"),
            AgentConfig {
                clock: Clock::Fixed(as_of.and_hms_opt(18, 0, 0).unwrap().and_utc()),
                ..Default::default()
            },
        )
        .unwrap();
        let mut shown: Vec<(String, bool)> = Vec::new();
        let counter = reported.clone();
        let mut each = |r: &argent_agent::demo::DemoRun| {
            counter.fetch_add(1, Ordering::SeqCst);
            shown.push((r.scenario.clone(), r.outcome.is_ok()));
        };
        let runs = argent_agent::demo::run_demo(&agent, 2, &mut each)
            .await
            .unwrap();
        assert!(runs.len() >= 3, "{} runs", runs.len());
        assert_eq!(shown.len(), runs.len(), "every run is reported");
        // The first run failed and was reported with its error; every later one still ran.
        assert!(!shown[0].1, "{shown:?}");
        let error = runs[0].outcome.as_ref().unwrap_err();
        assert!(error.contains("misconfigured"), "{error}");
        assert!(shown[1..].iter().all(|(_, ok)| *ok), "{shown:?}");
        for r in &runs[1..] {
            assert_eq!(r.outcome.as_ref().unwrap().status, RunStatus::Finished);
        }
        // Each run's model call came after every earlier run was reported: the caller could
        // print each as it ended, not all at the end.
        let seen = model.seen.lock().unwrap().clone();
        assert_eq!(seen, (0..runs.len()).collect::<Vec<_>>());
        ts.cleanup().await;
    }
}
