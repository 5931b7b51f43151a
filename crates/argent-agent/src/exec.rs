//! Executors: the only code that changes the world, and only for an [`Authorized`] action.
//! Each runs inside the caller's transaction, so the side effect, its audit events and the
//! tool call's `executed` status commit together or not at all.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use argent_core::action::Action;
use argent_core::ledger::aging_report;
use argent_core::{Case, CaseKind, CaseStatus, Money, PlanStatus, PromiseStatus, PromiseToPay};
use argent_store::{OutboxEmail, StoreTx};

use crate::AgentError;
use crate::authz::Authorized;
use crate::context::Account;

/// Ids of created records are derived from the tool call id, so a replayed execution
/// would collide instead of duplicating.
fn record_id(prefix: &str, call_id: &str) -> String {
    format!("{prefix}-{call_id}")
}

/// What an execution did: the result shown to the model and recorded in the audit trail,
/// and for an action that queues something to take effect later (an outbox email) the hash
/// of what was queued, which the `executed` event records so that what is later sent is
/// bound to what was audited.
pub(crate) struct Execution {
    pub(crate) result: Value,
    pub(crate) content_sha256: Option<String>,
}

impl Execution {
    /// The payload of the `executed` event: `fields`, plus the result and any content hash.
    pub(crate) fn event_payload(&self, mut fields: Value) -> Value {
        if let Some(obj) = fields.as_object_mut() {
            obj.insert("result".into(), self.result.clone());
            if let Some(h) = &self.content_sha256 {
                obj.insert(
                    argent_store::integrity::CONTENT_SHA256.into(),
                    Value::String(h.clone()),
                );
            }
        }
        fields
    }
}

impl From<Value> for Execution {
    fn from(result: Value) -> Execution {
        Execution {
            result,
            content_sha256: None,
        }
    }
}

/// What an email queued by an execution needs from its run: the domain of its
/// `Message-ID` (the configured sender's) and, when the run answers a customer's email,
/// `In-Reply-To` / `References` (from the run's trigger).
#[derive(Clone, Debug, Default)]
pub(crate) struct MailContext {
    pub(crate) domain: String,
    pub(crate) threading: argent_mail::outbound::Threading,
}

impl crate::Agent {
    /// The mail context of a run whose stored trigger is `trigger` (`None`: no trigger).
    pub(crate) fn mail_context(&self, trigger: Option<&Value>) -> MailContext {
        MailContext {
            domain: self.config.mail_domain.clone(),
            threading: trigger
                .map(argent_mail::outbound::Threading::from_trigger)
                .unwrap_or_default(),
        }
    }
}

/// Runs the action; returns what it did (see [`Execution`]).
pub(crate) async fn execute(
    tx: &mut StoreTx,
    auth: Authorized,
    account: &Account,
    now: DateTime<Utc>,
    mail: &MailContext,
) -> Result<Execution, AgentError> {
    let call_id = auth.call_id().to_string();
    let result = match auth.action() {
        Action::ReadAging(_) => {
            let report = aging_report(&account.invoices, &account.payments, now.date_naive(), 90)?;
            let rows: Vec<Value> = report
                .rows
                .iter()
                .map(|r| {
                    json!({
                        "currency": r.currency.as_str(),
                        "buckets": argent_core::AgingBucket::ALL.iter().map(|b| json!({"bucket": b.label(), "amount": Money::new(r.buckets[b.index()], r.currency).amount_string()})).collect::<Vec<_>>(),
                        "total": Money::new(r.total, r.currency).amount_string(),
                        "oldest_days_past_due": r.oldest_days_past_due,
                    })
                })
                .collect();
            Ok(
                json!({"as_of": report.as_of.to_string(), "aging": rows, "invoices": account.open_invoices_json()}),
            )
        }
        Action::SendEmail(a) => {
            let id = record_id("EM", &call_id);
            // The Message-ID is chosen now, before anything is sent, so every attempt
            // (and a resend after a crash) carries the same one and replies thread to it.
            let message_id = argent_mail::outbound::message_id_for(&id, &mail.domain);
            let email = OutboxEmail {
                id,
                call_id: call_id.clone(),
                customer_id: a.customer_id.clone(),
                to_addr: a.to.clone(),
                subject: a.subject.clone(),
                body: a.body.clone(),
                created_at: now,
                status: "pending".into(),
                sent_at: None,
                message_id: Some(message_id),
                in_reply_to: mail.threading.in_reply_to.clone(),
                references_hdr: mail.threading.references_hdr(),
                ..Default::default()
            };
            // Both queued (no answer needed): an email this call already enqueued stays as
            // it is, and so does its contact (one per call and channel).
            tx.add_email(&email).await?;
            tx.record_contact(&a.customer_id, "email", now, &call_id)
                .await?;
            return Ok(Execution {
                result: json!({"outbox_id": email.id, "delivery": "queued in the outbox; sent by the delivery step"}),
                content_sha256: Some(email.content_sha256()),
            });
        }
        Action::LogPromise(a) => {
            let amount = a
                .amount
                .to_money(a.currency)
                .map_err(|e| AgentError::Invariant(e.to_string()))?;
            let promise = PromiseToPay {
                id: record_id("PTP", &call_id),
                customer_id: a.customer_id.clone(),
                invoice_numbers: a.invoice_numbers.clone(),
                amount,
                promised_date: a.promised_date,
                created_at: now,
                status: PromiseStatus::Open,
            };
            tx.insert_promise(&promise).await?;
            Ok(
                json!({"promise_id": promise.id, "amount": amount.to_string(), "promised_date": a.promised_date.to_string()}),
            )
        }
        Action::OpenCase(a) => {
            let disputed_amount = match &a.disputed_amount {
                Some(m) => Some(
                    m.amount
                        .to_money(m.currency)
                        .map_err(|e| AgentError::Invariant(e.to_string()))?,
                ),
                None => None,
            };
            let case = Case {
                id: record_id("CASE", &call_id),
                customer_id: a.customer_id.clone(),
                kind: a.kind,
                status: CaseStatus::Open,
                invoice_numbers: a.invoice_numbers.clone(),
                disputed_amount,
                summary: a.summary.clone(),
                opened_at: now,
            };
            tx.insert_case(&case).await?;
            let effect = if a.kind == CaseKind::Dispute {
                "collection on the named invoices is paused"
            } else {
                "a collector will follow up"
            };
            Ok(json!({"case_id": case.id, "kind": a.kind.as_str(), "effect": effect}))
        }
        Action::ProposePlan(a) => {
            let mut plan = a
                .to_plan(&record_id("PLAN", &call_id))
                .map_err(|e| AgentError::Invariant(e.to_string()))?;
            plan.status = PlanStatus::Proposed;
            tx.insert_plan(&plan).await?;
            Ok(
                json!({"plan_id": plan.id, "status": "proposed to the customer", "total": plan.total().to_string(), "installments": plan.installments.len()}),
            )
        }
        Action::Escalate(a) => {
            let to = a.to_role.map_or("collector", |r| r.as_str());
            let case = Case {
                id: record_id("ESC", &call_id),
                customer_id: a.customer_id.clone(),
                kind: CaseKind::Other,
                status: CaseStatus::Open,
                invoice_numbers: Vec::new(),
                disputed_amount: None,
                summary: format!("Escalated to {to} ({:?} urgency): {}", a.urgency, a.reason),
                opened_at: now,
            };
            tx.insert_case(&case).await?;
            // The escalation is also a task in the role's inbox, due by its urgency in the
            // customer's business days. The model's result stays as it was (the recorded
            // cassettes replay it); the task is in the audit trail (`task.created`).
            let urgency = match a.urgency {
                argent_core::Urgency::Low => "low",
                argent_core::Urgency::Normal => "normal",
                argent_core::Urgency::High => "high",
            };
            tx.create_task(&argent_store::NewTask {
                id: record_id("TASK", &call_id),
                kind: argent_core::TaskKind::Escalation,
                customer_id: a.customer_id.clone(),
                owner_role: a.to_role.unwrap_or(argent_core::Role::Collector),
                assignee: None,
                title: format!("Escalation ({urgency}): {}", account.customer.name),
                body: a.reason.clone(),
                due_at: Some(argent_core::task::escalation_due(
                    a.urgency,
                    now,
                    account.customer.time_zone,
                )),
                source: call_id.clone(),
                created_at: now,
                actor: "agent".into(),
            })
            .await?;
            Ok(json!({"escalation_case_id": case.id, "to_role": to}))
        }
        Action::RequestCall(a) => {
            let task = argent_store::CallTask {
                id: record_id("CALL", &call_id),
                call_id: call_id.clone(),
                customer_id: a.customer_id.clone(),
                reason: a.reason.clone(),
                script: a.script.clone(),
                not_before: a.not_before,
                status: argent_store::CallTaskStatus::Open,
                created_at: now,
                done_at: None,
            };
            tx.add_call_task(&task).await?;
            Ok(json!({
                "call_task_id": task.id,
                "status": "queued for a collector, who makes the call and logs it",
                "not_before": a.not_before.map(|t| t.to_rfc3339()),
            }))
        }
    };
    result.map(Execution::from)
}
