//! Model settings on the wire: what each preset (and the defaults) sends to an
//! OpenAI-compatible server, and the per-endpoint request concurrency. Fake servers on
//! 127.0.0.1 only.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use argent_llm::{
    ChatMessage, ChatModel, ChatRequest, ModelRole, ModelSettings, OpenAiModel, Preset,
    SettingsFile, SettingsLayer, SettingsSources, ToolChoice, ToolDefinition, resolve,
};
use common::*;
use serde_json::{Value, json};

fn settings(role: ModelRole, preset: Option<Preset>, file: Option<&str>) -> ModelSettings {
    let file = file.map(|t| SettingsFile::parse("test.toml", t).unwrap());
    resolve(
        role,
        &SettingsSources {
            file: file.as_ref(),
            env: None,
            flags: SettingsLayer {
                preset,
                ..Default::default()
            },
        },
    )
    .unwrap()
    .settings
}

/// An agent-like request: tools, a named tool choice, nothing else set.
fn agent_request() -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::system("You are a collections agent."),
        ChatMessage::user("I will pay on Friday."),
    ])
    .with_tools(vec![
        ToolDefinition::new("read_aging", "Read aging", read_aging_schema()),
        ToolDefinition::new("log_promise", "Record a promise", log_promise_schema()),
    ])
    .with_tool_choice(ToolChoice::Function {
        name: "read_aging".into(),
    })
}

async fn sent(model_name: &str, s: &ModelSettings, req: ChatRequest) -> Value {
    let server = FakeServer::start(|_| Reply::Json(200, text_completion("ok"))).await;
    let config = config_for(&server, 0).with_settings(s);
    let mut config = config;
    config.model = model_name.into();
    let model = OpenAiModel::new(config).unwrap();
    model.chat(&s.apply(req)).await.unwrap();
    let got = server.received();
    assert_eq!(got.len(), 1);
    got[0].body.clone()
}

#[tokio::test]
async fn the_defaults_send_what_argent_always_sent() {
    let s = settings(ModelRole::Agent, None, None);
    let body = sent("gpt-4o-mini", &s, agent_request()).await;
    for absent in [
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "seed",
        "parallel_tool_calls",
    ] {
        assert!(body.get(absent).is_none(), "{absent} in {body}");
    }
    assert_eq!(body["tool_choice"]["function"]["name"], "read_aging");
    assert!(body["tools"][0]["function"].get("strict").is_none());

    let check = settings(ModelRole::Compliance, None, None);
    let body = sent(
        "gpt-4o-mini",
        &check,
        ChatRequest::new(vec![ChatMessage::user("draft")]),
    )
    .await;
    assert_eq!(body["temperature"], json!(0.0));
    assert_eq!(body["max_tokens"], 400);
}

#[tokio::test]
async fn each_preset_shapes_the_request_its_server_takes() {
    // OpenAI: max_completion_tokens for every model, named tool choice, strict where the
    // schema qualifies (read_aging's does; log_promise's has no additionalProperties).
    let s = settings(
        ModelRole::Agent,
        Some(Preset::Openai),
        Some(
            "[agent]\ntemperature = 0.3\nmax_output_tokens = 700\nseed = 42\ntop_p = 0.9\nparallel_tool_calls = false\n",
        ),
    );
    let body = sent("gpt-4o-mini", &s, agent_request()).await;
    assert_eq!(body["max_completion_tokens"], 700);
    assert!(body.get("max_tokens").is_none());
    assert_eq!(body["temperature"], json!(0.3));
    assert_eq!(body["top_p"], json!(0.9));
    assert_eq!(body["seed"], 42);
    assert_eq!(body["parallel_tool_calls"], false);
    assert_eq!(body["tool_choice"]["function"]["name"], "read_aging");
    assert_eq!(body["tools"][0]["function"]["strict"], true);
    assert!(body["tools"][1]["function"].get("strict").is_none());

    // Azure: the field follows the model (max_tokens for gpt-4o, max_completion_tokens
    // for o-series), no strict.
    let s = settings(
        ModelRole::Agent,
        Some(Preset::AzureOpenai),
        Some("[agent]\nmax_output_tokens = 500\n"),
    );
    let body = sent("gpt-4o", &s, agent_request()).await;
    assert_eq!(body["max_tokens"], 500);
    assert!(body["tools"][0]["function"].get("strict").is_none());
    let body = sent("o4-mini", &s, agent_request()).await;
    assert_eq!(body["max_completion_tokens"], 500);

    // Ollama: max_tokens, no tool_choice and no parallel_tool_calls (it takes neither);
    // bounded output and low temperature for the agent by default.
    let s = settings(ModelRole::Agent, Some(Preset::Ollama), None);
    let body = sent(
        "llama3.1",
        &s,
        agent_request().with_parallel_tool_calls(false),
    )
    .await;
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(body["temperature"], json!(0.2));
    assert!(body.get("tool_choice").is_none());
    assert!(body.get("parallel_tool_calls").is_none());
    assert!(body.get("max_completion_tokens").is_none());
    assert_eq!(s.timeout(), Duration::from_secs(600));
    assert_eq!(s.concurrency, Some(1));

    // The compliance check on Ollama keeps its own temperature and bound.
    let c = settings(ModelRole::Compliance, Some(Preset::Ollama), None);
    let body = sent(
        "llama3.1",
        &c,
        ChatRequest::new(vec![ChatMessage::user("draft")]),
    )
    .await;
    assert_eq!(body["temperature"], json!(0.0));
    assert_eq!(body["max_tokens"], 400);
    assert_eq!(c.timeout(), Duration::from_secs(600));

    // llama.cpp: modes only (a named choice is not sent, `required` is).
    let s = settings(ModelRole::Agent, Some(Preset::Llamacpp), None);
    let body = sent("qwen2.5", &s, agent_request()).await;
    assert!(body.get("tool_choice").is_none());
    assert_eq!(body["max_tokens"], 1024);
    let body = sent(
        "qwen2.5",
        &s,
        agent_request().with_tool_choice(ToolChoice::Required),
    )
    .await;
    assert_eq!(body["tool_choice"], "required");

    // vLLM: every tool_choice form, max_tokens.
    let s = settings(ModelRole::Agent, Some(Preset::Vllm), None);
    let body = sent("Qwen/Qwen2.5-7B-Instruct", &s, agent_request()).await;
    assert_eq!(body["tool_choice"]["function"]["name"], "read_aging");
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(s.timeout(), Duration::from_secs(300));
}

/// A server that answers after `delay` and records the most requests it had in flight.
async fn counting_server(
    delay: Duration,
) -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    use axum::Router;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f, p) = (in_flight.clone(), peak.clone());
    let app = Router::new().fallback(move || {
        let (f, p) = (f.clone(), p.clone());
        async move {
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            f.fetch_sub(1, Ordering::SeqCst);
            axum::Json(text_completion("ok"))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/v1"), peak, task)
}

async fn fire(models: &[Arc<OpenAiModel>], per_model: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for m in models {
        for _ in 0..per_model {
            let m = m.clone();
            tasks.spawn(async move {
                m.chat(&ChatRequest::new(vec![ChatMessage::user("x")]))
                    .await
                    .unwrap();
            });
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_one_semaphore_per_endpoint_shared_by_every_model() {
    let (base, peak, task) = counting_server(Duration::from_millis(60)).await;
    let config = |concurrency: Option<u32>| {
        let mut c = argent_llm::OpenAiConfig::new("llama3.1").with_base_url(&base);
        c.concurrency = concurrency;
        c
    };
    // The agent's model and the check's, both limited to 1: never two requests at once.
    let agent = Arc::new(OpenAiModel::new(config(Some(1))).unwrap());
    let check = Arc::new(OpenAiModel::new(config(Some(1))).unwrap());
    fire(&[agent, check], 3).await;
    assert_eq!(peak.load(Ordering::SeqCst), 1);
    task.abort();

    // Without a limit the same load overlaps.
    let (base2, peak2, task2) = counting_server(Duration::from_millis(200)).await;
    let mut c = argent_llm::OpenAiConfig::new("llama3.1").with_base_url(&base2);
    c.concurrency = None;
    let free = Arc::new(OpenAiModel::new(c).unwrap());
    fire(&[free], 4).await;
    assert!(
        peak2.load(Ordering::SeqCst) >= 2,
        "{}",
        peak2.load(Ordering::SeqCst)
    );
    task2.abort();

    // A limit of 2 allows two at once, never three.
    let (base3, peak3, task3) = counting_server(Duration::from_millis(150)).await;
    let mut c = argent_llm::OpenAiConfig::new("llama3.1").with_base_url(&base3);
    c.concurrency = Some(2);
    let two = Arc::new(OpenAiModel::new(c).unwrap());
    fire(&[two], 6).await;
    assert_eq!(peak3.load(Ordering::SeqCst), 2);
    task3.abort();
}
