//! The collections desk: `argent worker`, `argent work`, `argent credit-holds`,
//! `argent referrals`, and the worker and scheduler `argent serve --desk` runs in-process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};

use argent_agent::{Agent, Clock};
use argent_core::Role;
use argent_store::{ReferralStatus, Store, WorkFilter, WorkStatus};
use argent_worker::{
    LeaseConfig, Scheduler, StepExecutor, Worker, WorkerConfig, WorkerReport, default_owner,
};

use crate::agentcmd::{ModelArgs, build_agent};
use crate::logincmd::{AuthArgs, reviewer};

/// How a worker runs (`argent worker`, `argent serve --desk`).
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Work items run at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub concurrency: u16,
    /// How long a claim lasts without a heartbeat; a killed worker's items are taken over
    /// after it. Heartbeats come every third of it.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub lease_seconds: u64,
    /// Attempts before an item that keeps failing is marked failed.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..=100))]
    pub max_attempts: i64,
    /// The first retry's delay in seconds (doubling after each failure, at most 30 min).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=1800))]
    pub retry_seconds: u64,
    /// After SIGTERM/SIGINT, how long running items may take to finish before they are
    /// released for another worker.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub grace_seconds: u64,
    /// When SMTP is configured, how often the outbox is delivered (seconds).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub mail_every_seconds: u64,
}

impl WorkerArgs {
    pub fn config(&self, now: Option<chrono::DateTime<chrono::Utc>>) -> WorkerConfig {
        let mut c = WorkerConfig::new(default_owner());
        c.concurrency = usize::from(self.concurrency);
        c.lease = LeaseConfig {
            max_attempts: self.max_attempts,
            retry_base: Duration::from_secs(self.retry_seconds),
            ..LeaseConfig::default()
        }
        .with_lease(Duration::from_secs(self.lease_seconds));
        c.grace = Duration::from_secs(self.grace_seconds);
        c.kinds = Some(vec![argent_procedure::WORK_KIND.to_string()]);
        c.due_at = now;
        c
    }
}

/// `argent worker`.
#[derive(Args, Debug)]
pub struct WorkerCmd {
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Run what is due now and stop when nothing is left, instead of polling for ever.
    #[arg(long)]
    pub once: bool,
}

fn print_report(r: &WorkerReport) {
    println!(
        "argent worker: {} done, {} retried, {} failed, {} lost to another worker, {} released",
        r.done, r.retried, r.failed, r.lost, r.released
    );
}

/// `argent worker`: claims due procedure steps and runs them until SIGTERM/SIGINT (or,
/// with `--once`, until nothing is due).
pub async fn worker(
    store: Store,
    models: &ModelArgs,
    now: Option<chrono::DateTime<chrono::Utc>>,
    cmd: WorkerCmd,
) -> Result<()> {
    let clock = now.map_or(Clock::System, Clock::Fixed);
    let agent = Arc::new(build_agent(store.clone(), models, clock).await?);
    crate::agentcmd::compile_policies_in_background(&agent);
    let mut config = cmd.worker.config(now);
    config.once = cmd.once;
    let owner = config.owner.clone();
    let exec = Arc::new(StepExecutor::new(agent.clone()));
    let worker = Arc::new(Worker::new(store.clone(), exec, config).map_err(anyhow::Error::msg)?);
    let shutdown = argent_worker::shutdown_on_signals().context("installing signal handlers")?;
    eprintln!(
        "argent worker {owner}: concurrency {}, lease {} s (model: {})",
        cmd.worker.concurrency,
        cmd.worker.lease_seconds,
        agent.model.name()
    );
    let settings = crate::mailsend::mail_settings()?;
    let report = if cmd.once {
        let report = worker.run(shutdown).await;
        // Then what the run queued, once.
        if let Some(smtp) = &settings.smtp {
            let mailer = argent_mail::smtp::SmtpMailer::new(smtp)?;
            let d = agent
                .deliver_smtp(&mailer, &settings, &crate::mailsend::deliverer_name(), 500)
                .await?;
            eprintln!("argent worker: mail: {}", crate::mailsend::describe(&d));
        }
        report
    } else {
        // The mailbox reader, when IMAP is configured (with --once: `argent mail fetch`).
        let reader = {
            let agent = agent.clone();
            crate::mailcmd::spawn_reader_if_configured(
                store.clone(),
                Arc::new(move || agent.clone()),
                shutdown.clone(),
            )?
        };
        let a = agent.clone();
        let mail = crate::mailsend::spawn_delivery(
            Arc::new(move || a.clone()),
            settings,
            Duration::from_secs(cmd.worker.mail_every_seconds),
            shutdown.clone(),
        )?;
        let report = worker.run(shutdown).await;
        if let Some(reader) = reader {
            // The reader stops at the same signal; a stored batch is never cut in half.
            let _ = tokio::time::timeout(Duration::from_secs(30), reader).await;
        }
        if let Some(m) = mail {
            m.await.context("the mail delivery task")?;
        }
        report
    };
    print_report(&report);
    Ok(())
}

/// The scheduler `argent serve --desk` ticks: `argent tick`'s planner over the database's
/// active procedure documents.
pub fn desk_scheduler(store: &Store) -> Arc<dyn Scheduler> {
    Arc::new(argent_worker::ProcedureTick {
        store: store.clone(),
        batch: crate::tickcmd::DEFAULT_TICK_BATCH,
    })
}

/// Starts the in-process desk of `argent serve --desk`: the scheduler (if one is wired)
/// every `tick_every`, and a worker whose agent is the server's current one. Returns the
/// worker's task, which ends after `shutdown` turns true.
pub fn spawn_desk(
    store: Store,
    agent: Arc<dyn Fn() -> Arc<Agent> + Send + Sync>,
    args: &WorkerArgs,
    now: Option<chrono::DateTime<chrono::Utc>>,
    tick_every: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<WorkerReport>> {
    let config = args.config(now);
    eprintln!(
        "argent: desk on: worker {} (concurrency {}, lease {} s)",
        config.owner, args.concurrency, args.lease_seconds
    );
    eprintln!("argent: desk scheduler ticks every {tick_every:?}");
    tokio::spawn(argent_worker::run_scheduler(
        desk_scheduler(&store),
        tick_every,
        now,
        shutdown.clone(),
    ));
    crate::mailsend::spawn_delivery(
        agent.clone(),
        crate::mailsend::mail_settings()?,
        Duration::from_secs(args.mail_every_seconds),
        shutdown.clone(),
    )?;
    let exec = Arc::new(StepExecutor::with_source(
        agent,
        Arc::new(argent_worker::TaskAlertSink),
    ));
    let worker = Arc::new(Worker::new(store, exec, config).map_err(anyhow::Error::msg)?);
    Ok(tokio::spawn(worker.run(shutdown)))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WorkStatusArg {
    Queued,
    Leased,
    Done,
    Failed,
    Cancelled,
    All,
}

#[derive(Subcommand, Debug)]
pub enum WorkCommand {
    /// Work items (latest due first).
    List {
        #[arg(long, value_enum, default_value_t = WorkStatusArg::All)]
        status: WorkStatusArg,
        #[arg(long)]
        customer: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// How many items are in each status.
    Counts,
}

pub async fn work(store: Store, cmd: WorkCommand) -> Result<()> {
    match cmd {
        WorkCommand::List {
            status,
            customer,
            limit,
        } => {
            let status = match status {
                WorkStatusArg::Queued => Some(WorkStatus::Queued),
                WorkStatusArg::Leased => Some(WorkStatus::Leased),
                WorkStatusArg::Done => Some(WorkStatus::Done),
                WorkStatusArg::Failed => Some(WorkStatus::Failed),
                WorkStatusArg::Cancelled => Some(WorkStatus::Cancelled),
                WorkStatusArg::All => None,
            };
            let items = store
                .work_items(&WorkFilter {
                    status,
                    customer_id: customer.as_deref(),
                    kind: None,
                    limit,
                })
                .await?;
            for i in items {
                let step = i.payload["step"].as_str().unwrap_or("?");
                println!(
                    "{:<30} {:<10} {:<12} {:<22} due {} attempts {}{}",
                    i.id,
                    i.status,
                    i.customer_id,
                    step,
                    i.due_at.format("%Y-%m-%d %H:%M"),
                    i.attempts,
                    i.last_error.map(|e| format!("  ({e})")).unwrap_or_default()
                );
            }
        }
        WorkCommand::Counts => {
            for (s, n) in store.work_counts().await? {
                println!("{s:<10} {n}");
            }
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum CreditHoldsCommand {
    /// The credit holds for the ERP: active ones (or all with --all), newest first.
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// Cleared holds too.
        #[arg(long)]
        all: bool,
    },
    /// Clear a customer's credit hold, as a signed-in manager.
    Clear {
        customer: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        auth: AuthArgs,
    },
}

/// CSV columns of the credit-hold export.
pub const HOLD_CSV_HEADER: &str =
    "customer_id,status,reason,placed_by,placed_at,cleared_by,cleared_at,clear_reason,hold_id";

/// One CSV field: quoted when it holds a comma, quote or line break; a leading `=`, `+`,
/// `-` or `@` (a spreadsheet formula) is prefixed with `'`.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The credit holds as CSV, header first.
pub fn holds_csv(holds: &[argent_store::CreditHold]) -> String {
    let mut out = String::from(HOLD_CSV_HEADER);
    out.push('\n');
    for h in holds {
        let t = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.to_rfc3339()).unwrap_or_default()
        };
        let row = [
            csv_field(&h.customer_id),
            h.status.as_str().to_string(),
            csv_field(&h.reason),
            csv_field(&h.placed_by),
            h.placed_at.to_rfc3339(),
            csv_field(h.cleared_by.as_deref().unwrap_or("")),
            t(h.cleared_at),
            csv_field(h.clear_reason.as_deref().unwrap_or("")),
            csv_field(&h.id),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

pub async fn credit_holds(
    store: Store,
    now: chrono::DateTime<chrono::Utc>,
    cmd: CreditHoldsCommand,
) -> Result<()> {
    match cmd {
        CreditHoldsCommand::Export { format, all } => {
            let holds = store.credit_holds(!all).await?;
            match format {
                ExportFormat::Csv => print!("{}", holds_csv(&holds)),
                ExportFormat::Json => println!("{}", serde_json::to_string_pretty(&holds)?),
            }
        }
        CreditHoldsCommand::Clear {
            customer,
            reason,
            auth,
        } => {
            let who = reviewer(&store, &auth).await?;
            if who.role != Role::Manager {
                bail!(
                    "only a manager clears a credit hold; {} is {}",
                    who.name,
                    who.role
                );
            }
            let hold = store
                .clear_credit_hold(&customer, &who.name, &reason, now)
                .await?;
            println!("cleared credit hold {} on {customer}", hold.id);
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReferralStatusArg {
    Pending,
    Approved,
    Rejected,
    All,
}

#[derive(Subcommand, Debug)]
pub enum ReferralsCommand {
    /// Agency referrals, newest first.
    List {
        #[arg(long, value_enum, default_value_t = ReferralStatusArg::Pending)]
        status: ReferralStatusArg,
    },
    /// A referral's documentation package (JSON).
    Package { id: String },
    /// Approve a pending referral, as a signed-in manager.
    Approve {
        id: String,
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Reject a pending referral, as a signed-in manager.
    Reject {
        id: String,
        #[arg(long)]
        note: String,
        #[command(flatten)]
        auth: AuthArgs,
    },
}

pub async fn referrals(
    store: Store,
    now: chrono::DateTime<chrono::Utc>,
    cmd: ReferralsCommand,
) -> Result<()> {
    match cmd {
        ReferralsCommand::List { status } => {
            let status = match status {
                ReferralStatusArg::Pending => Some(ReferralStatus::Pending),
                ReferralStatusArg::Approved => Some(ReferralStatus::Approved),
                ReferralStatusArg::Rejected => Some(ReferralStatus::Rejected),
                ReferralStatusArg::All => None,
            };
            for r in store.referrals(status).await? {
                println!(
                    "{:<30} {:<9} {:<12} {}  {}",
                    r.id,
                    r.status,
                    r.customer_id,
                    r.created_at.format("%Y-%m-%d %H:%M"),
                    r.reason
                );
            }
        }
        ReferralsCommand::Package { id } => {
            let r = store.referral(&id).await?;
            println!("{}", serde_json::to_string_pretty(&r.package)?);
        }
        ReferralsCommand::Approve { id, note, auth } => {
            decide(&store, &id, true, note.as_deref(), &auth, now).await?
        }
        ReferralsCommand::Reject { id, note, auth } => {
            decide(&store, &id, false, Some(&note), &auth, now).await?
        }
    }
    Ok(())
}

async fn decide(
    store: &Store,
    id: &str,
    approve: bool,
    note: Option<&str>,
    auth: &AuthArgs,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let who = reviewer(store, auth).await?;
    if who.role != Role::Manager {
        bail!(
            "only a manager decides an agency referral; {} is {}",
            who.name,
            who.role
        );
    }
    let r = store
        .decide_referral(id, approve, &who.name, note, now)
        .await?;
    println!("referral {} {} by {}", r.id, r.status, who.name);
    Ok(())
}
