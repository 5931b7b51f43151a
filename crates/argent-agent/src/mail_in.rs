//! Processing received mail: each `new` row of `inbound_mail` is parsed
//! (`argent_mail::inbound`), matched to a customer, settled and acted on, by code; the
//! model only ever sees a person's message from a matched customer.
//!
//! **Matching.** By thread first: the message's In-Reply-To and References (for a bounce,
//! the returned message's Message-ID) against the Message-IDs of the emails we sent
//! (`outbox.message_id`). Then by the sender address on file (a contact's email of exactly
//! one customer; an address on file for several customers matches none). A bounce is also
//! matched by its failed recipient on file. A collector may assign an unmatched message
//! ([`assign_unmatched`]): `matched_by = assigned`.
//!
//! **Effects** (each in ONE transaction with the row's settlement and its
//! `mail_processed` audit event, which names the message, the customer, how it was
//! matched, its kind and verdicts — never its text):
//! - out-of-office with a return date: `facts.contact_paused_until` (the later of the one
//!   on file and the new one); the policy refuses contact before it and the planner pauses
//!   the account (`PauseReason::OutOfOffice`). Status `ignored`; no model run.
//! - other auto-replies, soft bounces: recorded (`ignored`), nothing else.
//! - hard bounce: the failed address joins `facts.undeliverable_emails` (the policy then
//!   refuses email to it) and a follow-up task asks a collector for a working address.
//!   Status `ignored`; no model run.
//! - a person's message from a matched customer: status `processed`, then the agent runs
//!   with [`Trigger::Inbound`] on the new text (the recognisers of opt-out, cease,
//!   dispute, attorney run on it as for any inbound message), the quoted history marked
//!   as quoted, attachments by name, type and size, and what the policy needs: whether
//!   the sender is the contact on file, whether authentication failed.
//! - no customer: `unmatched` (a person's message, an out-of-office with a date, a hard
//!   bounce), else `ignored`.
//! - unparseable: `failed` with the parser's error; the messages after it go on.
//!
//! The row is settled before the run starts: a crash between the two leaves a processed
//! message without a run (visible: `run_id` is empty) rather than two replies.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use argent_core::{Customer, Role, TaskKind};
use argent_mail::inbound::{MailKind, ParsedMail, parse};
use argent_store::mail_in::{InboundMail as InboundRow, InboundOutcome};
use argent_store::{NewAuditEvent, NewTask, StoreError};

use crate::review::Reviewer;
use crate::run::{InboundMail, Trigger};
use crate::{Agent, AgentError};

/// The audit kind of a processed message.
pub const MAIL_PROCESSED: &str = "mail_processed";
/// The audit kind of a collector's assignment of an unmatched message.
pub const MAIL_ASSIGNED: &str = "mail.assigned";
/// Roles that may assign an unmatched message to a customer.
pub const MAY_ASSIGN: &[Role] = &[Role::Collector, Role::Manager, Role::Admin];

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Messages looked at.
    pub seen: usize,
    pub processed: usize,
    pub unmatched: usize,
    pub ignored: usize,
    pub failed: usize,
    /// Agent runs started.
    pub runs: usize,
    /// Runs that ended in an error (the message stays processed; the error is logged).
    pub run_errors: usize,
    /// Messages another processor settled first.
    pub skipped: usize,
}

/// How the customer was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchedBy {
    Thread,
    Sender,
    Assigned,
}

impl MatchedBy {
    fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Thread => "thread",
            MatchedBy::Sender => "sender",
            MatchedBy::Assigned => "assigned",
        }
    }
}

/// Processes up to `limit` messages waiting (`new`), oldest first.
pub async fn process_pending(agent: &Agent, limit: i64) -> Result<Report, AgentError> {
    let rows = agent.store.inbound_pending(limit.max(0)).await?;
    let mut report = Report::default();
    if rows.is_empty() {
        return Ok(report);
    }
    // Contacts are matched in memory: loaded once per pass.
    let customers = agent.store.customers().await?;
    for row in rows {
        report.seen += 1;
        process_row(agent, &row, &customers, None, &mut report).await?;
    }
    Ok(report)
}

/// A collector assigns the unmatched message `id` to `customer_id`: audited
/// (`mail.assigned`) with its settlement, then processed as matched (a person's message
/// starts a run; an out-of-office or a bounce has its effect).
pub async fn assign_unmatched(
    agent: &Agent,
    id: &str,
    customer_id: &str,
    who: &Reviewer,
) -> Result<Report, AgentError> {
    if !MAY_ASSIGN.contains(&who.role) {
        return Err(AgentError::NotPermitted(format!(
            "a {} may not assign mail to a customer",
            who.role
        )));
    }
    let row = agent.store.inbound_mail(id).await?;
    if row.status != "unmatched" {
        return Err(AgentError::Store(StoreError::Conflict(format!(
            "inbound mail {id} is {}, not unmatched",
            row.status
        ))));
    }
    let mut report = Report {
        seen: 1,
        ..Default::default()
    };
    let assigned = Assignment {
        customer_id: customer_id.to_string(),
        actor: format!("{}:{}", who.role, who.name),
    };
    let customers = [agent.store.customer(customer_id).await?];
    process_row(agent, &row, &customers, Some(&assigned), &mut report).await?;
    if report.skipped > 0 {
        return Err(AgentError::Store(StoreError::Conflict(format!(
            "inbound mail {id} was settled by someone else"
        ))));
    }
    Ok(report)
}

struct Assignment {
    customer_id: String,
    actor: String,
}

/// The customer whose contacts include `address` (case-insensitive), if exactly one.
fn by_address<'a>(customers: &'a [Customer], address: &str) -> Option<&'a Customer> {
    let mut found = customers.iter().filter(|c| on_file(c, address));
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

fn on_file(c: &Customer, address: &str) -> bool {
    let address = address.trim();
    c.contacts.iter().any(|k| {
        k.email
            .as_deref()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case(address))
    })
}

fn attachment_line(a: &argent_mail::inbound::Attachment) -> String {
    format!(
        "{} ({}, {} bytes)",
        a.name.as_deref().unwrap_or("(unnamed)"),
        a.content_type,
        a.size
    )
}

/// What the row becomes, besides its status.
fn outcome(
    row: &InboundRow,
    parsed: &ParsedMail,
    status: &str,
    customer: Option<&str>,
    matched_by: Option<MatchedBy>,
    now: DateTime<Utc>,
) -> InboundOutcome {
    InboundOutcome {
        status: status.to_string(),
        customer_id: customer.map(str::to_string),
        error: None,
        from_addr: Some(parsed.from.address.clone()),
        subject: Some(parsed.subject.chars().take(300).collect()),
        kind: Some(parsed.kind.label().to_string()),
        matched_by: matched_by.map(|m| m.as_str().to_string()),
        auth: serde_json::to_value(parsed.auth).ok(),
        run_id: row.run_id.clone(),
        processed_at: now,
    }
}

fn audit_payload(row: &InboundRow, o: &InboundOutcome, parsed: Option<&ParsedMail>) -> Value {
    let mut p = json!({
        "inbound_id": row.id,
        "message_id": row.message_id,
        "status": o.status,
        "customer_id": o.customer_id,
        "matched_by": o.matched_by,
        "kind": o.kind,
        "auth": o.auth,
    });
    if let Some(e) = &o.error {
        p["error"] = json!(e);
    }
    if let Some(parsed) = parsed {
        p["auth_summary"] = json!(parsed.auth.summary());
        p["attachments"] = json!(parsed.attachments.len());
        match &parsed.kind {
            MailKind::AutoReply { return_date, .. } => {
                p["return_date"] = json!(return_date);
            }
            MailKind::Bounce {
                recipient,
                status,
                hard,
                ..
            } => {
                p["recipient"] = json!(recipient);
                p["status_code"] = json!(status);
                p["hard"] = json!(hard);
            }
            MailKind::Human => {}
        }
    }
    p
}

async fn process_row(
    agent: &Agent,
    row: &InboundRow,
    customers: &[Customer],
    assigned: Option<&Assignment>,
    report: &mut Report,
) -> Result<(), AgentError> {
    let now = agent.now();
    let expected = if assigned.is_some() {
        "unmatched"
    } else {
        "new"
    };
    let actor = assigned.map_or_else(|| agent.config.actor.clone(), |a| a.actor.clone());
    let raw = agent.store.inbound_raw(&row.id).await?;

    let parsed = match parse(&raw) {
        Ok(p) => p,
        Err(e) => {
            let o = InboundOutcome {
                status: "failed".into(),
                error: Some(format!("the message could not be parsed: {e}")),
                processed_at: now,
                ..Default::default()
            };
            let mut tx = agent.store.begin().await?;
            if let Err(e) = tx.settle_inbound(&row.id, expected, &o).await {
                return settled_elsewhere(tx, e, report).await;
            }
            tx.audit_append(NewAuditEvent {
                run_id: None,
                customer_id: None,
                actor,
                kind: MAIL_PROCESSED.into(),
                payload: audit_payload(row, &o, None),
            })
            .await?;
            return settle_commit(tx, report, "failed").await;
        }
    };

    // Matching.
    let (customer, matched_by): (Option<&Customer>, Option<MatchedBy>) = match assigned {
        Some(a) => (
            customers.iter().find(|c| c.id == a.customer_id),
            Some(MatchedBy::Assigned),
        ),
        None => {
            let mut thread = parsed.thread_ids();
            let mut bounce_to = None;
            if let MailKind::Bounce {
                original_message_id,
                recipient,
                ..
            } = &parsed.kind
            {
                if let Some(id) = original_message_id {
                    thread.insert(0, id.clone());
                }
                bounce_to = recipient.clone();
            }
            let by_thread = agent.store.customer_by_sent_message(&thread).await?;
            if let Some(c) = by_thread.and_then(|id| customers.iter().find(|c| c.id == id)) {
                (Some(c), Some(MatchedBy::Thread))
            } else {
                let address = bounce_to.unwrap_or_else(|| parsed.from.address.clone());
                match by_address(customers, &address) {
                    Some(c) => (Some(c), Some(MatchedBy::Sender)),
                    None => (None, None),
                }
            }
        }
    };

    let Some(customer) = customer else {
        let wants_person = match &parsed.kind {
            MailKind::Human => true,
            MailKind::AutoReply {
                out_of_office,
                return_date,
            } => *out_of_office && return_date.is_some(),
            MailKind::Bounce { hard, .. } => *hard,
        };
        let status = if wants_person { "unmatched" } else { "ignored" };
        let o = outcome(row, &parsed, status, None, None, now);
        let mut tx = agent.store.begin().await?;
        if let Err(e) = tx.settle_inbound(&row.id, expected, &o).await {
            return settled_elsewhere(tx, e, report).await;
        }
        tx.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: None,
            actor,
            kind: MAIL_PROCESSED.into(),
            payload: audit_payload(row, &o, Some(&parsed)),
        })
        .await?;
        return settle_commit(tx, report, status).await;
    };
    let customer_id = customer.id.clone();
    let sender_on_file = on_file(customer, &parsed.from.address);

    let mut tx = agent.store.begin().await?;
    if let Some(a) = assigned {
        tx.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: Some(customer_id.clone()),
            actor: actor.clone(),
            kind: MAIL_ASSIGNED.into(),
            payload: json!({
                "inbound_id": row.id,
                "customer_id": a.customer_id,
                "from": parsed.from.address,
            }),
        })
        .await?;
    }
    match &parsed.kind {
        MailKind::AutoReply {
            out_of_office: true,
            return_date: Some(until),
        } => {
            let mut c = tx.customer_for_update(&customer_id).await?;
            let later = c
                .facts
                .contact_paused_until
                .map_or(*until, |d| d.max(*until));
            if c.facts.contact_paused_until != Some(later) {
                c.facts.contact_paused_until = Some(later);
                c.facts.check().map_err(|p| {
                    AgentError::Invariant(format!("out-of-office pause: {}", p.join("; ")))
                })?;
                tx.set_customer_facts(&customer_id, &c.facts).await?;
            }
        }
        MailKind::Bounce {
            hard: true,
            recipient,
            status,
            ..
        } => {
            if let Some(addr) = recipient {
                let mut c = tx.customer_for_update(&customer_id).await?;
                if !c
                    .facts
                    .undeliverable_emails
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(addr))
                {
                    c.facts.undeliverable_emails.push(addr.to_lowercase());
                    c.facts.check().map_err(|p| {
                        AgentError::Invariant(format!("undeliverable address: {}", p.join("; ")))
                    })?;
                    tx.set_customer_facts(&customer_id, &c.facts).await?;
                }
            }
            let what = recipient
                .as_deref()
                .unwrap_or("an address of this customer");
            tx.create_task(&NewTask {
                id: format!("TASK-bounce-{}", row.id),
                kind: TaskKind::FollowUp,
                customer_id: customer_id.clone(),
                owner_role: Role::Collector,
                assignee: None,
                title: format!("Email to {what} bounced permanently"),
                body: format!(
                    "A delivery failure report (status {}) says email to {what} cannot be delivered. \
                     The address is marked undeliverable and email to it is refused; find a working \
                     address, update the contact and remove the address from the undeliverable list.",
                    status.as_deref().unwrap_or("unknown")
                ),
                due_at: None,
                source: format!("inbound_mail:{}", row.id),
                created_at: now,
                actor: actor.clone(),
            })
            .await?;
        }
        _ => {}
    }
    let status = match parsed.kind {
        MailKind::Human => "processed",
        _ => "ignored",
    };
    let o = outcome(row, &parsed, status, Some(&customer_id), matched_by, now);
    if let Err(e) = tx.settle_inbound(&row.id, expected, &o).await {
        return settled_elsewhere(tx, e, report).await;
    }
    let mut payload = audit_payload(row, &o, Some(&parsed));
    payload["sender_on_file"] = json!(sender_on_file);
    tx.audit_append(NewAuditEvent {
        run_id: None,
        customer_id: Some(customer_id.clone()),
        actor,
        kind: MAIL_PROCESSED.into(),
        payload,
    })
    .await?;
    settle_commit(tx, report, status).await?;
    if status != "processed" || report.skipped > 0 {
        return Ok(());
    }

    // A person's message from a matched customer: the agent answers it.
    let mut references = parsed.references.clone();
    if let Some(id) = &parsed.message_id
        && !references.contains(id)
    {
        references.push(id.clone());
    }
    let body = if parsed.new_text.trim().is_empty() {
        "(no new text above the quoted history)".to_string()
    } else {
        parsed.new_text.clone()
    };
    let trigger = Trigger::Inbound {
        from: parsed.from.address.clone(),
        subject: parsed.subject.clone(),
        body,
        received_at: row.received_at,
        message_id: parsed.message_id.clone(),
        references,
        mail: Some(InboundMail {
            inbound_id: row.id.clone(),
            sender_on_file,
            matched_by: matched_by.map_or("", MatchedBy::as_str).to_string(),
            auth: parsed.auth.summary(),
            auth_failed: parsed.auth.failing(),
            quoted: parsed.quoted.clone(),
            attachments: parsed.attachments.iter().map(attachment_line).collect(),
        }),
    };
    report.runs += 1;
    match agent.start(&customer_id, trigger).await {
        Ok(outcome) => {
            agent
                .store
                .set_inbound_run(&row.id, &outcome.run_id)
                .await?;
        }
        Err(e) => {
            report.run_errors += 1;
            tracing::warn!(inbound_id = %row.id, customer = %customer_id, error = %e, "the agent run for an inbound message failed");
        }
    }
    Ok(())
}

/// A settlement that found the row no longer `expected`: rolled back and skipped.
async fn settled_elsewhere(
    tx: argent_store::StoreTx,
    e: StoreError,
    report: &mut Report,
) -> Result<(), AgentError> {
    match e {
        StoreError::Conflict(_) => {
            tx.rollback().await?;
            report.skipped += 1;
            Ok(())
        }
        other => Err(other.into()),
    }
}

/// Commits a settlement; a row settled by someone else first is skipped, not an error.
async fn settle_commit(
    tx: argent_store::StoreTx,
    report: &mut Report,
    status: &str,
) -> Result<(), AgentError> {
    match tx.commit().await {
        Ok(()) => {
            match status {
                "processed" => report.processed += 1,
                "unmatched" => report.unmatched += 1,
                "ignored" => report.ignored += 1,
                _ => report.failed += 1,
            }
            Ok(())
        }
        Err(StoreError::Conflict(_)) => {
            report.skipped += 1;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
