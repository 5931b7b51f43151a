//! The agent's operations for the manager dashboard: runs, tool calls executed, held for
//! approval or refused (by rule), the approval backlog, time to decision (p50/p90),
//! approval rate per reviewer, tokens and their estimated cost, per day.
//!
//! Pure: the store reads the records ([`OpsInput`]), this module counts. Days are calendar
//! days in an explicit time zone (the viewer's), never the server's. Definitions:
//!
//! * A **run** counts on the day it was created; its **tokens** (all model calls of the
//!   run, prompt and completion) count on that day too, and their **cost** is the tokens
//!   priced by a [`TokenPrice`] (exact integer arithmetic; `None` without a price).
//! * A **tool call** counts on the day the model made it: `executed` if its side effect
//!   happened (by policy or after approval), `held` if it went to the approval queue
//!   (whatever was decided; an approved call that then executed is in both), `refused` if
//!   policy denied it, `invalid` if its arguments failed the tool's schema.
//! * **Refusals by rule**: each `refused` audit event in the window counts once for every
//!   rule id it names.
//! * **Backlog at the end of a day**: approvals created by then and not decided by then.
//! * **Time to decision**: `decided_at − created_at` of the approvals decided in the
//!   window; percentiles by the nearest-rank method (p50 of 1, 2, 3, 4 is 2).
//! * **Approval rate** of a reviewer: approved ÷ decided, of their decisions in the
//!   window.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::format::TokenPrice;

/// A stored run, as the operations count it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpsRun {
    pub created_at: DateTime<Utc>,
    pub tokens: i64,
}

/// A stored tool call, as the operations count it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpsCall {
    pub created_at: DateTime<Utc>,
    /// The tool call's status (`executed`, `refused`, `invalid`, `queued`, …).
    pub status: String,
    /// Whether it went to the approval queue.
    pub held: bool,
}

/// A `refused` audit event: when, and the rules it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpsRefusal {
    pub at: DateTime<Utc>,
    pub rule_ids: Vec<String>,
}

/// An approval item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpsApproval {
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    /// `Some(true)` approved, `Some(false)` rejected, `None` pending.
    pub approved: Option<bool>,
}

/// What the operations are computed from: the records of the window (and, for approvals,
/// every one still pending at its start).
#[derive(Clone, Debug)]
pub struct OpsInput<'a> {
    pub runs: &'a [OpsRun],
    pub calls: &'a [OpsCall],
    pub refusals: &'a [OpsRefusal],
    pub approvals: &'a [OpsApproval],
    /// The first and last day shown (inclusive), in `tz`.
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub tz: Tz,
    /// Approvals pending at this instant make the backlog "now".
    pub now: DateTime<Utc>,
    pub price: Option<TokenPrice>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpsDay {
    pub date: NaiveDate,
    pub runs: usize,
    pub tokens: i64,
    /// Minor units of the price's currency; `None` without a price (or on overflow).
    pub cost_minor: Option<i64>,
    pub executed: usize,
    pub held: usize,
    pub refused: usize,
    pub invalid: usize,
    pub decided: usize,
    /// Approvals pending at the end of the day.
    pub backlog: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewerStat {
    pub reviewer: String,
    pub decided: usize,
    pub approved: usize,
    /// `approved ÷ decided × 100`.
    pub approval_rate_percent: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCount {
    pub rule_id: String,
    pub refusals: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentOps {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub tz: String,
    pub days: Vec<OpsDay>,
    pub runs: usize,
    pub tokens: i64,
    pub cost_minor: Option<i64>,
    pub price: Option<TokenPrice>,
    pub executed: usize,
    pub held: usize,
    pub refused: usize,
    pub invalid: usize,
    /// Most refusals first, then by id.
    pub refused_by_rule: Vec<RuleCount>,
    pub decided: usize,
    /// Seconds from queued to decided, of the approvals decided in the window.
    pub decision_p50_secs: Option<i64>,
    pub decision_p90_secs: Option<i64>,
    /// By reviewer name.
    pub reviewers: Vec<ReviewerStat>,
    pub backlog_now: usize,
    pub oldest_pending: Option<DateTime<Utc>>,
}

/// The nearest-rank percentile `p` (0 < p ≤ 100) of `sorted` (ascending); `None` if empty.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    // rank = ceil(p/100 × n), at least 1.
    let rank = (usize::try_from(p.min(100)).unwrap_or(100) * n).div_ceil(100);
    sorted.get(rank.max(1) - 1).copied()
}

/// The operations of `input`'s window (definitions in the module docs).
pub fn agent_ops(input: &OpsInput<'_>) -> AgentOps {
    let OpsInput {
        runs,
        calls,
        refusals,
        approvals,
        from,
        to,
        tz,
        now,
        price,
    } = *input;
    let day_of = |t: DateTime<Utc>| t.with_timezone(&tz).date_naive();
    let in_window = |t: DateTime<Utc>| {
        let d = day_of(t);
        d >= from && d <= to
    };
    let mut days: BTreeMap<NaiveDate, OpsDay> = BTreeMap::new();
    let mut d = from;
    while d <= to {
        days.insert(
            d,
            OpsDay {
                date: d,
                cost_minor: price.map(|_| 0),
                ..OpsDay::default()
            },
        );
        match d.checked_add_days(Days::new(1)) {
            Some(next) => d = next,
            None => break,
        }
    }
    for r in runs {
        if let Some(day) = days.get_mut(&day_of(r.created_at)) {
            day.runs += 1;
            day.tokens = day.tokens.saturating_add(r.tokens.max(0));
        }
    }
    for c in calls {
        if let Some(day) = days.get_mut(&day_of(c.created_at)) {
            match c.status.as_str() {
                "executed" => day.executed += 1,
                "refused" => day.refused += 1,
                "invalid" => day.invalid += 1,
                _ => {}
            }
            if c.held {
                day.held += 1;
            }
        }
    }
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for r in refusals.iter().filter(|r| in_window(r.at)) {
        for id in &r.rule_ids {
            *by_rule.entry(id.as_str()).or_default() += 1;
        }
    }
    let mut waits = Vec::new();
    let mut reviewers: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for a in approvals {
        if let Some(at) = a.decided_at
            && in_window(at)
        {
            waits.push((at - a.created_at).num_seconds().max(0));
            if let Some(day) = days.get_mut(&day_of(at)) {
                day.decided += 1;
            }
            let e = reviewers
                .entry(a.decided_by.as_deref().unwrap_or("(unknown)"))
                .or_default();
            e.0 += 1;
            if a.approved == Some(true) {
                e.1 += 1;
            }
        }
    }
    // Backlog at the end of each day: created on or before it, not decided by its end.
    for (date, day) in days.iter_mut() {
        let end = date
            .checked_add_days(Days::new(1))
            .and_then(|n| {
                n.and_hms_opt(0, 0, 0)
                    .and_then(|t| t.and_local_timezone(tz).earliest())
            })
            .map(|t| t.with_timezone(&Utc));
        let Some(end) = end else { continue };
        day.backlog = approvals
            .iter()
            .filter(|a| a.created_at < end && a.decided_at.is_none_or(|d| d >= end))
            .count();
    }
    waits.sort_unstable();
    let pending: Vec<&OpsApproval> = approvals
        .iter()
        .filter(|a| a.created_at <= now && a.decided_at.is_none_or(|d| d > now))
        .collect();
    let mut refused_by_rule: Vec<RuleCount> = by_rule
        .into_iter()
        .map(|(id, n)| RuleCount {
            rule_id: id.to_string(),
            refusals: n,
        })
        .collect();
    refused_by_rule.sort_by(|a, b| b.refusals.cmp(&a.refusals).then(a.rule_id.cmp(&b.rule_id)));
    let mut days: Vec<OpsDay> = days.into_values().collect();
    if let Some(p) = price {
        for day in &mut days {
            day.cost_minor = p.cost_minor(day.tokens);
        }
    }
    let tokens = days.iter().fold(0_i64, |a, d| a.saturating_add(d.tokens));
    let sum = |f: fn(&OpsDay) -> usize| days.iter().map(f).sum::<usize>();
    AgentOps {
        from,
        to,
        tz: tz.name().to_string(),
        runs: sum(|d| d.runs),
        executed: sum(|d| d.executed),
        held: sum(|d| d.held),
        refused: sum(|d| d.refused),
        invalid: sum(|d| d.invalid),
        decided: waits.len(),
        tokens,
        cost_minor: price.and_then(|p| p.cost_minor(tokens)),
        price,
        refused_by_rule,
        decision_p50_secs: percentile(&waits, 50),
        decision_p90_secs: percentile(&waits, 90),
        reviewers: reviewers
            .into_iter()
            .map(|(name, (decided, approved))| ReviewerStat {
                reviewer: name.to_string(),
                decided,
                approved,
                approval_rate_percent: approved as f64 / decided.max(1) as f64 * 100.0,
            })
            .collect(),
        backlog_now: pending.len(),
        oldest_pending: pending.iter().map(|a| a.created_at).min(),
        days,
    }
}

/// `"45 s"`, `"12 min"`, `"3.5 h"`, `"2.0 d"`: a duration in seconds for people.
pub fn human_secs(secs: i64) -> String {
    let s = secs.max(0);
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min", s / 60)
    } else if s < 86_400 {
        format!("{:.1} h", s as f64 / 3600.0)
    } else {
        format!("{:.1} d", s as f64 / 86_400.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 90), Some(4));
        let ten: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&ten, 50), Some(5));
        assert_eq!(percentile(&ten, 90), Some(9));
        assert_eq!(percentile(&ten, 100), Some(10));
    }

    fn approval(created: &str, decided: Option<(&str, &str, bool)>) -> OpsApproval {
        OpsApproval {
            created_at: t(created),
            decided_at: decided.map(|(at, _, _)| t(at)),
            decided_by: decided.map(|(_, who, _)| who.to_string()),
            approved: decided.map(|(_, _, ok)| ok),
        }
    }

    fn sample(tz: Tz) -> AgentOps {
        let runs = [
            OpsRun {
                created_at: t("2026-03-01T10:00:00Z"),
                tokens: 1_500,
            },
            OpsRun {
                created_at: t("2026-03-01T23:30:00Z"),
                tokens: 500,
            },
            OpsRun {
                created_at: t("2026-03-02T09:00:00Z"),
                tokens: 1_000,
            },
            // Outside the window.
            OpsRun {
                created_at: t("2026-02-20T09:00:00Z"),
                tokens: 9_999,
            },
        ];
        let call = |at: &str, status: &str, held: bool| OpsCall {
            created_at: t(at),
            status: status.into(),
            held,
        };
        let calls = [
            call("2026-03-01T10:00:01Z", "executed", false),
            call("2026-03-01T10:00:02Z", "refused", false),
            call("2026-03-01T10:00:03Z", "executed", true),
            call("2026-03-02T09:00:01Z", "queued", true),
            call("2026-03-02T09:00:02Z", "invalid", false),
        ];
        let refusals = [
            OpsRefusal {
                at: t("2026-03-01T10:00:02Z"),
                rule_ids: vec!["us.fdcpa.hours".into(), "no.threats".into()],
            },
            OpsRefusal {
                at: t("2026-03-02T11:00:00Z"),
                rule_ids: vec!["no.threats".into()],
            },
        ];
        let approvals = [
            // Decided after 10 minutes, approved by ann.
            approval(
                "2026-03-01T10:00:03Z",
                Some(("2026-03-01T10:10:03Z", "ann", true)),
            ),
            // Decided after 2 hours, rejected by bob.
            approval(
                "2026-03-01T12:00:00Z",
                Some(("2026-03-02T14:00:00Z", "bob", false)),
            ),
            // Decided after 1 hour, approved by ann.
            approval(
                "2026-03-02T08:00:00Z",
                Some(("2026-03-02T09:00:00Z", "ann", true)),
            ),
            // Still pending.
            approval("2026-03-02T09:00:01Z", None),
        ];
        agent_ops(&OpsInput {
            runs: &runs,
            calls: &calls,
            refusals: &refusals,
            approvals: &approvals,
            from: d("2026-03-01"),
            to: d("2026-03-02"),
            tz,
            now: t("2026-03-02T18:00:00Z"),
            price: Some("USD 0.01".parse().unwrap()),
        })
    }

    #[test]
    fn hand_counted_operations_in_utc() {
        let ops = sample(chrono_tz::UTC);
        assert_eq!(ops.days.len(), 2);
        let (d1, d2) = (&ops.days[0], &ops.days[1]);
        assert_eq!((d1.runs, d1.tokens, d1.cost_minor), (2, 2_000, Some(2)));
        assert_eq!((d2.runs, d2.tokens, d2.cost_minor), (1, 1_000, Some(1)));
        assert_eq!((d1.executed, d1.held, d1.refused, d1.invalid), (2, 1, 1, 0));
        assert_eq!((d2.executed, d2.held, d2.refused, d2.invalid), (0, 1, 0, 1));
        assert_eq!((ops.runs, ops.tokens, ops.cost_minor), (3, 3_000, Some(3)));
        assert_eq!(
            ops.refused_by_rule,
            vec![
                RuleCount {
                    rule_id: "no.threats".into(),
                    refusals: 2
                },
                RuleCount {
                    rule_id: "us.fdcpa.hours".into(),
                    refusals: 1
                },
            ]
        );
        // Waits: 600 s, 3600 s, 93600 s.
        assert_eq!(ops.decided, 3);
        assert_eq!(ops.decision_p50_secs, Some(3_600));
        assert_eq!(ops.decision_p90_secs, Some(93_600));
        assert_eq!(ops.reviewers.len(), 2);
        assert_eq!(
            (&*ops.reviewers[0].reviewer, ops.reviewers[0].decided),
            ("ann", 2)
        );
        assert_eq!(ops.reviewers[0].approval_rate_percent, 100.0);
        assert_eq!(ops.reviewers[1].approval_rate_percent, 0.0);
        // End of 1 March: the 12:00 item is still pending; end of 2 March: the last one.
        assert_eq!((d1.backlog, d2.backlog), (1, 1));
        assert_eq!((d1.decided, d2.decided), (1, 2));
        assert_eq!(ops.backlog_now, 1);
        assert_eq!(ops.oldest_pending, Some(t("2026-03-02T09:00:01Z")));
    }

    #[test]
    fn days_are_the_viewers() {
        // In Tokyo (UTC+9) the 23:30 UTC run of 1 March is on 2 March, and the 10:00 UTC
        // one stays on 1 March (19:00).
        let ops = sample(chrono_tz::Asia::Tokyo);
        assert_eq!(ops.tz, "Asia/Tokyo");
        assert_eq!((ops.days[0].runs, ops.days[1].runs), (1, 2));
        assert_eq!((ops.days[0].tokens, ops.days[1].tokens), (1_500, 1_500));
    }

    #[test]
    fn without_a_price_there_is_no_cost() {
        let ops = agent_ops(&OpsInput {
            runs: &[OpsRun {
                created_at: t("2026-03-01T10:00:00Z"),
                tokens: 10,
            }],
            calls: &[],
            refusals: &[],
            approvals: &[],
            from: d("2026-03-01"),
            to: d("2026-03-01"),
            tz: chrono_tz::UTC,
            now: t("2026-03-01T12:00:00Z"),
            price: None,
        });
        assert_eq!((ops.cost_minor, ops.days[0].cost_minor), (None, None));
        assert_eq!(ops.decision_p50_secs, None);
        assert_eq!(ops.backlog_now, 0);
    }

    #[test]
    fn durations_read_for_people() {
        assert_eq!(human_secs(45), "45 s");
        assert_eq!(human_secs(600), "10 min");
        assert_eq!(human_secs(5_400), "1.5 h");
        assert_eq!(human_secs(172_800), "2.0 d");
        assert_eq!(human_secs(-3), "0 s");
    }
}
