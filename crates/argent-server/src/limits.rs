//! Bounds on the work one request can make the server do, so that nothing a user sends
//! stalls the others.
//!
//! - [`CpuSlots`]: CPU-heavy work (document validation and activation, audit exports, eval
//!   runs) runs on tokio's blocking threads, never on the async executor that serves every
//!   other request, and at most `cpu_slots` pieces of it at once (default: one fewer than the
//!   machine's cores, at least one), so a core is left for interactive requests. Work past
//!   that waits its turn (first come, first served) without holding an executor thread.
//! - [`EvalSlots`]: eval runs started from the web or the API, at most one running per user
//!   and two in all (configurable); the next is refused with 429 before anything is stored.
//! - Request bodies: at most [`MAX_REQUEST_BYTES`], refused with 413 as they stream in
//!   (`DefaultBodyLimit` on the router; the form extractor has its own, smaller limit).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{AppError, AppResult};

/// The largest request body read, in bytes: 512 KiB, room for a document at the size cap
/// (64 KiB) however JSON or a form encodes it (at most six bytes per byte, `\u0000`).
pub const MAX_REQUEST_BYTES: usize = 512 * 1024;

/// The default number of CPU slots: the machine's cores less one, at least one.
pub fn default_cpu_slots() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .max(1)
}

/// Slots for CPU-heavy work; see the module documentation.
#[derive(Clone, Debug)]
pub struct CpuSlots {
    slots: usize,
    semaphore: Arc<Semaphore>,
}

impl CpuSlots {
    pub fn new(slots: usize) -> CpuSlots {
        let slots = slots.max(1);
        CpuSlots {
            slots,
            semaphore: Arc::new(Semaphore::new(slots)),
        }
    }

    /// How many pieces of heavy work may run at once.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Waits for a slot (without blocking the executor).
    pub async fn slot(&self) -> AppResult<OwnedSemaphorePermit> {
        self.semaphore
            .clone()
            .acquire_owned()
            .await
            .map_err(AppError::internal)
    }

    /// Every slot, held until the permit is dropped: heavy work waits meanwhile
    /// (maintenance, and tests that need work to stay queued).
    pub async fn hold_all(&self) -> AppResult<OwnedSemaphorePermit> {
        let n = u32::try_from(self.slots).unwrap_or(u32::MAX);
        self.semaphore
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(AppError::internal)
    }

    /// Runs `work` on a blocking thread once a slot is free, and gives its result. A panic
    /// in `work` is an internal error, not a crash.
    pub async fn run<T, F>(&self, work: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| AppError::internal(format!("background work failed: {e}")))
    }
}

/// Eval runs going, per user and in all; see the module documentation.
#[derive(Debug)]
pub struct EvalSlots {
    per_user: usize,
    total: usize,
    running: Mutex<HashMap<String, usize>>,
}

/// One eval run's place; it frees when dropped (the run finished, failed or never started).
#[derive(Debug)]
pub struct EvalSlot {
    slots: Arc<EvalSlots>,
    user: String,
}

impl EvalSlots {
    pub fn new(per_user: usize, total: usize) -> Arc<EvalSlots> {
        Arc::new(EvalSlots {
            per_user: per_user.max(1),
            total: total.max(1),
            running: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Nothing panics while holding the lock (it only counts), so a poisoned one still
        // holds whole counts.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a run `user` starts, or 429 saying which limit it meets.
    pub fn start(self: &Arc<Self>, user: &str) -> AppResult<EvalSlot> {
        let mut running = self.lock();
        let mine = running.get(user).copied().unwrap_or(0);
        if mine >= self.per_user {
            return Err(AppError::Busy(format!(
                "you already have {mine} eval run(s) going (at most {} per user): wait for it \
                 to finish, then start another",
                self.per_user
            )));
        }
        let all: usize = running.values().sum();
        if all >= self.total {
            return Err(AppError::Busy(format!(
                "{all} eval runs are going (at most {} at once): try again when one finishes",
                self.total
            )));
        }
        *running.entry(user.to_string()).or_insert(0) += 1;
        Ok(EvalSlot {
            slots: self.clone(),
            user: user.to_string(),
        })
    }

    /// Eval runs going now.
    pub fn running(&self) -> usize {
        self.lock().values().sum()
    }
}

impl Drop for EvalSlot {
    fn drop(&mut self) {
        let mut running = self.slots.lock();
        if let Some(n) = running.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn eval_slots_count_per_user_and_in_all_and_free_on_drop() {
        let slots = EvalSlots::new(1, 2);
        let a = slots.start("eve").unwrap();
        assert!(matches!(slots.start("eve"), Err(AppError::Busy(_))));
        let b = slots.start("mo").unwrap();
        assert!(matches!(slots.start("root"), Err(AppError::Busy(m)) if m.contains("at once")));
        assert_eq!(slots.running(), 2);
        drop(a);
        let c = slots.start("eve").unwrap();
        drop((b, c));
        assert_eq!(slots.running(), 0);
    }

    #[tokio::test]
    async fn heavy_work_runs_on_a_blocking_thread_and_waits_for_a_slot() {
        let cpu = CpuSlots::new(1);
        let executor = std::thread::current().id();
        let ran_on = cpu.run(|| std::thread::current().id()).await.unwrap();
        assert_ne!(ran_on, executor);
        // A panic is an error, not a crash.
        let panicked = cpu.run(|| -> u8 { panic!("boom") }).await;
        assert!(matches!(panicked, Err(AppError::Internal(_))));
        // While every slot is held, work waits; released, it runs.
        let hold = cpu.hold_all().await.unwrap();
        let queued = tokio::spawn({
            let cpu = cpu.clone();
            async move { cpu.run(|| 7).await.unwrap() }
        });
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(!queued.is_finished());
        drop(hold);
        assert_eq!(queued.await.unwrap(), 7);
    }
}
