//! Payment plans: a discount, a down payment and dated installments.

use chrono::{Days, Months, NaiveDate};
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

/// How often a plan's instalments fall due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    Weekly,
    Fortnightly,
    Monthly,
}
str_enum!(Frequency {
    Weekly => "weekly",
    Fortnightly => "fortnightly",
    Monthly => "monthly",
});

impl Frequency {
    /// The `k`-th due date after `start`: `k` weeks, `2k` weeks, or `k` calendar months
    /// later (counted from `start` each time, so a plan starting on the 31st falls due on
    /// the last day of a shorter month and on the 31st again after it). `None` past the
    /// calendar's end.
    pub fn nth_after(self, start: NaiveDate, k: u32) -> Option<NaiveDate> {
        match self {
            Frequency::Weekly => start.checked_add_days(Days::new(7 * u64::from(k))),
            Frequency::Fortnightly => start.checked_add_days(Days::new(14 * u64::from(k))),
            Frequency::Monthly => start.checked_add_months(Months::new(k)),
        }
    }

    /// The frequency whose due dates after `start` are exactly `dates`, if one is.
    pub fn of_dates(start: NaiveDate, dates: &[NaiveDate]) -> Option<Frequency> {
        if dates.is_empty() {
            return None;
        }
        Frequency::ALL.iter().copied().find(|f| {
            dates.iter().enumerate().all(|(i, d)| {
                u32::try_from(i + 1)
                    .ok()
                    .and_then(|k| f.nth_after(start, k))
                    == Some(*d)
            })
        })
    }
}

/// What a reviewer sets on a plan (the plan editor): the customer, the currency and the
/// balance stay as proposed; the discount, the down payment (paid on the start date), the
/// number of instalments, how often they fall due and the start date are theirs to change.
/// [`PlanTerms::schedule`] turns them into instalments that settle the plan exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanTerms {
    pub currency: Currency,
    pub balance_minor: i64,
    pub discount_minor: i64,
    pub down_payment_minor: i64,
    pub count: u32,
    pub frequency: Frequency,
    pub start_date: NaiveDate,
}

/// Why terms give no plan. Amounts are shown in the currency's units, grouped
/// (`1,200.00`), never in minor units.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TermsError {
    #[error("the balance {} must be more than 0", .0.grouped())]
    BalanceNotPositive(Money),
    #[error("{what} {} cannot be negative", .amount.grouped())]
    Negative { what: &'static str, amount: Money },
    #[error("discount {} exceeds the balance {}", .discount.grouped(), .balance.grouped())]
    DiscountExceedsBalance { discount: Money, balance: Money },
    #[error("down payment {} exceeds the balance {}", .down.grouped(), .owed.grouped())]
    DownPaymentExceedsBalance { down: Money, owed: Money },
    #[error(
        "down payment {} exceeds the balance less the discount, {}",
        .down.grouped(),
        .owed.grouped()
    )]
    DownPaymentExceedsDiscounted { down: Money, owed: Money },
    #[error(
        "the down payment {} pays the whole balance: nothing is left for instalments (lower the down payment)",
        .down.grouped()
    )]
    NothingLeft { down: Money },
    #[error("the number of instalments must be from 1 to {max} (got {count})")]
    CountOutOfRange { count: u32, max: u32 },
    #[error(
        "{} left after the down payment cannot be split into {count} instalments of at least {}",
        .rest.grouped(),
        .smallest.grouped()
    )]
    TooSmallToSplit {
        rest: Money,
        count: u32,
        smallest: Money,
    },
    #[error("instalment {0}'s due date would be past the end of the calendar")]
    DateOverflow(u32),
}

impl PlanTerms {
    /// The terms of a plan as proposed: its amounts and start, the number of instalments,
    /// and the frequency its dates follow (`None` when they follow none of them, i.e. the
    /// reviewer's first check will put the instalments on a regular schedule).
    pub fn of_plan(plan: &PaymentPlan) -> (PlanTerms, Option<Frequency>) {
        let dates: Vec<NaiveDate> = plan.installments.iter().map(|i| i.due_date).collect();
        let frequency = Frequency::of_dates(plan.start_date, &dates);
        let terms = PlanTerms {
            currency: plan.currency,
            balance_minor: plan.balance_minor,
            discount_minor: plan.discount_minor,
            down_payment_minor: plan.down_payment_minor,
            count: u32::try_from(plan.installments.len()).unwrap_or(u32::MAX),
            frequency: frequency.unwrap_or(Frequency::Monthly),
            start_date: plan.start_date,
        };
        (terms, frequency)
    }

    /// The instalments: what is left of the balance after the discount and the down
    /// payment, split into `count` amounts that differ by at most one minor unit (the
    /// earlier ones carry the extra units) and sum to it exactly, due one period after
    /// another from the start date ([`Frequency::nth_after`]). Pure; every amount is
    /// checked arithmetic on minor units.
    pub fn schedule(&self) -> Result<Vec<Installment>, TermsError> {
        let m = |minor: i64| Money::new(minor, self.currency);
        if self.balance_minor <= 0 {
            return Err(TermsError::BalanceNotPositive(m(self.balance_minor)));
        }
        for (what, v) in [
            ("discount", self.discount_minor),
            ("down payment", self.down_payment_minor),
        ] {
            if v < 0 {
                return Err(TermsError::Negative { what, amount: m(v) });
            }
        }
        if self.discount_minor > self.balance_minor {
            return Err(TermsError::DiscountExceedsBalance {
                discount: m(self.discount_minor),
                balance: m(self.balance_minor),
            });
        }
        // 0 <= discount <= balance: no overflow.
        let owed = self.balance_minor - self.discount_minor;
        if self.down_payment_minor > owed {
            let (down, owed) = (m(self.down_payment_minor), m(owed));
            return Err(if self.discount_minor == 0 {
                TermsError::DownPaymentExceedsBalance { down, owed }
            } else {
                TermsError::DownPaymentExceedsDiscounted { down, owed }
            });
        }
        let max = u32::try_from(crate::action::MAX_INSTALLMENTS).unwrap_or(u32::MAX);
        if self.count == 0 || self.count > max {
            return Err(TermsError::CountOutOfRange {
                count: self.count,
                max,
            });
        }
        // 0 <= down <= owed: no overflow.
        let rest = owed - self.down_payment_minor;
        if rest == 0 {
            return Err(TermsError::NothingLeft {
                down: m(self.down_payment_minor),
            });
        }
        let count = i64::from(self.count);
        let (base, extra) = (rest / count, rest % count);
        if base == 0 {
            return Err(TermsError::TooSmallToSplit {
                rest: m(rest),
                count: self.count,
                smallest: m(1),
            });
        }
        let mut out = Vec::with_capacity(self.count as usize);
        for k in 1..=self.count {
            let due_date = self
                .frequency
                .nth_after(self.start_date, k)
                .ok_or(TermsError::DateOverflow(k))?;
            // base + 1 <= rest: no overflow.
            let amount_minor = if i64::from(k) <= extra {
                base + 1
            } else {
                base
            };
            out.push(Installment {
                due_date,
                amount_minor,
            });
        }
        Ok(out)
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

    fn terms() -> PlanTerms {
        PlanTerms {
            currency: Currency::USD,
            balance_minor: 1200_00,
            discount_minor: 60_00,
            down_payment_minor: 120_00,
            count: 3,
            frequency: Frequency::Monthly,
            start_date: d("2026-11-20"),
        }
    }

    #[test]
    fn terms_give_an_even_schedule_that_settles_exactly() {
        let s = terms().schedule().unwrap();
        let got: Vec<(String, i64)> = s
            .iter()
            .map(|i| (i.due_date.to_string(), i.amount_minor))
            .collect();
        assert_eq!(
            got,
            [
                ("2026-12-20".to_string(), 340_00),
                ("2027-01-20".to_string(), 340_00),
                ("2027-02-20".to_string(), 340_00)
            ]
        );
        // 100.00 in 3: the first carries the extra cent.
        let t = PlanTerms {
            balance_minor: 100_00,
            discount_minor: 0,
            down_payment_minor: 0,
            frequency: Frequency::Weekly,
            ..terms()
        };
        let s = t.schedule().unwrap();
        assert_eq!(
            s.iter().map(|i| i.amount_minor).collect::<Vec<_>>(),
            [33_34, 33_33, 33_33]
        );
        assert_eq!(s[2].due_date, d("2026-12-11"));
        let t = PlanTerms {
            frequency: Frequency::Fortnightly,
            ..terms()
        };
        assert_eq!(t.schedule().unwrap()[1].due_date, d("2026-12-18"));
    }

    #[test]
    fn monthly_dates_count_from_the_start_and_keep_to_month_ends() {
        let start = d("2027-01-31");
        let got: Vec<NaiveDate> = (1..=3)
            .map(|k| Frequency::Monthly.nth_after(start, k).unwrap())
            .collect();
        assert_eq!(got, [d("2027-02-28"), d("2027-03-31"), d("2027-04-30")]);
        assert_eq!(Frequency::of_dates(start, &got), Some(Frequency::Monthly));
        assert_eq!(
            Frequency::of_dates(start, &[d("2027-02-07"), d("2027-02-14")]),
            Some(Frequency::Weekly)
        );
        assert_eq!(Frequency::of_dates(start, &[d("2027-02-10")]), None);
        assert_eq!(Frequency::of_dates(start, &[]), None);
    }

    #[test]
    fn impossible_terms_are_explained_in_currency_units() {
        let t = PlanTerms {
            balance_minor: 1000_00,
            discount_minor: 0,
            down_payment_minor: 1200_00,
            ..terms()
        };
        assert_eq!(
            t.schedule().unwrap_err().to_string(),
            "down payment 1,200.00 exceeds the balance 1,000.00"
        );
        let t = PlanTerms {
            down_payment_minor: 1150_00,
            ..terms()
        };
        assert_eq!(
            t.schedule().unwrap_err().to_string(),
            "down payment 1,150.00 exceeds the balance less the discount, 1,140.00"
        );
        let t = PlanTerms {
            discount_minor: 1300_00,
            ..terms()
        };
        assert_eq!(
            t.schedule().unwrap_err().to_string(),
            "discount 1,300.00 exceeds the balance 1,200.00"
        );
        let t = PlanTerms {
            down_payment_minor: 1140_00,
            ..terms()
        };
        assert!(
            t.schedule()
                .unwrap_err()
                .to_string()
                .contains("nothing is left for instalments"),
        );
        let t = PlanTerms {
            count: 0,
            ..terms()
        };
        assert_eq!(
            t.schedule().unwrap_err().to_string(),
            "the number of instalments must be from 1 to 120 (got 0)"
        );
        let t = PlanTerms {
            down_payment_minor: 1139_98,
            ..terms()
        };
        assert_eq!(
            t.schedule().unwrap_err().to_string(),
            "0.02 left after the down payment cannot be split into 3 instalments of at least 0.01"
        );
        let t = PlanTerms {
            discount_minor: -1,
            ..terms()
        };
        assert_eq!(
            t.schedule().unwrap_err().to_string(),
            "discount -0.01 cannot be negative"
        );
        let t = PlanTerms {
            start_date: NaiveDate::MAX,
            ..terms()
        };
        assert_eq!(t.schedule(), Err(TermsError::DateOverflow(1)));
    }

    #[test]
    fn a_plan_gives_back_its_terms() {
        let p = plan();
        let (t, f) = PlanTerms::of_plan(&p);
        assert_eq!(f, Some(Frequency::Monthly));
        assert_eq!(
            (t.count, t.down_payment_minor, t.discount_minor),
            (2, 300_00, 100_00)
        );
        let s = t.schedule().unwrap();
        assert_eq!(
            s, p.installments,
            "an even monthly plan is its own schedule"
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn frequency() -> impl Strategy<Value = Frequency> {
            prop_oneof![
                Just(Frequency::Weekly),
                Just(Frequency::Fortnightly),
                Just(Frequency::Monthly)
            ]
        }

        prop_compose! {
            fn any_terms()(
                balance in 1i64..=crate::bounds::MAX_AMOUNT_MINOR,
                discount_share in 0u32..=10_000,
                down_share in 0u32..=10_000,
                count in 1u32..=120,
                frequency in frequency(),
                start_days in 0i64..=100_000,
                exp in prop_oneof![Just("USD"), Just("JPY"), Just("KWD")],
            ) -> PlanTerms {
                let discount = i64::try_from(i128::from(balance) * i128::from(discount_share) / 10_000).unwrap();
                let owed = balance - discount;
                let down = i64::try_from(i128::from(owed) * i128::from(down_share) / 10_000).unwrap();
                PlanTerms {
                    currency: exp.parse().unwrap(),
                    balance_minor: balance,
                    discount_minor: discount,
                    down_payment_minor: down,
                    count,
                    frequency,
                    start_date: d("1970-01-01") + chrono::Duration::days(start_days),
                }
            }
        }

        proptest! {
            /// Whatever the terms, a schedule settles the plan to the minor unit, with
            /// `count` positive amounts that differ by at most one unit, on strictly
            /// increasing dates after the start; and it is refused exactly when no such
            /// schedule exists.
            #[test]
            fn a_schedule_settles_exactly_or_says_why_not(t in any_terms()) {
                let rest = t.balance_minor - t.discount_minor - t.down_payment_minor;
                match t.schedule() {
                    Ok(s) => {
                        prop_assert_eq!(s.len(), t.count as usize);
                        let sum: i128 = s.iter().map(|i| i128::from(i.amount_minor)).sum();
                        prop_assert_eq!(sum, i128::from(rest));
                        let max = s.iter().map(|i| i.amount_minor).max().unwrap();
                        let min = s.iter().map(|i| i.amount_minor).min().unwrap();
                        prop_assert!(min >= 1 && max - min <= 1);
                        prop_assert!(s[0].due_date > t.start_date);
                        prop_assert!(s.windows(2).all(|w| w[0].due_date < w[1].due_date));
                        prop_assert_eq!(
                            Frequency::of_dates(t.start_date, &s.iter().map(|i| i.due_date).collect::<Vec<_>>()),
                            Some(t.frequency)
                        );
                        let plan = PaymentPlan {
                            id: "P".into(),
                            customer_id: "C".into(),
                            currency: t.currency,
                            balance_minor: t.balance_minor,
                            discount_minor: t.discount_minor,
                            down_payment_minor: t.down_payment_minor,
                            start_date: t.start_date,
                            installments: s,
                            status: PlanStatus::Proposed,
                        };
                        prop_assert_eq!(plan.validate(), Ok(()));
                        let (back, f) = PlanTerms::of_plan(&plan);
                        prop_assert_eq!(back, t);
                        prop_assert_eq!(f, Some(t.frequency));
                    }
                    Err(TermsError::NothingLeft { .. }) => prop_assert_eq!(rest, 0),
                    Err(TermsError::TooSmallToSplit { .. }) => {
                        prop_assert!(rest > 0 && rest < i64::from(t.count));
                    }
                    Err(e) => prop_assert!(false, "unexpected refusal: {e}"),
                }
            }

            /// Amounts that are wrong are refused, never clamped.
            #[test]
            fn out_of_range_amounts_are_refused(
                t in any_terms(),
                over in 1i64..=1_000_000,
                which in 0u8..3,
            ) {
                let mut t = t;
                match which {
                    0 => t.discount_minor = t.balance_minor + over,
                    1 => t.down_payment_minor = t.balance_minor - t.discount_minor + over,
                    _ => t.down_payment_minor = -over,
                }
                prop_assert!(t.schedule().is_err());
            }
        }
    }
}
