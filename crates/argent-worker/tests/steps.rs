//! Each step kind's executor, run by a real worker loop on SQLite and (with
//! ARGENT_TEST_POSTGRES_URL) PostgreSQL: what it leaves, that it finishes its item, and
//! that running the queue again repeats nothing.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;

use argent_procedure::StepKind;
use argent_store::testkit::TestStore;
use argent_store::{AuditFilter, ReferralStatus, StoreError, WorkFilter, WorkStatus, work_id};
use argent_worker::steps::run_id_for;
use common::*;

/// The `overdue_notice` email step for `invoice`.
fn overdue_email(invoice: &str) -> argent_procedure::StepWork {
    step(
        StepKind::Email,
        "overdue_notice",
        Some("step/overdue_notice"),
        &[invoice],
    )
}

/// Enqueues `work` for `customer`, due now; its item's id.
async fn enqueue_one(
    store: &argent_store::Store,
    customer: &str,
    work: &argent_procedure::StepWork,
) -> String {
    let new = item(customer, work);
    let id = work_id(&new.dedupe_key);
    store.enqueue_work(&[new], now()).await.unwrap();
    id
}

async fn events(store: &argent_store::Store, kind: &str) -> Vec<argent_store::AuditEvent> {
    store
        .audit_events(&AuditFilter {
            kind: Some(kind.into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn an_email_step_runs_the_agent_once_linked_to_its_item() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        import(&ts.store, 2).await;
        let work = overdue_email("I1");
        let id = enqueue_one(&ts.store, "C1", &work).await;

        let report = run_once(agent(ts.store.clone()), config("w1", 2)).await;
        assert_eq!(report.done, 1, "{label}: {report:?}");

        let done = ts.store.work_item(&id).await.unwrap();
        assert_eq!(done.status, WorkStatus::Done, "{label}");
        assert_eq!(done.run_id.as_deref(), Some(run_id_for(&id, None).as_str()));
        assert_eq!(done.result.as_ref().unwrap()["status"], "finished");
        let emails = ts.store.emails(Some("C1")).await.unwrap();
        assert_eq!(emails.len(), 1, "{label}: one email for the step");
        assert!(emails[0].body.contains("I1"), "{label}: {}", emails[0].body);
        let started = events(&ts.store, "run_started").await;
        assert_eq!(started.len(), 1, "{label}");
        assert_eq!(started[0].payload["work_id"], id.as_str());
        assert_eq!(started[0].payload["trigger"]["kind"], "procedure_step");
        let run = ts.store.run(done.run_id.as_deref().unwrap()).await.unwrap();
        assert_eq!(
            run.lease_owner, None,
            "{label}: a finished run holds no lease"
        );

        // The queue again: nothing is due, nothing happens twice.
        let again = run_once(agent(ts.store.clone()), config("w2", 2)).await;
        assert_eq!(again, Default::default(), "{label}");
        assert_eq!(ts.store.emails(Some("C1")).await.unwrap().len(), 1);
        assert!(matches!(
            ts.store.audit_verify().await.unwrap(),
            argent_store::AuditVerification::Intact { .. }
        ));
        ts.cleanup().await;
    }
}

/// The offline model, except that just before its closing answer the item's lease is
/// taken from the worker running it (released and claimed by `thief`, as a worker takes
/// over an expired lease).
struct LeaseTakenBeforeTheEnd {
    store: argent_store::Store,
    work_id: String,
    owner: String,
    taken: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl argent_llm::ChatModel for LeaseTakenBeforeTheEnd {
    fn name(&self) -> String {
        "offline model whose worker loses its lease before the end".into()
    }

    async fn chat(
        &self,
        req: &argent_llm::ChatRequest,
    ) -> Result<argent_llm::ChatResponse, argent_llm::LlmError> {
        let resp = argent_agent::OfflineModel.chat(req).await?;
        if resp.tool_calls.is_empty() && !self.taken.swap(true, Ordering::SeqCst) {
            assert!(
                self.store
                    .release_work(&self.work_id, &self.owner, now())
                    .await
                    .unwrap()
            );
            // Workers read leases on the wall clock (the fixture's `now()` is in the past).
            let until = chrono::Utc::now() + chrono::Duration::hours(1);
            let claimed = self
                .store
                .claim_work("thief", now(), until, 1, None)
                .await
                .unwrap();
            assert_eq!(claimed.len(), 1);
        }
        Ok(resp)
    }
}

#[tokio::test]
async fn a_run_ends_with_its_item_or_not_at_all() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        import(&ts.store, 1).await;
        let work = overdue_email("I1");
        let id = enqueue_one(&ts.store, "C1", &work).await;

        let model = Arc::new(LeaseTakenBeforeTheEnd {
            store: ts.store.clone(),
            work_id: id.clone(),
            owner: "w1".into(),
            taken: Default::default(),
        });
        let report = run_once(agent_with(ts.store.clone(), model), config("w1", 1)).await;
        assert_eq!((report.lost, report.done), (1, 0), "{label}: {report:?}");
        // The run's end rolled back with the item's: the run is where its last step left
        // it, for the lease's new holder to resume.
        let run_id = run_id_for(&id, None);
        let run = ts.store.run(&run_id).await.unwrap();
        assert_eq!(run.status, argent_store::RunStatus::Running, "{label}");
        assert!(
            events(&ts.store, "run_finished").await.is_empty(),
            "{label}"
        );
        let held = ts.store.work_item(&id).await.unwrap();
        assert_eq!(held.status, WorkStatus::Leased, "{label}");
        assert_eq!(held.lease_owner.as_deref(), Some("thief"), "{label}");
        assert_eq!(ts.store.emails(Some("C1")).await.unwrap().len(), 1);

        // The thief gives it back; the next worker resumes the run and ends both.
        assert!(ts.store.release_work(&id, "thief", now()).await.unwrap());
        let report = run_once(agent(ts.store.clone()), config("w2", 1)).await;
        assert_eq!(report.done, 1, "{label}: {report:?}");
        let done = ts.store.work_item(&id).await.unwrap();
        assert_eq!(done.status, WorkStatus::Done, "{label}");
        assert_eq!(done.result.as_ref().unwrap()["run_id"], run_id.as_str());
        assert_eq!(done.result.as_ref().unwrap()["status"], "finished");
        let run = ts.store.run(&run_id).await.unwrap();
        assert_eq!(run.status, argent_store::RunStatus::Finished, "{label}");
        assert_eq!(events(&ts.store, "run_finished").await.len(), 1, "{label}");
        assert_eq!(
            ts.store.emails(Some("C1")).await.unwrap().len(),
            1,
            "{label}: one email"
        );
        assert!(matches!(
            ts.store.audit_verify().await.unwrap(),
            argent_store::AuditVerification::Intact { .. }
        ));
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_formal_demand_is_held_for_a_manager_where_the_same_email_step_is_allowed() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        import(&ts.store, 2).await;
        // The same prompt for both customers: as an email step the policy allows it…
        let email = step(
            StepKind::Email,
            "overdue_notice",
            Some("step/overdue_notice"),
            &["I1"],
        );
        // …as a formal demand it is held, whatever the policy says.
        let demand = step(
            StepKind::FormalDemand,
            "formal_demand",
            Some("step/overdue_notice"),
            &["I2"],
        );
        ts.store
            .enqueue_work(&[item("C1", &email), item("C2", &demand)], now())
            .await
            .unwrap();
        let report = run_once(agent(ts.store.clone()), config("w1", 2)).await;
        assert_eq!(report.done, 2, "{label}: {report:?}");

        assert_eq!(
            ts.store.emails(Some("C1")).await.unwrap().len(),
            1,
            "{label}"
        );
        assert!(
            ts.store.emails(Some("C2")).await.unwrap().is_empty(),
            "{label}: the formal demand is not sent"
        );
        let pending = ts
            .store
            .approvals(Some(argent_store::ApprovalStatus::Pending), 100, 0)
            .await
            .unwrap();
        let held: Vec<_> = pending.iter().filter(|a| a.customer_id == "C2").collect();
        assert_eq!(held.len(), 1, "{label}");
        assert_eq!(held[0].tool, "send_email");
        assert_eq!(held[0].required_role, "manager", "{label}");
        let rules: Vec<String> = held[0].decision["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            rules,
            [argent_agent::FORMAL_DEMAND_RULE],
            "{label}: only the step held it"
        );
        assert!(
            pending.iter().all(|a| a.customer_id != "C1"),
            "{label}: the plain email step was not held"
        );

        // A collector may not release it; a manager may, and it is sent then.
        let a = agent(ts.store.clone());
        let collector = argent_agent::Reviewer {
            name: "cole".into(),
            role: argent_core::Role::Collector,
        };
        assert!(
            a.approve(&held[0].id, &collector, None).await.is_err(),
            "{label}"
        );
        let manager = argent_agent::Reviewer {
            name: "mia".into(),
            role: argent_core::Role::Manager,
        };
        a.approve(&held[0].id, &manager, None).await.unwrap();
        assert_eq!(
            ts.store.emails(Some("C2")).await.unwrap().len(),
            1,
            "{label}"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_call_step_makes_one_call_task_and_no_email() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        import(&ts.store, 2).await;
        let call = step(
            StepKind::CallTask,
            "call_request",
            Some("step/overdue_notice"),
            &["I1"],
        );
        let id = enqueue_one(&ts.store, "C1", &call).await;
        let report = run_once(agent(ts.store.clone()), config("w1", 1)).await;
        assert_eq!(report.done, 1, "{label}: {report:?}");
        let tasks = ts.store.call_tasks(None, false).await.unwrap();
        assert_eq!(tasks.len(), 1, "{label}");
        assert_eq!(tasks[0].customer_id, "C1");
        assert!(
            tasks[0].script.contains("I1"),
            "{label}: {}",
            tasks[0].script
        );
        assert!(
            ts.store.emails(Some("C1")).await.unwrap().is_empty(),
            "{label}"
        );
        let done = ts.store.work_item(&id).await.unwrap();
        assert!(
            done.result.unwrap().get("generic_call_task").is_none(),
            "{label}: the model asked for the call"
        );
        ts.cleanup().await;
    }
}

/// A model that makes no tool call: the call step still leaves a call task (generic
/// script), made with the item's end.
#[tokio::test]
async fn a_call_step_whose_model_asked_for_no_call_gets_a_generic_task() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        import(&ts.store, 1).await;
        let call = step(
            StepKind::CallTask,
            "call_request",
            Some("step/overdue_notice"),
            &["I1"],
        );
        let id = enqueue_one(&ts.store, "C1", &call).await;
        let model = std::sync::Arc::new(argent_llm::ScriptedModel::with_responses([
            argent_llm::ChatResponse::text("Nothing to do."),
        ]));
        let report = run_once(agent_with(ts.store.clone(), model), config("w1", 1)).await;
        assert_eq!(report.done, 1, "{label}: {report:?}");
        let tasks = ts.store.call_tasks(None, false).await.unwrap();
        assert_eq!(tasks.len(), 1, "{label}");
        assert!(tasks[0].script.contains("I1"));
        assert_eq!(tasks[0].call_id, format!("work/{id}"));
        let result = ts.store.work_item(&id).await.unwrap().result.unwrap();
        assert_eq!(result["generic_call_task"]["created"], true, "{label}");
        assert_eq!(
            events(&ts.store, "call_task.created").await.len(),
            1,
            "{label}"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn credit_hold_alert_and_referral_are_written_with_their_items_end() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        import(&ts.store, 2).await;
        let hold = step(StepKind::CreditHold, "credit_hold", None, &["I1"]);
        let hold_again = argent_procedure::StepWork {
            cycle: 2,
            ..hold.clone()
        };
        let alert = step(StepKind::AccountManagerAlert, "am_alert", None, &["I2"]);
        let referral = step(StepKind::AgencyReferral, "agency_referral", None, &["I1"]);
        ts.store
            .enqueue_work(
                &[
                    item("C1", &hold),
                    item("C1", &hold_again),
                    item("C2", &alert),
                ],
                now(),
            )
            .await
            .unwrap();
        let report = run_once(agent(ts.store.clone()), config("w1", 4)).await;
        assert_eq!(report.done, 3, "{label}: {report:?}");
        // The referral after the hold, so its audit extract has the hold in it.
        ts.store
            .enqueue_work(&[item("C1", &referral)], now())
            .await
            .unwrap();
        let report = run_once(agent(ts.store.clone()), config("w1", 4)).await;
        assert_eq!(report.done, 1, "{label}: {report:?}");

        // One active hold, however many steps asked for it; audited once.
        let holds = ts.store.credit_holds(true).await.unwrap();
        assert_eq!(holds.len(), 1, "{label}");
        assert_eq!(holds[0].customer_id, "C1");
        assert!(
            holds[0].reason.contains("credit_hold"),
            "{}",
            holds[0].reason
        );
        assert_eq!(
            events(&ts.store, "credit_hold.placed").await.len(),
            1,
            "{label}"
        );
        let placed: Vec<bool> = ts
            .store
            .work_items(&WorkFilter {
                customer_id: Some("C1"),
                ..Default::default()
            })
            .await
            .unwrap()
            .iter()
            .filter_map(|i| i.result.as_ref()?.get("placed")?.as_bool())
            .collect();
        let mut placed = placed;
        placed.sort();
        assert_eq!(placed, [false, true], "{label}");

        // The alert: a task for the manager role in the tasks inbox, audited.
        let tasks = ts
            .store
            .tasks(&argent_store::TaskFilter {
                customer_id: Some("C2".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(tasks.len(), 1, "{label}");
        assert_eq!(tasks[0].kind, argent_core::TaskKind::AccountManagerAlert);
        assert_eq!(tasks[0].owner_role, argent_core::Role::Manager);
        assert!(tasks[0].title.contains("C2"), "{}", tasks[0].title);
        assert!(tasks[0].body.contains("am_alert"), "{}", tasks[0].body);
        assert_eq!(events(&ts.store, "task.created").await.len(), 1);

        // The referral: pending, with its package.
        let refs = ts
            .store
            .referrals(Some(ReferralStatus::Pending))
            .await
            .unwrap();
        assert_eq!(refs.len(), 1, "{label}");
        let full = ts.store.referral(&refs[0].id).await.unwrap();
        let p = &full.package;
        assert_eq!(p["format"], "argent.referral-package/1");
        assert_eq!(p["customer"]["id"], "C1");
        assert_eq!(p["invoices"].as_array().unwrap().len(), 4, "{label}");
        let open: Vec<_> = p["invoices"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["open_minor"].as_i64().unwrap() > 0)
            .collect();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0]["number"], "I1");
        assert_eq!(open[0]["covered_by_step"], true);
        assert_eq!(p["payments"].as_array().unwrap().len(), 3);
        let extract = p["audit_extract"].as_array().unwrap();
        assert!(
            extract.iter().any(|e| e["kind"] == "credit_hold.placed"),
            "{label}: {extract:?}"
        );
        assert!(
            extract.iter().all(|e| e["kind"] != "task.created"),
            "{label}: only C1's events"
        );
        assert!(
            extract
                .iter()
                .all(|e| e["hash"].as_str().is_some_and(|h| h.len() == 64))
        );

        // A manager decides it once.
        let decided = ts
            .store
            .decide_referral(&full.id, true, "mia", Some("agency A"), now())
            .await
            .unwrap();
        assert_eq!(decided.status, ReferralStatus::Approved);
        let twice = ts
            .store
            .decide_referral(&full.id, false, "max", Some("no"), now())
            .await;
        assert!(
            matches!(twice, Err(StoreError::Conflict(_))),
            "{label}: {twice:?}"
        );
        assert_eq!(events(&ts.store, "referral.approved").await.len(), 1);

        // A manager clears the hold; the export then has none active.
        ts.store
            .clear_credit_hold("C1", "mia", "customer paid by card", now())
            .await
            .unwrap();
        assert!(ts.store.credit_holds(true).await.unwrap().is_empty());
        assert_eq!(ts.store.credit_holds(false).await.unwrap().len(), 1);
        assert!(matches!(
            ts.store.audit_verify().await.unwrap(),
            argent_store::AuditVerification::Intact { .. }
        ));
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_hold_is_cleared_when_the_balance_is_paid() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        import(&ts.store, 2).await;
        for c in ["C1", "C2"] {
            ts.store
                .place_credit_hold(&argent_store::NewCreditHold {
                    id: format!("hold-{c}"),
                    customer_id: c.into(),
                    reason: "test".into(),
                    placed_by: "mia".into(),
                    work_id: None,
                    now: now(),
                })
                .await
                .unwrap();
        }
        // C1 pays I1 in full (a re-import carrying the payment).
        let paid = ledger_csv(2).replace(
            "I1,2026-09-01,2026-10-01,GBP,1500.00,,",
            "I1,2026-09-01,2026-10-01,GBP,1500.00,1500.00,2026-11-19",
        );
        let parsed = argent_core::import::parse(paid.as_bytes()).unwrap();
        ts.store.import_file(&parsed, "paid").await.unwrap();
        let cleared = ts
            .store
            .clear_settled_credit_holds("worker", now())
            .await
            .unwrap();
        assert_eq!(cleared, ["C1"], "{label}");
        let active = ts.store.credit_holds(true).await.unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].customer_id, "C2");
        let all = ts.store.credit_holds(false).await.unwrap();
        let c1 = all.iter().find(|h| h.customer_id == "C1").unwrap();
        assert_eq!(c1.clear_reason.as_deref(), Some("balance paid"));
        assert_eq!(c1.cleared_by.as_deref(), Some("worker"));
        let ev = events(&ts.store, "credit_hold.cleared").await;
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].payload["reason"], json!("balance paid"));
        ts.cleanup().await;
    }
}

/// A step whose payload cannot be read fails at once (no retry), audited.
#[tokio::test]
async fn an_unreadable_step_fails_audited() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        import(&ts.store, 1).await;
        let new = argent_store::NewWorkItem {
            kind: argent_procedure::WORK_KIND.into(),
            dedupe_key: "bad".into(),
            customer_id: "C1".into(),
            payload: json!({"step": "x"}),
            due_at: now(),
        };
        ts.store.enqueue_work(&[new], now()).await.unwrap();
        let report = run_once(agent(ts.store.clone()), config("w1", 1)).await;
        assert_eq!(report.failed, 1, "{label}: {report:?}");
        let i = ts.store.work_item(&work_id("bad")).await.unwrap();
        assert_eq!(i.status, WorkStatus::Failed);
        assert!(i.last_error.unwrap().contains("not a procedure step"));
        let ev = events(&ts.store, "work.failed").await;
        assert_eq!(ev.len(), 1, "{label}");
        ts.cleanup().await;
    }
}

/// A model that is down: each attempt fails, is retried with backoff, and after the last
/// attempt the item is failed and audited; no run acted, so nothing was sent.
#[tokio::test]
async fn failing_attempts_are_retried_then_failed() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        import(&ts.store, 1).await;
        let work = overdue_email("I1");
        let id = enqueue_one(&ts.store, "C1", &work).await;
        // A scripted model with no answers errors on every call.
        let model = std::sync::Arc::new(argent_llm::ScriptedModel::new());
        let mut cfg = config("w1", 1);
        cfg.lease.max_attempts = 3;
        // Retries fall due on the wall clock (backoff after now): poll until shut down.
        cfg.due_at = None;
        cfg.once = false;
        let a = agent_with(ts.store.clone(), model);
        let exec = std::sync::Arc::new(argent_worker::StepExecutor::new(a));
        let worker =
            std::sync::Arc::new(argent_worker::Worker::new(ts.store.clone(), exec, cfg).unwrap());
        let (stop, rx) = tokio::sync::watch::channel(false);
        let running = tokio::spawn(worker.run(rx));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while ts.store.work_item(&id).await.unwrap().status != WorkStatus::Failed {
            assert!(
                std::time::Instant::now() < deadline,
                "{label}: never failed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        stop.send(true).unwrap();
        let report = running.await.unwrap();
        assert_eq!(
            (report.retried, report.failed),
            (2, 1),
            "{label}: {report:?}"
        );
        let i = ts.store.work_item(&id).await.unwrap();
        assert_eq!(i.attempts, 3);
        assert!(i.last_error.is_some());
        assert!(ts.store.emails(None).await.unwrap().is_empty());
        assert_eq!(events(&ts.store, "work.failed").await.len(), 1, "{label}");
        // Each attempt was a run of its own that failed before acting.
        let runs = ts
            .store
            .runs(Some(argent_store::RunStatus::Failed))
            .await
            .unwrap();
        assert_eq!(runs.len(), 3, "{label}");
        ts.cleanup().await;
    }
}
