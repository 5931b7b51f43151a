//! The run: prompt → model → gate → execute / enqueue / refuse, checkpointed every step.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use argent_core::action::Action;
use argent_core::{Decision, Outcome, RiskSegment};
use argent_llm::{ChatMessage, ChatRequest, ToolCall, ToolDefinition};
use argent_policy::evaluate;
use argent_store::{
    NewApproval, NewAuditEvent, NewTask, RunRecord, RunStatus, StoreTx, ToolCallStatus,
};

use crate::compliance::CheckOutcome;
use crate::context::Account;
use crate::prompt::{PromptError, PromptSet};
use crate::{Agent, AgentError, authz, exec};

/// What starts a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// The customer wrote to us.
    Inbound {
        from: String,
        subject: String,
        /// What the customer wrote now (for mail: the new text, without the quoted history
        /// and signature).
        body: String,
        received_at: DateTime<Utc>,
        /// The message's Message-ID (without angle brackets), when it came by mail: the
        /// reply's `In-Reply-To`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
        /// The message's References then its Message-ID: the reply's `References`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        references: Vec<String>,
        /// What inbound mail processing found (`crate::mail_in`), when it came by mail.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mail: Option<InboundMail>,
    },
    /// A dunning procedure step is due (e.g. `overdue_notice`).
    Step { step: String },
    /// A step of a dunning procedure, run by a worker for a work item: the step's prompt
    /// (`step/{step}`) plus what the step covers, shown to the model after the step prompt.
    ProcedureStep {
        /// The prompt template under `step/` (`overdue_notice`).
        step: String,
        /// The step's id in its procedure (`overdue_notice`, `formal_demand`).
        step_id: String,
        /// `email`, `call_task`, `formal_demand`, … (`argent_procedure::StepKind`).
        step_kind: String,
        procedure: String,
        version: i64,
        /// The overdue invoices this one contact covers.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        invoices: Vec<String>,
        /// For a broken-promise follow-up: the promise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        promise_id: Option<String>,
        /// Why the step is due.
        reason: String,
        /// The work item the run does.
        work_id: String,
    },
}

/// What inbound mail processing found about the message a run answers: what the policy
/// needs (is the sender the contact on file, did authentication fail) and what the model
/// is shown besides the new text (the quoted history, marked as quoted; attachments by
/// name, type and size only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMail {
    /// The `inbound_mail` row.
    pub inbound_id: String,
    /// The sender is a contact on file for the customer. `false`: the message was matched
    /// by thread (or assigned by a person) from an address not on file.
    pub sender_on_file: bool,
    /// How the customer was found: `thread`, `sender` or `assigned`.
    pub matched_by: String,
    /// The Authentication-Results verdicts, e.g. `spf=pass dkim=pass dmarc=fail`.
    pub auth: String,
    /// SPF, DKIM or DMARC failed.
    #[serde(default)]
    pub auth_failed: bool,
    /// The quoted history below the new text, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted: Option<String>,
    /// Attachments: `name (type, N bytes)`; never their content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
}

/// The rule that holds every email a `formal_demand` step drafts for a person, whatever
/// the policy decided (it can only tighten: see [`procedure_hold`]).
pub const FORMAL_DEMAND_RULE: &str = "procedure.formal-demand";

/// For an email drafted by a `formal_demand` procedure step (the run's stored trigger):
/// the rule that holds it for a manager, to fire on top of the policy's decision. A formal
/// demand carries legal language and always needs a person, even where the policy would
/// allow the email; `None` for anything else.
pub fn procedure_hold(trigger: &Value, action: &Action) -> Option<argent_core::FiredRule> {
    let Action::SendEmail(_) = action else {
        return None;
    };
    let kind = trigger.get("kind").and_then(Value::as_str);
    let step_kind = trigger.get("step_kind").and_then(Value::as_str);
    (kind == Some("procedure_step") && step_kind == Some("formal_demand")).then(|| {
        argent_core::FiredRule {
            id: FORMAL_DEMAND_RULE.to_string(),
            outcome: Outcome::NeedsApproval,
            message:
                "A formal demand carries legal language: a manager approves it before it is sent."
                    .to_string(),
            citation: "argent procedure: formal demand step".to_string(),
            approvers: vec![argent_core::Role::Manager],
        }
    })
}

/// Which agent run a worker starts for a work item: the run's id (derived from the work
/// item, so a worker that takes the item over finds the same run) and the lease the
/// worker holds, recorded on the run and checked when the run is created.
#[derive(Clone, Debug)]
pub struct WorkLink {
    pub work_id: String,
    pub owner: String,
    pub lease_until: DateTime<Utc>,
}

/// What a caller adds to the transaction that ends a run, so the run's end and the
/// caller's record of it commit together (a worker ends its work item there: one commit
/// fewer per run, and no moment where the run has ended and its item has not).
/// Called with the outcome the caller will get back, for every end but `failed` (a failed
/// run is retried or ended by the caller itself); not called for a run that had already
/// ended before `resume`. An error rolls the end back: the run stays at its last
/// checkpoint, as after a crash there, and the error is returned.
#[async_trait::async_trait]
pub trait AtRunEnd: Send + Sync {
    async fn at_end(&self, tx: &mut StoreTx, outcome: &RunOutcome) -> Result<(), AgentError>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Executed,
    Queued,
    Refused,
    Invalid,
}

impl CallStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            CallStatus::Executed => "executed",
            CallStatus::Queued => "queued",
            CallStatus::Refused => "refused",
            CallStatus::Invalid => "invalid",
        }
    }
}

/// What became of one tool call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallOutcome {
    pub call_id: String,
    pub tool: String,
    /// The arguments as the model sent them (raw text).
    pub arguments: String,
    pub status: CallStatus,
    /// Ids of the rules that decided it.
    pub rules: Vec<String>,
    pub approval_id: Option<String>,
    /// The tool result the model was shown.
    pub model_text: String,
}

/// Where a run is: its conversation, the outcomes of its calls (one per tool result, in
/// order) and the count of consecutive turns with only invalid calls.
///
/// Checkpointed as deltas: each message is saved once, in the transaction of the step that
/// added it (`run_messages`, a tool result with its outcome), and `runs.state` holds only
/// a [`DeltaHeader`]. A run checkpointed whole (before delta checkpoints: `runs.state` is
/// this struct as JSON) is resumed from that and goes on being checkpointed whole.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RunState {
    messages: Vec<ChatMessage>,
    invalid_turns: u32,
    outcomes: Vec<CallOutcome>,
    /// Repair turns taken (see [`crate::AgentConfig::max_repairs`]).
    #[serde(default)]
    repairs: u32,
    /// How many messages and outcomes are saved as deltas; `None`: checkpointed whole.
    #[serde(skip)]
    saved: Option<(usize, usize)>,
}

/// `runs.state` of a run checkpointed as deltas: how many of its `run_messages` the
/// checkpoint has (`{"delta": {"messages": N}, "invalid_turns": K}`).
#[derive(Debug, Serialize, Deserialize)]
struct DeltaHeader {
    delta: DeltaCounts,
    #[serde(default)]
    invalid_turns: u32,
    /// Repair turns taken; absent while none was.
    #[serde(default, skip_serializing_if = "is_zero")]
    repairs: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Serialize, Deserialize)]
struct DeltaCounts {
    messages: usize,
}

/// A message or outcome as JSON (their serializations cannot fail: plain structs).
fn json_of<T: Serialize>(v: &T) -> Result<Value, AgentError> {
    serde_json::to_value(v).map_err(|e| AgentError::Invariant(e.to_string()))
}

impl RunState {
    /// A new run's state: its two prompts, none of it saved yet.
    fn new(system: String, user: String) -> RunState {
        RunState {
            messages: vec![ChatMessage::system(system), ChatMessage::user(user)],
            saved: Some((0, 0)),
            ..Default::default()
        }
    }

    /// What `runs.state` holds for this state: the delta header, or the whole state.
    fn stored(&self) -> Result<Value, AgentError> {
        match self.saved {
            Some(_) => json_of(&DeltaHeader {
                delta: DeltaCounts {
                    messages: self.messages.len(),
                },
                invalid_turns: self.invalid_turns,
                repairs: self.repairs,
            }),
            None => json_of(self),
        }
    }

    /// The messages not saved yet, from the index of the first, each tool result with its
    /// outcome (`None` for a state checkpointed whole).
    #[allow(clippy::type_complexity)]
    fn unsaved(&self) -> Result<Option<(i64, Vec<(Value, Option<Value>)>)>, AgentError> {
        let Some((ms, os)) = self.saved else {
            return Ok(None);
        };
        let mut outcomes = self.outcomes.get(os..).unwrap_or_default().iter();
        let mut rows = Vec::new();
        for m in self.messages.get(ms..).unwrap_or_default() {
            let outcome = match m {
                ChatMessage::Tool { .. } => Some(json_of(outcomes.next().ok_or_else(|| {
                    AgentError::Invariant("a tool result without its outcome".into())
                })?)?),
                _ => None,
            };
            rows.push((json_of(m)?, outcome));
        }
        if outcomes.next().is_some() {
            return Err(AgentError::Invariant(
                "a call outcome without its tool result".into(),
            ));
        }
        let first = i64::try_from(ms).map_err(|e| AgentError::Invariant(e.to_string()))?;
        Ok(Some((first, rows)))
    }

    /// After the checkpoint committed: everything is saved.
    fn mark_saved(&mut self) {
        if self.saved.is_some() {
            self.saved = Some((self.messages.len(), self.outcomes.len()));
        }
    }
}

/// What judging a tool call found, before anything of it is written.
enum Judged {
    /// Recorded before (a resumed run): its outcome, reused; nothing is written again.
    Done(CallOutcome),
    /// An earlier call of the same turn has its id.
    Duplicate,
    /// The arguments failed the tool's schema.
    Invalid(String),
    /// The same action (same tool, same normalised arguments: [`action_key`]) as an earlier
    /// call of this run that was executed or went to a person: nothing runs again.
    Repeat {
        earlier: String,
        status: ToolCallStatus,
    },
    /// A valid action and what the policy (and the content check) decided for it.
    Decided {
        action: Action,
        account: Box<Account>,
        decision: Decision,
        checked: Option<CheckOutcome>,
        now: DateTime<Utc>,
    },
}

impl Judged {
    /// Whether recording this call writes nothing another call's judgment reads: an
    /// allowed reading of the aging (its row and audit events, no side effect). Such a
    /// call is recorded with the next call of its turn, in one transaction.
    fn changes_nothing(&self) -> bool {
        matches!(self, Judged::Decided { action: Action::ReadAging(_), decision, .. }
            if decision.outcome == Outcome::Allow)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RunOutcome {
    pub run_id: String,
    pub customer_id: String,
    pub status: RunStatus,
    pub steps: i64,
    pub tokens: i64,
    pub calls: Vec<CallOutcome>,
    /// The model's closing text, if it gave one.
    pub final_text: Option<String>,
    /// Why a run that did not finish ended (`needs_person`, `failed`), when this process
    /// ended it: e.g. `the model failed: …`, `step budget spent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_because: Option<String>,
    /// The collector's task a `needs_person` run created (`TASK-RUN-<run id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

pub(crate) fn tone(segment: RiskSegment) -> &'static str {
    match segment {
        RiskSegment::Low | RiskSegment::Medium => "courteous",
        RiskSegment::High => "firm",
        RiskSegment::InReview => "careful",
    }
}

/// Approval queue priority: risk first, then how old the debt is, then the amount.
fn priority(account: &Account, amount_minor: i64) -> i64 {
    let risk = match account.risk.segment {
        RiskSegment::High => 3,
        RiskSegment::InReview | RiskSegment::Medium => 2,
        RiskSegment::Low => 1,
    };
    let age = account.risk.history.max_days_past_due.clamp(0, 999);
    let amount = (amount_minor / 100_000).clamp(0, 999); // thousands of major units
    risk * 1_000_000 + age * 1_000 + amount
}

/// Renders the system and user prompts of a run for `account` and `trigger`: the tier,
/// tone, step and disclosure partials picked for the account, then `system` with the
/// account's data, then `user_inbound` or `user_step`. Used by the agent, and by
/// validation against sample accounts (`documents::validate_set`).
pub(crate) fn render_run_prompts(
    prompts: &PromptSet,
    company_name: &str,
    account: &Account,
    trigger: &Trigger,
    compact: bool,
) -> Result<(String, String), PromptError> {
    let kind = if account.initial_sent {
        "subsequent"
    } else {
        "initial"
    };
    let company = json!({"company": company_name});
    let footer = prompts.render(
        &format!("disclosure/{}-{kind}", account.customer.jurisdiction),
        &company,
    )?;
    let step = match trigger {
        Trigger::Inbound { .. } => "inbound_reply".to_string(),
        Trigger::Step { step } | Trigger::ProcedureStep { step, .. } => step.clone(),
    };
    let local = account.now.with_timezone(&account.customer.time_zone);
    let open_cases: Vec<String> = account
        .cases
        .iter()
        .filter(|c| {
            matches!(
                c.status,
                argent_core::CaseStatus::Open | argent_core::CaseStatus::InProgress
            )
        })
        .map(|c| format!("{} {} ({})", c.id, c.kind, c.invoice_numbers.join(", ")))
        .collect();
    let open_promises: Vec<String> = account
        .open_promises()
        .iter()
        .map(|p| format!("{} by {}", p.amount, p.promised_date))
        .collect();
    let data = json!({
        "company": company_name,
        "customer": {
            "id": account.customer.id,
            "name": account.customer.name,
            "tier": account.customer.tier.as_str(),
            "jurisdiction": account.customer.jurisdiction.as_str(),
            "time_zone": account.customer.time_zone.name(),
        },
        "contact_email": account.contact_email().unwrap_or("(none on file: do not email)"),
        "segment": account.risk.segment.as_str(),
        "now_local": local.format("%Y-%m-%d %H:%M").to_string(),
        "balance_text": account.balance_text(),
        "invoices": account.open_invoices_json(),
        "open_cases": if open_cases.is_empty() { "none".to_string() } else { open_cases.join("; ") },
        "open_promises": if open_promises.is_empty() { "none".to_string() } else { open_promises.join("; ") },
        "tier": prompts.render(&format!("tier/{}", account.customer.tier), &company)?,
        "tone": prompts.render(&format!("tone/{}", tone(account.risk.segment)), &company)?,
        "step": prompts.render(&format!("step/{step}"), &company)?,
        "footer": footer,
        // The compact prompts take the block without indentation (fewer tokens).
        "context_json": if compact {
            serde_json::to_string(&account.context_json(&footer))
        } else {
            serde_json::to_string_pretty(&account.context_json(&footer))
        }
        .unwrap_or_default(),
    });
    let system = prompts.render(crate::budget::system_template(compact), &data)?;
    let user = match trigger {
        Trigger::Inbound {
            from,
            subject,
            body,
            received_at,
            mail,
            ..
        } => {
            let mut user = prompts.render(
                "user_inbound",
                &json!({"from": from, "subject": subject, "body": body, "received_at": received_at.to_rfc3339()}),
            )?;
            if let Some(m) = mail {
                user.push_str(&inbound_mail_note(m));
            }
            user
        }
        Trigger::Step { step } => prompts.render("user_step", &json!({"step_name": step}))?,
        Trigger::ProcedureStep {
            step,
            step_id,
            step_kind,
            procedure,
            version,
            invoices,
            promise_id,
            reason,
            ..
        } => {
            let mut user = prompts.render("user_step", &json!({"step_name": step}))?;
            user.push_str(&format!(
                "\n\nProcedure {procedure} v{version}, step {step_id} (kind: {step_kind}), due because: {reason}."
            ));
            if !invoices.is_empty() {
                user.push_str(&format!(
                    "\nThis one contact covers these invoices: {}.",
                    invoices.join(", ")
                ));
            }
            if let Some(p) = promise_id {
                user.push_str(&format!("\nThe promise to pay that was broken: {p}."));
            }
            if step_kind == "call_task" {
                user.push_str("\nThis step is a telephone call by a collector: use request_call with the reason and a call script; do not send an email.");
            }
            user
        }
    };
    Ok((system, user))
}

/// What the model is told about a mail beyond its new text: who sent it (on file or
/// not), the authentication verdict, the attachments (described only) and the quoted
/// history, fenced and marked as quoted (it is not what the customer wrote now).
fn inbound_mail_note(m: &InboundMail) -> String {
    let mut out = String::new();
    if !m.sender_on_file {
        out.push_str("\n\nNote: the sender is NOT a contact on file for this customer (the message came in the customer's thread). Do not disclose anything about the debt to this sender.");
    }
    if m.auth_failed {
        out.push_str(&format!(
            "\n\nNote: this message failed sender authentication ({}); it may be forged.",
            m.auth
        ));
    }
    if !m.attachments.is_empty() {
        out.push_str("\n\nAttachments (not opened; names only): ");
        out.push_str(&m.attachments.join("; "));
        out.push('.');
    }
    if let Some(q) = &m.quoted {
        const MAX_QUOTED: usize = 4000;
        let q: String = q.chars().take(MAX_QUOTED).collect();
        out.push_str("\n\nQuoted history below the customer's message (earlier messages, NOT written now; context only):\n<quoted>\n");
        out.push_str(&q);
        out.push_str("\n</quoted>");
    }
    out
}

impl Agent {
    fn render_prompts(
        &self,
        account: &Account,
        trigger: &Trigger,
    ) -> Result<(String, String), AgentError> {
        Ok(render_run_prompts(
            &self.prompts,
            &self.config.company,
            account,
            trigger,
            self.config.model_settings.compact_prompts,
        )?)
    }

    /// The definitions of this agent's tools as its requests send them (compact or not, by
    /// its settings): made once and shared, since each holds its tool's JSON Schema (a
    /// copy a request, and its drop, were ~4% of the 500-concurrent bench's CPU; #16).
    /// Made again, and not kept, if `registry` was replaced after they were made.
    pub(crate) fn tool_definitions(&self) -> Arc<Vec<ToolDefinition>> {
        let compact = self.config.model_settings.compact_prompts;
        let made = self.tool_defs[usize::from(compact)].get_or_init(|| {
            let defs = crate::budget::tool_definitions(&self.registry, compact);
            (self.registry.clone(), Arc::new(defs))
        });
        if Arc::ptr_eq(&made.0, &self.registry) {
            made.1.clone()
        } else {
            Arc::new(crate::budget::tool_definitions(&self.registry, compact))
        }
    }

    /// Refuses a run whose first request (`system`, `user` and the tools) cannot fit the
    /// configured context window less the output bound. No-op without a context window.
    fn check_fits(&self, customer_id: &str, system: &str, user: &str) -> Result<(), AgentError> {
        if self.config.model_settings.context_window.is_none() {
            return Ok(());
        }
        let counter = crate::budget::counter_for(&self.model.name());
        let size = crate::budget::measure(&counter, system, user, &self.tool_definitions());
        crate::budget::check_fit(&self.config.model_settings, customer_id, size)
    }

    /// An event of `run`, attributed to the agent, or to the person whose action the run
    /// is (`crate::person`).
    pub(crate) fn audit(&self, run: &RunRecord, kind: &str, payload: Value) -> NewAuditEvent {
        let actor = match (run.trigger.get("kind"), run.trigger.get("person")) {
            (Some(Value::String(k)), Some(Value::String(p))) if k == "person" => p.clone(),
            _ => self.config.actor.clone(),
        };
        NewAuditEvent {
            run_id: Some(run.id.clone()),
            customer_id: Some(run.customer_id.clone()),
            actor,
            kind: kind.to_string(),
            payload,
        }
    }

    /// Starts a run for one account and drives it to its end. The run record, its first
    /// messages and its `run_started` event commit together, before the first model call:
    /// a process that dies during that call leaves a run that `resume` finishes.
    pub async fn start(
        &self,
        customer_id: &str,
        trigger: Trigger,
    ) -> Result<RunOutcome, AgentError> {
        let now = self.now();
        // Reserved until the run's record commits below (concurrent starts of the same
        // trigger at this instant get other ids).
        let (run_id, reservation) = self.run_id_for(customer_id, &trigger, now).await?;
        // What the customer said is recognised before the model reads it, and its facts
        // are set before the account is loaded: the policy sees them whatever the model
        // makes of the message (see `signals`).
        if let Trigger::Inbound {
            from,
            subject,
            body,
            ..
        } = &trigger
        {
            // The size check comes before the signals' writes too: a run that cannot
            // start writes nothing.
            if self.config.model_settings.context_window.is_some() {
                let account = self.load_account(customer_id, now).await?;
                let (system, user) = self.render_prompts(&account, &trigger)?;
                self.check_fits(customer_id, &system, &user)?;
            }
            self.recognise_signals(&run_id, customer_id, from, subject, body, now)
                .await?;
        }
        let (run, mut state) = self
            .new_run(customer_id, &trigger, run_id, now, None)
            .await?;
        let mut tx = self.store.begin_deferred().await?;
        self.create(&mut tx, &run, &state, None).await?;
        tx.commit().await?;
        drop(reservation);
        state.mark_saved();
        self.drive(run, state, None).await
    }

    /// Starts run `run_id` for a worker's work item and drives it to its end. The run
    /// record, its first messages, its `run_started` event and the work item's link to it
    /// (`StoreTx::set_work_run`, which needs the worker's lease) commit in one
    /// transaction, so a worker that takes the item over after a crash finds either no run
    /// (and starts it) or this one (and resumes it): never two.
    pub async fn start_linked(
        &self,
        customer_id: &str,
        trigger: Trigger,
        run_id: &str,
        link: &WorkLink,
        end: Option<&dyn AtRunEnd>,
    ) -> Result<RunOutcome, AgentError> {
        let now = self.now();
        let (run, mut state) = self
            .new_run(customer_id, &trigger, run_id.to_string(), now, Some(link))
            .await?;
        let mut tx = self.store.begin_deferred().await?;
        self.create(&mut tx, &run, &state, Some(link)).await?;
        tx.commit().await?;
        state.mark_saved();
        crash_point("run_started");
        self.drive(run, state, end).await
    }

    /// A new run's record and state: the account loaded and the prompts rendered for it.
    async fn new_run(
        &self,
        customer_id: &str,
        trigger: &Trigger,
        run_id: String,
        now: DateTime<Utc>,
        link: Option<&WorkLink>,
    ) -> Result<(RunRecord, RunState), AgentError> {
        let account = self.load_account(customer_id, now).await?;
        self.prepare_policy(account.customer.jurisdiction);
        let (system, user) = self.render_prompts(&account, trigger)?;
        self.check_fits(customer_id, &system, &user)?;
        let state = RunState::new(system, user);
        let run = RunRecord {
            id: run_id,
            customer_id: customer_id.to_string(),
            trigger: serde_json::to_value(trigger).unwrap_or(Value::Null),
            status: RunStatus::Running,
            step: 0,
            tokens: 0,
            state: state.stored()?,
            model: self.model.name(),
            prompt_version: self.prompts.version().to_string(),
            policy_version: self.policy_version.clone(),
            created_at: now,
            updated_at: now,
            lease_owner: link.map(|l| l.owner.clone()),
            lease_until: link.map(|l| l.lease_until),
        };
        Ok((run, state))
    }

    /// Writes a new run in `tx`: its record, its first messages, its `run_started` event
    /// and, for a worker, the work item's link to it.
    async fn create(
        &self,
        tx: &mut StoreTx,
        run: &RunRecord,
        state: &RunState,
        link: Option<&WorkLink>,
    ) -> Result<(), AgentError> {
        tx.create_run(run).await?;
        if let Some((first, rows)) = state.unsaved()? {
            tx.append_run_messages(&run.id, first, &rows).await?;
        }
        let mut started = json!({"trigger": run.trigger, "model": run.model, "prompt_version": run.prompt_version, "policy_version": run.policy_version});
        started["model_settings"] = json!({
            "agent": self.config.model_settings.to_json(),
            "compliance": self.config.check_settings.as_ref().map(|s| s.to_json()),
        });
        if let Some(l) = link {
            started["work_id"] = json!(l.work_id);
        }
        tx.audit_append(self.audit(run, "run_started", started))
            .await?;
        if let Some(l) = link {
            tx.set_work_run(&l.work_id, &l.owner, &run.id).await?;
        }
        Ok(())
    }

    /// Continues a run from its last checkpoint. Tool calls that already took effect are
    /// not repeated: their recorded outcome is reused.
    pub async fn resume(&self, run_id: &str) -> Result<RunOutcome, AgentError> {
        self.resume_ending(run_id, None).await
    }

    /// [`Agent::resume`] with `end` added to the transaction that ends the run (see
    /// [`AtRunEnd`]; not called when the run had already ended).
    pub async fn resume_ending(
        &self,
        run_id: &str,
        end: Option<&dyn AtRunEnd>,
    ) -> Result<RunOutcome, AgentError> {
        let run = self.store.run(run_id).await?;
        let state = self.load_state(&run).await?;
        if run.status != RunStatus::Running {
            return Ok(outcome(&run, run.status, &state));
        }
        self.drive(run, state, end).await
    }

    /// What a run did so far, as its checkpoint has it, without driving it (a run still
    /// `running` stays as it is).
    pub async fn run_outcome(&self, run_id: &str) -> Result<RunOutcome, AgentError> {
        let run = self.store.run(run_id).await?;
        let state = self.load_state(&run).await?;
        Ok(outcome(&run, run.status, &state))
    }

    /// A run's state as its checkpoint left it: rebuilt from its saved messages (delta
    /// checkpoints), or read whole from `runs.state` (a run checkpointed before those).
    async fn load_state(&self, run: &RunRecord) -> Result<RunState, AgentError> {
        let unreadable = |why: String| {
            AgentError::Invariant(format!("run {} checkpoint unreadable: {why}", run.id))
        };
        if run.state.get("delta").is_none() {
            return serde_json::from_value(run.state.clone())
                .map_err(|e| unreadable(e.to_string()));
        }
        let header: DeltaHeader =
            serde_json::from_value(run.state.clone()).map_err(|e| unreadable(e.to_string()))?;
        let rows = self.store.run_messages(&run.id).await?;
        if rows.len() != header.delta.messages {
            return Err(unreadable(format!(
                "the checkpoint has {} messages, {} are saved",
                header.delta.messages,
                rows.len()
            )));
        }
        let mut state = RunState {
            invalid_turns: header.invalid_turns,
            repairs: header.repairs,
            ..Default::default()
        };
        for (i, row) in rows.into_iter().enumerate() {
            if usize::try_from(row.idx).ok() != Some(i) {
                return Err(unreadable(format!("message {i} is missing")));
            }
            state.messages.push(
                serde_json::from_value(row.message)
                    .map_err(|e| unreadable(format!("message {i}: {e}")))?,
            );
            if let Some(o) = row.outcome {
                state.outcomes.push(
                    serde_json::from_value(o)
                        .map_err(|e| unreadable(format!("outcome of message {i}: {e}")))?,
                );
            }
        }
        state.saved = Some((state.messages.len(), state.outcomes.len()));
        Ok(state)
    }

    /// The loop. Each model step is one transaction: the model call's event commits with
    /// the first of its tool calls (the call's row, its decision and audit events, its side
    /// effect) and the checkpoint that records the answer and that call's result; each
    /// further call of the same turn is a transaction of its own, judged only after the
    /// calls before it committed (so its policy decision sees what they did); a final
    /// answer commits with the run's end.
    async fn drive(
        &self,
        mut run: RunRecord,
        mut state: RunState,
        end: Option<&dyn AtRunEnd>,
    ) -> Result<RunOutcome, AgentError> {
        // The model call's event, until it commits with what the answer led to.
        let mut answered: Option<NewAuditEvent> = None;
        loop {
            // 1. Answer any tool calls of the last assistant turn that have no result yet.
            if let Some((turn, calls)) = unanswered(&state.messages) {
                // Calls of an answer received in this loop were never recorded (they are
                // saved with the answer, or not at all); a resumed run's may have been.
                let fresh = answered.is_some();
                let mut invalid = 0;
                // Judged calls not recorded yet. A call that changes nothing
                // (`Judged::changes_nothing`) waits for the next call of the turn and is
                // recorded in its transaction: one commit for both. Nothing the next
                // judgment reads is written by it, and a crash before that commit leaves
                // both unrecorded, for a resume to judge again.
                let mut held: Vec<(&ToolCall, bool, Judged)> = Vec::new();
                let last = calls.len().saturating_sub(1);
                for (i, (call, duplicate)) in calls.iter().enumerate() {
                    let judged = if *duplicate {
                        Judged::Duplicate
                    } else {
                        self.judge_call(&run, turn, call, fresh).await?
                    };
                    let wait = i < last && judged.changes_nothing();
                    held.push((call, *duplicate, judged));
                    if wait {
                        continue;
                    }
                    let mut tx = self.store.begin_deferred().await?;
                    let model_call = answered.take();
                    if let Some(e) = &model_call {
                        tx.audit_append(e.clone()).await?;
                    }
                    let before = state.messages.len();
                    let mut recorded = Vec::with_capacity(held.len());
                    for (call, duplicate, judged) in held.drain(..) {
                        let reused = matches!(judged, Judged::Done(_));
                        let o = self
                            .record_call(&mut tx, &run, turn, call, judged, fresh)
                            .await?;
                        if o.status == CallStatus::Invalid {
                            invalid += 1;
                        }
                        state.messages.push(ChatMessage::tool_result(
                            call.id.clone(),
                            o.model_text.clone(),
                        ));
                        // A replay that no longer follows its recording fails here, before
                        // this call's side effect commits (`tx` is dropped: rolled back). It
                        // compares what the next request will carry: the wire form.
                        if let Err(e) = self
                            .model
                            .check_continuation(&wire_history(&state.messages))
                        {
                            drop(tx);
                            state.messages.truncate(before);
                            let failed = self.audit(
                                &run,
                                "model_error",
                                json!({"error": e.to_string(), "kind": e.kind()}),
                            );
                            self.finish_with(
                                run,
                                state,
                                RunStatus::Failed,
                                &e.to_string(),
                                model_call.into_iter().chain([failed]).collect(),
                                None,
                            )
                            .await?;
                            return Err(e.into());
                        }
                        recorded.push((o, call, !reused && !duplicate));
                    }
                    state
                        .outcomes
                        .extend(recorded.iter().map(|(o, _, _)| o.clone()));
                    self.save(&mut tx, &mut run, &state).await?;
                    tx.commit().await?;
                    state.mark_saved();
                    for (_, call, ran) in &recorded {
                        if *ran {
                            crash_point(&call.name);
                        }
                    }
                }
                state.invalid_turns = if invalid == calls.len() {
                    state.invalid_turns + 1
                } else {
                    0
                };
                if state.invalid_turns > self.config.max_invalid_turns {
                    return self
                        .finish(
                            run,
                            state,
                            RunStatus::NeedsPerson,
                            "too many turns with only invalid tool calls",
                            end,
                        )
                        .await;
                }
                continue;
            }
            // 2. Budgets.
            if run.step >= i64::from(self.config.max_steps) {
                return self
                    .finish(run, state, RunStatus::NeedsPerson, "step budget spent", end)
                    .await;
            }
            if run.tokens >= self.config.max_tokens as i64 {
                return self
                    .finish(
                        run,
                        state,
                        RunStatus::NeedsPerson,
                        "token budget spent",
                        end,
                    )
                    .await;
            }
            // 3. Ask the model.
            let mut req = self.config.model_settings.apply(
                ChatRequest::new(wire_history(&state.messages))
                    .with_shared_tools(self.tool_definitions()),
            );
            if state.repairs > 0 {
                // After a repair turn, one call at a time: fewer arguments to get wrong.
                req = req.with_parallel_tool_calls(false);
            }
            let started = Instant::now();
            let resp = match self.model.chat(&req).await {
                Ok(r) => r,
                // The endpoint refused what the model produced: the same request would fail
                // the same way, so the model is shown the error and asked again (bounded).
                Err(e) if e.is_model_output() && state.repairs < self.config.max_repairs => {
                    state.repairs += 1;
                    let repair = self.audit(
                        &run,
                        "model_repair",
                        json!({"repair": state.repairs, "max_repairs": self.config.max_repairs, "error": e.to_string(), "kind": e.kind()}),
                    );
                    state.messages.push(ChatMessage::user(repair_note(&e)));
                    let mut tx = self.store.begin_deferred().await?;
                    tx.audit_append(repair).await?;
                    self.save(&mut tx, &mut run, &state).await?;
                    tx.commit().await?;
                    state.mark_saved();
                    continue;
                }
                Err(e) => {
                    let failed = self.audit(
                        &run,
                        "model_error",
                        json!({"error": e.to_string(), "kind": e.kind(), "repairs": state.repairs}),
                    );
                    if e.is_operator_error() {
                        // Misconfiguration (model, key, cassette): the caller gets the error;
                        // nobody at the desk can fix it for the customer.
                        self.finish_after(
                            run,
                            state,
                            RunStatus::Failed,
                            &e.to_string(),
                            Some(failed),
                            None,
                        )
                        .await?;
                        return Err(e.into());
                    }
                    let why = format!("{MODEL_FAILED}: {e}");
                    return self
                        .finish_after(run, state, RunStatus::NeedsPerson, &why, Some(failed), end)
                        .await;
                }
            };
            run.step += 1;
            run.tokens += i64::try_from(resp.usage.total()).unwrap_or(i64::MAX);
            let model_call = self.audit(
                &run,
                "model_call",
                json!({
                    "step": run.step,
                    "model": resp.model,
                    "prompt_version": run.prompt_version,
                    "prompt_tokens": resp.usage.prompt_tokens,
                    "completion_tokens": resp.usage.completion_tokens,
                    "latency_ms": started.elapsed().as_millis() as u64,
                    "tool_calls": resp.tool_calls.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                }),
            );
            let done = resp.tool_calls.is_empty();
            state.messages.push(resp.to_message());
            // The model call's event commits with the checkpoint that records its answer:
            // with the first call's transaction, or, for the last answer, with the run's end.
            if done {
                return self
                    .finish_after(
                        run,
                        state,
                        RunStatus::Finished,
                        "model finished",
                        Some(model_call),
                        end,
                    )
                    .await;
            }
            answered = Some(model_call);
        }
    }

    /// Queues the run's checkpoint in `tx`: the messages not saved yet (delta checkpoints)
    /// and the run's step, tokens and state header (or, for a run checkpointed whole, its
    /// whole state). The caller marks the state saved once `tx` committed.
    async fn save(
        &self,
        tx: &mut StoreTx,
        run: &mut RunRecord,
        state: &RunState,
    ) -> Result<(), AgentError> {
        if let Some((first, rows)) = state.unsaved()? {
            tx.append_run_messages(&run.id, first, &rows).await?;
        }
        run.state = state.stored()?;
        tx.checkpoint_run(&run.id, run.step, run.tokens, &run.state)
            .await?;
        Ok(())
    }

    async fn finish(
        &self,
        run: RunRecord,
        state: RunState,
        status: RunStatus,
        why: &str,
        end: Option<&dyn AtRunEnd>,
    ) -> Result<RunOutcome, AgentError> {
        self.finish_after(run, state, status, why, None, end).await
    }

    /// Ends the run: its last checkpoint, its status and its `run_finished` event (after
    /// `event`, what ended it, if given) commit together.
    async fn finish_after(
        &self,
        run: RunRecord,
        state: RunState,
        status: RunStatus,
        why: &str,
        event: Option<NewAuditEvent>,
        end: Option<&dyn AtRunEnd>,
    ) -> Result<RunOutcome, AgentError> {
        self.finish_with(run, state, status, why, event.into_iter().collect(), end)
            .await
    }

    /// [`Agent::finish_after`] with any number of events before `run_finished`; `end`
    /// joins the transaction unless the run failed.
    async fn finish_with(
        &self,
        mut run: RunRecord,
        mut state: RunState,
        status: RunStatus,
        why: &str,
        events: Vec<NewAuditEvent>,
        end: Option<&dyn AtRunEnd>,
    ) -> Result<RunOutcome, AgentError> {
        let counts = |s: CallStatus| state.outcomes.iter().filter(|o| o.status == s).count();
        let task =
            (status == RunStatus::NeedsPerson).then(|| self.needs_person_task(&run, &state, why));
        let mut payload = json!({
            "status": format!("{status:?}"), "why": why, "steps": run.step, "tokens": run.tokens,
            "executed": counts(CallStatus::Executed), "queued": counts(CallStatus::Queued),
            "refused": counts(CallStatus::Refused), "invalid": counts(CallStatus::Invalid),
        });
        if let Some(t) = &task {
            payload["task_id"] = json!(t.id);
        }
        let finished = self.audit(&run, "run_finished", payload);
        let mut tx = self.store.begin_deferred().await?;
        self.save(&mut tx, &mut run, &state).await?;
        tx.finish_run(&run.id, status).await?;
        // A run that could not finish is handed to a collector in the transaction that
        // ends it: never a run that ends with nobody holding the customer's matter.
        if let Some(t) = &task {
            tx.create_task(t).await?;
        }
        tx.audit_append_many(events.into_iter().chain([finished]).collect())
            .await?;
        let mut out = outcome(&run, status, &state);
        if status != RunStatus::Finished {
            out.ended_because = Some(why.to_string());
        }
        if let Some(end) = end
            && status != RunStatus::Failed
        {
            end.at_end(&mut tx, &out).await?;
        }
        tx.commit().await?;
        state.mark_saved();
        Ok(out)
    }

    /// The collector's task for a run that could not finish: what started it (the
    /// customer's message in full, or the step), why it ended, what its calls did, and
    /// where its transcript is. Its id is derived from the run's, so it exists once.
    fn needs_person_task(&self, run: &RunRecord, state: &RunState, why: &str) -> NewTask {
        let trigger = match serde_json::from_value::<Trigger>(run.trigger.clone()) {
            Ok(Trigger::Inbound {
                from,
                subject,
                body,
                received_at,
                ..
            }) => format!(
                "Email from {from} received {}, subject \"{subject}\":\n\n{body}",
                received_at.to_rfc3339()
            ),
            Ok(Trigger::Step { step }) => format!("Dunning step {step}."),
            Ok(Trigger::ProcedureStep {
                step_id,
                step_kind,
                procedure,
                version,
                invoices,
                reason,
                work_id,
                ..
            }) => format!(
                "Procedure {procedure} v{version}, step {step_id} ({step_kind}) for invoices {}, due because: {reason} (work item {work_id}).",
                if invoices.is_empty() {
                    "-".to_string()
                } else {
                    invoices.join(", ")
                }
            ),
            Err(_) => format!("Trigger: {}", run.trigger),
        };
        let calls = if state.outcomes.is_empty() {
            "No tool call was made.".to_string()
        } else {
            let lines: Vec<String> = state
                .outcomes
                .iter()
                .map(|o| {
                    let approval = o
                        .approval_id
                        .as_deref()
                        .map(|a| format!(" (approval {a})"))
                        .unwrap_or_default();
                    format!("- {} {}{approval}", o.tool, o.status.as_str())
                })
                .collect();
            format!(
                "Tool calls before it ended (executed ones took effect; queued ones wait for approval):\n{}",
                lines.join("\n")
            )
        };
        NewTask {
            id: needs_person_task_id(&run.id),
            kind: argent_core::TaskKind::FollowUp,
            customer_id: run.customer_id.clone(),
            owner_role: argent_core::Role::Collector,
            assignee: None,
            title: format!("The agent could not finish run {}: {why}", run.id),
            body: format!(
                "The agent's run {run_id} for customer {customer} ended without finishing: {why}. \
                 Please handle what started it.\n\n{trigger}\n\n{calls}\n\n\
                 The run's transcript: argent runs show {run_id}.",
                run_id = run.id,
                customer = run.customer_id,
            ),
            due_at: None,
            source: run.id.clone(),
            created_at: self.now(),
            actor: self.config.actor.clone(),
        }
    }

    /// The approval item for a call the policy holds for review (its id derived from the
    /// call's, the account's priority, the roles that may approve), and the tool result the
    /// model is shown for it.
    pub(crate) fn approval_item(
        &self,
        run: &RunRecord,
        call_id: &str,
        tool: &str,
        action: &Action,
        decision: &Decision,
        account: &Account,
    ) -> (NewApproval, String) {
        let approval_id = self.approval_id_for(call_id);
        let amount = action.principal_amount();
        let args = serde_json::to_value(action)
            .ok()
            .and_then(|v| v.get("args").cloned())
            .unwrap_or(Value::Null);
        let model_text = match &decision.held_with {
            None => json!({
                "status": "queued_for_approval",
                "approval_id": approval_id,
                "rules": decision.decisive_rules().map(|r| json!({"id": r.id, "message": r.message})).collect::<Vec<_>>(),
                "note": "A human reviewer will decide. Do not repeat this call; you may tell the customer it is being reviewed.",
            }),
            Some(action_item) => json!({
                "status": "queued_for_approval",
                "approval_id": approval_id,
                "held_with": action_item,
                "rules": decision.decisive_rules().map(|r| json!({"id": r.id, "message": r.message})).collect::<Vec<_>>(),
                "note": format!("This email refers to an action still waiting for a person (approval {action_item}); it is held with it and goes only if that is approved. Do not repeat this call."),
            }),
        }
        .to_string();
        let item = NewApproval {
            id: approval_id,
            call_id: call_id.to_string(),
            run_id: run.id.clone(),
            customer_id: run.customer_id.clone(),
            tool: tool.to_string(),
            action: args,
            decision: serde_json::to_value(decision).unwrap_or(Value::Null),
            context: approval_context(account, &run.trigger),
            priority: priority(account, amount.map_or(0, |m| m.minor)),
            amount_minor: amount.map_or(0, |m| m.minor),
            currency: amount.map_or(String::new(), |m| m.currency.to_string()),
            required_role: decision
                .approvers()
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(","),
            bundle_of: decision.held_with.clone(),
        };
        (item, model_text)
    }

    /// Judges and carries out one tool call, exactly once per call id, in a transaction of
    /// its own (a person's action: `crate::person`).
    pub(crate) async fn handle_call(
        &self,
        run: &RunRecord,
        turn: usize,
        call: &ToolCall,
    ) -> Result<CallOutcome, AgentError> {
        let judged = self.judge_call(run, turn, call, false).await?;
        if let Judged::Done(prev) = judged {
            return Ok(prev);
        }
        let mut tx = self.store.begin_deferred().await?;
        let o = self
            .record_call(&mut tx, run, turn, call, judged, false)
            .await?;
        tx.commit().await?;
        crash_point(&call.name);
        Ok(o)
    }

    /// Judges one tool call without writing anything (and without holding the store's
    /// writer: the content check may ask a model): its recorded outcome if it was carried
    /// out before (only looked up unless `fresh`, a call of an answer received in this
    /// loop, which cannot have been recorded), or whether its arguments are valid, and
    /// what the policy decides on the account as it stands now.
    async fn judge_call(
        &self,
        run: &RunRecord,
        turn: usize,
        call: &ToolCall,
        fresh: bool,
    ) -> Result<Judged, AgentError> {
        if !fresh {
            let call_id = format!("{}/{}/{}", run.id, turn, call.id);
            if let Some(rec) = self.store.tool_call(&call_id).await?
                && rec.status != ToolCallStatus::Received
                && let Some(prev) = rec
                    .result
                    .and_then(|r| serde_json::from_value::<CallOutcome>(r).ok())
            {
                return Ok(Judged::Done(prev));
            }
        }
        let now = self.now();
        let action = match self.registry.parse(&call.name, &call.arguments) {
            Ok(a) => a,
            Err(e) => return Ok(Judged::Invalid(e.to_string())),
        };
        if let Some((earlier, status)) = self.earlier_same_action(run, turn, call, &action).await? {
            return Ok(Judged::Repeat { earlier, status });
        }
        let account = self.load_account(&run.customer_id, now).await?;
        let policy = self.policy_for(&account)?;
        let mut ctx = account.policy_context();
        crate::compliance::apply_inbound(&mut ctx, &run.trigger);
        let mut decision = evaluate(policy, &action, &ctx);
        // The second content check (emails the rules allowed or queued): it can only hold.
        let checked = self
            .check_content(policy, &action, ctx.inbound_text.as_deref(), &mut decision)
            .await;
        if let Some(rule) = procedure_hold(&run.trigger, &action) {
            decision.fire(rule);
        }
        Ok(Judged::Decided {
            action,
            account: Box::new(account),
            decision,
            checked,
            now,
        })
    }

    /// The earlier call of this run with the same action as `call`, if one was executed or
    /// went to a person (queued, approved or rejected), with its status. Read from the
    /// run's stored calls, so it holds across a resume. Reading the aging changes nothing
    /// and is never a repeat.
    async fn earlier_same_action(
        &self,
        run: &RunRecord,
        turn: usize,
        call: &ToolCall,
        action: &Action,
    ) -> Result<Option<(String, ToolCallStatus)>, AgentError> {
        if matches!(action, Action::ReadAging(_)) {
            return Ok(None);
        }
        let call_id = format!("{}/{}/{}", run.id, turn, call.id);
        let key = action_key(action);
        for rec in self.store.run_effective_tool_calls(&run.id).await? {
            if rec.call_id == call_id || rec.name != call.name {
                continue;
            }
            if let Ok(earlier) = self.registry.parse(&rec.name, &rec.arguments)
                && action_key(&earlier) == key
            {
                return Ok(Some((rec.call_id, rec.status)));
            }
        }
        Ok(None)
    }

    /// Writes what became of a judged call in `tx`: its row (for a `fresh` call, inserted
    /// once with its outcome, and the transaction fails if the id is already recorded), its
    /// audit events, and for an allowed action the execution (whose writes are part of
    /// `tx`), for a held one the approval item. Returns the outcome the model is shown.
    async fn record_call(
        &self,
        tx: &mut StoreTx,
        run: &RunRecord,
        turn: usize,
        call: &ToolCall,
        judged: Judged,
        fresh: bool,
    ) -> Result<CallOutcome, AgentError> {
        let call_id = format!("{}/{}/{}", run.id, turn, call.id);
        let (action, account, decision, checked, now) = match judged {
            Judged::Done(prev) => return Ok(prev),
            Judged::Duplicate => {
                let error = format!(
                    "duplicate tool call id '{}': an earlier call in this turn already has this id, so this call was not run",
                    call.id
                );
                tx.audit_append(self.audit(
                    run,
                    "validation_error",
                    json!({"call_id": call_id, "tool": call.name, "arguments": call.arguments, "error": error, "duplicate": true}),
                ))
                .await?;
                return Ok(CallOutcome {
                    call_id,
                    tool: call.name.clone(),
                    arguments: call.arguments.clone(),
                    status: CallStatus::Invalid,
                    rules: Vec::new(),
                    approval_id: None,
                    model_text: json!({"status": "duplicate_call_id", "error": error, "note": "Nothing was done for this call. Give every tool call its own id; call again with a new id if it is still needed."}).to_string(),
                });
            }
            Judged::Repeat { earlier, status } => {
                let error = format!(
                    "this call repeats call '{earlier}' of this run (same tool, same arguments), which was already {}: it was not run again",
                    match status {
                        ToolCallStatus::Executed => "executed",
                        _ => "sent to a person for approval",
                    }
                );
                let model_text = json!({"status": "already_done", "earlier_call_id": earlier, "error": error, "note": "Nothing was done for this call. Do not repeat an action; if nothing else is needed, give your final answer."}).to_string();
                let details = json!({"call_id": call_id, "tool": call.name, "arguments": call.arguments, "error": error, "repeat_of": earlier});
                return self
                    .record_not_run(tx, run, call, &call_id, fresh, model_text, details)
                    .await;
            }
            Judged::Invalid(error) => {
                let model_text = json!({"status": "invalid_arguments", "error": error, "note": "Nothing was done. Fix the arguments and call again."}).to_string();
                let details = json!({"call_id": call_id, "tool": call.name, "arguments": call.arguments, "error": error});
                return self
                    .record_not_run(tx, run, call, &call_id, fresh, model_text, details)
                    .await;
            }
            Judged::Decided {
                action,
                account,
                decision,
                checked,
                now,
            } => (action, account, decision, checked, now),
        };
        if !fresh {
            tx.record_tool_call(
                &call_id,
                &run.id,
                &run.customer_id,
                &call.name,
                &call.arguments,
                ToolCallStatus::Received,
            )
            .await?;
        }
        tx.audit_append(self.audit(
            run,
            "tool_call",
            json!({"call_id": call_id, "tool": call.name, "action": action}),
        ))
        .await?;
        if let Some(c) = &checked {
            tx.audit_append(self.audit(run, "content_check", c.event(&call_id)))
                .await?;
        }
        tx.audit_append(self.audit(run, "policy_decision", decision_json(&call_id, &decision)))
            .await?;
        let rules: Vec<String> = decision.decisive_rules().map(|r| r.id.clone()).collect();
        let mut o = CallOutcome {
            call_id: call_id.clone(),
            tool: call.name.clone(),
            arguments: call.arguments.clone(),
            status: CallStatus::Refused,
            rules,
            approval_id: None,
            model_text: String::new(),
        };
        let status = match decision.outcome {
            Outcome::Allow => {
                let auth = authz::from_policy(&call_id, action, &decision).ok_or_else(|| {
                    AgentError::Invariant("allow decision did not authorise".into())
                })?;
                let mail = self.mail_context(Some(&run.trigger));
                let done = exec::execute(tx, auth, &account, now, &mail).await?;
                tx.audit_append(self.audit(
                    run,
                    argent_store::integrity::EXECUTED,
                    done.event_payload(
                        json!({"call_id": call_id, "tool": call.name, "basis": "policy_allow"}),
                    ),
                ))
                .await?;
                o.status = CallStatus::Executed;
                o.model_text = json!({"status": "executed", "result": done.result}).to_string();
                ToolCallStatus::Executed
            }
            Outcome::NeedsApproval => {
                let (item, model_text) =
                    self.approval_item(run, &call_id, &call.name, &action, &decision, &account);
                let approval_id = item.id.clone();
                tx.add_approval(&item).await?;
                let mut requested = json!({"call_id": call_id, "approval_id": approval_id, "approvers": decision.approvers()});
                if let Some(held) = &decision.held_with {
                    requested["held_with"] = json!(held);
                }
                tx.audit_append(self.audit(run, "approval_requested", requested))
                    .await?;
                o.status = CallStatus::Queued;
                o.approval_id = Some(approval_id);
                o.model_text = model_text;
                ToolCallStatus::Queued
            }
            Outcome::Deny => {
                tx.audit_append(self.audit(
                    run,
                    "refused",
                    json!({"call_id": call_id, "tool": call.name, "rules": o.rules}),
                ))
                .await?;
                o.model_text = json!({
                    "status": "refused",
                    "rules": decision.decisive_rules().map(|r| json!({"id": r.id, "message": r.message, "citation": r.citation})).collect::<Vec<_>>(),
                    "note": "Policy forbids this action; nothing was done. Revise it within the rules or escalate; do not retry it unchanged.",
                })
                .to_string();
                ToolCallStatus::Refused
            }
        };
        self.set_call(tx, run, call, &o, status, fresh).await?;
        Ok(o)
    }

    /// The call's row with its outcome: inserted (a `fresh` call; the transaction fails if
    /// the id is already recorded), or the row recorded earlier in `tx` moved to `status`.
    /// Records a call that is not run (its arguments invalid, or a repeat of an action the
    /// run already took): the row (when it came from a resumed checkpoint), a
    /// `validation_error` event with `details`, and its outcome with `model_text`.
    #[allow(clippy::too_many_arguments)]
    async fn record_not_run(
        &self,
        tx: &mut StoreTx,
        run: &RunRecord,
        call: &ToolCall,
        call_id: &str,
        fresh: bool,
        model_text: String,
        details: Value,
    ) -> Result<CallOutcome, AgentError> {
        let o = CallOutcome {
            call_id: call_id.to_string(),
            tool: call.name.clone(),
            arguments: call.arguments.clone(),
            status: CallStatus::Invalid,
            rules: Vec::new(),
            approval_id: None,
            model_text,
        };
        if !fresh {
            tx.record_tool_call(
                call_id,
                &run.id,
                &run.customer_id,
                &call.name,
                &call.arguments,
                ToolCallStatus::Invalid,
            )
            .await?;
        }
        tx.audit_append(self.audit(run, "validation_error", details))
            .await?;
        self.set_call(tx, run, call, &o, ToolCallStatus::Invalid, fresh)
            .await?;
        Ok(o)
    }

    async fn set_call(
        &self,
        tx: &mut StoreTx,
        run: &RunRecord,
        call: &ToolCall,
        o: &CallOutcome,
        status: ToolCallStatus,
        fresh: bool,
    ) -> Result<(), AgentError> {
        let result = to_value(o);
        if fresh {
            tx.insert_tool_call(
                &o.call_id,
                &run.id,
                &run.customer_id,
                &call.name,
                &call.arguments,
                status,
                &result,
            )
            .await?;
        } else {
            tx.set_tool_call(&o.call_id, status, Some(&result)).await?;
        }
        Ok(())
    }
}

/// Test hook: `ARGENT_TEST_CRASH_AFTER=<tool>` aborts the process right after a call of
/// that tool committed and before the run checkpointed it — the worst moment to die;
/// `ARGENT_TEST_CRASH_AFTER=email_delivered`, right after an email's delivery committed.
pub(crate) fn crash_point(tool: &str) {
    if std::env::var("ARGENT_TEST_CRASH_AFTER").is_ok_and(|t| t == tool) {
        eprintln!("ARGENT_TEST_CRASH_AFTER={tool}: aborting after commit, before checkpoint");
        std::process::abort();
    }
}

/// The conversation as it is sent to the model: a tool call whose arguments are not a JSON
/// object goes with `{}` in their place. The stored transcript keeps what the model wrote,
/// and the call's tool result (an `invalid_arguments` error) tells the model what was
/// wrong; a strict server (llama.cpp) that parses the history's arguments would otherwise
/// refuse every later request of the run.
pub(crate) fn wire_history(messages: &[ChatMessage]) -> Vec<ChatMessage> {
    messages
        .iter()
        .map(|m| match m {
            ChatMessage::Assistant {
                content,
                tool_calls,
            } if tool_calls.iter().any(|c| !is_json_object(&c.arguments)) => {
                ChatMessage::Assistant {
                    content: content.clone(),
                    tool_calls: tool_calls
                        .iter()
                        .map(|c| {
                            let mut c = c.clone();
                            if !is_json_object(&c.arguments) {
                                c.arguments = "{}".to_string();
                            }
                            c
                        })
                        .collect(),
                }
            }
            other => other.clone(),
        })
        .collect()
}

fn is_json_object(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object())
}

/// The note a repair turn adds to the conversation: what the endpoint refused and how to
/// answer instead. It comes from argent, not from the customer.
fn repair_note(e: &argent_llm::LlmError) -> String {
    let said = match e {
        argent_llm::LlmError::ModelOutput {
            status, message, ..
        } => format!("HTTP {status}: {message}"),
        other => other.to_string(),
    };
    format!(
        "Note from argent (not from the customer): the model server could not accept your last reply ({said}). \
         Nothing was done for it. Answer again. If you call a tool, use only the tools listed, \
         make one call at a time, and give its arguments as one valid JSON object matching the tool's schema."
    )
}

/// How [`RunOutcome::ended_because`] starts for a run the model failed (its endpoint
/// unreachable, overloaded or refusing its output past the retries and repairs).
pub const MODEL_FAILED: &str = "the model failed";

/// The id of the collector's task a `needs_person` run creates.
pub fn needs_person_task_id(run_id: &str) -> String {
    format!("TASK-RUN-{run_id}")
}

/// What makes two actions the same for [`Agent::earlier_same_action`]: the typed action
/// (tool and parsed arguments, so number and date spellings are already one) as canonical
/// JSON, object keys sorted, white space in text collapsed (`"Pay  on\nFriday"` is
/// `"Pay on Friday"`) and decimal amounts without trailing zeros (`"500.00"` is `"500"`).
pub(crate) fn action_key(action: &Action) -> String {
    fn canon(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                let collapsed: Vec<&str> = s.split_whitespace().collect();
                let mut text = collapsed.join(" ");
                // A decimal amount: "500.00" is "500", "12.50" is "12.5".
                if let Some((whole, frac)) = text.split_once('.')
                    && !whole.is_empty()
                    && !frac.is_empty()
                    && whole
                        .bytes()
                        .chain(frac.bytes())
                        .all(|b| b.is_ascii_digit())
                {
                    let frac = frac.trim_end_matches('0');
                    text = if frac.is_empty() {
                        whole.to_string()
                    } else {
                        format!("{whole}.{frac}")
                    };
                }
                out.push_str(&Value::String(text).to_string());
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canon(item, out);
                }
                out.push(']');
            }
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    if let Some(v) = map.get(*k) {
                        canon(v, out);
                    }
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    canon(
        &serde_json::to_value(action).unwrap_or(Value::Null),
        &mut out,
    );
    out
}

fn to_value(o: &CallOutcome) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

pub(crate) fn decision_json(call_id: &str, d: &Decision) -> Value {
    json!({
        "call_id": call_id,
        "outcome": d.outcome.as_str(),
        "rules": d.rules.iter().map(|r| json!({"id": r.id, "outcome": r.outcome.as_str(), "message": r.message, "citation": r.citation})).collect::<Vec<_>>(),
    })
}

/// What a reviewer needs to see beside the action.
pub(crate) fn approval_context(account: &Account, trigger: &Value) -> Value {
    json!({
        "customer": {"id": account.customer.id, "name": account.customer.name, "tier": account.customer.tier.as_str(), "jurisdiction": account.customer.jurisdiction.as_str()},
        "segment": account.risk.segment.as_str(),
        "risk_reasons": account.risk.reasons,
        "balance": account.balance_text(),
        "invoices": account.open_invoices_json(),
        "trigger": trigger,
    })
}

/// The last assistant turn's index and its tool calls that have no result yet, each with
/// whether an earlier call of the turn has the same id. Results are matched to calls by
/// position among the calls sharing an id, so a duplicate id is answered once per call.
fn unanswered(messages: &[ChatMessage]) -> Option<(usize, Vec<(ToolCall, bool)>)> {
    let idx = messages
        .iter()
        .rposition(|m| matches!(m, ChatMessage::Assistant { .. }))?;
    let mut answered: Vec<&str> = messages[idx + 1..]
        .iter()
        .filter_map(|m| match m {
            ChatMessage::Tool { tool_call_id, .. } => Some(tool_call_id.as_str()),
            _ => None,
        })
        .collect();
    let calls = messages[idx].tool_calls();
    let mut pending: Vec<(ToolCall, bool)> = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        let duplicate = calls[..i].iter().any(|earlier| earlier.id == c.id);
        match answered.iter().position(|a| *a == c.id) {
            Some(p) => {
                answered.remove(p);
            }
            None => pending.push((c.clone(), duplicate)),
        }
    }
    (!pending.is_empty()).then_some((idx, pending))
}

fn outcome(run: &RunRecord, status: RunStatus, state: &RunState) -> RunOutcome {
    let final_text = state.messages.last().and_then(|m| match m {
        ChatMessage::Assistant {
            content,
            tool_calls,
        } if tool_calls.is_empty() => content.clone(),
        _ => None,
    });
    RunOutcome {
        run_id: run.id.clone(),
        customer_id: run.customer_id.clone(),
        status,
        steps: run.step,
        tokens: run.tokens,
        calls: state.outcomes.clone(),
        final_text,
        ended_because: None,
        task_id: (status == RunStatus::NeedsPerson).then(|| needs_person_task_id(&run.id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str, reason: &str) -> ToolCall {
        ToolCall::new(id, "escalate", reason)
    }

    #[test]
    fn an_action_key_ignores_key_order_and_white_space_in_text_but_not_values() {
        let parse = |text: &str| {
            argent_tools::Registry::builtin()
                .expect("registry")
                .parse("log_promise", text)
                .expect("valid promise")
        };
        let a = parse(
            r#"{"customer_id": "C1", "amount": "500.00", "currency": "USD", "promised_date": "2026-12-04", "note": "Pays  on\nFriday"}"#,
        );
        let b = parse(
            r#"{"note": "Pays on Friday", "promised_date": "2026-12-04", "currency": "USD", "amount": "500", "customer_id": "C1"}"#,
        );
        assert_eq!(action_key(&a), action_key(&b));
        for other in [
            r#"{"customer_id": "C1", "amount": "500.01", "currency": "USD", "promised_date": "2026-12-04", "note": "Pays on Friday"}"#,
            r#"{"customer_id": "C1", "amount": "500.00", "currency": "USD", "promised_date": "2026-12-05", "note": "Pays on Friday"}"#,
            r#"{"customer_id": "C1", "amount": "500.00", "currency": "USD", "promised_date": "2026-12-04", "note": "Pays on Monday"}"#,
        ] {
            assert_ne!(action_key(&a), action_key(&parse(other)), "{other}");
        }
    }

    #[test]
    fn each_call_of_a_duplicated_id_is_answered_once_and_the_later_one_is_marked() {
        let turn = ChatMessage::assistant_tool_calls(
            None,
            vec![call("a", "1"), call("b", "2"), call("a", "3")],
        );
        let mut messages = vec![ChatMessage::user("hi"), turn];
        let (idx, pending) = unanswered(&messages).expect("three calls pending");
        assert_eq!(idx, 1);
        let marks: Vec<(&str, &str, bool)> = pending
            .iter()
            .map(|(c, d)| (c.id.as_str(), c.arguments.as_str(), *d))
            .collect();
        assert_eq!(
            marks,
            [("a", "1", false), ("b", "2", false), ("a", "3", true)]
        );
        // A run resumed after the first two results were checkpointed still owes the third.
        messages.push(ChatMessage::tool_result("a", "done"));
        messages.push(ChatMessage::tool_result("b", "done"));
        let (_, pending) = unanswered(&messages).expect("the duplicate is still owed");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].0.arguments, "3");
        assert!(pending[0].1);
        messages.push(ChatMessage::tool_result("a", "refused"));
        assert!(unanswered(&messages).is_none());
    }
}
