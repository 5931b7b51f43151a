//! What customers said that stops collection until a person looks: the signals the inbound
//! classifier recognised (`argent_policy::inbound`), each with the sentence that caused
//! it, and confirm / clear (`argent_agent::signals::decide_signal`, audited). The page
//! `/signals` and its API (`GET /api/signals`, `POST /api/signals/{id}/confirm|clear`).
//! Collectors, managers and admins decide; compliance reads.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use argent_agent::Agent;
use argent_agent::signals::decide_signal;
use argent_core::{SignalKind, SignalStatus, SignalVerdict};
use argent_store::SignalRecord;

use super::{Page, Posted, age, encode_query, page};
use crate::api::reviewer_for;
use crate::auth::{Allowed, SignalsDecide, SignalsRead};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiPath, ApiQuery};

/// Signals per page.
pub const SIGNALS_PAGE: i64 = 50;
const MAX_API_PAGE: i64 = 500;
/// The longest note a decision may carry.
const MAX_NOTE_CHARS: usize = 2000;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// `pending` (default), `confirmed`, `cleared` or `all`.
    pub status: Option<String>,
    /// Only this customer's signals.
    pub customer: Option<String>,
    pub page: Option<i64>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// What just happened, shown once: `confirmed` or `cleared`.
    pub done: Option<String>,
    pub id: Option<String>,
}

fn parse_status(s: Option<&str>) -> AppResult<Option<SignalStatus>> {
    match s {
        None | Some("") | Some("pending") => Ok(Some(SignalStatus::Pending)),
        Some("all") => Ok(None),
        Some(s) => s.parse::<SignalStatus>().map(Some).map_err(|_| {
            AppError::BadRequest(format!(
                "status '{s}' is not one of: pending, confirmed, cleared, all"
            ))
        }),
    }
}

/// What confirming a signal of this kind does, as the page says it.
fn on_confirm(kind: SignalKind) -> &'static str {
    match kind {
        SignalKind::OptOut => "the contact stays opted out of email",
        SignalKind::CeaseContact => "the account becomes cease-contact",
        SignalKind::Dispute => "the account becomes disputed until verification",
        SignalKind::Attorney => "the account becomes attorney-represented",
        SignalKind::Bankruptcy => "the account becomes bankrupt (collection stops)",
        SignalKind::Deceased => "collection stops (cease-contact); deal with the estate",
        SignalKind::ThirdParty => "the writer was dealt with; the pause lifts",
    }
}

fn on_clear(kind: SignalKind) -> &'static str {
    match kind {
        SignalKind::OptOut => "the contact may be emailed again",
        _ => "the pending fact is removed; collection may resume",
    }
}

fn row(s: &SignalRecord, now: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "id": s.id,
        "customer_id": s.customer_id,
        "kind": s.kind.as_str(),
        "contact": s.contact,
        "excerpt": s.excerpt,
        "attorney_name": s.detail.attorney_name,
        "opted_out": s.detail.opted_out.join(", "),
        "message_sha256": s.message_sha256,
        "short_sha": s.message_sha256.get(..12).unwrap_or(&s.message_sha256),
        "run_id": s.run_id,
        "detected_at": s.detected_at.to_rfc3339(),
        "age": age(s.detected_at, now),
        "status": s.status.as_str(),
        "pending": s.status == SignalStatus::Pending,
        "decided_by": s.decided_by,
        "note": s.note,
        "on_confirm": on_confirm(s.kind),
        "on_clear": on_clear(s.kind),
    })
}

/// `GET /signals?status=&page=`: oldest first, so nothing waits longest unseen.
pub async fn list(
    State(agent): State<Arc<Agent>>,
    Page(user, _): Page<SignalsRead>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Html<String>> {
    let status = parse_status(q.status.as_deref())?;
    let page_no = q.page.unwrap_or(1);
    if page_no < 1 {
        return Err(AppError::BadRequest("page must be 1 or more".into()));
    }
    let offset = super::page_offset(page_no, SIGNALS_PAGE)?;
    let store = &agent.store;
    let customer = q.customer.as_deref().filter(|c| !c.is_empty());
    let items = store
        .signals(status, customer, SIGNALS_PAGE, offset)
        .await?;
    let total = store.count_signals(status).await?;
    let now = agent.now();
    let pages = ((total + SIGNALS_PAGE - 1) / SIGNALS_PAGE).max(1);
    let status_str = status.map_or("all", |s| s.as_str());
    let link = |p: i64| format!("/signals?status={status_str}&page={p}");
    let flash = match (q.done.as_deref(), q.id.as_deref()) {
        (Some(done @ ("confirmed" | "cleared")), Some(id)) => Some(format!("{id} {done}.")),
        _ => None,
    };
    let statuses: Vec<Value> = ["pending", "confirmed", "cleared", "all"]
        .iter()
        .map(|s| json!({"name": s, "current": *s == status_str, "href": format!("/signals?status={s}")}))
        .collect();
    page(
        &user,
        "signals",
        "What customers said",
        json!({
            "items": items.iter().map(|s| row(s, now)).collect::<Vec<_>>(),
            "total": total,
            "status": status_str,
            "statuses": statuses,
            "page": page_no,
            "pages": pages,
            "prev": (page_no > 1).then(|| link(page_no - 1)),
            "next": (page_no < pages).then(|| link(page_no + 1)),
            "flash": flash,
            "can_decide": crate::perm::SIGNALS_DECIDE.contains(&user.role),
        }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    pub note: String,
}

fn check_note(note: Option<&str>) -> AppResult<()> {
    if note.is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS) {
        return Err(AppError::Unprocessable(format!(
            "the note is longer than {MAX_NOTE_CHARS} characters"
        )));
    }
    Ok(())
}

async fn decide(
    agent: &Agent,
    name: &str,
    role: crate::auth::UserRole,
    id: &str,
    verdict: SignalVerdict,
    note: Option<&str>,
) -> AppResult<SignalRecord> {
    let who = reviewer_for(name, role)?;
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    check_note(note)?;
    Ok(decide_signal(&agent.store, &who, id, verdict, note).await?)
}

fn done(id: &str, what: &str) -> Response {
    Redirect::to(&format!("/signals?done={what}&id={}", encode_query(id))).into_response()
}

/// `POST /signals/{id}/confirm` with an optional note.
pub async fn confirm_page(
    State(agent): State<Arc<Agent>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<SignalsDecide, NoteForm>,
) -> AppResult<Response> {
    decide(
        &agent,
        &user.name,
        user.role,
        &id,
        SignalVerdict::Confirm,
        Some(&form.note),
    )
    .await?;
    Ok(done(&id, "confirmed"))
}

/// `POST /signals/{id}/clear` with an optional note.
pub async fn clear_page(
    State(agent): State<Arc<Agent>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<SignalsDecide, NoteForm>,
) -> AppResult<Response> {
    decide(
        &agent,
        &user.name,
        user.role,
        &id,
        SignalVerdict::Clear,
        Some(&form.note),
    )
    .await?;
    Ok(done(&id, "cleared"))
}

// ---------------------------------------------------------------------------------------
// The API

#[derive(Debug, Serialize)]
pub struct SignalPage {
    pub items: Vec<SignalRecord>,
    /// Signals with this status in all (every customer).
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// `GET /api/signals?status=&customer=&limit=&offset=`: oldest first.
pub async fn api_list(
    State(agent): State<Arc<Agent>>,
    _: Allowed<SignalsRead>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Json<SignalPage>> {
    let status = parse_status(q.status.as_deref())?;
    let limit = q.limit.unwrap_or(SIGNALS_PAGE);
    let offset = q.offset.unwrap_or(0);
    if !(1..=MAX_API_PAGE).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and {MAX_API_PAGE}"
        )));
    }
    if offset < 0 {
        return Err(AppError::BadRequest("offset must not be negative".into()));
    }
    let customer = q.customer.as_deref().filter(|c| !c.is_empty());
    let items = agent.store.signals(status, customer, limit, offset).await?;
    let total = agent.store.count_signals(status).await?;
    Ok(Json(SignalPage {
        items,
        total,
        limit,
        offset,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    pub note: Option<String>,
}

fn decide_body(body: &Bytes) -> AppResult<DecideBody> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecideBody::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("the request body is not valid JSON: {e}")))
}

/// `POST /api/signals/{id}/confirm {note?}`.
pub async fn api_confirm(
    State(agent): State<Arc<Agent>>,
    Allowed(user, _): Allowed<SignalsDecide>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> AppResult<Json<SignalRecord>> {
    let DecideBody { note } = decide_body(&body)?;
    let r = decide(
        &agent,
        &user.name,
        user.role,
        &id,
        SignalVerdict::Confirm,
        note.as_deref(),
    )
    .await?;
    Ok(Json(r))
}

/// `POST /api/signals/{id}/clear {note?}`.
pub async fn api_clear(
    State(agent): State<Arc<Agent>>,
    Allowed(user, _): Allowed<SignalsDecide>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> AppResult<Json<SignalRecord>> {
    let DecideBody { note } = decide_body(&body)?;
    let r = decide(
        &agent,
        &user.name,
        user.role,
        &id,
        SignalVerdict::Clear,
        note.as_deref(),
    )
    .await?;
    Ok(Json(r))
}
