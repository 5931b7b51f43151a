//! The collectors' day (`/today`): open call tasks with the agent's drafted script, the
//! account's aging, its open promises and the debtor's local time; one form per call with
//! the outcome buttons (reached: promise / dispute / hardship / refused; not reached;
//! wrong number); tasks due by the end of the viewer's today; promises due today.
//!
//! An outcome is recorded by `crate::tasks::record_outcome`, the same function as
//! `POST /api/calls/{id}/outcome`: a promise, dispute or hardship claim is the agent's own
//! tool call judged by policy (it may be executed, queued for approval or refused; the
//! page says which), and the call is logged through the store's `log_call`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use argent_agent::{Agent, CallStatus};

use super::{Page, Posted, encode_query, money, page};
use crate::auth::{CallsWork, TasksRead};
use crate::error::AppResult;
use crate::extract::{ApiPath, ApiQuery};
use crate::tasks::{OutcomeBody, actor_for, record_outcome, today_view, zone};

#[derive(Debug, Default, Deserialize)]
pub struct TodayPageQuery {
    pub tz: Option<String>,
    /// What the last outcome did, shown once.
    pub done: Option<String>,
}

/// `GET /today?tz=`.
pub async fn show(
    State(agent): State<Arc<Agent>>,
    Page(user, _): Page<TasksRead>,
    ApiQuery(q): ApiQuery<TodayPageQuery>,
) -> AppResult<Html<String>> {
    let who = actor_for(&user.name, user.role)?;
    let tz = zone(q.tz.as_deref())?;
    let view = today_view(&agent, &who, tz).await?;
    let now = agent.now();
    let calls: Vec<Value> = view
        .calls
        .iter()
        .map(|c| {
            json!({
                "id": c.task.id,
                "customer_id": c.task.customer_id,
                "customer_name": c.customer_name,
                "local_time": c.local_time,
                "reason": c.task.reason,
                "script": c.task.script,
                "not_before": c.task.not_before.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
                "aging": c.aging,
                "promises": c.open_promises.iter().map(|p| json!({
                    "amount": money(p.amount.minor, p.amount.currency.as_str()),
                    "date": p.promised_date.to_string(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let tasks: Vec<Value> = view
        .tasks_due
        .iter()
        .map(|t| super::tasks::task_view(t, &who, now))
        .collect();
    let promises: Vec<Value> = view
        .promises_due
        .iter()
        .map(|r| {
            json!({
                "id": r.promise.id,
                "customer_id": r.promise.customer_id,
                "amount": money(r.promise.amount.minor, r.promise.amount.currency.as_str()),
                "received": r.received,
            })
        })
        .collect();
    page(
        &user,
        "today",
        "Today",
        json!({
            "today": view.today.to_string(),
            "tz": view.tz,
            "calls": calls,
            "tasks": tasks,
            "promises": promises,
            "can_log": crate::perm::CALLS_WORK.contains(&user.role),
            "bucket_labels": argent_core::AgingBucket::ALL.iter().map(|b| b.label()).collect::<Vec<_>>(),
            "flash": q.done,
        }),
    )
}

/// `POST /today/calls/{id}`: the outcome form of one call task.
pub async fn outcome(
    State(agent): State<Arc<Agent>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<CallsWork, OutcomeBody>,
) -> AppResult<Response> {
    let r = record_outcome(&agent, &user.name, user.role, &id, &form).await?;
    let what = match &r.action {
        None => format!("{}: call logged ({}).", id, r.outcome.as_str()),
        Some(a) => {
            let became = match a.status {
                CallStatus::Executed => "recorded".to_string(),
                CallStatus::Queued => format!(
                    "queued for approval ({})",
                    a.approval_id.as_deref().unwrap_or("")
                ),
                CallStatus::Refused => format!("refused by policy ({})", a.rules.join(", ")),
                CallStatus::Invalid => "invalid".to_string(),
            };
            format!(
                "{}: call logged; the {} was {became}.",
                id,
                r.outcome.as_str()
            )
        }
    };
    Ok(Redirect::to(&format!("/today?done={}", encode_query(&what))).into_response())
}
