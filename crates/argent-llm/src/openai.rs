//! OpenAI-compatible provider on `async-openai`.
//!
//! Speaks `POST {base_url}/chat/completions`, which OpenAI, Azure OpenAI (v1
//! API, or classic deployments via [`AzureDeployment`]), vLLM, Ollama and
//! llama.cpp's server all serve. `async-openai` types stay inside this module.
//!
//! Retries are ours, not the SDK's: the SDK's built-in retry layer is replaced
//! by a plain transport, so the configured [`RetryPolicy`] is the only retry
//! loop and attempt counts are exact. Retried: HTTP 408, 429 (except
//! `insufficient_quota`), 5xx, connection failures and timeouts. Any other
//! 4xx fails at once.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_openai::Client;
use async_openai::config::Config;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls, ChatCompletionNamedToolChoice,
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestToolMessage,
    ChatCompletionRequestToolMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionToolChoiceOption,
    CreateChatCompletionResponse, FunctionCall, FunctionName, ToolChoiceOptions,
};
use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use secrecy::SecretString;
use tokio::sync::Semaphore;

use crate::error::LlmError;
use crate::model::ChatModel;
use crate::settings::{MaxTokensField, ModelSettings, Quirks, ToolChoiceForms, strict_compatible};
use crate::tokens::TokenCounter;
use crate::types::{
    ChatMessage, ChatRequest, ChatResponse, FinishReason, ToolCall, ToolChoice, Usage,
};

/// OpenAI's public endpoint, the default base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Default per-attempt timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `api-version` for classic Azure deployments.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// Base URL of the endpoint (`https://api.openai.com/v1`, `http://localhost:11434/v1`...).
pub const ENV_BASE_URL: &str = "ARGENT_LLM_BASE_URL";
/// API key; falls back to `OPENAI_API_KEY`. Optional for local servers.
pub const ENV_API_KEY: &str = "ARGENT_LLM_API_KEY";
/// Fallback API key variable.
pub const ENV_OPENAI_API_KEY: &str = "OPENAI_API_KEY";
/// Model name (required).
pub const ENV_MODEL: &str = "ARGENT_LLM_MODEL";
/// Per-attempt timeout in seconds (decimals allowed).
pub const ENV_TIMEOUT_SECS: &str = "ARGENT_LLM_TIMEOUT_SECS";
/// Retries after the first attempt.
pub const ENV_MAX_RETRIES: &str = "ARGENT_LLM_MAX_RETRIES";
/// Classic Azure deployment name; when set, Azure-style URLs and the `api-key` header are used.
pub const ENV_AZURE_DEPLOYMENT: &str = "ARGENT_LLM_AZURE_DEPLOYMENT";
/// Classic Azure `api-version` (default [`DEFAULT_AZURE_API_VERSION`]).
pub const ENV_AZURE_API_VERSION: &str = "ARGENT_LLM_AZURE_API_VERSION";

/// Bounded retries with capped exponential backoff and jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts in all).
    pub max_retries: u32,
    /// Backoff before the first retry; doubles for each further retry.
    pub initial_backoff: Duration,
    /// Cap on any single backoff (also caps a server's `Retry-After`).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    pub fn new(max_retries: u32, initial_backoff: Duration, max_backoff: Duration) -> Self {
        RetryPolicy {
            max_retries,
            initial_backoff,
            max_backoff,
        }
    }

    /// No retries: one attempt only.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// The delay before retry number `retry` (0 for the first retry):
    /// `min(max_backoff, initial_backoff * 2^retry)`, jittered uniformly into
    /// its upper half so that concurrent clients do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        let capped = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let half = capped / 2;
        let spread = u64::try_from((capped - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::random_range(0..=spread))
    }
}

/// A classic Azure OpenAI deployment:
/// `{base_url}/openai/deployments/{deployment}/chat/completions?api-version=...`
/// with the key in an `api-key` header. (Azure's newer v1 API is plain
/// OpenAI-compatible: use base URL `https://RESOURCE.openai.azure.com/openai/v1`
/// without this.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureDeployment {
    pub deployment: String,
    pub api_version: String,
}

/// Configuration of an [`OpenAiModel`].
#[derive(Clone, PartialEq)]
pub struct OpenAiConfig {
    /// Base URL up to and including the version segment, e.g.
    /// `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// Bearer token (or Azure `api-key`). `None` sends no credentials, for
    /// local servers. Never printed by `Debug`.
    pub api_key: Option<String>,
    /// Model name sent in every request.
    pub model: String,
    /// Timeout of each attempt, from sending to the full body.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub azure: Option<AzureDeployment>,
    /// How requests are shaped for this server (output-bound field, `tool_choice` forms,
    /// strict schemas).
    pub quirks: Quirks,
    /// Requests in flight at once to this endpoint, shared by every model of the process
    /// that talks to it (`None`: no limit). Waiting for a place is not part of an
    /// attempt's timeout.
    pub concurrency: Option<u32>,
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("azure", &self.azure)
            .field("quirks", &self.quirks)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl OpenAiConfig {
    /// OpenAI's endpoint, no key, [`DEFAULT_TIMEOUT`], default retries.
    pub fn new(model: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            api_key: None,
            model: model.into(),
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            azure: None,
            quirks: Quirks::default(),
            concurrency: None,
        }
    }

    /// The endpoint settings of `settings`: per-attempt timeout, retries, quirks and
    /// request concurrency. (Generation parameters are the caller's:
    /// [`ModelSettings::apply`] puts them on each request.)
    pub fn with_settings(mut self, settings: &ModelSettings) -> Self {
        self.timeout = settings.timeout();
        self.retry.max_retries = settings.max_retries;
        self.quirks = settings.quirks;
        self.concurrency = settings.concurrency;
        self
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    pub fn with_api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_azure(
        mut self,
        deployment: impl Into<String>,
        api_version: impl Into<String>,
    ) -> Self {
        self.azure = Some(AzureDeployment {
            deployment: deployment.into(),
            api_version: api_version.into(),
        });
        self
    }

    /// Read the configuration from the process environment; see
    /// [`OpenAiConfig::from_lookup`].
    pub fn from_env() -> Result<Self, LlmError> {
        OpenAiConfig::from_lookup(|k| std::env::var(k).ok())
    }

    /// Read the configuration through `get` (a stand-in for the environment,
    /// so tests need not mutate the process environment).
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `ARGENT_LLM_MODEL` | model name | required |
    /// | `ARGENT_LLM_BASE_URL` | endpoint base URL | `https://api.openai.com/v1` |
    /// | `ARGENT_LLM_API_KEY`, else `OPENAI_API_KEY` | key | none (fine for local servers) |
    /// | `ARGENT_LLM_TIMEOUT_SECS` | per-attempt timeout | 60 |
    /// | `ARGENT_LLM_MAX_RETRIES` | retries after the first attempt | 3 |
    /// | `ARGENT_LLM_AZURE_DEPLOYMENT` | classic Azure deployment | none |
    /// | `ARGENT_LLM_AZURE_API_VERSION` | classic Azure api-version | `2024-10-21` |
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, LlmError> {
        let var = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let model = var(ENV_MODEL).ok_or_else(|| {
            LlmError::Config(format!(
                "{ENV_MODEL} is not set: set it to the model your endpoint serves \
                 (e.g. gpt-4o-mini for OpenAI, llama3.1 for Ollama)"
            ))
        })?;
        let mut config = OpenAiConfig::new(model);
        if let Some(url) = var(ENV_BASE_URL) {
            config.base_url = url;
        }
        config.api_key = var(ENV_API_KEY).or_else(|| var(ENV_OPENAI_API_KEY));
        if let Some(raw) = var(ENV_TIMEOUT_SECS) {
            config.timeout = raw
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| {
                    LlmError::Config(format!(
                        "{ENV_TIMEOUT_SECS}={raw:?} is not a positive number of seconds"
                    ))
                })?;
        }
        if let Some(raw) = var(ENV_MAX_RETRIES) {
            config.retry.max_retries = raw.parse::<u32>().map_err(|_| {
                LlmError::Config(format!(
                    "{ENV_MAX_RETRIES}={raw:?} is not a whole number of retries"
                ))
            })?;
        }
        if let Some(deployment) = var(ENV_AZURE_DEPLOYMENT) {
            config.azure = Some(AzureDeployment {
                deployment,
                api_version: var(ENV_AZURE_API_VERSION)
                    .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_string()),
            });
        }
        config.validate()?;
        Ok(config)
    }

    /// Check the configuration; every error says which setting is wrong.
    pub fn validate(&self) -> Result<(), LlmError> {
        if self.model.trim().is_empty() {
            return Err(LlmError::Config(format!(
                "the model name is empty (set {ENV_MODEL})"
            )));
        }
        let url = reqwest::Url::parse(self.base_url.trim()).map_err(|e| {
            LlmError::Config(format!(
                "base URL {:?} is not a valid URL ({e}); set {ENV_BASE_URL}, e.g. http://localhost:11434/v1",
                self.base_url
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(LlmError::Config(format!(
                "base URL {:?} must start with http:// or https://",
                self.base_url
            )));
        }
        if self.timeout.is_zero() {
            return Err(LlmError::Config(
                "the request timeout must be greater than zero".into(),
            ));
        }
        if let Some(key) = &self.api_key {
            if HeaderValue::from_str(&format!("Bearer {key}")).is_err() {
                return Err(LlmError::Config(
                    "the API key contains characters not allowed in an HTTP header (a stray newline or quote?)"
                        .into(),
                ));
            }
        } else if url.host_str() == Some("api.openai.com") || self.azure.is_some() {
            return Err(LlmError::Config(format!(
                "{} needs an API key: set {ENV_API_KEY} (or {ENV_OPENAI_API_KEY}), \
                 or point {ENV_BASE_URL} at a local server",
                url.host_str().unwrap_or("this endpoint")
            )));
        }
        if let Some(az) = &self.azure {
            let ok = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            };
            if !ok(&az.deployment) {
                return Err(LlmError::Config(format!(
                    "Azure deployment name {:?} must be letters, digits, '-', '_' or '.'",
                    az.deployment
                )));
            }
            if !ok(&az.api_version) {
                return Err(LlmError::Config(format!(
                    "Azure api-version {:?} is not valid (e.g. {DEFAULT_AZURE_API_VERSION})",
                    az.api_version
                )));
            }
        }
        Ok(())
    }
}

/// The `async-openai` configuration we hand the SDK: URLs, headers and query
/// built once, from a validated [`OpenAiConfig`] (the SDK's own configs read
/// `OPENAI_*` variables behind our back and panic on bad header values).
#[derive(Clone)]
struct WireConfig {
    base: String,
    url_prefix: String,
    headers: HeaderMap,
    query: Vec<(String, String)>,
    api_key: SecretString,
}

impl WireConfig {
    fn new(config: &OpenAiConfig) -> Result<Self, LlmError> {
        let base = config.base_url.trim().trim_end_matches('/').to_string();
        let mut headers = HeaderMap::new();
        let key = config.api_key.clone().unwrap_or_default();
        let bad_key = || LlmError::Config("the API key is not a valid HTTP header value".into());
        let (url_prefix, query) = match &config.azure {
            Some(az) => {
                let mut v = HeaderValue::from_str(&key).map_err(|_| bad_key())?;
                v.set_sensitive(true);
                headers.insert(HeaderName::from_static("api-key"), v);
                (
                    format!("{base}/openai/deployments/{}", az.deployment),
                    vec![("api-version".to_string(), az.api_version.clone())],
                )
            }
            None => {
                if config.api_key.is_some() {
                    let mut v =
                        HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| bad_key())?;
                    v.set_sensitive(true);
                    headers.insert(AUTHORIZATION, v);
                }
                (base.clone(), Vec::new())
            }
        };
        Ok(WireConfig {
            base,
            url_prefix,
            headers,
            query,
            api_key: SecretString::from(key),
        })
    }
}

impl Config for WireConfig {
    fn headers(&self) -> HeaderMap {
        self.headers.clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.url_prefix, path)
    }

    fn query(&self) -> Vec<(&str, &str)> {
        self.query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn api_base(&self) -> &str {
        &self.base
    }

    fn api_key(&self) -> &SecretString {
        &self.api_key
    }
}

/// A non-success HTTP answer, captured with its status, body and `Retry-After`
/// before the SDK would fold it into a JSON parse error.
#[derive(Debug)]
struct HttpFailure {
    status: u16,
    body: String,
    retry_after: Option<Duration>,
}

impl fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}: {}", self.status, error_message(&self.body))
    }
}

impl std::error::Error for HttpFailure {}

/// The HTTP transport installed in the SDK client: plain reqwest, no retries,
/// and non-success statuses surfaced as [`HttpFailure`].
#[derive(Clone)]
struct Transport {
    http: reqwest::Client,
}

type TransportFuture =
    Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send + 'static>>;

impl tower_service::Service<HttpRequestFactory> for Transport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = TransportFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let http = self.http.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            let response = http.execute(request).await.map_err(OpenAIError::Reqwest)?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = match response.text().await {
                Ok(body) => body,
                Err(e) => format!("<error body unreadable: {e}>"),
            };
            Err(OpenAIError::Boxed(Box::new(HttpFailure {
                status: status.as_u16(),
                body,
                retry_after,
            })))
        })
    }
}

/// A chat model served by an OpenAI-compatible endpoint.
pub struct OpenAiModel {
    client: Client<WireConfig>,
    config: OpenAiConfig,
    endpoint: String,
    /// The endpoint's places, when its concurrency is limited.
    slots: Option<Arc<Semaphore>>,
}

/// One semaphore per endpoint URL for the whole process, so the agent's model and the
/// compliance check's (or every case of an eval run) share an endpoint's places. Its size
/// is the smallest concurrency any model configured for that endpoint.
fn endpoint_slots(endpoint: &str, limit: u32) -> Arc<Semaphore> {
    type Slots = HashMap<String, (u32, Arc<Semaphore>)>;
    static SLOTS: OnceLock<Mutex<Slots>> = OnceLock::new();
    let limit = limit.max(1);
    let mut map = SLOTS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let entry = map
        .entry(endpoint.to_string())
        .or_insert_with(|| (limit, Arc::new(Semaphore::new(limit as usize))));
    if limit < entry.0 {
        // Fewer places from now on: retire the difference (as permits come back).
        let fewer = (entry.0 - limit) as usize;
        let retired = entry.1.forget_permits(fewer);
        if retired < fewer {
            let sem = entry.1.clone();
            let rest = fewer - retired;
            tokio::spawn(async move {
                if let Ok(p) = sem.acquire_many(rest as u32).await {
                    p.forget();
                }
            });
        }
        entry.0 = limit;
    }
    entry.1.clone()
}

impl fmt::Debug for OpenAiModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiModel")
            .field("config", &self.config)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl OpenAiModel {
    /// Build a client for `config` (validated first). No request is sent.
    pub fn new(config: OpenAiConfig) -> Result<Self, LlmError> {
        config.validate()?;
        let wire = WireConfig::new(&config)?;
        let endpoint = wire.url("/chat/completions");

        // reqwest is built without a bundled crypto provider; use ring unless
        // the process already chose one.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err only means another thread installed one first: fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("argent-llm/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&wire.base) {
            // A local server (Ollama, llama.cpp, vLLM on this host) is never
            // reached through a proxy.
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| {
            LlmError::Config(format!(
                "could not build the HTTP client: {}",
                error_chain(&e)
            ))
        })?;
        let client = Client::build(http.clone(), wire).with_http_service(Transport { http });
        let slots = config.concurrency.map(|n| endpoint_slots(&endpoint, n));
        Ok(OpenAiModel {
            client,
            config,
            endpoint,
            slots,
        })
    }

    /// [`OpenAiConfig::from_env`] then [`OpenAiModel::new`].
    pub fn from_env() -> Result<Self, LlmError> {
        OpenAiModel::new(OpenAiConfig::from_env()?)
    }

    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    /// The full URL requests are sent to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn convert_response(
        &self,
        resp: CreateChatCompletionResponse,
        req: &ChatRequest,
    ) -> Result<ChatResponse, LlmError> {
        let Some(choice) = resp.choices.into_iter().next() else {
            return Err(LlmError::InvalidResponse {
                endpoint: self.endpoint.clone(),
                message: "the completion has no choices".into(),
            });
        };
        let message = choice.message;
        let mut tool_calls = Vec::new();
        for (i, call) in message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let (id, name, arguments) = match call {
                ChatCompletionMessageToolCalls::Function(c) => {
                    (c.id, c.function.name, c.function.arguments)
                }
                ChatCompletionMessageToolCalls::Custom(c) => {
                    (c.id, c.custom_tool.name, c.custom_tool.input)
                }
            };
            let id = if id.trim().is_empty() {
                let made = format!("call_{i}");
                tracing::warn!(tool = %name, id = %made, "provider returned a tool call without an id; assigned one");
                made
            } else {
                id
            };
            // `arguments` is passed through untouched, valid JSON or not.
            tool_calls.push(ToolCall {
                id,
                name,
                arguments,
            });
        }
        let content = match (message.content, message.refusal) {
            (Some(c), _) => Some(c),
            (None, Some(refusal)) => {
                tracing::warn!(endpoint = %self.endpoint, "model refused: {refusal}");
                Some(refusal)
            }
            (None, None) => None,
        };
        use async_openai::types::chat::FinishReason as Wire;
        let finish_reason = match choice.finish_reason {
            Some(Wire::Stop) => FinishReason::Stop,
            Some(Wire::Length) => FinishReason::Length,
            Some(Wire::ToolCalls) | Some(Wire::FunctionCall) => FinishReason::ToolCalls,
            Some(Wire::ContentFilter) => FinishReason::ContentFilter,
            None if !tool_calls.is_empty() => FinishReason::ToolCalls,
            None => FinishReason::Unknown,
        };
        let usage = match resp.usage {
            Some(u) => Usage::new(u.prompt_tokens, u.completion_tokens),
            None => {
                let estimate = TokenCounter::for_model(&self.config.model).estimate_usage(
                    req,
                    content.as_deref(),
                    &tool_calls,
                );
                tracing::debug!(
                    endpoint = %self.endpoint,
                    prompt_tokens = estimate.prompt_tokens,
                    completion_tokens = estimate.completion_tokens,
                    "provider reported no usage; using a tiktoken estimate"
                );
                estimate
            }
        };
        let model = if resp.model.trim().is_empty() {
            self.config.model.clone()
        } else {
            resp.model
        };
        Ok(ChatResponse {
            content,
            tool_calls,
            finish_reason,
            usage,
            model,
        })
    }
}

#[async_trait]
impl ChatModel for OpenAiModel {
    fn name(&self) -> String {
        match &self.config.azure {
            Some(az) => format!(
                "{} (Azure deployment {}) at {}",
                self.config.model,
                az.deployment,
                self.config.base_url.trim_end_matches('/')
            ),
            None => format!(
                "{} at {}",
                self.config.model,
                self.config.base_url.trim_end_matches('/')
            ),
        }
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = build_request(&self.config.model, req, &self.config.quirks);
        let policy = self.config.retry;
        let max_attempts = policy.max_retries.saturating_add(1);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            // A place at the endpoint first (held for this attempt only, not its backoff).
            let slot = match &self.slots {
                Some(s) => Some(s.clone().acquire_owned().await.map_err(|_| {
                    LlmError::Config(format!(
                        "the request slots of {} were closed",
                        self.endpoint
                    ))
                })?),
                None => None,
            };
            let started = Instant::now();
            // Serialized from a reference (`create_byot`): `create` takes the request by
            // value, and a copy of it (every message, every tool schema) per attempt was a
            // fifth of the client's CPU at 500 concurrent episodes.
            let chat = self.client.chat();
            let call = chat.create_byot::<_, CreateChatCompletionResponse>(&body);
            let outcome = tokio::time::timeout(self.config.timeout, call).await;
            let failure = match outcome {
                Ok(Ok(resp)) => {
                    tracing::debug!(
                        endpoint = %self.endpoint,
                        attempt,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "chat completion received"
                    );
                    return self.convert_response(resp, req);
                }
                Ok(Err(e)) => classify(e),
                Err(_elapsed) => Failure::Timeout,
            };
            if failure.retryable() && attempt < max_attempts {
                let mut delay = policy.backoff(attempt - 1);
                if let Some(after) = failure.retry_after() {
                    delay = delay.max(after).min(policy.max_backoff);
                }
                tracing::warn!(
                    endpoint = %self.endpoint,
                    attempt,
                    max_attempts,
                    delay_ms = delay.as_millis() as u64,
                    error = %failure,
                    "model call failed; retrying"
                );
                drop(slot);
                tokio::time::sleep(delay).await;
                continue;
            }
            tracing::warn!(endpoint = %self.endpoint, attempt, error = %failure, "model call failed");
            return Err(failure.into_error(&self.endpoint, attempt, self.config.timeout));
        }
    }
}

/// What went wrong with one attempt.
#[derive(Debug)]
enum Failure {
    Timeout,
    Status {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
        quota: bool,
    },
    /// The server refused the model's own output ([`model_output_error`]).
    ModelOutput {
        status: u16,
        message: String,
    },
    Connect(String),
    Transport(String),
    Invalid(String),
    Config(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout => f.write_str("timed out"),
            Failure::Status {
                status, message, ..
            }
            | Failure::ModelOutput { status, message } => write!(f, "HTTP {status}: {message}"),
            Failure::Connect(m)
            | Failure::Transport(m)
            | Failure::Invalid(m)
            | Failure::Config(m) => f.write_str(m),
        }
    }
}

impl Failure {
    fn retryable(&self) -> bool {
        match self {
            Failure::Timeout | Failure::Connect(_) => true,
            Failure::Status { status, quota, .. } => {
                !quota && (*status == 408 || *status == 429 || (500..=599).contains(status))
            }
            Failure::ModelOutput { .. }
            | Failure::Transport(_)
            | Failure::Invalid(_)
            | Failure::Config(_) => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn into_error(self, endpoint: &str, attempts: u32, timeout: Duration) -> LlmError {
        let endpoint = endpoint.to_string();
        match self {
            Failure::Timeout => LlmError::Timeout {
                endpoint,
                timeout,
                attempts,
            },
            Failure::Status {
                status: 429,
                message,
                quota: false,
                ..
            } => LlmError::RateLimited {
                endpoint,
                attempts,
                message,
            },
            Failure::Status {
                status,
                message,
                quota,
                ..
            } => LlmError::Http {
                endpoint,
                status,
                attempts,
                message: if quota {
                    format!("{message} {}", crate::error::QUOTA_NOTE)
                } else {
                    message
                },
            },
            Failure::ModelOutput { status, message } => LlmError::ModelOutput {
                endpoint,
                status,
                message,
            },
            Failure::Connect(message) | Failure::Transport(message) => LlmError::Transport {
                endpoint,
                attempts,
                message,
            },
            Failure::Invalid(message) => LlmError::InvalidResponse { endpoint, message },
            Failure::Config(message) => LlmError::Config(message),
        }
    }
}

fn classify(error: OpenAIError) -> Failure {
    match error {
        OpenAIError::Boxed(boxed) => match boxed.downcast::<HttpFailure>() {
            Ok(f) if model_output_error(f.status, &f.body) => Failure::ModelOutput {
                status: f.status,
                message: error_message(&f.body),
            },
            Ok(f) => Failure::Status {
                status: f.status,
                message: error_message(&f.body),
                retry_after: f.retry_after,
                quota: f.status == 429 && f.body.contains("insufficient_quota"),
            },
            Err(other) => Failure::Transport(error_chain(other.as_ref())),
        },
        OpenAIError::Reqwest(e) if e.is_timeout() => Failure::Timeout,
        OpenAIError::Reqwest(e) if e.is_connect() => Failure::Connect(error_chain(&e)),
        OpenAIError::Reqwest(e) => Failure::Transport(error_chain(&e)),
        OpenAIError::JSONDeserialize(e, body) => Failure::Invalid(format!(
            "the body is not a chat completion ({e}): {}",
            truncate(&body, 600)
        )),
        OpenAIError::ApiError(api) => Failure::Status {
            status: api.status_code.as_u16(),
            message: api.api_error.to_string(),
            retry_after: None,
            quota: api.api_error.code.as_deref() == Some("insufficient_quota"),
        },
        OpenAIError::InvalidArgument(m) => Failure::Config(m),
        other => Failure::Transport(error_chain(&other)),
    }
}

/// Whether an error answer is the server refusing the model's own output rather than the
/// request or itself: an HTTP 400, 422 or 500 whose body says tool-call arguments could not
/// be parsed (llama.cpp's server: "Failed to parse tool call arguments as JSON"; vLLM and
/// others word it alike) or names an unknown tool. The same request gets the same answer,
/// so it is not retried unchanged.
fn model_output_error(status: u16, body: &str) -> bool {
    if !matches!(status, 400 | 422 | 500) {
        return false;
    }
    let text = body.to_ascii_lowercase();
    const ARGUMENTS: &[&str] = &[
        "failed to parse tool call",
        "tool call arguments",
        "tool_call arguments",
        "function call arguments",
        "invalid tool call",
        "arguments as json",
    ];
    const UNKNOWN_TOOL: &[&str] = &[
        "unknown tool",
        "unknown function",
        "tool not found",
        "function not found",
        "no tool named",
        "not a known tool",
    ];
    ARGUMENTS
        .iter()
        .chain(UNKNOWN_TOOL)
        .any(|p| text.contains(p))
}

/// The human part of an error body: OpenAI's `{"error":{"message":..}}`,
/// vLLM's `{"message":..}`, FastAPI's `{"detail":..}`, `{"error":"..."}`, or
/// the (truncated) text itself.
fn error_message(body: &str) -> String {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return "(empty body)".into();
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(trimmed) {
        let candidates = [
            v.pointer("/error/message"),
            v.get("error").filter(|e| e.is_string()),
            v.get("message"),
            v.get("detail"),
        ];
        for c in candidates.into_iter().flatten() {
            match c {
                serde_json::Value::String(s) => return truncate(s, 600),
                serde_json::Value::Null => {}
                other => return truncate(&other.to_string(), 600),
            }
        }
    }
    truncate(trimmed, 600)
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}… ({} bytes in all)", &s[..cut], s.len()),
        None => s.to_string(),
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn is_loopback(base: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(base) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// OpenAI's reasoning models take `max_completion_tokens` and reject `max_tokens`.
fn uses_max_completion_tokens(model: &str) -> bool {
    let lower = model.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let o_series = name.len() >= 2
        && name.starts_with('o')
        && name[1..].starts_with(|c: char| c.is_ascii_digit());
    o_series || name.starts_with("gpt-5")
}

fn to_wire_message(message: &ChatMessage) -> ChatCompletionRequestMessage {
    match message {
        ChatMessage::System { content } => {
            ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
                content: ChatCompletionRequestSystemMessageContent::Text(content.clone()),
                name: None,
            })
        }
        ChatMessage::User { content } => {
            ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
                content: ChatCompletionRequestUserMessageContent::Text(content.clone()),
                name: None,
            })
        }
        ChatMessage::Assistant {
            content,
            tool_calls,
        } => {
            let calls = tool_calls
                .iter()
                .map(|c| {
                    ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                        id: c.id.clone(),
                        function: FunctionCall {
                            name: c.name.clone(),
                            arguments: c.arguments.clone(),
                        },
                    })
                })
                .collect::<Vec<_>>();
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content: content
                    .clone()
                    .map(ChatCompletionRequestAssistantMessageContent::Text),
                tool_calls: (!calls.is_empty()).then_some(calls),
                ..Default::default()
            })
        }
        ChatMessage::Tool {
            tool_call_id,
            content,
        } => ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
            content: ChatCompletionRequestToolMessageContent::Text(content.clone()),
            tool_call_id: tool_call_id.clone(),
        }),
    }
}

#[allow(deprecated)] // `max_tokens` is deprecated by OpenAI but is what local servers read.
/// The chat-completion request as sent: the fields of async-openai's
/// `CreateChatCompletionRequest` that argent sets, in that type's order and with its
/// rules for leaving a field out, so the body is byte for byte what that type would
/// serialize (`tests::the_wire_request_is_byte_for_byte_async_openais`; recorded
/// exchanges are replayed by their bodies), but with the tool definitions borrowed: that
/// type owns each tool's JSON Schema, and copying and dropping every schema for every
/// request was a tenth of the 500-concurrent bench's CPU (#16).
#[derive(serde::Serialize)]
struct WireRequest<'a> {
    messages: Vec<ChatCompletionRequestMessage>,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<WireTool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ChatCompletionToolChoiceOption>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
}

/// async-openai's `ChatCompletionTools::Function`, borrowed.
#[derive(serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireTool<'a> {
    Function { function: WireFunction<'a> },
}

/// async-openai's `FunctionObject`, borrowed.
#[derive(serde::Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

fn build_request<'a>(model: &'a str, req: &'a ChatRequest, quirks: &Quirks) -> WireRequest<'a> {
    let mut out = WireRequest {
        messages: req.messages.iter().map(to_wire_message).collect(),
        model,
        max_completion_tokens: None,
        max_tokens: None,
        seed: req.seed,
        temperature: req.temperature,
        top_p: req.top_p,
        tools: None,
        tool_choice: None,
        parallel_tool_calls: None,
    };
    if !req.tools.is_empty() {
        out.tools = Some(
            req.tools
                .iter()
                .map(|t| WireTool::Function {
                    function: WireFunction {
                        name: &t.name,
                        description: (!t.description.is_empty()).then_some(t.description.as_str()),
                        parameters: (!t.parameters.is_null()).then_some(&t.parameters),
                        strict: (quirks.strict_tools
                            && !t.parameters.is_null()
                            && strict_compatible(&t.parameters))
                        .then_some(true),
                    },
                })
                .collect(),
        );
        out.tool_choice = wire_tool_choice(req, quirks);
        if quirks.send_parallel_tool_calls {
            out.parallel_tool_calls = req.parallel_tool_calls;
        }
    }
    if let Some(max) = req.max_tokens {
        if uses_completion_field(model, quirks) {
            out.max_completion_tokens = Some(max);
        } else {
            out.max_tokens = Some(max);
        }
    }
    out
}

/// The request's `tool_choice` in the forms the server takes.
fn wire_tool_choice(req: &ChatRequest, quirks: &Quirks) -> Option<ChatCompletionToolChoiceOption> {
    match quirks.tool_choice {
        ToolChoiceForms::Omit => None,
        forms => req.tool_choice.as_ref().and_then(|c| match c {
            ToolChoice::Auto => Some(ChatCompletionToolChoiceOption::Mode(
                ToolChoiceOptions::Auto,
            )),
            ToolChoice::None => Some(ChatCompletionToolChoiceOption::Mode(
                ToolChoiceOptions::None,
            )),
            ToolChoice::Required => Some(ChatCompletionToolChoiceOption::Mode(
                ToolChoiceOptions::Required,
            )),
            ToolChoice::Function { name } if forms == ToolChoiceForms::All => Some(
                ChatCompletionToolChoiceOption::Function(ChatCompletionNamedToolChoice {
                    function: FunctionName { name: name.clone() },
                }),
            ),
            ToolChoice::Function { name } => {
                tracing::warn!(tool = %name, "the server takes no named tool_choice; not sent");
                None
            }
        }),
    }
}

/// Whether the token bound goes as `max_completion_tokens` (else `max_tokens`).
fn uses_completion_field(model: &str, quirks: &Quirks) -> bool {
    match quirks.max_tokens_field {
        MaxTokensField::Auto => uses_max_completion_tokens(model),
        MaxTokensField::MaxTokens => false,
        MaxTokensField::MaxCompletionTokens => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToolDefinition;
    use async_openai::types::chat::CreateChatCompletionRequest;
    use serde_json::json;

    /// Every shape of request argent sends (tools or none, each tool choice, each token
    /// field, strict schemas, the optional numbers set and not, a schema-less tool and one
    /// without a description): the borrowed wire form's body is async-openai's, byte for
    /// byte: read into async-openai's own request type and written again, it comes out the
    /// same (a field out of that type's order, or one it would leave out, would not).
    #[test]
    fn the_wire_request_is_byte_for_byte_async_openais() {
        let messages = vec![
            ChatMessage::system("sys \"quoted\" \u{e9}\n"),
            ChatMessage::user("hi"),
            ChatMessage::assistant_tool_calls(
                Some("let me look".into()),
                vec![ToolCall::new(
                    "c1",
                    "read_aging",
                    "{\"customer_id\":\"C-1\"}",
                )],
            ),
            ChatMessage::tool_result("c1", "{\"ok\":true}"),
            ChatMessage::assistant_tool_calls(None, vec![ToolCall::new("c2", "x", "{}")]),
        ];
        let tools = vec![
            ToolDefinition::new(
                "read_aging",
                "Read aging",
                json!({"type": "object", "properties": {"customer_id": {"type": "string"}},
                       "required": ["customer_id"], "additionalProperties": false}),
            ),
            ToolDefinition::new("bare", "", serde_json::Value::Null),
        ];
        let choices = [
            None,
            Some(ToolChoice::Auto),
            Some(ToolChoice::None),
            Some(ToolChoice::Required),
            Some(ToolChoice::Function {
                name: "read_aging".into(),
            }),
        ];
        let mut quirk_sets = Vec::new();
        for strict_tools in [false, true] {
            for tool_choice in [ToolChoiceForms::All, ToolChoiceForms::Omit] {
                for field in [
                    MaxTokensField::Auto,
                    MaxTokensField::MaxTokens,
                    MaxTokensField::MaxCompletionTokens,
                ] {
                    for send_parallel_tool_calls in [false, true] {
                        quirk_sets.push(Quirks {
                            strict_tools,
                            tool_choice,
                            max_tokens_field: field,
                            send_parallel_tool_calls,
                        });
                    }
                }
            }
        }
        let mut checked = 0;
        for with_tools in [false, true] {
            for choice in &choices {
                for numbers in [false, true] {
                    let mut req = ChatRequest::new(messages.clone());
                    if with_tools {
                        req = req.with_tools(tools.clone());
                    }
                    req.tool_choice = choice.clone();
                    if numbers {
                        req = req
                            .with_temperature(0.25)
                            .with_max_tokens(300)
                            .with_seed(7)
                            .with_parallel_tool_calls(false);
                        req.top_p = Some(0.5);
                    }
                    for quirks in &quirk_sets {
                        for model in ["gpt-4o-mini", "o3-mini"] {
                            let wire =
                                serde_json::to_string(&build_request(model, &req, quirks)).unwrap();
                            let theirs: CreateChatCompletionRequest =
                                serde_json::from_str(&wire).unwrap();
                            assert_eq!(wire, serde_json::to_string(&theirs).unwrap());
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 5 * 2 * 24 * 2);
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered_into_the_upper_half() {
        let p = RetryPolicy::new(5, Duration::from_millis(100), Duration::from_millis(350));
        for _ in 0..50 {
            let d0 = p.backoff(0);
            assert!(
                d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100),
                "{d0:?}"
            );
            let d1 = p.backoff(1);
            assert!(
                d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(200),
                "{d1:?}"
            );
            let d9 = p.backoff(40);
            assert!(
                d9 >= Duration::from_millis(175) && d9 <= Duration::from_millis(350),
                "{d9:?}"
            );
        }
        assert_eq!(RetryPolicy::none().max_retries, 0);
    }

    #[test]
    fn config_from_lookup_reads_every_variable() {
        let c = OpenAiConfig::from_lookup(env(&[
            ("ARGENT_LLM_MODEL", "llama3.1"),
            ("ARGENT_LLM_BASE_URL", "http://localhost:11434/v1/"),
            ("ARGENT_LLM_TIMEOUT_SECS", "2.5"),
            ("ARGENT_LLM_MAX_RETRIES", "1"),
        ]))
        .unwrap();
        assert_eq!(c.model, "llama3.1");
        assert_eq!(c.api_key, None);
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.retry.max_retries, 1);

        let c = OpenAiConfig::from_lookup(env(&[
            ("ARGENT_LLM_MODEL", "gpt-4o-mini"),
            ("OPENAI_API_KEY", "sk-fallback"),
        ]))
        .unwrap();
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.api_key.as_deref(), Some("sk-fallback"));
        assert!(
            !format!("{c:?}").contains("sk-fallback"),
            "Debug must redact the key"
        );

        let c = OpenAiConfig::from_lookup(env(&[
            ("ARGENT_LLM_MODEL", "gpt-4o"),
            ("ARGENT_LLM_API_KEY", "primary"),
            ("OPENAI_API_KEY", "fallback"),
            ("ARGENT_LLM_BASE_URL", "https://res.openai.azure.com"),
            ("ARGENT_LLM_AZURE_DEPLOYMENT", "prod-4o"),
        ]))
        .unwrap();
        assert_eq!(c.api_key.as_deref(), Some("primary"));
        assert_eq!(
            c.azure,
            Some(AzureDeployment {
                deployment: "prod-4o".into(),
                api_version: DEFAULT_AZURE_API_VERSION.into()
            })
        );
    }

    #[test]
    fn config_errors_say_which_setting_is_wrong() {
        let err = |pairs: &[(&str, &str)]| {
            OpenAiConfig::from_lookup(env(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[]).contains("ARGENT_LLM_MODEL is not set"));
        assert!(err(&[("ARGENT_LLM_MODEL", "gpt-4o")]).contains("needs an API key"));
        assert!(
            err(&[
                ("ARGENT_LLM_MODEL", "m"),
                ("ARGENT_LLM_BASE_URL", "localhost:8080")
            ])
            .contains("http")
        );
        assert!(
            err(&[
                ("ARGENT_LLM_MODEL", "m"),
                ("ARGENT_LLM_BASE_URL", "http://127.0.0.1:1/v1"),
                ("ARGENT_LLM_TIMEOUT_SECS", "-3")
            ])
            .contains("ARGENT_LLM_TIMEOUT_SECS")
        );
        assert!(
            err(&[
                ("ARGENT_LLM_MODEL", "m"),
                ("ARGENT_LLM_BASE_URL", "http://127.0.0.1:1/v1"),
                ("ARGENT_LLM_MAX_RETRIES", "many")
            ])
            .contains("ARGENT_LLM_MAX_RETRIES")
        );
        let bad_key = OpenAiConfig::new("m")
            .with_base_url("http://127.0.0.1:1/v1")
            .with_api_key("sk-abc\nsecret");
        let msg = OpenAiModel::new(bad_key).unwrap_err().to_string();
        assert!(msg.contains("not allowed in an HTTP header"), "{msg}");
        assert!(!msg.contains("secret"), "the key must not be echoed: {msg}");
    }

    #[test]
    fn wire_request_maps_every_field() {
        let req = ChatRequest::new(vec![
            ChatMessage::system("sys"),
            ChatMessage::user("hi"),
            ChatMessage::assistant_tool_calls(
                Some("let me look".into()),
                vec![ToolCall::new(
                    "call_1",
                    "read_aging",
                    "{\"customer_id\": \"C-1\"",
                )],
            ),
            ChatMessage::tool_result("call_1", "error: arguments are not valid JSON"),
        ])
        .with_tools(vec![ToolDefinition::new(
            "read_aging",
            "Read aging",
            json!({"type": "object", "properties": {}}),
        )])
        .with_tool_choice(ToolChoice::Function {
            name: "read_aging".into(),
        })
        .with_temperature(0.25)
        .with_max_tokens(300)
        .with_seed(7)
        .with_parallel_tool_calls(false);
        let v =
            serde_json::to_value(build_request("gpt-4o-mini", &req, &Quirks::default())).unwrap();
        assert_eq!(v["model"], "gpt-4o-mini");
        assert_eq!(v["max_tokens"], 300);
        assert!(v.get("max_completion_tokens").is_none());
        assert_eq!(v["temperature"], 0.25);
        assert_eq!(v["seed"], 7);
        assert_eq!(v["parallel_tool_calls"], false);
        assert_eq!(
            v["tool_choice"],
            json!({"type": "function", "function": {"name": "read_aging"}})
        );
        assert_eq!(
            v["tools"],
            json!([{"type": "function", "function": {
                "name": "read_aging", "description": "Read aging",
                "parameters": {"type": "object", "properties": {}}
            }}])
        );
        assert_eq!(
            v["messages"][0],
            json!({"role": "system", "content": "sys"})
        );
        assert_eq!(
            v["messages"][2],
            json!({"role": "assistant", "content": "let me look", "tool_calls": [
                {"type": "function", "id": "call_1", "function": {
                    "name": "read_aging", "arguments": "{\"customer_id\": \"C-1\""}}
            ]})
        );
        assert_eq!(
            v["messages"][3],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "error: arguments are not valid JSON"})
        );

        let v = serde_json::to_value(build_request("o3-mini", &req, &Quirks::default())).unwrap();
        assert_eq!(v["max_completion_tokens"], 300);
        assert!(v.get("max_tokens").is_none());

        // Without tools, no tool_choice / parallel_tool_calls are sent (OpenAI rejects them).
        let bare = ChatRequest::new(vec![ChatMessage::user("x")])
            .with_tool_choice(ToolChoice::Auto)
            .with_parallel_tool_calls(true);
        let v = serde_json::to_value(build_request("m", &bare, &Quirks::default())).unwrap();
        assert!(v.get("tools").is_none() && v.get("tool_choice").is_none());
        assert!(v.get("parallel_tool_calls").is_none());
    }

    #[test]
    fn wire_request_follows_each_presets_quirks() {
        use crate::settings::{ModelRole, Preset, SettingsLayer, SettingsSources, resolve};
        let strict_ok = json!({"type": "object", "additionalProperties": false,
            "properties": {"customer_id": {"type": "string"}}, "required": ["customer_id"]});
        let req = ChatRequest::new(vec![ChatMessage::user("hi")])
            .with_tools(vec![
                ToolDefinition::new("read_aging", "Read aging", strict_ok),
                ToolDefinition::new(
                    "escalate",
                    "Escalate",
                    json!({"type": "object", "properties": {"note": {"type": "string"}}}),
                ),
            ])
            .with_tool_choice(ToolChoice::Function {
                name: "read_aging".into(),
            })
            .with_max_tokens(256)
            .with_parallel_tool_calls(false);
        let wire = |preset: Preset| {
            let flags = SettingsLayer {
                preset: Some(preset),
                ..Default::default()
            };
            let settings = resolve(
                ModelRole::Agent,
                &SettingsSources {
                    flags,
                    ..Default::default()
                },
            )
            .unwrap()
            .settings;
            serde_json::to_value(build_request("llama3.1", &req, &settings.quirks)).unwrap()
        };
        let v = wire(Preset::Openai);
        assert_eq!(v["max_completion_tokens"], 256);
        assert!(v.get("max_tokens").is_none());
        assert_eq!(v["tools"][0]["function"]["strict"], true);
        assert!(v["tools"][1]["function"].get("strict").is_none());
        assert_eq!(v["tool_choice"]["function"]["name"], "read_aging");
        assert_eq!(v["parallel_tool_calls"], false);

        let v = wire(Preset::Ollama);
        assert_eq!(v["max_tokens"], 256);
        assert!(v.get("max_completion_tokens").is_none());
        assert!(v.get("tool_choice").is_none());
        assert!(v.get("parallel_tool_calls").is_none());
        assert!(v["tools"][0]["function"].get("strict").is_none());

        let v = wire(Preset::Llamacpp);
        assert_eq!(v["max_tokens"], 256);
        assert!(
            v.get("tool_choice").is_none(),
            "llama.cpp takes no named choice"
        );
        assert_eq!(v["parallel_tool_calls"], false);
        let modes = req.clone().with_tool_choice(ToolChoice::Required);
        let q = Preset::Llamacpp.layer(ModelRole::Agent);
        let quirks = Quirks {
            tool_choice: q.tool_choice.unwrap(),
            ..Quirks::default()
        };
        let v = serde_json::to_value(build_request("m", &modes, &quirks)).unwrap();
        assert_eq!(v["tool_choice"], "required");

        let v = wire(Preset::Vllm);
        assert_eq!(v["max_tokens"], 256);
        assert_eq!(v["tool_choice"]["function"]["name"], "read_aging");
        assert!(v.get("parallel_tool_calls").is_none());

        let v = wire(Preset::AzureOpenai);
        assert_eq!(v["max_tokens"], 256, "auto: not a reasoning model");
        assert!(v["tools"][0]["function"].get("strict").is_none());
    }

    #[test]
    fn error_bodies_of_several_servers_are_summarised() {
        assert_eq!(
            error_message(
                r#"{"error":{"message":"Invalid model","type":"invalid_request_error"}}"#
            ),
            "Invalid model"
        );
        assert_eq!(
            error_message(r#"{"object":"error","message":"bad","code":400}"#),
            "bad"
        );
        assert_eq!(error_message(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(
            error_message(r#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(error_message("404 page not found\n"), "404 page not found");
        assert_eq!(error_message(""), "(empty body)");
        let long = "x".repeat(2000);
        assert!(error_message(&long).contains("2000 bytes in all"));
    }

    #[test]
    fn the_servers_refusals_of_the_models_output_are_told_apart() {
        let llama = r#"{"error":{"code":500,"message":"Failed to parse tool call arguments as JSON: [json.exception.parse_error.101] parse error","type":"server_error"}}"#;
        assert!(model_output_error(500, llama));
        assert!(model_output_error(
            400,
            r#"{"object":"error","message":"Unknown tool 'send_mail' in tool call","code":400}"#
        ));
        assert!(model_output_error(
            422,
            r#"{"detail":"invalid tool call: tool not found"}"#
        ));
        // The same words with a transport-ish status, or other errors: not the model's.
        assert!(!model_output_error(503, llama));
        assert!(!model_output_error(
            500,
            r#"{"error":{"message":"CUDA out of memory"}}"#
        ));
        assert!(!model_output_error(
            400,
            r#"{"error":{"message":"Invalid model"}}"#
        ));
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://127.0.0.1:8080/v1"));
        assert!(is_loopback("http://localhost:11434/v1"));
        assert!(is_loopback("http://[::1]:8000/v1"));
        assert!(!is_loopback("https://api.openai.com/v1"));
    }
}
