//! Issue #11, item 17: two tool calls with the same id in one model turn. The first is
//! processed as usual; the second is refused with an error tool result naming the id and
//! audited as a validation error — never skipped while the model is told it ran.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use argent_agent::{Agent, AgentConfig, CallStatus, Clock, Trigger};
use argent_llm::{ChatMessage, ScriptedModel, ToolCall};
use argent_store::testkit::TestStore;
use argent_store::{AuditFilter, AuditVerification, Store};

fn now() -> DateTime<Utc> {
    "2026-11-20T18:00:00Z".parse().unwrap()
}

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

async fn agent(store: &Store, model: Arc<ScriptedModel>) -> Agent {
    store
        .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
        .await
        .unwrap();
    let config = AgentConfig {
        clock: Clock::Fixed(now()),
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

#[tokio::test]
async fn a_second_call_with_the_same_id_is_refused_and_audited() {
    for ts in TestStore::all().await.unwrap() {
        let model = Arc::new(ScriptedModel::new());
        let first = json!({"customer_id": "C-ANN", "reason": "Customer asked for a person.", "urgency": "normal"});
        let second = json!({"customer_id": "C-ANN", "reason": "Second escalation under the same id.", "urgency": "high"});
        model.push_tool_calls(vec![
            ToolCall::new("call_1", "escalate", first.to_string()),
            ToolCall::new("call_1", "escalate", second.to_string()),
        ]);
        model.push_text("Done.");
        let agent = agent(&ts.store, model.clone()).await;
        let out = agent
            .start(
                "C-ANN",
                Trigger::Inbound {
                    from: "ann@mail.example".into(),
                    subject: "Help".into(),
                    body: "I want to talk to a person.".into(),
                    received_at: now(),
                    message_id: None,
                    references: Vec::new(),
                    mail: None,
                },
            )
            .await
            .unwrap();

        assert_eq!(out.calls.len(), 2, "{}: {:?}", ts.label, out.calls);
        assert_eq!(out.calls[0].status, CallStatus::Executed, "{:?}", out.calls);
        assert_eq!(out.calls[1].status, CallStatus::Invalid, "{:?}", out.calls);
        assert!(
            out.calls[1].model_text.contains("duplicate")
                && out.calls[1].model_text.contains("call_1"),
            "{}",
            out.calls[1].model_text
        );
        // Only the first ran.
        let cases = ts.store.cases(Some("C-ANN")).await.unwrap();
        assert_eq!(cases.len(), 1, "{cases:?}");
        assert!(cases[0].summary.contains("Customer asked for a person."));

        // The model saw one result per call, in order: executed, then the refusal.
        let second_request = &model.requests()[1];
        let shown: Vec<(String, String)> = second_request
            .messages
            .iter()
            .filter_map(|m| match m {
                ChatMessage::Tool {
                    tool_call_id,
                    content,
                } => Some((tool_call_id.clone(), content.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(shown[0].1.contains("executed"), "{shown:?}");
        assert!(
            shown[1].1.contains("duplicate") && shown[1].1.contains("call_1"),
            "{shown:?}"
        );
        assert!(!shown[1].1.contains("executed"), "{shown:?}");

        // Audited as a validation error naming the id.
        let errors = ts
            .store
            .audit_events(&AuditFilter {
                kind: Some("validation_error".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].payload.to_string().contains("call_1")
                && errors[0].payload["error"]
                    .as_str()
                    .unwrap()
                    .contains("duplicate"),
            "{:?}",
            errors[0].payload
        );
        assert!(matches!(
            ts.store.audit_verify().await.unwrap(),
            AuditVerification::Intact { .. }
        ));
        ts.cleanup().await;
    }
}
