//! Issue #13 through the router (`oneshot`): the timeline API and the account page's
//! timeline, the contact-history report (who may export it, its formats), global search
//! (the query is hostile input) and the links that reach the customer page from the
//! queue, the audit trail and the search. Responses are checked against `openapi.json`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use argent_server::OPENAPI;
use common::*;

/// `body` against the documented JSON schema of `method path status`.
fn check(method: &str, path: &str, status: StatusCode, body: &Value) {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let op = &doc["paths"][path][method.to_lowercase()];
    let schema = &op["responses"][status.as_str()]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} documents {status} as JSON"
    );
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    let v = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap();
    let errors: Vec<String> = v.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {errors:?}\n{body:#}"
    );
}

#[tokio::test]
async fn the_timeline_api_pages_newest_first_for_the_roles_that_may_read_it() {
    let f = fixture().await;
    let path = "/api/customers/{id}/timeline";
    for user in ["alice", "mo", "cy", "root"] {
        let (s, b) = f
            .as_user(user, Method::GET, "/api/customers/C-ANN/timeline", None)
            .await;
        assert_eq!(s, StatusCode::OK, "{user}: {b}");
        check("GET", path, s, &b);
        let kinds: Vec<&str> = b["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["kind"].as_str())
            .collect();
        for want in [
            "inbound",
            "tool.propose_plan",
            "approval.requested",
            "invoice.due",
        ] {
            assert!(kinds.contains(&want), "{want} in {kinds:?}");
        }
    }
    let (s, b) = f
        .as_user("eve", Method::GET, "/api/customers/C-ANN/timeline", None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    check("GET", path, s, &b);
    let (s, b) = f
        .as_user("alice", Method::GET, "/api/customers/NOBODY/timeline", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    check("GET", path, s, &b);
    for bad in ["limit=0", "limit=501", "after=nonsense", "after=1.zz"] {
        let (s, b) = f
            .as_user(
                "alice",
                Method::GET,
                &format!("/api/customers/C-ANN/timeline?{bad}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        check("GET", path, s, &b);
    }
    // Pages of 2 follow each other to the end.
    let (_, whole) = f
        .as_user(
            "alice",
            Method::GET,
            "/api/customers/C-ANN/timeline?limit=500",
            None,
        )
        .await;
    let total = whole["total"].as_u64().unwrap() as usize;
    let mut seen = Vec::new();
    let mut uri = "/api/customers/C-ANN/timeline?limit=2".to_string();
    loop {
        let (s, b) = f.as_user("alice", Method::GET, &uri, None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        for e in b["entries"].as_array().unwrap() {
            seen.push(e["title"].clone());
        }
        match b["next"].as_str() {
            Some(n) => uri = format!("/api/customers/C-ANN/timeline?limit=2&after={n}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), total);
    let all: Vec<Value> = whole["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].clone())
        .collect();
    assert_eq!(seen, all);
}

#[tokio::test]
async fn the_contact_report_is_for_compliance_managers_and_admins_in_three_formats() {
    let f = fixture().await;
    let path = "/api/customers/{id}/contacts";
    // Something to report: a collector logged a conversation.
    f.store()
        .log_call(
            "log-x",
            "C-ANN",
            "2026-11-20T15:30:00Z".parse().unwrap(),
            true,
            None,
            "collector:alice",
            None,
        )
        .await
        .unwrap();
    for user in ["cy", "mo", "root"] {
        let (s, b) = f
            .as_user(user, Method::GET, "/api/customers/C-ANN/contacts", None)
            .await;
        assert_eq!(s, StatusCode::OK, "{user}: {b}");
        check("GET", path, s, &b);
        assert_eq!(b["time_zone"], "America/Chicago");
        let rows = b["attempts"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{b}");
        assert_eq!(rows[0]["channel"], "phone");
        assert_eq!(rows[0]["delivered"], true);
        assert_eq!(rows[0]["at_local"], "2026-11-20T09:30:00-06:00");
    }
    // A collector works from the timeline; the compliance export is not theirs.
    for user in ["alice", "eve"] {
        let (s, b) = f
            .as_user(user, Method::GET, "/api/customers/C-ANN/contacts", None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{user}");
        check("GET", path, s, &b);
    }
    let (s, h, body) = call(
        &f.app,
        Method::GET,
        "/api/customers/C-ANN/contacts?format=csv&from=2026-11-01&to=2026-11-30",
        Some(&f.tokens["cy"]),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "text/csv; charset=utf-8");
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .contains("argent-contacts-C-ANN.csv")
    );
    let text = body.as_str().unwrap();
    assert!(
        text.starts_with("at_utc,at_local,time_zone,channel,"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2);
    let (s, h, body) = call(
        &f.app,
        Method::GET,
        "/api/customers/C-ANN/contacts?format=jsonl",
        Some(&f.tokens["cy"]),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/x-ndjson");
    // One line: the body parses as that one JSON object.
    assert_eq!(body["channel"], "phone");
    // Outside the period: nothing.
    let (_, b) = f
        .as_user(
            "cy",
            Method::GET,
            "/api/customers/C-ANN/contacts?to=2026-11-19",
            None,
        )
        .await;
    assert_eq!(b["attempts"].as_array().unwrap().len(), 0);
    for bad in [
        "format=xml",
        "from=2026-11-21&to=2026-11-20",
        "from=yesterday",
        "to=2300-01-01",
    ] {
        let (s, b) = f
            .as_user(
                "cy",
                Method::GET,
                &format!("/api/customers/C-ANN/contacts?{bad}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        check("GET", path, s, &b);
    }
}

#[tokio::test]
async fn search_is_literal_bounded_and_links_to_the_customer_page() {
    let f = fixture().await;
    let path = "/api/search";
    let (s, b) = f
        .as_user("alice", Method::GET, "/api/search?q=ANN", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    check("GET", path, s, &b);
    let hits = b["hits"].as_array().unwrap();
    assert!(
        hits.iter()
            .any(|h| h["customer_id"] == "C-ANN" && h["href"] == "/accounts/C-ANN"),
        "{b}"
    );
    assert!(hits.iter().all(|h| h["customer_id"] == "C-ANN"), "{b}");
    // `%` and `_` are not wildcards; a quote is a quote.
    for q in ["%25", "_", "%27", "%27%20OR%20%271%27%3D%271", "%5C"] {
        let (s, b) = f
            .as_user("alice", Method::GET, &format!("/api/search?q={q}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{q}: {b}");
        assert_eq!(b["hits"], json!([]), "{q}");
    }
    let (_, b) = f
        .as_user(
            "cy",
            Method::GET,
            "/api/search?q=mail.example&limit=1",
            None,
        )
        .await;
    assert_eq!(b["hits"].as_array().unwrap().len(), 1);
    for bad in ["", "?q=", "?q=%20%20", "?q=a&limit=0", "?q=a&limit=101"] {
        let (s, b) = f
            .as_user("alice", Method::GET, &format!("/api/search{bad}"), None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        check("GET", path, s, &b);
    }
    let long = "x".repeat(201);
    let (s, _) = f
        .as_user("alice", Method::GET, &format!("/api/search?q={long}"), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, b) = f
        .as_user("eve", Method::GET, "/api/search?q=ann", None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    check("GET", path, s, &b);
}

#[tokio::test]
async fn the_pages_reach_the_customer_page_and_show_its_timeline() {
    let f = fixture().await;
    let mut alice = Browser::sign_in(&f.app, "alice").await;
    // Search → the customer's page.
    let res = alice.get("/search?q=inv-ann").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(
        res.body.contains("href=\"/accounts/C-ANN\""),
        "{}",
        res.body
    );
    let res = alice.get("/search?q=%25").await;
    assert!(res.body.contains("No customer matches."));
    // The queue links to it.
    let res = alice.get("/queue").await;
    assert!(
        res.body.contains("href=\"/accounts/C-ANN\""),
        "{}",
        res.body
    );
    // The page shows the timeline; a collector gets neither the audit nor the report link.
    let res = alice.get("/accounts/C-ANN").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.contains("id=\"timeline-entries\""));
    assert!(
        res.body.contains("<code>approval.requested</code>"),
        "{}",
        res.body
    );
    assert!(!res.body.contains("id=\"contacts-report\""));
    assert!(!res.body.contains("id=\"account-audit\""));
    let res = alice.get("/accounts/C-ANN/contacts").await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    let mut cy = Browser::sign_in(&f.app, "cy").await;
    let res = cy.get("/accounts/C-ANN").await;
    assert!(res.body.contains("id=\"contacts-report\""));
    // (Handlebars escapes `=` in attributes; a browser reads it back.)
    assert!(
        res.body
            .contains("href=\"/audit?customer_id&#x3D;C-ANN&amp;since&#x3D;"),
        "{}",
        res.body
    );
    // The audit trail links each customer id to the page.
    let res = cy.get("/audit?customer_id=C-ANN").await;
    assert!(
        res.body.contains("href=\"/accounts/C-ANN\""),
        "{}",
        res.body
    );
    let res = cy.get("/accounts/C-ANN/contacts?from=2026-11-01").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(res.body.contains("id=\"attempts\""));
    assert!(
        res.body
            .contains("from&#x3D;2026-11-01&amp;format&#x3D;csv"),
        "{}",
        res.body
    );
    let res = cy.get("/accounts/C-ANN/contacts?format=csv").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.content_type, "text/csv; charset=utf-8");
    // Older entries are a page away.
    let res = cy.get("/accounts/C-ANN").await;
    let total: usize = f
        .store()
        .timeline(
            "C-ANN",
            &argent_store::TimelineQuery {
                limit: 500,
                after: None,
                as_of: d("2026-11-20"),
                promise_grace_days: 3,
            },
        )
        .await
        .unwrap()
        .total;
    assert_eq!(res.body.contains("id=\"timeline-older\""), total > 50);
}
