//! The sane ranges argent accepts at its edges (CSV import, API, CLI), so that nothing
//! further in can meet a date at chrono's limits or an amount whose sums overflow.
//!
//! - **Dates**: [`MIN_DATE`]..=[`MAX_DATE`], 1970-01-01 through 2199-12-31. A receivables
//!   ledger has no business before the Unix epoch, and 2199 leaves room for long plans
//!   while keeping every `date ± days` a collections figure needs far from chrono's range
//!   (±262,143 years).
//! - **Amounts**: one invoice or payment at most [`MAX_AMOUNT_MINOR`] minor units (10^13:
//!   100 billion in a two-decimal currency), and one customer's invoices in one currency at
//!   most [`MAX_CUSTOMER_TOTAL_MINOR`] (10^15) in total. Sums over a customer then stay
//!   below 2^63 even across every ISO 4217 currency, and a ratio such as `discount ×
//!   10,000 ÷ balance` of one customer's figures fits in `i128` trivially (code multiplying
//!   minor units still uses checked or widened arithmetic: a portfolio's totals can exceed
//!   any per-customer bound).

use chrono::NaiveDate;
use thiserror::Error;

use crate::money::Money;

/// The first date argent accepts.
pub const MIN_DATE: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

/// The last date argent accepts.
pub const MAX_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2199, 12, 31) {
    Some(d) => d,
    None => NaiveDate::MAX,
};

/// The largest amount of one invoice or payment, in minor units (10^13).
pub const MAX_AMOUNT_MINOR: i64 = 10_000_000_000_000;

/// The largest total of one customer's invoices in one currency, in minor units (10^15).
pub const MAX_CUSTOMER_TOTAL_MINOR: i64 = 1_000_000_000_000_000;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum BoundsError {
    #[error("{field}: {value} is outside the dates argent accepts ({MIN_DATE} to {MAX_DATE})")]
    Date { field: String, value: NaiveDate },
    #[error(
        "{field}: {value} is more than the largest amount argent accepts ({})",
        Money::new(MAX_AMOUNT_MINOR, value.currency)
    )]
    Amount { field: String, value: Money },
}

/// `d` if it is within [`MIN_DATE`]..=[`MAX_DATE`]; else an error naming `field`.
pub fn check_date(field: &str, d: NaiveDate) -> Result<NaiveDate, BoundsError> {
    if (MIN_DATE..=MAX_DATE).contains(&d) {
        Ok(d)
    } else {
        Err(BoundsError::Date {
            field: field.to_string(),
            value: d,
        })
    }
}

/// `m` if its absolute value is at most [`MAX_AMOUNT_MINOR`]; else an error naming `field`.
pub fn check_amount(field: &str, m: Money) -> Result<Money, BoundsError> {
    if m.minor.unsigned_abs() <= MAX_AMOUNT_MINOR.unsigned_abs() {
        Ok(m)
    } else {
        Err(BoundsError::Amount {
            field: field.to_string(),
            value: m,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    #[test]
    fn dates_are_checked_against_the_range_inclusive() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(MIN_DATE, d("1970-01-01"));
        assert_eq!(MAX_DATE, d("2199-12-31"));
        assert_eq!(check_date("due_date", MIN_DATE), Ok(MIN_DATE));
        assert_eq!(check_date("due_date", MAX_DATE), Ok(MAX_DATE));
        for bad in [
            d("1969-12-31"),
            d("2200-01-01"),
            NaiveDate::MIN,
            NaiveDate::MAX,
        ] {
            let err = check_date("as_of", bad).unwrap_err().to_string();
            assert!(err.starts_with("as_of: "), "{err}");
            assert!(err.contains("1970-01-01 to 2199-12-31"), "{err}");
        }
    }

    #[test]
    fn amounts_are_checked_against_the_bound() {
        let ok = Money::new(MAX_AMOUNT_MINOR, Currency::USD);
        assert_eq!(check_amount("amount", ok), Ok(ok));
        let err = check_amount("amount", Money::new(MAX_AMOUNT_MINOR + 1, Currency::USD))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "amount: USD 100000000000.01 is more than the largest amount argent accepts \
             (USD 100000000000.00)"
        );
        assert!(check_amount("amount", Money::new(i64::MIN, Currency::USD)).is_err());
    }
}
