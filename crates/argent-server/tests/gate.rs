//! The activation gate of a policy draft, through the router (`oneshot`), on SQLite and
//! (with `ARGENT_TEST_POSTGRES_URL`) PostgreSQL: a draft that deletes the FDCPA attorney
//! stop and raises the high-risk discount ceiling to 90% is refused activation because
//! the shipped policy tests fail (the error names them); the same draft carrying tests
//! that stand in for those cases passes, and its gate shows the pending approval and the
//! past decision that flip, and flags the loosened ceiling no test or eval case exercises.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use argent_agent::testing::{ann_plan_20_percent, plan_args};
use argent_agent::{Agent, AgentConfig, Clock, DocumentSet};
use argent_core::RiskSegment;
use argent_llm::{ScriptedModel, ToolCall};
use argent_server::{AppState, OPENAPI, ServerConfig, UserRole, create_user, router};
use argent_store::testkit::{TestStore, two_consumer_portfolio};
use argent_store::{ApprovalStatus, AuditFilter, DocKind, DocStatus, Store};
use common::{Browser, PASSWORD, call, inbound, now, repo};

const ATTORNEY_STOP: &str = r#"[[stop]]
id = "us.attorney-represented"
when = "attorney_represented"
actions = ["send_email", "propose_plan", "request_call"]
effect = "deny"
message = "The consumer is represented by an attorney; communicate with the attorney, not the consumer."
citation = "15 U.S.C. 1692c(a)(2); 12 CFR 1006.6(b)(2)"
"#;

const HIGH_RISK_CEILING: &str = "id = \"us.plan.high-risk.ceiling\"\nmax_discount_percent = 20";

/// Cases standing in for the three shipped ones that assert the attorney stop.
const CARRIED: &str = include_str!("../../argent-policy/tests/fixtures/gate-carried-attorney.toml");

const FAILING: [&str; 3] = [
    "us-consumer.toml: an attorney-represented consumer is not emailed",
    "us-consumer-contact.toml: a call to an attorney-represented consumer is denied",
    "us-consumer-signals.toml: once confirmed, the flag's own rule stops the email (attorney_represented)",
];

/// The shipped us-consumer pack without the attorney stop and with the high-risk ceiling's
/// discount raised from 20% to 90%.
fn loosened(text: &str) -> String {
    assert!(text.contains(ATTORNEY_STOP) && text.contains(HIGH_RISK_CEILING));
    text.replace(ATTORNEY_STOP, "").replace(
        HIGH_RISK_CEILING,
        "id = \"us.plan.high-risk.ceiling\"\nmax_discount_percent = 90",
    )
}

/// 30% off Bo's 15,000.00: past the high-risk ceiling (20%), inside a 90% one.
fn bo_plan_30_percent() -> Value {
    plan_args(
        "C-BO",
        "15000.00",
        "4500.00",
        "2100.00",
        &[
            ("2026-12-20", "2100.00"),
            ("2027-01-20", "2100.00"),
            ("2027-02-20", "2100.00"),
            ("2027-03-20", "2100.00"),
        ],
    )
}

/// Checks a gate response against the operation's documented schema for its status.
fn documented(status: StatusCode, body: &Value) {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let op = &doc["paths"]["/api/documents/{kind}/{name}/{version}/gate"]["get"];
    let schema = &op["responses"][status.as_str()]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "status {status} is documented");
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    let v = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap();
    let errors: Vec<String> = v
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}\n{body:#}", errors.join("\n"));
}

struct Setup {
    app: Router,
    store: Store,
    mo: String,
    cy: String,
    /// Ann's pending plan: queued, then Ann turned out to have an attorney.
    ann_item: String,
    /// Bo's refused plan's tool call.
    bo_call: String,
}

/// Both consumers judged high-risk; Ann's 20% plan waits for a person and Bo's 30% plan
/// was refused by the ceiling; then Ann's account is flagged attorney-represented.
async fn setup(store: &Store) -> Setup {
    let mut portfolio = two_consumer_portfolio();
    store.import_portfolio(&portfolio, "test").await.unwrap();
    let model = ScriptedModel::new();
    model.push_tool_calls(vec![ToolCall::new(
        "a0",
        "propose_plan",
        ann_plan_20_percent().to_string(),
    )]);
    model.push_text("Done.");
    model.push_tool_calls(vec![ToolCall::new(
        "b0",
        "propose_plan",
        bo_plan_30_percent().to_string(),
    )]);
    model.push_text("Done.");
    let agent = Agent::from_dirs(
        store.clone(),
        Arc::new(model),
        &repo("prompts"),
        &repo("policies"),
        AgentConfig {
            clock: Clock::Fixed(now()),
            segment_override: Some(RiskSegment::High),
            ..Default::default()
        },
    )
    .unwrap();
    let ann = agent
        .start("C-ANN", inbound("ann@mail.example", "Could I get 20% off?"))
        .await
        .unwrap();
    let bo = agent
        .start("C-BO", inbound("bo@mail.example", "Could I get 30% off?"))
        .await
        .unwrap();
    let pending = store
        .approvals(Some(ApprovalStatus::Pending), 10, 0)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1, "Ann's plan waits: {ann:?}");
    let bo_call = store
        .audit_events(&AuditFilter {
            customer_id: Some("C-BO".into()),
            kind: Some("refused".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(bo_call.len(), 1, "Bo's plan was refused: {bo:?}");
    let bo_call = bo_call[0].payload["call_id"].as_str().unwrap().to_string();
    // Ann's lawyer writes; the flag is set on her account.
    for c in &mut portfolio.customers {
        if c.id == "C-ANN" {
            c.flags.attorney_represented = true;
        }
    }
    store.import_portfolio(&portfolio, "test").await.unwrap();

    create_user(store, "mo", UserRole::Manager, PASSWORD)
        .await
        .unwrap();
    create_user(store, "cy", UserRole::Compliance, PASSWORD)
        .await
        .unwrap();
    let docs = DocumentSet::from_dirs(&repo("prompts"), &repo("policies")).unwrap();
    store.seed_documents(&docs.entries(), "seed").await.unwrap();
    let state = AppState::new(
        Arc::new(agent),
        ServerConfig {
            policy_tests_dir: Some(repo("policies/tests")),
            ..ServerConfig::default()
        },
    );
    let app = router(state);
    let (s, _, body) = call(
        &app,
        Method::POST,
        "/api/login",
        None,
        Some(json!({"name": "mo", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, _, cy) = call(
        &app,
        Method::POST,
        "/api/login",
        None,
        Some(json!({"name": "cy", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{cy}");
    Setup {
        cy: cy["token"].as_str().unwrap().to_string(),
        app,
        store: store.clone(),
        mo: body["token"].as_str().unwrap().to_string(),
        ann_item: pending[0].id.clone(),
        bo_call,
    }
}

impl Setup {
    async fn api(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let gate = method == Method::GET && uri.contains("/gate");
        let (s, _, b) = call(&self.app, method, uri, Some(&self.mo), body).await;
        if gate {
            documented(s, &b);
        }
        (s, b)
    }

    async fn active_version(&self) -> i64 {
        self.store
            .document_versions(DocKind::Policy, "us-consumer")
            .await
            .unwrap()
            .into_iter()
            .find(|v| v.status == DocStatus::Active)
            .unwrap()
            .version
    }
}

#[tokio::test]
async fn a_draft_deleting_a_stop_is_refused_until_its_tests_change_then_the_gate_shows_its_impact()
{
    for ts in TestStore::all().await.unwrap() {
        let f = setup(&ts.store).await;
        let v1 = f
            .store
            .document(DocKind::Policy, "us-consumer", 1)
            .await
            .unwrap();

        // The draft: no attorney stop, a 90% high-risk ceiling. It validates and is stored.
        let (s, v2) = f
            .api(
                Method::POST,
                "/api/documents/policy/us-consumer",
                Some(json!({"body": loosened(&v1.body), "note": "simplify"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v2}");
        assert_eq!(v2["version"], 2);

        // Activation is refused, naming the failing policy tests (API and page).
        let (s, err) = f
            .api(
                Method::POST,
                "/api/documents/policy/us-consumer/2/activate",
                Some(json!({"reason": "simplify"})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        let msg = err["error"].as_str().unwrap();
        assert!(
            msg.starts_with(
                "activation refused: 3 policy test(s) fail with policy us-consumer version 2"
            ),
            "{msg}"
        );
        for case in FAILING {
            assert!(msg.contains(case), "{case} in {msg}");
        }
        let mut mo = Browser::sign_in(&f.app, "mo").await;
        let res = mo
            .submit(
                "/documents/policy/us-consumer?v=2",
                "/documents/policy/us-consumer/2/activate",
                &[],
            )
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.body.contains("activation refused"), "{}", res.body);
        assert_eq!(f.active_version().await, 1, "nothing switched");
        let (s, gate) = f
            .api(
                Method::GET,
                "/api/documents/policy/us-consumer/2/gate",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{gate}");
        assert_eq!(gate["blocked"], true);
        let failing: Vec<&str> = gate["failing_tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["case"].as_str().unwrap())
            .collect();
        assert_eq!(failing.len(), 3, "{failing:?}");
        let page = mo.get("/documents/policy/us-consumer/2/gate").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Activation is refused"), "{}", page.body);
        assert!(!page.body.contains("id=\"activate\""), "no activate button");

        // The same change with tests that stand in for the three cases.
        let (s, v3) = f
            .api(
                Method::POST,
                "/api/documents/policy/us-consumer",
                Some(json!({"body": format!("{}{CARRIED}", loosened(&v1.body))})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v3}");
        let (s, gate) = f
            .api(
                Method::GET,
                "/api/documents/policy/us-consumer/3/gate",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{gate}");
        assert_eq!(gate["blocked"], false, "{:#}", gate["failing_tests"]);
        assert_eq!(gate["tests"]["carried"], 3);
        assert_eq!(gate["tests"]["replaced"].as_array().unwrap().len(), 3);
        // The semantic diff: the stop removed, the ceiling loosened.
        let rules: Vec<(&str, &str, &str)> = gate["diff"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap(),
                    r["change"].as_str().unwrap(),
                    r["summary"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rules,
            [
                (
                    "us.attorney-represented",
                    "removed",
                    "rule removed (was deny)"
                ),
                (
                    "us.plan.high-risk.ceiling",
                    "changed",
                    "max_discount_percent 20% → 90% (loosened)"
                ),
            ]
        );
        // The replay: Ann's pending plan and Bo's refused one flip.
        let impact = &gate["impact"];
        assert_eq!(impact["pending"], 1, "{impact:#}");
        assert!(impact["decisions"].as_u64().unwrap() >= 1, "{impact:#}");
        assert_eq!(impact["flipped"], 2, "{impact:#}");
        let items = impact["items"].as_array().unwrap();
        let ann = &items[0];
        assert_eq!(ann["source"], "pending");
        assert_eq!(ann["id"], f.ann_item.as_str());
        assert_eq!(ann["href"], format!("/queue/{}", f.ann_item));
        assert_eq!(ann["before"]["outcome"], "deny");
        assert_eq!(ann["after"]["outcome"], "needs_approval");
        let bo = &items[1];
        assert_eq!(bo["source"], "decision");
        assert_eq!(bo["id"], f.bo_call.as_str());
        assert_eq!(bo["recorded"], "deny");
        assert_eq!(bo["before"]["outcome"], "deny");
        assert_eq!(bo["after"]["outcome"], "needs_approval");
        assert_eq!(bo["segment"], "high");
        let by_rule: Vec<(&str, u64)> = impact["by_rule"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["key"].as_str().unwrap(), b["flipped"].as_u64().unwrap()))
            .collect();
        assert!(
            by_rule.contains(&("us.attorney-represented", 1)),
            "{by_rule:?}"
        );
        assert!(
            by_rule.contains(&("us.plan.high-risk.ceiling", 1)),
            "{by_rule:?}"
        );
        let bands: Vec<&str> = impact["by_band"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["key"].as_str().unwrap())
            .collect();
        assert_eq!(bands, ["1,000–10,000 USD", "10,000 USD and over"]);
        assert_eq!(impact["transitions"], json!([["deny → needs_approval", 2]]));
        // The deleted stop is exercised by the cases that changed; the ceiling is not.
        let flagged: Vec<&str> = gate["not_covered"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        assert_eq!(flagged, ["us.plan.high-risk.ceiling"]);
        assert_eq!(gate["eval"], Value::Null);

        // The page shows the same, with the flipped items linked.
        let page = mo.get("/documents/policy/us-consumer/3/gate").await;
        assert_eq!(page.status, StatusCode::OK);
        let body = &page.body;
        assert!(
            body.contains("The policy tests pass with this version"),
            "{body}"
        );
        assert!(
            body.contains(&format!("href=\"/queue/{}\"", f.ann_item)),
            "{body}"
        );
        assert!(body.contains(&f.bo_call), "{body}");
        assert!(
            body.contains("<li><code>us.plan.high-risk.ceiling</code>: max_discount_percent 20% → 90% (loosened) <strong>not covered</strong></li>"),
            "{body}"
        );
        assert!(body.contains("id=\"flipped\">2<"), "{body}");
        assert!(body.contains("id=\"activate\""), "{body}");
        // A shorter window still has the queue; a window out of range is a 400.
        let (s, _) = f
            .api(
                Method::GET,
                "/api/documents/policy/us-consumer/3/gate?days=0",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);

        // The diff page puts the rule changes above the changed hunks.
        let diff = mo.get("/documents/policy/us-consumer/diff?a=1&b=3").await;
        assert_eq!(diff.status, StatusCode::OK);
        let semantic = diff.body.find("id=\"semantic-diff\"").unwrap();
        let hunk = diff.body.find("<code>@@ -").unwrap();
        assert!(semantic < hunk);
        assert!(diff.body.contains("rule removed (was deny)"));
        assert!(
            !diff.body.contains("reading the aging"),
            "only changed hunks, not the whole file"
        );
        assert!(
            !diff.body.contains("id = &quot;us.cease-contact&quot;"),
            "lines far from a change are not shown"
        );

        // Now it may be requested, and activates when compliance approves (the gate runs
        // again at approval).
        let res = mo
            .submit(
                "/documents/policy/us-consumer/3/gate",
                "/documents/policy/us-consumer/3/activate",
                &[("reason", "simplify, with the tests changed")],
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        assert_eq!(f.active_version().await, 1, "requested, not yet approved");
        let (s, _, reqs) = call(
            &f.app,
            Method::GET,
            "/api/document-requests",
            Some(&f.cy),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{reqs}");
        let id = reqs
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| r["id"].as_str())
            .unwrap_or_else(|| panic!("one pending request: {reqs}"))
            .to_string();
        let (s, _, done) = call(
            &f.app,
            Method::POST,
            &format!("/api/document-requests/{id}/approve"),
            Some(&f.cy),
            Some(json!({"note": "tests reviewed"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{done}");
        assert_eq!(f.active_version().await, 3);
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn prompts_are_not_gated_and_an_unchanged_policy_flips_nothing() {
    for ts in TestStore::all().await.unwrap() {
        let f = setup(&ts.store).await;
        let v1 = f
            .store
            .document(DocKind::Policy, "us-consumer", 1)
            .await
            .unwrap();
        // A comment only: tests pass, nothing flips, nothing to cover.
        let (s, _) = f
            .api(
                Method::POST,
                "/api/documents/policy/us-consumer",
                Some(json!({"body": format!("# reviewed\n{}", v1.body)})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, gate) = f
            .api(
                Method::GET,
                "/api/documents/policy/us-consumer/2/gate",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{gate}");
        assert_eq!(gate["blocked"], false);
        assert!(
            gate["tests"]["total"].as_u64().unwrap() > 100,
            "{:#}",
            gate["tests"]
        );
        assert_eq!(gate["impact"]["flipped"], 0);
        assert_eq!(gate["impact"]["pending"], 1);
        assert_eq!(gate["diff"]["rules"], json!([]));
        assert_eq!(gate["not_covered"], json!([]));
        // A prompt's gate does not apply.
        let (s, gate) = f
            .api(Method::GET, "/api/documents/prompt/system/1/gate", None)
            .await;
        assert_eq!(s, StatusCode::OK, "{gate}");
        assert_eq!(gate["applies"], false);
        assert_eq!(gate["blocked"], false);
        let (s, _) = f
            .api(
                Method::GET,
                "/api/documents/policy/us-consumer/9/gate",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        ts.cleanup().await;
    }
}
