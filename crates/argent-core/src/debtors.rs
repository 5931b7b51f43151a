//! A seeded model of how debtors answer dunning, for `argent demo`'s simulated days.
//!
//! **Simulated behaviour, not data.** When an account is contacted, its debtor answers with
//! one [`Response`], drawn from odds that depend on the account's risk segment (a low-risk
//! debtor mostly pays within days; a high-risk one mostly ignores the reminder, and keeps
//! fewer of its promises). The draw is a pure function of (seed, customer id, how many
//! times the account was contacted), so the same seed replays the same story whatever
//! order accounts are handled in.
//!
//! The odds are illustrative, chosen to give a plausible mix, not measured from any
//! portfolio; every report that uses them says the behaviour is simulated.

use crate::risk::RiskSegment;

/// Whether a promise to pay is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Paid in full by the promised date.
    Full,
    /// Half paid by the promised date.
    Partial,
    /// Nothing paid.
    Broken,
}

/// What a debtor does after a contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// Pays the whole overdue balance `in_days` days later, without writing.
    Pay { in_days: i64 },
    /// Writes back promising to pay the overdue balance `in_days` days later.
    Promise { in_days: i64, keep: Keep },
    /// Writes back disputing the oldest overdue invoice.
    Dispute,
    /// Writes back about financial difficulty.
    Hardship,
    /// Does nothing.
    Ignore,
}

/// Odds per contact, in per mille (the rest ignore the contact), and the promise keeping
/// odds, per mille of promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Odds {
    pub pay: u32,
    pub promise: u32,
    pub dispute: u32,
    pub hardship: u32,
    /// Longest delay of a payment, days (at least 1).
    pub pay_within: i64,
    pub keep_full: u32,
    pub keep_partial: u32,
}

/// The odds for an account in `segment`.
pub fn odds(segment: RiskSegment) -> Odds {
    match segment {
        RiskSegment::Low => Odds {
            pay: 550,
            promise: 200,
            dispute: 30,
            hardship: 0,
            pay_within: 4,
            keep_full: 850,
            keep_partial: 50,
        },
        RiskSegment::Medium | RiskSegment::InReview => Odds {
            pay: 300,
            promise: 250,
            dispute: 50,
            hardship: 30,
            pay_within: 7,
            keep_full: 650,
            keep_partial: 100,
        },
        RiskSegment::High => Odds {
            pay: 120,
            promise: 250,
            dispute: 50,
            hardship: 80,
            pay_within: 10,
            keep_full: 400,
            keep_partial: 150,
        },
    }
}

/// A small, stable mixing function (splitmix64), so draws do not depend on the standard
/// library's hasher.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stream of draws for one (seed, customer, contact).
struct Draws(u64);

impl Draws {
    fn new(seed: u64, customer_id: &str, contact: u32) -> Draws {
        // FNV-1a over the id, then mixed with the seed and the contact number.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in customer_id.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Draws(mix(seed ^ mix(h ^ u64::from(contact).rotate_left(32))))
    }

    /// A number in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.0 = mix(self.0);
        self.0 % n.max(1)
    }

    fn per_mille(&mut self) -> u32 {
        // below(1000) < 1000, so it fits.
        u32::try_from(self.below(1000)).unwrap_or(999)
    }

    /// A day count in `1..=max`.
    fn days(&mut self, max: i64) -> i64 {
        let max = u64::try_from(max.max(1)).unwrap_or(1);
        i64::try_from(self.below(max)).unwrap_or(0) + 1
    }
}

/// The debtor's habit for an invoice that falls due: paid unprompted this many days after
/// its due date, or `None` when it waits to be chased (low risk: 90% within 5 days;
/// medium: 70% within 12; high: 35% within 3 to 25).
pub fn habit(seed: u64, invoice_number: &str, segment: RiskSegment) -> Option<i64> {
    let (share, from, to) = match segment {
        RiskSegment::Low => (900, 0, 5),
        RiskSegment::Medium | RiskSegment::InReview => (700, 0, 12),
        RiskSegment::High => (350, 3, 25),
    };
    // Contact 0 is never a contact's draw (those start at 1).
    let mut d = Draws::new(seed ^ 0x0048_4142_4954, invoice_number, 0);
    if d.per_mille() >= share {
        return None;
    }
    Some(from + d.days(to - from + 1) - 1)
}

/// The debtor's answer to the account's `contact`-th contact (1-based).
pub fn respond(seed: u64, customer_id: &str, contact: u32, segment: RiskSegment) -> Response {
    let o = odds(segment);
    let mut d = Draws::new(seed, customer_id, contact);
    let r = d.per_mille();
    let mut edge = o.pay;
    if r < edge {
        return Response::Pay {
            in_days: d.days(o.pay_within),
        };
    }
    edge += o.promise;
    if r < edge {
        let k = d.per_mille();
        let keep = if k < o.keep_full {
            Keep::Full
        } else if k < o.keep_full + o.keep_partial {
            Keep::Partial
        } else {
            Keep::Broken
        };
        return Response::Promise {
            in_days: 3 + d.days(11),
            keep,
        };
    }
    edge += o.dispute;
    if r < edge {
        return Response::Dispute;
    }
    edge += o.hardship;
    if r < edge {
        return Response::Hardship;
    }
    Response::Ignore
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_a_function_of_seed_customer_and_contact() {
        for c in 1..20 {
            assert_eq!(
                respond(7, "C-1", c, RiskSegment::Medium),
                respond(7, "C-1", c, RiskSegment::Medium)
            );
        }
        let a: Vec<_> = (1..40)
            .map(|c| respond(7, "C-1", c, RiskSegment::Medium))
            .collect();
        let b: Vec<_> = (1..40)
            .map(|c| respond(8, "C-1", c, RiskSegment::Medium))
            .collect();
        assert_ne!(a, b, "another seed tells another story");
    }

    fn share(segment: RiskSegment, f: impl Fn(&Response) -> bool) -> f64 {
        let n = 20_000u32;
        let hits = (0..n)
            .filter(|i| f(&respond(1, &format!("C-{i}"), 1, segment)))
            .count();
        hits as f64 / f64::from(n)
    }

    #[test]
    fn the_mix_follows_the_odds_per_segment() {
        let pays = |r: &Response| matches!(r, Response::Pay { .. });
        let ignores = |r: &Response| matches!(r, Response::Ignore);
        assert!((share(RiskSegment::Low, pays) - 0.55).abs() < 0.02);
        assert!((share(RiskSegment::High, pays) - 0.12).abs() < 0.02);
        assert!((share(RiskSegment::High, ignores) - 0.50).abs() < 0.02);
        assert!(share(RiskSegment::Low, ignores) < share(RiskSegment::Medium, ignores));
        let broken = |r: &Response| {
            matches!(
                r,
                Response::Promise {
                    keep: Keep::Broken,
                    ..
                }
            )
        };
        assert!(share(RiskSegment::High, broken) > 2.0 * share(RiskSegment::Low, broken));
    }

    #[test]
    fn habits_follow_the_segment() {
        let paid = |seg| {
            (0..10_000)
                .filter(|i| habit(5, &format!("INV-{i}"), seg).is_some())
                .count()
        };
        assert!((paid(RiskSegment::Low) as i64 - 9000).abs() < 250);
        assert!((paid(RiskSegment::High) as i64 - 3500).abs() < 250);
        for i in 0..2000 {
            if let Some(k) = habit(5, &format!("INV-{i}"), RiskSegment::High) {
                assert!((3..=25).contains(&k), "{k}");
            }
            if let Some(k) = habit(5, &format!("INV-{i}"), RiskSegment::Low) {
                assert!((0..=5).contains(&k), "{k}");
            }
        }
    }

    #[test]
    fn delays_stay_in_their_ranges() {
        for i in 0..5000 {
            match respond(3, &format!("C-{i}"), 2, RiskSegment::High) {
                Response::Pay { in_days } => assert!((1..=10).contains(&in_days)),
                Response::Promise { in_days, .. } => assert!((4..=14).contains(&in_days)),
                _ => {}
            }
        }
    }
}
