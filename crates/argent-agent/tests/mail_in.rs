//! Inbound mail processing on a real store (both backends): matching by thread and by
//! sender, a third party in the customer's thread, an out-of-office that pauses contact,
//! a hard bounce that stops email to the address, an unmatched message assigned by a
//! collector, and processing that happens once. Models are scripted; nothing touches the
//! network.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use argent_agent::mail_in::{MAIL_ASSIGNED, MAIL_PROCESSED, assign_unmatched, process_pending};
use argent_agent::{Agent, AgentConfig, AgentError, CallStatus, Clock, Reviewer, Trigger};
use argent_core::{Role, TaskKind};
use argent_llm::{ChatModel, ScriptedModel, ToolCall};
use argent_procedure::{PauseReason, ProcedureSet, Snapshot, Status};
use argent_store::mail_in::NewInbound;
use argent_store::testkit::{TestStore, raw_execute};
use argent_store::{AuditFilter, AuditVerification, Store, StoreError, TaskFilter};

const NOW: &str = "2026-11-20T18:00:00Z"; // noon in Chicago
const SENT_ID: &str = "argent-out-1@acme-ar.example";

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
    // An email we sent Ann, with its Message-ID (what the smtp side records).
    raw_execute(
        store,
        &format!(
            "INSERT INTO outbox (id, call_id, customer_id, to_addr, subject, body, created_at, status, message_id) \
             VALUES ('out-1', 'call-out-1', 'C-ANN', 'ann@mail.example', 'Your account INV-ANN-1', 'b', \
             '2026-11-19T15:00:00Z', 'sent', '{SENT_ID}')"
        ),
    )
    .await
    .unwrap();
}

fn agent_at(store: &Store, model: Arc<dyn ChatModel>, at: DateTime<Utc>) -> Agent {
    let config = AgentConfig {
        clock: Clock::Fixed(at),
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

fn agent(store: &Store, model: Arc<dyn ChatModel>) -> Agent {
    agent_at(store, model, now())
}

/// A collection email to Ann that every US rule allows on an account with nothing set.
fn collection_email() -> String {
    json!({
        "customer_id": "C-ANN",
        "to": "ann@mail.example",
        "subject": "Your account INV-ANN-1",
        "body": "Hello Ann, this communication is from a debt collector. Invoice INV-ANN-1 for $1,200.00 is past due. Please pay online or reply to set up a plan. To stop receiving emails from us, reply STOP."
    })
    .to_string()
}

/// A model that drafts the collection email on each of `runs` runs.
fn drafts_email(runs: usize) -> Arc<ScriptedModel> {
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

fn raw(from: &str, subject: &str, extra_headers: &str, body: &str, id: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: ar@acme-ar.example\r\nSubject: {subject}\r\nDate: Fri, 20 Nov 2026 17:30:00 +0000\r\nMessage-ID: <{id}>\r\n{extra_headers}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    )
    .into_bytes()
}

async fn receive(store: &Store, id: &str, raw: Vec<u8>) {
    assert!(
        store
            .insert_inbound_row(&NewInbound {
                id: id.into(),
                dedupe_key: format!("key-{id}"),
                message_id: None,
                source: "webhook".into(),
                raw_sha256: format!("sha-{id}"),
                raw,
                received_at: now(),
            })
            .await
            .unwrap()
    );
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

const REPLY: &str = "I can pay half on Friday.\r\n\r\nAnn\r\n\r\nOn Thu, 19 Nov 2026 at 09:00, Acme Receivables <ar@acme-ar.example> wrote:\r\n> Invoice INV-ANN-1 for $1,200.00 is past due.\r\n";

#[tokio::test]
async fn a_reply_in_our_thread_is_matched_by_thread_and_answered_once() {
    for ts in TestStore::all().await.unwrap() {
        seeded(&ts.store).await;
        let model = drafts_email(1);
        let agent = agent(&ts.store, model.clone());
        receive(
            &ts.store,
            "in-1",
            raw(
                "Ann Lee <Ann@Mail.Example>",
                "Re: Your account INV-ANN-1",
                &format!("In-Reply-To: <{SENT_ID}>\r\nReferences: <{SENT_ID}>\r\nAuthentication-Results: mx.acme-ar.example; spf=pass smtp.mailfrom=mail.example; dkim=pass header.d=mail.example; dmarc=pass\r\n"),
                REPLY,
                "reply-1@mail.example",
            ),
        )
        .await;
        let r = process_pending(&agent, 10).await.unwrap();
        assert_eq!(
            (r.seen, r.processed, r.runs, r.run_errors),
            (1, 1, 1, 0),
            "{}: {r:?}",
            ts.label
        );

        let row = ts.store.inbound_mail("in-1").await.unwrap();
        assert_eq!(row.status, "processed");
        assert_eq!(row.customer_id.as_deref(), Some("C-ANN"));
        assert_eq!(row.matched_by.as_deref(), Some("thread"));
        assert_eq!(row.kind.as_deref(), Some("human"));
        assert_eq!(row.from_addr.as_deref(), Some("ann@mail.example"));
        assert_eq!(row.auth.as_ref().unwrap()["dmarc"], "pass");
        assert!(row.processed_at.is_some());
        let run_id = row.run_id.clone().expect("the run is recorded");

        // The model got the new text, the quoted part marked as quoted.
        let req = model.requests()[0].clone();
        let user = serde_json::to_string(&req.messages).unwrap();
        assert!(user.contains("I can pay half on Friday."), "{user}");
        assert!(user.contains("<quoted>"), "{user}");
        assert!(
            user.contains("Invoice INV-ANN-1 for $1,200.00 is past due"),
            "{user}"
        );
        assert!(!user.contains("NOT a contact on file"), "{user}");

        // The run's trigger carries the threading the reply needs.
        let run = ts.store.run(&run_id).await.unwrap();
        assert_eq!(run.trigger["kind"], "inbound");
        assert_eq!(run.trigger["message_id"], "reply-1@mail.example");
        assert_eq!(
            run.trigger["references"],
            json!([SENT_ID, "reply-1@mail.example"])
        );
        assert_eq!(run.trigger["mail"]["sender_on_file"], true);
        assert_eq!(run.trigger["body"], "I can pay half on Friday.\n\nAnn");

        // The email to Ann, the contact on file, goes out.
        let out = ts.store.emails(Some("C-ANN")).await.unwrap();
        assert!(
            out.iter().any(|e| e.call_id.ends_with("/r0-email")),
            "{out:?}"
        );

        // Audited, never the body.
        let ev = events(&ts.store, MAIL_PROCESSED).await;
        assert_eq!(ev.len(), 1);
        let p = &ev[0].payload;
        assert_eq!(p["inbound_id"], "in-1");
        assert_eq!(p["customer_id"], "C-ANN");
        assert_eq!(p["matched_by"], "thread");
        assert_eq!(p["kind"], "human");
        assert_eq!(p["sender_on_file"], true);
        assert!(!p.to_string().contains("pay half"), "{p}");

        // Processing again does nothing.
        let again = process_pending(&agent, 10).await.unwrap();
        assert_eq!(again.seen, 0);
        assert_eq!(events(&ts.store, MAIL_PROCESSED).await.len(), 1);
        assert_eq!(
            model.request_count(),
            2,
            "one run, two model turns, no more"
        );
        assert!(matches!(
            ts.store.audit_verify().await.unwrap(),
            AuditVerification::Intact { .. }
        ));

        // The timeline shows the message with its verdict.
        let page = ts
            .store
            .timeline(
                "C-ANN",
                &argent_store::TimelineQuery {
                    limit: 500,
                    after: None,
                    as_of: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
                    promise_grace_days: 3,
                },
            )
            .await
            .unwrap();
        let entry = page
            .entries
            .iter()
            .find(|e| e.kind == "mail.received")
            .unwrap();
        assert!(
            entry.title.contains("spf=pass dkim=pass dmarc=pass"),
            "{}",
            entry.title
        );
        assert_eq!(entry.detail["auth_failed"], false);
        assert!(!entry.audit_seqs.is_empty(), "linked to mail_processed");
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_message_from_an_address_on_file_is_matched_by_sender() {
    for ts in TestStore::all().await.unwrap() {
        seeded(&ts.store).await;
        let model = drafts_email(1);
        let agent = agent(&ts.store, model.clone());
        receive(
            &ts.store,
            "in-2",
            raw(
                "BO@mail.example",
                "Question",
                "",
                "What do I owe?",
                "q-2@mail.example",
            ),
        )
        .await;
        let r = process_pending(&agent, 10).await.unwrap();
        assert_eq!((r.processed, r.runs), (1, 1), "{r:?}");
        let row = ts.store.inbound_mail("in-2").await.unwrap();
        assert_eq!(row.customer_id.as_deref(), Some("C-BO"), "{}", ts.label);
        assert_eq!(row.matched_by.as_deref(), Some("sender"));
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_third_party_in_the_thread_runs_the_agent_but_the_policy_holds_what_it_drafts() {
    for ts in TestStore::all().await.unwrap() {
        seeded(&ts.store).await;
        let model = drafts_email(1);
        let agent = agent(&ts.store, model.clone());
        receive(
            &ts.store,
            "in-3",
            raw(
                "Cousin <cousin@elsewhere.example>",
                "Re: Your account INV-ANN-1",
                &format!("In-Reply-To: <{SENT_ID}>\r\n"),
                "Ann is in hospital, I will pay for her next week.",
                "tp-3@elsewhere.example",
            ),
        )
        .await;
        let r = process_pending(&agent, 10).await.unwrap();
        assert_eq!((r.processed, r.runs, r.run_errors), (1, 1, 0), "{r:?}");
        let row = ts.store.inbound_mail("in-3").await.unwrap();
        assert_eq!(row.customer_id.as_deref(), Some("C-ANN"));
        assert_eq!(row.matched_by.as_deref(), Some("thread"));
        let run = ts.store.run(row.run_id.as_deref().unwrap()).await.unwrap();
        assert_eq!(run.trigger["mail"]["sender_on_file"], false);
        let user = serde_json::to_string(&model.requests()[0].messages).unwrap();
        assert!(user.contains("NOT a contact on file"), "{user}");
        // The email the model drafted (to Ann, on file) waits for a person: the policy
        // knows the writer is not the contact on file.
        let items = ts.store.approvals(None, 100, 0).await.unwrap();
        assert_eq!(items.len(), 1, "{}: {items:?}", ts.label);
        let decision = items[0].decision.to_string();
        assert!(
            decision.contains("us.inbound-sender-not-on-file"),
            "{decision}"
        );
        assert!(
            ts.store
                .emails(Some("C-ANN"))
                .await
                .unwrap()
                .iter()
                .all(|e| !e.call_id.ends_with("/r0-email"))
        );
        let ev = events(&ts.store, MAIL_PROCESSED).await;
        assert_eq!(ev[0].payload["sender_on_file"], false);
        ts.cleanup().await;
    }
}

fn shipped_procedures() -> ProcedureSet {
    let dir = repo("procedures");
    let mut docs = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        docs.push((name, std::fs::read_to_string(&p).unwrap()));
    }
    ProcedureSet::from_sources(docs.iter().map(|(n, b)| (n.as_str(), 1, b.as_str()))).unwrap()
}

async fn plan_status(store: &Store, at: DateTime<Utc>) -> (Status, Option<PauseReason>) {
    let customer = store.customer("C-ANN").await.unwrap();
    let invoices = store.invoices(Some("C-ANN")).await.unwrap();
    let payments = store.payments(Some("C-ANN")).await.unwrap();
    let cases = store.cases(Some("C-ANN")).await.unwrap();
    let promises = store.promises(Some("C-ANN")).await.unwrap();
    let snap = Snapshot {
        customer: &customer,
        invoices: &invoices,
        payments: &payments,
        cases: &cases,
        promises: &promises,
        last_contact: None,
    };
    let p = argent_procedure::plan(&snap, None, &shipped_procedures(), at).unwrap();
    (p.state.status, p.state.paused_reason)
}

#[tokio::test]
async fn an_out_of_office_with_a_return_date_pauses_contact_until_then() {
    for ts in TestStore::all().await.unwrap() {
        seeded(&ts.store).await;
        // No model turn is scripted: a model run would fail the test.
        let agent = agent(&ts.store, Arc::new(ScriptedModel::new()));
        assert_eq!(
            plan_status(&ts.store, now()).await.0,
            Status::Active,
            "{}: due before",
            ts.label
        );
        receive(
            &ts.store,
            "in-4",
            raw(
                "ann@mail.example",
                "Automatic reply: Your account INV-ANN-1",
                &format!("Auto-Submitted: auto-replied\r\nIn-Reply-To: <{SENT_ID}>\r\n"),
                "I am out of the office until 14 December 2026 with limited access to email.",
                "ooo-4@mail.example",
            ),
        )
        .await;
        let r = process_pending(&agent, 10).await.unwrap();
        assert_eq!((r.ignored, r.runs), (1, 0), "{r:?}");
        let row = ts.store.inbound_mail("in-4").await.unwrap();
        assert_eq!(row.status, "ignored");
        assert_eq!(row.kind.as_deref(), Some("out_of_office"));
        assert_eq!(row.customer_id.as_deref(), Some("C-ANN"));
        let c = ts.store.customer("C-ANN").await.unwrap();
        assert_eq!(
            c.facts.contact_paused_until,
            NaiveDate::from_ymd_opt(2026, 12, 14)
        );
        let ev = events(&ts.store, MAIL_PROCESSED).await;
        assert_eq!(ev[0].payload["return_date"], "2026-12-14");

        // The planner pauses the account until then.
        assert_eq!(
            plan_status(&ts.store, now()).await,
            (Status::Paused, Some(PauseReason::OutOfOffice))
        );
        let after: DateTime<Utc> = "2026-12-15T16:00:00Z".parse().unwrap();
        assert_ne!(
            plan_status(&ts.store, after).await.1,
            Some(PauseReason::OutOfOffice)
        );

        // The policy refuses an email before the date...
        let model = drafts_email(1);
        let out = agent_at(&ts.store, model, now())
            .start(
                "C-ANN",
                Trigger::Step {
                    step: "overdue_notice".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(out.calls[0].status, CallStatus::Refused, "{:?}", out.calls);
        assert!(
            out.calls[0]
                .rules
                .iter()
                .any(|r| r.contains("us.out-of-office")),
            "{:?}",
            out.calls[0].rules
        );
        // ...and not from the date on.
        let later = agent_at(&ts.store, Arc::new(ScriptedModel::new()), after);
        let account = later.load_account("C-ANN", after).await.unwrap();
        let policy = later
            .policies
            .for_jurisdiction(account.customer.jurisdiction)
            .unwrap()
            .unwrap();
        let action = later
            .registry
            .parse("send_email", &collection_email())
            .unwrap();
        let d = argent_policy::evaluate(policy, &action, &account.policy_context());
        assert!(
            d.rules.iter().all(|r| r.id != "us.out-of-office"),
            "{:?}",
            d.rules
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_hard_bounce_marks_the_address_undeliverable_opens_a_task_and_email_is_refused() {
    for ts in TestStore::all().await.unwrap() {
        seeded(&ts.store).await;
        let agent = agent(&ts.store, Arc::new(ScriptedModel::new()));
        let dsn = format!(
            "From: Mail Delivery System <MAILER-DAEMON@mx.acme-ar.example>\r\nTo: ar@acme-ar.example\r\nSubject: Undelivered Mail Returned to Sender\r\nDate: Fri, 20 Nov 2026 17:00:00 +0000\r\nMessage-Id: <dsn-5@mx.acme-ar.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.acme-ar.example\r\n\r\nFinal-Recipient: rfc822; Ann@mail.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: ann@mail.example\r\nMessage-ID: <{SENT_ID}>\r\n\r\n--B--\r\n"
        );
        receive(&ts.store, "in-5", dsn.into_bytes()).await;
        let r = process_pending(&agent, 10).await.unwrap();
        assert_eq!((r.ignored, r.runs), (1, 0), "{}: {r:?}", ts.label);
        let row = ts.store.inbound_mail("in-5").await.unwrap();
        assert_eq!(row.kind.as_deref(), Some("hard_bounce"));
        assert_eq!(row.customer_id.as_deref(), Some("C-ANN"));
        assert_eq!(
            row.matched_by.as_deref(),
            Some("thread"),
            "by the returned Message-ID"
        );
        let c = ts.store.customer("C-ANN").await.unwrap();
        assert_eq!(
            c.facts.undeliverable_emails,
            vec!["ann@mail.example".to_string()]
        );
        let tasks = ts
            .store
            .tasks(&TaskFilter {
                customer_id: Some("C-ANN".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        assert_eq!(tasks[0].kind, TaskKind::FollowUp);
        assert_eq!(tasks[0].owner_role, Role::Collector);
        assert!(
            tasks[0].title.contains("ann@mail.example"),
            "{}",
            tasks[0].title
        );

        let out = agent_at(&ts.store, drafts_email(1), now())
            .start(
                "C-ANN",
                Trigger::Step {
                    step: "overdue_notice".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(out.calls[0].status, CallStatus::Refused, "{:?}", out.calls);
        assert!(
            out.calls[0]
                .rules
                .iter()
                .any(|r| r.contains("us.address-undeliverable")),
            "{:?}",
            out.calls[0].rules
        );

        // A soft bounce is recorded and changes nothing.
        let soft = "From: MAILER-DAEMON@mx.acme-ar.example\r\nTo: ar@acme-ar.example\r\nSubject: Delayed Mail\r\nMessage-Id: <dsn-6@mx.acme-ar.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; bo@mail.example\r\nAction: delayed\r\nStatus: 4.2.2\r\n\r\n--B--\r\n";
        receive(&ts.store, "in-6", soft.as_bytes().to_vec()).await;
        process_pending(&agent, 10).await.unwrap();
        let row = ts.store.inbound_mail("in-6").await.unwrap();
        assert_eq!(
            (row.status.as_str(), row.kind.as_deref()),
            ("ignored", Some("soft_bounce"))
        );
        assert!(
            ts.store
                .customer("C-BO")
                .await
                .unwrap()
                .facts
                .undeliverable_emails
                .is_empty()
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn unmatched_mail_waits_for_a_collector_then_is_processed_as_assigned() {
    for ts in TestStore::all().await.unwrap() {
        seeded(&ts.store).await;
        let model = drafts_email(1);
        let agent = agent(&ts.store, model.clone());
        receive(
            &ts.store,
            "in-7",
            raw(
                "Ann Lee <ann.lee.home@example.org>",
                "My bill",
                "",
                "Can I pay in two parts?",
                "u-7@example.org",
            ),
        )
        .await;
        // A malformed message next to it fails on its own; the other is processed.
        receive(&ts.store, "in-8", b"\x00\xff not mail".to_vec()).await;
        let r = process_pending(&agent, 10).await.unwrap();
        assert_eq!(
            (r.unmatched, r.failed, r.runs),
            (1, 1, 0),
            "{}: {r:?}",
            ts.label
        );
        let bad = ts.store.inbound_mail("in-8").await.unwrap();
        assert_eq!(bad.status, "failed");
        assert!(bad.error.unwrap().contains("could not be parsed"));
        let queue = ts.store.inbound_list(Some("unmatched"), 10).await.unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!(
            queue[0].from_addr.as_deref(),
            Some("ann.lee.home@example.org")
        );
        assert_eq!(queue[0].subject.as_deref(), Some("My bill"));

        // Compliance reads, does not assign.
        let e = assign_unmatched(
            &agent,
            "in-7",
            "C-ANN",
            &Reviewer {
                name: "cy".into(),
                role: Role::Compliance,
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, AgentError::NotPermitted(_)), "{e:?}");
        let e = assign_unmatched(
            &agent,
            "in-7",
            "C-NOBODY",
            &Reviewer {
                name: "casey".into(),
                role: Role::Collector,
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, AgentError::Store(StoreError::NotFound(_))),
            "{e:?}"
        );

        let who = Reviewer {
            name: "casey".into(),
            role: Role::Collector,
        };
        let r = assign_unmatched(&agent, "in-7", "C-ANN", &who)
            .await
            .unwrap();
        assert_eq!((r.processed, r.runs), (1, 1), "{r:?}");
        let row = ts.store.inbound_mail("in-7").await.unwrap();
        assert_eq!(row.status, "processed");
        assert_eq!(row.matched_by.as_deref(), Some("assigned"));
        assert!(row.run_id.is_some());
        let assigned = events(&ts.store, MAIL_ASSIGNED).await;
        assert_eq!(assigned.len(), 1);
        assert_eq!(assigned[0].actor, "collector:casey");
        assert_eq!(assigned[0].payload["customer_id"], "C-ANN");
        let processed: Vec<Value> = events(&ts.store, MAIL_PROCESSED)
            .await
            .into_iter()
            .map(|e| e.payload)
            .collect();
        assert!(
            processed
                .iter()
                .any(|p| p["inbound_id"] == "in-7" && p["matched_by"] == "assigned"),
            "{processed:?}"
        );

        // A second assignment is a conflict and changes nothing.
        let e = assign_unmatched(&agent, "in-7", "C-BO", &who)
            .await
            .unwrap_err();
        assert!(
            matches!(e, AgentError::Store(StoreError::Conflict(_))),
            "{e:?}"
        );
        assert_eq!(
            ts.store
                .inbound_mail("in-7")
                .await
                .unwrap()
                .customer_id
                .as_deref(),
            Some("C-ANN")
        );
        assert_eq!(model.request_count(), 2);
        ts.cleanup().await;
    }
}
