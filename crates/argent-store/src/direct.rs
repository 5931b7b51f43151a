//! Statements run on a SQLite connection's own handle, in the calling thread (#16).
//!
//! sqlx runs every SQLite statement on the connection's thread and sends each result and
//! each row back as a message of its own, waking the awaiting task for every one; a
//! planner-loop step's write batch (some fifteen statements) cost that many thread hand-offs,
//! more than SQLite's own work on them. The writer's batches ([`crate::tx`]) run here
//! instead: one message takes the connection's handle from its thread
//! ([`sqlx::sqlite::SqliteConnection::lock_handle`]), the statements run through rusqlite
//! on that handle, each prepared once and cached, and dropping the lock gives the handle
//! back.
//!
//! Invariants:
//! - [`Direct`] wraps the handle of a connection sqlx owns; it never closes it (rusqlite's
//!   `from_handle`), and it is dropped before the connection is (its cached statements
//!   must be finalized while the handle is open).
//! - It is used only while the connection's [`LockedSqliteHandle`] is held: [`Direct::on`]
//!   takes the lock to hand out the connection, so the connection's thread is parked on its
//!   mutex and no two threads use the handle at once.
//! - A value is bound exactly as sqlx binds the Rust value an [`Arg`] was made from (the same
//!   storage class and text), so a row reads back the same whichever path wrote it.
//! - Errors come back as sqlx errors ([`DirectError`] is a `sqlx::error::DatabaseError` with
//!   the extended result code and message sqlx would give), so callers and
//!   [`crate::readonly`] see one kind of error.
#![allow(unsafe_code)]

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use sqlx::error::ErrorKind;
use sqlx::sqlite::LockedSqliteHandle;

use crate::tx::Arg;

/// How many prepared statements a [`Direct`] keeps (the writer's: every statement the
/// store's writes and its direct reads use, with room to spare).
const STATEMENT_CACHE: usize = 128;

/// The connection's handle, wrapped by rusqlite (see the module docs).
pub(crate) struct Direct {
    conn: rusqlite::Connection,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Direct")
    }
}

impl Direct {
    /// Wraps the handle `lock` holds.
    pub(crate) fn attach(lock: &mut LockedSqliteHandle<'_>) -> Direct {
        let db = lock.as_raw_handle().as_ptr();
        // SAFETY: `db` is an open connection that sqlx owns and keeps open for as long as
        // its `SqliteConnection` lives; `from_handle` never closes it. The `Direct` is only
        // used through `on`, which requires the connection's lock, and the writer drops it
        // before the connection (see `Writer`). rusqlite's `libsqlite3-sys` is sqlx's (one
        // crate in the build), so the pointer's type and the library are the same.
        let conn = unsafe { rusqlite::Connection::from_handle(db) };
        match conn {
            Ok(conn) => {
                // A planner-loop step alone uses some thirty distinct statements; rusqlite
                // keeps 16 by default, and a cache that small re-prepared most of them.
                conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                Direct { conn }
            }
            // `from_handle` only wraps the pointer; it has no failing path.
            Err(e) => unreachable!("wrapping an open SQLite handle failed: {e}"),
        }
    }

    /// The connection, for as long as the handle's lock is held.
    pub(crate) fn on<'a>(
        &'a self,
        _lock: &'a mut LockedSqliteHandle<'_>,
    ) -> &'a rusqlite::Connection {
        &self.conn
    }
}

/// Locks of a [`Held`] connection's handle between two drains of its command queue; well
/// under sqlx's default queue of 50 (see [`Held::with`]).
const DRAIN_EVERY: u32 = 16;

/// sqlx's connection with its handle kept locked between uses, and the handle wrapped for
/// direct statements ([`Direct`]): the writer's (see [`crate::tx`]).
///
/// Taking the handle from the connection's thread is a message to that thread, which must
/// be scheduled to let the lock go, and giving it back wakes the thread again. The writer
/// runs nearly all its statements on the handle, so it keeps the lock from one batch to the
/// next (the connection's thread stays parked on it, using no CPU) and lets it go only when
/// a statement is to run through sqlx ([`Held::sqlx`]); the next direct batch takes it
/// again. A batch on a held handle involves no other thread.
///
/// Invariants (on top of the module's):
/// - While `guard` is `Some`, the handle is this value's alone: the connection's thread is
///   parked on its mutex. [`Held::sqlx`] lets the lock go before it hands out the
///   connection, so sqlx never waits on a lock its own caller holds.
/// - `guard` borrows from `conn`, which is boxed (it does not move while borrowed) and is
///   only reached through [`Held::sqlx`] (which ends the borrow first) or dropped after it.
/// - `direct` is dropped while the lock is held (its cached statements are finalized
///   while no other thread uses the handle), before `conn`.
pub(crate) struct Held {
    // Field order is drop order: `direct` under `guard`, then `guard`, then `conn`.
    direct: Option<Direct>,
    guard: Option<LockedSqliteHandle<'static>>,
    /// `None` once closed.
    conn: Option<Box<sqlx::SqliteConnection>>,
    /// Times the handle was locked since the connection's command queue was last drained.
    locked: u32,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("locked", &self.guard.is_some())
            .field("closed", &self.conn.is_none())
            .finish()
    }
}

impl Held {
    pub(crate) fn new(conn: sqlx::SqliteConnection) -> Held {
        Held {
            direct: None,
            guard: None,
            conn: Some(Box::new(conn)),
            locked: 0,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.conn.is_none()
    }

    /// Takes the handle's lock unless it is held already.
    ///
    /// sqlx 0.8's `lock_handle` sends the connection's thread a message to let the handle
    /// go, and takes the handle's lock; when the lock is free before that thread has
    /// handled the message, the message stays queued, unneeded. Such messages pile up, and
    /// once they fill the connection's bounded command queue, a `lock_handle` holds the
    /// lock while it waits for room in the queue, which only the thread waiting for that
    /// lock could make: both wait for ever (seen after a few hundred transactions when the
    /// lock was taken for every batch). A ping every [`DRAIN_EVERY`] locks goes behind
    /// whatever is queued and returns once the thread has handled it all, so the queue
    /// never fills.
    async fn lock(&mut self) -> Result<(), sqlx::Error> {
        if self.guard.is_some() {
            return Ok(());
        }
        let Some(conn) = self.conn.as_deref_mut() else {
            return Err(sqlx::Error::PoolClosed);
        };
        if self.locked >= DRAIN_EVERY {
            self.locked = 0;
            sqlx::Connection::ping(&mut *conn).await?;
        }
        let lock = conn.lock_handle().await?;
        // SAFETY: the guard borrows the boxed connection, which does not move while boxed
        // and is dropped or taken out of `conn` only after `guard` is `None` (field order,
        // `close`); it is reached elsewhere only through `sqlx`, which drops the guard
        // first, so the extended borrow never overlaps another use of the connection.
        let lock: LockedSqliteHandle<'static> = unsafe { std::mem::transmute(lock) };
        self.guard = Some(lock);
        self.locked += 1;
        Ok(())
    }

    /// Runs `f` on the handle, in this thread, taking the handle's lock first unless it is
    /// held; the lock is kept afterwards.
    pub(crate) async fn with<R>(
        &mut self,
        f: impl FnOnce(&rusqlite::Connection) -> R,
    ) -> Result<R, sqlx::Error> {
        self.lock().await?;
        let Held { direct, guard, .. } = self;
        let Some(lock) = guard.as_mut() else {
            return Err(sqlx::Error::PoolClosed);
        };
        let db = direct.get_or_insert_with(|| Direct::attach(lock)).on(lock);
        Ok(f(db))
    }

    /// The connection, for statements sqlx runs: the handle's lock goes back to the
    /// connection's thread first.
    pub(crate) fn sqlx(&mut self) -> Result<&mut sqlx::SqliteConnection, sqlx::Error> {
        self.guard = None;
        self.conn.as_deref_mut().ok_or(sqlx::Error::PoolClosed)
    }

    /// Finalizes the direct statements under the handle's lock and gives the lock back.
    async fn detach(&mut self) {
        if self.direct.is_some() && self.lock().await.is_err() {
            // The connection's thread is gone, and with it the handle: finalizing the
            // statements now would touch freed memory.
            if let Some(direct) = self.direct.take() {
                std::mem::forget(direct);
            }
        }
        self.direct = None;
        self.guard = None;
    }

    /// Closes the connection (the direct statements finalized first); `self` is closed
    /// afterwards.
    pub(crate) async fn close(&mut self) {
        self.detach().await;
        if let Some(conn) = self.conn.take() {
            let _ = sqlx::Connection::close(*conn).await;
        }
    }

    /// Puts `fresh` in the place of the connection, closing the old one.
    pub(crate) async fn replace(&mut self, fresh: sqlx::SqliteConnection) {
        self.close().await;
        self.conn = Some(Box::new(fresh));
        self.locked = 0;
    }
}

impl Drop for Held {
    /// sqlx closes the handle with `sqlite3_close`, which fails (and sqlx panics) while a
    /// statement prepared on it is not finalized: the direct statements are finalized
    /// first, under the handle's lock (waited for on this thread if it is not held: taking
    /// it needs only the connection's own thread, never a runtime's).
    fn drop(&mut self) {
        if self.direct.is_some() {
            futures_executor::block_on(self.detach());
        }
    }
}

/// Binds `args` to `stmt` as sqlx-sqlite binds a query's arguments: a `$N` (or `?N`)
/// parameter takes the N-th argument, an anonymous `?` the next one; a parameter past the
/// last argument stays NULL.
fn bind(stmt: &mut rusqlite::Statement<'_>, args: &[Arg]) -> rusqlite::Result<()> {
    let mut next = 0usize;
    for i in 1..=stmt.parameter_count() {
        let n = match stmt.parameter_name(i) {
            Some(name) => {
                let digits = name
                    .strip_prefix('$')
                    .or_else(|| name.strip_prefix('?'))
                    .unwrap_or(name);
                match digits.parse::<usize>() {
                    Ok(n) => n,
                    Err(_) => {
                        return Err(rusqlite::Error::InvalidParameterName(name.to_string()));
                    }
                }
            }
            None => {
                next += 1;
                next
            }
        };
        let Some(arg) = n.checked_sub(1).and_then(|k| args.get(k)) else {
            break;
        };
        stmt.raw_bind_parameter(i, value(arg))?;
    }
    Ok(())
}

/// `arg` as sqlx binds the value it was made from: text, dates and instants as text
/// (instants as `to_rfc3339_opts(AutoSi, false)`, dates as `%F`), booleans as 0 or 1.
pub(crate) fn value(arg: &Arg) -> ToSqlOutput<'_> {
    match arg {
        Arg::Null(_) => ToSqlOutput::Borrowed(ValueRef::Null),
        Arg::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        Arg::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
        Arg::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
        Arg::Time(t) => ToSqlOutput::Owned(Value::Text(
            t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
        )),
        Arg::Date(d) => ToSqlOutput::Owned(Value::Text(d.format("%F").to_string())),
        Arg::Float(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
    }
}

/// Runs `sql` (one statement, cached once prepared) with `args`, reading any rows it returns
/// to the end; the rows it changed.
pub(crate) fn execute(db: &rusqlite::Connection, sql: &str, args: &[Arg]) -> rusqlite::Result<u64> {
    let mut stmt = db.prepare_cached(sql)?;
    bind(&mut stmt, args)?;
    let mut rows = stmt.raw_query();
    while rows.next()?.is_some() {}
    drop(rows);
    Ok(db.changes())
}

/// Runs `read` (statements that only read) in one read transaction: every statement sees
/// the same snapshot, and the WAL's read lock is taken, and the page cache checked against
/// the WAL, once rather than at each statement (ten times for an account). Inside a
/// transaction already open on `db`, `read` just runs in it.
pub(crate) fn snapshot<R>(
    db: &rusqlite::Connection,
    read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
) -> rusqlite::Result<R> {
    if !db.is_autocommit() {
        return read(db);
    }
    execute(db, "BEGIN", &[])?;
    let out = read(db);
    let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
    match (out, execute(db, end, &[])) {
        (Ok(out), Ok(_)) => Ok(out),
        (Err(e), _) | (Ok(_), Err(e)) => {
            if !db.is_autocommit() {
                // A failed COMMIT of a read cannot have lost anything; the connection
                // must not be left inside it.
                let _ = execute(db, "ROLLBACK", &[]);
            }
            Err(e)
        }
    }
}

/// `BEGIN IMMEDIATE` without waiting: `Ok(false)` if another connection holds the write
/// lock (the caller then begins through sqlx, whose thread waits out the busy timeout, so
/// no runtime thread sleeps in SQLite's busy handler). `busy_timeout` is the connection's,
/// restored afterwards.
pub(crate) fn try_begin_immediate(
    db: &rusqlite::Connection,
    busy_timeout: Duration,
) -> rusqlite::Result<bool> {
    db.busy_timeout(Duration::ZERO)?;
    let begun = execute(db, "BEGIN IMMEDIATE", &[]).map(drop);
    db.busy_timeout(busy_timeout)?;
    match begun {
        Ok(()) => Ok(true),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// A SQLite error from a statement run directly, as the `sqlx::Error::Database` sqlx would
/// have returned for it.
#[derive(Debug)]
pub(crate) struct DirectError {
    /// The extended result code.
    code: i32,
    message: String,
}

impl DirectError {
    /// Whether the error says the connection cannot write (`SQLITE_READONLY` and its
    /// extended codes).
    pub(crate) fn is_readonly(&self) -> bool {
        self.code & 0xff == rusqlite::ffi::SQLITE_READONLY
    }
}

impl std::fmt::Display for DirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for DirectError {}

impl sqlx::error::DatabaseError for DirectError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// `e` as the sqlx error sqlx would have returned for it.
pub(crate) fn to_sqlx(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::SqliteFailure(f, message) => {
            sqlx::Error::Database(Box::new(DirectError {
                code: f.extended_code,
                message: message.unwrap_or_else(|| f.to_string()),
            }))
        }
        other => sqlx::Error::Protocol(format!("running a statement on the writer: {other}")),
    }
}

/// A row read directly: its statement's column names and its values. Read through the same
/// row macros as sqlx's rows (`try_get` by column name, decoding as sqlx decodes SQLite
/// values).
pub(crate) struct DirectRow {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl DirectRow {
    /// The column `name` as `T`, or the error sqlx gives for a missing column or a value
    /// it cannot decode as `T`.
    pub(crate) fn try_get<T: FromDirect>(&self, name: &str) -> Result<T, sqlx::Error> {
        let value = self
            .columns
            .iter()
            .position(|c| c == name)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| sqlx::Error::ColumnNotFound(name.to_string()))?;
        T::from_direct(value).map_err(|why| sqlx::Error::ColumnDecode {
            index: format!("{name:?}"),
            source: why.into(),
        })
    }
}

/// A Rust value from a SQLite value, as sqlx-sqlite decodes it.
pub(crate) trait FromDirect: Sized {
    fn from_direct(value: &Value) -> Result<Self, String>;
}

fn mismatch(want: &str, value: &Value) -> String {
    let got = match value {
        Value::Null => "NULL",
        Value::Integer(_) => "INTEGER",
        Value::Real(_) => "REAL",
        Value::Text(_) => "TEXT",
        Value::Blob(_) => "BLOB",
    };
    format!("mismatched types; Rust type `{want}` is not compatible with SQL type `{got}`")
}

// Like sqlx-sqlite: a non-NULL value must be of a storage class the Rust type is
// compatible with (checked on the value, not the column's declared type), and a NULL read
// as a type that is not an `Option` decodes as SQLite converts NULL (`""`, 0, false, 0.0;
// a date fails to parse).

/// `FromDirect` for a type read from one storage class: the value it takes from that
/// class, and what a NULL reads as.
macro_rules! from_direct {
    ($($t:ty: $class:ident($v:ident) => $ok:expr, null => $null:expr;)*) => {$(
        impl FromDirect for $t {
            fn from_direct(value: &Value) -> Result<Self, String> {
                match value {
                    Value::$class($v) => Ok($ok),
                    Value::Null => Ok($null),
                    other => Err(mismatch(stringify!($t), other)),
                }
            }
        }
    )*};
}
from_direct! {
    String: Text(s) => s.clone(), null => String::new();
    i64: Integer(i) => *i, null => 0;
    bool: Integer(i) => *i != 0, null => false;
    f64: Real(f) => *f, null => 0.0;
}

impl FromDirect for chrono::NaiveDate {
    fn from_direct(value: &Value) -> Result<Self, String> {
        let text = match value {
            Value::Text(s) => s.as_str(),
            Value::Null => "",
            other => return Err(mismatch("NaiveDate", other)),
        };
        chrono::NaiveDate::parse_from_str(text, "%F").map_err(|e| e.to_string())
    }
}

impl FromDirect for chrono::DateTime<chrono::Utc> {
    /// Text in the formats sqlx-sqlite reads, tried in its order (RFC 3339 first); an
    /// integer as Unix seconds; a real as a Julian day.
    fn from_direct(value: &Value) -> Result<Self, String> {
        use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
        let at = match value {
            Value::Text(s) => DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| d.with_timezone(&Utc))
                .or_else(|| {
                    SQLITE_DATETIME_FORMATS.iter().find_map(|f| {
                        DateTime::parse_from_str(s, f)
                            .map(|d| d.with_timezone(&Utc))
                            .ok()
                            .or_else(|| {
                                NaiveDateTime::parse_from_str(s, f)
                                    .ok()
                                    .map(|n| Utc.from_utc_datetime(&n))
                            })
                    })
                }),
            Value::Integer(i) => Utc.timestamp_opt(*i, 0).single(),
            Value::Real(f) => {
                let secs = (f - 2_440_587.5) * 86_400.0;
                if secs.is_finite() {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let (s, n) = (secs.trunc() as i64, (secs.fract() * 1e9).abs() as u32);
                    Utc.timestamp_opt(s, n).single()
                } else {
                    None
                }
            }
            other => return Err(mismatch("DateTime<Utc>", other)),
        };
        at.ok_or_else(|| match value {
            Value::Text(s) => format!("invalid datetime: {s}"),
            _ => "invalid datetime".to_string(),
        })
    }
}

/// sqlx-sqlite's date-time text formats after RFC 3339, in its order.
const SQLITE_DATETIME_FORMATS: [&str; 12] = [
    "%F %T%.f",
    "%F %R",
    "%F %RZ",
    "%F %R%:z",
    "%F %T%.fZ",
    "%F %T%.f%:z",
    "%FT%R",
    "%FT%RZ",
    "%FT%R%:z",
    "%FT%T%.f",
    "%FT%T%.fZ",
    "%FT%T%.f%:z",
];

impl<T: FromDirect> FromDirect for Option<T> {
    fn from_direct(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            v => T::from_direct(v).map(Some),
        }
    }
}

/// The rows `sql` (one statement, cached once prepared) returns with `args`.
pub(crate) fn query(
    db: &rusqlite::Connection,
    sql: &str,
    args: &[Arg],
) -> rusqlite::Result<Vec<DirectRow>> {
    let mut stmt = db.prepare_cached(sql)?;
    bind(&mut stmt, args)?;
    let columns: Arc<[String]> = stmt.column_names().into_iter().map(String::from).collect();
    let width = columns.len();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(v) => Value::Integer(v),
                ValueRef::Real(v) => Value::Real(v),
                // Text that is not UTF-8 (which argent never writes) is kept as bytes, and
                // fails to decode as text, as it does through sqlx.
                ValueRef::Text(t) => match std::str::from_utf8(t) {
                    Ok(t) => Value::Text(t.to_owned()),
                    Err(_) => Value::Blob(t.to_vec()),
                },
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        out.push(DirectRow {
            columns: columns.clone(),
            values,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{Direct, DirectRow, FromDirect, execute, query, snapshot};
    use crate::tx::{Arg, PgType};
    use chrono::{DateTime, NaiveDate, TimeZone, Utc};
    use proptest::prelude::*;
    use sqlx::{Connection, Row, SqliteConnection};

    fn runtime() -> tokio::runtime::Runtime {
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt,
            Err(e) => panic!("a test runtime: {e}"),
        }
    }

    fn any_arg() -> impl Strategy<Value = Arg> {
        let instant = (-62_000_000_000i64..250_000_000_000, 0u32..2_000_000_000)
            .prop_filter_map("a representable instant", |(s, n)| {
                Utc.timestamp_opt(s, n % 1_000_000_000).single()
            });
        prop_oneof![
            Just(Arg::Null(PgType::Text)),
            "\\PC*".prop_map(Arg::Text),
            ".*".prop_map(Arg::Text),
            any::<i64>().prop_map(Arg::Int),
            any::<bool>().prop_map(Arg::Bool),
            instant.prop_map(Arg::Time),
            (-300_000i32..300_000).prop_filter_map("a date", |d| {
                NaiveDate::from_num_days_from_ce_opt(d).map(Arg::Date)
            }),
            any::<f64>().prop_map(Arg::Float),
        ]
    }

    /// Stores `args` in rows 1.. of `t` through sqlx's binding, and again in rows 1001..
    /// through the direct one; returns both as (typeof, quote) per row.
    async fn stored_both_ways(args: &[Arg]) -> (Vec<(String, String)>, Vec<(String, String)>) {
        let mut c = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (k INTEGER PRIMARY KEY, v)")
            .execute(&mut c)
            .await
            .unwrap();
        for (k, a) in args.iter().enumerate() {
            sqlx::query("INSERT INTO t (k, v) VALUES ($1, $2)")
                .bind(k as i64 + 1)
                .bind(a.clone())
                .execute(&mut c)
                .await
                .unwrap();
        }
        {
            let mut lock = c.lock_handle().await.unwrap();
            let direct = Direct::attach(&mut lock);
            for (k, a) in args.iter().enumerate() {
                let changed = execute(
                    direct.on(&mut lock),
                    "INSERT INTO t (k, v) VALUES ($1, $2)",
                    &[Arg::Int(k as i64 + 1001), a.clone()],
                )
                .unwrap();
                assert_eq!(changed, 1);
            }
        }
        let read = |lo: i64, hi: i64| {
            sqlx::query(
                "SELECT typeof(v) AS t, quote(v) AS q FROM t WHERE k BETWEEN $1 AND $2 ORDER BY k",
            )
            .bind(lo)
            .bind(hi)
        };
        let rows = |rs: Vec<sqlx::sqlite::SqliteRow>| {
            rs.iter()
                .map(|r| (r.get::<String, _>("t"), r.get::<String, _>("q")))
                .collect::<Vec<_>>()
        };
        let a = rows(read(1, 1000).fetch_all(&mut c).await.unwrap());
        let b = rows(read(1001, 2000).fetch_all(&mut c).await.unwrap());
        (a, b)
    }

    /// What sqlx and the direct path read from column `v` of every row of `t`, as `T`.
    async fn read_both_ways<T>(c: &mut SqliteConnection) -> (Vec<String>, Vec<String>)
    where
        T: FromDirect
            + std::fmt::Debug
            + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>,
    {
        let show = |r: Result<T, sqlx::Error>| match r {
            Ok(v) => format!("{v:?}"),
            Err(_) => "error".to_string(),
        };
        let sql = "SELECT v FROM t ORDER BY k";
        let by_sqlx: Vec<String> = sqlx::query(sql)
            .fetch_all(&mut *c)
            .await
            .unwrap()
            .iter()
            .map(|r| show(r.try_get::<T, _>("v")))
            .collect();
        let mut lock = c.lock_handle().await.unwrap();
        let direct = Direct::attach(&mut lock);
        let rows: Vec<DirectRow> = query(direct.on(&mut lock), sql, &[]).unwrap();
        let by_direct = rows.iter().map(|r| show(r.try_get::<T>("v"))).collect();
        (by_sqlx, by_direct)
    }

    /// A stored value: what argent writes (through either path), and text in the other
    /// date-time forms sqlx reads.
    fn any_stored() -> impl Strategy<Value = Arg> {
        let formats = prop_oneof![
            Just("%F %T%.f"),
            Just("%F %R"),
            Just("%FT%T%.fZ"),
            Just("%FT%T%.f%:z"),
            Just("%FT%R"),
            Just("%Y-%m-%dT%H:%M:%S%.3fZ"),
        ];
        prop_oneof![
            any_arg(),
            (any_arg(), formats).prop_map(|(a, f)| match a {
                Arg::Time(t) => Arg::Text(t.format(f).to_string()),
                other => other,
            }),
            (-1_000_000.0f64..5_000_000.0).prop_map(Arg::Float),
        ]
    }

    /// The count of `t`'s rows, read on `db`.
    fn count(db: &rusqlite::Connection) -> rusqlite::Result<i64> {
        let rows = query(db, "SELECT count(*) AS n FROM t", &[])?;
        rows.first().map_or(Ok(-1), |r| {
            r.try_get::<i64>("n")
                .map_err(|_| rusqlite::Error::InvalidQuery)
        })
    }

    /// Statements read in a snapshot see the database as it was at the first of them, though
    /// another connection commits between them; outside one each statement sees the latest
    /// commit (the same reads, the control). A failed read leaves the connection outside any
    /// transaction.
    #[test]
    fn reads_in_a_snapshot_see_one_state_of_the_database() {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("snap.db");
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
            let mut c = sqlx::ConnectOptions::connect(&opts).await.unwrap();
            sqlx::raw_sql("CREATE TABLE t (k INTEGER PRIMARY KEY)")
                .execute(&mut c)
                .await
                .unwrap();
            let other = rusqlite::Connection::open(&path).unwrap();
            let mut k = 0;
            let mut commit_other = || {
                k += 1;
                other.execute("INSERT INTO t (k) VALUES (?1)", [k]).unwrap();
            };
            let mut lock = c.lock_handle().await.unwrap();
            let direct = Direct::attach(&mut lock);
            let db = direct.on(&mut lock);

            let (before, after) = snapshot(db, |db| {
                let before = count(db)?;
                commit_other();
                Ok((before, count(db)?))
            })
            .unwrap();
            assert_eq!((before, after), (0, 0), "one snapshot");
            assert!(db.is_autocommit(), "the read transaction is ended");
            assert_eq!(count(db).unwrap(), 1, "a later read sees the commit");

            let before = count(db).unwrap();
            commit_other();
            assert_eq!((before, count(db).unwrap()), (1, 2), "without a snapshot");

            let failed = snapshot(db, |db| query(db, "SELECT nothing FROM nowhere", &[]));
            assert!(failed.is_err());
            assert!(
                db.is_autocommit(),
                "a failed read leaves no transaction open"
            );
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every kind of argument is stored with the storage class and the value sqlx's
        /// binding gives it, so a row reads the same whichever path wrote it.
        #[test]
        fn the_direct_path_binds_what_sqlx_binds(args in proptest::collection::vec(any_arg(), 1..12)) {
            let (by_sqlx, by_direct) = runtime().block_on(stored_both_ways(&args));
            prop_assert_eq!(by_sqlx, by_direct);
        }

        /// Every Rust type the row macros read decodes a stored value as sqlx decodes it,
        /// or fails where sqlx fails.
        #[test]
        fn the_direct_path_reads_what_sqlx_reads(values in proptest::collection::vec(any_stored(), 1..12)) {
            runtime().block_on(async {
                let mut c = SqliteConnection::connect("sqlite::memory:").await.unwrap();
                sqlx::raw_sql("CREATE TABLE t (k INTEGER PRIMARY KEY, v)").execute(&mut c).await.unwrap();
                for v in &values {
                    sqlx::query("INSERT INTO t (v) VALUES ($1)").bind(v.clone()).execute(&mut c).await.unwrap();
                }
                macro_rules! same {
                    ($($t:ty),*) => {$(
                        let (a, b) = read_both_ways::<$t>(&mut c).await;
                        assert_eq!(a, b, "{}", stringify!($t));
                    )*};
                }
                same!(String, i64, bool, f64, NaiveDate, DateTime<Utc>, Option<String>,
                    Option<i64>, Option<bool>, Option<f64>, Option<NaiveDate>,
                    Option<DateTime<Utc>>);
            });
        }
    }
}
