//! The impact replay of a policy draft: every pending approval item and the tool calls the
//! audit trail recorded in a window are judged again, now, under the active policies and
//! under the draft's, with the same account context, so that what differs is the policy
//! alone. The aggregation (flips by transition, rule, segment, amount band) is pure:
//! [`argent_policy::gate::aggregate`].
//!
//! How an item is judged is the reviewer's re-judge path (`review.rs`): the item's tool
//! arguments parsed by the registry, the account as it is now, the inbound message of the
//! run that proposed it, a content-check hold it was queued with carried over (the check
//! itself is a model and is not asked again), and a formal demand's hold. A past decision
//! is judged the same way from the `tool_call` event's action and the run's trigger; its
//! account is today's, so the answer is "what this policy would say to this action now".
//! Nothing is written.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde_json::Value;

use argent_core::action::Action;
use argent_core::{Decision, FiredRule, Outcome};
use argent_policy::gate::{Judgement, ReplaySource, ReplayedItem};
use argent_policy::{Packs, Policy, PolicySet, evaluate};
use argent_store::{ApprovalStatus, AuditFilter};

use crate::compliance::apply_inbound;
use crate::context::Account;
use crate::{Agent, AgentError};

/// What the replay reads.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Audited decisions from this instant on (the gate's default: 30 days back).
    pub since: DateTime<Utc>,
    /// At most this many audited decisions, the newest (older ones are left out and the
    /// answer says so).
    pub max_decisions: usize,
    /// At most this many pending items, in queue order.
    pub max_pending: usize,
}

/// Every item replayed (flipped or not), the ones that could not be, and whether the
/// window held more decisions than were read.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    pub items: Vec<ReplayedItem>,
    pub skipped: Vec<String>,
    pub truncated: bool,
}

/// Rows per read of the trail.
const PAGE: usize = 1000;
/// Reasons for skipped items kept (the count is always complete).
const MAX_REASONS: usize = 20;

fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The active and the draft policy for an account's jurisdiction.
fn both<'p>(
    active: &'p Packs,
    draft: &'p PolicySet,
    account: &Account,
) -> Result<(&'p Policy, &'p Policy), String> {
    let j = account.customer.jurisdiction;
    let a = active
        .for_jurisdiction(j)
        .ok_or_else(|| format!("no active policy for {j}"))?
        .map_err(|e| format!("the active policy for {j} does not compile: {e}"))?;
    let d = draft
        .for_jurisdiction(j)
        .ok_or_else(|| format!("no policy for {j} in the draft set"))?;
    Ok((a, d))
}

/// One action judged under one policy, as the reviewer's path judges it.
fn judge(
    policy: &Policy,
    action: &Action,
    ctx: &argent_policy::Context,
    recorded: Option<&Decision>,
    trigger: Option<&Value>,
) -> Decision {
    let mut decision = evaluate(policy, action, ctx);
    // A content-check hold the item was decided with stands (the check is not asked
    // again), under this policy's name for it.
    let hold = policy.content_check_rule();
    if let Some(stored) = recorded
        && stored.rules.iter().any(|r| r.id == hold.id)
    {
        decision.fire(FiredRule {
            id: hold.id.clone(),
            outcome: Outcome::NeedsApproval,
            message: hold.message.clone(),
            citation: hold.citation.clone(),
            approvers: hold.approvers.clone(),
        });
    }
    if let Some(t) = trigger
        && let Some(rule) = crate::run::procedure_hold(t, action)
    {
        decision.fire(rule);
    }
    decision
}

struct Skips {
    count: usize,
    reasons: Vec<String>,
}

impl Skips {
    fn add(&mut self, why: String) {
        self.count += 1;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(why);
        }
    }
}

impl Agent {
    /// Judges the pending items and the audited decisions since `opts.since` under this
    /// agent's policies and under `draft`. Reads only.
    pub async fn replay_under(
        &self,
        draft: &PolicySet,
        opts: &ReplayOptions,
    ) -> Result<Replay, AgentError> {
        let now = self.now();
        let mut accounts: HashMap<String, Account> = HashMap::new();
        let mut skips = Skips {
            count: 0,
            reasons: Vec::new(),
        };
        let mut items = Vec::new();
        // Pending approval items.
        let pending = self
            .store
            .approvals(
                Some(ApprovalStatus::Pending),
                i64::try_from(opts.max_pending).unwrap_or(i64::MAX),
                0,
            )
            .await?;
        let pending_calls: BTreeSet<String> = pending.iter().map(|i| i.call_id.clone()).collect();
        for item in &pending {
            let action = match self.registry.parse_value(&item.tool, item.action.clone()) {
                Ok(a) => a,
                Err(e) => {
                    skips.add(format!(
                        "approval {}: its arguments do not parse: {e}",
                        item.id
                    ));
                    continue;
                }
            };
            let account = match self
                .cached_account(&mut accounts, &item.customer_id, now)
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    skips.add(format!("approval {}: {e}", item.id));
                    continue;
                }
            };
            let (active, draft_policy) = match both(&self.policies, draft, account) {
                Ok(p) => p,
                Err(e) => {
                    skips.add(format!("approval {}: {e}", item.id));
                    continue;
                }
            };
            let trigger = item.context.get("trigger");
            let mut ctx = account.policy_context();
            if let Some(t) = trigger {
                apply_inbound(&mut ctx, t);
            }
            let recorded = serde_json::from_value::<Decision>(item.decision.clone()).ok();
            let before = judge(active, &action, &ctx, recorded.as_ref(), trigger);
            let after = judge(draft_policy, &action, &ctx, recorded.as_ref(), trigger);
            let segment = item
                .context
                .get("segment")
                .and_then(Value::as_str)
                .map_or_else(|| account.risk.segment.as_str().to_string(), str::to_string);
            items.push(ReplayedItem {
                source: ReplaySource::Pending,
                id: item.id.clone(),
                href: format!("/queue/{}", query_value(&item.id)),
                customer_id: item.customer_id.clone(),
                tool: item.tool.clone(),
                segment,
                amount_minor: (!item.currency.is_empty()).then_some(item.amount_minor),
                currency: (!item.currency.is_empty()).then(|| item.currency.clone()),
                at: item.created_at,
                recorded: recorded.as_ref().map(|d| d.outcome),
                before: Judgement::from(&before),
                after: Judgement::from(&after),
            });
        }

        // Audited decisions in the window: the newest `max_decisions` tool calls.
        let mut calls: VecDeque<argent_store::AuditEvent> = VecDeque::new();
        let mut truncated = false;
        let mut offset: usize = 0;
        loop {
            let page = self
                .store
                .audit_events(&AuditFilter {
                    kind: Some("tool_call".into()),
                    since: Some(opts.since),
                    limit: Some(PAGE as i64),
                    offset: Some(offset as i64),
                    ..AuditFilter::default()
                })
                .await?;
            let n = page.len();
            for e in page {
                let call = e.payload.get("call_id").and_then(Value::as_str);
                if call.is_some_and(|c| pending_calls.contains(c)) {
                    continue;
                }
                calls.push_back(e);
                if calls.len() > opts.max_decisions {
                    calls.pop_front();
                    truncated = true;
                }
            }
            if n < PAGE {
                break;
            }
            offset += PAGE;
        }
        // What was decided then: the first policy decision recorded for each call.
        let wanted: BTreeSet<String> = calls
            .iter()
            .filter_map(|e| e.payload.get("call_id").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        let mut recorded: BTreeMap<String, Decision> = BTreeMap::new();
        if !wanted.is_empty() {
            let mut offset: usize = 0;
            loop {
                let page = self
                    .store
                    .audit_events(&AuditFilter {
                        kind: Some("policy_decision".into()),
                        since: Some(opts.since),
                        limit: Some(PAGE as i64),
                        offset: Some(offset as i64),
                        ..AuditFilter::default()
                    })
                    .await?;
                let n = page.len();
                for e in page {
                    let Some(call) = e.payload.get("call_id").and_then(Value::as_str) else {
                        continue;
                    };
                    if wanted.contains(call) && !recorded.contains_key(call) {
                        recorded.insert(call.to_string(), recorded_decision(&e.payload));
                    }
                }
                if n < PAGE {
                    break;
                }
                offset += PAGE;
            }
        }
        let mut triggers: HashMap<String, Value> = HashMap::new();
        for e in calls {
            let call_id = e
                .payload
                .get("call_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let Some(customer_id) = e.customer_id.clone() else {
                skips.add(format!("call {call_id}: the event names no customer"));
                continue;
            };
            let action = match e
                .payload
                .get("action")
                .cloned()
                .map(serde_json::from_value::<Action>)
            {
                Some(Ok(a)) => a,
                Some(Err(err)) => {
                    skips.add(format!("call {call_id}: its action does not parse: {err}"));
                    continue;
                }
                None => {
                    skips.add(format!("call {call_id}: the event holds no action"));
                    continue;
                }
            };
            let trigger = match &e.run_id {
                Some(run_id) => {
                    if !triggers.contains_key(run_id) {
                        let t = self
                            .store
                            .run(run_id)
                            .await
                            .map(|r| r.trigger)
                            .unwrap_or(Value::Null);
                        triggers.insert(run_id.clone(), t);
                    }
                    triggers.get(run_id).filter(|t| !t.is_null())
                }
                None => None,
            };
            let account = match self.cached_account(&mut accounts, &customer_id, now).await {
                Ok(a) => a,
                Err(err) => {
                    skips.add(format!("call {call_id}: {err}"));
                    continue;
                }
            };
            let (active, draft_policy) = match both(&self.policies, draft, account) {
                Ok(p) => p,
                Err(err) => {
                    skips.add(format!("call {call_id}: {err}"));
                    continue;
                }
            };
            let mut ctx = account.policy_context();
            if let Some(t) = trigger {
                apply_inbound(&mut ctx, t);
            }
            let then = recorded.get(&call_id);
            let before = judge(active, &action, &ctx, then, trigger);
            let after = judge(draft_policy, &action, &ctx, then, trigger);
            let amount = action.principal_amount();
            items.push(ReplayedItem {
                source: ReplaySource::Decision,
                href: e.run_id.as_deref().map_or_else(
                    || format!("/audit?customer_id={}", query_value(&customer_id)),
                    |r| format!("/audit?run_id={}", query_value(r)),
                ),
                id: call_id,
                customer_id,
                tool: action.tool().to_string(),
                segment: account.risk.segment.as_str().to_string(),
                amount_minor: amount.map(|m| m.minor),
                currency: amount.map(|m| m.currency.to_string()),
                at: e.at,
                recorded: then.map(|d| d.outcome),
                before: Judgement::from(&before),
                after: Judgement::from(&after),
            });
        }
        let mut skipped = skips.reasons;
        if skips.count > skipped.len() {
            skipped.push(format!("… and {} more", skips.count - skipped.len()));
        }
        Ok(Replay {
            items,
            skipped,
            truncated,
        })
    }

    async fn cached_account<'a>(
        &self,
        cache: &'a mut HashMap<String, Account>,
        customer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<&'a Account, AgentError> {
        if !cache.contains_key(customer_id) {
            let account = self.load_account(customer_id, now).await?;
            cache.insert(customer_id.to_string(), account);
        }
        cache
            .get(customer_id)
            .ok_or_else(|| AgentError::Invariant("account cache lost an entry".into()))
    }
}

/// A `policy_decision` event's decision (outcome and rules; the texts are not needed).
fn recorded_decision(payload: &Value) -> Decision {
    let outcome = payload
        .get("outcome")
        .and_then(Value::as_str)
        .and_then(|o| o.parse::<Outcome>().ok())
        .unwrap_or(Outcome::Allow);
    let rules = payload
        .get("rules")
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .filter_map(|r| {
                    Some(FiredRule {
                        id: r.get("id")?.as_str()?.to_string(),
                        outcome: r.get("outcome")?.as_str()?.parse().ok()?,
                        message: String::new(),
                        citation: String::new(),
                        approvers: Vec::new(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Decision {
        outcome,
        rules,
        held_with: None,
    }
}
