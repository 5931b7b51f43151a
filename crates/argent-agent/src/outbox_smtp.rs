//! Delivering the outbox over SMTP, exactly once as far as SMTP allows.
//!
//! One pass ([`Agent::deliver_smtp`]):
//! 1. **Reconcile.** An attempt still open after its lease (`attempt_lease`, longer than
//!    the SMTP timeout) belongs to a process that died after recording it and before
//!    recording the server's answer. SMTP cannot be asked whether the server took the
//!    message, so the attempt and its email become `uncertain` (audited
//!    `email_uncertain`) and a task asks a collector to find out; nothing resends it
//!    automatically (`argent outbox resolve` records the collector's answer).
//! 2. **Each due pending email** (oldest first): checked against its audited content (as
//!    the `.eml` delivery does), given its Message-ID if it was queued before it had one,
//!    held back while its recipient domain is at its rate limit (`next_attempt_at` set),
//!    then the attempt is **committed before anything is sent**; the message goes to the
//!    server; the answer is recorded in one transaction with the email's status and its
//!    audit event: 250 → `sent` (`email_delivered`); 4xx or no answer → tried again after
//!    a doubling backoff (`email_deferred`), `failed` once `max_attempts` are used; 5xx →
//!    `failed` with the server's answer (`email_failed`) and a task for a collector.

use chrono::{DateTime, Utc};
use serde_json::json;

use argent_core::{Role, TaskKind};
use argent_mail::outbound::{Outgoing, build_message, domain_of, message_id_for};
use argent_mail::smtp::{MailSettings, SendFailure, SmtpMailer, SmtpSettings, backoff, rate_wait};
use argent_store::integrity::{self, EmailRefusal};
use argent_store::{
    AttemptOutcome, NewAuditEvent, NewTask, OutboxAttempt, OutboxEmail, StoreError,
};

use crate::run::crash_point;
use crate::{Agent, AgentError};

/// Audit event: an SMTP attempt failed temporarily; the email is tried again later.
pub const EMAIL_DEFERRED: &str = "email_deferred";
/// Audit event: the email failed for good (a 5xx, or out of attempts).
pub const EMAIL_FAILED: &str = "email_failed";
/// Audit event: an attempt was never concluded; whether it arrived is unknown.
pub const EMAIL_UNCERTAIN: &str = "email_uncertain";
/// Audit event: a collector said whether an uncertain email arrived.
pub const EMAIL_RESOLVED: &str = "email_resolved";

/// What one SMTP delivery pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmtpDelivery {
    pub sent: usize,
    /// Temporary failures, to be tried again.
    pub deferred: usize,
    /// Held back by a recipient domain's rate limit.
    pub rate_limited: usize,
    pub failed: usize,
    /// Attempts found unconcluded and marked uncertain.
    pub uncertain: usize,
    /// Not sent: not what the audit trail recorded (as in `deliver_outbox`).
    pub refused: Vec<EmailRefusal>,
}

fn event(email_customer: &str, kind: &str, payload: serde_json::Value) -> NewAuditEvent {
    NewAuditEvent {
        run_id: None,
        customer_id: Some(email_customer.to_string()),
        actor: "outbox".into(),
        kind: kind.into(),
        payload,
    }
}

fn collector_task(
    email: &OutboxEmail,
    id: String,
    title: String,
    body: String,
    now: DateTime<Utc>,
) -> NewTask {
    NewTask {
        id,
        kind: TaskKind::FollowUp,
        customer_id: email.customer_id.clone(),
        owner_role: Role::Collector,
        assignee: None,
        title,
        body,
        due_at: None,
        source: email.id.clone(),
        created_at: now,
        actor: "outbox".into(),
    }
}

impl Agent {
    /// One SMTP delivery pass over at most `limit` due emails (see the module docs).
    /// `owner` names this deliverer in the attempts it records.
    pub async fn deliver_smtp(
        &self,
        mailer: &SmtpMailer,
        settings: &MailSettings,
        owner: &str,
        limit: i64,
    ) -> Result<SmtpDelivery, AgentError> {
        let smtp = settings
            .smtp
            .as_ref()
            .ok_or_else(|| AgentError::Io("SMTP is not configured (ARGENT_SMTP_HOST)".into()))?;
        let mut out = SmtpDelivery {
            uncertain: self.reconcile_attempts(smtp).await?,
            ..SmtpDelivery::default()
        };
        let now = self.now();
        for email in self.store.deliverable_emails(now, limit).await? {
            let id = email.id.clone();
            match self.deliver_one(email, mailer, settings, smtp, owner).await {
                Ok(One::Sent) => out.sent += 1,
                Ok(One::Deferred) => out.deferred += 1,
                Ok(One::RateLimited) => out.rate_limited += 1,
                Ok(One::Failed) => out.failed += 1,
                Ok(One::Refused(r)) => out.refused.push(r),
                Ok(One::Skipped) => {}
                // Another deliverer changed it meanwhile (sent it, concluded this attempt
                // as uncertain after its lease, ...): left as that one recorded it.
                Err(AgentError::Store(StoreError::Conflict(e))) => {
                    tracing::warn!("outbox {id}: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// One email of a pass (see the module docs).
    async fn deliver_one(
        &self,
        mut email: OutboxEmail,
        mailer: &SmtpMailer,
        settings: &MailSettings,
        smtp: &SmtpSettings,
        owner: &str,
    ) -> Result<One, AgentError> {
        if let Some(refusal) = self.store.email_binding(&email).await? {
            self.store
                .audit_append(event(
                    &email.customer_id,
                    integrity::EMAIL_REFUSED,
                    json!({
                        "outbox_id": email.id, "call_id": email.call_id,
                        "audited_sha256": refusal.audited, "stored_sha256": refusal.stored,
                        "why": refusal.why,
                    }),
                ))
                .await?;
            return Ok(One::Refused(refusal));
        }
        if email.message_id.is_none() {
            // Queued before emails had one: chosen now, before the first attempt.
            let mid = message_id_for(&email.id, &settings.domain());
            let mut tx = self.store.begin().await?;
            tx.assign_message_id(&email.id, &mid).await?;
            tx.commit().await?;
            email = self.store.email(&email.id).await?;
        }
        let now = self.now();
        let Some(domain) = domain_of(&email.to_addr) else {
            let why = format!("recipient '{}' has no domain", email.to_addr);
            self.fail_unsent(&email, &why, now).await?;
            return Ok(One::Failed);
        };
        let since = now - chrono::Duration::minutes(1);
        let starts = self.store.attempt_starts_to_domain(&domain, since).await?;
        let rate = smtp.rate_for(&domain);
        if let Some(at) = rate_wait(&starts, rate, now) {
            let mut tx = self.store.begin().await?;
            tx.defer_email(
                &email.id,
                at,
                &format!("rate limit: {rate} a minute to {domain}"),
            )
            .await?;
            tx.commit().await?;
            return Ok(One::RateLimited);
        }
        let message_id = email.message_id.clone().unwrap_or_default();
        let msg = match build_message(&Outgoing {
            from: &settings.from,
            to: &email.to_addr,
            subject: &email.subject,
            body: &email.body,
            message_id: &message_id,
            in_reply_to: email.in_reply_to.as_deref(),
            references: email.references_hdr.as_deref(),
            unsubscribe: &settings.unsubscribe,
            outbox_id: &email.id,
        }) {
            Ok(m) => m,
            Err(e) => {
                self.fail_unsent(&email, &e.to_string(), now).await?;
                return Ok(One::Failed);
            }
        };
        // The attempt is durable before the server sees the message.
        let mut tx = self.store.begin().await?;
        let Some(attempt) = tx.start_attempt(&email, &domain, owner, now).await? else {
            tx.rollback().await?;
            return Ok(One::Skipped);
        };
        tx.commit().await?;
        crash_point("smtp_attempt_recorded");
        let answer = mailer.send(&msg).await;
        if answer.is_ok() {
            // The server said 250; nothing is recorded yet.
            crash_point("smtp_accepted");
        }
        Ok(
            match self
                .conclude(&email, &attempt, answer, smtp, mailer)
                .await?
            {
                Concluded::Sent => One::Sent,
                Concluded::Deferred => One::Deferred,
                Concluded::Failed => One::Failed,
            },
        )
    }

    async fn conclude(
        &self,
        email: &OutboxEmail,
        attempt: &OutboxAttempt,
        answer: Result<String, SendFailure>,
        smtp: &SmtpSettings,
        mailer: &SmtpMailer,
    ) -> Result<Concluded, AgentError> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let base = json!({
            "outbox_id": email.id, "call_id": email.call_id, "to": email.to_addr,
            "message_id": attempt.message_id, "attempt": attempt.attempt, "via": mailer.describe(),
        });
        let with = |extra: serde_json::Value| {
            let mut v = base.clone();
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            v
        };
        let done = match answer {
            Ok(response) => {
                tx.conclude_attempt(&attempt.id, AttemptOutcome::Sent, &response, now)
                    .await?;
                tx.mark_email_sent(&email.id, now).await?;
                tx.audit_append(event(
                    &email.customer_id,
                    integrity::EMAIL_DELIVERED,
                    with(json!({"response": response, "content_sha256": email.content_sha256()})),
                ))
                .await?;
                Concluded::Sent
            }
            Err(SendFailure::Temporary(e)) if attempt.attempt < i64::from(smtp.max_attempts) => {
                let next = now
                    + chrono::Duration::from_std(backoff(
                        attempt.attempt,
                        smtp.retry_base,
                        smtp.retry_max,
                    ))
                    .unwrap_or_else(|_| chrono::Duration::hours(1));
                tx.conclude_attempt(&attempt.id, AttemptOutcome::Retry, &e, now)
                    .await?;
                tx.defer_email(&email.id, next, &e).await?;
                tx.audit_append(event(
                    &email.customer_id,
                    EMAIL_DEFERRED,
                    with(json!({"error": e, "next_attempt_at": next})),
                ))
                .await?;
                Concluded::Deferred
            }
            Err(failure) => {
                let why = match failure {
                    SendFailure::Permanent(e) => e,
                    SendFailure::Temporary(e) => {
                        format!("gave up after {} attempts; the last: {e}", attempt.attempt)
                    }
                };
                tx.conclude_attempt(&attempt.id, AttemptOutcome::Failed, &why, now)
                    .await?;
                tx.end_email(&email.id, "failed", &why).await?;
                tx.audit_append(event(
                    &email.customer_id,
                    EMAIL_FAILED,
                    with(json!({"error": why})),
                ))
                .await?;
                tx.create_task(&collector_task(
                    email,
                    format!("TASK-mail-{}", email.id),
                    format!("Email to {} was not delivered", email.to_addr),
                    format!(
                        "Outbox email {} (\"{}\") to {} failed: {why}\nCheck the address on file or reach the customer another way.",
                        email.id, email.subject, email.to_addr
                    ),
                    now,
                ))
                .await?;
                Concluded::Failed
            }
        };
        tx.commit().await?;
        Ok(done)
    }

    /// An email that cannot even be tried (no domain, unbuildable): failed, audited, a task.
    async fn fail_unsent(
        &self,
        email: &OutboxEmail,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AgentError> {
        let mut tx = self.store.begin().await?;
        tx.end_email(&email.id, "failed", why).await?;
        tx.audit_append(event(
            &email.customer_id,
            EMAIL_FAILED,
            json!({"outbox_id": email.id, "call_id": email.call_id, "to": email.to_addr, "error": why}),
        ))
        .await?;
        tx.create_task(&collector_task(
            email,
            format!("TASK-mail-{}", email.id),
            format!("Email to {} could not be sent", email.to_addr),
            format!("Outbox email {} (\"{}\"): {why}", email.id, email.subject),
            now,
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks attempts open longer than the lease `uncertain` (see the module docs).
    async fn reconcile_attempts(&self, smtp: &SmtpSettings) -> Result<usize, AgentError> {
        let now = self.now();
        let lease = chrono::Duration::from_std(smtp.attempt_lease)
            .unwrap_or_else(|_| chrono::Duration::hours(1));
        let mut n = 0;
        for a in self.store.stale_attempts(now - lease).await? {
            let email = self.store.email(&a.outbox_id).await?;
            let why = format!(
                "attempt {} (by {}, started {}) was never concluded: the deliverer stopped between \
                 recording it and recording the server's answer, so whether the server accepted \
                 Message-ID <{}> is unknown; not resent automatically",
                a.attempt, a.owner, a.started_at, a.message_id
            );
            let marked: Result<(), StoreError> = async {
                let mut tx = self.store.begin().await?;
                tx.conclude_attempt(&a.id, AttemptOutcome::Uncertain, &why, now)
                    .await?;
                tx.end_email(&email.id, "uncertain", &why).await?;
                tx.audit_append(event(
                    &email.customer_id,
                    EMAIL_UNCERTAIN,
                    json!({"outbox_id": email.id, "call_id": email.call_id, "to": email.to_addr,
                           "message_id": a.message_id, "attempt": a.attempt, "why": why}),
                ))
                .await?;
                tx.create_task(&collector_task(
                    &email,
                    format!("TASK-mail-{}", a.id),
                    format!("Did the email to {} arrive?", email.to_addr),
                    format!(
                        "Outbox email {} (\"{}\", Message-ID <{}>) may or may not have been delivered: {why}.\n\
                         Check with the customer or the mail server's log, then record it: \
                         `argent outbox resolve {} --arrived` or `--resend`.",
                        email.id, email.subject, a.message_id, email.id
                    ),
                    now,
                ))
                .await?;
                tx.commit().await
            }
            .await;
            match marked {
                Ok(()) => n += 1,
                // Concluded meanwhile by its own deliverer, or by another pass.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(n)
    }

    /// A collector's answer for an `uncertain` email: it arrived (marked sent, audited as
    /// delivered and resolved) or not (pending again, sent with the same Message-ID by the
    /// next pass).
    pub async fn resolve_uncertain(
        &self,
        outbox_id: &str,
        arrived: bool,
        who: &str,
        note: Option<&str>,
    ) -> Result<(), AgentError> {
        let email = self.store.email(outbox_id).await?;
        let now = self.now();
        let mut tx = self.store.begin().await?;
        tx.resolve_uncertain_email(outbox_id, arrived, now).await?;
        let mut events = vec![NewAuditEvent {
            actor: who.to_string(),
            ..event(
                &email.customer_id,
                EMAIL_RESOLVED,
                json!({"outbox_id": email.id, "message_id": email.message_id,
                       "arrived": arrived, "note": note}),
            )
        }];
        if arrived {
            events.push(NewAuditEvent {
                actor: who.to_string(),
                ..event(
                    &email.customer_id,
                    integrity::EMAIL_DELIVERED,
                    json!({"outbox_id": email.id, "call_id": email.call_id, "to": email.to_addr,
                           "message_id": email.message_id, "via": "confirmed by a collector",
                           "content_sha256": email.content_sha256()}),
                )
            });
        }
        tx.audit_append_many(events).await?;
        tx.commit().await?;
        Ok(())
    }
}

enum Concluded {
    Sent,
    Deferred,
    Failed,
}

/// What happened to one email in a pass.
enum One {
    Sent,
    Deferred,
    RateLimited,
    Failed,
    Refused(EmailRefusal),
    /// Another deliverer is on it.
    Skipped,
}
