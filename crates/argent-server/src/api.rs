//! JSON handlers over the agent and the store: the approval queue, the audit trail, aging.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use argent_agent::{Agent, AgentError, ReviewResult, Reviewer};
use argent_core::bounds;
use argent_core::ledger::{AgingReport, AgingRow, aging_report};
use argent_core::{Decision, Role};
use argent_store::{
    ApprovalItem, ApprovalStatus, AuditEvent, AuditFilter, AuditVerification, Store, audit_to_csv,
    audit_to_jsonl,
};

use crate::auth::{Allowed, AuditRead, AuthUser, LedgerRead, QueueDecide, QueueRead, UserRole};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;
const DEFAULT_AUDIT_PAGE: i64 = 100;
const MAX_AUDIT_PAGE: i64 = 1000;

fn page(limit: Option<i64>, offset: Option<i64>, default: i64, max: i64) -> AppResult<(i64, i64)> {
    let limit = limit.unwrap_or(default);
    let offset = offset.unwrap_or(0);
    if !(1..=max).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and {max}"
        )));
    }
    if offset < 0 {
        return Err(AppError::BadRequest("offset must not be negative".into()));
    }
    Ok((limit, offset))
}

fn reviewer(user: &AuthUser) -> AppResult<Reviewer> {
    reviewer_for(&user.name, user.role)
}

/// The reviewer a signed-in user acts as; 403 for a role that reviews nothing.
pub(crate) fn reviewer_for(name: &str, role: UserRole) -> AppResult<Reviewer> {
    let as_role = role
        .reviewer_role()
        .ok_or_else(|| AppError::Forbidden(format!("role {role} reviews nothing")))?;
    Ok(Reviewer {
        name: name.to_string(),
        role: as_role,
    })
}

/// A JSON body that may be absent altogether (then `T::default()`).
fn optional_body<T: DeserializeOwned + Default>(body: &Bytes) -> AppResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("the request body is not valid JSON: {e}")))
}

// ---------------------------------------------------------------------------------------
// The approval queue

#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    /// `pending` (default), `approved`, `rejected` or `all`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct QueuePage {
    pub items: Vec<ApprovalItem>,
    /// Items with this status in all.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// `GET /api/approvals?status=&limit=&offset=`: highest priority first.
pub async fn list_approvals(
    State(store): State<Store>,
    _: Allowed<QueueRead>,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> AppResult<Json<QueuePage>> {
    let status = match q.status.as_deref() {
        None | Some("") | Some("pending") => Some(ApprovalStatus::Pending),
        Some("all") => None,
        Some(s) => Some(s.parse::<ApprovalStatus>().map_err(|_| {
            AppError::BadRequest(format!(
                "status '{s}' is not one of: pending, approved, rejected, all"
            ))
        })?),
    };
    let (limit, offset) = page(q.limit, q.offset, DEFAULT_PAGE, MAX_PAGE)?;
    let items = store.approvals(status, limit, offset).await?;
    let total = store.count_approvals(status).await?;
    Ok(Json(QueuePage {
        items,
        total,
        limit,
        offset,
    }))
}

/// One item with what a reviewer needs beside it.
#[derive(Debug, Serialize)]
pub struct ApprovalDetail {
    #[serde(flatten)]
    pub item: ApprovalItem,
    /// The customer's open balances by aging bucket (one row per currency), as of the
    /// agent's today.
    pub aging: Vec<AgingRow>,
    /// The items held with this one (emails confirming its action), decided with it.
    pub held: Vec<ApprovalItem>,
}

/// `GET /api/approvals/{id}`: the item and its account's aging.
pub async fn get_approval(
    State(agent): State<Arc<Agent>>,
    _: Allowed<QueueRead>,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<ApprovalDetail>> {
    let store = &agent.store;
    let item = store.approval(&id).await?;
    let invoices = store.invoices(Some(&item.customer_id)).await?;
    let payments = store.payments(Some(&item.customer_id)).await?;
    let aging = aging_report(&invoices, &payments, agent.now().date_naive(), 90)?.rows;
    let held = store.bundled_with(&item.id).await?;
    Ok(Json(ApprovalDetail { item, aging, held }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    pub note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    /// The item's tool arguments as the reviewer wants them.
    pub args: Value,
    pub note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    pub note: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    pub args: Value,
}

/// A refusal from the agent, with the rules that made it when policy denied the action
/// (the agent names them only in its message, so the same arguments are judged once more
/// to report them in full).
pub(crate) async fn review_error(agent: &Agent, id: &str, args: Value, e: AgentError) -> AppError {
    match e {
        AgentError::Denied(message) => {
            let rules = match agent.preview_edit(id, args).await {
                Ok(d) => d.decisive_rules().cloned().collect(),
                Err(_) => Vec::new(),
            };
            AppError::Denied { message, rules }
        }
        other => other.into(),
    }
}

/// `POST /api/approvals/{id}/approve {note?}`: the item as proposed, re-judged now.
pub async fn approve(
    State(agent): State<Arc<Agent>>,
    Allowed(user, _): Allowed<QueueDecide>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> AppResult<Json<ReviewResult>> {
    let who = reviewer(&user)?;
    let ApproveBody { note } = optional_body(&body)?;
    match agent.approve(&id, &who, note.as_deref()).await {
        Ok(r) => Ok(Json(r)),
        Err(e) => {
            let args = match agent.store.approval(&id).await {
                Ok(item) => item.action,
                Err(_) => Value::Null,
            };
            Err(review_error(&agent, &id, args, e).await)
        }
    }
}

/// `POST /api/approvals/{id}/edit {args, note?}`: same tool, same customer, re-judged.
pub async fn edit(
    State(agent): State<Arc<Agent>>,
    Allowed(user, _): Allowed<QueueDecide>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<EditBody>,
) -> AppResult<Json<ReviewResult>> {
    let who = reviewer(&user)?;
    match agent
        .edit(&id, &who, body.args.clone(), body.note.as_deref())
        .await
    {
        Ok(r) => Ok(Json(r)),
        Err(e) => Err(review_error(&agent, &id, body.args, e).await),
    }
}

/// `POST /api/approvals/{id}/reject {note}`.
pub async fn reject(
    State(agent): State<Arc<Agent>>,
    Allowed(user, _): Allowed<QueueDecide>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RejectBody>,
) -> AppResult<Json<Value>> {
    let who = reviewer(&user)?;
    if body.note.trim().is_empty() {
        return Err(AppError::Unprocessable(
            "a rejection needs a note saying why".into(),
        ));
    }
    agent.reject(&id, &who, &body.note).await?;
    Ok(Json(json!({"approval_id": id, "status": "rejected"})))
}

#[derive(Debug, Serialize)]
pub struct Preview {
    /// What the policy would decide for these arguments, now.
    pub decision: Decision,
    /// The roles that could approve it (empty for allow and deny).
    pub approvers: Vec<Role>,
    /// Whether submitting it as this caller would execute: allowed outright, or needing
    /// approval the caller's role may give.
    pub caller_may_submit: bool,
}

/// `POST /api/approvals/{id}/preview {args}`: the decision an edit would get; acts on
/// nothing.
pub async fn preview(
    State(agent): State<Arc<Agent>>,
    Allowed(user, _): Allowed<QueueDecide>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PreviewBody>,
) -> AppResult<Json<Preview>> {
    let who = reviewer(&user)?;
    let decision = agent.preview_edit(&id, body.args).await?;
    let caller_may_submit = decision.is_allowed() || decision.may_approve(who.role);
    Ok(Json(Preview {
        approvers: decision.approvers(),
        caller_may_submit,
        decision,
    }))
}

// ---------------------------------------------------------------------------------------
// The audit trail

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    pub customer_id: Option<String>,
    pub run_id: Option<String>,
    pub actor: Option<String>,
    pub kind: Option<String>,
    pub rule_id: Option<String>,
    /// Inclusive, RFC 3339.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive, RFC 3339.
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub limit: i64,
    pub offset: i64,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl AuditQuery {
    /// 400 unless `since` and `until` lie within the dates argent accepts
    /// ([`argent_core::bounds`]).
    pub(crate) fn check(&self) -> AppResult<()> {
        for (name, t) in [("since", self.since), ("until", self.until)] {
            if let Some(t) = t {
                argent_core::bounds::check_instant(name, t)?;
            }
        }
        Ok(())
    }

    /// The store's filter for this query, with the page given.
    pub(crate) fn filter(self, limit: Option<i64>, offset: Option<i64>) -> AuditFilter {
        AuditFilter {
            customer_id: non_empty(self.customer_id),
            run_id: non_empty(self.run_id),
            actor: non_empty(self.actor),
            kind: non_empty(self.kind),
            rule_id: non_empty(self.rule_id),
            since: self.since,
            until: self.until,
            limit,
            offset,
        }
    }
}

/// `GET /api/audit?customer_id=&run_id=&actor=&kind=&rule_id=&since=&until=&limit=&offset=`:
/// oldest first.
pub async fn audit(
    State(store): State<Store>,
    _: Allowed<AuditRead>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> AppResult<Json<AuditPage>> {
    q.check()?;
    let (limit, offset) = page(q.limit, q.offset, DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE)?;
    let events = store
        .audit_events(&q.filter(Some(limit), Some(offset)))
        .await?;
    Ok(Json(AuditPage {
        events,
        limit,
        offset,
    }))
}

#[derive(Debug, Default, Deserialize)]
pub struct ExportQuery {
    /// `jsonl` (default) or `csv`.
    pub format: Option<String>,
    #[serde(flatten)]
    pub filter: AuditQuery,
}

/// Every event matching `q`'s filters as a download: JSON lines or CSV, oldest first, with
/// hashes, so the export can be checked against the chain.
pub(crate) async fn export_response(
    store: &Store,
    cpu: &crate::limits::CpuSlots,
    q: ExportQuery,
) -> AppResult<Response> {
    let format = q.format.unwrap_or_else(|| "jsonl".into());
    let (mime, ext) = match format.as_str() {
        "jsonl" => ("application/x-ndjson", "jsonl"),
        "csv" => ("text/csv; charset=utf-8", "csv"),
        other => {
            return Err(AppError::BadRequest(format!(
                "format '{other}' is not one of: jsonl, csv"
            )));
        }
    };
    let events = store.audit_events(&q.filter.filter(None, None)).await?;
    // Writing out every event is CPU work in proportion to the trail: off the executor.
    let csv = ext == "csv";
    let body = cpu
        .run(move || {
            if csv {
                audit_to_csv(&events)
            } else {
                audit_to_jsonl(&events)
            }
        })
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"argent-audit.{ext}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /api/audit/export?format=jsonl|csv&<the filters of /api/audit>`.
pub async fn audit_export(
    State(store): State<Store>,
    State(cpu): State<crate::limits::CpuSlots>,
    _: Allowed<AuditRead>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> AppResult<Response> {
    q.filter.check()?;
    export_response(&store, &cpu, q).await
}

/// `GET /api/audit/verify`: whether the hash chain holds, and where it first breaks.
pub async fn audit_verify(
    State(store): State<Store>,
    _: Allowed<AuditRead>,
) -> AppResult<Json<AuditVerification>> {
    Ok(Json(store.audit_verify().await?))
}

// ---------------------------------------------------------------------------------------
// The ledger

#[derive(Debug, Default, Deserialize)]
pub struct AgingQuery {
    /// YYYY-MM-DD; default: the agent's today (UTC).
    pub as_of: Option<NaiveDate>,
    /// Days of credit sales DSO is measured over (default 90).
    pub dso_days: Option<i64>,
}

/// `GET /api/aging?as_of=&dso_days=`: buckets and DSO per currency, customers by balance.
pub async fn aging(
    State(agent): State<Arc<Agent>>,
    _: Allowed<LedgerRead>,
    ApiQuery(q): ApiQuery<AgingQuery>,
) -> AppResult<Json<AgingReport>> {
    let dso_days = bounds::check_period_days("dso_days", q.dso_days.unwrap_or(90))?;
    let as_of = match q.as_of {
        Some(d) => bounds::check_date("as_of", d)?,
        None => agent.now().date_naive(),
    };
    let ledger = agent.store.ledger().await?;
    Ok(Json(aging_report(
        &ledger.invoices,
        &ledger.payments,
        as_of,
        dso_days,
    )?))
}
