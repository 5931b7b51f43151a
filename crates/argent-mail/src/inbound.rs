//! Inbound mail: parsing and classification (pure: no I/O, no clock).
//!
//! [`parse`] turns a raw RFC 822 message into a [`ParsedMail`]: the threading headers
//! (Message-ID, In-Reply-To, References, without angle brackets), the sender (address
//! lowercased) and recipients, the subject and date, the text (HTML-only mail turned into
//! text by mail-parser; charsets, quoted-printable and base64 decoded by it) split into the
//! new text, the quoted history and a signature, the attachments as metadata only (name,
//! content type, size: their content is never kept), the `Authentication-Results`
//! verdicts, and what kind of message it is ([`MailKind`]): written by a person, an
//! auto-reply (out-of-office with the return date when the text states one), or a bounce.
//!
//! Decisions (conservative where a wrong guess costs more than no guess):
//! - **Quoted history** starts at the first line that is a reply header ("On … wrote:",
//!   "Am … schrieb …:", "Le … a écrit :", "El … escribió:", possibly wrapped over two
//!   lines), a `>` line, an Outlook separator ("-----Original Message-----" and its German,
//!   French and Spanish forms, a line of underscores) or an Outlook header block (a
//!   `From:`/`Von:`/`De:` line followed within four lines by `Sent:`/`Gesendet:`/
//!   `Envoyé :`/`Enviado:`/`Date:`). Everything from there on is quoted.
//! - **Signature**: only the standard delimiter line (`-- `) cuts one off, and only when
//!   at most [`MAX_SIGNATURE_LINES`] non-empty lines follow it. Sign-offs ("Thanks,",
//!   "Regards,") never cut: what follows them may be the message.
//! - **Auto-replies**: RFC 3834 `Auto-Submitted` other than `no`, `X-Autoreply`,
//!   `X-Autorespond`, `Precedence: bulk|junk|list`, or a typical out-of-office subject
//!   (English, German, French, Spanish). The out-of-office body phrases count only for a
//!   message already recognised as automatic (by header or subject): a person writing
//!   "sorry, I was out of the office" is a person.
//! - **Return date**: the latest date stated in an out-of-office text, if it is on or
//!   after the message's date and at most [`MAX_RETURN_DAYS`] days after it. Dates
//!   without a year take the message's year (the next one if that is already past).
//!   Numeric `a/b/yyyy` dates where both parts could be a month are ambiguous and not used.
//!   No date, or no message date to judge by: no return date.
//! - **Bounces**: a `multipart/report; report-type=delivery-status` (the failed recipient
//!   from `Final-Recipient`, the `Status`, hard for 5.x.x, soft for 4.x.x), or a message
//!   from a mailer-daemon/postmaster with a bounce subject (the first enhanced status code
//!   and the first address in its text after it).
//! - **Authentication-Results**: only the topmost header is read (the one our own
//!   receiving server added; the ones below it came with the message and may be forged).

use std::borrow::Cow;
use std::sync::LazyLock;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// The largest message [`parse`] accepts (10 MB, the issue's default cap).
pub const DEFAULT_MAX_BYTES: usize = 10 * 1024 * 1024;
/// The most non-empty lines after a `-- ` delimiter that are still taken as a signature.
pub const MAX_SIGNATURE_LINES: usize = 8;
/// The furthest a return date may lie after the message's date, in days.
pub const MAX_RETURN_DAYS: i64 = 366;
/// The most MIME parts a message may have.
pub const MAX_PARTS: usize = 500;

/// Why a raw message could not be parsed. Each names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is {size} bytes, more than the {max} allowed")]
    TooLarge { size: usize, max: usize },
    #[error("not an RFC 822 message: {0}")]
    NotAMessage(String),
    #[error("the message has {0} MIME parts, more than the {MAX_PARTS} allowed")]
    TooManyParts(usize),
}

/// A sender or recipient: the address lowercased, the display name if any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An attachment, described; its content is never kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: Option<String>,
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: usize,
}

/// One `Authentication-Results` method's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    TempError,
    PermError,
    Policy,
}

impl Verdict {
    fn from_token(t: &str) -> Option<Verdict> {
        Some(match t.to_ascii_lowercase().as_str() {
            "pass" => Verdict::Pass,
            "fail" | "hardfail" => Verdict::Fail,
            "softfail" => Verdict::SoftFail,
            "neutral" => Verdict::Neutral,
            "none" => Verdict::None,
            "temperror" => Verdict::TempError,
            "permerror" => Verdict::PermError,
            "policy" => Verdict::Policy,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::SoftFail => "softfail",
            Verdict::Neutral => "neutral",
            Verdict::None => "none",
            Verdict::TempError => "temperror",
            Verdict::PermError => "permerror",
            Verdict::Policy => "policy",
        }
    }

    /// A result that says the message is not what it claims to be.
    pub fn is_failure(self) -> bool {
        matches!(self, Verdict::Fail | Verdict::SoftFail | Verdict::PermError)
    }
}

/// The SPF, DKIM and DMARC results of the topmost `Authentication-Results` header.
/// `None`: the header does not report that method (or there is no header).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResults {
    pub spf: Option<Verdict>,
    pub dkim: Option<Verdict>,
    pub dmarc: Option<Verdict>,
}

impl AuthResults {
    /// Whether any method failed: the sender may be forged.
    pub fn failing(&self) -> bool {
        [self.spf, self.dkim, self.dmarc]
            .into_iter()
            .flatten()
            .any(Verdict::is_failure)
    }

    /// `spf=pass dkim=none dmarc=fail`, methods not reported left out; `none reported`
    /// when there is nothing.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            ("spf", self.spf),
            ("dkim", self.dkim),
            ("dmarc", self.dmarc),
        ]
        .into_iter()
        .filter_map(|(m, v)| v.map(|v| format!("{m}={}", v.as_str())))
        .collect();
        if parts.is_empty() {
            "none reported".into()
        } else {
            parts.join(" ")
        }
    }
}

/// What kind of message it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MailKind {
    /// Written by a person (as far as can be told without a model).
    Human,
    /// Sent automatically (RFC 3834 and the common non-standard markers).
    AutoReply {
        out_of_office: bool,
        /// The date the writer says they are back, when the text states one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        return_date: Option<NaiveDate>,
    },
    /// A delivery failure report.
    Bounce {
        /// The address that could not be reached (lowercased), when stated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recipient: Option<String>,
        /// The enhanced status code (`5.1.1`), when stated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
        /// Permanent (5.x.x); otherwise temporary (4.x.x) or unknown.
        hard: bool,
        /// The Message-ID of the message that bounced (from the returned headers), when
        /// the report includes it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        original_message_id: Option<String>,
    },
}

impl MailKind {
    /// `human`, `auto_reply`, `out_of_office`, `hard_bounce`, `soft_bounce`.
    pub fn label(&self) -> &'static str {
        match self {
            MailKind::Human => "human",
            MailKind::AutoReply {
                out_of_office: true,
                ..
            } => "out_of_office",
            MailKind::AutoReply { .. } => "auto_reply",
            MailKind::Bounce { hard: true, .. } => "hard_bounce",
            MailKind::Bounce { .. } => "soft_bounce",
        }
    }
}

/// A parsed inbound message (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedMail {
    /// Without angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub subject: String,
    pub date: Option<DateTime<Utc>>,
    /// The message had only an HTML body, turned into text.
    pub html_only: bool,
    /// What the writer wrote now (no quoted history, no signature).
    pub new_text: String,
    /// The quoted history, if any.
    pub quoted: Option<String>,
    /// The signature cut off after a `-- ` line, if any.
    pub signature: Option<String>,
    pub attachments: Vec<Attachment>,
    pub auth: AuthResults,
    pub kind: MailKind,
}

impl ParsedMail {
    /// Every message id this one answers: In-Reply-To first, then References newest
    /// first, each once.
    pub fn thread_ids(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for id in self.in_reply_to.iter().chain(self.references.iter().rev()) {
            if !out.contains(id) {
                out.push(id.clone());
            }
        }
        out
    }
}

/// Parses `raw` with the default size cap ([`DEFAULT_MAX_BYTES`]).
pub fn parse(raw: &[u8]) -> Result<ParsedMail, ParseError> {
    parse_with_limit(raw, DEFAULT_MAX_BYTES)
}

/// Parses `raw`, refusing messages larger than `max_bytes`.
pub fn parse_with_limit(raw: &[u8], max_bytes: usize) -> Result<ParsedMail, ParseError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    if raw.len() > max_bytes {
        return Err(ParseError::TooLarge {
            size: raw.len(),
            max: max_bytes,
        });
    }
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| ParseError::NotAMessage("no header fields could be read".into()))?;
    if msg.parts.len() > MAX_PARTS {
        return Err(ParseError::TooManyParts(msg.parts.len()));
    }
    let from = msg
        .from()
        .and_then(first_mailbox)
        .ok_or_else(|| ParseError::NotAMessage("no From address".into()))?;
    let to = msg.to().map(mailboxes).unwrap_or_default();
    let subject = msg.subject().unwrap_or_default().trim().to_string();
    let date = msg
        .date()
        .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0));
    let message_id = msg.message_id().map(strip_id).filter(|s| !s.is_empty());
    let in_reply_to = ids(msg.in_reply_to());
    let references = ids(msg.references());

    let html_only = msg.text_body.iter().all(|&i| {
        msg.parts
            .get(i as usize)
            .is_some_and(|p| matches!(p.body, PartType::Html(_)))
    }) && !msg.text_body.is_empty();
    let text = body_text(&msg);
    let (new_text, quoted, signature) = split_text(&text);

    let attachments = msg
        .attachments()
        .map(|p| Attachment {
            name: p.attachment_name().map(str::to_string),
            content_type: p
                .content_type()
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{}", c.ctype(), s).to_ascii_lowercase(),
                    None => c.ctype().to_ascii_lowercase(),
                })
                .unwrap_or_else(|| "application/octet-stream".into()),
            size: p.len(),
        })
        .collect();
    let auth = msg
        .header_raw("Authentication-Results")
        .map(auth_results)
        .unwrap_or_default();
    let mut kind = classify(&msg, &from, &subject, &text, &new_text, date);
    if let MailKind::Bounce {
        original_message_id,
        ..
    } = &mut kind
    {
        *original_message_id = returned_message_id(raw, message_id.as_deref());
    }
    Ok(ParsedMail {
        message_id,
        in_reply_to,
        references,
        from,
        to,
        subject,
        date,
        html_only,
        new_text,
        quoted,
        signature,
        attachments,
        auth,
        kind,
    })
}

fn strip_id(s: &str) -> String {
    s.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    let mut out: Vec<String> = match v {
        HeaderValue::Text(t) => vec![strip_id(t)],
        HeaderValue::TextList(l) => l.iter().map(|t| strip_id(t)).collect(),
        _ => Vec::new(),
    };
    out.retain(|s| !s.is_empty());
    out
}

fn mailbox(addr: &mail_parser::Addr<'_>) -> Option<Mailbox> {
    let address = addr.address()?.trim().to_lowercase();
    if address.is_empty() {
        return None;
    }
    Some(Mailbox {
        address,
        name: addr
            .name()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
    })
}

fn first_mailbox(a: &Address<'_>) -> Option<Mailbox> {
    match a {
        Address::List(l) => l.iter().find_map(mailbox),
        Address::Group(g) => g.iter().flat_map(|g| g.addresses.iter()).find_map(mailbox),
    }
}

fn mailboxes(a: &Address<'_>) -> Vec<Mailbox> {
    match a {
        Address::List(l) => l.iter().filter_map(mailbox).collect(),
        Address::Group(g) => g
            .iter()
            .flat_map(|g| g.addresses.iter())
            .filter_map(mailbox)
            .collect(),
    }
}

/// The message's text: its text bodies (HTML ones turned into text), joined.
fn body_text(msg: &Message<'_>) -> String {
    let mut out = String::new();
    for i in 0..msg.text_body.len() {
        if let Some(t) = msg.body_text(i) {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&t);
        }
    }
    out.replace("\r\n", "\n").replace('\r', "\n")
}

static REPLY_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^\s*(
            on\s.{4,200}\swrote:\s*$
          | am\s.{4,200}\sschrieb\s.{0,200}:\s*$
          | le\s.{4,200}\sa\s[ée]crit\s?:\s*$
          | el\s.{4,200}\sescribi[óo]\s?:\s*$
        )",
    )
    .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

static REPLY_HEADER_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(on|am|le|el)\s").unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

static REPLY_HEADER_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(wrote|schrieb.{0,200}|a\s[ée]crit\s?|escribi[óo]\s?):\s*$")
        .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

static SEPARATOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(-{2,}\s*(original message|urspr[üu]ngliche nachricht|message d'origine|mensaje original)\s*-{2,}|_{20,})\s*$",
    )
    .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

static HEADER_FROM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*\*?(from|von|de)\s?:\*?\s")
        .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

static HEADER_SENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*\*?(sent|gesendet|envoy[ée]|enviado|date|datum|fecha)\s?:\*?\s")
        .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

/// Where the quoted history starts (a line index), if anywhere.
fn quote_start(lines: &[&str]) -> Option<usize> {
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with('>') || SEPARATOR.is_match(line) {
            return Some(i);
        }
        if REPLY_HEADER.is_match(line) {
            return Some(i);
        }
        if REPLY_HEADER_START.is_match(line)
            && !REPLY_HEADER_END.is_match(line)
            && lines
                .get(i + 1)
                .is_some_and(|next| REPLY_HEADER_END.is_match(next))
        {
            return Some(i);
        }
        if HEADER_FROM.is_match(line)
            && lines
                .iter()
                .skip(i + 1)
                .take(4)
                .any(|l| HEADER_SENT.is_match(l))
        {
            return Some(i);
        }
    }
    None
}

fn tidy(lines: &[&str]) -> String {
    lines.join("\n").trim().to_string()
}

/// Splits a text into (new text, quoted history, signature). See the module docs.
pub fn split_text(text: &str) -> (String, Option<String>, Option<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let (head, quoted) = match quote_start(&lines) {
        Some(i) => {
            let (h, q) = lines.split_at(i);
            (h, Some(tidy(q)).filter(|q| !q.is_empty()))
        }
        None => (&lines[..], None),
    };
    let sig_at = head
        .iter()
        .rposition(|l| l.trim_end_matches(['\r']) == "-- " || l.trim() == "--");
    let (new, signature) = match sig_at {
        Some(i)
            if head[i + 1..]
                .iter()
                .filter(|l| !l.trim().is_empty())
                .count()
                <= MAX_SIGNATURE_LINES
                && !tidy(&head[..i]).is_empty() =>
        {
            (
                tidy(&head[..i]),
                Some(tidy(&head[i + 1..])).filter(|s| !s.is_empty()),
            )
        }
        _ => (tidy(head), None),
    };
    (new, quoted, signature)
}

static AUTH_METHOD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:^|[\s;])(spf|dkim|dmarc)\s*=\s*([a-z]+)")
        .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

/// The verdicts of one `Authentication-Results` value. Several DKIM results: pass if any
/// signature passed, else the first.
pub fn auth_results(value: &str) -> AuthResults {
    // Comments (in parentheses) may contain anything, "spf=pass" included: drop them.
    let mut clean = String::with_capacity(value.len());
    let mut depth = 0_usize;
    for c in value.chars() {
        match c {
            '(' => depth = depth.saturating_add(1),
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => clean.push(c),
            _ => {}
        }
    }
    let mut out = AuthResults::default();
    for cap in AUTH_METHOD.captures_iter(&clean) {
        let (Some(m), Some(v)) = (cap.get(1), cap.get(2)) else {
            continue;
        };
        let Some(v) = Verdict::from_token(v.as_str()) else {
            continue;
        };
        let slot = match m.as_str().to_ascii_lowercase().as_str() {
            "spf" => &mut out.spf,
            "dkim" => &mut out.dkim,
            _ => &mut out.dmarc,
        };
        match slot {
            None => *slot = Some(v),
            Some(prev) if *prev != Verdict::Pass && v == Verdict::Pass => *slot = Some(v),
            Some(_) => {}
        }
    }
    out
}

fn header_text<'a>(msg: &'a Message<'a>, name: &str) -> Option<Cow<'a, str>> {
    msg.header_raw(name)
        .map(|s| Cow::Owned(s.trim().to_ascii_lowercase()))
}

static OOO_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(automatic reply|auto(matic)?[- ]?reply|auto:|autoreply|out of (the )?office|ooo\b|away from (the )?office|on vacation|abwesenheitsnotiz|automatische antwort|abwesend|r[ée]ponse automatique|absence|absent|respuesta autom[áa]tica|fuera de la oficina|ausente)",
    )
    .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

static OOO_BODY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(out of (the )?office|away from (the )?office|on (annual |parental |sick )?leave|on (vacation|holiday)|limited access to (my )?e-?mail|nicht im b[üu]ro|abwesend|im urlaub|au[ßs]er haus|absente? du bureau|en cong[ée]s?|en vacances|fuera de la oficina|de vacaciones|ausente)",
    )
    .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

static BOUNCE_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(undeliver|undelivered|returned mail|delivery status notification|delivery (has )?failed|mail delivery failed|failure notice|could not be delivered|unzustellbar|non remis|no se puede entregar|non distribuable)",
    )
    .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

static STATUS_CODE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
        .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[a-z0-9._%+'-]+@[a-z0-9.-]+\.[a-z]{2,}")
        .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

fn classify(
    msg: &Message<'_>,
    from: &Mailbox,
    subject: &str,
    text: &str,
    new_text: &str,
    date: Option<DateTime<Utc>>,
) -> MailKind {
    if let Some(bounce) = dsn_bounce(msg) {
        return bounce;
    }
    let local = from.address.split('@').next().unwrap_or_default();
    let daemon = matches!(local, "mailer-daemon" | "postmaster" | "mail-daemon")
        || from.name.as_deref().is_some_and(|n| {
            let n = n.to_ascii_lowercase();
            n.contains("mail delivery") || n.contains("mailer-daemon")
        });
    if daemon && BOUNCE_SUBJECT.is_match(subject) {
        return plain_bounce(text);
    }

    let auto_submitted = header_text(msg, "Auto-Submitted").is_some_and(|v| {
        let v = v.split(';').next().unwrap_or_default().trim().to_string();
        !v.is_empty() && v != "no"
    });
    let precedence = header_text(msg, "Precedence")
        .is_some_and(|v| matches!(v.as_ref(), "bulk" | "junk" | "list"));
    let marked = auto_submitted
        || precedence
        || msg.header_raw("X-Autoreply").is_some()
        || msg.header_raw("X-Autorespond").is_some();
    let ooo_subject = OOO_SUBJECT.is_match(subject);
    if !marked && !ooo_subject {
        return MailKind::Human;
    }
    let out_of_office = ooo_subject || OOO_BODY.is_match(subject) || OOO_BODY.is_match(new_text);
    let return_date = if out_of_office {
        date.and_then(|d| return_date(new_text, d.date_naive()))
    } else {
        None
    };
    MailKind::AutoReply {
        out_of_office,
        return_date,
    }
}

fn dsn_bounce(msg: &Message<'_>) -> Option<MailKind> {
    let ct = msg.content_type()?;
    let is_report = ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        && ct
            .attribute("report-type")
            .is_some_and(|r| r.eq_ignore_ascii_case("delivery-status"));
    if !is_report {
        return None;
    }
    // The delivery-status part: its fields as text.
    let status_text = msg.parts.iter().find_map(|p| {
        let ct = p.content_type()?;
        let sub = ct.subtype()?.to_ascii_lowercase();
        if sub != "delivery-status" && sub != "global-delivery-status" {
            return None;
        }
        Some(String::from_utf8_lossy(p.contents()).into_owned())
    });
    let Some(fields) = status_text else {
        let text = body_text(msg);
        return Some(plain_bounce(&text));
    };
    let mut recipient = None;
    let mut status = None;
    let mut action = None;
    for line in fields.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "final-recipient" if recipient.is_none() => {
                let addr = value.rsplit(';').next().unwrap_or(value).trim();
                let addr = addr.trim_start_matches('<').trim_end_matches('>');
                if !addr.is_empty() {
                    recipient = Some(addr.to_lowercase());
                }
            }
            "status" if status.is_none() => {
                status = STATUS_CODE.find(value).map(|m| m.as_str().to_string());
            }
            "action" if action.is_none() => action = Some(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    let hard = status.as_deref().is_some_and(|s| s.starts_with('5'))
        || (status.is_none() && action.as_deref() == Some("failed"));
    Some(MailKind::Bounce {
        recipient,
        status,
        hard,
        original_message_id: None,
    })
}

fn plain_bounce(text: &str) -> MailKind {
    let status = STATUS_CODE
        .find(text)
        .map(|m| m.as_str().to_string())
        .filter(|s| !s.starts_with('2'));
    let recipient = ADDRESS
        .find_iter(text)
        .map(|m| m.as_str().to_lowercase())
        .find(|a| {
            let local = a.split('@').next().unwrap_or_default();
            !matches!(local, "mailer-daemon" | "postmaster")
        });
    let hard = status.as_deref().is_some_and(|s| s.starts_with('5'));
    MailKind::Bounce {
        recipient,
        status,
        hard,
        original_message_id: None,
    }
}

static MESSAGE_ID_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?im)^message-id:[ \t]*<([^>\s]{1,500})>")
        .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

/// The Message-ID of the returned message in a bounce: the first `Message-ID:` line of
/// the raw message that is not the bounce's own.
fn returned_message_id(raw: &[u8], own: Option<&str>) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    MESSAGE_ID_LINE
        .captures_iter(&text)
        .filter_map(|c| c.get(1).map(|m| m.as_str().trim().to_string()))
        .find(|id| Some(id.as_str()) != own)
}

// ---- Return dates ---------------------------------------------------------------------

fn month_number(word: &str) -> Option<u32> {
    let w = word.trim_end_matches('.').to_lowercase();
    let m = match w.as_str() {
        "january" | "jan" | "januar" | "jänner" | "janvier" | "janv" | "enero" | "ene" => 1,
        "february" | "feb" | "februar" | "février" | "fevrier" | "févr" | "fevr" | "febrero" => 2,
        "march" | "mar" | "märz" | "maerz" | "mär" | "mars" | "marzo" => 3,
        "april" | "apr" | "avril" | "avr" | "abril" | "abr" => 4,
        "may" | "mai" | "mayo" => 5,
        "june" | "jun" | "juni" | "juin" | "junio" => 6,
        "july" | "jul" | "juli" | "juillet" | "juil" | "julio" => 7,
        "august" | "aug" | "août" | "aout" | "agosto" | "ago" => 8,
        "september" | "sep" | "sept" | "septembre" | "septiembre" | "setiembre" => 9,
        "october" | "oct" | "oktober" | "okt" | "octobre" | "octubre" => 10,
        "november" | "nov" | "novembre" | "noviembre" => 11,
        "december" | "dec" | "dezember" | "dez" | "décembre" | "decembre" | "déc" | "diciembre"
        | "dic" => 12,
        _ => return None,
    };
    Some(m)
}

static DAY_MONTH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(\d{1,2})(?:st|nd|rd|th|er)?\.?\s+(?:de\s+|of\s+)?(\p{L}{3,10})\.?,?(?:\s+(?:de\s+)?(\d{4}))?")
        .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

static MONTH_DAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(\p{L}{3,10})\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b,?(?:\s+(\d{4}))?")
        .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

static ISO_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
        .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

static NUMERIC_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d{1,2})([./])(\d{1,2})(?:[./](\d{4}|\d{2})\b|\.)")
        .unwrap_or_else(|_| unreachable!("a fixed pattern"))
});

/// A date from its parts; a missing year is `sent`'s year, or the next one when that
/// date is already past.
fn make_date(year: Option<i32>, month: u32, day: u32, sent: NaiveDate) -> Option<NaiveDate> {
    match year {
        Some(y) => {
            let y = if y < 100 { 2000 + y } else { y };
            NaiveDate::from_ymd_opt(y, month, day)
        }
        None => {
            let d = NaiveDate::from_ymd_opt(sent.year(), month, day)?;
            if d < sent {
                NaiveDate::from_ymd_opt(sent.year().checked_add(1)?, month, day)
            } else {
                Some(d)
            }
        }
    }
}

fn num<T: std::str::FromStr>(m: Option<regex::Match<'_>>) -> Option<T> {
    m.and_then(|m| m.as_str().parse().ok())
}

/// Every date stated in `text` (see the module docs for the forms).
pub fn dates_in(text: &str, sent: NaiveDate) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    for c in DAY_MONTH.captures_iter(text) {
        let (Some(day), Some(month)) = (num::<u32>(c.get(1)), c.get(2)) else {
            continue;
        };
        if let Some(m) = month_number(month.as_str()) {
            out.extend(make_date(num(c.get(3)), m, day, sent));
        }
    }
    for c in MONTH_DAY.captures_iter(text) {
        let (Some(month), Some(day)) = (c.get(1), num::<u32>(c.get(2))) else {
            continue;
        };
        if let Some(m) = month_number(month.as_str()) {
            out.extend(make_date(num(c.get(3)), m, day, sent));
        }
    }
    for c in ISO_DATE.captures_iter(text) {
        if let (Some(y), Some(m), Some(d)) = (num(c.get(1)), num(c.get(2)), num(c.get(3))) {
            out.extend(NaiveDate::from_ymd_opt(y, m, d));
        }
    }
    for c in NUMERIC_DATE.captures_iter(text) {
        let (Some(a), Some(b)) = (num::<u32>(c.get(1)), num::<u32>(c.get(3))) else {
            continue;
        };
        let dotted = c.get(2).is_some_and(|s| s.as_str() == ".");
        let year = num::<i32>(c.get(4));
        let (day, month) = if dotted || a > 12 {
            (a, b)
        } else if b > 12 {
            (b, a)
        } else {
            continue; // a/b with both ≤ 12: day or month first is unknown
        };
        if month == 0 || month > 12 {
            continue;
        }
        out.extend(make_date(year, month, day, sent));
    }
    out
}

/// The return date an out-of-office `text` states, judged against the day it was sent.
pub fn return_date(text: &str, sent: NaiveDate) -> Option<NaiveDate> {
    dates_in(text, sent)
        .into_iter()
        .filter(|d| *d >= sent && (*d - sent).num_days() <= MAX_RETURN_DAYS)
        .max()
}
