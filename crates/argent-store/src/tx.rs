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
//! checkpoint runs on a pooled connection in the background, while writing goes on, and
//! the writer's first commit after it copies what was committed meanwhile, so the
//! checkpoint is complete and the WAL is written from its beginning again (a background
//! pass alone always left the latest frames behind, and the WAL grew for as long as
//! writing went on). An in-memory database (one connection) uses plain pooled
//! transactions.
//!
//! [`Store::begin_deferred`] (the planner loop's transactions) takes the writer only at the
//! transaction's first round trip, so the work between its statements holds nobody up.
//!
//! **Round trips on the writer.** sqlx runs every SQLite statement on the connection's own
//! thread and sends each result and row back as a message, and on a busy two-core machine
//! each such hand-off costs more than SQLite's work on the statement. So the writer sends a
//! transaction's statements in as few round trips as the caller's need for answers allows,
//! and a round trip of queued writes runs on the connection's handle in the calling thread
//! ([`crate::direct`]: rusqlite on sqlx's handle, each statement prepared once and cached).
//! The writer keeps the handle locked from one batch to the next ([`direct::Held`]): a
//! batch takes no message to the connection's thread unless sqlx ran a statement on it
//! since.
//! - `begin` only takes the writer. `BEGIN IMMEDIATE` goes with the transaction's first
//!   round trip, together with a read of the audit head (the writer remembers the head its
//!   last commit left, and the read under the write lock confirms or replaces it). If
//!   another connection holds the write lock, `BEGIN IMMEDIATE` goes through sqlx instead,
//!   whose thread waits out the busy timeout, so no runtime thread sleeps in SQLite.
//! - A write whose answer the caller does not need ([`tx_write!`]: inserts, status
//!   updates, deciding a queue item, audit appends) is queued, and sent in front of the
//!   next statement that needs an answer, or with `COMMIT`. A queued write that must
//!   change a row (else the operation's own error, such as `NotFound` or, for a queue
//!   item that is no longer pending, `Conflict`) has its changed rows checked as it runs,
//!   so a failed expectation stops the batch before its `COMMIT` and the caller gets the
//!   operation's own error.
//! - So an error of a queued write is reported by a later call of the same transaction
//!   (at the latest by `commit`); from then on the transaction refuses every statement
//!   and can only roll back, because some of the writes it was told were queued never ran.
//! - Audit events are chained when appended, on the remembered head. If the head read as
//!   the transaction begins shows that another process appended since, the queued events
//!   are re-chained on it before they are written. The chain stored is always the one
//!   `audit_verify` recomputes.
//!
//! Approving or rejecting a queue item is one round trip this way (the commit), where it
//! was six; [`Store::writer_round_trips`] counts them.
//!
//! On PostgreSQL it is an ordinary READ COMMITTED transaction; row locks (the audit head,
//! conditional updates, `FOR UPDATE SKIP LOCKED`) do the serializing. Its writes are queued
//! as on the SQLite writer ([`PgTx`]): a [`tx_write!`] is rendered at once with its values
//! as literals of the types sqlx would bind them as ([`Arg::pg_literal`]; text as an
//! escape string, so no value can end its literal) and sent, as one simple query, in front
//! of the transaction's next statement that needs an answer, or with its `COMMIT`. A
//! queued write that must change a row goes as `WITH argent_w AS (<write> RETURNING 1)
//! SELECT … WHERE NOT argent_expect_changed(k, count)`, a function (migration 0033) that
//! raises SQLSTATE `AR001` with the write's number `k` when it changed nothing; the query
//! stops there, before its `COMMIT`, and the caller gets the operation's own error for `k`.
//! As on the writer, such an error comes from a later call of the transaction (`commit` at
//! the latest), and from then on the transaction can only roll back. Audit appends are
//! kept in the `StoreTx` and sent with the `COMMIT` too, by a statement that stages them;
//! the store's chainer chains them afterwards on the head as it stands then (see `audit`),
//! so no transaction holds the audit head's lock. The writes every model step queues, and
//! the audit staging, are prepared by each session when it connects and queued as
//! `EXECUTE` with the same literals (`prepared`), so the server does not parse and plan
//! them each time; any other queued write is parsed and planned with its literals.

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
use sqlx::{Either, Executor, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction, Type};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::audit::QueuedEvent;
use crate::direct::{self, Held};
use crate::{Backend, Pool, Result, Store, StoreError, now};

/// Commits after which the writer starts a background WAL checkpoint.
pub const CHECKPOINT_EVERY: u32 = 512;
/// …or the time since the last one after which any commit starts one.
const CHECKPOINT_AFTER: Duration = Duration::from_secs(1);

/// The one connection a SQLite file store writes through (see the module docs).
pub(crate) struct Writer {
    /// The connection, its handle kept locked between direct batches ([`Held`]); closed
    /// once the store is.
    conn: Held,
    /// How `conn` was opened, to open it again (see [`lock_writer`]).
    opts: SqliteConnectOptions,
    /// When `conn` was opened.
    opened: Instant,
    /// A transaction was begun and not yet committed or rolled back.
    open: bool,
    commits: u32,
    last_checkpoint: Instant,
    checkpointing: Arc<AtomicBool>,
    /// A background checkpoint finished since the writer last finished one: the writer
    /// copies what was committed meanwhile (see `WriterTx::commit`).
    tail_due: Arc<AtomicBool>,
    /// The audit head (seq, hash) as this writer's last commit left it. Another process
    /// may have moved it since, so a transaction that chains on it checks it first (see
    /// `WriterTx::round_trip`).
    known_head: Head,
    /// Batches sent to the connection's thread (see [`Store::writer_round_trips`]).
    round_trips: u64,
}

/// The audit head a writer's last commit left, readable without taking the writer (a
/// deferred transaction chains its events on it before it takes the writer).
type Head = Arc<std::sync::Mutex<Option<(i64, String)>>>;

fn head_of(head: &Head) -> Option<(i64, String)> {
    match head.lock() {
        Ok(h) => h.clone(),
        // Only ever replaced whole: a poisoned value is still a whole one.
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn set_head(head: &Head, value: Option<(i64, String)>) {
    match head.lock() {
        Ok(mut h) => *h = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

/// The store's writer, the audit head its last commit left, and the deferred transactions
/// waiting to commit.
#[derive(Clone, Debug)]
pub(crate) struct SharedWriter {
    pub(crate) writer: Arc<Mutex<Writer>>,
    head: Head,
    pending: Arc<std::sync::Mutex<Vec<Job>>>,
}

/// The most jobs one group commit runs (a runner whose own job is further back runs the
/// next group too): a group without bound, at 500 concurrent episodes, peaked 7–14 MiB
/// higher than groups of 16, at the same throughput.
const GROUP_MAX: usize = 16;

/// A deferred transaction's queued writes, waiting for a group commit.
struct Job {
    /// Which job (unique in the store), to take it back if its committer goes away.
    id: u64,
    queued: Vec<Op>,
    done: tokio::sync::oneshot::Sender<Grouped>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("queued", &self.queued.len())
            .finish()
    }
}

/// How a job's group commit went.
enum Grouped {
    /// Its writes committed (`Ok`), or failed with its own error and nothing of it was
    /// written.
    Ran(Result<()>),
    /// The group failed as a whole and nothing of it was written: the job commits alone.
    Alone(Vec<Op>),
}

impl SharedWriter {
    /// Commits `queued` (a deferred transaction's writes) together with those of the other deferred transactions committing now:
    /// whichever of them takes the writer first runs all that are waiting, in one SQLite
    /// transaction, each in a savepoint of its own ([`Writer::run_group`]), and the others
    /// are told the outcome without taking the writer themselves. Each job's events are
    /// chained on the head as the jobs before it left it, so the chain is the one a
    /// sequence of separate commits would have stored; a job whose writes fail is rolled
    /// back to its savepoint alone. Under load this turns many commits (each with its
    /// frames of the same pages: the audit head, the tables' last leaves) into one, and the
    /// writer goes from one job to the next without waiting for the next committer's
    /// thread to be scheduled.
    ///
    /// If the committing future is dropped before a runner took its job, the job is taken
    /// back: a transaction never commits after its committer stopped waiting unless its
    /// commit had started (as with a commit that is not grouped).
    async fn group_commit(&self, queued: Vec<Op>, pool: &SqlitePool) -> Grouped {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let (done, mut rx) = tokio::sync::oneshot::channel();
        with_pending(&self.pending, |p| p.push(Job { id, queued, done }));
        let _waiting = Waiting {
            pending: &self.pending,
            id,
        };
        let lock = self.writer.clone().lock_owned();
        tokio::pin!(lock);
        tokio::select! {
            biased;
            out = &mut rx => return out.unwrap_or_else(|_| Grouped::Ran(Err(lost()))),
            mut w = &mut lock => {
                // Oldest first, at most `GROUP_MAX` a group, until this job has run.
                loop {
                    let jobs = with_pending(&self.pending, |p| {
                        let n = p.len().min(GROUP_MAX);
                        p.drain(..n).collect::<Vec<_>>()
                    });
                    if jobs.is_empty() {
                        break;
                    }
                    match w.settle().await.and(w.reopen_if_stale().await) {
                        Ok(()) => w.run_group(jobs, pool).await,
                        Err(e) => {
                            // Each commits alone and meets the error itself.
                            tracing::debug!(error = %e, "taking the writer for a group commit");
                            for job in jobs {
                                let _ = job.done.send(Grouped::Alone(job.queued));
                            }
                        }
                    }
                    if !rx.is_empty() {
                        break;
                    }
                }
            }
        }
        // The writer was held until every job taken was told (ours among them, or told
        // by an earlier holder).
        rx.await.unwrap_or_else(|_| Grouped::Ran(Err(lost())))
    }
}

fn with_pending<R>(pending: &std::sync::Mutex<Vec<Job>>, f: impl FnOnce(&mut Vec<Job>) -> R) -> R {
    match pending.lock() {
        Ok(mut p) => f(&mut p),
        // A panic cannot leave the list half-changed: pushes, takes and removals only.
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

/// A committer waiting for its job's group commit: dropped, it takes the job back if no
/// runner has taken it yet.
struct Waiting<'a> {
    pending: &'a std::sync::Mutex<Vec<Job>>,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        with_pending(self.pending, |p| p.retain(|j| j.id != self.id));
    }
}

/// A group commit's runner dropped a job untold (it panicked): whether it committed is
/// unknown.
fn lost() -> StoreError {
    StoreError::Invalid(
        "the group commit of this transaction was lost; its outcome is unknown".into(),
    )
}

/// What running a group's batch came to.
enum GroupRan {
    /// Committed; each job's own error, by position (`None`: it committed).
    Done(Vec<Option<StoreError>>),
    /// Nothing ran: another connection holds the write lock.
    Busy,
}

/// A group commit's batch, on the writer's handle: `BEGIN IMMEDIATE`, the head read, each
/// job in a savepoint (unless `alone`), `COMMIT`. On a failure of the whole (with each
/// job's own errors so far).
#[allow(clippy::type_complexity)]
fn group_batch(
    db: &rusqlite::Connection,
    jobs: &mut [Job],
    alone: bool,
    begun: &mut bool,
    head_checked: &mut bool,
    head: &mut Option<(i64, String)>,
) -> std::result::Result<GroupRan, (Vec<Option<StoreError>>, StoreError)> {
    let fail = |e: rusqlite::Error| StoreError::from(direct::to_sqlx(e));
    let mut errors: Vec<Option<StoreError>> = Vec::with_capacity(jobs.len());
    if !*begun {
        match direct::try_begin_immediate(db, crate::SQLITE_BUSY_TIMEOUT) {
            Ok(true) => *begun = true,
            Ok(false) => return Ok(GroupRan::Busy),
            Err(e) => return Err((errors, fail(e))),
        }
    }
    if !*head_checked {
        // Under the write lock: the head the jobs chain on (another process may have
        // moved it since this writer's last commit).
        match stored_head(db) {
            Ok(h) => *head = h,
            Err(e) => return Err((errors, e)),
        }
        *head_checked = true;
    }
    for job in jobs.iter_mut() {
        if !alone && let Err(e) = direct::execute(db, "SAVEPOINT argent_job", &[]) {
            return Err((errors, fail(e)));
        }
        let mut sent_head = head.clone();
        let ran = DirectBatch {
            begun: &mut *begun,
            sent_head: &mut sent_head,
            head_checked: &mut *head_checked,
            queued: &mut job.queued,
        }
        .run(db, false);
        match ran {
            Ok(Ran::Done(h)) => {
                if !alone && let Err(e) = direct::execute(db, "RELEASE argent_job", &[]) {
                    return Err((errors, fail(e)));
                }
                *head = h;
                errors.push(None);
            }
            Ok(Ran::Busy) => {
                return Err((
                    errors,
                    StoreError::Invalid("the writer's transaction ended".into()),
                ));
            }
            Err(e) if alone => {
                errors.push(Some(e));
                // Nothing else runs: the caller rolls the transaction back.
                return Err((errors, StoreError::Invalid("the transaction failed".into())));
            }
            Err(e) => {
                let undone = direct::execute(db, "ROLLBACK TO argent_job", &[])
                    .and_then(|_| direct::execute(db, "RELEASE argent_job", &[]));
                errors.push(Some(e));
                if let Err(e) = undone {
                    return Err((errors, fail(e)));
                }
            }
        }
    }
    if let Err(e) = direct::execute(db, "COMMIT", &[]) {
        return Err((errors, fail(e)));
    }
    Ok(GroupRan::Done(errors))
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("open", &self.open)
            .field("closed", &self.conn.is_closed())
            .finish()
    }
}

impl Writer {
    /// Opens the writer connection of the file database `opts` names.
    pub(crate) async fn open(opts: SqliteConnectOptions) -> Result<SharedWriter> {
        let opts = opts.pragma("wal_autocheckpoint", "0");
        let opened = Instant::now();
        let conn = Writer::connect(&opts).await?;
        let head = Head::default();
        let pending = Arc::default();
        let writer = Arc::new(Mutex::new(Writer {
            conn: Held::new(conn),
            opts,
            opened,
            open: false,
            commits: 0,
            last_checkpoint: Instant::now(),
            checkpointing: Arc::new(AtomicBool::new(false)),
            tail_due: Arc::new(AtomicBool::new(false)),
            known_head: head.clone(),
            round_trips: 0,
        }));
        Ok(SharedWriter {
            writer,
            head,
            pending,
        })
    }

    async fn connect(opts: &SqliteConnectOptions) -> Result<SqliteConnection> {
        let conn = sqlx::ConnectOptions::connect(opts).await?;
        crate::readonly::check_file(opts.get_filename());
        Ok(conn)
    }

    /// Replaces the connection if it was open when some connection failed to write for
    /// want of write access (see [`crate::readonly`]): a SQLite connection opened while
    /// the file could not be written stays read-only however the file changes. The new
    /// connection is opened first; if that fails, the old one stays and the next taker
    /// tries again. Whatever the old connection had open is rolled back by closing it.
    async fn reopen_if_stale(&mut self) -> Result<()> {
        if self.conn.is_closed() || !crate::readonly::stale(self.opened) {
            return Ok(());
        }
        let opened = Instant::now();
        let fresh = Writer::connect(&self.opts).await?;
        self.conn.replace(fresh).await;
        self.opened = opened;
        self.open = false;
        set_head(&self.known_head, None);
        tracing::info!("reopened the database writer connection after a read-only error");
        Ok(())
    }

    /// The connection, for a statement sqlx runs (the handle's lock goes back to the
    /// connection's thread first).
    fn conn(&mut self) -> Result<&mut SqliteConnection> {
        Ok(self.conn.sqlx()?)
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

    /// Runs `f` on the connection's handle, in this thread ([`crate::direct`]); the handle
    /// stays locked afterwards, so the next batch takes no message to the connection's
    /// thread unless sqlx ran a statement meanwhile ([`Held`]).
    async fn with_handle<R>(&mut self, f: impl FnOnce(&rusqlite::Connection) -> R) -> Result<R> {
        Ok(self.conn.with(f).await?)
    }

    pub(crate) async fn close(&mut self) {
        self.conn.close().await;
    }

    /// After a commit: the checkpoint's bookkeeping (see the module docs).
    async fn after_commit(&mut self, pool: &SqlitePool) {
        self.commits += 1;
        if self.tail_due.swap(false, Ordering::AcqRel) {
            // The background pass copied the WAL as it was when it began; what was
            // committed since is copied now, with no write of this store in between, so
            // the checkpoint is complete and the next transaction writes the WAL from its
            // beginning again (with only the background pass, every pass left the writer's
            // latest frames behind, and the WAL grew for as long as writing went on). On
            // sqlx's thread: the checkpoint syncs the files, which no runtime thread should
            // wait for.
            let checkpoint = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)");
            match self.conn() {
                Ok(conn) => {
                    if let Err(e) = checkpoint.execute(conn).await {
                        tracing::debug!(error = %e, "completing the WAL checkpoint");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "completing the WAL checkpoint"),
            }
        }
        let due =
            self.commits >= CHECKPOINT_EVERY || self.last_checkpoint.elapsed() >= CHECKPOINT_AFTER;
        let checkpointing = self.checkpointing.clone();
        if due && !checkpointing.swap(true, Ordering::AcqRel) {
            self.commits = 0;
            self.last_checkpoint = Instant::now();
            let tail_due = self.tail_due.clone();
            let pool = pool.clone();
            tokio::spawn(async move {
                // PASSIVE: copies what it can without waiting for readers or the writer;
                // it never invokes the busy handler.
                match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    Ok(_) => tail_due.store(true, Ordering::Release),
                    Err(e) => tracing::debug!(error = %e, "background WAL checkpoint"),
                }
                checkpointing.store(false, Ordering::Release);
            });
        }
    }

    /// Commits `jobs` (deferred transactions' queued writes) in one SQLite transaction, each
    /// in a savepoint of its own (unless it is alone), and tells each how it went: a job
    /// whose writes fail (a must-change write that changed nothing, an error) is rolled
    /// back to its savepoint and gets its error, and the others commit; if the transaction
    /// as a whole fails (its `BEGIN` or `COMMIT`), nothing was written and each job whose
    /// own writes had run is told to commit alone.
    async fn run_group(&mut self, mut jobs: Vec<Job>, pool: &SqlitePool) {
        let alone = jobs.len() == 1;
        let mut begun = false;
        let mut head_checked = false;
        let mut head = head_of(&self.known_head);
        let mut outcomes: Vec<Option<StoreError>> = Vec::new();
        let ran: Result<()> = loop {
            self.round_trips += 1;
            let ran = self
                .with_handle(|db| {
                    group_batch(
                        db,
                        &mut jobs,
                        alone,
                        &mut begun,
                        &mut head_checked,
                        &mut head,
                    )
                })
                .await;
            if begun {
                self.open = true;
            }
            match ran {
                Ok(Ok(GroupRan::Done(errors))) => {
                    outcomes = errors;
                    break Ok(());
                }
                Ok(Ok(GroupRan::Busy)) => {
                    // Begin through sqlx, whose thread waits for the lock.
                    let begin = match self.conn() {
                        Ok(conn) => sqlx::query("BEGIN IMMEDIATE").execute(conn).await,
                        Err(e) => break Err(e),
                    };
                    match begin {
                        Ok(_) => {
                            begun = true;
                            self.open = true;
                        }
                        Err(e) => break Err(e.into()),
                    }
                }
                Ok(Err((errors, e))) => {
                    outcomes = errors;
                    break Err(e);
                }
                Err(e) => break Err(e),
            }
        };
        match ran {
            Ok(()) => {
                self.open = false;
                set_head(&self.known_head, head);
                self.after_commit(pool).await;
                for (job, error) in jobs.into_iter().zip(
                    outcomes
                        .into_iter()
                        .map(Some)
                        .chain(std::iter::repeat_with(|| None)),
                ) {
                    let r = match error.flatten() {
                        Some(e) => Err(e),
                        None => Ok(()),
                    };
                    let _ = job.done.send(Grouped::Ran(r));
                }
            }
            Err(e) => {
                // Nothing of the group was written.
                if let Err(e) = self.settle().await {
                    tracing::debug!(error = %e, "rolling back a failed group commit");
                }
                let mut e = Some(e);
                let mut errors = outcomes.into_iter();
                for job in jobs {
                    let out = match errors.next().flatten() {
                        // Its own writes failed: that is its error, as it would be alone.
                        Some(own) => Grouped::Ran(Err(own)),
                        None if alone => match e.take() {
                            Some(e) => Grouped::Ran(Err(e)),
                            None => Grouped::Alone(job.queued),
                        },
                        None => Grouped::Alone(job.queued),
                    };
                    let _ = job.done.send(out);
                }
            }
        }
    }
}

/// A SQLite file store's connection for one short read: one of the store's [`Readers`] that
/// is free, else a pooled one. A reader runs the read on its handle in this thread, with
/// statements kept prepared ([`ReadConn::on_handle`]); giving it back is unlocking a mutex,
/// where sqlx returns a pooled connection on a task of its own after a ping (a round trip
/// to the connection's thread). The reads a planner-loop step makes (the run-id lookup,
/// the account's records) take it this way. A read waits behind no writer.
///
/// Reads used to take the writer's connection when it was free and no other read was under
/// way (its page cache is current, where a reader's is dropped after every commit of the
/// writer). Under concurrency that stole the bottleneck: a committer arriving during the
/// read waited for it. With reads always on the readers, 8 concurrent episodes ran 3–8%
/// faster (nine alternated pairs: 0.88–1.03× sequential before, 0.88–1.10× after, means
/// 0.94× and 1.01×), and sequential episodes did not move beyond the noise (#16).
pub(crate) struct ReadConn {
    conn: Taken,
}

enum Taken {
    Reader(OwnedMutexGuard<Option<Held>>),
    Pooled(sqlx::pool::PoolConnection<Sqlite>),
}

/// A SQLite file store's connections for short reads (see [`ReadConn`]): owned by
/// the store rather than its pool, so each keeps its handle locked and its statements
/// prepared from one read to the next ([`Held`]), as the writer does. Each is opened when
/// first needed, and closed with the store.
#[derive(Debug)]
pub(crate) struct Readers {
    opts: SqliteConnectOptions,
    slots: Vec<Arc<Mutex<Option<Held>>>>,
}

impl Readers {
    /// One per thread the machine runs at once (a read on one runs without awaiting
    /// anything, so more could not be busy at a time), at most 8.
    pub(crate) fn new(opts: SqliteConnectOptions) -> Readers {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
        Readers {
            opts,
            slots: (0..n).map(|_| Arc::default()).collect(),
        }
    }

    /// A free reader, opening it if it is not open yet; `None` if all are busy.
    async fn take(&self) -> Result<Option<OwnedMutexGuard<Option<Held>>>> {
        for slot in &self.slots {
            if let Ok(mut guard) = slot.clone().try_lock_owned() {
                if guard.is_none() {
                    let conn = sqlx::ConnectOptions::connect(&self.opts).await?;
                    crate::readonly::check_file(self.opts.get_filename());
                    *guard = Some(Held::new(conn));
                }
                return Ok(Some(guard));
            }
        }
        Ok(None)
    }

    pub(crate) async fn close(&self) {
        for slot in &self.slots {
            if let Some(mut held) = slot.lock().await.take() {
                held.close().await;
            }
        }
    }
}

impl ReadConn {
    pub(crate) async fn take(store: &Store, pool: &SqlitePool) -> Result<Self> {
        let conn = match &store.readers {
            Some(readers) => match readers.take().await? {
                Some(reader) => Taken::Reader(reader),
                None => Taken::Pooled(pool.acquire().await?),
            },
            None => Taken::Pooled(pool.acquire().await?),
        };
        Ok(ReadConn { conn })
    }

    /// On a reader's connection, runs `read` on its handle in this thread
    /// ([`crate::direct`]): no message to the connection's thread while the handle is held
    /// ([`Held`]), where sqlx sends one for every statement's end and every row, and the
    /// statements stay prepared. `None` on a pooled connection (then read through sqlx,
    /// [`ReadConn::conn`]): its handle could only be used with statements prepared for one
    /// read and finalized before the connection goes back (the pool may close it at any
    /// time, and sqlx cannot close a handle with statements left on it), and preparing the
    /// account's ten reads every time cost more than sqlx's hand-offs (at 500 concurrent
    /// episodes, where reads overlap and went to the pool: 399–437 episodes/s against
    /// 505–514; #16).
    pub(crate) async fn on_handle<R>(
        &mut self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
    ) -> Result<Option<R>> {
        match &mut self.conn {
            Taken::Reader(r) => match r.as_mut() {
                Some(held) => match held.with(read).await? {
                    Ok(out) => Ok(Some(out)),
                    Err(e) => Err(direct::to_sqlx(e).into()),
                },
                None => Err(StoreError::Db(sqlx::Error::PoolClosed)),
            },
            Taken::Pooled(_) => Ok(None),
        }
    }

    pub(crate) fn conn(&mut self) -> Result<&mut SqliteConnection> {
        match &mut self.conn {
            Taken::Reader(r) => match r.as_mut() {
                Some(held) => Ok(held.sqlx()?),
                None => Err(StoreError::Db(sqlx::Error::PoolClosed)),
            },
            Taken::Pooled(c) => Ok(c),
        }
    }
}

/// Takes the writer, with any transaction a dropped `StoreTx` left open rolled back.
pub(crate) async fn lock_writer(w: &SharedWriter) -> Result<OwnedMutexGuard<Writer>> {
    let mut guard = w.writer.clone().lock_owned().await;
    guard.settle().await?;
    guard.reopen_if_stale().await?;
    Ok(guard)
}

const HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";
const HEAD_UPDATE: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";
/// One audit event, as the writer sends it.
const INSERT_EVENT: &str = "INSERT INTO audit_events (seq, at, run_id, customer_id, actor, \
     kind, rule_ids, canonical, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// One bind argument of a queued statement, owned and typed: encoded for SQLite as sqlx
/// encodes the value it was made from, and written for PostgreSQL as a literal of the type
/// sqlx binds that value as (see [`Arg::pg_literal`]).
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Null(PgType),
    Text(String),
    Int(i64),
    Bool(bool),
    Time(chrono::DateTime<chrono::Utc>),
    Date(chrono::NaiveDate),
    Float(f64),
}

/// The PostgreSQL type sqlx binds a Rust value as (a NULL keeps its type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PgType {
    Text,
    Int8,
    Bool,
    Timestamptz,
    Date,
    Float8,
}

impl PgType {
    fn name(self) -> &'static str {
        match self {
            PgType::Text => "text",
            PgType::Int8 => "int8",
            PgType::Bool => "bool",
            PgType::Timestamptz => "timestamptz",
            PgType::Date => "date",
            PgType::Float8 => "float8",
        }
    }
}

impl Arg {
    pub(crate) fn of(value: impl ToArg) -> Arg {
        value.to_arg()
    }

    /// Appends the value as a PostgreSQL literal of the type sqlx would bind it as (so a
    /// statement means the same with it as with the bound parameter): text as an escape
    /// string (`E'…'`, whose meaning does not depend on `standard_conforming_strings`),
    /// timestamps at microseconds, truncated as sqlx's binary encoding truncates them.
    /// Text with a NUL character is refused, as PostgreSQL refuses it bound.
    pub(crate) fn pg_literal(&self, out: &mut String) -> Result<()> {
        use std::fmt::Write as _;
        let ty = match self {
            Arg::Null(t) => {
                out.push_str("NULL");
                *t
            }
            Arg::Text(s) => {
                if s.contains('\0') {
                    return Err(StoreError::Invalid(
                        "a text value contains a NUL character, which PostgreSQL cannot store"
                            .into(),
                    ));
                }
                out.reserve(s.len() + 10);
                out.push_str("E'");
                for c in s.chars() {
                    match c {
                        '\'' => out.push_str("''"),
                        '\\' => out.push_str("\\\\"),
                        c => out.push(c),
                    }
                }
                out.push('\'');
                PgType::Text
            }
            Arg::Int(i) => {
                let _ = write!(out, "'{i}'");
                PgType::Int8
            }
            Arg::Bool(b) => {
                out.push_str(if *b { "true" } else { "false" });
                PgType::Bool
            }
            Arg::Time(t) => {
                let _ = write!(out, "'{}'", t.format("%Y-%m-%d %H:%M:%S%.6f+00"));
                PgType::Timestamptz
            }
            Arg::Date(d) => {
                let _ = write!(out, "'{}'", d.format("%Y-%m-%d"));
                PgType::Date
            }
            Arg::Float(f) => {
                if f.is_nan() {
                    out.push_str("'NaN'");
                } else if f.is_infinite() {
                    out.push_str(if *f > 0.0 {
                        "'Infinity'"
                    } else {
                        "'-Infinity'"
                    });
                } else {
                    let _ = write!(out, "'{f}'");
                }
                PgType::Float8
            }
        };
        out.push_str("::");
        out.push_str(ty.name());
        Ok(())
    }
}

/// The argument types queued statements bind. (Borrowed text is copied: a queued
/// statement outlives the call that queued it.)
pub(crate) trait ToArg {
    /// What a `None` of this type binds as on PostgreSQL.
    const PG: PgType;
    fn to_arg(self) -> Arg;
}

impl ToArg for &str {
    const PG: PgType = PgType::Text;
    fn to_arg(self) -> Arg {
        Arg::Text(self.to_owned())
    }
}

/// `ToArg` for owned values: the `Arg` variant that holds the value, and its PostgreSQL type.
macro_rules! to_arg {
    ($($t:ty => $variant:ident, $pg:ident;)*) => {
        $(impl ToArg for $t {
            const PG: PgType = PgType::$pg;
            fn to_arg(self) -> Arg {
                Arg::$variant(self)
            }
        })*
    };
}
to_arg! {
    String => Text, Text;
    i64 => Int, Int8;
    bool => Bool, Bool;
    chrono::DateTime<chrono::Utc> => Time, Timestamptz;
    chrono::NaiveDate => Date, Date;
    f64 => Float, Float8;
}

impl<T: ToArg> ToArg for Option<T> {
    const PG: PgType = T::PG;
    fn to_arg(self) -> Arg {
        self.map_or(Arg::Null(T::PG), T::to_arg)
    }
}

impl<'q> Encode<'q, Sqlite> for Arg {
    fn encode(
        self,
        buf: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> std::result::Result<IsNull, BoxDynError> {
        match self {
            Arg::Null(_) => Ok(IsNull::Yes),
            Arg::Text(s) => <String as Encode<Sqlite>>::encode(s, buf),
            Arg::Int(i) => <i64 as Encode<Sqlite>>::encode(i, buf),
            Arg::Bool(b) => <bool as Encode<Sqlite>>::encode(b, buf),
            Arg::Time(t) => <chrono::DateTime<chrono::Utc> as Encode<Sqlite>>::encode(t, buf),
            Arg::Date(d) => <chrono::NaiveDate as Encode<Sqlite>>::encode(d, buf),
            Arg::Float(f) => <f64 as Encode<Sqlite>>::encode(f, buf),
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

/// Copies `sql` to `out` with `param(out, N)` called in place of each `$N` parameter;
/// `$` inside a quoted string or identifier is copied as it is. It scans bytes and copies
/// the text between parameters whole (every byte it stops at is ASCII, so each piece is
/// whole characters): a step's batch renumbers some 35 statements (#16).
pub(crate) fn map_params(
    out: &mut String,
    sql: &str,
    mut param: impl FnMut(&mut String, usize) -> Result<()>,
) -> Result<()> {
    let bytes = sql.as_bytes();
    let mut quote: Option<u8> = None;
    // Copied up to here.
    let mut start = 0;
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                i += 1;
            }
            None if c == b'\'' || c == b'"' => {
                quote = Some(c);
                i += 1;
            }
            None if c == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.push_str(sql.get(start..i).unwrap_or_default());
                let mut n = 0usize;
                i += 1;
                while let Some(d) = bytes.get(i).filter(|d| d.is_ascii_digit()) {
                    n = n.saturating_mul(10).saturating_add(usize::from(d - b'0'));
                    i += 1;
                }
                param(out, n)?;
                start = i;
            }
            None => i += 1,
        }
    }
    out.push_str(sql.get(start..).unwrap_or_default());
    Ok(())
}

/// The rows of each statement of `sql` (sqlx-sqlite runs every statement of a query,
/// binding `$N` to the N-th of `args` in each), in one message to the connection's thread.
pub(crate) async fn rows_of_statements(
    conn: &mut SqliteConnection,
    sql: &str,
    args: SqliteArguments<'static>,
) -> std::result::Result<Vec<Vec<SqliteRow>>, sqlx::Error> {
    match split_by_statement(conn.fetch_many(sqlx::query_with(sql, args)), |_| {}).await {
        (_, Some(e)) => Err(e),
        (rows, None) => Ok(rows),
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

/// What running a batch directly came to.
enum Ran {
    /// Everything ran; the audit head after it.
    Done(Option<(i64, String)>),
    /// The transaction had not begun and another connection holds the write lock: nothing ran.
    Busy,
}

/// The audit head as stored (read under the write lock, it cannot move meanwhile).
fn stored_head(db: &rusqlite::Connection) -> Result<Option<(i64, String)>> {
    let rows = direct::query(db, HEAD, &[]).map_err(|e| StoreError::from(direct::to_sqlx(e)))?;
    match rows.first() {
        Some(r) => Ok(Some((r.try_get("seq")?, r.try_get("hash")?))),
        None => Ok(None),
    }
}

/// A round trip's batch, run on the writer's handle (see [`WriterTx::round_trip`]).
struct DirectBatch<'a> {
    begun: &'a mut bool,
    sent_head: &'a mut Option<(i64, String)>,
    head_checked: &'a mut bool,
    queued: &'a mut Vec<Op>,
}

impl DirectBatch<'_> {
    fn run(&mut self, db: &rusqlite::Connection, commit: bool) -> Result<Ran> {
        let fail = |e: rusqlite::Error| StoreError::from(direct::to_sqlx(e));
        if !*self.begun {
            if !direct::try_begin_immediate(db, crate::SQLITE_BUSY_TIMEOUT).map_err(fail)? {
                return Ok(Ran::Busy);
            }
            *self.begun = true;
        }
        if !*self.head_checked {
            // Under the write lock the stored head cannot move: a remembered one is checked
            // (and replaced, with the queued events re-chained below, if another process
            // appended since), an unknown one read.
            *self.sent_head = stored_head(db)?;
            *self.head_checked = true;
        }
        // The audit events chain from the head as of what has been sent; a queued append
        // chained on another head (a stale remembered one) is re-chained here.
        let mut head = self.sent_head.clone();
        let mut appended = false;
        for op in self.queued.iter_mut() {
            match op {
                Op::Statement {
                    sql,
                    args,
                    must_change,
                } => {
                    let changed = direct::execute(db, sql, args).map_err(fail)?;
                    if changed == 0
                        && let Some(e) = must_change.take()
                    {
                        return Err(e);
                    }
                }
                Op::Audit(events) => {
                    let after = head.clone().unwrap_or((0, crate::GENESIS_HASH.to_string()));
                    crate::audit::chain_after(events, after);
                    for e in events.iter() {
                        direct::execute(db, INSERT_EVENT, &e.args()).map_err(fail)?;
                    }
                    if let Some(e) = events.last() {
                        head = Some((e.event.seq, e.event.hash.clone()));
                        appended = true;
                    }
                }
            }
        }
        if appended && let Some((seq, hash)) = &head {
            let args = [Arg::of(*seq), Arg::of(hash.as_str())];
            direct::execute(db, HEAD_UPDATE, &args).map_err(fail)?;
        }
        if commit {
            direct::execute(db, "COMMIT", &[]).map_err(fail)?;
        }
        tracing::debug!(queued = self.queued.len(), commit, "writer batch");
        Ok(Ran::Done(head))
    }
}

/// A transaction on the writer connection. Dropped unfinished, it rolls back on a task of
/// its own that holds the writer until done (or, outside a runtime, the next user of the
/// writer rolls back first).
pub(crate) struct WriterTx {
    hold: Hold,
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

/// A writer transaction's hold on the writer.
enum Hold {
    /// Deferred: the writer is taken at the first round trip (see `Store::begin_deferred`).
    Waiting(SharedWriter),
    Taken(OwnedMutexGuard<Writer>),
    /// Committed or rolled back.
    Ended,
}

impl WriterTx {
    pub(crate) fn new(guard: OwnedMutexGuard<Writer>, pool: SqlitePool) -> WriterTx {
        let head = head_of(&guard.known_head);
        WriterTx::with(Hold::Taken(guard), head, pool)
    }

    /// A transaction that takes the writer at its first round trip.
    pub(crate) fn deferred(writer: SharedWriter, pool: SqlitePool) -> WriterTx {
        let head = head_of(&writer.head);
        WriterTx::with(Hold::Waiting(writer), head, pool)
    }

    fn with(hold: Hold, head: Option<(i64, String)>, pool: SqlitePool) -> WriterTx {
        WriterTx {
            hold,
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
        match &mut self.hold {
            Hold::Taken(w) => Ok(w),
            Hold::Waiting(_) => Err(StoreError::Invalid(
                "the transaction has not taken the writer yet".into(),
            )),
            Hold::Ended => Err(StoreError::Invalid("the transaction has ended".into())),
        }
    }

    /// Takes the writer if this transaction was deferred and has not taken it yet.
    async fn take_writer(&mut self) -> Result<&mut Writer> {
        if let Hold::Waiting(shared) = &self.hold {
            let guard = lock_writer(shared).await?;
            self.hold = Hold::Taken(guard);
        }
        self.writer()
    }

    fn usable(&self) -> Result<()> {
        refuse_if_failed(self.failed)
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

    /// One round trip on the writer: the connection's handle is taken from its thread (one
    /// message) and, in this thread ([`crate::direct`]), `BEGIN IMMEDIATE` runs if the
    /// transaction has not begun, with a read of the audit head if it was only remembered
    /// (a head another process moved since is taken, and the queued audit events are
    /// re-chained on it), then the queued statements, each one's changed rows checked
    /// against its expectation, and `COMMIT` if `commit`.
    ///
    /// If another connection holds the write lock, `BEGIN IMMEDIATE` goes through sqlx
    /// instead, whose thread waits out the busy timeout, and the batch then runs as above.
    async fn round_trip(&mut self, commit: bool) -> Result<()> {
        self.usable()?;
        match self.send(commit).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.failed = true;
                self.queued.clear();
                Err(e)
            }
        }
    }

    async fn send(&mut self, commit: bool) -> Result<()> {
        self.take_writer().await?;
        let WriterTx {
            hold,
            begun,
            sent_head,
            head_checked,
            audit_head,
            queued,
            ..
        } = self;
        let Hold::Taken(w) = hold else {
            return Err(StoreError::Invalid("the transaction has ended".into()));
        };
        let head = loop {
            w.round_trips += 1;
            let ran = w
                .with_handle(|db| {
                    DirectBatch {
                        begun: &mut *begun,
                        sent_head: &mut *sent_head,
                        head_checked: &mut *head_checked,
                        queued: &mut *queued,
                    }
                    .run(db, commit)
                })
                .await?;
            // A transaction it began is open, whatever happened after.
            if *begun {
                w.open = true;
            }
            match ran? {
                Ran::Done(head) => break head,
                Ran::Busy => {
                    // Begin through sqlx, whose thread waits for the lock.
                    sqlx::query("BEGIN IMMEDIATE").execute(w.conn()?).await?;
                    *begun = true;
                    w.open = true;
                }
            }
        };
        queued.clear();
        *sent_head = head.clone();
        *audit_head = head;
        if commit {
            w.open = false;
            set_head(&w.known_head, sent_head.clone());
        }
        Ok(())
    }

    pub(crate) async fn commit(mut self) -> Result<()> {
        if matches!(self.hold, Hold::Ended) {
            return Err(StoreError::Invalid("the transaction has ended".into()));
        }
        if !self.begun && self.queued.is_empty() {
            // Nothing was written: there is nothing to commit.
            self.hold = Hold::Ended;
            return Ok(());
        }
        self.usable()?;
        if let Hold::Waiting(shared) = &self.hold {
            // All its writes are queued: they commit with whatever other deferred
            // transactions are committing now (see `SharedWriter::group_commit`).
            let shared = shared.clone();
            let queued = std::mem::take(&mut self.queued);
            match shared.group_commit(queued, &self.pool).await {
                Grouped::Ran(r) => {
                    self.hold = Hold::Ended;
                    if r.is_err() {
                        self.failed = true;
                    }
                    return r;
                }
                // The group failed as a whole: nothing of it was written; this
                // transaction commits alone, taking the writer itself.
                Grouped::Alone(queued) => self.queued = queued,
            }
        }
        self.round_trip(true).await?;
        let Hold::Taken(mut w) = std::mem::replace(&mut self.hold, Hold::Ended) else {
            return Err(StoreError::Invalid("the transaction has ended".into()));
        };
        w.after_commit(&self.pool).await;
        Ok(())
    }

    async fn rollback(mut self) -> Result<()> {
        let Hold::Taken(mut w) = std::mem::replace(&mut self.hold, Hold::Ended) else {
            return Ok(());
        };
        w.settle().await
    }
}

impl Drop for WriterTx {
    fn drop(&mut self) {
        if let Hold::Taken(mut w) = std::mem::replace(&mut self.hold, Hold::Ended)
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

/// A transaction (either backend's) whose round trip with queued writes failed refuses
/// everything but rolling back: some writes the caller was told were queued never ran.
fn refuse_if_failed(failed: bool) -> Result<()> {
    if failed {
        return Err(StoreError::Invalid(
            "an earlier statement of this transaction failed; it can only be rolled back".into(),
        ));
    }
    Ok(())
}

/// The SQLSTATE `argent_expect_changed` (migration 0033) raises for a queued write that
/// changed no row; its message ends with the write's guard number.
const EXPECT_CODE: &str = "AR001";
const EXPECT_PREFIX: &str = "argent: queued write ";

/// A PostgreSQL transaction with its queued writes (see the module docs): a write whose
/// answer the caller does not need is rendered with its values as literals and sent with
/// the transaction's next statement that needs an answer, or with its `COMMIT`, as one
/// simple query: one round trip for all of them.
pub(crate) struct PgTx {
    pub(crate) t: Transaction<'static, Postgres>,
    /// The queued writes, `;`-terminated, ready to go in front of the next statement.
    queued: String,
    /// The error of each queued write that must change a row, by the number its guard
    /// raises (taken when reported).
    expect: Vec<Option<StoreError>>,
    /// A round trip with queued writes failed: some writes the caller was told were queued
    /// did not run, so the transaction refuses everything but rolling back.
    failed: bool,
}

impl PgTx {
    fn new(t: Transaction<'static, Postgres>) -> PgTx {
        PgTx {
            t,
            queued: String::new(),
            expect: Vec::new(),
            failed: false,
        }
    }

    fn check_open(&self) -> Result<()> {
        refuse_if_failed(self.failed)
    }

    /// Queues `sql` with `args` (bound as `$1`, `$2`, …) for the next round trip. With
    /// `must_change`, the write is wrapped so that changing no row raises
    /// `argent_expect_changed`'s error, reported as `must_change`.
    pub(crate) fn queue(
        &mut self,
        sql: &str,
        args: &[Arg],
        must_change: Option<StoreError>,
    ) -> Result<()> {
        self.check_open()?;
        let sql = sql.trim_end().trim_end_matches(';');
        // Rendered apart and appended whole, so a value that cannot be written (text with
        // a NUL) leaves the queue as it was.
        let mut write = String::with_capacity(sql.len() + 64);
        let k = must_change.as_ref().map(|_| self.expect.len());
        match (crate::prepared::index(sql), k) {
            // One the session prepared when it connected (see `prepared`).
            (Some(i), k) => crate::prepared::render_execute(&mut write, i, args, k)?,
            (None, None) => render_pg(&mut write, sql, args)?,
            (None, Some(k)) => {
                let mut rendered = String::with_capacity(sql.len() + 64);
                render_pg(&mut rendered, sql, args)?;
                crate::prepared::guarded(&mut write, &rendered, &k.to_string());
            }
        }
        if let Some(err) = must_change {
            self.expect.push(Some(err));
        }
        write.push_str(";\n");
        self.queued.push_str(&write);
        Ok(())
    }

    /// The connection, with whatever is queued sent first (a round trip when anything is).
    pub(crate) async fn conn(&mut self) -> Result<&mut sqlx::PgConnection> {
        self.check_open()?;
        if !self.queued.is_empty() {
            let sql = std::mem::take(&mut self.queued);
            if let Err(e) = (&mut *self.t).execute(sql.as_str()).await {
                return Err(self.failure(e));
            }
        }
        Ok(&mut *self.t)
    }

    /// Takes the queued writes, to be sent in front of `COMMIT` by the caller, who reports
    /// an error of that query through [`PgTx::failure`].
    pub(crate) fn take_queued(&mut self) -> Result<String> {
        self.check_open()?;
        Ok(std::mem::take(&mut self.queued))
    }

    /// The error to report for a failed round trip that carried queued writes: the
    /// operation's own error when a write that had to change a row changed none.
    pub(crate) fn failure(&mut self, e: sqlx::Error) -> StoreError {
        self.failed = true;
        if let sqlx::Error::Database(db) = &e
            && db.code().as_deref() == Some(EXPECT_CODE)
            && let Some(k) = db
                .message()
                .strip_prefix(EXPECT_PREFIX)
                .and_then(|k| k.parse::<usize>().ok())
            && let Some(err) = self.expect.get_mut(k).and_then(Option::take)
        {
            return err;
        }
        e.into()
    }
}

/// Appends `sql` to `out` with each `$N` parameter outside quotes replaced by `args[N-1]`
/// as a PostgreSQL literal ([`Arg::pg_literal`]).
pub(crate) fn render_pg(out: &mut String, sql: &str, args: &[Arg]) -> Result<()> {
    map_params(out, sql, |out, n| {
        let arg = n.checked_sub(1).and_then(|i| args.get(i)).ok_or_else(|| {
            StoreError::Invalid(format!(
                "statement parameter ${n} has no argument ({} given)",
                args.len()
            ))
        })?;
        arg.pg_literal(out)
    })
}

pub(crate) enum TxInner {
    /// A SQLite file database: the store's writer connection.
    SqliteWriter(WriterTx),
    /// A SQLite in-memory database: a pooled transaction on its one connection.
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(PgTx),
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
            $crate::tx::TxInner::Postgres(p) => {
                let $conn: &mut ::sqlx::PgConnection = p.conn().await?;
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
                let args = vec![$($crate::tx::Arg::of($arg)),*];
                w.queue($sql, args, $crate::tx::tx_write!(@must_change $($err)?))?;
            }
            $crate::tx::TxInner::Sqlite(t) => {
                let _changed = ::sqlx::query($sql)$(.bind($arg))*
                    .execute(&mut **t)
                    .await?
                    .rows_affected();
                $( if _changed == 0 { return Err($err); } )?
            }
            $crate::tx::TxInner::Postgres(p) => {
                let args = [$($crate::tx::Arg::of($arg)),*];
                p.queue($sql, &args, $crate::tx::tx_write!(@must_change $($err)?))?;
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
            Some(w) => Some(w.writer.lock().await.round_trips),
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
            (Pool::Postgres(p), _) => TxInner::Postgres(PgTx::new(p.begin().await?)),
        };
        Ok(StoreTx {
            inner,
            pending_audit: Vec::new(),
            chainer: self.chainer.clone(),
        })
    }

    /// [`Store::begin`] for a transaction whose body reads nothing outside it (no read
    /// through the store, only through the transaction). On a SQLite file store it takes
    /// the writer at its first round trip (the first statement that needs an answer, or
    /// its commit) rather than at once: writes queued before then hold nobody up, so
    /// concurrent transactions do the work between their statements in parallel. Its
    /// audit events are chained on the head the writer's last commit left, and chained
    /// again on the stored head when they are sent if another transaction committed
    /// meanwhile (as for another process's, see the module docs). Such a transaction is
    /// the same as one begun when it takes the writer: what it read before came from
    /// outside it either way. Elsewhere it is [`Store::begin`].
    pub async fn begin_deferred(&self) -> Result<StoreTx> {
        match (&self.pool, &self.writer) {
            (Pool::Sqlite(pool), Some(writer)) => Ok(StoreTx {
                inner: TxInner::SqliteWriter(WriterTx::deferred(writer.clone(), pool.clone())),
                pending_audit: Vec::new(),
                chainer: self.chainer.clone(),
            }),
            _ => self.begin().await,
        }
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
            TxInner::Postgres(p) => p.t.rollback().await?,
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
    use super::{Arg, TxInner};

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

    /// Renumbering as it was first written, a character at a time: the reference the
    /// byte scan must match.
    fn renumbered_by_chars(sql: &str, offset: usize) -> String {
        let mut out = String::new();
        let mut chars = sql.chars().peekable();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
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
                None if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) => {
                    let mut n = 0usize;
                    while let Some(v) = chars.peek().and_then(|d| d.to_digit(10)) {
                        n = n.saturating_mul(10).saturating_add(v as usize);
                        chars.next();
                    }
                    out.push('$');
                    out.push_str(&n.saturating_add(offset).to_string());
                }
                None => out.push(c),
            }
        }
        out
    }

    /// `map_params` (which renders PostgreSQL's queued writes) with each `$N` written as
    /// `$(N + offset)`: the byte scan under test, against the character-by-character one.
    fn renumber_into(out: &mut String, sql: &str, offset: usize) {
        use std::fmt::Write as _;
        let renumbered: crate::Result<()> = super::map_params(out, sql, |out, n| {
            // Writing to a `String` cannot fail.
            let _ = write!(out, "${}", n.saturating_add(offset));
            Ok(())
        });
        debug_assert!(renumbered.is_ok());
    }

    proptest::proptest! {
        /// Any text (quotes, `$`, digits, any Unicode, numbers too long for a `usize`)
        /// renumbers as character by character.
        #[test]
        fn renumbering_by_bytes_is_renumbering_by_characters(
            sql in "([$'\"0-9a-z ]|\\PC){0,60}",
            offset in 0usize..1000,
        ) {
            let mut out = String::from("x");
            renumber_into(&mut out, &sql, offset);
            proptest::prop_assert_eq!(out, format!("x{}", renumbered_by_chars(&sql, offset)));
        }
    }

    #[test]
    fn renumbering_shifts_parameters_outside_quotes() {
        let mut out = String::from("SELECT $1;\n");
        renumber_into(
            &mut out,
            "UPDATE t SET a = $1, b = '$2', \"c$3\" = $10 WHERE d = $2",
            5,
        );
        assert_eq!(
            out,
            "SELECT $1;\nUPDATE t SET a = $6, b = '$2', \"c$3\" = $15 WHERE d = $7"
        );
    }

    /// On the SQLite writer and on PostgreSQL, a queued write whose guard fails is reported
    /// by the next round trip as the operation's own error; after that the transaction
    /// refuses every statement (some writes it was told were queued never ran) and rolls
    /// back whole.
    #[tokio::test]
    async fn a_failed_batch_leaves_a_transaction_that_only_rolls_back() {
        use crate::testkit::TestStore;
        for ts in TestStore::all().await.unwrap() {
            a_failed_batch_only_rolls_back(ts).await;
        }
    }

    async fn a_failed_batch_only_rolls_back(ts: crate::testkit::TestStore) {
        use crate::{StoreError, ToolCallStatus};
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

        // With nothing after it that needs an answer, the commit reports it, and none of
        // the transaction's writes stays.
        let mut tx = store.begin().await.unwrap();
        tx.record_contact("C1", "email", crate::now(), "k1")
            .await
            .unwrap();
        tx.set_tool_call("missing", ToolCallStatus::Executed, None)
            .await
            .unwrap();
        let err = tx.commit().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound(w) if w == "tool call missing"),
            "{}: {err:?}",
            ts.label
        );
        assert!(
            store.contacts("C1").await.unwrap().is_empty(),
            "{}",
            ts.label
        );

        // An empty transaction commits without touching the database, and the store
        // goes on working.
        store.begin().await.unwrap().commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        record(&mut tx, "c1").await.unwrap();
        tx.record_contact("C1", "email", crate::now(), "k1")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(store.tool_call("c1").await.unwrap().is_some());
        assert_eq!(store.contacts("C1").await.unwrap().len(), 1, "{}", ts.label);
        ts.cleanup().await;
    }

    /// PostgreSQL: a queued write's values, written into its statement as literals, are
    /// stored exactly as the same values bound as parameters are: any text (quotes,
    /// backslashes, `$1`, escapes, any Unicode), integers to the ends of their range,
    /// booleans, timestamps (at microseconds, truncated as sqlx truncates), dates, floats
    /// (NaN and the infinities too) and NULLs of each type. Text with a NUL is refused
    /// with an error that says so. Without `ARGENT_TEST_POSTGRES_URL`: nothing to test.
    #[test]
    fn postgres_literals_store_what_binding_stores() {
        use proptest::prelude::*;
        let Ok(url) = std::env::var(crate::testkit::POSTGRES_URL_ENV) else {
            return;
        };
        if url.is_empty() {
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ts = rt
            .block_on(crate::testkit::TestStore::postgres(&url))
            .unwrap();
        let store = ts.store.clone();
        rt.block_on(async {
            let mut tx = store.begin().await.unwrap();
            dispatch_tx!(tx, |conn| {
                sqlx::query(
                    "CREATE TABLE lit (id INT8 PRIMARY KEY, t TEXT, i INT8, b BOOL, \
                     ts TIMESTAMPTZ, d DATE, f FLOAT8)",
                )
                .execute(&mut *conn)
                .await?;
            });
            tx.commit().await
        })
        .unwrap();
        const INSERT: &str =
            "INSERT INTO lit (id, t, i, b, ts, d, f) VALUES ($1, $2, $3, $4, $5, $6, $7)";
        // Years 1 to 9999, as chrono formats them and PostgreSQL reads them.
        let micros = -62_135_596_800_000_000i64..253_402_300_799_999_999i64;
        let text = any::<String>().prop_map(|s| s.replace('\0', ""));
        let fixed = [
            "it's",
            "\\",
            "\\'",
            "'; DROP TABLE lit; --",
            "$1",
            "$$",
            "E'x'",
            "\u{1F600} é ß",
            "\n\r\t\u{7f}",
            "",
        ];
        let ids = std::sync::atomic::AtomicI64::new(0);
        let check = |t: Option<String>,
                     i: Option<i64>,
                     b: Option<bool>,
                     us: Option<i64>,
                     f: Option<f64>| {
            let ts = us.and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_micros);
            let d = ts.map(|t| t.date_naive());
            let id = ids.fetch_add(2, std::sync::atomic::Ordering::SeqCst);
            rt.block_on(async {
                let mut tx = store.begin().await.unwrap();
                let TxInner::Postgres(p) = &mut tx.inner else {
                    unreachable!("a PostgreSQL store")
                };
                let args = [
                    Arg::of(id),
                    Arg::of(t.clone()),
                    Arg::of(i),
                    Arg::of(b),
                    Arg::of(ts),
                    Arg::of(d),
                    Arg::of(f),
                ];
                p.queue(INSERT, &args, None)?;
                // The same values bound (the queued insert goes first).
                sqlx::query(INSERT)
                    .bind(id + 1)
                    .bind(t.as_deref())
                    .bind(i)
                    .bind(b)
                    .bind(ts)
                    .bind(d)
                    .bind(f)
                    .execute(p.conn().await?)
                    .await?;
                tx.commit().await?;
                let same: bool = sqlx::query_scalar(
                    "SELECT (a.t, a.i, a.b, a.ts, a.d, a.f) IS NOT DISTINCT FROM \
                     (b.t, b.i, b.b, b.ts, b.d, b.f) AND a.t IS NOT DISTINCT FROM $3 \
                     FROM lit a, lit b WHERE a.id = $1 AND b.id = $2",
                )
                .bind(id)
                .bind(id + 1)
                .bind(t.as_deref())
                .fetch_one(match &store.pool {
                    crate::Pool::Postgres(pool) => pool,
                    crate::Pool::Sqlite(_) => unreachable!("a PostgreSQL store"),
                })
                .await?;
                Ok::<_, crate::StoreError>(same)
            })
        };
        for s in fixed {
            let same = check(
                Some(s.into()),
                Some(i64::MIN),
                Some(true),
                Some(0),
                Some(f64::NAN),
            );
            assert!(same.unwrap(), "{s:?}");
        }
        assert!(check(None, None, None, None, None).unwrap());
        for f in [
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
        ] {
            assert!(
                check(
                    Some("f".into()),
                    Some(i64::MAX),
                    Some(false),
                    Some(1),
                    Some(f)
                )
                .unwrap(),
                "{f}"
            );
        }
        proptest!(ProptestConfig::with_cases(128), |(
            t in proptest::option::of(text),
            i in proptest::option::of(any::<i64>()),
            b in proptest::option::of(any::<bool>()),
            us in proptest::option::of(micros),
            f in proptest::option::of(any::<f64>()),
        )| {
            prop_assert!(check(t.clone(), i, b, us, f).unwrap(), "{:?} {:?} {:?} {:?} {:?}", t, i, b, us, f);
        });
        let err = check(Some("a\0b".into()), None, None, None, None).unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
        rt.block_on(ts.cleanup());
    }

    /// PostgreSQL: a queued write refused as it is queued (text with a NUL, which
    /// PostgreSQL cannot store) leaves the queue as it was: the transaction's other writes
    /// still commit. Without `ARGENT_TEST_POSTGRES_URL`: nothing to test.
    #[tokio::test]
    async fn postgres_a_write_refused_when_queued_leaves_the_queue_as_it_was() {
        use crate::testkit::{POSTGRES_URL_ENV, TestStore};
        let Ok(url) = std::env::var(POSTGRES_URL_ENV) else {
            return;
        };
        let ts = TestStore::postgres(&url).await.unwrap();
        let store = &ts.store;
        let mut tx = store.begin().await.unwrap();
        tx.record_contact("C1", "email", crate::now(), "k1")
            .await
            .unwrap();
        let err = tx
            .record_contact("C1", "email", crate::now(), "k\0two")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
        tx.record_contact("C1", "email", crate::now(), "k3")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.contacts("C1").await.unwrap().len(), 2);
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

    /// When another connection holds the database's write lock as a transaction begins,
    /// the writer waits for it on sqlx's connection thread, not in SQLite's busy handler on
    /// the runtime's thread: on a one-thread runtime the lock's holder (a task on that same
    /// thread) gets to commit, and the write then goes through. (Waiting on the runtime's
    /// thread, the holder could not run until the busy timeout failed the write.)
    #[tokio::test]
    async fn a_write_waits_for_another_connections_lock_without_blocking_the_runtime() {
        use crate::testkit::TestStore;
        let ts = TestStore::sqlite().await.unwrap();
        let other = ts.reopen().await.unwrap();
        let mut held = other.begin().await.unwrap();
        // Answered, so sent at once: `BEGIN IMMEDIATE` has run and `other` holds the lock.
        assert!(record(&mut held, "held").await.unwrap());
        let store = ts.store.clone();
        let waiting = tokio::spawn(async move {
            let mut tx = store.begin().await?;
            let new = record(&mut tx, "waited").await?;
            tx.commit().await?;
            Ok::<bool, crate::StoreError>(new)
        });
        // The runtime's one thread is free while the write waits: this task wakes from its
        // sleep long before the busy timeout (10 s) would have let the thread go.
        let slept = std::time::Instant::now();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            slept.elapsed() < crate::SQLITE_BUSY_TIMEOUT / 2,
            "the runtime's thread was held for {:?}",
            slept.elapsed()
        );
        assert!(!waiting.is_finished(), "the write waits for the lock");
        held.commit().await.unwrap();
        assert!(waiting.await.unwrap().unwrap(), "the write went through");
        for id in ["held", "waited"] {
            assert!(
                ts.store.tool_call(id).await.unwrap().is_some(),
                "{id} is stored"
            );
        }
        other.close().await;
        ts.cleanup().await;
    }

    fn event(i: usize) -> crate::NewAuditEvent {
        crate::NewAuditEvent {
            run_id: None,
            customer_id: Some("C1".into()),
            actor: "test".into(),
            kind: "grouped".into(),
            payload: serde_json::json!({ "i": i }),
        }
    }

    /// A commit, so the writer knows the audit head (until it does, an append reads it,
    /// taking the writer).
    async fn head_known(store: &crate::Store) {
        let mut tx = store.begin_deferred().await.unwrap();
        tx.audit_append(crate::NewAuditEvent {
            kind: "setup".into(),
            ..event(0)
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    /// The payload numbers of the `grouped` events stored, in order.
    async fn grouped(store: &crate::Store) -> Vec<i64> {
        let filter = crate::AuditFilter {
            kind: Some("grouped".into()),
            ..crate::AuditFilter::default()
        };
        let events = store.audit_events(&filter).await.unwrap();
        events
            .iter()
            .map(|e| e.payload["i"].as_i64().unwrap())
            .collect()
    }

    async fn chain_intact(store: &crate::Store) -> bool {
        matches!(
            store.audit_verify().await.unwrap(),
            crate::AuditVerification::Intact { .. }
        )
    }

    /// Waits until `n` jobs wait for a group commit.
    async fn pending(store: &crate::Store, n: usize) {
        let shared = store.writer.clone().unwrap();
        while super::with_pending(&shared.pending, |p| p.len()) < n {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Deferred transactions whose commits wait for the writer together commit in one
    /// SQLite transaction (one batch on the writer), each in its own savepoint: the one
    /// whose must-change write changed nothing gets its own error and leaves nothing, the
    /// others commit, and the audit chain is the one separate commits would have stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deferred_commits_waiting_together_commit_as_one_group() {
        use crate::testkit::TestStore;
        use crate::{StoreError, ToolCallStatus};
        let ts = TestStore::sqlite().await.unwrap();
        let store = ts.store.clone();
        head_known(&store).await;
        let before = store.writer_round_trips().await.unwrap();
        let hold = store.write_lock().await.unwrap().unwrap();
        let mut tasks = Vec::new();
        for i in 0..6 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = store.begin_deferred().await.unwrap();
                tx.record_contact("C1", "email", crate::now(), &format!("k{i}"))
                    .await
                    .unwrap();
                tx.audit_append(event(i)).await.unwrap();
                if i == 3 {
                    tx.set_tool_call("missing", ToolCallStatus::Executed, None)
                        .await
                        .unwrap();
                }
                tx.commit().await
            }));
        }
        pending(&store, 6).await;
        drop(hold);
        for (i, t) in tasks.into_iter().enumerate() {
            let r = t.await.unwrap();
            if i == 3 {
                assert!(
                    matches!(&r, Err(StoreError::NotFound(w)) if w == "tool call missing"),
                    "{r:?}"
                );
            } else {
                assert!(r.is_ok(), "job {i}: {r:?}");
            }
        }
        assert_eq!(
            store.writer_round_trips().await.unwrap() - before,
            1,
            "six commits, one batch"
        );
        let mut seen = grouped(&store).await;
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 2, 4, 5]);
        let contacts = store.contacts("C1").await.unwrap();
        assert_eq!(contacts.len(), 5, "{contacts:?}");
        assert!(chain_intact(&store).await, "the chain holds");
        // The writer goes on as before: a transaction alone, and another group.
        let mut tx = store.begin_deferred().await.unwrap();
        tx.audit_append(event(6)).await.unwrap();
        tx.commit().await.unwrap();
        assert!(chain_intact(&store).await);
        ts.cleanup().await;
    }

    /// More jobs waiting than a group takes: they run oldest first, [`super::GROUP_MAX`]
    /// at a time, each group by a committer whose job is in it or further back, until
    /// none waits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_beyond_a_group_run_in_the_groups_after_it() {
        use crate::testkit::TestStore;
        let ts = TestStore::sqlite().await.unwrap();
        let store = ts.store.clone();
        head_known(&store).await;
        let before = store.writer_round_trips().await.unwrap();
        let hold = store.write_lock().await.unwrap().unwrap();
        let n = 2 * super::GROUP_MAX + 3;
        let mut tasks = Vec::new();
        for i in 0..n {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = store.begin_deferred().await.unwrap();
                tx.audit_append(event(i)).await.unwrap();
                tx.commit().await
            }));
        }
        pending(&store, n).await;
        drop(hold);
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(store.writer_round_trips().await.unwrap() - before, 3);
        assert_eq!(grouped(&store).await.len(), n);
        assert!(chain_intact(&store).await);
        ts.cleanup().await;
    }

    /// A deferred commit whose caller stops waiting before any runner took its job leaves
    /// nothing: the job is taken back, not committed later by another transaction's group.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_grouped_commit_given_up_before_it_ran_writes_nothing() {
        use crate::testkit::TestStore;
        let ts = TestStore::sqlite().await.unwrap();
        let store = ts.store.clone();
        let shared = store.writer.clone().unwrap();
        head_known(&store).await;
        let hold = store.write_lock().await.unwrap().unwrap();
        let mut tx = store.begin_deferred().await.unwrap();
        tx.audit_append(event(0)).await.unwrap();
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(50), tx.commit()).await;
        assert!(gave_up.is_err(), "the commit waited for the writer");
        assert_eq!(super::with_pending(&shared.pending, |p| p.len()), 0);
        drop(hold);
        let mut tx = store.begin_deferred().await.unwrap();
        tx.audit_append(event(1)).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(grouped(&store).await, vec![1]);
        assert!(chain_intact(&store).await);
        ts.cleanup().await;
    }

    /// Under writes that never pause, the WAL still restarts from its beginning now and
    /// then: the checkpoints catch up with the writer, so the file stays bounded (it grew
    /// by every commit's pages for as long as writing went on, hundreds of megabytes in a
    /// minute of the planner-loop bench; #16).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_continuous_writes() {
        use crate::testkit::TestStore;
        let ts = TestStore::sqlite().await.unwrap();
        let wal = {
            let mut p = ts.sqlite_path().unwrap().as_os_str().to_owned();
            p.push("-wal");
            std::path::PathBuf::from(p)
        };
        let size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        let (mut at_4, mut per_commit) = (0, 0);
        let commits = 40 * super::CHECKPOINT_EVERY;
        for i in 1..=commits {
            let mut tx = ts.store.begin().await.unwrap();
            assert!(record(&mut tx, &format!("call-{i}")).await.unwrap());
            tx.commit().await.unwrap();
            // Before any checkpoint (the migrations' pages are in the WAL before the first
            // commit): what a commit adds to the WAL.
            if i == 4 {
                at_4 = size();
            }
            if i == super::CHECKPOINT_EVERY / 2 {
                per_commit = size().saturating_sub(at_4) / u64::from(i - 4);
            }
        }
        assert!(per_commit > 0, "the WAL was written");
        // The migrations' pages, and a quarter of the run's commits: a WAL that never
        // restarts holds all of them. (Four checkpoint periods held on an idle machine; with
        // the rest of the suite running on both cores the background pass lags further:
        // 4.6 to 7.4 periods' worth was seen, 2026-12-06; this bound is 10 of the run's 40.)
        let bound = at_4 + per_commit * u64::from(commits / 4);
        assert!(
            size() <= bound,
            "after {commits} commits the WAL is {} bytes, above {bound} ({at_4} after 4 \
             commits, {per_commit} a commit)",
            size()
        );
        ts.cleanup().await;
    }

    /// The writer's handle, locked for a direct read and let go for a statement through
    /// sqlx, three thousand times over, on a one-thread runtime: every use finishes (a
    /// handle kept locked when sqlx needs it would leave sqlx's statement waiting for ever;
    /// when the handle was locked for every batch, sqlx's unneeded release messages filled
    /// the connection's command queue after a few hundred uses, see `Held::lock`).
    #[tokio::test]
    async fn the_writer_handle_can_be_taken_again_and_again() {
        use crate::testkit::TestStore;
        let ts = TestStore::sqlite().await.unwrap();
        let store = ts.store.clone();
        let uses = async move {
            for i in 0..3_000 {
                match store.run(&format!("R{i}")).await {
                    Err(crate::StoreError::NotFound(_)) => {}
                    other => panic!("run R{i}: {other:?}"),
                }
                let mut w = store.write_lock().await.unwrap().unwrap();
                let one: i64 = sqlx::query_scalar("SELECT 1")
                    .fetch_one(w.conn().unwrap())
                    .await
                    .unwrap();
                assert_eq!(one, 1);
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(120), uses)
            .await
            .expect("every use of the writer's handle finished");
        ts.cleanup().await;
    }
}
