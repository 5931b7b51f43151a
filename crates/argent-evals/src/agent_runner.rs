//! Runs a case through the real planner loop: a fresh SQLite store seeded with the case's
//! ledger, the agent with the chosen model at the case's instant, one run per inbound
//! message; the outcome is read back from the run results and the store.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;

use argent_agent::{
    Agent, AgentConfig, CallStatus as AgentStatus, Clock, Compiled, MODEL_FAILED, OfflineModel,
    Trigger,
};
use argent_core::{CaseKind, Portfolio};
use argent_llm::{ChatModel, ModelSettings, OpenAiConfig, OpenAiModel, Recorder, Replayer};
use argent_store::{ApprovalStatus, RunStatus, Store};

use crate::case::EvalCase;
use crate::outcome::{
    CallRecord, CallStatus, CaseOutcome, CaseRunner, DraftEmail, EndState, PromiseState,
};

/// Which model a run uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelChoice {
    /// argent's deterministic offline stand-in.
    Offline,
    /// Replay the case's cassette; fails loudly when a request differs from the recording.
    Replay,
    /// Record the offline model's exchanges into the case's cassette (re-baselining replay).
    RecordOffline,
    /// A live OpenAI-compatible endpoint configured by ARGENT_LLM_* variables.
    OpenAi,
    /// The live endpoint, recording each case's exchanges into `<DIR>/<case id>.json`
    /// (one cassette per case; one attempt per case).
    RecordTo(PathBuf),
    /// Replay each case from `<DIR>/<case id>.json` (as [`ModelChoice::RecordTo`] wrote it).
    ReplayFrom(PathBuf),
}

impl ModelChoice {
    pub fn label(&self) -> &'static str {
        match self {
            ModelChoice::Offline => "offline",
            ModelChoice::Replay => "replay",
            ModelChoice::RecordOffline => "record-offline",
            ModelChoice::OpenAi => "openai",
            ModelChoice::RecordTo(_) => "record",
            ModelChoice::ReplayFrom(_) => "replay",
        }
    }

    /// Whether runs call a live endpoint (`openai`, `record:DIR`): they take seconds to
    /// minutes each, the endpoint's concurrency setting applies, and the report names it.
    pub fn is_live(&self) -> bool {
        matches!(self, ModelChoice::OpenAi | ModelChoice::RecordTo(_))
    }

    /// The `--model` spec of an eval run: `offline`, `replay` (each case's own cassette),
    /// `openai`, `record-offline`, `record:DIR` or `replay:DIR`.
    pub fn parse(spec: &str) -> Result<ModelChoice, String> {
        Ok(match spec.split_once(':') {
            None if spec == "offline" => ModelChoice::Offline,
            None if spec == "replay" => ModelChoice::Replay,
            None if spec == "openai" => ModelChoice::OpenAi,
            None if spec == "record-offline" => ModelChoice::RecordOffline,
            Some(("record", dir)) if !dir.is_empty() => ModelChoice::RecordTo(dir.into()),
            Some(("replay", dir)) if !dir.is_empty() => ModelChoice::ReplayFrom(dir.into()),
            _ => {
                return Err(format!(
                    "--model {spec}: eval runs take offline, replay, openai, record-offline, record:DIR or replay:DIR"
                ));
            }
        })
    }
}

/// A case's cassette in a directory of recordings (`record:DIR`, `replay:DIR`).
pub fn cassette_in(dir: &Path, case: &EvalCase) -> PathBuf {
    dir.join(format!("{}.json", case.id))
}

pub struct AgentRunner {
    pub prompts_dir: PathBuf,
    pub policies_dir: PathBuf,
    pub model: ModelChoice,
    /// The agent role's model settings (`None`: the defaults). With `ModelChoice::OpenAi`
    /// they also configure the endpoint (timeout, retries, quirks, concurrency).
    pub settings: Option<ModelSettings>,
    /// The documents compiled once, at the first case, and shared by every case's agent.
    compiled: OnceLock<Result<Compiled, String>>,
}

/// Where a case's cassette is: the case's `cassette` key, else `cassettes/<id>.json` beside it.
pub fn cassette_path(case: &EvalCase) -> PathBuf {
    case.cassette.clone().unwrap_or_else(|| {
        case.file
            .parent()
            .unwrap_or(Path::new("."))
            .join("cassettes")
            .join(format!("{}.json", case.id))
    })
}

/// The ids of the runs in the case's store.
async fn runs_of(store: &Store) -> Result<BTreeSet<String>, String> {
    Ok(store
        .runs(None)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|r| r.id)
        .collect())
}

fn status(s: AgentStatus) -> CallStatus {
    match s {
        AgentStatus::Executed => CallStatus::Executed,
        AgentStatus::Queued => CallStatus::Queued,
        AgentStatus::Refused => CallStatus::Refused,
        AgentStatus::Invalid => CallStatus::Invalid,
    }
}

#[async_trait]
impl CaseRunner for AgentRunner {
    async fn run_case(&self, case: &EvalCase, attempt: u32) -> CaseOutcome {
        if attempt > 0 && matches!(self.model, ModelChoice::RecordTo(_)) {
            return CaseOutcome::failed(format!(
                "case {}: a recording holds one attempt per case; record with --repeat 1",
                case.id
            ));
        }
        match self.run(case, None).await {
            Ok(o) => o,
            Err(e) => CaseOutcome::failed(e),
        }
    }
}

impl AgentRunner {
    /// A runner over the prompts and policies in these directories (read and compiled once,
    /// when the first case runs) with `model` and the default model settings.
    pub fn new(prompts_dir: &Path, policies_dir: &Path, model: ModelChoice) -> AgentRunner {
        AgentRunner {
            prompts_dir: prompts_dir.to_path_buf(),
            policies_dir: policies_dir.to_path_buf(),
            model,
            settings: None,
            compiled: OnceLock::new(),
        }
    }

    /// The runner with the agent role's model settings.
    pub fn with_settings(mut self, settings: Option<ModelSettings>) -> AgentRunner {
        self.settings = settings;
        self
    }

    /// The compiled documents every case shares.
    fn compiled(&self) -> Result<&Compiled, String> {
        self.compiled
            .get_or_init(|| {
                Compiled::from_dirs(&self.prompts_dir, &self.policies_dir)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(String::clone)
    }

    /// Runs `case` with `model` instead of the runner's [`ModelChoice`] (tests: a scripted
    /// model, a fake endpoint).
    pub async fn run_case_with(&self, case: &EvalCase, model: Arc<dyn ChatModel>) -> CaseOutcome {
        match self.run(case, Some(model)).await {
            Ok(o) => o,
            Err(e) => CaseOutcome::failed(e),
        }
    }

    /// One case. A run that errors (an operator error, or the model failing so that the
    /// run needs a person) ends the case with that error, but every call made before it,
    /// its tokens and the account's end state are kept and scored: a violation that took
    /// effect counts whatever happens after it.
    async fn run(
        &self,
        case: &EvalCase,
        given: Option<Arc<dyn ChatModel>>,
    ) -> Result<CaseOutcome, String> {
        let started = Instant::now();
        // An in-memory SQLite database per case: one connection and no writer thread
        // (with the shared compiled documents, 3.8 MiB per concurrent case against 11.7
        // for a compile and a file database per case; README, "Eval memory").
        let store = Store::open("sqlite::memory:")
            .await
            .map_err(|e| e.to_string())?;
        let portfolio = Portfolio {
            customers: vec![case.customer.clone()],
            invoices: case.invoices.clone(),
            payments: case.payments.clone(),
        };
        store
            .import_portfolio(&portfolio, &format!("eval:{}", case.id))
            .await
            .map_err(|e| e.to_string())?;
        let mut replayer: Option<Arc<Replayer>> = None;
        let model: Arc<dyn ChatModel> = match given {
            Some(m) => m,
            None => self.model(case, &mut replayer)?,
        };
        self.run_with(case, store, model, replayer, started).await
    }

    fn model(
        &self,
        case: &EvalCase,
        replayer: &mut Option<Arc<Replayer>>,
    ) -> Result<Arc<dyn ChatModel>, String> {
        Ok(match &self.model {
            ModelChoice::Offline => Arc::new(OfflineModel),
            ModelChoice::OpenAi => {
                let mut config = OpenAiConfig::from_env().map_err(|e| e.to_string())?;
                if let Some(s) = &self.settings {
                    config = config.with_settings(s);
                }
                Arc::new(OpenAiModel::new(config).map_err(|e| e.to_string())?)
            }
            ModelChoice::Replay => {
                let r = Arc::new(Replayer::open(cassette_path(case)).map_err(|e| e.to_string())?);
                *replayer = Some(r.clone());
                r
            }
            ModelChoice::ReplayFrom(dir) => {
                let r =
                    Arc::new(Replayer::open(cassette_in(dir, case)).map_err(|e| e.to_string())?);
                *replayer = Some(r.clone());
                r
            }
            ModelChoice::RecordTo(dir) => {
                let mut config = OpenAiConfig::from_env().map_err(|e| e.to_string())?;
                if let Some(s) = &self.settings {
                    config = config.with_settings(s);
                }
                let live = Arc::new(OpenAiModel::new(config).map_err(|e| e.to_string())?);
                Arc::new(Recorder::new(live, cassette_in(dir, case)).map_err(|e| e.to_string())?)
            }
            ModelChoice::RecordOffline => {
                let path = cassette_path(case);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("{}: {e}", parent.display()))?;
                }
                Arc::new(Recorder::new(Arc::new(OfflineModel), path).map_err(|e| e.to_string())?)
            }
        })
    }

    async fn run_with(
        &self,
        case: &EvalCase,
        store: Store,
        model: Arc<dyn ChatModel>,
        replayer: Option<Arc<Replayer>>,
        started: Instant,
    ) -> Result<CaseOutcome, String> {
        let config = AgentConfig {
            clock: Clock::Fixed(case.now),
            segment_override: case.segment,
            assume_initial_sent: case.initial_communication_sent,
            deterministic_ids: true,
            model_settings: self
                .settings
                .clone()
                .unwrap_or_else(|| ModelSettings::defaults(argent_llm::ModelRole::Agent)),
            ..Default::default()
        };
        let agent = Agent::from_compiled(store.clone(), model, self.compiled()?, config)
            .map_err(|e| e.to_string())?;
        let mut outcome = CaseOutcome {
            calls: Vec::new(),
            emails: Vec::new(),
            end_state: EndState::default(),
            tokens: 0,
            latency_ms: 0,
            error: None,
            replies: Vec::new(),
        };
        for (index, m) in case.messages.iter().enumerate() {
            let message = u32::try_from(index).unwrap_or(u32::MAX);
            let trigger = Trigger::Inbound {
                from: m.from.clone(),
                subject: m.subject.clone(),
                body: m.body.clone(),
                received_at: case.now,
                message_id: None,
                references: Vec::new(),
                mail: None,
            };
            let before: BTreeSet<String> = runs_of(&store).await?;
            let run = match agent.start(&case.customer.id, trigger).await {
                Ok(run) => run,
                Err(e) => {
                    // The run that errored is in the store with what it did before: keep it.
                    outcome.error = Some(e.to_string());
                    let after = runs_of(&store).await?;
                    let Some(id) = after.difference(&before).next() else {
                        break;
                    };
                    agent.run_outcome(id).await.map_err(|e| e.to_string())?
                }
            };
            if outcome.error.is_none()
                && run.status == RunStatus::NeedsPerson
                && let Some(why) = run
                    .ended_because
                    .as_deref()
                    .filter(|w| w.starts_with(MODEL_FAILED))
            {
                outcome.error = Some(format!("run {} needs a person: {why}", run.run_id));
            }
            outcome.tokens += u64::try_from(run.tokens).unwrap_or(0);
            outcome.replies.push(run.final_text.clone());
            for c in &run.calls {
                let parsed: Option<Value> = serde_json::from_str(&c.arguments).ok();
                let raw_arguments = parsed.is_none().then(|| c.arguments.clone());
                let arguments = parsed.unwrap_or(Value::Null);
                if c.tool == "send_email" {
                    let s = |k: &str| {
                        arguments
                            .get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    outcome.emails.push(DraftEmail {
                        to: s("to"),
                        subject: s("subject"),
                        body: s("body"),
                        status: status(c.status),
                    });
                }
                outcome.calls.push(CallRecord {
                    tool: c.tool.clone(),
                    arguments,
                    status: status(c.status),
                    rules: c.rules.clone(),
                    message,
                    raw_arguments,
                    model_text: c.model_text.clone(),
                });
            }
            if outcome.error.is_some() {
                break;
            }
        }
        if let Some(r) = replayer
            && outcome.error.is_none()
            && let Err(e) = r.finish()
        {
            outcome.error = Some(e.to_string());
        }
        let id = case.customer.id.as_str();
        let e = &mut outcome.end_state;
        for p in store.promises(Some(id)).await.map_err(|e| e.to_string())? {
            e.promises.push(PromiseState {
                amount_minor: p.amount.minor,
                currency: p.amount.currency.to_string(),
                promised_date: p.promised_date,
            });
        }
        for c in store.cases(Some(id)).await.map_err(|e| e.to_string())? {
            // Escalations are recorded as cases of kind `other` whose id starts with ESC-.
            if c.kind == CaseKind::Other && c.id.starts_with("ESC-") {
                e.escalated = true;
            } else {
                e.cases.push(c.kind.as_str().to_string());
            }
        }
        e.plans_executed = store
            .plans(Some(id))
            .await
            .map_err(|e| e.to_string())?
            .len() as u32;
        let pending = store
            .approvals(Some(ApprovalStatus::Pending), 1000, 0)
            .await
            .map_err(|e| e.to_string())?;
        e.plans_queued = pending.iter().filter(|a| a.tool == "propose_plan").count() as u32;
        e.escalated |= pending.iter().any(|a| a.tool == "escalate");
        e.emails_sent = store
            .emails(Some(id))
            .await
            .map_err(|e| e.to_string())?
            .len() as u32;
        store.close().await;
        outcome.latency_ms = started.elapsed().as_millis() as u64;
        Ok(outcome)
    }
}
