//! The audit trail: append-only and hash-chained.
//!
//! Every event gets the next sequence number (1, 2, 3, … with no gaps) and is written as a
//! canonical JSON text — sorted keys, no whitespace — of
//! `{actor, at, customer_id, kind, payload, run_id, seq}`, `at` in RFC 3339 UTC with
//! microseconds. Its hash is the hex SHA-256 of the previous event's hash (64 zeros for the
//! first) followed by that text. The exact text is stored, so verification recomputes the
//! hash from the bytes that were hashed; the indexed columns (seq, at, run_id, customer_id,
//! actor, kind, rule_ids) are checked against it. The database refuses UPDATE and DELETE on
//! the table (triggers on both backends), and a one-row `audit_head` holds the last seq and
//! hash: every append moves it, which serializes appenders (an advisory lock on
//! PostgreSQL, the write lock of `BEGIN IMMEDIATE` on SQLite) and lets verification notice
//! a truncated tail. On PostgreSQL a transaction's events are staged unchained
//! (`audit_staged`) by one statement sent with its `COMMIT`, so no audited transaction
//! holds the chain through its durable commit, and the commit is one round trip. The
//! store's background task ([`Chainer`]), woken by the commit, then chains everything
//! staged so far (this transaction's events and every other's) into `audit_events` under
//! the lock and moves the head; the committer does not wait for it. One chaining commit
//! covers the transactions that committed while the previous one ran, so audited commits
//! are serialized neither by the lock nor by its WAL flush. A transaction's events stay
//! adjacent; the seq order is the chaining order. Every reader of the trail settles first
//! ([`Store::audit_settle`]: chains whatever is staged), so a read sees every event
//! committed before it, in this process or another, whether or not a chainer has run; so
//! do the next appender that needs its events' hashes ([`Store::audit_append`]), `audit
//! verify`, the cross-check and a reader that missed one (the delivery's binding check,
//! the active documents' check). Events a process committed and never chained (it died
//! first, or ended before its chainer ran) are taken the same way.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{QueryBuilder, Row};

use crate::tx::{Arg, TxInner, dispatch_tx};
use crate::{Backend, Result, Session, Store, StoreError, StoreTx, dispatch, dispatch_on, now};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Rows read per round trip when verifying or exporting the chain.
const BATCH: i64 = 1000;

/// Events per multi-row INSERT (10 binds each: well under both backends' limits).
const APPEND_CHUNK: usize = 500;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEvent {
    pub run_id: Option<String>,
    pub customer_id: Option<String>,
    /// Who acted: `agent`, `policy`, `model`, a user name, …
    pub actor: String,
    /// What happened: `model_call`, `tool_call`, `policy_decision`, `approval`, …
    pub kind: String,
    /// Everything else. Rule ids found at `payload.rules[*].id` (or
    /// `payload.decision.rules[*].id`, or as plain strings in those arrays) are indexed for
    /// [`AuditFilter::rule_id`]; rule ids must not contain commas.
    pub payload: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub run_id: Option<String>,
    pub customer_id: Option<String>,
    pub actor: String,
    pub kind: String,
    pub payload: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Which events [`Store::audit_events`] returns; every field that is set must match.
/// `since` is inclusive, `until` exclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub customer_id: Option<String>,
    pub run_id: Option<String>,
    pub actor: Option<String>,
    pub kind: Option<String>,
    pub rule_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AuditVerification {
    /// Every event chains to the one before and the head names the last one.
    Intact { events: i64, head: String },
    /// The first place the chain does not hold, and why.
    Broken { seq: i64, reason: String },
}

/// The canonical event as stored (and hashed).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Canonical {
    seq: i64,
    at: String,
    run_id: Option<String>,
    customer_id: Option<String>,
    actor: String,
    kind: String,
    payload: Value,
}

/// JSON text with object keys sorted (byte order) at every depth and no whitespace.
/// Written by hand so that it does not depend on serde_json's `preserve_order` feature,
/// which another crate in the build may switch on.
pub(crate) fn canonical_json(v: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(v, &mut out);
    canonical_string(out)
}

/// The bytes written by [`write_canonical`] and `serde_json` as a `String`: always UTF-8,
/// since both write only whole characters.
fn canonical_string(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes `v` as canonical JSON: keys sorted at every depth, strings, numbers and literals
/// written by `serde_json` straight into `out` (no copy of the value, no string per key).
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&k.as_str(), out);
                out.push(b':');
                write_canonical(x, out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

/// A string, number, boolean or null as `serde_json` writes it (the same text as its
/// `to_string`). Writing into a `Vec` cannot fail, and these serialize without error.
fn write_scalar(v: &(impl serde::Serialize + ?Sized), out: &mut Vec<u8>) {
    if let Err(e) = serde_json::to_writer(&mut *out, v) {
        tracing::error!(error = %e, "audit: writing a JSON scalar");
    }
}

fn format_at(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn chain_hash(prev_hash: &str, canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

/// `,a,b,` for the rule ids the payload names, `` if none.
fn rule_ids(payload: &Value) -> String {
    let mut ids: Vec<&str> = Vec::new();
    for rules in [
        payload.get("rules"),
        payload.get("decision").and_then(|d| d.get("rules")),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(list) = rules.as_array() {
            for r in list {
                let id = r.as_str().or_else(|| r.get("id").and_then(Value::as_str));
                if let Some(id) = id
                    && !id.is_empty()
                    && !id.contains(',')
                    && !ids.contains(&id)
                {
                    ids.push(id);
                }
            }
        }
    }
    if ids.is_empty() {
        String::new()
    } else {
        format!(",{},", ids.join(","))
    }
}

fn parse_canonical(text: &str) -> std::result::Result<(Canonical, DateTime<Utc>), String> {
    let c: Canonical = serde_json::from_str(text).map_err(|e| format!("unreadable: {e}"))?;
    let at = DateTime::parse_from_rfc3339(&c.at)
        .map_err(|e| format!("bad time '{}': {e}", c.at))?
        .with_timezone(&Utc);
    Ok((c, at))
}

/// One stored row, as read for verification and listing.
struct Stored {
    seq: i64,
    at: DateTime<Utc>,
    run_id: Option<String>,
    customer_id: Option<String>,
    actor: String,
    kind: String,
    rule_ids: String,
    canonical: String,
    prev_hash: String,
    hash: String,
}

/// The canonical text of an event: what its hash covers after the previous hash.
fn canonical_text(e: &AuditEvent) -> String {
    // The canonical JSON of the object {seq, at, run_id, customer_id, actor, kind,
    // payload}, written field by field in sorted key order (building the object first
    // copied the payload, a tenth of a planner-loop episode's instructions; #16).
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"actor\":");
    write_scalar(e.actor.as_str(), &mut out);
    out.extend_from_slice(b",\"at\":");
    write_scalar(format_at(e.at).as_str(), &mut out);
    out.extend_from_slice(b",\"customer_id\":");
    write_scalar(&e.customer_id, &mut out);
    out.extend_from_slice(b",\"kind\":");
    write_scalar(e.kind.as_str(), &mut out);
    out.extend_from_slice(b",\"payload\":");
    write_canonical(&e.payload, &mut out);
    out.extend_from_slice(b",\"run_id\":");
    write_scalar(&e.run_id, &mut out);
    out.extend_from_slice(b",\"seq\":");
    write_scalar(&e.seq, &mut out);
    out.push(b'}');
    canonical_string(out)
}

impl AuditEvent {
    /// The canonical text the event's hash covers (see the module docs): anyone holding an
    /// export can recompute the chain with it and [`audit_chain_hash`].
    pub fn canonical_text(&self) -> String {
        canonical_text(self)
    }

    /// Whether the event's hash is the SHA-256 of its `prev_hash` and its content, i.e.
    /// the event read is the event that was hashed. (Whether it is still linked into the
    /// chain is [`Store::audit_verify`]'s question.)
    pub fn hash_is_consistent(&self) -> bool {
        chain_hash(&self.prev_hash, &canonical_text(self)) == self.hash
    }
}

/// The hash of an event: hex SHA-256 of the previous event's hash followed by the event's
/// canonical text.
pub fn audit_chain_hash(prev_hash: &str, canonical: &str) -> String {
    chain_hash(prev_hash, canonical)
}

impl Stored {
    fn into_event(self) -> Result<AuditEvent> {
        let (c, at) = parse_canonical(&self.canonical).map_err(|why| StoreError::Corrupt {
            what: "audit event",
            id: self.seq.to_string(),
            why,
        })?;
        Ok(AuditEvent {
            seq: c.seq,
            at,
            run_id: c.run_id,
            customer_id: c.customer_id,
            actor: c.actor,
            kind: c.kind,
            payload: c.payload,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

macro_rules! stored_row {
    ($r:expr) => {
        Stored {
            seq: $r.try_get("seq")?,
            at: $r.try_get("at")?,
            run_id: $r.try_get("run_id")?,
            customer_id: $r.try_get("customer_id")?,
            actor: $r.try_get("actor")?,
            kind: $r.try_get("kind")?,
            rule_ids: $r.try_get("rule_ids")?,
            canonical: $r.try_get("canonical")?,
            prev_hash: $r.try_get("prev_hash")?,
            hash: $r.try_get("hash")?,
        }
    };
}

const STORED_COLS: &str =
    "seq, at, run_id, customer_id, actor, kind, rule_ids, canonical, prev_hash, hash";

/// Walks the chain in seq order; the first inconsistency ends it.
struct Verifier {
    expected_seq: i64,
    prev_hash: String,
}

impl Verifier {
    /// Expects event `seq + 1` next, chained on `hash`.
    fn after(seq: i64, hash: String) -> Verifier {
        Verifier {
            expected_seq: seq + 1,
            prev_hash: hash,
        }
    }

    fn feed(&mut self, row: &Stored) -> Option<AuditVerification> {
        let broken = |seq: i64, reason: String| Some(AuditVerification::Broken { seq, reason });
        let want = self.expected_seq;
        if row.seq != want {
            return broken(
                want,
                format!(
                    "event {want} is missing: the next stored event is {} (deleted or renumbered rows)",
                    row.seq
                ),
            );
        }
        if row.prev_hash != self.prev_hash {
            return broken(
                want,
                format!(
                    "event {want} does not chain to event {}: prev_hash {} but the previous hash is {} \
                     (rows deleted, reordered or replaced)",
                    want - 1,
                    row.prev_hash,
                    self.prev_hash
                ),
            );
        }
        let recomputed = chain_hash(&row.prev_hash, &row.canonical);
        if recomputed != row.hash {
            return broken(
                want,
                format!(
                    "event {want} was altered: its content hashes to {recomputed}, stored hash is {}",
                    row.hash
                ),
            );
        }
        let (c, at) = match parse_canonical(&row.canonical) {
            Ok(x) => x,
            Err(why) => return broken(want, format!("event {want} is {why}")),
        };
        let mismatch = if c.seq != row.seq {
            Some(format!(
                "seq column {} but the event says {}",
                row.seq, c.seq
            ))
        } else if at != row.at {
            Some(format!(
                "at column {} but the event says {}",
                format_at(row.at),
                c.at
            ))
        } else if c.run_id != row.run_id {
            Some(format!(
                "run_id column {:?} but the event says {:?}",
                row.run_id, c.run_id
            ))
        } else if c.customer_id != row.customer_id {
            Some(format!(
                "customer_id column {:?} but the event says {:?}",
                row.customer_id, c.customer_id
            ))
        } else if c.actor != row.actor {
            Some(format!(
                "actor column '{}' but the event says '{}'",
                row.actor, c.actor
            ))
        } else if c.kind != row.kind {
            Some(format!(
                "kind column '{}' but the event says '{}'",
                row.kind, c.kind
            ))
        } else if rule_ids(&c.payload) != row.rule_ids {
            Some(format!(
                "rule_ids column '{}' but the event names '{}'",
                row.rule_ids,
                rule_ids(&c.payload)
            ))
        } else {
            None
        };
        if let Some(m) = mismatch {
            return broken(
                want,
                format!("event {want}'s index columns were altered: {m}"),
            );
        }
        self.prev_hash = row.hash.clone();
        self.expected_seq += 1;
        None
    }

    fn finish(self, head: Option<(i64, String)>) -> AuditVerification {
        let events = self.expected_seq - 1;
        match head {
            None => AuditVerification::Broken {
                seq: events,
                reason: "the audit head row is missing".into(),
            },
            Some((seq, _)) if seq != events => AuditVerification::Broken {
                seq: seq.max(events),
                reason: format!(
                    "the head says the chain has {seq} events but {events} chain intact from the start \
                     (events deleted from the tail, or the head was altered)"
                ),
            },
            Some((_, hash)) if hash != self.prev_hash => AuditVerification::Broken {
                seq: events,
                reason: format!(
                    "the head hash {hash} is not the last event's hash {}",
                    self.prev_hash
                ),
            },
            Some((_, hash)) => AuditVerification::Intact { events, head: hash },
        }
    }
}

impl StoreTx {
    /// Appends one event to the chain, inside this transaction: it becomes visible (and
    /// takes its seq for good) when the transaction commits, and vanishes with a rollback.
    /// See [`StoreTx::audit_append_many`].
    pub async fn audit_append(&mut self, e: NewAuditEvent) -> Result<()> {
        self.append_events(vec![e]).await.map(drop)
    }

    /// Appends events to the chain in the order given, inside this transaction: the same
    /// chain (and the same serialization of appenders) as appending them one by one, in
    /// fewer round trips. Nothing is returned: where an event lands in the chain (its seq
    /// and hashes) is settled only when the transaction commits, after any transaction
    /// that committed first; read the trail, or use [`Store::audit_append`], to see it.
    ///
    /// On PostgreSQL the events are kept in the transaction, with no round trip, and staged
    /// with the `COMMIT`, in the same round trip; the store's chainer chains them on the
    /// head as it is then (see the module docs). Reads inside the transaction do not see
    /// its own appended events.
    ///
    /// On a SQLite store's writer the events are queued, chained on the head this writer's
    /// last commit left; if another process has appended since, they are re-chained on the
    /// stored head when they are sent. Elsewhere (an in-memory SQLite store) the head is
    /// moved first, which reserves the seqs, and the events are written at once.
    pub async fn audit_append_many(&mut self, events: Vec<NewAuditEvent>) -> Result<()> {
        self.append_events(events).await.map(drop)
    }

    /// [`StoreTx::audit_append_many`], returning the events as chained now. On PostgreSQL
    /// their seqs and hashes are placeholders (chained after this transaction's earlier
    /// appends, from seq 0 for its first): the head is not read, as the chainer chains
    /// them anew. On a SQLite writer they are chained on the remembered head, which
    /// another process may have moved. Only [`Store::audit_append`] uses them, and it
    /// corrects them on PostgreSQL from what the commit stored.
    async fn append_events(&mut self, events: Vec<NewAuditEvent>) -> Result<Vec<AuditEvent>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let n = i64::try_from(events.len())
            .map_err(|_| StoreError::Invalid("too many audit events at once".into()))?;
        if matches!(self.inner, TxInner::Postgres(_)) {
            // No read of the head: the chainer chains staged events on the head as it is
            // when it runs, and the placeholders are only ever seen by `Store::audit_append`.
            let after = match self.pending_audit.last() {
                Some(q) => (q.event.seq, q.event.hash.clone()),
                None => (0, String::new()),
            };
            let mut queued = queue(events);
            chain_after(&mut queued, after);
            let out = queued.iter().map(|q| q.event.clone()).collect();
            self.pending_audit.extend(queued);
            return Ok(out);
        }
        // On a SQLite store's writer the head was read when the transaction took the write
        // lock; elsewhere, moving it forward first reserves the seqs.
        let cached = match &mut self.inner {
            TxInner::SqliteWriter(w) => w.audit_head().await?,
            _ => None,
        };
        let moves_seq = cached.is_some();
        let (last_seq, prev_hash): (i64, String) = match cached {
            Some((seq, hash)) => (seq + n, hash),
            None => dispatch_tx!(self, |conn| {
                let r = sqlx::query(
                    "UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash",
                )
                .bind(n)
                .fetch_one(&mut *conn)
                .await?;
                (r.try_get("seq")?, r.try_get("hash")?)
            }),
        };
        let mut queued = queue(events);
        chain_after(&mut queued, (last_seq - n, prev_hash));
        if let TxInner::SqliteWriter(w) = &mut self.inner
            && moves_seq
        {
            // Queued for the transaction's next round trip (see `tx`).
            let out = queued.iter().map(|q| q.event.clone()).collect();
            w.queue_audit(queued)?;
            return Ok(out);
        }
        let prev_hash = queued
            .last()
            .map(|q| q.event.hash.clone())
            .unwrap_or_default();
        let rows: Vec<(String, String)> = queued
            .iter()
            .map(|q| (q.rules.clone(), q.canonical.clone()))
            .collect();
        let out: Vec<AuditEvent> = queued.into_iter().map(|q| q.event).collect();
        let all: Vec<(&AuditEvent, &(String, String))> = out.iter().zip(&rows).collect();
        let chunks: Vec<_> = all.chunks(APPEND_CHUNK).collect();
        let backend = self.backend();
        dispatch_tx!(self, |conn| {
            for (i, chunk) in chunks.iter().enumerate() {
                // The last INSERT also moves the head's hash, in the same round trip: on
                // SQLite as a second statement of the same command, on PostgreSQL as a
                // data-modifying CTE.
                let with_head = i + 1 == chunks.len();
                let mut q = QueryBuilder::new(match (with_head, backend) {
                    (true, Backend::Postgres) => "WITH appended AS (",
                    _ => "",
                });
                q.push(
                    "INSERT INTO audit_events (seq, at, run_id, customer_id, actor, kind, rule_ids, \
                     canonical, prev_hash, hash) ",
                );
                q.push_values(chunk.iter(), |mut b, (ev, (rules, canonical))| {
                    b.push_bind(ev.seq)
                        .push_bind(ev.at)
                        .push_bind(ev.run_id.as_deref())
                        .push_bind(ev.customer_id.as_deref())
                        .push_bind(ev.actor.as_str())
                        .push_bind(ev.kind.as_str())
                        .push_bind(rules.as_str())
                        .push_bind(canonical.as_str())
                        .push_bind(ev.prev_hash.as_str())
                        .push_bind(ev.hash.as_str());
                });
                if with_head {
                    q.push(match backend {
                        Backend::Postgres => ") UPDATE audit_head SET ",
                        Backend::Sqlite => "; UPDATE audit_head SET ",
                    });
                    if moves_seq {
                        q.push("seq = ");
                        q.push_bind(last_seq);
                        q.push(", ");
                    }
                    q.push("hash = ");
                    q.push_bind(prev_hash.as_str());
                    q.push(" WHERE id = 1");
                }
                q.build().execute(&mut *conn).await?;
            }
        });
        Ok(out)
    }
}

/// PostgreSQL: the first key of the advisory lock every chaining transaction takes
/// (transaction-scoped; "arge" in ASCII). The second is the schema's name hashed, so stores
/// in different schemas of one database (the conformance tests) do not wait for each other.
const CHAIN_LOCK: i32 = 0x6172_6765;

/// PostgreSQL: the query that stages a transaction's appended events and commits it (see
/// [`StoreTx::audit_append_many`]), sent as one simple query: the events go into
/// `audit_staged` unchained, with one group number for the transaction (taken now, right
/// before its commit) and their order in it; their ids come back, then `COMMIT` (durable as any commit, and concurrent with other transactions'
/// commits: no lock is held through it) and `BEGIN`, which leaves the connection in an
/// (empty) transaction that [`chain_staged_sql`] then uses. Nothing a caller wrote is
/// quoted: every text goes in as hex digits (`decode(…, 'hex')`), every instant as an
/// RFC 3339 text this module formats, so no value can end the literal. The prefix is the
/// event's canonical text up to `"seq":` (`seq` being the canonical object's last key);
/// the chaining appends the seq and `}`.
fn stage_and_commit_sql(pending: &[QueuedEvent]) -> Result<String> {
    use crate::pg_text_literal as text;
    fn opt_text(out: &mut String, s: Option<&str>) {
        match s {
            Some(s) => text(out, s),
            None => out.push_str("NULL"),
        }
    }
    // One array a column, in the events' order (see `prepared::STAGE_SQL`).
    let mut columns: [String; 7] = Default::default();
    for (i, q) in pending.iter().enumerate() {
        let e = &q.event;
        let prefix = q
            .canonical
            .strip_suffix(&format!("{}}}", e.seq))
            .filter(|p| p.ends_with("\"seq\":"))
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "audit event {}: its canonical text does not end with its seq",
                    e.seq
                ))
            })?;
        if i > 0 {
            for c in &mut columns {
                c.push_str(", ");
            }
        }
        let [c_prefix, c_at, c_run, c_customer, c_actor, c_kind, c_rules] = &mut columns;
        text(c_prefix, prefix);
        c_at.push_str(&format!("'{}'", format_at(e.at)));
        opt_text(c_run, e.run_id.as_deref());
        opt_text(c_customer, e.customer_id.as_deref());
        text(c_actor, &e.actor);
        text(c_kind, &e.kind);
        text(c_rules, &q.rules);
    }
    let types = [
        "text",
        "timestamptz",
        "text",
        "text",
        "text",
        "text",
        "text",
    ];
    let arrays: Vec<String> = columns
        .iter()
        .zip(types)
        .map(|(c, t)| format!("ARRAY[{c}]::{t}[]"))
        .collect();
    Ok(format!(
        "EXECUTE {}({}); COMMIT; BEGIN",
        crate::prepared::STAGE,
        arrays.join(", ")
    ))
}

/// PostgreSQL: chains every staged event (see `migrations/postgres/0026_audit_staged.sql`),
/// as one simple query that is one transaction: take the chain's advisory lock (waiting for
/// the chaining transaction holding it to end); then `audit_chain_staged_rows()`
/// (`migrations/postgres/0032_audit_chain_function.sql`), whose statements take their
/// snapshots after the lock (READ COMMITTED), moves every staged event into `audit_events`
/// in order (by group, then within it), chained on the head
/// (`hash = sha256(prev_hash || prefix || seq || '}')`), in time linear in their number, and
/// moves the head; then read back the events staged as `mine` (chained now or by an
/// earlier chaining). A call that finds nothing staged writes nothing, so its commit does
/// not wait for a flush; one that chains holds the lock through its durable commit, and
/// chains at once everything staged meanwhile. The seq order is the chaining order; a
/// transaction's events stay together, and one that saw another's commit took its group
/// number after it, so is chained after it.
fn chain_staged_sql(mine: &[i64]) -> String {
    let chain = chain_sql();
    let ids: Vec<String> = mine.iter().map(i64::to_string).collect();
    format!(
        "{chain}; SELECT seq, prev_hash, hash FROM audit_events WHERE staged_id IN ({}) \
         ORDER BY seq; COMMIT; BEGIN",
        ids.join(", ")
    )
}

impl StoreTx {
    /// Commits; on PostgreSQL, with the events appended in this transaction staged in the
    /// same round trip, then chained (see [`stage_and_commit_sql`], [`chain_staged_sql`]).
    /// Returns each written event's stored (seq, prev_hash, hash), in order (nothing on
    /// SQLite, which writes them earlier). If the chaining fails after the commit (the
    /// connection dropped), the transaction stands and its events stay staged for the next
    /// chaining; the error is logged and the events' provisional values are returned.
    pub(crate) async fn commit_returning_audit(self) -> Result<Vec<(i64, String, String)>> {
        let StoreTx {
            inner,
            pending_audit,
            ..
        } = self;
        let mut p = match inner {
            TxInner::Postgres(p) => p,
            TxInner::SqliteWriter(w) => {
                w.commit().await?;
                return Ok(Vec::new());
            }
            TxInner::Sqlite(t) => {
                t.commit().await?;
                return Ok(Vec::new());
            }
        };
        if pending_audit.is_empty() {
            commit_queued(p).await?;
            return Ok(Vec::new());
        }
        let n = pending_audit.len();
        // The queued writes, then the staging and the COMMIT (the queued writes' guards
        // return no rows, so the rows are the staging's).
        let mut sql = p.take_queued()?;
        sql.push_str(&stage_and_commit_sql(&pending_audit)?);
        // On an error nothing after it ran (COMMIT included): dropping `p` rolls back.
        // A query without arguments goes as a simple query: its statements run in order.
        let staged = match sqlx::Executor::fetch_all(&mut *p.t, sql.as_str()).await {
            Ok(rows) => rows,
            Err(e) => return Err(p.failure(e)),
        };
        let mut t = p.t;
        let mut ids = Vec::with_capacity(n);
        for r in &staged {
            ids.push(r.try_get::<i64, _>("id")?);
        }
        ids.sort_unstable();
        // Committed. From here on an error does not undo anything.
        let chained = async {
            let rows = sqlx::Executor::fetch_all(&mut *t, chain_staged_sql(&ids).as_str()).await?;
            // The empty transaction the query's `BEGIN` opened.
            t.commit().await?;
            Ok::<_, StoreError>(rows)
        }
        .await;
        let provisional = || {
            pending_audit
                .iter()
                .map(|q| (q.event.seq, q.event.prev_hash.clone(), q.event.hash.clone()))
                .collect()
        };
        let rows = match chained {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "audit: committed, but chaining its staged events failed; the next chaining takes them"
                );
                return Ok(provisional());
            }
        };
        // The first row is the chaining statement's count; the rest are ours.
        let mut out = Vec::with_capacity(n);
        for r in rows.iter().filter(|r| r.try_get::<i64, _>("seq").is_ok()) {
            out.push((
                r.try_get("seq")?,
                r.try_get("prev_hash")?,
                r.try_get("hash")?,
            ));
        }
        if out.len() != n {
            // Chained by nobody? Only if the staged rows were removed by hand, which the
            // verification (a missing tail) may not see; say so rather than pretend.
            return Err(StoreError::Corrupt {
                what: "audit staging",
                id: ids.first().map(i64::to_string).unwrap_or_default(),
                why: format!("{} of {n} staged events were found chained", out.len()),
            });
        }
        Ok(out)
    }
}

impl Store {
    /// PostgreSQL: chains every event left staged (by a transaction whose chaining has not
    /// run yet, or by a process that died before it did); returns how many. SQLite stages
    /// nothing: 0.
    pub async fn audit_chain_staged(&self) -> Result<i64> {
        let crate::Pool::Postgres(pool) = &self.pool else {
            return Ok(0);
        };
        chain_staged_on(pool).await
    }

    /// PostgreSQL: makes every committed audit event part of the chain before a read of it,
    /// so a reader sees what was committed before it asked (read your writes, in this
    /// process or another): one cheap query when nothing is staged, a chaining when
    /// something is. SQLite: nothing to do.
    pub async fn audit_settle(&self) -> Result<()> {
        self.audit_settle_on(&mut Session::none()).await
    }

    /// [`Store::audit_settle`], its check on `session`'s connection when one is held.
    pub(crate) async fn audit_settle_on(&self, session: &mut Session) -> Result<()> {
        let crate::Pool::Postgres(pool) = &self.pool else {
            return Ok(());
        };
        const SQL: &str = "SELECT EXISTS (SELECT 1 FROM audit_staged)";
        let staged: bool = dispatch_on!(self, session, |ex| sqlx::query_scalar(SQL)
            .fetch_one(ex)
            .await?);
        if staged {
            // The chaining takes a connection of its own: never while holding one.
            session.release().await;
            chain_staged_on(pool).await?;
        }
        Ok(())
    }
}

/// PostgreSQL: the chain's advisory lock, then the chaining of everything staged (the
/// count of events chained in column `count`), for a transaction already begun.
fn chain_sql() -> String {
    format!(
        "SELECT count(*) AS locked \
         FROM (SELECT pg_advisory_xact_lock({CHAIN_LOCK}, hashtext(coalesce(current_schema(), '')))) l; \
         SELECT audit_chain_staged_rows() AS count"
    )
}

/// PostgreSQL: one chaining of everything staged, in a transaction of its own, sent as one
/// simple query (`BEGIN`, [`chain_sql`], `COMMIT`: one round trip, where a transaction
/// begun and committed apart took three); returns how many events it chained. A failure
/// part-way leaves the session in an aborted transaction, so that connection is closed
/// rather than returned to the pool.
async fn chain_staged_on(pool: &sqlx::PgPool) -> Result<i64> {
    let mut conn = pool.acquire().await?;
    let sql = format!("BEGIN; {}; COMMIT", chain_sql());
    let c: &mut sqlx::PgConnection = &mut conn;
    let rows = match sqlx::Executor::fetch_all(c, sqlx::raw_sql(&sql)).await {
        Ok(rows) => rows,
        Err(e) => {
            conn.close_on_drop();
            return Err(e.into());
        }
    };
    let mut chained = 0;
    for r in &rows {
        if let Ok(c) = r.try_get::<i64, _>("count") {
            chained = c;
        }
    }
    Ok(chained)
}

/// PostgreSQL: how long the background chainer lets staged events gather after a wake.
const CHAIN_COALESCE: std::time::Duration = std::time::Duration::from_millis(20);

/// PostgreSQL: a store's background chainer. A transaction that commits audit events stages
/// them with its `COMMIT` and wakes this task, which chains everything staged (under the
/// chain's advisory lock, through its own durable commit) while the committer goes on: no
/// committer waits for the lock or for a second flush, and one chaining covers every
/// transaction that committed while the previous one ran. Wakes coalesce (a channel of one):
/// a wake that finds one pending is covered by it, since that chaining starts after the
/// waker's commit. The task ends when the last handle (the store's clones and their open
/// transactions) is dropped. Readers of the chain settle first ([`Store::audit_settle`]),
/// so a read never misses an event committed before it, whether or not this task has run.
#[derive(Clone)]
pub(crate) struct Chainer {
    wake: tokio::sync::mpsc::Sender<()>,
    pool: sqlx::PgPool,
}

impl std::fmt::Debug for Chainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Chainer")
    }
}

impl Chainer {
    /// Spawns the task on the current tokio runtime.
    pub(crate) fn start(pool: sqlx::PgPool) -> Chainer {
        let (wake, mut woken) = tokio::sync::mpsc::channel::<()>(1);
        let task_pool = pool.clone();
        tokio::spawn(async move {
            while woken.recv().await.is_some() {
                // Let the commits of the next moments stage too: one chaining (a lock, a
                // durable commit) then covers them all. Nothing waits for it: readers settle.
                tokio::time::sleep(CHAIN_COALESCE).await;
                if task_pool.is_closed() {
                    break;
                }
                if let Err(e) = chain_staged_on(&task_pool).await {
                    // Left staged: the next chaining or reader takes them.
                    tracing::warn!(error = %e, "audit: background chaining failed");
                }
            }
        });
        Chainer { wake, pool }
    }

    /// Has the staged events chained: by the task, or here and now when the task is gone
    /// (its runtime shut down), errors logged (the transaction is committed either way).
    async fn chain_after_commit(&self) {
        use tokio::sync::mpsc::error::TrySendError;
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Closed(())) => {
                if let Err(e) = chain_staged_on(&self.pool).await {
                    tracing::warn!(
                        error = %e,
                        "audit: committed, but chaining its staged events failed; the next chaining takes them"
                    );
                }
            }
        }
    }
}

impl StoreTx {
    /// Commits; on PostgreSQL, with the events appended in this transaction staged in the
    /// same round trip (see [`stage_and_commit_sql`]) and handed to the store's
    /// [`Chainer`] rather than chained before returning. For callers that do not need the
    /// events' stored seq and hashes (every transaction but [`Store::audit_append`]'s).
    pub(crate) async fn commit_staging_audit(self) -> Result<()> {
        let StoreTx {
            inner,
            pending_audit,
            chainer,
        } = self;
        let (mut p, chainer) = match (inner, chainer) {
            (TxInner::Postgres(p), Some(chainer)) if !pending_audit.is_empty() => (p, chainer),
            (inner, chainer) => {
                let tx = StoreTx {
                    inner,
                    pending_audit,
                    chainer,
                };
                tx.commit_returning_audit().await?;
                return Ok(());
            }
        };
        let mut sql = p.take_queued()?;
        sql.push_str(&stage_and_commit_sql(&pending_audit)?);
        // On an error nothing after it ran (COMMIT included): dropping `p` rolls back.
        if let Err(e) = sqlx::Executor::execute(&mut *p.t, sql.as_str()).await {
            return Err(p.failure(e));
        }
        // Committed. The query's `BEGIN` left the connection in an empty transaction, which
        // dropping `p` rolls back (queued, sent with the connection's next use).
        drop(p);
        chainer.chain_after_commit().await;
        Ok(())
    }
}

/// PostgreSQL: commits a transaction with no audit events staged: its queued writes and
/// the `COMMIT` in one round trip (the `BEGIN` after it opens an empty transaction that
/// dropping `p` rolls back, as after the staging); a plain `COMMIT` when nothing is queued.
async fn commit_queued(mut p: crate::tx::PgTx) -> Result<()> {
    let mut sql = p.take_queued()?;
    if sql.is_empty() {
        p.t.commit().await?;
        return Ok(());
    }
    sql.push_str("COMMIT; BEGIN");
    if let Err(e) = sqlx::Executor::execute(&mut *p.t, sql.as_str()).await {
        return Err(p.failure(e));
    }
    Ok(())
}

/// New events as queued, not yet chained (seq 0, no hashes), all at this instant.
fn queue(events: Vec<NewAuditEvent>) -> Vec<QueuedEvent> {
    let at = now();
    events
        .into_iter()
        .map(|e| QueuedEvent {
            rules: rule_ids(&e.payload),
            event: AuditEvent {
                seq: 0,
                at,
                run_id: e.run_id,
                customer_id: e.customer_id,
                actor: e.actor,
                kind: e.kind,
                payload: e.payload,
                prev_hash: String::new(),
                hash: String::new(),
            },
            canonical: String::new(),
        })
        .collect()
}

/// An audit event chained but not yet written: the event, its `rule_ids` column and the
/// canonical text its hash covers.
pub(crate) struct QueuedEvent {
    pub(crate) event: AuditEvent,
    pub(crate) rules: String,
    pub(crate) canonical: String,
}

impl QueuedEvent {
    /// The arguments of `tx::INSERT_EVENT`.
    pub(crate) fn args(&self) -> Vec<Arg> {
        let e = &self.event;
        vec![
            Arg::of(e.seq),
            Arg::of(e.at),
            Arg::of(e.run_id.as_deref()),
            Arg::of(e.customer_id.as_deref()),
            Arg::of(e.actor.as_str()),
            Arg::of(e.kind.as_str()),
            Arg::of(self.rules.as_str()),
            Arg::of(self.canonical.as_str()),
            Arg::of(e.prev_hash.as_str()),
            Arg::of(e.hash.as_str()),
        ]
    }
}

/// Chains `events` in order after the event (seq, hash): numbers them from seq + 1 and
/// computes each one's canonical text and hash. Events already chained there (the first
/// one's seq and prev_hash say so) are left as they are.
pub(crate) fn chain_after(events: &mut [QueuedEvent], (seq, hash): (i64, String)) {
    if let Some(first) = events.first()
        && first.event.seq == seq + 1
        && first.event.prev_hash == hash
        && !first.canonical.is_empty()
    {
        return;
    }
    let mut prev_hash = hash;
    for (seq, q) in (seq + 1..).zip(events.iter_mut()) {
        let e = &mut q.event;
        e.seq = seq;
        q.canonical = canonical_text(e);
        e.hash = chain_hash(&prev_hash, &q.canonical);
        e.prev_hash = std::mem::replace(&mut prev_hash, e.hash.clone());
    }
}

impl Store {
    /// Appends one event in a transaction of its own.
    pub async fn audit_append(&self, e: NewAuditEvent) -> Result<AuditEvent> {
        let mut tx = self.begin().await?;
        // The event returned is the one stored: on the SQLite writer, chained on the head
        // as read under the write lock, not on the one remembered from the last commit.
        if let TxInner::SqliteWriter(w) = &mut tx.inner {
            w.check_head().await?;
        }
        let mut ev =
            tx.append_events(vec![e]).await?.pop().ok_or_else(|| {
                StoreError::Invalid("appending one audit event appended none".into())
            })?;
        // On PostgreSQL, chained on the head as it was when written.
        if let Some((seq, prev_hash, hash)) = tx.commit_returning_audit().await?.pop() {
            ev.seq = seq;
            ev.prev_hash = prev_hash;
            ev.hash = hash;
        }
        Ok(ev)
    }

    /// Events matching the filter, in seq order.
    pub async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>> {
        self.audit_settle().await?;
        let rule_cond = match self.backend() {
            Backend::Sqlite => "instr(rule_ids, $5) > 0",
            Backend::Postgres => "strpos(rule_ids, $5) > 0",
        };
        let sql = format!(
            "SELECT {STORED_COLS} FROM audit_events WHERE ($1 IS NULL OR customer_id = $1) \
             AND ($2 IS NULL OR run_id = $2) AND ($3 IS NULL OR actor = $3) AND ($4 IS NULL OR kind = $4) \
             AND ($5 IS NULL OR {rule_cond}) AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7) \
             ORDER BY seq LIMIT $8 OFFSET $9"
        );
        let rule = f.rule_id.as_ref().map(|r| format!(",{r},"));
        let rows: Vec<Stored> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql)
                .bind(f.customer_id.as_deref())
                .bind(f.run_id.as_deref())
                .bind(f.actor.as_deref())
                .bind(f.kind.as_deref())
                .bind(rule.as_deref())
                .bind(f.since.map(crate::micros))
                .bind(f.until.map(crate::micros))
                .bind(f.limit.unwrap_or(i64::MAX).max(0))
                .bind(f.offset.unwrap_or(0).max(0))
                .fetch_all(pool)
                .await?
            {
                out.push(stored_row!(r));
            }
            out
        });
        rows.into_iter().map(Stored::into_event).collect()
    }

    /// One run's events of one kind, in seq order (by the run index).
    pub async fn run_audit_events(&self, run_id: &str, kind: &str) -> Result<Vec<AuditEvent>> {
        let sql = format!(
            "SELECT {STORED_COLS} FROM audit_events WHERE run_id = $1 AND kind = $2 ORDER BY seq"
        );
        let rows: Vec<Stored> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql)
                .bind(run_id)
                .bind(kind)
                .fetch_all(pool)
                .await?
            {
                out.push(stored_row!(r));
            }
            out
        });
        rows.into_iter().map(Stored::into_event).collect()
    }

    /// Every event of the given kinds (`customer_less`: only those without a customer, which
    /// the customer index finds), in seq order. An event whose canonical text is unreadable
    /// is skipped: the chain's verification reports it.
    pub(crate) async fn audit_events_of_kinds(
        &self,
        kinds: &[&str],
        customer_less: bool,
        session: &mut Session,
    ) -> Result<Vec<AuditEvent>> {
        self.audit_settle_on(session).await?;
        let placeholders: Vec<String> = (1..=kinds.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {STORED_COLS} FROM audit_events WHERE {}kind IN ({}) ORDER BY seq",
            if customer_less {
                "customer_id IS NULL AND "
            } else {
                ""
            },
            placeholders.join(", ")
        );
        let rows: Vec<Stored> = dispatch_on!(self, session, |ex| {
            let mut q = sqlx::query(&sql);
            for k in kinds {
                q = q.bind(*k);
            }
            let mut out = Vec::new();
            for r in q.fetch_all(ex).await? {
                out.push(stored_row!(r));
            }
            out
        });
        Ok(rows
            .into_iter()
            .filter_map(|r| r.into_event().ok())
            .collect())
    }

    /// Recomputes the whole chain from the stored canonical texts, in one consistent
    /// snapshot (concurrent appends are not blocked and not seen).
    pub async fn audit_verify(&self) -> Result<AuditVerification> {
        self.audit_verify_from(None).await
    }

    /// Like [`Store::audit_verify`], from an anchor `(seq, hash)` (e.g. a signed
    /// checkpoint's) instead of the first event: the event at `seq` must still be stored
    /// with exactly that hash, and every event after it must chain on to the head. `None`
    /// (or seq 0 with the genesis hash) verifies the whole chain.
    pub async fn audit_verify_from(
        &self,
        anchor: Option<(i64, String)>,
    ) -> Result<AuditVerification> {
        let begin = match self.backend() {
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        let batch = format!(
            "SELECT {STORED_COLS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT {BATCH}"
        );
        let (from, anchor_hash) = anchor.unwrap_or((0, GENESIS_HASH.to_string()));
        // Events a process committed but died before chaining are chained first (they are
        // part of the trail); on a read-only database that cannot happen and they are not
        // seen.
        if let Err(e) = self.audit_chain_staged().await {
            tracing::warn!(error = %e, "audit verify: could not chain staged events");
        }
        Ok(dispatch!(self, |pool| {
            let mut v = Verifier::after(from, anchor_hash.clone());
            let mut tx = pool.begin_with(begin).await?;
            // Read the head inside the snapshot first, so it and the rows agree.
            let head: Option<(i64, String)> =
                match sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_optional(&mut *tx)
                    .await?
                {
                    Some(r) => Some((r.try_get("seq")?, r.try_get("hash")?)),
                    None => None,
                };
            let mut broken = None;
            if from > 0 {
                let stored: Option<String> =
                    match sqlx::query("SELECT hash FROM audit_events WHERE seq = $1")
                        .bind(from)
                        .fetch_optional(&mut *tx)
                        .await?
                    {
                        Some(r) => Some(r.try_get("hash")?),
                        None => None,
                    };
                broken = match stored {
                    None => Some(AuditVerification::Broken {
                        seq: from,
                        reason: format!(
                            "event {from}, which the anchor (the last checkpoint) names, is gone: \
                             the chain was truncated or wiped"
                        ),
                    }),
                    Some(h) if h != anchor_hash => Some(AuditVerification::Broken {
                        seq: from,
                        reason: format!(
                            "event {from} is not the event the anchor (the last checkpoint) names: \
                             its hash is {h}, the anchor's {anchor_hash} (history was rewritten)"
                        ),
                    }),
                    Some(_) => None,
                };
            } else if anchor_hash != GENESIS_HASH {
                broken = Some(AuditVerification::Broken {
                    seq: 0,
                    reason: format!(
                        "an anchor at event 0 must be the genesis hash, not {anchor_hash}"
                    ),
                });
            }
            // From the start, rows with a sequence number below 1 (renumbered) are read too.
            let mut after = if from > 0 { from } else { i64::MIN };
            'chain: while broken.is_none() {
                let rows = sqlx::query(&batch).bind(after).fetch_all(&mut *tx).await?;
                if rows.is_empty() {
                    break;
                }
                for r in rows {
                    let row = stored_row!(r);
                    after = row.seq;
                    if let Some(b) = v.feed(&row) {
                        broken = Some(b);
                        break 'chain;
                    }
                }
            }
            tx.rollback().await?;
            match broken {
                Some(b) => b,
                None => v.finish(head),
            }
        }))
    }
}

/// One JSON object per line, in the order given.
pub fn audit_to_jsonl(events: &[AuditEvent]) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str(&crate::to_json(e));
        out.push('\n');
    }
    out
}

/// CSV with a header row: seq, at, run_id, customer_id, actor, kind, payload (JSON text),
/// prev_hash, hash.
pub fn audit_to_csv(events: &[AuditEvent]) -> String {
    // Writing CSV into memory cannot fail; an empty string would only mean a csv bug.
    write_csv(events).unwrap_or_default()
}

fn write_csv(events: &[AuditEvent]) -> Option<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "seq",
        "at",
        "run_id",
        "customer_id",
        "actor",
        "kind",
        "payload",
        "prev_hash",
        "hash",
    ])
    .ok()?;
    for e in events {
        w.write_record([
            e.seq.to_string().as_str(),
            format_at(e.at).as_str(),
            e.run_id.as_deref().unwrap_or(""),
            e.customer_id.as_deref().unwrap_or(""),
            e.actor.as_str(),
            e.kind.as_str(),
            canonical_json(&e.payload).as_str(),
            e.prev_hash.as_str(),
            e.hash.as_str(),
        ])
        .ok()?;
    }
    String::from_utf8(w.into_inner().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canonical text as it was first defined: the event as one JSON object, written
    /// canonically. Every chain stored hashes this text, so the direct writer must match
    /// it byte for byte.
    fn canonical_text_as_an_object(e: &AuditEvent) -> String {
        canonical_json(&serde_json::json!({
            "seq": e.seq,
            "at": format_at(e.at),
            "run_id": e.run_id,
            "customer_id": e.customer_id,
            "actor": e.actor,
            "kind": e.kind,
            "payload": e.payload,
        }))
    }

    /// Any JSON value, to depth 3: strings with quotes, backslashes, control characters
    /// and any Unicode; integers and floats of every size; keys in any order.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            any::<u64>().prop_map(|n| serde_json::json!(n)),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(".*", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn canonical_text_is_the_event_object_written_canonically(
            seq in proptest::prelude::any::<i64>(),
            micros in 0i64..4_102_444_800_000_000,
            run_id in proptest::option::of(".*"),
            customer_id in proptest::option::of(".*"),
            actor in ".*",
            kind in ".*",
            payload in any_json(),
        ) {
            let e = AuditEvent {
                seq,
                at: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
                run_id,
                customer_id,
                actor,
                kind,
                payload,
                prev_hash: String::new(),
                hash: String::new(),
            };
            proptest::prop_assert_eq!(canonical_text(&e), canonical_text_as_an_object(&e));
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v = serde_json::json!({"b": 1, "a": {"z": [3, {"y": null, "x": "é\""}], "c": true}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":true,"z":[3,{"x":"é\"","y":null}]},"b":1}"#
        );
    }

    #[test]
    fn rule_ids_are_collected_from_rules_and_decision() {
        let p = serde_json::json!({"rules": [{"id": "us.quiet-hours"}, "b2b.max_discount"],
                                   "decision": {"rules": [{"id": "us.quiet-hours"}, {"id": "x,y"}]}});
        assert_eq!(rule_ids(&p), ",us.quiet-hours,b2b.max_discount,");
        assert_eq!(rule_ids(&serde_json::json!({"rules": []})), "");
    }

    #[test]
    fn chain_hash_is_sha256_of_prev_and_text() {
        // python3 -c 'import hashlib; print(hashlib.sha256(("0"*64+"{}").encode()).hexdigest())'
        let h = chain_hash(GENESIS_HASH, "{}");
        assert_eq!(
            h,
            "5508d2b710e64bc470079e1b211d9c58e21011e59d0559e422345dc19d659a75"
        );
        assert_ne!(h, chain_hash(GENESIS_HASH, "{ }"));
    }
}
