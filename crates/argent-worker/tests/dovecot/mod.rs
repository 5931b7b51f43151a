//! A real IMAP server for tests: Dovecot (Debian's `dovecot-imapd`), started by the test
//! on 127.0.0.1 with a configuration written into a temp dir (its own base and state
//! dirs, a passwd-file with one user, Maildir storage in the temp dir, a self-signed
//! certificate made with `openssl` for IMAPS and STARTTLS). Nothing system-wide is read or
//! touched. Missing Dovecot: the test is skipped with a notice, unless
//! `ARGENT_MAIL_REQUIRED` is set (CI), when it fails.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use argent_mail::imap::{ImapConfig, Session, TlsMode};
use argent_store::{AuditFilter, Store};

pub const USER: &str = "ar@example.com";
pub const PASSWORD: &str = "collect-pw";

pub struct Dovecot {
    pub dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
    pub tls_port: u16,
    pub ca: PathBuf,
}

fn find_binary() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = vec!["/usr/sbin".into(), "/usr/local/sbin".into()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join("dovecot"))
        .find(|p| p.is_file())
}

fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// (name, uid, gid) of a passwd entry, by name or uid.
fn passwd_entry(by: impl Fn(&str, u32) -> bool) -> Option<(String, u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let (name, uid, gid) = (f.first()?, f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?);
        by(name, uid).then(|| (name.to_string(), uid, gid))
    })
}

fn required() -> bool {
    std::env::var_os("ARGENT_MAIL_REQUIRED").is_some_and(|v| !v.is_empty())
}

impl Dovecot {
    /// Starts a server, or `None` (after a notice) when Dovecot is not installed and not
    /// required.
    pub fn start() -> Option<Dovecot> {
        let Some(bin) = find_binary() else {
            assert!(
                !required(),
                "ARGENT_MAIL_REQUIRED is set but dovecot is not installed (apt-get install dovecot-imapd)"
            );
            eprintln!(
                "SKIPPED: dovecot is not installed (apt-get install dovecot-imapd); set ARGENT_MAIL_REQUIRED=1 to make this a failure"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // The login and mail processes run as other users when the test runs as root.
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        let me = std::fs::metadata("/proc/self").unwrap().uid();
        let (users, mail_uid, mail_gid) = if me == 0 {
            // Dovecot refuses to run mail processes as root: they run as its own user.
            let (_, uid, gid) = passwd_entry(|n, _| n == "dovecot").expect("a dovecot user");
            (String::new(), uid, gid)
        } else {
            let (name, uid, gid) = passwd_entry(|_, u| u == me).expect("my passwd entry");
            (
                format!("default_login_user = {name}\ndefault_internal_user = {name}\n"),
                uid,
                gid,
            )
        };
        std::os::unix::fs::chown(d.join("mail"), Some(mail_uid), Some(mail_gid)).unwrap();
        std::fs::write(d.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
        // A test CA and a server certificate it signs (rustls refuses a self-signed CA
        // certificate used as the server's own).
        let ca = d.join("ca.pem");
        std::fs::write(
            d.join("leaf.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let steps: Vec<Vec<String>> = vec![
            [
                &["req", "-x509"][..],
                &ec[..],
                &[
                    "-days",
                    "2",
                    "-subj",
                    "/CN=argent test CA",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                ][..],
            ]
            .concat(),
            [
                &["req"][..],
                &ec[..],
                &[
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    "key.pem",
                    "-out",
                    "leaf.csr",
                ][..],
            ]
            .concat(),
            vec![
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
                "-out",
                "cert.pem",
            ],
        ]
        .into_iter()
        .map(|v| v.into_iter().map(String::from).collect())
        .collect();
        for args in steps {
            let out = Command::new("openssl")
                .args(&args)
                .current_dir(d)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .expect("openssl (apt-get install openssl) for the test certificates");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let (port, tls_port) = free_ports();
        let p = |s: &str| d.join(s).display().to_string();
        let conf = format!(
            "base_dir = {run}\nstate_dir = {state}\nlog_path = {log}\n\
             protocols = imap\nlisten = 127.0.0.1\n{users}\
             ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain login\n\
             mail_location = maildir:{mail}/%u\nfirst_valid_uid = {mail_uid}\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {passwd}\n}}\n\
             userdb {{\n  driver = static\n  args = uid={mail_uid} gid={mail_gid} home={mail}/%u\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n\
               inet_listener imaps {{\n    address = 127.0.0.1\n    port = {tls_port}\n    ssl = yes\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n",
            run = p("run"),
            state = p("state"),
            log = p("dovecot.log"),
            cert = p("cert.pem"),
            key = p("key.pem"),
            mail = p("mail"),
            passwd = p("passwd"),
        );
        let conf_path = d.join("dovecot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf_path)
            .arg("-F")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dovecot");
        let server = Dovecot {
            dir,
            child,
            port,
            tls_port,
            ca,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err()
        {
            assert!(
                Instant::now() < deadline,
                "dovecot did not listen on 127.0.0.1:{port}: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// A reader configuration for `mailbox` over plain text (loopback).
    pub fn config(&self, mailbox: &str) -> ImapConfig {
        let mut c = ImapConfig::new("127.0.0.1", self.port, TlsMode::Plain, USER, PASSWORD);
        c.mailbox = mailbox.to_string();
        c
    }

    /// The same over TLS (`Implicit` on the IMAPS port, `StartTls` on the plain one),
    /// trusting the test certificate.
    pub fn tls_config(&self, mailbox: &str, tls: TlsMode) -> ImapConfig {
        let port = if tls == TlsMode::Implicit {
            self.tls_port
        } else {
            self.port
        };
        let mut c = ImapConfig::new("127.0.0.1", port, tls, USER, PASSWORD);
        c.mailbox = mailbox.to_string();
        c.ca_file = Some(self.ca.clone());
        c
    }

    /// A session for delivering test mail (IMAP APPEND) and managing mailboxes.
    pub async fn session(&self) -> Session {
        let mut s = match argent_mail::imap::connect(&self.config("INBOX")).await {
            Ok(s) => s,
            Err(e) => panic!("connecting: {e}\ndovecot log:\n{}", self.log()),
        };
        if let Err(e) = s.noop().await {
            panic!("NOOP after login: {e}\ndovecot log:\n{}", self.log());
        }
        s
    }

    /// Creates `mailbox` (panics with the server's log if it cannot).
    pub async fn create(&self, session: &mut Session, mailbox: &str) {
        if let Err(e) = session.create(mailbox).await {
            panic!("CREATE {mailbox}: {e}\ndovecot log:\n{}", self.log());
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its login, auth and mail processes too.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dovecot {
    /// Appends `raw` to `mailbox` (over IMAP, as a mail delivery would leave it).
    pub async fn append(&self, session: &mut Session, mailbox: &str, raw: &[u8]) {
        if let Err(e) = session.append(mailbox, None, None, raw).await {
            panic!("APPEND to {mailbox}: {e}\ndovecot log:\n{}", self.log());
        }
    }
}

/// A test message; `id` `None` makes one without a Message-ID.
pub fn message(id: Option<&str>, subject: &str, body: &str) -> Vec<u8> {
    let mut m = String::from("From: Debtor <debtor@example.net>\r\nTo: ar@example.com\r\n");
    if let Some(id) = id {
        m.push_str(&format!("Message-ID: <{id}>\r\n"));
    }
    m.push_str(&format!(
        "Subject: {subject}\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\n{body}\r\n"
    ));
    m.into_bytes()
}

/// How many `mail_received` events the audit trail holds.
pub async fn received_events(store: &Store) -> usize {
    store
        .audit_events(&AuditFilter {
            kind: Some("mail_received".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}
