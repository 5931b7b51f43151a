//! argent's store: the only crate that knows SQL.
//!
//! One [`Store`] over either SQLite (the embedded default: one file, WAL) or PostgreSQL.
//! Queries are written once, as runtime sqlx queries with `$N` placeholders (which both
//! backends accept), and run against whichever pool the store holds; the few statements
//! that differ between backends branch explicitly. Each backend has its own migrations
//! under `migrations/sqlite` and `migrations/postgres`, embedded at compile time.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use thiserror::Error;

mod account;
// `#[macro_use]`: `approval_row!` is read by `queue` too.
#[macro_use]
mod agent;
pub mod anchor;
mod audit;
mod auth;
mod calls;
pub mod checkpoint;
pub mod contacts;
mod desk;
mod direct;
pub mod doc_requests;
mod documents;
mod eval_runs;
mod facts;
mod inbound_mail;
pub mod integrity;
mod ledger;
pub mod mail_in;
pub mod ops;
pub mod outbox_delivery;
mod prepared;
mod procedures;
mod queue;
mod records;
pub mod run_messages;
pub mod search;
mod signals;
mod snapshots;
mod tasks;
pub mod testkit;
pub mod thread;
pub mod timeline;
mod tx;
mod work;

pub use account::{ACCOUNT_RECENT, AccountRecords};
pub use agent::{
    ApprovalItem, ApprovalStatus, NewApproval, OutboxEmail, RunRecord, RunStatus, ToolCallRecord,
    ToolCallStatus,
};
pub use audit::{
    AuditEvent, AuditFilter, AuditVerification, GENESIS_HASH, NewAuditEvent, audit_chain_hash,
    audit_to_csv, audit_to_jsonl,
};
pub use auth::{
    NewUser, TokenKind, USER_CREATE, USER_DISABLE, USER_ENABLE, USER_PASSWORD_RESET, USER_ROLE,
    USER_UNLOCK, UserChange, UserRecord,
};
pub use calls::{CallTask, CallTaskStatus};
pub use checkpoint::{CheckpointError, CheckpointSink, FileSink};
pub use contacts::{ContactAttempt, contacts_to_csv, contacts_to_jsonl};
pub use desk::{
    CreditHold, CreditHoldStatus, NewCreditHold, NewReferral, Referral, ReferralStatus,
};
pub use doc_requests::{DocActor, DocRequest, DocRequestStatus, Rejudgement};
pub use documents::{DocKind, DocStatus, DocumentSummary, DocumentVersion, body_sha256};
pub use eval_runs::{
    EvalRunCase, EvalRunDocument, EvalRunRecord, EvalRunStatus, EvalRunSummary, NewEvalRun,
    NewEvalRunCase,
};
pub use facts::FactsChange;
pub use inbound_mail::{
    BatchReceived, ImapBatch, InboundRecord, InboundStatus, MailSource, MailboxCheckpoint,
    NewInbound, PendingInbound, Received, inbound_id,
};
pub use ledger::{ImportStats, LedgerSnapshot};
pub use outbox_delivery::{AttemptOutcome, OutboxAttempt};
pub use procedures::{ProcedureSummary, StepCount, TickBatch, TickWrite, TickWritten};
pub use queue::QueueFilter;
pub use run_messages::RunMessage;
pub use search::SearchHit;
pub use signals::{NewSignal, SignalRecord};
pub use snapshots::{SnapshotDay, SnapshotTaken};
pub use tasks::{
    CaseFilter, CaseListing, NOT_PERMITTED, NewTask, Task, TaskActor, TaskComment, TaskCount,
    TaskFilter,
};
pub use thread::{Direction, ThreadMessage};
pub use timeline::{Cursor, TimelineEntry, TimelinePage, TimelineQuery};
pub use tx::{CHECKPOINT_EVERY, StoreTx};
pub use work::{NewWorkItem, WorkFilter, WorkItem, WorkStatus, work_id};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(sqlx::Error),
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("'{0}' is not a database URL (expected sqlite:PATH, a file path, or postgres://...)")]
    BadUrl(String),
    /// A stored value that the domain cannot read back: a bug or a hand-edited row.
    #[error("stored {what} '{id}' is unreadable: {why}")]
    Corrupt {
        what: &'static str,
        id: String,
        why: String,
    },
    #[error("{0} not found")]
    NotFound(String),
    /// A caller asked for something the store refuses to record (e.g. deciding an approval
    /// back to `pending`).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The request contradicts the current state (e.g. activating the version that is
    /// already active).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A row that would take effect (a document to load, an email to send) is not what the
    /// audit trail recorded: it was changed in the database around argent. Refused.
    #[error("tampered: {0}")]
    Tampered(String),
    /// An import refused by the checks against the stored ledger (and the bounds), naming
    /// the row (line and column when it came from a file) and why. Nothing was written.
    #[error(transparent)]
    Import(#[from] argent_core::ImportError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        readonly::note(&e);
        StoreError::Db(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How long a SQLite connection waits for another connection's write lock.
pub(crate) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections that could not write, and the end of them.
///
/// SQLite opens a file it may not write (permissions, an immutable file, a read-only
/// mount) read-only without saying so, and PostgreSQL fixes a session's
/// `default_transaction_read_only` when the session starts; such a connection refuses every
/// write for as long as it lives, even after the database is writable again. A pool keeps
/// its connections (on SQLite for ever), so after a brief read-only spell writes kept
/// failing on whichever connection had been opened during it, until the process restarted.
///
/// So every error that says the connection cannot write (SQLite's `SQLITE_READONLY` and
/// its extended codes; PostgreSQL's `25006 read_only_sql_transaction`) is noted here as it
/// becomes a [`StoreError`], and no connection opened before the latest such error is used
/// again: pools drop them when they are next acquired, and the SQLite writer reopens its
/// connection when it is next taken. While the database stays read-only the new connections
/// fail the same way (and are replaced again); once it is writable, the first fresh
/// connection writes. A connection is also checked as it opens: if its SQLite file cannot be
/// opened for writing then ([`check_file`]), or its PostgreSQL session is read-only
/// ([`check_session`]), that is noted at once, so the connection is replaced before its
/// next use instead of after a failed write. The note is process-wide
/// (errors do not know their store): another store's connections are then replaced once
/// too, which costs a reconnect; a database that stays read-only (a read-only copy being
/// read) is served by a fresh connection per use. A connection opened during a read-only
/// spell may nonetheless write: SQLite keeps the descriptor of a connection closed while
/// another of the process holds a lock on the file (in WAL mode every open connection
/// does) and hands it to the next connection asking for read-write access, so a
/// replacement can inherit a read-write descriptor. Its writes succeed, and
/// [`check_file`] still marks it for replacement.
pub(crate) mod readonly {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    /// Microseconds after [`base`] of the latest read-only error, plus one; 0: none yet.
    static LATEST: AtomicU64 = AtomicU64::new(0);

    fn base() -> Instant {
        static BASE: OnceLock<Instant> = OnceLock::new();
        *BASE.get_or_init(Instant::now)
    }

    /// Whether `e` says the connection it came from cannot write.
    pub(crate) fn is_readonly(e: &sqlx::Error) -> bool {
        let sqlx::Error::Database(db) = e else {
            return false;
        };
        if let Some(direct) = db.try_downcast_ref::<crate::direct::DirectError>() {
            return direct.is_readonly();
        }
        if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
            // The primary result code is the low byte of the extended one.
            return sqlx::error::DatabaseError::code(sqlite)
                .and_then(|c| c.parse::<i64>().ok())
                .is_some_and(|c| c & 0xff == 8);
        }
        db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some_and(|pg| pg.code() == "25006")
    }

    /// Notes a read-only moment `ahead` from now.
    fn note_at(ahead: Duration) {
        let at = u64::try_from((base().elapsed() + ahead).as_micros()).unwrap_or(u64::MAX - 1);
        LATEST.fetch_max(at + 1, Ordering::AcqRel);
    }

    /// Notes `e` if it is a read-only error (see the module docs).
    pub(crate) fn note(e: &sqlx::Error) {
        if is_readonly(e) {
            note_at(Duration::ZERO);
            tracing::warn!(error = %e, "a database connection could not write; connections opened before now will be replaced");
        }
    }

    /// For a SQLite connection just opened on `file`: if the file cannot be opened for
    /// writing now, the connection was opened read-only, and it is noted as if it had
    /// failed a write (so it is replaced before it is used again, rather than after its
    /// first failed write once the file is writable again).
    ///
    /// The check asks the kernel (`access(2)` with `W_OK`: permissions, an immutable
    /// file, a read-only mount) and never opens the file: closing a descriptor of the
    /// database file would drop every POSIX lock this process holds on it (SQLite's
    /// shared locks among them), and another process could then take itself for the last
    /// connection and reset the WAL under this one's feet — the database then reads as
    /// malformed (found with a worker process taking over from a killed one).
    pub(crate) fn check_file(file: &std::path::Path) {
        if let Err(e) = writable(file) {
            // A pool stamps a new connection's age only after this check: the moment is
            // noted a little ahead, so that stamp falls before it.
            note_at(Duration::from_millis(100));
            tracing::debug!(file = %file.display(), error = %e, "the database file cannot be written; this connection is read-only");
        }
    }

    #[cfg(unix)]
    fn writable(file: &std::path::Path) -> std::io::Result<()> {
        rustix::fs::access(file, rustix::fs::Access::WRITE_OK).map_err(std::io::Error::from)
    }

    #[cfg(not(unix))]
    fn writable(file: &std::path::Path) -> std::io::Result<()> {
        // Elsewhere closing a descriptor does not drop the process's other locks.
        std::fs::OpenOptions::new().write(true).open(file).map(drop)
    }

    /// For a PostgreSQL session just started: if its transactions are read-only (the
    /// database's or role's `default_transaction_read_only`, a standby), noted as
    /// [`check_file`] does for SQLite.
    pub(crate) async fn check_session(conn: &mut sqlx::PgConnection) -> sqlx::Result<()> {
        let read_only: String = sqlx::query_scalar("SHOW transaction_read_only")
            .fetch_one(conn)
            .await?;
        if read_only == "on" {
            note_at(Duration::from_millis(100));
            tracing::debug!("a database session started read-only");
        }
        Ok(())
    }

    /// Whether a connection opened at `opened` predates the latest read-only error.
    pub(crate) fn stale(opened: Instant) -> bool {
        match LATEST.load(Ordering::Acquire) {
            0 => false,
            at => opened <= base() + Duration::from_micros(at - 1),
        }
    }

    /// [`stale`] for a pooled connection `age` old.
    pub(crate) fn stale_age(age: Duration) -> bool {
        Instant::now().checked_sub(age).is_some_and(stale)
    }
}

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool. The body is compiled once per
/// backend, so a query is written once and type-checked against both drivers.
macro_rules! dispatch {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use dispatch;

/// PostgreSQL: one pooled session held for a short sequence of reads, and put back in the
/// pool before the next one starts ([`Session::end`]). sqlx returns a released connection
/// to the pool on a task of its own (after a ping), so a read that follows another at once
/// finds none idle and opens a second session (a server process, its start-up and its
/// read-only check, every statement parsed afresh): what a short-lived process's start-up
/// (the migrations check, then the active documents and their trail) paid twice (#16).
/// On SQLite, and when none is held, reads go to the pool as before. Whatever needs a
/// connection of its own (the audit chaining) releases the held one first: a task never
/// holds one connection while waiting for another, so concurrent holders cannot exhaust
/// the pool waiting on each other.
pub(crate) struct Session(Option<sqlx::pool::PoolConnection<sqlx::Postgres>>);

impl Session {
    /// No session held: reads through it go to the pool.
    pub(crate) fn none() -> Session {
        Session(None)
    }

    /// Holds one of `store`'s PostgreSQL sessions (none on SQLite).
    pub(crate) async fn hold(store: &Store) -> Result<Session> {
        Ok(Session(match &store.pool {
            Pool::Sqlite(_) => None,
            Pool::Postgres(pool) => Some(pool.acquire().await?),
        }))
    }

    pub(crate) fn conn(&mut self) -> Option<&mut sqlx::PgConnection> {
        self.0.as_deref_mut()
    }

    /// Puts the session back in the pool now, so the next read finds it idle. (Dropped
    /// instead, it goes back on a task of its own, as any pooled connection does.)
    pub(crate) async fn end(mut self) {
        self.release().await;
    }

    /// [`Session::end`], keeping the value: reads through it go to the pool from now on.
    pub(crate) async fn release(&mut self) {
        if let Some(mut conn) = self.0.take() {
            conn.return_to_pool().await;
        }
    }
}

/// Like [`dispatch!`], with `$ex` bound to `$session`'s held connection when there is one,
/// and to the pool otherwise. The body is compiled once per executor.
macro_rules! dispatch_on {
    ($store:expr, $session:expr, |$ex:ident| $body:expr) => {
        match (&$store.pool, $session.conn()) {
            ($crate::Pool::Sqlite($ex), _) => $body,
            ($crate::Pool::Postgres(_), Some($ex)) => $body,
            ($crate::Pool::Postgres($ex), None) => $body,
        }
    };
}
pub(crate) use dispatch_on;

/// How long [`Store::close`] waits for connections checked out elsewhere to come back.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: Pool,
    /// SQLite file databases: the one connection every write of this store goes through
    /// (transactions on it, single-statement writes in its lock); see [`tx`](crate::tx).
    pub(crate) writer: Option<tx::SharedWriter>,
    /// PostgreSQL: the background task that chains what this store's transactions stage
    /// with their commits (see [`audit`](crate::audit)); `None` on SQLite, which chains
    /// inside the transaction.
    pub(crate) chainer: Option<audit::Chainer>,
    /// SQLite file databases: the connections short reads take before the pool's (see
    /// [`tx::ReadConn`]).
    pub(crate) readers: Option<std::sync::Arc<tx::Readers>>,
}

#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>>
                + Send
                + 's,
        >,
    > {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(
                        *v,
                        Cow::Borrowed(*d),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "ledger",
        include_str!("../../../migrations/sqlite/0001_ledger.sql"),
    ),
    (
        2,
        "agent",
        include_str!("../../../migrations/sqlite/0002_agent.sql"),
    ),
    (
        3,
        "auth",
        include_str!("../../../migrations/sqlite/0003_auth.sql"),
    ),
    (
        4,
        "documents",
        include_str!("../../../migrations/sqlite/0004_documents.sql"),
    ),
    (
        5,
        "eval_runs",
        include_str!("../../../migrations/sqlite/0005_eval_runs.sql"),
    ),
    (
        6,
        "account_facts",
        include_str!("../../../migrations/sqlite/0006_account_facts.sql"),
    ),
    (
        7,
        "account_signals",
        include_str!("../../../migrations/sqlite/0007_account_signals.sql"),
    ),
    (
        8,
        "calls",
        include_str!("../../../migrations/sqlite/0008_calls.sql"),
    ),
    (
        9,
        "approval_bundles",
        include_str!("../../../migrations/sqlite/0009_approval_bundles.sql"),
    ),
    (
        10,
        "tasks",
        include_str!("../../../migrations/sqlite/0010_tasks.sql"),
    ),
    (
        11,
        "work_items",
        include_str!("../../../migrations/sqlite/0011_work_items.sql"),
    ),
    (
        12,
        "procedures",
        include_str!("../../../migrations/sqlite/0012_procedures.sql"),
    ),
    (
        14,
        "desk",
        include_str!("../../../migrations/sqlite/0014_desk.sql"),
    ),
    (
        15,
        "mail",
        include_str!("../../../migrations/sqlite/0015_mail.sql"),
    ),
    (
        16,
        "smtp",
        include_str!("../../../migrations/sqlite/0016_smtp.sql"),
    ),
    (
        18,
        "inbound_processing",
        include_str!("../../../migrations/sqlite/0018_inbound_processing.sql"),
    ),
    (
        19,
        "queue_facets",
        include_str!("../../../migrations/sqlite/0019_queue_facets.sql"),
    ),
    (
        21,
        "four_eyes",
        include_str!("../../../migrations/sqlite/0021_four_eyes.sql"),
    ),
    (
        22,
        "dashboard_snapshots",
        include_str!("../../../migrations/sqlite/0022_dashboard_snapshots.sql"),
    ),
    (
        24,
        "user_admin",
        include_str!("../../../migrations/sqlite/0024_user_admin.sql"),
    ),
    (
        25,
        "eval_traces",
        include_str!("../../../migrations/sqlite/0025_eval_traces.sql"),
    ),
    (
        26,
        "audit_staged",
        include_str!("../../../migrations/sqlite/0026_audit_staged.sql"),
    ),
    (
        27,
        "run_messages",
        include_str!("../../../migrations/sqlite/0027_run_messages.sql"),
    ),
    (
        32,
        "audit_chain_function",
        include_str!("../../../migrations/sqlite/0032_audit_chain_function.sql"),
    ),
    (
        33,
        "expect_changed",
        include_str!("../../../migrations/sqlite/0033_expect_changed.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "ledger",
        include_str!("../../../migrations/postgres/0001_ledger.sql"),
    ),
    (
        2,
        "agent",
        include_str!("../../../migrations/postgres/0002_agent.sql"),
    ),
    (
        3,
        "auth",
        include_str!("../../../migrations/postgres/0003_auth.sql"),
    ),
    (
        4,
        "documents",
        include_str!("../../../migrations/postgres/0004_documents.sql"),
    ),
    (
        5,
        "eval_runs",
        include_str!("../../../migrations/postgres/0005_eval_runs.sql"),
    ),
    (
        6,
        "account_facts",
        include_str!("../../../migrations/postgres/0006_account_facts.sql"),
    ),
    (
        7,
        "account_signals",
        include_str!("../../../migrations/postgres/0007_account_signals.sql"),
    ),
    (
        8,
        "calls",
        include_str!("../../../migrations/postgres/0008_calls.sql"),
    ),
    (
        9,
        "approval_bundles",
        include_str!("../../../migrations/postgres/0009_approval_bundles.sql"),
    ),
    (
        10,
        "tasks",
        include_str!("../../../migrations/postgres/0010_tasks.sql"),
    ),
    (
        11,
        "work_items",
        include_str!("../../../migrations/postgres/0011_work_items.sql"),
    ),
    (
        12,
        "procedures",
        include_str!("../../../migrations/postgres/0012_procedures.sql"),
    ),
    (
        14,
        "desk",
        include_str!("../../../migrations/postgres/0014_desk.sql"),
    ),
    (
        15,
        "mail",
        include_str!("../../../migrations/postgres/0015_mail.sql"),
    ),
    (
        16,
        "smtp",
        include_str!("../../../migrations/postgres/0016_smtp.sql"),
    ),
    (
        18,
        "inbound_processing",
        include_str!("../../../migrations/postgres/0018_inbound_processing.sql"),
    ),
    (
        19,
        "queue_facets",
        include_str!("../../../migrations/postgres/0019_queue_facets.sql"),
    ),
    (
        21,
        "four_eyes",
        include_str!("../../../migrations/postgres/0021_four_eyes.sql"),
    ),
    (
        22,
        "dashboard_snapshots",
        include_str!("../../../migrations/postgres/0022_dashboard_snapshots.sql"),
    ),
    (
        24,
        "user_admin",
        include_str!("../../../migrations/postgres/0024_user_admin.sql"),
    ),
    (
        25,
        "eval_traces",
        include_str!("../../../migrations/postgres/0025_eval_traces.sql"),
    ),
    (
        26,
        "audit_staged",
        include_str!("../../../migrations/postgres/0026_audit_staged.sql"),
    ),
    (
        27,
        "run_messages",
        include_str!("../../../migrations/postgres/0027_run_messages.sql"),
    ),
    (
        32,
        "audit_chain_function",
        include_str!("../../../migrations/postgres/0032_audit_chain_function.sql"),
    ),
    (
        33,
        "expect_changed",
        include_str!("../../../migrations/postgres/0033_expect_changed.sql"),
    ),
];

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`:
    /// `postgres://…` / `postgresql://…` for PostgreSQL, `sqlite:PATH`, `sqlite://PATH` or a
    /// bare file path for SQLite, `sqlite::memory:` for a throwaway in-memory database.
    pub async fn open(url: &str) -> Result<Store> {
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts =
                PgConnectOptions::from_str(url).map_err(|_| StoreError::BadUrl(url.into()))?;
            return Store::open_postgres_migrated(opts).await;
        } else {
            let opts = if url.starts_with("sqlite:") {
                SqliteConnectOptions::from_str(url).map_err(|_| StoreError::BadUrl(url.into()))?
            } else if url.contains("://") {
                return Err(StoreError::BadUrl(url.into()));
            } else {
                SqliteConnectOptions::new().filename(url)
            };
            Store::open_sqlite(opts, memory_url(url)).await?
        };
        store.migrate().await?;
        Ok(store)
    }

    /// `in_memory`: the URL names a memory database (sqlx names `sqlite::memory:`'s
    /// `file:sqlx-in-memory-N`, so the file name does not always tell).
    async fn open_sqlite(opts: SqliteConnectOptions, in_memory: bool) -> Result<Store> {
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        let in_memory = in_memory || opts.get_filename().as_os_str() == ":memory:";
        // An in-memory database (an eval case's) is mostly empty tables and indexes, one
        // page each: at 1 KiB pages a migrated one holds ~0.4 MiB, at 4 KiB ~0.8 (#16).
        let opts = if in_memory {
            opts.page_size(1024)
        } else {
            opts
        };
        // An in-memory database lives in one connection; keep exactly one.
        let max = if in_memory { 1 } else { 8 };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(if in_memory { 1 } else { 0 })
            // sqlx pings an idle connection before handing it out, by default; for SQLite that
            // is a round trip to the connection's worker thread that can only ever find it
            // alive (there is no network to lose), and it doubled the cost of every query.
            .test_before_acquire(false);
        let pool = if in_memory {
            pool
        } else {
            // A connection opened before a read-only error is not used again (see
            // [`readonly`]); the in-memory database's one connection is the database.
            let file = opts.get_filename().to_path_buf();
            pool.after_connect(move |_, _| {
                readonly::check_file(&file);
                Box::pin(async { Ok(()) })
            })
            .before_acquire(|_, meta| {
                let keep = !readonly::stale_age(meta.age);
                Box::pin(async move { Ok(keep) })
            })
        };
        let pool = pool
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts.clone())
            .await?;
        // The writer checkpoints nothing itself (see `tx`); an in-memory database has no
        // WAL and only the one pooled connection.
        let (writer, readers) = if in_memory {
            (None, None)
        } else {
            let readers = std::sync::Arc::new(tx::Readers::new(opts.clone()));
            (Some(tx::Writer::open(opts).await?), Some(readers))
        };
        Ok(Store {
            pool: Pool::Sqlite(pool),
            writer,
            chainer: None,
            readers,
        })
    }

    /// Opens and migrates a PostgreSQL store whose every session has prepared the queued
    /// writes ([`prepared`]): sessions opened before the schema was known to be current
    /// may lack them, so if one could not prepare them the pool is opened again.
    async fn open_postgres_migrated(opts: PgConnectOptions) -> Result<Store> {
        let sessions = std::sync::Arc::new(prepared::Sessions::tolerant());
        let store = Store::open_postgres(opts.clone(), sessions.clone()).await?;
        store.migrate().await?;
        if sessions.make_strict() {
            return Ok(store);
        }
        store.close().await;
        Store::open_postgres(opts, std::sync::Arc::new(prepared::Sessions::strict())).await
    }

    async fn open_postgres(
        opts: PgConnectOptions,
        sessions: std::sync::Arc<prepared::Sessions>,
    ) -> Result<Store> {
        let pool = PgPoolOptions::new()
            // 8: at 100 concurrent worker runs on 2 cores, 32 did worse than 16 (more
            // server processes competing for the same cores), and since a transaction's
            // writes go in one round trip (`tx::PgTx`) 8 beats 16 (6 of 6 alternated
            // pairs, 2–9 points of the latency bound) and 4 is worse (issue #13's bench).
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(15))
            // A session started while the database was read-only stays so (see [`readonly`]).
            .after_connect(move |conn, _| {
                let sessions = sessions.clone();
                Box::pin(async move {
                    readonly::check_session(conn).await?;
                    prepared::prepare_session(conn, &sessions).await
                })
            })
            .before_acquire(|_, meta| {
                let keep = !readonly::stale_age(meta.age);
                Box::pin(async move { Ok(keep) })
            })
            .connect_with(opts)
            .await?;
        let chainer = Some(audit::Chainer::start(pool.clone()));
        Ok(Store {
            pool: Pool::Postgres(pool),
            writer: None,
            chainer,
            readers: None,
        })
    }

    /// Opens a PostgreSQL store whose tables live in `schema` (created if missing), so
    /// several isolated stores can share one database: the conformance tests use one schema
    /// per test.
    pub async fn open_postgres_schema(url: &str, schema: &str) -> Result<Store> {
        if !schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(StoreError::BadUrl(format!("{url} (schema '{schema}')")));
        }
        let base = PgConnectOptions::from_str(url).map_err(|_| StoreError::BadUrl(url.into()))?;
        {
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(base.clone())
                .await?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&admin)
                .await?;
            admin.close().await;
        }
        Store::open_postgres_migrated(base.options([("search_path", schema)])).await
    }

    /// Drops a schema made by [`Store::open_postgres_schema`].
    pub async fn drop_postgres_schema(url: &str, schema: &str) -> Result<()> {
        let base = PgConnectOptions::from_str(url).map_err(|_| StoreError::BadUrl(url.into()))?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(base)
            .await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&admin)
            .await?;
        admin.close().await;
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        let migrator = Migrator::new(Embedded(match self.backend() {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        }))
        .await?;
        let mut session = Session::hold(self).await?;
        let current = self.migrations_current(&migrator, &mut session).await;
        session.end().await;
        if current {
            return Ok(());
        }
        match &self.pool {
            Pool::Sqlite(p) => migrator.run(p).await?,
            Pool::Postgres(p) => migrator.run(p).await?,
        }
        Ok(())
    }

    /// Whether the database has exactly `migrator`'s migrations applied, each successfully
    /// and with the checksum it has here: then the migrator would do nothing, and opening
    /// the store skips it (it takes a lock, creates its table if missing and reads it,
    /// several round trips of each process's start-up; issue #16). One read. Any other
    /// answer (no table, a migration not applied or failed, a checksum that differs, one
    /// applied that this binary does not know) leaves it to the migrator, which applies
    /// or refuses exactly as before.
    pub(crate) async fn migrations_current(
        &self,
        migrator: &Migrator,
        session: &mut Session,
    ) -> bool {
        const SQL: &str = "SELECT version, checksum, success FROM _sqlx_migrations";
        let rows: std::result::Result<Vec<(i64, Vec<u8>, bool)>, sqlx::Error> =
            dispatch_on!(self, session, |ex| sqlx::query_as(SQL).fetch_all(ex).await);
        let Ok(rows) = rows else {
            return false;
        };
        let applied: HashMap<i64, (Vec<u8>, bool)> = rows
            .into_iter()
            .map(|(version, checksum, ok)| (version, (checksum, ok)))
            .collect();
        applied.len() == migrator.iter().count()
            && migrator.iter().all(|m| {
                applied
                    .get(&m.version)
                    .is_some_and(|(checksum, ok)| *ok && checksum[..] == m.checksum[..])
            })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// For a single-statement write outside a [`StoreTx`]: on a SQLite file database,
    /// holds the writer (so no transaction of this store is open meanwhile and the
    /// statement never waits in SQLite's busy handler for one); `None` otherwise.
    pub(crate) async fn write_lock(
        &self,
    ) -> Result<Option<tokio::sync::OwnedMutexGuard<tx::Writer>>> {
        match &self.writer {
            Some(w) => Ok(Some(tx::lock_writer(w).await?)),
            None => Ok(None),
        }
    }

    pub async fn close(&self) {
        // PostgreSQL: what this process staged is chained before the pool goes (a reader
        // would chain it otherwise; see `audit`).
        if let Err(e) = self.audit_settle().await {
            tracing::warn!(error = %e, "close: could not chain the staged audit events");
        }
        if let Some(w) = &self.writer {
            w.writer.lock().await.close().await;
        }
        if let Some(r) = &self.readers {
            r.close().await;
        }
        // sqlx's `Pool::close` can return with connections still open: it waits for the
        // pool's permits, but each idle connection it closes releases a permit it never
        // took, so it stops waiting while others are still checked out or being returned
        // (sqlx returns a released connection on a task of its own: a ping, then the idle
        // queue); those close later, or stay idle with the pool. On SQLite an open
        // descriptor matters beyond the store: the VFS hands it to the next connection of
        // the process that opens the file (see `readonly`). So this waits until the pool
        // counts none, closing again what was returned meanwhile; bounded, so a connection
        // held elsewhere cannot keep `close` from returning.
        dispatch!(self, |p| {
            p.close().await;
            let deadline = Instant::now() + CLOSE_WAIT;
            while p.size() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
                p.close().await;
            }
            if p.size() > 0 {
                tracing::warn!(open = p.size(), "close: connections still checked out");
            }
        })
    }
}

/// Whether a SQLite URL names an in-memory database: `sqlite::memory:`,
/// `sqlite://:memory:`, or `mode=memory` among its parameters.
fn memory_url(url: &str) -> bool {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    matches!(path, "sqlite::memory:" | "sqlite://:memory:" | ":memory:")
        || query.split('&').any(|p| p == "mode=memory")
}

/// PostgreSQL: `s` as an SQL text expression in a query sent without parameters, as hex
/// digits decoded by the server, so no value can end the literal or change the statement.
pub(crate) fn pg_text_literal(out: &mut String, s: &str) {
    out.push_str("convert_from(decode('");
    out.push_str(&hex::encode(s.as_bytes()));
    out.push_str("', 'hex'), 'UTF8')");
}

/// The WHERE condition of a listing that is optionally filtered by one column, with the value
/// bound as `$1` either way: `column = $1` when there is a value, `$1 IS NULL` (every row)
/// when there is none. Not `($1 IS NULL OR column = $1)`: a prepared statement's plan does
/// not depend on what is bound, so that form scans the whole table on SQLite (and in
/// PostgreSQL's generic plans) even when the index on `column` would find a handful of rows.
pub(crate) fn eq_or_all(column: &str, value: Option<&str>) -> String {
    match value {
        Some(_) => format!("{column} = $1"),
        None => "$1 IS NULL".to_string(),
    }
}

/// Maps a stored text column back to a domain value, naming the row if it cannot.
pub(crate) fn parse_col<T: FromStr>(what: &'static str, id: &str, v: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e: T::Err| StoreError::Corrupt {
        what,
        id: id.to_string(),
        why: e.to_string(),
    })
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    id: &str,
    v: &str,
) -> Result<T> {
    serde_json::from_str(v).map_err(|e| StoreError::Corrupt {
        what,
        id: id.to_string(),
        why: e.to_string(),
    })
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serializing plain domain structs to a string cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

/// Instants are stored at microsecond precision on both backends (PostgreSQL's
/// `timestamptz` resolution), so a value reads back exactly as it was written.
pub(crate) fn micros(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    micros(chrono::Utc::now())
}

pub(crate) use argent_core::str_enum;

#[cfg(test)]
mod migration_tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::*;
    use crate::testkit::{TestStore, raw_execute};

    async fn current(store: &Store) -> bool {
        let embedded = match store.backend() {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrator = Migrator::new(Embedded(embedded)).await.unwrap();
        store
            .migrations_current(&migrator, &mut Session::none())
            .await
    }

    /// Opening skips the migrator only for a database that has exactly this binary's
    /// migrations, each applied successfully with the same checksum; anything else goes to
    /// the migrator, which still refuses what it refused before.
    #[tokio::test]
    async fn the_migrator_is_skipped_only_for_a_database_with_exactly_these_migrations() {
        for ts in TestStore::all().await.unwrap() {
            let (store, label) = (&ts.store, ts.label);
            assert!(current(store).await, "{label}: a migrated store is current");
            let last = SQLITE_MIGRATIONS.len().max(POSTGRES_MIGRATIONS.len());
            raw_execute(
                store,
                "CREATE TABLE migrations_kept AS SELECT * FROM _sqlx_migrations",
            )
            .await
            .unwrap();
            let undo = "DELETE FROM _sqlx_migrations; INSERT INTO _sqlx_migrations SELECT * FROM migrations_kept";
            let edits = [
                // A checksum that differs (a migration edited after it was applied).
                "UPDATE _sqlx_migrations SET checksum = (SELECT checksum FROM migrations_kept WHERE version = 2) WHERE version = 1",
                // A failed (dirty) migration.
                "UPDATE _sqlx_migrations SET success = false WHERE version = 2",
                // A migration this binary does not know (applied by a newer one).
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) SELECT 9999, 'newer', success, checksum, execution_time FROM migrations_kept WHERE version = 1",
            ];
            for edit in edits {
                raw_execute(store, edit).await.unwrap();
                assert!(!current(store).await, "{label}: after {edit}");
                raw_execute(store, undo).await.unwrap();
                assert!(current(store).await, "{label}: after undoing {edit}");
            }
            // A migration not applied yet.
            let row = format!("DELETE FROM _sqlx_migrations WHERE version = {last}");
            raw_execute(store, &row).await.unwrap();
            assert!(!current(store).await, "{label}: one not applied");

            // What the migrator refuses is still refused when the store is opened.
            raw_execute(store, undo).await.unwrap();
            raw_execute(store, edits[0]).await.unwrap();
            let err = ts.reopen().await.unwrap_err().to_string();
            assert!(err.contains("migration 1"), "{label}: {err}");
            ts.cleanup().await;
        }
    }
}

#[cfg(test)]
mod session_tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::*;
    use crate::testkit::{POSTGRES_URL_ENV, TestStore};

    /// What a short-lived process does before its work (open, check the migrations, read
    /// the active documents and their trail) takes one PostgreSQL session, not two: each
    /// read's connection is back in the pool before the next read starts (#16).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_postgres_start_up_reads_on_one_session() {
        let Ok(url) = std::env::var(POSTGRES_URL_ENV) else {
            return;
        };
        let ts = TestStore::postgres(&url).await.unwrap();
        let url = ts.argent_url().unwrap();
        for round in 0..5 {
            let store = Store::open(&url).await.unwrap();
            let Pool::Postgres(pool) = &store.pool else {
                panic!("not PostgreSQL");
            };
            assert_eq!(pool.size(), 1, "round {round}: after the migrations check");
            store.active_documents().await.unwrap();
            assert_eq!(pool.size(), 1, "round {round}: after the documents");
            store.close().await;
        }
        ts.cleanup().await;
    }

    /// Readers that hold a session and find audit events staged release it before the
    /// chaining takes a connection: with every connection of the pool held by such a
    /// reader, none waits for another's (which would stall them all until the pool's
    /// acquire timeout, and every request behind them).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_holding_sessions_do_not_wait_on_each_other_to_chain() {
        let Ok(url) = std::env::var(POSTGRES_URL_ENV) else {
            return;
        };
        let ts = TestStore::postgres(&url).await.unwrap();
        let store = ts.store.clone();
        let Pool::Postgres(pool) = &store.pool else {
            panic!("not PostgreSQL");
        };
        // Every connection of the pool open and idle, so each reader holds one at once.
        let max = pool.options().get_max_connections() as usize;
        let mut held = Vec::new();
        for _ in 0..max {
            held.push(pool.acquire().await.unwrap());
        }
        for mut conn in held {
            conn.return_to_pool().await;
        }
        assert_eq!(pool.num_idle(), max);
        // An event committed and left staged (its store's chainer gone).
        crate::testkit::raw_execute(&store, &crate::testkit::staged_orphan_sql("orphan"))
            .await
            .unwrap();
        let mut readers = tokio::task::JoinSet::new();
        for _ in 0..2 * max {
            let s = store.clone();
            readers.spawn(async move { s.active_documents().await.map(|d| d.len()) });
        }
        let all = tokio::time::timeout(Duration::from_secs(10), async {
            let mut done = 0;
            while let Some(r) = readers.join_next().await {
                r.unwrap().unwrap();
                done += 1;
            }
            done
        })
        .await
        .expect("the readers finish: none waits for a connection another holds");
        assert_eq!(all, 2 * max);
        assert_eq!(store.audit_chain_staged().await.unwrap(), 0, "chained");
        ts.cleanup().await;
    }
}

#[cfg(test)]
mod in_memory_tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::*;

    /// However an in-memory database is named, it is one connection (the database lives
    /// in it) with no writer thread and small pages (an eval case's store; #16).
    #[tokio::test]
    async fn an_in_memory_database_is_one_connection_without_a_writer() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
            ":memory:",
        ] {
            let store = Store::open(url).await.unwrap();
            assert!(store.writer.is_none(), "{url}: no writer thread");
            let Pool::Sqlite(pool) = &store.pool else {
                panic!("{url}: not SQLite");
            };
            assert_eq!(pool.options().get_max_connections(), 1, "{url}");
            let page: i64 = sqlx::query_scalar("PRAGMA page_size")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(page, 1024, "{url}");
            // And it is a working store: what is written is read back.
            store
                .import_portfolio(&crate::testkit::two_consumer_portfolio(), "test")
                .await
                .unwrap();
            assert!(store.customer("C-ANN").await.is_ok(), "{url}");
        }
    }
}
