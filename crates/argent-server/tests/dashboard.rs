//! The manager dashboard's charts and agent operations, through the router as a browser
//! uses it: trend lines drawn (as SVG, on the server) from the daily snapshots stored, the
//! aging bars from the ledger, money with symbols and separators, days in the viewer's
//! zone, and the operations counted from stored runs, tool calls, refusals and approvals.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use argent_core::analytics::{Dashboard, DashboardInput, SegmentRow, dashboard};
use argent_core::format::format_minor;
use argent_core::{Currency, RiskSegment};
use argent_server::ServerConfig;
use argent_store::{ApprovalStatus, NewAuditEvent, RunRecord, RunStatus, SnapshotTaken};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::*;
use serde_json::json;

const USD: Currency = Currency::USD;

fn total(
    open: i64,
    dso: Option<f64>,
    add: Option<f64>,
    cei: Option<f64>,
    kept: usize,
    broken: usize,
) -> SegmentRow {
    SegmentRow {
        segment: None,
        currency: USD,
        customers: 2,
        buckets: [open, 0, 0, 0, 0],
        open_total: open,
        overdue_total: 0,
        receivables_begin: 0,
        credit_sales: 1,
        dso_days: dso,
        best_possible_dso_days: dso,
        cei_percent: cei,
        avg_days_delinquent: add,
        promises_kept: kept,
        promises_broken: broken,
        promises_open: 1,
        promised_kept_amount: 0,
        promised_broken_amount: 0,
        promised_open_amount: 0,
    }
}

fn snapshot(as_of: &str, t: SegmentRow) -> Dashboard {
    let mut seg = t.clone();
    seg.segment = Some(RiskSegment::Low);
    Dashboard {
        as_of: d(as_of),
        period_days: 90,
        period_start: d(as_of) - chrono::Duration::days(90),
        promise_grace_days: 3,
        bucket_labels: vec![],
        segments: vec![],
        rows: vec![seg],
        totals: vec![t],
    }
}

/// The `<svg …>…</svg>` whose id is `id`.
fn svg<'a>(body: &'a str, id: &str) -> &'a str {
    let at = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no chart {id}"));
    let start = body[..at].rfind("<svg").unwrap();
    let end = at + body[at..].find("</svg>").unwrap() + "</svg>".len();
    &body[start..end]
}

/// The `<tr data-date="…">` row of the table `table`.
fn row<'a>(body: &'a str, table: &str, date: &str) -> &'a str {
    let t = body
        .find(&format!("id=\"{table}\""))
        .unwrap_or_else(|| panic!("no table {table}"));
    let rest = &body[t..];
    let at = rest
        .find(&format!("<tr data-date=\"{date}\">"))
        .unwrap_or_else(|| panic!("no row {date} in {table}"));
    let end = rest[at..].find("</tr>").unwrap();
    &rest[at..at + end]
}

#[tokio::test]
async fn the_trends_are_drawn_from_the_stored_snapshots() {
    let f = fixture().await;
    let store = f.store();
    // A snapshot before the window, three in it (none on the 12th: a gap).
    for (day, t) in [
        (
            "2026-10-01",
            total(1, Some(99.0), Some(9.0), Some(9.0), 9, 9),
        ),
        (
            "2026-11-10",
            total(100_00, Some(41.5), Some(12.3), Some(72.5), 3, 1),
        ),
        (
            "2026-11-11",
            total(200_00, Some(40.0), Some(11.0), Some(75.0), 4, 1),
        ),
        (
            "2026-11-13",
            total(1_234_567, Some(38.5), None, Some(80.0), 5, 2),
        ),
    ] {
        assert!(matches!(
            store
                .save_dashboard_snapshot(&snapshot(day, t), "test")
                .await
                .unwrap(),
            SnapshotTaken::Taken { .. }
        ));
    }
    let mut mo = Browser::sign_in(&f.app, "mo").await;
    let page = mo.get("/dashboard?as_of=2026-11-13&trend_days=30").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;

    let days = svg(body, "trend-days-USD");
    assert!(days.contains("role=\"img\""));
    assert!(days.contains(
        "<title id=\"trend-days-USD-title\">DSO and average days delinquent, USD</title>"
    ));
    assert!(days.contains(">Snapshot date</text>") && days.contains(">Days</text>"));
    for v in [
        "2026-11-10 DSO: 41.5 days",
        "2026-11-11 DSO: 40.0 days",
        "2026-11-13 DSO: 38.5 days",
        "2026-11-10 Average days delinquent: 12.3 days",
        "2026-11-11 Average days delinquent: 11.0 days",
    ] {
        assert!(days.contains(&format!("<title>{v}</title>")), "{v}: {days}");
    }
    assert!(
        !days.contains("2026-11-13 Average days delinquent"),
        "no ADD that day: no point"
    );
    assert!(!days.contains("2026-11-12 DSO"), "no snapshot, no point");
    assert!(
        !body.contains("2026-10-01"),
        "a snapshot before the window is not drawn"
    );
    // The DSO line is broken at the 12th: two pieces, one M each.
    let dso_group = days
        .split("data-series=\"DSO\"")
        .nth(1)
        .unwrap()
        .split("</g>")
        .next()
        .unwrap();
    let path = dso_group
        .split("d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(path.matches('M').count(), 2, "{path}");
    assert_eq!(path.matches('L').count(), 1, "{path}");

    let cei = svg(body, "trend-cei-USD");
    assert!(cei.contains("<title>2026-11-11 CEI: 75.0%</title>"));
    assert!(cei.contains("<title>2026-11-13 CEI: 80.0%</title>"));
    let promises = svg(body, "trend-promises-USD");
    for v in [
        "2026-11-10 Kept: 3",
        "2026-11-13 Kept: 5",
        "2026-11-13 Broken: 2",
        "2026-11-11 Open: 1",
    ] {
        assert!(promises.contains(&format!("<title>{v}</title>")), "{v}");
    }

    // The same values in the table beside the charts, money with symbol and separators.
    let r = row(body, "trend-values-USD", "2026-11-13");
    assert!(
        r.contains("$12,345.67") && r.contains("38.5") && r.contains("80.0%"),
        "{r}"
    );
    let r = row(body, "trend-values-USD", "2026-11-10");
    assert!(
        r.contains("$100.00") && r.contains("41.5") && r.contains("72.5%"),
        "{r}"
    );
    let table = body.split("id=\"trend-values-USD\"").nth(1).unwrap();
    let table = table.split("</table>").next().unwrap();
    assert_eq!(table.matches("<tr data-date=").count(), 3, "{table}");
    assert!(!table.contains("2026-11-12"), "no snapshot, no row");

    // The aging bars are the ledger's figures as of the date, in the currency's money.
    let ledger = store.ledger().await.unwrap();
    let promises = store.promises(None).await.unwrap();
    let want = dashboard(&DashboardInput {
        customers: &ledger.customers,
        invoices: &ledger.invoices,
        payments: &ledger.payments,
        promises: &promises,
        as_of: d("2026-11-13"),
        period_days: 90,
        promise_grace_days: 3,
    })
    .unwrap();
    let usd = want.totals.iter().find(|t| t.currency == USD).unwrap();
    assert!(usd.open_total > 0);
    let aging = svg(body, "aging-USD");
    assert_eq!(aging.matches("<rect ").count(), 5);
    for (label, v) in want.bucket_labels.iter().zip(usd.buckets) {
        let text = format_minor(v, USD);
        assert!(
            aging.contains(&format!("<title>{label}: {text}</title>")),
            "{label} {text}"
        );
        assert!(aging.contains(&format!("data-value=\"{v}\"")));
    }
    let open = format_minor(usd.open_total, USD);
    assert!(open.starts_with('$') && open.contains(','), "{open}");
    assert!(body.contains(&open), "the totals table shows {open}");

    // Nothing the CSP would refuse, and the zone is said.
    assert!(!body.contains(" style=") && !body.contains("<script"));
    assert!(body.contains("Days and times are shown in UTC"));
}

#[tokio::test]
async fn without_snapshots_the_page_says_how_to_take_them() {
    let f = fixture().await;
    let mut mo = Browser::sign_in(&f.app, "mo").await;
    let page = mo.get("/dashboard?as_of=2026-11-13").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No snapshots in this window yet."));
    assert!(page.body.contains("argent snapshot"));
    assert!(!page.body.contains("id=\"trend-days-USD\""));
    assert!(
        page.body.contains("id=\"ops-no-price\""),
        "no price: says where to set one"
    );
}

fn run_at(id: &str, at: DateTime<Utc>, tokens: i64) -> RunRecord {
    RunRecord {
        id: id.into(),
        customer_id: "C-ANN".into(),
        trigger: json!({"kind": "step", "step": "overdue_notice"}),
        status: RunStatus::Finished,
        step: 1,
        tokens,
        state: json!({}),
        model: "offline".into(),
        prompt_version: "p".into(),
        policy_version: "v".into(),
        created_at: at,
        updated_at: at,
        lease_owner: None,
        lease_until: None,
    }
}

#[tokio::test]
async fn the_agent_operations_are_counted_per_day_in_the_viewers_zone() {
    let f = fixture_with(ServerConfig {
        token_price: Some("USD 0.01".parse().unwrap()),
        ..ServerConfig::default()
    })
    .await;
    let store = f.store();
    // 23:30 UTC on 3 March is 08:30 on 4 March in Tokyo.
    let at: DateTime<Utc> = "2031-03-03T23:30:00Z".parse().unwrap();
    store
        .create_run(&run_at("R-OPS", at, 250_000))
        .await
        .unwrap();
    let mut mo = Browser::sign_in(&f.app, "mo").await;

    let utc = mo.get("/dashboard?as_of=2031-03-04&ops_days=2").await;
    assert_eq!(utc.status, StatusCode::OK, "{}", utc.body);
    let r = row(&utc.body, "ops-days", "2031-03-03");
    assert!(r.contains("250,000") && r.contains("$2.50"), "{r}");
    assert!(r.contains("<td class=\"num\">1</td>"), "one run: {r}");
    let r = row(&utc.body, "ops-days", "2031-03-04");
    assert!(r.contains("$0.00") && !r.contains("250,000"), "{r}");
    assert!(utc.body.contains("$0.01 per 1k tokens"));
    let tokens = svg(&utc.body, "ops-tokens");
    assert!(
        tokens.contains("<title>03-03: 250,000 tokens</title>"),
        "{tokens}"
    );
    assert!(!utc.body.contains("id=\"ops-no-price\""));

    let tokyo = mo
        .get("/dashboard?as_of=2031-03-04&ops_days=2&tz=Asia/Tokyo")
        .await;
    assert_eq!(tokyo.status, StatusCode::OK);
    assert!(
        tokyo
            .body
            .contains("Days and times are shown in Asia/Tokyo")
    );
    let r = row(&tokyo.body, "ops-days", "2031-03-04");
    assert!(r.contains("250,000") && r.contains("$2.50"), "{r}");
    let r = row(&tokyo.body, "ops-days", "2031-03-03");
    assert!(!r.contains("250,000"), "{r}");

    let bad = mo.get("/dashboard?tz=Mars/Olympus").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("tz") && bad.body.contains("Mars/Olympus"));

    // Today (the wall clock's: the store stamps approvals and tool calls with it): the
    // fixture's eleven plans were held; mo approves one, a refusal names two rules.
    let mut tx = store.begin().await.unwrap();
    tx.decide_approval(
        &f.ann[0],
        ApprovalStatus::Approved,
        "mo",
        "manager",
        None,
        None,
    )
    .await
    .unwrap();
    tx.audit_append(NewAuditEvent {
        run_id: Some("R-OPS".into()),
        customer_id: Some("C-ANN".into()),
        actor: "policy".into(),
        kind: "refused".into(),
        payload: json!({"call_id": "x", "tool": "send_email", "rules": ["us.quiet_hours", "no.threats"]}),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let today = Utc::now().date_naive();
    let page = mo
        .get(&format!("/dashboard?as_of={today}&ops_days=2"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let b = &page.body;
    assert!(
        b.contains(&format!("held for approval {}", ANN_ITEMS + 1)),
        "{b}"
    );
    let reviewer = b.split("data-reviewer=\"mo\">").nth(1).unwrap();
    let reviewer = reviewer.split("</tr>").next().unwrap();
    assert!(
        reviewer.contains(">1</td>") && reviewer.contains("100%"),
        "{reviewer}"
    );
    let backlog = b.split("id=\"ops-backlog\">").nth(1).unwrap();
    let backlog = backlog.split("</li>").next().unwrap();
    assert!(
        backlog.contains(&format!(": {} (oldest waiting since", ANN_ITEMS)),
        "{backlog}"
    );
    assert!(b.contains("Time to decision (1 decided): p50 "));
    for rule in ["us.quiet_hours", "no.threats"] {
        let r = b
            .split(&format!("data-rule=\"{rule}\">"))
            .nth(1)
            .unwrap_or_else(|| panic!("{rule}"));
        assert!(r.split("</tr>").next().unwrap().contains(">1</td>"));
    }
}
