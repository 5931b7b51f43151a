//! The dashboard's daily snapshots: the figures of [`argent_core::analytics::dashboard`]
//! as of a date, computed from the stored ledger and promises and kept once per date
//! ([`Store::save_dashboard_snapshot`]). Taken by the scheduler's tick (the last complete
//! UTC day), by `argent snapshot` (one date or a range, to backfill) and by each simulated
//! day of `argent demo`. A date that already has a snapshot is not computed again.

use argent_core::analytics::{DEFAULT_PERIOD_DAYS, DashboardInput, PROMISE_GRACE_DAYS, dashboard};
use argent_store::{SnapshotTaken, Store};
use chrono::{DateTime, Days, NaiveDate, Utc};

use crate::AgentError;

/// The most dates one call backfills (about ten years).
pub const MAX_BACKFILL_DAYS: u64 = 3660;

/// The date the scheduler snapshots at `now`: the last complete day in UTC (yesterday), so
/// a day's snapshot includes every payment booked that day.
pub fn scheduled_date(now: DateTime<Utc>) -> NaiveDate {
    let today = now.date_naive();
    today.checked_sub_days(Days::new(1)).unwrap_or(today)
}

/// Takes the snapshot of `as_of` (unless it has one), as `actor`.
pub async fn take(
    store: &Store,
    as_of: NaiveDate,
    actor: &str,
) -> Result<SnapshotTaken, AgentError> {
    Ok(take_range(store, as_of, as_of, actor).await?.remove(0).1)
}

/// Takes the snapshot of every date of `from..=to` that has none, oldest first, reading
/// the ledger once. An error for an empty or too long range, naming the dates.
pub async fn take_range(
    store: &Store,
    from: NaiveDate,
    to: NaiveDate,
    actor: &str,
) -> Result<Vec<(NaiveDate, SnapshotTaken)>, AgentError> {
    if from > to {
        return Err(AgentError::Io(format!(
            "snapshot range: --from {from} is after --as-of {to}"
        )));
    }
    let span = u64::try_from((to - from).num_days()).unwrap_or(u64::MAX);
    if span >= MAX_BACKFILL_DAYS {
        return Err(AgentError::Io(format!(
            "snapshot range {from}..{to}: at most {MAX_BACKFILL_DAYS} days at once"
        )));
    }
    let mut todo = Vec::new();
    let mut out = Vec::new();
    let mut d = from;
    loop {
        if store.snapshot_taken(d).await? {
            out.push((d, SnapshotTaken::AlreadyTaken));
        } else {
            todo.push(d);
        }
        if d >= to {
            break;
        }
        d = d
            .checked_add_days(Days::new(1))
            .ok_or_else(|| AgentError::Io(format!("snapshot range: no day after {d}")))?;
    }
    if !todo.is_empty() {
        let ledger = store.ledger().await?;
        let promises = store.promises(None).await?;
        for as_of in todo {
            let dash = dashboard(&DashboardInput {
                customers: &ledger.customers,
                invoices: &ledger.invoices,
                payments: &ledger.payments,
                promises: &promises,
                as_of,
                period_days: DEFAULT_PERIOD_DAYS,
                promise_grace_days: PROMISE_GRACE_DAYS,
            })?;
            out.push((as_of, store.save_dashboard_snapshot(&dash, actor).await?));
        }
    }
    out.sort_by_key(|(d, _)| *d);
    Ok(out)
}
