//! Account facts through the router (`oneshot`): the API (`GET`/`PUT
//! /api/customers/{id}/facts`) and the account page (`/accounts/{id}`) with its form, for
//! every role, and the audit event each change leaves.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::{Method, StatusCode};
use serde_json::json;

use argent_core::AccountFacts;
use argent_server::UserRole;
use argent_store::AuditFilter;
use common::*;

const FACTS: &str = "/api/customers/C-ANN/facts";

/// C-ANN's facts as the shared fixture imports them (her validation notice).
fn imported() -> AccountFacts {
    argent_store::testkit::two_consumer_portfolio()
        .customers
        .into_iter()
        .find(|c| c.id == "C-ANN")
        .map(|c| c.facts)
        .unwrap_or_default()
}

async fn stored(f: &Fixture) -> AccountFacts {
    f.store().customer("C-ANN").await.unwrap().facts
}

async fn events(f: &Fixture) -> Vec<argent_store::AuditEvent> {
    f.store()
        .audit_events(&AuditFilter {
            kind: Some("facts.updated".into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn the_facts_api_reads_for_four_roles_and_writes_for_three() {
    let f = fixture().await;
    for (user, role) in USERS {
        let (s, body) = f.as_user(user, Method::GET, FACTS, None).await;
        let want = if *role == UserRole::Evaluator {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::OK
        };
        assert_eq!(s, want, "{user}: {body}");
    }
    let (s, _, _) = call(&f.app, Method::GET, FACTS, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = f
        .as_user("alice", Method::GET, "/api/customers/NOBODY/facts", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");

    let put = json!({"region": "NY", "validation_notice": {"sent_on": "2026-01-05", "channel": "letter"}});
    for user in ["cy", "eve"] {
        let (s, body) = f.as_user(user, Method::PUT, FACTS, Some(put.clone())).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{user}: {body}");
    }
    assert_eq!(stored(&f).await, imported());

    let (s, body) = f
        .as_user("alice", Method::PUT, FACTS, Some(put.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], json!(["region", "validation_notice"]));
    assert_eq!(stored(&f).await.region.as_deref(), Some("NY"));
    let (_, got) = f.as_user("cy", Method::GET, FACTS, None).await;
    assert_eq!(got["validation_notice"]["channel"], "letter");
    let ev = events(&f).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].actor, "collector:alice");
    assert_eq!(ev[0].customer_id.as_deref(), Some("C-ANN"));
    assert_eq!(
        ev[0].payload["changed"]["region"],
        json!({"before": null, "after": "NY"})
    );

    // The same document again: nothing changes, nothing is audited.
    let (s, body) = f
        .as_user("alice", Method::PUT, FACTS, Some(put.clone()))
        .await;
    assert_eq!((s, body["changed"].clone()), (StatusCode::OK, json!([])));
    assert_eq!(events(&f).await.len(), 1);
}

#[tokio::test]
async fn only_a_manager_or_admin_changes_the_limits() {
    let f = fixture().await;
    let with_limits = json!({"limits": {"max_discount_bps": 1500, "note": "long-standing"}});
    let (s, body) = f
        .as_user("alice", Method::PUT, FACTS, Some(with_limits.clone()))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("manager or admin"),
        "{body}"
    );
    assert_eq!(stored(&f).await, imported(), "nothing changed");
    assert!(events(&f).await.is_empty());

    let (s, body) = f
        .as_user("mo", Method::PUT, FACTS, Some(with_limits.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        stored(&f).await.limits.unwrap().max_discount_bps,
        Some(1500)
    );
    assert_eq!(events(&f).await[0].actor, "manager:mo");

    // A collector may change other facts as long as the limits stay as they are...
    let mut keep = with_limits.clone();
    keep["region"] = json!("england");
    let (s, body) = f.as_user("alice", Method::PUT, FACTS, Some(keep)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // ...but not remove them.
    let (s, _) = f
        .as_user(
            "alice",
            Method::PUT,
            FACTS,
            Some(json!({"region": "england"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(stored(&f).await.limits.is_some());
    let (s, body) = f.as_user("root", Method::PUT, FACTS, Some(json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // A PUT replaces the whole document: `{}` is no facts at all.
    assert_eq!(stored(&f).await, AccountFacts::default());
}

#[tokio::test]
async fn bad_facts_are_a_422_naming_the_field_and_change_nothing() {
    let f = fixture().await;
    for (body, needle) in [
        (
            json!({"limits": {"max_discount_bps": 20000}}),
            "/limits/max_discount_bps",
        ),
        (
            json!({"workplace_addresses": ["not-an-address"]}),
            "/workplace_addresses/0",
        ),
        (json!({"acknowledged_on": "1900-01-01"}), "/acknowledged_on"),
        (json!({"regoin": "NY"}), "regoin"),
        (json!({"preferred_channel": "pigeon"}), "pigeon"),
    ] {
        let (s, res) = f.as_user("root", Method::PUT, FACTS, Some(body)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{res}");
        assert!(
            res["error"].as_str().unwrap().contains(needle),
            "{needle}: {res}"
        );
    }
    let (s, _) = f
        .as_user(
            "alice",
            Method::PUT,
            "/api/customers/NOBODY/facts",
            Some(json!({"region": "NY"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(stored(&f).await, imported());
    assert!(events(&f).await.is_empty());
}

/// The facts form's fields as the page renders them: text and date inputs with their
/// values, ticked boxes as `true`.
fn form_fields(html: &str) -> Vec<(String, String)> {
    let start = html
        .find("id=\"facts-form\"")
        .expect("the page has the facts form");
    let form = &html[start..html[start..].find("</form>").unwrap() + start];
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let at = tag.find(&key)? + key.len();
        Some(html_unescape(&tag[at..at + tag[at..].find('"')?]))
    };
    let mut out = Vec::new();
    for tag in form.split("<input").skip(1) {
        let tag = &tag[..tag.find('>').unwrap()];
        let (Some(kind), Some(name)) = (attr(tag, "type"), attr(tag, "name")) else {
            continue;
        };
        match kind.as_str() {
            "checkbox" if tag.contains(" checked") && !tag.contains(" disabled") => {
                out.push((name, "true".into()));
            }
            "text" | "date" => out.push((name, attr(tag, "value").unwrap_or_default())),
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn the_account_page_for_every_role_and_its_form() {
    let f = fixture().await;
    let mut anon = Browser::new(&f.app);
    let res = anon.get("/accounts/C-ANN").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);

    // A manager sets facts, limits included, through the API.
    let (s, body) = f
        .as_user(
            "mo",
            Method::PUT,
            FACTS,
            Some(json!({
                "validation_notice": {"sent_on": "2026-01-05", "channel": "letter"},
                "inconvenient_times": [{"from": "12:00:00", "to": "13:00:00"}],
                "limits": {"max_discount_bps": 1250}
            })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");

    for (user, role) in USERS {
        let mut b = Browser::sign_in(&f.app, user).await;
        let res = b.get("/accounts/C-ANN").await;
        if *role == UserRole::Evaluator {
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{user}");
            continue;
        }
        assert_eq!(res.status, StatusCode::OK, "{user}: {}", res.body);
        let html = html_unescape(&res.body);
        for needle in [
            "Ann Lee",
            "Validation notice sent 2026-01-05 by letter; validation period ends 2026-02-09.",
            "Inconvenient times (their local time): 12:00-13:00.",
            "discount at most 12.50%",
            "INV-ANN-1",
        ] {
            assert!(html.contains(needle), "{user}: {needle} missing");
        }
        let editable = *role != UserRole::Compliance;
        assert_eq!(res.body.contains("id=\"facts-form\""), editable, "{user}");
    }
    let mut b = Browser::sign_in(&f.app, "alice").await;
    let res = b.get("/accounts/NOBODY").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);

    // The queue item links to the account page.
    let item = b.get(&format!("/queue/{}", f.ann[0])).await;
    assert!(item.body.contains("href=\"/accounts/C-ANN\""));
}

#[tokio::test]
async fn a_collector_edits_facts_on_the_page_but_not_the_limits() {
    let f = fixture().await;
    let (s, _) = f
        .as_user(
            "mo",
            Method::PUT,
            FACTS,
            Some(json!({"limits": {"max_discount_bps": 1250}, "dispute_pending": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let before_events = events(&f).await.len();

    let mut alice = Browser::sign_in(&f.app, "alice").await;
    let page = alice.get("/accounts/C-ANN").await;
    let mut fields = form_fields(&page.body);
    assert!(fields.contains(&("limits.max_discount_bps".into(), "1250".into())));
    assert!(fields.contains(&("dispute_pending".into(), "true".into())));
    // Untick the dispute, set the region and an invoice's acknowledgement.
    fields.retain(|(k, _)| k != "dispute_pending");
    for (k, v) in fields.iter_mut() {
        if k == "region" {
            *v = "NY".into();
        }
        if k == "invoice_acknowledged_on/INV-ANN-1" {
            *v = "2025-03-01".into();
        }
    }
    let res = alice
        .submit("/accounts/C-ANN", "/accounts/C-ANN/facts", &pairs(&fields))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location.as_deref(), Some("/accounts/C-ANN?saved=3"));
    let facts = stored(&f).await;
    assert_eq!(facts.region.as_deref(), Some("NY"));
    assert!(!facts.dispute_pending);
    assert_eq!(
        facts.invoice_acknowledged_on["INV-ANN-1"].to_string(),
        "2025-03-01"
    );
    assert_eq!(facts.limits.as_ref().unwrap().max_discount_bps, Some(1250));
    let ev = events(&f).await;
    assert_eq!(ev.len(), before_events + 1);
    let last = ev.last().unwrap();
    assert_eq!(last.actor, "collector:alice");
    let changed: Vec<&String> = last.payload["changed"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        changed,
        ["dispute_pending", "invoice_acknowledged_on", "region"]
    );
    let shown = alice.get("/accounts/C-ANN?saved=3").await;
    assert!(shown.body.contains("Saved: 3 fields changed."));

    // Changing the limits from the form: 403, nothing saved.
    let mut fields = form_fields(&alice.get("/accounts/C-ANN").await.body);
    for (k, v) in fields.iter_mut() {
        if k == "limits.max_discount_bps" {
            *v = "90%".into();
        }
        if k == "region" {
            *v = "CA".into();
        }
    }
    let res = alice
        .submit("/accounts/C-ANN", "/accounts/C-ANN/facts", &pairs(&fields))
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    assert_eq!(stored(&f).await, facts, "nothing changed");
    assert_eq!(events(&f).await.len(), before_events + 1);

    // A manager may.
    let mut mo = Browser::sign_in(&f.app, "mo").await;
    let res = mo
        .submit("/accounts/C-ANN", "/accounts/C-ANN/facts", &pairs(&fields))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        stored(&f).await.limits.unwrap().max_discount_bps,
        Some(9000)
    );

    // A bad value is refused, naming the field; compliance may not post; no CSRF, no change.
    let res = mo
        .submit(
            "/accounts/C-ANN",
            "/accounts/C-ANN/facts",
            &[("acknowledged_on", "2026-02-30")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html_unescape(&res.body)
            .contains("Last written acknowledgement of the debt: '2026-02-30' is not a date"),
        "{}",
        res.body
    );
    let mut cy = Browser::sign_in(&f.app, "cy").await;
    let res = cy
        .submit(
            "/accounts/C-ANN",
            "/accounts/C-ANN/facts",
            &[("region", "X")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = alice
        .post("/accounts/C-ANN/facts", &[("region", "X")])
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_ne!(stored(&f).await.region.as_deref(), Some("X"));
}

#[test]
fn the_form_field_reader_reads_what_it_should() {
    let html = r#"<form id="facts-form"><input type="hidden" name="_csrf" value="x">
<input type="checkbox" name="a" value="true" checked><input type="checkbox" name="b" value="true">
<input type="text" name="c" value="Smith &amp; Co"></form>"#;
    let got: Vec<(String, String)> = form_fields(html);
    assert_eq!(
        got,
        vec![
            ("a".to_string(), "true".to_string()),
            ("c".to_string(), "Smith & Co".to_string())
        ]
    );
}
