//! `argent mail`: receiving email (issue #14). `fetch` reads the configured IMAP mailbox
//! once; `receive` takes one raw message from a file (or standard input); `list` shows what
//! was received. The continuous reader runs inside `argent worker` and `argent serve
//! --desk` when IMAP is configured ([`spawn_reader_if_configured`]).
//!
//! IMAP is configured by environment variables (`argent_mail::imap::ENV_VARS`):
//! `ARGENT_IMAP_HOST` (turns the reader on), `ARGENT_IMAP_PORT`, `ARGENT_IMAP_TLS`
//! (implicit | starttls | plain, plain only to a loopback address), `ARGENT_IMAP_USER`,
//! `ARGENT_IMAP_PASSWORD` or `ARGENT_IMAP_PASSWORD_FILE`, `ARGENT_IMAP_MAILBOX` (INBOX),
//! `ARGENT_IMAP_CA_FILE`, `ARGENT_IMAP_BATCH`, `ARGENT_IMAP_POLL_SECONDS`,
//! `ARGENT_IMAP_IDLE_SECONDS`, `ARGENT_IMAP_IDLE` (on|off), `ARGENT_MAIL_MAX_BYTES`.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};

use argent_agent::mail_in::{assign_unmatched, process_pending};
use argent_agent::{Agent, Clock};
use argent_mail::imap::{FetchReport, ImapConfig};
use argent_mail::raw::{DEFAULT_MAX_BYTES, RawFacts, check_size};
use argent_store::{InboundStatus, MailSource, NewInbound, Store};

use crate::agentcmd::{ModelArgs, build_agent};
use crate::logincmd::{AuthArgs, reviewer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InboundStatusArg {
    New,
    Processed,
    Unmatched,
    Ignored,
    Failed,
    All,
}

#[derive(Subcommand, Debug)]
pub enum MailCommand {
    /// Fetch new messages from the configured IMAP mailbox once, store each once, print
    /// the counts (ARGENT_IMAP_* environment variables).
    Fetch {
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Receive one raw RFC 822 message from a file ("-": standard input), stored once by
    /// its Message-ID (else its hash), like the webhook does.
    Receive { file: PathBuf },
    /// Received messages, newest first.
    List {
        #[arg(long, value_enum, default_value_t = InboundStatusArg::All)]
        status: InboundStatusArg,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Process received messages waiting (`new`): parse, match, act (an agent run for a
    /// person's message from a matched customer). `fetch` and `receive` do this too.
    Process {
        /// The most messages to process.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// The unmatched-mail queue: messages that matched no customer, newest first.
    Unmatched {
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Assign unmatched message ID to CUSTOMER (audited), then process it as matched.
    Assign {
        id: String,
        customer: String,
        #[command(flatten)]
        auth: AuthArgs,
    },
}

/// Messages processed after each fetch or reader pass.
pub const PROCESS_BATCH: i64 = 200;

/// Processes what is waiting and prints one line (and the report as JSON with `json`).
async fn process_now(store: &Store, models: &ModelArgs, clock: Clock, limit: i64) -> Result<()> {
    let agent = build_agent(store.clone(), models, clock).await?;
    let r = process_pending(&agent, limit).await?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

fn imap_config() -> Result<ImapConfig> {
    match ImapConfig::from_env()? {
        Some(c) => Ok(c),
        None => bail!(
            "no IMAP mailbox configured: set ARGENT_IMAP_HOST, ARGENT_IMAP_USER and \
             ARGENT_IMAP_PASSWORD (see `argent mail --help` and the README)"
        ),
    }
}

/// `ARGENT_MAIL_MAX_BYTES`: the largest raw message received (default 10 MiB).
pub(crate) fn max_bytes() -> Result<usize> {
    match std::env::var("ARGENT_MAIL_MAX_BYTES") {
        Ok(v) if !v.is_empty() => {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n >= 1024)
                .with_context(|| {
                    format!("ARGENT_MAIL_MAX_BYTES: '{v}' is not a size of at least 1024 bytes")
                })
        }
        _ => Ok(DEFAULT_MAX_BYTES),
    }
}

pub async fn mail(store: Store, models: &ModelArgs, clock: Clock, cmd: MailCommand) -> Result<()> {
    match cmd {
        MailCommand::Process { limit } => process_now(&store, models, clock, limit).await?,
        MailCommand::Unmatched { limit, json } => {
            let items = store.inbound_list(Some("unmatched"), limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                for m in &items {
                    println!(
                        "{}  {}  {}  {}  {}",
                        m.id,
                        m.received_at.to_rfc3339(),
                        m.from_addr.as_deref().unwrap_or("-"),
                        m.kind.as_deref().unwrap_or("-"),
                        m.subject.as_deref().unwrap_or("-"),
                    );
                }
                println!("{} unmatched message(s)", items.len());
            }
        }
        MailCommand::Assign { id, customer, auth } => {
            let who = reviewer(&store, &auth).await?;
            let agent = build_agent(store.clone(), models, clock).await?;
            let r = assign_unmatched(&agent, &id, &customer, &who).await?;
            let m = store.inbound_mail(&id).await?;
            println!(
                "{id}: {} (customer {}, matched by {})",
                m.status,
                m.customer_id.as_deref().unwrap_or("-"),
                m.matched_by.as_deref().unwrap_or("-")
            );
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        MailCommand::Fetch { json } => {
            let cfg = imap_config()?;
            let report = argent_worker::mail::fetch_once(&store, &cfg)
                .await
                .with_context(|| format!("fetching {} on {}", cfg.mailbox, cfg.host))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "argent mail fetch: {} {}: {} fetched, {} stored, {} already there, {} refused (over the size cap){}; checkpoint UIDVALIDITY {} UID {}",
                    cfg.host,
                    report.mailbox,
                    report.fetched,
                    report.stored,
                    report.duplicates,
                    report.refused,
                    if report.restarted {
                        ", read from UID 1"
                    } else {
                        ""
                    },
                    report.uidvalidity,
                    report.last_uid
                );
            }
        }
        MailCommand::Receive { file } => {
            let max = max_bytes()?;
            let mut raw = Vec::new();
            if file.as_os_str() == "-" {
                std::io::stdin()
                    .lock()
                    .take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
                    .read_to_end(&mut raw)
                    .context("reading the message from standard input")?;
            } else {
                let f = std::fs::File::open(&file)
                    .with_context(|| format!("opening {}", file.display()))?;
                f.take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
                    .read_to_end(&mut raw)
                    .with_context(|| format!("reading {}", file.display()))?;
            }
            check_size(&raw, max).with_context(|| format!("{}", file.display()))?;
            let facts = RawFacts::of(&raw);
            let r = store
                .receive_inbound(
                    MailSource::Cli,
                    &NewInbound {
                        dedupe_key: facts.dedupe_key.clone(),
                        message_id: facts.message_id,
                        raw,
                        uid: None,
                        refused: None,
                    },
                )
                .await?;
            if r.created {
                println!("received {} ({})", r.id, facts.dedupe_key);
            } else {
                println!("already received as {} ({})", r.id, facts.dedupe_key);
            }
        }
        MailCommand::List { status, limit } => {
            let status = match status {
                InboundStatusArg::New => Some(InboundStatus::New),
                InboundStatusArg::Processed => Some(InboundStatus::Processed),
                InboundStatusArg::Unmatched => Some(InboundStatus::Unmatched),
                InboundStatusArg::Ignored => Some(InboundStatus::Ignored),
                InboundStatusArg::Failed => Some(InboundStatus::Failed),
                InboundStatusArg::All => None,
            };
            for m in store.inbound_messages(status, limit).await? {
                println!(
                    "{:<36} {:<9} {:<7} {:>9} B {} {}{}",
                    m.id,
                    m.status,
                    m.source,
                    m.size,
                    m.received_at.format("%Y-%m-%d %H:%M:%S"),
                    m.message_id.as_deref().unwrap_or("(no Message-ID)"),
                    m.error.map(|e| format!("  [{e}]")).unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// After the reader stored new mail: hand it to processing.
///
/// After a reader pass stored mail: process what is waiting (parse, match, act), with the
/// agent current at that moment. An error is logged; the messages stay `new` and the next
/// pass (or `argent mail process`) takes them.
async fn after_pass(agent: Arc<Agent>, report: FetchReport) {
    match process_pending(&agent, PROCESS_BATCH).await {
        Ok(r) => tracing::info!(
            mailbox = %report.mailbox,
            stored = report.stored,
            processed = ?r,
            "new mail stored and processed"
        ),
        Err(e) => tracing::warn!(
            mailbox = %report.mailbox,
            stored = report.stored,
            "new mail stored; processing failed: {e}"
        ),
    }
}

/// Starts the continuous IMAP reader when `ARGENT_IMAP_HOST` is set (an error in the
/// other variables is an error here, at start, not a silent reader that is off).
pub fn spawn_reader_if_configured(
    store: Store,
    agent: Arc<dyn Fn() -> Arc<Agent> + Send + Sync>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(cfg) = ImapConfig::from_env()? else {
        return Ok(None);
    };
    eprintln!(
        "argent: reading mailbox {} on {}:{} ({:?}, {} at a time, {})",
        cfg.mailbox,
        cfg.host,
        cfg.port,
        cfg.tls,
        cfg.batch,
        if cfg.use_idle {
            "IDLE where offered"
        } else {
            "polling"
        }
    );
    Ok(Some(argent_worker::mail::spawn_reader(
        store,
        cfg,
        move |report| after_pass(agent(), report),
        shutdown,
    )))
}
