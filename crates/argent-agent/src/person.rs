//! Actions a person takes at the desk (a collector logging a promise or opening a dispute
//! after a call) go through exactly what the agent's own tool calls go through: the tool
//! registry's parsing and schema, the policy engine, and then execution (allow), the
//! approval queue (needs approval) or a refusal (deny) — [`Agent::act_for_person`] runs
//! the planner loop's own `handle_call`, never the executors directly.
//!
//! **Invariants.** Each action is a run of its own (trigger `{"kind": "person", …}`,
//! model `person`), recorded as finished when it is created, so nothing ever resumes it
//! or asks a model about it; its tool call has the usual idempotency key
//! (`<run>/0/<id>`). Every event of the run — `run_started`, the loop's own `tool_call`,
//! `policy_decision`, `executed` / `approval_requested` / `refused`, `run_finished` —
//! names the person as its actor, never the agent.

use serde_json::json;

use argent_llm::ToolCall;
use argent_store::{NewAuditEvent, RunRecord, RunStatus};

use crate::run::CallOutcome;
use crate::{Agent, AgentError};

impl Agent {
    /// Makes tool call `tool(arguments)` (the JSON text the model would send) for
    /// `customer_id` on behalf of `person` (as the audit trail names them, e.g.
    /// `collector:cara`), reached through `via` (e.g. `today:call CALL-…`). Returns what
    /// became of it: executed, queued for approval, refused (with the rules) or invalid
    /// (with the error the registry gave).
    pub async fn act_for_person(
        &self,
        person: &str,
        customer_id: &str,
        via: &str,
        tool: &str,
        arguments: &str,
    ) -> Result<CallOutcome, AgentError> {
        // NotFound for an unknown customer before anything is recorded.
        self.store.customer(customer_id).await?;
        let now = self.now();
        let run = RunRecord {
            id: self.new_id("run"),
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
        self.store.create_run(&run).await?;
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
        let call = ToolCall::new("person-1", tool, arguments);
        let outcome = self.handle_call(&run, 0, &call).await?;
        self.store
            .audit_append(event(
                "run_finished",
                json!({"status": "Finished", "why": "a person's action", "tool": tool, "outcome": outcome.status.as_str()}),
            ))
            .await?;
        Ok(outcome)
    }
}
