//! The worker loop: claim due items up to the concurrency, run each with its heartbeat,
//! settle its end (done, retried, failed, lost), poll with backoff when idle, and on
//! shutdown stop claiming, give running items a grace period and release the rest.
//!
//! Invariants:
//! - At most `concurrency` items are held at once, each by one task.
//! - Every running item's lease is renewed every `heartbeat`; when a renewal finds the
//!   lease gone (it expired and another worker took the item over), the item's work is
//!   dropped at once and nothing more is written for it by this worker.
//! - An item ends only through the lease holder: done (by its executor, in the transaction
//!   of its side effect), back in the queue (retry, release) or failed with a `work.failed`
//!   audit event in the same transaction.
//! - On shutdown nothing new is claimed; items still running after the grace period are
//!   cancelled and released (their agent run, if any, is linked to the item and resumed by
//!   whoever claims it next).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use argent_store::{NewAuditEvent, Store, WorkItem, WorkStatus};

use crate::lease::{AfterFailure, LeaseConfig};
use crate::{ExecError, Execute, Lease};

/// When the worker is full and a slot frees up, it waits at most this long for more
/// slots (up to [`CLAIM_BATCH`]) before claiming, so one claim fills several.
const CLAIM_GATHER: Duration = Duration::from_millis(20);
const CLAIM_BATCH: usize = 8;

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Who holds the leases (unique per worker process: host, pid and a random part).
    pub owner: String,
    /// Items run at once.
    pub concurrency: usize,
    pub lease: LeaseConfig,
    /// How long running items may take to finish after a shutdown signal before they are
    /// cancelled and released.
    pub grace: Duration,
    /// Work item kinds to claim (`None`: all).
    pub kinds: Option<Vec<String>>,
    /// What is due is judged at this instant instead of the wall clock (`--now`); leases
    /// always run on the wall clock.
    pub due_at: Option<DateTime<Utc>>,
    /// Stop when nothing is due and nothing is running, instead of polling.
    pub once: bool,
    /// Check for credit holds whose balance was paid this often (`None`: never).
    pub sweep_every: Option<Duration>,
}

impl WorkerConfig {
    pub fn new(owner: impl Into<String>) -> WorkerConfig {
        WorkerConfig {
            owner: owner.into(),
            concurrency: 4,
            lease: LeaseConfig::default(),
            grace: Duration::from_secs(30),
            kinds: None,
            due_at: None,
            once: false,
            sweep_every: Some(Duration::from_secs(60)),
        }
    }

    /// Problems with the configuration, naming the setting.
    pub fn check(&self) -> Result<(), String> {
        if self.concurrency == 0 || self.concurrency > 1000 {
            return Err(format!("concurrency: {} (1 to 1000)", self.concurrency));
        }
        if self.owner.trim().is_empty() {
            return Err("owner: empty".into());
        }
        self.lease.check()
    }
}

/// A lease owner unique to this process: `worker-<host>-<pid>-<random>`.
pub fn default_owner() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("worker-{host}-{}-{nanos:08x}", std::process::id())
}

/// What a worker did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WorkerReport {
    /// Items finished by their executor.
    pub done: u64,
    /// Attempts that failed and were put back for a retry.
    pub retried: u64,
    /// Items given up as failed.
    pub failed: u64,
    /// Items whose lease was lost while they ran (another worker has them).
    pub lost: u64,
    /// Items given back at shutdown.
    pub released: u64,
}

enum End {
    Done,
    Retried,
    Failed,
    Lost,
}

/// The worker: a store, an executor and a configuration.
pub struct Worker {
    store: Store,
    exec: Arc<dyn Execute>,
    config: WorkerConfig,
}

impl Worker {
    pub fn new(
        store: Store,
        exec: Arc<dyn Execute>,
        config: WorkerConfig,
    ) -> Result<Worker, String> {
        config.check()?;
        Ok(Worker {
            store,
            exec,
            config,
        })
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Runs until `shutdown` turns true (or, with `once`, until nothing is due and nothing
    /// runs), then stops as the module docs say.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> WorkerReport {
        let mut report = WorkerReport::default();
        let held: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut set: JoinSet<End> = JoinSet::new();
        let mut idle: u32 = 0;
        let mut last_sweep: Option<std::time::Instant> = None;
        let kinds: Option<Vec<&str>> = self
            .config
            .kinds
            .as_ref()
            .map(|k| k.iter().map(String::as_str).collect());
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.sweep(&mut last_sweep).await;
            let free = self.config.concurrency.saturating_sub(set.len());
            let mut claimed = 0;
            if free > 0 {
                let now = Utc::now();
                let due_by = self.config.due_at.unwrap_or(now);
                match self
                    .store
                    .claim_due_work(
                        &self.config.owner,
                        now,
                        due_by,
                        self.config.lease.lease_end(now),
                        i64::try_from(free).unwrap_or(i64::MAX),
                        kinds.as_deref(),
                    )
                    .await
                {
                    Ok(items) => {
                        claimed = items.len();
                        for item in items {
                            lock(&held).insert(item.id.clone());
                            let me = self.clone();
                            let held = held.clone();
                            set.spawn(async move {
                                let id = item.id.clone();
                                let end = me.run_item(item).await;
                                lock(&held).remove(&id);
                                end
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming work failed; polling again"),
                }
            }
            if claimed > 0 {
                idle = 0;
                if claimed == free {
                    // Full: wait for a slot (or shutdown).
                    tokio::select! {
                        Some(r) = set.join_next() => tally(&mut report, r),
                        () = stopped(&mut shutdown) => {}
                    }
                    // Gather the slots that free up within a moment, so one claim
                    // transaction fills several (claims are write transactions).
                    let gather = tokio::time::sleep(CLAIM_GATHER);
                    tokio::pin!(gather);
                    while set.len() + CLAIM_BATCH.min(self.config.concurrency)
                        > self.config.concurrency
                    {
                        tokio::select! {
                            Some(r) = set.join_next() => tally(&mut report, r),
                            () = &mut gather => break,
                        }
                    }
                }
                continue;
            }
            if self.config.once && set.is_empty() {
                break;
            }
            let wait = self.config.lease.idle_delay(idle);
            idle = idle.saturating_add(1);
            tokio::select! {
                Some(r) = set.join_next(), if !set.is_empty() => { idle = 0; tally(&mut report, r) }
                _ = tokio::time::sleep(wait) => {}
                () = stopped(&mut shutdown) => {}
            }
        }
        // Shutdown: what runs may finish within the grace period.
        let grace = tokio::time::sleep(self.config.grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                r = set.join_next() => match r {
                    Some(r) => tally(&mut report, r),
                    None => break,
                },
                _ = &mut grace => {
                    set.abort_all();
                    while let Some(r) = set.join_next().await {
                        tally(&mut report, r);
                    }
                    break;
                }
            }
        }
        let left: Vec<String> = lock(&held).drain().collect();
        for id in left {
            match self
                .store
                .release_work(&id, &self.config.owner, Utc::now())
                .await
            {
                Ok(true) => report.released += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(work = %id, error = %e, "releasing work failed; its lease will expire")
                }
            }
        }
        report
    }

    async fn sweep(&self, last: &mut Option<std::time::Instant>) {
        let Some(every) = self.config.sweep_every else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        *last = Some(std::time::Instant::now());
        let now = self.config.due_at.unwrap_or_else(Utc::now);
        match self.store.clear_settled_credit_holds("worker", now).await {
            Ok(cleared) if !cleared.is_empty() => {
                tracing::info!(customers = ?cleared, "credit holds cleared: balance paid")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "clearing paid credit holds failed"),
        }
    }

    /// Runs one claimed item with its heartbeat and settles how it ended.
    async fn run_item(&self, item: WorkItem) -> End {
        let owner = self.config.owner.clone();
        let lease = Lease {
            owner: owner.clone(),
            until: self.config.lease.lease_end(Utc::now()),
        };
        let work = self.exec.execute(&item, &lease);
        let beat = self.heartbeat(&item.id, item.lease_until.unwrap_or(lease.until));
        let result = tokio::select! {
            r = work => r,
            () = beat => Err(ExecError::LeaseLost),
        };
        match result {
            Ok(_) => End::Done,
            Err(ExecError::LeaseLost) => {
                tracing::warn!(work = %item.id, "lease lost: another worker has the item; stopped");
                End::Lost
            }
            Err(ExecError::Failed { message, retryable }) => {
                let now = Utc::now();
                match self.config.lease.after_failure(item.attempts, retryable) {
                    AfterFailure::Retry(delay) => {
                        let due = now
                            + chrono::Duration::from_std(delay)
                                .unwrap_or(chrono::Duration::minutes(30));
                        let due = due.max(self.config.due_at.unwrap_or(due));
                        match self
                            .store
                            .retry_work(&item.id, &owner, due, &message, now)
                            .await
                        {
                            Ok(true) => End::Retried,
                            Ok(false) => End::Lost,
                            Err(e) => {
                                tracing::warn!(work = %item.id, error = %e, "could not requeue; the lease will expire");
                                End::Retried
                            }
                        }
                    }
                    AfterFailure::Fail => match self.fail(&item, &message, now).await {
                        Ok(()) => End::Failed,
                        Err(argent_store::StoreError::Conflict(_)) => End::Lost,
                        Err(e) => {
                            tracing::warn!(work = %item.id, error = %e, "could not mark failed; the lease will expire");
                            End::Failed
                        }
                    },
                }
            }
        }
    }

    /// Ends the item as failed with its `work.failed` event, in one transaction.
    async fn fail(
        &self,
        item: &WorkItem,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<(), argent_store::StoreError> {
        tracing::warn!(work = %item.id, attempts = item.attempts, error = %message, "work failed");
        let mut tx = self.store.begin().await?;
        tx.finish_work(
            &item.id,
            &self.config.owner,
            WorkStatus::Failed,
            None,
            Some(message),
            now,
        )
        .await?;
        tx.audit_append(NewAuditEvent {
            run_id: item.run_id.clone(),
            customer_id: Some(item.customer_id.clone()),
            actor: self.config.owner.clone(),
            kind: "work.failed".into(),
            payload: json!({"work_id": item.id, "kind": item.kind, "attempts": item.attempts, "error": message, "payload": item.payload}),
        })
        .await?;
        tx.commit().await
    }

    /// Renews the lease every heartbeat; returns when it is lost: another worker holds
    /// it, or renewals kept failing until the lease ran out (another worker may then take
    /// the item over, so this one must not go on).
    async fn heartbeat(&self, id: &str, mut held_until: DateTime<Utc>) {
        loop {
            tokio::time::sleep(self.config.lease.heartbeat).await;
            let now = Utc::now();
            let until = self.config.lease.lease_end(now);
            match self
                .store
                .heartbeat_work(id, &self.config.owner, until, now)
                .await
            {
                Ok(true) => held_until = until,
                Ok(false) => return,
                // A failed renewal is not a lost lease yet: try again next beat (the
                // lease has two beats of slack) …
                Err(e) => {
                    tracing::warn!(work = %id, error = %e, "heartbeat failed");
                    // … unless the lease has run out meanwhile.
                    if Utc::now() >= held_until {
                        return;
                    }
                }
            }
        }
    }
}

/// Returns when the shutdown flag changes; never, once its sender is gone.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn tally(report: &mut WorkerReport, r: Result<End, tokio::task::JoinError>) {
    match r {
        Ok(End::Done) => report.done += 1,
        Ok(End::Retried) => report.retried += 1,
        Ok(End::Failed) => report.failed += 1,
        Ok(End::Lost) => report.lost += 1,
        // Cancelled at shutdown (released after) or panicked (its lease expires and the
        // item is retried by whoever claims it).
        Err(e) if e.is_cancelled() => {}
        Err(e) => tracing::error!(error = %e, "a work task panicked"),
    }
}

/// A shutdown flag that turns true on SIGTERM or SIGINT (Ctrl-C). Call inside a Tokio
/// runtime.
pub fn shutdown_on_signals() -> std::io::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!(
            "argent worker: shutting down (no new work; running items finish or are released)"
        );
        let _ = tx.send(true);
    });
    Ok(rx)
}
