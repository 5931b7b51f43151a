//! Collections analytics for the manager dashboard: aging, DSO, CEI, average days
//! delinquent and promise outcomes, by risk segment and in total, per currency.
//!
//! Pure: every figure is computed from the ledger (invoices and payments), the promises
//! and an explicit `as_of` date. Money is never added across currencies: each row is one
//! (segment, currency) pair and each total one currency.
//!
//! # Definitions
//!
//! The **period** is the `period_days` days ending on `as_of`, i.e. the dates
//! `(as_of − period_days, as_of]` ([`period_start`]); the same window as the aging
//! report's DSO.
//!
//! * **Receivables at a date** `t`: the open amounts at the end of day `t` of the invoices
//!   issued on or before `t`, applying the payments received on or before `t`
//!   ([`invoice_states`]; an overpaid invoice counts 0, never negative). *Current*
//!   receivables are those on invoices not yet past due at `t`.
//! * **Beginning receivables** `B`: receivables at `as_of − period_days`.
//!   **Ending receivables** `E`: receivables at `as_of` (the aging report's total), of
//!   which `E_current` are current. **Credit sales** `S`: the amounts of the invoices
//!   issued in the period.
//! * **CEI** (collection effectiveness index) = `(B + S − E) ÷ (B + S − E_current) × 100`:
//!   what was collected in the period out of what was collectable. `None` when the
//!   denominator is 0 (nothing was collectable). With non-negative payments it is always
//!   within 0..=100: an invoice's open amount never grows, so `E ≤ B + S`, and
//!   `E_current ≤ E`.
//! * **DSO** (days sales outstanding, standard method) = `E ÷ S × period_days`
//!   ([`dso_days`], the aging report's definition). `None` when `S` is 0.
//! * **Best possible DSO** = `E_current ÷ S × period_days`. `None` when `S` is 0.
//! * **Average days delinquent** (ADD) = DSO − best possible DSO
//!   `= (E − E_current) ÷ S × period_days`, computed in that second form. It is never
//!   negative (the overdue part of receivables is never negative), so there is nothing
//!   to clamp. `None` when `S` is 0.
//! * **Segment**: what [`risk::assess`] gives for the customer's payment history as of
//!   `as_of` over all of its invoices and payments (every currency) and its flags — the
//!   same call the agent makes when it loads an account. A customer id that appears on
//!   an invoice, payment or promise but not among the customers is assessed without
//!   flags.
//! * **Promises** counted are those made on or before `as_of` whose promised date falls
//!   after the period's start (so: every promise due in the period, and every one still
//!   pending). Each is judged with [`PromiseToPay::assess`] as of `as_of` with the grace
//!   period; cancelled promises are not counted. Amounts are the promised amounts.
//! * A row's **customers** are the distinct customers of that segment with an invoice in
//!   that currency issued on or before `as_of`, or a counted promise in that currency.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::customer::{Customer, CustomerFlags};
use crate::invoice::{Invoice, Payment};
use crate::ledger::{AgingBucket, dso_days, in_period, invoice_states, period_start};
use crate::money::{Currency, Money, MoneyError};
use crate::promise::{PromiseStatus, PromiseToPay};
use crate::risk::{self, RiskSegment};

/// The DSO/CEI period the dashboard and its daily snapshots use unless told otherwise.
pub const DEFAULT_PERIOD_DAYS: u32 = 90;

/// Days after a promised date before an unpaid promise counts as broken (the dashboard's
/// and its daily snapshots').
pub const PROMISE_GRACE_DAYS: i64 = 3;

/// What the dashboard is computed from. The store gives the slices:
/// `store.ledger()` (customers, invoices, payments) and `store.promises(None)`.
#[derive(Clone, Copy, Debug)]
pub struct DashboardInput<'a> {
    pub customers: &'a [Customer],
    pub invoices: &'a [Invoice],
    pub payments: &'a [Payment],
    pub promises: &'a [PromiseToPay],
    pub as_of: NaiveDate,
    /// Length of the DSO/CEI period ending on `as_of`, in days (90 is usual).
    pub period_days: u32,
    /// Days after the promised date a payment still keeps a promise.
    pub promise_grace_days: i64,
}

/// One segment's (or, with `segment: None`, the whole portfolio's) figures in one
/// currency. Amounts are minor units of `currency`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentRow {
    /// `None` on a total row.
    pub segment: Option<RiskSegment>,
    pub currency: Currency,
    pub customers: usize,
    /// Open balances by aging bucket, indexed like [`AgingBucket::ALL`] (labels in
    /// [`Dashboard::bucket_labels`]).
    pub buckets: [i64; 5],
    /// Ending receivables `E`.
    pub open_total: i64,
    /// `E − E_current`.
    pub overdue_total: i64,
    /// Beginning receivables `B`.
    pub receivables_begin: i64,
    /// Credit sales in the period `S`.
    pub credit_sales: i64,
    pub dso_days: Option<f64>,
    pub best_possible_dso_days: Option<f64>,
    pub cei_percent: Option<f64>,
    pub avg_days_delinquent: Option<f64>,
    pub promises_kept: usize,
    pub promises_broken: usize,
    pub promises_open: usize,
    pub promised_kept_amount: i64,
    pub promised_broken_amount: i64,
    pub promised_open_amount: i64,
}

/// How many customers a segment has, across currencies (customers without any invoice
/// are here too: they are `in_review`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentCount {
    pub segment: RiskSegment,
    pub customers: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    pub as_of: NaiveDate,
    pub period_days: u32,
    /// The period is `(period_start, as_of]`.
    pub period_start: NaiveDate,
    pub promise_grace_days: i64,
    /// The aging buckets' labels, in the order of [`SegmentRow::buckets`].
    pub bucket_labels: Vec<String>,
    /// Every segment that has customers, in segment order.
    pub segments: Vec<SegmentCount>,
    /// By currency, then segment (low, medium, high, in_review); only pairs with
    /// customers.
    pub rows: Vec<SegmentRow>,
    /// One per currency, `segment: None`.
    pub totals: Vec<SegmentRow>,
}

/// CEI in percent from its four ingredients (see the module docs); `None` when nothing
/// was collectable.
pub fn cei_percent(
    begin_minor: i64,
    credit_sales_minor: i64,
    end_total_minor: i64,
    end_current_minor: i64,
) -> Option<f64> {
    let collectable =
        i128::from(begin_minor) + i128::from(credit_sales_minor) - i128::from(end_current_minor);
    let collected =
        i128::from(begin_minor) + i128::from(credit_sales_minor) - i128::from(end_total_minor);
    (collectable > 0).then(|| collected as f64 / collectable as f64 * 100.0)
}

/// Each customer's risk segment as of `as_of`, by customer id: the customers given and
/// any other id found on an invoice, a payment or a promise (those without flags). An
/// error if a customer's open balance does not fit in `i64` minor units.
pub fn customer_segments(
    customers: &[Customer],
    invoices: &[Invoice],
    payments: &[Payment],
    promises: &[PromiseToPay],
    as_of: NaiveDate,
) -> Result<BTreeMap<String, RiskSegment>, MoneyError> {
    let mut ids: BTreeMap<&str, CustomerFlags> = BTreeMap::new();
    for c in customers {
        ids.insert(c.id.as_str(), c.flags);
    }
    let other_ids = invoices
        .iter()
        .map(|i| i.customer_id.as_str())
        .chain(payments.iter().map(|p| p.customer_id.as_str()))
        .chain(promises.iter().map(|p| p.customer_id.as_str()));
    for id in other_ids {
        ids.entry(id).or_default();
    }
    let mut inv_by: HashMap<&str, Vec<Invoice>> = HashMap::new();
    for i in invoices {
        inv_by
            .entry(i.customer_id.as_str())
            .or_default()
            .push(i.clone());
    }
    let mut pay_by: HashMap<&str, Vec<Payment>> = HashMap::new();
    for p in payments {
        pay_by
            .entry(p.customer_id.as_str())
            .or_default()
            .push(p.clone());
    }
    ids.into_iter()
        .map(|(id, flags)| {
            let inv = inv_by.get(id).map(Vec::as_slice).unwrap_or_default();
            let pay = pay_by.get(id).map(Vec::as_slice).unwrap_or_default();
            let segment = risk::assess(risk::payment_history(inv, pay, as_of)?, &flags).segment;
            Ok((id.to_string(), segment))
        })
        .collect()
}

#[derive(Default)]
struct Acc<'a> {
    customers: BTreeSet<&'a str>,
    buckets: [i64; 5],
    open_total: i64,
    begin: i64,
    sales: i64,
    kept: (usize, i64),
    broken: (usize, i64),
    open: (usize, i64),
}

impl Acc<'_> {
    fn row(&self, segment: Option<RiskSegment>, currency: Currency, days: u32) -> SegmentRow {
        let current = self.buckets[AgingBucket::Current.index()];
        // 0 <= current <= open_total (sums of the same non-negative open amounts).
        let overdue = self.open_total.saturating_sub(current);
        SegmentRow {
            segment,
            currency,
            customers: self.customers.len(),
            buckets: self.buckets,
            open_total: self.open_total,
            overdue_total: overdue,
            receivables_begin: self.begin,
            credit_sales: self.sales,
            dso_days: dso_days(self.open_total, self.sales, days),
            best_possible_dso_days: dso_days(current, self.sales, days),
            cei_percent: cei_percent(self.begin, self.sales, self.open_total, current),
            avg_days_delinquent: dso_days(overdue, self.sales, days),
            promises_kept: self.kept.0,
            promises_broken: self.broken.0,
            promises_open: self.open.0,
            promised_kept_amount: self.kept.1,
            promised_broken_amount: self.broken.1,
            promised_open_amount: self.open.1,
        }
    }
}

/// Computes the dashboard (definitions in the module docs). Every sum is checked: one that
/// does not fit in `i64` minor units is [`MoneyError::SumOverflow`] naming it, never a
/// wrapped figure or a panic.
pub fn dashboard(input: &DashboardInput<'_>) -> Result<Dashboard, MoneyError> {
    let DashboardInput {
        customers,
        invoices,
        payments,
        promises,
        as_of,
        period_days,
        promise_grace_days,
    } = *input;
    let start = period_start(as_of, period_days);
    let segments = customer_segments(customers, invoices, payments, promises, as_of)?;
    let segment_of =
        |id: &str| -> RiskSegment { segments.get(id).copied().unwrap_or(RiskSegment::InReview) };

    // Key: (currency, None for the total | Some(segment)).
    let mut accs: BTreeMap<(Currency, Option<RiskSegment>), Acc<'_>> = BTreeMap::new();
    let end_states = invoice_states(invoices, payments, as_of);
    let begin_states = invoice_states(invoices, payments, start);
    for (end, begin) in end_states.iter().zip(&begin_states) {
        let inv = end.invoice;
        if inv.issue_date > as_of {
            continue;
        }
        let cur = inv.amount.currency;
        let seg = segment_of(&inv.customer_id);
        for key in [(cur, None), (cur, Some(seg))] {
            let acc = accs.entry(key).or_default();
            acc.customers.insert(inv.customer_id.as_str());
            let what = |figure: &'static str| {
                let whose = match key.1 {
                    None => "all customers".to_string(),
                    Some(s) => format!("the {s} segment"),
                };
                move || format!("{figure} of {whose}")
            };
            if end.is_open() {
                let b = end.bucket().index();
                Money::add_minor(
                    &mut acc.buckets[b],
                    end.open_minor,
                    cur,
                    what("the receivables"),
                )?;
                Money::add_minor(
                    &mut acc.open_total,
                    end.open_minor,
                    cur,
                    what("the receivables"),
                )?;
            }
            if in_period(inv.issue_date, as_of, period_days) {
                Money::add_minor(
                    &mut acc.sales,
                    inv.amount.minor,
                    cur,
                    what("the credit sales"),
                )?;
            }
            if inv.issue_date <= start {
                Money::add_minor(
                    &mut acc.begin,
                    begin.open_minor,
                    cur,
                    what("the beginning receivables"),
                )?;
            }
        }
    }

    let mut pay_by: HashMap<&str, Vec<Payment>> = HashMap::new();
    for p in payments {
        pay_by
            .entry(p.customer_id.as_str())
            .or_default()
            .push(p.clone());
    }
    for p in promises {
        if p.created_at.date_naive() > as_of || p.promised_date <= start {
            continue;
        }
        let pays = pay_by
            .get(p.customer_id.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let status = p.assess(pays, as_of, promise_grace_days);
        let cur = p.amount.currency;
        let seg = segment_of(&p.customer_id);
        for key in [(cur, None), (cur, Some(seg))] {
            let acc = accs.entry(key).or_default();
            let slot = match status {
                PromiseStatus::Kept => &mut acc.kept,
                PromiseStatus::Broken => &mut acc.broken,
                PromiseStatus::Open => &mut acc.open,
                PromiseStatus::Cancelled => continue,
            };
            slot.0 += 1;
            Money::add_minor(&mut slot.1, p.amount.minor, cur, || {
                format!(
                    "the promises {} of {}",
                    status.as_str(),
                    match key.1 {
                        None => "all customers".to_string(),
                        Some(s) => format!("the {s} segment"),
                    }
                )
            })?;
            acc.customers.insert(p.customer_id.as_str());
        }
    }
    // A currency seen only on cancelled promises would leave empty accumulators.
    accs.retain(|_, acc| !acc.customers.is_empty());

    let mut rows = Vec::new();
    let mut totals = Vec::new();
    for ((cur, seg), acc) in &accs {
        let row = acc.row(*seg, *cur, period_days);
        if seg.is_some() {
            rows.push(row);
        } else {
            totals.push(row);
        }
    }
    let mut counts: BTreeMap<RiskSegment, usize> = BTreeMap::new();
    for seg in segments.values() {
        *counts.entry(*seg).or_default() += 1;
    }
    Ok(Dashboard {
        as_of,
        period_days,
        period_start: start,
        promise_grace_days,
        bucket_labels: AgingBucket::ALL
            .iter()
            .map(|b| b.label().to_string())
            .collect(),
        segments: counts
            .into_iter()
            .map(|(segment, customers)| SegmentCount { segment, customers })
            .collect(),
        rows,
        totals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::{Jurisdiction, Tier};
    use crate::ledger::aging_report;
    use crate::money::Money;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn customer(id: &str) -> Customer {
        Customer {
            id: id.into(),
            name: id.into(),
            tier: Tier::Standard,
            jurisdiction: Jurisdiction::B2b,
            time_zone: chrono_tz::UTC,
            contacts: vec![],
            flags: CustomerFlags::default(),
            facts: Default::default(),
        }
    }

    fn inv(n: &str, cust: &str, issued: &str, due: &str, minor: i64, cur: Currency) -> Invoice {
        Invoice {
            number: n.into(),
            customer_id: cust.into(),
            issue_date: d(issued),
            due_date: d(due),
            amount: Money::new(minor, cur),
            disputed: false,
        }
    }

    fn pay(n: &str, cust: &str, on: &str, minor: i64, cur: Currency) -> Payment {
        Payment {
            id: format!("p-{n}-{on}"),
            customer_id: cust.into(),
            invoice_number: n.into(),
            amount: Money::new(minor, cur),
            received_on: d(on),
        }
    }

    fn promise(id: &str, cust: &str, minor: i64, made: &str, due: &str) -> PromiseToPay {
        PromiseToPay {
            id: id.into(),
            customer_id: cust.into(),
            invoice_numbers: vec![],
            amount: Money::new(minor, Currency::USD),
            promised_date: d(due),
            created_at: format!("{made}T12:00:00Z").parse().unwrap(),
            status: PromiseStatus::Open,
        }
    }

    const USD: Currency = Currency::USD;
    const GBP: Currency = Currency::GBP;

    /// As of 2026-06-30 with a 90-day period: the period is (2026-04-01, 2026-06-30].
    ///
    /// L (low: three invoices, none late)
    ///   L1 USD 1000.00 issued 04-01 due 04-30, paid 04-29      → issued on the start day:
    ///                                                             open at the start, no sale
    ///   L2 USD 2000.00 issued 04-10 due 05-10, paid 05-08      → a sale, collected
    ///   L3 USD 3000.00 issued 06-10 due 07-10, unpaid          → a sale, current
    ///   B = 1000, S = 5000, E = 3000, E_current = 3000
    ///   CEI = (1000 + 5000 − 3000) / (1000 + 5000 − 3000) = 100 %
    ///   DSO = 3000 / 5000 × 90 = 54; best possible = 54; ADD = 0
    /// H (high: avg 76 days late, all delinquent, all open overdue, 150 days past due)
    ///   H1 USD 4000.00 issued 01-01 due 01-31, unpaid          → 150 days past due (90+)
    ///   H2 USD 1000.00 issued 02-01 due 03-03, paid 04-20      → open 1000 at the start
    ///   H3 USD 2000.00 issued 05-01 due 05-31, 500 paid 06-15  → 1500 open, 30 days (1-30)
    ///   H4 GBP  100.00 issued 06-20 due 07-20, unpaid          → GBP sale, current
    ///   USD: B = 4000 + 1000 = 5000, S = 2000, E = 4000 + 1500 = 5500, E_current = 0
    ///   CEI = (5000 + 2000 − 5500) / (5000 + 2000 − 0) = 1500 / 7000 = 21.428571 %
    ///   DSO = 5500 / 2000 × 90 = 247.5; best possible = 0; ADD = 247.5
    ///   GBP: B = 0, S = 100, E = 100, E_current = 100
    ///   CEI = 0 / 0 → None; DSO = 90; best possible = 90; ADD = 0
    /// R (in review: one invoice)
    ///   R1 USD  800.00 issued 01-15 due 02-14, paid 03-01      → nothing in the period
    ///   B = S = E = 0: CEI, DSO and ADD are None
    /// G (in review: one invoice)
    ///   G1 GBP  900.00 issued 05-15 due 06-14, 400 paid 06-20  → 500 open, 16 days (1-30)
    ///   B = 0, S = 900, E = 500, E_current = 0
    ///   CEI = 400 / 900 = 44.444444 %; DSO = 500 / 900 × 90 = 50; ADD = 50
    /// Totals
    ///   USD: B = 6000, S = 7000, E = 8500, E_current = 3000
    ///     CEI = (6000 + 7000 − 8500) / (6000 + 7000 − 3000) = 4500 / 10000 = 45 %
    ///     DSO = 8500 / 7000 × 90 = 109.285714; best = 3000 / 7000 × 90 = 38.571429;
    ///     ADD = 5500 / 7000 × 90 = 70.714286
    ///   GBP: B = 0, S = 1000, E = 600, E_current = 100
    ///     CEI = 400 / 900 = 44.444444 %; DSO = 54; best = 9; ADD = 45
    /// Promises (grace 3 days)
    ///   P1 H 1500.00 made 06-01 for 06-10: nothing paid 06-01..06-13      → broken
    ///   P2 L 2000.00 made 05-01 for 05-08: L2 paid 05-08                  → kept
    ///   P3 H 1500.00 made 06-28 for 07-05                                 → open
    ///   P4 L  300.00 made 02-01 for 04-01: due on the start day, so before
    ///                                      the period (it was broken)      → not counted
    ///   P5 H  999.00 made 06-01 for 06-10, cancelled                      → not counted
    ///   P6 H  100.00 made 07-01 (after as_of)                             → not counted
    fn portfolio() -> (Vec<Customer>, Vec<Invoice>, Vec<Payment>, Vec<PromiseToPay>) {
        let customers = ["L", "H", "R", "G"].map(customer).to_vec();
        let invoices = vec![
            inv("L1", "L", "2026-04-01", "2026-04-30", 1000_00, USD),
            inv("L2", "L", "2026-04-10", "2026-05-10", 2000_00, USD),
            inv("L3", "L", "2026-06-10", "2026-07-10", 3000_00, USD),
            inv("H1", "H", "2026-01-01", "2026-01-31", 4000_00, USD),
            inv("H2", "H", "2026-02-01", "2026-03-03", 1000_00, USD),
            inv("H3", "H", "2026-05-01", "2026-05-31", 2000_00, USD),
            inv("H4", "H", "2026-06-20", "2026-07-20", 100_00, GBP),
            inv("R1", "R", "2026-01-15", "2026-02-14", 800_00, USD),
            inv("G1", "G", "2026-05-15", "2026-06-14", 900_00, GBP),
            // Issued after as_of: in nothing.
            inv("L4", "L", "2026-07-02", "2026-08-01", 7777_00, USD),
        ];
        let payments = vec![
            pay("L1", "L", "2026-04-29", 1000_00, USD),
            pay("L2", "L", "2026-05-08", 2000_00, USD),
            pay("H2", "H", "2026-04-20", 1000_00, USD),
            pay("H3", "H", "2026-06-15", 500_00, USD),
            pay("R1", "R", "2026-03-01", 800_00, USD),
            pay("G1", "G", "2026-06-20", 400_00, GBP),
            // Received after as_of: ignored.
            pay("L3", "L", "2026-07-01", 3000_00, USD),
        ];
        let mut p5 = promise("P5", "H", 999_00, "2026-06-01", "2026-06-10");
        p5.status = PromiseStatus::Cancelled;
        let promises = vec![
            promise("P1", "H", 1500_00, "2026-06-01", "2026-06-10"),
            promise("P2", "L", 2000_00, "2026-05-01", "2026-05-08"),
            promise("P3", "H", 1500_00, "2026-06-28", "2026-07-05"),
            promise("P4", "L", 300_00, "2026-02-01", "2026-04-01"),
            p5,
            promise("P6", "H", 100_00, "2026-07-01", "2026-07-03"),
        ];
        (customers, invoices, payments, promises)
    }

    fn close(actual: Option<f64>, expected: f64, what: &str) {
        let a = actual.unwrap_or_else(|| panic!("{what}: None, expected {expected}"));
        assert!((a - expected).abs() < 1e-6, "{what}: {a} != {expected}");
    }

    fn find(rows: &[SegmentRow], seg: Option<RiskSegment>, cur: Currency) -> &SegmentRow {
        rows.iter()
            .find(|r| r.segment == seg && r.currency == cur)
            .unwrap_or_else(|| panic!("no row {seg:?} {cur}"))
    }

    fn run() -> Dashboard {
        let (c, i, p, pr) = portfolio();
        dashboard(&DashboardInput {
            customers: &c,
            invoices: &i,
            payments: &p,
            promises: &pr,
            as_of: d("2026-06-30"),
            period_days: 90,
            promise_grace_days: 3,
        })
        .unwrap()
    }

    #[test]
    fn segments_are_what_risk_assess_gives() {
        let (c, i, p, pr) = portfolio();
        let segs = customer_segments(&c, &i, &p, &pr, d("2026-06-30")).unwrap();
        assert_eq!(segs["L"], RiskSegment::Low);
        assert_eq!(segs["H"], RiskSegment::High);
        assert_eq!(segs["R"], RiskSegment::InReview);
        assert_eq!(segs["G"], RiskSegment::InReview);
        let dash = run();
        assert_eq!(
            dash.segments,
            vec![
                SegmentCount {
                    segment: RiskSegment::Low,
                    customers: 1
                },
                SegmentCount {
                    segment: RiskSegment::High,
                    customers: 1
                },
                SegmentCount {
                    segment: RiskSegment::InReview,
                    customers: 2
                },
            ]
        );
    }

    #[test]
    fn hand_computed_rows_per_segment_and_currency() {
        let dash = run();
        assert_eq!(dash.period_start, d("2026-04-01"));
        assert_eq!(
            dash.bucket_labels,
            ["current", "1-30", "31-60", "61-90", "90+"]
        );
        let keys: Vec<(Currency, Option<RiskSegment>)> =
            dash.rows.iter().map(|r| (r.currency, r.segment)).collect();
        use RiskSegment::*;
        assert_eq!(
            keys,
            [
                (GBP, Some(High)),
                (GBP, Some(InReview)),
                (USD, Some(Low)),
                (USD, Some(High)),
                (USD, Some(InReview)),
            ]
        );

        let low = find(&dash.rows, Some(Low), USD);
        assert_eq!(low.customers, 1);
        assert_eq!(low.buckets, [3000_00, 0, 0, 0, 0]);
        assert_eq!(
            (
                low.receivables_begin,
                low.credit_sales,
                low.open_total,
                low.overdue_total
            ),
            (1000_00, 5000_00, 3000_00, 0)
        );
        close(low.cei_percent, 100.0, "low CEI");
        close(low.dso_days, 54.0, "low DSO");
        close(low.best_possible_dso_days, 54.0, "low best DSO");
        close(low.avg_days_delinquent, 0.0, "low ADD");
        assert_eq!((low.promises_kept, low.promised_kept_amount), (1, 2000_00));
        assert_eq!((low.promises_broken, low.promises_open), (0, 0));

        let high = find(&dash.rows, Some(High), USD);
        assert_eq!(high.buckets, [0, 1500_00, 0, 0, 4000_00]);
        assert_eq!(
            (
                high.receivables_begin,
                high.credit_sales,
                high.open_total,
                high.overdue_total
            ),
            (5000_00, 2000_00, 5500_00, 5500_00)
        );
        close(high.cei_percent, 1500.0 / 7000.0 * 100.0, "high CEI");
        close(high.dso_days, 247.5, "high DSO");
        close(high.best_possible_dso_days, 0.0, "high best DSO");
        close(high.avg_days_delinquent, 247.5, "high ADD");
        assert_eq!(
            (high.promises_kept, high.promises_broken, high.promises_open),
            (0, 1, 1)
        );
        assert_eq!(
            (high.promised_broken_amount, high.promised_open_amount),
            (1500_00, 1500_00)
        );

        let high_gbp = find(&dash.rows, Some(High), GBP);
        assert_eq!(high_gbp.buckets, [100_00, 0, 0, 0, 0]);
        assert_eq!(high_gbp.cei_percent, None, "nothing was collectable");
        close(high_gbp.dso_days, 90.0, "high GBP DSO");
        close(high_gbp.avg_days_delinquent, 0.0, "high GBP ADD");
        assert_eq!(high_gbp.promises_open, 0, "promises stay in their currency");

        let review = find(&dash.rows, Some(InReview), USD);
        assert_eq!(review.customers, 1);
        assert_eq!((review.open_total, review.credit_sales), (0, 0));
        assert_eq!(review.cei_percent, None);
        assert_eq!(review.dso_days, None);
        assert_eq!(review.best_possible_dso_days, None);
        assert_eq!(review.avg_days_delinquent, None);

        let review_gbp = find(&dash.rows, Some(InReview), GBP);
        assert_eq!(review_gbp.buckets, [0, 500_00, 0, 0, 0]);
        close(review_gbp.cei_percent, 400.0 / 900.0 * 100.0, "G CEI");
        close(review_gbp.dso_days, 50.0, "G DSO");
        close(review_gbp.avg_days_delinquent, 50.0, "G ADD");
    }

    #[test]
    fn hand_computed_totals_never_mix_currencies() {
        let dash = run();
        assert_eq!(dash.totals.len(), 2);
        let usd = find(&dash.totals, None, USD);
        assert_eq!(usd.customers, 3);
        assert_eq!(usd.buckets, [3000_00, 1500_00, 0, 0, 4000_00]);
        assert_eq!(
            (
                usd.receivables_begin,
                usd.credit_sales,
                usd.open_total,
                usd.overdue_total
            ),
            (6000_00, 7000_00, 8500_00, 5500_00)
        );
        close(usd.cei_percent, 45.0, "USD CEI");
        close(usd.dso_days, 8500.0 / 7000.0 * 90.0, "USD DSO");
        close(
            usd.best_possible_dso_days,
            3000.0 / 7000.0 * 90.0,
            "USD best",
        );
        close(usd.avg_days_delinquent, 5500.0 / 7000.0 * 90.0, "USD ADD");
        let add = usd.avg_days_delinquent.unwrap();
        let dso_minus_best = usd.dso_days.unwrap() - usd.best_possible_dso_days.unwrap();
        assert!((add - dso_minus_best).abs() < 1e-9, "ADD = DSO − best DSO");
        assert_eq!(
            (usd.promises_kept, usd.promises_broken, usd.promises_open),
            (1, 1, 1)
        );

        let gbp = find(&dash.totals, None, GBP);
        assert_eq!(gbp.customers, 2);
        assert_eq!(gbp.buckets, [100_00, 500_00, 0, 0, 0]);
        assert_eq!((gbp.credit_sales, gbp.open_total), (1000_00, 600_00));
        close(gbp.cei_percent, 400.0 / 900.0 * 100.0, "GBP CEI");
        close(gbp.dso_days, 54.0, "GBP DSO");
        close(gbp.best_possible_dso_days, 9.0, "GBP best");
        close(gbp.avg_days_delinquent, 45.0, "GBP ADD");
    }

    #[test]
    fn totals_agree_with_the_aging_report() {
        let (_, i, p, _) = portfolio();
        let dash = run();
        let aging = aging_report(&i, &p, d("2026-06-30"), 90).unwrap();
        for t in &aging.totals {
            let row = find(&dash.totals, None, t.currency);
            assert_eq!(row.buckets, t.buckets);
            assert_eq!(row.open_total, t.total);
            assert_eq!(row.credit_sales, t.credit_sales);
            assert_eq!(row.dso_days, t.dso_days);
        }
    }

    #[test]
    fn an_empty_portfolio_has_no_rows_and_serializes() {
        let dash = dashboard(&DashboardInput {
            customers: &[customer("X")],
            invoices: &[],
            payments: &[],
            promises: &[],
            as_of: d("2026-06-30"),
            period_days: 90,
            promise_grace_days: 3,
        })
        .unwrap();
        assert!(dash.rows.is_empty() && dash.totals.is_empty());
        assert_eq!(dash.segments[0].segment, RiskSegment::InReview);
        let json = serde_json::to_value(&dash).unwrap();
        assert_eq!(json["segments"][0]["segment"], "in_review");
        let back: Dashboard = serde_json::from_value(json).unwrap();
        assert_eq!(back, dash);
    }

    #[test]
    fn rows_serialize_without_nan_and_with_null_for_missing_ratios() {
        let dash = run();
        let json = serde_json::to_string(&dash).unwrap();
        assert!(!json.contains("NaN") && !json.contains("inf"), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let review = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["segment"] == "in_review" && r["currency"] == "USD")
            .unwrap();
        assert!(review["cei_percent"].is_null() && review["dso_days"].is_null());
        assert!(v["totals"][0]["segment"].is_null());
    }

    fn arb_ledger() -> impl Strategy<Value = (Vec<Invoice>, Vec<Payment>, i64, u32)> {
        let invoice = (
            0_i64..300,
            0_i64..90,
            1_i64..100_000,
            0_usize..4,
            any::<bool>(),
        );
        let payment = (0_usize..40, 0_i64..400, 0_i64..120_000);
        (
            prop::collection::vec(invoice, 1..40),
            prop::collection::vec(payment, 0..60),
            0_i64..400,
            1_u32..200,
        )
            .prop_map(|(invs, pays, as_of_off, period)| {
                let base = d("2026-01-01");
                let invoices: Vec<Invoice> = invs
                    .iter()
                    .enumerate()
                    .map(|(k, &(issued, terms, minor, cust, gbp))| Invoice {
                        number: format!("I{k}"),
                        customer_id: format!("C{cust}"),
                        issue_date: base + chrono::Duration::days(issued),
                        due_date: base + chrono::Duration::days(issued + terms),
                        amount: Money::new(minor, if gbp { GBP } else { USD }),
                        disputed: false,
                    })
                    .collect();
                let payments = pays
                    .iter()
                    .enumerate()
                    .map(|(k, &(which, on, minor))| {
                        let i = &invoices[which % invoices.len()];
                        Payment {
                            id: format!("P{k}"),
                            customer_id: i.customer_id.clone(),
                            invoice_number: i.number.clone(),
                            amount: Money::new(minor, i.amount.currency),
                            received_on: base + chrono::Duration::days(on),
                        }
                    })
                    .collect();
                (invoices, payments, as_of_off, period)
            })
    }

    proptest! {
        /// Payments are non-negative (here: up to 1.2× an invoice, so overpayments too), so
        /// an invoice's open amount never grows: CEI stays within 0..=100 and ADD ≥ 0.
        #[test]
        fn cei_is_a_percentage_and_add_is_never_negative(
            (invoices, payments, as_of_off, period) in arb_ledger()
        ) {
            let as_of = d("2026-01-01") + chrono::Duration::days(as_of_off);
            let customers: Vec<Customer> = (0..4).map(|k| customer(&format!("C{k}"))).collect();
            let dash = dashboard(&DashboardInput {
                customers: &customers,
                invoices: &invoices,
                payments: &payments,
                promises: &[],
                as_of,
                period_days: period,
                promise_grace_days: 3,
            }).unwrap();
            for r in dash.rows.iter().chain(&dash.totals) {
                if let Some(cei) = r.cei_percent {
                    prop_assert!((0.0..=100.0).contains(&cei), "{r:?}");
                }
                if let Some(add) = r.avg_days_delinquent {
                    prop_assert!(add >= 0.0 && add.is_finite(), "{r:?}");
                }
                prop_assert_eq!(r.dso_days.is_some(), r.credit_sales > 0);
                prop_assert_eq!(r.buckets.iter().sum::<i64>(), r.open_total);
            }
            // The segment rows of a currency add up to its total.
            for t in &dash.totals {
                let rows: Vec<&SegmentRow> =
                    dash.rows.iter().filter(|r| r.currency == t.currency).collect();
                for b in 0..5 {
                    prop_assert_eq!(rows.iter().map(|r| r.buckets[b]).sum::<i64>(), t.buckets[b]);
                }
                prop_assert_eq!(rows.iter().map(|r| r.credit_sales).sum::<i64>(), t.credit_sales);
                prop_assert_eq!(
                    rows.iter().map(|r| r.receivables_begin).sum::<i64>(),
                    t.receivables_begin
                );
                prop_assert_eq!(rows.iter().map(|r| r.customers).sum::<usize>(), t.customers);
            }
            let aging = aging_report(&invoices, &payments, as_of, period).unwrap();
            for a in &aging.totals {
                if let Some(t) = dash.totals.iter().find(|t| t.currency == a.currency) {
                    prop_assert_eq!(t.open_total, a.total);
                    prop_assert_eq!(t.dso_days, a.dso_days);
                } else {
                    // A currency without invoices issued by as_of: nothing open, no sales.
                    prop_assert_eq!((a.total, a.credit_sales), (0, 0));
                }
            }
        }
    }

    /// Two customers whose invoices each fit but together pass `i64::MAX`: the dashboard
    /// is an error naming the sum, not a wrapped negative total.
    #[test]
    fn a_total_that_overflows_is_an_error_not_a_negative_figure() {
        let half = i64::MAX / 2 + 1;
        let invoices = vec![
            inv("A1", "A", "2026-06-01", "2026-07-01", half, USD),
            inv("B1", "B", "2026-06-01", "2026-07-01", half, USD),
        ];
        let err = dashboard(&DashboardInput {
            customers: &[customer("A"), customer("B")],
            invoices: &invoices,
            payments: &[],
            promises: &[],
            as_of: d("2026-06-30"),
            period_days: 90,
            promise_grace_days: 3,
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the receivables of all customers in USD add up to more than"),
            "{err}"
        );
    }

    fn extreme_date() -> impl Strategy<Value = NaiveDate> {
        prop_oneof![
            Just(NaiveDate::MIN),
            Just(NaiveDate::MAX),
            any::<i32>()
                .prop_map(|n| NaiveDate::from_num_days_from_ce_opt(n).unwrap_or(NaiveDate::MAX)),
            (-400_i64..400).prop_map(|k| d("2026-06-30") + chrono::Duration::days(k)),
        ]
    }

    fn extreme_minor() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(i64::MAX),
            Just(i64::MIN),
            any::<i64>(),
            0_i64..1_000_000
        ]
    }

    proptest! {
        /// At chrono's limits and i64's, the dashboard (and the promise judging it calls)
        /// returns figures or an error, never panics.
        #[test]
        fn the_dashboard_never_panics_on_extreme_dates_or_amounts(
            rows in prop::collection::vec(
                (extreme_date(), extreme_date(), extreme_minor(), 0_usize..3, extreme_date(), extreme_minor()),
                0..8,
            ),
            promises in prop::collection::vec((extreme_date(), extreme_date(), extreme_minor(), 0_usize..3), 0..4),
            as_of in extreme_date(),
            period in any::<u32>(),
            grace in any::<i64>(),
        ) {
            let mut invoices = Vec::new();
            let mut payments = Vec::new();
            for (k, (issued, due, minor, cust, paid_on, paid)) in rows.into_iter().enumerate() {
                let c = format!("C{cust}");
                invoices.push(Invoice {
                    number: format!("I{k}"),
                    customer_id: c.clone(),
                    issue_date: issued,
                    due_date: due,
                    amount: Money::new(minor, USD),
                    disputed: false,
                });
                payments.push(Payment {
                    id: format!("P{k}"),
                    customer_id: c,
                    invoice_number: format!("I{k}"),
                    amount: Money::new(paid, USD),
                    received_on: paid_on,
                });
            }
            let promises: Vec<PromiseToPay> = promises
                .into_iter()
                .enumerate()
                .map(|(k, (made, due, minor, cust))| PromiseToPay {
                    id: format!("PTP{k}"),
                    customer_id: format!("C{cust}"),
                    invoice_numbers: vec![],
                    amount: Money::new(minor, USD),
                    promised_date: due,
                    created_at: made.and_time(chrono::NaiveTime::MIN).and_utc(),
                    status: PromiseStatus::Open,
                })
                .collect();
            let customers: Vec<Customer> = (0..3).map(|k| customer(&format!("C{k}"))).collect();
            let _ = dashboard(&DashboardInput {
                customers: &customers,
                invoices: &invoices,
                payments: &payments,
                promises: &promises,
                as_of,
                period_days: period,
                promise_grace_days: grace,
            });
        }
    }
}
