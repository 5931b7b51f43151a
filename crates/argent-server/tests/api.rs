//! The JSON API end to end through the router (`tower::ServiceExt::oneshot`, no socket) on
//! a real SQLite store: a small portfolio, approval items made by running the agent with a
//! scripted model, users of every role signed in through `POST /api/login`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::Utc;
use serde_json::{Value, json};
use tower::ServiceExt;

use argent_core::CustomerFlags;
use argent_server::{UserRole, create_user};
use argent_store::testkit::TestStore;
use argent_store::{ApprovalStatus, AuditFilter};
use common::*;
use http_body_util::BodyExt;

#[tokio::test]
async fn login_gives_a_bearer_token_that_is_stored_only_as_a_hash() {
    let f = fixture().await;
    let (s, _, body) = call(
        &f.app,
        Method::POST,
        "/api/login",
        None,
        Some(json!({"name": "alice", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["user"], json!({"name": "alice", "role": "collector"}));
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 64, "256 random bits, hex");
    assert!(
        f.store()
            .token_user(token, argent_store::TokenKind::Api, Utc::now())
            .await
            .unwrap()
            .is_none(),
        "the token itself is not what the store keeps"
    );
    assert!(
        f.store()
            .token_user(
                &argent_server::auth::hash_token(token),
                argent_store::TokenKind::Api,
                Utc::now()
            )
            .await
            .unwrap()
            .is_some()
    );
    let stored = f.store().user("alice").await.unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"));
    assert!(!stored.password_hash.contains(PASSWORD));

    let (s, _, me) = call(&f.app, Method::GET, "/api/me", Some(token), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["name"], "alice");

    // A wrong password and an unknown user get the same answer.
    let (s1, h1, wrong) = call(
        &f.app,
        Method::POST,
        "/api/login",
        None,
        Some(json!({"name": "alice", "password": "not it at all"})),
    )
    .await;
    let (s2, _, unknown) = call(
        &f.app,
        Method::POST,
        "/api/login",
        None,
        Some(json!({"name": "nobody", "password": PASSWORD})),
    )
    .await;
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(wrong["error"], unknown["error"]);
    assert!(h1.contains_key("www-authenticate"));

    // Logging out revokes exactly that token.
    let (s, _, _) = call(&f.app, Method::POST, "/api/logout", Some(token), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call(&f.app, Method::GET, "/api/me", Some(token), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = f.as_user("alice", Method::GET, "/api/me", None).await;
    assert_eq!(s, StatusCode::OK, "the fixture's own token still works");

    // Garbage and other schemes are not tokens.
    for auth in ["Bearer ", "Bearer nope", "Basic YWxpY2U6eA==", "bearer"] {
        let req = Request::builder()
            .uri("/api/me")
            .header("authorization", auth)
            .body(Body::empty())
            .unwrap();
        let res = f.app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{auth}");
    }
}

#[tokio::test]
async fn every_endpoint_checks_the_role_of_every_caller() {
    use UserRole::{Admin, Collector, Compliance, Evaluator, Manager};
    let f = fixture().await;
    let b2b = f
        .store()
        .document(argent_store::DocKind::Policy, "b2b", 1)
        .await
        .unwrap()
        .body;
    // Items consumed by a successful decision: one per (endpoint, allowed role).
    let mut fresh = f.ann.iter().cloned();
    let probe = f.ann[ANN_ITEMS - 1].clone(); // never decided here
    struct Endpoint {
        method: Method,
        /// `{id}` is replaced by an item id.
        path: &'static str,
        body: Option<Value>,
        allowed: &'static [UserRole],
        /// Whether success decides the item (then each success needs a fresh one).
        consumes: bool,
    }
    let endpoints = [
        Endpoint {
            method: Method::GET,
            path: "/api/me",
            body: None,
            allowed: &[Collector, Manager, Compliance, Evaluator, Admin],
            consumes: false,
        },
        Endpoint {
            method: Method::GET,
            path: "/api/approvals",
            body: None,
            allowed: &[Collector, Manager, Compliance, Admin],
            consumes: false,
        },
        Endpoint {
            method: Method::GET,
            path: "/api/approvals/{id}",
            body: None,
            allowed: &[Collector, Manager, Compliance, Admin],
            consumes: false,
        },
        Endpoint {
            method: Method::POST,
            path: "/api/approvals/{id}/preview",
            body: Some(json!({"args": ann_plan_fair()})),
            allowed: &[Collector, Manager, Admin],
            consumes: false,
        },
        Endpoint {
            method: Method::POST,
            path: "/api/approvals/{id}/approve",
            body: Some(json!({"note": "ok"})),
            allowed: &[Collector, Manager, Admin],
            consumes: true,
        },
        Endpoint {
            method: Method::POST,
            path: "/api/approvals/{id}/edit",
            body: Some(json!({"args": ann_plan_fair(), "note": "5% instead"})),
            allowed: &[Collector, Manager, Admin],
            consumes: true,
        },
        Endpoint {
            method: Method::POST,
            path: "/api/approvals/{id}/reject",
            body: Some(json!({"note": "no"})),
            allowed: &[Collector, Manager, Admin],
            consumes: true,
        },
        Endpoint {
            method: Method::GET,
            path: "/api/audit",
            body: None,
            allowed: &[Compliance, Manager, Admin],
            consumes: false,
        },
        Endpoint {
            method: Method::GET,
            path: "/api/audit/verify",
            body: None,
            allowed: &[Compliance, Manager, Admin],
            consumes: false,
        },
        Endpoint {
            method: Method::GET,
            path: "/api/aging",
            body: None,
            allowed: &[Collector, Manager, Compliance, Admin],
            consumes: false,
        },
        Endpoint {
            method: Method::GET,
            path: "/api/dashboard",
            body: None,
            allowed: &[Collector, Manager, Compliance, Admin],
            consumes: false,
        },
        Endpoint {
            method: Method::GET,
            path: "/api/audit/export?format=csv",
            body: None,
            allowed: &[Compliance, Manager, Admin],
            consumes: false,
        },
        Endpoint {
            method: Method::GET,
            path: "/api/documents",
            body: None,
            allowed: &[Manager, Compliance, Evaluator, Admin],
            consumes: false,
        },
        Endpoint {
            method: Method::GET,
            path: "/api/documents/policy/b2b",
            body: None,
            allowed: &[Manager, Compliance, Evaluator, Admin],
            consumes: false,
        },
        Endpoint {
            method: Method::GET,
            path: "/api/documents/policy/b2b/1",
            body: None,
            allowed: &[Manager, Compliance, Evaluator, Admin],
            consumes: false,
        },
        Endpoint {
            method: Method::POST,
            path: "/api/documents/policy/b2b/validate",
            body: Some(json!({"body": b2b.clone()})),
            allowed: &[Manager, Compliance, Evaluator, Admin],
            consumes: false,
        },
        Endpoint {
            method: Method::POST,
            path: "/api/documents/policy/b2b",
            body: Some(json!({"body": b2b.clone(), "note": "same words"})),
            allowed: &[Manager, Admin],
            consumes: false,
        },
        Endpoint {
            method: Method::GET,
            path: "/api/evals",
            body: None,
            allowed: &[Evaluator, Manager, Compliance, Admin],
            consumes: false,
        },
    ];
    let mut checked = 0;
    for ep in &endpoints {
        let probe_uri = ep.path.replace("{id}", &probe);
        // No token, and a token that was never issued: 401 before anything else.
        for token in [None, Some("0".repeat(64))] {
            let (s, h, b) = call(
                &f.app,
                ep.method.clone(),
                &probe_uri,
                token.as_deref(),
                ep.body.clone(),
            )
            .await;
            assert_eq!(
                s,
                StatusCode::UNAUTHORIZED,
                "{} {}: {b}",
                ep.method,
                ep.path
            );
            assert!(h.contains_key("www-authenticate"));
            assert!(b["request_id"].is_string());
        }
        for role in UserRole::ALL {
            let allowed = ep.allowed.contains(role);
            let uri = if allowed && ep.consumes {
                ep.path.replace("{id}", &fresh.next().unwrap())
            } else {
                probe_uri.clone()
            };
            let (s, b) = f
                .as_user(user_of(*role), ep.method.clone(), &uri, ep.body.clone())
                .await;
            if allowed {
                assert!(
                    s.is_success(),
                    "{role} {} {}: expected success, got {s} {b}",
                    ep.method,
                    ep.path
                );
            } else {
                assert_eq!(
                    s,
                    StatusCode::FORBIDDEN,
                    "{role} {} {}: {b}",
                    ep.method,
                    ep.path
                );
                assert!(b["error"].as_str().unwrap().contains(role.as_str()), "{b}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, endpoints.len() * UserRole::ALL.len());
    // Refused callers changed nothing: the probe item is still pending, and exactly the
    // nine allowed decisions were recorded.
    assert_eq!(
        f.store().approval(&probe).await.unwrap().status,
        ApprovalStatus::Pending
    );
    let decided = f
        .store()
        .audit_events(&AuditFilter {
            kind: Some("approval_decided".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(decided.len(), 9);
    let actors: Vec<&str> = decided.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(
        actors,
        [
            "collector:alice",
            "manager:mo",
            "admin:root",
            "collector:alice",
            "manager:mo",
            "admin:root",
            "collector:alice",
            "manager:mo",
            "admin:root"
        ]
    );
}

#[tokio::test]
async fn approve_executes_exactly_once_and_a_second_decision_is_a_conflict() {
    let f = fixture().await;
    let id = &f.ann[0];
    let uri = format!("/api/approvals/{id}/approve");
    // No body at all is fine for approve.
    let (s, b) = f.as_user("alice", Method::POST, &uri, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["approval_id"], id.as_str());
    assert_eq!(b["decision"]["outcome"], "needs_approval");
    assert_eq!(f.store().plans(None).await.unwrap().len(), 1);

    let (s, b) = f.as_user("mo", Method::POST, &uri, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(b["error"].as_str().unwrap().contains("already decided"));
    let (s, _) = f
        .as_user(
            "mo",
            Method::POST,
            &format!("/api/approvals/{id}/reject"),
            Some(json!({"note": "too late"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(f.store().plans(None).await.unwrap().len(), 1, "still one");
    let executed = f
        .store()
        .audit_events(&AuditFilter {
            kind: Some("executed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let by_review: Vec<_> = executed
        .iter()
        .filter(|e| e.payload["basis"] == "human_approval")
        .collect();
    assert_eq!(by_review.len(), 1);
    assert_eq!(by_review[0].actor, "collector:alice");

    let (s, item) = f
        .as_user("cy", Method::GET, &format!("/api/approvals/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(item["status"], "approved");
    assert_eq!(item["decided_by"], "alice");
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["tool"], "propose_plan");
    assert_eq!(item["decision"]["outcome"], "needs_approval");
    // The reviewer sees the account's aging beside the item: Ann's 1,200.00, 20 days late.
    let aging = item["aging"].as_array().unwrap();
    assert_eq!(aging.len(), 1, "{item}");
    assert_eq!(aging[0]["customer_id"], "C-ANN");
    assert_eq!(aging[0]["total"], 1200_00);
    assert_eq!(aging[0]["oldest_days_past_due"], 20);

    // Unknown items are 404, not 500.
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            "/api/approvals/apr-nope/approve",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
}

#[tokio::test]
async fn the_policy_decides_which_role_may_approve_an_item() {
    let f = fixture().await;
    let uri = format!("/api/approvals/{}/approve", f.bo);
    let (s, b) = f.as_user("alice", Method::POST, &uri, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(b["error"].as_str().unwrap().starts_with("not permitted"));
    assert_eq!(
        f.store().approval(&f.bo).await.unwrap().status,
        ApprovalStatus::Pending
    );
    let (s, b) = f.as_user("mo", Method::POST, &uri, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let plans = f.store().plans(Some("C-BO")).await.unwrap();
    assert_eq!(plans.len(), 1);
}

#[tokio::test]
async fn edits_are_previewed_and_judged_again() {
    let f = fixture().await;
    let id = &f.ann[0];
    let preview = format!("/api/approvals/{id}/preview");
    let edit = format!("/api/approvals/{id}/edit");

    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            &preview,
            Some(json!({"args": ann_plan_greedy()})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["decision"]["outcome"], "deny");
    assert_eq!(b["caller_may_submit"], false);
    assert_eq!(b["approvers"], json!([]));

    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            &preview,
            Some(json!({"args": ann_plan_fair()})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["decision"]["outcome"], "allow");
    assert_eq!(b["caller_may_submit"], true);

    // A denied edit is 422 with the rules that denied it.
    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            &edit,
            Some(json!({"args": ann_plan_greedy()})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let rules = b["rules"].as_array().unwrap();
    assert!(!rules.is_empty(), "{b}");
    assert!(
        rules
            .iter()
            .all(|r| r["outcome"] == "deny" && r["citation"].is_string())
    );
    assert!(
        rules
            .iter()
            .any(|r| r["id"].as_str().unwrap().contains("ceiling"))
    );

    // Arguments for another tool, or another customer, are invalid: 422.
    let email =
        json!({"customer_id": "C-ANN", "to": "ann@mail.example", "subject": "x", "body": "y"});
    let (s, b) = f
        .as_user("alice", Method::POST, &edit, Some(json!({"args": email})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b.get("rules").is_none());
    let mut other = ann_plan_fair();
    other["customer_id"] = json!("C-BO");
    let (s, _) = f
        .as_user("alice", Method::POST, &edit, Some(json!({"args": other})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // A body that is not the edit's shape is a client error, not a 500.
    let (s, b) = f
        .as_user("alice", Method::POST, &edit, Some(json!({"argz": 1})))
        .await;
    assert!(s.is_client_error(), "{s} {b}");
    // JSON sent without saying so is 415, as JSON like every other error.
    let req = Request::builder()
        .method(Method::POST)
        .uri(&edit)
        .header("authorization", format!("Bearer {}", f.tokens["alice"]))
        .body(Body::from(json!({"args": ann_plan_fair()}).to_string()))
        .unwrap();
    let res = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let b: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(b["request_id"].is_string(), "{b}");
    assert_eq!(
        f.store().approval(id).await.unwrap().status,
        ApprovalStatus::Pending,
        "failed edits change nothing"
    );
    assert!(f.store().plans(None).await.unwrap().is_empty());

    let (s, b) = f
        .as_user(
            "alice",
            Method::POST,
            &edit,
            Some(json!({"args": ann_plan_fair(), "note": "5% is the most we can do"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["decision"]["outcome"], "allow");
    let plans = f.store().plans(None).await.unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].discount_minor, 60_00);

    // A rejection needs a reason.
    let reject = format!("/api/approvals/{}/reject", f.ann[1]);
    let (s, _) = f
        .as_user("alice", Method::POST, &reject, Some(json!({"note": "  "})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = f
        .as_user(
            "alice",
            Method::POST,
            &reject,
            Some(json!({"note": "We offered 5% on the other one"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let item = f.store().approval(&f.ann[1]).await.unwrap();
    assert_eq!(item.status, ApprovalStatus::Rejected);
    assert_eq!(item.note.as_deref(), Some("We offered 5% on the other one"));
}

#[tokio::test]
async fn the_queue_lists_by_priority_with_filters_and_pages() {
    let f = fixture().await;
    let (s, b) = f
        .as_user("alice", Method::GET, "/api/approvals", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["total"], ANN_ITEMS + 1);
    let ids: Vec<&str> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = f
        .store()
        .approvals(Some(ApprovalStatus::Pending), 100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, expected);
    let priorities: Vec<i64> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["priority"].as_i64().unwrap())
        .collect();
    assert!(
        priorities.windows(2).all(|w| w[0] >= w[1]),
        "{priorities:?}"
    );
    // The higher-risk, larger account comes first.
    assert_eq!(b["items"][0]["customer_id"], "C-BO");

    let (_, page2) = f
        .as_user(
            "alice",
            Method::GET,
            "/api/approvals?limit=4&offset=4",
            None,
        )
        .await;
    let page_ids: Vec<&str> = page2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(page_ids, expected[4..8]);
    assert_eq!(
        (page2["limit"].as_i64(), page2["offset"].as_i64()),
        (Some(4), Some(4))
    );

    // Decide one; the filters see it move.
    f.as_user(
        "alice",
        Method::POST,
        &format!("/api/approvals/{}/reject", f.ann[0]),
        Some(json!({"note": "no"})),
    )
    .await;
    let (_, pending) = f
        .as_user("alice", Method::GET, "/api/approvals?status=pending", None)
        .await;
    assert_eq!(pending["total"], ANN_ITEMS);
    let (_, rejected) = f
        .as_user("alice", Method::GET, "/api/approvals?status=rejected", None)
        .await;
    assert_eq!(rejected["total"], 1);
    assert_eq!(rejected["items"][0]["id"], f.ann[0].as_str());
    let (_, all) = f
        .as_user("alice", Method::GET, "/api/approvals?status=all", None)
        .await;
    assert_eq!(all["total"], ANN_ITEMS + 1);

    for bad in [
        "/api/approvals?status=maybe",
        "/api/approvals?limit=0",
        "/api/approvals?limit=100000",
        "/api/approvals?offset=-1",
        "/api/approvals?limit=ten",
    ] {
        let (s, h, b) = call(&f.app, Method::GET, bad, Some(&f.tokens["alice"]), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        assert_eq!(
            b["request_id"].as_str().unwrap(),
            h["x-request-id"].to_str().unwrap(),
            "the body names the request the header names"
        );
    }
    let (s, b) = f
        .as_user("alice", Method::GET, "/api/approvals/apr-nope", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, h, b) = call(&f.app, Method::GET, "/api/nothing-here", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert_eq!(b["request_id"].as_str(), h["x-request-id"].to_str().ok());
    // A known path with the wrong method is a JSON 405, like every other error.
    let (s, h, b) = call(&f.app, Method::GET, "/api/login", None, None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{b}");
    assert_eq!(b["request_id"].as_str(), h["x-request-id"].to_str().ok());
}

#[tokio::test]
async fn compliance_reads_and_filters_the_audit_trail_and_its_chain() {
    let f = fixture().await;
    f.as_user(
        "alice",
        Method::POST,
        &format!("/api/approvals/{}/approve", f.ann[0]),
        None,
    )
    .await;
    let (s, b) = f
        .as_user("cy", Method::GET, "/api/audit?kind=approval_decided", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let events = b["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor"], "collector:alice");
    assert_eq!(events[0]["payload"]["approval_id"], f.ann[0].as_str());

    let (_, bo) = f
        .as_user(
            "cy",
            Method::GET,
            "/api/audit?customer_id=C-BO&limit=1000",
            None,
        )
        .await;
    let bo = bo["events"].as_array().unwrap();
    assert!(!bo.is_empty());
    assert!(bo.iter().all(|e| e["customer_id"] == "C-BO"));

    let (_, by_actor) = f
        .as_user("cy", Method::GET, "/api/audit?actor=collector:alice", None)
        .await;
    assert!(
        by_actor["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "collector:alice")
    );

    let (_, paged) = f
        .as_user("cy", Method::GET, "/api/audit?limit=2&offset=1", None)
        .await;
    let seqs: Vec<i64> = paged["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3]);

    let (_, later) = f
        .as_user(
            "cy",
            Method::GET,
            "/api/audit?since=2199-12-31T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(later["events"], json!([]));
    let (s, _) = f
        .as_user("cy", Method::GET, "/api/audit?since=yesterday", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, v) = f
        .as_user("cy", Method::GET, "/api/audit/verify", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "intact", "{v}");
    let total = f
        .store()
        .audit_events(&AuditFilter::default())
        .await
        .unwrap()
        .len();
    assert_eq!(v["events"], total);
}

#[tokio::test]
async fn aging_is_the_ledger_report() {
    let f = fixture().await;
    let (s, b) = f
        .as_user("alice", Method::GET, "/api/aging?as_of=2026-11-20", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ledger = f.store().ledger().await.unwrap();
    let expected =
        argent_core::ledger::aging_report(&ledger.invoices, &ledger.payments, d("2026-11-20"), 90)
            .unwrap();
    assert_eq!(b, serde_json::to_value(&expected).unwrap());
    assert_eq!(b["totals"][0]["total"], 16_200_00);
    assert_eq!(b["rows"][0]["customer_id"], "C-BO");
    // The default "today" is the agent's clock.
    let (_, today) = f.as_user("alice", Method::GET, "/api/aging", None).await;
    assert_eq!(today["as_of"], "2026-11-20");
    let (s, _) = f
        .as_user("alice", Method::GET, "/api/aging?dso_days=0", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_internal_error_is_an_opaque_500_with_a_request_id() {
    let f = fixture().await;
    f.store().close().await;
    let (s, h, b) = call(
        &f.app,
        Method::GET,
        "/api/approvals",
        Some(&f.tokens["alice"]),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(b["error"], "internal error");
    let id = b["request_id"].as_str().unwrap();
    assert_eq!(id.len(), 16);
    assert_eq!(h["x-request-id"].to_str().unwrap(), id);
    let text = b.to_string().to_lowercase();
    assert!(
        !text.contains("pool") && !text.contains("database") && !text.contains("sql"),
        "{b}"
    );
}

#[tokio::test]
async fn users_are_checked_before_they_are_stored() {
    let ts = TestStore::sqlite().await.unwrap();
    let s = &ts.store;
    create_user(s, "dana", UserRole::Evaluator, PASSWORD)
        .await
        .unwrap();
    assert!(matches!(
        create_user(s, "dana", UserRole::Admin, PASSWORD).await,
        Err(argent_server::AppError::Conflict(_))
    ));
    assert!(matches!(
        create_user(s, "short", UserRole::Admin, "1234567").await,
        Err(argent_server::AppError::BadRequest(_))
    ));
    assert!(matches!(
        create_user(s, "a b", UserRole::Admin, PASSWORD).await,
        Err(argent_server::AppError::BadRequest(_))
    ));
    assert_eq!(s.user("dana").await.unwrap().unwrap().role, "evaluator");
    assert!(s.user("short").await.unwrap().is_none());
    assert!(argent_server::verify_password(
        PASSWORD,
        &s.user("dana").await.unwrap().unwrap().password_hash
    ));
    ts.cleanup().await;
}

#[tokio::test]
async fn a_refused_role_learns_nothing_from_a_malformed_request() {
    let f = fixture().await;
    let id = &f.ann[0];
    for (user, path, body) in [
        (
            "cy",
            format!("/api/approvals/{id}/edit"),
            json!({"wrong": true}),
        ),
        ("eve", format!("/api/approvals/{id}/reject"), json!(42)),
        ("cy", format!("/api/approvals/{id}/approve"), json!("x")),
        ("alice", "/api/audit?limit=nope".to_string(), Value::Null),
        (
            "eve",
            "/api/approvals?status=maybe".to_string(),
            Value::Null,
        ),
    ] {
        let method = if path.contains("/api/approvals/") {
            Method::POST
        } else {
            Method::GET
        };
        let body = (!body.is_null()).then_some(body);
        let (s, b) = f.as_user(user, method, &path, body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{user} {path}: {b}");
    }
    // And without a token, nothing but 401.
    let (s, _, _) = call(
        &f.app,
        Method::POST,
        &format!("/api/approvals/{id}/edit"),
        None,
        Some(json!({"wrong": true})),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        f.store().approval(id).await.unwrap().status,
        ApprovalStatus::Pending
    );
}

#[tokio::test]
async fn approving_an_item_the_account_no_longer_allows_is_422_with_the_rules() {
    let f = fixture().await;
    let id = &f.ann[0];
    let mut tx = f.store().begin().await.unwrap();
    tx.set_customer_flags(
        "C-ANN",
        &CustomerFlags {
            cease_contact: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (s, b) = f
        .as_user(
            "mo",
            Method::POST,
            &format!("/api/approvals/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["error"].as_str().unwrap().starts_with("policy forbids"),
        "{b}"
    );
    let rules = b["rules"].as_array().unwrap();
    assert!(!rules.is_empty(), "{b}");
    assert!(
        rules
            .iter()
            .all(|r| r["outcome"] == "deny" && !r["citation"].as_str().unwrap().is_empty()),
        "{b}"
    );
    assert!(
        rules.iter().any(|r| b["error"]
            .as_str()
            .unwrap()
            .contains(r["id"].as_str().unwrap())),
        "the message and the rules name the same rule: {b}"
    );
    assert_eq!(
        f.store().approval(id).await.unwrap().status,
        ApprovalStatus::Pending
    );
    assert!(f.store().plans(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_throttled_per_user_name() {
    let f = fixture().await;
    let login = |name: &'static str, password: &'static str| {
        let app = f.app.clone();
        async move {
            call(
                &app,
                Method::POST,
                "/api/login",
                None,
                Some(json!({"name": name, "password": password})),
            )
            .await
        }
    };
    // A success in between resets the count.
    for _ in 0..4 {
        assert_eq!(
            login("alice", "guess guess").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(login("alice", PASSWORD).await.0, StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(
            login("alice", "guess guess").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // Now even the right password is refused, with when to come back.
    let (s, h, body) = login("alice", PASSWORD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("too many failed sign-ins")
    );
    // The name is the key, whatever its case; other users are not affected, and tokens
    // already issued keep working.
    assert_eq!(
        login("ALICE", PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(login("mo", PASSWORD).await.0, StatusCode::OK);
    let (s, _) = f.as_user("alice", Method::GET, "/api/me", None).await;
    assert_eq!(s, StatusCode::OK);
}
