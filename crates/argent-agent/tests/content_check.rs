//! Issue #12 §2, the second layer: the content compliance check runs after the rules
//! allow or queue an email, can only hold it (`us.content-check`, audited, its reason shown
//! to the reviewer), is asked again when a reviewer edits the text, and a timeout, an
//! error or an unreadable answer of a model-based check holds the draft. The model check
//! talks to a fake OpenAI-compatible server on 127.0.0.1.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use argent_agent::{
    Agent, AgentConfig, AgentError, CallStatus, Clock, ComplianceCheck, ModelComplianceCheck,
    Reviewer, Trigger,
};
use argent_core::Role;
use argent_llm::{ChatModel, OpenAiConfig, OpenAiModel, RetryPolicy, ScriptedModel, ToolCall};
use argent_store::testkit::TestStore;
use argent_store::{AuditFilter, Store};

const NOW: &str = "2026-11-20T18:00:00Z"; // noon in Chicago

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

async fn agent(store: &Store, model: Arc<dyn ChatModel>, timeout: Duration) -> Agent {
    store
        .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
        .await
        .unwrap();
    let config = AgentConfig {
        clock: Clock::Fixed(now()),
        assume_initial_sent: true,
        compliance_timeout: timeout,
        ..Default::default()
    };
    Agent::from_dirs(
        store.clone(),
        model,
        &repo("prompts"),
        &repo("policies"),
        config,
    )
    .unwrap()
}

const FOOTER: &str =
    "This communication is from a debt collector. To stop receiving emails from us, reply STOP.";

fn email(sentence: &str) -> String {
    json!({
        "customer_id": "C-ANN",
        "to": "ann@mail.example",
        "subject": "Invoice INV-ANN-1",
        "body": format!("Dear Ann,\n\n{sentence}\n\nKind regards,\nAccounts Receivable\n\n---\n{FOOTER}"),
        "invoice_numbers": ["INV-ANN-1"],
    })
    .to_string()
}

fn scripted_email(sentence: &str) -> Arc<ScriptedModel> {
    let m = ScriptedModel::new();
    m.push_tool_calls(vec![ToolCall::new("c0", "send_email", email(sentence))]);
    m.push_text("Done.");
    Arc::new(m)
}

fn step() -> Trigger {
    Trigger::Step {
        step: "overdue_notice".into(),
    }
}

const CLEAN: &str = "Invoice INV-ANN-1 for $1,200.00 is past due. Could you let us know when we can expect payment?";
/// No deny family matches it; the offline classifier reads it as harassment.
const HOSTILE: &str = "Frankly, your excuses about invoice INV-ANN-1 are unacceptable.";

async fn events(store: &Store, kind: &str) -> Vec<Value> {
    store
        .audit_events(&AuditFilter {
            kind: Some(kind.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect()
}

fn collector() -> Reviewer {
    Reviewer {
        name: "cole".into(),
        role: Role::Collector,
    }
}

#[tokio::test]
async fn an_email_the_rules_allow_but_the_check_flags_is_held_and_a_person_decides() {
    for ts in TestStore::all().await.unwrap() {
        let agent = agent(&ts.store, scripted_email(HOSTILE), Duration::from_secs(5)).await;
        let out = agent.start("C-ANN", step()).await.unwrap();
        let call = out.calls.iter().find(|c| c.tool == "send_email").unwrap();
        assert_eq!(call.status, CallStatus::Queued, "{}: {call:?}", ts.label);
        assert_eq!(call.rules, ["us.content-check"], "{}", ts.label);
        assert!(call.model_text.contains("us.content-check"));

        // Audited: the check's verdict, and the decision with the rule in it.
        let checks = events(&ts.store, "content_check").await;
        assert_eq!(checks.len(), 1, "{}", ts.label);
        assert_eq!(checks[0]["verdict"], "concern");
        assert_eq!(checks[0]["category"], "harassment");
        assert_eq!(checks[0]["held"], true);
        let decisions = events(&ts.store, "policy_decision").await;
        let d = decisions.last().unwrap();
        assert_eq!(d["outcome"], "needs_approval");
        assert_eq!(d["rules"][0]["id"], "us.content-check");
        assert!(
            d["rules"][0]["message"]
                .as_str()
                .unwrap()
                .contains("harassment"),
            "the reviewer sees why: {d}"
        );

        // A person approves the text they read: that is their decision, and it executes.
        let item = call.approval_id.clone().unwrap();
        let compliance = Reviewer {
            name: "cora".into(),
            role: Role::Compliance,
        };
        assert!(matches!(
            agent.approve(&item, &compliance, None).await,
            Err(AgentError::NotPermitted(_))
        ));
        agent.approve(&item, &collector(), None).await.unwrap();
        assert_eq!(
            ts.store.pending_emails(10).await.unwrap().len(),
            1,
            "{}: the approved email is queued for delivery",
            ts.label
        );
        // Approving the text as read does not ask the check again.
        assert_eq!(events(&ts.store, "content_check").await.len(), 1);
    }
}

#[tokio::test]
async fn a_clean_email_is_allowed_and_its_check_is_audited() {
    let ts = TestStore::sqlite().await.unwrap();
    let agent = agent(&ts.store, scripted_email(CLEAN), Duration::from_secs(5)).await;
    let out = agent.start("C-ANN", step()).await.unwrap();
    let call = out.calls.iter().find(|c| c.tool == "send_email").unwrap();
    assert_eq!(call.status, CallStatus::Executed, "{call:?}");
    let checks = events(&ts.store, "content_check").await;
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0]["verdict"], "compliant");
    assert_eq!(checks[0]["held"], false);
}

#[tokio::test]
async fn a_draft_the_rules_deny_stays_denied_and_is_not_checked() {
    let ts = TestStore::sqlite().await.unwrap();
    let agent = agent(
        &ts.store,
        scripted_email("Pay invoice INV-ANN-1, you deadbeat."),
        Duration::from_secs(5),
    )
    .await;
    let out = agent.start("C-ANN", step()).await.unwrap();
    let call = out.calls.iter().find(|c| c.tool == "send_email").unwrap();
    assert_eq!(call.status, CallStatus::Refused);
    assert_eq!(call.rules, ["us.abusive-language"]);
    assert!(events(&ts.store, "content_check").await.is_empty());
}

#[tokio::test]
async fn an_edit_is_checked_again_and_the_reviewer_decides_it() {
    let ts = TestStore::sqlite().await.unwrap();
    let agent = agent(&ts.store, scripted_email(HOSTILE), Duration::from_secs(5)).await;
    let out = agent.start("C-ANN", step()).await.unwrap();
    let item = out.calls[0].approval_id.clone().unwrap();
    let edited: Value = serde_json::from_str(&email(
        "We have heard every excuse about invoice INV-ANN-1, and we will keep writing until it is paid.",
    ))
    .unwrap();
    // The preview shows what the check makes of the new text.
    let preview = agent.preview_edit(&item, edited.clone()).await.unwrap();
    assert_eq!(preview.rule_ids(), ["us.content-check"], "{preview}");
    // A clean edit previews as allowed.
    let clean: Value = serde_json::from_str(&email(CLEAN)).unwrap();
    assert!(agent.preview_edit(&item, clean).await.unwrap().is_allowed());
    // The reviewer submits the flagged edit: they have read the reason; it executes.
    let r = agent
        .edit(
            &item,
            &collector(),
            edited,
            Some("tone is fine for this customer"),
        )
        .await
        .unwrap();
    assert_eq!(r.decision.rule_ids(), ["us.content-check"]);
    let checks = events(&ts.store, "content_check").await;
    // The run's check, the two previews are not audited, the submitted edit's check is.
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert_eq!(checks[1]["verdict"], "concern");
}

// ---------------------------------------------------------------------------------------
// The model-based check against a fake OpenAI-compatible server on 127.0.0.1.

/// What the fake endpoint does with each request.
#[derive(Clone, Copy)]
enum Endpoint {
    /// Never answers (within the test).
    Stall,
    /// 200 with a completion whose text is this.
    Says(&'static str),
    /// 500 with an error body.
    Fails,
}

/// Serves `behaviour` on 127.0.0.1 (one thread per connection); returns the `/v1` base URL.
fn fake_endpoint(behaviour: Endpoint) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                // Read the request head and its body.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let Ok(n) = stream.read(&mut chunk) else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let Ok(n) = stream.read(&mut chunk) else {
                        return;
                    };
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let (status, body) = match behaviour {
                    Endpoint::Stall => {
                        std::thread::sleep(Duration::from_secs(30));
                        return;
                    }
                    Endpoint::Fails => (
                        "500 Internal Server Error",
                        json!({"error": {"message": "boom", "type": "server_error"}}).to_string(),
                    ),
                    Endpoint::Says(text) => (
                        "200 OK",
                        json!({
                            "id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000,
                            "model": "fake-check", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
                        })
                        .to_string(),
                    ),
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            });
        }
    });
    format!("http://{addr}/v1")
}

fn model_check(base_url: &str) -> Arc<dyn ComplianceCheck> {
    let config = OpenAiConfig::new("fake-check")
        .with_base_url(base_url)
        .with_timeout(Duration::from_secs(5))
        .with_retry(RetryPolicy::new(
            0,
            Duration::from_millis(1),
            Duration::from_millis(1),
        ));
    Arc::new(ModelComplianceCheck::new(Arc::new(
        OpenAiModel::new(config).unwrap(),
    )))
}

async fn run_with(endpoint: Endpoint, sentence: &str) -> (CallStatus, Vec<String>, Value) {
    let ts = TestStore::sqlite().await.unwrap();
    let agent = agent(
        &ts.store,
        scripted_email(sentence),
        Duration::from_millis(500),
    )
    .await
    .with_compliance_check(model_check(&fake_endpoint(endpoint)));
    let out = agent.start("C-ANN", step()).await.unwrap();
    let call = out
        .calls
        .iter()
        .find(|c| c.tool == "send_email")
        .unwrap()
        .clone();
    let check = events(&ts.store, "content_check").await.pop().unwrap();
    (call.status, call.rules, check)
}

#[tokio::test]
async fn a_model_check_that_stalls_fails_or_answers_garbage_holds_the_draft() {
    for (endpoint, what) in [
        (Endpoint::Stall, "timed out"),
        (Endpoint::Fails, "model error"),
        (Endpoint::Says("Looks fine to me!"), "no JSON"),
        (
            Endpoint::Says("{\"compliant\": \"yes\"}"),
            "not the verdict",
        ),
    ] {
        let (status, rules, check) = run_with(endpoint, CLEAN).await;
        assert_eq!(status, CallStatus::Queued, "{what}: {check}");
        assert_eq!(rules, ["us.content-check"], "{what}");
        assert_eq!(check["verdict"], "error", "{what}: {check}");
        assert!(
            check["reason"].as_str().unwrap().contains(what),
            "{what}: {check}"
        );
        assert!(check["checker"].as_str().unwrap().contains("fake-check"));
    }
}

#[tokio::test]
async fn a_model_check_can_hold_but_its_compliant_answer_never_loosens() {
    // Compliant: the rules' allow stands.
    let (status, rules, _) = run_with(Endpoint::Says("{\"compliant\": true}"), CLEAN).await;
    assert_eq!(status, CallStatus::Executed);
    assert!(rules.is_empty());
    // Not compliant: held, with the model's category and reason.
    let (status, rules, check) = run_with(
        Endpoint::Says(
            "{\"compliant\": false, \"category\": \"false_urgency\", \"reason\": \"implies a deadline\"}",
        ),
        CLEAN,
    )
    .await;
    assert_eq!(status, CallStatus::Queued);
    assert_eq!(rules, ["us.content-check"]);
    assert_eq!(check["category"], "false_urgency");
    // A draft the rules deny is never sent to the model, whatever it would say.
    let (status, rules, _) = {
        let ts = TestStore::sqlite().await.unwrap();
        let agent = agent(
            &ts.store,
            scripted_email("Pay invoice INV-ANN-1 or you could be arrested."),
            Duration::from_millis(500),
        )
        .await
        .with_compliance_check(model_check(&fake_endpoint(Endpoint::Says(
            "{\"compliant\": true}",
        ))));
        let out = agent.start("C-ANN", step()).await.unwrap();
        assert!(events(&ts.store, "content_check").await.is_empty());
        let c = out.calls[0].clone();
        (c.status, c.rules, ())
    };
    assert_eq!(status, CallStatus::Refused);
    assert_eq!(rules, ["us.threat-arrest"]);
}
