//! Commands around the planner loop: run, resume, approvals, outbox, demo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveTime, Utc};
use clap::{Args, Subcommand, ValueEnum};

use argent_agent::outbox::DirMailer;
use argent_agent::{
    Agent, AgentConfig, CallStatus, Clock, ComplianceCheck, DocumentSet, ModelComplianceCheck,
    OfflineComplianceCheck, OfflineModel, RunOutcome, Trigger,
};
use argent_llm::{ChatModel, ModelSettings, OpenAiConfig, OpenAiModel, Recorder, Replayer};
use argent_store::{ApprovalStatus, AuditVerification, Store};

use crate::logincmd::{AuthArgs, reviewer};

/// Which model drives the agent.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// `offline` (deterministic stand-in, no network), `openai` (any OpenAI-compatible
    /// endpoint: set ARGENT_LLM_MODEL, ARGENT_LLM_BASE_URL, ARGENT_LLM_API_KEY),
    /// `record:FILE` (openai, recording every exchange to a cassette) or `replay:FILE`
    /// (fails at the first request that differs from the recording, before that step's
    /// side effects, and when fewer exchanges were replayed than recorded). Record and
    /// replay at the same --now. `eval run` takes `offline`, `openai`, `replay` (each
    /// case's own cassette), `record-offline`, `record:DIR` / `replay:DIR` (one cassette per
    /// case) instead; `eval compliance` takes `offline` or `openai`.
    #[arg(long, global = true, default_value = "offline")]
    pub model: String,
    /// Prompt templates directory. Commands that work a database (run, resume, serve,
    /// approvals, outbox) use the database's active prompt documents and read this only
    /// to seed a database that has no documents yet; `eval` reads it directly.
    #[arg(long, global = true, default_value = "prompts")]
    pub prompts: PathBuf,
    /// Policy documents directory: like --prompts, it seeds a database without documents
    /// and is read directly by `eval`.
    #[arg(long, global = true, default_value = "policies")]
    pub policies: PathBuf,
    #[command(flatten)]
    pub settings: crate::modelcmd::SettingsArgs,
}

/// A recording or replaying model this process built, by its `--model` spec.
struct Cassette {
    model: Arc<dyn ChatModel>,
    replayer: Option<Arc<Replayer>>,
}

/// The cassettes this process records or replays. A command that builds several agents
/// (the demo builds one per phase) gets the same [`Recorder`] or [`Replayer`] each time, so
/// a recording is not truncated, nor a replay restarted, by the next agent.
static CASSETTES: Mutex<BTreeMap<String, Cassette>> = Mutex::new(BTreeMap::new());

fn cassettes() -> std::sync::MutexGuard<'static, BTreeMap<String, Cassette>> {
    CASSETTES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The model `--model` names; an endpoint (openai, record:) takes the agent role's
/// endpoint settings (timeout, retries, quirks, concurrency).
pub fn build_model(spec: &str, settings: &ModelSettings) -> Result<Arc<dyn ChatModel>> {
    let endpoint = || -> Result<OpenAiModel> {
        Ok(OpenAiModel::new(
            OpenAiConfig::from_env()?.with_settings(settings),
        )?)
    };
    let mut shared = cassettes();
    if let Some(c) = shared.get(spec) {
        return Ok(c.model.clone());
    }
    let cassette = match spec.split_once(':') {
        None if spec == "offline" => return Ok(Arc::new(OfflineModel)),
        None if spec == "openai" => return Ok(Arc::new(endpoint()?)),
        Some(("record", path)) if !path.is_empty() => Cassette {
            model: Arc::new(Recorder::new(Arc::new(endpoint()?), path)?),
            replayer: None,
        },
        Some(("replay", path)) if !path.is_empty() => {
            let r = Arc::new(Replayer::open(path)?);
            Cassette {
                model: r.clone(),
                replayer: Some(r),
            }
        }
        _ => bail!("--model {spec}: expected offline, openai, record:FILE or replay:FILE"),
    };
    let model = cassette.model.clone();
    shared.insert(spec.to_string(), cassette);
    Ok(model)
}

/// After a command that replayed a cassette (`--model replay:FILE`): an error unless every
/// recorded exchange was replayed (the run made fewer model calls than the recording).
pub fn finish_replays() -> Result<()> {
    for c in cassettes().values() {
        if let Some(r) = &c.replayer {
            r.finish()?;
        }
    }
    Ok(())
}

/// The content compliance check that goes with `--model`: with `openai`, the model-based
/// check on the configured endpoint (`ARGENT_CHECK_MODEL`, if set, names a separate, e.g.
/// cheaper, model for it); otherwise (offline, record:, replay:) the deterministic offline
/// classifier, so recorded conversations replay without extra exchanges.
pub fn build_compliance_check(
    spec: &str,
    settings: &ModelSettings,
) -> Result<Arc<dyn ComplianceCheck>> {
    if spec != "openai" {
        return Ok(Arc::new(OfflineComplianceCheck));
    }
    let mut config = OpenAiConfig::from_env()?.with_settings(settings);
    if let Some(m) = std::env::var(ENV_CHECK_MODEL)
        .ok()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
    {
        config.model = m;
    }
    Ok(Arc::new(
        ModelComplianceCheck::new(Arc::new(OpenAiModel::new(config)?))
            .with_settings(settings.clone()),
    ))
}

/// The environment variable naming the model the compliance check uses with `--model openai`.
pub const ENV_CHECK_MODEL: &str = "ARGENT_CHECK_MODEL";

/// A data directory: as given if it exists, else the one in this source tree.
pub fn data_dir(p: &Path) -> PathBuf {
    if p.exists() || p.is_absolute() {
        return p.to_path_buf();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p);
    if repo.exists() { repo } else { p.to_path_buf() }
}

/// The author recorded for documents seeded from the --prompts / --policies directories.
pub const SEED_AUTHOR: &str = "seed";

/// The prompts and policies the agent works with: the database's active documents. A
/// database with no documents at all is first seeded from the --prompts and --policies
/// directories (each file becomes version 1 of its document, active, audited as
/// `document.seed` by `seed`); after that the directories are not read.
pub async fn active_documents(store: &Store, m: &ModelArgs) -> Result<DocumentSet> {
    if store.documents().await?.is_empty() {
        let (prompts, policies) = (data_dir(&m.prompts), data_dir(&m.policies));
        let files = DocumentSet::from_dirs(&prompts, &policies).with_context(|| {
            format!(
                "seeding the database's documents from {} and {}",
                prompts.display(),
                policies.display()
            )
        })?;
        // Check the files before they become what the agent uses.
        files.prompt_set()?;
        files.policy_set()?;
        let n = store.seed_documents(&files.entries(), SEED_AUTHOR).await?;
        if n > 0 {
            eprintln!(
                "argent: the database had no prompts or policies; seeded {n} documents from {} and {}",
                prompts.display(),
                policies.display()
            );
        }
    }
    let docs = DocumentSet::from_versions(&store.active_documents().await?);
    if docs.prompts.is_empty() {
        bail!("the database has no active prompt documents (argent docs list)");
    }
    Ok(docs)
}

/// For a long-running process (`serve`, `worker`): compiles the agent's policy packs on a
/// thread of its own now, so that no request waits for a pack's first compile, and says
/// at start-up, not at the first judgement, which pack does not compile (an account of its
/// jurisdiction then gets no action: the agent refuses to judge without its policy).
pub fn compile_policies_in_background(agent: &Agent) {
    let packs = agent.policies.clone();
    let spawned = std::thread::Builder::new()
        .name("argent-policies".into())
        .spawn(move || {
            for (id, e) in packs.compile_now() {
                eprintln!("argent: policy pack '{id}' does not compile; no account it governs will be acted on:\n{e}");
            }
        });
    if let Err(e) = spawned {
        // The packs then compile at first need, as in `argent run`.
        eprintln!("argent: could not start compiling the policy packs ahead of need: {e}");
    }
}

/// The working agent over a database: its active documents (seeding them first if it
/// has none) and the chosen model.
pub async fn build_agent(store: Store, m: &ModelArgs, clock: Clock) -> Result<Agent> {
    let settings = crate::modelcmd::resolve_settings(m)?;
    let (agent_settings, check_settings) = (settings.agent.settings, settings.compliance.settings);
    let model = build_model(&m.model, &agent_settings)?;
    let docs = active_documents(&store, m).await?;
    let config = AgentConfig {
        clock,
        mail_domain: crate::mailsend::mail_settings()?.domain(),
        model_settings: agent_settings,
        check_settings: (m.model == "openai").then(|| check_settings.clone()),
        ..Default::default()
    };
    let check = build_compliance_check(&m.model, &check_settings)?;
    Agent::from_documents(store, model, &docs, config)
        .map(|a| a.with_compliance_check(check))
        .context("building the agent from the database's active documents")
}

#[derive(Subcommand, Debug)]
pub enum ApprovalsCommand {
    /// The queue, highest priority (risk, age, amount) first.
    List {
        #[arg(long, value_enum, default_value_t = StatusArg::Pending)]
        status: StatusArg,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One item with its context, the decision and the rules that fired.
    Show { id: String },
    /// Approve and execute the action as proposed, as the signed-in user (`argent login`).
    Approve {
        id: String,
        #[command(flatten)]
        auth: AuthArgs,
        #[arg(long)]
        note: Option<String>,
    },
    /// Replace the arguments (same tool), re-judged by policy, then execute.
    Edit {
        id: String,
        /// The new arguments as JSON, or @FILE.
        #[arg(long)]
        args: String,
        #[command(flatten)]
        auth: AuthArgs,
        #[arg(long)]
        note: Option<String>,
    },
    /// Reject with a note, as the signed-in user; nothing is executed.
    Reject {
        id: String,
        #[command(flatten)]
        auth: AuthArgs,
        #[arg(long)]
        note: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Pending,
    Approved,
    Rejected,
    All,
}

#[derive(Subcommand, Debug)]
pub enum OutboxCommand {
    /// Deliver pending emails: over SMTP when it is configured (ARGENT_SMTP_HOST or the
    /// `[smtp]` table of ARGENT_MAIL_CONFIG), else, or with --dir (a dry run), as .eml
    /// files into a directory.
    Deliver {
        /// Write .eml files here instead of sending (default out/mail when SMTP is not
        /// configured).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The sender (default: ARGENT_MAIL_FROM, the config file's, or ar@argent.example).
        #[arg(long)]
        from: Option<String>,
        #[arg(long, default_value_t = 500)]
        limit: i64,
    },
    /// List outbox emails: status (pending, sent, failed, uncertain), attempts, and the
    /// mail server's last answer.
    List {
        #[arg(long)]
        customer: Option<String>,
        /// Only emails in this status.
        #[arg(long)]
        status: Option<String>,
    },
    /// Record a collector's answer for an `uncertain` email (an SMTP attempt whose answer
    /// was never recorded): it arrived, or send it again.
    Resolve {
        id: String,
        #[arg(long, conflicts_with = "resend", required_unless_present = "resend")]
        arrived: bool,
        #[arg(long)]
        resend: bool,
        #[command(flatten)]
        auth: AuthArgs,
        #[arg(long)]
        note: Option<String>,
    },
}

pub async fn approvals(
    store: Store,
    models: &ModelArgs,
    clock: Clock,
    cmd: ApprovalsCommand,
) -> Result<()> {
    match cmd {
        ApprovalsCommand::List { status, limit } => {
            let st = match status {
                StatusArg::Pending => Some(ApprovalStatus::Pending),
                StatusArg::Approved => Some(ApprovalStatus::Approved),
                StatusArg::Rejected => Some(ApprovalStatus::Rejected),
                StatusArg::All => None,
            };
            let items = store.approvals(st, limit, 0).await?;
            println!(
                "{:<38} {:<9} {:<13} {:<9} {:>12} {:<10} rules",
                "id", "priority", "tool", "customer", "amount", "status"
            );
            for i in &items {
                let rules: Vec<String> = i.decision["rules"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|r| r["id"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let amount = if i.currency.is_empty() {
                    String::new()
                } else {
                    argent_core::Money::new(i.amount_minor, i.currency.parse()?).to_string()
                };
                println!(
                    "{:<38} {:<9} {:<13} {:<9} {:>12} {:<10} {}",
                    i.id,
                    i.priority,
                    i.tool,
                    i.customer_id,
                    amount,
                    format!("{:?}", i.status).to_lowercase(),
                    rules.join(",")
                );
            }
            println!("{} item(s)", items.len());
        }
        ApprovalsCommand::Show { id } => {
            let item = store.approval(&id).await?;
            println!("{}", serde_json::to_string_pretty(&item)?);
        }
        ApprovalsCommand::Approve { id, auth, note } => {
            let who = reviewer(&store, &auth).await?;
            let agent = build_agent(store, models, clock).await?;
            let r = agent.approve(&id, &who, note.as_deref()).await?;
            println!("approved {id}; executed: {}", r.result);
        }
        ApprovalsCommand::Edit {
            id,
            args,
            auth,
            note,
        } => {
            let who = reviewer(&store, &auth).await?;
            let text = match args.strip_prefix('@') {
                Some(path) => {
                    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
                }
                None => args,
            };
            let value: serde_json::Value =
                serde_json::from_str(&text).context("--args is not valid JSON")?;
            let agent = build_agent(store, models, clock).await?;
            let preview = agent.preview_edit(&id, value.clone()).await?;
            println!("policy decision for the edit: {preview}");
            let r = agent.edit(&id, &who, value, note.as_deref()).await?;
            println!("edited and approved {id}; executed: {}", r.result);
        }
        ApprovalsCommand::Reject { id, auth, note } => {
            let who = reviewer(&store, &auth).await?;
            let agent = build_agent(store, models, clock).await?;
            agent.reject(&id, &who, &note).await?;
            println!("rejected {id}");
        }
    }
    Ok(())
}

pub async fn outbox(store: Store, cmd: OutboxCommand) -> Result<()> {
    match cmd {
        OutboxCommand::Deliver { dir, from, limit } => {
            let models = ModelArgs {
                model: "offline".into(),
                prompts: "prompts".into(),
                policies: "policies".into(),
                settings: Default::default(),
            };
            let mut settings = crate::mailsend::mail_settings()?;
            if let Some(f) = from {
                settings.from = f;
            }
            let agent = build_agent(store, &models, Clock::System).await?;
            let refused = match (dir, &settings.smtp) {
                (None, Some(smtp)) => {
                    let mailer = argent_mail::smtp::SmtpMailer::new(smtp)?;
                    let d = agent
                        .deliver_smtp(
                            &mailer,
                            &settings,
                            &crate::mailsend::deliverer_name(),
                            limit,
                        )
                        .await?;
                    println!(
                        "over {}: {}",
                        mailer.describe(),
                        crate::mailsend::describe(&d)
                    );
                    d.refused
                }
                (dir, _) => {
                    let dir = dir.unwrap_or_else(|| PathBuf::from("out/mail"));
                    let d = agent
                        .deliver_outbox(&DirMailer { dir: dir.clone() }, &settings.from, limit)
                        .await?;
                    println!("delivered {} email(s) into {}", d.sent, dir.display());
                    d.refused
                }
            };
            if !refused.is_empty() {
                let lines: Vec<String> = refused.iter().map(|r| r.to_string()).collect();
                bail!(
                    "{} email(s) not sent: they are not what the audit trail recorded (audited as \
                     email_refused; they stay pending):\n  {}",
                    lines.len(),
                    lines.join("\n  ")
                );
            }
        }
        OutboxCommand::List { customer, status } => {
            for e in store.emails(customer.as_deref()).await? {
                if status.as_deref().is_some_and(|s| s != e.status) {
                    continue;
                }
                println!(
                    "{:<40} {:<9} {:<8} {:<30} {}",
                    e.id, e.status, e.customer_id, e.to_addr, e.subject
                );
                if e.attempts > 0 || e.last_error.is_some() {
                    println!(
                        "    attempts {}{}{}",
                        e.attempts,
                        e.next_attempt_at
                            .filter(|_| e.status == "pending")
                            .map(|t| format!(", next at {}", t.to_rfc3339()))
                            .unwrap_or_default(),
                        e.last_error
                            .as_deref()
                            .map(|x| format!(", last: {x}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        OutboxCommand::Resolve {
            id,
            arrived,
            resend,
            auth,
            note,
        } => {
            let who = reviewer(&store, &auth).await?;
            let models = ModelArgs {
                model: "offline".into(),
                prompts: "prompts".into(),
                policies: "policies".into(),
                settings: Default::default(),
            };
            let agent = build_agent(store, &models, Clock::System).await?;
            let arrived = arrived && !resend;
            agent
                .resolve_uncertain(&id, arrived, &who.name, note.as_deref())
                .await?;
            println!(
                "{id}: {}",
                if arrived {
                    "marked sent"
                } else {
                    "pending again; the next delivery sends it"
                }
            );
        }
    }
    Ok(())
}

/// Reads an inbound email: optional `From:` / `Subject:` / `Date:` header lines, a blank
/// line, the body. It was received at `now` (the command's clock: `--now` when given), or
/// at its `Date:` (RFC 2822) if that is earlier; so the same file at the same `--now` is
/// the same trigger, and a recorded run replays.
pub fn read_inbound(path: &Path, default_from: &str, now: DateTime<Utc>) -> Result<Trigger> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (mut from, mut subject) = (default_from.to_string(), String::new());
    let mut received_at = now;
    let mut body = text.as_str();
    if let Some((head, rest)) = text.split_once("\n\n")
        && head.lines().all(|l| l.contains(": "))
    {
        for line in head.lines() {
            if let Some(v) = line.strip_prefix("From: ") {
                from = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("Subject: ") {
                subject = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("Date: ") {
                let date = DateTime::parse_from_rfc2822(v.trim()).with_context(|| {
                    format!(
                        "{}: the Date: header {:?} is not an RFC 2822 date (e.g. Tue, 1 Dec 2026 10:30:00 +0000)",
                        path.display(),
                        v.trim()
                    )
                })?;
                received_at = received_at.min(date.with_timezone(&Utc));
            }
        }
        body = rest;
    }
    Ok(Trigger::Inbound {
        from,
        subject,
        body: body.to_string(),
        received_at,
        message_id: None,
        references: Vec::new(),
        mail: None,
    })
}

pub fn print_run(o: &RunOutcome) {
    println!(
        "run {} for {}: {} after {} step(s), {} tokens",
        o.run_id,
        o.customer_id,
        o.status.as_str(),
        o.steps,
        o.tokens
    );
    if let Some(why) = &o.ended_because {
        println!("  ended because {why}");
    }
    if let Some(task) = &o.task_id {
        println!("  a collector has task {task} for it (argent tasks list)");
    }
    for c in &o.calls {
        let extra = c
            .approval_id
            .as_deref()
            .map(|a| format!(" (approval {a})"))
            .unwrap_or_default();
        println!(
            "  {:<13} {:<9} {}{}",
            c.tool,
            c.status.as_str(),
            c.rules.join(","),
            extra
        );
    }
}

/// One demo run's lines: a line per tool call (or `no action`), the run's end when it did
/// not finish, or its error.
fn print_demo_run(r: &argent_agent::demo::DemoRun, totals: &mut [usize; 4]) {
    let o = match &r.outcome {
        Ok(o) => o,
        Err(e) => {
            println!(
                "{:<31} {:<8} {:<13} {:<9} {e}",
                r.scenario, r.customer_id, "-", "error"
            );
            return;
        }
    };
    if o.calls.is_empty() && o.status == argent_store::RunStatus::Finished {
        println!(
            "{:<31} {:<8} {:<13} {:<9}",
            r.scenario, r.customer_id, "-", "no action"
        );
    }
    for c in &o.calls {
        let i = match c.status {
            CallStatus::Executed => 0,
            CallStatus::Queued => 1,
            CallStatus::Refused => 2,
            CallStatus::Invalid => 3,
        };
        totals[i] += 1;
        println!(
            "{:<31} {:<8} {:<13} {:<9} {}",
            r.scenario,
            r.customer_id,
            c.tool,
            c.status.as_str(),
            c.rules.join(", ")
        );
    }
    if o.status != argent_store::RunStatus::Finished {
        let why = o.ended_because.as_deref().unwrap_or("");
        let task = o
            .task_id
            .as_deref()
            .map(|t| format!("; task {t} for a collector"))
            .unwrap_or_default();
        println!(
            "{:<31} {:<8} {:<13} {:<9} {why}{task}",
            r.scenario,
            r.customer_id,
            "-",
            o.status.as_str()
        );
    }
}

/// The demo's fixed clock: today at 18:00 UTC, inside every demo customer's daytime.
pub fn demo_clock() -> Clock {
    let t = Utc::now()
        .date_naive()
        .and_time(NaiveTime::from_hms_opt(18, 0, 0).unwrap_or_default())
        .and_utc();
    Clock::Fixed(t)
}

pub async fn demo_agent_runs(
    store: Store,
    models: &ModelArgs,
    clock: Clock,
    dunning: usize,
) -> Result<()> {
    let agent = build_agent(store.clone(), models, clock).await?;
    println!("model: {}", agent.model.name());
    println!(
        "prompts {} · policies {}",
        agent.prompts.version(),
        agent.policy_version
    );
    println!();
    println!(
        "{:<31} {:<8} {:<13} {:<9} rules",
        "scenario", "customer", "tool", "outcome"
    );
    // Each run is printed as it ends (a real model takes seconds per run); one that errors
    // is printed with its error and the others go on.
    let mut totals = [0usize; 4];
    let mut print = |r: &argent_agent::demo::DemoRun| {
        use std::io::Write;
        print_demo_run(r, &mut totals);
        let _ = std::io::stdout().flush();
    };
    let runs = argent_agent::demo::run_demo(&agent, dunning, &mut print).await?;
    let errors = runs.iter().filter(|r| r.outcome.is_err()).count();
    let needs_person = runs
        .iter()
        .filter(|r| {
            r.outcome
                .as_ref()
                .is_ok_and(|o| o.status == argent_store::RunStatus::NeedsPerson)
        })
        .count();
    println!();
    println!(
        "{} runs: {} executed, {} queued for approval, {} refused, {} invalid",
        runs.len(),
        totals[0],
        totals[1],
        totals[2],
        totals[3]
    );
    if needs_person > 0 {
        println!(
            "{needs_person} run(s) could not finish and are a collector's task (argent -d DB runs list --status needs_person)"
        );
    }
    if errors > 0 {
        println!("{errors} run(s) stopped with an error (shown above)");
    }
    let pending = store.count_approvals(Some(ApprovalStatus::Pending)).await?;
    println!("approval queue: {pending} pending (argent -d DB approvals list)");
    let outbox = store.pending_emails(1000).await?.len();
    println!("outbox: {outbox} email(s) waiting for delivery (argent -d DB outbox deliver)");
    match store.audit_verify().await? {
        AuditVerification::Intact { events, .. } => {
            println!("audit trail: {events} events, hash chain intact (argent -d DB audit verify)")
        }
        AuditVerification::Broken { seq, reason } => bail!("audit trail broken at {seq}: {reason}"),
    }
    if agent.model.name() == argent_agent::OFFLINE_MODEL_NAME {
        println!();
        println!(
            "The model above is argent's offline stand-in, not an LLM. To use a real one, point argent at any"
        );
        println!(
            "OpenAI-compatible endpoint: ARGENT_LLM_MODEL=gpt-4o-mini ARGENT_LLM_API_KEY=sk-… argent demo --model openai"
        );
        println!("(ARGENT_LLM_BASE_URL for Azure, vLLM, Ollama or llama.cpp).");
    }
    Ok(())
}
