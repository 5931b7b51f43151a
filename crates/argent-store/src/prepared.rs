//! PostgreSQL: the writes every model step queues, prepared once a session.
//!
//! A transaction's queued writes go to the server as one simple query with their values as
//! literals ([`crate::tx::PgTx`]), so the server used to parse, analyze and plan each of
//! them every time: in the planner-loop bench at 8 concurrent episodes that was 38% of the
//! server's CPU, and the server was two thirds of the machine's (issue #16). The writes
//! listed in [`WRITES`] are instead prepared by each session of a store's pool when it
//! connects (`PREPARE argent_w<i>`, and `argent_wg<i>` with the must-change guard, whose
//! write number is its last parameter), and queued as `EXECUTE argent_w<i>(<literals>)`:
//! still one round trip, and the server now only reads the literals and runs the plan it
//! keeps. Any other queued write is sent as before.
//!
//! A prepared statement is the session's, not the transaction's, and an `EXECUTE` of one
//! the session lacks fails the transaction, so no session may lack them. The statements
//! name tables, which a database not yet migrated does not have: until the store knows its
//! schema is current, a session that cannot prepare them is let in ([`Sessions`]: it is
//! needed to migrate) and the store is marked; once the schema is current the store either
//! finds no session failed, and from then on refuses any session that cannot prepare them,
//! or reopens its pool with that rule from the start (`Store::open`). A session that
//! prepared them before a migration keeps them: the server plans a prepared statement
//! again when a table it uses changes.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::Result;
use crate::tx::Arg;

/// The prepared writes, each by its exact text (the constant its callers queue).
pub(crate) const WRITES: &[&str] = &[
    crate::agent::CREATE_RUN_SQL,
    crate::agent::CHECKPOINT_SQL,
    crate::agent::FINISH_RUN_SQL,
    crate::run_messages::APPEND_MESSAGE_SQL,
    crate::run_messages::INSERT_CALL_SQL,
];

/// The name under which a session prepares [`STAGE_SQL`].
pub(crate) const STAGE: &str = "argent_stage";

/// Stages a transaction's audit events (`audit`'s `stage_and_commit_sql`): one array a
/// column, in the events' order; one group number for all of them, taken as they are
/// staged; their ids back.
const STAGE_SQL: &str = "INSERT INTO audit_staged \
     (grp, ord, prefix, at, run_id, customer_id, actor, kind, rule_ids) \
     SELECT g.g, e.i, e.prefix, e.at, e.run_id, e.customer_id, e.actor, e.kind, e.rule_ids \
     FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::text[]) WITH ORDINALITY \
     AS e(prefix, at, run_id, customer_id, actor, kind, rule_ids, i), \
     (SELECT nextval('audit_staged_group') AS g) g \
     RETURNING id";

/// `write` wrapped so that changing no row raises `argent_expect_changed`'s error
/// (migration 0033) with write number `k` (a literal, or `$n` of a prepared statement).
pub(crate) fn guarded(out: &mut String, write: &str, k: &str) {
    out.push_str("WITH argent_w AS (");
    out.push_str(write);
    out.push_str(" RETURNING 1) SELECT 1 FROM (SELECT count(*) AS n FROM argent_w) c WHERE NOT argent_expect_changed(");
    out.push_str(k);
    out.push_str(", c.n)");
}

/// The place in [`WRITES`] of a statement's text, if it is one of them.
pub(crate) fn index(sql: &str) -> Option<usize> {
    // A handful of entries: comparing lengths first rules out all but one or two.
    WRITES
        .iter()
        .position(|w| w.len() == sql.len() && *w == sql)
}

/// How many `$n` parameters `sql` has (the highest `n`; `$` in a quoted string is not one).
fn params(sql: &str) -> usize {
    let mut most = 0;
    // Counting never fails; the copy it makes is thrown away.
    let _ = crate::tx::map_params(&mut String::new(), sql, |_, n| {
        most = most.max(n);
        Ok(())
    });
    most
}

/// The simple query that prepares [`WRITES`] in a session.
pub(crate) fn prepare_sql() -> String {
    let mut out = String::new();
    for (i, w) in WRITES.iter().enumerate() {
        out.push_str(&format!("PREPARE argent_w{i} AS {w};\n"));
        out.push_str(&format!("PREPARE argent_wg{i} AS "));
        guarded(&mut out, w, &format!("${}::integer", params(w) + 1));
        out.push_str(";\n");
    }
    out.push_str(&format!("PREPARE {STAGE} AS {STAGE_SQL};\n"));
    out
}

/// Appends `EXECUTE` of prepared write `i` with `args` as literals, and with guard number
/// `k` for the guarded form.
pub(crate) fn render_execute(
    out: &mut String,
    i: usize,
    args: &[Arg],
    k: Option<usize>,
) -> Result<()> {
    match k {
        None => out.push_str(&format!("EXECUTE argent_w{i}(")),
        Some(_) => out.push_str(&format!("EXECUTE argent_wg{i}(")),
    }
    for (n, a) in args.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        a.pg_literal(out)?;
    }
    if let Some(k) = k {
        if !args.is_empty() {
            out.push_str(", ");
        }
        out.push_str(&k.to_string());
    }
    out.push(')');
    Ok(())
}

const TOLERANT: u8 = 0;
const FAILED: u8 = 1;
const STRICT: u8 = 2;

/// Whether the sessions of one pool must have prepared [`WRITES`]: tolerant until the
/// store knows its schema is current (a session that could not prepare them marks the
/// pool), strict afterwards (such a session is refused).
#[derive(Debug)]
pub(crate) struct Sessions(AtomicU8);

impl Sessions {
    pub(crate) fn tolerant() -> Sessions {
        Sessions(AtomicU8::new(TOLERANT))
    }

    pub(crate) fn strict() -> Sessions {
        Sessions(AtomicU8::new(STRICT))
    }

    /// From now on a session that cannot prepare the writes is refused. `false` if one
    /// could not already: its pool has a session that must not be used.
    pub(crate) fn make_strict(&self) -> bool {
        match self
            .0
            .compare_exchange(TOLERANT, STRICT, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(now) => now == STRICT,
        }
    }

    /// A session could not prepare the writes: whether it may still be used (the pool is
    /// then marked).
    fn tolerate_failure(&self) -> bool {
        match self
            .0
            .compare_exchange(TOLERANT, FAILED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(now) => now == FAILED,
        }
    }
}

/// Prepares [`WRITES`] in a new session of a pool (its `after_connect`).
pub(crate) async fn prepare_session(
    conn: &mut sqlx::PgConnection,
    sessions: &Sessions,
) -> sqlx::Result<()> {
    let sql = prepare_sql();
    match sqlx::Executor::execute(conn, sqlx::raw_sql(&sql)).await {
        Ok(_) => Ok(()),
        Err(e) if sessions.tolerate_failure() => {
            tracing::debug!(error = %e, "a session could not prepare the queued writes yet");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_write_is_found_by_its_text_and_only_by_it() {
        for (i, w) in WRITES.iter().enumerate() {
            assert_eq!(index(w), Some(i));
            assert_eq!(index(&format!("{w} ")), None);
        }
        assert_eq!(index("SELECT 1"), None);
    }

    #[test]
    fn the_guarded_form_takes_the_write_number_after_the_write_parameters() {
        assert_eq!(params(crate::agent::FINISH_RUN_SQL), 3);
        assert_eq!(params(crate::run_messages::INSERT_CALL_SQL), 8);
        let sql = prepare_sql();
        assert!(
            sql.contains("argent_expect_changed($4::integer, c.n)"),
            "{sql}"
        );
        let mut out = String::new();
        render_execute(
            &mut out,
            2,
            &[Arg::of("finished"), Arg::of("run-1")],
            Some(7),
        )
        .unwrap();
        assert_eq!(
            out,
            "EXECUTE argent_wg2(E'finished'::text, E'run-1'::text, 7)"
        );
    }

    #[test]
    fn a_pool_marked_failed_is_not_made_strict_and_a_strict_one_refuses() {
        let s = Sessions::tolerant();
        assert!(s.tolerate_failure());
        assert!(!s.make_strict(), "a failed session is in the pool");
        let s = Sessions::tolerant();
        assert!(s.make_strict());
        assert!(
            !s.tolerate_failure(),
            "strict: a session that fails is refused"
        );
        assert!(Sessions::strict().make_strict());
    }

    /// How many of the prepared writes `conn`'s session has.
    async fn prepared_in(conn: &mut sqlx::PgConnection) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_prepared_statements \
             WHERE name LIKE 'argent\\_w%' OR name = 'argent_stage'",
        )
        .fetch_one(conn)
        .await
        .unwrap()
    }

    /// A store opened on a database not yet migrated (its first session could not prepare
    /// the writes) and one opened on it afterwards: every session either pool hands out has
    /// all of them, and the prepared writes write, their guard included.
    #[tokio::test]
    async fn every_session_of_a_store_has_the_prepared_writes() {
        let Ok(url) = std::env::var(crate::testkit::POSTGRES_URL_ENV) else {
            return;
        };
        let ts = crate::testkit::TestStore::postgres(&url).await.unwrap();
        let again = ts.reopen().await.unwrap();
        for store in [&ts.store, &again] {
            let crate::Pool::Postgres(pool) = &store.pool else {
                panic!("a PostgreSQL store");
            };
            // All eight at once, so each is a different session.
            let mut held = Vec::new();
            for _ in 0..8 {
                held.push(pool.acquire().await.unwrap());
            }
            for conn in &mut held {
                assert_eq!(prepared_in(conn).await, 2 * WRITES.len() as i64 + 1);
            }
        }
        again.close().await;

        let store = &ts.store;
        store
            .import_portfolio(&crate::testkit::consumer_portfolio(1), "test")
            .await
            .unwrap();
        let at = chrono::Utc::now();
        let run = crate::RunRecord {
            id: "run-p".into(),
            customer_id: "C-00001".into(),
            trigger: serde_json::json!({"kind": "manual"}),
            status: crate::RunStatus::Running,
            step: 0,
            tokens: 0,
            state: serde_json::json!({}),
            model: "m".into(),
            prompt_version: "p".into(),
            policy_version: "q".into(),
            created_at: at,
            updated_at: at,
            lease_owner: None,
            lease_until: None,
        };
        let mut tx = store.begin().await.unwrap();
        tx.create_run(&run).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.finish_run("run-p", crate::RunStatus::Finished)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.run("run-p").await.unwrap().status,
            crate::RunStatus::Finished
        );
        // The guarded form: no such run is the operation's own error.
        let mut tx = store.begin().await.unwrap();
        tx.finish_run("run-none", crate::RunStatus::Finished)
            .await
            .unwrap();
        let err = tx.commit().await.unwrap_err();
        assert!(matches!(err, crate::StoreError::NotFound(_)), "{err:?}");
        ts.cleanup().await;
    }
}
