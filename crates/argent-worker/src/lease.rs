//! The pure core of the worker: lease arithmetic, retry and idle backoff, and what to do
//! with an item whose attempt failed. No I/O, no clock: every instant is a parameter.
//!
//! Invariants:
//! - A heartbeat comes well inside the lease (`heartbeat * 2 <= lease`), so one late or
//!   failed heartbeat does not lose the lease.
//! - Backoff delays grow by doubling from their base and never pass their ceiling; no
//!   arithmetic here can overflow (shifts are capped, multiplications saturate).
//! - An item is retried only while it has attempts left and its error is retryable; the
//!   last failure ends it as `failed`.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How a worker holds, renews and retries work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How long a claim lasts without a heartbeat (after it, another worker may take the
    /// item over).
    pub lease: Duration,
    /// How often a running item's lease is renewed.
    pub heartbeat: Duration,
    /// Attempts (claims) before an item that keeps failing is given up as `failed`.
    pub max_attempts: i64,
    /// The first retry's delay; each later retry doubles it, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// The first idle poll's delay; each idle poll after doubles it, up to `poll_max`.
    pub poll_min: Duration,
    pub poll_max: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(20),
            max_attempts: 5,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(30 * 60),
            poll_min: Duration::from_millis(200),
            poll_max: Duration::from_secs(5),
        }
    }
}

impl LeaseConfig {
    /// The configuration with the lease set and the heartbeat at a third of it.
    pub fn with_lease(mut self, lease: Duration) -> LeaseConfig {
        self.lease = lease;
        self.heartbeat = lease / 3;
        self
    }

    /// Problems with the configuration, each naming the setting.
    pub fn check(&self) -> Result<(), String> {
        if self.lease < Duration::from_secs(1) {
            return Err(format!(
                "lease: {:?} is too short (at least 1 second)",
                self.lease
            ));
        }
        if self.lease > Duration::from_secs(24 * 3600) {
            return Err(format!("lease: {:?} is longer than a day", self.lease));
        }
        if self.heartbeat.is_zero() || self.heartbeat * 2 > self.lease {
            return Err(format!(
                "heartbeat: {:?} must be more than 0 and at most half the lease ({:?})",
                self.heartbeat, self.lease
            ));
        }
        if self.max_attempts < 1 {
            return Err(format!("max_attempts: {} (at least 1)", self.max_attempts));
        }
        if self.retry_base > self.retry_max || self.poll_min > self.poll_max {
            return Err("a backoff's base is above its ceiling".into());
        }
        if self.poll_min.is_zero() {
            return Err("poll_min: must be more than 0".into());
        }
        Ok(())
    }

    /// When a lease taken or renewed at `now` ends.
    pub fn lease_end(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::hours(24))
    }

    /// The delay before retrying an item whose `attempts`-th attempt failed.
    pub fn retry_delay(&self, attempts: i64) -> Duration {
        doubled(self.retry_base, attempts.saturating_sub(1), self.retry_max)
    }

    /// How long to wait before polling again after `idle` polls in a row found nothing.
    pub fn idle_delay(&self, idle: u32) -> Duration {
        doubled(self.poll_min, i64::from(idle), self.poll_max)
    }

    /// What to do with an item whose attempt number `attempts` failed.
    pub fn after_failure(&self, attempts: i64, retryable: bool) -> AfterFailure {
        if retryable && attempts < self.max_attempts {
            AfterFailure::Retry(self.retry_delay(attempts))
        } else {
            AfterFailure::Fail
        }
    }
}

/// What becomes of an item whose attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Back in the queue, due again after this delay.
    Retry(Duration),
    /// Given up: `failed`, audited.
    Fail,
}

/// `base × 2^n`, at most `max`.
fn doubled(base: Duration, n: i64, max: Duration) -> Duration {
    let n = u32::try_from(n.clamp(0, 32)).unwrap_or(32);
    base.checked_mul(1u32 << n.min(31)).unwrap_or(max).min(max)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_their_ceiling() {
        let c = LeaseConfig::default();
        assert_eq!(c.retry_delay(1), Duration::from_secs(30));
        assert_eq!(c.retry_delay(2), Duration::from_secs(60));
        assert_eq!(c.retry_delay(3), Duration::from_secs(120));
        assert_eq!(c.retry_delay(40), c.retry_max);
        assert_eq!(c.retry_delay(i64::MAX), c.retry_max);
        assert_eq!(c.retry_delay(0), Duration::from_secs(30));
        assert_eq!(c.idle_delay(0), Duration::from_millis(200));
        assert_eq!(c.idle_delay(1), Duration::from_millis(400));
        assert_eq!(c.idle_delay(u32::MAX), c.poll_max);
    }

    #[test]
    fn retries_while_attempts_remain_and_the_error_is_retryable() {
        let c = LeaseConfig {
            max_attempts: 3,
            ..Default::default()
        };
        assert_eq!(
            c.after_failure(1, true),
            AfterFailure::Retry(Duration::from_secs(30))
        );
        assert_eq!(
            c.after_failure(2, true),
            AfterFailure::Retry(Duration::from_secs(60))
        );
        assert_eq!(c.after_failure(3, true), AfterFailure::Fail);
        assert_eq!(c.after_failure(1, false), AfterFailure::Fail);
    }

    #[test]
    fn leases_end_after_the_lease_and_bad_settings_are_named() {
        let c = LeaseConfig::default().with_lease(Duration::from_secs(90));
        assert_eq!(c.heartbeat, Duration::from_secs(30));
        let now: DateTime<Utc> = "2026-03-02T09:00:00Z".parse().unwrap_or_default();
        assert_eq!(
            c.lease_end(now),
            "2026-03-02T09:01:30Z"
                .parse::<DateTime<Utc>>()
                .unwrap_or_default()
        );
        assert!(c.check().is_ok());
        let slow = LeaseConfig {
            heartbeat: Duration::from_secs(50),
            ..c.clone()
        };
        assert!(slow.check().unwrap_err().starts_with("heartbeat"));
        let short = LeaseConfig::default().with_lease(Duration::from_millis(500));
        assert!(short.check().unwrap_err().starts_with("lease"));
        let none = LeaseConfig {
            max_attempts: 0,
            ..Default::default()
        };
        assert!(none.check().unwrap_err().starts_with("max_attempts"));
    }
}
