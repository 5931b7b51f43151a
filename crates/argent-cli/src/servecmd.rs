//! `argent serve` (the web server) and `argent users` (who may sign in to it).

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use argent_agent::Clock;
use argent_server::{AppState, ServerConfig, UserRole};
use argent_store::Store;

use crate::agentcmd::{ModelArgs, build_agent};

/// The longest token or session lifetime, in hours: a year. (Unbounded, an expiry past what
/// a date can hold made every sign-in panic.)
const MAX_TTL_HOURS: i64 = 24 * 365;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// How long a bearer token from POST /api/login stays valid, in hours (at most a year).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=MAX_TTL_HOURS))]
    pub token_ttl_hours: u32,
    /// How long a browser session lasts, in hours (at most a year).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=MAX_TTL_HOURS))]
    pub session_ttl_hours: u32,
    /// Mark the session cookie Secure (when the server is reached over HTTPS).
    #[arg(long)]
    pub secure_cookies: bool,
    /// The IP address of a reverse proxy in front of the server (repeatable): for requests
    /// from it, the client address the sign-in lockout is keyed on comes from
    /// X-Forwarded-For. Without it the header is ignored and the TCP peer is the client.
    #[arg(long = "trusted-proxy", value_name = "IP")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The eval set the web runs on drafts and active documents (offline model).
    #[arg(long, default_value = "evals/core")]
    pub evals: PathBuf,
    /// Run only the eval cases this selects (`tag:NAME` or an id substring,
    /// comma-separated), to keep web eval runs short.
    #[arg(long)]
    pub eval_filter: Option<String>,
    /// Days of audited decisions a policy draft's activation gate judges again (its impact
    /// replay; the gate page's `?days=` overrides it).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub impact_days: u32,
    /// Sign audit checkpoints with this key (from `argent audit keygen`) into
    /// --checkpoint-file, at start and then every --checkpoint-every when the chain moved.
    #[arg(long, requires = "checkpoint_file")]
    pub checkpoint_key: Option<PathBuf>,
    /// The file checkpoints are appended to (keep it out of the database's reach).
    #[arg(long, requires = "checkpoint_key")]
    pub checkpoint_file: Option<PathBuf>,
    /// How often to check whether the chain moved: 60s, 5m, 1h, or seconds.
    #[arg(long, default_value = "60s", value_parser = crate::auditcmd::parse_every)]
    pub checkpoint_every: std::time::Duration,
    /// Run the collections desk in this process too: the scheduler every --tick-every and a
    /// worker (--concurrency, --lease-seconds, …) over the server's current agent, so one
    /// command runs everything on a single machine. SIGTERM/SIGINT stop the worker
    /// gracefully, then the server.
    #[arg(long)]
    pub desk: bool,
    /// How often the in-process scheduler ticks: 60s, 5m, 1h, or seconds.
    #[arg(long, default_value = "60s", value_parser = crate::auditcmd::parse_every, requires = "desk")]
    pub tick_every: std::time::Duration,
    #[command(flatten)]
    pub worker: crate::deskcmd::WorkerArgs,
    /// The model's price per 1,000 tokens, for the dashboard's estimated cost: a currency
    /// code and a decimal, e.g. "USD 0.002" (at most 6 decimals). Without it the dashboard
    /// shows tokens only.
    #[arg(long, env = "ARGENT_TOKEN_PRICE", value_parser = parse_token_price)]
    pub token_price: Option<argent_core::format::TokenPrice>,
}

fn parse_token_price(s: &str) -> Result<argent_core::format::TokenPrice, String> {
    s.parse()
        .map_err(|e: argent_core::format::TokenPriceError| e.to_string())
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Add a user. The password is read from the first line of standard input.
    Add {
        name: String,
        /// collector, manager, compliance, evaluator or admin.
        #[arg(long, value_parser = parse_role)]
        role: UserRole,
        /// Read the password from standard input (the only way to give one).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users, their roles and whether they are disabled.
    List,
    /// Disable a user: signed out everywhere, no sign-in, no token accepted (audited).
    /// Refused for the last enabled admin.
    Disable { name: String },
    /// Let a disabled user sign in again (audited).
    Enable { name: String },
    /// Give a user another role (audited). Refused when it would leave no enabled admin.
    Role {
        name: String,
        /// collector, manager, compliance, evaluator or admin.
        #[arg(value_parser = parse_role)]
        role: UserRole,
    },
    /// Give a user a new password, read from the first line of standard input; they are
    /// signed out everywhere (audited).
    ResetPassword {
        name: String,
        /// Read the password from standard input (the only way to give one).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lift a user's sign-in lockout from every address (audited); a running server sees it
    /// at the user's next refused attempt.
    Unlock { name: String },
}

/// Who the audit trail names for a change made with `argent users`: `cli:` and the
/// operating-system user running it (whoever can open the database administers it).
pub(crate) fn cli_actor() -> String {
    let who = std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "unknown".into());
    format!("cli:{}", who.trim())
}

fn read_password_line(password_stdin: bool) -> Result<String> {
    if !password_stdin {
        bail!("give --password-stdin and the password on standard input");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn parse_role(s: &str) -> Result<UserRole, String> {
    s.parse()
}

pub async fn serve(
    store: Store,
    models: &ModelArgs,
    now: Option<chrono::DateTime<chrono::Utc>>,
    args: ServeArgs,
) -> Result<()> {
    let clock = now.map_or(Clock::System, Clock::Fixed);
    let agent = Arc::new(build_agent(store, models, clock).await?);
    crate::agentcmd::compile_policies_in_background(&agent);
    let inbound_token = inbound_token()?;
    if inbound_token.is_some() {
        eprintln!("argent: POST /api/inbound is on (ARGENT_INBOUND_TOKEN)");
    }
    let config = ServerConfig {
        inbound_token,
        inbound_max_bytes: crate::mailcmd::max_bytes()?,
        process_inbound: true,
        token_ttl: chrono::Duration::hours(i64::from(args.token_ttl_hours)),
        session_ttl: chrono::Duration::hours(i64::from(args.session_ttl_hours)),
        secure_cookies: args.secure_cookies,
        trusted_proxies: args.trusted_proxies.clone(),
        evals_dir: args.evals.is_dir().then(|| args.evals.clone()),
        eval_filter: args.eval_filter.clone(),
        policy_tests_dir: Some(crate::agentcmd::data_dir(&models.policies).join("tests"))
            .filter(|d| d.is_dir()),
        impact_days: args.impact_days,
        token_price: args.token_price,
        ..ServerConfig::default()
    };
    match &config.policy_tests_dir {
        Some(dir) => eprintln!(
            "argent: policy drafts must pass the policy tests in {} (and their own) to be activated",
            dir.display()
        ),
        None => eprintln!(
            "argent: no policy tests at {}/tests; a policy draft is gated by the tests it carries only",
            models.policies.display()
        ),
    }
    if config.evals_dir.is_none() {
        eprintln!(
            "argent: no eval set at {}; eval runs from the web are off",
            args.evals.display()
        );
    }
    // Eval runs execute inside the server process; any still `running` were cut off when
    // the last server stopped. (One server per database is the supported setup.)
    for run in agent.store.eval_runs(1000, 0).await? {
        if run.status == argent_store::EvalRunStatus::Running {
            agent
                .store
                .fail_eval_run(&run.id, "the server stopped before the run finished")
                .await?;
            eprintln!(
                "argent: eval run {} was cut off by a restart; marked failed",
                run.id
            );
        }
    }
    if let (Some(key), Some(file)) = (&args.checkpoint_key, &args.checkpoint_file) {
        crate::auditcmd::spawn_checkpoints(agent.store.clone(), key, file, args.checkpoint_every)
            .await?;
    }
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    let addr = listener.local_addr()?;
    println!(
        "argent: serving on http://{addr} (model: {})",
        agent.model.name()
    );
    let state = AppState::new(agent.clone(), config);
    if !args.desk {
        argent_server::serve(listener, state)
            .await
            .context("serving")?;
        return Ok(());
    }
    // The scheduler plans with the database's procedure documents: a database seeded
    // before procedures existed gets them from procedures/ (as `argent tick` does).
    crate::tickcmd::seed_procedures(&agent.store, models).await?;
    let handle = state.agent.clone();
    let shutdown = argent_worker::shutdown_on_signals().context("installing signal handlers")?;
    let desk = crate::deskcmd::spawn_desk(
        agent.store.clone(),
        Arc::new(move || handle.current()),
        &args.worker,
        now,
        args.tick_every,
        shutdown.clone(),
    )?;
    let reader = crate::mailcmd::spawn_reader_if_configured(
        agent.store.clone(),
        {
            let handle = state.agent.clone();
            Arc::new(move || handle.current())
        },
        shutdown.clone(),
    )?;
    let mut stop = shutdown.clone();
    tokio::select! {
        r = argent_server::serve(listener, state) => r.context("serving")?,
        _ = stop.wait_for(|s| *s) => {
            let report = desk.await.context("the desk's worker")?;
            if let Some(reader) = reader {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(30), reader).await;
            }
            println!(
                "argent: desk stopped: {} done, {} retried, {} failed, {} lost, {} released",
                report.done, report.retried, report.failed, report.lost, report.released
            );
        }
    }
    Ok(())
}

/// The shortest inbound webhook token accepted.
const MIN_INBOUND_TOKEN: usize = 24;

/// `ARGENT_INBOUND_TOKEN`: the bearer token of `POST /api/inbound` (from the environment
/// only, so it is not in the process list); unset: the webhook refuses everything.
fn inbound_token() -> Result<Option<String>> {
    match std::env::var("ARGENT_INBOUND_TOKEN") {
        Ok(t) if t.is_empty() => Ok(None),
        Ok(t) if t.len() < MIN_INBOUND_TOKEN => bail!(
            "ARGENT_INBOUND_TOKEN is {} characters; use at least {MIN_INBOUND_TOKEN} random ones",
            t.len()
        ),
        Ok(t) => Ok(Some(t)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => bail!("ARGENT_INBOUND_TOKEN: {e}"),
    }
}

pub async fn users(store: Store, cmd: UsersCommand) -> Result<()> {
    use argent_store::UserChange;
    let actor = cli_actor();
    let err = |e: argent_server::AppError| anyhow::anyhow!("{e}");
    let change = |name: String, what: UserChange, done: &'static str| {
        let store = store.clone();
        let actor = actor.clone();
        async move {
            let u = store
                .change_user(&name, &what, &actor)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{} ({}) {done}", u.name, u.role);
            anyhow::Ok(())
        }
    };
    match cmd {
        UsersCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let password = read_password_line(password_stdin)?;
            argent_server::add_user(&store, &actor, &name, role, &password)
                .await
                .map_err(err)?;
            println!("added {name} ({role})");
        }
        UsersCommand::List => {
            for u in store.users().await? {
                let status = match (&u.disabled_at, &u.disabled_by) {
                    (Some(at), by) => format!(
                        "disabled {} by {}",
                        at.format("%Y-%m-%d %H:%M UTC"),
                        by.as_deref().unwrap_or("?")
                    ),
                    (None, _) => "active".to_string(),
                };
                println!(
                    "{:<24} {:<11} {}  {status}",
                    u.name,
                    u.role,
                    u.created_at.format("%Y-%m-%d %H:%M UTC")
                );
            }
        }
        UsersCommand::Disable { name } => {
            change(
                name,
                UserChange::Disable,
                "disabled and signed out everywhere",
            )
            .await?
        }
        UsersCommand::Enable { name } => change(name, UserChange::Enable, "enabled").await?,
        UsersCommand::Role { name, role } => {
            change(
                name,
                UserChange::Role(role.as_str().to_string()),
                "now has this role",
            )
            .await?
        }
        UsersCommand::ResetPassword {
            name,
            password_stdin,
        } => {
            let password = read_password_line(password_stdin)?;
            let u = argent_server::reset_password(&store, &actor, &name, &password)
                .await
                .map_err(err)?;
            println!("{} has a new password and is signed out everywhere", u.name);
        }
        UsersCommand::Unlock { name } => {
            change(
                name,
                UserChange::Unlock,
                "unlocked: earlier failed sign-ins no longer count",
            )
            .await?
        }
    }
    Ok(())
}
