//! Four eyes on documents (migration `0021_four_eyes`): activating a prompt, policy or
//! procedure version is a *request* by one person, with a reason, and an *approval* by
//! another; a rollback to the previously active version is the same kind of request, or,
//! in an emergency, an immediate activation with the flag and a reason.
//!
//! Invariants:
//!
//! - **The requester never approves their own request.** People are compared by user name,
//!   not by `role:name`, so a user whose role changed is still the same person. The
//!   approving UPDATE is conditional on `requested_by <> approver`, and a CHECK constraint
//!   refuses an `approved` row whose decider is its requester even when written around
//!   the store. Which *roles* may approve a document kind is the caller's rule (argent's is
//!   `argent_agent::FourEyes`); the store records the approver's role.
//! - **An approval activates in its own transaction**: the conditional UPDATE of the
//!   request, the activation of the version (the previous one retired) and the events
//!   `document.activation_approved` then `document.activate` (naming the request) commit
//!   together under the documents lock. Approving refuses (`Conflict`) when the active
//!   version is no longer the one the request was made against: the approver approved a
//!   change from that version.
//! - **Every step is audited with its actor and reason**: `document.activation_requested`,
//!   `document.activation_approved`, `document.activation_rejected`,
//!   `document.activation_withdrawn` (the requester's own rejection), and
//!   `document.rollback_emergency` before its `document.activate` (`emergency: true`, the
//!   reason). The trail check (`documents::document_trail`) requires an activation that
//!   names a request to be explained by that request's approval by someone else.
//! - At most one pending request per document (a partial unique index).
//!
//! Also here: the record of pending approval items re-judged when a new policy version
//! became active (`approval_rejudgements`), written by the agent.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::documents::{ACTIVATION_APPROVED, label};
use crate::tx::dispatch_tx;
use crate::{
    DocKind, DocumentVersion, NewAuditEvent, Result, Store, StoreError, StoreTx, dispatch,
    from_json, now, parse_col, str_enum,
};

pub const ACTIVATION_REQUESTED: &str = "document.activation_requested";
pub const ACTIVATION_REJECTED: &str = "document.activation_rejected";
pub const ACTIVATION_WITHDRAWN: &str = "document.activation_withdrawn";
pub const ROLLBACK_EMERGENCY: &str = "document.rollback_emergency";
/// A pending approval item judged again under a newly active policy version.
pub const APPROVAL_REJUDGED: &str = "approval.rejudged";

/// Where an activation request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocRequestStatus {
    /// Waiting for a second person.
    Pending,
    /// Approved, and so activated.
    Approved,
    Rejected,
    /// Taken back by its requester.
    Withdrawn,
}
str_enum!(DocRequestStatus {
    Pending => "pending",
    Approved => "approved",
    Rejected => "rejected",
    Withdrawn => "withdrawn",
});

/// A person acting on documents: user name and role (as `argent-server` names roles).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocActor {
    pub name: String,
    pub role: String,
}

impl DocActor {
    pub fn new(name: &str, role: &str) -> DocActor {
        DocActor {
            name: name.to_string(),
            role: role.to_string(),
        }
    }

    /// How the audit trail names them: `role:name`.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role, self.name)
    }
}

/// A request to make a version the active version of its document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocRequest {
    pub id: String,
    pub kind: DocKind,
    pub name: String,
    pub version: i64,
    /// The version active when it was requested.
    pub from_version: Option<i64>,
    /// A rollback to the previously active version.
    pub rollback: bool,
    pub reason: String,
    /// User name of the requester.
    pub requested_by: String,
    pub requested_role: String,
    pub requested_at: DateTime<Utc>,
    pub status: DocRequestStatus,
    pub decided_by: Option<String>,
    pub decided_role: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
}

const REQ_COLS: &str = "id, kind, name, version, from_version, is_rollback, reason, requested_by, \
                        requested_role, requested_at, status, decided_by, decided_role, \
                        decided_at, decision_note";

macro_rules! request_row {
    ($r:expr) => {{
        let id: String = $r.try_get("id")?;
        let kind: String = $r.try_get("kind")?;
        let status: String = $r.try_get("status")?;
        DocRequest {
            kind: parse_col("document request", &id, &kind)?,
            status: parse_col("document request", &id, &status)?,
            name: $r.try_get("name")?,
            version: $r.try_get("version")?,
            from_version: $r.try_get("from_version")?,
            rollback: $r.try_get("is_rollback")?,
            reason: $r.try_get("reason")?,
            requested_by: $r.try_get("requested_by")?,
            requested_role: $r.try_get("requested_role")?,
            requested_at: $r.try_get("requested_at")?,
            decided_by: $r.try_get("decided_by")?,
            decided_role: $r.try_get("decided_role")?,
            decided_at: $r.try_get("decided_at")?,
            decision_note: $r.try_get("decision_note")?,
            id,
        }
    }};
}

/// A pending approval item judged again under a newly active policy version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rejudgement {
    pub id: String,
    pub approval_id: String,
    /// The policy document's name and the version now active.
    pub policy: String,
    pub policy_version: i64,
    /// The outcome the item was queued with (`allow`, `needs_approval`, `deny`).
    pub was: String,
    /// The outcome under the new version.
    pub now: String,
    /// The deciding rules under the new version: `[{id, message}]`.
    pub rules: Value,
    /// The item was closed (rejected) because the new version denies it.
    pub closed: bool,
    /// Who made the version active (the approver, or the emergency's actor).
    pub actor: String,
    pub judged_at: DateTime<Utc>,
}

/// Ids for rows this module makes: a prefix and 16 hex digits of a hash of what is unique
/// about the row, the time and a per-process counter.
fn make_id(prefix: &str, parts: &[&str]) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.update(now().to_rfc3339().as_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    format!("{prefix}-{}", &hex::encode(h.finalize())[..16])
}

fn require_text(what: &str, text: &str) -> Result<String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(StoreError::Invalid(format!("{what} is required")));
    }
    Ok(t.to_string())
}

fn doc_event(actor: &str, kind: &str, payload: Value) -> NewAuditEvent {
    NewAuditEvent {
        run_id: None,
        customer_id: None,
        actor: actor.to_string(),
        kind: kind.to_string(),
        payload,
    }
}

impl StoreTx {
    async fn doc_request(&mut self, id: &str) -> Result<DocRequest> {
        let sql = format!("SELECT {REQ_COLS} FROM document_requests WHERE id = $1");
        let found = dispatch_tx!(self, |conn| {
            match sqlx::query(&sql)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
            {
                Some(r) => Some(request_row!(r)),
                None => None,
            }
        });
        found.ok_or_else(|| StoreError::NotFound(format!("document request {id}")))
    }

    async fn pending_request_of(&mut self, kind: DocKind, name: &str) -> Result<Option<String>> {
        Ok(dispatch_tx!(self, |conn| {
            match sqlx::query(
                "SELECT id FROM document_requests WHERE kind = $1 AND name = $2 AND status = 'pending'",
            )
            .bind(kind.as_str())
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?
            {
                Some(r) => Some(r.try_get::<String, _>("id")?),
                None => None,
            }
        }))
    }

    /// Sets a pending request's decision; `Conflict` when it is no longer pending (or, for
    /// an approval, when the approver is its requester).
    async fn decide_doc_request(
        &mut self,
        id: &str,
        status: DocRequestStatus,
        who: &DocActor,
        note: Option<&str>,
    ) -> Result<DateTime<Utc>> {
        let at = now();
        let sql = "UPDATE document_requests SET status = $1, decided_by = $2, decided_role = $3, \
                   decided_at = $4, decision_note = $5 \
                   WHERE id = $6 AND status = 'pending' AND ($1 <> 'approved' OR requested_by <> $2)";
        let n = dispatch_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(status.as_str())
                .bind(who.name.as_str())
                .bind(who.role.as_str())
                .bind(at)
                .bind(note)
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "document request {id} is not pending, or may not be approved by {}",
                who.name
            )));
        }
        Ok(at)
    }

    async fn insert_doc_request(
        &mut self,
        kind: DocKind,
        name: &str,
        version: i64,
        who: &DocActor,
        reason: &str,
        rollback: bool,
    ) -> Result<DocRequest> {
        let reason = require_text("a reason for the activation", reason)?;
        let Some(doc) = self.document_version(kind, name, version).await? else {
            return Err(StoreError::NotFound(label(kind, name, version)));
        };
        let from_version = self.active_document_version(kind, name).await?;
        if from_version == Some(version) {
            return Err(StoreError::Conflict(format!(
                "{} is already active",
                label(kind, name, version)
            )));
        }
        if let Some(other) = self.pending_request_of(kind, name).await? {
            return Err(StoreError::Conflict(format!(
                "{kind} '{name}' already has a pending activation request ({other}): approve, \
                 reject or withdraw it first"
            )));
        }
        let req = DocRequest {
            id: make_id(
                "dr",
                &[kind.as_str(), name, &version.to_string(), &who.name],
            ),
            kind,
            name: name.to_string(),
            version,
            from_version,
            rollback,
            reason,
            requested_by: who.name.clone(),
            requested_role: who.role.clone(),
            requested_at: now(),
            status: DocRequestStatus::Pending,
            decided_by: None,
            decided_role: None,
            decided_at: None,
            decision_note: None,
        };
        let sql = format!(
            "INSERT INTO document_requests ({REQ_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', NULL, NULL, NULL, NULL)"
        );
        dispatch_tx!(self, |conn| {
            sqlx::query(&sql)
                .bind(req.id.as_str())
                .bind(kind.as_str())
                .bind(name)
                .bind(version)
                .bind(from_version)
                .bind(rollback)
                .bind(req.reason.as_str())
                .bind(who.name.as_str())
                .bind(who.role.as_str())
                .bind(req.requested_at)
                .execute(&mut *conn)
                .await?;
        });
        self.audit_append(doc_event(
            &who.actor(),
            ACTIVATION_REQUESTED,
            json!({
                "request_id": req.id,
                "kind": kind.as_str(),
                "name": name,
                "version": version,
                "sha256": doc.sha256,
                "from_version": from_version,
                "rollback": rollback,
                "reason": req.reason,
            }),
        ))
        .await?;
        Ok(req)
    }

    /// Records that a pending approval item was judged again under a newly active policy
    /// version, with its `approval.rejudged` event (on the item's run and customer).
    /// Closing the item, when the new version denies it, is the caller's part of the same
    /// transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_rejudgement(
        &mut self,
        item: &crate::ApprovalItem,
        policy: &str,
        policy_version: i64,
        was: &str,
        now_outcome: &str,
        rules: &Value,
        closed: bool,
        actor: &str,
    ) -> Result<Rejudgement> {
        let r = Rejudgement {
            id: make_id("rj", &[&item.id, policy, &policy_version.to_string()]),
            approval_id: item.id.clone(),
            policy: policy.to_string(),
            policy_version,
            was: was.to_string(),
            now: now_outcome.to_string(),
            rules: rules.clone(),
            closed,
            actor: actor.to_string(),
            judged_at: now(),
        };
        let sql = "INSERT INTO approval_rejudgements (id, approval_id, policy, policy_version, was, \
                   now_outcome, rules, closed, actor, judged_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        let rules_text = crate::to_json(rules);
        dispatch_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(r.id.as_str())
                .bind(r.approval_id.as_str())
                .bind(policy)
                .bind(policy_version)
                .bind(was)
                .bind(now_outcome)
                .bind(rules_text.as_str())
                .bind(closed)
                .bind(actor)
                .bind(r.judged_at)
                .execute(&mut *conn)
                .await?;
        });
        self.audit_append(NewAuditEvent {
            run_id: Some(item.run_id.clone()),
            customer_id: Some(item.customer_id.clone()),
            actor: actor.to_string(),
            kind: APPROVAL_REJUDGED.into(),
            payload: json!({
                "approval_id": item.id,
                "call_id": item.call_id,
                "policy": policy,
                "policy_version": policy_version,
                "was": was,
                "now": now_outcome,
                "rules": rules,
                "closed": closed,
            }),
        })
        .await?;
        Ok(r)
    }
}

impl Store {
    /// Asks for `version` of `(kind, name)` to become active: a pending request, with its
    /// `document.activation_requested` event, in one transaction. `Invalid` without a
    /// reason; `NotFound` for no such version; `Conflict` when it is already active or the
    /// document already has a pending request.
    pub async fn request_document_activation(
        &self,
        kind: DocKind,
        name: &str,
        version: i64,
        who: &DocActor,
        reason: &str,
    ) -> Result<DocRequest> {
        let mut tx = self.begin().await?;
        tx.lock_documents().await?;
        let req = tx
            .insert_doc_request(kind, name, version, who, reason, false)
            .await?;
        tx.commit().await?;
        Ok(req)
    }

    /// Asks to roll `(kind, name)` back to the version that was active before the active
    /// one: a request like any other (`rollback` set). `Conflict` when no version was ever
    /// replaced.
    pub async fn request_document_rollback(
        &self,
        kind: DocKind,
        name: &str,
        who: &DocActor,
        reason: &str,
    ) -> Result<DocRequest> {
        let mut tx = self.begin().await?;
        tx.lock_documents().await?;
        let Some(previous) = tx.previous_document_version(kind, name).await? else {
            return Err(no_previous(kind, name));
        };
        let req = tx
            .insert_doc_request(kind, name, previous, who, reason, true)
            .await?;
        tx.commit().await?;
        Ok(req)
    }

    /// The version a rollback of `(kind, name)` would make active, if there is one.
    pub async fn previous_document_version(
        &self,
        kind: DocKind,
        name: &str,
    ) -> Result<Option<i64>> {
        let sql = "SELECT version FROM documents WHERE kind = $1 AND name = $2 \
                   AND status = 'retired' AND activated_at IS NOT NULL \
                   ORDER BY activated_at DESC, version DESC LIMIT 1";
        Ok(dispatch!(self, |pool| {
            match sqlx::query(sql)
                .bind(kind.as_str())
                .bind(name)
                .fetch_optional(pool)
                .await?
            {
                Some(r) => Some(r.try_get::<i64, _>("version")?),
                None => None,
            }
        }))
    }

    /// Approves a pending request and activates its version, in one transaction:
    /// `document.activation_approved` (requester, approver, note) and `document.activate`
    /// naming the request. `Conflict` when the request is not pending, when `who` is its
    /// requester, or when the active version is no longer the one it was made against.
    /// Whether `who`'s role may approve this kind of document is the caller's check.
    pub async fn approve_document_request(
        &self,
        id: &str,
        who: &DocActor,
        note: Option<&str>,
    ) -> Result<(DocRequest, DocumentVersion)> {
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        let mut tx = self.begin().await?;
        tx.lock_documents().await?;
        let mut req = tx.doc_request(id).await?;
        if req.status != DocRequestStatus::Pending {
            return Err(StoreError::Conflict(format!(
                "document request {id} is already {}",
                req.status.as_str()
            )));
        }
        if req.requested_by == who.name {
            return Err(StoreError::Conflict(format!(
                "{} requested {id} and may not approve it: a second person must",
                who.name
            )));
        }
        let active = tx.active_document_version(req.kind, &req.name).await?;
        if active != req.from_version {
            return Err(StoreError::Conflict(format!(
                "document request {id} was made while version {} of {} '{}' was active; \
                 version {} is active now: reject it and request again",
                req.from_version
                    .map_or_else(|| "none".to_string(), |v| v.to_string()),
                req.kind,
                req.name,
                active.map_or_else(|| "none".to_string(), |v| v.to_string()),
            )));
        }
        let at = tx
            .decide_doc_request(id, DocRequestStatus::Approved, who, note)
            .await?;
        let doc = tx
            .document_version(req.kind, &req.name, req.version)
            .await?
            .ok_or_else(|| StoreError::NotFound(label(req.kind, &req.name, req.version)))?;
        tx.audit_append(doc_event(
            &who.actor(),
            ACTIVATION_APPROVED,
            json!({
                "request_id": id,
                "kind": req.kind.as_str(),
                "name": req.name,
                "version": req.version,
                "sha256": doc.sha256,
                "rollback": req.rollback,
                "requested_by": req.requested_by,
                "approved_by": who.name,
                "approver_role": who.role,
                "note": note,
            }),
        ))
        .await?;
        let (doc, _) = tx
            .activate_version(
                req.kind,
                &req.name,
                req.version,
                &who.actor(),
                json!({
                    "request_id": id,
                    "requested_by": req.requested_by,
                    "approved_by": who.name,
                    "rollback": req.rollback,
                }),
            )
            .await?;
        tx.commit().await?;
        req.status = DocRequestStatus::Approved;
        req.decided_by = Some(who.name.clone());
        req.decided_role = Some(who.role.clone());
        req.decided_at = Some(at);
        req.decision_note = note.map(str::to_string);
        Ok((req, doc))
    }

    /// Rejects a pending request with a reason (`document.activation_rejected`), or, when
    /// `who` is its requester, withdraws it (`document.activation_withdrawn`). Nothing is
    /// activated. Whether `who`'s role may reject is the caller's check.
    pub async fn reject_document_request(
        &self,
        id: &str,
        who: &DocActor,
        note: &str,
    ) -> Result<DocRequest> {
        let note = require_text("a reason for the rejection", note)?;
        let mut tx = self.begin().await?;
        tx.lock_documents().await?;
        let mut req = tx.doc_request(id).await?;
        if req.status != DocRequestStatus::Pending {
            return Err(StoreError::Conflict(format!(
                "document request {id} is already {}",
                req.status.as_str()
            )));
        }
        let (status, kind) = if req.requested_by == who.name {
            (DocRequestStatus::Withdrawn, ACTIVATION_WITHDRAWN)
        } else {
            (DocRequestStatus::Rejected, ACTIVATION_REJECTED)
        };
        let at = tx.decide_doc_request(id, status, who, Some(&note)).await?;
        tx.audit_append(doc_event(
            &who.actor(),
            kind,
            json!({
                "request_id": id,
                "kind": req.kind.as_str(),
                "name": req.name,
                "version": req.version,
                "rollback": req.rollback,
                "requested_by": req.requested_by,
                "note": note,
            }),
        ))
        .await?;
        tx.commit().await?;
        req.status = status;
        req.decided_by = Some(who.name.clone());
        req.decided_role = Some(who.role.clone());
        req.decided_at = Some(at);
        req.decision_note = Some(note);
        Ok(req)
    }

    /// Rolls `(kind, name)` back to the previously active version, `version`, at once,
    /// without a second person: `document.rollback_emergency` (flag, reason) and
    /// `document.activate` (`emergency: true`, the reason) in one transaction. `Invalid`
    /// without a reason; `Conflict` when no version was ever replaced or the previous
    /// version is not `version` (the caller looked before another activation landed).
    /// Which roles may do this is the caller's check.
    pub async fn rollback_document_emergency(
        &self,
        kind: DocKind,
        name: &str,
        version: i64,
        who: &DocActor,
        reason: &str,
    ) -> Result<DocumentVersion> {
        let reason = require_text("a reason for the emergency rollback", reason)?;
        let mut tx = self.begin().await?;
        tx.lock_documents().await?;
        let Some(previous) = tx.previous_document_version(kind, name).await? else {
            return Err(no_previous(kind, name));
        };
        if previous != version {
            return Err(StoreError::Conflict(format!(
                "the version before the active one of {kind} '{name}' is {previous} now, not {version}"
            )));
        }
        let from = tx.active_document_version(kind, name).await?;
        tx.audit_append(doc_event(
            &who.actor(),
            ROLLBACK_EMERGENCY,
            json!({
                "kind": kind.as_str(),
                "name": name,
                "version": previous,
                "from_version": from,
                "emergency": true,
                "reason": reason,
            }),
        ))
        .await?;
        let (doc, _) = tx
            .activate_version(
                kind,
                name,
                previous,
                &who.actor(),
                json!({"emergency": true, "rollback": true, "reason": reason}),
            )
            .await?;
        tx.commit().await?;
        Ok(doc)
    }

    /// One request; `NotFound` if there is none.
    pub async fn document_request(&self, id: &str) -> Result<DocRequest> {
        let sql = format!("SELECT {REQ_COLS} FROM document_requests WHERE id = $1");
        let found = dispatch!(self, |pool| {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(request_row!(r)),
                None => None,
            }
        });
        found.ok_or_else(|| StoreError::NotFound(format!("document request {id}")))
    }

    /// Requests, newest first: with a status, or all; of one document, or of all.
    pub async fn document_requests(
        &self,
        status: Option<DocRequestStatus>,
        document: Option<(DocKind, &str)>,
    ) -> Result<Vec<DocRequest>> {
        let sql = format!(
            "SELECT {REQ_COLS} FROM document_requests \
             WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR (kind = $2 AND name = $3)) \
             ORDER BY requested_at DESC, id"
        );
        let (kind, name) = match document {
            Some((k, n)) => (Some(k.as_str()), Some(n)),
            None => (None, None),
        };
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql)
                .bind(status.map(|s| s.as_str()))
                .bind(kind)
                .bind(name)
                .fetch_all(pool)
                .await?
            {
                out.push(request_row!(r));
            }
            out
        }))
    }

    /// How an approval item was judged again under newly active policy versions, oldest
    /// first.
    pub async fn rejudgements(&self, approval_id: &str) -> Result<Vec<Rejudgement>> {
        let sql = "SELECT id, approval_id, policy, policy_version, was, now_outcome, rules, \
                   closed, actor, judged_at FROM approval_rejudgements \
                   WHERE approval_id = $1 ORDER BY judged_at, id";
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(sql).bind(approval_id).fetch_all(pool).await? {
                let id: String = r.try_get("id")?;
                let rules: String = r.try_get("rules")?;
                out.push(Rejudgement {
                    rules: from_json("rejudgement rules", &id, &rules)?,
                    approval_id: r.try_get("approval_id")?,
                    policy: r.try_get("policy")?,
                    policy_version: r.try_get("policy_version")?,
                    was: r.try_get("was")?,
                    now: r.try_get("now_outcome")?,
                    closed: r.try_get("closed")?,
                    actor: r.try_get("actor")?,
                    judged_at: r.try_get("judged_at")?,
                    id,
                });
            }
            out
        }))
    }
}

fn no_previous(kind: DocKind, name: &str) -> StoreError {
    StoreError::Conflict(format!(
        "{kind} '{name}' has no previously active version to roll back to"
    ))
}
