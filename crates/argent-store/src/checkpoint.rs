//! Signed checkpoints, the store's side: reading the chain's facts, taking a checkpoint of a
//! verified head, the sinks checkpoints are written to, and the key files. The encoding,
//! signing and judging are pure ([`crate::anchor`]).
//!
//! A checkpoint is only ever taken of a chain that verifies: from the first event when the
//! sink holds no checkpoint yet, else from the sink's last checkpoint (whose event must
//! still carry the signed hash) to the head. So the signer never signs a rewritten
//! history, and a periodic checkpoint costs a walk over the events since the last one.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row};
use thiserror::Error;

use crate::anchor::{
    ChainFacts, Checkpoint, CheckpointEntry, CheckpointJudgement, SignedCheckpoint, SigningKey,
    VerifyingKey, judge, parse_checkpoints, parse_public_key, parse_signing_key, public_key_hex,
    signing_key_hex,
};
use crate::{AuditVerification, Backend, Store, StoreError, dispatch};

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A key file or public key that cannot be used.
    #[error("{0}")]
    Key(String),
    /// The sink cannot be written or read back.
    #[error("checkpoint sink {sink}: {why}")]
    Sink { sink: String, why: String },
    /// The chain does not verify (from the sink's last checkpoint, or from the start), so
    /// its head is not signed.
    #[error("not signing a checkpoint: the audit chain is broken at event {seq}: {reason}")]
    ChainBroken { seq: i64, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where checkpoints go: an append-only place outside the database. The file sink is
/// [`FileSink`]; another (a remote log, a WORM bucket) implements this trait.
pub trait CheckpointSink: Send + Sync {
    /// Appends one checkpoint durably.
    fn append(&self, checkpoint: &SignedCheckpoint) -> Result<(), CheckpointError>;
    /// The last checkpoint the sink holds; `Ok(None)` if it holds none (or cannot read
    /// back, in which case the next checkpoint verifies the whole chain).
    fn last(&self) -> Result<Option<SignedCheckpoint>, CheckpointError>;
    /// For messages: where the sink writes.
    fn describe(&self) -> String;
}

/// Checkpoints as JSON lines appended to a file (opened in append mode, each line written
/// in one `write` and synced to disk). Make the file append-only where the platform can
/// (`chattr +a` on Linux), or ship it elsewhere, so that whoever controls the database does
/// not also control it.
#[derive(Clone, Debug)]
pub struct FileSink {
    path: PathBuf,
}

impl FileSink {
    pub fn new(path: impl Into<PathBuf>) -> FileSink {
        FileSink { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The tail of a file that is read to find its last line.
const TAIL: u64 = 64 * 1024;

impl CheckpointSink for FileSink {
    fn append(&self, checkpoint: &SignedCheckpoint) -> Result<(), CheckpointError> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(io(&self.path))?;
        // A file whose last line has no newline (a torn write) gets one first, so the new
        // line stays a line of its own.
        let len = f.metadata().map_err(io(&self.path))?.len();
        let mut line = String::new();
        if len > 0 {
            let mut r = std::fs::File::open(&self.path).map_err(io(&self.path))?;
            r.seek(SeekFrom::Start(len - 1)).map_err(io(&self.path))?;
            let mut last = [0u8; 1];
            r.read_exact(&mut last).map_err(io(&self.path))?;
            if last[0] != b'\n' {
                line.push('\n');
            }
        }
        line.push_str(&checkpoint.to_line());
        line.push('\n');
        f.write_all(line.as_bytes()).map_err(io(&self.path))?;
        f.sync_data().map_err(io(&self.path))
    }

    fn last(&self) -> Result<Option<SignedCheckpoint>, CheckpointError> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&self.path)(e)),
        };
        let len = f.metadata().map_err(io(&self.path))?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(TAIL)))
            .map_err(io(&self.path))?;
        let mut tail = Vec::new();
        f.read_to_end(&mut tail).map_err(io(&self.path))?;
        let text = String::from_utf8_lossy(&tail);
        let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) else {
            return Ok(None);
        };
        SignedCheckpoint::parse_line(line)
            .map(Some)
            .map_err(|why| CheckpointError::Sink {
                sink: self.describe(),
                why: format!("its last line is not a checkpoint: {why}"),
            })
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// Every line of a checkpoint file, parsed (a missing file is an error: the operator named
/// it).
pub fn read_checkpoint_file(path: &Path) -> Result<Vec<CheckpointEntry>, CheckpointError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    Ok(parse_checkpoints(&text))
}

/// Writes a new signing key's seed (hex) to `path`, readable by its owner only (0600).
/// Refuses to overwrite anything.
pub fn create_key_file(path: &Path, key: &SigningKey) -> Result<(), CheckpointError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CheckpointError::Key(format!(
                "{} exists; refusing to overwrite it (a lost key cannot sign again; move it \
                 away first if you mean to replace it)",
                path.display()
            ))
        } else {
            io(path)(e)
        }
    })?;
    f.write_all(format!("{}\n", signing_key_hex(key)).as_bytes())
        .map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Reads a signing key written by [`create_key_file`]. Refuses a file that others can read
/// (as ssh does): a key anyone on the machine can read signs for anyone.
pub fn read_key_file(path: &Path) -> Result<SigningKey, CheckpointError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(io(path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CheckpointError::Key(format!(
                "{} can be read by others (mode {:o}); `chmod 600` it: the signing key must be \
                 private",
                path.display(),
                mode & 0o777
            )));
        }
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    parse_signing_key(&text)
        .map_err(|why| CheckpointError::Key(format!("{}: {why}", path.display())))
}

/// A public key given as 64 hex digits, or the path of a file holding them.
pub fn read_public_key(arg: &str) -> Result<VerifyingKey, CheckpointError> {
    if let Ok(k) = parse_public_key(arg) {
        return Ok(k);
    }
    let path = Path::new(arg);
    if !path.exists() {
        return Err(CheckpointError::Key(format!(
            "'{arg}' is neither a public key (64 hex digits) nor a file"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    parse_public_key(&text).map_err(|why| CheckpointError::Key(format!("{arg}: {why}")))
}

/// How many sequence numbers one `IN (…)` list binds.
const FACTS_CHUNK: usize = 500;

impl Store {
    /// The chain's facts at the given sequence numbers, in one consistent snapshot: the
    /// highest sequence number stored and the hash stored at each of `seqs` that exists.
    pub async fn checkpoint_facts(&self, seqs: &BTreeSet<i64>) -> Result<ChainFacts, StoreError> {
        let begin = match self.backend() {
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        let wanted: Vec<i64> = seqs.iter().copied().filter(|s| *s > 0).collect();
        self.audit_settle().await?;
        Ok(dispatch!(self, |pool| {
            let mut tx = pool.begin_with(begin).await?;
            let last_seq: i64 =
                sqlx::query("SELECT COALESCE(MAX(seq), 0) AS last FROM audit_events")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("last")?;
            let mut facts = ChainFacts {
                last_seq,
                ..ChainFacts::default()
            };
            for chunk in wanted.chunks(FACTS_CHUNK) {
                let mut q = QueryBuilder::new("SELECT seq, hash FROM audit_events WHERE seq IN (");
                let mut list = q.separated(", ");
                for s in chunk {
                    list.push_bind(*s);
                }
                q.push(")");
                for r in q.build().fetch_all(&mut *tx).await? {
                    facts.hashes.insert(r.try_get("seq")?, r.try_get("hash")?);
                }
            }
            tx.rollback().await?;
            facts
        }))
    }

    /// Judges checkpoints (e.g. [`read_checkpoint_file`]'s) signed by `key` against the
    /// chain as it is now; see [`crate::anchor::judge`].
    pub async fn check_checkpoints(
        &self,
        entries: &[CheckpointEntry],
        key: &VerifyingKey,
    ) -> Result<CheckpointJudgement, StoreError> {
        let seqs: BTreeSet<i64> = entries
            .iter()
            .filter_map(|e| e.parsed.as_ref().ok())
            .map(|c| c.checkpoint.seq)
            .collect();
        let facts = self.checkpoint_facts(&seqs).await?;
        Ok(judge(entries, key, &facts))
    }

    /// Signs the chain's head with `key` and appends the checkpoint to `sink`, after
    /// verifying the chain from the sink's last checkpoint (which must be this key's and
    /// still match) or, for an empty sink, from the first event. With `only_if_moved`
    /// nothing is written when the head is the one the sink's last checkpoint signed
    /// (`Ok(None)`). A chain that does not verify is not signed
    /// ([`CheckpointError::ChainBroken`]).
    pub async fn write_checkpoint(
        &self,
        key: &SigningKey,
        sink: &dyn CheckpointSink,
        at: DateTime<Utc>,
        only_if_moved: bool,
    ) -> Result<Option<SignedCheckpoint>, CheckpointError> {
        let last = sink.last()?;
        if let Some(l) = &last {
            l.verify(&key.verifying_key())
                .map_err(|problem| CheckpointError::Sink {
                    sink: sink.describe(),
                    why: format!(
                        "its last checkpoint (event {}) does not verify under this key ({}): {problem}; \
                         not signing on top of it",
                        l.checkpoint.seq,
                        public_key_hex(&key.verifying_key())
                    ),
                })?;
        }
        let anchor = last
            .as_ref()
            .map(|l| (l.checkpoint.seq, l.checkpoint.head.clone()));
        let (events, head) = match self.audit_verify_from(anchor).await? {
            AuditVerification::Broken { seq, reason } => {
                return Err(CheckpointError::ChainBroken { seq, reason });
            }
            AuditVerification::Intact { events, head } => (events, head),
        };
        if only_if_moved
            && let Some(l) = &last
            && l.checkpoint.seq == events
            && l.checkpoint.head == head
        {
            return Ok(None);
        }
        let signed = Checkpoint {
            seq: events,
            head,
            events,
            at: crate::micros(at),
        }
        .sign(key);
        sink.append(&signed)?;
        Ok(Some(signed))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::anchor::Checkpoint;

    fn signed(seq: i64) -> SignedCheckpoint {
        Checkpoint {
            seq,
            head: "ab".repeat(32),
            events: seq,
            at: "2026-11-20T18:00:00Z".parse().unwrap(),
        }
        .sign(&SigningKey::from_bytes(&[5; 32]))
    }

    #[test]
    fn a_file_sink_appends_lines_and_reads_back_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink::new(dir.path().join("cp.jsonl"));
        assert_eq!(sink.last().unwrap(), None);
        sink.append(&signed(1)).unwrap();
        sink.append(&signed(2)).unwrap();
        assert_eq!(sink.last().unwrap(), Some(signed(2)));
        // A torn last line (no newline) is kept apart from the next one.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(sink.path())
            .unwrap();
        f.write_all(b"{\"v\":1,\"se").unwrap();
        assert!(sink.last().is_err(), "a torn last line is reported");
        sink.append(&signed(3)).unwrap();
        let entries = read_checkpoint_file(sink.path()).unwrap();
        assert_eq!(entries.len(), 4);
        assert!(entries[2].parsed.is_err());
        assert_eq!(entries[3].parsed.as_ref().unwrap(), &signed(3));
        assert_eq!(sink.last().unwrap(), Some(signed(3)));
    }

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let key = SigningKey::from_bytes(&[9; 32]);
        create_key_file(&path, &key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(read_key_file(&path).unwrap().to_bytes(), key.to_bytes());
        let err = create_key_file(&path, &SigningKey::from_bytes(&[1; 32])).unwrap_err();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(read_key_file(&path).unwrap().to_bytes(), key.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = read_key_file(&path).unwrap_err();
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        let pk = public_key_hex(&key.verifying_key());
        assert_eq!(read_public_key(&pk).unwrap(), key.verifying_key());
        let pk_file = dir.path().join("audit.pub");
        std::fs::write(&pk_file, format!("{pk}\n")).unwrap();
        assert_eq!(
            read_public_key(pk_file.to_str().unwrap()).unwrap(),
            key.verifying_key()
        );
        assert!(read_public_key("nope").is_err());
    }
}
