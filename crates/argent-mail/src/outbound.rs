//! Outbound mail: building the message an outbox row stands for (see the crate docs).
//!
//! - [`message_id_for`]: the stable `Message-ID` of an outbox email, `<outbox id>@<domain>`
//!   (without angle brackets), chosen when the email is queued.
//! - [`Threading::from_trigger`]: `In-Reply-To` / `References` for an email that answers a
//!   customer's message (the run's trigger JSON, read by key).
//! - [`build_message`]: the RFC 5322 message with those headers and `List-Unsubscribe`
//!   (RFC 2369; plus RFC 8058 one-click when a URL is configured).
//!
//! Every id that reaches a header is checked ([`clean_msg_id`]): a customer's
//! `Message-ID` or `References` is text the debtor controls, so anything that is not a
//! plain `left@right` id (whitespace, CR/LF, angle brackets, control characters, over
//! 250 bytes) is dropped, never copied into a header.

use lettre::Message;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What building a message can fail on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("sender address '{0}' is not an email address: {1}")]
    From(String, String),
    #[error("recipient address '{0}' is not an email address: {1}")]
    To(String, String),
    #[error("Message-ID '{0}' is not of the form left@right")]
    MessageId(String),
    #[error("opt-out address '{0}' is not an email address")]
    Unsubscribe(String),
    #[error("one-click opt-out URL '{0}' must start with https://")]
    UnsubscribeUrl(String),
    #[error("building the message: {0}")]
    Build(String),
}

/// The domain part of an email address, lower case (`None` when there is no `@` or the
/// domain is empty).
pub fn domain_of(addr: &str) -> Option<String> {
    let addr = addr.trim();
    // A display-name form `Name <a@b>`: the address is inside the brackets.
    let addr = match (addr.rfind('<'), addr.rfind('>')) {
        (Some(l), Some(r)) if l < r => &addr[l + 1..r],
        _ => addr,
    };
    let (_, domain) = addr.rsplit_once('@')?;
    let domain = domain.trim().to_ascii_lowercase();
    if domain.is_empty() || domain.contains(|c: char| c.is_whitespace() || c == '>') {
        None
    } else {
        Some(domain)
    }
}

/// The `Message-ID` (without angle brackets) of outbox email `outbox_id` sent from
/// `domain`: `<outbox id>@<domain>`, the id reduced to the characters a message id's left
/// part may hold; when anything had to be replaced, a short hash of the original id is
/// appended so two ids never end up the same.
pub fn message_id_for(outbox_id: &str, domain: &str) -> String {
    let mut left: String = outbox_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let left_trimmed = left.trim_matches('.').replace("..", ".");
    if left_trimmed != outbox_id || left_trimmed.is_empty() {
        let h = hex::encode(Sha256::digest(outbox_id.as_bytes()));
        left = format!("{left_trimmed}.{}", &h[..12]);
        left = left.trim_start_matches('.').to_string();
    } else {
        left = left_trimmed;
    }
    let domain = domain.trim().trim_matches('.').to_ascii_lowercase();
    let domain = if domain.is_empty()
        || !domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        "argent.invalid".to_string()
    } else {
        domain
    };
    format!("{left}@{domain}")
}

/// A message id as found in a header or a trigger, without its angle brackets, if it is a
/// plain `left@right` id (printable ASCII, no whitespace or brackets, at most 250 bytes);
/// `None` for anything else.
pub fn clean_msg_id(raw: &str) -> Option<String> {
    let s = raw.trim();
    let s = s.strip_prefix('<').unwrap_or(s);
    let s = s.strip_suffix('>').unwrap_or(s);
    let ok = !s.is_empty()
        && s.len() <= 250
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>\"\\,;()[]".contains(&b))
        && s.matches('@').count() == 1
        && !s.starts_with('@')
        && !s.ends_with('@');
    ok.then(|| s.to_string())
}

/// How many ids of a customer's `References` are carried into a reply (the newest).
pub const MAX_REFERENCES: usize = 20;

/// `In-Reply-To` and `References` of an email that answers a customer's message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Threading {
    /// The customer's `Message-ID` (without angle brackets).
    pub in_reply_to: Option<String>,
    /// The thread's ids, oldest first, ending with `in_reply_to`.
    pub references: Vec<String>,
}

impl Threading {
    /// From a run's stored trigger JSON: an inbound email's `message_id` (string) and
    /// `references` (array of strings), read by key. Absent, null or invalid ids = a first
    /// contact (no threading). `References` of the reply is the customer's `References`
    /// followed by their `Message-ID` (RFC 5322 §3.6.4), the newest [`MAX_REFERENCES`].
    pub fn from_trigger(trigger: &Value) -> Threading {
        // `Trigger` is tagged by `kind` (`{"kind": "inbound", "message_id": ...}`); another
        // kind of trigger never threads.
        let t = trigger;
        if t.get("kind").is_some_and(|k| k.as_str() != Some("inbound")) {
            return Threading::default();
        }
        let Some(parent) = t
            .get("message_id")
            .and_then(Value::as_str)
            .and_then(clean_msg_id)
        else {
            return Threading::default();
        };
        let mut refs: Vec<String> = Vec::new();
        if let Some(list) = t.get("references").and_then(Value::as_array) {
            for id in list
                .iter()
                .filter_map(Value::as_str)
                .filter_map(clean_msg_id)
            {
                if !refs.contains(&id) && id != parent {
                    refs.push(id);
                }
            }
        }
        refs.push(parent.clone());
        let skip = refs.len().saturating_sub(MAX_REFERENCES);
        Threading {
            in_reply_to: Some(parent),
            references: refs.split_off(skip),
        }
    }

    /// `references` as stored (`outbox.references_hdr`): space-separated, `None` if empty.
    pub fn references_hdr(&self) -> Option<String> {
        (!self.references.is_empty()).then(|| self.references.join(" "))
    }
}

/// Where a debtor can opt out of email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    /// The opt-out mailbox (`mailto:`), always offered.
    pub mailto: String,
    /// An https URL for one-click opt-out (RFC 8058). `{message_id}` in it is replaced by
    /// the message's id, percent-encoded.
    pub url: Option<String>,
}

/// An email about to be sent.
#[derive(Clone, Debug)]
pub struct Outgoing<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// Without angle brackets.
    pub message_id: &'a str,
    pub in_reply_to: Option<&'a str>,
    /// Space-separated ids (as stored).
    pub references: Option<&'a str>,
    pub unsubscribe: &'a Unsubscribe,
    /// The outbox id, named in the opt-out email's subject.
    pub outbox_id: &'a str,
}

#[derive(Clone, Debug)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(s.to_string()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[derive(Clone, Debug)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribePost)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_string())
    }
}

fn no_newlines(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The `List-Unsubscribe` value and whether one-click applies.
pub fn list_unsubscribe(
    u: &Unsubscribe,
    message_id: &str,
    outbox_id: &str,
) -> Result<(String, bool), BuildError> {
    let addr = u.mailto.trim();
    if domain_of(addr).is_none() || addr.contains(|c: char| c.is_whitespace() || "<>?".contains(c))
    {
        return Err(BuildError::Unsubscribe(u.mailto.clone()));
    }
    let subject =
        utf8_percent_encode(&format!("unsubscribe {outbox_id}"), NON_ALPHANUMERIC).to_string();
    let mut value = format!("<mailto:{addr}?subject={subject}>");
    let mut one_click = false;
    if let Some(url) = &u.url {
        let url = url.trim();
        if !url.starts_with("https://")
            || url.contains(|c: char| c.is_whitespace() || c.is_control() || "<>".contains(c))
        {
            return Err(BuildError::UnsubscribeUrl(url.to_string()));
        }
        let url = url.replace(
            "{message_id}",
            &utf8_percent_encode(message_id, NON_ALPHANUMERIC).to_string(),
        );
        value = format!("<{url}>, {value}");
        one_click = true;
    }
    Ok((value, one_click))
}

/// Builds the message: From, To, Subject (control characters replaced by spaces, so a
/// subject cannot add a header), `Message-ID`, `In-Reply-To` / `References` when set
/// (invalid ids dropped), `List-Unsubscribe` (and `List-Unsubscribe-Post` when a one-click
/// URL is configured), a UTF-8 text/plain body.
pub fn build_message(o: &Outgoing<'_>) -> Result<Message, BuildError> {
    let from = o
        .from
        .parse()
        .map_err(|e| BuildError::From(o.from.to_string(), format!("{e}")))?;
    let to =
        o.to.parse()
            .map_err(|e| BuildError::To(o.to.to_string(), format!("{e}")))?;
    let mid = clean_msg_id(o.message_id)
        .ok_or_else(|| BuildError::MessageId(o.message_id.to_string()))?;
    let (unsub, one_click) = list_unsubscribe(o.unsubscribe, &mid, o.outbox_id)?;
    let mut b = Message::builder()
        .from(from)
        .to(to)
        .subject(no_newlines(o.subject))
        .message_id(Some(format!("<{mid}>")))
        .header(ListUnsubscribe(unsub));
    if one_click {
        b = b.header(ListUnsubscribePost);
    }
    if let Some(parent) = o.in_reply_to.and_then(clean_msg_id) {
        b = b.in_reply_to(format!("<{parent}>"));
    }
    if let Some(refs) = o.references {
        let ids: Vec<String> = refs
            .split_whitespace()
            .filter_map(clean_msg_id)
            .map(|id| format!("<{id}>"))
            .collect();
        if !ids.is_empty() {
            b = b.references(ids.join(" "));
        }
    }
    b.header(ContentType::TEXT_PLAIN)
        .body(o.body.to_string())
        .map_err(|e| BuildError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn unsub(url: Option<&str>) -> Unsubscribe {
        Unsubscribe {
            mailto: "optout@argent.example".into(),
            url: url.map(str::to_string),
        }
    }

    #[test]
    fn message_ids_are_stable_and_clean() {
        assert_eq!(
            message_id_for("EM-call-1", "Argent.Example"),
            "EM-call-1@argent.example"
        );
        let odd = message_id_for("EM-call 1<x>", "argent.example");
        assert!(odd.starts_with("EM-call-1-x-."), "{odd}");
        assert!(clean_msg_id(&odd).is_some());
        assert_ne!(odd, message_id_for("EM-call-1-x-", "argent.example"));
        assert_eq!(message_id_for("a", "bad domain"), "a@argent.invalid");
    }

    #[test]
    fn domains() {
        assert_eq!(domain_of("AP@Example.COM").as_deref(), Some("example.com"));
        assert_eq!(
            domain_of("Acme AP <ap@acme.test>").as_deref(),
            Some("acme.test")
        );
        assert_eq!(domain_of("nobody"), None);
        assert_eq!(domain_of("x@"), None);
    }

    #[test]
    fn threading_from_an_inbound_trigger() {
        let t = json!({"kind": "inbound", "from": "a@b.c", "message_id": "<m3@cust.test>",
                        "references": ["m1@cust.test", "<m2@argent.example>", "bad id\r\nX-Evil: 1"]});
        let th = Threading::from_trigger(&t);
        assert_eq!(th.in_reply_to.as_deref(), Some("m3@cust.test"));
        assert_eq!(
            th.references,
            vec!["m1@cust.test", "m2@argent.example", "m3@cust.test"]
        );
        assert_eq!(
            th.references_hdr().as_deref(),
            Some("m1@cust.test m2@argent.example m3@cust.test")
        );
        assert_eq!(
            Threading::from_trigger(&json!({"kind": "step", "step": "x", "message_id": "a@b"})),
            Threading::default()
        );
        assert_eq!(
            Threading::from_trigger(&json!({"kind": "inbound", "message_id": null})),
            Threading::default()
        );
        let many: Vec<String> = (0..50).map(|i| format!("m{i}@x.test")).collect();
        let th = Threading::from_trigger(&json!({"message_id": "last@x.test", "references": many}));
        assert_eq!(th.references.len(), MAX_REFERENCES);
        assert_eq!(
            th.references.last().map(String::as_str),
            Some("last@x.test")
        );
    }

    #[test]
    fn headers_on_the_built_message() {
        let u = unsub(Some("https://ar.argent.example/optout?m={message_id}"));
        let o = Outgoing {
            from: "AR <ar@argent.example>",
            to: "ap@cust.test",
            subject: "Invoice 42\r\nBcc: victim@evil.test",
            body: "Hello",
            message_id: "EM-1@argent.example",
            in_reply_to: Some("m3@cust.test"),
            references: Some("m1@cust.test m3@cust.test"),
            unsubscribe: &u,
            outbox_id: "EM-1",
        };
        let text = String::from_utf8(build_message(&o).unwrap().formatted()).unwrap();
        assert!(
            text.contains("Message-ID: <EM-1@argent.example>\r\n"),
            "{text}"
        );
        assert!(text.contains("In-Reply-To: <m3@cust.test>\r\n"), "{text}");
        assert!(
            text.contains("References: <m1@cust.test> <m3@cust.test>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
            "{text}"
        );
        assert!(
            text.contains("<https://ar.argent.example/optout?m=EM%2D1%40argent%2Eexample>"),
            "{text}"
        );
        assert!(
            text.contains("mailto:optout@argent.example?subject=unsubscribe%20EM%2D1"),
            "{text}"
        );
        assert!(!text.contains("\r\nBcc:"), "{text}");
        let o = Outgoing {
            unsubscribe: &unsub(None),
            in_reply_to: None,
            references: None,
            ..o
        };
        let text = String::from_utf8(build_message(&o).unwrap().formatted()).unwrap();
        assert!(!text.contains("List-Unsubscribe-Post"), "{text}");
        assert!(!text.contains("In-Reply-To"), "{text}");
        assert!(
            text.contains("List-Unsubscribe: <mailto:optout@argent.example"),
            "{text}"
        );
        let bad = unsub(Some("http://plain.example/x"));
        assert!(matches!(
            build_message(&Outgoing {
                unsubscribe: &bad,
                ..o
            }),
            Err(BuildError::UnsubscribeUrl(_))
        ));
    }
}
