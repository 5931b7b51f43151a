//! Conformance tests for stored eval runs, on SQLite and (when ARGENT_TEST_POSTGRES_URL is
//! set) PostgreSQL.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use argent_store::testkit::TestStore;
use argent_store::{EvalRunDocument, EvalRunStatus, NewEvalRun, NewEvalRunCase, StoreError};
use serde_json::json;

fn new_run(id: &str) -> NewEvalRun {
    NewEvalRun {
        id: id.into(),
        label: format!("core {id}"),
        model: "offline".into(),
        subject: "active".into(),
        started_by: "eve".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_run_starts_running_and_finishes_once_with_its_report() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let base = s.insert_eval_run(&new_run("r1")).await.unwrap();
        assert_eq!(base.run.status, EvalRunStatus::Running, "{}", ts.label);
        assert_eq!(base.run.started_by, "eve");
        assert!(base.run.finished_at.is_none() && base.report.is_none());
        assert!(!base.run.has_comparison);

        let summary = json!({"cases": 12, "passed_cases": 11, "executed_violations": 0});
        // A report with unicode, markup and a float survives the round trip as a value.
        let report = json!({
            "format": "argent-eval-report",
            "set": "core",
            "cases": [{"id": "c1", "title": "Zoë <b>&</b> 'quotes'", "passed": true}],
            "totals": {"task_success_rate": 0.9166666666666666}
        });
        s.finish_eval_run("r1", &summary, &report, None)
            .await
            .unwrap();
        let done = s.eval_run("r1").await.unwrap();
        assert_eq!(done.run.status, EvalRunStatus::Done, "{}", ts.label);
        assert_eq!(done.run.summary.as_ref(), Some(&summary));
        assert_eq!(done.report.as_ref(), Some(&report), "{}", ts.label);
        assert_eq!(done.comparison, None);
        assert!(done.run.finished_at.unwrap() >= done.run.started_at);

        // A finished run cannot be finished or failed again.
        let again = s.finish_eval_run("r1", &summary, &report, None).await;
        assert!(matches!(again, Err(StoreError::Invalid(_))), "{again:?}");
        let again = s.fail_eval_run("r1", "late").await;
        assert!(matches!(again, Err(StoreError::Invalid(_))), "{again:?}");
        assert_eq!(
            s.eval_run("r1").await.unwrap().run.status,
            EvalRunStatus::Done
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_draft_run_names_its_document_and_baseline_and_keeps_the_comparison() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        s.insert_eval_run(&new_run("base")).await.unwrap();
        let mut draft = new_run("draft");
        draft.subject = "draft policy us-consumer v3".into();
        draft.doc_kind = Some("policy".into());
        draft.doc_name = Some("us-consumer".into());
        draft.doc_version = Some(3);
        draft.baseline_id = Some("base".into());
        let rec = s.insert_eval_run(&draft).await.unwrap();
        assert_eq!(
            (
                rec.run.doc_kind.as_deref(),
                rec.run.doc_name.as_deref(),
                rec.run.doc_version,
                rec.run.baseline_id.as_deref()
            ),
            (Some("policy"), Some("us-consumer"), Some(3), Some("base")),
            "{}",
            ts.label
        );
        let cmp = json!({"regressions": ["task success dropped 8.3 points"], "pass_to_fail": []});
        s.finish_eval_run("draft", &json!({"cases": 1}), &json!({}), Some(&cmp))
            .await
            .unwrap();
        let got = s.eval_run("draft").await.unwrap();
        assert_eq!(got.comparison, Some(cmp));
        assert!(got.run.has_comparison);

        // The baseline must exist.
        let mut orphan = new_run("orphan");
        orphan.baseline_id = Some("nope".into());
        let err = s.insert_eval_run(&orphan).await;
        assert!(matches!(err, Err(StoreError::NotFound(_))), "{err:?}");
        // Ids are unique.
        assert!(s.insert_eval_run(&new_run("base")).await.is_err());
        assert_eq!(s.count_eval_runs().await.unwrap(), 2, "{}", ts.label);
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_failed_run_keeps_its_error_and_unknown_ids_are_not_found() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        s.insert_eval_run(&new_run("r1")).await.unwrap();
        s.fail_eval_run("r1", "evals/core: no such directory")
            .await
            .unwrap();
        let r = s.eval_run("r1").await.unwrap();
        assert_eq!(r.run.status, EvalRunStatus::Failed, "{}", ts.label);
        assert_eq!(
            r.run.error.as_deref(),
            Some("evals/core: no such directory")
        );
        assert!(r.run.finished_at.is_some() && r.report.is_none() && r.run.summary.is_none());

        for res in [
            s.eval_run("ghost").await.map(|_| ()),
            s.fail_eval_run("ghost", "x").await,
            s.finish_eval_run("ghost", &json!({}), &json!({}), None)
                .await,
        ] {
            assert!(matches!(res, Err(StoreError::NotFound(_))), "{res:?}");
        }
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn runs_are_listed_newest_first_in_pages_without_reports() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        for id in ["r1", "r2", "r3", "r4", "r5"] {
            s.insert_eval_run(&new_run(id)).await.unwrap();
        }
        s.finish_eval_run(
            "r2",
            &json!({"passed_cases": 2}),
            &json!({"big": "x"}),
            None,
        )
        .await
        .unwrap();
        assert_eq!(s.count_eval_runs().await.unwrap(), 5);
        let ids = |runs: Vec<argent_store::EvalRunSummary>| -> Vec<String> {
            runs.into_iter().map(|r| r.id).collect()
        };
        assert_eq!(
            ids(s.eval_runs(3, 0).await.unwrap()),
            ["r5", "r4", "r3"],
            "{}",
            ts.label
        );
        assert_eq!(ids(s.eval_runs(3, 3).await.unwrap()), ["r2", "r1"]);
        assert!(s.eval_runs(3, 10).await.unwrap().is_empty());
        let listed = s.eval_runs(10, 0).await.unwrap();
        let r2 = listed.iter().find(|r| r.id == "r2").unwrap();
        assert_eq!(r2.status, EvalRunStatus::Done);
        assert_eq!(r2.summary, Some(json!({"passed_cases": 2})));
        // The listing carries no report: its serialized form does not mention it.
        let text = serde_json::to_string(&listed).unwrap();
        assert!(
            !text.contains("\"big\"") && !text.contains("\"report\""),
            "{text}"
        );
        ts.cleanup().await;
    }
}

fn doc(kind: &str, name: &str, version: i64, draft: bool) -> EvalRunDocument {
    EvalRunDocument {
        kind: kind.into(),
        name: name.into(),
        version,
        sha256: format!("{:064x}", version),
        draft,
    }
}

fn case(id: &str, passed: bool) -> NewEvalRunCase {
    NewEvalRunCase {
        case_id: id.into(),
        title: format!("Case {id} — Zoë <b>"),
        passed,
        trace: json!({
            "id": id,
            "messages": [{"from": "ann@mail.example", "subject": "Payment", "body": "Can I pay half?"}],
            "attempts": [{"calls": [{"tool": "propose_plan", "arguments": {"discount": "240.00"},
                                     "status": "queued", "rules": ["plan.discount-review"]}]}]
        }),
    }
}

#[tokio::test]
async fn a_run_keeps_the_exact_documents_it_evaluated() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let docs = vec![
            doc("policy", "us-consumer", 3, true),
            doc("prompt", "system", 2, false),
        ];
        let rec = s
            .insert_eval_run_with_documents(&new_run("r1"), &docs)
            .await
            .unwrap();
        assert_eq!(rec.run.documents, docs, "{}", ts.label);
        // The listing and the finished-run listing carry them too.
        s.finish_eval_run("r1", &json!({"cases": 1}), &json!({}), None)
            .await
            .unwrap();
        assert_eq!(s.eval_runs(10, 0).await.unwrap()[0].documents, docs);
        assert_eq!(s.finished_eval_runs(10).await.unwrap()[0].documents, docs);
        // A run recorded without them has none.
        let plain = s.insert_eval_run(&new_run("r2")).await.unwrap();
        assert!(plain.run.documents.is_empty(), "{}", ts.label);
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_finished_run_keeps_one_trace_per_case_read_one_at_a_time() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        s.insert_eval_run(&new_run("r1")).await.unwrap();
        assert_eq!(s.count_eval_run_cases("r1").await.unwrap(), 0);
        let cases = vec![case("plan-ok", true), case("plan-greedy", false)];
        s.finish_eval_run_with_cases("r1", &json!({"cases": 2}), &json!({}), None, &cases)
            .await
            .unwrap();
        assert_eq!(
            s.eval_run("r1").await.unwrap().run.status,
            EvalRunStatus::Done
        );
        assert_eq!(
            s.count_eval_run_cases("r1").await.unwrap(),
            2,
            "{}",
            ts.label
        );
        let got = s.eval_run_case("r1", "plan-greedy").await.unwrap();
        assert_eq!(
            (got.run_id.as_str(), got.case_id.as_str(), got.passed),
            ("r1", "plan-greedy", false),
            "{}",
            ts.label
        );
        assert_eq!(got.title, "Case plan-greedy — Zoë <b>");
        assert_eq!(got.trace, cases[1].trace, "{}", ts.label);
        assert!(s.eval_run_case("r1", "plan-ok").await.unwrap().passed);

        // Unknown cases and runs are not found.
        for res in [
            s.eval_run_case("r1", "ghost").await,
            s.eval_run_case("ghost", "plan-ok").await,
        ] {
            assert!(matches!(res, Err(StoreError::NotFound(_))), "{res:?}");
        }
        // Finishing again changes nothing, traces included (one transaction).
        let again = s
            .finish_eval_run_with_cases("r1", &json!({}), &json!({}), None, &[case("late", true)])
            .await;
        assert!(matches!(again, Err(StoreError::Invalid(_))), "{again:?}");
        assert_eq!(
            s.count_eval_run_cases("r1").await.unwrap(),
            2,
            "{}",
            ts.label
        );
        assert!(matches!(
            s.eval_run_case("r1", "late").await,
            Err(StoreError::NotFound(_))
        ));
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_case_traced_twice_is_refused_and_the_run_stays_running() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        s.insert_eval_run(&new_run("r1")).await.unwrap();
        let res = s
            .finish_eval_run_with_cases(
                "r1",
                &json!({}),
                &json!({}),
                None,
                &[case("c1", true), case("c1", false)],
            )
            .await;
        assert!(matches!(res, Err(StoreError::Invalid(_))), "{res:?}");
        let r = s.eval_run("r1").await.unwrap();
        assert_eq!(r.run.status, EvalRunStatus::Running, "{}", ts.label);
        assert_eq!(s.count_eval_run_cases("r1").await.unwrap(), 0);
        let ghost = s
            .finish_eval_run_with_cases("ghost", &json!({}), &json!({}), None, &[case("c1", true)])
            .await;
        assert!(matches!(ghost, Err(StoreError::NotFound(_))), "{ghost:?}");
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn finished_runs_are_listed_newest_first_for_the_trend() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        for id in ["r1", "r2", "r3", "r4"] {
            s.insert_eval_run(&new_run(id)).await.unwrap();
        }
        for id in ["r1", "r2", "r4"] {
            s.finish_eval_run(id, &json!({"set": "core"}), &json!({}), None)
                .await
                .unwrap();
        }
        s.fail_eval_run("r3", "broken").await.unwrap();
        s.insert_eval_run(&new_run("r5")).await.unwrap(); // still running
        let ids: Vec<String> = s
            .finished_eval_runs(10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["r4", "r2", "r1"], "{}", ts.label);
        assert_eq!(s.finished_eval_runs(2).await.unwrap().len(), 2);
        ts.cleanup().await;
    }
}
