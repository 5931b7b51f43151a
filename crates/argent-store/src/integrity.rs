//! What executes is bound to what was audited, and the rows are cross-checked against the
//! trail.
//!
//! The audit chain proves what was recorded; these checks prove that the rows that act
//! (an outbox email about to be sent, a document about to be loaded, an approval's
//! decision) are the ones the trail recorded:
//!
//! - **Outbox.** The `executed` event of the call that queued an email carries
//!   [`CONTENT_SHA256`], the hash of the email's content ([`OutboxEmail::content_sha256`]:
//!   id, call, customer, recipient, subject, body). [`Store::email_binding`] compares it with
//!   the stored row; delivery refuses an email that does not match.
//! - **Documents.** Every version's text must hash to what its `document.seed` /
//!   `document.draft` event recorded, and the active version must be the one the trail's
//!   last `document.seed` / `document.activate` of that document names
//!   ([`Store::active_documents`] refuses otherwise; see `documents`).
//! - **Cross-check** ([`Store::audit_cross_check`], run by `argent audit verify`): every
//!   email marked sent has its [`EMAIL_DELIVERED`] event; every email's content matches its
//!   `executed` event; every decided approval has an [`APPROVAL_DECIDED`] event naming the
//!   same decider (`role:name`), verdict and final action, and no pending one has such an
//!   event; every approval's action is the one its `tool_call` event recorded; documents as
//!   above.
//!
//! The events are read back and each one's hash is recomputed from its content, so an event
//! edited in place is not believed. An attacker who can also forge correctly chained events
//! is stopped only by the signed checkpoints (for history) — see [`crate::anchor`].

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use crate::{ApprovalStatus, AuditEvent, OutboxEmail, Result, Store};

/// The event kind of a tool call that took effect (the executor's events).
pub const EXECUTED: &str = "executed";
/// The payload field of an `executed` event holding the content hash of what the call
/// queued (an outbox email's [`OutboxEmail::content_sha256`]).
pub const CONTENT_SHA256: &str = "content_sha256";
/// The event kind of an email marked sent (with its `outbox_id`).
pub const EMAIL_DELIVERED: &str = "email_delivered";
/// The event kind of an email whose delivery was refused because it does not match its
/// audited content.
pub const EMAIL_REFUSED: &str = "email_refused";
/// The event kind of a reviewer's decision (with `approval_id`, `verdict`, and for an
/// approval `final_action`); its actor is `role:name`.
pub const APPROVAL_DECIDED: &str = "approval_decided";
/// The event kind of a model's tool call (with `call_id` and `action`).
pub const TOOL_CALL: &str = "tool_call";
/// The event kind of a refusal to load or execute something that does not match the trail.
pub const INTEGRITY_REFUSED: &str = "integrity.refused";

/// What kind of row disagrees with the trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MismatchKind {
    /// An outbox email marked sent without an `email_delivered` event (or the reverse).
    EmailStatus,
    /// An outbox email whose content is not what its `executed` event recorded.
    EmailContent,
    /// A decided approval whose decider, verdict or final action is not what its
    /// `approval_decided` event says (or which has no such event, or a pending one that has).
    ApprovalDecision,
    /// An approval item whose action is not the one its tool call's event recorded.
    ApprovalAction,
    /// A document version whose text or status is not what the trail recorded.
    Document,
}

impl MismatchKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            MismatchKind::EmailStatus => "outbox status",
            MismatchKind::EmailContent => "outbox content",
            MismatchKind::ApprovalDecision => "approval decision",
            MismatchKind::ApprovalAction => "approval action",
            MismatchKind::Document => "document",
        }
    }
}

/// One row that disagrees with the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub kind: MismatchKind,
    /// The row: `outbox EM-…`, `approval apr-…`, `policy 'b2b' version 2`.
    pub item: String,
    pub detail: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.kind.as_str(), self.item, self.detail)
    }
}

/// Why an outbox email may not be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailRefusal {
    pub outbox_id: String,
    pub call_id: String,
    /// The hash the trail recorded, if it recorded one.
    pub audited: Option<String>,
    /// The hash of the row as stored.
    pub stored: String,
    pub why: String,
}

impl fmt::Display for EmailRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "outbox email {} (call {}) refused: {}",
            self.outbox_id, self.call_id, self.why
        )
    }
}

/// Compares an email with the `executed` event of the call that queued it (`None` if no
/// such event was found).
fn judge_email(email: &OutboxEmail, executed: Option<&AuditEvent>) -> Option<EmailRefusal> {
    let stored = email.content_sha256();
    let refuse = |audited: Option<String>, why: String| EmailRefusal {
        outbox_id: email.id.clone(),
        call_id: email.call_id.clone(),
        audited,
        stored: stored.clone(),
        why,
    };
    let Some(ev) = executed else {
        return Some(refuse(
            None,
            format!(
                "no `{EXECUTED}` audit event records call {} (a row written around the agent?)",
                email.call_id
            ),
        ));
    };
    if !ev.hash_is_consistent() {
        return Some(refuse(
            None,
            format!(
                "its `{EXECUTED}` event {} was altered (its content no longer hashes to its stored hash)",
                ev.seq
            ),
        ));
    }
    let Some(audited) = ev.payload.get(CONTENT_SHA256).and_then(Value::as_str) else {
        return Some(refuse(
            None,
            format!(
                "its `{EXECUTED}` event {} records no content hash, so what was audited cannot be \
                 compared with what would be sent",
                ev.seq
            ),
        ));
    };
    if audited != stored {
        return Some(refuse(
            Some(audited.to_string()),
            format!(
                "its content (recipient, subject, body) hashes to {stored} but its `{EXECUTED}` \
                 event {} recorded {audited}: the row was changed after it was audited",
                ev.seq
            ),
        ));
    }
    None
}

fn payload_str<'a>(e: &'a AuditEvent, key: &str) -> Option<&'a str> {
    e.payload.get(key).and_then(Value::as_str)
}

impl Store {
    /// Whether `email` is exactly what the trail recorded when its call executed: `None`
    /// if it may be sent, else why not (with both hashes). Two reads: the tool call (for its
    /// run) and that run's `executed` events.
    ///
    /// On PostgreSQL an email can be read between its transaction's commit and the chaining
    /// of that transaction's events (see `audit_chain_staged`): when its event is not found,
    /// the staged events are chained and it is looked for once more.
    pub async fn email_binding(&self, email: &OutboxEmail) -> Result<Option<EmailRefusal>> {
        let Some(call) = self.tool_call(&email.call_id).await? else {
            return Ok(judge_email(email, None));
        };
        let find = |events: Vec<AuditEvent>| {
            events
                .into_iter()
                .rev()
                .find(|e| payload_str(e, "call_id") == Some(email.call_id.as_str()))
        };
        let mut executed = find(self.run_audit_events(&call.run_id, EXECUTED).await?);
        if executed.is_none() {
            self.audit_chain_staged().await?;
            executed = find(self.run_audit_events(&call.run_id, EXECUTED).await?);
        }
        Ok(judge_email(email, executed.as_ref()))
    }

    /// Every row that disagrees with the audit trail (see the module docs): outbox emails,
    /// approvals and document versions. Reads every such row and the events that bind
    /// them, so it is for `argent audit verify`, not for a request path.
    pub async fn audit_cross_check(&self) -> Result<Vec<Mismatch>> {
        // Rows whose events are committed but not yet chained (PostgreSQL) are not findings.
        self.audit_chain_staged().await?;
        let events = self
            .audit_events_of_kinds(
                &[EXECUTED, EMAIL_DELIVERED, APPROVAL_DECIDED, TOOL_CALL],
                false,
                &mut crate::Session::none(),
            )
            .await?;
        let mut executed: HashMap<&str, &AuditEvent> = HashMap::new();
        let mut delivered: HashMap<&str, &AuditEvent> = HashMap::new();
        let mut decided: HashMap<&str, &AuditEvent> = HashMap::new();
        let mut called: HashMap<&str, &AuditEvent> = HashMap::new();
        for e in &events {
            let map = match e.kind.as_str() {
                EXECUTED => (&mut executed, "call_id"),
                EMAIL_DELIVERED => (&mut delivered, "outbox_id"),
                APPROVAL_DECIDED => (&mut decided, "approval_id"),
                _ => (&mut called, "call_id"),
            };
            if let Some(key) = payload_str(e, map.1) {
                // The last event for a key wins (events are in seq order).
                map.0.insert(key, e);
            }
        }
        let mut out = Vec::new();
        for email in self.emails(None).await? {
            let item = format!("outbox {}", email.id);
            if let Some(r) = judge_email(&email, executed.get(email.call_id.as_str()).copied()) {
                out.push(Mismatch {
                    kind: MismatchKind::EmailContent,
                    item: item.clone(),
                    detail: r.why,
                });
            }
            match (email.status.as_str(), delivered.get(email.id.as_str())) {
                ("sent", None) => out.push(Mismatch {
                    kind: MismatchKind::EmailStatus,
                    item,
                    detail: format!("marked sent but no `{EMAIL_DELIVERED}` event records it"),
                }),
                ("pending", Some(e)) => out.push(Mismatch {
                    kind: MismatchKind::EmailStatus,
                    item,
                    detail: format!(
                        "pending, but `{EMAIL_DELIVERED}` event {} says it was sent",
                        e.seq
                    ),
                }),
                _ => {}
            }
        }
        for a in self.approvals(None, i64::MAX, 0).await? {
            let item = format!("approval {}", a.id);
            if let Some(detail) = approval_decision_mismatch(&a, decided.get(a.id.as_str())) {
                out.push(Mismatch {
                    kind: MismatchKind::ApprovalDecision,
                    item: item.clone(),
                    detail,
                });
            }
            let audited = called
                .get(a.call_id.as_str())
                .map(|e| (e.seq, e.payload.get("action").and_then(|x| x.get("args"))));
            let detail = match audited {
                None => Some(format!(
                    "no `{TOOL_CALL}` event records call {} it is for",
                    a.call_id
                )),
                Some((seq, args)) if args != Some(&a.action) => Some(format!(
                    "its action is not the one `{TOOL_CALL}` event {seq} recorded for call {}",
                    a.call_id
                )),
                Some(_) => None,
            };
            if let Some(detail) = detail {
                out.push(Mismatch {
                    kind: MismatchKind::ApprovalAction,
                    item,
                    detail,
                });
            }
        }
        for (item, detail) in self.document_problems().await? {
            out.push(Mismatch {
                kind: MismatchKind::Document,
                item,
                detail,
            });
        }
        Ok(out)
    }
}

/// Compares an approval row's decision with its last `approval_decided` event.
fn approval_decision_mismatch(
    a: &crate::ApprovalItem,
    event: Option<&&AuditEvent>,
) -> Option<String> {
    let row_actor = format!(
        "{}:{}",
        a.decided_role.as_deref().unwrap_or(""),
        a.decided_by.as_deref().unwrap_or("")
    );
    match (a.status, event) {
        (ApprovalStatus::Pending, None) => None,
        (ApprovalStatus::Pending, Some(e)) => Some(format!(
            "pending, but `{APPROVAL_DECIDED}` event {} says {} by {}",
            e.seq,
            payload_str(e, "verdict").unwrap_or("?"),
            e.actor
        )),
        (status, None) => Some(format!(
            "{} by {row_actor}, but no `{APPROVAL_DECIDED}` event records a decision",
            status.as_str()
        )),
        (status, Some(e)) => {
            if !e.hash_is_consistent() {
                return Some(format!(
                    "its `{APPROVAL_DECIDED}` event {} was altered",
                    e.seq
                ));
            }
            let verdict = payload_str(e, "verdict").unwrap_or("");
            let verdict_status = match verdict {
                "approved" | "edited_and_approved" => ApprovalStatus::Approved,
                "rejected" => ApprovalStatus::Rejected,
                _ => ApprovalStatus::Pending,
            };
            if verdict_status != status || e.actor != row_actor {
                return Some(format!(
                    "the row says {} by {row_actor}, but `{APPROVAL_DECIDED}` event {} says {verdict} by {}",
                    status.as_str(),
                    e.seq,
                    e.actor
                ));
            }
            if status == ApprovalStatus::Approved {
                let audited = e.payload.get("final_action").filter(|v| !v.is_null());
                if audited != a.final_action.as_ref() {
                    return Some(format!(
                        "its final action is not the one `{APPROVAL_DECIDED}` event {} recorded",
                        e.seq
                    ));
                }
            }
            None
        }
    }
}
