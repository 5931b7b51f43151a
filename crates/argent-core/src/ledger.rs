//! Open balances, aging buckets and DSO, computed from invoices and payments as of a date.
//!
//! Figures are kept per currency: argent never converts between currencies, so a
//! portfolio in USD and GBP has two aging totals and two DSO figures.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::invoice::{Invoice, Payment};
use crate::money::Currency;

/// The standard AR aging buckets, by days past the due date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgingBucket {
    Current,
    Days1To30,
    Days31To60,
    Days61To90,
    Over90,
}

impl AgingBucket {
    pub const ALL: [AgingBucket; 5] = [
        AgingBucket::Current,
        AgingBucket::Days1To30,
        AgingBucket::Days31To60,
        AgingBucket::Days61To90,
        AgingBucket::Over90,
    ];

    pub fn for_days_past_due(days: i64) -> AgingBucket {
        match days {
            i64::MIN..=0 => AgingBucket::Current,
            1..=30 => AgingBucket::Days1To30,
            31..=60 => AgingBucket::Days31To60,
            61..=90 => AgingBucket::Days61To90,
            _ => AgingBucket::Over90,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            AgingBucket::Current => "current",
            AgingBucket::Days1To30 => "1-30",
            AgingBucket::Days31To60 => "31-60",
            AgingBucket::Days61To90 => "61-90",
            AgingBucket::Over90 => "90+",
        }
    }

    pub fn index(&self) -> usize {
        *self as usize
    }
}

/// One invoice's position as of a date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceState<'a> {
    pub invoice: &'a Invoice,
    /// Payments received on or before the as-of date, in minor units.
    pub paid_minor: i64,
    /// Amount still owed, in minor units; never negative (overpayments are not open AR).
    pub open_minor: i64,
    /// The day the invoice became fully paid, if it did by the as-of date.
    pub settled_on: Option<NaiveDate>,
    /// Days past due as of the date (negative: not yet due).
    pub days_past_due: i64,
}

impl InvoiceState<'_> {
    pub fn bucket(&self) -> AgingBucket {
        AgingBucket::for_days_past_due(self.days_past_due)
    }
    pub fn is_open(&self) -> bool {
        self.open_minor > 0
    }
    pub fn is_overdue(&self) -> bool {
        self.is_open() && self.days_past_due > 0
    }
}

/// Applies payments to their invoices as of `as_of`; payments dated later are ignored.
pub fn invoice_states<'a>(
    invoices: &'a [Invoice],
    payments: &[Payment],
    as_of: NaiveDate,
) -> Vec<InvoiceState<'a>> {
    let mut by_invoice: HashMap<&str, Vec<&Payment>> = HashMap::new();
    for p in payments.iter().filter(|p| p.received_on <= as_of) {
        by_invoice
            .entry(p.invoice_number.as_str())
            .or_default()
            .push(p);
    }
    invoices
        .iter()
        .map(|inv| {
            let mut pays = by_invoice.remove(inv.number.as_str()).unwrap_or_default();
            pays.sort_by_key(|p| p.received_on);
            let mut paid = 0_i64;
            let mut settled_on = None;
            for p in pays
                .iter()
                .filter(|p| p.amount.currency == inv.amount.currency)
            {
                paid = paid.saturating_add(p.amount.minor);
                if settled_on.is_none() && paid >= inv.amount.minor {
                    settled_on = Some(p.received_on);
                }
            }
            InvoiceState {
                invoice: inv,
                paid_minor: paid,
                open_minor: (inv.amount.minor - paid).max(0),
                settled_on,
                days_past_due: (as_of - inv.due_date).num_days(),
            }
        })
        .collect()
}

/// Open balances of one customer in one currency, by bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgingRow {
    pub customer_id: String,
    pub currency: Currency,
    /// Minor units per bucket, indexed by [`AgingBucket::index`].
    pub buckets: [i64; 5],
    pub total: i64,
    pub oldest_days_past_due: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurrencySummary {
    pub currency: Currency,
    pub buckets: [i64; 5],
    pub total: i64,
    /// Invoiced in the DSO period, minor units.
    pub credit_sales: i64,
    /// Days sales outstanding over the period; `None` when nothing was invoiced in it.
    pub dso_days: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgingReport {
    pub as_of: NaiveDate,
    pub dso_period_days: u32,
    /// Customers with an open balance, largest total first.
    pub rows: Vec<AgingRow>,
    pub totals: Vec<CurrencySummary>,
}

/// The first day *before* a period of `period_days` ending on `as_of`: the period is
/// `(period_start, as_of]`, so a 90-day period ending 2026-04-15 holds 2026-01-16 through
/// 2026-04-15, and the receivables "at the beginning of the period" are those at the end
/// of `period_start`.
pub fn period_start(as_of: NaiveDate, period_days: u32) -> NaiveDate {
    as_of - chrono::Duration::days(i64::from(period_days))
}

/// Whether an invoice issued on `issue_date` is a credit sale of the period of
/// `period_days` ending on `as_of` (see [`period_start`]).
pub fn in_period(issue_date: NaiveDate, as_of: NaiveDate, period_days: u32) -> bool {
    issue_date > period_start(as_of, period_days) && issue_date <= as_of
}

/// Days sales outstanding by the standard method: receivables ÷ credit sales in the
/// period × the period's length in days. `None` when nothing was invoiced in the period
/// (never NaN or infinity).
pub fn dso_days(receivables_minor: i64, credit_sales_minor: i64, period_days: u32) -> Option<f64> {
    (credit_sales_minor > 0)
        .then(|| receivables_minor as f64 / credit_sales_minor as f64 * f64::from(period_days))
}

/// Builds the aging report as of `as_of`.
///
/// DSO uses the standard method: open AR at `as_of` divided by credit sales invoiced in
/// the `dso_period_days` ending on `as_of`, times the period length.
pub fn aging_report(
    invoices: &[Invoice],
    payments: &[Payment],
    as_of: NaiveDate,
    dso_period_days: u32,
) -> AgingReport {
    let states = invoice_states(invoices, payments, as_of);
    let mut rows: BTreeMap<(String, Currency), AgingRow> = BTreeMap::new();
    let mut totals: BTreeMap<Currency, CurrencySummary> = BTreeMap::new();
    for st in &states {
        let inv = st.invoice;
        let cur = inv.amount.currency;
        let sum = totals.entry(cur).or_insert_with(|| CurrencySummary {
            currency: cur,
            buckets: [0; 5],
            total: 0,
            credit_sales: 0,
            dso_days: None,
        });
        if in_period(inv.issue_date, as_of, dso_period_days) {
            sum.credit_sales += inv.amount.minor;
        }
        if !st.is_open() || inv.issue_date > as_of {
            continue;
        }
        let b = st.bucket().index();
        sum.buckets[b] += st.open_minor;
        sum.total += st.open_minor;
        let row = rows
            .entry((inv.customer_id.clone(), cur))
            .or_insert_with(|| AgingRow {
                customer_id: inv.customer_id.clone(),
                currency: cur,
                buckets: [0; 5],
                total: 0,
                oldest_days_past_due: i64::MIN,
            });
        row.buckets[b] += st.open_minor;
        row.total += st.open_minor;
        row.oldest_days_past_due = row.oldest_days_past_due.max(st.days_past_due);
    }
    for sum in totals.values_mut() {
        sum.dso_days = dso_days(sum.total, sum.credit_sales, dso_period_days);
    }
    let mut rows: Vec<AgingRow> = rows.into_values().collect();
    rows.sort_by(|a, b| {
        b.total
            .cmp(&a.total)
            .then_with(|| a.customer_id.cmp(&b.customer_id))
    });
    AgingReport {
        as_of,
        dso_period_days,
        rows,
        totals: totals.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Money;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn inv(n: &str, cust: &str, issued: &str, due: &str, minor: i64) -> Invoice {
        Invoice {
            number: n.into(),
            customer_id: cust.into(),
            issue_date: d(issued),
            due_date: d(due),
            amount: Money::new(minor, Currency::USD),
            disputed: false,
        }
    }

    fn pay(n: &str, cust: &str, on: &str, minor: i64) -> Payment {
        Payment {
            id: format!("p-{n}-{on}"),
            customer_id: cust.into(),
            invoice_number: n.into(),
            amount: Money::new(minor, Currency::USD),
            received_on: d(on),
        }
    }

    #[test]
    fn buckets_follow_days_past_due_boundaries() {
        let cases = [
            (-5, "current"),
            (0, "current"),
            (1, "1-30"),
            (30, "1-30"),
            (31, "31-60"),
            (60, "31-60"),
            (61, "61-90"),
            (90, "61-90"),
            (91, "90+"),
            (400, "90+"),
        ];
        for (days, label) in cases {
            assert_eq!(
                AgingBucket::for_days_past_due(days).label(),
                label,
                "{days} days"
            );
        }
    }

    #[test]
    fn aging_applies_partial_payments_and_ignores_future_ones() {
        let invoices = vec![
            inv("I1", "C1", "2026-01-01", "2026-01-31", 100_00),
            inv("I2", "C1", "2026-02-01", "2026-03-03", 50_00),
            inv("I3", "C2", "2026-03-01", "2026-03-31", 70_00),
        ];
        let payments = vec![
            pay("I1", "C1", "2026-02-10", 40_00),
            pay("I3", "C2", "2026-03-20", 70_00),
            pay("I2", "C1", "2026-05-01", 50_00), // after as-of: ignored
        ];
        let r = aging_report(&invoices, &payments, d("2026-04-15"), 90);
        assert_eq!(r.rows.len(), 1, "C2 is fully paid");
        let row = &r.rows[0];
        assert_eq!(row.customer_id, "C1");
        // I1: 74 days past due, 60.00 open; I2: 43 days past due, 50.00 open.
        assert_eq!(row.buckets, [0, 0, 50_00, 60_00, 0]);
        assert_eq!(row.total, 110_00);
        assert_eq!(row.oldest_days_past_due, 74);
        let t = &r.totals[0];
        // Invoiced in the 90 days ending 2026-04-15 (after 2026-01-15): I2 and I3.
        assert_eq!(t.credit_sales, 120_00);
        let dso = t.dso_days.unwrap();
        assert!((dso - 110.0 / 120.0 * 90.0).abs() < 1e-9, "{dso}");
    }

    #[test]
    fn settlement_date_is_when_the_running_total_covers_the_invoice() {
        let invoices = vec![inv("I1", "C1", "2026-01-01", "2026-01-31", 100_00)];
        let payments = vec![
            pay("I1", "C1", "2026-02-20", 60_00),
            pay("I1", "C1", "2026-02-10", 40_00),
        ];
        let s = &invoice_states(&invoices, &payments, d("2026-03-01"))[0];
        assert_eq!(s.open_minor, 0);
        assert_eq!(s.settled_on, Some(d("2026-02-20")));
    }

    #[test]
    fn two_huge_invoices_do_not_show_a_negative_balance() {
        let half = i64::MAX / 2 + 1;
        let invoices = vec![
            inv("I1", "C1", "2026-01-01", "2026-01-31", half),
            inv("I2", "C1", "2026-01-01", "2026-01-31", half),
        ];
        let r = aging_report(&invoices, &[], d("2026-02-15"), 90);
        assert!(r.rows[0].total > 0, "{:?}", r.rows[0]);
        assert!(r.totals[0].total > 0, "{:?}", r.totals[0]);
    }

    #[test]
    fn aging_at_the_calendar_limits_does_not_panic() {
        let invoices = vec![Invoice {
            number: "I1".into(),
            customer_id: "C1".into(),
            issue_date: NaiveDate::MIN,
            due_date: NaiveDate::MIN,
            amount: Money::new(1, Currency::USD),
            disputed: false,
        }];
        let _ = aging_report(&invoices, &[], NaiveDate::MIN, 90);
        let _ = aging_report(&invoices, &[], NaiveDate::MAX, u32::MAX);
    }
}
