#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Conformance (SQLite, and PostgreSQL when ARGENT_TEST_POSTGRES_URL is set): receiving
//! mail stores each message once, by dedupe key or by (mailbox, UIDVALIDITY, UID), moves
//! the checkpoint with its batch, and audits each stored message once, without its body.

use argent_store::testkit::TestStore;
use argent_store::{
    AuditFilter, AuditVerification, ImapBatch, InboundStatus, MailSource, NewInbound, StoreError,
    inbound_id,
};

fn msg(key: &str, uid: Option<i64>, body: &str) -> NewInbound {
    NewInbound {
        dedupe_key: key.into(),
        message_id: Some(key.into()),
        raw: format!("Message-ID: <{key}>\r\nSubject: t\r\n\r\n{body}\r\n").into_bytes(),
        uid,
        refused: None,
    }
}

fn batch(uidvalidity: i64, last_uid: i64, messages: Vec<NewInbound>) -> ImapBatch {
    ImapBatch {
        mailbox: "INBOX".into(),
        uidvalidity,
        last_uid,
        messages,
    }
}

async fn received_events(ts: &TestStore) -> Vec<serde_json::Value> {
    ts.store
        .audit_events(&AuditFilter {
            kind: Some("mail_received".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect()
}

#[tokio::test]
async fn an_imap_batch_is_stored_once_with_its_checkpoint() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let s = &ts.store;
        assert_eq!(s.mailbox_checkpoint("INBOX").await.unwrap(), None);
        let b = batch(
            7,
            3,
            vec![
                msg("a@x", Some(1), "secret body one"),
                msg("b@x", Some(2), "two"),
                // The same Message-ID under another UID: stored once.
                msg("a@x", Some(3), "secret body one"),
            ],
        );
        let r = s.receive_imap_batch(&b).await.unwrap();
        assert_eq!(
            r.stored,
            vec![inbound_id("a@x"), inbound_id("b@x")],
            "{label}"
        );
        assert_eq!(r.duplicates, 1, "{label}");
        let cp = s.mailbox_checkpoint("INBOX").await.unwrap().unwrap();
        assert_eq!((cp.uidvalidity, cp.last_uid), (7, 3), "{label}");

        // The same batch again (a reader that died after the commit): nothing new.
        let again = s.receive_imap_batch(&b).await.unwrap();
        assert!(again.stored.is_empty(), "{label}");
        assert_eq!(again.duplicates, 3, "{label}");
        assert_eq!(s.count_inbound(None).await.unwrap(), 2, "{label}");

        // A UIDVALIDITY change: the reader starts over from UID 1; the same messages are
        // skipped by Message-ID, a new one is stored, the checkpoint takes the new value.
        let over = batch(
            8,
            3,
            vec![
                msg("a@x", Some(1), "secret body one"),
                msg("b@x", Some(2), "two"),
                msg("c@x", Some(3), "three"),
            ],
        );
        let r = s.receive_imap_batch(&over).await.unwrap();
        assert_eq!(r.stored, vec![inbound_id("c@x")], "{label}");
        assert_eq!(r.duplicates, 2, "{label}");
        let cp = s.mailbox_checkpoint("INBOX").await.unwrap().unwrap();
        assert_eq!((cp.uidvalidity, cp.last_uid), (8, 3), "{label}");

        // A slower reader's older batch cannot move the checkpoint back.
        s.receive_imap_batch(&batch(8, 2, vec![])).await.unwrap();
        let cp = s.mailbox_checkpoint("INBOX").await.unwrap().unwrap();
        assert_eq!(cp.last_uid, 3, "{label}");

        // What the processing step reads.
        let pending = s.pending_inbound(10).await.unwrap();
        assert_eq!(pending.len(), 3, "{label}");
        assert!(pending.iter().all(|p| p.source == MailSource::Imap));
        let a = pending.iter().find(|p| p.id == inbound_id("a@x")).unwrap();
        assert_eq!(a.raw, msg("a@x", None, "secret body one").raw, "{label}");
        assert_eq!(a.message_id.as_deref(), Some("a@x"));
        assert_eq!(s.pending_inbound(1).await.unwrap().len(), 1, "{label}");

        // One audit event per stored message, never the body; the chain holds.
        let events = received_events(&ts).await;
        assert_eq!(events.len(), 3, "{label}");
        for e in &events {
            assert_eq!(e["source"], "imap", "{label}");
            assert_eq!(e["mailbox"], "INBOX", "{label}");
            assert_eq!(e["sha256"].as_str().unwrap().len(), 64, "{label}");
            assert!(!e.to_string().contains("secret body"), "{label}: {e}");
        }
        let uids: Vec<i64> = events.iter().map(|e| e["uid"].as_i64().unwrap()).collect();
        assert_eq!(uids, vec![1, 2, 3], "{label}");
        assert!(matches!(
            s.audit_verify().await.unwrap(),
            AuditVerification::Intact { .. }
        ));
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_uid_already_received_is_skipped_even_with_other_bytes() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let s = &ts.store;
        s.receive_imap_batch(&batch(1, 1, vec![msg("m1@x", Some(1), "x")]))
            .await
            .unwrap();
        // Same mailbox, UIDVALIDITY and UID but another key (e.g. a hash key of bytes the
        // server re-rendered): the UID decides; skipped.
        let r = s
            .receive_imap_batch(&batch(1, 1, vec![msg("other@x", Some(1), "y")]))
            .await
            .unwrap();
        assert!(r.stored.is_empty(), "{label}");
        assert_eq!(r.duplicates, 1, "{label}");
        // A UID outside the batch's range is refused, and nothing of the batch is kept.
        let err = s
            .receive_imap_batch(&batch(1, 2, vec![msg("z@x", Some(5), "z")]))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{label}: {err}");
        assert_eq!(s.count_inbound(None).await.unwrap(), 1, "{label}");
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn concurrent_readers_store_each_message_once() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let other = ts.reopen().await.unwrap();
        let msgs: Vec<NewInbound> = (1..=20)
            .map(|i| msg(&format!("m{i}@x"), Some(i), "b"))
            .collect();
        let b = batch(3, 20, msgs);
        let (x, y) = tokio::join!(
            ts.store.receive_imap_batch(&b),
            other.receive_imap_batch(&b)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.stored.len() + y.stored.len(), 20, "{label}");
        assert_eq!(x.duplicates + y.duplicates, 20, "{label}");
        assert_eq!(ts.store.count_inbound(None).await.unwrap(), 20, "{label}");
        assert_eq!(received_events(&ts).await.len(), 20, "{label}");
        other.close().await;
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn webhook_and_cli_messages_dedupe_and_return_the_existing_id() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let s = &ts.store;
        let m = msg("hook@x", None, "hello");
        let first = s.receive_inbound(MailSource::Webhook, &m).await.unwrap();
        assert!(first.created, "{label}");
        assert_eq!(first.id, inbound_id("hook@x"));
        let second = s.receive_inbound(MailSource::Cli, &m).await.unwrap();
        assert!(!second.created, "{label}");
        assert_eq!(second.id, first.id, "{label}");
        // The same message arriving over IMAP later is skipped too.
        let r = s
            .receive_imap_batch(&batch(1, 1, vec![msg("hook@x", Some(1), "hello")]))
            .await
            .unwrap();
        assert_eq!(r.duplicates, 1, "{label}");
        // A message without a Message-ID, keyed by its hash.
        let anon = NewInbound {
            dedupe_key: "sha256:abc".into(),
            message_id: None,
            raw: b"Subject: no id\r\n\r\nx".to_vec(),
            uid: None,
            refused: None,
        };
        assert!(
            s.receive_inbound(MailSource::Webhook, &anon)
                .await
                .unwrap()
                .created
        );
        let listed = s.inbound_messages(None, 10).await.unwrap();
        assert_eq!(listed.len(), 2, "{label}");
        let hook = listed.iter().find(|r| r.id == first.id).unwrap();
        assert_eq!(hook.source, MailSource::Webhook, "{label}");
        assert_eq!(hook.status, InboundStatus::New, "{label}");
        assert_eq!(hook.mailbox, None, "{label}");
        assert_eq!(hook.size, i64::try_from(m.raw.len()).unwrap(), "{label}");
        assert_eq!(s.inbound_raw(&first.id).await.unwrap(), m.raw, "{label}");
        assert!(matches!(
            s.inbound_raw("in-nope").await,
            Err(StoreError::NotFound(_))
        ));
        // IMAP messages go through their batch; empty messages and keys are refused.
        assert!(matches!(
            s.receive_inbound(MailSource::Imap, &m).await,
            Err(StoreError::Invalid(_))
        ));
        let empty = NewInbound {
            raw: Vec::new(),
            ..msg("e@x", None, "")
        };
        assert!(matches!(
            s.receive_inbound(MailSource::Webhook, &empty).await,
            Err(StoreError::Invalid(_))
        ));
        let events = received_events(&ts).await;
        assert_eq!(events.len(), 2, "{label}");
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_refused_message_is_kept_as_failed_not_lost() {
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let s = &ts.store;
        let big = NewInbound {
            refused: Some("12000000 bytes, over the 10485760-byte limit".into()),
            ..msg("big@x", Some(1), "")
        };
        let r = s
            .receive_imap_batch(&batch(1, 2, vec![big, msg("ok@x", Some(2), "fine")]))
            .await
            .unwrap();
        assert_eq!(r.stored.len(), 2, "{label}");
        assert_eq!(r.refused, 1, "{label}");
        let failed = s
            .inbound_messages(Some(InboundStatus::Failed), 10)
            .await
            .unwrap();
        assert_eq!(failed.len(), 1, "{label}");
        assert!(failed[0].error.as_deref().unwrap().contains("over the"));
        // Only the one taken whole waits for processing.
        let pending = s.pending_inbound(10).await.unwrap();
        assert_eq!(pending.len(), 1, "{label}");
        assert_eq!(pending[0].id, inbound_id("ok@x"), "{label}");
        assert_eq!(s.count_inbound(Some(InboundStatus::New)).await.unwrap(), 1);
        ts.cleanup().await;
    }
}
