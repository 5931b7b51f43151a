//! Promises to pay, and judging whether one was kept.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::customer::str_enum;
use crate::invoice::Payment;
use crate::money::Money;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromiseStatus {
    Open,
    Kept,
    Broken,
    Cancelled,
}
str_enum!(PromiseStatus { Open => "open", Kept => "kept", Broken => "broken", Cancelled => "cancelled" });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromiseToPay {
    pub id: String,
    pub customer_id: String,
    /// Invoices the promise covers; empty means the customer's balance in general.
    pub invoice_numbers: Vec<String>,
    pub amount: Money,
    pub promised_date: NaiveDate,
    pub created_at: DateTime<Utc>,
    pub status: PromiseStatus,
}

impl PromiseToPay {
    /// Judges the promise as of `as_of`: kept once payments received from the day it was
    /// made up to `promised_date + grace_days` cover the amount; broken once that window
    /// has passed without them; open until then. A cancelled promise stays cancelled.
    /// Exact whatever the amounts (summed in `i128`); a deadline past the calendar's limits
    /// is held at them.
    pub fn assess(&self, payments: &[Payment], as_of: NaiveDate, grace_days: i64) -> PromiseStatus {
        if self.status == PromiseStatus::Cancelled {
            return PromiseStatus::Cancelled;
        }
        let made_on = self.created_at.date_naive();
        let deadline = Duration::try_days(grace_days)
            .and_then(|g| self.promised_date.checked_add_signed(g))
            .unwrap_or(if grace_days < 0 {
                NaiveDate::MIN
            } else {
                NaiveDate::MAX
            });
        let received: i128 = payments
            .iter()
            .filter(|p| p.customer_id == self.customer_id)
            .filter(|p| p.amount.currency == self.amount.currency)
            .filter(|p| {
                self.invoice_numbers.is_empty() || self.invoice_numbers.contains(&p.invoice_number)
            })
            .filter(|p| p.received_on >= made_on && p.received_on <= deadline.min(as_of))
            .map(|p| i128::from(p.amount.minor))
            .sum();
        if received >= i128::from(self.amount.minor) {
            PromiseStatus::Kept
        } else if as_of > deadline {
            PromiseStatus::Broken
        } else {
            PromiseStatus::Open
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn promise() -> PromiseToPay {
        PromiseToPay {
            id: "P1".into(),
            customer_id: "C1".into(),
            invoice_numbers: vec!["I1".into()],
            amount: Money::new(500_00, Currency::USD),
            promised_date: d("2026-03-10"),
            created_at: "2026-03-01T15:00:00Z".parse().unwrap(),
            status: PromiseStatus::Open,
        }
    }

    fn pay(on: &str, minor: i64, invoice: &str) -> Payment {
        Payment {
            id: on.into(),
            customer_id: "C1".into(),
            invoice_number: invoice.into(),
            amount: Money::new(minor, Currency::USD),
            received_on: d(on),
        }
    }

    #[test]
    fn kept_when_payments_in_window_cover_the_amount() {
        let p = promise();
        let pays = [
            pay("2026-03-05", 200_00, "I1"),
            pay("2026-03-12", 300_00, "I1"),
        ];
        assert_eq!(p.assess(&pays, d("2026-03-11"), 3), PromiseStatus::Open);
        assert_eq!(p.assess(&pays, d("2026-03-12"), 3), PromiseStatus::Kept);
    }

    #[test]
    fn broken_after_grace_without_enough_money() {
        let p = promise();
        let pays = [
            pay("2026-03-05", 200_00, "I1"),
            pay("2026-03-06", 300_00, "OTHER"),
            pay("2026-02-20", 500_00, "I1"),
        ];
        assert_eq!(p.assess(&pays, d("2026-03-13"), 3), PromiseStatus::Open);
        assert_eq!(p.assess(&pays, d("2026-03-14"), 3), PromiseStatus::Broken);
        let mut cancelled = promise();
        cancelled.status = PromiseStatus::Cancelled;
        assert_eq!(
            cancelled.assess(&pays, d("2026-04-01"), 3),
            PromiseStatus::Cancelled
        );
    }

    #[test]
    fn extreme_amounts_and_grace_periods_are_judged_without_panic() {
        let mut p = promise();
        p.amount = Money::new(i64::MAX, Currency::USD);
        let pays = [
            pay("2026-03-05", i64::MAX - 1, "I1"),
            pay("2026-03-06", 1, "I1"),
        ];
        // The two payments add up to the amount exactly (no saturation, no overflow).
        assert_eq!(p.assess(&pays, d("2026-03-11"), 3), PromiseStatus::Kept);
        assert_eq!(
            p.assess(&pays[..1], d("2026-03-11"), i64::MAX),
            PromiseStatus::Open
        );
        assert_eq!(
            p.assess(&pays[..1], d("2026-03-11"), i64::MIN),
            PromiseStatus::Broken
        );
        let mut far = promise();
        far.promised_date = NaiveDate::MAX;
        assert_eq!(far.assess(&[], NaiveDate::MAX, 3), PromiseStatus::Open);
    }
}
