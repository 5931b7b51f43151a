//! Four eyes on document activation (issue #15) through the router: a request by a manager
//! with a reason, an approval by a different person of the role `governance/four_eyes.toml`
//! names for the kind (policies: compliance; prompts: another manager), rejection, rollback
//! with four eyes and with the emergency flag, and the pending approval items judged again
//! when a new policy version becomes active. On SQLite and (ARGENT_TEST_POSTGRES_URL)
//! PostgreSQL.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use argent_server::{ServerConfig, UserRole, create_user};
use argent_store::testkit::TestStore;
use argent_store::{ApprovalStatus, AuditVerification, DocKind, DocStatus, ToolCallStatus};
use common::*;

const US: &str = "/api/documents/policy/us-consumer";

/// The fixture with a second manager, `max`, signed in too.
async fn fixture_two_managers(ts: TestStore) -> Fixture {
    let mut f = fixture_on(ts, ServerConfig::default()).await;
    create_user(f.store(), "max", UserRole::Manager, PASSWORD)
        .await
        .unwrap();
    let (s, _, body) = call(
        &f.app,
        Method::POST,
        "/api/login",
        None,
        Some(json!({"name": "max", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    f.tokens
        .insert("max", body["token"].as_str().unwrap().to_string());
    f
}

/// us-consumer with every plan ceiling at 15% (Ann's 20% plans are now denied) and the
/// large-plan approval raised to USD 20,000 (Bo's 15,000 plan no longer needs it).
async fn stricter_policy(f: &Fixture) -> String {
    let v1 = f
        .store()
        .document(DocKind::Policy, "us-consumer", 1)
        .await
        .unwrap();
    let mut body = v1.body.clone();
    for (from, to) in [
        ("max_discount_percent = 30\n", "max_discount_percent = 15\n"),
        ("max_discount_percent = 20\n", "max_discount_percent = 15\n"),
        ("max_discount_percent = 25\n", "max_discount_percent = 15\n"),
        ("amount_over = \"10000.00\"", "amount_over = \"20000.00\""),
    ] {
        assert!(body.contains(from), "the policy has {from:?}");
        body = body.replace(from, to);
    }
    body
}

async fn draft(f: &Fixture, body: &str) -> i64 {
    let (s, v) = f
        .as_user(
            "mo",
            Method::POST,
            US,
            Some(json!({"body": body, "note": "tighter"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["version"].as_i64().unwrap()
}

async fn status(f: &Fixture, kind: DocKind, name: &str, v: i64) -> DocStatus {
    f.store().document(kind, name, v).await.unwrap().status
}

async fn trail_intact(f: &Fixture, l: &str) {
    assert!(
        matches!(
            f.store().audit_verify().await.unwrap(),
            AuditVerification::Intact { .. }
        ),
        "{l}"
    );
    let mismatches = f.store().audit_cross_check().await.unwrap();
    assert!(mismatches.is_empty(), "{l}: {mismatches:?}");
}

#[tokio::test]
async fn a_policy_needs_compliance_and_never_its_requester() {
    for ts in TestStore::all().await.unwrap() {
        let l = ts.label;
        let f = fixture_two_managers(ts).await;
        let body = stricter_policy(&f).await;
        let v = draft(&f, &body).await;
        let activate = format!("{US}/{v}/activate");

        // A reason is required; a compliance officer may not request.
        let (s, e) = f
            .as_user("mo", Method::POST, &activate, Some(json!({})))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{l}: {e}");
        let (s, _) = f
            .as_user("cy", Method::POST, &activate, Some(json!({"reason": "x"})))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{l}");
        let (s, req) = f
            .as_user(
                "mo",
                Method::POST,
                &activate,
                Some(json!({"reason": "ceilings per CP-2 rev 4"})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{l}: {req}");
        assert_eq!(req["status"], "pending");
        assert_eq!(req["from_version"], 1);
        let id = req["id"].as_str().unwrap().to_string();
        assert_eq!(
            status(&f, DocKind::Policy, "us-consumer", v).await,
            DocStatus::Draft,
            "{l}: a request activates nothing"
        );
        let (s, list) = f
            .as_user("eve", Method::GET, "/api/document-requests", None)
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(list.as_array().unwrap().len(), 1, "{l}");

        let approve = format!("/api/document-requests/{id}/approve");
        // Same person: refused. Wrong role (a second manager, the admin): refused.
        for who in ["mo", "max", "root"] {
            let (s, e) = f
                .as_user(who, Method::POST, &approve, Some(json!({})))
                .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{l}: {who}: {e}");
        }
        let (s, e) = f
            .as_user("eve", Method::POST, &approve, Some(json!({})))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{l}: an evaluator: {e}");
        assert_eq!(
            status(&f, DocKind::Policy, "us-consumer", v).await,
            DocStatus::Draft,
            "{l}"
        );

        // Compliance approves: active, and the running agent uses it.
        let (s, done) = f
            .as_user(
                "cy",
                Method::POST,
                &approve,
                Some(json!({"note": "checked against CP-2"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{l}: {done}");
        assert_eq!(done["document"]["status"], "active");
        assert_eq!(done["document"]["activated_by"], "compliance:cy");
        assert_eq!(done["request"]["status"], "approved");
        assert_eq!(
            status(&f, DocKind::Policy, "us-consumer", 1).await,
            DocStatus::Retired,
            "{l}"
        );
        let (s, e) = f
            .as_user("cy", Method::POST, &approve, Some(json!({})))
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{l}: decided once: {e}");
        trail_intact(&f, l).await;
        f.ts.cleanup().await;
    }
}

/// mo asks for tone/firm version 2 to become active.
async fn ask_prompt(f: &Fixture) -> String {
    let (s, req) = f
        .as_user(
            "mo",
            Method::POST,
            "/api/documents/prompt/tone%2Ffirm/2/activate",
            Some(json!({"reason": "firmer close"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{req}");
    req["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_prompt_needs_a_second_manager_and_a_rejection_activates_nothing() {
    for ts in TestStore::all().await.unwrap() {
        let l = ts.label;
        let f = fixture_two_managers(ts).await;
        let p = "/api/documents/prompt/tone%2Ffirm";
        let v1 = f
            .store()
            .document(DocKind::Prompt, "tone/firm", 1)
            .await
            .unwrap();
        let (s, d) = f
            .as_user(
                "mo",
                Method::POST,
                p,
                Some(json!({"body": format!("{}\n{{{{!-- firmer close --}}}}\n", v1.body.trim_end())})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{l}: {d}");
        // Rejected by the second manager, with a reason: nothing changes.
        let id = ask_prompt(&f).await;
        let reject = format!("/api/document-requests/{id}/reject");
        let (s, _) = f
            .as_user("max", Method::POST, &reject, Some(json!({})))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{l}: says why");
        let (s, e) = f
            .as_user("cy", Method::POST, &reject, Some(json!({"note": "no"})))
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "{l}: compliance does not decide prompts: {e}"
        );
        let (s, r) = f
            .as_user(
                "max",
                Method::POST,
                &reject,
                Some(json!({"note": "too harsh"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{l}: {r}");
        assert_eq!(r["status"], "rejected");
        assert_eq!(
            status(&f, DocKind::Prompt, "tone/firm", 2).await,
            DocStatus::Draft,
            "{l}"
        );
        let (s, _) = f
            .as_user(
                "max",
                Method::POST,
                &format!("/api/document-requests/{id}/approve"),
                Some(json!({})),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::CONFLICT,
            "{l}: a rejected request stays rejected"
        );

        // Asked again: compliance may not approve a prompt; the second manager does.
        let id = ask_prompt(&f).await;
        let approve = format!("/api/document-requests/{id}/approve");
        let (s, _) = f
            .as_user("cy", Method::POST, &approve, Some(json!({})))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{l}");
        let (s, done) = f
            .as_user("max", Method::POST, &approve, Some(json!({})))
            .await;
        assert_eq!(s, StatusCode::OK, "{l}: {done}");
        assert_eq!(
            done["rejudged"],
            Value::Null,
            "{l}: a prompt re-judges nothing"
        );
        assert_eq!(
            status(&f, DocKind::Prompt, "tone/firm", 2).await,
            DocStatus::Active,
            "{l}"
        );
        trail_intact(&f, l).await;
        f.ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_rollback_needs_four_eyes_unless_a_manager_declares_an_emergency() {
    for ts in TestStore::all().await.unwrap() {
        let l = ts.label;
        let f = fixture_two_managers(ts).await;
        let body = stricter_policy(&f).await;
        let v = draft(&f, &body).await;
        let (_, req) = f
            .as_user(
                "mo",
                Method::POST,
                &format!("{US}/{v}/activate"),
                Some(json!({"reason": "rev 4"})),
            )
            .await;
        let (s, _) = f
            .as_user(
                "cy",
                Method::POST,
                &format!(
                    "/api/document-requests/{}/approve",
                    req["id"].as_str().unwrap()
                ),
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{l}");

        // With four eyes: a request for version 1.
        let rollback = format!("{US}/rollback");
        let (s, _) = f
            .as_user("mo", Method::POST, &rollback, Some(json!({"reason": " "})))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{l}");
        let (s, rb) = f
            .as_user(
                "mo",
                Method::POST,
                &rollback,
                Some(json!({"reason": "rev 4 refuses too much"})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{l}: {rb}");
        assert_eq!(
            (rb["version"].as_i64(), rb["rollback"].as_bool()),
            (Some(1), Some(true))
        );
        assert_eq!(
            status(&f, DocKind::Policy, "us-consumer", v).await,
            DocStatus::Active,
            "{l}: still"
        );
        let approve = format!(
            "/api/document-requests/{}/approve",
            rb["id"].as_str().unwrap()
        );
        let (s, _) = f
            .as_user("mo", Method::POST, &approve, Some(json!({})))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{l}");
        let (s, done) = f
            .as_user("cy", Method::POST, &approve, Some(json!({})))
            .await;
        assert_eq!(s, StatusCode::OK, "{l}: {done}");
        assert_eq!(
            status(&f, DocKind::Policy, "us-consumer", 1).await,
            DocStatus::Active,
            "{l}"
        );

        // Emergency: compliance may not; a manager may, at once, audited with the flag.
        let (s, _) = f
            .as_user(
                "cy",
                Method::POST,
                &rollback,
                Some(json!({"reason": "now", "emergency": true})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{l}");
        let (s, e) = f
            .as_user(
                "mo",
                Method::POST,
                &rollback,
                Some(json!({"emergency": true})),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{l}: an emergency says why: {e}"
        );
        let (s, done) = f
            .as_user(
                "mo",
                Method::POST,
                &rollback,
                Some(json!({"reason": "v1 lets 20% plans through", "emergency": true})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{l}: {done}");
        assert_eq!(done["document"]["version"], v);
        assert_eq!(done["request"], Value::Null);
        assert_eq!(
            status(&f, DocKind::Policy, "us-consumer", v).await,
            DocStatus::Active,
            "{l}: at once"
        );
        let events = f
            .store()
            .audit_events(&argent_store::AuditFilter {
                kind: Some("document.rollback_emergency".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "{l}");
        assert_eq!(events[0].actor, "manager:mo");
        assert_eq!(events[0].payload["emergency"], true);
        assert_eq!(events[0].payload["reason"], "v1 lets 20% plans through");
        trail_intact(&f, l).await;
        f.ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_new_policy_closes_the_pending_items_it_denies_and_leaves_the_rest_pending() {
    for ts in TestStore::all().await.unwrap() {
        let l = ts.label;
        let f = fixture_two_managers(ts).await;
        let bo_before = f.store().approval(&f.bo).await.unwrap();
        let body = stricter_policy(&f).await;
        let v = draft(&f, &body).await;
        let (_, req) = f
            .as_user(
                "mo",
                Method::POST,
                &format!("{US}/{v}/activate"),
                Some(json!({"reason": "rev 4"})),
            )
            .await;
        // Nothing is re-judged by a request.
        assert_eq!(
            f.store().approval(&f.ann[0]).await.unwrap().status,
            ApprovalStatus::Pending,
            "{l}"
        );
        let (s, done) = f
            .as_user(
                "cy",
                Method::POST,
                &format!(
                    "/api/document-requests/{}/approve",
                    req["id"].as_str().unwrap()
                ),
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{l}: {done}");
        let report = &done["rejudged"];
        assert_eq!(report["judged"], ANN_ITEMS + 1, "{l}: {report}");
        assert_eq!(report["failed"], json!([]), "{l}: {report}");

        // Ann's 20% plans: denied now, closed with the denying rule.
        for id in &f.ann {
            let item = f.store().approval(id).await.unwrap();
            assert_eq!(item.status, ApprovalStatus::Rejected, "{l}: {id}");
            assert_eq!(item.decided_role.as_deref(), Some("policy"), "{l}");
            assert_eq!(
                item.decided_by.as_deref(),
                Some(format!("us-consumer@v{v}").as_str()),
                "{l}"
            );
            let note = item.note.clone().unwrap();
            assert!(note.contains("now deny"), "{l}: {note}");
            assert!(note.contains(".ceiling"), "{l}: the denying rule: {note}");
            let r = f.store().rejudgements(id).await.unwrap();
            assert_eq!(r.len(), 1, "{l}");
            assert_eq!(
                (r[0].was.as_str(), r[0].now.as_str(), r[0].closed),
                ("needs_approval", "deny", true)
            );
            assert_eq!(r[0].policy_version, v);
            let call = f.store().tool_call(&item.call_id).await.unwrap().unwrap();
            assert_eq!(call.status, ToolCallStatus::Rejected, "{l}");
        }
        // Bo's plan: no longer needs the large-plan approval; it stays pending, never executed.
        let bo = f.store().approval(&f.bo).await.unwrap();
        assert_eq!(bo.status, ApprovalStatus::Pending, "{l}");
        assert_eq!(
            bo.decision, bo_before.decision,
            "{l}: what it was queued with is kept"
        );
        let r = f.store().rejudgements(&f.bo).await.unwrap();
        assert_eq!(r.len(), 1, "{l}");
        assert_eq!(
            (r[0].was.as_str(), r[0].now.as_str(), r[0].closed),
            ("needs_approval", "allow", false),
            "{l}: allowed now, yet left for a person"
        );
        assert_eq!(r[0].rules, json!([]), "{l}");
        let call = f.store().tool_call(&bo.call_id).await.unwrap().unwrap();
        assert_eq!(call.status, ToolCallStatus::Queued, "{l}: nothing executed");

        // The item pages say so.
        let mut alice = Browser::sign_in(&f.app, "alice").await;
        let page = alice.get(&format!("/queue/{}", f.ann[0])).await;
        assert_eq!(page.status, StatusCode::OK);
        let text = html_unescape(&page.body);
        assert!(
            text.contains(&format!("re-judged under policy us-consumer v{v}: was"))
                && text.contains("now <span class=\"outcome deny\">deny</span>"),
            "{l}: {}",
            page.body
        );
        assert!(text.contains("— closed"), "{l}");
        let page = alice.get(&format!("/queue/{}", f.bo)).await;
        assert!(
            page.body.contains("still pending; nothing was executed"),
            "{l}"
        );
        trail_intact(&f, l).await;
        f.ts.cleanup().await;
    }
}

#[tokio::test]
async fn the_pages_request_list_and_decide_without_javascript() {
    let f = fixture_two_managers(TestStore::sqlite().await.unwrap()).await;
    let body = stricter_policy(&f).await;
    let v = draft(&f, &body).await;
    let doc = "/documents/policy/us-consumer";
    let mut mo = Browser::sign_in(&f.app, "mo").await;
    let page = mo.get(&format!("{doc}?v={v}")).await;
    assert!(
        page.body.contains("id=\"request-activation\""),
        "{}",
        page.body
    );
    // Without a reason: 422, nothing requested.
    let res = mo
        .submit(
            &format!("{doc}?v={v}"),
            &format!("{doc}/{v}/activate"),
            &[("reason", "")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let res = mo
        .submit(
            &format!("{doc}?v={v}"),
            &format!("{doc}/{v}/activate"),
            &[("reason", "rev 4 ceilings")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let id = f.store().document_requests(None, None).await.unwrap()[0]
        .id
        .clone();

    // The requester sees it waiting, with a withdraw button but no approve button.
    let list = mo.get("/documents").await;
    assert!(list.body.contains("id=\"doc-requests\""));
    assert!(list.body.contains("rev 4 ceilings"));
    assert!(
        !list
            .body
            .contains(&format!("/document-requests/{id}/approve"))
    );
    assert!(list.body.contains("Withdraw"));
    let res = mo
        .submit(
            "/documents",
            &format!("/document-requests/{id}/approve"),
            &[],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    // Compliance sees approve and reject, and approves.
    let mut cy = Browser::sign_in(&f.app, "cy").await;
    let list = cy.get("/documents").await;
    assert!(
        list.body
            .contains(&format!("/document-requests/{id}/approve"))
    );
    let res = cy
        .submit(
            "/documents",
            &format!("/document-requests/{id}/approve"),
            &[("note", "")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        res.location.as_deref(),
        Some(format!("{doc}?v={v}").as_str())
    );
    assert_eq!(
        status(&f, DocKind::Policy, "us-consumer", v).await,
        DocStatus::Active
    );

    // Roll back by emergency from the page.
    let page = mo.get(doc).await;
    assert!(page.body.contains("id=\"rollback\""), "{}", page.body);
    assert!(page.body.contains("id=\"emergency\""));
    let res = mo
        .submit(
            doc,
            &format!("{doc}/rollback"),
            &[("reason", "v2 closes too much"), ("emergency", "on")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        status(&f, DocKind::Policy, "us-consumer", 1).await,
        DocStatus::Active
    );
}
