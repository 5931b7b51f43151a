//! Prompts and policies as versioned documents.
//!
//! A document is a `(kind, name)` — `("prompt", "tone/firm")`, `("policy", "us-consumer")`
//! — with versions 1, 2, 3, … Each version's text is written once and never changed (a
//! database trigger refuses it); a new text is a new version, created as a `draft`.
//! Activating a version retires the previously active one in the same transaction; at most
//! one version per document is `active` (a partial unique index enforces it). Every write
//! is audited in the transaction that makes it: `document.draft`, `document.activate`,
//! `document.seed`, with the author as the actor.
//!
//! Writers are serialized: on SQLite by `BEGIN IMMEDIATE` (every [`StoreTx`]), on
//! PostgreSQL by a `SHARE ROW EXCLUSIVE` lock on the table, which conflicts with other
//! writers but not with readers. So two drafts never race for a version number and two
//! activations of one document end with exactly one of them active.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::tx::dispatch_tx;
use crate::{
    Backend, NewAuditEvent, Result, Session, Store, StoreError, StoreTx, dispatch, dispatch_on,
    now, parse_col, str_enum,
};

/// What a document is: a handlebars prompt template, a TOML policy pack or a TOML dunning
/// procedure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Prompt,
    Policy,
    /// A dunning procedure (or the assignment of procedures to risk segments), TOML.
    Procedure,
}
str_enum!(DocKind {
    Prompt => "prompt",
    Policy => "policy",
    Procedure => "procedure",
});

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocStatus {
    /// Written, not (yet) used by the agent.
    Draft,
    /// The version the agent uses; at most one per document.
    Active,
    /// Was active; replaced by another version.
    Retired,
}
str_enum!(DocStatus {
    Draft => "draft",
    Active => "active",
    Retired => "retired",
});

/// One version of one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentVersion {
    pub kind: DocKind,
    pub name: String,
    pub version: i64,
    pub body: String,
    /// Hex SHA-256 of `body`.
    pub sha256: String,
    pub status: DocStatus,
    pub author: String,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub activated_by: Option<String>,
}

/// One document and where its versions stand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentSummary {
    pub kind: DocKind,
    pub name: String,
    pub active_version: Option<i64>,
    pub latest_version: i64,
    /// How many versions exist.
    pub versions: i64,
}

/// Hex SHA-256 of a document body, as stored in `sha256`.
pub fn body_sha256(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

const COLS: &str = "kind, name, version, body, sha256, status, author, note, created_at, \
                    activated_at, activated_by";

macro_rules! version_row {
    ($r:expr) => {{
        let name: String = $r.try_get("name")?;
        let kind: String = $r.try_get("kind")?;
        let status: String = $r.try_get("status")?;
        DocumentVersion {
            kind: parse_col("document", &name, &kind)?,
            status: parse_col("document", &name, &status)?,
            version: $r.try_get("version")?,
            body: $r.try_get("body")?,
            sha256: $r.try_get("sha256")?,
            author: $r.try_get("author")?,
            note: $r.try_get("note")?,
            created_at: $r.try_get("created_at")?,
            activated_at: $r.try_get("activated_at")?,
            activated_by: $r.try_get("activated_by")?,
            name,
        }
    }};
}

const SEED: &str = "document.seed";
const DRAFT: &str = "document.draft";
const ACTIVATE: &str = "document.activate";
/// A second person's approval of an activation request (`crate::doc_requests`).
pub(crate) const ACTIVATION_APPROVED: &str = "document.activation_approved";

/// One document event as the trail recorded it.
#[derive(Clone, Debug)]
struct Audited {
    seq: i64,
    kind: String,
    version: i64,
    sha256: String,
    /// The event's hash recomputes from its content.
    intact: bool,
    /// For an activation: why the trail does not explain it (an approval it names that
    /// the trail lacks, or one given by its own requester).
    unexplained: Option<String>,
}

/// What the trail says about documents: how each version was created, and which version
/// of each document was last activated (seeding activates version 1).
#[derive(Default)]
struct DocTrail {
    created: std::collections::HashMap<(DocKind, String, i64), Audited>,
    activated: std::collections::HashMap<(DocKind, String), Audited>,
}

impl DocTrail {
    /// What is wrong with one stored version, as the trail sees it.
    fn version_problems(&self, v: &DocumentVersion) -> Vec<String> {
        let mut out = Vec::new();
        let actual = body_sha256(&v.body);
        if actual != v.sha256 {
            out.push(format!(
                "its text hashes to {actual} but its sha256 column says {}",
                v.sha256
            ));
        }
        match self.created.get(&(v.kind, v.name.clone(), v.version)) {
            None => out.push(format!(
                "no {SEED} or {DRAFT} audit event records this version (a row written around the store)"
            )),
            Some(a) if !a.intact => out.push(format!(
                "its {} event {} was altered (its content no longer hashes to its stored hash)",
                a.kind, a.seq
            )),
            Some(a) if a.sha256 != actual => out.push(format!(
                "its text hashes to {actual} but its {} event {} recorded {}",
                a.kind, a.seq, a.sha256
            )),
            Some(_) => {}
        }
        if v.status == DocStatus::Active {
            match self.activated.get(&(v.kind, v.name.clone())) {
                None => out.push(format!(
                    "it is active, but no {SEED} or {ACTIVATE} audit event activated any version of it"
                )),
                Some(a) if a.version != v.version => out.push(format!(
                    "it is active, but the audit trail's last activation of {} '{}' is version {} \
                     ({} event {})",
                    v.kind, v.name, a.version, a.kind, a.seq
                )),
                Some(a) if !a.intact => out.push(format!(
                    "its {} event {} was altered (its content no longer hashes to its stored hash)",
                    a.kind, a.seq
                )),
                Some(a) if a.sha256 != actual => out.push(format!(
                    "its text hashes to {actual} but its {} event {} recorded {}",
                    a.kind, a.seq, a.sha256
                )),
                Some(Audited {
                    unexplained: Some(why),
                    kind,
                    seq,
                    ..
                }) => out.push(format!("its {kind} event {seq} {why}")),
                Some(_) => {}
            }
        }
        out
    }

    /// Documents the trail says are active that have no active row.
    fn missing_active(&self, active: &[DocumentVersion]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .activated
            .iter()
            .filter(|((kind, name), _)| !active.iter().any(|v| v.kind == *kind && &v.name == name))
            .map(|((kind, name), a)| {
                (
                    label(*kind, name, a.version),
                    format!(
                        "the audit trail says it is active ({} event {}), but the database has no \
                         active version of {kind} '{name}'",
                        a.kind, a.seq
                    ),
                )
            })
            .collect();
        out.sort();
        out
    }
}

pub(crate) fn label(kind: DocKind, name: &str, version: i64) -> String {
    format!("{kind} '{name}' version {version}")
}

impl StoreTx {
    /// Takes the documents write lock (PostgreSQL; on SQLite the transaction already holds
    /// the database's write lock).
    pub(crate) async fn lock_documents(&mut self) -> Result<()> {
        if self.backend() == Backend::Postgres {
            dispatch_tx!(self, |conn| {
                sqlx::query("LOCK TABLE documents IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *conn)
                    .await?;
            });
        }
        Ok(())
    }

    pub(crate) async fn document_version(
        &mut self,
        kind: DocKind,
        name: &str,
        version: i64,
    ) -> Result<Option<DocumentVersion>> {
        let sql =
            format!("SELECT {COLS} FROM documents WHERE kind = $1 AND name = $2 AND version = $3");
        Ok(dispatch_tx!(self, |conn| {
            match sqlx::query(&sql)
                .bind(kind.as_str())
                .bind(name)
                .bind(version)
                .fetch_optional(&mut *conn)
                .await?
            {
                Some(r) => Some(version_row!(r)),
                None => None,
            }
        }))
    }

    /// The newest version number of a document, 0 if it has none.
    async fn latest_document_version(&mut self, kind: DocKind, name: &str) -> Result<i64> {
        let sql =
            "SELECT COALESCE(MAX(version), 0) AS v FROM documents WHERE kind = $1 AND name = $2";
        Ok(dispatch_tx!(self, |conn| {
            let r = sqlx::query(sql)
                .bind(kind.as_str())
                .bind(name)
                .fetch_one(&mut *conn)
                .await?;
            r.try_get::<i64, _>("v")?
        }))
    }

    /// Makes `version` active and retires the active one, with its `document.activate`
    /// event (`extra`'s fields added to the payload), in this transaction; the caller holds
    /// the documents lock. Returns the version as now active and the previous one.
    pub(crate) async fn activate_version(
        &mut self,
        kind: DocKind,
        name: &str,
        version: i64,
        actor: &str,
        extra: serde_json::Value,
    ) -> Result<(DocumentVersion, Option<i64>)> {
        let Some(mut doc) = self.document_version(kind, name, version).await? else {
            return Err(StoreError::NotFound(label(kind, name, version)));
        };
        if doc.status == DocStatus::Active {
            return Err(StoreError::Conflict(format!(
                "{} is already active",
                label(kind, name, version)
            )));
        }
        let previous: Option<i64> = dispatch_tx!(self, |conn| {
            match sqlx::query(
                "UPDATE documents SET status = 'retired' \
                 WHERE kind = $1 AND name = $2 AND status = 'active' RETURNING version",
            )
            .bind(kind.as_str())
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?
            {
                Some(r) => Some(r.try_get::<i64, _>("version")?),
                None => None,
            }
        });
        let at = now();
        dispatch_tx!(self, |conn| {
            sqlx::query(
                "UPDATE documents SET status = 'active', activated_at = $1, activated_by = $2 \
                 WHERE kind = $3 AND name = $4 AND version = $5",
            )
            .bind(at)
            .bind(actor)
            .bind(kind.as_str())
            .bind(name)
            .bind(version)
            .execute(&mut *conn)
            .await?;
        });
        let mut payload = json!({
            "kind": kind.as_str(),
            "name": name,
            "version": version,
            "sha256": doc.sha256,
            "previous_version": previous,
        });
        if let (Some(p), serde_json::Value::Object(extra)) = (payload.as_object_mut(), extra) {
            p.extend(extra);
        }
        self.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: None,
            actor: actor.to_string(),
            kind: ACTIVATE.into(),
            payload,
        })
        .await?;
        doc.status = DocStatus::Active;
        doc.activated_at = Some(at);
        doc.activated_by = Some(actor.to_string());
        Ok((doc, previous))
    }

    /// The active version of a document, if any.
    pub(crate) async fn active_document_version(
        &mut self,
        kind: DocKind,
        name: &str,
    ) -> Result<Option<i64>> {
        Ok(dispatch_tx!(self, |conn| {
            match sqlx::query(
                "SELECT version FROM documents WHERE kind = $1 AND name = $2 AND status = 'active'",
            )
            .bind(kind.as_str())
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?
            {
                Some(r) => Some(r.try_get::<i64, _>("version")?),
                None => None,
            }
        }))
    }

    /// The version that was active before the active one: the retired version activated
    /// last. `None` when no version was ever replaced.
    pub(crate) async fn previous_document_version(
        &mut self,
        kind: DocKind,
        name: &str,
    ) -> Result<Option<i64>> {
        Ok(dispatch_tx!(self, |conn| {
            match sqlx::query(
                "SELECT version FROM documents WHERE kind = $1 AND name = $2 \
                 AND status = 'retired' AND activated_at IS NOT NULL \
                 ORDER BY activated_at DESC, version DESC LIMIT 1",
            )
            .bind(kind.as_str())
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?
            {
                Some(r) => Some(r.try_get::<i64, _>("version")?),
                None => None,
            }
        }))
    }

    async fn insert_document(&mut self, d: &DocumentVersion) -> Result<()> {
        let sql = format!(
            "INSERT INTO documents ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        dispatch_tx!(self, |conn| {
            sqlx::query(&sql)
                .bind(d.kind.as_str())
                .bind(d.name.as_str())
                .bind(d.version)
                .bind(d.body.as_str())
                .bind(d.sha256.as_str())
                .bind(d.status.as_str())
                .bind(d.author.as_str())
                .bind(d.note.as_deref())
                .bind(d.created_at)
                .bind(d.activated_at)
                .bind(d.activated_by.as_deref())
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.trim() != name {
        return Err(StoreError::Invalid(format!(
            "'{name}' is not a document name (empty, or leading/trailing spaces)"
        )));
    }
    Ok(())
}

impl Store {
    /// Every document, sorted by kind then name.
    pub async fn documents(&self) -> Result<Vec<DocumentSummary>> {
        let sql = "SELECT kind, name, MAX(version) AS latest, COUNT(*) AS n, \
                   MAX(CASE WHEN status = 'active' THEN version END) AS active \
                   FROM documents GROUP BY kind, name";
        let mut out: Vec<DocumentSummary> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(sql).fetch_all(pool).await? {
                let name: String = r.try_get("name")?;
                let kind: String = r.try_get("kind")?;
                out.push(DocumentSummary {
                    kind: parse_col("document", &name, &kind)?,
                    latest_version: r.try_get("latest")?,
                    versions: r.try_get("n")?,
                    active_version: r.try_get("active")?,
                    name,
                });
            }
            out
        });
        // Sorted here, not by the database, so both backends order names byte-wise.
        out.sort_by(|a, b| (a.kind.as_str(), &a.name).cmp(&(b.kind.as_str(), &b.name)));
        Ok(out)
    }

    /// Every version of one document, newest first (empty if there is no such document).
    pub async fn document_versions(
        &self,
        kind: DocKind,
        name: &str,
    ) -> Result<Vec<DocumentVersion>> {
        let sql = format!(
            "SELECT {COLS} FROM documents WHERE kind = $1 AND name = $2 ORDER BY version DESC"
        );
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql)
                .bind(kind.as_str())
                .bind(name)
                .fetch_all(pool)
                .await?
            {
                out.push(version_row!(r));
            }
            out
        }))
    }

    /// One version; `NotFound` if it does not exist.
    pub async fn document(
        &self,
        kind: DocKind,
        name: &str,
        version: i64,
    ) -> Result<DocumentVersion> {
        let sql =
            format!("SELECT {COLS} FROM documents WHERE kind = $1 AND name = $2 AND version = $3");
        let found = dispatch!(self, |pool| {
            match sqlx::query(&sql)
                .bind(kind.as_str())
                .bind(name)
                .bind(version)
                .fetch_optional(pool)
                .await?
            {
                Some(r) => Some(version_row!(r)),
                None => None,
            }
        });
        found.ok_or_else(|| StoreError::NotFound(label(kind, name, version)))
    }

    /// The active version of every document, sorted by kind then name — exactly as the
    /// audit trail recorded them, or [`StoreError::Tampered`]: each version's text must hash
    /// to what its `document.seed` / `document.draft` event recorded, and the active version
    /// of each document must be the one the trail's last `document.seed` /
    /// `document.activate` of it names (and every document the trail says is active must
    /// have an active row). A refusal names every such version with both hashes, and is
    /// audited (`integrity.refused`) where the database still takes writes. This is what
    /// the agent is built from, so a text changed in the database never takes effect.
    pub async fn active_documents(&self) -> Result<Vec<DocumentVersion>> {
        let sql = format!("SELECT {COLS} FROM documents WHERE status = 'active'");
        let mut chained = false;
        // The documents and their trail are read on one session (see [`Session`]).
        let mut session = Session::hold(self).await?;
        let (out, problems) = loop {
            let mut out: Vec<DocumentVersion> = dispatch_on!(self, session, |ex| {
                let mut out = Vec::new();
                for r in sqlx::query(&sql).fetch_all(ex).await? {
                    out.push(version_row!(r));
                }
                out
            });
            out.sort_by(|a, b| (a.kind.as_str(), &a.name).cmp(&(b.kind.as_str(), &b.name)));
            let trail = self.document_trail(&mut session).await?;
            let mut problems: Vec<(String, String)> = Vec::new();
            for v in &out {
                for p in trail.version_problems(v) {
                    problems.push((label(v.kind, &v.name, v.version), p));
                }
            }
            problems.extend(trail.missing_active(&out));
            // On PostgreSQL an activation read between its commit and the chaining of its
            // events is not a finding: chain what is staged and look once more.
            if problems.is_empty() || chained || self.backend() == crate::Backend::Sqlite {
                break (out, problems);
            }
            session.release().await;
            self.audit_chain_staged().await?;
            chained = true;
        };
        session.end().await;
        if !problems.is_empty() {
            let text = problems
                .iter()
                .map(|(item, why)| format!("{item}: {why}"))
                .collect::<Vec<_>>()
                .join("; ");
            let refused = NewAuditEvent {
                run_id: None,
                customer_id: None,
                actor: "store".into(),
                kind: crate::integrity::INTEGRITY_REFUSED.into(),
                payload: json!({
                    "what": "active documents",
                    "problems": problems
                        .iter()
                        .map(|(item, why)| json!({"item": item, "problem": why}))
                        .collect::<Vec<_>>(),
                }),
            };
            if let Err(e) = self.audit_append(refused).await {
                tracing::warn!(error = %e, "auditing the refusal to load documents");
            }
            return Err(StoreError::Tampered(format!(
                "refusing to load the active documents: {text}"
            )));
        }
        Ok(out)
    }

    /// The document events of the trail, indexed for [`DocTrail::version_problems`].
    async fn document_trail(&self, session: &mut Session) -> Result<DocTrail> {
        let events = self
            .audit_events_of_kinds(&[SEED, DRAFT, ACTIVATE, ACTIVATION_APPROVED], true, session)
            .await?;
        let mut trail = DocTrail::default();
        // Approvals by request id: (kind, name, version, requester, approver, intact).
        let mut approvals: std::collections::HashMap<
            String,
            (String, String, i64, String, String, bool),
        > = std::collections::HashMap::new();
        for e in events {
            if e.kind == ACTIVATION_APPROVED {
                let s = |k: &str| {
                    e.payload
                        .get(k)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                approvals.insert(
                    s("request_id"),
                    (
                        s("kind"),
                        s("name"),
                        e.payload
                            .get("version")
                            .and_then(|v| v.as_i64())
                            .unwrap_or(0),
                        s("requested_by"),
                        s("approved_by"),
                        e.hash_is_consistent(),
                    ),
                );
                continue;
            }
            let (Some(kind), Some(name), Some(version), Some(sha)) = (
                e.payload
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .and_then(|k| k.parse::<DocKind>().ok()),
                e.payload.get("name").and_then(|n| n.as_str()),
                e.payload.get("version").and_then(|v| v.as_i64()),
                e.payload.get("sha256").and_then(|h| h.as_str()),
            ) else {
                continue;
            };
            let intact = e.hash_is_consistent();
            // An activation that names a request must be explained by that request's
            // approval, given by someone other than its requester. (Activations from
            // before four eyes, and the store-level `activate_document`, name none; an
            // emergency rollback names its flag and reason.)
            let unexplained = match e.payload.get("request_id").and_then(|r| r.as_str()) {
                Some(rid) if e.kind == ACTIVATE => match approvals.get(rid) {
                    None => Some(format!(
                        "names request {rid}, but no {ACTIVATION_APPROVED} event approves it"
                    )),
                    Some((_, _, _, _, _, false)) => Some(format!(
                        "names request {rid}, whose {ACTIVATION_APPROVED} event was altered"
                    )),
                    Some((k, n, v, _, _, _))
                        if k != kind.as_str() || n != name || *v != version =>
                    {
                        Some(format!(
                            "names request {rid}, but that approval is for {k} '{n}' version {v}"
                        ))
                    }
                    Some((_, _, _, by, approver, _)) if by.is_empty() || by == approver => Some(
                        format!("names request {rid}, approved by its own requester '{approver}'"),
                    ),
                    Some(_) => None,
                },
                _ if e.kind == ACTIVATE
                    && e.payload.get("emergency").and_then(|f| f.as_bool()) == Some(true)
                    && e.payload
                        .get("reason")
                        .and_then(|r| r.as_str())
                        .is_none_or(|r| r.trim().is_empty()) =>
                {
                    Some("is an emergency activation without a reason".to_string())
                }
                _ => None,
            };
            let at = Audited {
                seq: e.seq,
                kind: e.kind.clone(),
                version,
                sha256: sha.to_string(),
                intact,
                unexplained,
            };
            if e.kind == SEED || e.kind == DRAFT {
                trail
                    .created
                    .insert((kind, name.to_string(), version), at.clone());
            }
            if e.kind == SEED || e.kind == ACTIVATE {
                trail.activated.insert((kind, name.to_string()), at);
            }
        }
        Ok(trail)
    }

    /// Every document version that disagrees with the audit trail, as (item, problem):
    /// for `argent audit verify`.
    pub async fn document_problems(&self) -> Result<Vec<(String, String)>> {
        self.audit_chain_staged().await?;
        let sql = format!("SELECT {COLS} FROM documents ORDER BY kind, name, version");
        let all: Vec<DocumentVersion> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).fetch_all(pool).await? {
                out.push(version_row!(r));
            }
            out
        });
        let trail = self.document_trail(&mut Session::none()).await?;
        let mut problems = Vec::new();
        for v in &all {
            for p in trail.version_problems(v) {
                problems.push((label(v.kind, &v.name, v.version), p));
            }
        }
        let active: Vec<DocumentVersion> = all
            .into_iter()
            .filter(|v| v.status == DocStatus::Active)
            .collect();
        problems.extend(trail.missing_active(&active));
        Ok(problems)
    }

    /// Writes `body` as the next version of a document (version 1 for a new one), as a
    /// draft, audited as `document.draft` by `author`, in one transaction.
    pub async fn create_document_version(
        &self,
        kind: DocKind,
        name: &str,
        body: &str,
        author: &str,
        note: Option<&str>,
    ) -> Result<DocumentVersion> {
        check_name(name)?;
        let mut tx = self.begin().await?;
        tx.lock_documents().await?;
        let version = tx.latest_document_version(kind, name).await? + 1;
        let doc = DocumentVersion {
            kind,
            name: name.to_string(),
            version,
            body: body.to_string(),
            sha256: body_sha256(body),
            status: DocStatus::Draft,
            author: author.to_string(),
            note: note.map(str::to_string),
            created_at: now(),
            activated_at: None,
            activated_by: None,
        };
        tx.insert_document(&doc).await?;
        tx.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: None,
            actor: author.to_string(),
            kind: DRAFT.into(),
            payload: json!({
                "kind": kind.as_str(),
                "name": name,
                "version": version,
                "sha256": doc.sha256,
                "note": note,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(doc)
    }

    /// Makes `version` the active version of its document: the previously active one (if
    /// any) is retired, and `document.activate` is audited with `actor` and the previous
    /// version, all in one transaction. `NotFound` if the version does not exist;
    /// `Conflict` if it is already the active one.
    ///
    /// This is the store's step alone, with no second person: the server never calls it
    /// (it activates through an approved request or an emergency rollback,
    /// `crate::doc_requests`); tests and tools that set a database up do.
    pub async fn activate_document(
        &self,
        kind: DocKind,
        name: &str,
        version: i64,
        actor: &str,
    ) -> Result<DocumentVersion> {
        let mut tx = self.begin().await?;
        tx.lock_documents().await?;
        let (doc, _) = tx
            .activate_version(kind, name, version, actor, json!({}))
            .await?;
        tx.commit().await?;
        Ok(doc)
    }

    /// For each `(kind, name, body)` whose document has no version yet, writes version 1 as
    /// active, audited as `document.seed` by `author`; documents that exist are left alone.
    /// One transaction; returns how many were written. Running it again writes nothing.
    pub async fn seed_documents(
        &self,
        docs: &[(DocKind, String, String)],
        author: &str,
    ) -> Result<usize> {
        for (_, name, _) in docs {
            check_name(name)?;
        }
        let mut tx = self.begin().await?;
        tx.lock_documents().await?;
        let mut written = 0;
        for (kind, name, body) in docs {
            if tx.latest_document_version(*kind, name).await? > 0 {
                continue;
            }
            let at = now();
            let doc = DocumentVersion {
                kind: *kind,
                name: name.clone(),
                version: 1,
                body: body.clone(),
                sha256: body_sha256(body),
                status: DocStatus::Active,
                author: author.to_string(),
                note: Some("seeded".into()),
                created_at: at,
                activated_at: Some(at),
                activated_by: Some(author.to_string()),
            };
            tx.insert_document(&doc).await?;
            tx.audit_append(NewAuditEvent {
                run_id: None,
                customer_id: None,
                actor: author.to_string(),
                kind: SEED.into(),
                payload: json!({
                    "kind": kind.as_str(),
                    "name": name,
                    "version": 1,
                    "sha256": doc.sha256,
                }),
            })
            .await?;
            written += 1;
        }
        tx.commit().await?;
        Ok(written)
    }
}
