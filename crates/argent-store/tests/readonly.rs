//! A database that was briefly read-only (issue #11, item 13): while it is, writes fail;
//! once it is writable again, every write must succeed — without reopening the store.
//! Connections opened during the read-only spell can only read (SQLite opens a file it may
//! not write read-only, without saying so; PostgreSQL fixes a session's
//! `default_transaction_read_only` when it starts), and a pool that kept them failed writes
//! until the process restarted.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use argent_store::testkit::{POSTGRES_URL_ENV, ReadOnlyFile, TestStore};
use argent_store::{NewAuditEvent, NewUser, Store, TokenKind};

async fn user(store: &Store) {
    store
        .create_user(&NewUser {
            name: "ann".into(),
            role: "collector".into(),
            password_hash: "$argon2id$stand-in".into(),
        })
        .await
        .unwrap();
}

/// A single-statement write (as signing in does).
async fn token(store: &Store, t: &str) -> argent_store::Result<()> {
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    store
        .insert_token(t, "ann", TokenKind::Session, expires)
        .await
}

/// A transaction (the audit trail's).
async fn audit(store: &Store, kind: &str) -> argent_store::Result<()> {
    store
        .audit_append(NewAuditEvent {
            run_id: None,
            customer_id: None,
            actor: "test".into(),
            kind: kind.into(),
            payload: serde_json::json!({}),
        })
        .await
        .map(|_| ())
}

/// Reads in parallel, so the pool opens more connections than it had.
async fn busy_reads(store: &Store) {
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let s = store.clone();
        reads.spawn(async move { s.users().await.map(|u| u.len()) });
    }
    while let Some(r) = reads.join_next().await {
        assert_eq!(r.unwrap().unwrap(), 1, "reading works throughout");
    }
}

/// Every kind of write works, many times over (so every pooled connection is used).
async fn writes_work(store: &Store, label: &str) {
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..24 {
        let s = store.clone();
        let t = format!("{label}-{i}");
        writes.spawn(async move { token(&s, &t).await });
    }
    let mut failed = Vec::new();
    while let Some(r) = writes.join_next().await {
        if let Err(e) = r.unwrap() {
            failed.push(e.to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{label}: {} of 24 writes failed after the database was writable again: {:?}",
        failed.len(),
        failed.first()
    );
    for i in 0..3 {
        audit(store, &format!("{label}-{i}")).await.unwrap();
    }
    busy_reads(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_work_again_once_the_file_is_writable_again() {
    let ts = TestStore::sqlite().await.unwrap();
    let store = ts.store.clone();
    user(&store).await;
    token(&store, "before").await.unwrap();
    audit(&store, "before").await.unwrap();
    let path = ts.sqlite_path().unwrap().to_path_buf();
    let Some(ro) = ReadOnlyFile::make(&path).unwrap() else {
        eprintln!("notice: this process cannot make a file read-only; test skipped");
        return;
    };
    // While it is read-only: the pool opens connections (they can only read), and a write
    // on one fails. A write may still succeed: SQLite keeps the descriptor of a connection
    // closed while another of this process holds a lock on the file (in WAL mode every open
    // connection holds one), and hands it to the next connection that asks for read-write
    // access, so a connection opened now may have a read-write descriptor.
    for round in 0..4 {
        busy_reads(&store).await;
        let _ = token(&store, &format!("during-{round}")).await;
    }
    ro.restore();
    writes_work(&store, "after").await;
    ts.cleanup().await;
}

/// A store opened while the file is read-only has only read-only connections, its writer's
/// included, and writes once the file is writable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_opened_while_the_file_is_read_only_writes_once_it_is_writable() {
    let ts = TestStore::sqlite().await.unwrap();
    user(&ts.store).await;
    token(&ts.store, "before").await.unwrap();
    ts.store.close().await;
    let path = ts.sqlite_path().unwrap().to_path_buf();
    let Some(ro) = ReadOnlyFile::make(&path).unwrap() else {
        eprintln!("notice: this process cannot make a file read-only; test skipped");
        return;
    };
    let late = ts.reopen().await.unwrap();
    // Its connections open read-only (the first store's are all closed: `close` waits for
    // them, so none of their read-write descriptors is kept for these), so its writes fail.
    assert!(
        audit(&late, "during").await.is_err(),
        "a transaction on the late store fails during the spell"
    );
    assert!(
        token(&late, "during-late").await.is_err(),
        "a single-statement write on the late store fails during the spell"
    );
    busy_reads(&late).await;
    ro.restore();
    writes_work(&late, "late-after").await;
    late.close().await;
    ts.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writes_work_again_once_the_database_is_writable_again() {
    let Ok(url) = std::env::var(POSTGRES_URL_ENV) else {
        return;
    };
    use sqlx::Connection;
    let name = format!(
        "argent_ro_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    let store = Store::open(&format!("{base}/{name}")).await.unwrap();
    user(&store).await;
    token(&store, "before").await.unwrap();
    // Read-only from now on for new sessions; the store's sessions are cut, so the pool
    // opens new (read-only) ones.
    sqlx::raw_sql(&format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = on; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let mut failed = 0;
    for round in 0..4 {
        // (The first use of a cut session may fail too; reads are retried.)
        let _ = store.users().await;
        busy_reads(&store).await;
        if token(&store, &format!("during-{round}")).await.is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 4, "writes fail while the database is read-only");
    // Sessions started after the last failed write, by readers.
    sqlx::raw_sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let _ = store.users().await;
    busy_reads(&store).await;
    sqlx::raw_sql(&format!(
        "ALTER DATABASE {name} RESET default_transaction_read_only"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    writes_work(&store, "after").await;
    store.close().await;
    sqlx::raw_sql(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}
