//! `Store::close` on a SQLite file closes every connection it opened before it returns.
//!
//! sqlx's `Pool::close` waits for the pool's permits, but each idle connection it closes
//! releases a permit it never took, so it stopped waiting while connections were still
//! being returned (sqlx returns a released connection on a task of its own): those closed
//! later, or stayed idle with the pool. A descriptor left open matters: SQLite's unix VFS
//! hands a kept read-write descriptor to the next connection of the process that opens the
//! file, so a store opened while the file is read-only could still write (see `readonly.rs`).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
#![cfg(target_os = "linux")]

use argent_store::testkit::TestStore;
use std::path::Path;

/// How many of this process's descriptors are open on `path` (the main file; its -wal and
/// -shm files are counted by their own names and not here).
fn descriptors_on(path: &Path) -> usize {
    let want = std::fs::canonicalize(path).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| *target == want)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_sqlite_store_closes_every_connection_even_with_returns_in_flight() {
    // The race is widest when the machine is busy (as in CI): two threads spin meanwhile.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hogs: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let ts = TestStore::sqlite().await.unwrap();
    let path = ts.sqlite_path().unwrap().to_path_buf();
    ts.store.close().await;
    // (Its store lives on in `ts`: what it left open would be counted in every round.)
    assert_eq!(
        descriptors_on(&path),
        0,
        "Store::close returned with descriptors of the file open (the test store's)"
    );
    let mut left_open = Vec::new();
    for round in 0..40 {
        let store = ts.reopen().await.unwrap();
        // Many reads at once, so the pool opens several connections, and `close` comes
        // while sqlx is still putting some of them back.
        let mut reads = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let s = store.clone();
            reads.spawn(async move { s.users().await.map(|u| u.len()) });
        }
        while let Some(r) = reads.join_next().await {
            r.unwrap().unwrap();
        }
        store.close().await;
        let open = descriptors_on(&path);
        if open > 0 {
            left_open.push((round, open));
        }
        drop(store);
        wait_closed(&path, round).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in hogs {
        h.join().unwrap();
    }
    assert!(
        left_open.is_empty(),
        "Store::close returned with descriptors of the file open (round, count): {left_open:?}"
    );
    ts.cleanup().await;
}

/// What a round left open must not be counted against the next: waits until dropping the
/// store has closed it (sqlx closes a dropped pool's idle connections on their own threads).
async fn wait_closed(path: &Path, round: usize) {
    for _ in 0..200 {
        if descriptors_on(path) == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("round {round}: dropping the store did not close its descriptors of the file");
}
