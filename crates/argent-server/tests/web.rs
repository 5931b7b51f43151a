//! The server-rendered pages through the router (`oneshot`, no socket), as a browser uses
//! them: cookies kept between requests, forms posted with their CSRF token, redirects
//! checked rather than followed blindly.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use tower::ServiceExt;

use argent_server::UserRole;
use argent_store::{ApprovalStatus, AuditFilter, TokenKind};
use common::*;

#[tokio::test]
async fn pages_need_a_session_and_sign_in_sets_one() {
    let f = fixture().await;
    let mut anon = Browser::new(&f.app);
    let res = anon.get("/queue?status=pending").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(
        res.location.as_deref(),
        Some("/login?next=%2Fqueue%3Fstatus%3Dpending")
    );

    // The login form sets its own CSRF cookie; posting without it is refused.
    let form = anon.get("/login?next=%2Fqueue%3Fstatus%3Dpending").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.content_type.starts_with("text/html"));
    let token = csrf(&form.body);
    let mut stranger = Browser::new(&f.app);
    let res = stranger
        .post(
            "/login",
            &[("_csrf", &token), ("name", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "no login cookie");
    assert!(!stranger.cookies.contains_key("argent_session"));

    let res = anon
        .post(
            "/login",
            &[
                ("_csrf", &token),
                ("name", "alice"),
                ("password", "wrong password"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.body.contains("unknown user or wrong password"));
    assert!(!anon.cookies.contains_key("argent_session"));

    let token = csrf(&res.body); // the form is served again with a fresh token
    let res = anon
        .post(
            "/login",
            &[
                ("_csrf", &token),
                ("name", "alice"),
                ("password", PASSWORD),
                ("next", "/queue?status=pending"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location.as_deref(), Some("/queue?status=pending"));
    let session = anon.cookies["argent_session"].clone();
    assert_eq!(session.len(), 64);
    assert!(
        f.store()
            .token_user(
                &argent_server::auth::hash_token(&session),
                TokenKind::Session,
                Utc::now()
            )
            .await
            .unwrap()
            .is_some(),
        "the store keeps the session's hash"
    );
    assert!(
        f.store()
            .token_user(&session, TokenKind::Session, Utc::now())
            .await
            .unwrap()
            .is_none(),
        "and not the session itself"
    );

    let queue = anon.get("/queue").await;
    assert_eq!(queue.status, StatusCode::OK);
    assert!(queue.body.contains("alice (collector)"));
    for id in &f.ann {
        assert!(queue.body.contains(id.as_str()), "{id} listed");
    }

    // A session cookie is not an API credential, and an API token is not a session.
    let res = anon.get("/api/me").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.content_type.starts_with("application/json"));
    let req = Request::builder()
        .uri("/queue")
        .header("authorization", format!("Bearer {}", f.tokens["alice"]))
        .body(Body::empty())
        .unwrap();
    let res = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // An off-site `next` is ignored.
    let mut b = Browser::new(&f.app);
    let token = csrf(&b.get("/login").await.body);
    let res = b
        .post(
            "/login",
            &[
                ("_csrf", &token),
                ("name", "cy"),
                ("password", PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(res.location.as_deref(), Some("/audit"), "compliance's home");

    // Signing out deletes the session, not just the cookie.
    let res = anon.submit("/queue", "/logout", &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert!(!anon.cookies.contains_key("argent_session"));
    anon.cookies.insert("argent_session".into(), session);
    assert_eq!(anon.get("/queue").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_page_checks_the_role_of_every_caller() {
    use UserRole::{Admin, Collector, Compliance, Evaluator, Manager};
    let f = fixture().await;
    let item = f.ann[ANN_ITEMS - 1].clone(); // never decided here
    let mut browsers = HashMap::new();
    for (name, role) in USERS {
        browsers.insert(*role, Browser::sign_in(&f.app, name).await);
    }
    let gets: &[(&str, &[UserRole])] = &[
        ("/queue", &[Collector, Manager, Compliance, Admin]),
        ("/queue/{id}", &[Collector, Manager, Compliance, Admin]),
        ("/audit", &[Compliance, Manager, Admin]),
        ("/audit/export?format=csv", &[Compliance, Manager, Admin]),
        ("/dashboard", &[Collector, Manager, Compliance, Admin]),
        (
            "/rules/us.cease-contact",
            &[Collector, Manager, Compliance, Evaluator, Admin],
        ),
        ("/documents", &[Manager, Compliance, Evaluator, Admin]),
        (
            "/documents/policy/b2b",
            &[Manager, Compliance, Evaluator, Admin],
        ),
        (
            "/documents/prompt/tone%2Ffirm",
            &[Manager, Compliance, Evaluator, Admin],
        ),
        ("/documents/policy/b2b/edit", &[Manager, Admin]),
        (
            "/documents/policy/b2b/diff?a=1&b=1",
            &[Manager, Compliance, Evaluator, Admin],
        ),
        ("/evals", &[Evaluator, Manager, Compliance, Admin]),
    ];
    for (path, allowed) in gets {
        let uri = path.replace("{id}", &item);
        for role in UserRole::ALL {
            let b = browsers.get_mut(role).unwrap();
            let res = b.get(&uri).await;
            let want = if allowed.contains(role) {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(res.status, want, "GET {uri} as {role}: {}", res.body);
        }
    }
    // Posts: every refused role is refused before anything happens (the item stays
    // pending); allowed roles get past the role check (here: a missing note, 422).
    let posts: &[(&str, &[UserRole])] = &[
        ("/queue/{id}/reject", &[Collector, Manager, Admin]),
        ("/queue/{id}/preview", &[Collector, Manager, Admin]),
        ("/queue/{id}/edit", &[Collector, Manager, Admin]),
        ("/queue/{id}/approve", &[Collector, Manager, Admin]),
        ("/documents/policy/b2b", &[Manager, Admin]),
        ("/documents/policy/b2b/1/activate", &[Manager, Admin]),
        ("/documents/policy/b2b/rollback", &[Manager, Admin]),
        (
            "/document-requests/dr-none/approve",
            &[Manager, Compliance, Admin],
        ),
        (
            "/document-requests/dr-none/reject",
            &[Manager, Compliance, Admin],
        ),
        ("/documents/policy/b2b/1/eval", &[Evaluator, Manager, Admin]),
        ("/evals", &[Evaluator, Manager, Admin]),
    ];
    for (path, allowed) in posts {
        let uri = path.replace("{id}", &item);
        for role in UserRole::ALL {
            if allowed.contains(role) {
                continue;
            }
            let b = browsers.get_mut(role).unwrap();
            let res = b
                .submit("/rules/us.cease-contact", &uri, &[("note", "x")])
                .await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "POST {uri} as {role}");
        }
    }
    let b = browsers.get_mut(&Collector).unwrap();
    let res = b
        .submit("/queue", &format!("/queue/{item}/reject"), &[("note", " ")])
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.body.contains("needs a note"));
    let still = f.store().approval(&item).await.unwrap();
    assert_eq!(still.status, ApprovalStatus::Pending);
    // Nothing the refused posts named was written.
    let b2b = f
        .store()
        .document_versions(argent_store::DocKind::Policy, "b2b")
        .await
        .unwrap();
    assert_eq!(b2b.len(), 1);
    assert_eq!(f.store().count_eval_runs().await.unwrap(), 0);
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused() {
    let f = fixture().await;
    let mut alice = Browser::sign_in(&f.app, "alice").await;
    let mut mo = Browser::sign_in(&f.app, "mo").await;
    let id = &f.ann[0];
    let uri = format!("/queue/{id}/approve");
    let res = alice.post(&uri, &[("note", "ok")]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.body.contains("CSRF"));
    // Another session's token is no good either.
    let mos = csrf(&mo.get("/queue").await.body);
    let res = alice.post(&uri, &[("_csrf", &mos), ("note", "ok")]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(
        f.store().approval(id).await.unwrap().status,
        ApprovalStatus::Pending
    );
    // Each session's token differs, and the page's own works.
    let mine = csrf(&alice.get("/queue").await.body);
    assert_ne!(mine, mos);
    let res = alice.post(&uri, &[("_csrf", &mine), ("note", "ok")]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
}

#[tokio::test]
async fn a_collector_approves_edits_and_rejects_and_compliance_sees_all_three() {
    let f = fixture().await;
    let mut alice = Browser::sign_in(&f.app, "alice").await;
    let [a, b, c] = [&f.ann[0], &f.ann[1], &f.ann[2]];

    // The item page has what a reviewer needs.
    let page = alice.get(&format!("/queue/{a}")).await;
    assert_eq!(page.status, StatusCode::OK);
    for needle in [
        "Ann Lee",             // the customer
        "Could I get 20% off", // the thread
        "needs_approval",      // the decision
        "us.",                 // a rule id
        "1-30",                // the aging table
        "Check the edit",      // the edit form
    ] {
        assert!(page.body.contains(needle), "{needle} on the item page");
    }

    // Approve.
    let res = alice
        .submit(
            &format!("/queue/{a}"),
            &format!("/queue/{a}/approve"),
            &[("note", "fine by me")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        res.location.unwrap(),
        format!("/queue?done=approved&id={a}")
    );
    let item = f.store().approval(a).await.unwrap();
    assert_eq!(item.status, ApprovalStatus::Approved);
    assert_eq!(item.decided_by.as_deref(), Some("alice"));
    let queue = alice.get(&format!("/queue?done=approved&id={a}")).await;
    assert!(queue.body.contains(&format!("{a} approved.")));

    // Edit: preview first (nothing happens), then submit.
    let fair = ann_plan_fair();
    let fields = edit_fields(&fair);
    let mut form = pairs(&fields);
    form.push(("note", "5% is what we can do"));
    let preview = alice
        .submit(
            &format!("/queue/{b}"),
            &format!("/queue/{b}/preview"),
            &form,
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(preview.body.contains("id=\"preview-outcome\">allow<"));
    assert!(preview.body.contains("Submit the edit"));
    assert_eq!(
        f.store().approval(b).await.unwrap().status,
        ApprovalStatus::Pending,
        "a preview acts on nothing"
    );
    let args = {
        let marker = "name=\"args\" value=\"";
        let at = preview.body.find(marker).unwrap() + marker.len();
        let raw = &preview.body[at..];
        html_unescape(&raw[..raw.find('"').unwrap()])
    };
    let token = csrf(&preview.body);
    let res = alice
        .post(
            &format!("/queue/{b}/edit"),
            &[
                ("_csrf", &token),
                ("args", &args),
                ("note", "5% is what we can do"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let item = f.store().approval(b).await.unwrap();
    assert_eq!(item.status, ApprovalStatus::Approved);
    assert_eq!(item.final_action.as_ref().unwrap()["discount"], "60.00");

    // Reject, with a note.
    let res = alice
        .submit(
            &format!("/queue/{c}"),
            &format!("/queue/{c}/reject"),
            &[("note", "Ask for a call first")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let item = f.store().approval(c).await.unwrap();
    assert_eq!(item.status, ApprovalStatus::Rejected);
    assert_eq!(item.note.as_deref(), Some("Ask for a call first"));

    // A decided item cannot be decided again from a stale page.
    let res = alice
        .submit(
            "/queue",
            &format!("/queue/{a}/reject"),
            &[("note", "again")],
        )
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert!(res.content_type.starts_with("text/html"));

    // Compliance sees all three in the trail, filtered by actor, and the chain holds.
    let mut cy = Browser::sign_in(&f.app, "cy").await;
    let audit = cy.get("/audit?actor=collector%3Aalice").await;
    assert_eq!(audit.status, StatusCode::OK);
    assert!(audit.body.contains("Chain intact"));
    let trail = f
        .store()
        .audit_events(&AuditFilter {
            actor: Some("collector:alice".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = trail.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.len() >= 3, "{kinds:?}");
    for e in &trail {
        assert!(
            audit
                .body
                .contains(&format!("<td class=\"num\">{}</td>", e.seq)),
            "event {} shown",
            e.seq
        );
    }
    for id in [a, b, c] {
        assert!(audit.body.contains(id.as_str()), "{id} in the trail");
    }
    assert!(
        !audit.body.contains("data-actor=\"agent\""),
        "the filter holds"
    );
    let csv = cy
        .get("/audit/export?format=csv&actor=collector%3Aalice")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.content_type.starts_with("text/csv"));
    assert_eq!(
        csv.body.lines().count(),
        trail.len() + 1,
        "a header and one row each"
    );
}

#[tokio::test]
async fn an_edit_policy_forbids_is_shown_as_denied_and_cannot_be_submitted() {
    let f = fixture().await;
    let mut alice = Browser::sign_in(&f.app, "alice").await;
    let id = &f.ann[3];
    let fields = edit_fields(&ann_plan_greedy());
    let preview = alice
        .submit(
            &format!("/queue/{id}"),
            &format!("/queue/{id}/preview"),
            &pairs(&fields),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK);
    assert!(preview.body.contains("id=\"preview-outcome\">deny<"));
    assert!(preview.body.contains("Policy forbids this edit"));
    assert!(!preview.body.contains("Submit the edit"));
    // Posting it anyway is refused with the rules, and nothing happens.
    let token = csrf(&preview.body);
    let res = alice
        .post(
            &format!("/queue/{id}/edit"),
            &[("_csrf", &token), ("args", &ann_plan_greedy().to_string())],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.body.contains("ceiling"),
        "the rule is named: {}",
        res.body
    );
    assert_eq!(
        f.store().approval(id).await.unwrap().status,
        ApprovalStatus::Pending
    );

    // A field that does not parse is sent back to the form, naming it.
    let mut bad = fields.clone();
    bad.retain(|(k, _)| k != "j.installments");
    bad.push(("j.installments".into(), "[{".into()));
    let res = alice
        .submit(
            &format!("/queue/{id}"),
            &format!("/queue/{id}/preview"),
            &pairs(&bad),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.body
            .contains("field &#x27;installments&#x27; is not valid JSON"),
        "{}",
        res.body
    );

    // Bo's item needs a manager: a collector sees why, and may not submit.
    let fields = edit_fields(&bo_plan());
    let preview = alice
        .submit(
            &format!("/queue/{}", f.bo),
            &format!("/queue/{}/preview", f.bo),
            &pairs(&fields),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK);
    assert!(preview.body.contains("Your role may not approve this edit"));
    assert!(preview.body.contains("manager"));
}

#[tokio::test]
async fn errors_are_pages_without_internals_and_the_api_stays_json() {
    let f = fixture().await;
    let mut cy = Browser::sign_in(&f.app, "cy").await;
    let res = cy.get("/queue/apr-nope").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert!(res.content_type.starts_with("text/html"));
    assert!(res.body.contains("Request id"));
    let res = cy.get("/no/such/page").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert!(res.content_type.starts_with("text/html"));
    let res = cy.get("/audit?since=yesterday").await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(
        res.body
            .contains("since: &#x27;yesterday&#x27; is neither a date")
    );
    let res = cy.get("/rules/no.such-rule").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = cy.get("/api/no/such").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert!(res.content_type.starts_with("application/json"));
}

#[tokio::test]
async fn the_rule_page_shows_the_citation_and_links_to_its_decisions() {
    let f = fixture().await;
    let mut cy = Browser::sign_in(&f.app, "cy").await;
    let page = cy.get("/queue").await;
    assert_eq!(page.status, StatusCode::OK);
    // Every rule an item names has a page with its citation.
    let item = f.store().approval(&f.ann[0]).await.unwrap();
    let rules = item.decision["rules"].as_array().unwrap();
    assert!(!rules.is_empty());
    for r in rules {
        let id = r["id"].as_str().unwrap();
        let page = cy.get(&format!("/rules/{id}")).await;
        assert_eq!(page.status, StatusCode::OK, "{id}");
        let citation = r["citation"].as_str().unwrap();
        assert!(
            page.body
                .contains(&citation.replace('&', "&amp;").replace('\'', "&#x27;")),
            "{id}'s citation {citation}"
        );
        let audit = cy.get(&format!("/audit?rule_id={id}")).await;
        assert!(
            audit.body.contains(&format!(">{}</a>", item.run_id)),
            "its decisions are in the trail"
        );
    }
}

#[tokio::test]
async fn the_dashboard_shows_the_ledgers_analytics_by_segment() {
    use argent_core::analytics::{DashboardInput, dashboard};
    let f = fixture().await;
    let store = f.store();
    let ledger = store.ledger().await.unwrap();
    let customers = store.customers().await.unwrap();
    let promises = store.promises(None).await.unwrap();
    let want = dashboard(&DashboardInput {
        customers: &customers,
        invoices: &ledger.invoices,
        payments: &ledger.payments,
        promises: &promises,
        as_of: now().date_naive(),
        period_days: 90,
        promise_grace_days: argent_server::web::PROMISE_GRACE_DAYS,
    })
    .unwrap();
    assert!(!want.rows.is_empty());
    let (s, got) = f
        .as_user("mo", axum::http::Method::GET, "/api/dashboard", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, serde_json::to_value(&want).unwrap());

    let mut mo = Browser::sign_in(&f.app, "mo").await;
    let page = mo.get("/").await;
    assert_eq!(
        page.location.as_deref(),
        Some("/dashboard"),
        "a manager's home"
    );
    let page = mo.get("/dashboard").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"dashboard\""));
    for row in &want.rows {
        let seg = row.segment.unwrap().as_str();
        assert!(
            page.body.contains(&format!("data-segment=\"{seg}\"")),
            "{seg}"
        );
    }
    let total = &want.totals[0];
    // Money with the currency's symbol and thousands separators ($15,000.00).
    let open = argent_core::format::format_minor(total.open_total, total.currency);
    assert!(page.body.contains(&open), "{open}");
    let other = mo.get("/dashboard?period_days=30").await;
    assert_eq!(other.status, StatusCode::OK);
    assert!(other.body.contains("value=\"30\""));
    assert_eq!(
        mo.get("/dashboard?period_days=0").await.status,
        StatusCode::BAD_REQUEST
    );
}
