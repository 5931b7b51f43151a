//! # argent-llm — the LLM boundary
//!
//! Everything argent knows about language models goes through this crate:
//!
//! * provider-neutral types: [`ChatMessage`], [`ToolDefinition`], [`ToolCall`],
//!   [`ChatRequest`], [`ChatResponse`], [`Usage`], [`FinishReason`];
//! * the [`ChatModel`] trait (object-safe: hold an `Arc<dyn ChatModel>`);
//! * [`OpenAiModel`], an OpenAI-compatible provider on `async-openai` for
//!   OpenAI, Azure OpenAI, vLLM, Ollama and llama.cpp's server, with a
//!   per-attempt timeout and bounded, jittered exponential retries
//!   ([`OpenAiConfig`], [`RetryPolicy`], configurable from the environment);
//! * record/replay: [`Recorder`] and [`Replayer`] over cassette files;
//! * [`ScriptedModel`], a queue of canned responses for tests;
//! * token counting with tiktoken ([`TokenCounter`]) and per-run [`Budget`]s.
//!
//! No `async-openai` type appears in this crate's public API.
//!
//! ## Tool-call arguments are raw text
//!
//! [`ToolCall::arguments`] is exactly what the model produced. This crate
//! never parses, repairs or defaults it: a malformed argument string reaches
//! the agent unchanged, so it can be shown back to the model as an error
//! instead of silently becoming `{}`. Cassettes store it as a JSON string, so
//! it survives recording and replay byte for byte.
//!
//! ## Configuration from the environment
//!
//! [`OpenAiConfig::from_env`] (or [`OpenAiModel::from_env`]) reads:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `ARGENT_LLM_MODEL` | model name sent to the endpoint | required |
//! | `ARGENT_LLM_BASE_URL` | base URL, up to `/v1` | `https://api.openai.com/v1` |
//! | `ARGENT_LLM_API_KEY`, else `OPENAI_API_KEY` | bearer key | none (fine for local servers) |
//! | `ARGENT_LLM_TIMEOUT_SECS` | per-attempt timeout, seconds | `60` |
//! | `ARGENT_LLM_MAX_RETRIES` | retries after the first attempt | `3` |
//! | `ARGENT_LLM_AZURE_DEPLOYMENT` | classic Azure deployment name | none |
//! | `ARGENT_LLM_AZURE_API_VERSION` | classic Azure `api-version` | `2024-10-21` |
//!
//! Examples: Ollama `ARGENT_LLM_BASE_URL=http://localhost:11434/v1
//! ARGENT_LLM_MODEL=llama3.1`; llama.cpp `http://localhost:8080/v1`; vLLM
//! `http://localhost:8000/v1`; Azure v1 API
//! `https://RESOURCE.openai.azure.com/openai/v1` with a key.
//!
//! ## Retries
//!
//! HTTP 408, 429 (unless the body says `insufficient_quota`), 5xx, connection
//! failures and timeouts are retried up to [`RetryPolicy::max_retries`] times,
//! waiting `min(max_backoff, initial_backoff * 2^n)` jittered into its upper
//! half (a server's `Retry-After` in seconds is honoured up to `max_backoff`).
//! Any other 4xx fails at once with [`LlmError::Http`]. Exhausted retries give
//! [`LlmError::RateLimited`], [`LlmError::Http`], [`LlmError::Timeout`] or
//! [`LlmError::Transport`], each with the endpoint and the attempt count.
//!
//! ## Cassette format
//!
//! A cassette is one UTF-8 JSON document, pretty-printed with a two-space
//! indent, **object keys sorted at every level**, and a trailing newline; the
//! same exchanges always produce the same bytes, so cassettes diff cleanly in
//! review. The recorder rewrites the file atomically after every exchange.
//!
//! ```json
//! {
//!   "cassette": {
//!     "format": "argent-llm-cassette",
//!     "model": "gpt-4o-mini at https://api.openai.com/v1",
//!     "version": 1
//!   },
//!   "exchanges": [
//!     {
//!       "index": 0,
//!       "request": {
//!         "max_tokens": 400,
//!         "messages": [
//!           { "content": "You are a collections assistant.", "role": "system" },
//!           { "content": "ACME says they will pay Friday.", "role": "user" }
//!         ],
//!         "temperature": 0.2,
//!         "tools": [
//!           {
//!             "description": "Record a promise to pay",
//!             "name": "log_promise",
//!             "parameters": { "properties": { "amount_minor": { "type": "integer" } }, "type": "object" }
//!           }
//!         ]
//!       },
//!       "response": {
//!         "content": null,
//!         "finish_reason": "tool_calls",
//!         "model": "gpt-4o-mini-2024-07-18",
//!         "tool_calls": [
//!           { "arguments": "{\"amount_minor\": 120050", "id": "call_1", "name": "log_promise" }
//!         ],
//!         "usage": { "completion_tokens": 18, "prompt_tokens": 120 }
//!       }
//!     },
//!     {
//!       "error": { "kind": "timeout", "message": "model request to ... timed out: ..." },
//!       "index": 1,
//!       "request": { "messages": ["... abbreviated ..."] }
//!     }
//!   ]
//! }
//! ```
//!
//! * `cassette.format` is always `argent-llm-cassette`; `cassette.version` is
//!   `1` (other versions are refused); `cassette.model` is the recorded
//!   model's [`ChatModel::name`].
//! * `exchanges[i].index` is `i`. `request` is a [`ChatRequest`] and
//!   `response` a [`ChatResponse`] in their serde form (messages carry a
//!   `role` tag: `system`/`user` with `content`; `assistant` with optional
//!   `content` and `tool_calls`; `tool` with `tool_call_id` and `content`;
//!   fields that are unset are omitted). An exchange whose call failed has
//!   `error: {kind, message}` ([`LlmError::kind`] and its message) instead of
//!   `response`, and replays as [`LlmError::Replayed`].
//! * Replay is strict and in order: request `i` must equal `exchanges[i].request`
//!   in messages, tools (name, description, schema), tool choice, temperature,
//!   max tokens, seed and parallel tool calls. On a difference,
//!   [`LlmError::CassetteMismatch`] lists what differs (message count, a
//!   message's role, the first differing character of its text with context,
//!   tool calls, tool names...). Past the end: [`LlmError::CassetteExhausted`].
//!   [`Replayer::finish`] reports exchanges never requested.
//!
//! Hand-edited cassettes are fine as long as they stay valid against these
//! rules; the recorder's canonical form is restored on the next recording.

mod cassette;
mod error;
mod model;
mod openai;
mod scripted;
pub mod settings;
mod tokens;
mod types;

pub use cassette::{
    CASSETTE_FORMAT, CASSETTE_VERSION, Cassette, CassetteHeader, Exchange, RecordedError, Recorder,
    Replayer, diff_requests,
};
pub use error::LlmError;
pub use model::ChatModel;
pub use openai::{
    AzureDeployment, DEFAULT_AZURE_API_VERSION, DEFAULT_BASE_URL, DEFAULT_TIMEOUT, ENV_API_KEY,
    ENV_AZURE_API_VERSION, ENV_AZURE_DEPLOYMENT, ENV_BASE_URL, ENV_MAX_RETRIES, ENV_MODEL,
    ENV_OPENAI_API_KEY, ENV_TIMEOUT_SECS, OpenAiConfig, OpenAiModel, RetryPolicy,
};
pub use scripted::ScriptedModel;
pub use settings::{
    ENV_MODEL_CONFIG, MaxTokensField, ModelRole, ModelSettings, Preset, Quirks, Resolved,
    SettingsFile, SettingsLayer, SettingsSources, ToolChoiceForms, resolve,
};
pub use tokens::{Budget, Encoding, Exhaustion, TokenCounter, count_request_tokens};
pub use types::{
    ChatMessage, ChatRequest, ChatResponse, FinishReason, Role, ToolCall, ToolChoice,
    ToolDefinition, Usage,
};
