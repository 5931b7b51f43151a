//! The activation gate of a policy draft, through the router (`oneshot`), on SQLite and
//! (with `ARGENT_TEST_POSTGRES_URL`) PostgreSQL: a draft that deletes the FDCPA attorney
//! stop and raises the high-risk discount ceiling to 90% is refused activation because
//! the shipped policy tests fail (the error names them); the same draft carrying tests
//! that stand in for those cases passes, and its gate shows the pending approval and the
//! past decision that flip, and flags the loosened ceiling no test or eval case exercises.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use argent_server::{OPENAPI, router};
use argent_store::testkit::TestStore;
use argent_store::{DocKind, DocStatus, Store};
use common::gate::{CARRIED, FAILING, GateStore, gate_store, loosened};
use common::{Browser, PASSWORD, call};

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

/// The gate's store (see [`gate_store`]) behind the router, `mo` and `cy` signed in.
async fn setup(store: &Store) -> Setup {
    let GateStore {
        state,
        ann_item,
        bo_call,
    } = gate_store(store).await;
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
        ann_item,
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
        // Its form asks for the reason a request needs: a browser posts only the form's
        // own fields (it once had none, and the button could only answer 422).
        let form = &body[body
            .find("action=\"/documents/policy/us-consumer/3/activate\"")
            .unwrap()..];
        let form = &form[..form.find("</form>").unwrap()];
        assert!(
            form.contains("name=\"reason\"") && form.contains("required"),
            "{form}"
        );
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
