//! Issue #13, the customer's history on both backends: runs driven by the offline and the
//! scripted model leave a timeline in which every audit event of the customer is linked to
//! an entry, pages follow each other exactly, and a contact-history report in which refused
//! attempts count (not delivered), sent ones carry the hash of the body that went out, and
//! logged calls name the collector. Also the global search, whose query is hostile input.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use argent_agent::testing::ann_plan_20_percent;
use argent_agent::{Agent, AgentConfig, CallStatus, Clock, OfflineModel, Reviewer, Trigger};
use argent_core::Role;
use argent_llm::{ChatModel, ScriptedModel, ToolCall};
use argent_store::testkit::{TestStore, two_consumer_portfolio};
use argent_store::{AuditFilter, Cursor, Store, TimelineEntry, TimelineQuery};

const NOW: &str = "2026-11-20T18:00:00Z"; // noon in Chicago

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

fn agent(store: &Store, model: Arc<dyn ChatModel>) -> Agent {
    Agent::from_dirs(
        store.clone(),
        model,
        &repo("prompts"),
        &repo("policies"),
        AgentConfig {
            clock: Clock::Fixed(now()),
            ..Default::default()
        },
    )
    .unwrap()
}

fn inbound(from: &str, body: &str) -> Trigger {
    Trigger::Inbound {
        from: from.into(),
        subject: "My account".into(),
        body: body.into(),
        received_at: now(),
        message_id: None,
        references: Vec::new(),
        mail: None,
    }
}

fn scripted(calls: Vec<(&str, String)>) -> Arc<ScriptedModel> {
    let m = ScriptedModel::new();
    m.push_tool_calls(
        calls
            .into_iter()
            .enumerate()
            .map(|(i, (n, a))| ToolCall::new(format!("c{i}"), n, a))
            .collect(),
    );
    m.push_text("Done.");
    Arc::new(m)
}

fn query(limit: usize, after: Option<Cursor>) -> TimelineQuery {
    TimelineQuery {
        limit,
        after,
        as_of: d("2026-11-20"),
        promise_grace_days: 3,
    }
}

/// Ann's history: a promise and its confirmation (sent), a plan a manager approved, a
/// dispute and a collection email the pending dispute refused, and a call a collector
/// logged. Bo has a run of his own, which must not show on Ann's timeline.
async fn history(store: &Store) -> (String, String) {
    store
        .import_portfolio(&two_consumer_portfolio(), "test")
        .await
        .unwrap();
    let offline = agent(store, Arc::new(OfflineModel));
    let out = offline
        .start(
            "C-ANN",
            inbound(
                "ann@mail.example",
                "Sorry for the delay. I will pay $1,200.00 on December 4th.",
            ),
        )
        .await
        .unwrap();
    assert!(
        out.calls.iter().all(|c| c.status == CallStatus::Executed),
        "{:?}",
        out.calls
    );
    offline
        .start(
            "C-BO",
            inbound("bo@mail.example", "I will pay $15,000.00 on December 4th."),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mailer = argent_agent::outbox::DirMailer {
        dir: dir.path().to_path_buf(),
    };
    offline
        .deliver_outbox(&mailer, "ar@argent.example", 10)
        .await
        .unwrap();
    let anns = store.emails(Some("C-ANN")).await.unwrap();
    assert_eq!(anns.len(), 1);
    assert_eq!(anns[0].status, "sent");

    let plan = agent(
        store,
        scripted(vec![("propose_plan", ann_plan_20_percent().to_string())]),
    );
    let out = plan
        .start("C-ANN", inbound("ann@mail.example", "Could I get 20% off?"))
        .await
        .unwrap();
    assert_eq!(out.calls[0].status, CallStatus::Queued, "{:?}", out.calls);
    let approval = out.calls[0].approval_id.clone().unwrap();
    plan.approve(
        &approval,
        &Reviewer {
            name: "mo".into(),
            role: Role::Manager,
        },
        Some("fine"),
    )
    .await
    .unwrap();

    let email = json!({
        "customer_id": "C-ANN",
        "to": "ann@mail.example",
        "subject": "Invoice INV-ANN-1, \"final\" notice",
        "body": "This is a debt collector. Please pay invoice INV-ANN-1 of $1,200.00 now.",
        "invoice_numbers": ["INV-ANN-1"]
    });
    let refused = agent(store, scripted(vec![("send_email", email.to_string())]));
    let out = refused
        .start(
            "C-ANN",
            inbound(
                "ann@mail.example",
                "I do not owe this. I dispute invoice INV-ANN-1.",
            ),
        )
        .await
        .unwrap();
    assert_eq!(out.calls[0].status, CallStatus::Refused, "{:?}", out.calls);
    let refused_call = out.calls[0].call_id.clone();

    store
        .log_call(
            "log-1",
            "C-ANN",
            "2026-11-20T19:00:00Z".parse().unwrap(),
            false,
            None,
            "collector:carol",
            Some("no answer"),
        )
        .await
        .unwrap();
    (approval, refused_call)
}

fn kinds(entries: &[TimelineEntry]) -> BTreeSet<&str> {
    entries.iter().map(|e| e.kind.as_str()).collect()
}

#[tokio::test]
async fn the_timeline_holds_everything_in_order_and_links_every_audit_event() {
    for ts in TestStore::all().await.unwrap() {
        let store = &ts.store;
        let (approval, refused_call) = history(store).await;
        let all = store.timeline("C-ANN", &query(500, None)).await.unwrap();
        assert_eq!(all.total, all.entries.len(), "{}", ts.label);
        assert!(all.next.is_none());
        assert_eq!(all.time_zone, "America/Chicago");
        let k = kinds(&all.entries);
        for want in [
            "invoice.issued",
            "invoice.due",
            "payment",
            "inbound",
            "signal.recognised",
            "tool.log_promise",
            "promise.made",
            "email.drafted",
            "email.queued",
            "email.sent",
            "tool.propose_plan",
            "approval.requested",
            "approval.decided",
            "call.logged",
        ] {
            assert!(k.contains(want), "{}: no {want} in {k:?}", ts.label);
        }
        // Newest first; equal instants by key.
        for w in all.entries.windows(2) {
            assert!(
                (w[0].at, w[0].key()) > (w[1].at, w[1].key()),
                "{}: {} before {}",
                ts.label,
                w[0].title,
                w[1].title
            );
        }
        // Every audit event of Ann's is some entry's, and none of Bo's is.
        let events = store
            .audit_events(&AuditFilter {
                customer_id: Some("C-ANN".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let linked: BTreeSet<i64> = all
            .entries
            .iter()
            .flat_map(|e| e.audit_seqs.iter().copied())
            .collect();
        let anns: BTreeSet<i64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(linked, anns, "{}", ts.label);
        assert!(!all.entries.iter().any(|e| e.title.contains("bo@mail")));
        // The approval's decision names the manager and links its event.
        let decided = all
            .entries
            .iter()
            .find(|e| e.kind == "approval.decided" && e.source_id == approval)
            .unwrap();
        assert_eq!(decided.actor.as_deref(), Some("manager:mo"));
        let kind_of = |seq: i64| {
            events
                .iter()
                .find(|e| e.seq == seq)
                .map(|e| e.kind.clone())
                .unwrap()
        };
        assert_eq!(
            decided
                .audit_seqs
                .iter()
                .map(|s| kind_of(*s))
                .collect::<Vec<_>>(),
            ["approval_decided"]
        );
        // The refused email's entry carries its decision and refusal.
        let drafted = all
            .entries
            .iter()
            .find(|e| e.source_id == refused_call)
            .unwrap();
        assert_eq!(drafted.kind, "email.drafted");
        assert!(drafted.title.ends_with("refused"), "{}", drafted.title);
        let ks: Vec<String> = drafted.audit_seqs.iter().map(|s| kind_of(*s)).collect();
        assert!(ks.contains(&"policy_decision".to_string()), "{ks:?}");
        assert!(ks.contains(&"refused".to_string()), "{ks:?}");
        // Sent: its delivery event.
        let sent = all.entries.iter().find(|e| e.kind == "email.sent").unwrap();
        assert_eq!(
            sent.audit_seqs
                .iter()
                .map(|s| kind_of(*s))
                .collect::<Vec<_>>(),
            ["email_delivered"]
        );
        // The call names the collector through its event.
        let call = all
            .entries
            .iter()
            .find(|e| e.kind == "call.logged")
            .unwrap();
        assert_eq!(call.audit_seqs.len(), 1);
        assert_eq!(call.at_local, "2026-11-20T13:00:00-06:00");
        // An invoice due date is the start of that day in Chicago.
        let due = all
            .entries
            .iter()
            .find(|e| e.kind == "invoice.due" && e.source_id == "INV-ANN-1")
            .unwrap();
        assert_eq!(due.at_local, "2026-10-31T00:00:00-05:00");

        // Pages of 7 are the whole timeline, in order, without repeats.
        let mut paged: Vec<(String, String, String)> = Vec::new();
        let mut after = None;
        loop {
            let p = store.timeline("C-ANN", &query(7, after)).await.unwrap();
            assert!(p.entries.len() <= 7);
            paged.extend(
                p.entries
                    .iter()
                    .map(|e| (e.source.clone(), e.source_id.clone(), e.kind.clone())),
            );
            match p.next {
                Some(n) => after = Some(Cursor::parse(&n).unwrap()),
                None => break,
            }
        }
        let whole: Vec<(String, String, String)> = all
            .entries
            .iter()
            .map(|e| (e.source.clone(), e.source_id.clone(), e.kind.clone()))
            .collect();
        assert_eq!(paged, whole, "{}", ts.label);

        assert!(matches!(
            store.timeline("NOBODY", &query(10, None)).await,
            Err(argent_store::StoreError::NotFound(_))
        ));
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn the_contact_history_counts_refused_attempts_and_hashes_what_was_sent() {
    for ts in TestStore::all().await.unwrap() {
        let store = &ts.store;
        let (_, refused_call) = history(store).await;
        let rows = store.contact_history("C-ANN", None, None).await.unwrap();
        // The confirmation (sent), the refused collection email and the logged call.
        assert_eq!(rows.len(), 3, "{}: {rows:#?}", ts.label);
        for w in rows.windows(2) {
            assert!(w[0].at >= w[1].at, "newest first");
        }
        // Tool calls (and audit events) carry the time they were really recorded, the
        // runs the agent's clock; the call was logged at a time of the collector's choosing.
        let call = rows.iter().find(|r| r.channel == "phone").unwrap();
        assert_eq!(
            (call.channel.as_str(), call.status.as_str()),
            ("phone", "attempt")
        );
        assert!(!call.delivered);
        assert_eq!(call.decided_by.as_deref(), Some("collector:carol"));
        assert_eq!(call.at_local, "2026-11-20T13:00:00-06:00");

        let refused = rows.iter().find(|r| r.reference == refused_call).unwrap();
        assert_eq!(refused.status, "refused");
        assert!(!refused.delivered);
        assert_eq!(refused.decision.as_deref(), Some("deny"));
        assert!(!refused.rule_ids.is_empty());
        assert_eq!(refused.subject, "Invoice INV-ANN-1, \"final\" notice");
        let body = "This is a debt collector. Please pay invoice INV-ANN-1 of $1,200.00 now.";
        assert_eq!(
            refused.body_sha256,
            hex::encode(Sha256::digest(body.as_bytes()))
        );
        let chicago = |t: DateTime<Utc>| {
            t.with_timezone(&chrono_tz::America::Chicago)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        };
        assert_eq!(refused.at_local, chicago(refused.at));

        let sent = rows.iter().find(|r| r.status == "sent").unwrap();
        assert!(sent.delivered && sent.delivered_at.is_some());
        assert_eq!(sent.decision.as_deref(), Some("allow"));
        let outbox = store.emails(Some("C-ANN")).await.unwrap();
        assert_eq!(
            sent.body_sha256,
            hex::encode(Sha256::digest(outbox[0].body.as_bytes()))
        );
        assert_eq!(sent.recipient, "ann@mail.example");

        // The period is the debtor's calendar, both days included.
        let local_day = |r: &argent_store::ContactAttempt| d(&r.at_local[..10]);
        let day = local_day(refused);
        let on_day = store
            .contact_history("C-ANN", Some(day), Some(day))
            .await
            .unwrap();
        assert!(on_day.iter().any(|r| r.reference == refused_call));
        let want: Vec<_> = rows
            .iter()
            .filter(|r| local_day(r) == day)
            .cloned()
            .collect();
        assert_eq!(on_day, want);
        let prev = day.pred_opt().unwrap();
        let before = store
            .contact_history("C-ANN", None, Some(prev))
            .await
            .unwrap();
        let want: Vec<_> = rows
            .iter()
            .filter(|r| local_day(r) <= prev)
            .cloned()
            .collect();
        assert_eq!(before, want);
        assert!(before.iter().all(|r| r.reference != refused_call));
        assert!(matches!(
            store
                .contact_history("C-ANN", Some(d("2026-11-21")), Some(d("2026-11-20")))
                .await,
            Err(argent_store::StoreError::Invalid(_))
        ));

        // The exports read back.
        let csv = argent_store::contacts_to_csv(&rows).unwrap();
        assert_eq!(
            csv.matches("\r\n").count(),
            4,
            "a header and three rows: {csv}"
        );
        assert!(
            csv.contains(",\"Invoice INV-ANN-1, \"\"final\"\" notice\","),
            "{csv}"
        );
        assert_eq!(argent_store::contacts_to_jsonl(&rows).lines().count(), 3);
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn search_finds_by_name_id_invoice_and_email_and_its_wildcards_are_literal() {
    for ts in TestStore::all().await.unwrap() {
        let store = &ts.store;
        let mut p = two_consumer_portfolio();
        let mut odd = p.customers[0].clone();
        odd.id = "C-ODD".into();
        odd.name = "Acme 100%_Off O'Brien".into();
        odd.contacts[0].email = Some("ap_desk@acme.example".into());
        p.customers.push(odd);
        store.import_portfolio(&p, "test").await.unwrap();
        let found = |hits: &[argent_store::SearchHit]| {
            hits.iter()
                .map(|h| (h.customer_id.clone(), h.matched.clone()))
                .collect::<Vec<_>>()
        };
        let hits = store.search("ann LEE", 10).await.unwrap();
        assert_eq!(found(&hits), [("C-ANN".to_string(), "name".to_string())]);
        // Exact id first.
        let hits = store.search("c-bo", 10).await.unwrap();
        assert_eq!(hits[0].customer_id, "C-BO");
        assert_eq!(hits[0].matched, "id");
        let hits = store.search("inv-bo-1", 10).await.unwrap();
        assert!(found(&hits).contains(&("C-BO".into(), "invoice".into())));
        let hits = store.search("BO@MAIL", 10).await.unwrap();
        assert_eq!(found(&hits), [("C-BO".to_string(), "email".to_string())]);
        // `%`, `_`, quotes and backslashes are themselves.
        for (q, want) in [
            ("%", vec!["C-ODD"]),
            ("_", vec!["C-ODD"]),
            ("0%_o", vec!["C-ODD"]),
            ("o'b", vec!["C-ODD"]),
            ("'", vec!["C-ODD"]),
            ("%%", vec![]),
            ("a%e", vec![]),
            ("a_n", vec![]),
            ("\\", vec![]),
            ("' OR 1=1 --", vec![]),
        ] {
            let ids: BTreeSet<String> = store
                .search(q, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|h| h.customer_id)
                .collect();
            let want: BTreeSet<String> = want.into_iter().map(str::to_string).collect();
            assert_eq!(ids, want, "{}: {q:?}", ts.label);
        }
        // Bounded.
        assert_eq!(store.search("c-", 2).await.unwrap().len(), 2);
        assert!(store.search("  ", 10).await.is_err());
        ts.cleanup().await;
    }
}
