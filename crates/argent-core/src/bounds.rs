//! The dates, instants and day counts argent accepts from outside: API and page query
//! parameters (`as_of`, `since`, `until`, `period_days`, `dso_days`) and command-line
//! options (`--as-of`, `--now`, `--since`, `--dso-days`, …).
//!
//! chrono represents years from -262143 to 262142, and date arithmetic at those ends
//! panics (`as_of - 90 days` below the first representable day). Nothing in a collections
//! ledger is that far away, so the edges refuse anything outside [`MIN_DATE`]..=[`MAX_DATE`]
//! (instants: their UTC date in that range) and any period longer than
//! [`MAX_PERIOD_DAYS`], with an error naming the parameter, the value and the allowed range.
//! Inside these bounds every date arithmetic argent does (periods, grace days, aging
//! buckets) stays far from chrono's limits. The CSV import checks its dates against the
//! same range.
//!
//! **Amounts** (the CSV import): one invoice or payment at most [`MAX_AMOUNT_MINOR`] minor
//! units (10^13: 100 billion in a two-decimal currency), and one customer's invoices in one
//! currency at most [`MAX_CUSTOMER_TOTAL_MINOR`] (10^15) in total. Sums over a customer then
//! stay below 2^63 even across every ISO 4217 currency (code adding minor units still uses
//! checked or widened arithmetic: a portfolio's totals can exceed any per-customer bound).

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};

use crate::money::Money;

/// The first calendar date argent accepts: 1970-01-01.
pub const MIN_DATE: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("1970-01-01 is a date"),
};

/// The last calendar date argent accepts: 2199-12-31.
pub const MAX_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2199, 12, 31) {
    Some(d) => d,
    None => panic!("2199-12-31 is a date"),
};

/// The longest period (DSO, CEI, the dashboard's window) in days: ten years.
pub const MAX_PERIOD_DAYS: u32 = 3660;

/// The largest amount of one invoice or payment, in minor units (10^13).
pub const MAX_AMOUNT_MINOR: i64 = 10_000_000_000_000;

/// The largest total of one customer's invoices in one currency, in minor units (10^15).
pub const MAX_CUSTOMER_TOTAL_MINOR: i64 = 1_000_000_000_000_000;

/// A value outside the range argent accepts for the parameter it was given as.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {value} is outside the allowed range {allowed}")]
pub struct OutOfRange {
    /// The parameter, as the caller named it (`as_of`, `--now`, …).
    pub name: String,
    pub value: String,
    pub allowed: String,
}

impl OutOfRange {
    fn new(name: &str, value: impl fmt::Display, allowed: String) -> OutOfRange {
        OutOfRange {
            name: name.to_string(),
            value: value.to_string(),
            allowed,
        }
    }
}

fn date_range() -> String {
    format!("{MIN_DATE}..={MAX_DATE}")
}

/// `d` if it lies within [`MIN_DATE`]..=[`MAX_DATE`]; else an error naming `name`.
pub fn check_date(name: &str, d: NaiveDate) -> Result<NaiveDate, OutOfRange> {
    if (MIN_DATE..=MAX_DATE).contains(&d) {
        Ok(d)
    } else {
        Err(OutOfRange::new(name, d, date_range()))
    }
}

/// `t` if its UTC date lies within [`MIN_DATE`]..=[`MAX_DATE`]; else an error naming `name`.
pub fn check_instant(name: &str, t: DateTime<Utc>) -> Result<DateTime<Utc>, OutOfRange> {
    if (MIN_DATE..=MAX_DATE).contains(&t.date_naive()) {
        Ok(t)
    } else {
        Err(OutOfRange::new(
            name,
            t.to_rfc3339(),
            format!("{} (UTC)", date_range()),
        ))
    }
}

/// `m` if its absolute value is at most [`MAX_AMOUNT_MINOR`]; else an error naming `name`.
pub fn check_amount(name: &str, m: Money) -> Result<Money, OutOfRange> {
    if m.minor.unsigned_abs() <= MAX_AMOUNT_MINOR.unsigned_abs() {
        Ok(m)
    } else {
        Err(OutOfRange::new(
            name,
            m,
            format!("at most {}", Money::new(MAX_AMOUNT_MINOR, m.currency)),
        ))
    }
}

/// `days` if it is a period argent measures over: 1..=[`MAX_PERIOD_DAYS`].
pub fn check_period_days(name: &str, days: i64) -> Result<u32, OutOfRange> {
    match u32::try_from(days) {
        Ok(d) if (1..=MAX_PERIOD_DAYS).contains(&d) => Ok(d),
        _ => Err(OutOfRange::new(
            name,
            days,
            format!("1..={MAX_PERIOD_DAYS}"),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn dates_inside_the_range_pass_and_outside_it_are_named() {
        assert_eq!(check_date("as_of", d("1970-01-01")), Ok(d("1970-01-01")));
        assert_eq!(check_date("as_of", d("2199-12-31")), Ok(d("2199-12-31")));
        let e = check_date("as_of", d("1969-12-31")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "as_of: 1969-12-31 is outside the allowed range 1970-01-01..=2199-12-31"
        );
        let e = check_date("--as-of", NaiveDate::MIN).unwrap_err();
        assert_eq!(e.name, "--as-of");
        assert!(e.to_string().contains("-262143-01-01"), "{e}");
        assert!(check_date("as_of", d("2200-01-01")).is_err());
        assert!(check_date("as_of", NaiveDate::MAX).is_err());
    }

    #[test]
    fn instants_are_judged_by_their_utc_date() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert!(check_instant("since", t("1970-01-01T00:00:00Z")).is_ok());
        assert!(check_instant("since", t("2199-12-31T23:59:59Z")).is_ok());
        let e = check_instant("until", t("2200-01-01T00:00:00Z")).unwrap_err();
        assert_eq!(e.name, "until");
        assert!(
            e.to_string().contains("1970-01-01..=2199-12-31 (UTC)"),
            "{e}"
        );
        assert!(check_instant("since", t("1969-12-31T23:59:59Z")).is_err());
        assert!(check_instant("now", DateTime::<Utc>::MIN_UTC).is_err());
        assert!(check_instant("now", DateTime::<Utc>::MAX_UTC).is_err());
    }

    #[test]
    fn amounts_are_checked_against_the_bound() {
        use crate::money::Currency;
        let ok = Money::new(MAX_AMOUNT_MINOR, Currency::USD);
        assert_eq!(check_amount("amount", ok), Ok(ok));
        let err = check_amount("amount", Money::new(MAX_AMOUNT_MINOR + 1, Currency::USD))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "amount: USD 100000000000.01 is outside the allowed range at most USD 100000000000.00"
        );
        assert!(check_amount("amount", Money::new(i64::MIN, Currency::USD)).is_err());
    }

    #[test]
    fn periods_are_one_day_to_ten_years() {
        assert_eq!(check_period_days("period_days", 1), Ok(1));
        assert_eq!(check_period_days("period_days", 3660), Ok(3660));
        assert!(check_period_days("period_days", 0).is_err());
        assert!(check_period_days("period_days", -90).is_err());
        let e = check_period_days("dso_days", i64::from(u32::MAX)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "dso_days: 4294967295 is outside the allowed range 1..=3660"
        );
    }

    /// What the bounds are for: the date arithmetic of a report at either end of the
    /// range, over the longest period, stays inside what chrono represents.
    #[test]
    fn a_report_at_either_end_over_the_longest_period_does_not_overflow() {
        for as_of in [MIN_DATE, MAX_DATE] {
            let start = crate::ledger::period_start(as_of, MAX_PERIOD_DAYS);
            assert!(start < as_of);
            let report = crate::ledger::aging_report(&[], &[], as_of, MAX_PERIOD_DAYS).unwrap();
            assert_eq!(report.as_of, as_of);
        }
    }
}
