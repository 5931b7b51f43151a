//! Email delivery: a separate step that drains the outbox. Executing `send_email` only
//! queues a message; a [`Mailer`] delivers it later, and the outbox row records that it went.

use std::path::PathBuf;

use lettre::Message;
use lettre::message::header::ContentType;
use serde_json::json;

use argent_store::integrity::{self, EmailRefusal};
use argent_store::{NewAuditEvent, OutboxEmail, StoreError};

use crate::run::crash_point;
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

/// What one delivery pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Emails delivered and marked sent.
    pub sent: usize,
    /// Emails not sent because they are not what the audit trail recorded (each refusal is
    /// audited as `email_refused`); they stay pending.
    pub refused: Vec<EmailRefusal>,
}

impl Agent {
    /// Delivers up to `limit` pending emails. Each one is first checked against the
    /// `executed` event of the call that queued it (its content hash): an email changed in
    /// the database since is not sent, and the refusal is audited. A delivered email is
    /// marked sent and its `email_delivered` event appended in one transaction, so no email
    /// is ever marked sent without its event (a crash before that commit leaves it pending,
    /// and the next pass delivers it again: delivery is at least once, which the mailer
    /// must tolerate).
    pub async fn deliver_outbox(
        &self,
        mailer: &dyn Mailer,
        from: &str,
        limit: i64,
    ) -> Result<Delivery, AgentError> {
        let mut out = Delivery::default();
        for email in self.store.pending_emails(limit).await? {
            if let Some(refusal) = self.store.email_binding(&email).await? {
                self.store
                    .audit_append(NewAuditEvent {
                        run_id: None,
                        customer_id: Some(email.customer_id.clone()),
                        actor: "outbox".into(),
                        kind: integrity::EMAIL_REFUSED.into(),
                        payload: json!({
                            "outbox_id": email.id,
                            "call_id": email.call_id,
                            "audited_sha256": refusal.audited,
                            "stored_sha256": refusal.stored,
                            "why": refusal.why,
                        }),
                    })
                    .await?;
                out.refused.push(refusal);
                continue;
            }
            mailer.deliver(from, &email).map_err(AgentError::Io)?;
            let committed: Result<(), StoreError> = async {
                let mut tx = self.store.begin().await?;
                tx.mark_email_sent(&email.id, self.now()).await?;
                tx.audit_append(NewAuditEvent {
                    run_id: None,
                    customer_id: Some(email.customer_id.clone()),
                    actor: "outbox".into(),
                    kind: integrity::EMAIL_DELIVERED.into(),
                    payload: json!({
                        "outbox_id": email.id,
                        "call_id": email.call_id,
                        "to": email.to_addr,
                        "via": mailer.describe(),
                        "content_sha256": email.content_sha256(),
                    }),
                })
                .await?;
                tx.commit().await
            }
            .await;
            match committed {
                Ok(()) => out.sent += 1,
                // Another deliverer marked it first: it went out (at least) once.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
            crash_point("email_delivered");
        }
        Ok(out)
    }
}
