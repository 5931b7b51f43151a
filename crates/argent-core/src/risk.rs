//! Risk segmentation from payment history.
//!
//! A score made of three observable facts, each worth 0-2 points:
//! average days late, delinquency frequency and how much of the open balance is overdue
//! (with a point for anything over 90 days). 0-1 points is `low`, 2-3 `medium`, 4+ `high`.
//! A customer with fewer than [`MIN_HISTORY`] invoices, or one flagged disputed, bankrupt
//! or represented by an attorney, is `in_review`: a person decides before any dunning.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::customer::CustomerFlags;
use crate::invoice::{Invoice, Payment};
use crate::ledger::invoice_states;
use crate::money::{Money, MoneyError};

pub const MIN_HISTORY: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskSegment {
    Low,
    Medium,
    High,
    InReview,
}

impl RiskSegment {
    pub fn as_str(&self) -> &'static str {
        match self {
            RiskSegment::Low => "low",
            RiskSegment::Medium => "medium",
            RiskSegment::High => "high",
            RiskSegment::InReview => "in_review",
        }
    }
}

impl fmt::Display for RiskSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Facts about one customer's payment behaviour as of a date.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaymentHistory {
    pub invoices: usize,
    /// Mean days late over settled invoices (paid early counts as 0) and open overdue ones.
    pub avg_days_late: f64,
    /// Share of invoices that were settled late or are overdue now, 0..=1.
    pub delinquency_rate: f64,
    /// Open balance in minor units, summed over currencies (used only as a ratio).
    pub open_minor: i64,
    pub overdue_minor: i64,
    pub max_days_past_due: i64,
}

/// One customer's payment history as of `as_of`. An error if its open balance does not fit
/// in `i64` minor units (it is summed over currencies; no imported ledger comes near).
pub fn payment_history(
    invoices: &[Invoice],
    payments: &[Payment],
    as_of: NaiveDate,
) -> Result<PaymentHistory, MoneyError> {
    let states: Vec<_> = invoice_states(invoices, payments, as_of)
        .into_iter()
        .filter(|s| s.invoice.issue_date <= as_of)
        .collect();
    let mut late_days_sum = 0_i64;
    let mut counted = 0_i64;
    let mut delinquent = 0_usize;
    let mut open = 0_i64;
    let mut overdue = 0_i64;
    let mut max_dpd = 0_i64;
    for s in &states {
        let cur = s.invoice.amount.currency;
        let what = || format!("the open invoices of customer {}", s.invoice.customer_id);
        let late = match s.settled_on {
            Some(paid) => (paid - s.invoice.due_date).num_days().max(0),
            None if s.days_past_due > 0 => s.days_past_due,
            None => {
                Money::add_minor(&mut open, s.open_minor, cur, what)?;
                continue; // open and not yet due: no evidence either way
            }
        };
        counted += 1;
        // Days, not money: each is under 2^28, so this cannot reach i64::MAX.
        late_days_sum = late_days_sum.saturating_add(late);
        if late > 0 {
            delinquent += 1;
        }
        if s.is_open() {
            Money::add_minor(&mut open, s.open_minor, cur, what)?;
            if s.is_overdue() {
                Money::add_minor(&mut overdue, s.open_minor, cur, what)?;
                max_dpd = max_dpd.max(s.days_past_due);
            }
        }
    }
    let n = counted.max(1) as f64;
    Ok(PaymentHistory {
        invoices: states.len(),
        avg_days_late: late_days_sum as f64 / n,
        delinquency_rate: delinquent as f64 / n,
        open_minor: open,
        overdue_minor: overdue,
        max_days_past_due: max_dpd,
    })
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RiskAssessment {
    pub segment: RiskSegment,
    pub score: u8,
    /// Why, in words a collector can read.
    pub reasons: Vec<String>,
    pub history: PaymentHistory,
}

pub fn assess(history: PaymentHistory, flags: &CustomerFlags) -> RiskAssessment {
    let mut reasons = Vec::new();
    if flags.disputed || flags.bankrupt || flags.attorney_represented {
        reasons.push(format!("customer flagged: {}", flags.to_list()));
    }
    if history.invoices < MIN_HISTORY {
        reasons.push(format!(
            "only {} invoice(s) of history; {} needed",
            history.invoices, MIN_HISTORY
        ));
    }
    if !reasons.is_empty() {
        return RiskAssessment {
            segment: RiskSegment::InReview,
            score: 0,
            reasons,
            history,
        };
    }
    let mut score = 0_u8;
    let h = &history;
    if h.avg_days_late > 30.0 {
        score += 2;
        reasons.push(format!("pays {:.0} days late on average", h.avg_days_late));
    } else if h.avg_days_late > 10.0 {
        score += 1;
        reasons.push(format!("pays {:.0} days late on average", h.avg_days_late));
    }
    if h.delinquency_rate >= 0.5 {
        score += 2;
        reasons.push(format!(
            "{:.0}% of invoices late",
            h.delinquency_rate * 100.0
        ));
    } else if h.delinquency_rate >= 0.25 {
        score += 1;
        reasons.push(format!(
            "{:.0}% of invoices late",
            h.delinquency_rate * 100.0
        ));
    }
    if h.open_minor > 0 && i128::from(h.overdue_minor) * 2 >= i128::from(h.open_minor) {
        score += 1;
        reasons.push("half or more of the open balance is overdue".to_string());
    }
    if h.max_days_past_due > 90 {
        score += 1;
        reasons.push(format!(
            "oldest overdue invoice is {} days past due",
            h.max_days_past_due
        ));
    }
    let segment = match score {
        0..=1 => RiskSegment::Low,
        2..=3 => RiskSegment::Medium,
        _ => RiskSegment::High,
    };
    RiskAssessment {
        segment,
        score,
        reasons,
        history,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::{Currency, Money};
    use chrono::Duration;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Twelve monthly invoices of 1000.00, each paid `late_by(i)` days after its due date
    /// (`None`: still open).
    fn history(late_by: impl Fn(usize) -> Option<i64>) -> (Vec<Invoice>, Vec<Payment>) {
        let mut invoices = Vec::new();
        let mut payments = Vec::new();
        for i in 0..12 {
            let issued = d("2025-01-01") + Duration::days(30 * i as i64);
            let due = issued + Duration::days(30);
            let number = format!("I{i}");
            invoices.push(Invoice {
                number: number.clone(),
                customer_id: "C".into(),
                issue_date: issued,
                due_date: due,
                amount: Money::new(1000_00, Currency::USD),
                disputed: false,
            });
            if let Some(late) = late_by(i) {
                payments.push(Payment {
                    id: number.clone(),
                    customer_id: "C".into(),
                    invoice_number: number,
                    amount: Money::new(1000_00, Currency::USD),
                    received_on: due + Duration::days(late),
                });
            }
        }
        (invoices, payments)
    }

    const AS_OF: &str = "2026-01-15";

    #[test]
    fn punctual_payer_is_low_risk() {
        let (inv, pay) = history(|_| Some(-2));
        let a = assess(
            payment_history(&inv, &pay, d(AS_OF)).unwrap(),
            &CustomerFlags::default(),
        );
        assert_eq!(a.segment, RiskSegment::Low, "{a:?}");
        assert_eq!(a.history.delinquency_rate, 0.0);
    }

    #[test]
    fn occasionally_late_payer_is_medium() {
        let (inv, pay) = history(|i| Some(if i % 3 == 0 { 40 } else { 0 }));
        let a = assess(
            payment_history(&inv, &pay, d(AS_OF)).unwrap(),
            &CustomerFlags::default(),
        );
        assert_eq!(a.segment, RiskSegment::Medium, "{a:?}");
    }

    #[test]
    fn chronic_late_payer_with_old_open_invoices_is_high() {
        let (inv, pay) = history(|i| if i < 8 { Some(45) } else { None });
        let a = assess(
            payment_history(&inv, &pay, d(AS_OF)).unwrap(),
            &CustomerFlags::default(),
        );
        assert_eq!(a.segment, RiskSegment::High, "{a:?}");
        assert!(a.history.max_days_past_due > 90);
        assert!(a.reasons.iter().any(|r| r.contains("days late on average")));
    }

    #[test]
    fn thin_history_or_legal_flags_go_to_review() {
        let (inv, pay) = history(|_| Some(0));
        let thin = assess(
            payment_history(&inv[..2], &pay, d(AS_OF)).unwrap(),
            &CustomerFlags::default(),
        );
        assert_eq!(thin.segment, RiskSegment::InReview);
        let flags = CustomerFlags {
            bankrupt: true,
            ..Default::default()
        };
        let flagged = assess(payment_history(&inv, &pay, d(AS_OF)).unwrap(), &flags);
        assert_eq!(flagged.segment, RiskSegment::InReview);
        assert!(flagged.reasons[0].contains("bankrupt"));
    }

    /// A customer's open invoices adding up past `i64::MAX` are an error, not a wrapped
    /// (negative) open balance that would make the overdue share look small.
    #[test]
    fn an_open_balance_that_overflows_is_an_error() {
        let (mut inv, _) = history(|_| None);
        for i in &mut inv {
            i.amount = Money::new(i64::MAX / 4, Currency::USD);
        }
        let err = payment_history(&inv, &[], d(AS_OF)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the open invoices of customer C in USD"),
            "{err}"
        );
    }
}
