//! Work for people: tasks and escalations, and the figures the queues show.
//!
//! A task is something a person (a role, and optionally one named user) must do about an
//! account: an escalation the agent made, an alert for the account manager, a credit-hold
//! review, a follow-up. Its lifecycle is `open` → `in_progress` (someone took it) →
//! `done` | `cancelled`; a closed task has an outcome and never reopens.
//!
//! Pure: the due time of an escalation is computed from an explicit instant and an
//! explicit time zone, and a promise's "partially kept" is derived from payments, never
//! stored ([`promise_standing`]).

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::action::Urgency;
use crate::customer::str_enum;
use crate::decision::Role;
use crate::invoice::Payment;
use crate::promise::{PromiseStatus, PromiseToPay};

/// What a task is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// The agent (or a person) handed the account to a person.
    Escalation,
    /// Internal notice for the customer's account manager.
    AccountManagerAlert,
    /// Review a credit hold on the account.
    CreditHoldReview,
    /// Get back to the customer about something.
    FollowUp,
    Other,
}
str_enum!(TaskKind {
    Escalation => "escalation",
    AccountManagerAlert => "account_manager_alert",
    CreditHoldReview => "credit_hold_review",
    FollowUp => "follow_up",
    Other => "other",
});

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    /// Someone took it (assigned to a person).
    InProgress,
    Done,
    Cancelled,
}
str_enum!(TaskStatus {
    Open => "open",
    InProgress => "in_progress",
    Done => "done",
    Cancelled => "cancelled",
});

impl TaskStatus {
    /// Whether someone still has to do it.
    pub fn is_open(self) -> bool {
        matches!(self, TaskStatus::Open | TaskStatus::InProgress)
    }
}

/// How long an escalation may wait, by urgency: `high` 4 hours; `normal` one business day
/// (the same local time the next day, moved past a Saturday or Sunday in `zone`); `low`
/// 3 calendar days. `zone` is the customer's: the desk works the debtor's business days.
pub fn escalation_due(urgency: Urgency, now: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
    match urgency {
        Urgency::High => now + Duration::hours(4),
        Urgency::Low => now + Duration::days(3),
        Urgency::Normal => {
            let local = now.with_timezone(&zone);
            let mut day = local.date_naive();
            loop {
                day = day.succ_opt().unwrap_or(day);
                if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) || day == NaiveDate::MAX {
                    break;
                }
            }
            let at = day.and_time(local.time());
            // A local time the clocks skip (spring forward) is taken an hour later; an
            // ambiguous one (fall back) at its first occurrence.
            zone.from_local_datetime(&at)
                .earliest()
                .or_else(|| {
                    zone.from_local_datetime(&(at + Duration::hours(1)))
                        .earliest()
                })
                .map_or(now + Duration::days(1), |t| t.with_timezone(&Utc))
        }
    }
}

/// How a promise stands for the promise tracker: the stored/judged status, refined with
/// `partially_kept` (a broken promise on which some money came in) — derived, not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromiseStanding {
    Open,
    Kept,
    /// Past its deadline with some, but not all, of the amount received in its window.
    PartiallyKept,
    /// Past its deadline with nothing received in its window.
    Broken,
    Cancelled,
}
str_enum!(PromiseStanding {
    Open => "open",
    Kept => "kept",
    PartiallyKept => "partially_kept",
    Broken => "broken",
    Cancelled => "cancelled",
});

/// A promise judged as of `as_of`, with the money received towards it (minor units of the
/// promise's currency, in its window: from the day it was made to `min(as_of, promised
/// date + grace)`, on the invoices it names or on any when it names none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromiseJudgement {
    pub standing: PromiseStanding,
    /// Received towards it; `i128` so that no sum of `i64` payments overflows.
    pub received_minor: i128,
}

/// Judges `promise` as [`PromiseToPay::assess`] does, then splits "broken" into broken
/// (nothing received) and partially kept (something received, less than the amount). A
/// promise stored as kept or broken stays so (a person or the tracker decided it).
pub fn promise_standing(
    promise: &PromiseToPay,
    payments: &[Payment],
    as_of: NaiveDate,
    grace_days: i64,
) -> PromiseJudgement {
    let deadline = Duration::try_days(grace_days)
        .and_then(|g| promise.promised_date.checked_add_signed(g))
        .unwrap_or(if grace_days < 0 {
            NaiveDate::MIN
        } else {
            NaiveDate::MAX
        });
    let made_on = promise.created_at.date_naive();
    let received: i128 = payments
        .iter()
        .filter(|p| p.customer_id == promise.customer_id)
        .filter(|p| p.amount.currency == promise.amount.currency)
        .filter(|p| {
            promise.invoice_numbers.is_empty()
                || promise.invoice_numbers.contains(&p.invoice_number)
        })
        .filter(|p| p.received_on >= made_on && p.received_on <= deadline.min(as_of))
        .map(|p| i128::from(p.amount.minor))
        .sum();
    let judged = match promise.status {
        PromiseStatus::Open => promise.assess(payments, as_of, grace_days),
        s => s,
    };
    let standing = match judged {
        PromiseStatus::Open => PromiseStanding::Open,
        PromiseStatus::Kept => PromiseStanding::Kept,
        PromiseStatus::Cancelled => PromiseStanding::Cancelled,
        PromiseStatus::Broken if received > 0 => PromiseStanding::PartiallyKept,
        PromiseStatus::Broken => PromiseStanding::Broken,
    };
    PromiseJudgement {
        standing,
        received_minor: received,
    }
}

/// The Monday-to-Sunday week containing `day` (first and last day), for "due this week".
pub fn week_of(day: NaiveDate) -> (NaiveDate, NaiveDate) {
    let back = i64::from(day.weekday().num_days_from_monday());
    let start = day.checked_sub_signed(Duration::days(back)).unwrap_or(day);
    let end = start.checked_add_signed(Duration::days(6)).unwrap_or(day);
    (start, end)
}

/// SLA age buckets for open cases and tasks: how long since they were opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgeBucket {
    /// Under one day.
    UnderOneDay,
    /// One to three days.
    OneToThreeDays,
    /// Three to seven days.
    ThreeToSevenDays,
    /// Seven days or more.
    OverSevenDays,
}
str_enum!(AgeBucket {
    UnderOneDay => "<1d",
    OneToThreeDays => "1-3d",
    ThreeToSevenDays => "3-7d",
    OverSevenDays => ">=7d",
});

impl AgeBucket {
    /// The bucket of something opened at `since`, seen at `now` (a future `since` is new).
    pub fn of(since: DateTime<Utc>, now: DateTime<Utc>) -> AgeBucket {
        let h = (now - since).num_hours();
        if h < 24 {
            AgeBucket::UnderOneDay
        } else if h < 72 {
            AgeBucket::OneToThreeDays
        } else if h < 168 {
            AgeBucket::ThreeToSevenDays
        } else {
            AgeBucket::OverSevenDays
        }
    }
}

/// What a person asks to do with a task (see [`check_task_act`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskAct<'a> {
    /// Read it (listings, its page).
    See,
    /// Assign it to this user (taking it when the user is the actor).
    Assign(&'a str),
    Comment,
    /// Close it as done or cancelled.
    Close,
}

/// Whether `name` with `role` may do `act` to a task owned by `owner_role` and assigned to
/// `assignee`. Managers and admins may do anything. Anyone else may see and comment on
/// their role's tasks and tasks assigned to them; take (assign to themselves) and close
/// their role's unassigned tasks and their own; never assign to someone else, nor take or
/// close a task assigned to another person. Compliance also sees every task (it reads
/// everything), acting only under the rules above. `Err` says why not.
pub fn check_task_act(
    role: Role,
    name: &str,
    owner_role: Role,
    assignee: Option<&str>,
    act: TaskAct<'_>,
) -> Result<(), String> {
    if matches!(role, Role::Manager | Role::Admin) {
        return Ok(());
    }
    let mine = assignee == Some(name);
    let roles = owner_role == role;
    let free = roles && assignee.is_none();
    let ok = match act {
        TaskAct::See => mine || roles || role == Role::Compliance,
        TaskAct::Comment => mine || roles,
        TaskAct::Close => mine || free,
        TaskAct::Assign(to) => to == name && (mine || free),
    };
    if ok {
        return Ok(());
    }
    Err(match (act, assignee) {
        (TaskAct::Assign(to), _) if to != name => {
            format!("a {role} may only take a task, not assign it to {to}")
        }
        (_, Some(other)) if other != name && roles => {
            format!("the task is assigned to {other}")
        }
        _ => format!("the task belongs to the {owner_role} role and is not assigned to {name}"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::money::{Currency, Money};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn escalations_are_due_by_urgency_in_the_customers_business_days() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // Friday 2026-03-06 15:00 in New York (20:00 UTC).
        let fri = t("2026-03-06T20:00:00Z");
        assert_eq!(
            escalation_due(Urgency::High, fri, ny),
            t("2026-03-07T00:00:00Z")
        );
        assert_eq!(
            escalation_due(Urgency::Low, fri, ny),
            t("2026-03-09T20:00:00Z")
        );
        // Normal: the next business day, Monday 2026-03-09 15:00 local, which is EDT
        // (clocks went forward on Sunday 2026-03-08): 19:00 UTC.
        assert_eq!(
            escalation_due(Urgency::Normal, fri, ny),
            t("2026-03-09T19:00:00Z")
        );
        // A Tuesday is due on Wednesday at the same time.
        let tue = t("2026-03-03T14:30:00Z");
        assert_eq!(
            escalation_due(Urgency::Normal, tue, ny),
            t("2026-03-04T14:30:00Z")
        );
        // The zone decides the weekday: 23:30 UTC on Friday is already Saturday in Tokyo,
        // so the next business day there is Monday.
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let late_fri = t("2026-03-06T23:30:00Z");
        assert_eq!(
            escalation_due(Urgency::Normal, late_fri, tokyo),
            t("2026-03-08T23:30:00Z")
        );
        assert_eq!(
            escalation_due(Urgency::Normal, late_fri, chrono_tz::UTC),
            t("2026-03-09T23:30:00Z")
        );
    }

    fn promise(status: PromiseStatus) -> PromiseToPay {
        PromiseToPay {
            id: "P1".into(),
            customer_id: "C1".into(),
            invoice_numbers: vec!["I1".into()],
            amount: Money::new(500_00, Currency::USD),
            promised_date: "2026-03-10".parse().unwrap(),
            created_at: t("2026-03-01T15:00:00Z"),
            status,
        }
    }

    fn pay(on: &str, minor: i64, invoice: &str) -> Payment {
        Payment {
            id: format!("{on}-{minor}"),
            customer_id: "C1".into(),
            invoice_number: invoice.into(),
            amount: Money::new(minor, Currency::USD),
            received_on: on.parse().unwrap(),
        }
    }

    #[test]
    fn a_broken_promise_with_some_money_in_its_window_is_partially_kept() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let p = promise(PromiseStatus::Open);
        let some = [
            pay("2026-03-05", 200_00, "I1"),
            pay("2026-03-06", 900_00, "I2"),
        ];
        let j = promise_standing(&p, &some, d("2026-03-12"), 3);
        assert_eq!(
            (j.standing, j.received_minor),
            (PromiseStanding::Open, 200_00)
        );
        let j = promise_standing(&p, &some, d("2026-03-14"), 3);
        assert_eq!(
            (j.standing, j.received_minor),
            (PromiseStanding::PartiallyKept, 200_00)
        );
        // Money before the promise was made, or after its deadline, does not count.
        let outside = [
            pay("2026-02-20", 200_00, "I1"),
            pay("2026-03-20", 500_00, "I1"),
        ];
        let j = promise_standing(&p, &outside, d("2026-03-25"), 3);
        assert_eq!((j.standing, j.received_minor), (PromiseStanding::Broken, 0));
        let all = [
            pay("2026-03-05", 200_00, "I1"),
            pay("2026-03-11", 300_00, "I1"),
        ];
        assert_eq!(
            promise_standing(&p, &all, d("2026-03-14"), 3).standing,
            PromiseStanding::Kept
        );
        // A stored verdict stands; a cancelled promise stays cancelled.
        assert_eq!(
            promise_standing(&promise(PromiseStatus::Broken), &some, d("2026-03-14"), 3).standing,
            PromiseStanding::PartiallyKept
        );
        assert_eq!(
            promise_standing(&promise(PromiseStatus::Cancelled), &all, d("2026-03-14"), 3).standing,
            PromiseStanding::Cancelled
        );
    }

    #[test]
    fn weeks_run_monday_to_sunday_and_ages_fall_in_buckets() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(week_of(d("2026-03-04")), (d("2026-03-02"), d("2026-03-08")));
        assert_eq!(week_of(d("2026-03-02")), (d("2026-03-02"), d("2026-03-08")));
        assert_eq!(week_of(d("2026-03-08")), (d("2026-03-02"), d("2026-03-08")));
        let now = t("2026-03-10T12:00:00Z");
        assert_eq!(
            AgeBucket::of(t("2026-03-10T13:00:00Z"), now),
            AgeBucket::UnderOneDay
        );
        assert_eq!(
            AgeBucket::of(t("2026-03-09T12:00:01Z"), now),
            AgeBucket::UnderOneDay
        );
        assert_eq!(
            AgeBucket::of(t("2026-03-09T12:00:00Z"), now),
            AgeBucket::OneToThreeDays
        );
        assert_eq!(
            AgeBucket::of(t("2026-03-07T12:00:00Z"), now),
            AgeBucket::ThreeToSevenDays
        );
        assert_eq!(
            AgeBucket::of(t("2026-03-03T12:00:00Z"), now),
            AgeBucket::OverSevenDays
        );
    }

    #[test]
    fn collectors_act_on_their_roles_tasks_and_their_own_managers_on_any() {
        use Role::*;
        let act =
            |role, name, owner, assignee, act| check_task_act(role, name, owner, assignee, act);
        // A collector takes and closes an unassigned collector task.
        assert!(act(Collector, "cara", Collector, None, TaskAct::Assign("cara")).is_ok());
        assert!(act(Collector, "cara", Collector, None, TaskAct::Close).is_ok());
        assert!(act(Collector, "cara", Collector, Some("cara"), TaskAct::Close).is_ok());
        // …but not one a colleague holds, and assigns nothing to anyone else.
        let e = act(Collector, "cara", Collector, Some("colin"), TaskAct::Close).unwrap_err();
        assert!(e.contains("assigned to colin"), "{e}");
        assert!(
            act(
                Collector,
                "cara",
                Collector,
                Some("colin"),
                TaskAct::Assign("cara")
            )
            .is_err()
        );
        assert!(
            act(
                Collector,
                "cara",
                Collector,
                Some("colin"),
                TaskAct::Comment
            )
            .is_ok()
        );
        let e = act(Collector, "cara", Collector, None, TaskAct::Assign("colin")).unwrap_err();
        assert!(e.contains("only take"), "{e}");
        // A manager's task is out of a collector's reach, unless assigned to them.
        for a in [
            TaskAct::See,
            TaskAct::Comment,
            TaskAct::Close,
            TaskAct::Assign("cara"),
        ] {
            assert!(act(Collector, "cara", Manager, None, a).is_err(), "{a:?}");
        }
        assert!(act(Collector, "cara", Manager, Some("cara"), TaskAct::Close).is_ok());
        // Managers and admins do anything; compliance sees everything.
        assert!(
            act(
                Manager,
                "mia",
                Collector,
                Some("colin"),
                TaskAct::Assign("cara")
            )
            .is_ok()
        );
        assert!(act(Admin, "ada", Compliance, None, TaskAct::Close).is_ok());
        assert!(act(Compliance, "cy", Manager, None, TaskAct::See).is_ok());
        assert!(act(Compliance, "cy", Manager, None, TaskAct::Close).is_err());
    }

    #[test]
    fn kinds_and_statuses_round_trip_as_text() {
        for k in TaskKind::ALL {
            assert_eq!(k.as_str().parse::<TaskKind>().unwrap(), *k);
        }
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), *s);
        }
        assert!(TaskStatus::InProgress.is_open() && !TaskStatus::Done.is_open());
        assert!("closed".parse::<TaskStatus>().is_err());
    }
}
