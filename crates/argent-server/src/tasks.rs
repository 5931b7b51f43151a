//! Work queues over the API (and the logic the pages share): the tasks and escalations
//! inbox (`/api/tasks…`), the case list (`/api/cases`, `POST /api/cases/{id}/take`), the
//! promise tracker (`/api/promises`), the collectors' day (`/api/today`, and
//! `POST /api/calls/{id}/outcome`) and the managers' counts (`/api/queues`).
//!
//! **Invariants.** Who may see or change a task is decided by the store against the row
//! it reads (`argent_core::check_task_act`); a task a caller may not see is answered 404,
//! as if it did not exist, and a change they may not make 403. A call outcome that is a
//! promise, a dispute or a hardship claim becomes the tool call the agent would make
//! (`log_promise`, `open_case`) through `Agent::act_for_person`: the same schema, the same
//! policy, the same approval queue. "Today" and "this week" are the viewer's, in the time
//! zone the request names (`tz`, IANA; default UTC), never the server's.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use argent_agent::{Agent, CallOutcome, CallStatus};
use argent_core::ledger::aging_report;
use argent_core::task::{promise_standing, week_of};
use argent_core::{
    AgeBucket, CaseKind, CaseStatus, Money, PromiseStanding, PromiseToPay, Role, TaskAct, TaskKind,
    TaskStatus,
};
use argent_store::{
    CallTask, CaseFilter, CaseListing, NOT_PERMITTED, NewTask, Store, StoreError, Task, TaskActor,
    TaskComment, TaskCount, TaskFilter,
};

use crate::auth::{Allowed, CallsWork, CasesRead, QueueDecide, TasksRead, TasksWork, UserRole};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::web::PROMISE_GRACE_DAYS;

/// The longest comment, outcome or note accepted.
pub const MAX_TEXT: usize = 2000;
/// Call tasks the day's page shows at most (oldest first); the rest wait for the next load.
pub const MAX_CALLS: usize = 200;

/// The task actor a signed-in user is; 403 for a role that works no queue.
pub(crate) fn actor_for(name: &str, role: UserRole) -> AppResult<TaskActor> {
    let role = role
        .reviewer_role()
        .ok_or_else(|| AppError::Forbidden(format!("role {role} works no queue")))?;
    Ok(TaskActor {
        name: name.to_string(),
        role,
    })
}

/// A store error as the caller should see it: a refused role 403, a bad step 422.
pub(crate) fn store_err(e: StoreError) -> AppError {
    match e {
        StoreError::Invalid(why) => match why.strip_prefix(NOT_PERMITTED) {
            Some(rest) => AppError::Forbidden(format!("not permitted: {rest}")),
            None => AppError::Unprocessable(why),
        },
        other => other.into(),
    }
}

pub(crate) fn check_text(field: &str, text: &str, required: bool) -> AppResult<()> {
    if required && text.trim().is_empty() {
        return Err(AppError::Unprocessable(format!(
            "{field}: must not be empty"
        )));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(AppError::Unprocessable(format!(
            "{field}: longer than {MAX_TEXT} characters"
        )));
    }
    Ok(())
}

/// The zone named by `tz` (default UTC); 400 naming it when it is not an IANA zone.
pub(crate) fn zone(tz: Option<&str>) -> AppResult<Tz> {
    match tz.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(chrono_tz::UTC),
        Some(t) => t.parse::<Tz>().map_err(|_| {
            AppError::BadRequest(format!(
                "tz: '{t}' is not an IANA time zone (e.g. Europe/London, America/New_York)"
            ))
        }),
    }
}

/// The last instant of `day` in `tz` (the start of the next day, exclusive, minus 1 µs).
fn end_of_day(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let next = day.succ_opt().unwrap_or(day).and_hms_opt(0, 0, 0);
    next.and_then(|n| tz.from_local_datetime(&n).earliest())
        .map_or(DateTime::<Utc>::MAX_UTC, |t| {
            t.with_timezone(&Utc) - Duration::microseconds(1)
        })
}

/// "3 d 4 h": an SLA age.
pub(crate) fn sla_age(since: DateTime<Utc>, now: DateTime<Utc>) -> (i64, String) {
    let hours = (now - since).num_hours().max(0);
    let text = if hours >= 24 {
        format!("{} d {} h", hours / 24, hours % 24)
    } else {
        format!("{hours} h")
    };
    (hours, text)
}

// ---------------------------------------------------------------------------------------
// Tasks

#[derive(Debug, Default, Deserialize)]
pub struct TaskQuery {
    /// `active` (open and in progress; default), `open`, `in_progress`, `done`,
    /// `cancelled` or `all`.
    pub status: Option<String>,
    /// Only this role's tasks.
    pub role: Option<String>,
    /// Only tasks assigned to this user; `me` for the caller.
    pub assignee: Option<String>,
    pub customer: Option<String>,
    /// RFC 3339: only tasks due at or before it.
    pub due_before: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

pub(crate) fn task_filter(q: &TaskQuery, who: &TaskActor) -> AppResult<TaskFilter> {
    let statuses = match q.status.as_deref().map(str::trim) {
        None | Some("") | Some("active") => vec![TaskStatus::Open, TaskStatus::InProgress],
        Some("all") => Vec::new(),
        Some(s) => vec![s.parse::<TaskStatus>().map_err(|_| {
            AppError::BadRequest(format!(
                "status: '{s}' is not one of active, open, in_progress, done, cancelled, all"
            ))
        })?],
    };
    let owner_role = match q.role.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(
            r.parse::<Role>()
                .map_err(|e| AppError::BadRequest(format!("role: {e}")))?,
        ),
    };
    let assignee = match q
        .assignee
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        Some("me") => Some(who.name.clone()),
        other => other.map(str::to_string),
    };
    let due_before = match q
        .due_before
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        None => None,
        Some(d) => Some(
            DateTime::parse_from_rfc3339(d)
                .map_err(|e| {
                    AppError::BadRequest(format!(
                        "due_before: '{d}' is not an RFC 3339 instant: {e}"
                    ))
                })?
                .with_timezone(&Utc),
        ),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(AppError::BadRequest(
            "limit must be between 1 and 500".into(),
        ));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(AppError::BadRequest("offset must not be negative".into()));
    }
    Ok(TaskFilter {
        owner_role,
        assignee,
        customer_id: q.customer.clone().filter(|c| !c.trim().is_empty()),
        statuses,
        due_before,
        visible_to: Some(who.clone()),
        limit: Some(limit),
        offset,
    })
}

#[derive(Debug, Serialize)]
pub struct TaskPage {
    pub items: Vec<Task>,
    pub limit: i64,
    pub offset: i64,
}

/// `GET /api/tasks?status=&role=&assignee=&customer=&due_before=&limit=&offset=`: the
/// tasks the caller may see, soonest due first.
pub async fn api_list(
    State(store): State<Store>,
    Allowed(user, _): Allowed<TasksRead>,
    ApiQuery(q): ApiQuery<TaskQuery>,
) -> AppResult<Json<TaskPage>> {
    let who = actor_for(&user.name, user.role)?;
    let f = task_filter(&q, &who)?;
    let items = store.tasks(&f).await?;
    Ok(Json(TaskPage {
        items,
        limit: f.limit.unwrap_or(100),
        offset: f.offset,
    }))
}

#[derive(Debug, Serialize)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: Task,
    pub comments: Vec<TaskComment>,
}

/// Task `id` with its comments, if `who` may see it (else 404, as if there were none).
pub(crate) async fn visible_task(
    store: &Store,
    id: &str,
    who: &TaskActor,
) -> AppResult<TaskDetail> {
    let task = store.task(id).await?;
    if argent_core::check_task_act(
        who.role,
        &who.name,
        task.owner_role,
        task.assignee.as_deref(),
        TaskAct::See,
    )
    .is_err()
    {
        return Err(AppError::NotFound(format!("task {id} not found")));
    }
    let comments = store.task_comments(id).await?;
    Ok(TaskDetail { task, comments })
}

/// `GET /api/tasks/{id}`.
pub async fn api_show(
    State(store): State<Store>,
    Allowed(user, _): Allowed<TasksRead>,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<TaskDetail>> {
    let who = actor_for(&user.name, user.role)?;
    Ok(Json(visible_task(&store, &id, &who).await?))
}

fn body_or_default<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> AppResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("the request body is not valid JSON: {e}")))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// The user to assign it to (default: the caller, who takes it).
    pub to: Option<String>,
}

pub(crate) async fn assign(
    store: &Store,
    id: &str,
    who: &TaskActor,
    to: Option<&str>,
) -> AppResult<Task> {
    let to = to
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(&who.name);
    if to.chars().count() > 64 {
        return Err(AppError::Unprocessable(
            "to: longer than 64 characters".into(),
        ));
    }
    // A task the caller may not even see is 404, not a 403 that confirms it exists.
    visible_task(store, id, who).await?;
    if to != who.name {
        let works = store
            .user(to)
            .await?
            .is_some_and(|u| u.role != UserRole::Evaluator.as_str());
        if !works {
            return Err(AppError::Unprocessable(format!(
                "/to: there is no user '{to}' who works the queues"
            )));
        }
    }
    store.assign_task(id, who, to).await.map_err(store_err)
}

/// `POST /api/tasks/{id}/assign {to?}`.
pub async fn api_assign(
    State(store): State<Store>,
    Allowed(user, _): Allowed<TasksWork>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> AppResult<Json<Task>> {
    let who = actor_for(&user.name, user.role)?;
    let b: AssignBody = body_or_default(&body)?;
    Ok(Json(assign(&store, &id, &who, b.to.as_deref()).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    pub body: String,
}

pub(crate) async fn comment(store: &Store, id: &str, who: &TaskActor, text: &str) -> AppResult<()> {
    check_text("/body", text, true)?;
    visible_task(store, id, who).await?;
    store
        .comment_task(id, who, text.trim())
        .await
        .map_err(store_err)
}

/// `POST /api/tasks/{id}/comment {body}`.
pub async fn api_comment(
    State(store): State<Store>,
    Allowed(user, _): Allowed<TasksWork>,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<CommentBody>,
) -> AppResult<Json<TaskDetail>> {
    let who = actor_for(&user.name, user.role)?;
    comment(&store, &id, &who, &b.body).await?;
    Ok(Json(visible_task(&store, &id, &who).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    /// `done` (default) or `cancelled`.
    #[serde(default)]
    pub status: Option<String>,
    /// What was done, or why it is cancelled.
    pub outcome: String,
}

pub(crate) async fn close(
    store: &Store,
    id: &str,
    who: &TaskActor,
    status: Option<&str>,
    outcome: &str,
) -> AppResult<Task> {
    let status = match status.map(str::trim).filter(|s| !s.is_empty()) {
        None | Some("done") => TaskStatus::Done,
        Some("cancelled") => TaskStatus::Cancelled,
        Some(s) => {
            return Err(AppError::Unprocessable(format!(
                "/status: '{s}' is not done or cancelled"
            )));
        }
    };
    check_text("/outcome", outcome, true)?;
    visible_task(store, id, who).await?;
    store
        .close_task(id, who, status, outcome.trim())
        .await
        .map_err(store_err)
}

/// `POST /api/tasks/{id}/close {status?, outcome}`.
pub async fn api_close(
    State(store): State<Store>,
    Allowed(user, _): Allowed<TasksWork>,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<CloseBody>,
) -> AppResult<Json<Task>> {
    let who = actor_for(&user.name, user.role)?;
    Ok(Json(
        close(&store, &id, &who, b.status.as_deref(), &b.outcome).await?,
    ))
}

// ---------------------------------------------------------------------------------------
// Cases

#[derive(Debug, Default, Deserialize)]
pub struct CaseQuery {
    /// `dispute`, `hardship`, `payment_claimed`, `question`, `other` (comma-separated).
    pub kind: Option<String>,
    /// `active` (open, in progress, verification sent; default), a status
    /// (comma-separated), or `all`.
    pub status: Option<String>,
    pub customer: Option<String>,
    /// Only cases this user owns; `me` for the caller.
    pub owner: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

fn list_of<T: std::str::FromStr<Err = String>>(field: &str, s: &str) -> AppResult<Vec<T>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<T>()
                .map_err(|e| AppError::BadRequest(format!("{field}: {e}")))
        })
        .collect()
}

pub(crate) fn case_filter(q: &CaseQuery, me: &str) -> AppResult<CaseFilter> {
    let kinds = match q.kind.as_deref() {
        None => Vec::new(),
        Some(k) => list_of::<CaseKind>("kind", k)?,
    };
    let statuses = match q.status.as_deref().map(str::trim) {
        None | Some("") | Some("active") => vec![
            CaseStatus::Open,
            CaseStatus::InProgress,
            CaseStatus::VerificationSent,
        ],
        Some("all") => Vec::new(),
        Some(s) => list_of::<CaseStatus>("status", s)?,
    };
    let owner = match q.owner.as_deref().map(str::trim).filter(|o| !o.is_empty()) {
        Some("me") => Some(me.to_string()),
        other => other.map(str::to_string),
    };
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::BadRequest(
            "limit must be between 1 and 1000".into(),
        ));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(AppError::BadRequest("offset must not be negative".into()));
    }
    Ok(CaseFilter {
        kinds,
        statuses,
        customer_id: q.customer.clone().filter(|c| !c.trim().is_empty()),
        owner,
        limit: Some(limit),
        offset,
    })
}

/// A case as the list shows it: its record, owner, SLA age and age bucket.
#[derive(Debug, Serialize)]
pub struct CaseRow {
    #[serde(flatten)]
    pub listing: CaseListing,
    /// Hours since it was opened.
    pub sla_age_hours: i64,
    pub sla_age: String,
    pub age_bucket: &'static str,
}

pub(crate) fn case_rows(list: Vec<CaseListing>, now: DateTime<Utc>) -> Vec<CaseRow> {
    list.into_iter()
        .map(|l| {
            let (hours, text) = sla_age(l.case.opened_at, now);
            let bucket = AgeBucket::of(l.case.opened_at, now).as_str();
            CaseRow {
                listing: l,
                sla_age_hours: hours,
                sla_age: text,
                age_bucket: bucket,
            }
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct CasePage {
    pub items: Vec<CaseRow>,
    pub limit: i64,
    pub offset: i64,
}

/// `GET /api/cases?kind=&status=&customer=&owner=&limit=&offset=`: oldest first.
pub async fn api_cases(
    State(agent): State<Arc<Agent>>,
    Allowed(user, _): Allowed<CasesRead>,
    ApiQuery(q): ApiQuery<CaseQuery>,
) -> AppResult<Json<CasePage>> {
    let f = case_filter(&q, &user.name)?;
    let list = agent.store.case_list(&f).await.map_err(store_err)?;
    Ok(Json(CasePage {
        items: case_rows(list, agent.now()),
        limit: f.limit.unwrap_or(200),
        offset: f.offset,
    }))
}

/// `POST /api/cases/{id}/take`: the caller owns the case and it is in progress.
pub async fn api_take_case(
    State(store): State<Store>,
    Allowed(user, _): Allowed<QueueDecide>,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<crate::cases::CaseStep>> {
    let case = store
        .take_case(&id, &user.name, &user.name)
        .await
        .map_err(store_err)?;
    Ok(Json(case.into()))
}

// ---------------------------------------------------------------------------------------
// Promises

#[derive(Debug, Default, Deserialize)]
pub struct PromiseQuery {
    /// `today`, `week`, `open` (default), `broken`, `kept`, `partial`, `cancelled`, `all`.
    pub due: Option<String>,
    /// The viewer's IANA time zone for "today" (default UTC).
    pub tz: Option<String>,
    pub customer: Option<String>,
}

/// One promise on the tracker.
#[derive(Debug, Serialize)]
pub struct PromiseRow {
    #[serde(flatten)]
    pub promise: PromiseToPay,
    /// How it stands now (`partially_kept` is derived from payments, never stored).
    pub standing: PromiseStanding,
    /// Received towards it in its window, as a decimal amount of its currency.
    pub received: String,
    /// The promised date plus the grace period: broken if not kept by then.
    pub deadline: NaiveDate,
    /// What follows if it is not kept.
    pub follow_up: &'static str,
}

#[derive(Debug, Serialize)]
pub struct PromiseBoard {
    /// The viewer's today, in `tz`.
    pub today: NaiveDate,
    pub tz: String,
    pub due: String,
    pub grace_days: i64,
    pub items: Vec<PromiseRow>,
    /// Every promise by standing (whatever `due` shows).
    pub counts: BTreeMap<&'static str, usize>,
}

fn received_text(minor: i128, p: &PromiseToPay) -> String {
    i64::try_from(minor).map_or_else(
        |_| format!("{minor} minor units"),
        |m| Money::new(m, p.amount.currency).amount_string(),
    )
}

/// The promise tracker as of `today` (the viewer's date): every promise judged, then
/// those `due` selects, soonest promised date first.
pub(crate) async fn promise_board(
    store: &Store,
    due: Option<&str>,
    tz: Tz,
    today: NaiveDate,
    customer: Option<&str>,
) -> AppResult<PromiseBoard> {
    let due = due
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .unwrap_or("open");
    if !matches!(
        due,
        "today" | "week" | "open" | "broken" | "kept" | "partial" | "cancelled" | "all"
    ) {
        return Err(AppError::BadRequest(format!(
            "due: '{due}' is not one of today, week, open, broken, kept, partial, cancelled, all"
        )));
    }
    let promises = store.promises(customer).await?;
    let payments = store.payments(customer).await?;
    let (week_start, week_end) = week_of(today);
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for s in PromiseStanding::ALL {
        counts.insert(s.as_str(), 0);
    }
    let mut items = Vec::new();
    for p in promises {
        let j = promise_standing(&p, &payments, today, PROMISE_GRACE_DAYS);
        *counts.entry(j.standing.as_str()).or_default() += 1;
        let open = j.standing == PromiseStanding::Open;
        let keep = match due {
            "today" => open && p.promised_date == today,
            "week" => open && p.promised_date >= week_start && p.promised_date <= week_end,
            "open" => open,
            "broken" => j.standing == PromiseStanding::Broken,
            "kept" => j.standing == PromiseStanding::Kept,
            "partial" => j.standing == PromiseStanding::PartiallyKept,
            "cancelled" => j.standing == PromiseStanding::Cancelled,
            _ => true,
        };
        if !keep {
            continue;
        }
        let deadline = p
            .promised_date
            .checked_add_signed(Duration::days(PROMISE_GRACE_DAYS))
            .unwrap_or(p.promised_date);
        let follow_up = match j.standing {
            PromiseStanding::Open => {
                "if unpaid by the deadline: the broken-promise follow-up step of the account's procedure"
            }
            PromiseStanding::Broken | PromiseStanding::PartiallyKept => {
                "the broken-promise follow-up step of the account's procedure"
            }
            PromiseStanding::Kept | PromiseStanding::Cancelled => "none",
        };
        items.push(PromiseRow {
            received: received_text(j.received_minor, &p),
            standing: j.standing,
            deadline,
            follow_up,
            promise: p,
        });
    }
    items.sort_by(|a, b| {
        (a.promise.promised_date, &a.promise.id).cmp(&(b.promise.promised_date, &b.promise.id))
    });
    Ok(PromiseBoard {
        today,
        tz: tz.name().to_string(),
        due: due.to_string(),
        grace_days: PROMISE_GRACE_DAYS,
        items,
        counts,
    })
}

/// `GET /api/promises?due=today|week|open|broken|kept|partial|cancelled|all&tz=&customer=`.
pub async fn api_promises(
    State(agent): State<Arc<Agent>>,
    _: Allowed<crate::auth::LedgerRead>,
    ApiQuery(q): ApiQuery<PromiseQuery>,
) -> AppResult<Json<PromiseBoard>> {
    let tz = zone(q.tz.as_deref())?;
    let today = agent.now().with_timezone(&tz).date_naive();
    let customer = q.customer.as_deref().filter(|c| !c.trim().is_empty());
    Ok(Json(
        promise_board(&agent.store, q.due.as_deref(), tz, today, customer).await?,
    ))
}

// ---------------------------------------------------------------------------------------
// Today

#[derive(Debug, Default, Deserialize)]
pub struct TodayQuery {
    /// The viewer's IANA time zone (default UTC).
    pub tz: Option<String>,
}

/// One call to make, with what the collector needs beside the script.
#[derive(Debug, Serialize)]
pub struct CallCard {
    #[serde(flatten)]
    pub task: CallTask,
    pub customer_name: String,
    /// The debtor's local time now.
    pub local_time: String,
    /// Per currency: total open, oldest days past due, and the buckets.
    pub aging: Vec<Value>,
    pub open_promises: Vec<PromiseToPay>,
}

#[derive(Debug, Serialize)]
pub struct TodayView {
    pub today: NaiveDate,
    pub tz: String,
    pub calls: Vec<CallCard>,
    /// Open tasks the viewer may see, due by the end of their today.
    pub tasks_due: Vec<Task>,
    pub promises_due: Vec<PromiseRow>,
}

pub(crate) async fn today_view(agent: &Agent, who: &TaskActor, tz: Tz) -> AppResult<TodayView> {
    let store = &agent.store;
    let now = agent.now();
    let today = now.with_timezone(&tz).date_naive();
    let mut calls = Vec::new();
    let day_end = end_of_day(today, tz);
    // Calls not to be made before a later day wait for that day's page.
    let due_calls = store
        .call_tasks(None, true)
        .await?
        .into_iter()
        .filter(|t| t.not_before.is_none_or(|nb| nb <= day_end))
        .take(MAX_CALLS);
    for task in due_calls {
        let customer = store.customer(&task.customer_id).await?;
        let invoices = store.invoices(Some(&task.customer_id)).await?;
        let payments = store.payments(Some(&task.customer_id)).await?;
        let report = aging_report(&invoices, &payments, now.date_naive(), 90)?;
        let aging = report
            .rows
            .iter()
            .map(|r| {
                json!({
                    "currency": r.currency.as_str(),
                    "total": Money::new(r.total, r.currency).to_string(),
                    "oldest_days_past_due": r.oldest_days_past_due,
                    "buckets": argent_core::AgingBucket::ALL.iter().map(|b| json!({"bucket": b.label(), "amount": Money::new(r.buckets[b.index()], r.currency).to_string()})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let open_promises = store
            .promises(Some(&task.customer_id))
            .await?
            .into_iter()
            .filter(|p| {
                promise_standing(p, &payments, today, PROMISE_GRACE_DAYS).standing
                    == PromiseStanding::Open
            })
            .collect();
        calls.push(CallCard {
            customer_name: customer.name.clone(),
            local_time: now
                .with_timezone(&customer.time_zone)
                .format("%a %H:%M %Z")
                .to_string(),
            aging,
            open_promises,
            task,
        });
    }
    let mut f = TaskFilter::open();
    f.due_before = Some(day_end);
    f.visible_to = Some(who.clone());
    let tasks_due = store.tasks(&f).await?;
    let promises_due = promise_board(store, Some("today"), tz, today, None)
        .await?
        .items;
    Ok(TodayView {
        today,
        tz: tz.name().to_string(),
        calls,
        tasks_due,
        promises_due,
    })
}

/// `GET /api/today?tz=`: open call tasks with their scripts, the accounts' aging and open
/// promises; tasks due today; promises due today.
pub async fn api_today(
    State(agent): State<Arc<Agent>>,
    Allowed(user, _): Allowed<TasksRead>,
    ApiQuery(q): ApiQuery<TodayQuery>,
) -> AppResult<Json<TodayView>> {
    let who = actor_for(&user.name, user.role)?;
    let tz = zone(q.tz.as_deref())?;
    Ok(Json(today_view(&agent, &who, tz).await?))
}

/// How a call went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    /// Reached; the customer promised to pay.
    Promise,
    /// Reached; the customer disputes the debt.
    Dispute,
    /// Reached; the customer cannot pay (hardship).
    Hardship,
    /// Reached; the customer refused to pay.
    Refused,
    NotReached,
    WrongNumber,
}

impl CallResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CallResult::Promise => "promise",
            CallResult::Dispute => "dispute",
            CallResult::Hardship => "hardship",
            CallResult::Refused => "refused",
            CallResult::NotReached => "not_reached",
            CallResult::WrongNumber => "wrong_number",
        }
    }

    /// Whether the collector spoke with the customer (a conversation, for Regulation F).
    pub fn reached(self) -> bool {
        !matches!(self, CallResult::NotReached | CallResult::WrongNumber)
    }
}

/// What the collector records for a call (form or JSON).
#[derive(Debug, Deserialize)]
pub struct OutcomeBody {
    pub outcome: CallResult,
    /// For a promise: the amount (e.g. `120.00`), its currency and date.
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub promised_date: Option<String>,
    /// Invoices concerned (comma-separated), for a promise or a dispute.
    #[serde(default)]
    pub invoices: Option<String>,
    /// For a dispute or hardship: what the customer said.
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// What recording a call outcome did.
#[derive(Debug, Serialize)]
pub struct OutcomeResult {
    pub call_task_id: String,
    pub customer_id: String,
    pub outcome: CallResult,
    /// Logged as a conversation (reached) or an attempt.
    pub conversation: bool,
    /// The tool call it became (promise, dispute, hardship), judged by policy.
    pub action: Option<CallOutcome>,
    /// A follow-up task it created (wrong number: find the right one).
    pub follow_up_task: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The tool call (name, JSON arguments) an outcome becomes, if any.
fn outcome_tool(b: &OutcomeBody, customer_id: &str) -> AppResult<Option<(&'static str, String)>> {
    let invoices: Vec<String> = nonempty(&b.invoices)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let need = |v: &Option<String>, field: &str| {
        nonempty(v).map(str::to_string).ok_or_else(|| {
            AppError::Unprocessable(format!(
                "{field}: required for the outcome {}",
                b.outcome.as_str()
            ))
        })
    };
    Ok(match b.outcome {
        CallResult::Promise => {
            let mut args = json!({
                "customer_id": customer_id,
                "amount": need(&b.amount, "amount")?,
                "currency": need(&b.currency, "currency")?.to_uppercase(),
                "promised_date": need(&b.promised_date, "promised_date")?,
                "invoice_numbers": invoices,
            });
            if let Some(n) = nonempty(&b.note) {
                args["note"] = json!(n);
            }
            Some(("log_promise", args.to_string()))
        }
        CallResult::Dispute | CallResult::Hardship => {
            let kind = if b.outcome == CallResult::Dispute {
                "dispute"
            } else {
                "hardship"
            };
            Some((
                "open_case",
                json!({
                    "customer_id": customer_id,
                    "kind": kind,
                    "invoice_numbers": invoices,
                    "summary": need(&b.summary, "summary")?,
                })
                .to_string(),
            ))
        }
        _ => None,
    })
}

/// Records how call task `task_id` went, as `user`: a promise, dispute or hardship claim
/// becomes the agent's tool call through policy (an invalid one is 422 and nothing is
/// logged); then the call is logged (conversation when reached) and the task is done;
/// a wrong number leaves a follow-up task for the collectors.
pub(crate) async fn record_outcome(
    agent: &Agent,
    user_name: &str,
    user_role: UserRole,
    task_id: &str,
    b: &OutcomeBody,
) -> AppResult<OutcomeResult> {
    if let Some(n) = &b.note {
        check_text("note", n, false)?;
    }
    if let Some(s) = &b.summary {
        check_text("summary", s, false)?;
    }
    let store = &agent.store;
    let task = store
        .call_tasks(None, true)
        .await?
        .into_iter()
        .find(|t| t.id == task_id)
        .ok_or_else(|| AppError::NotFound(format!("open call task {task_id} not found")))?;
    let person = format!("{user_role}:{user_name}");
    let action = match outcome_tool(b, &task.customer_id)? {
        None => None,
        Some((tool, args)) => {
            let o = agent
                .act_for_person(
                    &person,
                    &task.customer_id,
                    &format!("call task {task_id}"),
                    tool,
                    &args,
                )
                .await?;
            if o.status == CallStatus::Invalid {
                let why = serde_json::from_str::<Value>(&o.model_text)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or(o.model_text.clone());
                return Err(AppError::Unprocessable(format!(
                    "the {} is not valid: {why}",
                    b.outcome.as_str()
                )));
            }
            Some(o)
        }
    };
    let now = agent.now();
    let note = match nonempty(&b.note) {
        Some(n) => format!("{}: {n}", b.outcome.as_str()),
        None => b.outcome.as_str().to_string(),
    };
    store
        .log_call(
            &format!("call-log:{task_id}"),
            &task.customer_id,
            now,
            b.outcome.reached(),
            Some(task_id),
            user_name,
            Some(&note),
        )
        .await?;
    let follow_up_task = if b.outcome == CallResult::WrongNumber {
        let customer = store.customer(&task.customer_id).await?;
        let t = store
            .create_task(&NewTask {
                id: format!("TASK-WRONG-{task_id}"),
                kind: TaskKind::FollowUp,
                customer_id: task.customer_id.clone(),
                owner_role: Role::Collector,
                assignee: None,
                title: format!("Wrong number: {}", customer.name),
                body: format!(
                    "The number called for call task {task_id} was wrong. Find the right one before calling again.{}",
                    nonempty(&b.note).map(|n| format!(" Note: {n}")).unwrap_or_default()
                ),
                due_at: Some(argent_core::task::escalation_due(
                    argent_core::Urgency::Normal,
                    now,
                    customer.time_zone,
                )),
                source: task_id.to_string(),
                created_at: now,
                actor: user_name.to_string(),
            })
            .await?;
        Some(t.id)
    } else {
        None
    };
    Ok(OutcomeResult {
        call_task_id: task_id.to_string(),
        customer_id: task.customer_id,
        outcome: b.outcome,
        conversation: b.outcome.reached(),
        action,
        follow_up_task,
    })
}

/// `POST /api/calls/{id}/outcome {outcome, amount?, currency?, promised_date?, invoices?,
/// summary?, note?}`.
pub async fn api_call_outcome(
    State(agent): State<Arc<Agent>>,
    Allowed(user, _): Allowed<CallsWork>,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<OutcomeBody>,
) -> AppResult<Json<OutcomeResult>> {
    Ok(Json(
        record_outcome(&agent, &user.name, user.role, &id, &b).await?,
    ))
}

// ---------------------------------------------------------------------------------------
// Managers' counts

#[derive(Debug, Serialize)]
pub struct QueueCounts {
    /// Open and in-progress tasks per role and status, with how many are overdue.
    pub tasks: Vec<TaskCount>,
    /// Active cases per kind and status, by SLA age bucket (`<1d`, `1-3d`, `3-7d`, `>=7d`).
    pub cases: Vec<CaseCount>,
    /// Promises by standing, as of the viewer's today.
    pub promises: BTreeMap<&'static str, usize>,
}

#[derive(Debug, Serialize)]
pub struct CaseCount {
    pub kind: CaseKind,
    pub status: CaseStatus,
    pub total: usize,
    pub by_age: BTreeMap<&'static str, usize>,
}

pub(crate) async fn queue_counts(agent: &Agent, tz: Tz) -> AppResult<QueueCounts> {
    let store = &agent.store;
    let now = agent.now();
    let tasks = store.task_counts(now).await?;
    let mut f = CaseFilter {
        statuses: vec![
            CaseStatus::Open,
            CaseStatus::InProgress,
            CaseStatus::VerificationSent,
        ],
        limit: Some(5000),
        ..CaseFilter::default()
    };
    let mut cases: BTreeMap<(&'static str, &'static str), CaseCount> = BTreeMap::new();
    loop {
        let page = store.case_list(&f).await.map_err(store_err)?;
        let n = page.len() as i64;
        for l in page {
            let c = cases
                .entry((l.case.kind.as_str(), l.case.status.as_str()))
                .or_insert_with(|| CaseCount {
                    kind: l.case.kind,
                    status: l.case.status,
                    total: 0,
                    by_age: AgeBucket::ALL.iter().map(|b| (b.as_str(), 0)).collect(),
                });
            c.total += 1;
            *c.by_age
                .entry(AgeBucket::of(l.case.opened_at, now).as_str())
                .or_default() += 1;
        }
        if n < 5000 {
            break;
        }
        f.offset += n;
    }
    let today = now.with_timezone(&tz).date_naive();
    let promises = promise_board(store, Some("all"), tz, today, None)
        .await?
        .counts;
    Ok(QueueCounts {
        tasks,
        cases: cases.into_values().collect(),
        promises,
    })
}

/// `GET /api/queues?tz=`: the managers' counts.
pub async fn api_counts(
    State(agent): State<Arc<Agent>>,
    _: Allowed<crate::auth::DashboardRead>,
    ApiQuery(q): ApiQuery<TodayQuery>,
) -> AppResult<Json<QueueCounts>> {
    let tz = zone(q.tz.as_deref())?;
    Ok(Json(queue_counts(&agent, tz).await?))
}
