//! Conformance tests for the dashboard's daily snapshots and the agent-operations reads,
//! on SQLite and (when ARGENT_TEST_POSTGRES_URL is set) PostgreSQL.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use argent_core::analytics::{Dashboard, DashboardInput, dashboard};
use argent_store::testkit::{TestStore, raw_execute, two_consumer_portfolio};
use argent_store::{
    ApprovalStatus, AuditFilter, NewApproval, NewAuditEvent, RunRecord, RunStatus, SnapshotTaken,
    Store, ToolCallStatus,
};
use chrono::{Duration, NaiveDate, Utc};
use serde_json::json;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

async fn figures(store: &Store, as_of: NaiveDate, period_days: u32) -> Dashboard {
    let ledger = store.ledger().await.unwrap();
    let promises = store.promises(None).await.unwrap();
    dashboard(&DashboardInput {
        customers: &ledger.customers,
        invoices: &ledger.invoices,
        payments: &ledger.payments,
        promises: &promises,
        as_of,
        period_days,
        promise_grace_days: 3,
    })
    .unwrap()
}

#[tokio::test]
async fn a_snapshot_is_taken_once_per_date_and_reads_back_exactly() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        s.import_portfolio(&two_consumer_portfolio(), "test")
            .await
            .unwrap();
        let as_of = d("2026-11-20");
        let dash = figures(s, as_of, 90).await;
        assert!(
            !dash.rows.is_empty() && !dash.totals.is_empty(),
            "{}",
            ts.label
        );
        let n = dash.rows.len() + dash.totals.len();
        assert!(!s.snapshot_taken(as_of).await.unwrap());
        assert_eq!(
            s.save_dashboard_snapshot(&dash, "scheduler").await.unwrap(),
            SnapshotTaken::Taken { rows: n },
            "{}",
            ts.label
        );
        assert!(s.snapshot_taken(as_of).await.unwrap());
        // Again, even with other figures for the same date: nothing is written.
        let other = figures(s, as_of, 30).await;
        assert_eq!(
            s.save_dashboard_snapshot(&other, "cli:someone")
                .await
                .unwrap(),
            SnapshotTaken::AlreadyTaken,
            "{}",
            ts.label
        );
        let got = s
            .dashboard_snapshots(d("2026-01-01"), d("2026-12-31"))
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "{}", ts.label);
        let day = &got[0];
        assert_eq!(day.as_of, as_of);
        assert_eq!(
            (day.period_days, day.grace_days),
            (90, 3),
            "the first taker's"
        );
        assert_eq!(day.taken_by, "scheduler");
        // Totals first, then the segments of each currency, exactly as computed (the
        // ratios are f64 and read back bit for bit).
        let mut want: Vec<_> = dash.totals.iter().chain(&dash.rows).cloned().collect();
        want.sort_by_key(|r| (r.currency, r.segment.map_or(0, |s| 1 + s as u8)));
        assert_eq!(day.rows, want, "{}", ts.label);
        // One audit event, by the first taker.
        let events = s
            .audit_events(&AuditFilter {
                kind: Some("dashboard.snapshot".into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "{}", ts.label);
        assert_eq!(events[0].actor, "scheduler");
        assert_eq!(events[0].payload["as_of"], "2026-11-20");
        assert_eq!(events[0].payload["rows"], n);
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn two_takers_at_once_store_one_snapshot() {
    for ts in TestStore::all().await.unwrap() {
        let s = ts.store.clone();
        s.import_portfolio(&two_consumer_portfolio(), "test")
            .await
            .unwrap();
        let other = ts.reopen().await.unwrap();
        let dash = figures(&s, d("2026-11-01"), 90).await;
        let (a, b) = tokio::join!(
            s.save_dashboard_snapshot(&dash, "one"),
            other.save_dashboard_snapshot(&dash, "two")
        );
        let taken = [a.unwrap(), b.unwrap()]
            .iter()
            .filter(|t| matches!(t, SnapshotTaken::Taken { .. }))
            .count();
        assert_eq!(taken, 1, "{}", ts.label);
        let got = s
            .dashboard_snapshots(d("2026-11-01"), d("2026-11-01"))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].rows.len(), dash.rows.len() + dash.totals.len());
        other.close().await;
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn snapshots_read_by_date_range_are_append_only_and_an_empty_day_is_kept() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        // No ledger yet: the day is recorded without rows, so it is not taken again.
        let empty = figures(s, d("2026-10-31"), 90).await;
        assert_eq!(
            s.save_dashboard_snapshot(&empty, "t").await.unwrap(),
            SnapshotTaken::Taken { rows: 0 }
        );
        s.import_portfolio(&two_consumer_portfolio(), "test")
            .await
            .unwrap();
        for day in ["2026-11-01", "2026-11-02", "2026-11-04"] {
            let dash = figures(s, d(day), 90).await;
            s.save_dashboard_snapshot(&dash, "t").await.unwrap();
        }
        let got = s
            .dashboard_snapshots(d("2026-11-01"), d("2026-11-03"))
            .await
            .unwrap();
        let dates: Vec<String> = got.iter().map(|g| g.as_of.to_string()).collect();
        assert_eq!(dates, ["2026-11-01", "2026-11-02"], "{}", ts.label);
        assert!(got.iter().all(|g| !g.rows.is_empty()));
        let all = s
            .dashboard_snapshots(d("2026-01-01"), d("2026-12-31"))
            .await
            .unwrap();
        assert_eq!(all.len(), 4);
        assert!(all[0].rows.is_empty(), "the empty day");
        for sql in [
            "UPDATE dashboard_snapshot_rows SET open_total = 0",
            "DELETE FROM dashboard_snapshot_rows",
            "UPDATE dashboard_snapshots SET taken_by = 'x'",
            "DELETE FROM dashboard_snapshots",
        ] {
            let err = raw_execute(s, sql).await.unwrap_err().to_string();
            assert!(err.contains("append-only"), "{}: {sql}: {err}", ts.label);
        }
        ts.cleanup().await;
    }
}

fn run(id: &str, tokens: i64) -> RunRecord {
    let t = Utc::now();
    RunRecord {
        id: id.into(),
        customer_id: "C1".into(),
        trigger: json!({"kind": "step", "step": "overdue_notice"}),
        status: RunStatus::Finished,
        step: 1,
        tokens,
        state: json!({}),
        model: "offline".into(),
        prompt_version: "p".into(),
        policy_version: "v".into(),
        created_at: t,
        updated_at: t,
        lease_owner: None,
        lease_until: None,
    }
}

fn approval(id: &str, call: &str) -> NewApproval {
    NewApproval {
        id: id.into(),
        call_id: call.into(),
        run_id: "R1".into(),
        customer_id: "C1".into(),
        tool: "propose_plan".into(),
        action: json!({}),
        decision: json!({"outcome": "needs_approval", "rules": []}),
        context: json!({}),
        priority: 1,
        amount_minor: 100,
        currency: "USD".into(),
        required_role: "manager".into(),
        bundle_of: None,
    }
}

#[tokio::test]
async fn the_operations_records_of_a_window() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let from = Utc::now() - Duration::minutes(5);
        s.create_run(&run("R1", 1_234)).await.unwrap();
        s.create_run(&run("R2", 66)).await.unwrap();
        let mut tx = s.begin().await.unwrap();
        for (call, status) in [
            ("R1/1/a", ToolCallStatus::Executed),
            ("R1/1/b", ToolCallStatus::Refused),
            ("R1/1/c", ToolCallStatus::Queued),
            ("R1/1/d", ToolCallStatus::Queued),
            ("R1/1/e", ToolCallStatus::Invalid),
        ] {
            tx.record_tool_call(call, "R1", "C1", "send_email", "{}", status)
                .await
                .unwrap();
        }
        tx.insert_approval(&approval("A1", "R1/1/c")).await.unwrap();
        tx.insert_approval(&approval("A2", "R1/1/d")).await.unwrap();
        tx.audit_append(NewAuditEvent {
            run_id: Some("R1".into()),
            customer_id: Some("C1".into()),
            actor: "policy".into(),
            kind: "refused".into(),
            payload: json!({"call_id": "R1/1/b", "tool": "send_email", "rules": ["us.quiet_hours", "no.threats"]}),
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let mut tx = s.begin().await.unwrap();
        tx.decide_approval("A1", ApprovalStatus::Approved, "ann", "manager", None, None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let to = Utc::now() + Duration::minutes(5);

        let rec = s.ops_records(from, to).await.unwrap();
        let mut tokens: Vec<i64> = rec.runs.iter().map(|r| r.tokens).collect();
        tokens.sort_unstable();
        assert_eq!(tokens, [66, 1_234], "{}", ts.label);
        assert_eq!(rec.calls.len(), 5);
        let held: Vec<&str> = rec
            .calls
            .iter()
            .filter(|c| c.held)
            .map(|c| c.status.as_str())
            .collect();
        assert_eq!(held, ["queued", "queued"], "{}", ts.label);
        assert!(rec.calls.iter().any(|c| c.status == "refused" && !c.held));
        assert_eq!(rec.refusals.len(), 1);
        assert_eq!(rec.refusals[0].rule_ids, ["us.quiet_hours", "no.threats"]);
        assert_eq!(rec.approvals.len(), 2);
        let a1 = rec
            .approvals
            .iter()
            .find(|a| a.decided_at.is_some())
            .unwrap();
        assert_eq!(
            (a1.decided_by.as_deref(), a1.approved),
            (Some("ann"), Some(true))
        );
        assert!(rec.approvals.iter().any(|a| a.approved.is_none()));

        // A window before everything: nothing, except nothing pending then either.
        let before = s
            .ops_records(from - Duration::days(2), from - Duration::days(1))
            .await
            .unwrap();
        assert!(before.runs.is_empty() && before.calls.is_empty());
        assert!(before.refusals.is_empty() && before.approvals.is_empty());
        // A window after everything: the runs and calls are gone, the pending approval
        // (created before it, not decided) is still there, the decided one is not.
        let after = s
            .ops_records(to + Duration::days(1), to + Duration::days(2))
            .await
            .unwrap();
        assert!(after.runs.is_empty() && after.calls.is_empty() && after.refusals.is_empty());
        assert_eq!(after.approvals.len(), 1, "{}", ts.label);
        assert_eq!(after.approvals[0].approved, None);
        ts.cleanup().await;
    }
}
