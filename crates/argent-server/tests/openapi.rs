//! `/openapi.json` is the contract of the JSON API: it lists exactly the operations the
//! router serves, and real responses validate against the schemas it documents.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use argent_server::{OPENAPI, api_operations};
use common::*;

fn doc() -> Value {
    serde_json::from_str(OPENAPI).unwrap()
}

/// A validator for the documented schema `name`, `$ref`s resolved inside the document.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap()
}

/// Checks `body` against the operation's documented response for `status`.
fn check(doc: &Value, method: &str, path: &str, status: StatusCode, body: &Value) {
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is documented");
    let resp = &op["responses"][status.as_str()];
    assert!(
        resp.is_object(),
        "{method} {path} documents status {status}"
    );
    let schema = &resp["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status} has a JSON schema"
    );
    let v = validator(doc, schema);
    let errors: Vec<String> = v
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: the response does not match the document:\n{}\n{body:#}",
        errors.join("\n")
    );
}

#[tokio::test]
async fn the_document_lists_exactly_the_operations_served() {
    let f = fixture().await;
    let (status, headers, served) = call(&f.app, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK, "served without signing in");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(served, doc());
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(|m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let routed: BTreeSet<(String, String)> = api_operations()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p))
        .collect();
    assert_eq!(documented, routed);

    // Each one really is routed: without a token it is 401 (or, for login, a 4xx about the
    // body), never 404 or 405.
    for (method, path) in &routed {
        let uri = path.replace("{id}", &f.ann[0]);
        let (status, _, body) = call(
            &f.app,
            method.parse().unwrap(),
            &uri,
            None,
            (method == "POST").then(|| json!({})),
        )
        .await;
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: {status}"
        );
        if path != "/api/login" {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
            check(&doc, method, path, status, &body);
        }
    }

    // Every schema a document names exists, and each compiles.
    let text = OPENAPI;
    for part in text.split("\"$ref\": \"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{name} is defined"
        );
        validator(
            &doc,
            &json!({"$ref": format!("#/components/schemas/{name}")}),
        );
    }
}

#[tokio::test]
async fn real_responses_match_the_documented_schemas() {
    let f = fixture().await;
    let doc = doc();
    let (s, _, body) = call(
        &f.app,
        Method::POST,
        "/api/login",
        None,
        Some(json!({"name": "alice", "password": PASSWORD})),
    )
    .await;
    check(&doc, "POST", "/api/login", s, &body);
    let (s, _, body) = call(
        &f.app,
        Method::POST,
        "/api/login",
        None,
        Some(json!({"name": "alice", "password": "wrong password"})),
    )
    .await;
    check(&doc, "POST", "/api/login", s, &body);

    let get = |user: &'static str, uri: String| {
        let f = &f;
        async move { f.as_user(user, Method::GET, &uri, None).await }
    };
    for (user, path, uri) in [
        ("alice", "/api/me", "/api/me".to_string()),
        (
            "alice",
            "/api/approvals",
            "/api/approvals?status=all".to_string(),
        ),
        (
            "alice",
            "/api/approvals/{id}",
            format!("/api/approvals/{}", f.ann[0]),
        ),
        (
            "alice",
            "/api/approvals/{id}",
            "/api/approvals/apr-nope".to_string(),
        ),
        ("alice", "/api/aging", "/api/aging".to_string()),
        ("alice", "/api/aging", "/api/aging?dso_days=0".to_string()),
        ("cy", "/api/audit", "/api/audit?limit=1000".to_string()),
        ("cy", "/api/audit/verify", "/api/audit/verify".to_string()),
        ("alice", "/api/audit", "/api/audit".to_string()),
    ] {
        let (s, body) = get(user, uri.clone()).await;
        check(&doc, "GET", path, s, &body);
    }

    let post = |user: &'static str, uri: String, body: Value| {
        let f = &f;
        async move { f.as_user(user, Method::POST, &uri, Some(body)).await }
    };
    let cases = [
        (
            "alice",
            "/api/approvals/{id}/preview",
            f.ann[0].clone(),
            json!({"args": ann_plan_fair()}),
        ),
        (
            "alice",
            "/api/approvals/{id}/preview",
            f.ann[0].clone(),
            json!({"args": {"customer_id": 5}}),
        ),
        (
            "alice",
            "/api/approvals/{id}/approve",
            f.ann[0].clone(),
            json!({"note": "ok"}),
        ),
        (
            "alice",
            "/api/approvals/{id}/approve",
            f.ann[0].clone(),
            json!({}),
        ),
        (
            "alice",
            "/api/approvals/{id}/edit",
            f.ann[1].clone(),
            json!({"args": ann_plan_fair()}),
        ),
        (
            "alice",
            "/api/approvals/{id}/edit",
            f.ann[2].clone(),
            json!({"args": ann_plan_greedy()}),
        ),
        (
            "alice",
            "/api/approvals/{id}/reject",
            f.ann[3].clone(),
            json!({"note": "no"}),
        ),
        (
            "alice",
            "/api/approvals/{id}/reject",
            f.ann[4].clone(),
            json!({"note": ""}),
        ),
        (
            "cy",
            "/api/approvals/{id}/reject",
            f.ann[4].clone(),
            json!({"note": "no"}),
        ),
        ("alice", "/api/logout", String::new(), json!({})),
    ];
    let mut statuses = BTreeSet::new();
    for (user, path, id, body) in cases {
        let uri = path.replace("{id}", &id);
        let (s, res) = post(user, uri, body).await;
        statuses.insert(s.as_u16());
        check(&doc, "POST", path, s, &res);
    }
    // The cases cover success and each documented refusal.
    assert_eq!(
        statuses,
        BTreeSet::from([200, 403, 409, 422]),
        "the cases exercise what they mean to"
    );
}

#[tokio::test]
async fn document_and_eval_responses_match_the_documented_schemas() {
    let f = fixture_with(argent_server::ServerConfig {
        evals_dir: Some(repo("evals/core")),
        eval_filter: Some("tag:injection".into()),
        ..argent_server::ServerConfig::default()
    })
    .await;
    let doc = doc();
    let b2b = f
        .store()
        .document(argent_store::DocKind::Policy, "b2b", 1)
        .await
        .unwrap()
        .body;
    let edited = b2b.replacen('\n', "\n# a reviewed comment\n", 1);
    let mut statuses = BTreeSet::new();
    let mut go = async |user: &str, method: Method, path: &str, uri: &str, body: Option<Value>| {
        let (s, res) = f.as_user(user, method.clone(), uri, body).await;
        statuses.insert(s.as_u16());
        check(&doc, method.as_str(), path, s, &res);
        res
    };
    go("mo", Method::GET, "/api/documents", "/api/documents", None).await;
    go(
        "mo",
        Method::GET,
        "/api/documents/{kind}/{name}",
        "/api/documents/policy/b2b",
        None,
    )
    .await;
    go(
        "mo",
        Method::GET,
        "/api/documents/{kind}/{name}",
        "/api/documents/policy/nope",
        None,
    )
    .await;
    go(
        "mo",
        Method::GET,
        "/api/documents/{kind}/{name}/{version}",
        "/api/documents/policy/b2b/1",
        None,
    )
    .await;
    let v = "/api/documents/{kind}/{name}/validate";
    let ok = go(
        "eve",
        Method::POST,
        v,
        "/api/documents/policy/b2b/validate",
        Some(json!({"body": edited})),
    )
    .await;
    assert_eq!(ok["valid"], true, "{ok}");
    let bad = go(
        "eve",
        Method::POST,
        v,
        "/api/documents/policy/b2b/validate",
        Some(json!({"body": "id = ["})),
    )
    .await;
    assert_eq!(bad["valid"], false);
    assert_eq!(bad["errors"][0]["line"], 1, "{bad}");
    let c = "/api/documents/{kind}/{name}";
    let draft = go(
        "mo",
        Method::POST,
        c,
        "/api/documents/policy/b2b",
        Some(json!({"body": edited, "note": "comment"})),
    )
    .await;
    assert_eq!(draft["version"], 2);
    go(
        "mo",
        Method::POST,
        c,
        "/api/documents/policy/b2b",
        Some(json!({"body": "id = ["})),
    )
    .await;
    // Four eyes: a request, then a second person's decision.
    let a = "/api/documents/{kind}/{name}/{version}/activate";
    let b2b2 = "/api/documents/policy/b2b/2/activate";
    go("eve", Method::POST, a, b2b2, Some(json!({"reason": "x"}))).await;
    go("mo", Method::POST, a, b2b2, Some(json!({}))).await;
    let req = go(
        "mo",
        Method::POST,
        a,
        b2b2,
        Some(json!({"reason": "comment"})),
    )
    .await;
    go(
        "mo",
        Method::POST,
        a,
        b2b2,
        Some(json!({"reason": "again"})),
    )
    .await;
    let id = req["id"].as_str().unwrap().to_string();
    let l = "/api/document-requests";
    go("eve", Method::GET, l, l, None).await;
    go("eve", Method::GET, l, &format!("{l}?status=all"), None).await;
    let ap = "/api/document-requests/{id}/approve";
    let rj = "/api/document-requests/{id}/reject";
    go(
        "mo",
        Method::POST,
        ap,
        &format!("{l}/{id}/approve"),
        Some(json!({})),
    )
    .await;
    go(
        "cy",
        Method::POST,
        ap,
        &format!("{l}/dr-nope/approve"),
        Some(json!({})),
    )
    .await;
    let done = go(
        "cy",
        Method::POST,
        ap,
        &format!("{l}/{id}/approve"),
        Some(json!({"note": "ok"})),
    )
    .await;
    assert_eq!(done["document"]["status"], "active", "{done}");
    assert!(done["rejudged"].is_object(), "{done}");
    go(
        "cy",
        Method::POST,
        ap,
        &format!("{l}/{id}/approve"),
        Some(json!({})),
    )
    .await;
    let r = "/api/documents/{kind}/{name}/rollback";
    let rb = go(
        "mo",
        Method::POST,
        r,
        "/api/documents/policy/b2b/rollback",
        Some(json!({"reason": "undo"})),
    )
    .await;
    let rid = rb["id"].as_str().unwrap().to_string();
    go(
        "root",
        Method::POST,
        rj,
        &format!("{l}/{rid}/reject"),
        Some(json!({"note": "no"})),
    )
    .await;
    go(
        "cy",
        Method::POST,
        rj,
        &format!("{l}/{rid}/reject"),
        Some(json!({})),
    )
    .await;
    let rejected = go(
        "cy",
        Method::POST,
        rj,
        &format!("{l}/{rid}/reject"),
        Some(json!({"note": "keep it"})),
    )
    .await;
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    let back = go(
        "mo",
        Method::POST,
        r,
        "/api/documents/policy/b2b/rollback",
        Some(json!({"reason": "now", "emergency": true})),
    )
    .await;
    assert_eq!(back["document"]["version"], 1, "{back}");
    // Over the size cap: 413.
    go(
        "eve",
        Method::POST,
        v,
        "/api/documents/policy/b2b/validate",
        Some(json!({"body": "#".repeat(64 * 1024 + 1)})),
    )
    .await;
    // Held CPU slots keep the run going while a second one of the same user is refused.
    let hold = f.state.cpu.hold_all().await.unwrap();
    let started = go("eve", Method::POST, "/api/evals", "/api/evals", None).await;
    let id = started["id"].as_str().unwrap().to_string();
    go("eve", Method::POST, "/api/evals", "/api/evals", None).await;
    drop(hold);
    for _ in 0..600 {
        if f.store().eval_run(&id).await.unwrap().run.status != argent_store::EvalRunStatus::Running
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let run = go(
        "eve",
        Method::GET,
        "/api/evals/{id}",
        &format!("/api/evals/{id}"),
        None,
    )
    .await;
    assert_eq!(run["status"], "done", "{run}");
    go("eve", Method::GET, "/api/evals", "/api/evals", None).await;
    go(
        "eve",
        Method::GET,
        "/api/evals/{id}",
        "/api/evals/eval-nope",
        None,
    )
    .await;
    assert_eq!(
        statuses,
        BTreeSet::from([200, 201, 202, 403, 404, 409, 413, 422, 429]),
        "the cases exercise what they mean to"
    );
}

/// Sends a raw request (any body, any content type) with the admin's token.
async fn raw(
    f: &Fixture,
    method: &Method,
    uri: &str,
    content_type: Option<&str>,
    body: &'static str,
) -> (StatusCode, Value) {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut req = axum::http::Request::builder()
        .method(method.clone())
        .uri(uri)
        .header("authorization", format!("Bearer {}", f.tokens["root"]));
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = f
        .app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// What an API fuzzer (schemathesis in `.ci/api_fuzz.sh`) sends first: bodies that are not
/// JSON, JSON of the wrong shape, no content type, path parameters of the wrong kind. Each
/// must get a status the document lists for that operation, with the documented `Error`
/// body — never an undocumented status, never a 5xx.
#[tokio::test]
async fn malformed_requests_answer_documented_statuses() {
    let f = fixture().await;
    let doc = doc();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // Fill path parameters with values of the wrong kind or that name nothing.
            let uri = path
                .replace("{id}", "not-an-id")
                .replace(
                    "{kind}",
                    if path.ends_with("/validate") {
                        "no-such-kind"
                    } else {
                        "prompt"
                    },
                )
                .replace("{name}", "system")
                .replace("{version}", "not-a-number");
            if op.get("requestBody").is_some() {
                for (ct, body) in [
                    (None, "{}"),
                    (Some("text/plain"), "{}"),
                    (Some("application/json"), "{not json"),
                    (Some("application/json"), "[1, 2, 3]"),
                    (Some("application/json"), "{\"unexpected\": true}"),
                ] {
                    let (s, b) = raw(&f, &m, &uri, ct, body).await;
                    if s.is_success() {
                        continue; // an operation whose fields are all optional
                    }
                    check(&doc, method, path, s, &b);
                    checked += 1;
                }
            }
            let queries: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str())
                .collect();
            for q in queries {
                for junk in [
                    "-99999999999999999999999",
                    "%FF%FE",
                    "-262143-01-01",
                    "9223372036854775807",
                ] {
                    let (s, b) = raw(&f, &m, &format!("{uri}?{q}={junk}"), None, "").await;
                    if !s.is_success() {
                        check(&doc, method, path, s, &b);
                        checked += 1;
                    }
                }
            }
            if op.get("requestBody").is_none() && uri != *path {
                let (s, b) = raw(&f, &m, &uri, None, "").await;
                if !s.is_success() {
                    check(&doc, method, path, s, &b);
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked > 40,
        "only {checked} malformed requests were checked"
    );
}

#[tokio::test]
async fn facts_responses_match_the_documented_schemas() {
    let f = fixture().await;
    let doc = doc();
    let path = "/api/customers/{id}/facts";
    let full = json!({
        "cease_contact_pending": true,
        "attorney_name": "J. Law",
        "validation_notice": {"sent_on": "2026-01-05", "channel": "letter"},
        "region": "NY",
        "acknowledged_on": "2024-02-01",
        "invoice_acknowledged_on": {"INV-ANN-1": "2024-03-01"},
        "inconvenient_times": [{"from": "21:00:00", "to": "08:00:00"}],
        "workplace_addresses": ["ann@work.example"],
        "preferred_channel": "email",
        "customer_offer": {"amount_minor": 5000, "currency": "USD", "received_on": "2026-01-10"},
        "limits": {"max_discount_bps": 1500}
    });
    let mut statuses = BTreeSet::new();
    for (user, method, id, body) in [
        ("alice", Method::GET, "C-ANN", None),
        ("alice", Method::GET, "NOBODY", None),
        ("eve", Method::GET, "C-ANN", None),
        ("mo", Method::PUT, "C-ANN", Some(full.clone())),
        ("alice", Method::GET, "C-ANN", None),
        ("alice", Method::PUT, "C-ANN", Some(json!({}))),
        ("cy", Method::PUT, "C-ANN", Some(full.clone())),
        ("mo", Method::PUT, "NOBODY", Some(full.clone())),
        (
            "mo",
            Method::PUT,
            "C-ANN",
            Some(json!({"limits": {"max_discount_bps": 20000}})),
        ),
        ("mo", Method::PUT, "C-ANN", Some(json!({"region": 5}))),
    ] {
        let uri = path.replace("{id}", id);
        let (s, res) = f.as_user(user, method.clone(), &uri, body).await;
        statuses.insert(s.as_u16());
        check(&doc, method.as_str(), path, s, &res);
    }
    assert_eq!(
        statuses,
        BTreeSet::from([200, 403, 404, 422]),
        "the cases exercise what they mean to"
    );
}

/// The collections desk's API: credit holds (the ERP export) and agency referrals with
/// their packages, decided by a manager only, once; every answer as documented.
#[tokio::test]
async fn desk_responses_match_the_documented_schemas() {
    let f = fixture().await;
    let doc = doc();
    let store = f.ts.store.clone();
    let now = chrono::Utc::now();
    store
        .place_credit_hold(&argent_store::NewCreditHold {
            id: "hold-1".into(),
            customer_id: "C-ANN".into(),
            reason: "procedure standard v1 step credit_hold".into(),
            placed_by: "worker".into(),
            work_id: Some("work-1".into()),
            now,
        })
        .await
        .unwrap();
    let package = json!({
        "format": "argent.referral-package/1", "generated_at": now, "customer": {"id": "C-BO"},
        "invoices": [{"number": "INV-BO-1"}], "payments": [], "promises": [], "cases": [],
        "contact_history": [],
        "audit_extract": [{"seq": 1, "at": now, "actor": "agent", "kind": "run_started", "hash": "a", "prev_hash": "b"}],
    });
    let mut tx = store.begin().await.unwrap();
    for id in ["REF-1", "REF-2"] {
        tx.create_referral(&argent_store::NewReferral {
            id: id.into(),
            customer_id: "C-BO".into(),
            reason: "procedure standard v1 step agency_referral".into(),
            package: package.clone(),
            work_id: Some(format!("work-{id}")),
            created_by: "worker".into(),
            now,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let mut statuses = BTreeSet::new();
    for (user, method, uri, body) in [
        ("alice", Method::GET, "/api/credit-holds", None),
        ("cy", Method::GET, "/api/credit-holds?status=all", None),
        ("eve", Method::GET, "/api/credit-holds", None),
        (
            "alice",
            Method::GET,
            "/api/credit-holds?status=cleared",
            None,
        ),
        ("mo", Method::GET, "/api/referrals", None),
        ("alice", Method::GET, "/api/referrals", None),
        ("mo", Method::GET, "/api/referrals?status=nope", None),
        ("cy", Method::GET, "/api/referrals/REF-1/package", None),
        ("mo", Method::GET, "/api/referrals/NOPE/package", None),
        (
            "root",
            Method::POST,
            "/api/referrals/REF-1/approve",
            Some(json!({})),
        ),
        (
            "alice",
            Method::POST,
            "/api/referrals/REF-1/approve",
            Some(json!({})),
        ),
        (
            "mo",
            Method::POST,
            "/api/referrals/REF-1/approve",
            Some(json!({"note": "agency A"})),
        ),
        (
            "mo",
            Method::POST,
            "/api/referrals/REF-1/reject",
            Some(json!({"note": "too late"})),
        ),
        (
            "mo",
            Method::POST,
            "/api/referrals/REF-2/reject",
            Some(json!({})),
        ),
        (
            "mo",
            Method::POST,
            "/api/referrals/REF-2/reject",
            Some(json!({"note": "paid meanwhile"})),
        ),
        (
            "mo",
            Method::POST,
            "/api/referrals/NOPE/approve",
            Some(json!({})),
        ),
    ] {
        let (s, res) = f.as_user(user, method.clone(), uri, body).await;
        statuses.insert(s.as_u16());
        let path = if uri.contains("/package") {
            "/api/referrals/{id}/package".to_string()
        } else if let Some(verb) = uri
            .strip_prefix("/api/referrals/")
            .and_then(|r| r.split('/').nth(1))
        {
            format!("/api/referrals/{{id}}/{verb}")
        } else {
            uri.split('?').next().unwrap().to_string()
        };
        check(&doc, method.as_str(), &path, s, &res);
        match (user, uri) {
            ("alice", "/api/credit-holds") => {
                assert_eq!(res["holds"][0]["customer_id"], "C-ANN");
                assert_eq!(res["holds"][0]["status"], "active");
            }
            ("cy", "/api/referrals/REF-1/package") => {
                assert_eq!(res["package"], package);
                assert_eq!(res["package_sha256"].as_str().unwrap().len(), 64);
            }
            ("mo", "/api/referrals") => assert_eq!(res["referrals"].as_array().unwrap().len(), 2),
            _ => {}
        }
    }
    assert_eq!(
        statuses,
        BTreeSet::from([200, 400, 403, 404, 409, 422]),
        "the cases exercise what they mean to"
    );
    let decided = store.referral("REF-1").await.unwrap();
    assert_eq!(decided.status, argent_store::ReferralStatus::Approved);
    assert_eq!(decided.decided_by.as_deref(), Some("mo"));
    let rejected = store.referral("REF-2").await.unwrap();
    assert_eq!(rejected.status, argent_store::ReferralStatus::Rejected);
    let events = store
        .audit_events(&argent_store::AuditFilter {
            customer_id: Some("C-BO".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "referral.approved").count(),
        1
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "referral.rejected").count(),
        1
    );
}

/// `POST /api/inbound` answers with what the document says: 202 and 200 with
/// `InboundReceived`, and `Error` bodies for 400, 401, 413 and 415.
#[tokio::test]
async fn inbound_responses_match_the_documented_schemas() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let token = "an-inbound-token-for-the-contract-test";
    let f = fixture_with(argent_server::ServerConfig {
        inbound_token: Some(token.into()),
        inbound_max_bytes: 4096,
        ..argent_server::ServerConfig::default()
    })
    .await;
    let doc = doc();
    let send = |auth: Option<&str>, ct: &str, body: Vec<u8>| {
        let mut req = axum::http::Request::builder()
            .method("POST")
            .uri("/api/inbound")
            .header("content-type", ct);
        if let Some(t) = auth {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let app = f.app.clone();
        async move {
            let res = app
                .oneshot(req.body(Body::from(body)).unwrap())
                .await
                .unwrap();
            let status = res.status();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let m = b"Message-ID: <contract@x>\r\nSubject: hi\r\n\r\nhello\r\n".to_vec();
    let cases = [
        (
            Some(token),
            "message/rfc822",
            m.clone(),
            StatusCode::ACCEPTED,
        ),
        (Some(token), "message/rfc822", m.clone(), StatusCode::OK),
        (
            Some(token),
            "message/rfc822",
            Vec::new(),
            StatusCode::BAD_REQUEST,
        ),
        (None, "message/rfc822", m.clone(), StatusCode::UNAUTHORIZED),
        (
            Some(token),
            "message/rfc822",
            vec![b'a'; 5000],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Some(token),
            "text/plain",
            m.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    for (auth, ct, body, want) in cases {
        let (status, body) = send(auth, ct, body).await;
        assert_eq!(status, want, "{body}");
        check(&doc, "POST", "/api/inbound", status, &body);
    }
}

#[tokio::test]
async fn mail_responses_match_the_documented_schemas() {
    let f = fixture().await;
    let doc = doc();
    receive_unmatched(&f, "in-o1", "Someone <someone@example.org>", "A question").await;
    let (s, body) = f
        .as_user("alice", Method::GET, "/api/mail/unmatched", None)
        .await;
    check(&doc, "GET", "/api/mail/unmatched", s, &body);
    assert_eq!(body["items"][0]["id"], "in-o1");
    let (s, body) = f
        .as_user("alice", Method::GET, "/api/mail/unmatched?limit=0", None)
        .await;
    check(&doc, "GET", "/api/mail/unmatched", s, &body);
    let (s, body) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/mail/in-o1/assign",
            Some(json!({"customer_id": "C-ANN"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    check(&doc, "POST", "/api/mail/{id}/assign", s, &body);
    for (who, id, customer) in [
        ("alice", "in-o1", "C-ANN"),
        ("alice", "nope", "C-ANN"),
        ("cy", "in-o1", "C-ANN"),
        ("alice", "in-o1", " "),
    ] {
        let (s, body) = f
            .as_user(
                who,
                Method::POST,
                &format!("/api/mail/{id}/assign"),
                Some(json!({"customer_id": customer})),
            )
            .await;
        assert_ne!(s, StatusCode::OK);
        check(&doc, "POST", "/api/mail/{id}/assign", s, &body);
    }
}
