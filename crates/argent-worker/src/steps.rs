//! Step execution: one procedure step ([`StepWork`]) for one account, per [`StepKind`].
//!
//! Invariants:
//! - **Agent steps** (`email`, `formal_demand`, `call_task`) run the planner loop, so the
//!   policy, the compliance check and approvals apply unchanged. The run's id is
//!   `run-<work id>` (a later run after a failed one: `run-<work id>-<attempt>`); it is
//!   created with its `run_started` event and the item's link in one transaction
//!   (`Agent::start_linked`), and the item ends (done, with its result) in the transaction
//!   that ends the run (`AtRunEnd`). An item that already has a run resumes it: tool calls that
//!   took effect are not repeated. A run that failed after a tool call took effect is not
//!   started again (the item fails, for a person to look at); one that failed before
//!   anything took effect (e.g. the model was unreachable) is retried with a new run.
//! - **`formal_demand`**: every email the run drafts is held for a manager
//!   (`procedure.formal-demand`, fired by the planner loop from the run's trigger on top of
//!   the policy's decision, and again when a reviewer decides it).
//! - **`call_task`**: if the run made no `request_call` at all (whatever the model did
//!   instead), a call task with a generic script is created with the item's end; a call
//!   request the policy refused stands (no task), and none is made for an account flagged
//!   cease-contact, bankrupt or attorney-represented.
//! - **Plain writes** (`credit_hold`, `account_manager_alert`, `agency_referral`) are made
//!   in the transaction that finishes the item, so a crash leaves either both or neither.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use argent_agent::{Agent, AgentError, AtRunEnd, CallStatus, RunOutcome, Trigger, WorkLink};
use argent_core::{Role, TaskKind};
use argent_procedure::{StepKind, StepWork};
use argent_store::{
    CallTask, CallTaskStatus, NewAuditEvent, NewCreditHold, NewReferral, NewTask, RunStatus,
    StoreError, StoreTx, WorkItem, WorkStatus,
};

use crate::{ExecError, Execute, Lease};

/// An internal notification for a customer's account manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InternalAlert {
    /// Derived from the work item: one alert per item.
    pub id: String,
    pub customer_id: String,
    pub work_id: String,
    pub title: String,
    pub body: String,
    pub now: DateTime<Utc>,
}

/// Where account-manager alerts go. Writes in the caller's transaction (the one that
/// finishes the work item) and returns what to record as the item's result.
#[async_trait]
pub trait AlertSink: Send + Sync {
    async fn alert(&self, tx: &mut StoreTx, alert: &InternalAlert) -> Result<Value, StoreError>;
}

/// Alerts as tasks (kind `account_manager_alert`) for the manager role in the tasks
/// inbox, due when the step ran; `task.created` is audited with the task. The task id is
/// derived from the work item, so a replay collides instead of duplicating.
pub struct TaskAlertSink;

#[async_trait]
impl AlertSink for TaskAlertSink {
    async fn alert(&self, tx: &mut StoreTx, a: &InternalAlert) -> Result<Value, StoreError> {
        let task = tx
            .create_task(&NewTask {
                id: a.id.clone(),
                kind: TaskKind::AccountManagerAlert,
                customer_id: a.customer_id.clone(),
                owner_role: Role::Manager,
                assignee: None,
                title: a.title.clone(),
                body: a.body.clone(),
                due_at: Some(a.now),
                source: a.work_id.clone(),
                created_at: a.now,
                actor: "worker".into(),
            })
            .await?;
        Ok(json!({"task_id": task.id, "owner_role": task.owner_role}))
    }
}

/// The agent the executor uses, fetched per item (a server swaps its agent when a
/// document version is activated).
pub type AgentSource = Arc<dyn Fn() -> Arc<Agent> + Send + Sync>;

/// Runs procedure steps (work kind `procedure_step`).
pub struct StepExecutor {
    agent: AgentSource,
    alerts: Arc<dyn AlertSink>,
    /// Who plain writes are attributed to in the audit trail.
    pub actor: String,
}

impl StepExecutor {
    /// Over a fixed agent, with alerts as tasks for the manager role.
    pub fn new(agent: Arc<Agent>) -> StepExecutor {
        StepExecutor::with_source(Arc::new(move || agent.clone()), Arc::new(TaskAlertSink))
    }

    pub fn with_source(agent: AgentSource, alerts: Arc<dyn AlertSink>) -> StepExecutor {
        StepExecutor {
            agent,
            alerts,
            actor: "worker".into(),
        }
    }

    /// The same executor with `alerts` as where account-manager alerts go.
    pub fn with_alerts(mut self, alerts: Arc<dyn AlertSink>) -> StepExecutor {
        self.alerts = alerts;
        self
    }
}

/// The short id part of a work item id (`work-<hex>` → `<hex>`).
fn suffix(work_id: &str) -> &str {
    work_id.strip_prefix("work-").unwrap_or(work_id)
}

/// The id of the agent run for an item: `run-<work id>`, with `-<attempt>` for a run
/// started after an earlier one failed.
pub fn run_id_for(work_id: &str, attempt: Option<i64>) -> String {
    match attempt {
        None => format!("run-{work_id}"),
        Some(n) => format!("run-{work_id}-{n}"),
    }
}

#[async_trait]
impl Execute for StepExecutor {
    async fn execute(&self, item: &WorkItem, lease: &Lease) -> Result<Value, ExecError> {
        if item.kind != argent_procedure::WORK_KIND {
            return Err(ExecError::permanent(format!(
                "work item {}: kind '{}' is not a procedure step",
                item.id, item.kind
            )));
        }
        let work: StepWork = serde_json::from_value(item.payload.clone()).map_err(|e| {
            ExecError::permanent(format!(
                "work item {}: the payload is not a procedure step: {e}",
                item.id
            ))
        })?;
        match work.kind {
            StepKind::Email | StepKind::FormalDemand | StepKind::CallTask => {
                self.agent_step(item, &work, lease).await
            }
            StepKind::CreditHold => self.credit_hold(item, &work, lease).await,
            StepKind::AccountManagerAlert => self.alert(item, &work, lease).await,
            StepKind::AgencyReferral => self.referral(item, &work, lease).await,
        }
    }
}

fn step_reason(work: &StepWork) -> String {
    format!(
        "procedure {} v{} step {} ({}): {}",
        work.procedure, work.version, work.step, work.kind, work.reason
    )
}

fn agent_error(e: AgentError) -> ExecError {
    match e {
        AgentError::Store(s) => ExecError::from(s),
        // A template the step names that the documents lack, a jurisdiction without a
        // policy: retrying will not help.
        AgentError::Prompt(_) | AgentError::NoPolicy(_) | AgentError::Policy(_) => {
            ExecError::permanent(e.to_string())
        }
        other => ExecError::retryable(other.to_string()),
    }
}

impl StepExecutor {
    async fn agent_step(
        &self,
        item: &WorkItem,
        work: &StepWork,
        lease: &Lease,
    ) -> Result<Value, ExecError> {
        let agent = (self.agent)();
        let link = WorkLink {
            work_id: item.id.clone(),
            owner: lease.owner.clone(),
            lease_until: lease.until,
        };
        let template = work
            .prompt
            .as_deref()
            .map(|p| p.strip_prefix("step/").unwrap_or(p).to_string())
            .unwrap_or_else(|| work.step.clone());
        let trigger = Trigger::ProcedureStep {
            step: template,
            step_id: work.step.clone(),
            step_kind: work.kind.as_str().to_string(),
            procedure: work.procedure.clone(),
            version: work.version,
            invoices: work.invoices.clone(),
            promise_id: work.promise_id.clone(),
            reason: work.reason.clone(),
            work_id: item.id.clone(),
        };
        let end = EndItem {
            exec: self,
            agent: &agent,
            item,
            work,
            lease,
            result: std::sync::Mutex::new(None),
        };
        let outcome = match &item.run_id {
            None => agent
                .start_linked(
                    &item.customer_id,
                    trigger,
                    &run_id_for(&item.id, None),
                    &link,
                    Some(&end),
                )
                .await
                .map_err(agent_error)?,
            Some(run_id) => {
                let o = agent
                    .resume_ending(run_id, Some(&end))
                    .await
                    .map_err(agent_error)?;
                if o.status == RunStatus::Failed {
                    let acted = o
                        .calls
                        .iter()
                        .any(|c| matches!(c.status, CallStatus::Executed | CallStatus::Queued));
                    if acted {
                        return Err(ExecError::permanent(format!(
                            "run {run_id} failed after a tool call took effect; not started again"
                        )));
                    }
                    agent
                        .start_linked(
                            &item.customer_id,
                            trigger,
                            &run_id_for(&item.id, Some(item.attempts)),
                            &link,
                            Some(&end),
                        )
                        .await
                        .map_err(agent_error)?
                } else {
                    o
                }
            }
        };
        if outcome.status == RunStatus::Failed {
            return Err(ExecError::retryable(format!(
                "run {} failed",
                outcome.run_id
            )));
        }
        if let Some(result) = end.take_result() {
            return Ok(result);
        }
        // The run had ended before this attempt resumed it (its end did not end the item:
        // a run ended by an earlier version, or by hand): the item ends here.
        let now = agent.now();
        let mut tx = agent.store.begin().await?;
        let result = self.item_result(&mut tx, item, work, &outcome, now).await?;
        finish_done(tx, item, lease, result, now).await
    }

    /// What an agent step's item records as its result, with the generic call task made
    /// in `tx` for a call step whose run made no call request.
    async fn item_result(
        &self,
        tx: &mut StoreTx,
        item: &WorkItem,
        work: &StepWork,
        outcome: &RunOutcome,
        now: DateTime<Utc>,
    ) -> Result<Value, StoreError> {
        let mut result = run_result(outcome);
        if work.kind == StepKind::CallTask
            && !outcome.calls.iter().any(|c| c.tool == "request_call")
        {
            result["generic_call_task"] = self.generic_call_task(tx, item, work, now).await?;
        }
        Ok(result)
    }

    /// The call task for a call step whose run made no call request: a generic script
    /// from the step (none for an account that may not be called).
    async fn generic_call_task(
        &self,
        tx: &mut StoreTx,
        item: &WorkItem,
        work: &StepWork,
        now: DateTime<Utc>,
    ) -> Result<Value, StoreError> {
        let customer = tx.customer_for_update(&item.customer_id).await?;
        let f = &customer.flags;
        if f.cease_contact || f.bankrupt || f.attorney_represented {
            return Ok(
                json!({"created": false, "why": "the account may not be called (cease-contact, bankruptcy or attorney flag)"}),
            );
        }
        let invoices = if work.invoices.is_empty() {
            "the overdue invoices on the account".to_string()
        } else {
            work.invoices.join(", ")
        };
        let task = CallTask {
            id: format!("CALL-{}", suffix(&item.id)),
            call_id: format!("work/{}", item.id),
            customer_id: item.customer_id.clone(),
            reason: step_reason(work),
            script: format!(
                "Introduce yourself and confirm you are speaking with the account holder. \
                 The call is about {invoices}. Ask when payment can be made; note any promise, \
                 dispute or difficulty and log the call's outcome."
            ),
            not_before: None,
            status: CallTaskStatus::Open,
            created_at: now,
            done_at: None,
        };
        let new = tx.insert_call_task(&task).await?;
        tx.audit_append(NewAuditEvent {
            run_id: item.run_id.clone(),
            customer_id: Some(item.customer_id.clone()),
            actor: self.actor.clone(),
            kind: "call_task.created".into(),
            payload: json!({"call_task_id": task.id, "work_id": item.id, "reason": task.reason, "script": "generic"}),
        })
        .await?;
        Ok(json!({"created": new, "call_task_id": task.id}))
    }

    async fn credit_hold(
        &self,
        item: &WorkItem,
        work: &StepWork,
        lease: &Lease,
    ) -> Result<Value, ExecError> {
        let agent = (self.agent)();
        let now = agent.now();
        let mut tx = agent.store.begin().await?;
        let (hold, new) = tx
            .place_credit_hold(&NewCreditHold {
                id: format!("hold-{}", suffix(&item.id)),
                customer_id: item.customer_id.clone(),
                reason: step_reason(work),
                placed_by: self.actor.clone(),
                work_id: Some(item.id.clone()),
                now,
            })
            .await?;
        let result = json!({"hold_id": hold.id, "placed": new, "placed_at": hold.placed_at});
        finish_done(tx, item, lease, result, now).await
    }

    async fn alert(
        &self,
        item: &WorkItem,
        work: &StepWork,
        lease: &Lease,
    ) -> Result<Value, ExecError> {
        let agent = (self.agent)();
        let now = agent.now();
        let account = agent
            .load_account(&item.customer_id, now)
            .await
            .map_err(agent_error)?;
        let alert = InternalAlert {
            id: format!("ALERT-{}", suffix(&item.id)),
            customer_id: item.customer_id.clone(),
            work_id: item.id.clone(),
            title: format!(
                "{} ({}) is overdue: {}",
                account.customer.name,
                account.customer.id,
                account.balance_text()
            ),
            body: step_reason(work),
            now,
        };
        let mut tx = agent.store.begin().await?;
        let result = self.alerts.alert(&mut tx, &alert).await?;
        finish_done(tx, item, lease, result, now).await
    }

    async fn referral(
        &self,
        item: &WorkItem,
        work: &StepWork,
        lease: &Lease,
    ) -> Result<Value, ExecError> {
        let agent = (self.agent)();
        let now = agent.now();
        let package = crate::package::build(&agent.store, &item.customer_id, work, now).await?;
        let mut tx = agent.store.begin().await?;
        let (referral, new) = tx
            .create_referral(&NewReferral {
                id: format!("REF-{}", suffix(&item.id)),
                customer_id: item.customer_id.clone(),
                reason: step_reason(work),
                package,
                work_id: Some(item.id.clone()),
                created_by: self.actor.clone(),
                now,
            })
            .await?;
        let result = json!({"referral_id": referral.id, "created": new, "status": referral.status, "package_sha256": referral.package_sha256});
        finish_done(tx, item, lease, result, now).await
    }
}

/// Ends an agent step's work item in the transaction that ends its run
/// ([`AtRunEnd`]): the item's result (and a call step's generic call task) and its end
/// commit with the run's end, one commit instead of two. If the worker's lease is lost,
/// the run's end rolls back with the item's and the lease's new holder resumes the run.
struct EndItem<'a> {
    exec: &'a StepExecutor,
    agent: &'a Agent,
    item: &'a WorkItem,
    work: &'a StepWork,
    lease: &'a Lease,
    /// The result the item was ended with, once its run's end committed it.
    result: std::sync::Mutex<Option<Value>>,
}

impl EndItem<'_> {
    fn take_result(&self) -> Option<Value> {
        self.result.lock().ok().and_then(|mut r| r.take())
    }
}

#[async_trait]
impl AtRunEnd for EndItem<'_> {
    async fn at_end(&self, tx: &mut StoreTx, outcome: &RunOutcome) -> Result<(), AgentError> {
        let now = self.agent.now();
        let result = self
            .exec
            .item_result(tx, self.item, self.work, outcome, now)
            .await?;
        tx.finish_work(
            &self.item.id,
            &self.lease.owner,
            WorkStatus::Done,
            Some(&result),
            None,
            now,
        )
        .await?;
        if let Ok(mut r) = self.result.lock() {
            *r = Some(result);
        }
        Ok(())
    }
}

/// What an agent step's item records as its result.
fn run_result(o: &RunOutcome) -> Value {
    json!({
        "run_id": o.run_id,
        "status": o.status,
        "calls": o.calls.iter().map(|c| json!({"tool": c.tool, "status": c.status, "rules": c.rules, "approval_id": c.approval_id})).collect::<Vec<_>>(),
    })
}

/// Ends `item` as done with `result` in `tx` (the transaction of the step's side effect)
/// and commits both together, so the side effect never happens without its item's end.
async fn finish_done(
    mut tx: StoreTx,
    item: &WorkItem,
    lease: &Lease,
    result: Value,
    now: DateTime<Utc>,
) -> Result<Value, ExecError> {
    tx.finish_work(
        &item.id,
        &lease.owner,
        WorkStatus::Done,
        Some(&result),
        None,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(result)
}
