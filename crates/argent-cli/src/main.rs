//! `argent`: glue between the command line and argent's library crates.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};

use argent_core::demo::{DemoConfig, generate};
use argent_core::import::{parse, to_csv};
use argent_core::ledger::aging_report;
use argent_store::Store;

// First: its `print!`/`println!` replace std's in every module below.
#[macro_use]
mod output;

mod agentcmd;
mod alloc;
mod args;
mod auditcmd;
mod callscmd;
mod deskcmd;
mod docscmd;
mod evalcmd;
mod factscmd;
mod historycmd;
mod logincmd;
mod mailcmd;
mod mailsend;
mod modelcmd;
mod render;
mod runscmd;
mod servecmd;
mod simcmd;
mod taskscmd;
mod tickcmd;

use agentcmd::ModelArgs;

/// argent: an LLM agent for accounts-receivable collections, kept inside policy.
#[derive(Parser, Debug)]
#[command(name = "argent", version, about, long_about = None)]
struct Cli {
    /// Database URL: a SQLite file path or sqlite:PATH (the embedded default), or postgres://…
    #[arg(
        long,
        short = 'd',
        global = true,
        env = "ARGENT_DATABASE_URL",
        default_value = "argent.db"
    )]
    database: String,

    #[command(flatten)]
    models: ModelArgs,

    /// Act as if it were this instant (RFC 3339) instead of now: for replaying a day,
    /// demos and tests. Contact rules such as quiet hours are judged at this instant.
    #[arg(long, global = true, value_parser = args::instant)]
    now: Option<chrono::DateTime<chrono::Utc>>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Import an AR aging export (CSV): customers, invoices and payments, all or nothing.
    Import {
        /// The CSV file (columns: see README "Import format").
        file: PathBuf,
    },
    /// Account facts (validation notice, limitation, litigation, contact restrictions,
    /// the customer's offer, negotiation limits): import a facts file, show a customer's.
    Facts {
        #[command(subcommand)]
        command: factscmd::FactsCommand,
    },
    /// Write a realistic sample portfolio as an aging-export CSV.
    DemoData {
        /// How many customers (about 20 invoices each).
        #[arg(long, default_value_t = 200)]
        customers: usize,
        /// Seed for the generator; the same seed gives the same portfolio.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// The export date (YYYY-MM-DD); invoices span the year before it. Default: today (UTC).
        #[arg(long, value_parser = args::date)]
        as_of: Option<NaiveDate>,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Print the aging report (current, 1-30, 31-60, 61-90, 90+) and DSO per currency.
    Aging {
        /// Age as of this date (YYYY-MM-DD). Default: today (UTC).
        #[arg(long, value_parser = args::date)]
        as_of: Option<NaiveDate>,
        /// Days of credit sales DSO is measured over (1-3660).
        #[arg(long, default_value_t = 90, value_parser = args::period_days)]
        dso_days: u32,
        /// Show at most this many customers (largest balance first); 0 shows none.
        #[arg(long, default_value_t = 20)]
        top: usize,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Print each customer's risk segment (low / medium / high / in_review) and why.
    Segments {
        /// Assess as of this date (YYYY-MM-DD). Default: today (UTC).
        #[arg(long, value_parser = args::date)]
        as_of: Option<NaiveDate>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Policy documents: validate them, and run the policy tests beside them.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Run the agent for one account: an inbound email, or a dunning step.
    Run {
        #[arg(long)]
        customer: String,
        /// A dunning step, e.g. overdue_notice, pre_due_reminder, formal_demand.
        #[arg(long, conflicts_with = "inbound")]
        step: Option<String>,
        /// An inbound email: optional From:/Subject: lines, a blank line, the body.
        #[arg(long)]
        inbound: Option<PathBuf>,
    },
    /// Resume runs a killed process left unfinished (all of them, or one).
    Resume {
        #[arg(long)]
        run: Option<String>,
    },
    /// The agent's runs: list them (`--status needs_person`: the runs that could not finish,
    /// each a collector's task), show one's transcript.
    Runs {
        #[command(subcommand)]
        command: runscmd::RunsCommand,
    },
    /// The human approval queue.
    Approvals {
        #[command(subcommand)]
        command: agentcmd::ApprovalsCommand,
    },
    /// The tamper-evident audit trail: verify it (chain, signed checkpoints, rows against
    /// events), sign checkpoints, export it.
    Audit {
        #[command(subcommand)]
        command: auditcmd::AuditCommand,
    },
    /// Sign in as a user of this database for CLI decisions (approvals approve|edit|reject):
    /// the token goes to $ARGENT_TOKEN_FILE or ~/.config/argent/token (mode 0600).
    Login(logincmd::LoginArgs),
    /// Revoke the token `argent login` stored and remove its file.
    Logout,
    /// Inbound email: fetch the IMAP mailbox once, receive a raw message from a file,
    /// list what was received (exactly once each); process what is waiting, the unmatched
    /// queue, assign one to a customer.
    Mail {
        #[command(subcommand)]
        command: mailcmd::MailCommand,
    },
    /// Outbound email: queued by the agent, delivered by this step.
    Outbox {
        #[command(subcommand)]
        command: agentcmd::OutboxCommand,
    },
    /// Offline evals: run an eval set, compare two reports.
    Eval {
        #[command(subcommand)]
        command: evalcmd::EvalCommand,
    },
    /// Run the whole product on a fresh embedded database: a sample portfolio, the agent over
    /// overdue accounts and realistic inbound replies, then the desk (scheduler, worker,
    /// procedures) over simulated days with simulated debtors, and a summary. With the
    /// default `--model offline`: no network, no key. With `--model openai` the agent's
    /// runs call the endpoint ARGENT_LLM_* names (a key unless it is a local server); each
    /// run is printed as it ends, and one that fails does not stop the others. The demo's
    /// day is today and its agent runs are at 18:00 UTC, unless the global --now fixes both
    /// (how a demo recorded with --model record:FILE replays).
    Demo {
        /// Where the demo database goes (replaced if it exists).
        #[arg(long, default_value = "argent-demo.db")]
        db: PathBuf,
        #[arg(long, default_value_t = 60)]
        customers: usize,
        /// How many overdue accounts get a dunning run.
        #[arg(long, default_value_t = 4)]
        dunning: usize,
        /// Simulated days the desk then runs by itself (0: none).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(0..=730))]
        days: u32,
        /// Seed of the simulated debtors' behaviour.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// The last simulated days on which the simulated reviewer does not come in: what
        /// the agent held for a person then stays pending, a queue to work in the web
        /// (`argent -d DB serve`). 0: the reviewer approves every day.
        #[arg(long, default_value_t = 3)]
        leave_pending_days: u32,
    },
    /// Prompts, policies and procedures as versioned documents in the database.
    Docs {
        #[command(subcommand)]
        command: docscmd::DocsCommand,
    },
    /// Serve the web app (pages for every role) and the JSON API on a local address.
    Serve(servecmd::ServeArgs),
    /// Users of the web API and their roles.
    Users {
        #[command(subcommand)]
        command: servecmd::UsersCommand,
    },
    /// Call tasks the agent requested, and calls collectors log (attempts, conversations).
    Calls {
        #[command(subcommand)]
        command: callscmd::CallsCommand,
    },
    /// Cases: list them, take one, move a dispute along (verification sent, resolved,
    /// upheld), resolve or reject a payment claim or hardship request.
    Cases {
        #[command(subcommand)]
        command: callscmd::CasesCommand,
    },
    /// Everything that happened to a customer's account, newest first, with the audit
    /// events of each entry.
    Timeline {
        #[arg(long)]
        customer: String,
        /// Entries per page (1..=500).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this cursor (printed at the end of the previous page).
        #[arg(long)]
        after: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: historycmd::TimelineFormat,
    },
    /// The contact-history report for compliance (CSV or JSON Lines).
    Contacts {
        #[command(subcommand)]
        command: historycmd::ContactsCommand,
    },
    /// Run due procedure steps (work items): claims them with leases, heartbeats, runs the
    /// agent or the step's write; SIGTERM/SIGINT finishes or releases what it holds.
    Worker(deskcmd::WorkerCmd),
    /// Work items the scheduler enqueued: list them, count them by status.
    Work {
        #[command(subcommand)]
        command: deskcmd::WorkCommand,
    },
    /// Credit holds placed by procedure steps: export them for the ERP, clear one.
    CreditHolds {
        #[command(subcommand)]
        command: deskcmd::CreditHoldsCommand,
    },
    /// Agency referrals waiting for a manager, their documentation packages, decisions.
    Referrals {
        #[command(subcommand)]
        command: deskcmd::ReferralsCommand,
    },
    /// Tasks and escalations for people: list, show, assign (take), comment, close.
    Tasks {
        #[command(subcommand)]
        command: taskscmd::TasksCommand,
    },
    /// Promises to pay: due today or this week, open, broken, kept, partially kept.
    Promises {
        #[command(subcommand)]
        command: taskscmd::PromisesCommand,
    },
    /// The scheduler: plan every account against its dunning procedure (procedures/) and
    /// enqueue the steps due as work for `argent worker`, once each however often it runs.
    /// A database without procedure documents is seeded from procedures/ first. Use the
    /// global --now to plan as of another instant.
    Tick {
        /// Customers per page (one read per table and one transaction per page).
        #[arg(long, default_value_t = tickcmd::DEFAULT_TICK_BATCH)]
        batch: i64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// The dashboard's daily snapshot (aging, receivables, DSO, CEI, average days
    /// delinquent, promises; per currency and risk segment) of a date, kept once per date
    /// for the dashboard's trends. `argent tick` takes one for the last complete UTC day;
    /// this takes one for --as-of (default: that same day), or backfills every date from
    /// --from to --as-of. Dates that have a snapshot are left as they are.
    Snapshot {
        /// The date (YYYY-MM-DD). Default: yesterday (UTC), per the global --now.
        #[arg(long, value_parser = args::date)]
        as_of: Option<NaiveDate>,
        /// Backfill from this date (YYYY-MM-DD) to --as-of, inclusive.
        #[arg(long, value_parser = args::date)]
        from: Option<NaiveDate>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Dunning procedures: where accounts stand.
    Procedures {
        #[command(subcommand)]
        command: tickcmd::ProceduresCommand,
    },
    /// Model settings: `argent model show` prints what each role (agent, compliance check)
    /// would use and where each value came from (flag, environment, file, preset, default).
    Model {
        #[command(subcommand)]
        command: modelcmd::ModelCommand,
    },
    /// The prompt budget: `argent prompt size` prints the first request's tokens per
    /// jurisdiction and trigger.
    Prompt {
        #[command(subcommand)]
        command: modelcmd::PromptCommand,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Run the policy tests (policies/tests/*.toml): each case is an action, an account
    /// context and the decision expected; exits non-zero if any case fails.
    Test {
        /// The policies directory.
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
        /// The directory of test files (default: DIR/tests), e.g. the repository's
        /// policies/tests against policies from `argent docs export`.
        #[arg(long)]
        tests: Option<PathBuf>,
        /// Print only failures and the totals.
        #[arg(long)]
        quiet: bool,
    },
    /// Load and validate every policy document; errors name the file, key and problem.
    Check {
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
}

fn clock(now: Option<chrono::DateTime<chrono::Utc>>) -> argent_agent::Clock {
    now.map_or(argent_agent::Clock::System, argent_agent::Clock::Fixed)
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// mimalloc rather than the system allocator: the server allocates per request (JSON,
/// rows, policy contexts), and the API benchmark runs about a fifth faster with it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Eval {
        command: evalcmd::EvalCommand::Run { concurrency, .. },
    } = &cli.command
    {
        // An eval set: many short cases at once, each with its own in-memory store. Set
        // before the runtime's threads start (glibc fixes its arena limit when a thread
        // first needs an arena of its own). See `alloc` for what each costs and saves.
        alloc::purge_at_once();
        if *concurrency > alloc::MANY_CASES {
            alloc::one_c_heap();
        }
    }
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(cli_main(cli)),
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            ExitCode::from(2)
        }
    }
}

async fn cli_main(cli: Cli) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("ARGENT_LOG"))
        .with_writer(std::io::stderr)
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of standard output stopped early (`argent … | head`): not an error.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes on one line, `: `-separated, each said once: a cause whose text
/// its wrapper already shows (`model: <the model's error>`) is not repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Import { file } => {
            let data =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let parsed =
                parse(&data).with_context(|| format!("{} is not imported", file.display()))?;
            let store = open(&cli.database).await?;
            let stats = store
                .import_file(&parsed, &file.display().to_string())
                .await
                .with_context(|| {
                    format!(
                        "{} is not imported; the database is unchanged",
                        file.display()
                    )
                })?;
            println!(
                "imported {}: {} customers, {} invoices, {} payments",
                file.display(),
                stats.customers,
                stats.invoices,
                stats.payments
            );
        }
        Command::DemoData {
            customers,
            seed,
            as_of,
            out,
        } => {
            let cfg = DemoConfig {
                customers,
                seed,
                as_of: as_of.unwrap_or_else(today),
                ..Default::default()
            };
            let csv = to_csv(&generate(&cfg))?;
            match out {
                Some(path) => std::fs::write(&path, csv)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&csv)?;
                }
            }
        }
        Command::Aging {
            as_of,
            dso_days,
            top,
            format,
        } => {
            let store = open(&cli.database).await?;
            let ledger = store.ledger().await?;
            let report = aging_report(
                &ledger.invoices,
                &ledger.payments,
                as_of.unwrap_or_else(today),
                dso_days,
            )?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Format::Table => print!("{}", render::aging(&report, &ledger.customers, top)),
            }
        }
        Command::Segments { as_of, format } => {
            let store = open(&cli.database).await?;
            let ledger = store.ledger().await?;
            let rows = render::assess_all(&ledger, as_of.unwrap_or_else(today))?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Format::Table => print!("{}", render::segments(&rows)),
            }
        }
        Command::Policy { command } => policy(command)?,
        Command::Run {
            customer,
            step,
            inbound,
        } => {
            let store = open(&cli.database).await?;
            let clock = clock(cli.now);
            let agent = agentcmd::build_agent(store, &cli.models, clock).await?;
            let trigger = match (step, inbound) {
                (_, Some(path)) => agentcmd::read_inbound(&path, "", clock.now())?,
                (Some(step), None) => argent_agent::Trigger::Step { step },
                (None, None) => anyhow::bail!("give --step STEP or --inbound FILE"),
            };
            agentcmd::print_run(&agent.start(&customer, trigger).await?);
            agentcmd::finish_replays()?;
        }
        Command::Resume { run } => {
            let store = open(&cli.database).await?;
            let agent = agentcmd::build_agent(store.clone(), &cli.models, clock(cli.now)).await?;
            let ids: Vec<String> = match run {
                Some(id) => vec![id],
                None => {
                    let owner = format!("argent-{}", std::process::id());
                    let now = clock(cli.now).now();
                    let leased = store
                        .lease_runs(&owner, now, now + chrono::Duration::minutes(10), 100)
                        .await?;
                    leased.into_iter().map(|r| r.id).collect()
                }
            };
            if ids.is_empty() {
                println!("no unfinished runs");
            }
            for id in ids {
                agentcmd::print_run(&agent.resume(&id).await?);
            }
        }
        Command::Runs { command } => runscmd::runs(open(&cli.database).await?, command).await?,
        Command::Approvals { command } => {
            agentcmd::approvals(
                open(&cli.database).await?,
                &cli.models,
                clock(cli.now),
                command,
            )
            .await?
        }
        Command::Audit {
            command: auditcmd::AuditCommand::Keygen { out },
        } => auditcmd::keygen(&out)?,
        Command::Audit { command } => auditcmd::audit(open(&cli.database).await?, command).await?,
        Command::Login(args) => logincmd::login(&open(&cli.database).await?, args).await?,
        Command::Logout => logincmd::logout(&open(&cli.database).await?).await?,
        Command::Eval { command } => evalcmd::eval(command, &cli.models, &cli.database).await?,
        Command::Outbox { command } => {
            agentcmd::outbox(open(&cli.database).await?, command).await?
        }
        Command::Demo {
            db,
            customers,
            dunning,
            days,
            seed,
            leave_pending_days,
        } => {
            demo(
                &db,
                customers,
                dunning,
                (days, leave_pending_days),
                (seed, cli.now),
                &cli.models,
            )
            .await?;
            agentcmd::finish_replays()?;
        }
        Command::Serve(args) => {
            servecmd::serve(open(&cli.database).await?, &cli.models, cli.now, args).await?
        }
        Command::Facts { command } => factscmd::facts(open(&cli.database).await?, command).await?,
        Command::Docs { command } => docscmd::docs(&cli.database, command).await?,
        Command::Model { command } => modelcmd::model(command, &cli.models)?,
        Command::Prompt { command } => modelcmd::prompt(command, &cli.models)?,
        Command::Users { command } => servecmd::users(open(&cli.database).await?, command).await?,
        Command::Calls { command } => {
            let now = cli.now.unwrap_or_else(chrono::Utc::now);
            callscmd::calls(open(&cli.database).await?, now, command).await?
        }
        Command::Timeline {
            customer,
            limit,
            after,
            format,
        } => {
            let now = cli.now.unwrap_or_else(chrono::Utc::now);
            let store = open(&cli.database).await?;
            historycmd::timeline(&store, now, &customer, limit, after.as_deref(), format).await?
        }
        Command::Contacts { command } => {
            historycmd::contacts(&open(&cli.database).await?, command).await?
        }
        Command::Cases { command } => {
            let now = cli.now.unwrap_or_else(chrono::Utc::now);
            callscmd::cases(open(&cli.database).await?, now, command).await?
        }
        Command::Mail { command } => {
            mailcmd::mail(
                open(&cli.database).await?,
                &cli.models,
                clock(cli.now),
                command,
            )
            .await?
        }
        Command::Tasks { command } => {
            let now = cli.now.unwrap_or_else(chrono::Utc::now);
            taskscmd::tasks(open(&cli.database).await?, now, command).await?
        }
        Command::Promises { command } => {
            let now = cli.now.unwrap_or_else(chrono::Utc::now);
            taskscmd::promises(open(&cli.database).await?, now, command).await?
        }
        Command::Tick { batch, format } => {
            tickcmd::tick_cmd(
                open(&cli.database).await?,
                &cli.models,
                cli.now,
                batch,
                format,
            )
            .await?
        }
        Command::Snapshot {
            as_of,
            from,
            format,
        } => {
            tickcmd::snapshot_cmd(open(&cli.database).await?, cli.now, as_of, from, format).await?
        }
        Command::Procedures { command } => {
            tickcmd::procedures(open(&cli.database).await?, command, cli.now).await?
        }
        Command::Worker(cmd) => {
            deskcmd::worker(open(&cli.database).await?, &cli.models, cli.now, cmd).await?
        }
        Command::Work { command } => deskcmd::work(open(&cli.database).await?, command).await?,
        Command::CreditHolds { command } => {
            let now = cli.now.unwrap_or_else(chrono::Utc::now);
            deskcmd::credit_holds(open(&cli.database).await?, now, command).await?
        }
        Command::Referrals { command } => {
            let now = cli.now.unwrap_or_else(chrono::Utc::now);
            deskcmd::referrals(open(&cli.database).await?, now, command).await?
        }
    }
    Ok(())
}

fn policy(command: PolicyCommand) -> Result<()> {
    match command {
        PolicyCommand::Check { dir } => {
            let set = argent_policy::PolicySet::load_dir(&dir)?;
            for (id, p) in &set.policies {
                println!("ok  {id}: {} rules", p.rule_ids().len());
            }
        }
        PolicyCommand::Test { dir, tests, quiet } => {
            let tests = tests.unwrap_or_else(|| dir.join("tests"));
            let report = argent_policy::run_policy_tests_in(&dir, &tests)?;
            // Each report ends with its totals on a line of their own, the last line.
            if quiet {
                print!("{}", report.failures());
                println!("{:.0}% of cases expect allow", report.allow_percent());
                println!("{} passed, {} failed", report.passed(), report.failed());
            } else {
                println!("{report}");
            }
            if !report.success() {
                anyhow::bail!("{} policy test(s) failed", report.failed());
            }
        }
    }
    Ok(())
}

/// The morning after the simulation: replies from `n` overdue accounts that have nothing
/// waiting for a person yet, each a promise to pay too far out for the policy's promise
/// horizon or a request to pay in instalments, run through the agent at `at` (offline
/// model unless --model says otherwise). What the policy holds for a person stays pending:
/// the queue a collector, manager or admin works in `argent serve` after the demo.
async fn morning_mail(
    store: &Store,
    models: &ModelArgs,
    at: chrono::DateTime<chrono::Utc>,
    n: usize,
) -> Result<()> {
    use argent_core::ledger::invoice_states;
    let agent =
        agentcmd::build_agent(store.clone(), models, argent_agent::Clock::Fixed(at)).await?;
    let ledger = store.ledger().await?;
    let waiting: std::collections::BTreeSet<String> = store
        .approvals(Some(argent_store::ApprovalStatus::Pending), 10_000, 0)
        .await?
        .into_iter()
        .map(|i| i.customer_id)
        .collect();
    let today = at.date_naive();
    let mut sent = 0usize;
    let start_queue = store
        .count_approvals(Some(argent_store::ApprovalStatus::Pending))
        .await?;
    for c in &ledger.customers {
        if sent >= n {
            break;
        }
        if c.flags.cease_contact
            || c.flags.bankrupt
            || c.flags.attorney_represented
            || c.flags.disputed
            || waiting.contains(&c.id)
        {
            continue;
        }
        let Some(contact) = c.primary_contact() else {
            continue;
        };
        let Some(from) = contact.email.clone() else {
            continue;
        };
        let inv: Vec<_> = ledger
            .invoices
            .iter()
            .filter(|i| i.customer_id == c.id && !i.disputed)
            .cloned()
            .collect();
        let pay: Vec<_> = ledger
            .payments
            .iter()
            .filter(|p| p.customer_id == c.id)
            .cloned()
            .collect();
        let Some(oldest) = invoice_states(&inv, &pay, today)
            .into_iter()
            .filter(|s| s.is_overdue())
            .max_by_key(|s| s.days_past_due)
        else {
            continue;
        };
        let number = oldest.invoice.number.clone();
        let amount = argent_core::Money::new(oldest.open_minor, oldest.invoice.amount.currency);
        let (subject, body) = if sent.is_multiple_of(2) {
            let date = (at + chrono::Duration::days(75))
                .with_timezone(&c.time_zone)
                .format("%B %-d")
                .to_string();
            (
                format!("Invoice {number}"),
                format!(
                    "Hello,\n\nSorry about {number}. Money is tight until our next contract pays out. We will pay {} {} on {date}.\n\nRegards,\n{}",
                    amount.currency,
                    amount.amount_string(),
                    contact.name
                ),
            )
        } else {
            (
                "Payment plan".to_string(),
                format!(
                    "Hi,\n\nI can't pay {number} all at once at the moment. Could I pay it in monthly installments instead?\n\nThanks,\n{}",
                    contact.name
                ),
            )
        };
        let trigger = argent_agent::Trigger::Inbound {
            from,
            subject,
            body,
            received_at: at - chrono::Duration::minutes(30),
            message_id: None,
            references: Vec::new(),
            mail: None,
        };
        agent.start(&c.id, trigger).await?;
        sent += 1;
    }
    let end_queue = store
        .count_approvals(Some(argent_store::ApprovalStatus::Pending))
        .await?;
    println!(
        "the morning after ({}): {sent} customers wrote in (promises too far out, requests to pay in instalments); {} item(s) now wait for a person",
        at.format("%Y-%m-%d %H:%M UTC"),
        end_queue.saturating_sub(start_queue)
    );
    Ok(())
}

/// What waits for people at the end of the demo: pending approval items by tool and by the
/// least role that may approve them.
async fn print_queue(store: &Store) -> Result<()> {
    use std::collections::BTreeMap;
    let pending = store
        .approvals(Some(argent_store::ApprovalStatus::Pending), 10_000, 0)
        .await?;
    let mut by_tool: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_role: BTreeMap<String, usize> = BTreeMap::new();
    for item in &pending {
        *by_tool.entry(item.tool.clone()).or_default() += 1;
        *by_role.entry(item.required_role.clone()).or_default() += 1;
    }
    let join = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "approval queue at the end: {} pending (by tool: {}; by the role needed: {})",
        pending.len(),
        if by_tool.is_empty() {
            "-".into()
        } else {
            join(&by_tool)
        },
        if by_role.is_empty() {
            "-".into()
        } else {
            join(&by_role)
        },
    );
    Ok(())
}

async fn open(url: &str) -> Result<Store> {
    Store::open(url)
        .await
        .with_context(|| format!("opening database {url}"))
}

async fn demo(
    db: &std::path::Path,
    customers: usize,
    dunning: usize,
    (days, leave_pending_days): (u32, u32),
    (seed, now): (u64, Option<chrono::DateTime<chrono::Utc>>),
    models: &ModelArgs,
) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("removing old demo database {}", db.display()));
            }
        }
    }
    // `--now` fixes the demo's day and its agent runs' instant (so a recorded demo
    // replays on another day); otherwise today at 18:00 UTC.
    let as_of = now.map_or_else(today, |t| t.date_naive());
    let agent_clock = now.map_or_else(agentcmd::demo_clock, argent_agent::Clock::Fixed);
    let portfolio = generate(&DemoConfig {
        customers,
        as_of,
        ..Default::default()
    });
    let store = open(&db.display().to_string()).await?;
    let stats = store.import_portfolio(&portfolio, "argent demo").await?;
    println!(
        "argent demo: database {} with a sample portfolio of {} customers, {} invoices, {} payments",
        db.display(),
        stats.customers,
        stats.invoices,
        stats.payments
    );
    let ledger = store.ledger().await?;
    println!();
    print!(
        "{}",
        render::aging(
            &aging_report(&ledger.invoices, &ledger.payments, as_of, 90)?,
            &ledger.customers,
            10
        )
    );
    println!();
    let rows = render::assess_all(&ledger, as_of)?;
    print!("{}", render::segment_summary(&rows));
    println!();
    agentcmd::demo_agent_runs(store.clone(), models, agent_clock, dunning).await?;
    // Day 0's dashboard snapshot; the simulation takes one per simulated day after it.
    argent_agent::snapshot::take(&store, as_of, argent_worker::sim::SIM_ACTOR).await?;
    let mut last = as_of;
    if days > 0 {
        println!();
        let start = as_of
            .succ_opt()
            .ok_or_else(|| anyhow::anyhow!("the demo starts past the calendar"))?;
        last = start
            .checked_add_days(chrono::Days::new(u64::from(days) - 1))
            .unwrap_or(start);
        simcmd::simulate_days(
            store.clone(),
            models,
            db,
            start,
            days,
            seed,
            leave_pending_days,
        )
        .await?;
        if leave_pending_days > 0 {
            println!();
            let end = start
                .checked_add_days(chrono::Days::new(u64::from(days)))
                .and_then(|d| d.and_hms_opt(15, 0, 0))
                .map(|t| t.and_utc())
                .ok_or_else(|| anyhow::anyhow!("the demo ends past the calendar"))?;
            morning_mail(&store, models, end, 20).await?;
        }
    }
    println!();
    print_queue(&store).await?;
    println!();
    println!(
        "Explore it: argent -d {} aging | segments | approvals list | audit verify",
        db.display()
    );
    println!(
        "Work the queue in the browser: argent -d {db} users add NAME --role collector --password-stdin, then argent -d {db} serve",
        db = db.display()
    );
    println!(
        "The dashboard's trends have a snapshot per simulated day, {as_of} to {last}: \
         argent -d {} --now {last}T18:00:00Z serve, then /dashboard as a manager",
        db.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_printed_once_with_each_new_cause() {
        let model = argent_llm::LlmError::Config("ARGENT_LLM_MODEL is not set".into());
        let e = anyhow::Error::from(argent_agent::AgentError::Llm(model))
            .context("running the agent for C-1");
        let text = error_text(&e);
        assert_eq!(
            text,
            "running the agent for C-1: model: LLM configuration error: ARGENT_LLM_MODEL is not set"
        );
        assert_eq!(text.matches("ARGENT_LLM_MODEL").count(), 1, "{text}");
        // anyhow's own `{:#}` repeats the wrapped error: what this replaces.
        assert_eq!(format!("{e:#}").matches("ARGENT_LLM_MODEL").count(), 2);
    }
}
