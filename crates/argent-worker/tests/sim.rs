#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! `argent demo`'s simulated days on both backends (SQLite, and PostgreSQL when
//! ARGENT_TEST_POSTGRES_URL is set): the scheduler and the worker contact overdue accounts
//! through the procedures, the simulated debtors' answers go through the agent and the
//! ledger, one contact per account per step, the same seed tells the same story, and the
//! audit trail stays intact.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use argent_agent::tick::active_procedures;
use argent_agent::{Agent, AgentConfig, Clock, DocumentSet, ManualClock, OfflineModel};
use argent_core::demo::{DemoConfig, generate};
use argent_procedure::StepWork;
use argent_store::testkit::TestStore;
use argent_store::{AuditVerification, Store, WorkFilter};
use argent_worker::sim::{SimConfig, SimReport, simulate};
use chrono::NaiveDate;

const START: &str = "2026-11-02";

async fn run(ts: &TestStore, days: u32, seed: u64, dir: &std::path::Path) -> SimReport {
    let store = &ts.store;
    let as_of: NaiveDate = "2026-11-01".parse().unwrap();
    let portfolio = generate(&DemoConfig {
        customers: 24,
        as_of,
        ..Default::default()
    });
    store.import_portfolio(&portfolio, "test").await.unwrap();
    let docs = DocumentSet::from_dirs(&common::repo("prompts"), &common::repo("policies")).unwrap();
    store.seed_documents(&docs.entries(), "seed").await.unwrap();
    let start: NaiveDate = START.parse().unwrap();
    let clock = ManualClock::leak(start.and_hms_opt(0, 0, 0).unwrap().and_utc());
    let agent = Arc::new(
        Agent::from_documents(
            store.clone(),
            Arc::new(OfflineModel),
            &docs,
            AgentConfig {
                clock: Clock::Manual(clock),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let set = active_procedures(store).await.unwrap();
    let cfg = SimConfig {
        days,
        start,
        seed,
        hours: vec![0, 3, 6, 9, 12, 15, 18, 21],
        outbox_dir: dir.to_path_buf(),
        from: "ar@argent.example".into(),
        review_hour: 15,
        unreviewed_last_days: 0,
        concurrency: 4,
    };
    let mut lines = 0;
    let report = simulate(store, agent, clock, &set, &cfg, |_, _| lines += 1)
        .await
        .unwrap();
    assert_eq!(lines, days, "one progress line per day");
    report
}

/// (customer, procedure, step, cycle, promise) → work items.
async fn items_per_step(store: &Store) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for w in store
        .work_items(&WorkFilter {
            kind: Some("procedure_step"),
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
    {
        let s: StepWork = serde_json::from_value(w.payload.clone()).unwrap();
        *out.entry(format!(
            "{}|{}|{}|{}|{}",
            w.customer_id,
            s.procedure,
            s.step,
            s.cycle,
            s.promise_id.unwrap_or_default()
        ))
        .or_default() += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_days_run_the_desk_through_the_product() {
    for ts in TestStore::all().await.unwrap() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(&ts, 45, 11, dir.path()).await;
        let label = ts.label;

        // The procedures ran: steps done, emails delivered (as files), nothing failed.
        let done: usize = r.steps.values().map(|s| s.done).sum();
        assert!(done >= 10, "{label}: steps done {done}: {r:#?}");
        assert!(r.emails_delivered >= 5, "{label}: {r:#?}");
        assert_eq!(r.worker_failures, 0, "{label}: {r:#?}");
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(
            files, r.emails_delivered,
            "{label}: one .eml per email delivered"
        );
        let per_segment: usize = r.segments.values().map(|s| s.emails).sum();
        assert!(
            per_segment <= r.emails_delivered && per_segment > 0,
            "{label}: accounts reached per day never exceed the emails: {r:#?}"
        );
        // One work item per account per step (per cycle, per promise): never a second.
        let items = items_per_step(&ts.store).await;
        assert!(items.values().all(|n| *n == 1), "{label}: {items:#?}");
        // Steps of several rungs ran, not only the first.
        let rungs: std::collections::BTreeSet<&str> = r
            .steps
            .iter()
            .filter(|(_, s)| s.done > 0)
            .map(|(k, _)| k.split('/').nth(1).unwrap())
            .collect();
        for rung in ["pre_due_reminder", "overdue_notice"] {
            assert!(rungs.contains(rung), "{label}: {rung} never ran: {rungs:?}");
        }
        // The debtors answered through the product: payments landed in the ledger (the
        // simulation's payments are the only ones dated after day 0), promises were logged
        // by the agent from their replies.
        let start: NaiveDate = START.parse().unwrap();
        let payments = ts.store.payments(None).await.unwrap();
        let booked = payments.iter().filter(|p| p.received_on >= start).count();
        let reported: usize = r
            .segments
            .values()
            .map(|s| s.paid.values().filter(|m| **m > 0).count())
            .sum();
        assert!(booked > 0 && reported > 0, "{label}: {r:#?}");
        let replies: usize = r.segments.values().map(|s| s.replies).sum();
        assert!(replies > 0, "{label}: {r:#?}");
        // New invoices every 30 days, and DSO for each currency at both ends.
        assert!(r.invoices_issued > 0, "{label}");
        assert!(!r.dso.is_empty(), "{label}");
        assert!(
            r.dso.iter().all(|d| d.start.is_some() && d.end.is_some()),
            "{label}: {:?}",
            r.dso
        );
        match ts.store.audit_verify().await.unwrap() {
            AuditVerification::Intact { .. } => {}
            other => panic!("{label}: {other:?}"),
        }
        ts.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_tells_the_same_story_and_another_seed_another() {
    let ts = TestStore::sqlite().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = run(&ts, 20, 3, dir.path()).await;
    let ts2 = TestStore::sqlite().await.unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let b = run(&ts2, 20, 3, dir2.path()).await;
    assert_eq!(a, b);
    let ts3 = TestStore::sqlite().await.unwrap();
    let dir3 = tempfile::tempdir().unwrap();
    let c = run(&ts3, 20, 4, dir3.path()).await;
    assert_ne!(
        a.segments, c.segments,
        "the debtors' answers depend on the seed"
    );
}
