//! The work-queue pages: the tasks and escalations inbox (`/tasks`, `/tasks/{id}` with
//! assign / take, comment and close forms), the case list (`/cases`, with take and
//! resolve forms) and the promise tracker (`/promises`). Every handler goes through the
//! same functions as the JSON API (`crate::tasks`), so a page can do nothing the API
//! refuses; forms carry the session's CSRF token ([`Posted`]).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use argent_agent::Agent;
use argent_core::{CaseKind, CaseStatus, TaskAct};
use argent_store::{Task, TaskActor};

use super::{Page, Posted, encode_query, money, page};
use crate::auth::{CasesRead, LedgerRead, QueueDecide, TasksRead, TasksWork};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::tasks::{
    CaseQuery, PromiseQuery, TaskQuery, actor_for, assign, case_filter, case_rows, close, comment,
    promise_board, sla_age, store_err, task_filter, visible_task, zone,
};

pub(crate) fn task_view(t: &Task, who: &TaskActor, now: DateTime<Utc>) -> Value {
    let can = |act| {
        argent_core::check_task_act(
            who.role,
            &who.name,
            t.owner_role,
            t.assignee.as_deref(),
            act,
        )
        .is_ok()
    };
    let open = t.status.is_open();
    json!({
        "id": t.id,
        "kind": t.kind.as_str(),
        "customer_id": t.customer_id,
        "owner_role": t.owner_role.as_str(),
        "assignee": t.assignee,
        "title": t.title,
        "body": t.body,
        "due_at": t.due_at.map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string()),
        "overdue": open && t.due_at.is_some_and(|d| d < now),
        "status": t.status.as_str(),
        "outcome": t.outcome,
        "source": t.source,
        "age": sla_age(t.created_at, now).1,
        "created_at": t.created_at.to_rfc3339(),
        "can_take": open && t.assignee.as_deref() != Some(&who.name) && can(TaskAct::Assign(&who.name)),
        "can_assign": open && matches!(who.role, argent_core::Role::Manager | argent_core::Role::Admin),
        "can_close": open && can(TaskAct::Close),
        "can_comment": can(TaskAct::Comment),
    })
}

/// `GET /tasks?status=&role=&assignee=&customer=&due_before=`.
pub async fn list(
    State(agent): State<Arc<Agent>>,
    Page(user, _): Page<TasksRead>,
    ApiQuery(q): ApiQuery<TaskQuery>,
) -> AppResult<Html<String>> {
    let who = actor_for(&user.name, user.role)?;
    let f = task_filter(&q, &who)?;
    let items = agent.store.tasks(&f).await?;
    let now = agent.now();
    let status = q.status.clone().unwrap_or_else(|| "active".into());
    let assignee = q.assignee.clone().unwrap_or_default();
    let tabs: Vec<Value> = [
        (
            "Mine",
            "/tasks?assignee=me",
            assignee == "me" && status == "active",
        ),
        (
            "Active",
            "/tasks",
            assignee.is_empty() && status == "active",
        ),
        ("Done", "/tasks?status=done", status == "done"),
        ("All", "/tasks?status=all", status == "all"),
    ]
    .iter()
    .map(|(name, href, current)| json!({"name": name, "href": href, "current": current}))
    .collect();
    page(
        &user,
        "tasks",
        "Tasks and escalations",
        json!({
            "items": items.iter().map(|t| task_view(t, &who, now)).collect::<Vec<_>>(),
            "count": items.len(),
            "tabs": tabs,
            "status": status,
            "role": who.role.as_str(),
        }),
    )
}

/// `GET /tasks/{id}`.
pub async fn show(
    State(agent): State<Arc<Agent>>,
    Page(user, _): Page<TasksRead>,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Html<String>> {
    let who = actor_for(&user.name, user.role)?;
    let d = visible_task(&agent.store, &id, &who).await?;
    let now = agent.now();
    let comments: Vec<Value> = d
        .comments
        .iter()
        .map(|c| json!({"author": c.author, "body": c.body, "at": c.created_at.format("%Y-%m-%d %H:%M UTC").to_string()}))
        .collect();
    page(
        &user,
        "task",
        &format!("Task {}", d.task.id),
        json!({
            "task": task_view(&d.task, &who, now),
            "comments": comments,
            "can_work": crate::perm::TASKS_WORK.contains(&user.role),
        }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    pub to: String,
}

fn back(id: &str) -> Response {
    Redirect::to(&format!("/tasks/{}", encode_query(id))).into_response()
}

/// `POST /tasks/{id}/assign` (`to` empty: take it).
pub async fn assign_page(
    State(agent): State<Arc<Agent>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<TasksWork, AssignForm>,
) -> AppResult<Response> {
    let who = actor_for(&user.name, user.role)?;
    assign(&agent.store, &id, &who, Some(&form.to)).await?;
    Ok(back(&id))
}

#[derive(Debug, Default, Deserialize)]
pub struct CommentForm {
    #[serde(default)]
    pub body: String,
}

/// `POST /tasks/{id}/comment`.
pub async fn comment_page(
    State(agent): State<Arc<Agent>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<TasksWork, CommentForm>,
) -> AppResult<Response> {
    let who = actor_for(&user.name, user.role)?;
    comment(&agent.store, &id, &who, &form.body).await?;
    Ok(back(&id))
}

#[derive(Debug, Default, Deserialize)]
pub struct CloseForm {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub outcome: String,
}

/// `POST /tasks/{id}/close`.
pub async fn close_page(
    State(agent): State<Arc<Agent>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<TasksWork, CloseForm>,
) -> AppResult<Response> {
    let who = actor_for(&user.name, user.role)?;
    close(&agent.store, &id, &who, Some(&form.status), &form.outcome).await?;
    Ok(back(&id))
}

// ---------------------------------------------------------------------------------------
// Cases

/// `GET /cases?kind=&status=&customer=&owner=`.
pub async fn cases(
    State(agent): State<Arc<Agent>>,
    Page(user, _): Page<CasesRead>,
    ApiQuery(q): ApiQuery<CaseQuery>,
) -> AppResult<Html<String>> {
    let f = case_filter(&q, &user.name)?;
    let list = agent.store.case_list(&f).await.map_err(store_err)?;
    let rows = case_rows(list, agent.now());
    let can_decide = crate::perm::QUEUE_DECIDE.contains(&user.role);
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let c = &r.listing.case;
            let step = |to| c.kind.check_transition(c.status, to).is_ok();
            let outcomes: Vec<&str> = [
                CaseStatus::Resolved,
                CaseStatus::Upheld,
                CaseStatus::Rejected,
            ]
            .iter()
            .filter(|s| can_decide && step(**s))
            .map(|s| s.as_str())
            .collect();
            json!({
                "id": c.id,
                "customer_id": c.customer_id,
                "kind": c.kind.as_str(),
                "status": c.status.as_str(),
                "owner": r.listing.owner,
                "reason": c.summary,
                "invoices": c.invoice_numbers.join(", "),
                "disputed": c.disputed_amount.map(|m| m.to_string()),
                "sla_age": r.sla_age,
                "age_bucket": r.age_bucket,
                "can_take": can_decide && step(CaseStatus::InProgress),
                "can_verify": can_decide && step(CaseStatus::VerificationSent),
                "outcomes": outcomes,
            })
        })
        .collect();
    let kind_links: Vec<Value> =
        std::iter::once(json!({"name": "all kinds", "href": "/cases"}))
            .chain(CaseKind::ALL.iter().map(
                |k| json!({"name": k.as_str(), "href": format!("/cases?kind={}", k.as_str())}),
            ))
            .collect();
    page(
        &user,
        "cases",
        "Cases",
        json!({
            "items": items,
            "count": rows.len(),
            "kinds": kind_links,
            "kind": q.kind.clone().unwrap_or_default(),
            "status": q.status.clone().unwrap_or_else(|| "active".into()),
        }),
    )
}

/// `POST /cases/{id}/take`.
pub async fn take_case_page(
    State(agent): State<Arc<Agent>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, _form, _): Posted<QueueDecide, AssignForm>,
) -> AppResult<Response> {
    agent
        .store
        .take_case(&id, &user.name, &user.name)
        .await
        .map_err(store_err)?;
    Ok(Redirect::to("/cases?owner=me").into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct StepForm {
    /// `verification_sent`, `resolved`, `upheld` or `rejected`.
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub note: String,
}

/// `POST /cases/{id}/step`: record the verification, or close the case, through the same
/// store step as `POST /api/cases/{id}/verification|resolve`.
pub async fn step_case_page(
    State(agent): State<Arc<Agent>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<QueueDecide, StepForm>,
) -> AppResult<Response> {
    let to: CaseStatus = match form.to.as_str() {
        "verification_sent" | "resolved" | "upheld" | "rejected" => form
            .to
            .parse()
            .map_err(|e: String| AppError::BadRequest(e))?,
        other => {
            return Err(AppError::BadRequest(format!(
                "to: '{other}' is not verification_sent, resolved, upheld or rejected"
            )));
        }
    };
    crate::cases::advance(&agent.store, &id, to, &user.name, &form.note).await?;
    Ok(Redirect::to("/cases").into_response())
}

// ---------------------------------------------------------------------------------------
// Promises

/// `GET /promises?due=&tz=&customer=`.
pub async fn promises(
    State(agent): State<Arc<Agent>>,
    Page(user, _): Page<LedgerRead>,
    ApiQuery(q): ApiQuery<PromiseQuery>,
) -> AppResult<Html<String>> {
    let tz = zone(q.tz.as_deref())?;
    let today = agent.now().with_timezone(&tz).date_naive();
    let customer = q.customer.as_deref().filter(|c| !c.trim().is_empty());
    let board = promise_board(&agent.store, q.due.as_deref(), tz, today, customer).await?;
    let tzq = encode_query(tz.name());
    let tabs: Vec<Value> = [
        ("today", "Due today"),
        ("week", "Due this week"),
        ("open", "Open"),
        ("broken", "Broken"),
        ("partial", "Partially kept"),
        ("kept", "Kept"),
        ("all", "All"),
    ]
    .iter()
    .map(|(d, label)| {
        json!({"name": label, "href": format!("/promises?due={d}&tz={tzq}"), "current": board.due == *d})
    })
    .collect();
    let items: Vec<Value> = board
        .items
        .iter()
        .map(|r| {
            let p = &r.promise;
            json!({
                "id": p.id,
                "customer_id": p.customer_id,
                "amount": money(p.amount.minor, p.amount.currency.as_str()),
                "received": r.received,
                "promised_date": p.promised_date.to_string(),
                "deadline": r.deadline.to_string(),
                "invoices": p.invoice_numbers.join(", "),
                "standing": r.standing.as_str(),
                "follow_up": r.follow_up,
            })
        })
        .collect();
    let counts: Vec<Value> = board
        .counts
        .iter()
        .map(|(k, v)| json!({"standing": k, "count": v}))
        .collect();
    page(
        &user,
        "promises",
        "Promises to pay",
        json!({
            "today": board.today.to_string(),
            "tz": board.tz,
            "grace": board.grace_days,
            "tabs": tabs,
            "items": items,
            "counts": counts,
        }),
    )
}
