#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The scheduler's tick on both backends (SQLite, and PostgreSQL when
//! ARGENT_TEST_POSTGRES_URL is set): two ticks at once enqueue each step once; a broken
//! promise is marked once and fires its follow-up on the right day; disputes, hardship
//! cases and open promises pause an account and it resumes when they end.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use argent_agent::DocumentSet;
use argent_agent::tick::{active_procedures, tick};
use argent_core::{Case, CaseKind, CaseStatus, Currency, Money, PromiseStatus, PromiseToPay};
use argent_procedure::{PauseReason, Status, StepWork};
use argent_store::testkit::{TestStore, consumer_portfolio};
use argent_store::{AuditFilter, Store, WorkFilter, WorkItem};
use chrono::{DateTime, Duration, NaiveDate, Utc};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

/// A store with `n` consumers (open invoice due 2026-10-31, low risk: the gentle ladder)
/// and the shipped documents seeded.
async fn setup(ts: &TestStore, n: usize) {
    ts.store
        .import_portfolio(&consumer_portfolio(n), "test")
        .await
        .unwrap();
    let docs = DocumentSet::from_dirs(&repo("prompts"), &repo("policies")).unwrap();
    assert!(docs.procedures.contains_key("gentle"));
    ts.store
        .seed_documents(&docs.entries(), "seed")
        .await
        .unwrap();
}

/// 16:00 UTC on `day`: inside business hours in every US zone.
fn at(day: &str) -> DateTime<Utc> {
    format!("{day}T16:00:00Z").parse().unwrap()
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

async fn steps(store: &Store) -> Vec<(WorkItem, StepWork)> {
    store
        .work_items(&WorkFilter {
            kind: Some("procedure_step"),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|w| {
            let s: StepWork = serde_json::from_value(w.payload.clone()).unwrap();
            (w, s)
        })
        .collect()
}

async fn audit_count(store: &Store, kind: &str) -> usize {
    store
        .audit_events(&AuditFilter {
            kind: Some(kind.into()),
            limit: Some(100_000),
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn two_concurrent_ticks_enqueue_each_step_once() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        setup(&ts, 40).await;
        let set = active_procedures(&ts.store).await.unwrap();
        let other = ts.reopen().await.unwrap();
        let now = at("2026-11-10");
        // Small batches, so the two ticks interleave page by page.
        let (a, b) = tokio::join!(tick(&ts.store, &set, now, 7), tick(&other, &set, now, 7));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.errors.is_empty() && b.errors.is_empty(), "{label}");
        // Each plans what the other has not yet written (so some steps twice).
        assert!(a.due + b.due >= 40, "{label}");
        assert_eq!(
            a.enqueued + b.enqueued,
            40,
            "{label}: each step enqueued once"
        );
        let items = steps(&ts.store).await;
        assert_eq!(items.len(), 40, "{label}");
        let customers: BTreeSet<&str> = items.iter().map(|(w, _)| w.customer_id.as_str()).collect();
        assert_eq!(customers.len(), 40, "{label}: one step per account");
        for (w, s) in &items {
            assert_eq!(s.procedure, "gentle", "{label}");
            assert_eq!(s.step, "overdue_notice", "{label}");
            assert_eq!(s.cycle, 1, "{label}");
            assert_eq!(s.invoices.len(), 1, "{label}: the one overdue invoice");
            assert_eq!(w.dedupe_key, s.dedupe_key(&w.customer_id));
        }
        assert_eq!(
            audit_count(&ts.store, "procedure.step_enqueued").await,
            40,
            "{label}: audited once each"
        );
        // Again, later the same day: nothing new (the next step waits for its gap).
        let again = tick(&ts.store, &set, now + Duration::hours(2), 500)
            .await
            .unwrap();
        assert_eq!(again.due, 0, "{label}");
        assert_eq!(steps(&ts.store).await.len(), 40, "{label}");
        let st = ts.store.procedure_state("C-00001").await.unwrap().unwrap();
        assert_eq!(st.status, Status::Active, "{label}");
        assert_eq!(
            st.current_step.as_deref(),
            Some("overdue_notice"),
            "{label}"
        );
        assert_eq!(st.next_step.as_deref(), Some("second_notice"), "{label}");
        other.close().await;
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_broken_promise_is_marked_once_and_fires_its_follow_up_on_the_right_day() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        setup(&ts, 3).await;
        let set = active_procedures(&ts.store).await.unwrap();
        tick(&ts.store, &set, at("2026-11-10"), 100).await.unwrap();
        // C-00001 promises 600.00 by 2026-11-15; the gentle ladder's grace is 5 days, so
        // it is broken on the 21st and followed up a day later, the 22nd.
        ts.store
            .insert_promise(&PromiseToPay {
                id: "PTP-1".into(),
                customer_id: "C-00001".into(),
                invoice_numbers: vec![],
                amount: Money::new(600_00, Currency::USD),
                promised_date: d("2026-11-15"),
                created_at: at("2026-11-11"),
                status: PromiseStatus::Open,
            })
            .await
            .unwrap();
        let other = ts.reopen().await.unwrap();
        let mut fired = None;
        for k in 11..=26 {
            let day = d("2026-11-01") + Duration::days(k - 1);
            let now = at(&day.to_string());
            // Two schedulers every day.
            let (a, b) = tokio::join!(
                tick(&ts.store, &set, now, 100),
                tick(&other, &set, now, 100)
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            let promise = ts
                .store
                .promises(Some("C-00001"))
                .await
                .unwrap()
                .pop()
                .unwrap();
            let state = ts.store.procedure_state("C-00001").await.unwrap().unwrap();
            if day < d("2026-11-21") {
                assert_eq!(promise.status, PromiseStatus::Open, "{label} {day}");
                assert_eq!(
                    state.paused_reason,
                    Some(PauseReason::Promise),
                    "{label} {day}"
                );
            } else {
                assert_eq!(promise.status, PromiseStatus::Broken, "{label} {day}");
            }
            if day == d("2026-11-21") {
                assert_eq!(a.promises_broken + b.promises_broken, 1, "{label}");
            }
            let follow: Vec<_> = steps(&ts.store)
                .await
                .into_iter()
                .filter(|(_, s)| s.step == "broken_promise")
                .collect();
            if fired.is_none() && !follow.is_empty() {
                fired = Some((day, follow));
            }
        }
        let (day, follow) = fired.expect("the follow-up fired");
        assert_eq!(day, d("2026-11-22"), "{label}");
        assert_eq!(follow.len(), 1, "{label}");
        let (w, s) = &follow[0];
        assert_eq!(w.customer_id, "C-00001");
        assert_eq!(s.promise_id.as_deref(), Some("PTP-1"), "{label}");
        // The 22nd is a Sunday: due at 09:00 on Monday in New York (14:00 UTC).
        assert_eq!(
            w.due_at,
            "2026-11-23T14:00:00Z".parse::<DateTime<Utc>>().unwrap(),
            "{label}"
        );
        assert_eq!(audit_count(&ts.store, "promise.broken").await, 1, "{label}");
        other.close().await;
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn disputes_hardship_and_promises_pause_and_resume() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        setup(&ts, 4).await;
        let set = active_procedures(&ts.store).await.unwrap();
        let case = |id: &str, customer: &str, kind: CaseKind, invoices: Vec<String>| Case {
            id: id.into(),
            customer_id: customer.into(),
            kind,
            status: CaseStatus::Open,
            invoice_numbers: invoices,
            disputed_amount: None,
            summary: "test".into(),
            opened_at: at("2026-11-01"),
        };
        ts.store
            .insert_case(&case(
                "K-D",
                "C-00002",
                CaseKind::Dispute,
                vec!["INV-00002".into()],
            ))
            .await
            .unwrap();
        ts.store
            .insert_case(&case("K-H", "C-00003", CaseKind::Hardship, vec![]))
            .await
            .unwrap();
        ts.store
            .insert_promise(&PromiseToPay {
                id: "PTP-4".into(),
                customer_id: "C-00004".into(),
                invoice_numbers: vec![],
                amount: Money::new(50_00, Currency::USD),
                promised_date: d("2026-11-20"),
                created_at: at("2026-11-05"),
                status: PromiseStatus::Open,
            })
            .await
            .unwrap();
        let r = tick(&ts.store, &set, at("2026-11-10"), 100).await.unwrap();
        assert_eq!(r.due, 1, "{label}: only C-00001 is contacted");
        let reasons: HashMap<String, usize> = r.paused.into_iter().collect();
        assert_eq!(reasons.get("disputed"), Some(&1), "{label}");
        assert_eq!(reasons.get("hardship"), Some(&1), "{label}");
        assert_eq!(reasons.get("promise"), Some(&1), "{label}");
        for (c, reason) in [
            ("C-00002", PauseReason::Disputed),
            ("C-00003", PauseReason::Hardship),
            ("C-00004", PauseReason::Promise),
        ] {
            let st = ts.store.procedure_state(c).await.unwrap().unwrap();
            assert_eq!(st.status, Status::Paused, "{label} {c}");
            assert_eq!(st.paused_reason, Some(reason), "{label} {c}");
        }
        // Still paused the next day.
        let r = tick(&ts.store, &set, at("2026-11-11"), 100).await.unwrap();
        assert_eq!(r.due, 0, "{label}");
        // A person closes the dispute and the hardship case: the next tick plans them.
        ts.store
            .advance_case("K-D", CaseStatus::VerificationSent, "ops", Some("verified"))
            .await
            .unwrap();
        ts.store
            .advance_case("K-H", CaseStatus::Resolved, "ops", None)
            .await
            .unwrap();
        let r = tick(&ts.store, &set, at("2026-11-12"), 100).await.unwrap();
        assert_eq!(r.due, 2, "{label}");
        let planned: BTreeSet<String> = steps(&ts.store)
            .await
            .into_iter()
            .map(|(w, _)| w.customer_id)
            .collect();
        assert!(
            planned.contains("C-00002") && planned.contains("C-00003"),
            "{label}"
        );
        assert!(
            !planned.contains("C-00004"),
            "{label}: the promise still holds"
        );
        // The promise's date plus grace (5 days) passes unpaid: broken on the 26th, and
        // the follow-up is due a day later.
        let r = tick(&ts.store, &set, at("2026-11-26"), 100).await.unwrap();
        assert_eq!(r.promises_broken, 1, "{label}");
        assert_eq!(r.due_by_step.get("broken_promise"), None, "{label}");
        let r = tick(&ts.store, &set, at("2026-11-27"), 100).await.unwrap();
        assert_eq!(r.due_by_step.get("broken_promise"), Some(&1), "{label}");
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_payment_clearing_the_balance_ends_the_procedure_and_cancels_queued_steps() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        setup(&ts, 2).await;
        let set = active_procedures(&ts.store).await.unwrap();
        tick(&ts.store, &set, at("2026-11-10"), 100).await.unwrap();
        let mut p = consumer_portfolio(2);
        let inv = p
            .invoices
            .iter()
            .find(|i| i.number == "INV-00001")
            .unwrap()
            .clone();
        p.payments.push(argent_core::Payment {
            id: "pay-clear".into(),
            customer_id: "C-00001".into(),
            invoice_number: inv.number.clone(),
            amount: inv.amount,
            received_on: d("2026-11-11"),
        });
        ts.store.import_portfolio(&p, "test").await.unwrap();
        let r = tick(&ts.store, &set, at("2026-11-12"), 100).await.unwrap();
        assert_eq!(r.cancelled, 1, "{label}");
        let st = ts.store.procedure_state("C-00001").await.unwrap().unwrap();
        assert_eq!(st.status, Status::Idle, "{label}");
        assert_eq!(st.anchor_due, None, "{label}");
        let c2 = ts.store.procedure_state("C-00002").await.unwrap().unwrap();
        assert_eq!(c2.status, Status::Active, "{label}");
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn the_last_contact_delays_a_step_by_its_minimum_gap() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        setup(&ts, 2).await;
        let set = active_procedures(&ts.store).await.unwrap();
        // A call with C-00001 on the 8th: the gentle overdue notice waits 7 days after it.
        ts.store
            .log_call(
                "call-1",
                "C-00001",
                "2026-11-08T15:00:00Z".parse().unwrap(),
                true,
                None,
                "alice",
                None,
            )
            .await
            .unwrap();
        let r = tick(&ts.store, &set, at("2026-11-10"), 100).await.unwrap();
        assert_eq!(r.due, 1, "{label}: only C-00002");
        let st = ts.store.procedure_state("C-00001").await.unwrap().unwrap();
        assert_eq!(st.next_step.as_deref(), Some("overdue_notice"), "{label}");
        // The 15th, at 09:00 in New York.
        assert_eq!(
            st.next_at,
            Some("2026-11-16T14:00:00Z".parse().unwrap()),
            "{label}: the 15th is a Sunday, so Monday 09:00"
        );
        let r = tick(&ts.store, &set, at("2026-11-14"), 100).await.unwrap();
        assert_eq!(r.due, 0, "{label}");
        let r = tick(&ts.store, &set, at("2026-11-15"), 100).await.unwrap();
        assert_eq!(r.due_by_step.get("overdue_notice"), Some(&1), "{label}");
        ts.cleanup().await;
    }
}
