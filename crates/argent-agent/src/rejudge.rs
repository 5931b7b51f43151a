//! When a new policy version becomes active, the pending approval items it governs are
//! judged again under it.
//!
//! - An item the new version **denies** is closed: rejected by the policy (decider
//!   `policy:<name>@v<version>`, the deciding rules in the note), its tool call rejected,
//!   with its `approval_decided` event, and the emails held with it closed with it. A deny
//!   cannot be approved, so leaving it in the queue would only show reviewers work that
//!   cannot be done.
//! - An item the new version **allows** or still holds **stays pending**: a policy change
//!   never executes anything. A reviewer's approval judges it again anyway.
//! - Every item whose outcome or deciding rules changed gets a record
//!   (`approval_rejudgements`, with its `approval.rejudged` event) that the item's page
//!   shows: "re-judged under policy us-consumer v3: was needs_approval, now deny (rule …)".
//!
//! Which items: those whose account the activated policy governs (its jurisdiction), not
//! held with another pending item (those are judged again when their action is decided).
//! Each item is closed or recorded in a transaction of its own, conditional on it still
//! being pending, so a reviewer deciding it meanwhile wins and nothing is decided twice.

use serde::Serialize;
use serde_json::{Value, json};

use argent_core::{Decision, Outcome};
use argent_store::{ApprovalItem, ApprovalStatus, NewAuditEvent, StoreError, ToolCallStatus};

use crate::{Agent, AgentError};

/// One item whose judgement changed under the new version.
#[derive(Clone, Debug, Serialize)]
pub struct Rejudged {
    pub approval_id: String,
    pub customer_id: String,
    pub was: Outcome,
    pub now: Outcome,
    /// The deciding rules under the new version.
    pub rules: Vec<String>,
    /// Closed because the new version denies it.
    pub closed: bool,
}

/// What re-judging the queue under a new policy version did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RejudgeReport {
    /// Pending items the policy governs that were judged again.
    pub judged: usize,
    /// Those whose outcome or deciding rules changed (closed or left pending).
    pub changed: Vec<Rejudged>,
    /// Items that could not be judged (their arguments no longer parse, the account could
    /// not be loaded): id and why. They stay pending as they were.
    pub failed: Vec<(String, String)>,
}

impl RejudgeReport {
    pub fn closed(&self) -> usize {
        self.changed.iter().filter(|c| c.closed).count()
    }
}

fn rule_ids(d: &Decision) -> Vec<String> {
    let mut ids: Vec<String> = d.decisive_rules().map(|r| r.id.clone()).collect();
    ids.sort();
    ids
}

impl Agent {
    /// Judges every pending item governed by policy `policy` again with this agent (built
    /// from the set in which `version` of it is active); see the module docs. `actor` is who
    /// made the version active. Returns what changed.
    pub async fn rejudge_pending_under_policy(
        &self,
        policy: &str,
        version: i64,
        actor: &str,
    ) -> Result<RejudgeReport, AgentError> {
        let mut report = RejudgeReport::default();
        let pending = self
            .store
            .approvals(Some(ApprovalStatus::Pending), i64::MAX, 0)
            .await?;
        let pending_ids: std::collections::HashSet<&str> =
            pending.iter().map(|i| i.id.as_str()).collect();
        let now = self.now();
        for item in &pending {
            if item
                .bundle_of
                .as_deref()
                .is_some_and(|p| pending_ids.contains(p))
            {
                continue;
            }
            let account = match self.load_account(&item.customer_id, now).await {
                Ok(a) => a,
                Err(e) => {
                    report.failed.push((item.id.clone(), e.to_string()));
                    continue;
                }
            };
            if self.policy_for(&account).map(|p| p.id.as_str()).ok() != Some(policy) {
                continue;
            }
            report.judged += 1;
            let decision = match self.judge_for_item(item, item.action.clone(), false).await {
                Ok((_, d, _, _)) => d,
                Err(e) => {
                    report.failed.push((item.id.clone(), e.to_string()));
                    continue;
                }
            };
            let queued: Option<Decision> = serde_json::from_value(item.decision.clone()).ok();
            let was = queued
                .as_ref()
                .map_or(Outcome::NeedsApproval, |d| d.outcome);
            if was == decision.outcome && queued.as_ref().map(rule_ids) == Some(rule_ids(&decision))
            {
                continue;
            }
            match self
                .record_rejudged(item, policy, version, actor, was, &decision)
                .await
            {
                Ok(r) => report.changed.push(r),
                // A reviewer decided it meanwhile: theirs stands.
                Err(AgentError::Store(StoreError::Conflict(_))) => {}
                Err(e) => report.failed.push((item.id.clone(), e.to_string())),
            }
        }
        tracing::info!(
            policy,
            version,
            judged = report.judged,
            changed = report.changed.len(),
            closed = report.closed(),
            "pending approvals re-judged under the new policy version"
        );
        Ok(report)
    }

    async fn record_rejudged(
        &self,
        item: &ApprovalItem,
        policy: &str,
        version: i64,
        actor: &str,
        was: Outcome,
        decision: &Decision,
    ) -> Result<Rejudged, AgentError> {
        let rules: Vec<Value> = decision
            .decisive_rules()
            .map(|r| json!({"id": r.id, "message": r.message}))
            .collect();
        let closed = decision.outcome == Outcome::Deny;
        let mut tx = self.store.begin().await?;
        if closed {
            let decider = format!("{policy}@v{version}");
            let why = decision
                .decisive_rules()
                .map(|r| format!("{}: {}", r.id, r.message))
                .collect::<Vec<_>>()
                .join("; ");
            let note = format!(
                "re-judged under policy {policy} v{version}: was {}, now deny ({why})",
                was.as_str()
            );
            let mut items = vec![item.clone()];
            items.extend(
                self.store
                    .bundled_with(&item.id)
                    .await?
                    .into_iter()
                    .filter(|h| h.status == ApprovalStatus::Pending),
            );
            for (i, it) in items.iter().enumerate() {
                let note = if i == 0 {
                    note.clone()
                } else {
                    format!("closed with the action it refers to ({}): {note}", item.id)
                };
                tx.decide_approval(
                    &it.id,
                    ApprovalStatus::Rejected,
                    &decider,
                    "policy",
                    Some(&note),
                    None,
                )
                .await?;
                tx.audit_append(NewAuditEvent {
                    run_id: Some(it.run_id.clone()),
                    customer_id: Some(it.customer_id.clone()),
                    actor: format!("policy:{decider}"),
                    kind: argent_store::integrity::APPROVAL_DECIDED.into(),
                    payload: json!({
                        "approval_id": it.id,
                        "call_id": it.call_id,
                        "verdict": "rejected",
                        "note": note,
                        "rejudged_under": {"policy": policy, "version": version},
                        "activated_by": actor,
                    }),
                })
                .await?;
                tx.set_tool_call(&it.call_id, ToolCallStatus::Rejected, None)
                    .await?;
            }
        }
        tx.record_rejudgement(
            item,
            policy,
            version,
            was.as_str(),
            decision.outcome.as_str(),
            &Value::Array(rules),
            closed,
            actor,
        )
        .await?;
        tx.commit().await?;
        Ok(Rejudged {
            approval_id: item.id.clone(),
            customer_id: item.customer_id.clone(),
            was,
            now: decision.outcome,
            rules: decision.decisive_rules().map(|r| r.id.clone()).collect(),
            closed,
        })
    }
}
