//! Open balances, aging buckets and DSO, computed from invoices and payments as of a date.
//!
//! Figures are kept per currency: argent never converts between currencies, so a
//! portfolio in USD and GBP has two aging totals and two DSO figures.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::invoice::{Invoice, Payment};
use crate::money::{Currency, Money, MoneyError};

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
    /// Payments received on or before the as-of date, in minor units (held at `i64::MAX`
    /// or `i64::MIN` if they add up beyond, which no imported ledger can: see
    /// [`crate::bounds`]; `open_minor` and `settled_on` are exact either way).
    pub paid_minor: i64,
    /// Amount still owed, in minor units: the invoice amount less the payments, never
    /// negative (overpayments are not open AR) and never more than the invoice amount (a
    /// net negative payment total counts as nothing paid), so it always fits.
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
/// Never overflows: each invoice's payments are added up in `i128`.
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
            // i128: the sum of fewer than 2^64 i64 values cannot overflow it.
            let mut paid = 0_i128;
            let mut settled_on = None;
            let amount = i128::from(inv.amount.minor);
            for p in pays
                .iter()
                .filter(|p| p.amount.currency == inv.amount.currency)
            {
                paid += i128::from(p.amount.minor);
                if settled_on.is_none() && paid >= amount {
                    settled_on = Some(p.received_on);
                }
            }
            let open = (amount - paid).clamp(0, amount.max(0));
            InvoiceState {
                invoice: inv,
                paid_minor: i64::try_from(paid).unwrap_or(if paid > 0 {
                    i64::MAX
                } else {
                    i64::MIN
                }),
                open_minor: i64::try_from(open).unwrap_or(inv.amount.minor),
                settled_on,
                // Any two NaiveDates are less than 2^63 days apart: no overflow.
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
/// of `period_start`. At the calendar's first days it is held at `NaiveDate::MIN` (dates
/// that early are refused at the edges; see [`crate::bounds`]), never a panic.
pub fn period_start(as_of: NaiveDate, period_days: u32) -> NaiveDate {
    as_of
        .checked_sub_days(chrono::Days::new(u64::from(period_days)))
        .unwrap_or(NaiveDate::MIN)
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

/// Open balance per currency as of `as_of` (every invoice, whatever its issue date), in
/// the order the currencies first appear; an error if one does not fit in `i64`.
pub fn open_balances(
    invoices: &[Invoice],
    payments: &[Payment],
    as_of: NaiveDate,
) -> Result<Vec<Money>, MoneyError> {
    let mut out: Vec<Money> = Vec::new();
    for st in invoice_states(invoices, payments, as_of) {
        if !st.is_open() {
            continue;
        }
        let cur = st.invoice.amount.currency;
        let i = match out.iter().position(|m| m.currency == cur) {
            Some(i) => i,
            None => {
                out.push(Money::zero(cur));
                out.len() - 1
            }
        };
        Money::add_minor(&mut out[i].minor, st.open_minor, cur, || {
            format!("the open invoices of customer {}", st.invoice.customer_id)
        })?;
    }
    Ok(out)
}

/// Builds the aging report as of `as_of`.
///
/// DSO uses the standard method: open AR at `as_of` divided by credit sales invoiced in
/// the `dso_period_days` ending on `as_of`, times the period length.
///
/// Every sum is checked: a total that does not fit in `i64` minor units is
/// [`MoneyError::SumOverflow`] naming it, never a wrapped (negative) figure or a panic.
pub fn aging_report(
    invoices: &[Invoice],
    payments: &[Payment],
    as_of: NaiveDate,
    dso_period_days: u32,
) -> Result<AgingReport, MoneyError> {
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
        let all = || "the open invoices of all customers".to_string();
        if in_period(inv.issue_date, as_of, dso_period_days) {
            Money::add_minor(&mut sum.credit_sales, inv.amount.minor, cur, || {
                "the credit sales of the period".to_string()
            })?;
        }
        if !st.is_open() || inv.issue_date > as_of {
            continue;
        }
        let b = st.bucket().index();
        Money::add_minor(&mut sum.buckets[b], st.open_minor, cur, all)?;
        Money::add_minor(&mut sum.total, st.open_minor, cur, all)?;
        let row = rows
            .entry((inv.customer_id.clone(), cur))
            .or_insert_with(|| AgingRow {
                customer_id: inv.customer_id.clone(),
                currency: cur,
                buckets: [0; 5],
                total: 0,
                oldest_days_past_due: i64::MIN,
            });
        let theirs = || format!("the open invoices of customer {}", inv.customer_id);
        Money::add_minor(&mut row.buckets[b], st.open_minor, cur, theirs)?;
        Money::add_minor(&mut row.total, st.open_minor, cur, theirs)?;
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
    Ok(AgingReport {
        as_of,
        dso_period_days,
        rows,
        totals: totals.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;
    use proptest::prelude::*;

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
        let r = aging_report(&invoices, &payments, d("2026-04-15"), 90).unwrap();
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

    /// Two invoices of one customer whose open amounts add up past `i64::MAX` (built
    /// directly: no import takes them) are an error naming the sum, not a wrapped negative
    /// balance or a panic.
    #[test]
    fn two_huge_invoices_are_an_error_not_a_negative_balance() {
        let half = i64::MAX / 2 + 1;
        // Issued before the DSO period: only the open balances are added up.
        let invoices = vec![
            inv("I1", "C1", "2025-01-01", "2025-01-31", half),
            inv("I2", "C1", "2025-01-01", "2025-01-31", half),
        ];
        let err = aging_report(&invoices, &[], d("2026-02-15"), 90).unwrap_err();
        assert_eq!(
            err,
            MoneyError::SumOverflow {
                what: "the open invoices of all customers".into(),
                currency: Currency::USD
            }
        );
        assert!(
            err.to_string()
                .starts_with("the open invoices of all customers in USD add up to more than"),
            "{err}"
        );
        // Issued in the period: the credit sales overflow first.
        let recent = vec![
            inv("I1", "C1", "2026-01-01", "2026-01-31", half),
            inv("I2", "C1", "2026-01-01", "2026-01-31", half),
        ];
        let err = aging_report(&recent, &[], d("2026-02-15"), 90).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the credit sales of the period in USD"),
            "{err}"
        );
        let err = open_balances(&invoices, &[], d("2026-02-15")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the open invoices of customer C1 in USD"),
            "{err}"
        );
        // Each customer alone fits; the portfolio total does not.
        let two = vec![
            inv("I1", "C1", "2026-01-01", "2026-01-31", half),
            inv("I2", "C2", "2026-01-01", "2026-01-31", half),
        ];
        assert!(aging_report(&two, &[], d("2026-02-15"), 90).is_err());
        assert_eq!(
            open_balances(&two[..1], &[], d("2026-02-15")).unwrap(),
            vec![Money::new(half, Currency::USD)]
        );
    }

    /// Payments adding up past `i64::MAX` on one invoice, or a net negative payment total,
    /// leave the invoice's open amount exact and within 0..=amount.
    #[test]
    fn an_invoice_state_is_exact_whatever_its_payments_add_up_to() {
        let invoices = vec![inv("I1", "C1", "2026-01-01", "2026-01-31", 100_00)];
        let huge = vec![
            pay("I1", "C1", "2026-02-01", i64::MAX),
            pay("I1", "C1", "2026-02-02", i64::MAX),
        ];
        let s = &invoice_states(&invoices, &huge, d("2026-03-01"))[0];
        assert_eq!((s.open_minor, s.paid_minor), (0, i64::MAX));
        assert_eq!(s.settled_on, Some(d("2026-02-01")));
        let refund = vec![pay("I1", "C1", "2026-02-01", i64::MIN)];
        let s = &invoice_states(&invoices, &refund, d("2026-03-01"))[0];
        assert_eq!(s.open_minor, 100_00);
    }

    fn date() -> impl Strategy<Value = NaiveDate> {
        prop_oneof![
            Just(NaiveDate::MIN),
            Just(NaiveDate::MAX),
            (NaiveDate::MIN.num_days_from_ce()..=NaiveDate::MAX.num_days_from_ce())
                .prop_map(|n| NaiveDate::from_num_days_from_ce_opt(n).unwrap_or(NaiveDate::MIN)),
            (-3_000_i32..3_000)
                .prop_map(|k| d("2026-01-01") + chrono::Duration::days(i64::from(k))),
        ]
    }

    fn amount() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(i64::MAX),
            Just(i64::MIN),
            Just(i64::MAX / 2 + 1),
            any::<i64>(),
            -1_000_00_i64..1_000_000_00,
        ]
    }

    prop_compose! {
        fn invoice()(n in 0_u8..6, c in 0_u8..3, issued in date(), due in date(), minor in amount(), gbp in any::<bool>()) -> Invoice {
            Invoice {
                number: format!("I{n}"),
                customer_id: format!("C{c}"),
                issue_date: issued,
                due_date: due,
                amount: Money::new(minor, if gbp { Currency::GBP } else { Currency::USD }),
                disputed: false,
            }
        }
    }

    prop_compose! {
        fn payment()(n in 0_u8..6, c in 0_u8..3, on in date(), minor in amount(), gbp in any::<bool>()) -> Payment {
            Payment {
                id: format!("P{n}{on}"),
                customer_id: format!("C{c}"),
                invoice_number: format!("I{n}"),
                amount: Money::new(minor, if gbp { Currency::GBP } else { Currency::USD }),
                received_on: on,
            }
        }
    }

    proptest! {
        /// Whatever the dates (up to chrono's limits) and amounts (up to i64's), the
        /// ledger's functions return a figure or an error, never panic; and an aging
        /// report that is returned has no negative balance.
        #[test]
        fn the_ledger_never_panics_on_extreme_dates_or_amounts(
            invoices in proptest::collection::vec(invoice(), 0..8),
            payments in proptest::collection::vec(payment(), 0..8),
            as_of in date(),
            period in prop_oneof![Just(0_u32), Just(90), Just(u32::MAX), any::<u32>()],
        ) {
            let _ = period_start(as_of, period);
            for s in invoice_states(&invoices, &payments, as_of) {
                prop_assert!(s.open_minor >= 0);
                prop_assert!(s.open_minor <= s.invoice.amount.minor.max(0));
            }
            let _ = open_balances(&invoices, &payments, as_of);
            if let Ok(r) = aging_report(&invoices, &payments, as_of, period) {
                prop_assert!(r.rows.iter().all(|row| row.total >= 0 && row.buckets.iter().all(|b| *b >= 0)));
                prop_assert!(r.totals.iter().all(|t| t.total >= 0));
            }
        }
    }
}
