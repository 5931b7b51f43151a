//! `argent calls`: call tasks the agent requested and the calls collectors log; `argent
//! cases`: the dispute lifecycle (verification sent, resolved, upheld). Every write acts as
//! the signed-in user (see `logincmd`) and is audited by the store.

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};

use argent_core::CaseStatus;
use argent_store::Store;

use crate::args;
use crate::logincmd::{AuthArgs, reviewer};

#[derive(Subcommand, Debug)]
pub enum CallsCommand {
    /// Call tasks (open ones unless --all), oldest first.
    List {
        /// One customer's only.
        #[arg(long)]
        customer: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Log a telephone call with a customer: an attempt, or a conversation (a call in
    /// which you spoke with them; Regulation F then presumes no call for 7 days).
    Log(LogArgs),
}

#[derive(Args, Debug)]
pub struct LogArgs {
    pub customer: String,
    /// You spoke with the customer.
    #[arg(long, conflicts_with = "attempt", required_unless_present = "attempt")]
    pub conversation: bool,
    /// You tried to reach the customer (no answer, voicemail, busy).
    #[arg(long)]
    pub attempt: bool,
    /// When the call was made (RFC 3339). Default: now.
    #[arg(long, value_parser = args::instant)]
    pub at: Option<DateTime<Utc>>,
    /// The call task this call answers (marked done).
    #[arg(long)]
    pub task: Option<String>,
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Subcommand, Debug)]
pub enum CasesCommand {
    /// Cases with owner, status, SLA age and invoices, oldest first (active ones unless
    /// --status).
    List(crate::taskscmd::CaseListArgs),
    /// Take a case: you own it and it is in progress.
    Take {
        id: String,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Record that the verification of a disputed debt was sent to the customer;
    /// collection on it may resume (15 U.S.C. 1692g(b)).
    Verification {
        id: String,
        /// What was sent, how and when.
        #[arg(long)]
        note: String,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Close a case: resolved (a dispute only after its verification), upheld (the
    /// customer was right; the disputed debt is never collected) or rejected (a payment
    /// claim or hardship request that did not stand).
    Resolve {
        id: String,
        #[arg(long, value_enum)]
        outcome: OutcomeArg,
        #[arg(long)]
        note: String,
        #[command(flatten)]
        auth: AuthArgs,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutcomeArg {
    Resolved,
    Upheld,
    Rejected,
}

fn check_note(note: &str) -> Result<()> {
    if note.trim().is_empty() {
        bail!("--note: say what was done (it is recorded in the audit trail)");
    }
    if note.chars().count() > argent_core::action::MAX_NOTE_LEN {
        bail!(
            "--note: longer than {} characters",
            argent_core::action::MAX_NOTE_LEN
        );
    }
    Ok(())
}

pub async fn calls(store: Store, now: DateTime<Utc>, command: CallsCommand) -> Result<()> {
    match command {
        CallsCommand::List { customer, all } => {
            let tasks = store.call_tasks(customer.as_deref(), !all).await?;
            if tasks.is_empty() {
                println!("no call tasks");
            }
            for t in tasks {
                println!(
                    "{}  {}  {}  not before {}  {}\n    reason: {}\n    script: {}",
                    t.id,
                    t.customer_id,
                    t.status.as_str(),
                    t.not_before
                        .map_or_else(|| "-".to_string(), |t| t.to_rfc3339()),
                    t.created_at.to_rfc3339(),
                    t.reason,
                    t.script
                );
            }
        }
        CallsCommand::Log(a) => {
            if let Some(n) = &a.note {
                check_note(n)?;
            }
            let who = reviewer(&store, &a.auth).await?;
            let at = match a.at {
                Some(t) if t > now => bail!("--at {t} is in the future"),
                Some(t) => t,
                None => now,
            };
            let log_id = format!(
                "call-log:{}:{}:{}",
                a.customer,
                who.name,
                at.timestamp_micros()
            );
            store
                .log_call(
                    &log_id,
                    &a.customer,
                    at,
                    a.conversation,
                    a.task.as_deref(),
                    &who.name,
                    a.note.as_deref(),
                )
                .await?;
            println!(
                "logged a call {} with {} at {} as {}",
                if a.conversation {
                    "conversation"
                } else {
                    "attempt"
                },
                a.customer,
                at.to_rfc3339(),
                who.name
            );
        }
    }
    Ok(())
}

pub async fn cases(store: Store, now: DateTime<Utc>, command: CasesCommand) -> Result<()> {
    let command = match command {
        CasesCommand::List(a) => return crate::taskscmd::cases_list(store, now, a).await,
        CasesCommand::Take { id, auth } => {
            return crate::taskscmd::cases_take(store, &id, &auth).await;
        }
        other => other,
    };
    let (id, to, note, auth) = match &command {
        CasesCommand::List(_) | CasesCommand::Take { .. } => bail!("internal: handled above"),
        CasesCommand::Verification { id, note, auth } => {
            (id, CaseStatus::VerificationSent, note, auth)
        }
        CasesCommand::Resolve {
            id,
            outcome,
            note,
            auth,
        } => (
            id,
            match outcome {
                OutcomeArg::Resolved => CaseStatus::Resolved,
                OutcomeArg::Upheld => CaseStatus::Upheld,
                OutcomeArg::Rejected => CaseStatus::Rejected,
            },
            note,
            auth,
        ),
    };
    check_note(note)?;
    let who = reviewer(&store, auth).await?;
    let case = store.advance_case(id, to, &who.name, Some(note)).await?;
    println!(
        "case {} ({}) is now {}",
        case.id,
        case.kind.as_str(),
        case.status.as_str()
    );
    Ok(())
}
