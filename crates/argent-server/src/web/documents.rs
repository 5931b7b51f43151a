//! The manager's pages (and JSON API) for prompts and policies as versioned documents:
//! list, view a version, write a new draft (validated, errors at their line), diff two
//! versions, run the eval set on a draft against the active set, see a policy draft's
//! activation gate (policy tests, impact replay, eval run, semantic diff, coverage), activate.
//!
//! A policy draft is activated only if the policy tests pass with it in the set
//! ([`argent_evals::activation_gate`]); otherwise activation is refused naming the cases.
//!
//! A draft that does not validate is never stored, so nothing invalid can be activated;
//! activation additionally builds the agent the new set gives before the store switches,
//! and the running server swaps to it ([`crate::AgentHandle`]). The store writes every
//! draft and activation to the audit trail with its author.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use argent_agent::{
    Agent, DiffTag, DocumentSet, FourEyes, LineError, RejudgeReport, diff_hunks, size_problem,
    validate_document, validate_in_set,
};
use argent_evals::{GateOptions, GateReport, activation_gate};
use argent_policy::gate::semantic_diff;
use argent_store::{
    DocActor, DocKind, DocRequest, DocRequestStatus, DocStatus, DocumentSummary, DocumentVersion,
    Store,
};

use super::{Page, Posted, SessionUser, encode_query, page};
use crate::auth::{Allowed, DocsDecide, DocsRead, DocsWrite, UserRole};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::limits::CpuSlots;
use crate::{AgentHandle, ServerConfig};

pub(crate) fn kind(s: &str) -> AppResult<DocKind> {
    s.parse::<DocKind>().map_err(|_| {
        AppError::NotFound(format!(
            "no document kind '{s}' (prompt, policy or procedure)"
        ))
    })
}

/// A document's page. Prompt names may hold `/` (`tone/firm`): it is percent-encoded,
/// so the name stays one path segment.
fn doc_href(kind: DocKind, name: &str) -> String {
    format!("/documents/{}/{}", kind.as_str(), encode_query(name))
}

fn no_documents() -> AppError {
    AppError::Conflict(
        "the database has no documents yet; start the server with `argent serve`, which \
         seeds them from prompts/ and policies/"
            .into(),
    )
}

/// The set the agent works from: the active version of every document.
async fn active_set(store: &Store) -> AppResult<DocumentSet> {
    let active = store.active_documents().await?;
    if active.is_empty() {
        return Err(no_documents());
    }
    Ok(DocumentSet::from_versions(&active))
}

/// 413 for a document over the size cap, before anything reads it.
fn check_size(body: &str) -> AppResult<()> {
    match size_problem(body.len()) {
        Some(e) => Err(AppError::PayloadTooLarge(e)),
        None => Ok(()),
    }
}

/// Everything wrong with `body` as the next version of `(kind, name)`: its own problems
/// and those it would cause in the active set. 413 over the size cap; the validation runs
/// on a CPU slot, off the executor.
async fn problems(
    store: &Store,
    cpu: &CpuSlots,
    kind: DocKind,
    name: &str,
    body: &str,
) -> AppResult<Vec<LineError>> {
    check_size(body)?;
    let active = store.active_documents().await?;
    let (name, body) = (name.to_string(), body.to_string());
    cpu.run(move || {
        let own = validate_document(kind, &name, &body);
        if !own.is_empty() {
            return Ok(own);
        }
        if active.is_empty() {
            return Err(no_documents());
        }
        let set = DocumentSet::from_versions(&active);
        Ok(validate_in_set(&set, kind, &name, &body))
    })
    .await?
}

/// Writes `body` as a new draft of `(kind, name)` if it validates.
async fn create_draft(
    store: &Store,
    cpu: &CpuSlots,
    kind: DocKind,
    name: &str,
    body: &str,
    author: &str,
    note: Option<&str>,
) -> AppResult<Result<DocumentVersion, Vec<LineError>>> {
    let errors = problems(store, cpu, kind, name, body).await?;
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let v = store
        .create_document_version(kind, name, body, author, note)
        .await?;
    tracing::info!(kind = %kind.as_str(), name, version = v.version, author, "draft written");
    Ok(Ok(v))
}

/// How a version comes to be activated now: the two ways four eyes allow.
pub(crate) enum Activation<'a> {
    /// A pending request, approved by `who` (a different person, whose role the four-eyes
    /// rules name for the document's kind).
    Approved {
        request_id: &'a str,
        who: &'a DocActor,
        note: Option<&'a str>,
    },
    /// A rollback to the previously active version by `who`, at once, with a reason.
    EmergencyRollback { who: &'a DocActor, reason: &'a str },
}

/// What activating did.
#[derive(Debug, Serialize)]
pub struct Activated {
    /// The version now active.
    pub document: DocumentVersion,
    /// The request it was activated under (`None` for an emergency rollback).
    pub request: Option<DocRequest>,
    /// For a policy: the pending approval items judged again under it.
    pub rejudged: Option<RejudgeReport>,
}

/// The one "activate now" step, whichever way the activation was allowed: builds the agent
/// the new set gives (so proves it works) *before* the store switches, lets the store
/// record the activation (with the approval or the emergency, in one transaction), swaps
/// the running agent for one built from what is now active, and, for a policy, judges the
/// pending approval items again under it ([`Agent::rejudge_pending_under_policy`]).
pub(crate) async fn activate_now(
    handle: &AgentHandle,
    cpu: &CpuSlots,
    config: &ServerConfig,
    kind: DocKind,
    name: &str,
    version: i64,
    how: Activation<'_>,
) -> AppResult<Activated> {
    let agent = handle.current();
    let store = &agent.store;
    let doc = store.document(kind, name, version).await?;
    if doc.status == DocStatus::Active {
        return Err(AppError::Conflict(format!(
            "version {version} of {} {name} is already active",
            kind.as_str()
        )));
    }
    // The gate again at the moment of activation (the tests may have changed since the
    // request).
    gate_tests(handle, config, kind, name, version).await?;
    let candidate = active_set(store)
        .await?
        .with_document(kind, name, &doc.body);
    let like = agent.clone();
    cpu.run(move || build_agent(&like, &candidate)).await??;
    let (activated, request, actor) = match how {
        Activation::Approved {
            request_id,
            who,
            note,
        } => {
            let (req, doc) = store
                .approve_document_request(request_id, who, note)
                .await?;
            (doc, Some(req), who.actor())
        }
        Activation::EmergencyRollback { who, reason } => {
            let doc = store
                .rollback_document_emergency(kind, name, version, who, reason)
                .await?;
            (doc, None, who.actor())
        }
    };
    // Build from what the store now says is active (another activation may have landed).
    let now_active = active_set(store).await?;
    let like = agent.clone();
    let built = Arc::new(cpu.run(move || build_agent(&like, &now_active)).await??);
    handle.replace(built.clone());
    tracing::info!(kind = %kind.as_str(), name, version, actor, "activated");
    // The activation stands whatever happens here: a failure to re-judge is reported, not
    // turned into an error for a change that was made.
    let rejudged = if kind == DocKind::Policy {
        Some(
            match built
                .rejudge_pending_under_policy(name, version, &actor)
                .await
            {
                Ok(report) => report,
                Err(e) => {
                    tracing::error!(error = %e, name, version, "re-judging the pending approvals");
                    RejudgeReport {
                        failed: vec![("*".into(), e.to_string())],
                        ..RejudgeReport::default()
                    }
                }
            },
        )
    } else {
        None
    };
    Ok(Activated {
        document: activated,
        request,
        rejudged,
    })
}

/// The longest reason or note kept with a request or decision.
const MAX_REASON_LEN: usize = 2000;

/// A reason or note: trimmed; 422 naming `field` when it is required and missing, or too
/// long.
fn reason_of(field: &str, text: Option<&str>, required: bool) -> AppResult<Option<String>> {
    let t = text.map(str::trim).filter(|t| !t.is_empty());
    match t {
        None if required => Err(AppError::Unprocessable(format!(
            "{field}: say why (it is recorded in the audit trail)"
        ))),
        Some(t) if t.chars().count() > MAX_REASON_LEN => Err(AppError::Unprocessable(format!(
            "{field}: longer than {MAX_REASON_LEN} characters"
        ))),
        t => Ok(t.map(str::to_string)),
    }
}

fn doc_actor(name: &str, role: UserRole) -> DocActor {
    DocActor::new(name, role.as_str())
}

/// 403 unless `role` may approve or reject activation requests for `kind`, and `who` is not
/// the requester (for an approval).
fn check_decider(
    rules: &FourEyes,
    req: &DocRequest,
    name: &str,
    role: UserRole,
    approving: bool,
) -> AppResult<()> {
    if approving && req.requested_by == name {
        return Err(AppError::Forbidden(format!(
            "{name} requested {} and may not approve it: a second person must",
            req.id
        )));
    }
    if !approving && req.requested_by == name {
        // The requester may withdraw their own request.
        return Ok(());
    }
    let allowed = rules.approvers(req.kind);
    if role.reviewer_role().is_some_and(|r| allowed.contains(&r)) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "a {} request is decided by {}; role {role} may not",
            req.kind.as_str(),
            allowed
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        )))
    }
}

/// Approves request `id` as `(name, role)` and activates its version.
async fn approve_request(
    handle: &AgentHandle,
    cpu: &CpuSlots,
    config: &ServerConfig,
    id: &str,
    name: &str,
    role: UserRole,
    note: Option<&str>,
) -> AppResult<Activated> {
    let rules = &config.four_eyes;
    let store = handle.current().store.clone();
    let req = store.document_request(id).await?;
    if req.status != DocRequestStatus::Pending {
        return Err(AppError::Conflict(format!(
            "document request {id} is already {}",
            req.status.as_str()
        )));
    }
    check_decider(rules, &req, name, role, true)?;
    let note = reason_of("/note", note, false)?;
    let who = doc_actor(name, role);
    activate_now(
        handle,
        cpu,
        config,
        req.kind,
        &req.name,
        req.version,
        Activation::Approved {
            request_id: id,
            who: &who,
            note: note.as_deref(),
        },
    )
    .await
}

/// Rejects (or, for its requester, withdraws) request `id`.
async fn reject_request(
    store: &Store,
    rules: &FourEyes,
    id: &str,
    name: &str,
    role: UserRole,
    note: Option<&str>,
) -> AppResult<DocRequest> {
    let req = store.document_request(id).await?;
    if req.status != DocRequestStatus::Pending {
        return Err(AppError::Conflict(format!(
            "document request {id} is already {}",
            req.status.as_str()
        )));
    }
    check_decider(rules, &req, name, role, false)?;
    let note = reason_of("/note", note, true)?.unwrap_or_default();
    Ok(store
        .reject_document_request(id, &doc_actor(name, role), &note)
        .await?)
}

/// What a rollback did: a request waiting for a second person, or (emergency) the
/// activation.
enum RolledBack {
    Requested(Box<DocRequest>),
    Activated(Box<Activated>),
}

#[allow(clippy::too_many_arguments)]
async fn rollback(
    handle: &AgentHandle,
    cpu: &CpuSlots,
    config: &ServerConfig,
    kind: DocKind,
    name: &str,
    user: (&str, UserRole),
    reason: Option<&str>,
    emergency: bool,
) -> AppResult<RolledBack> {
    let rules = &config.four_eyes;
    let store = handle.current().store.clone();
    let reason = reason_of("/reason", reason, true)?.unwrap_or_default();
    let who = doc_actor(user.0, user.1);
    if !emergency {
        return Ok(RolledBack::Requested(Box::new(
            store
                .request_document_rollback(kind, name, &who, &reason)
                .await?,
        )));
    }
    if !user
        .1
        .reviewer_role()
        .is_some_and(|r| rules.may_roll_back_in_emergency(r))
    {
        return Err(AppError::Forbidden(format!(
            "role {} may not roll back without a second person",
            user.1
        )));
    }
    let Some(previous) = store.previous_document_version(kind, name).await? else {
        return Err(AppError::Conflict(format!(
            "{} '{name}' has no previously active version to roll back to",
            kind.as_str()
        )));
    };
    let done = activate_now(
        handle,
        cpu,
        config,
        kind,
        name,
        previous,
        Activation::EmergencyRollback {
            who: &who,
            reason: &reason,
        },
    )
    .await?;
    Ok(RolledBack::Activated(Box::new(done)))
}

fn build_agent(like: &Agent, set: &DocumentSet) -> AppResult<Agent> {
    // The scheduler loads the procedures from the same active set: they must load too.
    if !set.procedures.is_empty() {
        set.procedure_set()
            .map_err(|e| AppError::Unprocessable(format!("the document set does not load: {e}")))?;
    }
    let agent = Agent::from_documents(
        like.store.clone(),
        like.model.clone(),
        set,
        like.config.clone(),
    )
    .map(|a| a.with_compliance_check(like.compliance.clone()))
    .map_err(|e| AppError::Unprocessable(format!("the document set does not load: {e}")))?;
    // Every pack is compiled (and so checked in full) before the agent is put to work,
    // rather than at its first judgement.
    if let Some((_, e)) = agent.policies.compile_now().into_iter().next() {
        return Err(AppError::Unprocessable(format!(
            "the document set does not load: {e}"
        )));
    }
    Ok(agent)
}

// ---------------------------------------------------------------------------------------
// Pages

/// `GET /documents`: every document, and the activation requests waiting for a second
/// person.
pub async fn list(
    State(store): State<Store>,
    State(config): State<Arc<ServerConfig>>,
    Page(user, _): Page<DocsRead>,
) -> AppResult<Html<String>> {
    let docs = store.documents().await?;
    let pending = store
        .document_requests(Some(DocRequestStatus::Pending), None)
        .await?;
    let requests = requests_view(&pending, &user, &config.four_eyes);
    let view: Vec<Value> = docs
        .iter()
        .map(|d| {
            json!({
                "kind": d.kind.as_str(),
                "name": d.name,
                "href": doc_href(d.kind, &d.name),
                "active": d.active_version,
                "latest": d.latest_version,
                "versions": d.versions,
                "has_draft": d.active_version.is_none_or(|a| a < d.latest_version),
            })
        })
        .collect();
    page(
        &user,
        "documents",
        "Prompts and policies",
        json!({"documents": view, "requests": requests}),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    /// The version to show; default: the active one, else the latest.
    pub v: Option<i64>,
}

fn numbered(body: &str) -> Vec<Value> {
    body.lines()
        .enumerate()
        .map(|(i, l)| json!({"n": i + 1, "text": l}))
        .collect()
}

fn version_view(kind: DocKind, v: &DocumentVersion) -> Value {
    json!({
        "version": v.version,
        "status": v.status.as_str(),
        "author": v.author,
        "note": v.note,
        "created_at": v.created_at.to_rfc3339(),
        "activated_at": v.activated_at.map(|t| t.to_rfc3339()),
        "activated_by": v.activated_by,
        "href": format!("{}?v={}", doc_href(kind, &v.name), v.version),
        "sha256": &v.sha256[..v.sha256.len().min(12)],
    })
}

/// `GET /documents/{kind}/{name}?v=`: a version, the version history, and what may be done.
pub async fn show(
    State(store): State<Store>,
    State(cpu): State<CpuSlots>,
    State(config): State<Arc<ServerConfig>>,
    Page(user, _): Page<DocsRead>,
    ApiPath((kind_s, name)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> AppResult<Html<String>> {
    let kind = kind(&kind_s)?;
    let versions = store.document_versions(kind, &name).await?;
    let Some(latest) = versions.first() else {
        return Err(AppError::NotFound(format!("no {kind_s} document '{name}'")));
    };
    let active = versions.iter().find(|v| v.status == DocStatus::Active);
    let shown = match q.v {
        Some(n) => versions
            .iter()
            .find(|v| v.version == n)
            .ok_or_else(|| AppError::NotFound(format!("{kind_s} {name} has no version {n}")))?,
        None => active.unwrap_or(latest),
    };
    let errors = {
        let (name, body) = (name.clone(), shown.body.clone());
        cpu.run(move || validate_document(kind, &name, &body))
            .await?
    };
    let may_write = crate::perm::DOCS_WRITE.contains(&user.role);
    let may_eval = crate::perm::EVALS_RUN.contains(&user.role);
    let pending = store
        .document_requests(Some(DocRequestStatus::Pending), Some((kind, &name)))
        .await?;
    let previous = store.previous_document_version(kind, &name).await?;
    let may_emergency = user
        .role
        .reviewer_role()
        .is_some_and(|r| config.four_eyes.may_roll_back_in_emergency(r));
    let title = format!("{} {name} — version {}", kind.as_str(), shown.version);
    page(
        &user,
        "document",
        &title,
        json!({
            "kind": kind.as_str(),
            "name": name,
            "href": doc_href(kind, &name),
            "shown": version_view(kind, shown),
            "lines": numbered(&shown.body),
            "errors": errors,
            "versions": versions.iter().map(|v| version_view(kind, v)).collect::<Vec<_>>(),
            "active": active.map(|a| a.version),
            "is_active": shown.status == DocStatus::Active,
            "may_write": may_write,
            "may_activate": may_write && shown.status != DocStatus::Active && errors.is_empty() && pending.is_empty(),
            "requests": requests_view(&pending, &user, &config.four_eyes),
            "approvers": config.four_eyes.approvers(kind).iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or "),
            "rollback_to": previous.filter(|_| active.is_some()),
            "may_rollback": may_write && previous.is_some() && active.is_some() && pending.is_empty(),
            "may_emergency": may_write && may_emergency,
            "may_eval": may_eval && shown.status != DocStatus::Active,
            "diff_active_href": active.filter(|a| a.version != shown.version).map(|a| format!("{}/diff?a={}&b={}", doc_href(kind, &name), a.version, shown.version)),
            "gate_href": (kind == DocKind::Policy && shown.status != DocStatus::Active).then(|| format!("{}/{}/gate", doc_href(kind, &name), shown.version)),
        }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct EditQuery {
    /// The version to start from; default: the latest.
    pub from: Option<i64>,
}

fn edit_page(
    user: &SessionUser,
    kind: DocKind,
    name: &str,
    from: i64,
    body: &str,
    note: &str,
    errors: Option<&[LineError]>,
) -> AppResult<Html<String>> {
    let lines = numbered(body);
    let marked: Vec<Value> = match errors {
        Some(errs) => errs
            .iter()
            .map(|e| {
                json!({
                    "where": match (e.line, e.column) {
                        (Some(l), Some(c)) => format!("line {l}, column {c}"),
                        (Some(l), None) => format!("line {l}"),
                        _ => "the document".to_string(),
                    },
                    "message": e.message,
                    "text": e.line.and_then(|l| body.lines().nth(l.saturating_sub(1))).unwrap_or(""),
                })
            })
            .collect(),
        None => Vec::new(),
    };
    page(
        user,
        "document_edit",
        &format!("Edit {} {name}", kind.as_str()),
        json!({
            "kind": kind.as_str(),
            "name": name,
            "href": doc_href(kind, name),
            "from": from,
            "body": body,
            "note": note,
            "rows": lines.len().clamp(12, 48),
            "checked": errors.is_some(),
            "valid": errors.is_some_and(<[LineError]>::is_empty),
            "errors": marked,
        }),
    )
}

/// `GET /documents/{kind}/{name}/edit?from=`: a form holding a version's text.
pub async fn edit_form(
    State(store): State<Store>,
    Page(user, _): Page<DocsWrite>,
    ApiPath((kind_s, name)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<EditQuery>,
) -> AppResult<Html<String>> {
    let kind = kind(&kind_s)?;
    let versions = store.document_versions(kind, &name).await?;
    let from = match q.from {
        Some(n) => versions.iter().find(|v| v.version == n),
        None => versions.first(),
    }
    .ok_or_else(|| {
        AppError::NotFound(format!(
            "no {kind_s} document '{name}' (or no such version)"
        ))
    })?;
    edit_page(&user, kind, &name, from.version, &from.body, "", None)
}

#[derive(Debug, Deserialize)]
pub struct DraftForm {
    pub body: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub from: i64,
    /// `validate` only checks; `save` writes a draft if it validates.
    #[serde(default)]
    pub action: String,
}

/// `POST /documents/{kind}/{name}`: validate, or save a new draft version.
pub async fn save(
    State(store): State<Store>,
    State(cpu): State<CpuSlots>,
    ApiPath((kind_s, name)): ApiPath<(String, String)>,
    Posted(user, form, _): Posted<DocsWrite, DraftForm>,
) -> AppResult<Response> {
    let kind = kind(&kind_s)?;
    let body = form.body.replace("\r\n", "\n");
    // Over the size cap: the form again, with the text as it was sent, and 413.
    if let Some(e) = size_problem(body.len()) {
        let errors = [LineError {
            line: None,
            column: None,
            message: e,
        }];
        let html = edit_page(
            &user,
            kind,
            &name,
            form.from,
            &body,
            &form.note,
            Some(&errors),
        )?;
        return Ok((StatusCode::PAYLOAD_TOO_LARGE, html).into_response());
    }
    if form.action == "validate" {
        let errors = problems(&store, &cpu, kind, &name, &body).await?;
        let status = if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let html = edit_page(
            &user,
            kind,
            &name,
            form.from,
            &body,
            &form.note,
            Some(&errors),
        )?;
        return Ok((status, html).into_response());
    }
    let note = Some(form.note.trim()).filter(|n| !n.is_empty());
    let author = user.actor();
    match create_draft(&store, &cpu, kind, &name, &body, &author, note).await? {
        Ok(v) => {
            Ok(Redirect::to(&format!("{}?v={}", doc_href(kind, &name), v.version)).into_response())
        }
        Err(errors) => {
            let html = edit_page(
                &user,
                kind,
                &name,
                form.from,
                &body,
                &form.note,
                Some(&errors),
            )?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, html).into_response())
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct DiffQuery {
    pub a: Option<i64>,
    pub b: Option<i64>,
}

/// `GET /documents/{kind}/{name}/diff?a=&b=`: version `a` → version `b`.
pub async fn diff(
    State(store): State<Store>,
    Page(user, _): Page<DocsRead>,
    ApiPath((kind_s, name)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> AppResult<Html<String>> {
    let kind = kind(&kind_s)?;
    let (Some(a), Some(b)) = (q.a, q.b) else {
        return Err(AppError::BadRequest(
            "diff needs two versions: ?a=&b=".into(),
        ));
    };
    let old = store.document(kind, &name, a).await?;
    let new = store.document(kind, &name, b).await?;
    let line = |l: &argent_agent::DiffLine| {
        json!({
            "tag": match l.tag { DiffTag::Equal => "equal", DiffTag::Insert => "insert", DiffTag::Delete => "delete" },
            "sign": match l.tag { DiffTag::Equal => " ", DiffTag::Insert => "+", DiffTag::Delete => "−" },
            "old": l.old_line,
            "new": l.new_line,
            "text": l.text,
        })
    };
    let hunks_raw = diff_hunks(&old.body, &new.body, 3);
    let changed = hunks_raw
        .iter()
        .flat_map(|h| &h.lines)
        .filter(|l| l.tag != DiffTag::Equal)
        .count();
    let hunks: Vec<Value> = hunks_raw
        .iter()
        .map(|h| json!({"header": h.header(), "lines": h.lines.iter().map(line).collect::<Vec<_>>()}))
        .collect();
    // A policy's changes rule by rule, above the lines.
    let (semantic, semantic_error) = if kind == DocKind::Policy {
        match semantic_diff(&old.body, &new.body) {
            Ok(d) => (
                Some(json!({"rules": rule_changes_view(&d), "tests_changed": d.tests_changed})),
                String::new(),
            ),
            Err(e) => (None, e),
        }
    } else {
        (None, String::new())
    };
    let versions = store.document_versions(kind, &name).await?;
    page(
        &user,
        "document_diff",
        &format!("{} {name}: version {a} → {b}", kind.as_str()),
        json!({
            "kind": kind.as_str(),
            "name": name,
            "href": doc_href(kind, &name),
            "a": version_view(kind, &old),
            "b": version_view(kind, &new),
            "hunks": hunks,
            "changed": changed,
            "semantic": semantic,
            "semantic_error": semantic_error,
            "versions": versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    pub reason: String,
    /// `on` (a checkbox): roll back at once, without a second person.
    #[serde(default)]
    pub emergency: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    pub note: String,
}

/// `POST /documents/{kind}/{name}/{version}/activate {reason}`: asks for the version to be
/// activated; a second person approves (see [`crate::perm::DOCS_DECIDE`]).
pub async fn activate_page(
    State(store): State<Store>,
    State(handle): State<AgentHandle>,
    State(config): State<Arc<ServerConfig>>,
    ApiPath((kind_s, name, version)): ApiPath<(String, String, i64)>,
    Posted(user, form, _): Posted<DocsWrite, ReasonForm>,
) -> AppResult<Response> {
    let kind = kind(&kind_s)?;
    gate_tests(&handle, &config, kind, &name, version).await?;
    let reason = reason_of("reason", Some(&form.reason), true)?.unwrap_or_default();
    store
        .request_document_activation(
            kind,
            &name,
            version,
            &doc_actor(&user.name, user.role),
            &reason,
        )
        .await?;
    Ok(Redirect::to(&format!("{}?v={version}", doc_href(kind, &name))).into_response())
}

/// `POST /documents/{kind}/{name}/rollback {reason, emergency?}`: asks for a rollback to
/// the previously active version, or (emergency) rolls back at once.
pub async fn rollback_page(
    State(handle): State<AgentHandle>,
    State(cpu): State<CpuSlots>,
    State(config): State<Arc<ServerConfig>>,
    ApiPath((kind_s, name)): ApiPath<(String, String)>,
    Posted(user, form, _): Posted<DocsWrite, ReasonForm>,
) -> AppResult<Response> {
    let kind = kind(&kind_s)?;
    let emergency = form.emergency.as_deref().is_some_and(|v| !v.is_empty());
    rollback(
        &handle,
        &cpu,
        &config,
        kind,
        &name,
        (&user.name, user.role),
        Some(&form.reason),
        emergency,
    )
    .await?;
    Ok(Redirect::to(&doc_href(kind, &name)).into_response())
}

/// `POST /document-requests/{id}/approve {note?}`: a second person approves; the version
/// becomes active.
pub async fn approve_page(
    State(handle): State<AgentHandle>,
    State(cpu): State<CpuSlots>,
    State(config): State<Arc<ServerConfig>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<DocsDecide, NoteForm>,
) -> AppResult<Response> {
    let done = approve_request(
        &handle,
        &cpu,
        &config,
        &id,
        &user.name,
        user.role,
        Some(&form.note),
    )
    .await?;
    Ok(Redirect::to(&format!(
        "{}?v={}",
        doc_href(done.document.kind, &done.document.name),
        done.document.version
    ))
    .into_response())
}

/// `POST /document-requests/{id}/reject {note}`: rejects (or the requester withdraws).
pub async fn reject_page(
    State(store): State<Store>,
    State(config): State<Arc<ServerConfig>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<DocsDecide, NoteForm>,
) -> AppResult<Response> {
    let req = reject_request(
        &store,
        &config.four_eyes,
        &id,
        &user.name,
        user.role,
        Some(&form.note),
    )
    .await?;
    Ok(Redirect::to(&doc_href(req.kind, &req.name)).into_response())
}

/// The pending requests as the pages show them, with what `user` may do with each.
pub(crate) fn requests_view(
    reqs: &[DocRequest],
    user: &SessionUser,
    rules: &FourEyes,
) -> Vec<Value> {
    reqs.iter()
        .map(|r| {
            let own = r.requested_by == user.name;
            let may_decide = crate::perm::DOCS_DECIDE.contains(&user.role)
                && user
                    .role
                    .reviewer_role()
                    .is_some_and(|role| rules.may_approve(r.kind, role));
            json!({
                "id": r.id,
                "kind": r.kind.as_str(),
                "name": r.name,
                "href": doc_href(r.kind, &r.name),
                "version": r.version,
                "version_href": format!("{}?v={}", doc_href(r.kind, &r.name), r.version),
                "from_version": r.from_version,
                "diff_href": r.from_version.map(|f| format!("{}/diff?a={f}&b={}", doc_href(r.kind, &r.name), r.version)),
                "rollback": r.rollback,
                "reason": r.reason,
                "requested_by": format!("{}:{}", r.requested_role, r.requested_by),
                "requested_at": r.requested_at.to_rfc3339(),
                "approvers": rules.approvers(r.kind).iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" or "),
                "may_approve": may_decide && !own,
                "may_reject": may_decide && !own,
                "may_withdraw": own,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// JSON API

/// `GET /api/documents`.
pub async fn api_list(
    State(store): State<Store>,
    _: Allowed<DocsRead>,
) -> AppResult<Json<Vec<DocumentSummary>>> {
    Ok(Json(store.documents().await?))
}

/// `GET /api/documents/{kind}/{name}`: every version, newest first.
pub async fn api_versions(
    State(store): State<Store>,
    _: Allowed<DocsRead>,
    ApiPath((kind_s, name)): ApiPath<(String, String)>,
) -> AppResult<Json<Vec<DocumentVersion>>> {
    let versions = store.document_versions(kind(&kind_s)?, &name).await?;
    if versions.is_empty() {
        return Err(AppError::NotFound(format!("no {kind_s} document '{name}'")));
    }
    Ok(Json(versions))
}

/// `GET /api/documents/{kind}/{name}/{version}`.
pub async fn api_version(
    State(store): State<Store>,
    _: Allowed<DocsRead>,
    ApiPath((kind_s, name, version)): ApiPath<(String, String, i64)>,
) -> AppResult<Json<DocumentVersion>> {
    Ok(Json(store.document(kind(&kind_s)?, &name, version).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftBody {
    pub body: String,
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Validation {
    pub valid: bool,
    pub errors: Vec<LineError>,
}

/// `POST /api/documents/{kind}/{name}/validate {body}`: the problems, stores nothing.
pub async fn api_validate(
    State(store): State<Store>,
    State(cpu): State<CpuSlots>,
    _: Allowed<DocsRead>,
    ApiPath((kind_s, name)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<DraftBody>,
) -> AppResult<Json<Validation>> {
    let errors = problems(&store, &cpu, kind(&kind_s)?, &name, &req.body).await?;
    Ok(Json(Validation {
        valid: errors.is_empty(),
        errors,
    }))
}

/// `POST /api/documents/{kind}/{name} {body, note?}`: a new draft version (201), or 422
/// with the problems.
pub async fn api_create(
    State(store): State<Store>,
    State(cpu): State<CpuSlots>,
    Allowed(user, _): Allowed<DocsWrite>,
    ApiPath((kind_s, name)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<DraftBody>,
) -> AppResult<Response> {
    let kind = kind(&kind_s)?;
    let author = user.actor();
    match create_draft(
        &store,
        &cpu,
        kind,
        &name,
        &req.body,
        &author,
        req.note.as_deref(),
    )
    .await?
    {
        Ok(v) => Ok((StatusCode::CREATED, Json(v)).into_response()),
        Err(errors) => Err(AppError::Unprocessable(format!(
            "the document does not validate: {}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateBody {
    pub reason: Option<String>,
}

/// `POST /api/documents/{kind}/{name}/{version}/activate {reason}`: a request (202) that a
/// second person approves (`POST /api/document-requests/{id}/approve`).
pub async fn api_activate(
    State(store): State<Store>,
    State(handle): State<AgentHandle>,
    State(config): State<Arc<ServerConfig>>,
    Allowed(user, _): Allowed<DocsWrite>,
    ApiPath((kind_s, name, version)): ApiPath<(String, String, i64)>,
    ApiJson(body): ApiJson<ActivateBody>,
) -> AppResult<Response> {
    let kind = kind(&kind_s)?;
    gate_tests(&handle, &config, kind, &name, version).await?;
    let reason = reason_of("/reason", body.reason.as_deref(), true)?.unwrap_or_default();
    let req = store
        .request_document_activation(
            kind,
            &name,
            version,
            &doc_actor(&user.name, user.role),
            &reason,
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(req)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    pub reason: Option<String>,
    #[serde(default)]
    pub emergency: bool,
}

/// `POST /api/documents/{kind}/{name}/rollback {reason, emergency?}`: a rollback request
/// (202), or with `emergency` (manager, admin) the rollback itself (200).
pub async fn api_rollback(
    State(handle): State<AgentHandle>,
    State(cpu): State<CpuSlots>,
    State(config): State<Arc<ServerConfig>>,
    Allowed(user, _): Allowed<DocsWrite>,
    ApiPath((kind_s, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RollbackBody>,
) -> AppResult<Response> {
    let kind = kind(&kind_s)?;
    match rollback(
        &handle,
        &cpu,
        &config,
        kind,
        &name,
        (&user.name, user.role),
        body.reason.as_deref(),
        body.emergency,
    )
    .await?
    {
        RolledBack::Requested(req) => Ok((StatusCode::ACCEPTED, Json(*req)).into_response()),
        RolledBack::Activated(done) => Ok(Json(*done).into_response()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    /// `pending` (default), `approved`, `rejected`, `withdrawn` or `all`.
    pub status: Option<String>,
}

/// `GET /api/document-requests?status=`: activation requests, newest first.
pub async fn api_requests(
    State(store): State<Store>,
    _: Allowed<DocsRead>,
    ApiQuery(q): ApiQuery<RequestsQuery>,
) -> AppResult<Json<Vec<DocRequest>>> {
    let status = match q.status.as_deref() {
        None => Some(DocRequestStatus::Pending),
        Some("all") => None,
        Some(s) => Some(s.parse::<DocRequestStatus>().map_err(|_| {
            AppError::BadRequest(format!(
                "status: '{s}' is not one of pending, approved, rejected, withdrawn, all"
            ))
        })?),
    };
    Ok(Json(store.document_requests(status, None).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    pub note: Option<String>,
}

/// `POST /api/document-requests/{id}/approve {note?}`: a second person approves; the
/// version becomes active (and a policy re-judges the pending approval items).
pub async fn api_approve_request(
    State(handle): State<AgentHandle>,
    State(cpu): State<CpuSlots>,
    State(config): State<Arc<ServerConfig>>,
    Allowed(user, _): Allowed<DocsDecide>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DecideBody>,
) -> AppResult<Json<Activated>> {
    Ok(Json(
        approve_request(
            &handle,
            &cpu,
            &config,
            &id,
            &user.name,
            user.role,
            body.note.as_deref(),
        )
        .await?,
    ))
}

/// `POST /api/document-requests/{id}/reject {note}`: rejects (or the requester withdraws).
pub async fn api_reject_request(
    State(store): State<Store>,
    State(config): State<Arc<ServerConfig>>,
    Allowed(user, _): Allowed<DocsDecide>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DecideBody>,
) -> AppResult<Json<DocRequest>> {
    Ok(Json(
        reject_request(
            &store,
            &config.four_eyes,
            &id,
            &user.name,
            user.role,
            body.note.as_deref(),
        )
        .await?,
    ))
}

// ---------------------------------------------------------------------------------------
// The activation gate

#[derive(Debug, Default, Deserialize)]
pub struct GateQuery {
    /// Days of audited decisions to replay (default: the server's `impact_days`).
    pub days: Option<u32>,
}

/// The gate's options from the server's configuration and an optional `days`.
/// The activation gate's policy tests for `version` (a policy draft must pass them; other
/// kinds pass): run when activation is requested, so nobody is asked to approve a blocked
/// draft, and again when it is approved.
async fn gate_tests(
    handle: &AgentHandle,
    config: &ServerConfig,
    kind: DocKind,
    name: &str,
    version: i64,
) -> AppResult<()> {
    let agent = handle.current();
    let opts = GateOptions {
        replay: false,
        ..gate_options(config, None)
    };
    match activation_gate(&agent, kind, name, version, &opts)
        .await?
        .refusal()
    {
        Some(refusal) => Err(AppError::Unprocessable(refusal)),
        None => Ok(()),
    }
}

fn gate_options(config: &ServerConfig, days: Option<u32>) -> GateOptions {
    GateOptions {
        tests_dir: config.policy_tests_dir.clone(),
        days: days.unwrap_or(config.impact_days),
        ..GateOptions::default()
    }
}

/// The gate's report for a stored version (400 for a `days` out of range).
async fn gate_report(
    agent: &Agent,
    config: &ServerConfig,
    kind: DocKind,
    name: &str,
    version: i64,
    days: Option<u32>,
) -> AppResult<GateReport> {
    if let Some(d) = days {
        argent_core::bounds::check_period_days("days", i64::from(d))
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
    }
    Ok(activation_gate(agent, kind, name, version, &gate_options(config, days)).await?)
}

/// `GET /api/documents/{kind}/{name}/{version}/gate?days=`: the activation gate's report.
pub async fn api_gate(
    State(agent): State<Arc<Agent>>,
    State(config): State<Arc<ServerConfig>>,
    _: Allowed<DocsRead>,
    ApiPath((kind_s, name, version)): ApiPath<(String, String, i64)>,
    ApiQuery(q): ApiQuery<GateQuery>,
) -> AppResult<Json<GateReport>> {
    let kind = kind(&kind_s)?;
    Ok(Json(
        gate_report(&agent, &config, kind, &name, version, q.days).await?,
    ))
}

fn counts(rows: &[(String, usize)]) -> String {
    rows.iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn breakdown_view(rows: &[argent_policy::gate::Breakdown]) -> Vec<Value> {
    rows.iter()
        .map(|b| json!({"key": b.key, "flipped": b.flipped, "transitions": counts(&b.transitions)}))
        .collect()
}

fn rule_changes_view(diff: &argent_policy::gate::SemanticDiff) -> Vec<Value> {
    diff.rules
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "section": r.section,
                "change": match r.change {
                    argent_policy::gate::ChangeKind::Added => "added",
                    argent_policy::gate::ChangeKind::Removed => "removed",
                    argent_policy::gate::ChangeKind::Changed => "changed",
                },
                "direction": r.direction.as_str(),
                "loosens": r.change == argent_policy::gate::ChangeKind::Removed || r.direction.may_loosen(),
                "effect": r.effect.clone().unwrap_or_default(),
                "fields": r.fields.iter().map(|f| f.summary.clone()).collect::<Vec<_>>(),
                "summary": r.summary,
            })
        })
        .collect()
}

/// `GET /documents/{kind}/{name}/{version}/gate?days=`: what activating this version
/// would do, before anyone does it.
pub async fn gate_page(
    State(agent): State<Arc<Agent>>,
    State(config): State<Arc<ServerConfig>>,
    Page(user, _): Page<DocsRead>,
    ApiPath((kind_s, name, version)): ApiPath<(String, String, i64)>,
    ApiQuery(q): ApiQuery<GateQuery>,
) -> AppResult<Html<String>> {
    let kind = kind(&kind_s)?;
    let r = gate_report(&agent, &config, kind, &name, version, q.days).await?;
    let doc = agent.store.document(kind, &name, version).await?;
    let items: Vec<Value> = r
        .impact
        .items
        .iter()
        .map(|i| {
            json!({
                "source": match i.source {
                    argent_policy::gate::ReplaySource::Pending => "pending approval",
                    argent_policy::gate::ReplaySource::Decision => "decision",
                },
                "id": i.id,
                "href": i.href,
                "customer_id": i.customer_id,
                "customer_href": format!("/accounts/{}", encode_query(&i.customer_id)),
                "tool": i.tool,
                "segment": i.segment,
                "band": argent_policy::gate::amount_band(i.amount_minor, i.currency.as_deref()),
                "at": i.at.to_rfc3339(),
                "recorded": i.recorded.map(|o| o.as_str()).unwrap_or(""),
                "before": i.before.outcome.as_str(),
                "after": i.after.outcome.as_str(),
                "rules": i.flip_rules().join(", "),
            })
        })
        .collect();
    let may_write = crate::perm::DOCS_WRITE.contains(&user.role);
    let title = format!(
        "Before activating {} {name} version {version}",
        kind.as_str()
    );
    page(
        &user,
        "document_gate",
        &title,
        json!({
            "kind": kind.as_str(),
            "name": name,
            "href": doc_href(kind, &name),
            "version": version,
            "applies": r.applies,
            "blocked": r.blocked,
            "test_error": r.test_error.clone().unwrap_or_default(),
            "failing": r.failing_tests,
            "tests": {
                "total": r.tests.total,
                "passed": r.tests.passed,
                "failed": r.tests.failed,
                "shipped_dir": r.tests.shipped_dir.clone().unwrap_or_default(),
                "shipped_files": r.tests.shipped_files,
                "carried": r.tests.carried,
                "replaced": r.tests.replaced,
            },
            "rules": rule_changes_view(&r.diff),
            "tests_changed": r.diff.tests_changed,
            "active_version": r.active_version,
            "diff_href": r.active_version.map(|a| format!("{}/diff?a={a}&b={version}", doc_href(kind, &name))),
            "days": r.days,
            "since": r.since.to_rfc3339(),
            "impact": {
                "pending": r.impact.pending,
                "decisions": r.impact.decisions,
                "flipped": r.impact.flipped,
                "transitions": r.impact.transitions.iter().map(|(k, n)| json!({"key": k, "n": n})).collect::<Vec<_>>(),
                "by_rule": breakdown_view(&r.impact.by_rule),
                "by_segment": breakdown_view(&r.impact.by_segment),
                "by_band": breakdown_view(&r.impact.by_band),
                "skipped": r.impact.skipped,
                "truncated": r.impact.truncated,
            },
            "items": items,
            "eval": r.eval.as_ref().map(|e| json!({
                "id": e.id,
                "status": e.status,
                "href": e.href,
                "verdict": e.summary.as_ref().and_then(|s| s.get("verdict")).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).unwrap_or_default(),
                "rules_known": e.rules_known,
            })),
            "may_eval": crate::perm::EVALS_RUN.contains(&user.role) && doc.status != DocStatus::Active,
            "not_covered": r.not_covered,
            "may_activate": may_write && doc.status != DocStatus::Active && !r.blocked && r.applies,
            "is_active": doc.status == DocStatus::Active,
        }),
    )
}
