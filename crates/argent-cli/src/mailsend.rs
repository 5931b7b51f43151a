//! Outbound mail settings and SMTP delivery for `argent outbox deliver`, `argent worker`
//! and `argent serve --desk` (issue #14). The settings come from the environment and/or
//! the TOML file `ARGENT_MAIL_CONFIG` names (`argent_mail::smtp::MailSettings::load_with`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use argent_agent::Agent;
use argent_agent::outbox_smtp::SmtpDelivery;
use argent_mail::smtp::{MailSettings, SmtpMailer};

/// The mail settings of this process.
pub fn mail_settings() -> Result<MailSettings> {
    MailSettings::from_env()
        .context("mail settings (ARGENT_MAIL_* / ARGENT_SMTP_* / ARGENT_MAIL_CONFIG)")
}

/// Who records attempts: this process.
pub fn deliverer_name() -> String {
    format!("argent-{}", std::process::id())
}

pub fn describe(d: &SmtpDelivery) -> String {
    format!(
        "{} sent, {} deferred (temporary failure), {} held by a rate limit, {} failed, {} uncertain",
        d.sent, d.deferred, d.rate_limited, d.failed, d.uncertain
    )
}

/// When SMTP is configured, delivers the outbox every `every` until `shutdown` turns true
/// (a pass that fails is logged and the next one runs). `None` when SMTP is not
/// configured (emails wait for `argent outbox deliver`).
pub fn spawn_delivery(
    agent: Arc<dyn Fn() -> Arc<Agent> + Send + Sync>,
    settings: MailSettings,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(smtp) = settings.smtp.clone() else {
        return Ok(None);
    };
    let mailer = SmtpMailer::new(&smtp).context("the SMTP client")?;
    eprintln!(
        "argent: delivering email over {} every {every:?}",
        mailer.describe()
    );
    let owner = deliverer_name();
    Ok(Some(tokio::spawn(async move {
        loop {
            if *shutdown.borrow() {
                break;
            }
            let a = agent();
            match a.deliver_smtp(&mailer, &settings, &owner, 200).await {
                Ok(d) if d == SmtpDelivery::default() => {}
                Ok(d) => eprintln!("argent: mail: {}", describe(&d)),
                Err(e) => eprintln!("argent: mail delivery pass failed: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
    })))
}
