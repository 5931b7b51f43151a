//! `argent runs list|show`: the agent's runs by status (e.g. the ones that need a person)
//! and one run's transcript.

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::Value;

use argent_store::{RunStatus, Store};

use crate::Format;

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// List runs, oldest first: id, customer, status, steps, tokens, and for a run that
    /// needs a person the collector's task it created.
    List {
        /// Only runs in this status: running, finished, failed, budget_exhausted or
        /// needs_person (a run that could not finish; a collector has a task for it).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// One run's transcript: every message as the run's checkpoint has it (the model's
    /// tool-call arguments exactly as it wrote them) and what became of each call.
    Show { run: String },
}

pub async fn runs(store: Store, command: RunsCommand) -> Result<()> {
    match command {
        RunsCommand::List { status, format } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => Some(
                    s.parse::<RunStatus>()
                        .map_err(|e| anyhow::anyhow!("--status: {e}"))?,
                ),
            };
            let runs = store.runs(status).await?;
            let rows: Vec<Value> = runs
                .iter()
                .map(|r| {
                    let task = (r.status == RunStatus::NeedsPerson)
                        .then(|| argent_agent::needs_person_task_id(&r.id));
                    serde_json::json!({
                        "id": r.id, "customer_id": r.customer_id, "status": r.status.as_str(),
                        "steps": r.step, "tokens": r.tokens, "model": r.model,
                        "created_at": r.created_at, "updated_at": r.updated_at, "task_id": task,
                    })
                })
                .collect();
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Format::Table => {
                    if rows.is_empty() {
                        println!("no runs");
                    }
                    for r in &runs {
                        let task = if r.status == RunStatus::NeedsPerson {
                            format!(" task {}", argent_agent::needs_person_task_id(&r.id))
                        } else {
                            String::new()
                        };
                        println!(
                            "{:<24} {:<10} {:<16} {:>2} step(s) {:>6} tokens {}{task}",
                            r.id,
                            r.customer_id,
                            r.status.as_str(),
                            r.step,
                            r.tokens,
                            r.updated_at.format("%Y-%m-%d %H:%M:%SZ"),
                        );
                    }
                }
            }
        }
        RunsCommand::Show { run } => {
            let r = store.run(&run).await?;
            println!(
                "run {} for {}: {} after {} step(s), {} tokens; model {}",
                r.id,
                r.customer_id,
                r.status.as_str(),
                r.step,
                r.tokens,
                r.model
            );
            println!("trigger: {}", r.trigger);
            let messages: Vec<(Value, Option<Value>)> = if r.state.get("delta").is_some() {
                store
                    .run_messages(&r.id)
                    .await?
                    .into_iter()
                    .map(|m| (m.message, m.outcome))
                    .collect()
            } else {
                match r.state.get("messages").and_then(Value::as_array) {
                    Some(ms) => ms.iter().map(|m| (m.clone(), None)).collect(),
                    None => bail!("run {}: its checkpoint holds no messages", r.id),
                }
            };
            for (i, (m, outcome)) in messages.iter().enumerate() {
                println!();
                println!("#{i} {}", m["role"].as_str().unwrap_or("?"));
                if let Some(c) = m.get("content").and_then(Value::as_str) {
                    println!("{c}");
                }
                for c in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    println!(
                        "call {} {} {}",
                        c["id"].as_str().unwrap_or("?"),
                        c["name"].as_str().unwrap_or("?"),
                        c["arguments"].as_str().unwrap_or("?")
                    );
                }
                if let Some(o) = outcome {
                    println!(
                        "outcome: {} {}",
                        o["status"].as_str().unwrap_or("?"),
                        o["call_id"].as_str().unwrap_or("")
                    );
                }
            }
        }
    }
    Ok(())
}
