//! Consistency between an email and the account's other actions.
//!
//! Two deterministic readers of an email's normalised text (see [`crate::text`]), sentence
//! by sentence, each a maintained set of phrase families:
//!
//! - [`confirmations`]: sentences that tell the customer a promise was recorded, a plan
//!   was set up, or that a person will follow up ("we've recorded your promise", "your
//!   payment plan is now in place", "a member of our team will call you"). A conditional
//!   ("once …", "if …") or negated sentence is not a confirmation.
//! - [`offers`]: sentences that state or offer terms: a discount, a waiver, a settlement
//!   for less, an interest or fee concession, or instalments with their terms. An offer
//!   is *clear* (stated, or with a figure) or *ambiguous* (hedged: "we may be able to …").
//!
//! The engine then checks each against [`Context::recent_actions`]: a confirmation needs
//! the action it confirms; one that is executed passes when the amounts and dates the
//! sentence states are that action's, one pending approval holds the email with it, one
//! refused or absent is denied. An offer needs a plan the policy allowed or a person
//! approved (or one pending, which holds the email with it), with the same terms.

use std::cell::OnceCell;
use std::ops::Range;
use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate};
use regex::Regex;

use crate::context::Context;
use crate::recent::{RecentAction, RecentKind, RecentStatus};
use crate::scan::{SetMatches, SetScan};
use crate::text;
use crate::words::Mention;

/// What an email sentence says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Claim {
    /// A promise to pay was recorded.
    Promise,
    /// A payment plan or arrangement was set up.
    Plan,
    /// An agreement to pay ("as agreed, you will pay …"): a promise or a plan.
    Agreement,
    /// A person will act (a case or escalation exists).
    FollowUp,
}

impl Claim {
    pub fn as_str(self) -> &'static str {
        match self {
            Claim::Promise => "a promise to pay",
            Claim::Plan => "a payment plan",
            Claim::Agreement => "an agreement to pay",
            Claim::FollowUp => "a follow-up by a person",
        }
    }

    /// Without the article: "promise to pay".
    pub fn noun(self) -> &'static str {
        let s = self.as_str();
        s.strip_prefix("an ")
            .or_else(|| s.strip_prefix("a "))
            .unwrap_or(s)
    }

    fn backs(self, kind: RecentKind) -> bool {
        match self {
            Claim::Promise => kind == RecentKind::Promise,
            Claim::Plan => kind == RecentKind::Plan,
            Claim::Agreement => matches!(kind, RecentKind::Promise | RecentKind::Plan),
            Claim::FollowUp => matches!(kind, RecentKind::Case | RecentKind::Escalation),
        }
    }
}

/// One confirming sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirmation {
    pub claim: Claim,
    /// Byte range of the sentence in the text.
    pub sentence: Range<usize>,
}

/// What kind of term an offer states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OfferKind {
    Discount,
    Waiver,
    Settlement,
    /// Interest or fees frozen, stopped or not charged.
    Concession,
    Instalments,
}

impl OfferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OfferKind::Discount => "a discount",
            OfferKind::Waiver => "a waiver",
            OfferKind::Settlement => "a settlement for less",
            OfferKind::Concession => "an interest or fee concession",
            OfferKind::Instalments => "an instalment arrangement",
        }
    }
}

/// One sentence that states or offers terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub kind: OfferKind,
    /// Stated as a fact or commitment (or with a figure), not hedged.
    pub clear: bool,
    pub sentence: Range<usize>,
}

#[allow(clippy::unwrap_used)] // constant patterns, compiled by every test
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap()
}

struct Families {
    /// Every confirmation pattern (promise, agreement, plan, follow-up, in that order), then
    /// every offer kind's (discount, waiver, settlement, concession, instalments), matched
    /// in one pass over the whole text first: a pattern that matches nowhere in the text
    /// matches in no sentence, so the per-sentence work is done only for the patterns that
    /// matched.
    scan: SetScan,
    /// How many of `scan`'s patterns are confirmation patterns (the offers follow).
    confirm_len: usize,
    promise: Vec<Regex>,
    agreement: Vec<Regex>,
    plan: Vec<Regex>,
    follow_up: Vec<Regex>,
    conditional: Regex,
    negated: Regex,
    discount: Regex,
    waiver: Regex,
    settlement: Regex,
    concession: Regex,
    instalment_terms: Regex,
    clear: Regex,
    hedge: Regex,
    percent: Regex,
    half: Regex,
    count: Regex,
    date_iso: Regex,
    date_dm: Regex,
    date_md: Regex,
}

const WE_HAVE: &str = r"(?:we(?:'ve| have)|i(?:'ve| have)|we(?:'re| are) pleased to (?:say|confirm) (?:that )?we(?:'ve| have))";
const RECORDED: &str = r"(?:recorded|logged|noted|registered|accepted|confirmed|received|taken|made a note of|put (?:it )?on (?:file|record)|set up|put in place|arranged|agreed|approved|activated|updated (?:your|the) account with)";
const PLAN_WORDS: &str = r"(?:(?:monthly |weekly )?(?:payment|instal{1,2}ment|repayment|settlement) (?:plan|arrangement|schedule|agreement)|(?:payment )?arrangement|plan)";
const PROMISE_WORDS: &str =
    r"(?:promise(?:d payment)?(?: to pay)?|payment promise|commitment(?: to pay)?|pledge)";

fn families() -> &'static Families {
    static F: OnceLock<Families> = OnceLock::new();
    F.get_or_init(|| {
        let mut f = families_without_sets();
        let (scan, confirm_len) = {
            let (patterns, confirm_len) = set_patterns(&f);
            (set(&patterns), confirm_len)
        };
        f.confirm_len = confirm_len;
        f.scan = scan;
        f
    })
}

/// The family patterns as one set (for the scan's tests).
#[cfg(test)]
pub(crate) fn family_scan() -> &'static SetScan {
    &families().scan
}

/// The families' set patterns in set order (every confirmation pattern, then every offer
/// kind's) and how many are confirmation patterns.
fn set_patterns(f: &Families) -> (Vec<&str>, usize) {
    let mut patterns: Vec<&str> = [&f.promise, &f.agreement, &f.plan, &f.follow_up]
        .into_iter()
        .flatten()
        .map(Regex::as_str)
        .collect();
    let confirm_len = patterns.len();
    patterns.extend(
        [
            &f.discount,
            &f.waiver,
            &f.settlement,
            &f.concession,
            &f.instalment_terms,
        ]
        .into_iter()
        .map(Regex::as_str),
    );
    (patterns, confirm_len)
}

/// The patterns of the families' set, in its order: a policy appends them to its language
/// set so each field is scanned once, and reads them back with [`Reading::with_matches`].
pub(crate) fn family_patterns() -> Vec<&'static str> {
    set_patterns(families()).0
}

/// How many patterns [`family_patterns`] gives.
pub(crate) fn family_count() -> usize {
    families().scan.len()
}

#[allow(clippy::unwrap_used)] // constant patterns, compiled by every test
fn set(patterns: &[&str]) -> SetScan {
    SetScan::new(patterns, 1 << 24).unwrap()
}

fn families_without_sets() -> Families {
    Families {
        scan: SetScan::empty(),
        confirm_len: 0,
        promise: vec![
            re(&format!(
                r"(?i)\b{WE_HAVE} (?:now |duly |also )?{RECORDED} (?:your|the|this) (?:[a-z]+ )?{PROMISE_WORDS}"
            )),
            re(&format!(
                r"(?i)\b(?:your|the|this) {PROMISE_WORDS}\b.{{0,60}}?\b(?:has been|have been|is now|is|was|are now) (?:now |duly )?(?:recorded|logged|noted|registered|accepted|confirmed|on (?:file|record)|in (?:our|the) (?:system|records))"
            )),
            re(&format!(
                r"(?i)\bthank(?:s| you)(?: very much)? for (?:your|the) {PROMISE_WORDS}"
            )),
            re(
                r"(?i)\b(?:this (?:email|letter|message) )?confirms? (?:that )?(?:your|the) (?:promise|commitment|promised payment|payment of .{0,40}? (?:on|by))",
            ),
        ],
        agreement: vec![
            re(
                r"(?i)\bas (?:agreed|promised|discussed|arranged)\b.{0,20}? you(?:'ll| will| have agreed to| promised to) pay\b",
            ),
            re(
                r"(?i)\b(?:we|i) (?:note|understand) (?:that )?you(?:'ve| have)? (?:promised|agreed|committed) to pay\b",
            ),
        ],
        plan: vec![
            re(&format!(
                r"(?i)\b{WE_HAVE} (?:now |duly |also )?{RECORDED} (?:your|the|a|an|this|our)? ?(?:new |revised |reduced |agreed |affordable )?{PLAN_WORDS}"
            )),
            re(&format!(
                r"(?i)\b(?:your|the|this|a|an) (?:new |revised |reduced |agreed |affordable )?{PLAN_WORDS}\b.{{0,60}}?\b(?:has been|have been|is now|is|was|are now) (?:now |duly |formally )?(?:set up|agreed|approved|accepted|confirmed|put in place|in place|active|activated|arranged|registered|recorded|live|underway)"
            )),
            re(
                r"(?i)\b(?:this (?:email|letter|message) )?confirms? (?:that )?(?:your|the|our) (?:new |revised |agreed )?(?:payment |instal{1,2}ment |repayment )?(?:plan|arrangement|agreement)",
            ),
            re(
                r"(?i)\bthank(?:s| you)(?: very much)? for (?:agreeing|setting up) (?:to )?(?:a|the|your) (?:payment |instal{1,2}ment |repayment )?(?:plan|arrangement)",
            ),
        ],
        follow_up: vec![
            re(
                r"(?i)\b(?:a member of|someone (?:from|in|on)|one of) (?:our|the) (?:[a-z]+ )?(?:team|staff|colleagues|specialists|managers|advisers|advisors|department)\b.{0,40}?\b(?:will|shall|is going to|'ll)\b",
            ),
            re(
                r"(?i)\b(?:our|a|the) (?:[a-z]+ )?(?:team|manager|supervisor|specialist|colleague|adviser|advisor|collector|case ?worker|case handler|department)(?: member)? (?:will|shall|is going to|'ll) (?:now )?(?:contact|call|review|investigate|look into|be in touch|get back|reach out|follow up|respond|phone|email|write|ring|handle|deal with)",
            ),
            re(
                r"(?i)\bsomeone (?:will|shall|is going to) (?:contact|call|review|investigate|look into|be in touch|get back|reach out|follow up|respond|phone|email|write|ring)",
            ),
            re(
                r"(?i)\b(?:we(?:'ve| have)|i(?:'ve| have)) (?:now )?(?:escalated|referred|passed|forwarded|handed|transferred) (?:your|this|the)\b",
            ),
            re(
                r"(?i)\b(?:we(?:'ve| have)|i(?:'ve| have)) (?:now )?(?:opened|raised|logged|created) (?:a|an) (?:[a-z]+ )?(?:case|investigation|complaint|ticket|query|review)\b",
            ),
            re(
                r"(?i)\b(?:your|this|the) (?:case|dispute|query|complaint|matter|account|request)\b.{0,30}?\b(?:has been|is being|was|is now) (?:escalated|referred|passed|forwarded|handed|transferred|assigned)\b",
            ),
        ],
        conditional: re(
            r"(?i)\b(?:if|once|when|whether|unless|until|after|before|as soon as|should|would you|do you|can we|could we|shall we|in case)\b",
        ),
        negated: re(
            r"(?i)\b(?:not|never|no longer|unable|cannot|can't|won't|haven't|hasn't|isn't|wasn't|don't|doesn't|didn't|yet to)\b",
        ),
        discount: re(
            r"(?i)\b(?:discount(?:ed|s)?|reduction|reduce[ds]?|reducing|knock(?:ed|ing)? .{0,20}?off|money off|(?:percent|per cent|%) off|off (?:the|your) (?:total|balance|bill|amount|debt))\b|%\s*off\b",
        ),
        waiver: re(
            r"(?i)\b(?:waive[ds]?|waiving|waiver|write (?:off|it off)|writ(?:e|ten|ing) off|forgive[ns]?|forgiving|cancel(?:led|ling)? (?:the|your|all|any) (?:late )?(?:fees?|charges?|interest|balance|debt)|remov(?:e|ed|ing) (?:the|all|any) (?:late )?(?:fees?|charges?|interest))\b",
        ),
        settlement: re(
            r"(?i)\b(?:full and final|settlement|in full satisfaction|settle (?:the |your |this |it )?(?:debt |balance |account |matter )?for\b|accept .{0,40}? (?:in|as) (?:full|final|full and final) (?:payment|settlement|satisfaction))",
        ),
        concession: re(
            r"(?i)\b(?:(?:freez(?:e|ing)|froze|frozen|stop(?:ped|ping)?|suspend(?:ed|ing)?|paus(?:e|ed|ing)|hold(?:ing)?|put on hold|halt(?:ed)?) (?:the |all |any |further |your )*(?:late )?(?:interest|charges|fees)|(?:interest|charges|fees) (?:has|have|will) been (?:frozen|stopped|suspended|paused|removed|waived)|(?:no|zero) (?:further |more |additional )?(?:interest|late fees?|charges|fees)|interest[- ]free|fee[- ]free)\b",
        ),
        instalment_terms: re(
            r"(?i)\b(?:(?:\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|eighteen|twenty[- ]four|thirty[- ]six) (?:equal |monthly |weekly |fortnightly |interest-free )*(?:instal{1,2}ments|payments|monthly payments|weekly payments)|(?:spread|split) .{0,40}?\bover (?:\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|eighteen|twenty[- ]four) (?:months|weeks)|(?:a|per|each|every) (?:month|week|fortnight)\b.{0,30}?\bfor (?:\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve) (?:months|weeks))",
        ),
        clear: re(
            r"(?i)\b(?:we(?:'ve| have)|we(?:'ll| will)|we(?:'re| are) (?:offering|applying|prepared|willing|happy|pleased|able)|we can|we shall|we agree|we accept|we(?:'d| would) accept|we offer|i(?:'ve| have)|i(?:'ll| will)|i can|has been|have been|will be|is being|are being|applied|granted|approved|accepted|agreed|pay (?:just|only)|take .{0,20}?off|you (?:can|may|need only|only need to|will only) (?:pay|settle|clear)|you(?:'ll| will) pay)\b",
        ),
        hedge: re(
            r"(?i)\b(?:may|might|could|possibly|perhaps|consider|considering|discuss|discussing|explore|exploring|open to|look into|would you like|interested in|let us know|subject to|potential(?:ly)?|depending)\b",
        ),
        percent: re(r"(?i)\b(\d{1,3}(?:\.\d{1,2})?)\s?(?:%|percent\b|per cent\b)"),
        half: re(r"(?i)\b(?:half|50-50|fifty-fifty)\b"),
        count: re(
            r"(?i)\b(\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|eighteen|twenty[- ]four|thirty[- ]six) (?:equal |monthly |weekly |fortnightly |interest-free )*(?:instal{1,2}ments|payments|months|weeks)\b",
        ),
        date_iso: re(r"\b(\d{4})-(\d{2})-(\d{2})\b"),
        date_dm: re(
            r"(?i)\b(\d{1,2})(?:st|nd|rd|th)?(?: of)? (jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b(?:,? (\d{4}))?",
        ),
        date_md: re(
            r"(?i)\b(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?) (\d{1,2})(?:st|nd|rd|th)?\b(?:,? (\d{4}))?",
        ),
    }
}

/// Whether the match at `start..end` of `sentence` is asserted: nothing conditional
/// before it in the sentence, and no negation in it or just before it.
fn asserted(f: &Families, sentence: &str, start: usize, end: usize) -> bool {
    let before = &sentence[..start];
    if f.conditional.is_match(before) {
        return false;
    }
    let mut from = start.saturating_sub(24);
    while !sentence.is_char_boundary(from) {
        from += 1;
    }
    !f.negated.is_match(&sentence[from..end])
}

/// One normalised text as the two readers see it: which family patterns match anywhere in
/// it (one pass for both readers) and its sentences, each computed once, when first needed.
pub(crate) struct Reading<'t> {
    text: &'t str,
    matched: OnceCell<SetMatches>,
    sentences: OnceCell<Vec<Range<usize>>>,
}

impl<'t> Reading<'t> {
    pub(crate) fn new(text: &'t str) -> Reading<'t> {
        Reading {
            text,
            matched: OnceCell::new(),
            sentences: OnceCell::new(),
        }
    }

    /// A reading whose family pass was already made: `matched` answers for the families'
    /// patterns in [`family_patterns`] order (e.g. sliced from a policy's language pass
    /// over the same text).
    pub(crate) fn with_matches(text: &'t str, matched: SetMatches) -> Reading<'t> {
        Reading {
            text,
            matched: OnceCell::from(matched),
            sentences: OnceCell::new(),
        }
    }

    fn matched(&self) -> &SetMatches {
        self.matched
            .get_or_init(|| families().scan.matches(self.text))
    }

    fn sentences(&self) -> &[Range<usize>] {
        self.sentences.get_or_init(|| text::sentences(self.text))
    }
}

/// Every sentence of `text` (normalised) that confirms an action, with what it claims. A
/// sentence may make more than one claim.
pub fn confirmations(text: &str) -> Vec<Confirmation> {
    confirmations_in(&Reading::new(text))
}

pub(crate) fn confirmations_in(reading: &Reading<'_>) -> Vec<Confirmation> {
    let f = families();
    let text = reading.text;
    let mut out = Vec::new();
    let matched = reading.matched();
    if !(0..f.confirm_len).any(|i| matched.matched(i)) {
        return out;
    }
    // The set's indices, family by family, in the order the set was built.
    let (p, a, l) = (f.promise.len(), f.agreement.len(), f.plan.len());
    let offsets = [
        (Claim::Promise, 0),
        (Claim::Agreement, p),
        (Claim::Plan, p + a),
        (Claim::FollowUp, p + a + l),
    ];
    let offset_of = |claim: Claim| {
        offsets
            .iter()
            .find(|(c, _)| *c == claim)
            .map_or(0, |(_, o)| *o)
    };
    let sentences = reading.sentences();
    let claims = [
        (Claim::Promise, &f.promise),
        (Claim::Plan, &f.plan),
        (Claim::Agreement, &f.agreement),
        (Claim::FollowUp, &f.follow_up),
    ];
    // hit[sentence][claim]. Each pattern the set saw is searched once over the whole text
    // and its matches are judged in the sentence they fall in; a match that does not lie
    // within one sentence sends that pattern back to the sentence-by-sentence search.
    let mut hit = vec![[false; 4]; sentences.len()];
    for (ci, (claim, family)) in claims.iter().enumerate() {
        let base = offset_of(*claim);
        for (i, re) in family.iter().enumerate() {
            if !matched.matched(base + i) {
                continue;
            }
            let mut whole_text_ok = true;
            for m in re.find_iter(text) {
                let s = sentences.partition_point(|r| r.end <= m.start());
                match sentences.get(s) {
                    Some(r) if r.start <= m.start() && m.end() <= r.end => {
                        if !hit[s][ci]
                            && asserted(f, &text[r.clone()], m.start() - r.start, m.end() - r.start)
                        {
                            hit[s][ci] = true;
                        }
                    }
                    _ => {
                        whole_text_ok = false;
                        break;
                    }
                }
            }
            if !whole_text_ok {
                for (s, r) in sentences.iter().enumerate() {
                    let sentence = &text[r.clone()];
                    if !hit[s][ci]
                        && re
                            .find_iter(sentence)
                            .any(|m| asserted(f, sentence, m.start(), m.end()))
                    {
                        hit[s][ci] = true;
                    }
                }
            }
        }
    }
    for (s, range) in sentences.iter().enumerate() {
        for (ci, (claim, _)) in claims.iter().enumerate() {
            if hit[s][ci] {
                out.push(Confirmation {
                    claim: *claim,
                    sentence: range.clone(),
                });
            }
        }
    }
    out
}

/// Every sentence of `text` (normalised) that states or offers terms, with its kind and
/// whether it is clear. Instalments count only with their terms (how many, how much per
/// period, over how long): an invitation to agree a plan is not an offer of one.
pub fn offers(text: &str) -> Vec<Offer> {
    offers_in(&Reading::new(text))
}

pub(crate) fn offers_in(reading: &Reading<'_>) -> Vec<Offer> {
    let f = families();
    let text = reading.text;
    let mut out = Vec::new();
    let matched = reading.matched();
    let base = f.confirm_len;
    if !(base..f.scan.len()).any(|i| matched.matched(i)) {
        return out;
    }
    for range in reading.sentences() {
        let sentence = &text[range.clone()];
        for (i, (kind, re)) in [
            (OfferKind::Discount, &f.discount),
            (OfferKind::Waiver, &f.waiver),
            (OfferKind::Settlement, &f.settlement),
            (OfferKind::Concession, &f.concession),
            (OfferKind::Instalments, &f.instalment_terms),
        ]
        .into_iter()
        .enumerate()
        {
            if !matched.matched(base + i) {
                continue;
            }
            let stated_here = re.find_iter(sentence).any(|m| {
                let mut from = m.start().saturating_sub(24);
                while !sentence.is_char_boundary(from) {
                    from += 1;
                }
                // "no further interest" is itself the concession; other negations refuse.
                kind == OfferKind::Concession || !f.negated.is_match(&sentence[from..m.end()])
            });
            if !stated_here {
                continue;
            }
            let hedged = f.hedge.is_match(sentence);
            let stated = f.clear.is_match(sentence)
                || !percents_bps(f, sentence).is_empty()
                || crate::words::money_pattern().is_match(sentence)
                || kind == OfferKind::Instalments;
            // A bare mention ("Settlement offer" as a subject) states no terms.
            if !stated && !hedged {
                continue;
            }
            out.push(Offer {
                kind,
                clear: stated && !hedged,
                sentence: range.clone(),
            });
        }
    }
    out
}

/// A date a text states: month, day and, when written, the year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateMention {
    pub year: Option<i32>,
    pub month: u32,
    pub day: u32,
}

impl DateMention {
    /// Whether it names `date` (a mention without a year names that day of any year).
    pub fn names(&self, date: NaiveDate) -> bool {
        self.month == date.month()
            && self.day == date.day()
            && self.year.is_none_or(|y| y == date.year())
    }
}

impl std::fmt::Display for DateMention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.year {
            Some(y) => write!(f, "{y:04}-{:02}-{:02}", self.month, self.day),
            None => write!(f, "--{:02}-{:02}", self.month, self.day),
        }
    }
}

/// The dates `text` states: `2026-03-31`, `31 March 2026`, `31st of March`, `March 31,
/// 2026`, `Mar 31`. Numeric dates with slashes are ambiguous (US and UK order differ) and
/// are not read.
pub fn date_mentions(text: &str) -> Vec<DateMention> {
    let f = families();
    let mut out = Vec::new();
    for c in f.date_iso.captures_iter(text) {
        let num = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<u32>().ok());
        if let (Some(y), Some(m), Some(d)) = (num(1), num(2), num(3)) {
            out.push(DateMention {
                year: i32::try_from(y).ok(),
                month: m,
                day: d,
            });
        }
    }
    for (re, day_at, month_at) in [(&f.date_dm, 1, 2), (&f.date_md, 2, 1)] {
        for c in re.captures_iter(text) {
            let day = c.get(day_at).and_then(|m| m.as_str().parse::<u32>().ok());
            let month = c.get(month_at).and_then(|m| text::month_number(m.as_str()));
            let year = c.get(3).and_then(|m| m.as_str().parse::<i32>().ok());
            if let (Some(day), Some(month)) = (day, month)
                && (1..=31).contains(&day)
            {
                out.push(DateMention { year, month, day });
            }
        }
    }
    out
}

fn number_word(s: &str) -> Option<usize> {
    let s = s.to_ascii_lowercase().replace('-', " ");
    let n = match s.as_str() {
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "eighteen" => 18,
        "twenty four" => 24,
        "thirty six" => 36,
        other => return other.parse().ok(),
    };
    Some(n)
}

/// Percentages a sentence states, in basis points ("half" is 50%).
fn percents_bps(f: &Families, sentence: &str) -> Vec<i64> {
    let mut out: Vec<i64> = f
        .percent
        .captures_iter(sentence)
        .filter_map(|c| c.get(1))
        .filter_map(|m| {
            let (int, frac) = m.as_str().split_once('.').unwrap_or((m.as_str(), ""));
            let int: i64 = int.parse().ok()?;
            let frac: i64 = format!("{frac:0<2}").parse().unwrap_or(0);
            Some(int * 100 + frac)
        })
        .collect();
    if f.half.is_match(sentence) {
        out.push(5_000);
    }
    out
}

/// Counts of instalments (or months) a sentence states.
fn counts(f: &Families, sentence: &str) -> Vec<usize> {
    f.count
        .captures_iter(sentence)
        .filter_map(|c| c.get(1))
        .filter_map(|m| number_word(m.as_str()))
        .collect()
}

/// Why the figures a confirming sentence states are not `action`'s, if they are not:
/// every amount must be one of its figures (or, for a plan, a ledger figure it settles),
/// every date one of its dates.
fn figures_mismatch(
    action: &RecentAction,
    sentence: &str,
    mentions: &[&Mention],
    ctx: &Context,
) -> Option<String> {
    let figures = action.figures();
    for m in mentions {
        let ok = action.currency == Some(m.money.currency)
            && (figures.contains(&m.money.minor)
                || (action.kind == RecentKind::Plan
                    && ctx.open_balance(m.money.currency) == m.money.minor));
        if !ok {
            let what = match (action.currency, action.amount_minor) {
                (Some(c), Some(a)) => format!(
                    "the {} is for {}",
                    action.kind.as_str(),
                    argent_core::Money::new(a, c)
                ),
                _ => format!("the {} states no such amount", action.kind.as_str()),
            };
            return Some(format!("the email states {} but {what}", m.money));
        }
    }
    if !action.dates.is_empty() {
        for d in date_mentions(sentence) {
            if !action.dates.iter().any(|a| d.names(*a)) {
                let dates: Vec<String> = action.dates.iter().map(|d| d.to_string()).collect();
                return Some(format!(
                    "the email states the date {d} but the {} is for {}",
                    action.kind.as_str(),
                    dates.join(", ")
                ));
            }
        }
    }
    None
}

/// The verdict on one confirmation or offer against the account's actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// An executed action backs it.
    Backed,
    /// The action it refers to waits for a person: the email waits with it.
    Pending {
        approval_id: String,
        approvers: Vec<argent_core::Role>,
        detail: String,
    },
    /// It states figures the action it refers to does not have.
    Mismatch(String),
    /// Nothing backs it (or only refused actions).
    Unbacked(String),
}

fn newest_first(ctx: &Context, wanted: impl Fn(&RecentAction) -> bool) -> Vec<&RecentAction> {
    let mut v: Vec<&RecentAction> = ctx.recent_actions.iter().filter(|a| wanted(a)).collect();
    // This run's first, then the newest.
    v.sort_by(|a, b| b.this_run.cmp(&a.this_run).then(b.at.cmp(&a.at)));
    v
}

/// Judges what `sentence` claims or offers against the actions `wanted` selects, with
/// `check` saying why an action's figures do not fit the sentence.
fn back(
    ctx: &Context,
    what: &str,
    wanted: impl Fn(&RecentAction) -> bool,
    check: impl Fn(&RecentAction) -> Option<String>,
) -> Backing {
    let candidates = newest_first(ctx, &wanted);
    let mut mismatch: Option<String> = None;
    for status in [RecentStatus::Executed, RecentStatus::PendingApproval] {
        for a in candidates.iter().filter(|a| a.status == status) {
            match check(a) {
                None if status == RecentStatus::Executed => return Backing::Backed,
                None => {
                    if let Some(id) = &a.approval_id {
                        return Backing::Pending {
                            approval_id: id.clone(),
                            approvers: a.approvers.clone(),
                            detail: format!("it refers to the {}", a.describe()),
                        };
                    }
                }
                Some(why) => {
                    mismatch.get_or_insert(why);
                }
            }
        }
    }
    if let Some(why) = mismatch {
        return Backing::Mismatch(why);
    }
    let refused = candidates
        .iter()
        .find(|a| a.status == RecentStatus::Refused)
        .map(|a| format!("; the only such action was {}", a.describe()))
        .unwrap_or_default();
    Backing::Unbacked(format!("no {what} exists on this account{refused}"))
}

/// Judges one confirming sentence.
pub(crate) fn back_confirmation(
    ctx: &Context,
    claim: Claim,
    sentence: &str,
    mentions: &[&Mention],
) -> Backing {
    back(
        ctx,
        claim.noun(),
        |a| claim.backs(a.kind),
        |a| {
            if claim == Claim::FollowUp {
                None
            } else {
                figures_mismatch(a, sentence, mentions, ctx)
            }
        },
    )
}

/// Judges one offering sentence against the account's plans: a concession needs a plan
/// that forgives something, instalments a plan with instalments; the percentages, amounts
/// and counts the sentence states must be that plan's.
pub(crate) fn back_offer(
    ctx: &Context,
    offer: &Offer,
    sentence: &str,
    mentions: &[&Mention],
) -> Backing {
    let f = families();
    let concession = offer.kind != OfferKind::Instalments;
    back(
        ctx,
        &format!("plan with {}", offer.kind.as_str()),
        |a| {
            a.kind == RecentKind::Plan
                && if concession {
                    a.discount_minor > 0
                } else {
                    !a.installments_minor.is_empty()
                }
        },
        |a| {
            let bps = a.discount_bps();
            for p in percents_bps(f, sentence) {
                // The plan's discount, to the nearest whole percent either way.
                if (p - bps).abs() >= 100 {
                    return Some(format!(
                        "the email offers {}.{:02}% but the plan forgives {}.{:02}%",
                        p / 100,
                        p % 100,
                        bps / 100,
                        bps % 100
                    ));
                }
            }
            let n = a.installments_minor.len();
            for c in counts(f, sentence) {
                if c != n && c != n + usize::from(a.down_payment_minor > 0) {
                    return Some(format!(
                        "the email states {c} payments but the plan has {n} instalment(s)"
                    ));
                }
            }
            figures_mismatch(a, sentence, mentions, ctx)
        },
    )
}
