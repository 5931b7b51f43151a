//! The agent's model settings: generation parameters on every request, the compact prompts,
//! the cache-friendly order of the system prompt, the settings recorded in `run_started`,
//! and a run whose first request cannot fit the context window refused before anything is
//! written (on both backends).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use argent_agent::budget::common_prefix;
use argent_agent::{Agent, AgentConfig, AgentError, Clock, DocumentSet, Trigger};
use argent_llm::{
    ChatMessage, ChatModel, ChatRequest, ChatResponse, LlmError, ModelRole, ModelSettings,
};
use argent_store::testkit::TestStore;
use argent_store::{AuditFilter, RunStatus, Store};

fn now() -> DateTime<Utc> {
    "2026-11-20T18:00:00Z".parse().unwrap()
}

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

/// Answers every request with a closing text and keeps the requests.
#[derive(Default)]
struct Capture(Mutex<Vec<ChatRequest>>);

#[async_trait]
impl ChatModel for Capture {
    fn name(&self) -> String {
        "capture".into()
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.0.lock().unwrap().push(req.clone());
        Ok(ChatResponse::text("Nothing to do."))
    }
}

fn agent(store: &Store, model: Arc<dyn ChatModel>, settings: ModelSettings) -> Agent {
    let config = AgentConfig {
        clock: Clock::Fixed(now()),
        model_settings: settings,
        ..Default::default()
    };
    Agent::from_dirs(
        store.clone(),
        model,
        &repo("prompts"),
        &repo("policies"),
        config,
    )
    .unwrap()
}

async fn import(store: &Store) {
    store
        .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
        .await
        .unwrap();
}

fn step() -> Trigger {
    Trigger::Step {
        step: "overdue_notice".into(),
    }
}

/// A message with signals the agent records (writes) before the model runs.
fn inbound() -> Trigger {
    Trigger::Inbound {
        from: "ann@mail.example".into(),
        subject: "Re: invoice".into(),
        body: "I don't owe this. STOP contacting me, my lawyer will call you.".into(),
        received_at: now(),
        message_id: None,
        references: Vec::new(),
        mail: None,
    }
}

fn defaults() -> ModelSettings {
    ModelSettings::defaults(ModelRole::Agent)
}

async fn events(store: &Store) -> usize {
    store
        .audit_events(&AuditFilter::default())
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_run_whose_first_request_cannot_fit_is_refused_before_anything_is_written() {
    for ts in TestStore::all().await.unwrap() {
        import(&ts.store).await;
        let mut small = defaults();
        small.context_window = Some(2048);
        small.max_output_tokens = Some(512);
        let model = Arc::new(Capture::default());
        let a = agent(&ts.store, model.clone(), small.clone());
        let before = events(&ts.store).await;
        for trigger in [inbound(), step()] {
            let err = a.start("C-ANN", trigger).await.unwrap_err();
            let AgentError::PromptTooLarge(t) = &err else {
                panic!("expected PromptTooLarge, got {err}");
            };
            assert!(t.size.total > 1536, "{t}");
            assert_eq!(t.context_window, 2048);
            assert_eq!(t.max_output_tokens, 512);
            assert_eq!(
                t.size.total,
                t.size.system + t.size.user + t.size.tools + 3,
                "the parts and the reply priming make the total"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("C-ANN")
                    && msg.contains("leaving 1536")
                    && msg.contains("compact_prompts"),
                "{msg}"
            );
        }
        assert_eq!(events(&ts.store).await, before, "no audit event, no signal");
        assert!(ts.store.runs(None).await.unwrap().is_empty(), "no run");
        assert!(
            model.0.lock().unwrap().is_empty(),
            "the model was not asked"
        );

        // The same window with room for it: the run starts and finishes.
        let mut roomy = small;
        roomy.context_window = Some(16_384);
        let a = agent(&ts.store, model.clone(), roomy);
        let out = a.start("C-ANN", step()).await.unwrap();
        assert_eq!(out.status, RunStatus::Finished);
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn requests_carry_the_settings_and_run_started_records_them() {
    let ts = TestStore::sqlite().await.unwrap();
    import(&ts.store).await;

    // Defaults: the request is what the agent always sent.
    let model = Arc::new(Capture::default());
    agent(&ts.store, model.clone(), defaults())
        .start("C-ANN", step())
        .await
        .unwrap();
    let req = model.0.lock().unwrap()[0].clone();
    assert_eq!(
        (
            req.temperature,
            req.top_p,
            req.max_tokens,
            req.seed,
            req.parallel_tool_calls
        ),
        (None, None, None, None, None)
    );

    let mut s = defaults();
    s.temperature = Some(0.2);
    s.top_p = Some(0.9);
    s.max_output_tokens = Some(700);
    s.seed = Some(5);
    s.parallel_tool_calls = Some(false);
    let model = Arc::new(Capture::default());
    let out = agent(&ts.store, model.clone(), s)
        .start("C-ANN", step())
        .await
        .unwrap();
    let req = model.0.lock().unwrap()[0].clone();
    assert_eq!(req.temperature, Some(0.2));
    assert_eq!(req.top_p, Some(0.9));
    assert_eq!(req.max_tokens, Some(700));
    assert_eq!(req.seed, Some(5));
    assert_eq!(req.parallel_tool_calls, Some(false));

    let started = ts
        .store
        .audit_events(&AuditFilter {
            run_id: Some(out.run_id.clone()),
            kind: Some("run_started".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(started.len(), 1);
    let recorded = &started[0].payload["model_settings"];
    assert_eq!(recorded["agent"]["temperature"], serde_json::json!(0.2));
    assert_eq!(recorded["agent"]["max_output_tokens"], 700);
    assert_eq!(recorded["agent"]["role"], "agent");
    assert!(
        recorded["compliance"].is_null(),
        "the offline check has no settings"
    );
    ts.cleanup().await;
}

fn system_of(req: &ChatRequest) -> String {
    match &req.messages[0] {
        ChatMessage::System { content } => content.clone(),
        other => panic!("not a system message: {other:?}"),
    }
}

#[tokio::test]
async fn the_static_part_of_the_system_prompt_comes_before_the_account() {
    let ts = TestStore::sqlite().await.unwrap();
    import(&ts.store).await;
    let model = Arc::new(Capture::default());
    let a = agent(&ts.store, model.clone(), defaults());
    a.start("C-ANN", step()).await.unwrap();
    a.start("C-BO", inbound()).await.unwrap();
    let reqs = model.0.lock().unwrap().clone();
    let systems = vec![system_of(&reqs[0]), system_of(&reqs[1])];
    let shared = common_prefix(&systems);
    // Everything but the account's own data is shared by both accounts' prompts.
    assert!(
        shared.contains("You act only through tools.")
            && shared.contains("Rules for every email you draft")
            && shared.contains("The `facts` entry")
            && shared.contains("Everything below is about the account"),
        "{shared}"
    );
    assert!(!shared.contains("Ann Lee") && !shared.contains("C-ANN"));
    assert!(systems[0].contains("Ann Lee") && systems[1].contains("Bo Diaz"));
    // The tools come first in the request and are the same for both.
    assert_eq!(reqs[0].tools, reqs[1].tools);
    ts.cleanup().await;
}

#[tokio::test]
async fn the_compact_variant_is_smaller_and_needs_its_template() {
    let ts = TestStore::sqlite().await.unwrap();
    import(&ts.store).await;
    let standard = Arc::new(Capture::default());
    agent(&ts.store, standard.clone(), defaults())
        .start("C-ANN", step())
        .await
        .unwrap();
    let mut s = defaults();
    s.compact_prompts = true;
    let compact = Arc::new(Capture::default());
    agent(&ts.store, compact.clone(), s.clone())
        .start("C-ANN", step())
        .await
        .unwrap();
    let (std_req, cmp_req) = (
        standard.0.lock().unwrap()[0].clone(),
        compact.0.lock().unwrap()[0].clone(),
    );
    let counter = argent_llm::TokenCounter::for_model("gpt-4o-mini");
    let (a, b) = (
        counter.count_request(&std_req),
        counter.count_request(&cmp_req),
    );
    assert!(
        b * 10 < a * 8,
        "compact {b} tokens vs standard {a}: at least 20% smaller"
    );
    // The same tools, names and required arguments; no parameter descriptions.
    assert_eq!(std_req.tool_names(), cmp_req.tool_names());
    for (full, small) in std_req.tools.iter().zip(cmp_req.tools.iter()) {
        assert_eq!(full.parameters["required"], small.parameters["required"]);
        assert!(!small.parameters.to_string().contains("\"description\""));
        assert!(small.description.len() <= full.description.len());
    }
    // The compact prompt still carries the context block the account is read from.
    assert!(system_of(&cmp_req).contains("<context>"));

    // Without a compact/system template, an agent asked for compact prompts is not built.
    let mut docs = DocumentSet::from_dirs(&repo("prompts"), &repo("policies")).unwrap();
    docs.prompts.remove("compact/system");
    let config = AgentConfig {
        model_settings: s,
        ..Default::default()
    };
    let err = Agent::from_documents(ts.store.clone(), compact, &docs, config)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("compact/system"), "{err}");
    ts.cleanup().await;
}
