//! A realistic, deterministic sample portfolio: strategic accounts that pay on time,
//! standard accounts that are sometimes late, and chronic late payers with old debt.

use chrono::{Duration, NaiveDate};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::customer::{Channel, Contact, Customer, CustomerFlags, Jurisdiction, Tier};
use crate::import::Portfolio;
use crate::invoice::{Invoice, Payment};
use crate::money::{Currency, Money};

#[derive(Clone, Debug)]
pub struct DemoConfig {
    pub customers: usize,
    pub seed: u64,
    /// The day the portfolio is "exported"; invoices span the year before it.
    pub as_of: NaiveDate,
    /// Mean invoices per customer (each customer gets between half and one and a half times it).
    pub invoices_per_customer: usize,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            customers: 200,
            seed: 7,
            as_of: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap_or_default(),
            invoices_per_customer: 20,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Strategic,
    Standard,
    ChronicLate,
}

const ADJECTIVES: &[&str] = &[
    "Northwind",
    "Blue Ridge",
    "Harbor",
    "Summit",
    "Granite",
    "Evergreen",
    "Lakeside",
    "Copperfield",
    "Riverstone",
    "Pioneer",
    "Silverline",
    "Oakmont",
    "Redwood",
    "Bayview",
    "Ironbridge",
    "Meadow",
];
const NOUNS: &[&str] = &[
    "Logistics",
    "Foods",
    "Engineering",
    "Supply",
    "Healthcare",
    "Retail",
    "Builders",
    "Analytics",
    "Textiles",
    "Manufacturing",
    "Hospitality",
    "Pharma",
    "Freight",
    "Media",
    "Energy",
    "Dental",
];
const SUFFIXES: &[&str] = &["Inc.", "LLC", "Ltd", "GmbH", "Co.", "Group", "plc", "Corp."];
const FIRST: &[&str] = &[
    "James", "Mary", "Robert", "Patricia", "Michael", "Linda", "David", "Susan", "Daniel", "Karen",
    "Oliver", "Amelia", "Harry", "Isla", "George", "Sophie", "Priya", "Mohammed", "Wei", "Lucia",
];
const LAST: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Taylor",
    "Evans", "Wilson", "Thomas", "Patel", "Khan", "Chen", "Murphy", "Walker", "Hughes", "Lopez",
    "Clarke",
];
const US_ZONES: &[Tz] = &[
    chrono_tz::America::New_York,
    chrono_tz::America::Chicago,
    chrono_tz::America::Denver,
    chrono_tz::America::Los_Angeles,
    chrono_tz::America::Phoenix,
];

fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

/// Generates the portfolio. The same config always yields the same portfolio.
pub fn generate(cfg: &DemoConfig) -> Portfolio {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut p = Portfolio::default();
    let mut invoice_seq = 100_000_u64;
    for i in 0..cfg.customers {
        let roll = rng.random_range(0..100);
        let profile = match roll {
            0..15 => Profile::Strategic,
            15..75 => Profile::Standard,
            _ => Profile::ChronicLate,
        };
        let jurisdiction = match (profile, rng.random_range(0..100)) {
            (Profile::Strategic, _) => Jurisdiction::B2b,
            (_, 0..60) => Jurisdiction::B2b,
            (_, 60..85) => Jurisdiction::UsConsumer,
            _ => Jurisdiction::UkConsumer,
        };
        let (name, contact_name, tier, tz, currency) = match jurisdiction {
            Jurisdiction::B2b => {
                let name = format!(
                    "{} {} {}",
                    pick(&mut rng, ADJECTIVES),
                    pick(&mut rng, NOUNS),
                    pick(&mut rng, SUFFIXES)
                );
                let contact = format!("{} {}", pick(&mut rng, FIRST), pick(&mut rng, LAST));
                let tier = if profile == Profile::Strategic {
                    Tier::Strategic
                } else {
                    Tier::Standard
                };
                let (tz, cur) = match rng.random_range(0..10) {
                    0..6 => (*pick(&mut rng, US_ZONES), Currency::USD),
                    6..8 => (chrono_tz::Europe::London, Currency::GBP),
                    _ => (chrono_tz::Europe::Berlin, Currency::EUR),
                };
                (name, contact, tier, tz, cur)
            }
            Jurisdiction::UsConsumer => {
                let name = format!("{} {}", pick(&mut rng, FIRST), pick(&mut rng, LAST));
                (
                    name.clone(),
                    name,
                    Tier::Small,
                    *pick(&mut rng, US_ZONES),
                    Currency::USD,
                )
            }
            Jurisdiction::UkConsumer => {
                let name = format!("{} {}", pick(&mut rng, FIRST), pick(&mut rng, LAST));
                (
                    name.clone(),
                    name,
                    Tier::Small,
                    chrono_tz::Europe::London,
                    Currency::GBP,
                )
            }
        };
        let id = format!("C{:05}", i + 1);
        let slug: String = contact_name
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let email = match jurisdiction {
            Jurisdiction::B2b => format!("ap.{}@{}.example", slug, id.to_lowercase()),
            _ => format!("{slug}.{}@mail.example", id.to_lowercase()),
        };
        let consumer = jurisdiction != Jurisdiction::B2b;
        let mut flags = CustomerFlags::default();
        if consumer {
            match rng.random_range(0..200) {
                0..2 => flags.cease_contact = true,
                2..4 => flags.attorney_represented = true,
                4 => flags.bankrupt = true,
                _ => {}
            }
        }
        let mut opted_out = Vec::new();
        if rng.random_bool(0.08) {
            opted_out.push(Channel::Phone);
        }
        if consumer && rng.random_bool(0.05) {
            opted_out.push(Channel::Sms);
        }
        let phone = Some(match currency {
            Currency::GBP => format!("+44 20 7946 {:04}", rng.random_range(0..10_000)),
            Currency::EUR => format!("+49 30 {:08}", rng.random_range(0..100_000_000)),
            _ => format!(
                "+1 555 01{:02} {:04}",
                rng.random_range(0..100),
                rng.random_range(0..10_000)
            ),
        });
        p.customers.push(Customer {
            id: id.clone(),
            name,
            tier,
            jurisdiction,
            time_zone: tz,
            contacts: vec![Contact {
                name: contact_name,
                email: Some(email),
                phone,
                opted_out,
            }],
            flags,
            facts: Default::default(),
        });

        let mean = cfg.invoices_per_customer.max(1);
        let n = rng.random_range(mean.div_ceil(2)..=mean + mean / 2);
        let terms = match (profile, consumer) {
            (_, true) => 21,
            (Profile::Strategic, _) => *pick(&mut rng, &[30, 45, 60]),
            _ => 30,
        };
        for _ in 0..n {
            invoice_seq += 1;
            let number = format!("INV-{invoice_seq}");
            let issue_date = cfg.as_of - Duration::days(rng.random_range(0..365));
            let due_date = issue_date + Duration::days(terms);
            let major: i64 = match (profile, consumer) {
                (_, true) => rng.random_range(40..2_500),
                (Profile::Strategic, _) => rng.random_range(5_000..80_000),
                _ => rng.random_range(300..15_000),
            };
            let amount = Money::new(major * 100 + rng.random_range(0..100), currency);
            let disputed = rng.random_bool(0.015);
            let late: i64 = match (profile, rng.random_range(0..100)) {
                (Profile::Strategic, 0..85) => rng.random_range(-5..=3),
                (Profile::Strategic, _) => rng.random_range(4..=20),
                (Profile::Standard, 0..70) => rng.random_range(-7..=2),
                (Profile::Standard, 70..95) => rng.random_range(5..=30),
                (Profile::Standard, _) => rng.random_range(31..=75),
                (Profile::ChronicLate, 0..20) => rng.random_range(-3..=5),
                (Profile::ChronicLate, 20..60) => rng.random_range(15..=60),
                (Profile::ChronicLate, _) => rng.random_range(45..=150),
            };
            let paid_on = (due_date + Duration::days(late)).max(issue_date);
            if !disputed && paid_on <= cfg.as_of {
                let partial = profile == Profile::ChronicLate && rng.random_bool(0.15);
                let minor = if partial {
                    amount.minor / 2
                } else {
                    amount.minor
                };
                p.payments.push(Payment {
                    id: format!("import:{number}"),
                    customer_id: id.clone(),
                    invoice_number: number.clone(),
                    amount: Money::new(minor, currency),
                    received_on: paid_on,
                });
            }
            p.invoices.push(Invoice {
                number,
                customer_id: id.clone(),
                issue_date,
                due_date,
                amount,
                disputed,
            });
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::{RiskSegment, assess, payment_history};

    #[test]
    fn generation_is_deterministic_and_sized() {
        let cfg = DemoConfig {
            customers: 50,
            ..Default::default()
        };
        let a = generate(&cfg);
        assert_eq!(a, generate(&cfg));
        assert_eq!(a.customers.len(), 50);
        let per = a.invoices.len() as f64 / 50.0;
        assert!((15.0..=25.0).contains(&per), "{per} invoices per customer");
        let other = generate(&DemoConfig { seed: 8, ..cfg });
        assert_ne!(a.invoices, other.invoices);
    }

    #[test]
    fn portfolio_spans_the_risk_segments() {
        let cfg = DemoConfig {
            customers: 120,
            ..Default::default()
        };
        let p = generate(&cfg);
        let mut seen = std::collections::HashSet::new();
        for c in &p.customers {
            let inv: Vec<_> = p
                .invoices
                .iter()
                .filter(|i| i.customer_id == c.id)
                .cloned()
                .collect();
            let pay: Vec<_> = p
                .payments
                .iter()
                .filter(|i| i.customer_id == c.id)
                .cloned()
                .collect();
            seen.insert(assess(payment_history(&inv, &pay, cfg.as_of).unwrap(), &c.flags).segment);
        }
        for s in [RiskSegment::Low, RiskSegment::Medium, RiskSegment::High] {
            assert!(seen.contains(&s), "no {s} customer in {seen:?}");
        }
        assert!(p.customers.iter().any(|c| c.tier == Tier::Strategic));
        assert!(
            p.customers
                .iter()
                .any(|c| c.jurisdiction == Jurisdiction::UkConsumer)
        );
    }
}
