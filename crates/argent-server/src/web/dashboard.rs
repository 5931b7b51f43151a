//! The manager's dashboard: aging, DSO, CEI, average days delinquent and promises kept and
//! broken, by risk segment and per currency (figures from [`argent_core::analytics`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::Html;
use serde::Deserialize;
use serde_json::{Value, json};

use argent_agent::Agent;
use argent_core::analytics::{Dashboard, DashboardInput, SegmentRow, dashboard};
use argent_core::bounds;

use super::{Page, money, page};
use crate::auth::{Allowed, DashboardRead};
use crate::error::AppResult;
use crate::extract::ApiQuery;

/// Days after a promised date before an unpaid promise counts as broken.
pub const PROMISE_GRACE_DAYS: i64 = 3;

#[derive(Debug, Default, Deserialize)]
pub struct DashboardQuery {
    /// YYYY-MM-DD; default: the agent's today (UTC).
    pub as_of: Option<chrono::NaiveDate>,
    /// The period CEI, DSO and ADD are measured over (default 90 days).
    pub period_days: Option<i64>,
}

/// The dashboard's figures, from the store as it is now.
pub(crate) async fn figures(agent: &Agent, q: &DashboardQuery) -> AppResult<Dashboard> {
    let period_days = bounds::check_period_days("period_days", q.period_days.unwrap_or(90))?;
    let as_of = match q.as_of {
        Some(d) => bounds::check_date("as_of", d)?,
        None => agent.now().date_naive(),
    };
    let store = &agent.store;
    let ledger = store.ledger().await?;
    let customers = store.customers().await?;
    let promises = store.promises(None).await?;
    Ok(dashboard(&DashboardInput {
        customers: &customers,
        invoices: &ledger.invoices,
        payments: &ledger.payments,
        promises: &promises,
        as_of,
        period_days,
        promise_grace_days: PROMISE_GRACE_DAYS,
    })?)
}

/// `GET /api/dashboard?as_of=&period_days=`.
pub async fn api(
    State(agent): State<Arc<Agent>>,
    _: Allowed<DashboardRead>,
    ApiQuery(q): ApiQuery<DashboardQuery>,
) -> AppResult<Json<Dashboard>> {
    Ok(Json(figures(&agent, &q).await?))
}

fn days(d: Option<f64>) -> String {
    d.map_or_else(|| "—".to_string(), |d| format!("{d:.1}"))
}

fn row_view(r: &SegmentRow) -> Value {
    let cur = r.currency.as_str();
    json!({
        "segment": r.segment.map_or("all", |s| s.as_str()),
        "currency": cur,
        "customers": r.customers,
        "buckets": r.buckets.iter().map(|b| money(*b, cur)).collect::<Vec<_>>(),
        "open_total": money(r.open_total, cur),
        "overdue_total": money(r.overdue_total, cur),
        "credit_sales": money(r.credit_sales, cur),
        "dso": days(r.dso_days),
        "best_dso": days(r.best_possible_dso_days),
        "cei": r.cei_percent.map_or_else(|| "—".to_string(), |c| format!("{c:.1}%")),
        "add": days(r.avg_days_delinquent),
        "kept": r.promises_kept,
        "broken": r.promises_broken,
        "open": r.promises_open,
        "kept_amount": money(r.promised_kept_amount, cur),
        "broken_amount": money(r.promised_broken_amount, cur),
        "keep_rate": (r.promises_kept + r.promises_broken > 0).then(|| format!("{:.0}%", 100.0 * r.promises_kept as f64 / (r.promises_kept + r.promises_broken) as f64)),
    })
}

/// `GET /dashboard?as_of=&period_days=`.
pub async fn show(
    State(agent): State<Arc<Agent>>,
    Page(user, _): Page<DashboardRead>,
    ApiQuery(q): ApiQuery<DashboardQuery>,
) -> AppResult<Html<String>> {
    let d = figures(&agent, &q).await?;
    let work = crate::tasks::queue_counts(&agent, chrono_tz::UTC).await?;
    page(
        &user,
        "dashboard",
        "Dashboard",
        json!({
            "as_of": d.as_of.to_string(),
            "period_days": d.period_days,
            "period_start": d.period_start.to_string(),
            "grace": d.promise_grace_days,
            "bucket_labels": d.bucket_labels,
            "segments": d.segments.iter().map(|s| json!({"segment": s.segment.as_str(), "customers": s.customers})).collect::<Vec<_>>(),
            "rows": d.rows.iter().map(row_view).collect::<Vec<_>>(),
            "totals": d.totals.iter().map(row_view).collect::<Vec<_>>(),
            "work": work_view(&work),
        }),
    )
}

/// The work queues' counts for the dashboard (`crate::tasks::queue_counts`).
fn work_view(w: &crate::tasks::QueueCounts) -> Value {
    json!({
        "age_labels": argent_core::AgeBucket::ALL.iter().map(|b| b.as_str()).collect::<Vec<_>>(),
        "tasks": w.tasks.iter().map(|t| json!({"role": t.owner_role.as_str(), "status": t.status.as_str(), "count": t.count, "overdue": t.overdue})).collect::<Vec<_>>(),
        "cases": w.cases.iter().map(|c| json!({
            "kind": c.kind.as_str(),
            "status": c.status.as_str(),
            "total": c.total,
            "ages": argent_core::AgeBucket::ALL.iter().map(|b| c.by_age.get(b.as_str()).copied().unwrap_or(0)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "promises": w.promises.iter().map(|(k, v)| json!({"standing": k, "count": v})).collect::<Vec<_>>(),
    })
}
