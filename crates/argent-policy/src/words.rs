//! Money amounts mentioned in a text, however they are written: with a symbol or an ISO
//! code (`$1,500.50`, `£40`, `1,200.00 EUR`), with a magnitude (`$10 thousand`, `£9.9k`),
//! or in English words (`nine thousand nine hundred dollars`, `nine thousand, nine hundred
//! pounds and fifty pence`, `twelve hundred euros`, `1,500 dollars`).
//!
//! A small pure parser, no tables: number words (`zero` … `ninety`, `hundred`,
//! `thousand`/`grand`, `million`, `billion`, British `and`, `a hundred`, `point five`, digits
//! between them) ending right before a currency word (`dollars`, `bucks`, `pounds`,
//! `quid`, `euros`, an ISO code after the number), optionally followed by the minor part
//! (`and fifty cents`, `and 50 pence`). Words that are not part of a number end it.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use argent_core::{Currency, Money};

/// One amount mentioned in a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mention {
    /// Byte range of the mention in the text.
    pub start: usize,
    pub end: usize,
    pub money: Money,
}

/// What [`money_mentions`] looks for: amounts with a symbol or ISO code (`$1,234.56`,
/// `£40`, `€ 40.00`, `USD 1234.56`, `1,234.56 GBP`), and the currency words and codes that
/// may end an amount written in words. Compiled once per policy ([`crate::Policy`]).
pub const MONEY_PATTERN: &str = concat!(
    r"(?:(?P<sym>[$£€])\s?|\b(?P<code>USD|GBP|EUR|CAD|AUD|NZD|CHF|JPY|SEK|NOK|DKK)\s?)(?P<num>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.(?P<frac>[0-9]{1,3}))?",
    r"|\b(?P<num2>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.(?P<frac2>[0-9]{1,3}))?\s?(?P<code2>USD|GBP|EUR|CAD|AUD|NZD|CHF|JPY|SEK|NOK|DKK)\b",
    r"|\b(?P<cword>(?i:dollars?|bucks|pounds?(?:\s+sterling)?|quid|euros?|cents?|pence|penny|pennies))\b",
    r"|\b(?P<ccode>USD|GBP|EUR|CAD|AUD|NZD|CHF|JPY|SEK|NOK|DKK)\b",
);

/// Capture group numbers in [`MONEY_PATTERN`] (by position: looking groups up by name
/// costs a hash per lookup on the hot path).
const SYM: usize = 1;
const CODE: usize = 2;
const NUM: usize = 3;
const FRAC: usize = 4;
const NUM2: usize = 5;
const FRAC2: usize = 6;
const CODE2: usize = 7;
const CWORD: usize = 8;
const CCODE: usize = 9;

/// [`MONEY_PATTERN`] compiled, for callers without a policy at hand.
pub fn money_pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        #[allow(clippy::unwrap_used)] // a constant pattern, compiled by every test
        Regex::new(MONEY_PATTERN).unwrap()
    })
}

/// Every amount mentioned in `text`, in text order: in figures with a symbol or code (and
/// any magnitude word after it), and in words ending in a currency word (see the module
/// docs). `money_mention` is [`MONEY_PATTERN`] compiled.
pub fn money_mentions(money_mention: &Regex, text: &str) -> Vec<Mention> {
    let mut out: Vec<Mention> = Vec::new();
    for caps in money_mention.captures_iter(text) {
        let Some(whole) = caps.get(0) else { continue };
        if out.last().is_some_and(|m| whole.start() < m.end) {
            continue; // e.g. the "cents" of "… dollars and fifty cents"
        }
        let mention =
            match (caps.get(CWORD), caps.get(CCODE)) {
                (Some(w), _) => unit_of(w.as_str())
                    .and_then(|unit| word_mention(text, whole.start(), whole.end(), unit)),
                (None, Some(c)) => c.as_str().parse().ok().and_then(|cur| {
                    word_mention(text, whole.start(), whole.end(), Unit::Major(cur))
                }),
                (None, None) => figure_mention(&caps, text),
            };
        let Some(m) = mention else { continue };
        if out.iter().any(|p| p.start < m.end && m.start < p.end) {
            continue; // "$1,500 dollars": the figure was read already
        }
        out.push(m);
    }
    out
}

/// An amount in figures with a symbol or code, and any magnitude after it.
fn figure_mention(caps: &regex::Captures<'_>, text: &str) -> Option<Mention> {
    let code = caps
        .get(SYM)
        .map(|s| match s.as_str() {
            "£" => "GBP",
            "€" => "EUR",
            _ => "USD",
        })
        .or_else(|| caps.get(CODE).map(|c| c.as_str()))
        .or_else(|| caps.get(CODE2).map(|c| c.as_str()))?;
    let num = caps.get(NUM).or_else(|| caps.get(NUM2))?;
    let frac = caps.get(FRAC).or_else(|| caps.get(FRAC2));
    let whole = caps.get(0)?;
    let currency: Currency = code.parse().ok()?;
    let mut minor = figures_minor(num.as_str(), frac.map(|f| f.as_str()), currency)?;
    let mut end = whole.end();
    if let Some((factor, to)) = magnitude_after(text, end) {
        minor = minor.saturating_mul(factor);
        end = to;
    } else if frac.is_none()
        && may_have_minor(text, end)
        && let Some((cents, to)) = minor_after(text, end, currency)
    {
        // "£5 and 50 pence"
        minor = minor.saturating_add(i64::try_from(cents).unwrap_or(i64::MAX));
        end = to;
    }
    Some(Mention {
        start: whole.start(),
        end,
        money: Money::new(minor, currency),
    })
}

/// Whether the word after byte `at` could start a minor part ("and", a number).
fn may_have_minor(text: &str, at: usize) -> bool {
    let rest = text.get(at..).unwrap_or("").trim_start_matches([' ', ',']);
    let word = rest
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("");
    !word.is_empty()
        && (word.eq_ignore_ascii_case("and")
            || word.bytes().all(|b| b.is_ascii_digit())
            || small(word).is_some())
}

/// Digits (with thousands commas) and decimals as minor units of `currency`; `None` when
/// there are more decimals than the currency has. Too large saturates: a huge amount stays
/// huge, it is never dropped.
fn figures_minor(num: &str, frac: Option<&str>, currency: Currency) -> Option<i64> {
    let exp = currency.exponent();
    let digits = |s: &str| {
        s.bytes()
            .filter(u8::is_ascii_digit)
            .try_fold(0_i64, |acc, b| {
                acc.checked_mul(10)?.checked_add(i64::from(b - b'0'))
            })
    };
    let Some(whole) = digits(num) else {
        return Some(i64::MAX);
    };
    let mut minor = whole.checked_mul(10_i64.pow(exp)).unwrap_or(i64::MAX);
    if let Some(f) = frac {
        let places = u32::try_from(f.len()).ok()?;
        if places > exp {
            return None;
        }
        let f = digits(f)?.checked_mul(10_i64.pow(exp - places))?;
        minor = minor.saturating_add(f);
    }
    Some(minor)
}

/// A magnitude right after a number: `k`, `m`, `bn` attached (`$9.9k`), or `thousand`,
/// `grand`, `million`, `billion` after a space. The factor and where the mention ends.
fn magnitude_after(text: &str, at: usize) -> Option<(i64, usize)> {
    let rest = text.get(at..)?;
    let word_end = |s: &str, len: usize| {
        s.get(len..)
            .and_then(|r| r.chars().next())
            .is_none_or(|c| !c.is_alphanumeric())
    };
    for (suffix, factor) in [("bn", 1_000_000_000), ("k", 1_000), ("m", 1_000_000)] {
        if rest
            .get(..suffix.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(suffix))
            && word_end(rest, suffix.len())
        {
            return Some((factor, at + suffix.len()));
        }
    }
    let spaces = rest.len() - rest.trim_start_matches([' ', '\u{a0}']).len();
    if spaces == 0 || spaces > 2 {
        return None;
    }
    let after = &rest[spaces..];
    for (word, factor) in [
        ("thousand", 1_000),
        ("grand", 1_000),
        ("million", 1_000_000),
        ("billion", 1_000_000_000),
    ] {
        if after
            .get(..word.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(word))
            && word_end(after, word.len())
        {
            return Some((factor, at + spaces + word.len()));
        }
    }
    None
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    /// Whole units of a currency.
    Major(Currency),
    /// Cents or pence.
    Minor(Currency),
}

fn unit_of(word: &str) -> Option<Unit> {
    let w = word.to_ascii_lowercase();
    let w = w.split_whitespace().next().unwrap_or("");
    Some(match w {
        "dollar" | "dollars" | "bucks" => Unit::Major(Currency::USD),
        "pound" | "pounds" | "quid" => Unit::Major(Currency::GBP),
        "euro" | "euros" => Unit::Major(Currency::EUR),
        "cent" | "cents" => Unit::Minor(Currency::USD),
        "pence" | "penny" | "pennies" => Unit::Minor(Currency::GBP),
        _ => return None,
    })
}

/// A word or a run of digits, with its byte range.
#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    text: &'a str,
    start: usize,
    end: usize,
}

/// Words (ASCII letters) and numbers (`9`, `9,900`, `9.5`) of `text[range]`, in order.
fn tokens(text: &str, range: Range<usize>) -> Vec<Token<'_>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = range.start;
    while i < range.end {
        let c = b[i];
        let start = i;
        if c.is_ascii_alphabetic() {
            while i < range.end && b[i].is_ascii_alphabetic() {
                i += 1;
            }
        } else if c.is_ascii_digit() {
            while i < range.end {
                if b[i].is_ascii_digit() {
                    i += 1;
                } else if b[i] == b','
                    && i + 4 <= range.end
                    && b.get(i + 1..i + 4)
                        .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
                    && !b.get(i + 4).is_some_and(u8::is_ascii_digit)
                {
                    i += 4;
                } else if b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                } else {
                    break;
                }
            }
        } else {
            i += 1;
            continue;
        }
        out.push(Token {
            text: &text[start..i],
            start,
            end: i,
        });
    }
    out
}

fn small(w: &str) -> Option<i128> {
    const WORDS: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    if let Some(i) = WORDS.iter().position(|x| w.eq_ignore_ascii_case(x)) {
        return i128::try_from(i).ok();
    }
    TENS.iter()
        .position(|x| w.eq_ignore_ascii_case(x))
        .and_then(|i| i128::try_from((i + 2) * 10).ok())
}

fn scale(w: &str) -> Option<i128> {
    [
        ("thousand", 1_000),
        ("grand", 1_000),
        ("million", 1_000_000),
        ("billion", 1_000_000_000),
    ]
    .iter()
    .find(|(x, _)| w.eq_ignore_ascii_case(x))
    .map(|(_, v)| *v)
}

/// Digits as thousandths: `9,900` → 9_900_000, `9.5` → 9_500.
fn digits_milli(t: &str) -> Option<i128> {
    let t: String = t.chars().filter(|c| *c != ',').collect();
    let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
    if frac.len() > 3 || whole.len() > 18 {
        return None;
    }
    let w: i128 = whole.parse().ok()?;
    let f: i128 = if frac.is_empty() {
        0
    } else {
        let scale = 10_i128.pow(3 - u32::try_from(frac.len()).ok()?);
        frac.parse::<i128>().ok()? * scale
    };
    w.checked_mul(1000)?.checked_add(f)
}

fn is_numberish(t: &Token<'_>) -> bool {
    let w = t.text;
    w.as_bytes()[0].is_ascii_digit()
        || small(w).is_some()
        || scale(w).is_some()
        || ["hundred", "and", "a", "an", "point"]
            .iter()
            .any(|x| w.eq_ignore_ascii_case(x))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Prev {
    Start,
    A,
    Unit,
    Tens,
    Digits,
    Hundred,
    Scale,
    And,
    Point,
}

/// The value of `toks` read as one English number, in thousandths; `None` unless every
/// token is part of it. Overflow saturates (a huge number stays huge).
fn parse_number(toks: &[Token<'_>]) -> Option<i128> {
    let mut total: i128 = 0;
    let mut current: i128 = 0;
    let mut prev = Prev::Start;
    let mut any = false;
    let mut i = 0;
    let sat = |v: Option<i128>| v.unwrap_or(i128::MAX / 4);
    while i < toks.len() {
        let w = toks[i].text;
        let next = toks.get(i + 1).map(|t| t.text);
        if let Some(v) = small(w) {
            match prev {
                Prev::Start | Prev::Scale | Prev::Hundred | Prev::And => {}
                Prev::Tens if (1..10).contains(&v) => {}
                _ => return None,
            }
            current = sat(current.checked_add(v * 1000));
            prev = if v >= 20 { Prev::Tens } else { Prev::Unit };
            any = true;
        } else if w.as_bytes()[0].is_ascii_digit() {
            if !matches!(prev, Prev::Start | Prev::Scale | Prev::And) {
                return None;
            }
            current = sat(current.checked_add(digits_milli(w)?));
            prev = Prev::Digits;
            any = true;
        } else if w.eq_ignore_ascii_case("hundred") {
            if matches!(prev, Prev::Hundred | Prev::And | Prev::Point) {
                return None;
            }
            let base = if current == 0 { 1000 } else { current };
            current = sat(base.checked_mul(100));
            prev = Prev::Hundred;
            any = true;
        } else if let Some(s) = scale(w) {
            if matches!(prev, Prev::Scale | Prev::And) {
                return None;
            }
            let base = if current == 0 { 1000 } else { current };
            total = sat(total.checked_add(sat(base.checked_mul(s))));
            current = 0;
            prev = Prev::Scale;
            any = true;
        } else if w.eq_ignore_ascii_case("and") {
            let next_is_number =
                next.is_some_and(|n| small(n).is_some() || n.as_bytes()[0].is_ascii_digit());
            if !matches!(prev, Prev::Hundred | Prev::Scale) || !next_is_number {
                return None;
            }
            prev = Prev::And;
        } else if w.eq_ignore_ascii_case("a") || w.eq_ignore_ascii_case("an") {
            let next_is_scale =
                next.is_some_and(|n| n.eq_ignore_ascii_case("hundred") || scale(n).is_some());
            if prev != Prev::Start || !next_is_scale {
                return None;
            }
            prev = Prev::A;
        } else if w.eq_ignore_ascii_case("point") {
            if !matches!(prev, Prev::Unit | Prev::Tens) {
                return None;
            }
            // Decimal digits as words: "point five", "point two five".
            let mut frac: i128 = 0;
            let mut place: i128 = 100;
            let mut j = i + 1;
            while let Some(d) = toks.get(j).and_then(|t| small(t.text)).filter(|d| *d < 10) {
                if place == 0 {
                    return None;
                }
                frac += d * place;
                place /= 10;
                j += 1;
            }
            if j == i + 1 {
                return None;
            }
            current = sat(current.checked_add(frac));
            i = j;
            prev = Prev::Point;
            continue;
        } else {
            return None;
        }
        i += 1;
    }
    if !any || matches!(prev, Prev::And | Prev::A) {
        return None;
    }
    Some(sat(total.checked_add(current)))
}

/// Every number written in `text` with or without a currency (`500`, `1,250.50`,
/// `two thousand five hundred`, `fifteen hundred`), in thousandths, in text order: each
/// run of number-like tokens joined by white space, commas or hyphens is read as the
/// longest numbers it holds, left to right ("pay 200 and 300" gives 200 and 300).
pub fn numbers(text: &str) -> Vec<i128> {
    let toks = tokens(text, 0..text.len());
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if !is_numberish(&toks[i]) {
            i += 1;
            continue;
        }
        let mut end = i + 1;
        while end < toks.len()
            && is_numberish(&toks[end])
            && joined(text, &toks[end - 1], &toks[end])
        {
            end += 1;
        }
        // Longest parse from `i`, then on from where it stopped.
        match (i + 1..=end)
            .rev()
            .find_map(|e| parse_number(&toks[i..e]).map(|v| (e, v)))
        {
            Some((e, v)) => {
                out.push(v);
                i = e;
            }
            None => i += 1,
        }
    }
    out
}

/// Whether only white space, commas and hyphens separate `a` from `b`.
fn joined(text: &str, a: &Token<'_>, b: &Token<'_>) -> bool {
    text.get(a.end..b.start)
        .is_some_and(|s| s.chars().all(|c| c.is_whitespace() || c == ',' || c == '-'))
}

/// The longest number that ends right before byte `at` (white space between), as its
/// start and value in thousandths.
fn number_before(text: &str, at: usize) -> Option<(usize, i128)> {
    let mut from = at.saturating_sub(240);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let toks = tokens(text, from..at);
    let last = toks.last()?;
    let gap = text.get(last.end..at)?;
    if gap.is_empty() && !last.text.as_bytes()[0].is_ascii_digit()
        || !gap.chars().all(char::is_whitespace)
    {
        return None;
    }
    // The run of number-like tokens joined by separators, ending at the last token.
    let mut first = toks.len() - 1;
    if !is_numberish(last) {
        return None;
    }
    while first > 0
        && is_numberish(&toks[first - 1])
        && joined(text, &toks[first - 1], &toks[first])
    {
        first -= 1;
    }
    (first..toks.len()).find_map(|s| parse_number(&toks[s..]).map(|v| (toks[s].start, v)))
}

/// The minor part right after a major amount ending at byte `at`: `and fifty cents`,
/// `, 50 pence`. Its value in minor units and where it ends.
fn minor_after(text: &str, at: usize, currency: Currency) -> Option<(i128, usize)> {
    let mut to = (at + 160).min(text.len());
    while !text.is_char_boundary(to) {
        to -= 1;
    }
    let toks = tokens(text, at..to);
    let mut i = 0;
    if toks
        .first()
        .is_some_and(|t| t.text.eq_ignore_ascii_case("and"))
    {
        i = 1;
    }
    let lead = toks.first()?;
    if !text
        .get(at..lead.start)?
        .chars()
        .all(|c| c.is_whitespace() || c == ',')
    {
        return None;
    }
    let unit_at = (i..toks.len()).find(|k| unit_of(toks[*k].text).is_some())?;
    if unit_at == i {
        return None;
    }
    let Some(Unit::Minor(minor_currency)) = unit_of(toks[unit_at].text) else {
        return None;
    };
    let same_family = match currency {
        c if c == Currency::GBP => minor_currency == Currency::GBP,
        _ => minor_currency == Currency::USD,
    };
    if !same_family {
        return None;
    }
    for k in 1..=unit_at {
        if !joined(text, &toks[k - 1], &toks[k]) {
            return None;
        }
    }
    let value = parse_number(&toks[i..unit_at])?;
    Some((value / 1000, toks[unit_at].end))
}

/// Milli-units of a whole currency amount as minor units of `currency`.
fn to_minor(milli: i128, currency: Currency) -> i64 {
    let scaled = milli.saturating_mul(10_i128.pow(currency.exponent())) / 1000;
    i64::try_from(scaled).unwrap_or(i64::MAX)
}

/// The amount in words (or digits) that ends with the currency word or code at
/// `start..end`, with the minor part after it for a major unit.
fn word_mention(text: &str, start: usize, end: usize, unit: Unit) -> Option<Mention> {
    let (from, milli) = number_before(text, start)?;
    Some(match unit {
        Unit::Major(currency) => {
            let mut minor = to_minor(milli, currency);
            let mut to = end;
            if let Some((cents, after)) = minor_after(text, end, currency) {
                minor = minor.saturating_add(i64::try_from(cents).unwrap_or(i64::MAX));
                to = after;
            }
            Mention {
                start: from,
                end: to,
                money: Money::new(minor, currency),
            }
        }
        Unit::Minor(currency) => Mention {
            start: from,
            end,
            money: Money::new(i64::try_from(milli / 1000).unwrap_or(i64::MAX), currency),
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn amounts(text: &str) -> Vec<(String, i64)> {
        money_mentions(money_pattern(), text)
            .into_iter()
            .map(|m| (m.money.currency.to_string(), m.money.minor))
            .collect()
    }

    fn usd(minor: i64) -> Vec<(String, i64)> {
        vec![("USD".into(), minor)]
    }

    fn gbp(minor: i64) -> Vec<(String, i64)> {
        vec![("GBP".into(), minor)]
    }

    #[test]
    fn english_number_words_with_a_currency_are_read() {
        assert_eq!(
            amounts("you owe nine thousand nine hundred dollars now"),
            usd(9_900_00)
        );
        assert_eq!(
            amounts("nine thousand, nine hundred pounds and fifty pence"),
            gbp(9_900_50)
        );
        assert_eq!(amounts("one hundred and fifty pounds"), gbp(150_00));
        assert_eq!(amounts("twelve hundred bucks"), usd(1_200_00));
        assert_eq!(amounts("twenty-five dollars"), usd(25_00));
        assert_eq!(amounts("a hundred dollars"), usd(100_00));
        assert_eq!(
            amounts("One Thousand Five Hundred Dollars and Fifty Cents"),
            usd(1_500_50)
        );
        assert_eq!(amounts("1,500 dollars"), usd(1_500_00));
        assert_eq!(amounts("9 thousand 900 dollars"), usd(9_900_00));
        assert_eq!(amounts("1.5 million dollars"), usd(1_500_000_00));
        assert_eq!(amounts("nine point five thousand dollars"), usd(9_500_00));
        assert_eq!(
            amounts("two thousand euros"),
            vec![("EUR".to_string(), 2_000_00)]
        );
        assert_eq!(amounts("two thousand GBP"), gbp(2_000_00));
        assert_eq!(amounts("five grand"), vec![]);
        assert_eq!(amounts("five grand dollars"), usd(5_000_00));
        assert_eq!(amounts("fifty pence"), gbp(50));
        assert_eq!(amounts("a pound sterling"), vec![]);
        assert_eq!(amounts("one pound sterling"), gbp(1_00));
    }

    #[test]
    fn words_that_are_not_amounts_are_not_read() {
        assert!(amounts("one of our team will call about the two invoices").is_empty());
        assert!(amounts("a member of our team").is_empty());
        assert!(amounts("Dollars and cents matter.").is_empty());
        assert!(amounts("and dollars").is_empty());
        // Two separate numbers do not run together: the nearest one is read.
        assert_eq!(amounts("nine nine dollars"), usd(9_00));
        // A sentence stop ends the number.
        assert_eq!(amounts("Invoice nine. Twenty dollars"), usd(20_00));
    }

    #[test]
    fn capture_group_numbers_match_the_pattern() {
        let names: Vec<Option<&str>> = money_pattern().capture_names().collect();
        for (i, name) in [
            (SYM, "sym"),
            (CODE, "code"),
            (NUM, "num"),
            (FRAC, "frac"),
            (NUM2, "num2"),
            (FRAC2, "frac2"),
            (CODE2, "code2"),
            (CWORD, "cword"),
            (CCODE, "ccode"),
        ] {
            assert_eq!(names[i], Some(name));
        }
        assert_eq!(names.len(), 10);
    }

    #[test]
    fn a_magnitude_after_a_symbol_amount_is_read() {
        let re = money_pattern();
        let m = money_mentions(re, "a balance of $10 thousand, or £9.9k, or $1.5m");
        let got: Vec<i64> = m.iter().map(|m| m.money.minor).collect();
        assert_eq!(got, vec![10_000_00, 9_900_00, 1_500_000_00]);
        // No double count of "$1,500 dollars".
        assert_eq!(money_mentions(re, "$1,500 dollars").len(), 1);
        assert_eq!(money_mentions(re, "$5 MAX").len(), 1);
        let m = money_mentions(re, "£5 and 50 pence, or $7 and twenty cents");
        let got: Vec<i64> = m.iter().map(|m| m.money.minor).collect();
        assert_eq!(got, vec![5_50, 7_20]);
        assert_eq!(money_mentions(re, "$5 MAX")[0].money.minor, 5_00);
    }
}
