//! What receiving needs from a raw message before it is parsed: its `Message-ID` (the
//! dedupe key of `inbound_mail`), the SHA-256 of its bytes, and the size cap.
//!
//! Receiving never refuses a message for what its headers say: a message without a usable
//! `Message-ID` (missing, empty, absurdly long, or with control characters) is keyed by
//! `sha256:` and the hash of its raw bytes instead. Only the headers are read here
//! (mail-parser's header parser); the body is parsed later, by the processing step.

use mail_parser::MessageParser;
use sha2::{Digest, Sha256};

/// The default largest raw message received (10 MiB), the webhook's and the reader's cap.
pub const DEFAULT_MAX_BYTES: usize = 10 * 1024 * 1024;

/// The longest `Message-ID` kept as a dedupe key (RFC 5322 lines are at most 998 octets).
pub const MAX_MESSAGE_ID_LEN: usize = 998;

/// What receiving records of one raw message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFacts {
    /// The `Message-ID` without angle brackets, when the message has a usable one.
    pub message_id: Option<String>,
    /// SHA-256 of the raw bytes, lowercase hex.
    pub sha256: String,
    /// `inbound_mail.dedupe_key`: the Message-ID, else `sha256:` + [`RawFacts::sha256`].
    pub dedupe_key: String,
}

impl RawFacts {
    pub fn of(raw: &[u8]) -> RawFacts {
        let sha256 = sha256_hex(raw);
        let message_id = message_id(raw);
        let dedupe_key = match &message_id {
            Some(id) => id.clone(),
            None => format!("sha256:{sha256}"),
        };
        RawFacts {
            message_id,
            sha256,
            dedupe_key,
        }
    }
}

/// SHA-256 of `raw`, lowercase hex.
pub fn sha256_hex(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(raw))
}

/// The message's `Message-ID` without angle brackets and surrounding space, or `None` when
/// it has none or it is not usable as a key (empty, longer than [`MAX_MESSAGE_ID_LEN`],
/// containing whitespace or control characters).
pub fn message_id(raw: &[u8]) -> Option<String> {
    let parsed = MessageParser::new().parse_headers(raw)?;
    let id = parsed.message_id()?.trim();
    let id = id.strip_prefix('<').unwrap_or(id);
    let id = id.strip_suffix('>').unwrap_or(id).trim();
    let usable = !id.is_empty()
        && id.len() <= MAX_MESSAGE_ID_LEN
        && !id.chars().any(|c| c.is_control() || c.is_whitespace());
    usable.then(|| id.to_string())
}

/// Why a raw message is refused before anything is stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RawError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is {size} bytes, over the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
}

/// Refuses an empty message or one over `max` bytes.
pub fn check_size(raw: &[u8], max: usize) -> Result<(), RawError> {
    if raw.is_empty() {
        return Err(RawError::Empty);
    }
    if raw.len() > max {
        return Err(RawError::TooLarge {
            size: raw.len(),
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_without_brackets() {
        let raw = b"From: a@example.com\r\nMessage-ID: <abc.123@example.com>\r\nSubject: hi\r\n\r\nbody\r\n";
        assert_eq!(message_id(raw).as_deref(), Some("abc.123@example.com"));
        let f = RawFacts::of(raw);
        assert_eq!(f.dedupe_key, "abc.123@example.com");
        assert_eq!(f.sha256, sha256_hex(raw));
        assert_eq!(f.sha256.len(), 64);
    }

    #[test]
    fn folded_and_lowercase_header() {
        let raw = b"message-id:\r\n  <x@y>\r\n\r\nbody";
        assert_eq!(message_id(raw).as_deref(), Some("x@y"));
    }

    #[test]
    fn no_message_id_keys_by_hash() {
        let raw = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n";
        let f = RawFacts::of(raw);
        assert_eq!(f.message_id, None);
        assert_eq!(f.dedupe_key, format!("sha256:{}", sha256_hex(raw)));
        // Different bytes, different key.
        let g = RawFacts::of(b"From: a@example.com\r\nSubject: hi\r\n\r\nbody 2\r\n");
        assert_ne!(f.dedupe_key, g.dedupe_key);
    }

    #[test]
    fn unusable_message_ids_fall_back_to_the_hash() {
        for raw in [
            &b"Message-ID: <>\r\n\r\nx"[..],
            b"Message-ID:    \r\n\r\nx",
            b"not a message at all",
            b"",
            b"\xff\xfe\x00\x01",
        ] {
            let f = RawFacts::of(raw);
            assert!(f.dedupe_key.starts_with("sha256:"), "{raw:?}: {f:?}");
        }
        let long = format!("Message-ID: <{}@x>\r\n\r\nx", "a".repeat(2000));
        assert_eq!(message_id(long.as_bytes()), None);
    }

    #[test]
    fn size_checks() {
        assert_eq!(check_size(b"", 10), Err(RawError::Empty));
        assert_eq!(
            check_size(b"0123456789a", 10),
            Err(RawError::TooLarge { size: 11, max: 10 })
        );
        assert_eq!(check_size(b"0123456789", 10), Ok(()));
    }
}
