//! The procedures' JSON API: one customer's place in its procedure and the managers'
//! summary, after a tick; who may read them; answers match openapi.json.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use argent_agent::tick::{active_procedures, tick};
use argent_server::OPENAPI;
use common::*;

fn check(method: &str, path: &str, status: StatusCode, body: &Value) {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let schema = &doc["paths"][path][method.to_lowercase()]["responses"][status.as_str()]["content"]
        ["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} documents {status}");
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
async fn procedure_state_and_summary_after_a_tick() {
    let f = fixture().await;
    let cust = "/api/customers/{id}/procedure";
    // Before any tick: known customer, no state.
    let (s, b) = f
        .as_user("alice", Method::GET, "/api/customers/C-ANN/procedure", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["state"], Value::Null);
    check("GET", cust, s, &b);

    let set = active_procedures(f.store()).await.unwrap();
    let r = tick(f.store(), &set, now(), 100).await.unwrap();
    assert_eq!(r.customers, 2);

    let (s, b) = f
        .as_user("alice", Method::GET, "/api/customers/C-ANN/procedure", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["customer_id"], "C-ANN");
    assert!(b["state"]["status"].is_string(), "{b:#}");
    check("GET", cust, s, &b);
    let (s, b) = f
        .as_user(
            "alice",
            Method::GET,
            "/api/customers/NOBODY/procedure",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    check("GET", cust, s, &b);
    let (s, b) = f
        .as_user("eve", Method::GET, "/api/customers/C-ANN/procedure", None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an evaluator reads no accounts");
    check("GET", cust, s, &b);

    let sum = "/api/procedures/summary";
    let day = now().date_naive().to_string();
    let (s, b) = f
        .as_user("mo", Method::GET, &format!("{sum}?day={day}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    check("GET", sum, s, &b);
    let total: i64 = b["procedures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["accounts"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 2, "{b:#}");
    let due_today: i64 = b["procedures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["due_today"].as_i64().unwrap())
        .sum();
    assert_eq!(due_today as usize, r.due, "{b:#}");
    let (s, b) = f
        .as_user("mo", Method::GET, &format!("{sum}?day=tomorrow"), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    check("GET", sum, s, &b);
    let (s, b) = f.as_user("eve", Method::GET, sum, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    check("GET", sum, s, &b);
}
