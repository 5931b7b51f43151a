//! The seam for the scheduler `argent serve --desk` runs in-process: something that, given
//! the time, enqueues every procedure step due (`argent tick`). Ticks are idempotent (work
//! items are unique per account, procedure version, step and cycle), so a missed or doubled
//! tick changes nothing but timing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// One scheduler pass.
#[async_trait]
pub trait Scheduler: Send + Sync {
    /// Enqueues what is due at `now`; returns a line for the log.
    async fn tick(&self, now: DateTime<Utc>) -> Result<String, String>;
}

/// Ticks `scheduler` now and then every `every` until `shutdown` turns true. With `now`
/// (a fixed `--now`) every tick is at that instant.
pub async fn run_scheduler(
    scheduler: Arc<dyn Scheduler>,
    every: Duration,
    now: Option<DateTime<Utc>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match scheduler.tick(now.unwrap_or_else(Utc::now)).await {
            Ok(line) => tracing::info!("tick: {line}"),
            Err(e) => tracing::warn!("tick failed: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            r = shutdown.changed() => if r.is_err() { return },
        }
    }
}

/// The procedures' scheduler: `argent tick` as a [`Scheduler`]. Every tick reads the active
/// procedure documents again, so a version a manager activates takes effect at the next
/// tick. It also takes the dashboard's snapshot of the last complete UTC day if that day
/// has none yet ([`argent_agent::snapshot`]).
pub struct ProcedureTick {
    pub store: argent_store::Store,
    /// Customers per page.
    pub batch: i64,
}

#[async_trait]
impl Scheduler for ProcedureTick {
    async fn tick(&self, now: DateTime<Utc>) -> Result<String, String> {
        let set = argent_agent::tick::active_procedures(&self.store)
            .await
            .map_err(|e| e.to_string())?;
        let r = argent_agent::tick::tick(&self.store, &set, now, self.batch.max(1))
            .await
            .map_err(|e| e.to_string())?;
        // The dashboard's snapshot of the last complete day, once (a failure is logged and
        // does not stop the tick: the next tick tries again).
        let day = argent_agent::snapshot::scheduled_date(now);
        let snapshot = match argent_agent::snapshot::take(
            &self.store,
            day,
            argent_agent::tick::SCHEDULER_ACTOR,
        )
        .await
        {
            Ok(argent_store::SnapshotTaken::Taken { rows }) => {
                format!("; dashboard snapshot of {day} taken ({rows} rows)")
            }
            Ok(argent_store::SnapshotTaken::AlreadyTaken) => String::new(),
            Err(e) => {
                tracing::warn!("dashboard snapshot of {day} failed: {e}");
                format!("; dashboard snapshot of {day} failed")
            }
        };
        Ok(format!(
            "{} accounts: {} steps due, {} enqueued, {} promises broken, {} queued steps cancelled, {} not planned{snapshot}",
            r.customers,
            r.due,
            r.enqueued,
            r.promises_broken,
            r.cancelled,
            r.errors.len()
        ))
    }
}
