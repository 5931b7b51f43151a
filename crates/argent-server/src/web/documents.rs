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
    Agent, DiffTag, DocumentSet, LineError, diff_hunks, size_problem, validate_document,
    validate_in_set,
};
use argent_evals::{GateOptions, GateReport, activation_gate};
use argent_policy::gate::semantic_diff;
use argent_store::{DocKind, DocStatus, DocumentSummary, DocumentVersion, Store};

use super::{Page, Posted, SessionUser, encode_query, page};
use crate::auth::{Allowed, DocsRead, DocsWrite};
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

/// Makes version `version` of `(kind, name)` the active one and swaps the running agent
/// for one built from the new active set. The new agent is built (and so proven to work)
/// before the store switches.
async fn activate(
    handle: &AgentHandle,
    cpu: &CpuSlots,
    config: &ServerConfig,
    kind: DocKind,
    name: &str,
    version: i64,
    actor: &str,
) -> AppResult<DocumentVersion> {
    let agent = handle.current();
    let store = &agent.store;
    let doc = store.document(kind, name, version).await?;
    if doc.status == DocStatus::Active {
        return Err(AppError::Conflict(format!(
            "version {version} of {} {name} is already active",
            kind.as_str()
        )));
    }
    // The gate: a policy draft must pass the policy tests (the replay is for the page).
    let opts = GateOptions {
        replay: false,
        ..gate_options(config, None)
    };
    if let Some(refusal) = activation_gate(&agent, kind, name, version, &opts)
        .await?
        .refusal()
    {
        return Err(AppError::Unprocessable(refusal));
    }
    let candidate = active_set(store)
        .await?
        .with_document(kind, name, &doc.body);
    let like = agent.clone();
    cpu.run(move || build_agent(&like, &candidate)).await??;
    let activated = store.activate_document(kind, name, version, actor).await?;
    // Build from what the store now says is active (another activation may have landed).
    let now_active = active_set(store).await?;
    let like = agent.clone();
    let built = cpu.run(move || build_agent(&like, &now_active)).await??;
    handle.replace(Arc::new(built));
    tracing::info!(kind = %kind.as_str(), name, version, actor, "activated");
    Ok(activated)
}

fn build_agent(like: &Agent, set: &DocumentSet) -> AppResult<Agent> {
    // The scheduler loads the procedures from the same active set: they must load too.
    if !set.procedures.is_empty() {
        set.procedure_set()
            .map_err(|e| AppError::Unprocessable(format!("the document set does not load: {e}")))?;
    }
    Agent::from_documents(
        like.store.clone(),
        like.model.clone(),
        set,
        like.config.clone(),
    )
    .map(|a| a.with_compliance_check(like.compliance.clone()))
    .map_err(|e| AppError::Unprocessable(format!("the document set does not load: {e}")))
}

// ---------------------------------------------------------------------------------------
// Pages

/// `GET /documents`.
pub async fn list(
    State(store): State<Store>,
    Page(user, _): Page<DocsRead>,
) -> AppResult<Html<String>> {
    let docs = store.documents().await?;
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
        json!({"documents": view}),
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
            "may_activate": may_write && shown.status != DocStatus::Active && errors.is_empty(),
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

/// `POST /documents/{kind}/{name}/{version}/activate`.
pub async fn activate_page(
    State(handle): State<AgentHandle>,
    State(cpu): State<CpuSlots>,
    State(config): State<Arc<ServerConfig>>,
    ApiPath((kind_s, name, version)): ApiPath<(String, String, i64)>,
    Posted(user, _, _): Posted<DocsWrite, Vec<(String, String)>>,
) -> AppResult<Response> {
    let kind = kind(&kind_s)?;
    activate(&handle, &cpu, &config, kind, &name, version, &user.actor()).await?;
    Ok(Redirect::to(&format!("{}?v={version}", doc_href(kind, &name))).into_response())
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

/// `POST /api/documents/{kind}/{name}/{version}/activate`.
pub async fn api_activate(
    State(handle): State<AgentHandle>,
    State(cpu): State<CpuSlots>,
    State(config): State<Arc<ServerConfig>>,
    Allowed(user, _): Allowed<DocsWrite>,
    ApiPath((kind_s, name, version)): ApiPath<(String, String, i64)>,
) -> AppResult<Json<DocumentVersion>> {
    let kind = kind(&kind_s)?;
    let actor = user.actor();
    Ok(Json(
        activate(&handle, &cpu, &config, kind, &name, version, &actor).await?,
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
