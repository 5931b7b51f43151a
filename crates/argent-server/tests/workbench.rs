//! The collector's approval workbench through the router: filters kept in the URL, rows
//! that say who and what, approve & next under the filters the reviewer came from, bulk
//! approval that judges every item again and leaves one whose decision changed, and the
//! keyboard-shortcut script served under a policy that allows only this site's scripts.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::StatusCode;
use serde_json::json;

use argent_store::testkit::raw_execute;
use argent_store::{ApprovalStatus, AuditFilter};
use common::*;

/// The page as a browser reads its attributes (handlebars escapes `=` and `&`).
fn unescaped(html: &str) -> String {
    html.replace("&#x3D;", "=").replace("&amp;", "&")
}

#[tokio::test]
async fn filters_live_in_the_url_and_rows_say_who_and_what() {
    let f = fixture().await;
    let mut alice = Browser::sign_in(&f.app, "alice").await;

    let all = alice.get("/queue").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert!(all.body.contains(&format!("data-id=\"{}\"", f.bo)));
    // The customer's name links the row; what the customer wrote and the plan's terms are
    // on it; so is the deciding rule's message.
    assert!(all.body.contains("class=\"account-link\""), "{}", all.body);
    assert!(
        all.body.contains("Could I get 20% off?"),
        "snippet: {}",
        all.body
    );
    assert!(
        all.body.contains("class=\"plan-terms\">down "),
        "plan: {}",
        all.body
    );
    assert!(all.body.contains("class=\"rule-message\""), "{}", all.body);

    // "I can approve": Ann's plans (a collector may), not Bo's (a manager's).
    let mut mine = alice.get("/queue?mine=1").await;
    assert_eq!(mine.status, StatusCode::OK);
    mine.body = unescaped(&mine.body);
    assert!(
        !mine.body.contains(&format!("data-id=\"{}\"", f.bo)),
        "{}",
        mine.body
    );
    for id in &f.ann {
        assert!(mine.body.contains(&format!("data-id=\"{id}\"")));
        // Ticks for bulk approval, and item links that keep the filter.
        assert!(mine.body.contains(&format!("name=\"ids\" value=\"{id}\"")));
        assert!(mine.body.contains(&format!("href=\"/queue/{id}?mine=1\"")));
    }
    assert!(
        mine.body.contains("id=\"queue-total\">10<"),
        "{}",
        mine.body
    );
    assert!(mine.body.contains("name=\"mine\" value=\"1\" checked"));

    // Search by customer name and by sender; a currency and amount range; no match.
    let bo = alice.get("/queue?q=bo%40mail").await;
    assert!(bo.body.contains("id=\"queue-total\">1<"), "{}", bo.body);
    let none = alice.get("/queue?tool=send_email").await;
    assert!(none.body.contains("id=\"queue-total\">0<"), "{}", none.body);
    let usd = alice.get("/queue?currency=usd&min=0.01").await;
    assert_eq!(usd.status, StatusCode::OK, "{}", usd.body);
    assert!(usd.body.contains("id=\"queue-total\">11<"), "{}", usd.body);
    let page2 = alice.get("/queue?mine=1&q=ann").await;
    assert!(page2.body.contains("id=\"queue-total\">10<"));

    // A filter that cannot be read names itself.
    for (uri, name) in [
        ("/queue?currency=XX", "currency"),
        ("/queue?age=3w", "age"),
        ("/queue?min=lots", "min"),
        ("/queue?tool=delete_everything", "tool"),
        ("/queue?mine=yes", "mine"),
    ] {
        let r = alice.get(uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.body);
        assert!(r.body.contains(name), "{uri}: {}", r.body);
    }
}

#[tokio::test]
async fn approve_and_next_follows_the_filter_and_reject_needs_a_reason() {
    let f = fixture().await;
    let mut alice = Browser::sign_in(&f.app, "alice").await;
    let first = &f.ann[0];
    let mut page = alice.get(&format!("/queue/{first}?mine=1")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.body = unescaped(&page.body);
    // The decision buttons come before the draft.
    let buttons = page.body.find("id=\"approve-next\"").unwrap();
    assert!(buttons < page.body.find("The agent's draft").unwrap());
    assert!(
        page.body
            .contains("href=\"/queue?mine=1\" id=\"back-to-queue\"")
    );
    let token = csrf(&page.body);
    let res = alice
        .post(
            &format!("/queue/{first}/approve"),
            &[
                ("_csrf", &token),
                ("note", ""),
                ("next", "1"),
                ("back", "mine=1"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        res.location.as_deref(),
        Some(format!("/queue/{}?mine=1", f.ann[1]).as_str()),
        "on to the next item the reviewer may approve"
    );
    let second = &f.ann[1];
    let res = alice
        .post(
            &format!("/queue/{second}/reject"),
            &[
                ("_csrf", &token),
                ("note", "too generous"),
                ("next", "1"),
                ("back", "mine=1"),
            ],
        )
        .await;
    assert_eq!(
        res.location.as_deref(),
        Some(format!("/queue/{}?mine=1", f.ann[2]).as_str())
    );
    let store = f.store();
    assert_eq!(
        store.approval(first).await.unwrap().status,
        ApprovalStatus::Approved
    );
    assert_eq!(
        store.approval(second).await.unwrap().status,
        ApprovalStatus::Rejected
    );
    // A plain approve still goes back to the list.
    let third = &f.ann[2];
    let res = alice
        .post(
            &format!("/queue/{third}/approve"),
            &[("_csrf", &token), ("note", "")],
        )
        .await;
    assert!(
        res.location
            .as_deref()
            .unwrap()
            .starts_with("/queue?done=approved")
    );
    // A back value that is not a filter is refused, naming it; nothing is decided twice.
    let res = alice
        .post(
            &format!("/queue/{}/approve", f.ann[3]),
            &[("_csrf", &token), ("next", "1"), ("back", "mine=maybe")],
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    assert!(res.body.contains("mine"), "{}", res.body);
}

#[tokio::test]
async fn bulk_approval_judges_each_item_again_and_leaves_a_changed_one_pending() {
    let f = fixture().await;
    let store = f.store();
    let mut alice = Browser::sign_in(&f.app, "alice").await;
    // One item's stored decision no longer matches what the policy decides now.
    let changed = &f.ann[4];
    let sql = format!(
        "UPDATE approvals SET decision = '{}' WHERE id = '{changed}'",
        json!({"outcome": "needs_approval", "rules": [{"id": "us.some-other-rule", "outcome": "needs_approval", "message": "m", "citation": "c", "approvers": ["collector"]}]})
    );
    raw_execute(store, &sql).await.unwrap();
    let list = alice.get("/queue?mine=1").await;
    let token = csrf(&list.body);
    let ticked = [&f.ann[3], &f.ann[4], &f.ann[5], &f.bo];
    let mut form: Vec<(&str, &str)> =
        vec![("_csrf", &token), ("back", "mine=1"), ("note", "batch")];
    for id in ticked {
        form.push(("ids", id));
    }
    let res = alice.post("/queue/bulk-approve", &form).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let loc = res.location.unwrap();
    assert!(loc.starts_with("/queue?bulk_ok=2&"), "{loc}");
    assert!(loc.contains(&format!("bulk_changed={changed}")), "{loc}");
    assert!(
        loc.contains(&format!("bulk_refused={}", f.bo)),
        "a collector may not approve Bo's: {loc}"
    );
    assert!(loc.ends_with("&mine=1"), "{loc}");
    let flash = alice.get(&loc).await;
    assert!(flash.body.contains("2 approved."), "{}", flash.body);
    assert!(
        flash
            .body
            .contains(&format!("decision changed since it was queued: {changed}"))
    );

    assert_eq!(
        store.approval(&f.ann[3]).await.unwrap().status,
        ApprovalStatus::Approved
    );
    assert_eq!(
        store.approval(&f.ann[5]).await.unwrap().status,
        ApprovalStatus::Approved
    );
    assert_eq!(
        store.approval(changed).await.unwrap().status,
        ApprovalStatus::Pending
    );
    assert_eq!(
        store.approval(&f.bo).await.unwrap().status,
        ApprovalStatus::Pending
    );
    // One audited decision per approved item, with the reviewer's note.
    let events = store
        .audit_events(&AuditFilter {
            kind: Some("approval_decided".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mine: Vec<_> = events
        .iter()
        .filter(|e| e.actor == "collector:alice")
        .collect();
    assert_eq!(mine.len(), 2, "{events:#?}");

    // Nothing ticked, or too many: refused with the field named.
    let res = alice
        .post("/queue/bulk-approve", &[("_csrf", &token), ("back", "")])
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.body.contains("ids"), "{}", res.body);
    // Without the CSRF token: refused before anything happens.
    let res = alice
        .post("/queue/bulk-approve", &[("ids", &f.ann[6])])
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(
        store.approval(&f.ann[6]).await.unwrap().status,
        ApprovalStatus::Pending
    );
}

#[tokio::test]
async fn the_shortcuts_script_is_the_only_script_a_page_may_run() {
    let f = fixture().await;
    let mut alice = Browser::sign_in(&f.app, "alice").await;
    let js = alice.get("/static/workbench.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.content_type.starts_with("text/javascript"));
    assert!(js.body.contains("approve-next"));
    let page = alice.get("/queue").await;
    assert!(
        page.body
            .contains("<script src=\"/static/workbench.js\" defer></script>")
    );
    assert!(!page.body.contains("<script>"), "no inline script");
}

/// The value of the input with `id` on a page (unescaped).
fn input_value(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>').unwrap()];
    let v = tag.find("value=\"").map_or(String::new(), |i| {
        let rest = &tag[i + 7..];
        rest[..rest.find('"').unwrap()].to_string()
    });
    html_unescape(&v)
}

#[tokio::test]
async fn the_plan_editor_recomputes_an_exact_schedule_and_goes_through_the_check() {
    let f = fixture().await;
    let store = f.store();
    let mut alice = Browser::sign_in(&f.app, "alice").await;
    let id = &f.ann[0];
    let page = alice.get(&format!("/queue/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // Terms, not JSON: the proposal's values, the customer and currency shown, not inputs.
    assert!(
        page.body.contains("class=\"edit plan-editor\""),
        "{}",
        page.body
    );
    assert!(!page.body.contains("id=\"field-installments\""));
    assert!(!page.body.contains("name=\"plan.currency\""));
    assert!(!page.body.contains("name=\"plan.customer"));
    assert!(page.body.contains("id=\"plan-currency\">USD<"));
    assert!(page.body.contains("id=\"plan-balance\">1,200.00 USD<"));
    assert_eq!(input_value(&page.body, "plan-discount"), "240.00");
    assert_eq!(input_value(&page.body, "plan-down-payment"), "96.00");
    assert_eq!(input_value(&page.body, "plan-count"), "3");
    assert_eq!(input_value(&page.body, "plan-start-date"), "2026-11-20");
    assert!(page.body.contains("<option value=\"monthly\" selected>"));
    assert!(
        !page.body.contains("id=\"plan-irregular\""),
        "the agent's plan is an even monthly one"
    );

    // Impossible terms come back with the reason in currency units and what was typed.
    for (field, typed, why) in [
        (
            "plan.down_payment",
            "1,300.00",
            "down payment 1,300.00 exceeds the balance less the discount, 960.00",
        ),
        (
            "plan.discount",
            "1300",
            "discount 1,300.00 exceeds the balance 1,200.00",
        ),
        (
            "plan.count",
            "0",
            "the number of instalments must be from 1 to 120 (got 0)",
        ),
        (
            "plan.count",
            "three",
            "number of instalments: &#x27;three&#x27; is not a whole number",
        ),
        (
            "plan.frequency",
            "daily",
            "frequency: &#x27;daily&#x27; is not a frequency",
        ),
        (
            "plan.start_date",
            "20/11/2026",
            "start date: &#x27;20/11/2026&#x27; is not a date",
        ),
        (
            "plan.discount",
            "12.345",
            "discount: &#x27;12.345&#x27; is not an amount",
        ),
    ] {
        let res = alice
            .submit(
                &format!("/queue/{id}"),
                &format!("/queue/{id}/preview"),
                &[(field, typed)],
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}={typed}"
        );
        assert!(res.body.contains(why), "{field}={typed}: {}", res.body);
        if field != "plan.frequency" {
            let input = format!("plan-{}", field["plan.".len()..].replace('_', "-"));
            assert_eq!(input_value(&res.body, &input), typed, "{field} kept");
        }
    }

    // 5% off, 120.00 down, three monthly: 340.00 each, checked (allow) then submitted.
    // A customer id slipped into the form changes nothing: the editor has no such field.
    let preview = alice
        .submit(
            &format!("/queue/{id}"),
            &format!("/queue/{id}/preview"),
            &[
                ("plan.discount", "60"),
                ("plan.down_payment", "120.00"),
                ("plan.count", "3"),
                ("plan.frequency", "monthly"),
                ("plan.start_date", "2026-11-20"),
                ("t.customer_id", "C-BO"),
                ("note", "5% is what we can do"),
            ],
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(
        preview.body.contains("id=\"preview-outcome\">allow<"),
        "{}",
        preview.body
    );
    for due in ["2026-12-20", "2027-01-20", "2027-02-20"] {
        assert!(
            preview.body.contains(&format!("340.00 due {due}")),
            "{due}: {}",
            preview.body
        );
    }
    assert_eq!(
        store.approval(id).await.unwrap().status,
        ApprovalStatus::Pending,
        "checking acts on nothing"
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
            &format!("/queue/{id}/edit"),
            &[
                ("_csrf", &token),
                ("args", &args),
                ("note", "5% is what we can do"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let item = store.approval(id).await.unwrap();
    assert_eq!(item.status, ApprovalStatus::Approved);
    let done = item.final_action.unwrap();
    assert_eq!(done["customer_id"], "C-ANN");
    assert_eq!(done["currency"], "USD");
    assert_eq!(done["balance"], "1200.00");
    assert_eq!(done["discount"], "60.00");
    assert_eq!(done["down_payment"], "120.00");
    assert_eq!(
        done["installments"],
        json!([
            {"due_date": "2026-12-20", "amount": "340.00"},
            {"due_date": "2027-01-20", "amount": "340.00"},
            {"due_date": "2027-02-20", "amount": "340.00"},
        ])
    );

    // Weekly, in seven: 864.00 left does not divide by 7; it still sums exactly.
    let id = &f.ann[1];
    let preview = alice
        .submit(
            &format!("/queue/{id}"),
            &format!("/queue/{id}/preview"),
            &[
                ("plan.discount", "240.00"),
                ("plan.down_payment", "96.00"),
                ("plan.count", "7"),
                ("plan.frequency", "weekly"),
                ("plan.start_date", "2026-11-20"),
            ],
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body.matches("class=\"instalment\"").count(), 7);
    assert!(
        preview.body.contains("123.43 due 2026-11-27"),
        "{}",
        preview.body
    );
    assert!(
        preview.body.contains("123.42 due 2027-01-08"),
        "{}",
        preview.body
    );
}

#[tokio::test]
async fn the_item_page_shows_the_whole_thread_in_the_customers_time() {
    let f = fixture().await;
    let store = f.store();
    earlier_thread(store).await;

    let mut alice = Browser::sign_in(&f.app, "alice").await;
    let page = alice.get(&format!("/queue/{}", f.ann[0])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(
        body.contains("Times are the customer's local time, America/Chicago."),
        "{body}"
    );
    let pos = |needle: &str| {
        body.find(needle)
            .unwrap_or_else(|| panic!("{needle} on the page: {body}"))
    };
    // Oldest first, local times in one format, the trigger marked.
    let earlier = pos("Is INV-ANN-1 the right amount?");
    let answer = pos("Yes, 1,200.00 is right.");
    let trigger = pos("Could I get 20% off?");
    assert!(earlier < answer && answer < trigger);
    assert!(body.contains(">2026-11-02 09:30 CST</time>"), "{body}");
    assert!(body.contains(">2026-11-03 08:00 CST</time>"));
    assert!(body.contains("datetime=\"2026-11-20T18:00:00Z\">2026-11-20 12:00 CST</time>"));
    assert_eq!(body.matches("started this item's run").count(), 1);
    // The whole thread sits after the decision buttons.
    assert!(pos("id=\"approve-next\"") < pos("id=\"thread\""));
    assert!(pos("id=\"approve-next\"") < pos("id=\"draft\""));
}
