//! Money and legal facts (issue #12 §1): threats of legal action the creditor has not
//! authorised, time-barred (statute-barred, prescribed) debt and its disclosure, and the
//! customer's own offer backed by an income and expenditure statement (UK CONC 7.3).
//!
//! The jurisdiction specifics are pack data: the phrase family that counts as a mention of
//! legal action (`[litigation]`), the limitation period per region (`[limitation]`), the
//! regions that require a time-barred disclosure and what it looks like, and how a refusal
//! of the customer's offer is worded (`[customer_offer]`). The engine only applies them.
//!
//! **Limitation.** An invoice is time-barred when the customer's local date today is after
//! the anniversary, `years` later, of the latest of: its due date, the last payment on it
//! and the last written acknowledgement of it ([`argent_core::facts::AccountFacts::acknowledged`]).
//! On the anniversary itself it is not yet barred. `years` is the pack's period for
//! `facts.region` (compared case-insensitively), else its default. The anniversary of
//! 29 February is 28 February in a year that has none.
//!
//! **Which debt an email is about.** An email that names invoice numbers is about those;
//! one that names none is about every open invoice of the account.

use chrono::{Months, NaiveDate};
use regex::Regex;
use serde::Deserialize;

use argent_core::{Decision, Money, PaymentPlan};

use crate::context::{Context, OpenInvoice};
use crate::policy::{Checker, RuleMeta};
use crate::text;

// ---- Documents --------------------------------------------------------------------------

/// `[litigation]`: mentioning legal action (suit, court, judgment, enforcement, insolvency
/// steps …) without the creditor's authority is a threat of action not intended.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct LitigationDoc {
    #[serde(flatten)]
    meta: RuleMeta,
    /// The phrase family: regular-expression fragments in which a space stands for any run
    /// of spaces, hyphens and line breaks; matched case-insensitively, at word boundaries,
    /// on the normalised text.
    phrases: Vec<String>,
    /// What a mention is when the creditor did authorise proceedings (and the debt is not
    /// time-barred); absent: allowed.
    #[serde(default)]
    authorised: Option<RuleMeta>,
}

/// `[limitation]`: the limitation period and what may not be said about barred debt.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct LimitationDoc {
    /// The rule a mention of legal action on time-barred debt fires.
    #[serde(flatten)]
    meta: RuleMeta,
    years: u32,
    #[serde(default)]
    regions: Vec<RegionDoc>,
    #[serde(default)]
    disclosure: Option<DisclosureDoc>,
}

#[derive(Clone, Debug, Deserialize)]
struct RegionDoc {
    region: String,
    years: u32,
}

#[derive(Clone, Debug, Deserialize)]
struct DisclosureDoc {
    #[serde(flatten)]
    meta: RuleMeta,
    /// The regions whose law requires it; empty: every region.
    #[serde(default)]
    regions: Vec<String>,
    pattern: String,
}

/// `[customer_offer]`: refusing the customer's own offer backed by an income and
/// expenditure statement needs a person.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct OfferDoc {
    #[serde(flatten)]
    meta: RuleMeta,
    /// What an email refusing an offer looks like (same form as litigation phrases).
    refusal_phrases: Vec<String>,
}

// ---- Compiled ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub(crate) struct Litigation {
    pub meta: RuleMeta,
    pub phrases: Regex,
    pub authorised: Option<RuleMeta>,
}

#[derive(Clone, Debug)]
pub(crate) struct Limitation {
    pub meta: RuleMeta,
    pub years: u32,
    /// Region (lower-case) and its period in years.
    pub regions: Vec<(String, u32)>,
    pub disclosure: Option<Disclosure>,
}

#[derive(Clone, Debug)]
pub(crate) struct Disclosure {
    pub meta: RuleMeta,
    /// Lower-case; empty: every region.
    pub regions: Vec<String>,
    pub pattern: Regex,
}

#[derive(Clone, Debug)]
pub(crate) struct OfferRule {
    pub meta: RuleMeta,
    pub refusal: Regex,
}

/// The most years a limitation period may be in a pack.
const MAX_YEARS: u32 = 100;

/// One case-insensitive regex for a phrase family: each phrase's spaces become "any run of
/// spaces, hyphens and line breaks", the whole bounded by word boundaries.
fn phrase_family(ck: &mut Checker, key: &str, phrases: &[String]) -> Option<Regex> {
    if phrases.is_empty() {
        ck.problem(key.to_string(), "must list at least one phrase");
        return None;
    }
    let mut alternatives = Vec::with_capacity(phrases.len());
    for (i, p) in phrases.iter().enumerate() {
        let trimmed = p.trim();
        if trimmed.is_empty() {
            ck.problem(
                format!("{key}[{i}]"),
                "an empty phrase would match everything",
            );
            return None;
        }
        let fragment = trimmed
            .split(' ')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(r"[\s\-]+");
        // Each phrase on its own first (parsed, not compiled), so a problem names the phrase.
        if !ck.pattern(format!("{key}[{i}]"), &format!("(?:{fragment})")) {
            return None;
        }
        alternatives.push((format!("{key}[{i}]"), format!("(?:{fragment})")));
    }
    let joined: Vec<&str> = alternatives.iter().map(|(_, f)| f.as_str()).collect();
    let mut family = Checker::new();
    match family.regex(
        key.to_string(),
        &format!(r"(?i)\b(?:{})\b", joined.join("|")),
    ) {
        Some(r) => Some(r),
        None => {
            // Too big: name the phrase if one alone is, else the family.
            if !ck.name_oversized(&alternatives) {
                ck.problems.append(&mut family.problems);
            }
            None
        }
    }
}

pub(crate) fn compile_litigation(ck: &mut Checker, doc: LitigationDoc) -> Option<Litigation> {
    ck.meta("litigation", &doc.meta);
    if let Some(a) = &doc.authorised {
        ck.meta("litigation.authorised", a);
    }
    let phrases = phrase_family(ck, "litigation.phrases", &doc.phrases)?;
    Some(Litigation {
        meta: doc.meta,
        phrases,
        authorised: doc.authorised,
    })
}

pub(crate) fn compile_limitation(
    ck: &mut Checker,
    doc: LimitationDoc,
    has_litigation: bool,
) -> Option<Limitation> {
    ck.meta("limitation", &doc.meta);
    if !has_litigation {
        ck.problem(
            "limitation".into(),
            "needs a [litigation] section: its phrases are what may not be said about time-barred debt",
        );
    }
    let years_ok = |ck: &mut Checker, key: String, y: u32| {
        if y == 0 || y > MAX_YEARS {
            ck.problem(key, format!("{y} is not between 1 and {MAX_YEARS} years"));
        }
    };
    years_ok(ck, "limitation.years".into(), doc.years);
    let mut regions: Vec<(String, u32)> = Vec::new();
    for (i, r) in doc.regions.iter().enumerate() {
        let key = format!("limitation.regions[{i}]");
        years_ok(ck, format!("{key}.years"), r.years);
        let name = r.region.trim().to_lowercase();
        if name.is_empty() {
            ck.problem(format!("{key}.region"), "empty");
        } else if regions.iter().any(|(n, _)| *n == name) {
            ck.problem(
                format!("{key}.region"),
                format!("'{}' is listed more than once", r.region),
            );
        }
        regions.push((name, r.years));
    }
    let disclosure = match doc.disclosure {
        Some(d) => {
            ck.meta("limitation.disclosure", &d.meta);
            let pattern = ck.regex("limitation.disclosure.pattern".into(), &d.pattern)?;
            Some(Disclosure {
                meta: d.meta,
                regions: d.regions.iter().map(|r| r.trim().to_lowercase()).collect(),
                pattern,
            })
        }
        None => None,
    };
    Some(Limitation {
        meta: doc.meta,
        years: doc.years,
        regions,
        disclosure,
    })
}

pub(crate) fn compile_offer(ck: &mut Checker, doc: OfferDoc) -> Option<OfferRule> {
    ck.meta("customer_offer", &doc.meta);
    let refusal = phrase_family(ck, "customer_offer.refusal_phrases", &doc.refusal_phrases)?;
    Some(OfferRule {
        meta: doc.meta,
        refusal,
    })
}

// ---- Limitation -------------------------------------------------------------------------

impl Limitation {
    /// The period in years for the customer's region (the pack default when the region is
    /// unknown or not listed).
    pub fn years_for(&self, region: Option<&str>) -> u32 {
        region
            .map(|r| r.trim().to_lowercase())
            .and_then(|r| self.regions.iter().find(|(n, _)| *n == r).map(|(_, y)| *y))
            .unwrap_or(self.years)
    }

    /// Whether the customer's region requires the time-barred disclosure.
    fn disclosure_applies(&self, region: Option<&str>) -> Option<&Disclosure> {
        let d = self.disclosure.as_ref()?;
        if d.regions.is_empty() {
            return Some(d);
        }
        let r = region?.trim().to_lowercase();
        d.regions.contains(&r).then_some(d)
    }
}

/// The date the limitation clock runs from for `inv`: the latest of its due date, the last
/// payment on it and the last written acknowledgement of it.
pub fn limitation_start(inv: &OpenInvoice, ctx: &Context) -> NaiveDate {
    let mut start = inv.due_date;
    if let Some(p) = inv.last_payment_on {
        start = start.max(p);
    }
    if let Some(a) = ctx.customer.facts.acknowledged(&inv.number) {
        start = start.max(a);
    }
    start
}

/// `date` plus `years`, the anniversary (29 February → 28 February); `None` past the
/// calendar's end.
fn anniversary(date: NaiveDate, years: u32) -> Option<NaiveDate> {
    let months = years.checked_mul(12)?;
    date.checked_add_months(Months::new(months))
}

/// Whether `inv` is time-barred today under `lim`: the local date is after the anniversary.
pub(crate) fn is_time_barred(lim: &Limitation, inv: &OpenInvoice, ctx: &Context) -> bool {
    let years = lim.years_for(ctx.customer.facts.region.as_deref());
    let start = limitation_start(inv, ctx);
    anniversary(start, years).is_some_and(|end| ctx.local_today() > end)
}

/// The open invoices an email is about: those it lists or whose number its text names,
/// else all.
fn invoices_concerned<'c>(
    listed: &[String],
    fields: &[&str],
    ctx: &'c Context,
) -> Vec<&'c OpenInvoice> {
    let named: Vec<&OpenInvoice> = ctx
        .invoices
        .iter()
        .filter(|i| {
            listed.contains(&i.number) || fields.iter().any(|f| text::names_id(f, &i.number))
        })
        .collect();
    if named.is_empty() {
        ctx.invoices.iter().collect()
    } else {
        named
    }
}

/// The open invoices an email is about that are time-barred, described, or `None`.
fn barred_detail(
    lim: &Limitation,
    listed: &[String],
    fields: &[&str],
    ctx: &Context,
) -> Option<String> {
    let years = lim.years_for(ctx.customer.facts.region.as_deref());
    let barred: Vec<String> = invoices_concerned(listed, fields, ctx)
        .into_iter()
        .filter(|i| is_time_barred(lim, i, ctx))
        .map(|i| format!("{} (from {})", i.number, limitation_start(i, ctx)))
        .collect();
    (!barred.is_empty()).then(|| format!("time-barred after {years} years: {}", barred.join(", ")))
}

/// The first match of `re` in `fields` outside any match of `except` (a disclosure that
/// itself names suit), quoted with a little context. A field whose `may_match` is false is
/// known to hold no match of `re` (the policy's language pass saw none) and is skipped.
fn first_phrase(
    re: &Regex,
    except: Option<&Regex>,
    fields: &[&str],
    may_match: &[bool],
) -> Option<String> {
    fields.iter().enumerate().find_map(|(i, f)| {
        if !may_match.get(i).copied().unwrap_or(true) {
            return None;
        }
        // Most drafts mention nothing: one scan and out.
        re.find(f)?;
        let spans: Vec<(usize, usize)> = except
            .map(|e| e.find_iter(f).map(|m| (m.start(), m.end())).collect())
            .unwrap_or_default();
        re.find_iter(f)
            .find(|m| !spans.iter().any(|(s, e)| m.start() >= *s && m.end() <= *e))
            .map(|m| {
                let mut from = m.start().saturating_sub(40);
                while !f.is_char_boundary(from) {
                    from += 1;
                }
                let mut to = m.end().saturating_add(40).min(f.len());
                while !f.is_char_boundary(to) {
                    to -= 1;
                }
                format!("\"{}\"", text::excerpt(&f[from..to], 120))
            })
    })
}

fn fire(d: &mut Decision, meta: &RuleMeta, detail: String) {
    crate::eval::fire(d, meta, Some(detail));
}

/// The legal-fact rules for an email whose normalised subject and body are `fields` and
/// that lists the invoices `listed` (may be none). `litigation_in[i]` is false when the
/// litigation phrases are known to match nowhere in `fields[i]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_email_legal(
    litigation: Option<&Litigation>,
    limitation: Option<&Limitation>,
    offer: Option<&OfferRule>,
    listed: &[String],
    fields: &[&str],
    litigation_in: &[bool],
    ctx: &Context,
    d: &mut Decision,
) {
    let facts = &ctx.customer.facts;
    let disclosure = limitation.and_then(|l| l.disclosure.as_ref());
    if let Some(lit) = litigation
        && let Some(quote) = first_phrase(
            &lit.phrases,
            disclosure.map(|d| &d.pattern),
            fields,
            litigation_in,
        )
    {
        let barred =
            limitation.and_then(|lim| barred_detail(lim, listed, fields, ctx).map(|b| (lim, b)));
        if let Some((lim, why)) = &barred {
            fire(d, &lim.meta, format!("{why}; the draft says {quote}"));
        }
        if !facts.litigation_authorised {
            fire(
                d,
                &lit.meta,
                format!(
                    "the creditor has not authorised legal proceedings; the draft says {quote}"
                ),
            );
        } else if barred.is_none()
            && let Some(a) = &lit.authorised
        {
            fire(
                d,
                a,
                format!("legal proceedings are authorised on this account; the draft says {quote}"),
            );
        }
    }
    if let Some(lim) = limitation
        && let Some(disc) = lim.disclosure_applies(facts.region.as_deref())
        && let Some(why) = barred_detail(lim, listed, fields, ctx)
        && !fields.iter().any(|f| disc.pattern.is_match(f))
    {
        fire(d, &disc.meta, why);
    }
    if let Some(rule) = offer
        && let Some(o) = &facts.customer_offer
        && o.income_expenditure
        && let Some(quote) = first_phrase(&rule.refusal, None, fields, &[])
    {
        fire(
            d,
            &rule.meta,
            format!(
                "the customer offered {} every {} days backed by an income and expenditure statement; the draft says {quote}",
                Money::new(o.amount_minor, o.currency),
                o.every_days
            ),
        );
    }
}

// ---- The customer's offer ---------------------------------------------------------------

/// How a plan rejects the customer's offer of `amount` every `every_days` days, if it does.
///
/// The offer pays `amount` on the plan's start date and every `every_days` days after it.
/// A plan **rejects** the offer when, on the start date or any installment's due date, what
/// the plan has asked for by then (down payment plus installments due on or before that
/// date) is more than the offer would have paid by then. That covers a higher payment per
/// period, a larger down payment than one offered payment, and a shorter term for the same
/// total. A plan in another currency than the offer's is not compared (it cannot be the
/// answer to it). A plan asking the same or less, at the same pace or slower, accepts it.
pub fn offer_rejection(
    offer: &argent_core::facts::CustomerOffer,
    plan: &PaymentPlan,
) -> Option<String> {
    if offer.currency != plan.currency || offer.every_days == 0 {
        return None;
    }
    let start = plan.start_date;
    let offered_by = |date: NaiveDate| -> i128 {
        let days = (date - start).num_days();
        if days < 0 {
            return 0;
        }
        let payments = days / i64::from(offer.every_days) + 1;
        i128::from(payments) * i128::from(offer.amount_minor)
    };
    let mut asked: i128 = i128::from(plan.down_payment_minor);
    if asked > offered_by(start) {
        return Some(format!(
            "a down payment of {} is more than the offered {}",
            Money::new(plan.down_payment_minor, plan.currency),
            Money::new(offer.amount_minor, offer.currency)
        ));
    }
    let mut due: Vec<(NaiveDate, i64)> = plan
        .installments
        .iter()
        .map(|i| (i.due_date, i.amount_minor))
        .collect();
    due.sort_by_key(|(d, _)| *d);
    let mut k = 0;
    while k < due.len() {
        let date = due[k].0;
        while k < due.len() && due[k].0 == date {
            asked += i128::from(due[k].1);
            k += 1;
        }
        let offered = offered_by(date);
        if asked > offered {
            return Some(format!(
                "by {date} the plan asks for {} but the offer pays {} ({} every {} days)",
                money_i128(asked, plan.currency),
                money_i128(offered, plan.currency),
                Money::new(offer.amount_minor, offer.currency),
                offer.every_days
            ));
        }
    }
    None
}

fn money_i128(v: i128, c: argent_core::Currency) -> Money {
    Money::new(i64::try_from(v).unwrap_or(i64::MAX), c)
}

/// Fires the offer rule when `plan` rejects the customer's I&E-backed offer.
pub(crate) fn check_plan_offer(
    rule: Option<&OfferRule>,
    plan: &PaymentPlan,
    ctx: &Context,
    d: &mut Decision,
) {
    let Some(rule) = rule else { return };
    let Some(offer) = &ctx.customer.facts.customer_offer else {
        return;
    };
    if !offer.income_expenditure {
        return;
    }
    if let Some(why) = offer_rejection(offer, plan) {
        fire(
            d,
            &rule.meta,
            format!(
                "the plan rejects the customer's offer backed by an income and expenditure statement: {why}"
            ),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use argent_core::facts::CustomerOffer;
    use argent_core::{Currency, Installment, PlanStatus};

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn offer(amount_minor: i64, every_days: u32) -> CustomerOffer {
        CustomerOffer {
            amount_minor,
            currency: Currency::GBP,
            every_days,
            income_expenditure: true,
            received_on: d("2026-03-01"),
        }
    }

    fn plan(down: i64, installments: &[(&str, i64)]) -> PaymentPlan {
        PaymentPlan {
            id: "p".into(),
            customer_id: "C2".into(),
            currency: Currency::GBP,
            balance_minor: 80_000,
            discount_minor: 0,
            down_payment_minor: down,
            start_date: d("2026-03-10"),
            installments: installments
                .iter()
                .map(|(due, amount)| Installment {
                    due_date: d(due),
                    amount_minor: *amount,
                })
                .collect(),
            status: PlanStatus::Proposed,
        }
    }

    #[test]
    fn a_plan_at_or_below_the_offer_accepts_it() {
        let o = offer(100_00, 30);
        // One payment now and one every 30 days: exactly the offer.
        let exact = plan(
            100_00,
            &[
                ("2026-04-09", 100_00),
                ("2026-05-09", 100_00),
                ("2026-06-08", 100_00),
            ],
        );
        assert_eq!(offer_rejection(&o, &exact), None);
        // Monthly on the 10th (31, 30, 31 days apart) is never ahead of the offer.
        let monthly = plan(0, &[("2026-04-10", 100_00), ("2026-05-10", 100_00)]);
        assert_eq!(offer_rejection(&o, &monthly), None);
        let less = plan(0, &[("2026-04-10", 99_99), ("2026-05-10", 99_99)]);
        assert_eq!(offer_rejection(&o, &less), None);
    }

    #[test]
    fn asking_more_per_period_sooner_or_up_front_rejects_the_offer() {
        let o = offer(100_00, 30);
        // One minor unit more than offered, on the first due date.
        let more = plan(0, &[("2026-03-10", 100_01)]);
        assert!(offer_rejection(&o, &more).unwrap().contains("2026-03-10"));
        // A down payment of two offered payments.
        let down = plan(200_00, &[("2026-04-10", 100_00)]);
        assert!(offer_rejection(&o, &down).unwrap().contains("down payment"));
        // The same amount every 29 days: the second payment comes before the offer's.
        let sooner = plan(0, &[("2026-03-10", 100_00), ("2026-04-08", 100_00)]);
        let why = offer_rejection(&o, &sooner).unwrap();
        assert!(
            why.contains("2026-04-08") && why.contains("200.00"),
            "{why}"
        );
        // Two installments on one date count together.
        let same_day = plan(
            0,
            &[
                ("2026-04-10", 60_00),
                ("2026-04-10", 60_00),
                ("2026-03-10", 100_00),
            ],
        );
        assert!(
            offer_rejection(&o, &same_day)
                .unwrap()
                .contains("2026-04-10")
        );
    }

    #[test]
    fn a_plan_in_another_currency_is_not_compared() {
        let o = offer(1, 30);
        let mut p = plan(50_000, &[("2026-03-10", 30_000)]);
        p.currency = Currency::EUR;
        assert_eq!(offer_rejection(&o, &p), None);
    }

    #[test]
    fn anniversaries_and_leap_days() {
        assert_eq!(anniversary(d("2020-03-10"), 6), Some(d("2026-03-10")));
        assert_eq!(anniversary(d("2020-02-29"), 5), Some(d("2025-02-28")));
        assert_eq!(anniversary(d("2020-02-29"), 4), Some(d("2024-02-29")));
        assert_eq!(anniversary(NaiveDate::MAX, 1), None);
    }

    fn checker() -> Checker {
        Checker::new()
    }

    #[test]
    fn phrase_spaces_match_runs_of_spaces_hyphens_and_line_breaks() {
        let mut ck = checker();
        let re = phrase_family(
            &mut ck,
            "p",
            &["county court judg(e)?ments?".into(), "law( )?suits?".into()],
        )
        .unwrap();
        for hit in [
            "a County Court Judgment",
            "county-court judgement",
            "COUNTY\n  COURT - JUDGMENTS",
            "a lawsuit",
            "a law suit",
            "a law-suit",
        ] {
            assert!(re.is_match(hit), "{hit}");
        }
        for miss in [
            "countycourt judgment",
            "lawsuitable",
            "the county court's judge",
        ] {
            assert!(!re.is_match(miss), "{miss}");
        }
    }

    #[test]
    fn a_bad_phrase_is_named() {
        let mut ck = checker();
        assert!(
            phrase_family(
                &mut ck,
                "litigation.phrases",
                &["ok".into(), "(unclosed".into()]
            )
            .is_none()
        );
        assert!(phrase_family(&mut ck, "x", &["  ".into()]).is_none());
        assert!(phrase_family(&mut ck, "y", &[]).is_none());
        let keys: Vec<&str> = ck.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["litigation.phrases[1]", "x[0]", "y"]);
    }
}
