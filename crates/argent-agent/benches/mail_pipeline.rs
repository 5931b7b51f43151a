//! Receive-to-draft overhead of inbound mail, excluding the model: N replies (a 3 KB
//! multipart/alternative message each, quoted history included) are received as the
//! webhook does (`Store::receive_inbound`: stored raw, audited), then processed
//! (`mail_in::process_pending`: parse, classify, match the sender on file, settle the row
//! with its event, and the agent's run on the new text with the offline stand-in, whose
//! cost is negligible, up to the draft reply judged by policy and queued or refused).
//! Reports messages per second and the time per message. IMAP fetching is measured by
//! argent-worker's `imap_reader` throughput test (against Dovecot).
//!
//! `cargo bench -p argent-agent --bench mail_pipeline` (release); `ARGENT_BENCH_MESSAGES`
//! (default 300); PostgreSQL too when `ARGENT_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use argent_agent::mail_in::process_pending;
use argent_agent::{Agent, AgentConfig, Clock, OfflineModel};
use argent_store::testkit::{TestStore, consumer_portfolio};
use argent_store::{MailSource, NewInbound};

fn reply(i: usize) -> Vec<u8> {
    let quoted: String = (0..40)
        .map(|k| {
            format!("> Line {k} of our earlier reminder about your account and the invoices.\r\n")
        })
        .collect();
    format!(
        "From: Consumer {i:05} <c{i:05}@mail.example>\r\nTo: ar@argent.test\r\n\
         Subject: Re: your overdue invoice\r\nDate: Fri, 20 Nov 2026 17:30:00 +0000\r\n\
         Message-ID: <bench-{i}@mail.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nHello, sorry for the delay. \
         We will pay USD 150.00 by December 4, 2026.\r\n\r\nOn Thu, 19 Nov 2026, \
         Accounts Receivable wrote:\r\n{quoted}--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <p>Hello, sorry for the delay. We will pay USD 150.00 by December 4, 2026.</p>\
         <blockquote>{quoted}</blockquote>\r\n--b--\r\n"
    )
    .into_bytes()
}

fn main() {
    let n: usize = std::env::var("ARGENT_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "inbound mail, receive to draft (offline model), {n} messages of ~{} bytes",
            reply(1).len()
        );
        println!(
            "{:<9} {:>10} {:>10} {:>10} {:>12}",
            "backend", "receive/s", "process/s", "total/s", "ms/message"
        );
        for ts in TestStore::all().await.unwrap() {
            let store = ts.store.clone();
            store
                .import_portfolio(&consumer_portfolio(n), "bench")
                .await
                .unwrap();
            let agent = Agent::from_dirs(
                store.clone(),
                Arc::new(OfflineModel),
                &repo.join("prompts"),
                &repo.join("policies"),
                AgentConfig {
                    clock: Clock::Fixed("2026-11-20T18:00:00Z".parse().unwrap()),
                    ..Default::default()
                },
            )
            .unwrap();
            let raws: Vec<Vec<u8>> = (1..=n).map(reply).collect();
            let t = Instant::now();
            for (i, raw) in raws.into_iter().enumerate() {
                let r = store
                    .receive_inbound(
                        MailSource::Webhook,
                        &NewInbound {
                            dedupe_key: format!("bench-{}@mail.example", i + 1),
                            message_id: Some(format!("bench-{}@mail.example", i + 1)),
                            raw,
                            uid: None,
                            refused: None,
                        },
                    )
                    .await
                    .unwrap();
                assert!(r.created);
            }
            let received = t.elapsed();
            let t = Instant::now();
            let (mut processed, mut runs) = (0, 0);
            loop {
                let r = process_pending(&agent, 100).await.unwrap();
                if r.seen == 0 {
                    break;
                }
                assert_eq!(r.failed + r.unmatched + r.run_errors, 0, "{r:?}");
                processed += r.processed;
                runs += r.runs;
            }
            let took = t.elapsed();
            assert_eq!(
                (processed, runs),
                (n, n),
                "every reply matched and answered by a run"
            );
            let total = received + took;
            println!(
                "{:<9} {:>10.0} {:>10.0} {:>10.0} {:>12.2}",
                ts.label,
                n as f64 / received.as_secs_f64(),
                n as f64 / took.as_secs_f64(),
                n as f64 / total.as_secs_f64(),
                total.as_secs_f64() * 1000.0 / n as f64
            );
            ts.cleanup().await;
        }
    });
}
