//! Transactions: [`StoreTx`] is a write transaction on either backend.
//!
//! On SQLite every `StoreTx` is a write transaction started with `BEGIN IMMEDIATE`, which
//! takes the database's write lock up front, so a writer of another process waits (up to
//! the busy timeout) instead of failing with `SQLITE_BUSY` when a deferred transaction
//! tries to upgrade a stale read snapshot. Within one `Store` (a file database) every
//! transaction runs on the store's one writer connection, taken through an async mutex:
//! writers queue in FIFO order without touching SQLite's busy handler (which sleeps 1, 2,
//! 5, 10… ms between retries, leaving the database idle while the lock is free), and the
//! writer's page cache stays valid from one transaction to the next because no other
//! connection of the store writes. The writer does not checkpoint the WAL inside the
//! transaction's commit; every [`CHECKPOINT_EVERY`] commits (or after a second) a PASSIVE
//! checkpoint runs on a pooled connection in the background, while writing goes on.
//! An in-memory database (one connection) uses plain pooled transactions.
//!
//! **Round trips on the writer.** Every statement sqlx runs on SQLite is a message to the
//! connection's own thread and an answer back, and the writer is held across all of them;
//! on a busy two-core machine each such hand-off costs more than SQLite's work on the
//! statement. So a transaction's round trips, not its statements, set how many
//! transactions a second the store commits, and the writer sends a transaction's
//! statements in as few round trips as the caller's need for answers allows:
//! - `begin` only takes the writer. `BEGIN IMMEDIATE` goes with the transaction's first
//!   round trip, together with either a read of the audit head or, when the writer
//!   remembers the head its last commit left, a check that it is still the stored one.
//! - A write whose answer the caller does not need ([`tx_write!`]: inserts, status
//!   updates, deciding a queue item, audit appends) is queued, and sent in front of the
//!   next statement that needs an answer, or with `COMMIT`. A queued write that must
//!   change a row (else the operation's own error, such as `NotFound` or, for a queue
//!   item that is no longer pending, `Conflict`) is followed by a guard statement that
//!   fails the batch when the write changed nothing, so a failed expectation stops the
//!   batch before its `COMMIT` and the caller gets the operation's own error.
//! - So an error of a queued write is reported by a later call of the same transaction
//!   (at the latest by `commit`); from then on the transaction refuses every statement
//!   and can only roll back, because some of the writes it was told were queued never ran.
//! - Audit events are chained when appended, on the remembered head. If the check finds
//!   that another process appended since, nothing but `BEGIN` has run: the head is read
//!   (the lock still held), the queued events are re-chained on it, and the batch goes
//!   again. The chain stored is always the one `audit_verify` recomputes.
//!
//! Approving or rejecting a queue item is one round trip this way (the commit), where it
//! was six; [`Store::writer_round_trips`] counts them.
//!
//! On PostgreSQL it is an ordinary READ COMMITTED transaction; row locks (the audit head,
//! conditional updates, `FOR UPDATE SKIP LOCKED`) do the serializing, and every statement
//! runs when it is called, except audit appends: they are kept in the `StoreTx` and sent
//! with the `COMMIT`, in one round trip, by a statement that takes the audit head's row
//! lock, chains them on the head in the database and moves the head (see `audit`). The
//! head is then locked while the server runs that statement and the durable commit only,
//! not for the whole transaction and not across a round trip to the client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use argent_core::CustomerFlags;
use futures_util::TryStreamExt;
use sqlx::encode::{Encode, IsNull};
use sqlx::error::BoxDynError;
use sqlx::sqlite::{
    SqliteArgumentValue, SqliteArguments, SqliteConnectOptions, SqliteRow, SqliteTypeInfo,
};
use sqlx::{
    Arguments, Connection, Either, Executor, Postgres, Row, Sqlite, SqliteConnection, SqlitePool,
    Transaction, Type,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::audit::QueuedEvent;
use crate::{Backend, Pool, Result, Store, StoreError, now};

/// Commits after which the writer starts a background WAL checkpoint.
pub const CHECKPOINT_EVERY: u32 = 32;
/// …or the time since the last one after which any commit starts one.
const CHECKPOINT_AFTER: Duration = Duration::from_secs(1);

/// The one connection a SQLite file store writes through (see the module docs).
pub(crate) struct Writer {
    /// `None` once the store is closed.
    conn: Option<SqliteConnection>,
    /// How `conn` was opened, to open it again (see [`lock_writer`]).
    opts: SqliteConnectOptions,
    /// When `conn` was opened.
    opened: Instant,
    /// A transaction was begun and not yet committed or rolled back.
    open: bool,
    commits: u32,
    last_checkpoint: Instant,
    checkpointing: Arc<AtomicBool>,
    /// The audit head (seq, hash) as this writer's last commit left it. Another process
    /// may have moved it since, so a transaction that chains on it checks it first (see
    /// `WriterTx::round_trip`).
    known_head: Option<(i64, String)>,
    /// Batches sent to the connection's thread (see [`Store::writer_round_trips`]).
    round_trips: u64,
}

pub(crate) type SharedWriter = Arc<Mutex<Writer>>;

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("open", &self.open)
            .field("closed", &self.conn.is_none())
            .finish()
    }
}

impl Writer {
    /// Opens the writer connection of the file database `opts` names.
    pub(crate) async fn open(opts: SqliteConnectOptions) -> Result<SharedWriter> {
        let opts = opts.pragma("wal_autocheckpoint", "0");
        let opened = Instant::now();
        let conn = Writer::connect(&opts).await?;
        Ok(Arc::new(Mutex::new(Writer {
            conn: Some(conn),
            opts,
            opened,
            open: false,
            commits: 0,
            last_checkpoint: Instant::now(),
            checkpointing: Arc::new(AtomicBool::new(false)),
            known_head: None,
            round_trips: 0,
        })))
    }

    async fn connect(opts: &SqliteConnectOptions) -> Result<SqliteConnection> {
        let mut conn = sqlx::ConnectOptions::connect(opts).await?;
        crate::readonly::check_file(opts.get_filename());
        sqlx::query(GUARD_TABLE).execute(&mut conn).await?;
        Ok(conn)
    }

    /// Replaces the connection if it was open when some connection failed to write for
    /// want of write access (see [`crate::readonly`]): a SQLite connection opened while
    /// the file could not be written stays read-only however the file changes. The new
    /// connection is opened first; if that fails, the old one stays and the next taker
    /// tries again. Whatever the old connection had open is rolled back by closing it.
    async fn reopen_if_stale(&mut self) -> Result<()> {
        if self.conn.is_none() || !crate::readonly::stale(self.opened) {
            return Ok(());
        }
        let opened = Instant::now();
        let fresh = Writer::connect(&self.opts).await?;
        if let Some(old) = self.conn.replace(fresh) {
            let _ = old.close().await;
        }
        self.opened = opened;
        self.open = false;
        self.known_head = None;
        tracing::info!("reopened the database writer connection after a read-only error");
        Ok(())
    }

    fn conn(&mut self) -> Result<&mut SqliteConnection> {
        self.conn
            .as_mut()
            .ok_or(StoreError::Db(sqlx::Error::PoolClosed))
    }

    /// Rolls back a transaction a dropped `StoreTx` left open, if any. A batch that failed
    /// at its `COMMIT` may have ended the transaction already (SQLite rolls back by itself
    /// on some errors); the `ROLLBACK` then fails harmlessly and the writer is clean.
    async fn settle(&mut self) -> Result<()> {
        if self.open {
            if let Err(e) = sqlx::query("ROLLBACK").execute(self.conn()?).await {
                tracing::debug!(error = %e, "rolling back the writer's transaction");
            }
            self.open = false;
        }
        Ok(())
    }

    pub(crate) async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}

/// Takes the writer, with any transaction a dropped `StoreTx` left open rolled back.
pub(crate) async fn lock_writer(w: &SharedWriter) -> Result<OwnedMutexGuard<Writer>> {
    let mut guard = w.clone().lock_owned().await;
    guard.settle().await?;
    guard.reopen_if_stale().await?;
    Ok(guard)
}

/// Creates the table the guards of queued writes insert into (on the writer connection,
/// once; a TEMP table lives and dies with its connection).
pub(crate) const GUARD_TABLE: &str = "CREATE TEMP TABLE IF NOT EXISTS argent_expect \
     (changed INTEGER NOT NULL CHECK (changed > 0))";
/// Follows a queued write that must change a row: `changes()` is the number of rows the
/// statement before it changed, and the CHECK fails the batch when that is none.
const GUARD: &str = "INSERT INTO temp.argent_expect (changed) VALUES (changes())";
const GUARD_CLEAR: &str = "DELETE FROM temp.argent_expect";
const HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";
/// Fails (through the guard table's CHECK, or NOT NULL if there is no head) unless the
/// audit head is ($1, $2).
const HEAD_CHECK: &str = "INSERT INTO temp.argent_expect (changed) \
     VALUES ((SELECT seq = $1 AND hash = $2 FROM audit_head WHERE id = 1))";
const HEAD_UPDATE: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";
/// One audit event, as the writer sends it.
const INSERT_EVENT: &str = "INSERT INTO audit_events (seq, at, run_id, customer_id, actor, \
     kind, rule_ids, canonical, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// One bind argument of a queued statement, owned, encoded as sqlx encodes the value it
/// was made from.
#[derive(Clone, Debug)]
pub(crate) struct Arg(SqliteArgumentValue<'static>);

impl Arg {
    pub(crate) fn of(value: impl ToArg) -> Result<Arg> {
        value.to_arg()
    }

    /// A value whose encoding borrows nothing (numbers, dates, owned text), encoded as
    /// sqlx encodes it.
    fn encoded<T: for<'q> Encode<'q, Sqlite>>(value: T) -> Result<Arg> {
        let mut buf: Vec<SqliteArgumentValue<'static>> = Vec::with_capacity(1);
        let encoded = value
            .encode(&mut buf)
            .map_err(|e| StoreError::Invalid(format!("encoding a statement argument: {e}")))?;
        Ok(Arg(match (encoded, buf.pop()) {
            (IsNull::No, Some(v)) => v,
            _ => SqliteArgumentValue::Null,
        }))
    }

    fn text(s: &str) -> Arg {
        Arg(SqliteArgumentValue::Text(s.to_owned().into()))
    }
}

/// The argument types queued statements bind. (Borrowed text is copied: a queued
/// statement outlives the call that queued it.)
pub(crate) trait ToArg {
    fn to_arg(self) -> Result<Arg>;
}

impl ToArg for &str {
    fn to_arg(self) -> Result<Arg> {
        Ok(Arg::text(self))
    }
}

impl ToArg for Option<&str> {
    fn to_arg(self) -> Result<Arg> {
        Ok(self.map_or(Arg(SqliteArgumentValue::Null), Arg::text))
    }
}

macro_rules! to_arg_by_encoding {
    ($($t:ty),*) => {
        $(impl ToArg for $t {
            fn to_arg(self) -> Result<Arg> {
                Arg::encoded(self)
            }
        })*
    };
}
to_arg_by_encoding!(
    String,
    Option<String>,
    i64,
    Option<i64>,
    bool,
    chrono::DateTime<chrono::Utc>,
    Option<chrono::DateTime<chrono::Utc>>,
    chrono::NaiveDate,
    Option<f64>
);

impl<'q> Encode<'q, Sqlite> for Arg {
    fn encode(
        self,
        buf: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> std::result::Result<IsNull, BoxDynError> {
        match self.0 {
            SqliteArgumentValue::Null => Ok(IsNull::Yes),
            v => {
                buf.push(v);
                Ok(IsNull::No)
            }
        }
    }

    fn encode_by_ref(
        &self,
        buf: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> std::result::Result<IsNull, BoxDynError> {
        self.clone().encode(buf)
    }
}

impl Type<Sqlite> for Arg {
    /// SQLite binds by value, not by declared type; this is never checked.
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

/// Appends `sql` to `out` with each `$N` parameter renumbered to `$(N + offset)`, so the
/// statement can run after others in one multi-statement query (sqlx-sqlite binds `$N` to
/// the query's N-th argument, whichever statement it is in). `$` inside a quoted string or
/// identifier is left alone.
pub(crate) fn renumber_into(out: &mut String, sql: &str, offset: usize) {
    let mut chars = sql.char_indices().peekable();
    let mut quote: Option<char> = None;
    while let Some((_, c)) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                out.push(c);
                quote = Some(c);
            }
            None if c == '$' && chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) => {
                let mut n = 0usize;
                while let Some((_, d)) = chars.peek().copied()
                    && let Some(v) = d.to_digit(10)
                {
                    n = n * 10 + v as usize;
                    chars.next();
                }
                out.push('$');
                out.push_str(&(n + offset).to_string());
            }
            None => out.push(c),
        }
    }
}

/// What a multi-statement query did, statement by statement.
pub(crate) struct Steps {
    /// The rows of each statement that ran (or began running), in order.
    pub(crate) rows: Vec<Vec<SqliteRow>>,
    /// The rows changed by each statement that finished; its length is how many did.
    pub(crate) changes: Vec<u64>,
    /// Why the statement after the last finished one failed, if one did.
    pub(crate) error: Option<sqlx::Error>,
}

/// Runs the statements of `sql` (sqlx-sqlite runs every statement of a query, binding
/// `$N` to the N-th of `args` in each) in one message to the connection's thread.
pub(crate) async fn run_statements(
    conn: &mut SqliteConnection,
    sql: &str,
    args: SqliteArguments<'static>,
) -> Steps {
    let mut changes = Vec::new();
    let (rows, error) = split_by_statement(
        conn.fetch_many(sqlx::query_with(sql, args)),
        |done: sqlx::sqlite::SqliteQueryResult| changes.push(done.rows_affected()),
    )
    .await;
    Steps {
        rows,
        changes,
        error,
    }
}

/// The rows of a multi-statement query's results (either backend), split by statement: a
/// list per statement that ran or began running, `done` told of each that finished, and
/// the error that stopped the query, if one did.
pub(crate) async fn split_by_statement<D, R>(
    mut stream: impl futures_util::Stream<Item = std::result::Result<Either<D, R>, sqlx::Error>> + Unpin,
    mut done: impl FnMut(D),
) -> (Vec<Vec<R>>, Option<sqlx::Error>) {
    let mut rows = vec![Vec::new()];
    loop {
        match stream.try_next().await {
            Ok(Some(Either::Left(d))) => {
                done(d);
                rows.push(Vec::new());
            }
            Ok(Some(Either::Right(row))) => {
                if let Some(last) = rows.last_mut() {
                    last.push(row);
                }
            }
            Ok(None) => return (rows, None),
            Err(e) => return (rows, Some(e)),
        }
    }
}

/// A write queued on the writer for the transaction's next round trip.
enum Op {
    Statement {
        sql: &'static str,
        args: Vec<Arg>,
        /// The statement must change a row, else the operation fails with this error.
        must_change: Option<StoreError>,
    },
    /// Audit events, chained when queued; re-chained when sent if the head they were
    /// chained on turns out not to be the head (another process appended meanwhile).
    Audit(Vec<QueuedEvent>),
}

/// The batch a round trip sends, rendered from the queue.
struct Batch {
    sql: String,
    args: Vec<Arg>,
    /// Statements rendered so far.
    count: usize,
    /// Statement index of each guard, with the index of the op it guards.
    guards: Vec<(usize, usize)>,
}

impl Batch {
    fn push(&mut self, sql: &str, args: Vec<Arg>) -> usize {
        renumber_into(&mut self.sql, sql, self.args.len());
        self.sql.push_str(";\n");
        self.args.extend(args);
        self.count += 1;
        self.count - 1
    }
}

/// Why a round trip did not answer.
enum Failed {
    /// The head the transaction chained its audit events on is not the stored head.
    StaleHead,
    Error(StoreError),
}

/// A transaction on the writer connection. Dropped unfinished, it rolls back on a task of
/// its own that holds the writer until done (or, outside a runtime, the next user of the
/// writer rolls back first).
pub(crate) struct WriterTx {
    guard: Option<OwnedMutexGuard<Writer>>,
    /// For the background checkpoint.
    pool: SqlitePool,
    /// `BEGIN IMMEDIATE` has run (it goes with the transaction's first round trip).
    begun: bool,
    /// The audit head (seq, hash) as of the statements sent so far: at the start, the
    /// head the writer's last commit left (`head_checked` false until the first round
    /// trip confirms it under the write lock) or the head read under the lock.
    sent_head: Option<(i64, String)>,
    head_checked: bool,
    /// The audit head after every event appended so far, sent or queued: what the next
    /// append chains on.
    audit_head: Option<(i64, String)>,
    queued: Vec<Op>,
    /// A round trip failed, so writes the caller was told were queued may not have run:
    /// the transaction refuses everything but rolling back.
    failed: bool,
}

impl WriterTx {
    pub(crate) fn new(guard: OwnedMutexGuard<Writer>, pool: SqlitePool) -> WriterTx {
        let head = guard.known_head.clone();
        WriterTx {
            guard: Some(guard),
            pool,
            begun: false,
            head_checked: false,
            sent_head: head.clone(),
            audit_head: head,
            queued: Vec::new(),
            failed: false,
        }
    }

    /// The connection, with everything queued sent and the transaction begun, for a
    /// statement the caller runs itself.
    pub(crate) async fn conn(&mut self) -> Result<&mut SqliteConnection> {
        if !self.begun || !self.queued.is_empty() {
            self.round_trip(false).await?;
        }
        self.writer()?.conn()
    }

    fn writer(&mut self) -> Result<&mut Writer> {
        match self.guard.as_mut() {
            Some(w) => Ok(w),
            None => Err(StoreError::Invalid("the transaction has ended".into())),
        }
    }

    fn usable(&self) -> Result<()> {
        if self.failed {
            return Err(StoreError::Invalid(
                "an earlier statement of this transaction failed; it can only be rolled back"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Queues a write for the next round trip; with `must_change`, the batch fails with
    /// that error if the write changes no row.
    pub(crate) fn queue(
        &mut self,
        sql: &'static str,
        args: Vec<Arg>,
        must_change: Option<StoreError>,
    ) -> Result<()> {
        self.usable()?;
        self.queued.push(Op::Statement {
            sql,
            args,
            must_change,
        });
        Ok(())
    }

    /// Queues audit events chained on [`WriterTx::audit_head`], and moves it past them.
    pub(crate) fn queue_audit(&mut self, events: Vec<QueuedEvent>) -> Result<()> {
        self.usable()?;
        if let Some(last) = events.last() {
            self.audit_head = Some((last.event.seq, last.event.hash.clone()));
            self.queued.push(Op::Audit(events));
        }
        Ok(())
    }

    /// The head the next audit append chains on, reading it (in a round trip that begins
    /// the transaction) if this writer does not know it.
    pub(crate) async fn audit_head(&mut self) -> Result<Option<(i64, String)>> {
        if self.audit_head.is_none() && !self.begun {
            self.round_trip(false).await?;
        }
        Ok(self.audit_head.clone())
    }

    /// Makes sure the head appends chain on is the stored one (a round trip, if it was
    /// only remembered), so the events `audit_append` returns are the ones stored.
    pub(crate) async fn check_head(&mut self) -> Result<()> {
        if !self.begun {
            self.round_trip(false).await?;
        }
        Ok(())
    }

    /// One message to the writer's thread, in the fewest round trips the transaction's
    /// state allows: `BEGIN IMMEDIATE` if the transaction has not begun, with either a
    /// check that the remembered audit head is still the stored one or a read of it; the
    /// queued statements; and `COMMIT` if `commit`.
    ///
    /// If the check finds that another process moved the head, nothing but `BEGIN` has run:
    /// the head is read (one more round trip, the lock still held), the queued audit events
    /// are re-chained on it, and the batch is sent again.
    async fn round_trip(&mut self, commit: bool) -> Result<()> {
        self.usable()?;
        loop {
            match self.send(commit).await {
                Ok(()) => return Ok(()),
                Err(Failed::StaleHead) => {
                    let head = {
                        let w = self.writer()?;
                        w.round_trips += 1;
                        sqlx::query(HEAD).fetch_optional(w.conn()?).await
                    };
                    let head = match head {
                        Ok(Some(r)) => Some((r.try_get("seq")?, r.try_get("hash")?)),
                        Ok(None) => None,
                        Err(e) => {
                            self.failed = true;
                            return Err(e.into());
                        }
                    };
                    self.sent_head = head.clone();
                    self.audit_head = head;
                    self.head_checked = true;
                }
                Err(Failed::Error(e)) => {
                    self.failed = true;
                    self.queued.clear();
                    return Err(e);
                }
            }
        }
    }

    async fn send(&mut self, commit: bool) -> std::result::Result<(), Failed> {
        let begins = !self.begun;
        // Whether the batch checks a remembered head (else, if it begins, it reads it).
        let checks = begins && !self.head_checked && self.sent_head.is_some();
        let mut b = Batch {
            sql: String::new(),
            args: Vec::new(),
            count: 0,
            guards: Vec::new(),
        };
        if begins {
            b.push("BEGIN IMMEDIATE", Vec::new());
            match (&self.sent_head, checks) {
                (Some((seq, hash)), true) => {
                    let args = vec![
                        Arg::of(*seq).map_err(Failed::Error)?,
                        Arg::of(hash.as_str()).map_err(Failed::Error)?,
                    ];
                    b.push(HEAD_CHECK, args);
                }
                _ => {
                    b.push(HEAD, Vec::new());
                }
            }
        }
        // The audit events chain from the head as of what has been sent; a queued append
        // chained on another head (a stale remembered one) is re-chained here.
        let mut head = self.sent_head.clone();
        let mut appended = false;
        for (i, op) in self.queued.iter_mut().enumerate() {
            match op {
                Op::Statement {
                    sql,
                    args,
                    must_change,
                } => {
                    b.push(sql, args.clone());
                    if must_change.is_some() {
                        let at = b.push(GUARD, Vec::new());
                        b.guards.push((at, i));
                    }
                }
                Op::Audit(events) => {
                    let after = head.clone().unwrap_or((0, crate::GENESIS_HASH.to_string()));
                    crate::audit::chain_after(events, after);
                    for e in events.iter() {
                        b.push(INSERT_EVENT, e.args().map_err(Failed::Error)?);
                    }
                    if let Some(e) = events.last() {
                        head = Some((e.event.seq, e.event.hash.clone()));
                        appended = true;
                    }
                }
            }
        }
        if appended && let Some((seq, hash)) = &head {
            let args = vec![
                Arg::of(*seq).map_err(Failed::Error)?,
                Arg::of(hash.as_str()).map_err(Failed::Error)?,
            ];
            b.push(HEAD_UPDATE, args);
        }
        if !b.guards.is_empty() {
            b.push(GUARD_CLEAR, Vec::new());
        }
        if commit {
            b.push("COMMIT", Vec::new());
        }
        let mut bound = SqliteArguments::default();
        for a in b.args {
            bound.add(a).map_err(|e| {
                Failed::Error(StoreError::Invalid(format!(
                    "binding a statement argument: {e}"
                )))
            })?;
        }
        let steps = {
            let w = self.writer().map_err(Failed::Error)?;
            w.round_trips += 1;
            let conn = w.conn().map_err(Failed::Error)?;
            run_statements(conn, &b.sql, bound).await
        };
        // Statements finished: each ends with one `Left` in the stream.
        let done = steps.changes.len();
        if begins && done >= 1 {
            self.begun = true;
            self.writer().map_err(Failed::Error)?.open = true;
        }
        if begins && !checks && done >= 2 {
            let read = match steps.rows.get(1).and_then(|rows| rows.first()) {
                Some(r) => Some((
                    r.try_get("seq").map_err(|e| Failed::Error(e.into()))?,
                    r.try_get("hash").map_err(|e| Failed::Error(e.into()))?,
                )),
                None => None,
            };
            self.sent_head = read.clone();
            self.head_checked = true;
            // Nothing queued was chained (appending needs a known head), so the head as of
            // this batch is the one read.
            if !appended {
                head = read;
            }
        }
        if let Some(e) = steps.error {
            if checks && done == 1 {
                return Err(Failed::StaleHead);
            }
            // The statement that failed is the one after the last that finished.
            let guarded = b
                .guards
                .iter()
                .find(|(at, _)| *at == done)
                .map(|(_, op)| *op);
            let expected = guarded.and_then(|i| match self.queued.get_mut(i) {
                Some(Op::Statement { must_change, .. }) => must_change.take(),
                _ => None,
            });
            return Err(Failed::Error(expected.unwrap_or_else(|| e.into())));
        }
        if begins {
            self.head_checked = true;
        }
        self.queued.clear();
        self.sent_head = head.clone();
        self.audit_head = head;
        if commit {
            let known = self.sent_head.clone();
            let w = self.writer().map_err(Failed::Error)?;
            w.open = false;
            w.known_head = known;
        }
        Ok(())
    }

    pub(crate) async fn commit(mut self) -> Result<()> {
        if self.guard.is_none() {
            return Err(StoreError::Invalid("the transaction has ended".into()));
        }
        if !self.begun && self.queued.is_empty() {
            // Nothing was written: there is nothing to commit.
            self.guard = None;
            return Ok(());
        }
        self.round_trip(true).await?;
        let Some(mut w) = self.guard.take() else {
            return Err(StoreError::Invalid("the transaction has ended".into()));
        };
        w.commits += 1;
        let due = w.commits >= CHECKPOINT_EVERY || w.last_checkpoint.elapsed() >= CHECKPOINT_AFTER;
        let checkpointing = w.checkpointing.clone();
        if due && !checkpointing.swap(true, Ordering::AcqRel) {
            w.commits = 0;
            w.last_checkpoint = Instant::now();
            drop(w);
            let pool = self.pool.clone();
            tokio::spawn(async move {
                // PASSIVE: copies what it can without waiting for readers or the writer;
                // it never invokes the busy handler.
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    tracing::debug!(error = %e, "background WAL checkpoint");
                }
                checkpointing.store(false, Ordering::Release);
            });
        }
        Ok(())
    }

    async fn rollback(mut self) -> Result<()> {
        let Some(mut w) = self.guard.take() else {
            return Ok(());
        };
        w.settle().await
    }
}

impl Drop for WriterTx {
    fn drop(&mut self) {
        if let Some(mut w) = self.guard.take()
            && w.open
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                if let Err(e) = w.settle().await {
                    tracing::warn!(error = %e, "rolling back a dropped transaction");
                }
            });
        }
    }
}

pub(crate) enum TxInner {
    /// A SQLite file database: the store's writer connection.
    SqliteWriter(WriterTx),
    /// A SQLite in-memory database: a pooled transaction on its one connection.
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// A database transaction. [`StoreTx::commit`] makes its writes durable; dropping it
/// without committing rolls everything back.
pub struct StoreTx {
    pub(crate) inner: TxInner,
    /// PostgreSQL: the audit events appended so far, with placeholder seqs and hashes (the
    /// head is not read); they are staged with the `COMMIT` and chained afterwards on the
    /// head as it stands then (see [`StoreTx::audit_append_many`]).
    pub(crate) pending_audit: Vec<QueuedEvent>,
    /// PostgreSQL: the store's background chainer, which [`StoreTx::commit`] hands the
    /// staged events to.
    pub(crate) chainer: Option<crate::audit::Chainer>,
}

impl std::fmt::Debug for StoreTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTx")
            .field("backend", &self.backend())
            .finish()
    }
}

/// Runs `$body` with `$conn` bound to the transaction's concrete connection
/// (`&mut SqliteConnection` or `&mut PgConnection`); use `&mut *$conn` as the executor.
/// Like `dispatch!`, the body is compiled once per backend. Must be used in an async
/// function returning `crate::Result` (a transaction that has ended returns its error).
/// On the SQLite writer, whatever is queued is sent first (a round trip).
macro_rules! dispatch_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match &mut $tx.inner {
            $crate::tx::TxInner::SqliteWriter(w) => {
                let $conn: &mut ::sqlx::SqliteConnection = w.conn().await?;
                $body
            }
            $crate::tx::TxInner::Sqlite(t) => {
                let $conn: &mut ::sqlx::SqliteConnection = &mut **t;
                $body
            }
            $crate::tx::TxInner::Postgres(t) => {
                let $conn: &mut ::sqlx::PgConnection = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use dispatch_tx;

/// A write whose answer the caller does not need, its arguments listed once for every
/// backend: on the SQLite writer it is queued for the transaction's next round trip (see
/// the module docs); elsewhere it runs now. With `or: $err` the write must change a row,
/// else the operation fails with `$err` (on the writer, when the batch runs, and the
/// transaction can then only roll back). For an async function returning `crate::Result`.
macro_rules! tx_write {
    (@must_change) => { None };
    (@must_change $err:expr) => { Some($err) };
    ($tx:expr, $sql:expr, [$($arg:expr),* $(,)?] $(, or: $err:expr)?) => {
        match &mut $tx.inner {
            $crate::tx::TxInner::SqliteWriter(w) => {
                let args = vec![$($crate::tx::Arg::of($arg)?),*];
                w.queue($sql, args, $crate::tx::tx_write!(@must_change $($err)?))?;
            }
            $crate::tx::TxInner::Sqlite(t) => {
                let _changed = ::sqlx::query($sql)$(.bind($arg))*
                    .execute(&mut **t)
                    .await?
                    .rows_affected();
                $( if _changed == 0 { return Err($err); } )?
            }
            $crate::tx::TxInner::Postgres(t) => {
                let _changed = ::sqlx::query($sql)$(.bind($arg))*
                    .execute(&mut **t)
                    .await?
                    .rows_affected();
                $( if _changed == 0 { return Err($err); } )?
            }
        }
    };
}
pub(crate) use tx_write;

impl Store {
    /// How many batches of statements this store's SQLite writer has sent to its
    /// connection's thread (`None` for other stores): for tests and benchmarks of the
    /// round trips a write takes (statements a caller runs on the transaction's
    /// connection itself are not counted).
    pub async fn writer_round_trips(&self) -> Option<u64> {
        match &self.writer {
            Some(w) => Some(w.lock().await.round_trips),
            None => None,
        }
    }

    /// Begins a write transaction (see the module docs for what that means per backend).
    pub async fn begin(&self) -> Result<StoreTx> {
        let inner = match (&self.pool, &self.writer) {
            (Pool::Sqlite(pool), Some(writer)) => {
                // Only the writer: `BEGIN IMMEDIATE` goes with the first round trip.
                let guard = lock_writer(writer).await?;
                TxInner::SqliteWriter(WriterTx::new(guard, pool.clone()))
            }
            (Pool::Sqlite(p), None) => TxInner::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            (Pool::Postgres(p), _) => TxInner::Postgres(p.begin().await?),
        };
        Ok(StoreTx {
            inner,
            pending_audit: Vec::new(),
            chainer: self.chainer.clone(),
        })
    }
}

impl StoreTx {
    pub fn backend(&self) -> Backend {
        match self.inner {
            TxInner::SqliteWriter(_) | TxInner::Sqlite(_) => Backend::Sqlite,
            TxInner::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn commit(self) -> Result<()> {
        // PostgreSQL: the audit events are staged with the COMMIT, in one round trip, and
        // chained by the store's background chainer, with no lock held through this commit
        // and no wait for the chaining (see `audit`).
        self.commit_staging_audit().await
    }

    /// Rolls back explicitly (dropping the transaction does the same, lazily).
    pub async fn rollback(self) -> Result<()> {
        match self.inner {
            TxInner::SqliteWriter(w) => w.rollback().await?,
            TxInner::Sqlite(t) => t.rollback().await?,
            TxInner::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    /// Sets a customer's contact-restricting flags (cease contact, dispute, bankruptcy,
    /// attorney). `NotFound` if there is no such customer.
    pub async fn set_customer_flags(
        &mut self,
        customer_id: &str,
        flags: &CustomerFlags,
    ) -> Result<()> {
        let sql = "UPDATE customers SET cease_contact = $1, disputed = $2, bankrupt = $3, \
                   attorney_represented = $4, updated_at = $5 WHERE id = $6";
        tx_write!(
            self,
            sql,
            [
                flags.cease_contact,
                flags.disputed,
                flags.bankrupt,
                flags.attorney_represented,
                now(),
                customer_id,
            ],
            or: StoreError::NotFound(format!("customer {customer_id}"))
        );
        Ok(())
    }

    /// Replaces a customer's account facts (`argent_core::facts`). The caller checks them
    /// and audits the change in the same transaction. `NotFound` if there is no such
    /// customer.
    pub async fn set_customer_facts(
        &mut self,
        customer_id: &str,
        facts: &argent_core::AccountFacts,
    ) -> Result<()> {
        let sql = "UPDATE customers SET facts = $1, updated_at = $2 WHERE id = $3";
        tx_write!(
            self,
            sql,
            [crate::to_json(facts), now(), customer_id],
            or: StoreError::NotFound(format!("customer {customer_id}"))
        );
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use sqlx::{Connection, Row, SqliteConnection};

    /// Records tool call `id` (run R1, customer C1) in `tx`: a write that answers whether
    /// the call is new, so it takes a round trip of its own.
    async fn record(tx: &mut super::StoreTx, id: &str) -> crate::Result<bool> {
        tx.record_tool_call(
            id,
            "R1",
            "C1",
            "send_email",
            "{}",
            crate::ToolCallStatus::Received,
        )
        .await
    }

    #[test]
    fn renumbering_shifts_parameters_outside_quotes() {
        let mut out = String::from("SELECT $1;\n");
        super::renumber_into(
            &mut out,
            "UPDATE t SET a = $1, b = '$2', \"c$3\" = $10 WHERE d = $2",
            5,
        );
        assert_eq!(
            out,
            "SELECT $1;\nUPDATE t SET a = $6, b = '$2', \"c$3\" = $15 WHERE d = $7"
        );
    }

    /// On the writer, a queued write whose guard fails is reported by the next round trip
    /// as the operation's own error; after that the transaction refuses every statement
    /// (some writes it was told were queued never ran) and rolls back whole.
    #[tokio::test]
    async fn a_failed_batch_leaves_a_transaction_that_only_rolls_back() {
        use crate::testkit::TestStore;
        use crate::{StoreError, ToolCallStatus};
        let ts = TestStore::sqlite().await.unwrap();
        let store = &ts.store;
        let mut tx = store.begin().await.unwrap();
        // Queued: nothing has reached the database yet, so nothing has failed yet.
        tx.set_tool_call("missing", ToolCallStatus::Executed, None)
            .await
            .unwrap();
        // A statement that needs its answer sends the queue first, and gets its error.
        let err = record(&mut tx, "c1").await.unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound(w) if w == "tool call missing"),
            "{err:?}"
        );
        let err = tx
            .set_tool_call("c1", ToolCallStatus::Executed, None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("can only be rolled back"), "{err}");
        assert!(tx.commit().await.is_err());
        assert!(store.tool_call("c1").await.unwrap().is_none());

        // An empty transaction commits without touching the database, and the writer
        // goes on working.
        store.begin().await.unwrap().commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        record(&mut tx, "c1").await.unwrap();
        tx.commit().await.unwrap();
        assert!(store.tool_call("c1").await.unwrap().is_some());
        ts.cleanup().await;
    }

    /// The writer chains a transaction's audit events on the head its last commit left,
    /// checked under the write lock; when another process has appended since, the events
    /// are re-chained on the stored head and nothing is lost or duplicated.
    #[tokio::test]
    async fn a_head_moved_by_another_process_is_chained_on() {
        use crate::testkit::TestStore;
        use crate::{AuditFilter, AuditVerification, NewAuditEvent};
        let ev = |kind: &str| NewAuditEvent {
            run_id: None,
            customer_id: Some("C1".into()),
            actor: "test".into(),
            kind: kind.into(),
            payload: serde_json::json!({"kind": kind}),
        };
        let ts = TestStore::sqlite().await.unwrap();
        let (a, b) = (&ts.store, ts.reopen().await.unwrap());
        let mut tx = a.begin().await.unwrap();
        tx.audit_append(ev("a1")).await.unwrap();
        tx.commit().await.unwrap();
        b.audit_append(ev("b1")).await.unwrap();
        // `a` remembers the head after a1; b1 moved it.
        let mut tx = a.begin().await.unwrap();
        tx.audit_append(ev("a2")).await.unwrap();
        tx.commit().await.unwrap();
        b.audit_append(ev("b2")).await.unwrap();
        // A standalone append returns the event as stored.
        let a3 = a.audit_append(ev("a3")).await.unwrap();
        assert_eq!(a3.seq, 5);
        let stored = a.audit_events(&AuditFilter::default()).await.unwrap();
        let kinds: Vec<(i64, &str)> = stored.iter().map(|e| (e.seq, e.kind.as_str())).collect();
        assert_eq!(
            kinds,
            [(1, "a1"), (2, "b1"), (3, "a2"), (4, "b2"), (5, "a3")]
        );
        assert_eq!(stored[4], a3);
        assert!(matches!(
            a.audit_verify().await.unwrap(),
            AuditVerification::Intact { events: 5, .. }
        ));
        b.close().await;
        ts.cleanup().await;
    }

    /// A transaction of queued writes on a writer that knows the audit head is one round
    /// trip, its commit; one that must answer first is two.
    #[tokio::test]
    async fn queued_writes_go_with_the_commit() {
        use crate::testkit::TestStore;
        use crate::{NewAuditEvent, ToolCallStatus};
        let ts = TestStore::sqlite().await.unwrap();
        let store = &ts.store;
        let mut tx = store.begin().await.unwrap();
        record(&mut tx, "c1").await.unwrap();
        tx.commit().await.unwrap();
        let before = store.writer_round_trips().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.set_tool_call("c1", ToolCallStatus::Executed, None)
            .await
            .unwrap();
        tx.audit_append(NewAuditEvent {
            run_id: Some("R1".into()),
            customer_id: Some("C1".into()),
            actor: "test".into(),
            kind: "executed".into(),
            payload: serde_json::json!({}),
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.writer_round_trips().await.unwrap() - before, 1);
        // `record_tool_call` answers whether the call is new: it needs its own round trip.
        let before = store.writer_round_trips().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        record(&mut tx, "c2").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.writer_round_trips().await.unwrap() - before, 2);
        ts.cleanup().await;
    }

    /// The SQLite writer saves round trips by sending two statements in one query with
    /// bind parameters (`BEGIN IMMEDIATE; SELECT … audit_head`, and an audit INSERT with
    /// the head's UPDATE). sqlx-sqlite runs every statement of such a query, binding `$N`
    /// by number; sqlx has discussed dropping that (launchbadge/sqlx#3108). If an upgrade
    /// does, this fails first, by name.
    #[tokio::test]
    async fn sqlite_runs_every_statement_of_a_query_with_bind_parameters() {
        let mut c = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (a INTEGER NOT NULL, b TEXT NOT NULL)")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t (a, b) VALUES ($1, 'x'), ($1 + 1, 'x'); UPDATE t SET b = $2 WHERE a = $1")
            .bind(7_i64)
            .bind("y")
            .execute(&mut c)
            .await
            .unwrap();
        let row =
            sqlx::query("BEGIN IMMEDIATE; SELECT count(*) AS n, min(b) AS b FROM t WHERE a >= $1")
                .bind(7_i64)
                .fetch_optional(&mut c)
                .await
                .unwrap()
                .unwrap();
        assert_eq!(row.get::<i64, _>("n"), 2);
        assert_eq!(row.get::<String, _>("b"), "x");
        let b: String = sqlx::query("SELECT b FROM t WHERE a = 7")
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get("b");
        assert_eq!(b, "y", "the second statement ran");
        // And the first one began a transaction.
        sqlx::query("COMMIT").execute(&mut c).await.unwrap();
    }
}
