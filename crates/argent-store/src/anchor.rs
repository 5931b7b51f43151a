//! Signed checkpoints of the audit chain: the pure part (encoding, signing, and judging
//! checkpoints against facts read from the chain). No I/O, no clock, no SQL: the store
//! side is in [`crate::checkpoint`].
//!
//! A hash chain kept only inside the database proves nothing to whoever controls the
//! database: with the append-only triggers dropped, the tail (or all of history) can be
//! rewritten and re-chained, and the chain verifies. A checkpoint is the chain's head —
//! `(seq, head hash, event count, time)` — signed with an Ed25519 key that lives outside the
//! database and written to a sink outside it (an append-only file the operator names).
//! Whoever holds only the database can then neither rewrite nor remove an event at or
//! before a checkpointed sequence number without the checkpoint saying so; see [`judge`].
//!
//! **What a checkpoint cannot show.** Events appended after the newest checkpoint are
//! anchored by nothing yet: an attacker who appends a correctly chained forged event there
//! (no trigger needs dropping for an INSERT) makes a chain that the next checkpoint signs
//! like any other. Checkpoints fix the past; they do not authenticate new appends.
//!
//! **Signed bytes.** The signature covers exactly
//! `argent-audit-checkpoint/v1\nseq:<seq>\nhead:<hex hash>\nevents:<count>\nat:<RFC 3339 UTC, microseconds>\n`
//! (the domain prefix keeps a signature over anything else from passing as a checkpoint).
//! A checkpoint is stored as one JSON line:
//! `{"at":…,"events":…,"head":…,"key":<hex public key>,"seq":…,"sig":<hex signature>,"v":1}`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer};
use serde_json::{Value, json};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::audit::{GENESIS_HASH, canonical_json};

/// The format version written in every line.
pub const CHECKPOINT_FORMAT: i64 = 1;
const DOMAIN: &str = "argent-audit-checkpoint/v1";

/// The chain's state at one moment: what a checkpoint signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last event's sequence number (0 for an empty chain).
    pub seq: i64,
    /// The last event's hash ([`GENESIS_HASH`] for an empty chain).
    pub head: String,
    /// How many events the chain held, verified from the first: equal to `seq`, since
    /// sequence numbers have no gaps, and signed on its own so a reader need not assume it.
    pub events: i64,
    /// When the checkpoint was taken.
    pub at: DateTime<Utc>,
}

fn format_at(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Checkpoint {
    /// The exact bytes the signature covers.
    pub fn signing_message(&self) -> Vec<u8> {
        format!(
            "{DOMAIN}\nseq:{}\nhead:{}\nevents:{}\nat:{}\n",
            self.seq,
            self.head,
            self.events,
            format_at(self.at)
        )
        .into_bytes()
    }

    pub fn sign(self, key: &SigningKey) -> SignedCheckpoint {
        let sig = key.sign(&self.signing_message());
        SignedCheckpoint {
            key: public_key_hex(&key.verifying_key()),
            sig: hex::encode(sig.to_bytes()),
            checkpoint: self,
        }
    }
}

/// A checkpoint with the public key it claims and its signature (both hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub key: String,
    pub sig: String,
}

/// Why a checkpoint line is not to be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureProblem {
    /// The line names another public key (a checkpoint from another key, or one an
    /// attacker signed with their own).
    OtherKey { key: String },
    /// The line names the expected key but the signature does not verify over its fields.
    BadSignature,
}

impl fmt::Display for SignatureProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureProblem::OtherKey { key } => write!(f, "it was signed by another key ({key})"),
            SignatureProblem::BadSignature => f.write_str("its signature does not verify"),
        }
    }
}

impl SignedCheckpoint {
    /// The JSON line (without the newline), keys sorted.
    pub fn to_line(&self) -> String {
        let c = &self.checkpoint;
        canonical_json(&json!({
            "v": CHECKPOINT_FORMAT,
            "seq": c.seq,
            "head": c.head,
            "events": c.events,
            "at": format_at(c.at),
            "key": self.key,
            "sig": self.sig,
        }))
    }

    /// Reads one line written by [`SignedCheckpoint::to_line`]; the error says what is wrong.
    pub fn parse_line(line: &str) -> Result<SignedCheckpoint, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let obj = v.as_object().ok_or("not a JSON object")?;
        for k in obj.keys() {
            if !["v", "seq", "head", "events", "at", "key", "sig"].contains(&k.as_str()) {
                return Err(format!("unknown field '{k}'"));
            }
        }
        let int = |k: &str| {
            obj.get(k)
                .and_then(Value::as_i64)
                .ok_or_else(|| format!("'{k}' is missing or not an integer"))
        };
        let text = |k: &str| {
            obj.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("'{k}' is missing or not a string"))
        };
        let version = int("v")?;
        if version != CHECKPOINT_FORMAT {
            return Err(format!(
                "format version {version} (this argent reads {CHECKPOINT_FORMAT})"
            ));
        }
        let head = text("head")?;
        if !is_hex(head, 64) {
            return Err(format!("'head' {head} is not a 64-digit hex hash"));
        }
        let at = text("at")?;
        let at = DateTime::parse_from_rfc3339(at)
            .map_err(|e| format!("'at' {at}: {e}"))?
            .with_timezone(&Utc);
        let seq = int("seq")?;
        let events = int("events")?;
        if seq < 0 || events < 0 {
            return Err("'seq' and 'events' cannot be negative".into());
        }
        let key = text("key")?;
        if !is_hex(key, 64) {
            return Err(format!("'key' {key} is not a 64-digit hex public key"));
        }
        let sig = text("sig")?;
        if !is_hex(sig, 128) {
            return Err("'sig' is not a 128-digit hex signature".into());
        }
        Ok(SignedCheckpoint {
            checkpoint: Checkpoint {
                seq,
                head: head.to_string(),
                events,
                at,
            },
            key: key.to_string(),
            sig: sig.to_string(),
        })
    }

    /// Whether `expected` signed exactly these fields.
    pub fn verify(&self, expected: &VerifyingKey) -> Result<(), SignatureProblem> {
        if !self.key.eq_ignore_ascii_case(&public_key_hex(expected)) {
            return Err(SignatureProblem::OtherKey {
                key: self.key.clone(),
            });
        }
        let sig = hex::decode(&self.sig)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
            .map(|b| Signature::from_bytes(&b))
            .ok_or(SignatureProblem::BadSignature)?;
        expected
            .verify_strict(&self.checkpoint.signing_message(), &sig)
            .map_err(|_| SignatureProblem::BadSignature)
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A public key as 64 lowercase hex digits.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

/// A public key from 64 hex digits (surrounding whitespace ignored).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let t = text.trim();
    let bytes = hex::decode(t)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| "a public key is 64 hex digits".to_string())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid Ed25519 public key".to_string())
}

/// A signing key from its 32-byte seed in hex (surrounding whitespace ignored).
pub fn parse_signing_key(text: &str) -> Result<SigningKey, String> {
    let t = text.trim();
    let mut bytes = hex::decode(t)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| "a signing key file holds 64 hex digits (the key's seed)".to_string())?;
    let key = SigningKey::from_bytes(&bytes);
    bytes.fill(0);
    Ok(key)
}

/// A signing key's seed as 64 hex digits: what a key file holds.
pub fn signing_key_hex(key: &SigningKey) -> String {
    hex::encode(key.to_bytes())
}

/// One line of a checkpoint file: its line number (from 1) and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointEntry {
    pub line: usize,
    pub parsed: Result<SignedCheckpoint, String>,
}

/// Reads a checkpoint file's text: one entry per non-blank line.
pub fn parse_checkpoints(text: &str) -> Vec<CheckpointEntry> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| CheckpointEntry {
            line: i + 1,
            parsed: SignedCheckpoint::parse_line(l),
        })
        .collect()
}

/// What the chain holds now, where the checkpoints point: read by the store in one
/// snapshot ([`crate::Store::checkpoint_facts`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainFacts {
    /// The highest sequence number stored (0 when there are no events).
    pub last_seq: i64,
    /// The stored hash of each checkpointed sequence number that still has an event.
    pub hashes: BTreeMap<i64, String>,
}

/// Something the checkpoints show is wrong. Each names the checkpoint's line and the
/// sequence numbers involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointFinding {
    /// The file has no checkpoints: nothing anchors the chain.
    NoCheckpoints,
    /// A line is not a checkpoint.
    Unreadable { line: usize, why: String },
    /// A line signed by another key.
    OtherKey { line: usize, seq: i64, key: String },
    /// A line whose signature does not verify.
    BadSignature { line: usize, seq: i64 },
    /// Events were removed from the end: a checkpoint signed event `seq`, the chain now ends
    /// at `last_seq` (> 0).
    Truncated {
        line: usize,
        seq: i64,
        last_seq: i64,
    },
    /// Every event is gone: a checkpoint signed `seq` events, the chain has none.
    Wiped { line: usize, seq: i64 },
    /// The event at `seq` is not the one the checkpoint signed: history at or before it was
    /// rewritten (or the event deleted and the rest renumbered). `since` is the newest
    /// earlier checkpoint that still matches (0 if none): the change is in `since+1..=seq`.
    Rewritten {
        line: usize,
        seq: i64,
        since: i64,
        signed: String,
        stored: Option<String>,
    },
}

impl CheckpointFinding {
    /// A short name for the kind of tampering shown.
    pub fn kind(&self) -> &'static str {
        match self {
            CheckpointFinding::NoCheckpoints => "no checkpoints",
            CheckpointFinding::Unreadable { .. } => "unreadable checkpoint",
            CheckpointFinding::OtherKey { .. } => "checkpoint from another key",
            CheckpointFinding::BadSignature { .. } => "bad signature",
            CheckpointFinding::Truncated { .. } => "truncation",
            CheckpointFinding::Wiped { .. } => "wipe",
            CheckpointFinding::Rewritten { .. } => "rewrite",
        }
    }
}

impl fmt::Display for CheckpointFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointFinding::NoCheckpoints => {
                write!(
                    f,
                    "no checkpoints: the file holds none, so nothing anchors the chain"
                )
            }
            CheckpointFinding::Unreadable { line, why } => {
                write!(f, "unreadable checkpoint: line {line}: {why}")
            }
            CheckpointFinding::OtherKey { line, seq, key } => write!(
                f,
                "checkpoint from another key: line {line} (event {seq}) is signed by key {key}, \
                 not by the public key given; it proves nothing"
            ),
            CheckpointFinding::BadSignature { line, seq } => write!(
                f,
                "bad signature: line {line} (event {seq}) does not verify under the public key; \
                 the line was altered or forged"
            ),
            CheckpointFinding::Truncated {
                line,
                seq,
                last_seq,
            } => write!(
                f,
                "truncation: the checkpoint on line {line} signed event {seq}, but the chain now \
                 ends at event {last_seq}: events {}..={seq} were removed",
                last_seq + 1
            ),
            CheckpointFinding::Wiped { line, seq } => write!(
                f,
                "wipe: the checkpoint on line {line} signed {seq} events, but the chain has none"
            ),
            CheckpointFinding::Rewritten {
                line,
                seq,
                since,
                signed,
                stored,
            } => {
                let stored = stored.as_deref().unwrap_or("(no event)");
                write!(
                    f,
                    "rewrite: event {seq} is not the event the checkpoint on line {line} signed \
                     (signed hash {signed}, stored {stored}): history was rewritten within events {}..={seq}",
                    since + 1
                )
            }
        }
    }
}

/// What [`judge`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointJudgement {
    /// Lines whose signature verified under the expected key.
    pub valid: usize,
    /// The newest valid checkpoint (highest seq, then latest time).
    pub newest: Option<Checkpoint>,
    pub findings: Vec<CheckpointFinding>,
}

/// Judges checkpoints against the chain as it is now. A line that does not verify under
/// `key` is reported and otherwise ignored (it could say anything). For each valid one:
/// its event must still exist with exactly the signed hash (else a rewrite; a missing event
/// beyond the chain's end is a truncation, or a wipe when no event is left). Together with
/// the chain verifying from its first event, a matching checkpoint at `seq` means events
/// `1..=seq` are exactly those signed and the events after it link to it.
pub fn judge(
    entries: &[CheckpointEntry],
    key: &VerifyingKey,
    facts: &ChainFacts,
) -> CheckpointJudgement {
    let mut out = CheckpointJudgement::default();
    if entries.is_empty() {
        out.findings.push(CheckpointFinding::NoCheckpoints);
        return out;
    }
    let mut valid: Vec<(usize, &Checkpoint)> = Vec::new();
    for e in entries {
        match &e.parsed {
            Err(why) => out.findings.push(CheckpointFinding::Unreadable {
                line: e.line,
                why: why.clone(),
            }),
            Ok(sc) => match sc.verify(key) {
                Ok(()) => valid.push((e.line, &sc.checkpoint)),
                Err(SignatureProblem::OtherKey { key }) => {
                    out.findings.push(CheckpointFinding::OtherKey {
                        line: e.line,
                        seq: sc.checkpoint.seq,
                        key,
                    })
                }
                Err(SignatureProblem::BadSignature) => {
                    out.findings.push(CheckpointFinding::BadSignature {
                        line: e.line,
                        seq: sc.checkpoint.seq,
                    })
                }
            },
        }
    }
    out.valid = valid.len();
    out.newest = valid
        .iter()
        .map(|(_, c)| *c)
        .max_by_key(|c| (c.seq, c.at))
        .cloned();
    // Whether each valid checkpoint still matches, by seq, to bound where a rewrite is.
    let stored_at = |seq: i64| -> Option<&str> {
        if seq == 0 {
            Some(GENESIS_HASH)
        } else {
            facts.hashes.get(&seq).map(String::as_str)
        }
    };
    let matching: Vec<i64> = valid
        .iter()
        .filter(|(_, c)| stored_at(c.seq) == Some(c.head.as_str()))
        .map(|(_, c)| c.seq)
        .collect();
    for (line, c) in &valid {
        let stored = stored_at(c.seq);
        if stored == Some(c.head.as_str()) {
            continue;
        }
        let finding = if stored.is_none() && facts.last_seq == 0 {
            CheckpointFinding::Wiped {
                line: *line,
                seq: c.seq,
            }
        } else if stored.is_none() && c.seq > facts.last_seq {
            CheckpointFinding::Truncated {
                line: *line,
                seq: c.seq,
                last_seq: facts.last_seq,
            }
        } else {
            CheckpointFinding::Rewritten {
                line: *line,
                seq: c.seq,
                since: matching
                    .iter()
                    .copied()
                    .filter(|s| *s < c.seq)
                    .max()
                    .unwrap_or(0),
                signed: c.head.clone(),
                stored: stored.map(str::to_string),
            }
        };
        out.findings.push(finding);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn cp(seq: i64, head: &str) -> Checkpoint {
        Checkpoint {
            seq,
            head: head.to_string(),
            events: seq,
            at: "2026-11-20T18:00:00.123456Z".parse().unwrap(),
        }
    }

    fn h(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn entries(lines: &[String]) -> Vec<CheckpointEntry> {
        parse_checkpoints(&lines.join("\n"))
    }

    #[test]
    fn the_signed_bytes_are_the_documented_text() {
        assert_eq!(
            String::from_utf8(cp(7, &h('a')).signing_message()).unwrap(),
            format!(
                "argent-audit-checkpoint/v1\nseq:7\nhead:{}\nevents:7\nat:2026-11-20T18:00:00.123456Z\n",
                h('a')
            )
        );
    }

    #[test]
    fn a_line_round_trips_and_verifies_only_under_its_key() {
        let signed = cp(7, &h('a')).sign(&key(1));
        let line = signed.to_line();
        assert!(line.starts_with(r#"{"at":"2026-11-20T18:00:00.123456Z","events":7,"head":"#));
        let back = SignedCheckpoint::parse_line(&line).unwrap();
        assert_eq!(back, signed);
        assert_eq!(back.verify(&key(1).verifying_key()), Ok(()));
        assert!(matches!(
            back.verify(&key(2).verifying_key()),
            Err(SignatureProblem::OtherKey { .. })
        ));
        // Any signed field changed: the signature no longer verifies.
        for edit in [
            line.replace("\"seq\":7", "\"seq\":8"),
            line.replace("\"events\":7", "\"events\":6"),
            line.replace(&h('a'), &h('b')),
            line.replace("18:00:00.123456Z", "18:00:01.123456Z"),
        ] {
            let p = SignedCheckpoint::parse_line(&edit).unwrap();
            assert_eq!(
                p.verify(&key(1).verifying_key()),
                Err(SignatureProblem::BadSignature),
                "{edit}"
            );
        }
        // A line re-signed by another key, claiming the expected key: still bad.
        let mut forged = cp(9, &h('c')).sign(&key(2));
        forged.key = public_key_hex(&key(1).verifying_key());
        assert_eq!(
            forged.verify(&key(1).verifying_key()),
            Err(SignatureProblem::BadSignature)
        );
    }

    #[test]
    fn unreadable_lines_say_why() {
        for (line, why) in [
            ("{", "not JSON"),
            ("[]", "not a JSON object"),
            (r#"{"v":2}"#, "format version 2"),
            (r#"{"v":1,"x":1}"#, "unknown field 'x'"),
        ] {
            let err = SignedCheckpoint::parse_line(line).unwrap_err();
            assert!(err.contains(why), "{line}: {err}");
        }
    }

    #[test]
    fn keys_read_back_from_hex() {
        let k = key(3);
        let again = parse_signing_key(&format!(" {}\n", signing_key_hex(&k))).unwrap();
        assert_eq!(again.to_bytes(), k.to_bytes());
        let pk = public_key_hex(&k.verifying_key());
        assert_eq!(parse_public_key(&pk).unwrap(), k.verifying_key());
        assert!(parse_public_key("abc").is_err());
        assert!(parse_signing_key("zz").is_err());
    }

    /// The chain holds events 1..=10 with hashes h(1)..; checkpoints at 4 and 8.
    fn facts(last: i64, changed: &[i64]) -> ChainFacts {
        let mut hashes = BTreeMap::new();
        for seq in [4, 8] {
            if seq <= last {
                let c = if changed.contains(&seq) { 'f' } else { 'a' };
                hashes.insert(seq, format!("{seq}{}", c.to_string().repeat(63)));
            }
        }
        ChainFacts {
            last_seq: last,
            hashes,
        }
    }

    fn two_checkpoints() -> Vec<String> {
        [4, 8]
            .iter()
            .map(|s| {
                cp(*s, &format!("{s}{}", "a".repeat(63)))
                    .sign(&key(1))
                    .to_line()
            })
            .collect()
    }

    #[test]
    fn judging_names_the_kind_of_tampering_and_where() {
        let pk = key(1).verifying_key();
        let lines = two_checkpoints();
        let j = judge(&entries(&lines), &pk, &facts(10, &[]));
        assert_eq!(j.findings, vec![]);
        assert_eq!(j.valid, 2);
        assert_eq!(j.newest.as_ref().map(|c| c.seq), Some(8));

        let kinds = |f: &ChainFacts| -> Vec<String> {
            judge(&entries(&lines), &pk, f)
                .findings
                .iter()
                .map(|x| x.to_string())
                .collect()
        };
        assert_eq!(
            kinds(&facts(6, &[])),
            [
                "truncation: the checkpoint on line 2 signed event 8, but the chain now ends at event 6: events 7..=8 were removed"
            ]
        );
        let wiped = kinds(&facts(0, &[]));
        assert_eq!(wiped.len(), 2);
        assert!(wiped.iter().all(|w| w.starts_with("wipe:")), "{wiped:?}");
        let rewritten = judge(&entries(&lines), &pk, &facts(10, &[8])).findings;
        assert!(
            matches!(
                &rewritten[..],
                [CheckpointFinding::Rewritten {
                    seq: 8,
                    since: 4,
                    line: 2,
                    ..
                }]
            ),
            "{rewritten:?}"
        );
        assert!(rewritten[0].to_string().contains("within events 5..=8"));
        let both = judge(&entries(&lines), &pk, &facts(10, &[4, 8])).findings;
        assert!(
            matches!(
                &both[..],
                [
                    CheckpointFinding::Rewritten {
                        seq: 4,
                        since: 0,
                        ..
                    },
                    CheckpointFinding::Rewritten {
                        seq: 8,
                        since: 0,
                        ..
                    }
                ]
            ),
            "{both:?}"
        );
        // An event deleted in the middle and the rest renumbered: the event at 8 is another.
        let mut renumbered = facts(9, &[]);
        renumbered.hashes.insert(8, h('9'));
        assert_eq!(
            judge(&entries(&lines), &pk, &renumbered).findings[0].kind(),
            "rewrite"
        );
    }

    #[test]
    fn forged_and_foreign_lines_are_reported_and_ignored() {
        let pk = key(1).verifying_key();
        let mut lines = two_checkpoints();
        // An attacker's own checkpoint of a rewritten head, and an edited real one.
        lines.push(cp(10, &h('e')).sign(&key(2)).to_line());
        lines.push(lines[1].replace("\"seq\":8", "\"seq\":9"));
        lines.push("garbage".into());
        let j = judge(&entries(&lines), &pk, &facts(10, &[]));
        assert_eq!(j.valid, 2);
        let kinds: Vec<&str> = j.findings.iter().map(CheckpointFinding::kind).collect();
        assert_eq!(
            kinds,
            [
                "checkpoint from another key",
                "bad signature",
                "unreadable checkpoint"
            ]
        );
        assert!(matches!(
            &j.findings[0],
            CheckpointFinding::OtherKey {
                line: 3,
                seq: 10,
                ..
            }
        ));
        assert!(matches!(
            &j.findings[1],
            CheckpointFinding::BadSignature { line: 4, seq: 9 }
        ));
        assert_eq!(
            judge(&[], &pk, &facts(10, &[])).findings,
            [CheckpointFinding::NoCheckpoints]
        );
    }

    #[test]
    fn an_empty_chain_can_be_checkpointed() {
        let pk = key(1).verifying_key();
        let line = cp(0, GENESIS_HASH).sign(&key(1)).to_line();
        let j = judge(&entries(&[line]), &pk, &ChainFacts::default());
        assert_eq!(j.findings, vec![]);
    }
}
