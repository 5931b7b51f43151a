//! The unmatched-mail queue: received messages that matched no customer (by thread or by
//! sender), waiting for a collector to assign each to its customer
//! (`argent_agent::mail_in::assign_unmatched`: audited `mail.assigned`, then processed as
//! matched). The page `/mail/unmatched` and its API (`GET /api/mail/unmatched`,
//! `POST /api/mail/{id}/assign`). Collectors, managers and admins assign; compliance reads.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use argent_agent::Agent;
use argent_agent::mail_in::{Report, assign_unmatched};
use argent_store::mail_in::InboundMail;

use super::{Page, Posted, age, encode_query, page};
use crate::api::reviewer_for;
use crate::auth::{Allowed, MailAssign, MailRead};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiPath, ApiQuery};

/// Messages per page and the most one API call returns.
pub const MAIL_PAGE: i64 = 100;
const MAX_API_PAGE: i64 = 500;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub limit: Option<i64>,
    /// What just happened, shown once: `assigned`.
    pub done: Option<String>,
    pub id: Option<String>,
    pub customer: Option<String>,
}

fn row(m: &InboundMail, now: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "id": m.id,
        "from": m.from_addr.as_deref().unwrap_or("(unknown)"),
        "subject": m.subject.as_deref().unwrap_or("(no subject)"),
        "kind": m.kind.as_deref().unwrap_or("?"),
        "received_at": m.received_at.to_rfc3339(),
        "age": age(m.received_at, now),
        "message_id": m.message_id,
    })
}

/// `GET /mail/unmatched`: newest first.
pub async fn list(
    State(agent): State<Arc<Agent>>,
    Page(user, _): Page<MailRead>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Html<String>> {
    let items = agent
        .store
        .inbound_list(Some("unmatched"), MAIL_PAGE)
        .await?;
    let now = agent.now();
    let flash = match (q.done.as_deref(), q.id.as_deref(), q.customer.as_deref()) {
        (Some("assigned"), Some(id), Some(c)) => {
            Some(format!("{id} assigned to {c} and processed."))
        }
        _ => None,
    };
    page(
        &user,
        "mail",
        "Unmatched mail",
        json!({
            "items": items.iter().map(|m| row(m, now)).collect::<Vec<_>>(),
            "total": items.len(),
            "flash": flash,
            "can_assign": crate::perm::MAIL_ASSIGN.contains(&user.role),
        }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    pub customer_id: String,
}

async fn assign(
    agent: &Agent,
    name: &str,
    role: crate::auth::UserRole,
    id: &str,
    customer_id: &str,
) -> AppResult<Report> {
    let customer_id = customer_id.trim();
    if customer_id.is_empty() {
        return Err(AppError::Unprocessable(
            "customer_id: name the customer to assign the message to".into(),
        ));
    }
    let who = reviewer_for(name, role)?;
    Ok(assign_unmatched(agent, id, customer_id, &who).await?)
}

/// `POST /mail/{id}/assign` with `customer_id`.
pub async fn assign_page(
    State(agent): State<Arc<Agent>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<MailAssign, AssignForm>,
) -> AppResult<Response> {
    assign(&agent, &user.name, user.role, &id, &form.customer_id).await?;
    Ok(Redirect::to(&format!(
        "/mail/unmatched?done=assigned&id={}&customer={}",
        encode_query(&id),
        encode_query(form.customer_id.trim())
    ))
    .into_response())
}

// ---------------------------------------------------------------------------------------
// The API

#[derive(Debug, Serialize)]
pub struct MailPage {
    pub items: Vec<InboundMail>,
    pub limit: i64,
}

/// `GET /api/mail/unmatched?limit=`: newest first.
pub async fn api_list(
    State(agent): State<Arc<Agent>>,
    _: Allowed<MailRead>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Json<MailPage>> {
    let limit = q.limit.unwrap_or(MAIL_PAGE);
    if !(1..=MAX_API_PAGE).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and {MAX_API_PAGE}"
        )));
    }
    let items = agent.store.inbound_list(Some("unmatched"), limit).await?;
    Ok(Json(MailPage { items, limit }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    pub customer_id: String,
}

#[derive(Debug, Serialize)]
pub struct Assigned {
    pub mail: InboundMail,
    pub report: Report,
}

/// `POST /api/mail/{id}/assign {customer_id}`: the message as processed, and what
/// processing did.
pub async fn api_assign(
    State(agent): State<Arc<Agent>>,
    Allowed(user, _): Allowed<MailAssign>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> AppResult<Json<Assigned>> {
    let body: AssignBody = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("the request body is not valid JSON: {e}")))?;
    let report = assign(&agent, &user.name, user.role, &id, &body.customer_id).await?;
    let mail = agent.store.inbound_mail(&id).await?;
    Ok(Json(Assigned { mail, report }))
}
