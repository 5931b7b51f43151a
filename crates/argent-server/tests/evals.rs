//! The evaluator's pages over stored eval runs, through the router (`oneshot`): a case's
//! drill-down (messages, tool calls with arguments, status, rules, what the model was told,
//! replies, drafts), two runs ticked in the list and compared case by case, A beside B,
//! the list's verdict, model and document versions, and the pass-rate trend per eval set.
//! The runs are stored with the eval crate's own report and trace builders; one test runs
//! the real eval set through the server and reads a case it stored.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};

use argent_evals::CaseTrace;
use argent_server::ServerConfig;
use argent_store::{EvalRunStatus, NewEvalRun, Store};
use common::eval_runs::{CASE, OTHER, store_run};
use common::*;

/// The text of a page with the template engine's escapes undone.
fn text(r: &Resp) -> String {
    html_unescape(&r.body)
}

#[tokio::test]
async fn a_case_page_shows_the_messages_every_call_with_arguments_and_rules_and_the_drafts() {
    let f = fixture().await;
    store_run(f.store(), "eval-b", false, None, None).await;
    let mut eve = Browser::sign_in(&f.app, "eve").await;

    // The run page links each case to its page.
    let run = eve.get("/evals/eval-b").await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.body);
    assert!(
        run.body
            .contains(&format!("href=\"/evals/eval-b/cases/{CASE}\"")),
        "{}",
        run.body
    );

    let page = eve.get(&format!("/evals/eval-b/cases/{CASE}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = text(&page);
    // What the customer wrote, as the case file has it.
    assert!(body.contains("Ratenzahlung / instalment request INV-9120"));
    assert!(body.contains("due to a delayed customer payment we are short of liquidity"));
    // Every call in order, with its status, rules, arguments and what the model was told.
    let calls: Vec<&str> = body
        .match_indices("class=\"call\" data-tool=\"")
        .map(|(i, _)| {
            let rest = &body[i + "class=\"call\" data-tool=\"".len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(
        calls,
        ["read_aging", "propose_plan", "send_email"],
        "{body}"
    );
    assert!(body.contains("data-tool=\"propose_plan\" data-status=\"queued\""));
    assert!(body.contains("<code class=\"rule\">b2b.approval.large-plan-eur</code>"));
    assert!(
        body.contains("\"down_payment\": \"6000.01\""),
        "pretty arguments: {body}"
    );
    assert!(body.contains("queued for approval: plans over EUR 20,000.00 need a manager"));
    assert!(
        body.contains("{customer: B-3301"),
        "arguments that were not JSON, as sent"
    );
    assert!(
        body.contains("I proposed the plan Mr Becker asked for."),
        "the model's text"
    );
    // The drafted email and the plan's terms.
    assert!(body.contains(
        "To buchhaltung@altmark-verpackung.example.de: Your instalment plan for INV-9120"
    ));
    assert!(body.contains("we confirm EUR 6,000.00 on 12 March"));
    assert!(
        body.contains("<td>2026-06-05</td><td class=\"num\">6000.00</td>"),
        "{body}"
    );
    assert!(body.contains("Liquidity gap this quarter; 25% down."));
    // How it was scored, and the account afterwards (money in its currency's units).
    assert!(body.contains("class=\"outcome deny case-result\">fail<"));
    assert!(body.contains("class=\"failures\""));
    assert!(body.contains("EUR 6000.00 by 2026-03-12"), "{body}");

    // The same trace from the API.
    let (s, v) = f
        .as_user(
            "eve",
            Method::GET,
            &format!("/api/evals/eval-b/cases/{CASE}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["passed"], false);
    assert_eq!(
        v["trace"]["attempts"][0]["calls"][1]["rules"][0],
        "b2b.approval.large-plan-eur"
    );

    // Unknown cases and runs are 404; a collector may not look.
    assert_eq!(
        eve.get("/evals/eval-b/cases/nope").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        eve.get(&format!("/evals/eval-x/cases/{CASE}")).await.status,
        StatusCode::NOT_FOUND
    );
    let mut alice = Browser::sign_in(&f.app, "alice").await;
    assert_eq!(
        alice
            .get(&format!("/evals/eval-b/cases/{CASE}"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn two_ticked_runs_compare_case_by_case_and_a_case_a_beside_b() {
    let f = fixture().await;
    let a = store_run(f.store(), "eval-a", true, None, None).await;
    store_run(f.store(), "eval-b", false, Some(("eval-a", &a)), Some(2)).await;
    let mut eve = Browser::sign_in(&f.app, "eve").await;

    // The list has a checkbox per finished run in a plain GET form.
    let list = eve.get("/evals").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.body
            .contains("<form method=\"get\" action=\"/evals/compare\"")
    );
    for id in ["eval-a", "eval-b"] {
        assert!(
            list.body
                .contains(&format!("type=\"checkbox\" name=\"run\" value=\"{id}\"")),
            "{}",
            list.body
        );
    }

    // Ticked newest first, the older run is still the baseline.
    let cmp = eve.get("/evals/compare?run=eval-b&run=eval-a").await;
    assert_eq!(cmp.status, StatusCode::OK, "{}", cmp.body);
    assert!(cmp.body.contains("id=\"verdict\">regressed<"));
    let row = format!("<tr data-case=\"{CASE}\" class=\"changed\">");
    let at = cmp
        .body
        .find(&row)
        .unwrap_or_else(|| panic!("{}", cmp.body));
    let row = &cmp.body[at..at + cmp.body[at..].find("</tr>").unwrap()];
    assert!(row.contains(">pass<") && row.contains(">fail<"), "{row}");
    let href = format!("/evals/compare/{CASE}?a=eval-a&b=eval-b");
    assert!(html_unescape(row).contains(&href), "{row}");
    // The unchanged case is listed too, not marked.
    assert!(
        cmp.body
            .contains(&format!("<tr data-case=\"{OTHER}\"><td>"))
    );

    // A beside B for the case.
    let side = eve.get(&href).await;
    assert_eq!(side.status, StatusCode::OK, "{}", side.body);
    let body = text(&side);
    let (ia, ib) = (
        body.find("id=\"side-a\" data-run=\"eval-a\"").unwrap(),
        body.find("id=\"side-b\" data-run=\"eval-b\"").unwrap(),
    );
    assert!(ia < ib, "A first");
    let (side_a, side_b) = (&body[ia..ib], &body[ib..]);
    assert!(side_a.contains("data-tool=\"propose_plan\" data-status=\"executed\""));
    assert!(side_a.contains("\"down_payment\": \"6000.00\""));
    assert!(side_a.contains(">pass<"));
    assert!(side_b.contains("data-tool=\"propose_plan\" data-status=\"queued\""));
    assert!(side_b.contains("\"down_payment\": \"6000.01\""));
    assert!(side_b.contains("b2b.approval.large-plan-eur"));
    assert!(side_b.contains("policy b2b v2 (draft)"), "B's documents");
    // The messages are shown once, above both.
    assert_eq!(body.matches("id=\"message-1\"").count(), 1);
    assert!(body.find("id=\"message-1\"").unwrap() < ia);

    // The a/b form of the URL still works; a wrong number of ticks is a clear 400.
    let ab = eve.get("/evals/compare?a=eval-a&b=eval-b").await;
    assert_eq!(ab.status, StatusCode::OK);
    let one = eve.get("/evals/compare?run=eval-a").await;
    assert_eq!(one.status, StatusCode::BAD_REQUEST);
    assert!(one.body.contains("tick exactly two runs"), "{}", one.body);
    let none = eve.get("/evals/compare").await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    let missing = eve
        .get("/evals/compare/no-such-case?a=eval-a&b=eval-b")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// The `<tr data-id="ID" …>…</tr>` row of run `id` in the list.
fn list_row<'a>(body: &'a str, id: &str) -> &'a str {
    let at = body
        .find(&format!("<tr data-id=\"{id}\""))
        .unwrap_or_else(|| panic!("no row for {id}: {body}"));
    &body[at..at + body[at..].find("</tr>").unwrap()]
}

#[tokio::test]
async fn the_list_shows_each_runs_verdict_model_and_document_versions() {
    let f = fixture().await;
    let a = store_run(f.store(), "eval-a", true, None, None).await;
    store_run(f.store(), "eval-b", false, Some(("eval-a", &a)), Some(2)).await;
    store_run(f.store(), "eval-c", true, Some(("eval-a", &a)), Some(3)).await;
    let mut eve = Browser::sign_in(&f.app, "eve").await;
    let list = eve.get("/evals").await;
    assert_eq!(list.status, StatusCode::OK);

    let b = list_row(&list.body, "eval-b");
    assert!(b.contains(">regression<"), "{b}");
    assert!(b.contains("<td class=\"model\">offline</td>"), "{b}");
    assert!(b.contains("policy b2b v2 (draft)"), "{b}");
    assert!(
        b.contains("<code>system</code> v4"),
        "the prompts' versions: {b}"
    );
    assert!(
        b.contains("prompt set <code>1111222233334444</code>"),
        "{b}"
    );
    // Compared with its baseline and no worse: a pass.
    let c = list_row(&list.body, "eval-c");
    assert!(
        c.contains(">pass<") && c.contains("policy b2b v3 (draft)"),
        "{c}"
    );
    // Not compared: judged on its own (one of its cases fails).
    let a = list_row(&list.body, "eval-a");
    assert!(a.contains(">fail<") && a.contains("policy b2b v1<"), "{a}");

    // A running run has no verdict and no checkbox.
    f.store()
        .insert_eval_run(&NewEvalRun {
            id: "eval-r".into(),
            label: "active".into(),
            model: "offline".into(),
            subject: "x".into(),
            started_by: "eve".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let list = eve.get("/evals").await;
    let r = list_row(&list.body, "eval-r");
    assert!(r.contains("running") && !r.contains("checkbox"), "{r}");
}

/// The `(run, rate)` of every point of the trend SVG of set `set`.
fn points(body: &str, set: &str) -> Vec<(String, f64)> {
    let at = body
        .find(&format!("data-set=\"{set}\""))
        .unwrap_or_else(|| panic!("no trend for {set}: {body}"));
    let svg = &body[at..at + body[at..].find("</svg>").unwrap()];
    svg.match_indices("<circle class=\"point\" data-run=\"")
        .map(|(i, m)| {
            let rest = &svg[i + m.len()..];
            let run = rest[..rest.find('"').unwrap()].to_string();
            let r = &rest[rest.find("data-rate=\"").unwrap() + "data-rate=\"".len()..];
            (run, r[..r.find('"').unwrap()].parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn the_trend_plots_each_finished_runs_pass_rate_oldest_first() {
    let f = fixture().await;
    let mut eve = Browser::sign_in(&f.app, "eve").await;
    // No finished run, no trend.
    let empty = eve.get("/evals").await;
    assert!(!empty.body.contains("Pass rate by eval set"));

    let a = store_run(f.store(), "eval-a", true, None, None).await; // 1 of 2
    store_run(f.store(), "eval-b", false, Some(("eval-a", &a)), Some(2)).await; // 0 of 2
    store_run(f.store(), "eval-c", true, None, None).await; // 1 of 2
    f.store()
        .insert_eval_run(&NewEvalRun {
            id: "eval-running".into(),
            label: "active".into(),
            model: "offline".into(),
            subject: "x".into(),
            started_by: "eve".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let list = eve.get("/evals").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("Pass rate by eval set"));
    let got = points(&list.body, "core");
    assert_eq!(
        got,
        [
            ("eval-a".to_string(), 0.5),
            ("eval-b".to_string(), 0.0),
            ("eval-c".to_string(), 0.5)
        ],
        "{}",
        list.body
    );
    // The line joins the active runs only (a and c); the draft run is a hollow point.
    let line_at = list
        .body
        .find("<polyline class=\"trend-line\" points=\"")
        .unwrap();
    let line = &list.body[line_at..line_at + list.body[line_at..].find("/>").unwrap()];
    let pts = line
        .split("points=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(pts.split(' ').count(), 2, "{line}");
    assert!(
        list.body
            .contains("data-run=\"eval-b\" data-rate=\"0.0000\"")
    );
    let b_at = list.body.find("data-run=\"eval-b\" data-rate").unwrap();
    let b_circle = &list.body[b_at..b_at + list.body[b_at..].find('>').unwrap()];
    assert!(b_circle.contains("fill=\"#ffffff\""), "{b_circle}");
    // The same points as a table with a bar each.
    assert!(
        list.body
            .contains("<tr data-run=\"eval-c\" data-rate=\"0.5000\">")
    );
    assert!(
        list.body
            .contains("<meter min=\"0\" max=\"1\" value=\"0.5000\">")
    );
}

async fn wait_done(store: &Store, id: &str) -> argent_store::EvalRunRecord {
    for _ in 0..600 {
        let r = store.eval_run(id).await.unwrap();
        if r.run.status != EvalRunStatus::Running {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("eval run {id} did not finish in two minutes");
}

#[tokio::test]
async fn a_run_started_from_the_server_stores_its_documents_and_every_cases_trace() {
    let f = fixture_with(ServerConfig {
        evals_dir: Some(repo("evals/core")),
        eval_filter: Some(CASE.into()),
        ..ServerConfig::default()
    })
    .await;
    let (s, v) = f.as_user("eve", Method::POST, "/api/evals", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let rec = wait_done(f.store(), &id).await;
    assert_eq!(rec.run.status, EvalRunStatus::Done, "{:?}", rec.run.error);
    // The exact active versions: every prompt and policy of the seeded set, version 1.
    let policies: Vec<&str> = rec
        .run
        .documents
        .iter()
        .filter(|d| d.kind == "policy")
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(policies, ["b2b", "uk-consumer", "us-consumer"]);
    assert!(
        rec.run
            .documents
            .iter()
            .any(|d| d.kind == "prompt" && d.name == "system")
    );
    assert!(
        rec.run
            .documents
            .iter()
            .all(|d| d.version == 1 && !d.draft && d.sha256.len() == 64)
    );

    let stored = f.store().eval_run_case(&id, CASE).await.unwrap();
    let trace: CaseTrace = serde_json::from_value(stored.trace).unwrap();
    assert_eq!(trace.messages.len(), 1);
    let calls = &trace.attempts[0].calls;
    assert!(calls.iter().any(|c| c.tool == "propose_plan"), "{calls:?}");
    assert!(calls.iter().all(|c| !c.model_text.is_empty()), "{calls:?}");

    let mut eve = Browser::sign_in(&f.app, "eve").await;
    let page = eve.get(&format!("/evals/{id}/cases/{CASE}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(text(&page).contains("Ratenzahlung / instalment request INV-9120"));
    assert!(page.body.contains("data-tool=\"propose_plan\""));
    let list = eve.get("/evals").await;
    assert!(list_row(&list.body, &id).contains("policy us-consumer v1"));
}
