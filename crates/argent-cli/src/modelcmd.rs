//! Model settings on the command line (`--model-config`, `--preset`, `--temperature`, …),
//! `argent model show` (the resolved settings of each role and where each value came
//! from) and `argent prompt size` (the first request's tokens per jurisdiction and
//! trigger).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use argent_agent::DocumentSet;
use argent_agent::budget::{SizeRow, prompt_sizes};
use argent_llm::{
    ModelRole, Preset, Resolved, SettingsFile, SettingsLayer, SettingsSources, TokenCounter,
    resolve,
};

use crate::agentcmd::{ModelArgs, data_dir};

/// Model settings from the command line. Endpoint settings (preset, timeout, retries,
/// concurrency) apply to the agent and the compliance check; generation settings to the
/// agent only (the check's come from the file's [compliance] table and ARGENT_CHECK_*).
/// Precedence: these flags > ARGENT_LLM_* / ARGENT_CHECK_* > the settings file > the preset
/// > the defaults.
#[derive(Args, Debug, Clone, Default)]
pub struct SettingsArgs {
    /// Model settings file (TOML): endpoint keys at the top level, per-role keys under
    /// [agent] and [compliance] (see `argent model show`).
    #[arg(long, global = true, env = "ARGENT_MODEL_CONFIG", value_name = "FILE")]
    pub model_config: Option<PathBuf>,
    /// Endpoint preset: openai, azure-openai, ollama, vllm or llamacpp (request quirks,
    /// timeouts, concurrency; for local servers a bounded output and low temperature).
    #[arg(long, global = true, value_parser = parse_preset)]
    pub preset: Option<Preset>,
    /// The agent's sampling temperature (0..=2).
    #[arg(long, global = true)]
    pub temperature: Option<f32>,
    /// The agent's nucleus sampling bound (0 < p <= 1).
    #[arg(long, global = true)]
    pub top_p: Option<f32>,
    /// Most tokens the agent's model may generate per call.
    #[arg(long, global = true)]
    pub max_output_tokens: Option<u32>,
    /// The agent's sampling seed, where the server supports one.
    #[arg(long, global = true)]
    pub model_seed: Option<i64>,
    /// Whether the agent's model may call several tools in one turn (true/false).
    #[arg(long, global = true)]
    pub parallel_tool_calls: Option<bool>,
    /// Seconds each attempt of a model request may take.
    #[arg(long, global = true)]
    pub llm_timeout_secs: Option<f64>,
    /// Retries of a failed model request after the first attempt.
    #[arg(long, global = true)]
    pub llm_max_retries: Option<u32>,
    /// Most model requests in flight at once per endpoint (1 for a single-slot server).
    #[arg(long, global = true)]
    pub llm_concurrency: Option<u32>,
    /// Tokens the server's context holds: a run whose first request (with
    /// max_output_tokens kept free) does not fit is refused before anything is written.
    #[arg(long, global = true)]
    pub context_window: Option<u32>,
    /// The compact system prompt (prompts/compact/system.hbs) and tool descriptions.
    #[arg(long, global = true)]
    pub compact_prompts: bool,
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    Preset::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Preset::ALL.iter().map(|p| p.as_str()).collect();
        format!("not a preset: expected one of {}", names.join(", "))
    })
}

impl SettingsArgs {
    fn layer(&self) -> SettingsLayer {
        SettingsLayer {
            preset: self.preset,
            temperature: self.temperature,
            top_p: self.top_p,
            max_output_tokens: self.max_output_tokens,
            seed: self.model_seed,
            parallel_tool_calls: self.parallel_tool_calls,
            timeout_secs: self.llm_timeout_secs,
            max_retries: self.llm_max_retries,
            concurrency: self.llm_concurrency,
            context_window: self.context_window,
            compact_prompts: self.compact_prompts.then_some(true),
            ..SettingsLayer::default()
        }
    }
}

/// The resolved settings of both roles.
pub struct RoleSettings {
    pub agent: Resolved,
    pub compliance: Resolved,
    /// The settings file read, if any.
    pub file: Option<PathBuf>,
}

/// Resolves both roles' settings from the flags, the environment and the settings file.
pub fn resolve_settings(m: &ModelArgs) -> Result<RoleSettings> {
    let file = match &m.settings.model_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the model settings file {}", path.display()))?;
            Some(SettingsFile::parse(&path.display().to_string(), &text)?)
        }
        None => None,
    };
    let env = |k: &str| std::env::var(k).ok();
    let src = SettingsSources {
        file: file.as_ref(),
        env: Some(&env),
        flags: m.settings.layer(),
    };
    Ok(RoleSettings {
        agent: resolve(ModelRole::Agent, &src)?,
        compliance: resolve(ModelRole::Compliance, &src)?,
        file: m.settings.model_config.clone(),
    })
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// The model settings each role would use (agent, compliance check), each value with
    /// where it came from, and the endpoint (never the key).
    Show {
        #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
        format: ShowFormat,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ShowFormat {
    Table,
    Json,
}

pub fn model(cmd: ModelCommand, m: &ModelArgs) -> Result<()> {
    let ModelCommand::Show { format } = cmd;
    let r = resolve_settings(m)?;
    let endpoint = if m.model == "openai" || m.model.starts_with("record:") {
        match argent_llm::OpenAiConfig::from_env() {
            Ok(c) => format!(
                "{} at {}{}",
                c.model,
                c.base_url,
                c.azure
                    .as_ref()
                    .map(|a| format!(
                        " (Azure deployment {}, api-version {})",
                        a.deployment, a.api_version
                    ))
                    .unwrap_or_default()
            ),
            Err(e) => format!("not configured: {e}"),
        }
    } else {
        format!("{} (no endpoint)", m.model)
    };
    match format {
        ShowFormat::Json => {
            let v = serde_json::json!({
                "model": m.model,
                "endpoint": endpoint,
                "file": r.file.as_ref().map(|p| p.display().to_string()),
                "agent": {"settings": r.agent.settings, "sources": r.agent.sources},
                "compliance": {"settings": r.compliance.settings, "sources": r.compliance.sources},
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        ShowFormat::Table => {
            println!("model:    {}", m.model);
            println!("endpoint: {endpoint}");
            println!(
                "settings file: {}",
                r.file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "none (--model-config, ARGENT_MODEL_CONFIG)".into())
            );
            println!();
            println!(
                "{:<26} {:<22} {:<22} source (agent / compliance)",
                "setting", "agent", "compliance"
            );
            let (a, c) = (
                serde_json::to_value(&r.agent.settings)?,
                serde_json::to_value(&r.compliance.settings)?,
            );
            let rows: [(&str, &str); 15] = [
                ("preset", "/preset"),
                ("temperature", "/temperature"),
                ("top_p", "/top_p"),
                ("max_output_tokens", "/max_output_tokens"),
                ("seed", "/seed"),
                ("parallel_tool_calls", "/parallel_tool_calls"),
                ("timeout_secs", "/timeout_secs"),
                ("max_retries", "/max_retries"),
                ("concurrency", "/concurrency"),
                ("context_window", "/context_window"),
                ("compact_prompts", "/compact_prompts"),
                ("max_tokens_field", "/quirks/max_tokens_field"),
                ("tool_choice", "/quirks/tool_choice"),
                ("strict_tools", "/quirks/strict_tools"),
                (
                    "send_parallel_tool_calls",
                    "/quirks/send_parallel_tool_calls",
                ),
            ];
            let show = |v: Option<&serde_json::Value>| match v {
                None | Some(serde_json::Value::Null) => "-".to_string(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            for (key, pointer) in rows {
                let src = |res: &Resolved| {
                    res.sources
                        .get(key)
                        .cloned()
                        .unwrap_or_else(|| "default".into())
                };
                println!(
                    "{:<26} {:<22} {:<22} {} / {}",
                    key,
                    show(a.pointer(pointer)),
                    show(c.pointer(pointer)),
                    src(&r.agent),
                    src(&r.compliance)
                );
            }
            if let Some(budget) = r.agent.settings.prompt_budget() {
                println!();
                println!(
                    "a run's first request may take at most {budget} tokens (context_window less max_output_tokens)"
                );
            }
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum PromptCommand {
    /// The first request's size in tokens (system prompt, user message, tool definitions)
    /// per jurisdiction and trigger, over sample accounts of every tier and risk segment,
    /// with the --prompts directory's templates; and the start of the system prompt all
    /// accounts share (what a provider's prompt cache reuses after the tools).
    Size {
        /// Measure the compact variant (prompts/compact/system.hbs, compact tool
        /// descriptions). Default: the agent's compact_prompts setting.
        #[arg(long)]
        compact: bool,
        /// Count with this model's tokenizer (o200k for gpt-4o/4.1/5 and o-series, else
        /// cl100k).
        #[arg(long, default_value = "gpt-4o-mini")]
        tokenizer: String,
        #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
        format: ShowFormat,
    },
}

pub fn prompt(cmd: PromptCommand, m: &ModelArgs) -> Result<()> {
    let PromptCommand::Size {
        compact,
        tokenizer,
        format,
    } = cmd;
    let r = resolve_settings(m)?;
    let compact = compact || r.agent.settings.compact_prompts;
    let prompts_dir = data_dir(&m.prompts);
    let docs = DocumentSet::from_dirs(&prompts_dir, &data_dir(&m.policies))
        .with_context(|| format!("reading prompts from {}", prompts_dir.display()))?;
    let counter = TokenCounter::for_model(&tokenizer);
    let rows = prompt_sizes(&docs, "Argent Supplies", compact, &counter)?;
    match format {
        ShowFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        ShowFormat::Table => print_sizes(&rows, compact, &counter, &r),
    }
    Ok(())
}

fn print_sizes(rows: &[SizeRow], compact: bool, counter: &TokenCounter, r: &RoleSettings) {
    println!(
        "prompts: {}; tokenizer {}; sample accounts of every tier and risk segment, before and after the initial communication",
        if compact { "compact" } else { "standard" },
        counter.encoding().as_str()
    );
    println!(
        "{:<12} {:<26} {:>13} {:>13} {:>6} {:>13}",
        "jurisdiction", "trigger", "system", "user", "tools", "total"
    );
    let range = |a: usize, b: usize| {
        if a == b {
            format!("{a}")
        } else {
            format!("{a}-{b}")
        }
    };
    for row in rows {
        println!(
            "{:<12} {:<26} {:>13} {:>13} {:>6} {:>13}",
            row.jurisdiction,
            row.trigger,
            range(row.min.system, row.max.system),
            range(row.min.user, row.max.user),
            row.max.tools,
            range(row.min.total, row.max.total),
        );
    }
    if let Some(first) = rows.first() {
        println!(
            "shared prefix: the tool definitions ({} tokens) and the first {} tokens of the system prompt are the same for every account",
            first.max.tools, first.shared_prefix
        );
    }
    if let (Some(budget), Some(max)) = (
        r.agent.settings.prompt_budget(),
        rows.iter().map(|r| r.max.total).max(),
    ) {
        println!(
            "configured budget: {budget} tokens for the first request; the largest here is {max}{}",
            if max > budget as usize {
                " — runs like it would be refused"
            } else {
                ""
            }
        );
    }
}
