//! The contact-history report for compliance: one row per attempt to contact a customer
//! in a period, newest first, exportable as CSV (RFC 4180, by the `csv` crate) and JSON
//! Lines.
//!
//! **What is an attempt.** Every `send_email` the agent made that policy judged —
//! executed (queued in the outbox, then sent or not), held for approval, approved,
//! rejected by a person, or refused by policy (refused attempts are attempts, never
//! delivered) — and every telephone call a collector logged (an attempt, or a
//! conversation). A `send_email` whose arguments failed the tool's schema was never an
//! attempt (nothing was judged or could be sent) and is not listed; it is on the timeline.
//!
//! **Each row** has the attempt's instant in UTC and in the debtor's own time zone with
//! its offset; the channel; the recipient, subject and the SHA-256 of the body as they
//! were to be sent (the outbox email when there is one — it carries a reviewer's edit —
//! else the arguments the agent drafted); whether it was delivered and when; the policy's
//! first decision on it (`allow`, `review` for needs-approval, `deny`) with the ids of
//! every rule that fired; the approval's verdict and who decided it with which role (for a
//! logged call, the collector who logged it); and the audit events that record it.
//!
//! **The period** is given as calendar dates in the debtor's time zone, both inclusive:
//! from the start of `from` to the end of `to`, there.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use argent_core::Customer;

use crate::timeline::{
    ApprovalRow, ContactRow, OutboxRow, ToolCallRow, local_midnight, local_text,
};
use crate::{AuditEvent, AuditFilter, Result, Store, StoreError};

/// Hex SHA-256 of a text's UTF-8 bytes.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// One attempt to contact the customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactAttempt {
    /// When the attempt was made (the agent drafted it; the collector's call), UTC.
    pub at: DateTime<Utc>,
    /// The same instant in the debtor's time zone, RFC 3339 with the offset.
    pub at_local: String,
    pub time_zone: String,
    /// `email` or `phone`.
    pub channel: String,
    pub recipient: String,
    /// The email's subject; for a call, `attempt` or `conversation`.
    pub subject: String,
    /// Hex SHA-256 of the body (UTF-8); empty for a call.
    pub body_sha256: String,
    /// The email left (marked sent), or the call reached the customer.
    pub delivered: bool,
    pub delivered_at: Option<DateTime<Utc>>,
    /// `sent`, `queued` (in the outbox), `failed` (refused by the mail server),
    /// `uncertain` (an SMTP attempt whose answer was never recorded), `pending_approval`,
    /// `rejected`, `refused`,
    /// `received` (being judged), `attempt` or `conversation` (calls).
    pub status: String,
    /// The policy's first decision: `allow`, `review` or `deny`; `None` for a logged call.
    pub decision: Option<String>,
    /// Every rule that fired on that decision.
    pub rule_ids: Vec<String>,
    /// `approved`, `rejected` or `pending` when a person had to decide.
    pub approval: Option<String>,
    /// Who decided the approval (`role:name`), or who logged the call.
    pub decided_by: Option<String>,
    /// The tool call (emails) or the log entry (calls).
    pub reference: String,
    pub audit_seqs: Vec<i64>,
}

/// The rows the report reads for one customer.
#[derive(Clone, Debug, Default)]
pub struct ContactSources {
    pub calls: Vec<ToolCallRow>,
    pub approvals: Vec<ApprovalRow>,
    /// Outbox emails with their bodies.
    pub outbox: Vec<(OutboxRow, String)>,
    pub contact_log: Vec<ContactRow>,
    pub audit: Vec<AuditEvent>,
}

fn decision_word(outcome: &str) -> String {
    match outcome {
        "needs_approval" => "review".to_string(),
        other => other.to_string(),
    }
}

/// The attempts in `[from, to]` (debtor's calendar), newest first. Pure.
pub fn contact_attempts(
    customer: &Customer,
    src: &ContactSources,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Vec<ContactAttempt> {
    let tz = customer.time_zone;
    let start = from.map(|d| local_midnight(d, tz));
    let end = to.and_then(|d| d.succ_opt()).map(|d| local_midnight(d, tz));
    let mut by_call: BTreeMap<&str, Vec<&AuditEvent>> = BTreeMap::new();
    let mut by_log: BTreeMap<&str, Vec<&AuditEvent>> = BTreeMap::new();
    for ev in &src.audit {
        if let Some(c) = ev.payload.get("call_id").and_then(Value::as_str) {
            by_call.entry(c).or_default().push(ev);
        }
        if let Some(l) = ev.payload.get("log_id").and_then(Value::as_str) {
            by_log.entry(l).or_default().push(ev);
        }
    }
    let approval_of: BTreeMap<&str, &ApprovalRow> = src
        .approvals
        .iter()
        .map(|a| (a.call_id.as_str(), a))
        .collect();
    let outbox_of: BTreeMap<&str, &(OutboxRow, String)> = src
        .outbox
        .iter()
        .map(|o| (o.0.call_id.as_str(), o))
        .collect();
    let in_period = |at: DateTime<Utc>| start.is_none_or(|s| at >= s) && end.is_none_or(|e| at < e);
    let mut out = Vec::new();
    for c in &src.calls {
        if c.name != "send_email" || c.status == "invalid" || !in_period(c.created_at) {
            continue;
        }
        let events = by_call.get(c.call_id.as_str()).cloned().unwrap_or_default();
        let first_decision = events.iter().find(|e| e.kind == "policy_decision");
        let decision = first_decision
            .and_then(|e| e.payload.get("outcome"))
            .and_then(Value::as_str)
            .map(decision_word);
        let rule_ids: Vec<String> = first_decision
            .and_then(|e| e.payload.get("rules"))
            .and_then(Value::as_array)
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| r.get("id").and_then(Value::as_str).or(r.as_str()))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let args: Value = serde_json::from_str(&c.arguments).unwrap_or(Value::Null);
        let arg = |k: &str| {
            args.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (recipient, subject, body_sha256, delivered, delivered_at, queued) =
            match outbox_of.get(c.call_id.as_str()) {
                Some((o, body)) => (
                    o.to_addr.clone(),
                    o.subject.clone(),
                    sha256_hex(body),
                    o.status == "sent",
                    o.sent_at,
                    Some(o.status.clone()),
                ),
                None => (
                    arg("to"),
                    arg("subject"),
                    sha256_hex(&arg("body")),
                    false,
                    None,
                    None,
                ),
            };
        let approval = approval_of.get(c.call_id.as_str());
        let status = match (&queued, c.status.as_str()) {
            (Some(s), _) if s == "sent" => "sent",
            // The mail server refused it for good, or whether it arrived is unknown.
            (Some(s), _) if s == "failed" => "failed",
            (Some(s), _) if s == "uncertain" => "uncertain",
            (Some(_), _) => "queued",
            (None, "queued") => "pending_approval",
            (None, other) => other,
        }
        .to_string();
        let decided_by = approval.and_then(|a| match (&a.decided_role, &a.decided_by) {
            (Some(r), Some(b)) => Some(format!("{r}:{b}")),
            (None, Some(b)) => Some(b.clone()),
            _ => None,
        });
        out.push(ContactAttempt {
            at: c.created_at,
            at_local: local_text(c.created_at, tz),
            time_zone: tz.name().to_string(),
            channel: "email".into(),
            recipient,
            subject,
            body_sha256,
            delivered,
            delivered_at,
            status,
            decision,
            rule_ids,
            approval: approval.map(|a| a.status.clone()),
            decided_by,
            reference: c.call_id.clone(),
            audit_seqs: events.iter().map(|e| e.seq).collect(),
        });
    }
    let phones: Vec<&str> = customer
        .contacts
        .iter()
        .filter_map(|k| k.phone.as_deref())
        .collect();
    for l in &src.contact_log {
        if l.channel == "email" || !in_period(l.at) {
            continue;
        }
        let events = by_log.get(l.call_id.as_str()).cloned().unwrap_or_default();
        let what = if l.conversation {
            "conversation"
        } else {
            "attempt"
        };
        out.push(ContactAttempt {
            at: l.at,
            at_local: local_text(l.at, tz),
            time_zone: tz.name().to_string(),
            channel: l.channel.clone(),
            recipient: phones.join("; "),
            subject: what.into(),
            body_sha256: String::new(),
            delivered: l.conversation,
            delivered_at: l.conversation.then_some(l.at),
            status: what.into(),
            decision: None,
            rule_ids: Vec::new(),
            approval: None,
            decided_by: events.first().map(|e| e.actor.clone()),
            reference: l.call_id.clone(),
            audit_seqs: events.iter().map(|e| e.seq).collect(),
        });
    }
    out.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.reference.cmp(&a.reference)));
    out
}

/// The CSV header, in column order.
pub const CONTACT_CSV_HEADER: [&str; 16] = [
    "at_utc",
    "at_local",
    "time_zone",
    "channel",
    "recipient",
    "subject",
    "body_sha256",
    "delivered",
    "delivered_at",
    "status",
    "decision",
    "rule_ids",
    "approval",
    "decided_by",
    "reference",
    "audit_seqs",
];

/// RFC 4180 CSV (CRLF line ends, fields quoted when they hold a comma, quote or line
/// break; quotes doubled), a header row first. Lists are joined with spaces.
pub fn contacts_to_csv(rows: &[ContactAttempt]) -> Result<String> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let err = |e: csv::Error| StoreError::Invalid(format!("writing the CSV: {e}"));
    w.write_record(CONTACT_CSV_HEADER).map_err(err)?;
    for r in rows {
        let at = r.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let delivered_at = r
            .delivered_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .unwrap_or_default();
        let seqs: Vec<String> = r.audit_seqs.iter().map(i64::to_string).collect();
        w.write_record([
            at.as_str(),
            &r.at_local,
            &r.time_zone,
            &r.channel,
            &r.recipient,
            &r.subject,
            &r.body_sha256,
            if r.delivered { "true" } else { "false" },
            &delivered_at,
            &r.status,
            r.decision.as_deref().unwrap_or(""),
            &r.rule_ids.join(" "),
            r.approval.as_deref().unwrap_or(""),
            r.decided_by.as_deref().unwrap_or(""),
            &r.reference,
            &seqs.join(" "),
        ])
        .map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| StoreError::Invalid(format!("writing the CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| StoreError::Invalid(format!("writing the CSV: {e}")))
}

/// One JSON object per line, each line ending in `\n`.
pub fn contacts_to_jsonl(rows: &[ContactAttempt]) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&crate::to_json(r));
        out.push('\n');
    }
    out
}

impl Store {
    /// Customer `id`'s contact attempts in the period (debtor's calendar, inclusive),
    /// newest first. `NotFound` for an unknown customer; `Invalid` when `from` is after
    /// `to`.
    pub async fn contact_history(
        &self,
        id: &str,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<ContactAttempt>> {
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(StoreError::Invalid(format!(
                "the period starts ({f}) after it ends ({t})"
            )));
        }
        let customer = self.customer(id).await?;
        let mut outbox = Vec::new();
        for m in self.emails(Some(id)).await? {
            let row = OutboxRow {
                body_sha256: sha256_hex(&m.body),
                id: m.id,
                call_id: m.call_id,
                to_addr: m.to_addr,
                subject: m.subject,
                status: m.status,
                created_at: m.created_at,
                sent_at: m.sent_at,
            };
            outbox.push((row, m.body));
        }
        let src = ContactSources {
            calls: self.timeline_tool_calls(id).await?,
            approvals: self.timeline_approvals(id).await?,
            outbox,
            contact_log: self.timeline_contacts(id).await?,
            audit: self
                .audit_events(&AuditFilter {
                    customer_id: Some(id.to_string()),
                    ..Default::default()
                })
                .await?,
        };
        Ok(contact_attempts(&customer, &src, from, to))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn row(subject: &str, recipient: &str) -> ContactAttempt {
        ContactAttempt {
            at: "2026-11-01T12:00:00Z".parse().unwrap(),
            at_local: "2026-11-01T06:00:00-06:00".into(),
            time_zone: "America/Chicago".into(),
            channel: "email".into(),
            recipient: recipient.into(),
            subject: subject.into(),
            body_sha256: sha256_hex("b"),
            delivered: false,
            delivered_at: None,
            status: "refused".into(),
            decision: Some("deny".into()),
            rule_ids: vec!["us.a".into(), "us.b".into()],
            approval: None,
            decided_by: None,
            reference: "r/0/a".into(),
            audit_seqs: vec![3, 4],
        }
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks_and_reads_back_exactly() {
        let nasty = "Re: \"your\" account, line one\r\nline two\nthree";
        let rows = vec![row(nasty, "a,b@x.example"), row("plain", "c@x.example")];
        let text = contacts_to_csv(&rows).unwrap();
        assert!(text.starts_with("at_utc,at_local,time_zone,channel,recipient,subject,"));
        assert!(text.contains("\"Re: \"\"your\"\" account, line one\r\nline two\nthree\""));
        assert!(text.contains(",\"a,b@x.example\","));
        assert!(text.ends_with("\r\n"));
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let back: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(back.len(), 2);
        assert_eq!(&back[0][5], nasty);
        assert_eq!(&back[0][4], "a,b@x.example");
        assert_eq!(&back[0][11], "us.a us.b");
        assert_eq!(&back[0][15], "3 4");
    }

    #[test]
    fn jsonl_is_one_object_per_line() {
        let rows = vec![row("a\nb", "x@y"), row("c", "z@y")];
        let text = contacts_to_jsonl(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let first: ContactAttempt = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first, rows[0]);
    }
}
