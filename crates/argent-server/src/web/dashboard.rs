//! The manager's dashboard: aging, DSO, CEI, average days delinquent and promises kept and
//! broken, by risk segment and per currency (figures from [`argent_core::analytics`]);
//! their trends from the daily snapshots (`argent_store` `dashboard_snapshots`) drawn as
//! SVG on the server ([`super::svg`]); and the agent's operations
//! ([`argent_core::ops`]). Money is shown with the currency's symbol and thousands
//! separators ([`argent_core::format`]); days and times are the viewer's, in the IANA zone
//! of `?tz=` (default UTC, said on the page).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::Html;
use serde::Deserialize;
use serde_json::{Value, json};

use argent_agent::Agent;
use argent_core::analytics::{Dashboard, DashboardInput, SegmentRow, dashboard};
use argent_core::format::{format_count, format_minor, symbol};
use argent_core::ops::{AgentOps, OpsInput, agent_ops, human_secs};
use argent_core::{Currency, bounds};
use argent_store::SnapshotDay;
use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;

use super::svg::{Bar, Series, bar_chart, line_chart};
use super::{Page, page};
use crate::ServerConfig;
use crate::auth::{Allowed, DashboardRead};
use crate::error::AppResult;
use crate::extract::ApiQuery;

/// Days after a promised date before an unpaid promise counts as broken.
pub const PROMISE_GRACE_DAYS: i64 = argent_core::analytics::PROMISE_GRACE_DAYS;

/// Days of snapshots the trend charts show by default.
pub const TREND_DAYS: i64 = 90;

/// Days of agent operations shown by default.
pub const OPS_DAYS: i64 = 14;

#[derive(Debug, Default, Deserialize)]
pub struct DashboardQuery {
    /// YYYY-MM-DD; default: the agent's today (UTC).
    pub as_of: Option<chrono::NaiveDate>,
    /// The period CEI, DSO and ADD are measured over (default 90 days).
    pub period_days: Option<i64>,
}

/// The dashboard's figures, from the store as it is now.
pub(crate) async fn figures(agent: &Agent, q: &DashboardQuery) -> AppResult<Dashboard> {
    let period_days = bounds::check_period_days(
        "period_days",
        q.period_days
            .unwrap_or(i64::from(argent_core::analytics::DEFAULT_PERIOD_DAYS)),
    )?;
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
    let c = r.currency;
    let cur = c.as_str();
    let money = |minor: i64| format_minor(minor, c);
    json!({
        "segment": r.segment.map_or("all", |s| s.as_str()),
        "currency": cur,
        "customers": r.customers,
        "buckets": r.buckets.iter().map(|b| money(*b)).collect::<Vec<_>>(),
        "open_total": money(r.open_total),
        "overdue_total": money(r.overdue_total),
        "credit_sales": money(r.credit_sales),
        "dso": days(r.dso_days),
        "best_dso": days(r.best_possible_dso_days),
        "cei": r.cei_percent.map_or_else(|| "—".to_string(), |c| format!("{c:.1}%")),
        "add": days(r.avg_days_delinquent),
        "kept": r.promises_kept,
        "broken": r.promises_broken,
        "open": r.promises_open,
        "kept_amount": money(r.promised_kept_amount),
        "broken_amount": money(r.promised_broken_amount),
        "keep_rate": (r.promises_kept + r.promises_broken > 0).then(|| format!("{:.0}%", 100.0 * r.promises_kept as f64 / (r.promises_kept + r.promises_broken) as f64)),
    })
}

/// The page's query: the dashboard's, the windows of its trends and operations, and the
/// viewer's zone.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    /// YYYY-MM-DD; default: today in the viewer's zone.
    pub as_of: Option<NaiveDate>,
    pub period_days: Option<i64>,
    /// Days of snapshots the trend charts show, ending on `as_of` (default 90).
    pub trend_days: Option<i64>,
    /// Days of agent operations shown, ending on `as_of` (default 14).
    pub ops_days: Option<i64>,
    /// The viewer's IANA zone (default UTC): the operations' days and every time shown.
    pub tz: Option<String>,
}

/// `GET /dashboard?as_of=&period_days=&trend_days=&ops_days=&tz=`.
pub async fn show(
    State(agent): State<Arc<Agent>>,
    State(config): State<Arc<ServerConfig>>,
    Page(user, _): Page<DashboardRead>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> AppResult<Html<String>> {
    let tz = crate::tasks::zone(q.tz.as_deref())?;
    let now = agent.now();
    let as_of = match q.as_of {
        Some(d) => bounds::check_date("as_of", d)?,
        None => now.with_timezone(&tz).date_naive(),
    };
    let trend_days = bounds::check_period_days("trend_days", q.trend_days.unwrap_or(TREND_DAYS))?;
    let ops_days = bounds::check_period_days("ops_days", q.ops_days.unwrap_or(OPS_DAYS))?;
    let d = figures(
        &agent,
        &DashboardQuery {
            as_of: Some(as_of),
            period_days: q.period_days,
        },
    )
    .await?;
    let work = crate::tasks::queue_counts(&agent, tz).await?;
    let trend_from = first_day(as_of, trend_days);
    let snapshots = agent.store.dashboard_snapshots(trend_from, as_of).await?;
    let (ops, ops_at) = operations(&agent, as_of, ops_days, tz, &config).await?;
    page(
        &user,
        "dashboard",
        "Dashboard",
        json!({
            "as_of": d.as_of.to_string(),
            "period_days": d.period_days,
            "period_start": d.period_start.to_string(),
            "grace": d.promise_grace_days,
            "tz": tz.name(),
            "now": local_time(now, tz),
            "trend_days": trend_days,
            "ops_days": ops_days,
            "bucket_labels": d.bucket_labels,
            "segments": d.segments.iter().map(|s| json!({"segment": s.segment.as_str(), "customers": s.customers})).collect::<Vec<_>>(),
            "rows": d.rows.iter().map(row_view).collect::<Vec<_>>(),
            "totals": d.totals.iter().map(row_view).collect::<Vec<_>>(),
            "aging_charts": d.totals.iter().map(|t| aging_chart(t, &d.bucket_labels)).collect::<Vec<_>>(),
            "trends": trends_view(&snapshots, trend_from, as_of),
            "ops": ops_view(&ops, tz, &config, ops_at),
            "work": work_view(&work),
        }),
    )
}

/// The first day of a window of `days` days ending on `last`.
fn first_day(last: NaiveDate, days: u32) -> NaiveDate {
    last.checked_sub_days(Days::new(u64::from(days.saturating_sub(1))))
        .unwrap_or(NaiveDate::MIN)
}

/// The first instant of `day` in `tz` (the earliest, where midnight is ambiguous; the
/// first instant after a gap that skips midnight).
fn start_of_day(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    use chrono::TimeZone;
    let midnight = day.and_time(chrono::NaiveTime::MIN);
    (0..=3)
        .find_map(|h| {
            tz.from_local_datetime(&(midnight + chrono::Duration::hours(h)))
                .earliest()
        })
        .map_or_else(|| midnight.and_utc(), |t| t.with_timezone(&Utc))
}

/// `2026-03-01 14:05 Europe/London`.
fn local_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// An axis label for an amount in minor units: `$12k`, `£1.5M`, `€250`.
fn compact_money(minor: f64, c: Currency) -> String {
    let major = minor / 10f64.powi(i32::try_from(c.exponent()).unwrap_or(2));
    let (v, unit) = if major.abs() >= 1e9 {
        (major / 1e9, "B")
    } else if major.abs() >= 1e6 {
        (major / 1e6, "M")
    } else if major.abs() >= 1e3 {
        (major / 1e3, "k")
    } else {
        (major, "")
    };
    let num = if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    };
    match symbol(c) {
        Some(s) => format!("{s}{num}{unit}"),
        None => format!("{c} {num}{unit}"),
    }
}

/// The aging bar chart of one currency's total row, with the values for its table.
fn aging_chart(t: &SegmentRow, labels: &[String]) -> Value {
    let c = t.currency;
    let bars: Vec<Bar> = labels
        .iter()
        .zip(t.buckets)
        .map(|(l, v)| Bar {
            label: l.clone(),
            value: v,
            text: format_minor(v, c),
        })
        .collect();
    let svg = bar_chart(
        &format!("aging-{c}"),
        &format!("Receivables by aging bucket, {c}"),
        &format!(
            "Open receivables in {c} by days past due; total {}.",
            format_minor(t.open_total, c)
        ),
        "Days past due",
        &format!("Open receivables ({c})"),
        &bars,
        &|v| compact_money(v, c),
    );
    json!({
        "currency": c.as_str(),
        "svg": svg,
        "bars": bars.iter().map(|b| json!({"label": b.label, "amount": b.text})).collect::<Vec<_>>(),
    })
}

fn one_decimal(v: f64) -> String {
    format!("{v:.1}")
}

/// The trend charts, one set per currency seen in the snapshots of `from..=to`: DSO and
/// average days delinquent (days), CEI (percent), promises kept, broken and open (count).
/// The x axis has every day of the window; a day without a snapshot is a gap.
fn trends_view(snaps: &[SnapshotDay], from: NaiveDate, to: NaiveDate) -> Value {
    let mut currencies: Vec<Currency> = snaps
        .iter()
        .flat_map(|s| {
            s.rows
                .iter()
                .filter(|r| r.segment.is_none())
                .map(|r| r.currency)
        })
        .collect();
    currencies.sort();
    currencies.dedup();
    // Only days from the first snapshot on: a window longer than the history would draw
    // an empty stretch.
    let start = snaps.first().map_or(from, |s| s.as_of.max(from));
    let mut dates = Vec::new();
    let mut d = start;
    while d <= to {
        dates.push(d);
        match d.checked_add_days(Days::new(1)) {
            Some(n) => d = n,
            None => break,
        }
    }
    let labels: Vec<String> = dates.iter().map(NaiveDate::to_string).collect();
    let by_date: std::collections::HashMap<NaiveDate, &SnapshotDay> =
        snaps.iter().map(|s| (s.as_of, s)).collect();
    let per_currency: Vec<Value> = currencies
        .iter()
        .map(|&c| {
            let total = |d: &NaiveDate| -> Option<&SegmentRow> {
                by_date
                    .get(d)
                    .and_then(|s| s.rows.iter().find(|r| r.segment.is_none() && r.currency == c))
            };
            let series = |name: &str, f: &dyn Fn(&SegmentRow) -> Option<f64>| Series {
                name: name.to_string(),
                points: dates.iter().map(|d| total(d).and_then(f)).collect(),
            };
            let days = [
                series("DSO", &|r| r.dso_days),
                series("Average days delinquent", &|r| r.avg_days_delinquent),
            ];
            let cei = [series("CEI", &|r| r.cei_percent)];
            let promises = [
                series("Kept", &|r| Some(r.promises_kept as f64)),
                series("Broken", &|r| Some(r.promises_broken as f64)),
                series("Open", &|r| Some(r.promises_open as f64)),
            ];
            let range = format!("{} to {to}", labels.first().map_or("", String::as_str));
            let days_svg = line_chart(
                &format!("trend-days-{c}"),
                &format!("DSO and average days delinquent, {c}"),
                &format!("Daily snapshots from {range}: days sales outstanding and average days delinquent."),
                "Snapshot date",
                "Days",
                &labels,
                &days,
                &|v| format!("{v:.1} days"),
                &|v| format!("{v:.0}"),
            );
            let cei_svg = line_chart(
                &format!("trend-cei-{c}"),
                &format!("Collection effectiveness index, {c}"),
                &format!("Daily snapshots from {range}: CEI in percent (100 is everything collectable collected)."),
                "Snapshot date",
                "CEI (%)",
                &labels,
                &cei,
                &|v| format!("{v:.1}%"),
                &|v| format!("{v:.0}%"),
            );
            let promises_svg = line_chart(
                &format!("trend-promises-{c}"),
                &format!("Promises to pay kept, broken and open, {c}"),
                &format!("Daily snapshots from {range}: promises of the period by outcome."),
                "Snapshot date",
                "Promises",
                &labels,
                &promises,
                &|v| format!("{v:.0}"),
                &|v| if v.fract() == 0.0 { format!("{v:.0}") } else { one_decimal(v) },
            );
            let rows: Vec<Value> = dates
                .iter()
                .filter_map(|d| total(d).map(|r| (d, r)))
                .map(|(d, r)| {
                    let opt = |v: Option<f64>, unit: &str| {
                        v.map_or_else(|| "—".to_string(), |v| format!("{v:.1}{unit}"))
                    };
                    json!({
                        "date": d.to_string(),
                        "open": format_minor(r.open_total, c),
                        "overdue": format_minor(r.overdue_total, c),
                        "dso": opt(r.dso_days, ""),
                        "add": opt(r.avg_days_delinquent, ""),
                        "cei": opt(r.cei_percent, "%"),
                        "kept": r.promises_kept,
                        "broken": r.promises_broken,
                        "open_promises": r.promises_open,
                    })
                })
                .collect();
            json!({
                "currency": c.as_str(),
                "days_svg": days_svg,
                "cei_svg": cei_svg,
                "promises_svg": promises_svg,
                "rows": rows,
            })
        })
        .collect();
    json!({
        "snapshots": snaps.len(),
        "from": from.to_string(),
        "to": to.to_string(),
        "last_taken": snaps.last().map(|s| json!({"as_of": s.as_of.to_string(), "by": s.taken_by})),
        "currencies": per_currency,
    })
}

/// The agent's operations over the `days` days ending on `last` in `tz`, and the instant
/// its backlog is counted at: now, or the end of the window if that is earlier. (Now is the
/// wall clock's: the store stamps approvals and tool calls with it, whatever the agent's
/// clock says; see ARCHITECTURE, "two clocks".)
async fn operations(
    agent: &Agent,
    last: NaiveDate,
    days: u32,
    tz: Tz,
    config: &ServerConfig,
) -> AppResult<(AgentOps, DateTime<Utc>)> {
    let from = first_day(last, days);
    let start = start_of_day(from, tz);
    let end = last
        .checked_add_days(Days::new(1))
        .map_or(DateTime::<Utc>::MAX_UTC, |d| start_of_day(d, tz));
    let now = Utc::now().min(end - chrono::Duration::microseconds(1));
    let rec = agent.store.ops_records(start, end).await?;
    let ops = agent_ops(&OpsInput {
        runs: &rec.runs,
        calls: &rec.calls,
        refusals: &rec.refusals,
        approvals: &rec.approvals,
        from,
        to: last,
        tz,
        now,
        price: config.token_price,
    });
    Ok((ops, now))
}

fn ops_view(ops: &AgentOps, tz: Tz, config: &ServerConfig, at: DateTime<Utc>) -> Value {
    let cost = |m: Option<i64>| match (m, ops.price) {
        (Some(m), Some(p)) => format_minor(m, p.currency),
        _ => "—".to_string(),
    };
    let tokens_bars: Vec<Bar> = ops
        .days
        .iter()
        .map(|d| Bar {
            label: d.date.format("%m-%d").to_string(),
            value: d.tokens,
            text: format!(
                "{} tokens",
                format_count(u64::try_from(d.tokens).unwrap_or(0))
            ),
        })
        .collect();
    let runs_series = [
        Series {
            name: "Runs".into(),
            points: ops.days.iter().map(|d| Some(d.runs as f64)).collect(),
        },
        Series {
            name: "Executed".into(),
            points: ops.days.iter().map(|d| Some(d.executed as f64)).collect(),
        },
        Series {
            name: "Held for approval".into(),
            points: ops.days.iter().map(|d| Some(d.held as f64)).collect(),
        },
        Series {
            name: "Refused".into(),
            points: ops.days.iter().map(|d| Some(d.refused as f64)).collect(),
        },
    ];
    let labels: Vec<String> = ops.days.iter().map(|d| d.date.to_string()).collect();
    json!({
        "from": ops.from.to_string(),
        "to": ops.to.to_string(),
        "runs": format_count(ops.runs as u64),
        "executed": ops.executed,
        "held": ops.held,
        "refused": ops.refused,
        "invalid": ops.invalid,
        "tokens": format_count(u64::try_from(ops.tokens).unwrap_or(0)),
        "cost": cost(ops.cost_minor),
        "price": config.token_price.map(|p| p.describe()),
        "decided": ops.decided,
        "p50": ops.decision_p50_secs.map(human_secs),
        "p90": ops.decision_p90_secs.map(human_secs),
        "backlog_now": ops.backlog_now,
        "backlog_at": local_time(at, tz),
        "oldest_pending": ops.oldest_pending.map(|t| local_time(t, tz)),
        "days": ops.days.iter().rev().map(|d| json!({
            "date": d.date.to_string(),
            "runs": d.runs,
            "executed": d.executed,
            "held": d.held,
            "refused": d.refused,
            "invalid": d.invalid,
            "decided": d.decided,
            "backlog": d.backlog,
            "tokens": format_count(u64::try_from(d.tokens).unwrap_or(0)),
            "cost": cost(d.cost_minor),
        })).collect::<Vec<_>>(),
        "reviewers": ops.reviewers.iter().map(|r| json!({
            "reviewer": r.reviewer,
            "decided": r.decided,
            "approved": r.approved,
            "rate": format!("{:.0}%", r.approval_rate_percent),
        })).collect::<Vec<_>>(),
        "rules": ops.refused_by_rule.iter().map(|r| json!({"rule_id": r.rule_id, "refusals": r.refusals})).collect::<Vec<_>>(),
        "activity_svg": line_chart(
            "ops-activity",
            "Agent runs and tool calls per day",
            &format!("Per day in {}: runs, tool calls executed, held for approval and refused.", tz.name()),
            &format!("Day ({})", tz.name()),
            "Count",
            &labels,
            &runs_series,
            &|v| format!("{v:.0}"),
            &|v| if v.fract() == 0.0 { format!("{v:.0}") } else { one_decimal(v) },
        ),
        "tokens_svg": bar_chart(
            "ops-tokens",
            "Model tokens per day",
            &format!("Tokens used by the agent's runs per day in {}.", tz.name()),
            &format!("Day ({})", tz.name()),
            "Tokens",
            &tokens_bars,
            &|v| if v >= 1e6 { format!("{:.1}M", v / 1e6) } else if v >= 1e3 { format!("{:.0}k", v / 1e3) } else { format!("{v:.0}") },
        ),
    })
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
