//! The IMAP reader: new messages of one mailbox, exactly once.
//!
//! - **Where it stands.** The store keeps a checkpoint per mailbox: its UIDVALIDITY and the
//!   highest UID received. [`plan`] (pure) decides what to fetch from it and what SELECT
//!   said: nothing (the mailbox's UIDNEXT says no UID above the checkpoint exists), the UIDs
//!   after the checkpoint, or — when UIDVALIDITY changed, so the old UIDs mean nothing —
//!   everything from UID 1 (the store skips what it already has by Message-ID, so starting
//!   over duplicates nothing).
//! - **Bounded batches.** `UID SEARCH UID n:*` lists the UIDs to fetch ([`pending_uids`]
//!   drops the one `n:*` always matches when `n` is past the last UID); they are fetched
//!   [`ImapConfig::batch`] at a time (sizes first, then `BODY.PEEK[]`, which leaves the
//!   messages unread for the people sharing the mailbox), and each batch is handed to the
//!   [`MailSink`], which stores it and moves the checkpoint in one transaction. A message
//!   over [`ImapConfig::max_bytes`] is fetched as its header only and handed over as
//!   refused, so it is recorded for a person and never blocks the ones after it.
//! - **Continuously** ([`run`]): after each pass, IDLE where the server offers it (re-issued
//!   every [`ImapConfig::idle`], under the 29 minutes RFC 2177 allows), polling every
//!   [`ImapConfig::poll`] otherwise; a lost connection is retried with backoff
//!   ([`backoff`]), and a shutdown signal ends IDLE or the wait at once.
//! - **TLS** with rustls (ring): implicit TLS (port 993), STARTTLS (143), or plain text,
//!   which is refused for any host but the loopback (tests). The server is verified against
//!   the system's roots, or only against [`ImapConfig::ca_file`] when one is given.
//!
//! The password never appears in an error or a log line.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::TryStreamExt;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

use crate::raw::{DEFAULT_MAX_BYTES, RawFacts};

/// RFC 2177: a server may drop a client idle for 30 minutes; IDLE is re-issued before 29.
pub const MAX_IDLE: Duration = Duration::from_secs(28 * 60);

/// How the connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS, port 993).
    Implicit,
    /// Plain text upgraded with STARTTLS before logging in (port 143).
    StartTls,
    /// No TLS: only to a loopback address (tests).
    Plain,
}

impl std::str::FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "implicit" | "tls" | "imaps" => Ok(TlsMode::Implicit),
            "starttls" => Ok(TlsMode::StartTls),
            "plain" | "none" => Ok(TlsMode::Plain),
            other => Err(format!(
                "'{other}' is not a TLS mode (expected implicit, starttls or plain)"
            )),
        }
    }
}

/// Where and how to read mail.
#[derive(Clone)]
pub struct ImapConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub user: String,
    pub password: String,
    pub mailbox: String,
    /// Trust only this CA (PEM) instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Messages fetched per round trip (and stored per transaction).
    pub batch: usize,
    /// Between passes when the server has no IDLE.
    pub poll: Duration,
    /// How long one IDLE lasts before it is re-issued (at most [`MAX_IDLE`]).
    pub idle: Duration,
    /// Use IDLE when the server offers it.
    pub use_idle: bool,
    /// The largest message taken whole.
    pub max_bytes: usize,
    /// Connecting, TLS and logging in, each.
    pub connect_timeout: Duration,
    /// One pass (search, fetches, stores) at most.
    pub pass_timeout: Duration,
}

impl std::fmt::Debug for ImapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .field("mailbox", &self.mailbox)
            .field("ca_file", &self.ca_file)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

/// The environment variables [`ImapConfig::from_lookup`] reads (see the notes/README).
pub const ENV_VARS: &[&str] = &[
    "ARGENT_IMAP_HOST",
    "ARGENT_IMAP_PORT",
    "ARGENT_IMAP_TLS",
    "ARGENT_IMAP_USER",
    "ARGENT_IMAP_PASSWORD",
    "ARGENT_IMAP_PASSWORD_FILE",
    "ARGENT_IMAP_MAILBOX",
    "ARGENT_IMAP_CA_FILE",
    "ARGENT_IMAP_BATCH",
    "ARGENT_IMAP_POLL_SECONDS",
    "ARGENT_IMAP_IDLE_SECONDS",
    "ARGENT_IMAP_IDLE",
    "ARGENT_MAIL_MAX_BYTES",
];

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl ImapConfig {
    /// A configuration with the defaults for everything but the server and account.
    pub fn new(host: &str, port: u16, tls: TlsMode, user: &str, password: &str) -> ImapConfig {
        ImapConfig {
            host: host.to_string(),
            port,
            tls,
            user: user.to_string(),
            password: password.to_string(),
            mailbox: "INBOX".to_string(),
            ca_file: None,
            batch: 50,
            poll: Duration::from_secs(60),
            idle: Duration::from_secs(25 * 60),
            use_idle: true,
            max_bytes: DEFAULT_MAX_BYTES,
            connect_timeout: Duration::from_secs(30),
            pass_timeout: Duration::from_secs(15 * 60),
        }
    }

    /// From the process environment: `Ok(None)` when `ARGENT_IMAP_HOST` is unset (no
    /// mailbox configured).
    pub fn from_env() -> Result<Option<ImapConfig>, ImapError> {
        ImapConfig::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// From variables looked up by name ([`ENV_VARS`]); errors name the variable.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ImapConfig>, ImapError> {
        let Some(host) = get("ARGENT_IMAP_HOST") else {
            return Ok(None);
        };
        let bad = |var: &str, why: String| ImapError::Config(format!("{var}: {why}"));
        let tls: TlsMode = match get("ARGENT_IMAP_TLS") {
            Some(v) => v.parse().map_err(|e| bad("ARGENT_IMAP_TLS", e))?,
            None => TlsMode::Implicit,
        };
        let port = match get("ARGENT_IMAP_PORT") {
            Some(v) => v
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("ARGENT_IMAP_PORT", format!("'{v}' is not a port")))?,
            None if tls == TlsMode::Implicit => 993,
            None => 143,
        };
        let user = get("ARGENT_IMAP_USER")
            .ok_or_else(|| bad("ARGENT_IMAP_USER", "not set (the mailbox's login)".into()))?;
        let password = match (
            get("ARGENT_IMAP_PASSWORD"),
            get("ARGENT_IMAP_PASSWORD_FILE"),
        ) {
            (Some(p), _) => p,
            (None, Some(file)) => std::fs::read_to_string(&file)
                .map_err(|e| bad("ARGENT_IMAP_PASSWORD_FILE", format!("reading {file}: {e}")))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            (None, None) => {
                return Err(bad(
                    "ARGENT_IMAP_PASSWORD",
                    "not set (nor ARGENT_IMAP_PASSWORD_FILE)".into(),
                ));
            }
        };
        let mut c = ImapConfig::new(&host, port, tls, &user, &password);
        if let Some(m) = get("ARGENT_IMAP_MAILBOX") {
            c.mailbox = m;
        }
        c.ca_file = get("ARGENT_IMAP_CA_FILE").map(PathBuf::from);
        let num = |var: &str, lo: u64, hi: u64| -> Result<Option<u64>, ImapError> {
            match get(var) {
                None => Ok(None),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (lo..=hi).contains(n))
                    .map(Some)
                    .ok_or_else(|| bad(var, format!("'{v}' is not a number in {lo}..={hi}"))),
            }
        };
        if let Some(n) = num("ARGENT_IMAP_BATCH", 1, 1000)? {
            c.batch = usize::try_from(n).unwrap_or(50);
        }
        if let Some(n) = num("ARGENT_IMAP_POLL_SECONDS", 1, 86_400)? {
            c.poll = Duration::from_secs(n);
        }
        if let Some(n) = num("ARGENT_IMAP_IDLE_SECONDS", 1, MAX_IDLE.as_secs())? {
            c.idle = Duration::from_secs(n);
        }
        if let Some(v) = get("ARGENT_IMAP_IDLE") {
            c.use_idle = match v.as_str() {
                "1" | "true" | "on" | "yes" => true,
                "0" | "false" | "off" | "no" => false,
                _ => return Err(bad("ARGENT_IMAP_IDLE", format!("'{v}' is not on or off"))),
            };
        }
        if let Some(n) = num("ARGENT_MAIL_MAX_BYTES", 1024, 1 << 30)? {
            c.max_bytes = usize::try_from(n).unwrap_or(DEFAULT_MAX_BYTES);
        }
        c.check()?;
        Ok(Some(c))
    }

    /// Refuses what cannot work or is unsafe (plain text beyond the loopback).
    pub fn check(&self) -> Result<(), ImapError> {
        if self.host.trim().is_empty() {
            return Err(ImapError::Config("the IMAP host is empty".into()));
        }
        if self.tls == TlsMode::Plain && !is_loopback(&self.host) {
            return Err(ImapError::Config(format!(
                "plain-text IMAP would send the password in clear; it is only allowed to a \
                 loopback address, not {} (use implicit or starttls)",
                self.host
            )));
        }
        if self.mailbox.is_empty() || self.batch == 0 {
            return Err(ImapError::Config(
                "the mailbox name and batch size must not be empty".into(),
            ));
        }
        Ok(())
    }
}

/// Where the store says a mailbox was read up to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    pub uidvalidity: u32,
    pub last_uid: u32,
}

/// What SELECT says of the mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MailboxState {
    pub uidvalidity: u32,
    /// The UID the next message will get, when the server says (it should).
    pub uid_next: Option<u32>,
    pub exists: u32,
}

/// What to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Plan {
    /// Nothing can be new.
    UpToDate,
    /// The UIDs from `from_uid` on; `restart`: the UIDVALIDITY is not the checkpoint's
    /// (or there is no checkpoint), so this is the whole mailbox again.
    FetchFrom { from_uid: u32, restart: bool },
}

/// What to fetch, given the checkpoint and the mailbox as selected (see the module docs).
pub fn plan(checkpoint: Option<Checkpoint>, mailbox: &MailboxState) -> Plan {
    match checkpoint {
        Some(cp) if cp.uidvalidity == mailbox.uidvalidity => {
            let from_uid = cp.last_uid.saturating_add(1);
            let nothing_above = mailbox.uid_next.is_some_and(|next| next <= from_uid);
            if mailbox.exists == 0 || nothing_above {
                Plan::UpToDate
            } else {
                Plan::FetchFrom {
                    from_uid,
                    restart: false,
                }
            }
        }
        _ => Plan::FetchFrom {
            from_uid: 1,
            restart: true,
        },
    }
}

/// The UIDs to fetch, ascending, of those `UID SEARCH UID from:*` found (which always
/// include the highest UID, even below `from`).
pub fn pending_uids(found: impl IntoIterator<Item = u32>, from: u32) -> Vec<u32> {
    let set: BTreeSet<u32> = found.into_iter().filter(|u| *u >= from).collect();
    set.into_iter().collect()
}

/// An IMAP sequence set for ascending `uids`, runs collapsed: `[1,2,3,7,9,10]` is
/// `1:3,7,9:10`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.saturating_add(1) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// The wait before reconnecting after the `failures`-th failure in a row: 1 s doubling,
/// at most 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let secs = 1u64
        .checked_shl(failures.saturating_sub(1).min(16))
        .unwrap_or(u64::MAX);
    Duration::from_secs(secs.min(300))
}

/// One fetched message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub uid: u32,
    /// The whole message, or its header when it was refused.
    pub raw: Vec<u8>,
    pub facts: RawFacts,
    /// Why it was not taken whole (too large), if it was not.
    pub refused: Option<String>,
}

/// The messages of one batch, and the UID the checkpoint moves to with them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedBatch {
    pub mailbox: String,
    pub uidvalidity: u32,
    pub last_uid: u32,
    pub messages: Vec<Fetched>,
}

/// What the sink did with a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stored {
    pub stored: usize,
    pub duplicates: usize,
    pub refused: usize,
}

pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Where fetched mail goes: the store, which keeps the checkpoint and the messages
/// together (the CLI implements it over `argent_store::Store`; this crate does not know
/// the database).
pub trait MailSink: Send + Sync {
    fn checkpoint(
        &self,
        mailbox: &str,
    ) -> impl Future<Output = Result<Option<Checkpoint>, SinkError>> + Send;
    /// Stores the batch and moves the checkpoint to its `last_uid`, atomically; a message
    /// already stored is skipped, not an error.
    fn receive(
        &self,
        batch: FetchedBatch,
    ) -> impl Future<Output = Result<Stored, SinkError>> + Send;
}

/// What one pass over the mailbox did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FetchReport {
    pub mailbox: String,
    pub uidvalidity: u32,
    /// The UIDVALIDITY was new (or there was no checkpoint): read from UID 1.
    pub restarted: bool,
    /// Messages fetched from the server.
    pub fetched: usize,
    pub stored: usize,
    pub duplicates: usize,
    /// Stored as failed (over the size cap).
    pub refused: usize,
    pub batches: usize,
    /// The checkpoint after the pass.
    pub last_uid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("IMAP configuration: {0}")]
    Config(String),
    #[error("connecting to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("TLS with {host}: {why}")]
    Tls { host: String, why: String },
    #[error("IMAP server {addr}: {why}")]
    Greeting { addr: String, why: String },
    #[error("IMAP login as '{user}' refused: {why}")]
    Login { user: String, why: String },
    #[error("IMAP {what}: {source}")]
    Protocol {
        what: String,
        source: async_imap::error::Error,
    },
    #[error("storing fetched mail: {0}")]
    Sink(SinkError),
    #[error("timed out {0}")]
    Timeout(String),
}

fn proto(what: impl Into<String>) -> impl FnOnce(async_imap::error::Error) -> ImapError {
    let what = what.into();
    move |source| ImapError::Protocol { what, source }
}

async fn within<T>(
    d: Duration,
    what: &str,
    f: impl Future<Output = Result<T, ImapError>>,
) -> Result<T, ImapError> {
    tokio::time::timeout(d, f)
        .await
        .map_err(|_| ImapError::Timeout(format!("{what} after {d:?}")))?
}

/// The connection: plain TCP or TLS over it.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Plain(_) => "Conn::Plain",
            Conn::Tls(_) => "Conn::Tls",
        })
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

pub type Session = async_imap::Session<Conn>;

fn tls_connector(cfg: &ImapConfig) -> Result<TlsConnector, ImapError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let tls_err = |why: String| ImapError::Tls {
        host: cfg.host.clone(),
        why,
    };
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| tls_err(format!("reading CA file {}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert.map_err(|e| tls_err(format!("CA file {}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| tls_err(format!("CA file {}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(tls_err(format!(
                    "CA file {} holds no certificate",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system certificate rustls cannot use is skipped, as browsers do.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(tls_err(
                    "no system root certificates found (set ARGENT_IMAP_CA_FILE)".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

async fn start_tls(cfg: &ImapConfig, tcp: TcpStream) -> Result<Conn, ImapError> {
    let connector = tls_connector(cfg)?;
    let name =
        rustls_pki_types::ServerName::try_from(cfg.host.clone()).map_err(|e| ImapError::Tls {
            host: cfg.host.clone(),
            why: format!("not a server name: {e}"),
        })?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| ImapError::Tls {
            host: cfg.host.clone(),
            why: e.to_string(),
        })?;
    Ok(Conn::Tls(Box::new(tls)))
}

async fn greeting(addr: &str, client: &mut async_imap::Client<Conn>) -> Result<(), ImapError> {
    use async_imap::imap_proto::{Response, Status};
    let greet = client
        .read_response()
        .await
        .map_err(|e| ImapError::Greeting {
            addr: addr.to_string(),
            why: e.to_string(),
        })?
        .ok_or_else(|| ImapError::Greeting {
            addr: addr.to_string(),
            why: "closed the connection before greeting".into(),
        })?;
    match greet.parsed() {
        Response::Data {
            status: Status::Ok, ..
        } => Ok(()),
        other => Err(ImapError::Greeting {
            addr: addr.to_string(),
            why: format!("unexpected greeting {other:?}"),
        }),
    }
}

/// Connects, protects the connection as configured, and logs in.
pub async fn connect(cfg: &ImapConfig) -> Result<Session, ImapError> {
    cfg.check()?;
    let addr = format!("{}:{}", cfg.host, cfg.port);
    within(
        cfg.connect_timeout,
        &format!("connecting to {addr}"),
        async {
            let tcp = TcpStream::connect((cfg.host.as_str(), cfg.port))
                .await
                .map_err(|source| ImapError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            let client = match cfg.tls {
                TlsMode::Implicit => {
                    let mut c = async_imap::Client::new(start_tls(cfg, tcp).await?);
                    greeting(&addr, &mut c).await?;
                    c
                }
                TlsMode::Plain => {
                    let mut c = async_imap::Client::new(Conn::Plain(tcp));
                    greeting(&addr, &mut c).await?;
                    c
                }
                TlsMode::StartTls => {
                    let mut c = async_imap::Client::new(Conn::Plain(tcp));
                    greeting(&addr, &mut c).await?;
                    c.run_command_and_check_ok("STARTTLS", None)
                        .await
                        .map_err(|e| ImapError::Tls {
                            host: cfg.host.clone(),
                            why: format!("STARTTLS refused: {e}"),
                        })?;
                    let Conn::Plain(tcp) = c.into_inner() else {
                        return Err(ImapError::Tls {
                            host: cfg.host.clone(),
                            why: "STARTTLS on a connection that is already TLS".into(),
                        });
                    };
                    async_imap::Client::new(start_tls(cfg, tcp).await?)
                }
            };
            client
                .login(&cfg.user, &cfg.password)
                .await
                .map_err(|(e, _)| ImapError::Login {
                    user: cfg.user.clone(),
                    why: e.to_string(),
                })
        },
    )
    .await
}

fn drain_unsolicited(session: &mut Session) {
    while session.unsolicited_responses.try_recv().is_ok() {}
}

/// One pass: SELECT the mailbox, plan from the checkpoint, fetch and hand over what is
/// new in batches. The checkpoint moves with each batch, so a pass cut off anywhere
/// leaves the store consistent and the next pass goes on from the last stored batch.
pub async fn fetch_new<S: MailSink>(
    session: &mut Session,
    cfg: &ImapConfig,
    sink: &S,
) -> Result<FetchReport, ImapError> {
    let mb = session
        .select(&cfg.mailbox)
        .await
        .map_err(proto(format!("SELECT {}", cfg.mailbox)))?;
    drain_unsolicited(session);
    let uidvalidity = mb.uid_validity.ok_or_else(|| ImapError::Protocol {
        what: format!("SELECT {}", cfg.mailbox),
        source: async_imap::error::Error::Bad("the server did not report UIDVALIDITY".into()),
    })?;
    let state = MailboxState {
        uidvalidity,
        uid_next: mb.uid_next,
        exists: mb.exists,
    };
    let checkpoint = sink
        .checkpoint(&cfg.mailbox)
        .await
        .map_err(ImapError::Sink)?;
    let mut report = FetchReport {
        mailbox: cfg.mailbox.clone(),
        uidvalidity,
        last_uid: checkpoint
            .filter(|c| c.uidvalidity == uidvalidity)
            .map_or(0, |c| c.last_uid),
        ..FetchReport::default()
    };
    let (from_uid, restart) = match plan(checkpoint, &state) {
        Plan::UpToDate => return Ok(report),
        Plan::FetchFrom { from_uid, restart } => (from_uid, restart),
    };
    report.restarted = restart;
    if restart && checkpoint.is_some() {
        tracing::warn!(
            mailbox = %cfg.mailbox,
            old = checkpoint.map(|c| c.uidvalidity),
            new = uidvalidity,
            "UIDVALIDITY changed: reading the mailbox from UID 1 again (known messages are skipped by Message-ID)"
        );
    }
    let found = session
        .uid_search(format!("UID {from_uid}:*"))
        .await
        .map_err(proto("UID SEARCH"))?;
    drain_unsolicited(session);
    let uids = pending_uids(found, from_uid);
    if uids.is_empty() {
        if restart {
            // Record the new UIDVALIDITY, so the next pass does not start over again.
            let empty = FetchedBatch {
                mailbox: cfg.mailbox.clone(),
                uidvalidity,
                last_uid: 0,
                messages: Vec::new(),
            };
            sink.receive(empty).await.map_err(ImapError::Sink)?;
        }
        return Ok(report);
    }
    for chunk in uids.chunks(cfg.batch.max(1)) {
        let batch = fetch_batch(session, cfg, uidvalidity, chunk).await?;
        report.fetched += batch.messages.len();
        report.batches += 1;
        report.last_uid = batch.last_uid;
        let stored = sink.receive(batch).await.map_err(ImapError::Sink)?;
        report.stored += stored.stored;
        report.duplicates += stored.duplicates;
        report.refused += stored.refused;
    }
    Ok(report)
}

async fn fetch_batch(
    session: &mut Session,
    cfg: &ImapConfig,
    uidvalidity: u32,
    chunk: &[u32],
) -> Result<FetchedBatch, ImapError> {
    let set = uid_set(chunk);
    let mut sizes: HashMap<u32, u32> = HashMap::new();
    {
        let mut stream = session
            .uid_fetch(&set, "(UID RFC822.SIZE)")
            .await
            .map_err(proto("UID FETCH (RFC822.SIZE)"))?;
        while let Some(f) = stream.try_next().await.map_err(proto("UID FETCH"))? {
            if let (Some(uid), Some(size)) = (f.uid, f.size) {
                sizes.insert(uid, size);
            }
        }
    }
    let max = u32::try_from(cfg.max_bytes).unwrap_or(u32::MAX);
    let mut whole: Vec<u32> = Vec::new();
    let mut big: Vec<u32> = Vec::new();
    for uid in chunk {
        match sizes.get(uid) {
            // Gone since the search (expunged): nothing to fetch.
            None => {}
            Some(size) if *size > max => big.push(*uid),
            Some(_) => whole.push(*uid),
        }
    }
    let mut messages: Vec<Fetched> = Vec::new();
    for (uids, query, is_whole) in [
        (&whole, "(UID BODY.PEEK[])", true),
        (&big, "(UID BODY.PEEK[HEADER])", false),
    ] {
        if uids.is_empty() {
            continue;
        }
        let mut stream = session
            .uid_fetch(uid_set(uids), query)
            .await
            .map_err(proto(format!("UID FETCH {query}")))?;
        while let Some(f) = stream.try_next().await.map_err(proto("UID FETCH"))? {
            let Some(uid) = f.uid.filter(|u| uids.contains(u)) else {
                continue; // an unsolicited FETCH (flags changed) of another message
            };
            let data = if is_whole { f.body() } else { f.header() };
            let Some(data) = data else { continue };
            let raw = data.to_vec();
            let facts = RawFacts::of(&raw);
            let refused = (!is_whole).then(|| {
                format!(
                    "{} bytes, over the {}-byte limit (ARGENT_MAIL_MAX_BYTES); only its header \
                     was fetched; it is still in mailbox {} as UID {uid} (UIDVALIDITY {uidvalidity})",
                    sizes.get(&uid).copied().unwrap_or(0),
                    cfg.max_bytes,
                    cfg.mailbox
                )
            });
            messages.push(Fetched {
                uid,
                raw,
                facts,
                refused,
            });
        }
    }
    drain_unsolicited(session);
    messages.sort_by_key(|m| m.uid);
    // An empty header or body cannot be stored; keep it as refused with a stand-in.
    for m in &mut messages {
        if m.raw.is_empty() {
            m.raw = b"\r\n".to_vec();
            m.facts = RawFacts::of(&m.raw);
            m.facts.dedupe_key = format!("imap:{}:{uidvalidity}:{}", cfg.mailbox, m.uid);
            m.refused = Some("the server returned an empty message".into());
        }
    }
    Ok(FetchedBatch {
        mailbox: cfg.mailbox.clone(),
        uidvalidity,
        last_uid: chunk.iter().copied().max().unwrap_or(0),
        messages,
    })
}

/// `argent mail fetch`: connect, one pass, log out.
pub async fn fetch_once<S: MailSink>(cfg: &ImapConfig, sink: &S) -> Result<FetchReport, ImapError> {
    let mut session = connect(cfg).await?;
    let report = within(
        cfg.pass_timeout,
        "fetching",
        fetch_new(&mut session, cfg, sink),
    )
    .await?;
    // The messages are stored; a failed LOGOUT changes nothing.
    let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
    Ok(report)
}

/// Reads the mailbox until `shutdown` turns true: a pass, then IDLE (or a poll wait) until
/// the server reports a change, then another pass; `after_pass` runs after each pass that
/// stored something (the processing hook). A failure is logged and the connection is made
/// again after [`backoff`].
pub async fn run<S, F, Fut>(
    cfg: ImapConfig,
    sink: S,
    after_pass: F,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    S: MailSink,
    F: Fn(FetchReport) -> Fut + Send + Sync,
    Fut: Future<Output = ()> + Send,
{
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match session_loop(&cfg, &sink, &after_pass, &mut shutdown, &mut failures).await {
            Ok(()) => return,
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = backoff(failures);
                tracing::warn!(error = %e, mailbox = %cfg.mailbox, retry_in = ?wait, "IMAP reader failed");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped(&mut shutdown) => return,
                }
            }
        }
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; it is dropped here, not held across an
    // await of the caller.
    let _ = shutdown.wait_for(|s| *s).await.map(|_| ());
}

/// `Ok(())`: shutdown asked for.
async fn session_loop<S, F, Fut>(
    cfg: &ImapConfig,
    sink: &S,
    after_pass: &F,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
    failures: &mut u32,
) -> Result<(), ImapError>
where
    S: MailSink,
    F: Fn(FetchReport) -> Fut + Send + Sync,
    Fut: Future<Output = ()> + Send,
{
    let mut session = connect(cfg).await?;
    let idle = cfg.use_idle
        && session
            .capabilities()
            .await
            .map_err(proto("CAPABILITY"))?
            .has_str("IDLE");
    tracing::info!(host = %cfg.host, mailbox = %cfg.mailbox, idle, "IMAP reader connected");
    loop {
        let report = within(
            cfg.pass_timeout,
            "fetching",
            fetch_new(&mut session, cfg, sink),
        )
        .await?;
        *failures = 0;
        if report.stored > 0 {
            tracing::info!(
                stored = report.stored,
                duplicates = report.duplicates,
                refused = report.refused,
                "mail received"
            );
            after_pass(report).await;
        }
        if idle {
            let mut handle = session.idle();
            handle.init().await.map_err(proto("IDLE"))?;
            let stop = {
                let (wait, _interrupt) = handle.wait_with_timeout(cfg.idle.min(MAX_IDLE));
                tokio::select! {
                    r = wait => { r.map_err(proto("IDLE"))?; false }
                    _ = stopped(shutdown) => true,
                }
            };
            session = within(cfg.connect_timeout, "ending IDLE", async {
                handle.done().await.map_err(proto("DONE"))
            })
            .await?;
            if stop {
                let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
                return Ok(());
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep(cfg.poll) => {}
                _ = stopped(shutdown) => {
                    let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(uidvalidity: u32, uid_next: Option<u32>, exists: u32) -> MailboxState {
        MailboxState {
            uidvalidity,
            uid_next,
            exists,
        }
    }

    fn cp(uidvalidity: u32, last_uid: u32) -> Option<Checkpoint> {
        Some(Checkpoint {
            uidvalidity,
            last_uid,
        })
    }

    #[test]
    fn no_checkpoint_reads_everything() {
        assert_eq!(
            plan(None, &state(5, Some(10), 9)),
            Plan::FetchFrom {
                from_uid: 1,
                restart: true
            }
        );
        // Even an empty mailbox: the UIDVALIDITY gets recorded.
        assert_eq!(
            plan(None, &state(5, Some(1), 0)),
            Plan::FetchFrom {
                from_uid: 1,
                restart: true
            }
        );
    }

    #[test]
    fn same_uidvalidity_goes_on_after_the_checkpoint() {
        assert_eq!(
            plan(cp(5, 7), &state(5, Some(10), 9)),
            Plan::FetchFrom {
                from_uid: 8,
                restart: false
            }
        );
        // UIDNEXT unknown: search to find out.
        assert_eq!(
            plan(cp(5, 7), &state(5, None, 9)),
            Plan::FetchFrom {
                from_uid: 8,
                restart: false
            }
        );
    }

    #[test]
    fn nothing_new_when_uidnext_says_so_or_the_mailbox_is_empty() {
        assert_eq!(plan(cp(5, 9), &state(5, Some(10), 9)), Plan::UpToDate);
        assert_eq!(plan(cp(5, 9), &state(5, Some(8), 3)), Plan::UpToDate);
        assert_eq!(plan(cp(5, 9), &state(5, Some(20), 0)), Plan::UpToDate);
        // At the very top of the UID space: nothing can follow.
        assert_eq!(
            plan(cp(5, u32::MAX), &state(5, None, 1)),
            Plan::FetchFrom {
                from_uid: u32::MAX,
                restart: false
            }
        );
    }

    #[test]
    fn a_new_uidvalidity_starts_over() {
        assert_eq!(
            plan(cp(5, 100), &state(6, Some(3), 2)),
            Plan::FetchFrom {
                from_uid: 1,
                restart: true
            }
        );
    }

    #[test]
    fn pending_uids_drop_the_star_match_below_from() {
        // `UID 11:*` on a mailbox whose last UID is 10 matches 10.
        assert!(pending_uids([10], 11).is_empty());
        assert_eq!(pending_uids([14, 11, 12, 11], 11), vec![11, 12, 14]);
    }

    #[test]
    fn uid_sets_collapse_runs() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(
            uid_set(&[u32::MAX - 1, u32::MAX]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(9), Duration::from_secs(256));
        assert_eq!(backoff(10), Duration::from_secs(300));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn config_from_the_environment() {
        assert!(ImapConfig::from_lookup(env(&[])).unwrap().is_none());
        let c = ImapConfig::from_lookup(env(&[
            ("ARGENT_IMAP_HOST", "imap.example.com"),
            ("ARGENT_IMAP_USER", "ar@example.com"),
            ("ARGENT_IMAP_PASSWORD", "s3cret"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (c.port, c.tls, c.mailbox.as_str()),
            (993, TlsMode::Implicit, "INBOX")
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        let c = ImapConfig::from_lookup(env(&[
            ("ARGENT_IMAP_HOST", "imap.example.com"),
            ("ARGENT_IMAP_TLS", "starttls"),
            ("ARGENT_IMAP_USER", "u"),
            ("ARGENT_IMAP_PASSWORD", "p"),
            ("ARGENT_IMAP_BATCH", "7"),
            ("ARGENT_IMAP_IDLE", "off"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((c.port, c.batch, c.use_idle), (143, 7, false));
    }

    #[test]
    fn config_errors_name_the_variable() {
        let base = [
            ("ARGENT_IMAP_HOST", "imap.example.com"),
            ("ARGENT_IMAP_USER", "u"),
            ("ARGENT_IMAP_PASSWORD", "p"),
        ];
        for (var, value) in [
            ("ARGENT_IMAP_PORT", "0"),
            ("ARGENT_IMAP_PORT", "http"),
            ("ARGENT_IMAP_TLS", "ssl3"),
            ("ARGENT_IMAP_BATCH", "0"),
            ("ARGENT_IMAP_IDLE_SECONDS", "3600"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push((var, value));
            let err = ImapConfig::from_lookup(env(&pairs))
                .unwrap_err()
                .to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
        let err = ImapConfig::from_lookup(env(&base[..2]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ARGENT_IMAP_PASSWORD"), "{err}");
        // Plain text only to the loopback.
        let mut pairs = base.to_vec();
        pairs.push(("ARGENT_IMAP_TLS", "plain"));
        let err = ImapConfig::from_lookup(env(&pairs))
            .unwrap_err()
            .to_string();
        assert!(err.contains("loopback"), "{err}");
        pairs[0] = ("ARGENT_IMAP_HOST", "127.0.0.1");
        assert!(ImapConfig::from_lookup(env(&pairs)).unwrap().is_some());
    }
}
