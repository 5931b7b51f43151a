//! The SMTP adapter (lettre, tokio, rustls with the ring provider): settings from the
//! environment and/or a TOML file, a mailer that sends one message and says whether a
//! failure is temporary (4xx, connection, TLS, timeout: try again later) or permanent
//! (5xx: the message fails), the retry backoff and the per-domain rate limit arithmetic.
//! The delivery loop (which needs the database) is in `argent-agent`'s outbox module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

use crate::outbound::{Unsubscribe, domain_of};

/// How the connection to the server is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS at all: only for a relay on the same machine (tests on 127.0.0.1).
    Plain,
}

impl std::str::FromStr for Security {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "starttls" => Ok(Security::Starttls),
            "tls" | "implicit" | "smtps" => Ok(Security::Tls),
            "plain" | "none" => Ok(Security::Plain),
            other => Err(format!(
                "'{other}' is not an SMTP security mode (starttls, tls, plain)"
            )),
        }
    }
}

/// Mail settings. See [`MailSettings::load`] for where they come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailSettings {
    /// The sender (`From`), e.g. `Accounts Receivable <ar@example.com>`; its domain is the
    /// right part of every Message-ID.
    pub from: String,
    /// The opt-out address and one-click URL (`List-Unsubscribe`).
    pub unsubscribe: Unsubscribe,
    /// `None`: SMTP is not configured (emails go to `.eml` files).
    pub smtp: Option<SmtpSettings>,
}

/// The SMTP server and delivery limits. (`Debug` never shows the password.)
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A PEM file of CA certificates trusted in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry (default: `host`).
    pub tls_name: Option<String>,
    /// Messages a minute to one recipient domain (0 = no limit), unless `domain_rates`
    /// names the domain.
    pub rate_per_minute: u32,
    pub domain_rates: BTreeMap<String, u32>,
    /// Attempts before an email that keeps failing temporarily is marked failed.
    pub max_attempts: u32,
    /// The first retry's delay; doubling after each failure up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// The whole SMTP conversation's timeout.
    pub timeout: Duration,
    /// How long an attempt may stay unconcluded before it is presumed dead and its email
    /// marked `uncertain` (must exceed `timeout`).
    pub attempt_lease: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("tls_name", &self.tls_name)
            .field("rate_per_minute", &self.rate_per_minute)
            .field("domain_rates", &self.domain_rates)
            .field("max_attempts", &self.max_attempts)
            .field("retry_base", &self.retry_base)
            .field("retry_max", &self.retry_max)
            .field("timeout", &self.timeout)
            .field("attempt_lease", &self.attempt_lease)
            .finish()
    }
}

impl SmtpSettings {
    /// The limit for recipient `domain` (0 = none).
    pub fn rate_for(&self, domain: &str) -> u32 {
        self.domain_rates
            .get(&domain.to_ascii_lowercase())
            .copied()
            .unwrap_or(self.rate_per_minute)
    }
}

/// A problem with the mail settings, naming the setting and where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}: {key}: {why}")]
    Bad {
        source_name: String,
        key: String,
        why: String,
    },
    #[error("reading mail config {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("mail config {0}: {1}")]
    Toml(PathBuf, String),
    #[error("SMTP client: {0}")]
    Client(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    mail: FileMail,
    smtp: Option<FileSmtp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMail {
    from: Option<String>,
    unsubscribe_mailto: Option<String>,
    unsubscribe_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSmtp {
    host: Option<String>,
    port: Option<u16>,
    security: Option<Security>,
    username: Option<String>,
    password: Option<String>,
    /// The name of an environment variable holding the password (keeps it out of the file).
    password_env: Option<String>,
    ca_file: Option<PathBuf>,
    tls_name: Option<String>,
    rate_per_minute: Option<u32>,
    #[serde(default)]
    domain_rates: BTreeMap<String, u32>,
    max_attempts: Option<u32>,
    retry_seconds: Option<u64>,
    retry_max_seconds: Option<u64>,
    timeout_seconds: Option<u64>,
    attempt_lease_seconds: Option<u64>,
}

/// The default sender when none is configured (what `.eml` dry runs used before).
pub const DEFAULT_FROM: &str = "ar@argent.example";

fn parse_env<T: std::str::FromStr>(
    env: &dyn Fn(&str) -> Option<String>,
    key: &str,
) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env(key) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|e| ConfigError::Bad {
            source_name: "environment".into(),
            key: key.into(),
            why: format!("'{v}': {e}"),
        }),
    }
}

impl MailSettings {
    /// From the process environment, over the TOML file `ARGENT_MAIL_CONFIG` names (if
    /// any); see [`MailSettings::load_with`].
    pub fn from_env() -> Result<MailSettings, ConfigError> {
        let env = |k: &str| std::env::var(k).ok();
        let file = env("ARGENT_MAIL_CONFIG").filter(|s| !s.trim().is_empty());
        MailSettings::load_with(file.as_deref().map(Path::new), &env)
    }

    /// The settings: the TOML file `file` (tables `[mail]` and `[smtp]`, keys as in the
    /// README), then each environment variable that is set overrides its key:
    /// `ARGENT_MAIL_FROM`, `ARGENT_MAIL_UNSUBSCRIBE_MAILTO`, `ARGENT_MAIL_UNSUBSCRIBE_URL`,
    /// `ARGENT_SMTP_HOST` (SMTP is configured when a host is), `ARGENT_SMTP_PORT`,
    /// `ARGENT_SMTP_SECURITY` (starttls | tls | plain), `ARGENT_SMTP_USERNAME`,
    /// `ARGENT_SMTP_PASSWORD`, `ARGENT_SMTP_CA_FILE`, `ARGENT_SMTP_TLS_NAME`,
    /// `ARGENT_SMTP_RATE_PER_MINUTE`, `ARGENT_SMTP_MAX_ATTEMPTS`, `ARGENT_SMTP_RETRY_SECONDS`,
    /// `ARGENT_SMTP_RETRY_MAX_SECONDS`, `ARGENT_SMTP_TIMEOUT_SECONDS`,
    /// `ARGENT_SMTP_ATTEMPT_LEASE_SECONDS`.
    pub fn load_with(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<MailSettings, ConfigError> {
        let fc: FileConfig = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError::Read(p.to_path_buf(), e))?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::Toml(p.to_path_buf(), e.to_string()))?
            }
            None => FileConfig::default(),
        };
        let src = |key: &str| -> String {
            match file {
                Some(p) => format!("{} (or the environment) key {key}", p.display()),
                None => format!("environment {key}"),
            }
        };
        let bad = |key: &str, why: String| ConfigError::Bad {
            source_name: "mail settings".into(),
            key: src(key),
            why,
        };
        let from = parse_env::<String>(env, "ARGENT_MAIL_FROM")?
            .or(fc.mail.from)
            .unwrap_or_else(|| DEFAULT_FROM.to_string());
        if domain_of(&from).is_none() || from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(bad("from", format!("'{from}' is not an email address")));
        }
        let mailto = parse_env::<String>(env, "ARGENT_MAIL_UNSUBSCRIBE_MAILTO")?
            .or(fc.mail.unsubscribe_mailto)
            .unwrap_or_else(|| bare_address(&from));
        if mailto.parse::<Address>().is_err() {
            return Err(bad(
                "unsubscribe_mailto",
                format!("'{mailto}' is not an email address"),
            ));
        }
        let url =
            parse_env::<String>(env, "ARGENT_MAIL_UNSUBSCRIBE_URL")?.or(fc.mail.unsubscribe_url);
        if let Some(u) = &url
            && (!u.starts_with("https://") || u.contains(char::is_whitespace))
        {
            return Err(bad(
                "unsubscribe_url",
                format!("'{u}' must be an https:// URL without spaces (RFC 8058)"),
            ));
        }
        let unsubscribe = Unsubscribe { mailto, url };

        let fs = fc.smtp.unwrap_or_default();
        let host = parse_env::<String>(env, "ARGENT_SMTP_HOST")?.or(fs.host);
        let Some(host) = host else {
            return Ok(MailSettings {
                from,
                unsubscribe,
                smtp: None,
            });
        };
        let security = parse_env::<Security>(env, "ARGENT_SMTP_SECURITY")?
            .or(fs.security)
            .unwrap_or(Security::Starttls);
        let port = parse_env::<u16>(env, "ARGENT_SMTP_PORT")?
            .or(fs.port)
            .unwrap_or(match security {
                Security::Starttls => 587,
                Security::Tls => 465,
                Security::Plain => 25,
            });
        let password = match parse_env::<String>(env, "ARGENT_SMTP_PASSWORD")? {
            Some(p) => Some(p),
            None => match (&fs.password_env, fs.password) {
                (Some(var), _) => Some(env(var).ok_or_else(|| {
                    bad(
                        "smtp.password_env",
                        format!("environment variable {var} is not set"),
                    )
                })?),
                (None, p) => p,
            },
        };
        let secs = |v: Option<u64>, default: u64| Duration::from_secs(v.unwrap_or(default));
        let s = SmtpSettings {
            host,
            port,
            security,
            username: parse_env::<String>(env, "ARGENT_SMTP_USERNAME")?.or(fs.username),
            password,
            ca_file: parse_env::<PathBuf>(env, "ARGENT_SMTP_CA_FILE")?.or(fs.ca_file),
            tls_name: parse_env::<String>(env, "ARGENT_SMTP_TLS_NAME")?.or(fs.tls_name),
            rate_per_minute: parse_env(env, "ARGENT_SMTP_RATE_PER_MINUTE")?
                .or(fs.rate_per_minute)
                .unwrap_or(60),
            domain_rates: fs
                .domain_rates
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            max_attempts: parse_env(env, "ARGENT_SMTP_MAX_ATTEMPTS")?
                .or(fs.max_attempts)
                .unwrap_or(8),
            retry_base: secs(
                parse_env(env, "ARGENT_SMTP_RETRY_SECONDS")?.or(fs.retry_seconds),
                60,
            ),
            retry_max: secs(
                parse_env(env, "ARGENT_SMTP_RETRY_MAX_SECONDS")?.or(fs.retry_max_seconds),
                3600,
            ),
            timeout: secs(
                parse_env(env, "ARGENT_SMTP_TIMEOUT_SECONDS")?.or(fs.timeout_seconds),
                60,
            ),
            attempt_lease: secs(
                parse_env(env, "ARGENT_SMTP_ATTEMPT_LEASE_SECONDS")?.or(fs.attempt_lease_seconds),
                600,
            ),
        };
        if s.max_attempts == 0 {
            return Err(bad("smtp.max_attempts", "must be at least 1".into()));
        }
        if s.attempt_lease <= s.timeout {
            return Err(bad(
                "smtp.attempt_lease_seconds",
                format!(
                    "{} s must exceed the timeout ({} s), or a slow attempt would be taken for a dead one",
                    s.attempt_lease.as_secs(),
                    s.timeout.as_secs()
                ),
            ));
        }
        if s.username.is_some() != s.password.is_some() {
            return Err(bad("smtp.username/password", "give both or neither".into()));
        }
        Ok(MailSettings {
            from,
            unsubscribe,
            smtp: Some(s),
        })
    }

    /// The sender's domain (the right part of Message-IDs).
    pub fn domain(&self) -> String {
        domain_of(&self.from).unwrap_or_else(|| "argent.invalid".into())
    }
}

/// `a@b` out of `Name <a@b>`.
fn bare_address(s: &str) -> String {
    match (s.rfind('<'), s.rfind('>')) {
        (Some(l), Some(r)) if l < r => s[l + 1..r].trim().to_string(),
        _ => s.trim().to_string(),
    }
}

/// How sending one message ended, when it did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendFailure {
    /// Try again later: a 4xx answer, or no answer (connection, TLS, timeout).
    Temporary(String),
    /// The server refused the message for good (5xx).
    Permanent(String),
}

/// An SMTP client for one server.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    describe: String,
}

impl SmtpMailer {
    pub fn new(s: &SmtpSettings) -> Result<SmtpMailer, ConfigError> {
        let client = |e: String| ConfigError::Client(e);
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .timeout(Some(s.timeout));
        if s.security != Security::Plain {
            let name = s.tls_name.clone().unwrap_or_else(|| s.host.clone());
            let mut tp = TlsParameters::builder(name);
            if let Some(ca) = &s.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| client(format!("reading the CA file {}: {e}", ca.display())))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| client(format!("CA file {}: {e}", ca.display())))?;
                tp = tp.add_root_certificate(cert);
            } else {
                tp = tp.certificate_store(CertificateStore::Default);
            }
            let params = tp.build_rustls().map_err(|e| client(e.to_string()))?;
            b = b.tls(match s.security {
                Security::Starttls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            });
        }
        if let (Some(u), Some(p)) = (&s.username, &s.password) {
            b = b.credentials(Credentials::new(u.clone(), p.clone()));
        }
        let describe = format!(
            "smtp {}:{} ({})",
            s.host,
            s.port,
            match s.security {
                Security::Starttls => "starttls",
                Security::Tls => "tls",
                Security::Plain => "plain",
            }
        );
        Ok(SmtpMailer {
            transport: b.build(),
            describe,
        })
    }

    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Sends one built message (envelope from its From/To). On success, the server's
    /// answer (`250 ...`).
    pub async fn send(&self, msg: &lettre::Message) -> Result<String, SendFailure> {
        let raw = msg.formatted();
        match self.transport.send_raw(msg.envelope(), &raw).await {
            Ok(r) => Ok(format!(
                "{} {}",
                r.code(),
                r.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) => {
                let text = error_text(&e);
                if e.is_permanent() {
                    Err(SendFailure::Permanent(text))
                } else {
                    Err(SendFailure::Temporary(text))
                }
            }
        }
    }
}

fn error_text(e: &lettre::transport::smtp::Error) -> String {
    use std::error::Error as _;
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    // One line, bounded: it is stored and shown.
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.len() > 1000 {
        let mut cut = 1000;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &s[..cut])
    } else {
        s
    }
}

/// The delay before attempt `attempts + 1` after `attempts` failed ones (≥ 1): `base`
/// doubled per failure after the first, at most `max`.
pub fn backoff(attempts: i64, base: Duration, max: Duration) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    base.checked_mul(2u32.saturating_pow(doublings))
        .unwrap_or(max)
        .min(max)
}

/// Per-domain rate limit: given the start instants of the attempts to a domain in the
/// last minute (oldest first) and the limit a minute (0 = none), `None` when one more may
/// start at `now`, else the instant a slot frees.
pub fn rate_wait(
    starts: &[DateTime<Utc>],
    per_minute: u32,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if per_minute == 0 {
        return None;
    }
    let window = chrono::Duration::minutes(1);
    let recent: Vec<&DateTime<Utc>> = starts.iter().filter(|t| **t > now - window).collect();
    let limit = usize::try_from(per_minute).unwrap_or(usize::MAX);
    if recent.len() < limit {
        return None;
    }
    // The slot that frees first is that of the attempt `len - limit` from the oldest.
    recent.get(recent.len() - limit).map(|t| **t + window)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    #[test]
    fn settings_from_env_and_file() {
        let none = MailSettings::load_with(None, &env_of(&[])).unwrap();
        assert!(none.smtp.is_none());
        assert_eq!(none.from, DEFAULT_FROM);
        assert_eq!(none.unsubscribe.mailto, DEFAULT_FROM);

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("mail.toml");
        std::fs::write(
            &f,
            "[mail]\nfrom = \"AR <ar@acme.test>\"\nunsubscribe_url = \"https://acme.test/u/{message_id}\"\n\
             [smtp]\nhost = \"smtp.acme.test\"\nsecurity = \"tls\"\nusername = \"ar\"\npassword_env = \"PW\"\n\
             rate_per_minute = 5\ndomain_rates = { \"Big.Test\" = 100 }\n",
        )
        .unwrap();
        let s = MailSettings::load_with(
            Some(&f),
            &env_of(&[("PW", "secret"), ("ARGENT_SMTP_PORT", "2465")]),
        )
        .unwrap();
        assert_eq!(s.domain(), "acme.test");
        assert_eq!(s.unsubscribe.mailto, "ar@acme.test");
        let smtp = s.smtp.unwrap();
        assert_eq!((smtp.port, smtp.security), (2465, Security::Tls));
        assert_eq!(smtp.password.as_deref(), Some("secret"));
        assert!(
            !format!("{smtp:?}").contains("secret"),
            "Debug hides the password"
        );
        assert_eq!(
            (smtp.rate_for("big.test"), smtp.rate_for("x.test")),
            (100, 5)
        );

        let err = MailSettings::load_with(
            None,
            &env_of(&[("ARGENT_SMTP_HOST", "h"), ("ARGENT_SMTP_PORT", "x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ARGENT_SMTP_PORT"), "{err}");
        std::fs::write(&f, "[smtp]\nhots = \"typo\"\n").unwrap();
        let err = MailSettings::load_with(Some(&f), &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("mail.toml") && err.contains("hots"), "{err}");
        let err = MailSettings::load_with(
            None,
            &env_of(&[("ARGENT_MAIL_UNSUBSCRIBE_URL", "http://x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("https"), "{err}");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (b, m) = (Duration::from_secs(10), Duration::from_secs(100));
        let got: Vec<u64> = (1..=6).map(|n| backoff(n, b, m).as_secs()).collect();
        assert_eq!(got, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(backoff(i64::MAX, b, m), m);
    }

    #[test]
    fn rate_limit_window() {
        let t0: DateTime<Utc> = "2026-01-05T10:00:00Z".parse().unwrap();
        let s = |sec: i64| t0 + chrono::Duration::seconds(sec);
        let starts = vec![s(0), s(10), s(20)];
        assert_eq!(rate_wait(&starts, 0, s(21)), None);
        assert_eq!(rate_wait(&starts, 4, s(21)), None);
        assert_eq!(rate_wait(&starts, 3, s(21)), Some(s(60)));
        assert_eq!(rate_wait(&starts, 2, s(21)), Some(s(70)));
        assert_eq!(rate_wait(&starts, 3, s(61)), None);
    }
}
