//! Runs a case through the real planner loop: a fresh SQLite store seeded with the case's
//! ledger, the agent with the chosen model at the case's instant, one run per inbound
//! message; the outcome is read back from the run results and the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;

use argent_agent::{Agent, AgentConfig, CallStatus as AgentStatus, Clock, OfflineModel, Trigger};
use argent_core::{CaseKind, Portfolio};
use argent_llm::{ChatModel, ModelSettings, OpenAiConfig, OpenAiModel, Recorder, Replayer};
use argent_store::{ApprovalStatus, Store};

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
}

impl ModelChoice {
    pub fn label(&self) -> &'static str {
        match self {
            ModelChoice::Offline => "offline",
            ModelChoice::Replay => "replay",
            ModelChoice::RecordOffline => "record-offline",
            ModelChoice::OpenAi => "openai",
        }
    }
}

pub struct AgentRunner {
    pub prompts_dir: PathBuf,
    pub policies_dir: PathBuf,
    pub model: ModelChoice,
    /// The agent role's model settings (`None`: the defaults). With `ModelChoice::OpenAi`
    /// they also configure the endpoint (timeout, retries, quirks, concurrency).
    pub settings: Option<ModelSettings>,
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
    async fn run_case(&self, case: &EvalCase, _attempt: u32) -> CaseOutcome {
        match self.run(case).await {
            Ok(o) => o,
            Err(e) => CaseOutcome::failed(e),
        }
    }
}

impl AgentRunner {
    async fn run(&self, case: &EvalCase) -> Result<CaseOutcome, String> {
        let started = Instant::now();
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let store = Store::open(&dir.path().join("eval.db").to_string_lossy())
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
        let model: Arc<dyn ChatModel> = match self.model {
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
                replayer = Some(r.clone());
                r
            }
            ModelChoice::RecordOffline => {
                let path = cassette_path(case);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("{}: {e}", parent.display()))?;
                }
                Arc::new(Recorder::new(Arc::new(OfflineModel), path).map_err(|e| e.to_string())?)
            }
        };
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
        let agent = Agent::from_dirs(
            store.clone(),
            model,
            &self.prompts_dir,
            &self.policies_dir,
            config,
        )
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
            let run = agent
                .start(&case.customer.id, trigger)
                .await
                .map_err(|e| e.to_string())?;
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
        }
        if let Some(r) = replayer {
            r.finish().map_err(|e| e.to_string())?;
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
