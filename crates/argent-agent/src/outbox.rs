//! Email delivery: a separate step that drains the outbox. Executing `send_email` only
//! queues a message; a [`Mailer`] delivers it later, and the outbox row records that it went.

use std::path::PathBuf;

use lettre::Message;
use lettre::message::header::ContentType;
use serde_json::json;

use argent_store::{NewAuditEvent, OutboxEmail};

use crate::{Agent, AgentError};

pub trait Mailer: Send + Sync {
    /// Delivers one message; delivering the same outbox id twice must be harmless.
    fn deliver(&self, from: &str, email: &OutboxEmail) -> Result<(), String>;
    fn describe(&self) -> String;
}

/// Writes each message as `<outbox id>.eml` (RFC 5322, built with lettre) into a folder: a
/// drop directory for an MTA, or simply a place to read what would have been sent.
pub struct DirMailer {
    pub dir: PathBuf,
}

impl Mailer for DirMailer {
    fn deliver(&self, from: &str, email: &OutboxEmail) -> Result<(), String> {
        let msg = Message::builder()
            .from(from.parse().map_err(|e| format!("sender {from}: {e}"))?)
            .to(email
                .to_addr
                .parse()
                .map_err(|e| format!("recipient {}: {e}", email.to_addr))?)
            .subject(email.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())
            .map_err(|e| format!("building {}: {e}", email.id))?;
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let path = self
            .dir
            .join(format!("{}.eml", email.id.replace(['/', '\\'], "_")));
        std::fs::write(&path, msg.formatted()).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn describe(&self) -> String {
        format!("files in {}", self.dir.display())
    }
}

impl Agent {
    /// Delivers up to `limit` pending emails; returns how many went out.
    pub async fn deliver_outbox(
        &self,
        mailer: &dyn Mailer,
        from: &str,
        limit: i64,
    ) -> Result<usize, AgentError> {
        let mut sent = 0;
        for email in self.store.pending_emails(limit).await? {
            mailer.deliver(from, &email).map_err(AgentError::Io)?;
            let now = self.now();
            if self.store.mark_email_sent(&email.id, now).await? {
                sent += 1;
                self.store
                    .audit_append(NewAuditEvent {
                        run_id: None,
                        customer_id: Some(email.customer_id.clone()),
                        actor: "outbox".into(),
                        kind: "email_delivered".into(),
                        payload: json!({"outbox_id": email.id, "call_id": email.call_id, "to": email.to_addr, "via": mailer.describe()}),
                    })
                    .await?;
            }
        }
        Ok(sent)
    }
}
