//! What the customer said must not depend on the model: an inbound message is classified
//! before the model reads it, its facts are set at once (audited), the policy stops
//! collection email on them, and a person confirms or clears each signal.
//! Models are scripted to ignore what the customer said; nothing touches the network.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use argent_agent::signals::{decide_signal, message_sha256, record_inbound_signals};
use argent_agent::{Agent, AgentConfig, AgentError, CallStatus, Clock, Reviewer, Trigger};
use argent_core::{Channel, Role, SignalKind, SignalStatus, SignalVerdict};
use argent_llm::{ChatModel, ScriptedModel, ToolCall};
use argent_store::testkit::TestStore;
use argent_store::{AuditFilter, AuditVerification, Store, StoreError};

const NOW: &str = "2026-11-20T18:00:00Z"; // noon in Chicago

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

async fn seeded(store: &Store) {
    store
        .import_portfolio(&argent_store::testkit::two_consumer_portfolio(), "test")
        .await
        .unwrap();
}

fn agent(store: &Store, model: Arc<dyn ChatModel>) -> Agent {
    let config = AgentConfig {
        clock: Clock::Fixed(now()),
        // The validation notice went out with an earlier letter: these emails are
        // subsequent communications.
        assume_initial_sent: true,
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

fn from_ann(subject: &str, body: &str) -> Trigger {
    Trigger::Inbound {
        from: "ann@mail.example".into(),
        subject: subject.into(),
        body: body.into(),
        received_at: now(),
        message_id: None,
        references: Vec::new(),
        mail: None,
    }
}

/// A collection email to Ann that every US rule allows on an account with no signal: the
/// debt-collector disclosure and the opt-out notice, daytime, nothing prohibited.
fn collection_email() -> String {
    json!({
        "customer_id": "C-ANN",
        "to": "ann@mail.example",
        "subject": "Your account INV-ANN-1",
        "body": "Hello Ann, this communication is from a debt collector. Invoice INV-ANN-1 for $1,200.00 is past due. Please pay online or reply to set up a plan. To stop receiving emails from us, reply STOP."
    })
    .to_string()
}

/// A model that, on each run, drafts the collection email whatever the customer wrote.
fn ignores_the_customer(runs: usize) -> Arc<ScriptedModel> {
    let m = ScriptedModel::new();
    for run in 0..runs {
        m.push_tool_calls(vec![ToolCall::new(
            format!("r{run}-email"),
            "send_email",
            collection_email(),
        )]);
        m.push_text("Done.");
    }
    Arc::new(m)
}

fn collector() -> Reviewer {
    Reviewer {
        name: "casey".into(),
        role: Role::Collector,
    }
}

async fn events(store: &Store, kind: &str) -> Vec<argent_store::AuditEvent> {
    store
        .audit_events(&AuditFilter {
            kind: Some(kind.into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

/// The scenario of issue #12: a reply of "STOP" to one of our emails, then a dunning step
/// whose model drafts another collection email. It is denied by a rule and never
/// executed, with no help from the model (which ignores the STOP both times).
#[tokio::test]
async fn a_stop_reply_stops_the_next_dunning_email_by_rule_not_by_the_model() {
    for ts in TestStore::all().await.unwrap() {
        seeded(&ts.store).await;
        // Before the STOP, the same draft executes: the email itself is lawful.
        let control = TestStore::sqlite().await.unwrap();
        seeded(&control.store).await;
        let out = agent(&control.store, ignores_the_customer(1))
            .start(
                "C-ANN",
                Trigger::Step {
                    step: "overdue_notice".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(out.calls[0].status, CallStatus::Executed, "{:?}", out.calls);
        control.cleanup().await;

        let model = ignores_the_customer(2);
        let agent = agent(&ts.store, model.clone());
        let reply = "STOP\n\nOn Thu, 19 Nov 2026 at 09:00, Argent Supplies <ar@argent.example> wrote:\n> This communication is from a debt collector.\n> To stop receiving emails from us, reply STOP.\n";
        let first = agent
            .start("C-ANN", from_ann("Re: Your account INV-ANN-1", reply))
            .await
            .unwrap();
        assert_eq!(
            first.calls[0].status,
            CallStatus::Refused,
            "{}: {:?}",
            ts.label,
            first.calls
        );
        assert_eq!(first.calls[0].rules, vec!["us.email-opt-out".to_string()]);

        let customer = ts.store.customer("C-ANN").await.unwrap();
        assert!(!customer.contacts[0].allows(Channel::Email), "{}", ts.label);
        let recognised = events(&ts.store, "signal.recognised").await;
        assert_eq!(recognised.len(), 1, "{}", ts.label);
        let p = &recognised[0].payload;
        assert_eq!(p["kind"], "opt_out");
        assert_eq!(p["excerpt"], "STOP");
        assert_eq!(
            p["message_sha256"],
            message_sha256("ann@mail.example", "Re: Your account INV-ANN-1", reply)
        );
        assert_eq!(recognised[0].run_id.as_deref(), Some(first.run_id.as_str()));
        // Recognised before the model was asked.
        let started = events(&ts.store, "run_started").await;
        assert!(recognised[0].seq < started[0].seq);

        let second = agent
            .start(
                "C-ANN",
                Trigger::Step {
                    step: "overdue_notice".into(),
                },
            )
            .await
            .unwrap();
        let call = &second.calls[0];
        assert_eq!(call.tool, "send_email");
        assert_eq!(call.status, CallStatus::Refused, "{}: {call:?}", ts.label);
        assert_eq!(call.rules, vec!["us.email-opt-out".to_string()]);
        assert!(
            ts.store.emails(Some("C-ANN")).await.unwrap().is_empty(),
            "{}: nothing in the outbox",
            ts.label
        );
        assert_eq!(model.remaining(), 0, "the model ran both times");
        assert!(matches!(
            ts.store.audit_verify().await.unwrap(),
            AuditVerification::Intact { .. }
        ));
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn pending_facts_stop_the_email_and_a_person_confirms_or_clears_each() {
    for ts in TestStore::all().await.unwrap() {
        seeded(&ts.store).await;
        let agent = agent(&ts.store, ignores_the_customer(2));
        let out = agent
            .start(
                "C-ANN",
                from_ann(
                    "Re: Your account",
                    "I don't owe this. My attorney is Jane Roe of Roe & Partners LLP.",
                ),
            )
            .await
            .unwrap();
        let call = &out.calls[0];
        assert_eq!(call.status, CallStatus::Refused, "{}: {call:?}", ts.label);
        let mut rules = call.rules.clone();
        rules.sort();
        assert_eq!(rules, vec!["us.attorney-suspected", "us.dispute-pending"]);

        let c = ts.store.customer("C-ANN").await.unwrap();
        assert!(c.facts.dispute_pending && c.facts.attorney_suspected);
        assert_eq!(
            c.facts.attorney_name.as_deref(),
            Some("Jane Roe of Roe & Partners LLP")
        );
        assert!(c.contacts[0].allows(Channel::Email), "no opt-out was said");
        assert!(!c.flags.disputed && !c.flags.attorney_represented);

        let pending = ts
            .store
            .signals(Some(SignalStatus::Pending), None, 50, 0)
            .await
            .unwrap();
        assert_eq!(pending.len(), 2);
        let id_of = |k: SignalKind| pending.iter().find(|s| s.kind == k).unwrap().id.clone();
        let dispute = id_of(SignalKind::Dispute);
        let attorney = id_of(SignalKind::Attorney);

        // Compliance reads, never decides.
        let err = decide_signal(
            &ts.store,
            &Reviewer {
                name: "cora".into(),
                role: Role::Compliance,
            },
            &dispute,
            SignalVerdict::Confirm,
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, AgentError::NotPermitted(_)), "{err}");

        let decided = decide_signal(
            &ts.store,
            &collector(),
            &dispute,
            SignalVerdict::Confirm,
            Some("customer wrote in; dispute recorded"),
        )
        .await
        .unwrap();
        assert_eq!(decided.status, SignalStatus::Confirmed);
        assert_eq!(decided.decided_by.as_deref(), Some("casey"));
        let again = decide_signal(
            &ts.store,
            &collector(),
            &dispute,
            SignalVerdict::Clear,
            None,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&again, AgentError::Store(StoreError::Conflict(m)) if m.contains("already decided")),
            "{again}"
        );
        decide_signal(
            &ts.store,
            &collector(),
            &attorney,
            SignalVerdict::Clear,
            None,
        )
        .await
        .unwrap();

        let c = ts.store.customer("C-ANN").await.unwrap();
        assert!(
            c.flags.disputed,
            "confirming turns the pending dispute into the flag"
        );
        assert!(!c.facts.dispute_pending && !c.facts.attorney_suspected);
        assert!(!c.flags.attorney_represented && c.facts.attorney_name.is_none());
        assert_eq!(events(&ts.store, "signal.confirmed").await.len(), 1);
        let cleared = events(&ts.store, "signal.cleared").await;
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].actor, "casey");

        // The next draft is stopped by the confirmed flag's own rule now.
        let next = agent
            .start(
                "C-ANN",
                Trigger::Step {
                    step: "overdue_notice".into(),
                },
            )
            .await
            .unwrap();
        let mut rules = next.calls[0].rules.clone();
        rules.sort();
        assert_eq!(rules, vec!["us.debt-disputed", "us.invoice-disputed"]);
        assert!(matches!(
            ts.store.audit_verify().await.unwrap(),
            AuditVerification::Intact { .. }
        ));
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn the_same_message_twice_records_one_signal_and_quoted_history_none() {
    for ts in TestStore::all().await.unwrap() {
        seeded(&ts.store).await;
        let store = &ts.store;
        let record = |body: &'static str| async move {
            record_inbound_signals(
                store,
                "agent",
                None,
                "C-BO",
                "someone@else.example",
                "Re: Overdue",
                body,
                now(),
            )
            .await
            .unwrap()
        };
        let first = record("Please stop contacting me. Unsubscribe.").await;
        assert_eq!(
            first.iter().map(|s| s.kind).collect::<Vec<_>>(),
            vec![SignalKind::OptOut, SignalKind::CeaseContact]
        );
        // The sender is not a contact on file: every contact opts out of email.
        let bo = store.customer("C-BO").await.unwrap();
        assert!(bo.contacts.iter().all(|c| !c.allows(Channel::Email)));
        assert!(bo.facts.cease_contact_pending);
        assert!(
            record("Please stop contacting me. Unsubscribe.")
                .await
                .is_empty()
        );
        assert_eq!(store.count_signals(None).await.unwrap(), 2, "{}", ts.label);
        assert_eq!(events(store, "signal.recognised").await.len(), 2);

        let quoted =
            record("Paid today.\n\n-----Original Message-----\nI dispute this. STOP").await;
        assert!(quoted.is_empty(), "{quoted:?}");
        assert_eq!(store.count_signals(None).await.unwrap(), 2);

        // Clearing the opt-out gives the contacts their email back.
        let opt_out = first.iter().find(|s| s.kind == SignalKind::OptOut).unwrap();
        decide_signal(store, &collector(), &opt_out.id, SignalVerdict::Clear, None)
            .await
            .unwrap();
        let bo = store.customer("C-BO").await.unwrap();
        assert!(bo.contacts.iter().all(|c| c.allows(Channel::Email)));
        assert!(
            bo.facts.cease_contact_pending,
            "the cease request still waits"
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn two_reviewers_at_once_decide_a_signal_exactly_once() {
    for ts in TestStore::all().await.unwrap() {
        seeded(&ts.store).await;
        let recorded = record_inbound_signals(
            &ts.store,
            "agent",
            None,
            "C-ANN",
            "ann@mail.example",
            "Bankruptcy",
            "I filed for bankruptcy under chapter 7 last week.",
            now(),
        )
        .await
        .unwrap();
        assert_eq!(recorded.len(), 1);
        let id = recorded[0].id.clone();
        let other = ts.reopen().await.unwrap();
        let (casey, mia) = (
            collector(),
            Reviewer {
                name: "mia".into(),
                role: Role::Manager,
            },
        );
        let (a, b) = tokio::join!(
            decide_signal(&ts.store, &casey, &id, SignalVerdict::Confirm, None),
            decide_signal(&other, &mia, &id, SignalVerdict::Clear, None),
        );
        let wins = [a.is_ok(), b.is_ok()].iter().filter(|w| **w).count();
        assert_eq!(wins, 1, "{}: {a:?} / {b:?}", ts.label);
        for r in [&a, &b] {
            if let Err(e) = r {
                assert!(
                    matches!(e, AgentError::Store(StoreError::Conflict(_))),
                    "{}: {e}",
                    ts.label
                );
            }
        }
        let decisions = events(&ts.store, "signal.confirmed").await.len()
            + events(&ts.store, "signal.cleared").await.len();
        assert_eq!(decisions, 1, "{}", ts.label);
        let c = ts.store.customer("C-ANN").await.unwrap();
        assert!(!c.facts.bankruptcy_reported);
        assert_eq!(c.flags.bankrupt, a.is_ok(), "{}", ts.label);
        other.close().await;
        ts.cleanup().await;
    }
}
