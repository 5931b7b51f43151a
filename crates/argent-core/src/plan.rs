//! Payment plans: a discount, a down payment and dated installments.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::customer::str_enum;
use crate::money::{Currency, Money};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Proposed,
    Active,
    Completed,
    Defaulted,
    Rejected,
}
str_enum!(PlanStatus {
    Proposed => "proposed",
    Active => "active",
    Completed => "completed",
    Defaulted => "defaulted",
    Rejected => "rejected",
});

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installment {
    pub due_date: NaiveDate,
    pub amount_minor: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentPlan {
    pub id: String,
    pub customer_id: String,
    pub currency: Currency,
    /// The balance the plan settles, before any discount.
    pub balance_minor: i64,
    pub discount_minor: i64,
    pub down_payment_minor: i64,
    pub start_date: NaiveDate,
    pub installments: Vec<Installment>,
    pub status: PlanStatus,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the plan has no installments")]
    NoInstallments,
    #[error("installment {0} has a non-positive amount")]
    NonPositiveInstallment(usize),
    #[error("installment {0} is not after the previous one (dates must strictly increase)")]
    DatesNotIncreasing(usize),
    #[error("installment {0} is due before the plan starts")]
    BeforeStart(usize),
    #[error("discount and down payment must be between 0 and the balance")]
    BadAmounts,
    #[error("down payment plus installments is {paid} but the balance less discount is {owed}")]
    DoesNotSettle { paid: i64, owed: i64 },
}

impl PaymentPlan {
    /// Checks that the plan is internally coherent: it pays exactly the discounted balance
    /// with positive installments on strictly increasing dates.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.installments.is_empty() {
            return Err(PlanError::NoInstallments);
        }
        if self.discount_minor < 0
            || self.down_payment_minor < 0
            || self.discount_minor > self.balance_minor
            || self.down_payment_minor > self.balance_minor
        {
            return Err(PlanError::BadAmounts);
        }
        let mut prev: Option<NaiveDate> = None;
        for (i, inst) in self.installments.iter().enumerate() {
            let n = i + 1;
            if inst.amount_minor <= 0 {
                return Err(PlanError::NonPositiveInstallment(n));
            }
            if inst.due_date < self.start_date {
                return Err(PlanError::BeforeStart(n));
            }
            if prev.is_some_and(|p| inst.due_date <= p) {
                return Err(PlanError::DatesNotIncreasing(n));
            }
            prev = Some(inst.due_date);
        }
        // i128: exact for any number of i64 installments this side of 2^64.
        let paid = self
            .installments
            .iter()
            .fold(i128::from(self.down_payment_minor), |acc, i| {
                acc + i128::from(i.amount_minor)
            });
        // 0 <= discount <= balance (checked above): no overflow.
        let owed = self.balance_minor - self.discount_minor;
        if paid != i128::from(owed) {
            return Err(PlanError::DoesNotSettle {
                paid: i64::try_from(paid).unwrap_or(i64::MAX),
                owed,
            });
        }
        Ok(())
    }

    /// Discount as basis points of the balance (100 bps = 1%), rounded down; exact for any
    /// amounts (computed in `i128`).
    pub fn discount_bps(&self) -> i64 {
        bps(
            i128::from(self.discount_minor),
            i128::from(self.balance_minor),
        )
    }

    /// Down payment as basis points of the discounted balance, rounded down; exact for any
    /// amounts (computed in `i128`).
    pub fn down_payment_bps(&self) -> i64 {
        let owed = i128::from(self.balance_minor) - i128::from(self.discount_minor);
        bps(i128::from(self.down_payment_minor), owed)
    }

    /// Days from the start to the last installment.
    pub fn length_days(&self) -> i64 {
        self.installments
            .last()
            .map_or(0, |l| (l.due_date - self.start_date).num_days())
    }

    /// The balance less the discount: exact for a plan that [`validate`](Self::validate)s
    /// (0 <= discount <= balance); held at `i64`'s limits for one that does not.
    pub fn total(&self) -> Money {
        Money::new(
            self.balance_minor.saturating_sub(self.discount_minor),
            self.currency,
        )
    }
}

/// `part ÷ whole` in basis points, 0 when `whole` is not positive; held within `i64`.
fn bps(part: i128, whole: i128) -> i64 {
    if whole <= 0 {
        return 0;
    }
    // |part| < 2^65 and 10_000 < 2^14: the product fits in i128.
    let v = part * 10_000 / whole;
    i64::try_from(v).unwrap_or(if v > 0 { i64::MAX } else { i64::MIN })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn plan() -> PaymentPlan {
        PaymentPlan {
            id: "PL1".into(),
            customer_id: "C1".into(),
            currency: Currency::USD,
            balance_minor: 1000_00,
            discount_minor: 100_00,
            down_payment_minor: 300_00,
            start_date: d("2026-03-01"),
            installments: vec![
                Installment {
                    due_date: d("2026-04-01"),
                    amount_minor: 300_00,
                },
                Installment {
                    due_date: d("2026-05-01"),
                    amount_minor: 300_00,
                },
            ],
            status: PlanStatus::Proposed,
        }
    }

    #[test]
    fn coherent_plan_validates_and_reports_its_terms() {
        let p = plan();
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.discount_bps(), 1000);
        assert_eq!(p.down_payment_bps(), 3333);
        assert_eq!(p.length_days(), 61);
    }

    #[test]
    fn incoherent_plans_are_rejected_with_the_reason() {
        let mut p = plan();
        p.installments[1].amount_minor = 200_00;
        assert_eq!(
            p.validate(),
            Err(PlanError::DoesNotSettle {
                paid: 800_00,
                owed: 900_00
            })
        );
        let mut p = plan();
        p.installments[1].due_date = d("2026-04-01");
        assert_eq!(p.validate(), Err(PlanError::DatesNotIncreasing(2)));
        let mut p = plan();
        p.installments.clear();
        assert_eq!(p.validate(), Err(PlanError::NoInstallments));
        let mut p = plan();
        p.discount_minor = -1;
        assert_eq!(p.validate(), Err(PlanError::BadAmounts));
    }

    /// Installments whose sum passes `i64::MAX` do not "settle" a balance of `i64::MAX` by
    /// saturating onto it.
    #[test]
    fn installments_beyond_i64_do_not_settle_by_saturation() {
        let mut p = plan();
        p.balance_minor = i64::MAX;
        p.discount_minor = 0;
        p.down_payment_minor = 0;
        p.installments[0].amount_minor = i64::MAX;
        p.installments[1].amount_minor = 1;
        assert!(
            matches!(p.validate(), Err(PlanError::DoesNotSettle { .. })),
            "{:?}",
            p.validate()
        );
    }

    /// Ratios of amounts beyond `i64::MAX / 10_000` are exact, not saturated.
    #[test]
    fn ratios_of_large_amounts_are_exact() {
        let mut p = plan();
        p.balance_minor = 1_000_000_000_000_000; // 10^15 minor units
        p.discount_minor = 930_000_000_000_000; // 93%
        p.down_payment_minor = 70_000_000_000_000; // all of the rest
        assert_eq!(p.discount_bps(), 9300);
        assert_eq!(p.down_payment_bps(), 10_000);
    }
}
