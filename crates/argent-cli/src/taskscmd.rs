//! `argent tasks`: the tasks and escalations inbox (list, show, assign / take, comment,
//! close); `argent cases list` and `argent cases take`; `argent promises list`. Listing
//! reads the database directly (whoever holds it sees every task, as `argent calls list`
//! does); every write acts as the signed-in user (see `logincmd`) with that user's role,
//! checked by the store (`argent_core::check_task_act`) and audited.

use anyhow::{Result, bail};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use clap::{Args, Subcommand, ValueEnum};

use argent_core::task::{promise_standing, week_of};
use argent_core::{CaseKind, CaseStatus, Money, PromiseStanding, Role, TaskStatus};
use argent_store::{CaseFilter, Store, TaskActor, TaskFilter};

use crate::args;
use crate::logincmd::{AuthArgs, reviewer};

/// Days after a promised date before an unpaid promise counts as broken (the server's
/// `PROMISE_GRACE_DAYS`).
const PROMISE_GRACE_DAYS: i64 = 3;
const MAX_TEXT: usize = 2000;

#[derive(Subcommand, Debug)]
pub enum TasksCommand {
    /// Tasks, soonest due first (open and in progress unless --status).
    List(ListArgs),
    /// One task with its comments.
    Show { id: String },
    /// Assign a task to a user (default: yourself, taking it).
    Assign {
        id: String,
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Comment on a task.
    Comment {
        id: String,
        #[arg(long)]
        body: String,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Close a task with its outcome (done, or --cancel).
    Close {
        id: String,
        #[arg(long)]
        outcome: String,
        #[arg(long)]
        cancel: bool,
        #[command(flatten)]
        auth: AuthArgs,
    },
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only this role's tasks (collector, manager, compliance, admin).
    #[arg(long)]
    pub role: Option<Role>,
    #[arg(long)]
    pub assignee: Option<String>,
    #[arg(long)]
    pub customer: Option<String>,
    /// open, in_progress, done, cancelled; or `all`.
    #[arg(long)]
    pub status: Option<String>,
    /// Only tasks due at or before this instant (RFC 3339).
    #[arg(long, value_parser = args::instant)]
    pub due_before: Option<DateTime<Utc>>,
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

#[derive(Args, Debug)]
pub struct CaseListArgs {
    /// dispute, hardship, payment_claimed, question, other.
    #[arg(long)]
    pub kind: Option<CaseKind>,
    /// A status, or `all` (default: open, in progress and verification sent).
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub customer: Option<String>,
    #[arg(long)]
    pub owner: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DueArg {
    Today,
    Week,
    Open,
    Broken,
    Kept,
    Partial,
    Cancelled,
    All,
}

#[derive(Subcommand, Debug)]
pub enum PromisesCommand {
    /// The promise tracker.
    List {
        #[arg(long, value_enum, default_value = "open")]
        due: DueArg,
        /// Your time zone, for "today" and "this week" (IANA; default UTC).
        #[arg(long, default_value = "UTC")]
        tz: String,
        #[arg(long)]
        customer: Option<String>,
    },
}

fn check_text(flag: &str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        bail!("{flag}: must not be empty (it is recorded in the audit trail)");
    }
    if text.chars().count() > MAX_TEXT {
        bail!("{flag}: longer than {MAX_TEXT} characters");
    }
    Ok(())
}

async fn actor(store: &Store, auth: &AuthArgs) -> Result<TaskActor> {
    let who = reviewer(store, auth).await?;
    Ok(TaskActor {
        name: who.name,
        role: who.role,
    })
}

fn print_task(t: &argent_store::Task, now: DateTime<Utc>) {
    let due = t.due_at.map_or_else(
        || "no due time".to_string(),
        |d| {
            let late = if t.status.is_open() && d < now {
                " OVERDUE"
            } else {
                ""
            };
            format!("due {}{late}", d.to_rfc3339())
        },
    );
    println!(
        "{}  {}  {}  {}  {}  {}  {}\n    {}",
        t.id,
        t.kind.as_str(),
        t.customer_id,
        t.owner_role.as_str(),
        t.assignee.as_deref().unwrap_or("unassigned"),
        t.status.as_str(),
        due,
        t.title
    );
}

pub async fn tasks(store: Store, now: DateTime<Utc>, command: TasksCommand) -> Result<()> {
    match command {
        TasksCommand::List(a) => {
            let statuses = match a.status.as_deref() {
                None => vec![TaskStatus::Open, TaskStatus::InProgress],
                Some("all") => Vec::new(),
                Some(s) => vec![s.parse::<TaskStatus>().map_err(anyhow::Error::msg)?],
            };
            if !(1..=5000).contains(&a.limit) {
                bail!("--limit must be between 1 and 5000");
            }
            let list = store
                .tasks(&TaskFilter {
                    owner_role: a.role,
                    assignee: a.assignee,
                    customer_id: a.customer,
                    statuses,
                    due_before: a.due_before,
                    visible_to: None,
                    limit: Some(a.limit),
                    offset: 0,
                })
                .await?;
            if list.is_empty() {
                println!("no tasks");
            }
            for t in &list {
                print_task(t, now);
            }
        }
        TasksCommand::Show { id } => {
            let t = store.task(&id).await?;
            print_task(&t, now);
            println!(
                "    source: {}\n    created: {}",
                t.source,
                t.created_at.to_rfc3339()
            );
            if let Some(o) = &t.outcome {
                println!("    outcome: {o}");
            }
            println!("\n{}\n", t.body);
            for c in store.task_comments(&id).await? {
                println!("[{}] {}: {}", c.created_at.to_rfc3339(), c.author, c.body);
            }
        }
        TasksCommand::Assign { id, to, auth } => {
            let who = actor(&store, &auth).await?;
            let to = to.unwrap_or_else(|| who.name.clone());
            if to != who.name {
                let works = store
                    .user(&to)
                    .await?
                    .is_some_and(|u| u.role != "evaluator");
                if !works {
                    bail!("--to: there is no user '{to}' who works the queues");
                }
            }
            let t = store.assign_task(&id, &who, &to).await?;
            println!(
                "task {} is assigned to {} ({})",
                t.id,
                to,
                t.status.as_str()
            );
        }
        TasksCommand::Comment { id, body, auth } => {
            check_text("--body", &body)?;
            let who = actor(&store, &auth).await?;
            store.comment_task(&id, &who, body.trim()).await?;
            println!("commented on task {id} as {}", who.name);
        }
        TasksCommand::Close {
            id,
            outcome,
            cancel,
            auth,
        } => {
            check_text("--outcome", &outcome)?;
            let who = actor(&store, &auth).await?;
            let status = if cancel {
                TaskStatus::Cancelled
            } else {
                TaskStatus::Done
            };
            let t = store.close_task(&id, &who, status, outcome.trim()).await?;
            println!("task {} is {}", t.id, t.status.as_str());
        }
    }
    Ok(())
}

/// `argent cases list`.
pub async fn cases_list(store: Store, now: DateTime<Utc>, a: CaseListArgs) -> Result<()> {
    let statuses = match a.status.as_deref() {
        None => vec![
            CaseStatus::Open,
            CaseStatus::InProgress,
            CaseStatus::VerificationSent,
        ],
        Some("all") => Vec::new(),
        Some(s) => vec![s.parse::<CaseStatus>().map_err(anyhow::Error::msg)?],
    };
    let list = store
        .case_list(&CaseFilter {
            kinds: a.kind.into_iter().collect(),
            statuses,
            customer_id: a.customer,
            owner: a.owner,
            limit: Some(5000),
            offset: 0,
        })
        .await?;
    if list.is_empty() {
        println!("no cases");
    }
    for l in list {
        let c = &l.case;
        let hours = (now - c.opened_at).num_hours().max(0);
        println!(
            "{}  {}  {}  {}  owner {}  age {} d {} h  invoices [{}]\n    {}",
            c.id,
            c.kind.as_str(),
            c.customer_id,
            c.status.as_str(),
            l.owner.as_deref().unwrap_or("-"),
            hours / 24,
            hours % 24,
            c.invoice_numbers.join(", "),
            c.summary
        );
    }
    Ok(())
}

/// `argent cases take`.
pub async fn cases_take(store: Store, id: &str, auth: &AuthArgs) -> Result<()> {
    let who = reviewer(&store, auth).await?;
    let c = store.take_case(id, &who.name, &who.name).await?;
    println!(
        "case {} ({}) is in progress, owned by {}",
        c.id,
        c.kind.as_str(),
        who.name
    );
    Ok(())
}

pub async fn promises(store: Store, now: DateTime<Utc>, command: PromisesCommand) -> Result<()> {
    let PromisesCommand::List { due, tz, customer } = command;
    let zone: Tz = tz
        .parse()
        .map_err(|_| anyhow::anyhow!("--tz: '{tz}' is not an IANA time zone"))?;
    let today: NaiveDate = now.with_timezone(&zone).date_naive();
    let (week_start, week_end) = week_of(today);
    let promises = store.promises(customer.as_deref()).await?;
    let payments = store.payments(customer.as_deref()).await?;
    let mut shown = 0;
    for p in &promises {
        let j = promise_standing(p, &payments, today, PROMISE_GRACE_DAYS);
        let open = j.standing == PromiseStanding::Open;
        let keep = match due {
            DueArg::Today => open && p.promised_date == today,
            DueArg::Week => open && p.promised_date >= week_start && p.promised_date <= week_end,
            DueArg::Open => open,
            DueArg::Broken => j.standing == PromiseStanding::Broken,
            DueArg::Kept => j.standing == PromiseStanding::Kept,
            DueArg::Partial => j.standing == PromiseStanding::PartiallyKept,
            DueArg::Cancelled => j.standing == PromiseStanding::Cancelled,
            DueArg::All => true,
        };
        if !keep {
            continue;
        }
        shown += 1;
        let received = i64::try_from(j.received_minor).map_or_else(
            |_| format!("{} minor units", j.received_minor),
            |m| Money::new(m, p.amount.currency).to_string(),
        );
        let deadline = p
            .promised_date
            .checked_add_signed(Duration::days(PROMISE_GRACE_DAYS))
            .unwrap_or(p.promised_date);
        println!(
            "{}  {}  {}  by {} (deadline {})  received {}  {}",
            p.id,
            p.customer_id,
            p.amount,
            p.promised_date,
            deadline,
            received,
            j.standing.as_str()
        );
    }
    if shown == 0 {
        println!("no promises ({} in {})", today, zone.name());
    }
    Ok(())
}
