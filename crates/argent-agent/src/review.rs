//! The approval queue, seen from the reviewer: approve, edit (re-judged by policy, same
//! tool) or reject. Deciding an item, executing it and auditing both happen in one
//! transaction, bound to the item's tool call id; of two reviewers acting at once exactly
//! one wins.

use serde::Serialize;
use serde_json::{Value, json};

use argent_core::action::Action;
use argent_core::{Decision, Outcome, Role};
use argent_policy::{RecentAction, RecentStatus, evaluate};
use argent_store::{
    ApprovalItem, ApprovalStatus, NewAuditEvent, StoreError, StoreTx, ToolCallStatus,
};

use crate::compliance::{CheckOutcome, apply_inbound};
use crate::context::{Account, stored_action};
use crate::run::{CallOutcome, CallStatus, decision_json};
use crate::{Agent, AgentError, authz, exec};

#[derive(Clone, Debug)]
pub struct Reviewer {
    pub name: String,
    pub role: Role,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReviewResult {
    pub approval_id: String,
    /// The policy's judgement of the action as executed (after any edit), made now.
    pub decision: Decision,
    pub result: Value,
}

/// The store's conflict on deciding an item (it was no longer pending) as the agent says
/// it; any other error as it is.
fn lost_race(e: AgentError, approval_id: &str) -> AgentError {
    match e {
        AgentError::Store(StoreError::Conflict(_)) => {
            AgentError::AlreadyDecided(approval_id.to_string())
        }
        other => other,
    }
}

impl Agent {
    fn reviewer_event(
        &self,
        item: &ApprovalItem,
        who: &Reviewer,
        kind: &str,
        payload: Value,
    ) -> NewAuditEvent {
        NewAuditEvent {
            run_id: Some(item.run_id.clone()),
            customer_id: Some(item.customer_id.clone()),
            actor: format!("{}:{}", who.role, who.name),
            kind: kind.to_string(),
            payload,
        }
    }

    async fn pending_item(&self, approval_id: &str) -> Result<ApprovalItem, AgentError> {
        let item = self.store.approval(approval_id).await?;
        if item.status != ApprovalStatus::Pending {
            return Err(AgentError::AlreadyDecided(approval_id.to_string()));
        }
        // An email held with an action is decided with it, while that action waits.
        if let Some(parent) = &item.bundle_of
            && self.store.approval(parent).await?.status == ApprovalStatus::Pending
        {
            return Err(AgentError::NotPermitted(format!(
                "approval {approval_id} is held with approval {parent} (the action it refers to) and is decided with it: approve or reject {parent}"
            )));
        }
        Ok(item)
    }

    /// The pending items held with `approval_id`.
    async fn held_items(&self, approval_id: &str) -> Result<Vec<ApprovalItem>, AgentError> {
        Ok(self
            .store
            .bundled_with(approval_id)
            .await?
            .into_iter()
            .filter(|i| i.status == ApprovalStatus::Pending)
            .collect())
    }

    /// Rejects an item held with `parent` in the reviewer's transaction.
    async fn reject_held(
        &self,
        tx: &mut StoreTx,
        held: &ApprovalItem,
        parent: &str,
        who: &Reviewer,
        note: &str,
    ) -> Result<(), AgentError> {
        tx.decide_approval(
            &held.id,
            ApprovalStatus::Rejected,
            &who.name,
            who.role.as_str(),
            Some(note),
            None,
        )
        .await
        .map_err(|e| lost_race(e.into(), &held.id))?;
        tx.audit_append(self.reviewer_event(held, who, "approval_decided", json!({"approval_id": held.id, "call_id": held.call_id, "verdict": "rejected", "held_with": parent, "note": note})))
            .await
            .map_err(|e| lost_race(e.into(), &held.id))?;
        tx.set_tool_call(&held.call_id, ToolCallStatus::Rejected, None)
            .await
            .map_err(|e| lost_race(e.into(), &held.id))?;
        Ok(())
    }

    /// After the action of `parent` executed in `tx`: each email held with it, judged again
    /// against the account with that action executed, is executed (approved by the same
    /// reviewer) or, when the policy now denies it, rejected. One the reviewer's role may
    /// not approve stays pending, on its own.
    #[allow(clippy::too_many_arguments)]
    async fn decide_held(
        &self,
        tx: &mut StoreTx,
        parent: &ApprovalItem,
        executed: Option<RecentAction>,
        account: &Account,
        who: &Reviewer,
        note: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), AgentError> {
        for held in self.held_items(&parent.id).await? {
            let Some(action) = stored_action(&held.tool, &held.action) else {
                self.reject_held(tx, &held, &parent.id, who, "its arguments no longer parse")
                    .await?;
                continue;
            };
            let mut ctx = account.policy_context();
            ctx.recent_actions
                .retain(|r| r.approval_id.as_deref() != Some(parent.id.as_str()));
            if let Some(mut r) = executed.clone() {
                r.at = Some(now);
                r.this_run = true;
                ctx.recent_actions.push(r);
            }
            let decision = evaluate(self.policy_for(account)?, &action, &ctx);
            if decision.outcome == Outcome::Deny {
                let why = decision
                    .decisive_rules()
                    .map(|r| format!("{}: {}", r.id, r.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                self.reject_held(
                    tx,
                    &held,
                    &parent.id,
                    who,
                    &format!(
                        "judged again once {} was approved, the policy denies it ({why})",
                        parent.id
                    ),
                )
                .await?;
                continue;
            }
            let Ok(auth) = authz::from_approval(
                &held.call_id,
                action,
                &decision,
                &held.id,
                &who.name,
                who.role,
            ) else {
                continue;
            };
            tx.decide_approval(
                &held.id,
                ApprovalStatus::Approved,
                &who.name,
                who.role.as_str(),
                note,
                Some(&held.action),
            )
            .await
            .map_err(|e| lost_race(e.into(), &held.id))?;
            let mail = self.mail_context(held.context.get("trigger"));
            let done = exec::execute(tx, auth, account, now, &mail)
                .await
                .map_err(|e| lost_race(e, &held.id))?;
            tx.audit_append_many(vec![
                self.reviewer_event(
                    &held,
                    who,
                    "approval_decided",
                    json!({"approval_id": held.id, "call_id": held.call_id, "verdict": "approved", "held_with": parent.id, "note": note, "final_action": held.action}),
                ),
                self.reviewer_event(&held, who, "policy_decision", decision_json(&held.call_id, &decision)),
                self.reviewer_event(
                    &held,
                    who,
                    argent_store::integrity::EXECUTED,
                    done.event_payload(json!({"call_id": held.call_id, "tool": held.tool, "basis": "human_approval", "approval_id": held.id, "held_with": parent.id})),
                ),
            ])
            .await
            .map_err(|e| lost_race(e.into(), &held.id))?;
            let outcome = CallOutcome {
                call_id: held.call_id.clone(),
                tool: held.tool.clone(),
                arguments: held.action.to_string(),
                status: CallStatus::Executed,
                rules: decision.decisive_rules().map(|r| r.id.clone()).collect(),
                approval_id: Some(held.id.clone()),
                model_text: json!({"status": "executed", "result": done.result}).to_string(),
            };
            tx.set_tool_call(
                &held.call_id,
                ToolCallStatus::Approved,
                serde_json::to_value(&outcome).ok().as_ref(),
            )
            .await
            .map_err(|e| lost_race(e.into(), &held.id))?;
        }
        Ok(())
    }

    /// Parses arguments for the item's own tool (an edit cannot change the tool or the
    /// customer) and judges them against the account as it is now. With `recheck` (an
    /// edit or its preview: new text) an email is read by the content compliance check
    /// again, which can only hold it. A plain approval of the text the reviewer read is
    /// that person's decision: the check is not asked again, and its hold, if it held the
    /// item, is carried into the decision so only a role it names may release it.
    pub(crate) async fn judge_for_item(
        &self,
        item: &ApprovalItem,
        args: Value,
        recheck: bool,
    ) -> Result<(Action, Decision, Account, Option<CheckOutcome>), AgentError> {
        let action = self
            .registry
            .parse_value(&item.tool, args)
            .map_err(|e| AgentError::EditInvalid(e.to_string()))?;
        if action.customer_id() != item.customer_id {
            return Err(AgentError::EditInvalid(format!(
                "/customer_id: the item is for customer {}, not {}",
                item.customer_id,
                action.customer_id()
            )));
        }
        let account = self.load_account(&item.customer_id, self.now()).await?;
        let policy = self.policy_for(&account)?;
        let mut ctx = account.policy_context();
        if let Some(t) = item.context.get("trigger") {
            apply_inbound(&mut ctx, t);
        }
        let mut decision = evaluate(policy, &action, &ctx);
        let checked = if recheck {
            self.check_content(policy, &action, ctx.inbound_text.as_deref(), &mut decision)
                .await
        } else {
            // The text the reviewer read: the check's hold stands (so who may release it
            // is what it said) and this approval is the person's decision on it.
            let hold = policy.content_check_rule().id;
            if let Ok(stored) = serde_json::from_value::<Decision>(item.decision.clone())
                && let Some(rule) = stored.rules.into_iter().find(|r| r.id == hold)
            {
                decision.fire(argent_core::FiredRule {
                    outcome: Outcome::NeedsApproval,
                    ..rule
                });
            }
            None
        };
        // A formal demand stays held for a manager however it is judged now.
        if let Some(trigger) = item.context.get("trigger")
            && let Some(rule) = crate::run::procedure_hold(trigger, &action)
        {
            decision.fire(rule);
        }
        Ok((action, decision, account, checked))
    }

    /// What the policy would decide for an edited version of the item, without acting.
    pub async fn preview_edit(
        &self,
        approval_id: &str,
        args: Value,
    ) -> Result<Decision, AgentError> {
        let item = self.store.approval(approval_id).await?;
        Ok(self.judge_for_item(&item, args, true).await?.1)
    }

    /// The item and what the policy decides for it now, as proposed (bulk approval checks
    /// that this is still the decision it was queued with). Acts on nothing.
    pub async fn rejudge(&self, approval_id: &str) -> Result<(ApprovalItem, Decision), AgentError> {
        let item = self.pending_item(approval_id).await?;
        let args = item.action.clone();
        let decision = self.judge_for_item(&item, args, false).await?.1;
        Ok((item, decision))
    }

    pub async fn approve(
        &self,
        approval_id: &str,
        who: &Reviewer,
        note: Option<&str>,
    ) -> Result<ReviewResult, AgentError> {
        let item = self.pending_item(approval_id).await?;
        let args = item.action.clone();
        self.decide_and_execute(item, who, args, note, false).await
    }

    pub async fn edit(
        &self,
        approval_id: &str,
        who: &Reviewer,
        args: Value,
        note: Option<&str>,
    ) -> Result<ReviewResult, AgentError> {
        let item = self.pending_item(approval_id).await?;
        self.decide_and_execute(item, who, args, note, true).await
    }

    async fn decide_and_execute(
        &self,
        item: ApprovalItem,
        who: &Reviewer,
        args: Value,
        note: Option<&str>,
        edited: bool,
    ) -> Result<ReviewResult, AgentError> {
        let (action, decision, account, checked) = self.judge_for_item(&item, args, edited).await?;
        if decision.outcome == Outcome::Deny {
            return Err(AgentError::Denied(
                decision
                    .decisive_rules()
                    .map(|r| format!("{}: {}", r.id, r.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        let auth = authz::from_approval(
            &item.call_id,
            action,
            &decision,
            &item.id,
            &who.name,
            who.role,
        )
        .map_err(AgentError::NotPermitted)?;
        let final_action = serde_json::to_value(auth.action())
            .ok()
            .and_then(|v| v.get("args").cloned());
        let executed = RecentAction::from_action(auth.action(), RecentStatus::Executed);
        let now = self.now();
        let mut tx = self.store.begin().await?;
        // On the SQLite writer every write of this transaction goes in one round trip at
        // the commit, so losing the race for the item is reported by whichever call sends
        // the decision; `lost_race` names it as such.
        tx.decide_approval(
            &item.id,
            ApprovalStatus::Approved,
            &who.name,
            who.role.as_str(),
            note,
            final_action.as_ref(),
        )
        .await
        .map_err(|e| lost_race(e.into(), &item.id))?;
        let mail = self.mail_context(item.context.get("trigger"));
        let done = exec::execute(&mut tx, auth, &account, now, &mail)
            .await
            .map_err(|e| lost_race(e, &item.id))?;
        let result = done.result.clone();
        // The three events in one append (one round trip for the chain's head instead of
        // three); they are chained in this order, as if appended one by one.
        let mut events = Vec::with_capacity(4);
        if let Some(c) = &checked {
            events.push(self.reviewer_event(&item, who, "content_check", c.event(&item.call_id)));
        }
        events.extend([
            self.reviewer_event(
                &item,
                who,
                "approval_decided",
                json!({"approval_id": item.id, "call_id": item.call_id, "verdict": if edited { "edited_and_approved" } else { "approved" }, "note": note, "final_action": final_action}),
            ),
            self.reviewer_event(
                &item,
                who,
                "policy_decision",
                decision_json(&item.call_id, &decision),
            ),
            self.reviewer_event(
                &item,
                who,
                argent_store::integrity::EXECUTED,
                done.event_payload(json!({"call_id": item.call_id, "tool": item.tool, "basis": "human_approval", "approval_id": item.id})),
            ),
        ]);
        tx.audit_append_many(events)
            .await
            .map_err(|e| lost_race(e.into(), &item.id))?;
        let outcome = CallOutcome {
            call_id: item.call_id.clone(),
            tool: item.tool.clone(),
            arguments: final_action
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default(),
            status: CallStatus::Executed,
            rules: decision.decisive_rules().map(|r| r.id.clone()).collect(),
            approval_id: Some(item.id.clone()),
            model_text: json!({"status": "executed", "result": result}).to_string(),
        };
        tx.set_tool_call(
            &item.call_id,
            ToolCallStatus::Approved,
            serde_json::to_value(&outcome).ok().as_ref(),
        )
        .await
        .map_err(|e| lost_race(e.into(), &item.id))?;
        self.decide_held(&mut tx, &item, executed, &account, who, note, now)
            .await?;
        tx.commit()
            .await
            .map_err(|e| lost_race(e.into(), &item.id))?;
        Ok(ReviewResult {
            approval_id: item.id,
            decision,
            result,
        })
    }

    pub async fn reject(
        &self,
        approval_id: &str,
        who: &Reviewer,
        note: &str,
    ) -> Result<(), AgentError> {
        let item = self.pending_item(approval_id).await?;
        if who.role == Role::Compliance {
            return Err(AgentError::NotPermitted(
                "compliance reviews the trail; it does not decide queue items".into(),
            ));
        }
        let held = self.held_items(&item.id).await?;
        let mut tx = self.store.begin().await?;
        tx.decide_approval(
            &item.id,
            ApprovalStatus::Rejected,
            &who.name,
            who.role.as_str(),
            Some(note),
            None,
        )
        .await
        .map_err(|e| lost_race(e.into(), &item.id))?;
        tx.audit_append(self.reviewer_event(&item, who, "approval_decided", json!({"approval_id": item.id, "call_id": item.call_id, "verdict": "rejected", "note": note})))
            .await
            .map_err(|e| lost_race(e.into(), &item.id))?;
        tx.set_tool_call(&item.call_id, ToolCallStatus::Rejected, None)
            .await
            .map_err(|e| lost_race(e.into(), &item.id))?;
        let with = format!(
            "rejected with the action it refers to ({}): {note}",
            item.id
        );
        for held in held {
            self.reject_held(&mut tx, &held, &item.id, who, &with)
                .await?;
        }
        tx.commit()
            .await
            .map_err(|e| lost_race(e.into(), &item.id))?;
        Ok(())
    }
}
