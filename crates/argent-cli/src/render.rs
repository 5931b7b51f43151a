//! Plain-text tables for the terminal.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use chrono::NaiveDate;
use serde::Serialize;

use argent_core::ledger::AgingBucket;
use argent_core::risk::{RiskAssessment, assess, payment_history};
use argent_core::{AgingReport, Customer, Invoice, Money, Payment, RiskSegment};
use argent_store::LedgerSnapshot;

fn amount(minor: i64, cur: argent_core::Currency) -> String {
    Money::new(minor, cur).amount_string()
}

pub fn aging(report: &AgingReport, customers: &[Customer], top: usize) -> String {
    let names: HashMap<&str, &str> = customers
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str()))
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "AR aging as of {} (open balances; DSO over {} days)",
        report.as_of, report.dso_period_days
    );
    let header = |out: &mut String, first: &str| {
        let _ = write!(out, "{first:<38} {:>4}", "cur");
        for b in AgingBucket::ALL {
            let _ = write!(out, " {:>14}", b.label());
        }
        let _ = writeln!(out, " {:>15}", "total");
    };
    if top > 0 && !report.rows.is_empty() {
        header(&mut out, "customer");
        for row in report.rows.iter().take(top) {
            let name = names.get(row.customer_id.as_str()).copied().unwrap_or("?");
            let label: String = format!("{} {}", row.customer_id, name)
                .chars()
                .take(38)
                .collect();
            let _ = write!(out, "{label:<38} {:>4}", row.currency.as_str());
            for v in row.buckets {
                let _ = write!(out, " {:>14}", amount(v, row.currency));
            }
            let _ = writeln!(out, " {:>15}", amount(row.total, row.currency));
        }
        if report.rows.len() > top {
            let _ = writeln!(
                out,
                "… and {} more customers with an open balance",
                report.rows.len() - top
            );
        }
        let _ = writeln!(out);
    }
    header(&mut out, "total");
    for t in &report.totals {
        let _ = write!(out, "{:<38} {:>4}", "all customers", t.currency.as_str());
        for v in t.buckets {
            let _ = write!(out, " {:>14}", amount(v, t.currency));
        }
        let _ = writeln!(out, " {:>15}", amount(t.total, t.currency));
    }
    let _ = writeln!(out);
    for t in &report.totals {
        match t.dso_days {
            Some(d) => {
                let _ = writeln!(
                    out,
                    "DSO {}: {:.1} days (open AR {} / credit sales {} over {} days)",
                    t.currency,
                    d,
                    amount(t.total, t.currency),
                    amount(t.credit_sales, t.currency),
                    report.dso_period_days
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "DSO {}: n/a (no credit sales in the last {} days)",
                    t.currency, report.dso_period_days
                );
            }
        }
    }
    out
}

#[derive(Serialize)]
pub struct SegmentRow {
    pub customer_id: String,
    pub name: String,
    pub tier: String,
    #[serde(flatten)]
    pub assessment: RiskAssessment,
}

/// Every customer's risk assessment; an error if a customer's open balance does not fit in
/// `i64` minor units.
pub fn assess_all(
    ledger: &LedgerSnapshot,
    as_of: NaiveDate,
) -> Result<Vec<SegmentRow>, argent_core::MoneyError> {
    let mut inv: HashMap<&str, Vec<Invoice>> = HashMap::new();
    for i in &ledger.invoices {
        inv.entry(i.customer_id.as_str())
            .or_default()
            .push(i.clone());
    }
    let mut pay: HashMap<&str, Vec<Payment>> = HashMap::new();
    for p in &ledger.payments {
        pay.entry(p.customer_id.as_str())
            .or_default()
            .push(p.clone());
    }
    ledger
        .customers
        .iter()
        .map(|c| {
            let i = inv.get(c.id.as_str()).map_or(&[][..], Vec::as_slice);
            let p = pay.get(c.id.as_str()).map_or(&[][..], Vec::as_slice);
            Ok(SegmentRow {
                customer_id: c.id.clone(),
                name: c.name.clone(),
                tier: c.tier.to_string(),
                assessment: assess(payment_history(i, p, as_of)?, &c.flags),
            })
        })
        .collect()
}

pub fn segments(rows: &[SegmentRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<32} {:<10} {:<10} {:>9} {:>7}  why",
        "id", "name", "tier", "segment", "avg late", "late %"
    );
    for r in rows {
        let h = &r.assessment.history;
        let name: String = r.name.chars().take(32).collect();
        let _ = writeln!(
            out,
            "{:<8} {:<32} {:<10} {:<10} {:>9.1} {:>7.0}  {}",
            r.customer_id,
            name,
            r.tier,
            r.assessment.segment.as_str(),
            h.avg_days_late,
            h.delinquency_rate * 100.0,
            r.assessment.reasons.join("; ")
        );
    }
    out.push_str(&segment_summary(rows));
    out
}

pub fn segment_summary(rows: &[SegmentRow]) -> String {
    let mut counts: BTreeMap<RiskSegment, usize> = BTreeMap::new();
    for r in rows {
        *counts.entry(r.assessment.segment).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    format!(
        "risk segments ({} customers): {}\n",
        rows.len(),
        parts.join(", ")
    )
}
