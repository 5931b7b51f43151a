//! `argent tick`: plan every account against its dunning procedure and enqueue the steps
//! due; `argent procedures status`: where accounts stand. The work is in
//! `argent_agent::tick` and `argent_store`; this is glue.

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use clap::Subcommand;

use argent_agent::DocumentSet;
use argent_agent::tick::{DEFAULT_BATCH, SCHEDULER_ACTOR, active_procedures, tick};
use argent_store::{DocKind, SnapshotTaken, Store};

use crate::Format;
use crate::agentcmd::{ModelArgs, SEED_AUTHOR, active_documents, data_dir};

#[derive(Subcommand, Debug)]
pub enum ProceduresCommand {
    /// Per procedure: accounts at each step, in each status, paused by reason, and with a
    /// step planned or due today (UTC); or one customer's state with --customer.
    Status {
        #[arg(long)]
        customer: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// The procedure documents beside --policies (`procedures/`).
fn procedures_dir(m: &ModelArgs) -> std::path::PathBuf {
    let policies = data_dir(&m.policies);
    policies.parent().map_or_else(
        || data_dir(std::path::Path::new("procedures")),
        |p| p.join("procedures"),
    )
}

/// Seeds the procedure documents into a database that has none (a database seeded before
/// procedures existed), checked against its active prompts first.
pub(crate) async fn seed_procedures(store: &Store, m: &ModelArgs) -> Result<()> {
    let docs = active_documents(store, m).await?;
    if !docs.procedures.is_empty() {
        return Ok(());
    }
    let dir = procedures_dir(m);
    let files = DocumentSet::from_dirs_with_procedures(
        &data_dir(&m.prompts),
        &data_dir(&m.policies),
        Some(&dir),
    )
    .with_context(|| format!("reading the procedures in {}", dir.display()))?;
    let mut candidate = docs.clone();
    candidate.procedures = files.procedures.clone();
    candidate
        .procedure_set()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("checking the procedures in {}", dir.display()))?;
    let entries: Vec<_> = files
        .entries()
        .into_iter()
        .filter(|(k, _, _)| *k == DocKind::Procedure)
        .collect();
    let n = store.seed_documents(&entries, SEED_AUTHOR).await?;
    if n > 0 {
        eprintln!(
            "argent: the database had no procedures; seeded {n} documents from {}",
            dir.display()
        );
    }
    Ok(())
}

pub async fn tick_cmd(
    store: Store,
    m: &ModelArgs,
    now: Option<DateTime<Utc>>,
    batch: i64,
    format: Format,
) -> Result<()> {
    seed_procedures(&store, m).await?;
    let set = active_procedures(&store).await?;
    let now = now.unwrap_or_else(Utc::now);
    let r = tick(&store, &set, now, batch.max(1)).await?;
    // The dashboard's snapshot of the last complete UTC day, once per date.
    let day = argent_agent::snapshot::scheduled_date(now);
    let snap = argent_agent::snapshot::take(&store, day, SCHEDULER_ACTOR).await?;
    match format {
        Format::Json => {
            let mut v = serde_json::to_value(&r)?;
            v["snapshot"] = serde_json::json!({"as_of": day, "result": snap});
            println!("{}", serde_json::to_string_pretty(&v)?)
        }
        Format::Table => {
            println!("tick at {}", r.now.to_rfc3339());
            println!(
                "{} accounts planned: {} steps due, {} enqueued (the rest were queued already)",
                r.customers, r.due, r.enqueued
            );
            for (step, n) in &r.due_by_step {
                println!("  {step:<24} {n:>7}");
            }
            println!(
                "promises: {} broken, {} kept; {} queued steps cancelled (balance cleared)",
                r.promises_broken, r.promises_kept, r.cancelled
            );
            let paused: usize = r.paused.values().sum();
            println!("paused: {paused}; no procedure: {}", r.unassigned);
            for (reason, n) in &r.paused {
                println!("  {reason:<24} {n:>7}");
            }
            println!(
                "states written: {}; time: read {} ms, plan {} ms, write {} ms",
                r.states_written, r.read_ms, r.plan_ms, r.write_ms
            );
            for e in &r.errors {
                println!("not planned: {e}");
            }
            println!("dashboard snapshot of {day}: {}", snapshot_line(snap));
        }
    }
    Ok(())
}

fn snapshot_line(s: SnapshotTaken) -> String {
    match s {
        SnapshotTaken::Taken { rows } => format!("taken ({rows} rows)"),
        SnapshotTaken::AlreadyTaken => "already taken".to_string(),
    }
}

/// `argent snapshot [--as-of DATE] [--from DATE]`: the dashboard's snapshot of a date
/// (default: the last complete UTC day, as the scheduler takes it), or of every date of
/// `--from..=--as-of` (a backfill); dates that have one are left as they are.
pub async fn snapshot_cmd(
    store: Store,
    now: Option<DateTime<Utc>>,
    as_of: Option<NaiveDate>,
    from: Option<NaiveDate>,
    format: Format,
) -> Result<()> {
    let to = as_of
        .unwrap_or_else(|| argent_agent::snapshot::scheduled_date(now.unwrap_or_else(Utc::now)));
    let from = from.unwrap_or(to);
    let actor = std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .map_or_else(|| "cli".to_string(), |u| format!("cli:{u}"));
    let taken = argent_agent::snapshot::take_range(&store, from, to, &actor).await?;
    match format {
        Format::Json => {
            let v: Vec<_> = taken
                .iter()
                .map(|(d, s)| serde_json::json!({"as_of": d, "result": s}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Table => {
            for (d, s) in &taken {
                println!("{d}  {}", snapshot_line(*s));
            }
            let new = taken
                .iter()
                .filter(|(_, s)| matches!(s, SnapshotTaken::Taken { .. }))
                .count();
            println!("{new} of {} dates snapshotted now", taken.len());
        }
    }
    Ok(())
}

pub async fn procedures(
    store: Store,
    cmd: ProceduresCommand,
    now: Option<DateTime<Utc>>,
) -> Result<()> {
    match cmd {
        ProceduresCommand::Status {
            customer: Some(id),
            format,
        } => {
            store.customer(&id).await?;
            let state = store.procedure_state(&id).await?;
            match (format, state) {
                (Format::Json, s) => println!("{}", serde_json::to_string_pretty(&s)?),
                (Format::Table, None) => {
                    println!("{id}: not planned yet (argent tick plans every account)")
                }
                (Format::Table, Some(s)) => {
                    let or = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                    println!("customer   {id}");
                    println!("status     {}", s.status);
                    println!(
                        "procedure  {} (version {}), cycle {}",
                        or(s.procedure.clone()),
                        s.version,
                        s.cycle
                    );
                    println!(
                        "current    {} at {}",
                        or(s.current_step.clone()),
                        or(s.current_at.map(|t| t.to_rfc3339()))
                    );
                    println!(
                        "next       {} at {}",
                        or(s.next_step.clone()),
                        or(s.next_at.map(|t| t.to_rfc3339()))
                    );
                    if let Some(r) = s.paused_reason {
                        println!("paused     {r}");
                    }
                    if let Some(d) = s.detail {
                        println!("detail     {d}");
                    }
                }
            }
        }
        ProceduresCommand::Status {
            customer: None,
            format,
        } => {
            let now = now.unwrap_or_else(Utc::now);
            let start = now
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc();
            let summary = store
                .procedure_summary(start, start + Duration::days(1))
                .await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
                Format::Table => {
                    if summary.is_empty() {
                        println!("no account planned yet (argent tick plans every account)");
                    }
                    for p in &summary {
                        println!(
                            "{}: {} accounts, {} due today",
                            p.procedure, p.accounts, p.due_today
                        );
                        let list = |v: &[argent_store::StepCount]| {
                            v.iter()
                                .map(|c| format!("{} {}", c.key, c.accounts))
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        println!("  status:  {}", list(&p.by_status));
                        println!("  at step: {}", list(&p.at_step));
                        if !p.paused_by_reason.is_empty() {
                            println!("  paused:  {}", list(&p.paused_by_reason));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

pub const DEFAULT_TICK_BATCH: i64 = DEFAULT_BATCH;
