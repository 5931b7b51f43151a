//! Model settings per role (the agent, the compliance check): generation parameters,
//! the endpoint's timeout, retries, request concurrency and context window, and the
//! quirks of the server (which field bounds the output, which `tool_choice` forms it
//! takes, strict schemas).
//!
//! Settings come in layers, later ones winning: **defaults < preset < file < environment
//! < flags**. [`resolve`] merges them for one [`ModelRole`] and says where each value came
//! from ([`Resolved::sources`]).
//!
//! Two kinds of keys:
//! * *endpoint* keys (`preset`, `timeout_secs`, `max_retries`, `concurrency`,
//!   `max_tokens_field`, `tool_choice`, `strict_tools`) describe the server. The file's
//!   top level, the `ARGENT_LLM_*` variables and the command-line flags set them for both
//!   roles; the file's `[agent]` / `[compliance]` table and the `ARGENT_CHECK_*` variables
//!   set them for one role.
//! * *generation* keys (`temperature`, `top_p`, `max_output_tokens`, `seed`,
//!   `parallel_tool_calls`, `context_window`, `compact_prompts`) are per role: for the agent
//!   from `[agent]`, `ARGENT_LLM_*` and the flags; for the compliance check from
//!   `[compliance]` and `ARGENT_CHECK_*` only (the check keeps its temperature 0 and 400
//!   output tokens whatever the agent samples with). A generation key at the file's top
//!   level is refused, naming the table it belongs in.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::LlmError;
use crate::types::{ChatRequest, ToolDefinition};

/// The environment variable (and `--model-config` flag) naming the settings file.
pub const ENV_MODEL_CONFIG: &str = "ARGENT_MODEL_CONFIG";
/// Prefix of the agent's (and, for endpoint keys, both roles') variables.
pub const ENV_PREFIX_AGENT: &str = "ARGENT_LLM_";
/// Prefix of the compliance check's variables.
pub const ENV_PREFIX_CHECK: &str = "ARGENT_CHECK_";

/// Which use of a model the settings are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelRole {
    /// The planner loop's model.
    Agent,
    /// The content compliance check of email drafts.
    Compliance,
}

impl ModelRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelRole::Agent => "agent",
            ModelRole::Compliance => "compliance",
        }
    }

    fn env_prefix(self) -> &'static str {
        match self {
            ModelRole::Agent => ENV_PREFIX_AGENT,
            ModelRole::Compliance => ENV_PREFIX_CHECK,
        }
    }
}

/// Settings for a kind of server, with the quirks it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// api.openai.com.
    Openai,
    /// Azure OpenAI (v1 API or a classic deployment).
    AzureOpenai,
    /// Ollama's OpenAI-compatible endpoint (`http://localhost:11434/v1`).
    Ollama,
    /// vLLM's server (`http://localhost:8000/v1`).
    Vllm,
    /// llama.cpp's `llama-server` (`http://localhost:8080/v1`).
    Llamacpp,
}

impl Preset {
    pub const ALL: [Preset; 5] = [
        Preset::Openai,
        Preset::AzureOpenai,
        Preset::Ollama,
        Preset::Vllm,
        Preset::Llamacpp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Openai => "openai",
            Preset::AzureOpenai => "azure-openai",
            Preset::Ollama => "ollama",
            Preset::Vllm => "vllm",
            Preset::Llamacpp => "llamacpp",
        }
    }

    pub fn parse(s: &str) -> Option<Preset> {
        match s.trim().to_ascii_lowercase().as_str() {
            "openai" => Some(Preset::Openai),
            "azure-openai" | "azure" => Some(Preset::AzureOpenai),
            "ollama" => Some(Preset::Ollama),
            "vllm" => Some(Preset::Vllm),
            "llamacpp" | "llama.cpp" | "llama-cpp" => Some(Preset::Llamacpp),
            _ => None,
        }
    }

    /// Whether the preset is for a server that typically runs on this machine's CPU or
    /// one GPU with one slot (long timeouts, one request at a time).
    pub fn is_local(self) -> bool {
        matches!(self, Preset::Ollama | Preset::Llamacpp)
    }

    /// The preset's layer for `role`: its quirks and timeouts for both roles; for the
    /// agent, bounded output and low temperature on local servers (whose own defaults are
    /// sampling on and unbounded generation).
    pub fn layer(self, role: ModelRole) -> SettingsLayer {
        let mut l = SettingsLayer::default();
        match self {
            Preset::Openai => {
                l.max_tokens_field = Some(MaxTokensField::MaxCompletionTokens);
                l.tool_choice = Some(ToolChoiceForms::All);
                l.strict_tools = Some(true);
                l.send_parallel_tool_calls = Some(true);
                l.timeout_secs = Some(60.0);
                l.max_retries = Some(3);
            }
            Preset::AzureOpenai => {
                l.max_tokens_field = Some(MaxTokensField::Auto);
                l.tool_choice = Some(ToolChoiceForms::All);
                l.strict_tools = Some(false);
                l.send_parallel_tool_calls = Some(true);
                l.timeout_secs = Some(60.0);
                l.max_retries = Some(3);
            }
            Preset::Ollama => {
                l.max_tokens_field = Some(MaxTokensField::MaxTokens);
                l.tool_choice = Some(ToolChoiceForms::Omit);
                l.strict_tools = Some(false);
                l.send_parallel_tool_calls = Some(false);
                l.timeout_secs = Some(600.0);
                l.max_retries = Some(1);
                l.concurrency = Some(1);
            }
            Preset::Vllm => {
                l.max_tokens_field = Some(MaxTokensField::MaxTokens);
                l.tool_choice = Some(ToolChoiceForms::All);
                l.strict_tools = Some(false);
                l.send_parallel_tool_calls = Some(false);
                l.timeout_secs = Some(300.0);
                l.max_retries = Some(2);
            }
            Preset::Llamacpp => {
                l.max_tokens_field = Some(MaxTokensField::MaxTokens);
                l.tool_choice = Some(ToolChoiceForms::ModesOnly);
                l.strict_tools = Some(false);
                l.send_parallel_tool_calls = Some(true);
                l.timeout_secs = Some(600.0);
                l.max_retries = Some(1);
                l.concurrency = Some(1);
            }
        }
        if role == ModelRole::Agent && !matches!(self, Preset::Openai | Preset::AzureOpenai) {
            l.temperature = Some(0.2);
            l.max_output_tokens = Some(1024);
        }
        if role == ModelRole::Agent && self.is_local() {
            // The context small local servers are commonly started with (Ollama's
            // OLLAMA_CONTEXT_LENGTH, llama-server's -c); set context_window to yours.
            l.context_window = Some(8192);
        }
        l
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which request field carries the output bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_completion_tokens` for OpenAI reasoning models (o-series, gpt-5), else
    /// `max_tokens` (what argent always did).
    Auto,
    /// Always `max_tokens` (Ollama, vLLM, llama.cpp read it).
    MaxTokens,
    /// Always `max_completion_tokens` (OpenAI: every current model takes it).
    MaxCompletionTokens,
}

impl MaxTokensField {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(MaxTokensField::Auto),
            "max_tokens" => Some(MaxTokensField::MaxTokens),
            "max_completion_tokens" => Some(MaxTokensField::MaxCompletionTokens),
            _ => None,
        }
    }
}

/// Which `tool_choice` forms the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoiceForms {
    /// `auto`, `none`, `required` and a named function.
    All,
    /// `auto`, `none` and `required`; a named function is not sent (a warning is logged).
    ModesOnly,
    /// Never send `tool_choice` (the server's default, auto, applies).
    Omit,
}

impl ToolChoiceForms {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(ToolChoiceForms::All),
            "modes_only" => Some(ToolChoiceForms::ModesOnly),
            "omit" => Some(ToolChoiceForms::Omit),
            _ => None,
        }
    }
}

/// How requests are shaped for the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quirks {
    pub max_tokens_field: MaxTokensField,
    pub tool_choice: ToolChoiceForms,
    /// Send `strict: true` on each tool whose schema strict mode accepts (every property
    /// required, `additionalProperties: false`, no keyword strict mode refuses).
    pub strict_tools: bool,
    /// Send `parallel_tool_calls` when a request sets it.
    pub send_parallel_tool_calls: bool,
}

impl Default for Quirks {
    fn default() -> Self {
        Quirks {
            max_tokens_field: MaxTokensField::Auto,
            tool_choice: ToolChoiceForms::All,
            strict_tools: false,
            send_parallel_tool_calls: true,
        }
    }
}

/// One layer of settings: every key optional. The shape of the settings file's tables.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsLayer {
    pub preset: Option<Preset>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_output_tokens: Option<u32>,
    pub seed: Option<i64>,
    pub parallel_tool_calls: Option<bool>,
    pub timeout_secs: Option<f64>,
    pub max_retries: Option<u32>,
    pub concurrency: Option<u32>,
    pub context_window: Option<u32>,
    pub compact_prompts: Option<bool>,
    pub max_tokens_field: Option<MaxTokensField>,
    pub tool_choice: Option<ToolChoiceForms>,
    pub strict_tools: Option<bool>,
    pub send_parallel_tool_calls: Option<bool>,
}

/// The generation keys: per role, never at the file's top level.
const GENERATION_KEYS: [&str; 7] = [
    "temperature",
    "top_p",
    "max_output_tokens",
    "seed",
    "parallel_tool_calls",
    "context_window",
    "compact_prompts",
];

impl SettingsLayer {
    /// Only the endpoint keys of this layer (what a shared source sets for the
    /// compliance role).
    pub fn endpoint_only(&self) -> SettingsLayer {
        SettingsLayer {
            preset: self.preset,
            timeout_secs: self.timeout_secs,
            max_retries: self.max_retries,
            concurrency: self.concurrency,
            max_tokens_field: self.max_tokens_field,
            tool_choice: self.tool_choice,
            strict_tools: self.strict_tools,
            send_parallel_tool_calls: self.send_parallel_tool_calls,
            ..SettingsLayer::default()
        }
    }

    /// The layer the environment gives, variables named `{prefix}{KEY}` (e.g.
    /// `ARGENT_LLM_TEMPERATURE`); a value that does not parse is an error naming the
    /// variable.
    pub fn from_env(prefix: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<Self, LlmError> {
        let var = |key: &str| -> Option<(String, String)> {
            let name = format!("{prefix}{key}");
            get(&name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .map(|v| (name, v))
        };
        fn bad(name: &str, raw: &str, what: &str) -> LlmError {
            LlmError::Config(format!("{name}={raw:?} is not {what}"))
        }
        fn num<T: std::str::FromStr>(
            v: Option<(String, String)>,
            what: &str,
        ) -> Result<Option<T>, LlmError> {
            v.map(|(n, raw)| raw.parse::<T>().map_err(|_| bad(&n, &raw, what)))
                .transpose()
        }
        fn flag(v: Option<(String, String)>) -> Result<Option<bool>, LlmError> {
            v.map(|(n, raw)| match raw.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(bad(&n, &raw, "true or false")),
            })
            .transpose()
        }
        Ok(SettingsLayer {
            preset: var("PRESET")
                .map(|(n, raw)| Preset::parse(&raw).ok_or_else(|| bad(&n, &raw, &preset_list())))
                .transpose()?,
            temperature: num(var("TEMPERATURE"), "a number")?,
            top_p: num(var("TOP_P"), "a number")?,
            max_output_tokens: num(var("MAX_OUTPUT_TOKENS"), "a whole number of tokens")?,
            seed: num(var("SEED"), "a whole number")?,
            parallel_tool_calls: flag(var("PARALLEL_TOOL_CALLS"))?,
            timeout_secs: num(var("TIMEOUT_SECS"), "a number of seconds")?,
            max_retries: num(var("MAX_RETRIES"), "a whole number of retries")?,
            concurrency: num(var("CONCURRENCY"), "a whole number of requests")?,
            context_window: num(var("CONTEXT_WINDOW"), "a whole number of tokens")?,
            compact_prompts: flag(var("COMPACT_PROMPTS"))?,
            max_tokens_field: var("MAX_TOKENS_FIELD")
                .map(|(n, raw)| {
                    MaxTokensField::parse(&raw)
                        .ok_or_else(|| bad(&n, &raw, "auto, max_tokens or max_completion_tokens"))
                })
                .transpose()?,
            tool_choice: var("TOOL_CHOICE")
                .map(|(n, raw)| {
                    ToolChoiceForms::parse(&raw)
                        .ok_or_else(|| bad(&n, &raw, "all, modes_only or omit"))
                })
                .transpose()?,
            strict_tools: flag(var("STRICT_TOOLS"))?,
            send_parallel_tool_calls: flag(var("SEND_PARALLEL_TOOL_CALLS"))?,
        })
    }
}

fn preset_list() -> String {
    let names: Vec<&str> = Preset::ALL.iter().map(|p| p.as_str()).collect();
    format!("a preset ({})", names.join(", "))
}

/// The settings file (TOML): endpoint keys at the top level, per-role keys under
/// `[agent]` and `[compliance]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsFile {
    /// Where it was read from (for messages and provenance).
    pub origin: String,
    pub shared: SettingsLayer,
    pub agent: SettingsLayer,
    pub compliance: SettingsLayer,
}

impl SettingsFile {
    /// Parses the text of a settings file; errors name `origin`, the key and (for syntax)
    /// the line.
    pub fn parse(origin: &str, text: &str) -> Result<SettingsFile, LlmError> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e| LlmError::Config(format!("{origin}: not valid TOML: {e}")))?;
        let mut take = |name: &str| -> Result<SettingsLayer, LlmError> {
            match table.remove(name) {
                None => Ok(SettingsLayer::default()),
                Some(toml::Value::Table(t)) => SettingsLayer::deserialize(toml::Value::Table(t))
                    .map_err(|e| LlmError::Config(format!("{origin}: [{name}]: {e}"))),
                Some(_) => Err(LlmError::Config(format!(
                    "{origin}: `{name}` must be a table ([{name}])"
                ))),
            }
        };
        let agent = take("agent")?;
        let compliance = take("compliance")?;
        if let Some(k) = GENERATION_KEYS.iter().find(|k| table.contains_key(**k)) {
            return Err(LlmError::Config(format!(
                "{origin}: `{k}` is a per-role setting: put it under [agent] or [compliance]"
            )));
        }
        let shared = SettingsLayer::deserialize(toml::Value::Table(table))
            .map_err(|e| LlmError::Config(format!("{origin}: top level: {e}")))?;
        Ok(SettingsFile {
            origin: origin.to_string(),
            shared,
            agent,
            compliance,
        })
    }

    fn role(&self, role: ModelRole) -> &SettingsLayer {
        match role {
            ModelRole::Agent => &self.agent,
            ModelRole::Compliance => &self.compliance,
        }
    }
}

/// The resolved settings of one role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSettings {
    pub role: ModelRole,
    pub preset: Option<Preset>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "short_f32")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "short_f32")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Per-attempt timeout, seconds.
    pub timeout_secs: f64,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Requests in flight at once to this endpoint (`None`: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Tokens the server's context holds (`None`: not checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// The compact system prompt and tool descriptions (for small contexts).
    pub compact_prompts: bool,
    pub quirks: Quirks,
}

impl ModelSettings {
    /// The built-in defaults of `role`: what argent did before settings existed (the
    /// agent sends no sampling parameters; the check sends temperature 0 and 400 output
    /// tokens; 60 s per attempt, 3 retries, no concurrency limit).
    pub fn defaults(role: ModelRole) -> ModelSettings {
        let (temperature, max_output_tokens) = match role {
            ModelRole::Agent => (None, None),
            ModelRole::Compliance => (Some(0.0), Some(400)),
        };
        ModelSettings {
            role,
            preset: None,
            temperature,
            top_p: None,
            max_output_tokens,
            seed: None,
            parallel_tool_calls: None,
            timeout_secs: crate::openai::DEFAULT_TIMEOUT.as_secs_f64(),
            max_retries: crate::openai::RetryPolicy::default().max_retries,
            concurrency: None,
            context_window: None,
            compact_prompts: false,
            quirks: Quirks::default(),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.timeout_secs).unwrap_or(crate::openai::DEFAULT_TIMEOUT)
    }

    /// `req` with these settings' generation parameters filled in where it sets none.
    pub fn apply(&self, mut req: ChatRequest) -> ChatRequest {
        req.temperature = req.temperature.or(self.temperature);
        req.top_p = req.top_p.or(self.top_p);
        req.max_tokens = req.max_tokens.or(self.max_output_tokens);
        req.seed = req.seed.or(self.seed);
        if !req.tools.is_empty() {
            req.parallel_tool_calls = req.parallel_tool_calls.or(self.parallel_tool_calls);
        }
        req
    }

    /// The prompt tokens a first request may take: the context window less the output
    /// bound (`None` when no context window is set).
    pub fn prompt_budget(&self) -> Option<u32> {
        self.context_window
            .map(|w| w.saturating_sub(self.max_output_tokens.unwrap_or(0)))
    }

    /// The JSON recorded in audit events and eval reports.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn overlay(&mut self, l: &SettingsLayer, source: &str, sources: &mut BTreeMap<String, String>) {
        macro_rules! set {
            ($field:ident, $target:expr, $conv:expr) => {
                if let Some(v) = l.$field {
                    $target = $conv(v);
                    sources.insert(stringify!($field).to_string(), source.to_string());
                }
            };
        }
        set!(preset, self.preset, Some);
        set!(temperature, self.temperature, Some);
        set!(top_p, self.top_p, Some);
        set!(max_output_tokens, self.max_output_tokens, Some);
        set!(seed, self.seed, Some);
        set!(parallel_tool_calls, self.parallel_tool_calls, Some);
        set!(timeout_secs, self.timeout_secs, |v| v);
        set!(max_retries, self.max_retries, |v| v);
        set!(concurrency, self.concurrency, Some);
        set!(context_window, self.context_window, Some);
        set!(compact_prompts, self.compact_prompts, |v| v);
        set!(max_tokens_field, self.quirks.max_tokens_field, |v| v);
        set!(tool_choice, self.quirks.tool_choice, |v| v);
        set!(strict_tools, self.quirks.strict_tools, |v| v);
        set!(
            send_parallel_tool_calls,
            self.quirks.send_parallel_tool_calls,
            |v| v
        );
    }

    /// Checks the values; errors name the key and where its value came from.
    fn validate(&self, sources: &BTreeMap<String, String>) -> Result<(), LlmError> {
        let from = |k: &str| {
            sources
                .get(k)
                .map(|s| format!(" (from {s})"))
                .unwrap_or_default()
        };
        let role = self.role.as_str();
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(LlmError::Config(format!(
                "{role} temperature {t} must be between 0 and 2{}",
                from("temperature")
            )));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(LlmError::Config(format!(
                "{role} top_p {p} must be greater than 0 and at most 1{}",
                from("top_p")
            )));
        }
        if self.max_output_tokens == Some(0) {
            return Err(LlmError::Config(format!(
                "{role} max_output_tokens must be at least 1{}",
                from("max_output_tokens")
            )));
        }
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0)
            || Duration::try_from_secs_f64(self.timeout_secs).is_err()
        {
            return Err(LlmError::Config(format!(
                "{role} timeout_secs {} must be a positive number of seconds{}",
                self.timeout_secs,
                from("timeout_secs")
            )));
        }
        if self.concurrency == Some(0) {
            return Err(LlmError::Config(format!(
                "{role} concurrency must be at least 1 request{}",
                from("concurrency")
            )));
        }
        if let Some(w) = self.context_window {
            let out = self.max_output_tokens.unwrap_or(0);
            if w <= out {
                return Err(LlmError::Config(format!(
                    "{role} context_window {w}{} leaves no room for a prompt beside max_output_tokens {out}{}",
                    from("context_window"),
                    from("max_output_tokens")
                )));
            }
        }
        Ok(())
    }
}

/// An `f32` as the decimal it was written as (`0.2`, not `0.20000000298023224`).
fn short_f32<S: serde::Serializer>(v: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) => s.serialize_f64(x.to_string().parse::<f64>().unwrap_or(f64::from(*x))),
        None => s.serialize_none(),
    }
}

/// Resolved settings and where each value that is not a default came from
/// (`preset ollama`, `file settings.toml [agent]`, `env ARGENT_LLM_TEMPERATURE`,
/// `flag`).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub settings: ModelSettings,
    pub sources: BTreeMap<String, String>,
}

/// A stand-in for the process environment: a variable's value by name.
pub type EnvLookup = dyn Fn(&str) -> Option<String>;

/// Where settings come from, besides the defaults.
#[derive(Default)]
pub struct SettingsSources<'a> {
    pub file: Option<&'a SettingsFile>,
    /// The environment (a stand-in in tests).
    pub env: Option<&'a EnvLookup>,
    /// The command line's layer (endpoint keys apply to both roles, generation keys to the
    /// agent).
    pub flags: SettingsLayer,
}

/// Merges defaults < preset < file < environment < flags for `role`.
pub fn resolve(role: ModelRole, src: &SettingsSources<'_>) -> Result<Resolved, LlmError> {
    let none = |_: &str| None;
    let env: &dyn Fn(&str) -> Option<String> = src.env.unwrap_or(&none);
    let env_shared = SettingsLayer::from_env(ENV_PREFIX_AGENT, env)?;
    let env_role = match role {
        ModelRole::Agent => SettingsLayer::default(),
        ModelRole::Compliance => SettingsLayer::from_env(ENV_PREFIX_CHECK, env)?,
    };
    let shared_for_role = |l: &SettingsLayer| match role {
        ModelRole::Agent => l.clone(),
        ModelRole::Compliance => l.endpoint_only(),
    };
    let file_origin = src.file.map(|f| f.origin.clone()).unwrap_or_default();
    // Layers in order of precedence, lowest first (the preset comes from them too).
    let mut layers: Vec<(SettingsLayer, String)> = Vec::new();
    if let Some(f) = src.file {
        layers.push((f.shared.clone(), format!("file {file_origin}")));
        layers.push((
            f.role(role).clone(),
            format!("file {file_origin} [{}]", role.as_str()),
        ));
    }
    let prefix = role.env_prefix();
    layers.push((
        shared_for_role(&env_shared),
        format!("env {ENV_PREFIX_AGENT}*"),
    ));
    if role == ModelRole::Compliance {
        layers.push((env_role, format!("env {prefix}*")));
    }
    layers.push((shared_for_role(&src.flags), "flag".to_string()));

    let preset = layers.iter().rev().find_map(|(l, _)| l.preset);
    let mut settings = ModelSettings::defaults(role);
    let mut sources = BTreeMap::new();
    if let Some(p) = preset {
        settings.overlay(&p.layer(role), &format!("preset {p}"), &mut sources);
    }
    for (layer, source) in &layers {
        settings.overlay(layer, source, &mut sources);
    }
    settings.validate(&sources)?;
    Ok(Resolved { settings, sources })
}

/// Whether OpenAI's strict mode accepts `schema` as a tool's parameters: every object
/// lists all its properties as required and forbids others, and no keyword strict mode
/// refuses (string lengths, defaults, formats other than the few it knows) is used.
pub fn strict_compatible(schema: &Value) -> bool {
    const REFUSED: [&str; 6] = [
        "minLength",
        "maxLength",
        "default",
        "minProperties",
        "maxProperties",
        "patternProperties",
    ];
    match schema {
        Value::Object(map) => {
            if REFUSED.iter().any(|k| map.contains_key(*k)) {
                return false;
            }
            if let Some(Value::Object(props)) = map.get("properties") {
                if map.get("additionalProperties") != Some(&Value::Bool(false)) {
                    return false;
                }
                let required: Vec<&str> = map
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if !props.keys().all(|k| required.contains(&k.as_str())) {
                    return false;
                }
                if !props.values().all(strict_compatible) {
                    return false;
                }
            }
            if let Some(items) = map.get("items")
                && !strict_compatible(items)
            {
                return false;
            }
            if let Some(Value::Array(any)) = map.get("anyOf")
                && !any.iter().all(strict_compatible)
            {
                return false;
            }
            ["$defs", "definitions"].iter().all(|k| match map.get(*k) {
                Some(Value::Object(defs)) => defs.values().all(strict_compatible),
                _ => true,
            })
        }
        _ => true,
    }
}

/// A compact tool definition: the description cut to its first sentence and the
/// parameters' descriptions removed (the names and types remain, so arguments validate
/// the same).
pub fn compact_tool(tool: &ToolDefinition) -> ToolDefinition {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, _)| k.as_str() != "description")
                    .map(|(k, v)| {
                        // Inside `properties` the keys are property names, not keywords.
                        if k == "properties"
                            && let Value::Object(props) = v
                        {
                            return (
                                k.clone(),
                                Value::Object(
                                    props.iter().map(|(p, s)| (p.clone(), strip(s))).collect(),
                                ),
                            );
                        }
                        (k.clone(), strip(v))
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    let first = match tool.description.find(". ") {
        Some(i) => &tool.description[..=i],
        None => tool.description.as_str(),
    };
    ToolDefinition::new(tool.name.clone(), first.trim(), strip(&tool.parameters))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_what_argent_always_sent() {
        let r = resolve(ModelRole::Agent, &SettingsSources::default()).unwrap();
        assert_eq!(r.settings, ModelSettings::defaults(ModelRole::Agent));
        assert!(r.sources.is_empty());
        let req = r.settings.apply(ChatRequest::new(vec![]));
        assert_eq!(
            req,
            ChatRequest::new(vec![]),
            "the agent's request is unchanged"
        );
        let c = resolve(ModelRole::Compliance, &SettingsSources::default()).unwrap();
        assert_eq!(c.settings.temperature, Some(0.0));
        assert_eq!(c.settings.max_output_tokens, Some(400));
        assert_eq!(c.settings.timeout_secs, 60.0);
        assert_eq!(c.settings.max_retries, 3);
    }

    #[test]
    fn precedence_is_flags_then_env_then_file_then_preset_then_defaults() {
        let file = SettingsFile::parse(
            "m.toml",
            "preset = \"ollama\"\ntimeout_secs = 900\n[agent]\ntemperature = 0.5\nmax_output_tokens = 700\nseed = 3\n[compliance]\nmax_output_tokens = 300\n",
        )
        .unwrap();
        let e = env(&[
            ("ARGENT_LLM_TEMPERATURE", "0.4"),
            ("ARGENT_LLM_MAX_RETRIES", "5"),
            ("ARGENT_CHECK_TIMEOUT_SECS", "30"),
        ]);
        let flags = SettingsLayer {
            temperature: Some(0.1),
            ..Default::default()
        };
        let src = SettingsSources {
            file: Some(&file),
            env: Some(&e),
            flags,
        };
        let a = resolve(ModelRole::Agent, &src).unwrap();
        assert_eq!(a.settings.preset, Some(Preset::Ollama));
        assert_eq!(a.settings.temperature, Some(0.1));
        assert_eq!(a.sources["temperature"], "flag");
        assert_eq!(a.settings.max_retries, 5);
        assert_eq!(a.sources["max_retries"], "env ARGENT_LLM_*");
        assert_eq!(a.settings.max_output_tokens, Some(700));
        assert_eq!(a.sources["max_output_tokens"], "file m.toml [agent]");
        assert_eq!(a.settings.seed, Some(3));
        assert_eq!(a.settings.timeout_secs, 900.0);
        assert_eq!(a.settings.concurrency, Some(1), "from the preset");
        assert_eq!(a.sources["concurrency"], "preset ollama");
        assert_eq!(a.settings.quirks.tool_choice, ToolChoiceForms::Omit);

        let c = resolve(ModelRole::Compliance, &src).unwrap();
        assert_eq!(
            c.settings.temperature,
            Some(0.0),
            "the agent's flag and env do not reach the check"
        );
        assert_eq!(c.settings.max_output_tokens, Some(300));
        assert_eq!(c.settings.timeout_secs, 30.0);
        assert_eq!(c.settings.max_retries, 5, "endpoint keys are shared");
        assert_eq!(
            c.settings.quirks.max_tokens_field,
            MaxTokensField::MaxTokens
        );
    }

    #[test]
    fn a_flag_preset_beats_the_file_preset() {
        let file = SettingsFile::parse("m.toml", "preset = \"openai\"").unwrap();
        let src = SettingsSources {
            file: Some(&file),
            env: None,
            flags: SettingsLayer {
                preset: Some(Preset::Llamacpp),
                ..Default::default()
            },
        };
        let a = resolve(ModelRole::Agent, &src).unwrap();
        assert_eq!(a.settings.preset, Some(Preset::Llamacpp));
        assert_eq!(a.settings.quirks.tool_choice, ToolChoiceForms::ModesOnly);
        assert_eq!(a.settings.timeout_secs, 600.0);
    }

    #[test]
    fn bad_values_name_the_key_and_where_it_came_from() {
        let err = |text: &str| SettingsFile::parse("m.toml", text).unwrap_err().to_string();
        assert!(err("temperature = 0.3").contains("put it under [agent] or [compliance]"));
        let e = err("[agent]\ntemprature = 0.3");
        assert!(
            e.contains("m.toml: [agent]") && e.contains("temprature"),
            "{e}"
        );
        assert!(err("preset = \"lmstudio\"").contains("lmstudio"));
        assert!(err("[agent\n").contains("not valid TOML"));

        let file = SettingsFile::parse("m.toml", "[agent]\ntemperature = 3").unwrap();
        let src = SettingsSources {
            file: Some(&file),
            ..Default::default()
        };
        let e = resolve(ModelRole::Agent, &src).unwrap_err().to_string();
        assert!(
            e.contains("temperature 3") && e.contains("file m.toml [agent]"),
            "{e}"
        );

        let e = env(&[("ARGENT_LLM_CONCURRENCY", "two")]);
        let src = SettingsSources {
            env: Some(&e),
            ..Default::default()
        };
        let msg = resolve(ModelRole::Agent, &src).unwrap_err().to_string();
        assert!(msg.contains("ARGENT_LLM_CONCURRENCY=\"two\""), "{msg}");

        let file = SettingsFile::parse(
            "m.toml",
            "[agent]\ncontext_window = 1000\nmax_output_tokens = 1000",
        )
        .unwrap();
        let src = SettingsSources {
            file: Some(&file),
            ..Default::default()
        };
        let msg = resolve(ModelRole::Agent, &src).unwrap_err().to_string();
        assert!(msg.contains("leaves no room"), "{msg}");
    }

    #[test]
    fn apply_fills_only_what_the_request_leaves_unset() {
        let mut s = ModelSettings::defaults(ModelRole::Agent);
        s.temperature = Some(0.2);
        s.top_p = Some(0.9);
        s.max_output_tokens = Some(800);
        s.seed = Some(11);
        s.parallel_tool_calls = Some(false);
        let req = s.apply(ChatRequest::new(vec![]).with_temperature(0.0));
        assert_eq!(req.temperature, Some(0.0));
        assert_eq!(req.top_p, Some(0.9));
        assert_eq!(req.max_tokens, Some(800));
        assert_eq!(req.seed, Some(11));
        assert_eq!(
            req.parallel_tool_calls, None,
            "no tools, no parallel_tool_calls"
        );
        assert_eq!(s.prompt_budget(), None);
        s.context_window = Some(4096);
        assert_eq!(s.prompt_budget(), Some(3296));
    }

    #[test]
    fn strict_mode_only_for_schemas_it_accepts() {
        let ok = json!({"type": "object", "additionalProperties": false,
            "properties": {"id": {"type": "string"}, "n": {"type": "integer"}},
            "required": ["id", "n"]});
        assert!(strict_compatible(&ok));
        let optional = json!({"type": "object", "additionalProperties": false,
            "properties": {"id": {"type": "string"}}, "required": []});
        assert!(!strict_compatible(&optional));
        let open =
            json!({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]});
        assert!(!strict_compatible(&open));
        let lengths = json!({"type": "object", "additionalProperties": false,
            "properties": {"id": {"type": "string", "maxLength": 3}}, "required": ["id"]});
        assert!(!strict_compatible(&lengths));
        let nested = json!({"type": "object", "additionalProperties": false,
            "properties": {"xs": {"type": "array", "items": {"type": "object",
                "properties": {"a": {"type": "string"}}, "required": ["a"]}}},
            "required": ["xs"]});
        assert!(
            !strict_compatible(&nested),
            "a nested object must forbid others too"
        );
    }

    #[test]
    fn compact_tools_keep_names_and_types_and_drop_descriptions() {
        let t = ToolDefinition::new(
            "send_email",
            "Send an email. Include the disclosures.",
            json!({"type": "object", "properties": {
                "description": {"type": "string", "description": "a property named description"},
                "to": {"type": "string", "description": "Recipient", "maxLength": 254}},
                "required": ["to"]}),
        );
        let c = compact_tool(&t);
        assert_eq!(c.description, "Send an email.");
        assert_eq!(
            c.parameters,
            json!({"type": "object", "properties": {
                "description": {"type": "string"},
                "to": {"type": "string", "maxLength": 254}},
                "required": ["to"]})
        );
    }
}
