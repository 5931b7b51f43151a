//! argent's planner loop.
//!
//! trigger → account context → prompt → model → for each tool call: schema check → policy
//! decision → execute (allow) / enqueue for a human (needs_approval) / refuse with reasons
//! (deny) → repeat until the model stops or a budget ends the run. Every step is audited
//! and checkpointed; side effects happen only through [`authz::Authorized`] values.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use thiserror::Error;

use argent_llm::{ChatModel, LlmError};
use argent_policy::{Packs, PolicyError, PolicySet};
use argent_store::{Store, StoreError};
use argent_tools::{Registry, RegistryError};

pub mod authz;
pub mod budget;
pub mod compliance;
pub mod context;
pub mod demo;
pub mod documents;
mod exec;
pub mod facts;
pub mod four_eyes;
pub mod impact;
pub mod mail_in;
pub mod offline;
pub mod outbox;
pub mod outbox_smtp;
mod person;
pub mod prompt;
pub mod rejudge;
pub mod review;
pub mod run;
pub mod signals;
pub mod snapshot;
pub mod testing;
pub mod tick;

pub use compliance::{
    COMPLIANCE_PROMPT, Category, CheckOutcome, CheckRequest, ComplianceCheck, ModelComplianceCheck,
    OfflineComplianceCheck, Verdict,
};
pub use context::Account;
pub use documents::{
    DiffHunk, DiffLine, DiffTag, DocumentSet, LineError, MAX_DOCUMENT_BYTES, diff_hunks,
    diff_lines, size_problem, validate_document, validate_in_set, validate_set,
};
pub use four_eyes::FourEyes;
pub use offline::{OFFLINE_MODEL_NAME, OfflineModel};
pub use prompt::{PromptError, PromptSet};
pub use rejudge::{RejudgeReport, Rejudged};
pub use review::{ReviewResult, Reviewer};
pub use run::{
    AtRunEnd, CallOutcome, CallStatus, FORMAL_DEMAND_RULE, MODEL_FAILED, RunOutcome, Trigger,
    WorkLink, needs_person_task_id, procedure_hold,
};

/// Operator-facing errors. Errors meant for the model (invalid arguments, refusals) are
/// not errors here: they are tool results the model sees.
#[derive(Debug, Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("model: {0}")]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("no policy covers jurisdiction {0}")]
    NoPolicy(String),
    #[error("approval {0} was already decided")]
    AlreadyDecided(String),
    #[error("not permitted: {0}")]
    NotPermitted(String),
    #[error("the edited arguments are invalid: {0}")]
    EditInvalid(String),
    #[error("policy forbids the action: {0}")]
    Denied(String),
    #[error("internal invariant broken: {0}")]
    Invariant(String),
    /// The account's figures cannot be computed: a sum of its amounts does not fit in
    /// `i64` minor units (only a ledger beyond the import bounds has one).
    #[error("{0}")]
    Money(#[from] argent_core::MoneyError),
    #[error("{0}")]
    Io(String),
    /// The run's first request cannot fit the configured context window; nothing was
    /// written.
    #[error("{0}")]
    PromptTooLarge(budget::TooLarge),
}

/// Where "now" comes from: the system clock, a fixed instant (demo, evals, tests), or a
/// clock a simulation moves ([`ManualClock`]).
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    System,
    Fixed(DateTime<Utc>),
    Manual(&'static ManualClock),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => *t,
            Clock::Manual(c) => c.get(),
        }
    }
}

/// A clock that stands still until it is set (`argent demo`'s simulated days). It is
/// shared by reference so [`Clock`] stays `Copy`: [`ManualClock::leak`] makes one that
/// lives as long as the process (one per simulation).
#[derive(Debug)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock at `at`, leaked so it can be shared as `&'static`.
    pub fn leak(at: DateTime<Utc>) -> &'static ManualClock {
        Box::leak(Box::new(ManualClock(std::sync::atomic::AtomicI64::new(
            at.timestamp_micros(),
        ))))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        self.0
            .store(at.timestamp_micros(), std::sync::atomic::Ordering::SeqCst);
    }

    pub fn get(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0.load(std::sync::atomic::Ordering::SeqCst))
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Model calls per run.
    pub max_steps: u32,
    /// Prompt + completion tokens per run.
    pub max_tokens: u64,
    /// Consecutive turns whose every tool call had invalid arguments before the run ends
    /// `needs_person`.
    pub max_invalid_turns: u32,
    /// Repair turns per run: after the model's endpoint refused what the model produced
    /// (`LlmError::ModelOutput`), the error is shown to the model and the request sent
    /// again with parallel tool calls off, at most this many times before the run ends
    /// `needs_person`.
    pub max_repairs: u32,
    /// The company name the prompts speak for.
    pub company: String,
    /// Who runs are attributed to in the audit trail.
    pub actor: String,
    pub clock: Clock,
    /// Evals and what-if runs: judge every account as this risk segment instead of the one
    /// its payment history gives.
    pub segment_override: Option<argent_core::RiskSegment>,
    /// Evals and what-if runs: treat the initial communication as already sent.
    pub assume_initial_sent: bool,
    /// Number runs and approvals `run-0001`, `apr-0001`, … instead of random UUIDs, so a
    /// recorded conversation replays byte for byte. Only for a store of its own (evals).
    pub deterministic_ids: bool,
    /// How long the content compliance check may take before the draft is held for a
    /// person instead (a timeout never allows).
    pub compliance_timeout: std::time::Duration,
    /// The right part of the `Message-ID` of every email queued (the configured sender's
    /// domain: `argent_mail::smtp::MailSettings::domain`).
    pub mail_domain: String,
    /// The agent role's model settings: generation parameters put on each request, the
    /// context window a run's first request must fit, the compact prompt variant.
    /// Recorded in each run's `run_started` event.
    pub model_settings: argent_llm::ModelSettings,
    /// The compliance check's settings when it is a model check (recorded beside the
    /// agent's; `None` for the offline classifier).
    pub check_settings: Option<argent_llm::ModelSettings>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            max_steps: 6,
            max_tokens: 60_000,
            max_invalid_turns: 2,
            max_repairs: 2,
            company: "Argent Supplies".into(),
            actor: "agent".into(),
            clock: Clock::System,
            segment_override: None,
            assume_initial_sent: false,
            deterministic_ids: false,
            compliance_timeout: compliance::DEFAULT_CHECK_TIMEOUT,
            mail_domain: "argent.example".into(),
            model_settings: argent_llm::ModelSettings::defaults(argent_llm::ModelRole::Agent),
            check_settings: None,
        }
    }
}

/// Loads every policy document under `dir` and a version: the first 16 hex digits of
/// SHA-256 over the documents' file names and text.
pub fn load_policies(dir: &Path) -> Result<(PolicySet, String), AgentError> {
    let docs = DocumentSet::read_policies(dir)?;
    let set = PolicySet::load_dir(dir)?;
    Ok((set, policy_version(&docs)))
}

/// The policy version of documents given by name and text: the first 16 hex digits of
/// SHA-256 over each `<name>.toml`, a NUL and its text, in file-name order — exactly what
/// [`load_policies`] gives a directory of those files.
pub fn policy_version(policies: &BTreeMap<String, String>) -> String {
    let mut files: Vec<(String, &str)> = policies
        .iter()
        .map(|(name, text)| (format!("{name}.toml"), text.as_str()))
        .collect();
    files.sort();
    let mut h = Sha256::new();
    for (file, text) in files {
        h.update(file.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// What an agent is built from that never changes while it works: the tool registry, the
/// policy packs and compiled prompt templates, and the policy version. Built once and
/// shared (behind `Arc`s) by every agent over the same documents, e.g. an eval run's
/// cases, which would otherwise each compile their own. The policy packs compile when
/// first needed (`argent_policy::Packs`; a pack's regexes are tens of milliseconds of CPU,
/// `benches/startup.rs`), so building this is cheap and every agent sharing it compiles a
/// pack once.
#[derive(Clone)]
pub struct Compiled {
    pub registry: Arc<Registry>,
    pub policies: Arc<Packs>,
    pub policy_version: String,
    pub prompts: Arc<PromptSet>,
}

impl Compiled {
    /// Compiles `docs`' prompts and the built-in tool registry; the policy packs compile
    /// when first needed. Only for documents validated in full before: a database's
    /// active documents (checked when activated or seeded).
    pub fn from_documents(docs: &DocumentSet) -> Result<Compiled, AgentError> {
        Compiled::with_packs(docs, docs.validated_packs()?)
    }

    fn with_packs(docs: &DocumentSet, packs: Packs) -> Result<Compiled, AgentError> {
        Ok(Compiled {
            registry: Arc::new(Registry::builtin()?),
            policies: Arc::new(packs),
            policy_version: docs.policy_version(),
            prompts: Arc::new(docs.prompt_set()?),
        })
    }

    /// Reads a prompts directory and a policies directory (the repository layout) and
    /// compiles them, every policy checked in full now (files someone may have edited).
    pub fn from_dirs(prompts_dir: &Path, policies_dir: &Path) -> Result<Compiled, AgentError> {
        let docs = DocumentSet::from_dirs(prompts_dir, policies_dir)?;
        let packs = Packs::compiled(docs.policy_set()?);
        Compiled::with_packs(&docs, packs)
    }
}

pub struct Agent {
    pub store: Store,
    pub model: Arc<dyn ChatModel>,
    pub registry: Arc<Registry>,
    pub policies: Arc<Packs>,
    pub policy_version: String,
    pub prompts: Arc<PromptSet>,
    pub config: AgentConfig,
    /// The second content check of email drafts (offline classifier unless replaced with
    /// [`Agent::with_compliance_check`]).
    pub compliance: Arc<dyn ComplianceCheck>,
    ids: std::sync::atomic::AtomicU64,
    /// Run ids [`Agent::start`] has chosen and not yet committed: a derived id is free
    /// only if it is neither stored nor reserved here, so starts of the same trigger at
    /// the same instant from concurrent tasks get `-2`, `-3`, … instead of a conflict.
    reserved_runs: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// The tool definitions sent with every model request, full and compact, each made
    /// once from the registry it names (see [`Agent::tool_definitions`]).
    tool_defs: [std::sync::OnceLock<SharedTools>; 2],
}

/// Tool definitions made from a registry, shared by every request that sends them.
type SharedTools = (Arc<Registry>, Arc<Vec<argent_llm::ToolDefinition>>);

/// A run id reserved by [`Agent::run_id_for`] until the run's record commits (or the
/// start fails); dropping it releases the id.
pub(crate) struct RunIdReservation {
    id: String,
    set: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Drop for RunIdReservation {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Agent {
    /// A fresh id with `prefix`: random, or sequential with `deterministic_ids`.
    pub(crate) fn new_id(&self, prefix: &str) -> String {
        if self.config.deterministic_ids {
            let n = self.ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            format!("{prefix}-{n:04}")
        } else {
            format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
        }
    }

    /// The id of a run [`Agent::start`] creates. With `deterministic_ids`, the next number;
    /// otherwise derived from what the run is: `run-` and the first 32 hex digits of SHA-256
    /// over the customer, the trigger and the instant the run starts. Recording a run and
    /// replaying it at the same instant (`--now`) on the same data give it the same id, and
    /// so the same ids for everything derived from it that the model is shown (its calls,
    /// the records they create, its approvals): the replay's requests are the recording's,
    /// byte for byte. If a run with that id exists (the same trigger started twice at the
    /// same instant), `-2`, `-3`, … is appended.
    pub(crate) async fn run_id_for(
        &self,
        customer_id: &str,
        trigger: &run::Trigger,
        now: DateTime<Utc>,
    ) -> Result<(String, Option<RunIdReservation>), AgentError> {
        if self.config.deterministic_ids {
            return Ok((self.new_id("run"), None));
        }
        let trigger = serde_json::to_string(trigger)
            .map_err(|e| AgentError::Invariant(format!("the trigger does not serialize: {e}")))?;
        let mut h = Sha256::new();
        for part in [customer_id, trigger.as_str(), now.to_rfc3339().as_str()] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let base = format!("run-{}", &hex::encode(h.finalize())[..32]);
        const MAX_SAME: u32 = 1000;
        for n in 1..=MAX_SAME {
            let id = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            // Reserve first, then look in the store: a start that released the id did so
            // after its record committed, so this read sees that record.
            let fresh = self
                .reserved_runs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id.clone());
            if !fresh {
                continue;
            }
            let reservation = RunIdReservation {
                id: id.clone(),
                set: self.reserved_runs.clone(),
            };
            match self.store.run(&id).await {
                Err(StoreError::NotFound(_)) => return Ok((id, Some(reservation))),
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
        }
        Err(AgentError::Invariant(format!(
            "{MAX_SAME} runs for customer {customer_id} with the same trigger at {now} already exist"
        )))
    }

    /// The id of the approval item for tool call `call_id`: with `deterministic_ids` the
    /// next number, otherwise `apr-` and the first 32 hex digits of SHA-256 over the call
    /// id (a call has at most one item), so the model, which is shown it, sees the same id
    /// when a run is replayed.
    pub(crate) fn approval_id_for(&self, call_id: &str) -> String {
        if self.config.deterministic_ids {
            return self.new_id("apr");
        }
        let mut h = Sha256::new();
        h.update(b"approval\0");
        h.update(call_id.as_bytes());
        format!("apr-{}", &hex::encode(h.finalize())[..32])
    }

    /// Builds an agent over a prompts directory and a policies directory (the repository
    /// layout: `prompts/`, `policies/`): reads them into a [`DocumentSet`] and calls
    /// [`Agent::from_documents`].
    pub fn from_dirs(
        store: Store,
        model: Arc<dyn ChatModel>,
        prompts_dir: &Path,
        policies_dir: &Path,
        config: AgentConfig,
    ) -> Result<Agent, AgentError> {
        let compiled = Compiled::from_dirs(prompts_dir, policies_dir)?;
        Agent::from_compiled(store, model, &compiled, config)
    }

    /// Builds an agent over prompt templates and policy documents held in memory (e.g.
    /// the active documents in the database). The same texts give the same prompt and
    /// policy versions as [`Agent::from_dirs`] over files holding them.
    pub fn from_documents(
        store: Store,
        model: Arc<dyn ChatModel>,
        docs: &DocumentSet,
        config: AgentConfig,
    ) -> Result<Agent, AgentError> {
        Agent::from_compiled(store, model, &Compiled::from_documents(docs)?, config)
    }

    /// Builds an agent over already compiled documents, sharing them (nothing is copied
    /// or compiled again).
    pub fn from_compiled(
        store: Store,
        model: Arc<dyn ChatModel>,
        compiled: &Compiled,
        config: AgentConfig,
    ) -> Result<Agent, AgentError> {
        if config.model_settings.compact_prompts && !compiled.prompts.has(budget::COMPACT_SYSTEM) {
            return Err(AgentError::Prompt(PromptError::Missing(
                budget::COMPACT_SYSTEM.to_string(),
            )));
        }
        Ok(Agent {
            store,
            model,
            registry: compiled.registry.clone(),
            policies: compiled.policies.clone(),
            policy_version: compiled.policy_version.clone(),
            prompts: compiled.prompts.clone(),
            config,
            compliance: Arc::new(OfflineComplianceCheck),
            ids: std::sync::atomic::AtomicU64::new(0),
            reserved_runs: Arc::default(),
            tool_defs: Default::default(),
        })
    }

    /// The agent with `check` as its content compliance check.
    pub fn with_compliance_check(mut self, check: Arc<dyn ComplianceCheck>) -> Agent {
        self.compliance = check;
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.config.clock.now()
    }

    /// The account as the agent and the policy see it, with any configured overrides.
    pub async fn load_account(
        &self,
        customer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Account, AgentError> {
        let account = Account::load(&self.store, customer_id, now).await?;
        Ok(self.with_overrides(account))
    }

    /// The account with the configured overrides (segment, initial communication) applied.
    pub(crate) fn with_overrides(&self, mut account: Account) -> Account {
        if let Some(segment) = self.config.segment_override {
            account.risk.segment = segment;
        }
        account.initial_sent |= self.config.assume_initial_sent;
        account
    }

    /// Starts compiling the pack a new run's judgements will need, if no run needed it
    /// before, on a blocking thread: the compile (tens of milliseconds) then overlaps the
    /// run's first model call instead of following it. The first judgement waits for it
    /// (`Packs` compiles a pack once) and sees its error if it fails.
    pub(crate) fn prepare_policy(&self, j: argent_core::Jurisdiction) {
        if self.policies.pending(j) {
            let packs = self.policies.clone();
            drop(tokio::task::spawn_blocking(move || {
                let _ = packs.for_jurisdiction(j);
            }));
        }
    }

    pub(crate) fn policy_for(
        &self,
        account: &Account,
    ) -> Result<&argent_policy::Policy, AgentError> {
        self.policies
            .for_jurisdiction(account.customer.jurisdiction)
            .ok_or_else(|| AgentError::NoPolicy(account.customer.jurisdiction.to_string()))?
            .map_err(AgentError::Policy)
    }
}
