//! The documentation package of an agency referral: what an agency needs to take an
//! account over and what a person needs to check the referral, as one JSON document.
//!
//! Contents (format `argent.referral-package/1`): the customer as stored (its contacts
//! with their opt-outs, which the agency must respect too), every invoice with what was paid on
//! it and what is open, every payment, promises, cases, the contact history (every
//! contact-log entry and every email queued or sent, newest first) and an extract of the
//! audit trail for the customer (each event with its sequence number and chain hash, so
//! the extract can be checked against the full trail: `argent audit verify`).
//! Built from the store as it is when the step runs; the referral keeps it with its
//! SHA-256.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use argent_procedure::StepWork;
use argent_store::{AuditFilter, Store, StoreError};

/// The most audit events an extract holds (the newest).
pub const AUDIT_EXTRACT_LIMIT: i64 = 2000;

/// Builds the package for `customer_id`.
pub async fn build(
    store: &Store,
    customer_id: &str,
    work: &StepWork,
    now: DateTime<Utc>,
) -> Result<Value, StoreError> {
    let records = store.account_records(customer_id).await?;
    let emails = store.emails(Some(customer_id)).await?;
    let events = store
        .audit_events(&AuditFilter {
            customer_id: Some(customer_id.to_string()),
            limit: Some(AUDIT_EXTRACT_LIMIT),
            ..Default::default()
        })
        .await?;
    let mut paid: BTreeMap<&str, i64> = BTreeMap::new();
    for p in &records.payments {
        let e = paid.entry(p.invoice_number.as_str()).or_insert(0);
        *e = e.saturating_add(p.amount.minor);
    }
    let invoices: Vec<Value> = records
        .invoices
        .iter()
        .map(|i| {
            let paid_minor = paid.get(i.number.as_str()).copied().unwrap_or(0);
            json!({
                "number": i.number,
                "issue_date": i.issue_date,
                "due_date": i.due_date,
                "currency": i.amount.currency.to_string(),
                "amount_minor": i.amount.minor,
                "paid_minor": paid_minor,
                "open_minor": i.amount.minor.saturating_sub(paid_minor).max(0),
                "days_past_due": (now.date_naive() - i.due_date).num_days(),
                "disputed": i.disputed,
                "covered_by_step": work.invoices.contains(&i.number),
            })
        })
        .collect();
    let mut contacts: Vec<Value> = records
        .contacts
        .iter()
        .map(|(at, channel, conversation)| {
            json!({"at": at, "channel": channel, "conversation": conversation, "source": "contact_log"})
        })
        .collect();
    contacts.extend(emails.iter().map(|e| {
        json!({
            "at": e.created_at, "channel": "email", "to": e.to_addr, "subject": e.subject,
            "body": e.body, "status": e.status, "sent_at": e.sent_at, "source": "outbox",
            "email_id": e.id,
        })
    }));
    contacts.sort_by(|a, b| b["at"].as_str().cmp(&a["at"].as_str()));
    let audit: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({"seq": e.seq, "at": e.at, "actor": e.actor, "kind": e.kind, "run_id": e.run_id, "payload": e.payload, "prev_hash": e.prev_hash, "hash": e.hash})
        })
        .collect();
    Ok(json!({
        "format": "argent.referral-package/1",
        "generated_at": now,
        "customer": records.customer,
        "step": {"procedure": work.procedure, "version": work.version, "step": work.step, "reason": work.reason},
        "invoices": invoices,
        "payments": records.payments,
        "promises": records.promises,
        "cases": records.cases,
        "contact_history": contacts,
        "audit_extract": audit,
    }))
}
