//! The prompt budget: how many tokens a run's first request takes (system prompt, user
//! message, tool definitions), whether it fits the configured context window, and the
//! figures `argent prompt size` prints per jurisdiction and trigger.

use std::fmt;

use serde::Serialize;

use argent_core::{Jurisdiction, RiskSegment, Tier};
use argent_llm::{
    ChatMessage, ModelSettings, TokenCounter, ToolDefinition, settings::compact_tool,
};
use argent_tools::Registry;

use crate::documents::{DocumentSet, sample_account, sample_triggers};
use crate::run::render_run_prompts;
use crate::{AgentError, Trigger};

/// The compact system prompt (for small contexts), rendered instead of `system` when the
/// agent's settings say `compact_prompts`.
pub const COMPACT_SYSTEM: &str = "compact/system";

/// The system prompt template a run renders.
pub fn system_template(compact: bool) -> &'static str {
    if compact { COMPACT_SYSTEM } else { "system" }
}

/// The tool definitions the model is offered: the registry's, or their compact form
/// (first sentence of each description, no parameter descriptions).
pub fn tool_definitions(registry: &Registry, compact: bool) -> Vec<ToolDefinition> {
    registry
        .definitions()
        .into_iter()
        .map(|d| {
            let full = ToolDefinition::new(d.name, d.description, d.parameters);
            if compact { compact_tool(&full) } else { full }
        })
        .collect()
}

/// The token counter for a model's display name (`gpt-4o-mini at https://…`: its first
/// word names the model).
pub fn counter_for(model_name: &str) -> TokenCounter {
    TokenCounter::for_model(model_name.split_whitespace().next().unwrap_or(model_name))
}

/// The size of a first request, in (estimated) tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PromptSize {
    /// The system message, with its per-message overhead.
    pub system: usize,
    /// The user message, with its per-message overhead.
    pub user: usize,
    /// The tool definitions.
    pub tools: usize,
    /// The whole request's prompt (messages, reply priming, tools).
    pub total: usize,
}

/// Counts the first request of a run.
pub fn measure(
    counter: &TokenCounter,
    system: &str,
    user: &str,
    tools: &[ToolDefinition],
) -> PromptSize {
    let messages = [ChatMessage::system(system), ChatMessage::user(user)];
    let tools_n = counter.count_tools(tools);
    PromptSize {
        system: counter.count_message(&messages[0]),
        user: counter.count_message(&messages[1]),
        tools: tools_n,
        total: counter.count_messages(&messages) + tools_n,
    }
}

/// A first request that cannot fit: the sizes, for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TooLarge {
    pub customer_id: String,
    pub size: PromptSize,
    pub context_window: u32,
    pub max_output_tokens: u32,
    pub compact: bool,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.size;
        let room = self.context_window.saturating_sub(self.max_output_tokens);
        write!(
            f,
            "the run for {} was not started: its first request takes about {} tokens \
             (system prompt {}, user message {}, tool definitions {}), but the context window \
             is {} tokens and {} are kept for the answer (max_output_tokens), leaving {} for \
             the prompt; nothing was written. ",
            self.customer_id,
            s.total,
            s.system,
            s.user,
            s.tools,
            self.context_window,
            self.max_output_tokens,
            room
        )?;
        if self.compact {
            f.write_str("Raise context_window (and the server's context length) or lower max_output_tokens.")
        } else {
            f.write_str("Use the compact prompts (compact_prompts = true, --compact-prompts), raise context_window (and the server's context length) or lower max_output_tokens.")
        }
    }
}

/// Whether a first request of `size` fits `settings`' context window less its output
/// bound (always, when no context window is set).
pub fn check_fit(
    settings: &ModelSettings,
    customer_id: &str,
    size: PromptSize,
) -> Result<(), AgentError> {
    let Some(window) = settings.context_window else {
        return Ok(());
    };
    let max_out = settings.max_output_tokens.unwrap_or(0);
    let room = window.saturating_sub(max_out) as usize;
    if size.total > room {
        return Err(AgentError::PromptTooLarge(TooLarge {
            customer_id: customer_id.to_string(),
            size,
            context_window: window,
            max_output_tokens: max_out,
            compact: settings.compact_prompts,
        }));
    }
    Ok(())
}

/// One row of `argent prompt size`: a jurisdiction and a trigger, over the sample accounts
/// of every tier and risk segment, before and after the initial communication.
#[derive(Clone, Debug, Serialize)]
pub struct SizeRow {
    pub jurisdiction: String,
    pub trigger: String,
    /// The smallest and largest first request over the sample accounts.
    pub min: PromptSize,
    pub max: PromptSize,
    /// Tokens at the start of the system prompt that every sample account of every
    /// jurisdiction shares (what a provider's prompt cache can reuse across accounts,
    /// after the tool definitions).
    pub shared_prefix: usize,
}

/// Measures the first request for sample accounts per jurisdiction and trigger, with the
/// `documents`' prompts (standard or compact) and the built-in tools.
pub fn prompt_sizes(
    documents: &DocumentSet,
    company: &str,
    compact: bool,
    counter: &TokenCounter,
) -> Result<Vec<SizeRow>, AgentError> {
    let prompts = documents.prompt_set()?;
    let registry = Registry::builtin()?;
    let tools = tool_definitions(&registry, compact);
    let steps: Vec<String> = documents
        .prompts
        .keys()
        .filter_map(|n| n.strip_prefix("step/"))
        .filter(|s| *s != "inbound_reply")
        .map(str::to_string)
        .collect();
    let triggers = sample_triggers(&steps);
    let segments = [
        RiskSegment::Low,
        RiskSegment::Medium,
        RiskSegment::High,
        RiskSegment::InReview,
    ];
    let mut rows = Vec::new();
    let mut systems: Vec<String> = Vec::new();
    for j in Jurisdiction::ALL {
        for (_, trigger) in &triggers {
            let mut sizes = Vec::new();
            for tier in Tier::ALL {
                for segment in segments {
                    for initial_sent in [false, true] {
                        let account = sample_account(*j, *tier, segment, initial_sent)?;
                        let (system, user) =
                            render_run_prompts(&prompts, company, &account, trigger, compact)?;
                        sizes.push(measure(counter, &system, &user, &tools));
                        systems.push(system);
                    }
                }
            }
            let by_total = |a: &&PromptSize, b: &&PromptSize| a.total.cmp(&b.total);
            let (Some(min), Some(max)) = (
                sizes.iter().min_by(by_total).copied(),
                sizes.iter().max_by(by_total).copied(),
            ) else {
                continue;
            };
            rows.push(SizeRow {
                jurisdiction: j.to_string(),
                trigger: trigger_label(trigger),
                min,
                max,
                shared_prefix: 0,
            });
        }
    }
    let shared = counter.count_text(common_prefix(&systems));
    for r in &mut rows {
        r.shared_prefix = shared;
    }
    Ok(rows)
}

fn trigger_label(trigger: &Trigger) -> String {
    match trigger {
        Trigger::Inbound { .. } => "inbound email".to_string(),
        Trigger::Step { step } | Trigger::ProcedureStep { step, .. } => format!("step {step}"),
    }
}

/// The longest prefix all `texts` share, cut at a character boundary.
pub fn common_prefix(texts: &[String]) -> &str {
    let Some(first) = texts.first() else {
        return "";
    };
    let mut end = first.len();
    for t in &texts[1..] {
        end = first
            .char_indices()
            .zip(t.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8())
            .min(end);
    }
    &first[..end]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn common_prefix_stops_at_the_first_difference() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(common_prefix(&t(&["abcé1", "abcé2", "abcéx"])), "abcé");
        assert_eq!(common_prefix(&t(&["x", "y"])), "");
        assert_eq!(common_prefix(&t(&["same"])), "same");
    }

    #[test]
    fn a_request_past_the_window_less_the_output_is_refused_naming_the_sizes() {
        let mut s = ModelSettings::defaults(argent_llm::ModelRole::Agent);
        let size = PromptSize {
            system: 3000,
            user: 100,
            tools: 900,
            total: 4003,
        };
        assert!(check_fit(&s, "C-1", size).is_ok(), "no window, no check");
        s.context_window = Some(4096);
        s.max_output_tokens = Some(512);
        let err = check_fit(&s, "C-1", size).unwrap_err().to_string();
        for part in [
            "C-1",
            "4003 tokens",
            "system prompt 3000",
            "tool definitions 900",
            "context window is 4096",
            "512 are kept",
            "leaving 3584",
            "compact_prompts",
            "nothing was written",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
        s.context_window = Some(8192);
        assert!(check_fit(&s, "C-1", size).is_ok());
    }
}
