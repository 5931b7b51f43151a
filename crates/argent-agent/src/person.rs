//! Actions a person takes at the desk (a collector logging a promise or opening a dispute
//! after a call) go through exactly what the agent's own tool calls go through: the tool
//! registry's parsing and schema, the policy engine, and then execution (allow), the
//! approval queue (needs approval) or a refusal (deny) — [`Agent::act_for_person`] runs
//! the planner loop's own `handle_call`, never the executors directly.
//!
//! **Invariants.** Each action is a run of its own (trigger `{"kind": "person", …}`,
//! model `person`), recorded as finished when it is created, so nothing ever resumes it
//! or asks a model about it. Its id is derived from the caller's idempotency key
//! (`run-person-<key>`; the today page uses the call task and a hash of the arguments),
//! and its tool call has the loop's usual key (`<run>/0/person-1`): the same action
//! submitted twice runs once, and the second submission gets the first one's outcome (or
//! `Conflict` while the first is still being judged). Every event of the run — `run_started`, the loop's own `tool_call`,
//! `policy_decision`, `executed` / `approval_requested` / `refused`, `run_finished` —
//! names the person as its actor, never the agent.

use serde_json::json;

use argent_llm::ToolCall;
use argent_store::{NewAuditEvent, RunRecord, RunStatus, StoreError, ToolCallStatus};

use crate::run::CallOutcome;
use crate::{Agent, AgentError};

/// The id of a person's one tool call in its run.
const CALL_ID: &str = "person-1";

impl Agent {
    /// Makes tool call `tool(arguments)` (the JSON text the model would send) for
    /// `customer_id` on behalf of `person` (as the audit trail names them, e.g.
    /// `collector:cara`), reached through `via` (e.g. `call task CALL-…`), once per `key`.
    /// Returns what became of it: executed, queued for approval, refused (with the rules)
    /// or invalid (with the error the registry gave).
    pub async fn act_for_person(
        &self,
        person: &str,
        customer_id: &str,
        key: &str,
        via: &str,
        tool: &str,
        arguments: &str,
    ) -> Result<CallOutcome, AgentError> {
        // NotFound for an unknown customer before anything is recorded.
        self.store.customer(customer_id).await?;
        let run_id = format!("run-person-{key}");
        match self.store.run(&run_id).await {
            Ok(_) => return self.earlier_outcome(&run_id).await,
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let now = self.now();
        let run = RunRecord {
            id: run_id.clone(),
            customer_id: customer_id.to_string(),
            trigger: json!({"kind": "person", "person": person, "via": via}),
            status: RunStatus::Finished,
            step: 0,
            tokens: 0,
            state: json!({"messages": [], "invalid_turns": 0, "outcomes": []}),
            model: "person".into(),
            prompt_version: self.prompts.version().to_string(),
            policy_version: self.policy_version.clone(),
            created_at: now,
            updated_at: now,
            lease_owner: None,
            lease_until: None,
        };
        if let Err(e) = self.store.create_run(&run).await {
            // Another submission of the same action created it first.
            return match self.store.run(&run_id).await {
                Ok(_) => self.earlier_outcome(&run_id).await,
                Err(_) => Err(e.into()),
            };
        }
        let event = |kind: &str, payload| NewAuditEvent {
            run_id: Some(run.id.clone()),
            customer_id: Some(customer_id.to_string()),
            actor: person.to_string(),
            kind: kind.to_string(),
            payload,
        };
        self.store
            .audit_append(event(
                "run_started",
                json!({"trigger": run.trigger, "model": "person", "prompt_version": run.prompt_version, "policy_version": run.policy_version}),
            ))
            .await?;
        let call = ToolCall::new(CALL_ID, tool, arguments);
        let outcome = self.handle_call(&run, 0, &call).await?;
        self.store
            .audit_append(event(
                "run_finished",
                json!({"status": "Finished", "why": "a person's action", "tool": tool, "outcome": outcome.status.as_str()}),
            ))
            .await?;
        Ok(outcome)
    }

    /// The outcome the first submission of a person's action recorded (`Conflict` while
    /// it is still being judged).
    async fn earlier_outcome(&self, run_id: &str) -> Result<CallOutcome, AgentError> {
        let call_id = format!("{run_id}/0/{CALL_ID}");
        match self.store.tool_call(&call_id).await? {
            Some(rec) if rec.status != ToolCallStatus::Received => rec
                .result
                .and_then(|r| serde_json::from_value::<CallOutcome>(r).ok())
                .ok_or_else(|| {
                    AgentError::Invariant(format!("tool call {call_id} has no readable outcome"))
                }),
            _ => Err(AgentError::Store(StoreError::Conflict(format!(
                "this action ({run_id}) is being recorded by another request; reload"
            )))),
        }
    }
}
