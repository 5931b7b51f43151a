//! An agent built from a database's active documents compiles a policy pack only when an
//! account of its jurisdiction is first judged (issue #16: start-up), and a pack that does
//! not compile then (a document activated by another version, or edited in the database)
//! fails closed: the run acts on nothing and its error names the document and the key.
//! On SQLite and, when `ARGENT_TEST_POSTGRES_URL` is set, PostgreSQL.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use argent_agent::{Agent, AgentConfig, AgentError, CallStatus, Clock, DocumentSet, Trigger};
use argent_core::Jurisdiction;
use argent_llm::{ScriptedModel, ToolCall};
use argent_store::Store;
use argent_store::testkit::{TestStore, two_consumer_portfolio};

const NOW: &str = "2026-11-20T18:00:00Z"; // noon in Chicago

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

/// A model that drafts one collection email to Ann, then stops.
fn drafts_email() -> Arc<ScriptedModel> {
    let m = ScriptedModel::new();
    m.push_tool_calls(vec![ToolCall::new(
        "c0",
        "send_email",
        json!({
            "customer_id": "C-ANN",
            "to": "ann@mail.example",
            "subject": "Your account INV-ANN-1",
            "body": "Hello Ann, this communication is from a debt collector. Invoice INV-ANN-1 for $1,200.00 is past due. Please pay online or reply to set up a plan. To stop receiving emails from us, reply STOP."
        })
        .to_string(),
    )]);
    m.push_text("Done.");
    Arc::new(m)
}

/// An agent over the store's active documents, as `argent run` builds it.
async fn agent(store: &Store, model: Arc<ScriptedModel>) -> Agent {
    let docs = DocumentSet::from_versions(&store.active_documents().await.unwrap());
    let config = AgentConfig {
        clock: Clock::Fixed(now()),
        ..Default::default()
    };
    Agent::from_documents(store.clone(), model, &docs, config).unwrap()
}

fn trigger() -> Trigger {
    Trigger::Step {
        step: "overdue_notice".into(),
    }
}

/// The repository's documents, with the US pack broken or not.
fn documents(broken_us: bool) -> DocumentSet {
    let mut files = DocumentSet::from_dirs(&repo("prompts"), &repo("policies")).unwrap();
    if broken_us {
        // Valid TOML and a good header, but a rule the full check rejects.
        let us = files.policies.get_mut("us-consumer").unwrap();
        us.push_str("\n[[prohibited]]\nid = \"us.broken\"\n");
    }
    files
}

async fn seeded(ts: &TestStore, docs: &DocumentSet) {
    ts.store
        .import_portfolio(&two_consumer_portfolio(), "test")
        .await
        .unwrap();
    ts.store
        .seed_documents(&docs.entries(), "seed")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_pack_is_compiled_when_an_account_of_its_jurisdiction_is_first_judged() {
    let ts = TestStore::sqlite().await.unwrap();
    seeded(&ts, &documents(false)).await;
    let a = agent(&ts.store, drafts_email()).await;
    assert_eq!(a.policies.compiled_count(), 0);
    let out = a.start("C-ANN", trigger()).await.unwrap();
    assert_eq!(out.calls.len(), 1, "{:?}", out.calls);
    // Judged under the US pack: its rules fired (a first contact without the initial
    // disclosure and validation notice is refused).
    assert_eq!(out.calls[0].status, CallStatus::Refused, "{:?}", out.calls);
    assert!(
        out.calls[0]
            .rules
            .iter()
            .any(|r| r == "us.validation-notice"),
        "{:?}",
        out.calls[0].rules
    );
    // Ann's pack (US consumer) and no other.
    assert_eq!(a.policies.compiled_count(), 1);
    assert!(
        a.policies
            .for_jurisdiction(Jurisdiction::UsConsumer)
            .unwrap()
            .is_ok()
    );
    assert_eq!(a.policies.compiled_count(), 1);
    ts.cleanup().await;
}

#[tokio::test]
async fn a_pack_that_does_not_compile_acts_on_nothing() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        seeded(&ts, &documents(true)).await;
        // The agent builds (no pack is compiled), and the run fails at its first
        // judgement without queueing or sending anything.
        let a = agent(store, drafts_email()).await;
        let err = a.start("C-ANN", trigger()).await.unwrap_err();
        assert!(matches!(err, AgentError::Policy(_)), "{label}: {err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("policies/us-consumer.toml: prohibited"),
            "{label}: {msg}"
        );
        assert!(
            store.emails(Some("C-ANN")).await.unwrap().is_empty(),
            "{label}: nothing is sent under a pack that does not compile"
        );
        assert_eq!(store.count_approvals(None).await.unwrap(), 0, "{label}");
        // The other packs still compile, and compile_now names the broken one.
        assert!(
            a.policies
                .for_jurisdiction(Jurisdiction::B2b)
                .unwrap()
                .is_ok()
        );
        let broken: Vec<String> = a
            .policies
            .compile_now()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(broken, vec!["us-consumer".to_string()], "{label}");
        ts.cleanup().await;
    }
}
