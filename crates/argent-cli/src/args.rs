//! Parsers of command-line values that clap does not bound by itself: dates, instants
//! and periods must lie in the ranges of [`argent_core::bounds`], so `--as-of
//! -262143-01-01` is a usage error naming the option, not a panic in date arithmetic.

use argent_core::bounds::{self, OutOfRange};
use chrono::{DateTime, NaiveDate, Utc};

/// clap names the option and the value; the message says what is allowed.
fn message(e: OutOfRange) -> String {
    format!("outside the allowed range {}", e.allowed)
}

/// A calendar date, `YYYY-MM-DD`, within [`bounds::MIN_DATE`]..=[`bounds::MAX_DATE`].
pub fn date(s: &str) -> Result<NaiveDate, String> {
    let d: NaiveDate = s
        .parse()
        .map_err(|e| format!("not a date (YYYY-MM-DD): {e}"))?;
    bounds::check_date("date", d).map_err(message)
}

/// An RFC 3339 instant whose UTC date is within the dates argent accepts.
pub fn instant(s: &str) -> Result<DateTime<Utc>, String> {
    let t: DateTime<Utc> = s
        .parse()
        .map_err(|e| format!("not an RFC 3339 instant: {e}"))?;
    bounds::check_instant("instant", t).map_err(message)
}

/// A period in days, 1..=[`bounds::MAX_PERIOD_DAYS`].
pub fn period_days(s: &str) -> Result<u32, String> {
    let n: i64 = s
        .parse()
        .map_err(|_| format!("not a number of days (1..={})", bounds::MAX_PERIOD_DAYS))?;
    bounds::check_period_days("days", n).map_err(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_the_bounds_say_what_is_allowed() {
        assert!(date("2026-11-20").is_ok());
        assert_eq!(
            date("-262143-01-01").unwrap_err(),
            "outside the allowed range 1970-01-01..=2199-12-31"
        );
        assert!(date("2026-13-01").unwrap_err().starts_with("not a date"));
        assert!(instant("2199-12-31T23:59:59Z").is_ok());
        assert!(
            instant("2200-01-01T00:00:00Z")
                .unwrap_err()
                .contains("2199-12-31")
        );
        assert_eq!(period_days("90"), Ok(90));
        assert!(period_days("0").unwrap_err().contains("1..=3660"));
        assert!(
            period_days("99999999999999999999")
                .unwrap_err()
                .contains("1..=3660")
        );
    }
}
