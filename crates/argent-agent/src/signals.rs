//! What the customer said, acted on without the model.
//!
//! When a run starts on an inbound email, before the model sees it,
//! [`Agent::recognise_signals`] classifies the message (`argent_policy::inbound`) and, for
//! each signal this message has not already given, in ONE transaction: sets the fact on
//! the account at once (`argent_core::SignalKind::recognise`: an email opt-out for the
//! sending contact, or every contact when the sender is not one; otherwise the pending
//! fact in `AccountFacts`), stores the signal row and audits `signal.recognised` with the
//! message's SHA-256 and the excerpt. The account is then loaded as usual, so the policy
//! judges every draft of the run against the fact whether or not the model noticed.
//!
//! A person confirms or clears each signal ([`decide_signal`]): collectors, managers and
//! admins decide; compliance reads. One conditional UPDATE on `pending`, the account
//! change and the `signal.confirmed` / `signal.cleared` event commit together.

use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use argent_core::{Role, SignalKind, SignalStatus, SignalVerdict};
use argent_policy::inbound;
use argent_store::{NewAuditEvent, NewSignal, SignalRecord, Store, StoreError};

use crate::review::Reviewer;
use crate::{Agent, AgentError};

/// Audit kinds.
pub const SIGNAL_RECOGNISED: &str = "signal.recognised";
pub const SIGNAL_CONFIRMED: &str = "signal.confirmed";
pub const SIGNAL_CLEARED: &str = "signal.cleared";

/// The roles that may confirm or clear a signal.
pub const DECIDERS: &[Role] = &[Role::Collector, Role::Manager, Role::Admin];

/// The SHA-256 (hex) of an inbound message: its sender (trimmed, lower case), subject and
/// body, NUL-separated. The same message twice has the same hash.
pub fn message_sha256(from: &str, subject: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(from.trim().to_lowercase().as_bytes());
    h.update([0]);
    h.update(subject.as_bytes());
    h.update([0]);
    h.update(body.as_bytes());
    hex::encode(h.finalize())
}

/// A signal's id: derived from the customer, the kind and the message, so the same
/// message gives the same id (and the planner's own id sequence, which recorded
/// conversations depend on, is not touched).
fn signal_id(customer_id: &str, kind: SignalKind, sha: &str) -> String {
    let mut h = Sha256::new();
    h.update(customer_id.as_bytes());
    h.update([0]);
    h.update(kind.as_str().as_bytes());
    h.update([0]);
    h.update(sha.as_bytes());
    format!("sig-{}", &hex::encode(h.finalize())[..20])
}

/// What the fact a signal sets is called in `signal.recognised` events.
fn fact_name(kind: SignalKind) -> &'static str {
    match kind {
        SignalKind::OptOut => "contacts.opted_out += email",
        SignalKind::CeaseContact => "facts.cease_contact_pending",
        SignalKind::Dispute => "facts.dispute_pending",
        SignalKind::Attorney => "facts.attorney_suspected",
        SignalKind::Bankruptcy => "facts.bankruptcy_reported",
        SignalKind::Deceased => "facts.deceased_reported",
        SignalKind::ThirdParty => "facts.third_party_writer",
    }
}

/// Classifies an inbound message and records every signal it gives that is not recorded
/// yet, with the facts they set and their audit events, in one transaction. Returns the
/// signals recorded now (none when the message was seen before or says nothing).
#[allow(clippy::too_many_arguments)]
pub async fn record_inbound_signals(
    store: &Store,
    actor: &str,
    run_id: Option<&str>,
    customer_id: &str,
    from: &str,
    subject: &str,
    body: &str,
    at: DateTime<Utc>,
) -> Result<Vec<NewSignal>, AgentError> {
    let found = inbound::classify_message(subject, body);
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let sha = message_sha256(from, subject, body);
    let mut tx = store.begin().await?;
    let mut customer = tx.customer_for_update(customer_id).await?;
    let before = customer.clone();
    let mut recorded = Vec::new();
    for s in found {
        if tx.signal_exists(customer_id, s.kind, &sha).await? {
            continue;
        }
        let detail = s
            .kind
            .recognise(&mut customer, from, s.attorney_name.as_deref());
        let new = NewSignal {
            id: signal_id(customer_id, s.kind, &sha),
            customer_id: customer_id.to_string(),
            kind: s.kind,
            contact: Some(from.trim().to_string()).filter(|f| !f.is_empty()),
            excerpt: s.excerpt,
            message_sha256: sha.clone(),
            run_id: run_id.map(str::to_string),
            detail,
            detected_at: at,
        };
        if !tx.insert_signal(&new).await? {
            continue;
        }
        tx.audit_append(NewAuditEvent {
            run_id: new.run_id.clone(),
            customer_id: Some(customer_id.to_string()),
            actor: actor.to_string(),
            kind: SIGNAL_RECOGNISED.to_string(),
            payload: json!({
                "signal_id": new.id,
                "kind": new.kind.as_str(),
                "fact": fact_name(new.kind),
                "excerpt": new.excerpt,
                "message_sha256": new.message_sha256,
                "contact": new.contact,
                "detail": new.detail,
            }),
        })
        .await?;
        recorded.push(new);
    }
    if recorded.is_empty() {
        tx.rollback().await?;
        return Ok(recorded);
    }
    if customer.contacts != before.contacts {
        tx.set_customer_contacts(customer_id, &customer.contacts)
            .await?;
    }
    if customer.facts != before.facts {
        customer.facts.check().map_err(|problems| {
            AgentError::Invariant(format!(
                "facts set from a message are invalid: {}",
                problems.join("; ")
            ))
        })?;
        tx.set_customer_facts(customer_id, &customer.facts).await?;
    }
    tx.commit().await?;
    Ok(recorded)
}

impl Agent {
    /// [`record_inbound_signals`] for a run of this agent, attributed to its actor.
    pub(crate) async fn recognise_signals(
        &self,
        run_id: &str,
        customer_id: &str,
        from: &str,
        subject: &str,
        body: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<NewSignal>, AgentError> {
        record_inbound_signals(
            &self.store,
            &self.config.actor,
            Some(run_id),
            customer_id,
            from,
            subject,
            body,
            at,
        )
        .await
    }
}

/// A person confirms or clears a pending signal: the conditional UPDATE, the account's
/// change (`SignalKind::decide`) and the audit event commit together. Of two reviewers
/// exactly one wins; the other gets `StoreError::Conflict` (409). Compliance may not
/// decide (`NotPermitted`).
pub async fn decide_signal(
    store: &Store,
    reviewer: &Reviewer,
    id: &str,
    verdict: SignalVerdict,
    note: Option<&str>,
) -> Result<SignalRecord, AgentError> {
    if !DECIDERS.contains(&reviewer.role) {
        return Err(AgentError::NotPermitted(format!(
            "a {} may read signals but not confirm or clear them",
            reviewer.role
        )));
    }
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if let Some(n) = note
        && n.chars().count() > 2000
    {
        return Err(AgentError::EditInvalid(
            "the note is longer than 2000 characters".into(),
        ));
    }
    let signal = store.signal(id).await?;
    if signal.status != SignalStatus::Pending {
        return Err(already_decided(id, signal.status));
    }
    let status = verdict.status();
    let decided: Result<(), AgentError> = async {
        let mut tx = store.begin().await?;
        // First the conditional update: on PostgreSQL it locks the signal's row, so a
        // second reviewer waits here and then changes nothing (Conflict).
        tx.decide_signal(id, status, &reviewer.name, reviewer.role.as_str(), note)
            .await?;
        let mut customer = tx.customer_for_update(&signal.customer_id).await?;
        let before = customer.clone();
        let others = tx
            .other_pending_signals(&signal.customer_id, signal.kind, id)
            .await?;
        signal
            .kind
            .decide(verdict, &mut customer, &signal.detail, others > 0);
        if customer.contacts != before.contacts {
            tx.set_customer_contacts(&signal.customer_id, &customer.contacts)
                .await?;
        }
        if customer.flags != before.flags {
            tx.set_customer_flags(&signal.customer_id, &customer.flags)
                .await?;
        }
        if customer.facts != before.facts {
            tx.set_customer_facts(&signal.customer_id, &customer.facts)
                .await?;
        }
        tx.audit_append(NewAuditEvent {
            run_id: signal.run_id.clone(),
            customer_id: Some(signal.customer_id.clone()),
            actor: reviewer.name.clone(),
            kind: match verdict {
                SignalVerdict::Confirm => SIGNAL_CONFIRMED,
                SignalVerdict::Clear => SIGNAL_CLEARED,
            }
            .to_string(),
            payload: json!({
                "signal_id": id,
                "kind": signal.kind.as_str(),
                "role": reviewer.role.as_str(),
                "note": note,
                "excerpt": signal.excerpt,
                "message_sha256": signal.message_sha256,
                "flags": customer.flags,
                "facts_changed": customer.facts != before.facts,
                "contacts_changed": customer.contacts != before.contacts,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    match decided {
        Ok(()) => {}
        // The update found the signal no longer pending (another reviewer won): on the
        // SQLite writer this surfaces from whichever later call sent the queued update.
        Err(AgentError::Store(StoreError::Conflict(_))) => {
            let now = store.signal(id).await?;
            return Err(already_decided(id, now.status));
        }
        Err(e) => return Err(e),
    }
    Ok(store.signal(id).await?)
}

fn already_decided(id: &str, status: SignalStatus) -> AgentError {
    AgentError::Store(StoreError::Conflict(format!(
        "signal {id} was already decided ({status})"
    )))
}
