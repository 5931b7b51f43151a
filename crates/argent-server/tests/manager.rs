//! The manager's and evaluator's pages: versioned documents (edit, validate, diff, eval on a
//! draft, activate), eval runs, and the dashboard — through the router as a browser uses
//! them (see tests/web.rs for the browser helper's twin).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};

use argent_server::ServerConfig;
use argent_store::{AuditFilter, DocKind, DocStatus, EvalRunStatus};
use common::*;

const POLICY: &str = "/documents/policy/us-consumer";

fn weakened(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("max_discount_percent") {
                "max_discount_percent = 90".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn seeded() -> Fixture {
    fixture_with(ServerConfig {
        evals_dir: Some(repo("evals/core")),
        eval_filter: Some("tag:plan,tag:injection".into()),
        ..ServerConfig::default()
    })
    .await
}

#[tokio::test]
async fn a_manager_validates_saves_diffs_and_activates_a_policy_version() {
    let f = seeded().await;
    let mut mo = Browser::sign_in(&f.app, "mo").await;
    let list = mo.get("/documents").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("us-consumer"));
    assert!(list.body.contains("system"), "prompts are documents too");

    let v1 = f
        .store()
        .document(DocKind::Policy, "us-consumer", 1)
        .await
        .unwrap();
    assert_eq!(v1.status, DocStatus::Active);

    // An invalid edit is caught with its line, and nothing is stored.
    let bad = v1
        .body
        .replacen("max_discount_percent = 10", "max_discount_percent = 150", 1);
    let bad_line = bad
        .lines()
        .position(|l| l == "max_discount_percent = 150")
        .unwrap()
        + 1;
    let res = mo
        .submit(
            &format!("{POLICY}/edit"),
            POLICY,
            &[("body", &bad), ("note", "more room"), ("action", "save")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.body.contains(&format!("line {bad_line}")),
        "the error points at line {bad_line}: {}",
        res.body
    );
    assert_eq!(
        f.store()
            .document_versions(DocKind::Policy, "us-consumer")
            .await
            .unwrap()
            .len(),
        1
    );

    // A valid edit: validate, then save as a draft.
    let good = v1.body.replace(
        "The plan is outside the range a low-risk account may be offered without review.",
        "Low-risk plans past these terms need a reviewer.",
    );
    assert_ne!(good, v1.body);
    let res = mo
        .submit(
            &format!("{POLICY}/edit"),
            POLICY,
            &[("body", &good), ("action", "validate")],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.contains("id=\"valid\""));
    let res = mo
        .submit(
            &format!("{POLICY}/edit"),
            POLICY,
            &[
                ("body", &good),
                ("note", "plainer words"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        res.location.as_deref(),
        Some("/documents/policy/us-consumer?v=2")
    );
    let v2 = f
        .store()
        .document(DocKind::Policy, "us-consumer", 2)
        .await
        .unwrap();
    assert_eq!(v2.status, DocStatus::Draft);
    assert_eq!(v2.author, "manager:mo");

    // The diff shows the one changed line.
    let diff = mo.get(&format!("{POLICY}/diff?a=1&b=2")).await;
    assert_eq!(diff.status, StatusCode::OK);
    assert!(
        diff.body.contains("id=\"changed\">2<"),
        "one line out, one in"
    );
    assert!(
        diff.body
            .contains("Low-risk plans past these terms need a reviewer.")
    );

    // Other roles: compliance reads but may not write; a collector may not even read.
    let mut cy = Browser::sign_in(&f.app, "cy").await;
    assert_eq!(cy.get(POLICY).await.status, StatusCode::OK);
    assert_eq!(
        cy.get(&format!("{POLICY}/edit")).await.status,
        StatusCode::FORBIDDEN
    );
    let res = cy
        .submit(POLICY, &format!("{POLICY}/2/activate"), &[("reason", "x")])
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let mut alice = Browser::sign_in(&f.app, "alice").await;
    assert_eq!(alice.get("/documents").await.status, StatusCode::FORBIDDEN);

    // Before activation the agent still uses version 1's words.
    let rule = mo.get("/rules/us.plan.low-risk").await;
    assert!(rule.body.contains("may be offered without review"));
    // Activation is a request with a reason (four eyes); compliance approves a policy.
    let res = mo
        .submit(
            &format!("{POLICY}?v=2"),
            &format!("{POLICY}/2/activate"),
            &[("reason", "plainer words for reviewers")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let rule = mo.get("/rules/us.plan.low-risk").await;
    assert!(
        rule.body.contains("may be offered without review"),
        "a request activates nothing"
    );
    let request = f
        .store()
        .document_requests(None, None)
        .await
        .unwrap()
        .remove(0);
    let res = cy
        .submit(
            "/documents",
            &format!("/document-requests/{}/approve", request.id),
            &[("note", "")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let versions = f
        .store()
        .document_versions(DocKind::Policy, "us-consumer")
        .await
        .unwrap();
    let status: Vec<(i64, DocStatus)> = versions.iter().map(|v| (v.version, v.status)).collect();
    assert_eq!(
        status,
        vec![(2, DocStatus::Active), (1, DocStatus::Retired)]
    );
    assert_eq!(versions[0].activated_by.as_deref(), Some("compliance:cy"));
    // The running server now works with version 2.
    let rule = mo.get("/rules/us.plan.low-risk").await;
    assert!(
        rule.body
            .contains("Low-risk plans past these terms need a reviewer.")
    );

    // Both changes are in the audit trail with their author.
    let trail = f
        .store()
        .audit_events(&AuditFilter {
            actor: Some("manager:mo".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = trail.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["document.draft", "document.activation_requested"]
    );
    assert!(matches!(
        f.store().audit_verify().await.unwrap(),
        argent_store::AuditVerification::Intact { .. }
    ));

    // Asking to activate it again is a conflict.
    let res = mo
        .submit(
            &format!("{POLICY}?v=2"),
            &format!("{POLICY}/2/activate"),
            &[("reason", "again")],
        )
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT);
}

async fn wait_done(f: &Fixture, id: &str) -> argent_store::EvalRunRecord {
    for _ in 0..600 {
        let r = f.store().eval_run(id).await.unwrap();
        if r.run.status != EvalRunStatus::Running {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("eval run {id} did not finish in two minutes");
}

#[tokio::test]
async fn an_eval_on_a_weakened_draft_shows_the_regression_before_activation() {
    let f = seeded().await;
    let store = f.store();
    let v1 = store
        .document(DocKind::Policy, "us-consumer", 1)
        .await
        .unwrap();
    let draft = store
        .create_document_version(
            DocKind::Policy,
            "us-consumer",
            &weakened(&v1.body),
            "manager:mo",
            Some("generous"),
        )
        .await
        .unwrap();
    assert_eq!(draft.version, 2);

    let mut mo = Browser::sign_in(&f.app, "mo").await;
    let page = mo.get(&format!("{POLICY}?v=2")).await;
    assert!(page.body.contains("id=\"run-eval\""));
    let res = mo
        .submit(&format!("{POLICY}?v=2"), &format!("{POLICY}/2/eval"), &[])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let to = res.location.unwrap();
    let id = to.strip_prefix("/evals/").unwrap().to_string();
    let running = mo.get(&to).await;
    assert_eq!(running.status, StatusCode::OK);

    let rec = wait_done(&f, &id).await;
    assert_eq!(rec.run.status, EvalRunStatus::Done, "{:?}", rec.run.error);
    assert_eq!(rec.run.doc_version, Some(2));
    let baseline = wait_done(&f, rec.run.baseline_id.as_deref().unwrap()).await;
    assert_eq!(baseline.run.status, EvalRunStatus::Done);
    let comparison = rec.comparison.clone().unwrap();
    let cmp: argent_evals::Comparison = serde_json::from_value(comparison).unwrap();
    assert!(cmp.regressed(), "raising discounts to 90% must be caught");

    // The evaluator reads the run, its comparison, and compares any two runs.
    let mut eve = Browser::sign_in(&f.app, "eve").await;
    let list = eve.get("/evals").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains(&id));
    let shown = eve.get(&format!("/evals/{id}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.body.contains("id=\"verdict\">regressed<"));
    let cmp_page = eve
        .get(&format!("/evals/compare?a={}&b={id}", baseline.run.id))
        .await;
    assert_eq!(cmp_page.status, StatusCode::OK);
    assert!(cmp_page.body.contains("regressed"));
    let (s, json) = f
        .as_user("eve", Method::GET, &format!("/api/evals/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json["id"], id, "the run, flattened, with its report");
    assert!(json["report"]["cases"].is_array());

    // A collector sees none of it; compliance may read runs but not start one.
    let mut alice = Browser::sign_in(&f.app, "alice").await;
    assert_eq!(alice.get("/evals").await.status, StatusCode::FORBIDDEN);
    let mut cy = Browser::sign_in(&f.app, "cy").await;
    assert_eq!(cy.get("/evals").await.status, StatusCode::OK);
    assert_eq!(
        cy.submit("/evals", "/evals", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    // The draft was never activated.
    assert_eq!(
        store
            .document(DocKind::Policy, "us-consumer", 2)
            .await
            .unwrap()
            .status,
        DocStatus::Draft
    );
}

#[tokio::test]
async fn prompts_are_documents_too_and_a_broken_template_is_caught_at_its_line() {
    let f = seeded().await;
    let mut mo = Browser::sign_in(&f.app, "mo").await;
    let list = mo.get("/documents").await;
    assert!(
        list.body.contains("href=\"/documents/prompt/tone%2Ffirm\""),
        "a name with a slash is one segment"
    );
    let page = mo.get("/documents/prompt/tone%2Ffirm").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let v1 = f
        .store()
        .document(DocKind::Prompt, "tone/firm", 1)
        .await
        .unwrap();
    let broken = format!(
        "{}\n{{{{customer.favourite_colour}}}}\n",
        v1.body.trim_end()
    );
    let line = broken.lines().count();
    let res = mo
        .submit(
            "/documents/prompt/tone%2Ffirm/edit",
            "/documents/prompt/tone%2Ffirm",
            &[("body", &broken), ("action", "validate")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.body.contains(&format!("line {line}")), "{}", res.body);
    // Through the API the same text is refused, and nothing is stored.
    let (s, body) = f
        .as_user(
            "mo",
            Method::POST,
            "/api/documents/prompt/tone%2Ffirm",
            Some(serde_json::json!({"body": broken})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(&format!("{line}:")),
        "{body}"
    );
    assert_eq!(
        f.store()
            .document_versions(DocKind::Prompt, "tone/firm")
            .await
            .unwrap()
            .len(),
        1
    );
}
