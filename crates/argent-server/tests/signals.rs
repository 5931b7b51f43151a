//! `/signals` and its API: what customers said, confirmed or cleared by a person (collector,
//! manager, admin; compliance reads), each answer checked against `openapi.json`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use argent_agent::signals::record_inbound_signals;
use argent_core::Channel;
use argent_server::OPENAPI;
use common::browser::{Browser, html_unescape};
use common::*;

/// Checks `body` against the operation's documented response for `status`.
fn check(method: &str, path: &str, status: StatusCode, body: &Value) {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is documented");
    let schema = &op["responses"][status.as_str()]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} documents status {status}"
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
    let errors: Vec<String> = v
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}:\n{}\n{body:#}",
        errors.join("\n")
    );
}

/// Ann wrote "STOP" and named her attorney: two pending signals.
async fn ann_wrote(f: &Fixture) -> (String, String) {
    let recorded = record_inbound_signals(
        f.store(),
        "agent",
        None,
        "C-ANN",
        "ann@mail.example",
        "Re: Your account",
        "STOP\n\nMy attorney is Jane Roe of Roe & Partners LLP.",
        now(),
    )
    .await
    .unwrap();
    assert_eq!(recorded.len(), 2);
    (recorded[0].id.clone(), recorded[1].id.clone())
}

#[tokio::test]
async fn the_api_lists_confirms_and_clears_and_answers_as_documented() {
    let f = fixture().await;
    let (opt_out, attorney) = ann_wrote(&f).await;
    let list = "/api/signals";
    let mut seen = std::collections::BTreeSet::new();
    let mut go = async |user: &str, method: Method, path: &str, uri: &str, body: Option<Value>| {
        let (s, res) = f.as_user(user, method.clone(), uri, body).await;
        seen.insert(s.as_u16());
        check(method.as_str(), path, s, &res);
        (s, res)
    };

    // Compliance reads.
    let (s, page) = go("cy", Method::GET, list, list, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["total"], 2);
    let kinds: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&"opt_out") && kinds.contains(&"attorney"));
    let att = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "attorney")
        .unwrap();
    assert_eq!(
        att["excerpt"],
        "My attorney is Jane Roe of Roe & Partners LLP."
    );
    assert_eq!(
        att["detail"]["attorney_name"],
        "Jane Roe of Roe & Partners LLP"
    );
    let (s, _) = go(
        "cy",
        Method::GET,
        list,
        "/api/signals?status=whatever",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, mine) = go(
        "alice",
        Method::GET,
        list,
        "/api/signals?status=all&customer=C-BO",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(mine["items"].as_array().unwrap().is_empty());

    // Compliance and evaluators decide nothing.
    let confirm = "/api/signals/{id}/confirm";
    let clear = "/api/signals/{id}/clear";
    for user in ["cy", "eve"] {
        let (s, _) = go(
            user,
            Method::POST,
            confirm,
            &format!("/api/signals/{attorney}/confirm"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{user}");
    }
    let c = f.store().customer("C-ANN").await.unwrap();
    assert!(c.facts.attorney_suspected && !c.flags.attorney_represented);

    // A collector confirms the attorney; a second decision is a conflict.
    let (s, r) = go(
        "alice",
        Method::POST,
        confirm,
        &format!("/api/signals/{attorney}/confirm"),
        Some(json!({"note": "Called Roe & Partners: they act for her."})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "confirmed");
    assert_eq!(r["decided_by"], "alice");
    let (s, _) = go(
        "mo",
        Method::POST,
        clear,
        &format!("/api/signals/{attorney}/clear"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let c = f.store().customer("C-ANN").await.unwrap();
    assert!(c.flags.attorney_represented && !c.facts.attorney_suspected);

    // A manager clears the opt-out: Ann may be emailed again.
    assert!(!c.contacts[0].allows(Channel::Email));
    let (s, r) = go(
        "mo",
        Method::POST,
        clear,
        &format!("/api/signals/{opt_out}/clear"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let c = f.store().customer("C-ANN").await.unwrap();
    assert!(c.contacts[0].allows(Channel::Email));

    let (s, _) = go(
        "root",
        Method::POST,
        clear,
        "/api/signals/sig-nope/clear",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = go(
        "root",
        Method::POST,
        clear,
        &format!("/api/signals/{opt_out}/clear"),
        Some(json!({"note": "x".repeat(2001)})),
    )
    .await;
    assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::CONFLICT);
    let (s, _) = go(
        "root",
        Method::POST,
        confirm,
        &format!("/api/signals/{opt_out}/confirm"),
        Some(json!({"unexpected": true})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        seen,
        std::collections::BTreeSet::from([200, 400, 403, 404, 409, 422]),
        "the cases exercise what they mean to"
    );

    let events = f
        .store()
        .audit_events(&argent_store::AuditFilter {
            customer_id: Some("C-ANN".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| k.starts_with("signal."))
            .copied()
            .collect::<Vec<_>>(),
        vec![
            "signal.recognised",
            "signal.recognised",
            "signal.confirmed",
            "signal.cleared"
        ]
    );
}

#[tokio::test]
async fn a_collector_confirms_and_clears_on_the_page_and_compliance_only_reads() {
    let f = fixture().await;
    let (opt_out, attorney) = ann_wrote(&f).await;

    let mut cy = Browser::sign_in(&f.app, user_of(argent_server::auth::UserRole::Compliance)).await;
    let page = cy.get("/signals").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = html_unescape(&page.body);
    assert!(
        body.contains("My attorney is Jane Roe of Roe & Partners LLP."),
        "{body}"
    );
    assert!(
        !body.contains(&format!("/signals/{attorney}/confirm")),
        "compliance gets no forms"
    );
    let refused = cy
        .submit("/signals", &format!("/signals/{attorney}/confirm"), &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let mut alice = Browser::sign_in(&f.app, "alice").await;
    let page = alice.get("/signals").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(&format!("/signals/{attorney}/confirm")));
    assert!(page.body.contains("Customer signals"), "in the navigation");
    // Without the session's CSRF token nothing changes.
    let forged = alice
        .post(&format!("/signals/{attorney}/confirm"), &[("note", "x")])
        .await;
    assert_ne!(forged.status, StatusCode::SEE_OTHER);
    assert!(
        f.store()
            .customer("C-ANN")
            .await
            .unwrap()
            .facts
            .attorney_suspected
    );

    let done = alice
        .submit(
            "/signals",
            &format!("/signals/{attorney}/clear"),
            &[("note", "Her brother is a lawyer; she has none.")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/signals?done=cleared&id={attorney}").as_str())
    );
    let c = f.store().customer("C-ANN").await.unwrap();
    assert!(!c.facts.attorney_suspected && c.facts.attorney_name.is_none());
    let done = alice
        .submit("/signals", &format!("/signals/{opt_out}/confirm"), &[])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let after = alice.get("/signals?status=all").await;
    assert_eq!(after.status, StatusCode::OK);
    assert!(after.body.contains("confirmed by alice"), "{}", after.body);
    assert!(after.body.contains("cleared by alice"));
    let again = alice
        .submit(
            "/signals?status=all",
            &format!("/signals/{opt_out}/clear"),
            &[],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        !f.store().customer("C-ANN").await.unwrap().contacts[0].allows(Channel::Email),
        "a confirmed opt-out stays"
    );
}
