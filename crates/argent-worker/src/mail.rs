//! The mailbox reader's side in the worker: the IMAP adapter (`argent_mail::imap`) storing
//! into the database ([`StoreSink`]: each batch with its checkpoint in one transaction,
//! `argent_store::Store::receive_imap_batch`), once (`argent mail fetch`) or continuously
//! inside `argent worker` / `argent serve --desk` ([`spawn_reader`]).
//!
//! Receiving only: what happens to a stored message (parse, classify, match, run the
//! agent) is the processing step, called through the `after_pass` hook the caller gives.

use std::future::Future;

use argent_mail::imap::{
    Checkpoint, FetchReport, FetchedBatch, ImapConfig, ImapError, MailSink, SinkError, Stored,
};
use argent_store::{ImapBatch, NewInbound, Store};

/// [`MailSink`] over the store.
#[derive(Clone, Debug)]
pub struct StoreSink {
    pub store: Store,
}

impl MailSink for StoreSink {
    async fn checkpoint(&self, mailbox: &str) -> Result<Option<Checkpoint>, SinkError> {
        let Some(cp) = self.store.mailbox_checkpoint(mailbox).await? else {
            return Ok(None);
        };
        let uidvalidity = u32::try_from(cp.uidvalidity).map_err(|_| {
            format!(
                "stored checkpoint of mailbox '{mailbox}' has UIDVALIDITY {} (not an IMAP value)",
                cp.uidvalidity
            )
        })?;
        let last_uid = u32::try_from(cp.last_uid).map_err(|_| {
            format!(
                "stored checkpoint of mailbox '{mailbox}' has last UID {} (not an IMAP value)",
                cp.last_uid
            )
        })?;
        Ok(Some(Checkpoint {
            uidvalidity,
            last_uid,
        }))
    }

    async fn receive(&self, batch: FetchedBatch) -> Result<Stored, SinkError> {
        let batch = ImapBatch {
            mailbox: batch.mailbox,
            uidvalidity: i64::from(batch.uidvalidity),
            last_uid: i64::from(batch.last_uid),
            messages: batch
                .messages
                .into_iter()
                .map(|m| NewInbound {
                    dedupe_key: m.facts.dedupe_key,
                    message_id: m.facts.message_id,
                    raw: m.raw,
                    uid: Some(i64::from(m.uid)),
                    refused: m.refused,
                })
                .collect(),
        };
        let r = self.store.receive_imap_batch(&batch).await?;
        Ok(Stored {
            stored: r.stored.len(),
            duplicates: r.duplicates,
            refused: r.refused,
        })
    }
}

/// One pass over the configured mailbox (`argent mail fetch`).
pub async fn fetch_once(store: &Store, cfg: &ImapConfig) -> Result<FetchReport, ImapError> {
    argent_mail::imap::fetch_once(
        cfg,
        &StoreSink {
            store: store.clone(),
        },
    )
    .await
}

/// Starts the continuous reader: it stores new mail as it arrives (IDLE, or polling) until
/// `shutdown` turns true, and calls `after_pass` after each pass that stored something.
pub fn spawn_reader<F, Fut>(
    store: Store,
    cfg: ImapConfig,
    after_pass: F,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(FetchReport) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(argent_mail::imap::run(
        cfg,
        StoreSink { store },
        after_pass,
        shutdown,
    ))
}
