//! The IMAP reader against a real Dovecot on 127.0.0.1 (see `dovecot/mod.rs`), storing
//! into SQLite and (with ARGENT_TEST_POSTGRES_URL) PostgreSQL: each message once, nothing
//! new on a second pass, later mail fetched, a UIDVALIDITY change duplicating nothing, the
//! same Message-ID under two UIDs stored once, TLS (implicit and STARTTLS), the size cap,
//! and the continuous reader (IDLE and polling).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod dovecot;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argent_mail::imap::{ImapError, TlsMode};
use argent_store::testkit::TestStore;
use argent_store::{InboundStatus, MailSource, Store};
use argent_worker::mail::{fetch_once, spawn_reader};
use dovecot::{Dovecot, message, received_events};

#[tokio::test]
async fn a_fetch_stores_each_message_once_and_later_mail_on_the_next() {
    let Some(server) = Dovecot::start() else {
        return;
    };
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let mailbox = format!("AR-{label}");
        let mut s = server.session().await;
        server.create(&mut s, &mailbox).await;
        let m1 = message(
            Some("m1@debtor.example"),
            "Re: invoice 1",
            "I will pay Friday.",
        );
        let m2 = message(Some("m2@debtor.example"), "Re: invoice 2", "Paid.");
        // The same message delivered twice (two UIDs, one Message-ID).
        let m1_again = message(
            Some("m1@debtor.example"),
            "Re: invoice 1",
            "I will pay Friday!",
        );
        let anon = message(None, "no id", "A message without a Message-ID.");
        for m in [&m1, &m2, &m1_again, &anon] {
            server.append(&mut s, &mailbox, m).await;
        }
        let cfg = server.config(&mailbox);
        let r = fetch_once(&ts.store, &cfg).await.unwrap();
        assert_eq!(
            (r.fetched, r.stored, r.duplicates, r.refused),
            (4, 3, 1, 0),
            "{label}: {r:?}"
        );
        assert!(r.restarted, "{label}: no checkpoint before");
        assert_eq!(r.last_uid, 4, "{label}");
        let cp = ts
            .store
            .mailbox_checkpoint(&mailbox)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cp.last_uid, 4, "{label}");
        assert_eq!(cp.uidvalidity, i64::from(r.uidvalidity), "{label}");

        // Exactly the bytes delivered, each once.
        let pending = ts.store.pending_inbound(100).await.unwrap();
        assert_eq!(pending.len(), 3, "{label}");
        let mut raws: Vec<Vec<u8>> = pending.iter().map(|p| p.raw.clone()).collect();
        raws.sort();
        let mut want = vec![m1.clone(), m2.clone(), anon.clone()];
        want.sort();
        assert_eq!(raws, want, "{label}");
        assert!(pending.iter().all(|p| p.source == MailSource::Imap));
        let keys: Vec<Option<String>> = pending.iter().map(|p| p.message_id.clone()).collect();
        assert!(
            keys.contains(&None),
            "{label}: the one without a Message-ID"
        );
        assert_eq!(received_events(&ts.store).await, 3, "{label}");

        // A second fetch: nothing new, nothing fetched.
        let r = fetch_once(&ts.store, &cfg).await.unwrap();
        assert_eq!((r.fetched, r.stored), (0, 0), "{label}: {r:?}");
        assert!(!r.restarted, "{label}");

        // Mail appended later is fetched, alone.
        let m3 = message(Some("m3@debtor.example"), "Re: invoice 3", "Dispute.");
        server.append(&mut s, &mailbox, &m3).await;
        let r = fetch_once(&ts.store, &cfg).await.unwrap();
        assert_eq!(
            (r.fetched, r.stored, r.last_uid),
            (1, 1, 5),
            "{label}: {r:?}"
        );
        assert_eq!(ts.store.count_inbound(None).await.unwrap(), 4, "{label}");
        assert_eq!(received_events(&ts.store).await, 4, "{label}");
        // Fetching leaves the messages unread for the people sharing the mailbox.
        s.select(&mailbox).await.unwrap();
        let unseen = s.search("UNSEEN").await.unwrap();
        assert_eq!(unseen.len(), 5, "{label}: BODY.PEEK must not set \\Seen");
        s.logout().await.unwrap();
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_uidvalidity_change_reads_again_without_duplicates() {
    let Some(server) = Dovecot::start() else {
        return;
    };
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let mailbox = format!("RV-{label}");
        let mut s = server.session().await;
        server.create(&mut s, &mailbox).await;
        let a = message(Some("a@x.example"), "a", "one");
        let b = message(Some("b@x.example"), "b", "two");
        server.append(&mut s, &mailbox, &a).await;
        server.append(&mut s, &mailbox, &b).await;
        let cfg = server.config(&mailbox);
        let first = fetch_once(&ts.store, &cfg).await.unwrap();
        assert_eq!(first.stored, 2, "{label}");

        // The mailbox is recreated (a migration, a restore): new UIDVALIDITY, UIDs from 1.
        s.delete(&mailbox).await.unwrap();
        server.create(&mut s, &mailbox).await;
        let c = message(Some("c@x.example"), "c", "three");
        for m in [&a, &b, &c] {
            server.append(&mut s, &mailbox, m).await;
        }
        let r = fetch_once(&ts.store, &cfg).await.unwrap();
        assert_ne!(r.uidvalidity, first.uidvalidity, "{label}");
        assert!(r.restarted, "{label}");
        assert_eq!(
            (r.fetched, r.stored, r.duplicates),
            (3, 1, 2),
            "{label}: {r:?}"
        );
        let cp = ts
            .store
            .mailbox_checkpoint(&mailbox)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (cp.uidvalidity, cp.last_uid),
            (i64::from(r.uidvalidity), 3),
            "{label}"
        );
        assert_eq!(ts.store.count_inbound(None).await.unwrap(), 3, "{label}");
        // And it goes on from there.
        let r = fetch_once(&ts.store, &cfg).await.unwrap();
        assert_eq!((r.fetched, r.restarted), (0, false), "{label}");
        s.logout().await.unwrap();
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn tls_implicit_and_starttls_verify_the_server() {
    let Some(server) = Dovecot::start() else {
        return;
    };
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let mailbox = format!("TLS-{label}");
        let mut s = server.session().await;
        server.create(&mut s, &mailbox).await;
        server
            .append(&mut s, &mailbox, &message(Some("t1@x"), "t", "1"))
            .await;
        let r = fetch_once(&ts.store, &server.tls_config(&mailbox, TlsMode::Implicit))
            .await
            .unwrap();
        assert_eq!(r.stored, 1, "{label}");
        server
            .append(&mut s, &mailbox, &message(Some("t2@x"), "t", "2"))
            .await;
        let r = fetch_once(&ts.store, &server.tls_config(&mailbox, TlsMode::StartTls))
            .await
            .unwrap();
        assert_eq!(r.stored, 1, "{label}");
        // A certificate nobody vouches for is refused (here: the system roots only).
        let mut untrusted = server.tls_config(&mailbox, TlsMode::Implicit);
        untrusted.ca_file = None;
        match fetch_once(&ts.store, &untrusted).await {
            Err(ImapError::Tls { .. }) => {}
            other => panic!("{label}: expected a TLS error, got {other:?}"),
        }
        // A wrong password: a clear error without the password, nothing stored.
        let mut wrong = server.config(&mailbox);
        wrong.password = "not-the-password".into();
        let err = fetch_once(&ts.store, &wrong).await.unwrap_err();
        assert!(matches!(err, ImapError::Login { .. }), "{label}: {err}");
        assert!(!err.to_string().contains("not-the-password"));
        assert_eq!(ts.store.count_inbound(None).await.unwrap(), 2, "{label}");
        s.logout().await.unwrap();
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_message_over_the_cap_is_kept_for_a_person_and_does_not_block_the_rest() {
    let Some(server) = Dovecot::start() else {
        return;
    };
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let mailbox = format!("BIG-{label}");
        let mut s = server.session().await;
        server.create(&mut s, &mailbox).await;
        let big = message(Some("big@x"), "attachment", &"A".repeat(8000));
        let small = message(Some("small@x"), "after", "fine");
        server.append(&mut s, &mailbox, &big).await;
        server.append(&mut s, &mailbox, &small).await;
        let mut cfg = server.config(&mailbox);
        cfg.max_bytes = 4096;
        let r = fetch_once(&ts.store, &cfg).await.unwrap();
        assert_eq!((r.stored, r.refused), (2, 1), "{label}: {r:?}");
        let failed = ts
            .store
            .inbound_messages(Some(InboundStatus::Failed), 10)
            .await
            .unwrap();
        assert_eq!(failed.len(), 1, "{label}");
        assert_eq!(failed[0].message_id.as_deref(), Some("big@x"), "{label}");
        assert!(
            failed[0]
                .error
                .as_deref()
                .unwrap()
                .contains("over the 4096-byte limit")
        );
        // Only the header was taken.
        let raw = ts.store.inbound_raw(&failed[0].id).await.unwrap();
        assert!(raw.len() < 1000, "{label}: {} bytes", raw.len());
        let pending = ts.store.pending_inbound(10).await.unwrap();
        assert_eq!(pending.len(), 1, "{label}");
        assert_eq!(pending[0].raw, small, "{label}");
        s.logout().await.unwrap();
        ts.cleanup().await;
    }
}

async fn wait_for_count(store: &Store, n: i64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let have = store.count_inbound(None).await.unwrap();
        if have == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {have} messages stored, waiting for {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_continuous_reader_takes_new_mail_as_it_arrives() {
    let Some(server) = Dovecot::start() else {
        return;
    };
    for ts in TestStore::all().await.unwrap() {
        for idle in [true, false] {
            let label = format!("{} idle={idle}", ts.label);
            let mailbox = format!("LIVE-{}-{idle}", ts.label);
            let mut s = server.session().await;
            server.create(&mut s, &mailbox).await;
            server
                .append(
                    &mut s,
                    &mailbox,
                    &message(Some(&format!("l0-{idle}@x")), "0", "0"),
                )
                .await;
            let mut cfg = server.config(&mailbox);
            cfg.use_idle = idle;
            cfg.poll = Duration::from_millis(300);
            let passes = Arc::new(AtomicUsize::new(0));
            let seen = passes.clone();
            let (stop, shutdown) = tokio::sync::watch::channel(false);
            let reader = spawn_reader(
                ts.store.clone(),
                cfg,
                move |report| {
                    let seen = seen.clone();
                    async move {
                        seen.fetch_add(report.stored, Ordering::SeqCst);
                    }
                },
                shutdown,
            );
            wait_for_count(&ts.store, 1, &label).await;
            // Delivered while the reader waits (in IDLE, or between polls).
            tokio::time::sleep(Duration::from_millis(300)).await;
            server
                .append(
                    &mut s,
                    &mailbox,
                    &message(Some(&format!("l1-{idle}@x")), "1", "1"),
                )
                .await;
            wait_for_count(&ts.store, 2, &label).await;
            server
                .append(
                    &mut s,
                    &mailbox,
                    &message(Some(&format!("l2-{idle}@x")), "2", "2"),
                )
                .await;
            wait_for_count(&ts.store, 3, &label).await;
            // The hook ran for every message stored.
            let deadline = Instant::now() + Duration::from_secs(5);
            while passes.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(passes.load(Ordering::SeqCst), 3, "{label}");
            // Shutdown ends IDLE (or the wait) promptly.
            let t = Instant::now();
            stop.send(true).unwrap();
            tokio::time::timeout(Duration::from_secs(10), reader)
                .await
                .unwrap()
                .unwrap();
            assert!(t.elapsed() < Duration::from_secs(10), "{label}");
            // Clear for the next round: its messages are others.
            argent_store::testkit::raw_execute(&ts.store, "DELETE FROM inbound_mail")
                .await
                .unwrap();
            s.logout().await.unwrap();
        }
        ts.cleanup().await;
    }
}

/// Receiving throughput (not run by default: `cargo test --release --test imap_reader --
/// --ignored --nocapture`): 1000 messages of about 5 KB fetched and stored in batches of
/// 50, per backend.
#[tokio::test]
#[ignore]
async fn throughput_of_a_fetch() {
    let Some(server) = Dovecot::start() else {
        return;
    };
    const N: usize = 1000;
    for ts in TestStore::all().await.unwrap() {
        let label = ts.label;
        let mailbox = format!("BENCH-{label}");
        let mut s = server.session().await;
        server.create(&mut s, &mailbox).await;
        let body = "I will pay the invoice on Friday. ".repeat(150);
        for i in 0..N {
            let m = message(Some(&format!("b{i}@x")), "Re: invoice", &body);
            server.append(&mut s, &mailbox, &m).await;
        }
        let cfg = server.config(&mailbox);
        let t = Instant::now();
        let r = fetch_once(&ts.store, &cfg).await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(r.stored, N, "{label}");
        #[allow(clippy::cast_precision_loss)]
        let rate = N as f64 / secs;
        println!(
            "{label}: {N} messages of {} bytes fetched and stored in {secs:.2} s ({rate:.0} messages/s, batches of {})",
            message(Some("b0@x"), "Re: invoice", &body).len(),
            cfg.batch
        );
        s.logout().await.unwrap();
        ts.cleanup().await;
    }
}
