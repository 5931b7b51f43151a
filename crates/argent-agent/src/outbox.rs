//! Email delivery: a separate step that drains the outbox. Executing `send_email` only
//! queues a message; a [`Mailer`] delivers it later, and the outbox row records that it went.

use std::path::PathBuf;

use argent_mail::outbound::{Outgoing, Unsubscribe, build_message, domain_of, message_id_for};
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
        // The same headers SMTP delivery sends, so a dry run shows them; the opt-out
        // address is the sender's.
        let unsubscribe = Unsubscribe {
            mailto: domain_of(from)
                .map(|_| bare(from))
                .ok_or_else(|| format!("sender {from}: not an email address"))?,
            url: None,
        };
        let message_id = match &email.message_id {
            Some(m) => m.clone(),
            None => message_id_for(&email.id, &domain_of(from).unwrap_or_default()),
        };
        let msg = build_message(&Outgoing {
            from,
            to: &email.to_addr,
            subject: &email.subject,
            body: &email.body,
            message_id: &message_id,
            in_reply_to: email.in_reply_to.as_deref(),
            references: email.references_hdr.as_deref(),
            unsubscribe: &unsubscribe,
            outbox_id: &email.id,
        })
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

/// `a@b` out of `Name <a@b>`.
fn bare(addr: &str) -> String {
    match (addr.rfind('<'), addr.rfind('>')) {
        (Some(l), Some(r)) if l < r => addr[l + 1..r].trim().to_string(),
        _ => addr.trim().to_string(),
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
        // Pending emails that are due and that no SMTP attempt is working on.
        for mut email in self.store.deliverable_emails(self.now(), limit).await? {
            if email.message_id.is_none() {
                // Queued before emails had one: chosen now, before it is first delivered,
                // and kept for any later delivery.
                let mid = message_id_for(&email.id, &domain_of(from).unwrap_or_default());
                let mut tx = self.store.begin().await?;
                tx.assign_message_id(&email.id, &mid).await?;
                tx.commit().await?;
                email = self.store.email(&email.id).await?;
            }
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
