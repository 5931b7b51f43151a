//! Contact-side account facts (issue #12 §1): what the customer said about when, where and
//! how they may be contacted, the US validation notice and its period, and the instant a
//! contact happens at. The rules are data in the packs (stop conditions
//! `inconvenient_time`, `workplace_contact`, `not_preferred_channel`,
//! `validation_notice_not_sent`, and `[[validation_period]]`); this module reads the facts.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};
use regex::Regex;
use serde::Deserialize;

use argent_core::{Action, Channel, ToolName};

use crate::context::Context;
use crate::policy::{Checker, RuleMeta, StopCondition};
use crate::text;

/// The channel a tool contacts the debtor on, if it does.
pub(crate) fn channel_of(tool: ToolName) -> Option<Channel> {
    match tool {
        ToolName::SendEmail => Some(Channel::Email),
        ToolName::RequestCall => Some(Channel::Phone),
        _ => None,
    }
}

/// The instant the action reaches the debtor: now, or for a call task the later of now and
/// its `not_before`.
pub(crate) fn contact_at(action: &Action, ctx: &Context) -> DateTime<Utc> {
    match action {
        Action::RequestCall(c) => c.not_before.map_or(ctx.now, |t| t.max(ctx.now)),
        _ => ctx.now,
    }
}

/// Why a contact-fact stop fires for `action`, if it does (`Some(detail)`); `None` when it
/// does not. Only for the conditions this module owns.
pub(crate) fn stop_detail(when: StopCondition, action: &Action, ctx: &Context) -> Option<String> {
    let facts = &ctx.customer.facts;
    match when {
        StopCondition::InconvenientTime => {
            channel_of(action.tool())?;
            let at = contact_at(action, ctx);
            let local = at.with_timezone(&ctx.customer.time_zone);
            let t = local.time();
            facts
                .inconvenient_times
                .iter()
                .find(|w| w.contains(t))
                .map(|w| {
                    format!(
                        "it is {:02}:{:02} in {} for the debtor, inside the window {}–{} they said is inconvenient",
                        t.hour(),
                        t.minute(),
                        ctx.customer.time_zone,
                        w.from.format("%H:%M"),
                        w.to.format("%H:%M")
                    )
                })
        }
        StopCondition::WorkplaceContact => match action {
            Action::SendEmail(e) if facts.no_workplace_contact => facts
                .workplace_addresses
                .iter()
                .find(|a| a.trim().eq_ignore_ascii_case(e.to.trim()))
                .map(|a| format!("{a} is a workplace address and workplace contact is refused")),
            _ => None,
        },
        StopCondition::NotPreferredChannel => {
            let channel = channel_of(action.tool())?;
            let preferred = facts.preferred_channel?;
            (channel != preferred).then(|| {
                format!("the customer asked to be contacted by {preferred}, not by {channel}")
            })
        }
        StopCondition::ValidationNoticeNotSent => (facts.validation_notice.is_none()
            && !ctx.initial_communication_sent)
            .then(|| "no validation notice and no initial communication has been sent".into()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// The validation period.

fn email_only() -> Vec<ToolName> {
    vec![ToolName::SendEmail]
}

/// `[[validation_period]]`: during the validation period nothing may overshadow or
/// contradict the right to dispute.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ValidationPeriodDoc {
    #[serde(flatten)]
    meta: RuleMeta,
    /// Days the consumer has to dispute, counted from presumed receipt.
    dispute_days: u32,
    /// Days after sending the notice is presumed received.
    receipt_days: u32,
    /// Language that overshadows the right to dispute wherever it appears.
    overshadowing: String,
    /// What a sentence asking for payment looks like; such a sentence naming a deadline
    /// inside the period overshadows it.
    demand: String,
    #[serde(default = "email_only")]
    actions: Vec<ToolName>,
}

#[derive(Clone, Debug)]
pub(crate) struct ValidationPeriod {
    pub meta: RuleMeta,
    pub dispute_days: u32,
    pub receipt_days: u32,
    pub overshadowing: Regex,
    pub demand: Regex,
    pub actions: Vec<ToolName>,
    pub deadline: Regex,
}

/// Dates and spans a sentence may set a deadline with (English, as the packs' text is).
const DEADLINE_PATTERN: &str = concat!(
    r"(?i)\b(?:",
    // 1-3: ISO date
    r"(\d{4})-(\d{2})-(\d{2})",
    // 4-6: month day[, year]
    r"|(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?\s+(\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(\d{4}))?",
    // 7-9: day [of] month [year]
    r"|(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)(?:,?\s+(\d{4}))?",
    // 10-11: within / in / next N days|hours|weeks
    r"|(?:within|in|next)\s+(?:the\s+next\s+)?(\d{1,3}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fourteen|fifteen|twenty|thirty)\s+(?:business\s+|working\s+|calendar\s+)?(hours?|days?|weeks?)",
    // 12: today, tomorrow, end of the day/week/month
    r"|(today|tonight|tomorrow|end\s+of\s+(?:the\s+)?(?:day|week|month))",
    r")\b"
);

pub(crate) fn compile_validation_periods(
    docs: Vec<ValidationPeriodDoc>,
    ck: &mut Checker,
) -> Vec<ValidationPeriod> {
    let mut out = Vec::new();
    for (i, v) in docs.into_iter().enumerate() {
        let key = format!("validation_period[{i}]");
        ck.meta(&key, &v.meta);
        if v.dispute_days == 0 || v.dispute_days > 366 {
            ck.problem(
                format!("{key}.dispute_days"),
                format!("{} is not between 1 and 366", v.dispute_days),
            );
        }
        if v.receipt_days > 60 {
            ck.problem(
                format!("{key}.receipt_days"),
                format!("{} is not between 0 and 60", v.receipt_days),
            );
        }
        if v.actions.is_empty() {
            ck.problem(format!("{key}.actions"), "must name at least one tool");
        }
        let overshadowing = ck.regex(format!("{key}.overshadowing"), &v.overshadowing);
        let demand = ck.regex(format!("{key}.demand"), &v.demand);
        let deadline = ck.regex(key.clone(), DEADLINE_PATTERN);
        if let (Some(overshadowing), Some(demand), Some(deadline)) =
            (overshadowing, demand, deadline)
        {
            out.push(ValidationPeriod {
                meta: v.meta,
                dispute_days: v.dispute_days,
                receipt_days: v.receipt_days,
                overshadowing,
                demand,
                actions: v.actions,
                deadline,
            });
        }
    }
    out
}

impl ValidationPeriod {
    /// The last day of the validation period for a notice sent on `sent_on`.
    pub fn ends(&self, sent_on: NaiveDate) -> Option<NaiveDate> {
        sent_on.checked_add_days(chrono::Days::new(
            u64::from(self.receipt_days) + u64::from(self.dispute_days),
        ))
    }
}

fn count(word: &str) -> Option<i64> {
    if let Ok(n) = word.parse::<i64>() {
        return Some(n);
    }
    let n = match word.to_ascii_lowercase().as_str() {
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
        "fourteen" => 14,
        "fifteen" => 15,
        "twenty" => 20,
        "thirty" => 30,
        _ => return None,
    };
    Some(n)
}

/// A day and month without a year: its next occurrence on or after `today`.
fn next_occurrence(today: NaiveDate, m: u32, d: u32, year: Option<i32>) -> Option<NaiveDate> {
    match year {
        Some(y) => NaiveDate::from_ymd_opt(y, m, d),
        None => {
            let this = NaiveDate::from_ymd_opt(today.year(), m, d)?;
            if this >= today {
                Some(this)
            } else {
                NaiveDate::from_ymd_opt(today.year() + 1, m, d)
            }
        }
    }
}

/// Every deadline a sentence sets, as dates, with the words that set it.
pub(crate) fn deadlines<'t>(
    re: &Regex,
    sentence: &'t str,
    today: NaiveDate,
) -> Vec<(NaiveDate, &'t str)> {
    let mut out = Vec::new();
    for c in re.captures_iter(sentence) {
        let Some(all) = c.get(0) else { continue };
        let g = |i: usize| c.get(i).map(|m| m.as_str());
        let date = if let (Some(y), Some(m), Some(d)) = (g(1), g(2), g(3)) {
            match (y.parse(), m.parse(), d.parse()) {
                (Ok(y), Ok(m), Ok(d)) => NaiveDate::from_ymd_opt(y, m, d),
                _ => None,
            }
        } else if let (Some(mo), Some(d)) = (g(4), g(5)) {
            let year = g(6).and_then(|y| y.parse().ok());
            crate::text::month_number(mo)
                .zip(d.parse().ok())
                .and_then(|(m, d)| next_occurrence(today, m, d, year))
        } else if let (Some(d), Some(mo)) = (g(7), g(8)) {
            let year = g(9).and_then(|y| y.parse().ok());
            crate::text::month_number(mo)
                .zip(d.parse().ok())
                .and_then(|(m, d)| next_occurrence(today, m, d, year))
        } else if let (Some(n), Some(unit)) = (g(10), g(11)) {
            count(n).and_then(|n| {
                let u = unit.to_ascii_lowercase();
                let days = if u.starts_with("hour") {
                    n.checked_add(23)? / 24
                } else if u.starts_with("week") {
                    n.checked_mul(7)?
                } else {
                    n
                };
                today.checked_add_signed(Duration::try_days(days)?)
            })
        } else if let Some(w) = g(12) {
            let w = w.to_ascii_lowercase();
            if w.starts_with("tomorrow") {
                today.succ_opt()
            } else if w.ends_with("week") {
                today.checked_add_days(chrono::Days::new(7))
            } else if w.ends_with("month") {
                let (y, m) = if today.month() == 12 {
                    (today.year() + 1, 1)
                } else {
                    (today.year(), today.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1).and_then(|d| d.pred_opt())
            } else {
                Some(today)
            }
        } else {
            None
        };
        if let Some(date) = date {
            out.push((date, all.as_str()));
        }
    }
    out
}

/// Why `texts` (name, normalised text) overshadow the right to dispute during the
/// validation period, if they do and the period is running on the contact day.
pub(crate) fn overshadowing_detail(
    rule: &ValidationPeriod,
    texts: &[(&str, &str)],
    action: &Action,
    ctx: &Context,
) -> Option<String> {
    let notice = ctx.customer.facts.validation_notice?;
    let end = rule.ends(notice.sent_on)?;
    let day = contact_at(action, ctx)
        .with_timezone(&ctx.customer.time_zone)
        .date_naive();
    if day > end {
        return None;
    }
    let period = format!(
        "the validation period of the notice sent {} by {} runs to {end}",
        notice.sent_on, notice.channel
    );
    for (name, t) in texts {
        if let Some(m) = rule.overshadowing.find(t) {
            return Some(format!(
                "the {name} says \"{}\" while {period}",
                text::excerpt(m.as_str(), 80)
            ));
        }
    }
    for (name, t) in texts {
        for range in text::sentences(t) {
            let sentence = &t[range];
            if !rule.demand.is_match(sentence) {
                continue;
            }
            if let Some((date, words)) = deadlines(&rule.deadline, sentence, day)
                .into_iter()
                .find(|(date, _)| *date <= end)
            {
                return Some(format!(
                    "the {name} asks for payment by {date} (\"{words}\"), inside the period: {period}: \"{}\"",
                    text::excerpt(sentence, 160)
                ));
            }
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn deadlines_are_read_in_figures_words_and_spans() {
        let re = Regex::new(DEADLINE_PATTERN).unwrap();
        let today = d("2026-03-10");
        let first = |s: &str| deadlines(&re, s, today).first().map(|x| x.0);
        assert_eq!(first("Pay by 2026-03-20."), Some(d("2026-03-20")));
        assert_eq!(first("Pay by March 20, 2026."), Some(d("2026-03-20")));
        assert_eq!(first("Pay by Mar. 20th."), Some(d("2026-03-20")));
        assert_eq!(first("Pay by the 5th of April."), Some(d("2026-04-05")));
        assert_eq!(first("Pay by 2 March."), Some(d("2027-03-02")));
        assert_eq!(first("Pay within 10 days."), Some(d("2026-03-20")));
        assert_eq!(
            first("Pay within seven business days."),
            Some(d("2026-03-17"))
        );
        assert_eq!(first("Pay within 48 hours."), Some(d("2026-03-12")));
        assert_eq!(first("Pay within two weeks."), Some(d("2026-03-24")));
        assert_eq!(first("Pay today."), Some(today));
        assert_eq!(first("Pay by tomorrow."), Some(d("2026-03-11")));
        assert_eq!(first("Pay by the end of the month."), Some(d("2026-03-31")));
        assert_eq!(first("Pay when you can."), None);
        assert_eq!(first("Invoice 2026-13-45 is open."), None);
    }
}
