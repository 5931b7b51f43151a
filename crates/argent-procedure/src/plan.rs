//! The planner: from an account's facts, its state in its procedure and the time, the one
//! step due now (if any), why the account is paused, and which promises were just kept or
//! broken. Pure and deterministic: the same inputs give the same plan, which is what makes
//! two schedulers running at once agree.
//!
//! Rules (the issue's, and the decisions where it was silent):
//!
//! - **One step per account per plan**, and at most one per local day (a tick run again
//!   the same day plans nothing new for an account that got a step). Steps are consolidated: one contact covers every
//!   collectible overdue invoice (all collectible open invoices for a pre-due step).
//! - **Cycles.** A cycle opens when the first ladder step falls due for an account with a
//!   collectible open balance; it is anchored to the oldest collectible open invoice's due
//!   date then (`anchor_due`). It ends when nothing is overdue any more and every invoice
//!   due on or before the anchor is paid: a payment that clears the overdue balance ends
//!   the procedure. The next time the account falls due a new cycle (number + 1) opens.
//!   The procedure (and its active version) is fixed when a cycle opens; a new version
//!   activated mid-cycle is picked up at the step with the same id.
//! - **Disputes.** An invoice flagged disputed, or covered by an open or upheld dispute
//!   case, is not collectible: it is excluded from steps and balances. When every overdue
//!   invoice is excluded (or the customer is flagged disputed) the account is paused.
//! - **Pauses**, first match wins: bankruptcy (automatic stay: no step of any kind),
//!   disputed, an open hardship case, an open payment-claimed case (until a person closes
//!   it), an out-of-office reply's return date not yet come (`facts.contact_paused_until`:
//!   until that local date), an open promise (until its date plus the procedure's grace).
//! - **Stop flags.** Cease-contact and attorney representation skip contact steps (email,
//!   call, formal demand); internal steps (account-manager alert, credit hold, agency
//!   referral, which needs a manager) still run. With no internal step left the account is
//!   paused for the flag.
//! - **Promises.** An open promise whose date plus grace has passed (in the debtor's zone)
//!   without payments covering it is broken (partially kept when payments cover part);
//!   once covered it is kept. A broken promise fires the procedure's broken-promise step,
//!   once per promise, `after_broken_promise_days` after the day it was found broken
//!   (its date + grace + 1), before the ladder moves on.
//! - **Timing.** A ladder step's date is its anchor (due date plus `due_days`, or the last
//!   step plus `after_previous_days`), no earlier than `min_days_past_due` allows and, for contact
//!   steps, `min_gap_days` after the last contact or step. Steps whose `skip_after_days`
//!   has passed, whose conditions fail, or that a stop flag forbids are skipped.
//! - **Business hours.** A contact step's due instant is the first moment at or after the
//!   later of `now` and the start of business on its date that lies inside the
//!   procedure's hours (default 09:00–17:00, Monday to Friday) in the debtor's time zone.
//!   Internal steps are due at the later of `now` and the start of their local date.

use std::collections::BTreeMap;

use argent_core::ledger::invoice_states;
use argent_core::risk::{assess, payment_history};
use argent_core::{
    Case, CaseKind, Currency, Customer, Invoice, Money, Payment, PromiseStatus, PromiseToPay,
    RiskSegment,
};
use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::StepWork;
use crate::doc::{Anchor, DEFAULT_PROMISE_GRACE_DAYS, Hours, Procedure, ProcedureSet, Step};

/// What the planner knows about one account.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    pub customer: &'a Customer,
    /// All the customer's invoices (paid ones too: the risk segment needs the history).
    pub invoices: &'a [Invoice],
    pub payments: &'a [Payment],
    pub cases: &'a [Case],
    pub promises: &'a [PromiseToPay],
    /// The last contact made with the customer (any channel), if any.
    pub last_contact: Option<DateTime<Utc>>,
}

/// Where an account stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No cycle open: nothing collectible is due (a next step may be shown).
    Idle,
    /// In a cycle; the next step is waiting for its date.
    Active,
    /// In a cycle (or about to open one) but paused; `paused_reason` says why.
    Paused,
    /// In a cycle with every step run: waiting for payment or a person.
    Finished,
    /// No procedure applies (risk segment in review, or no assignment rule matches).
    Unassigned,
}
argent_core::str_enum!(Status {
    Idle => "idle",
    Active => "active",
    Paused => "paused",
    Finished => "finished",
    Unassigned => "unassigned",
});

/// Why an account is paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    Bankruptcy,
    Disputed,
    Hardship,
    PaymentClaimed,
    Promise,
    CeaseContact,
    AttorneyRepresented,
    /// The customer's out-of-office reply gave a return date that has not come yet
    /// (`facts.contact_paused_until`).
    OutOfOffice,
}
argent_core::str_enum!(PauseReason {
    Bankruptcy => "bankruptcy",
    Disputed => "disputed",
    Hardship => "hardship",
    PaymentClaimed => "payment_claimed",
    Promise => "promise",
    CeaseContact => "cease_contact",
    AttorneyRepresented => "attorney_represented",
    OutOfOffice => "out_of_office",
});

/// An account's state in its procedure (one row of `procedure_state`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub customer_id: String,
    pub status: Status,
    /// The procedure (and version) of the open or last cycle.
    pub procedure: Option<String>,
    pub version: i64,
    /// Cycles opened so far (0: never).
    pub cycle: i64,
    /// The due date the open cycle is anchored to; `None` when no cycle is open.
    pub anchor_due: Option<NaiveDate>,
    /// The debtor-local date the open cycle began.
    pub cycle_started: Option<NaiveDate>,
    /// The last ladder step planned in this cycle, its position and due instant.
    pub current_step: Option<String>,
    pub current_index: Option<i64>,
    pub current_at: Option<DateTime<Utc>>,
    /// The due instant of the last step of any kind planned in this cycle.
    pub last_step_at: Option<DateTime<Utc>>,
    /// The step that comes next and when (when known).
    pub next_step: Option<String>,
    pub next_at: Option<DateTime<Utc>>,
    pub paused_reason: Option<PauseReason>,
    /// For people: why paused or unassigned, until when.
    pub detail: Option<String>,
    /// Broken promises whose follow-up was planned in this cycle.
    pub followed_promises: Vec<String>,
}

impl State {
    /// The state of an account the planner has never seen.
    pub fn new(customer_id: &str) -> State {
        State {
            customer_id: customer_id.to_string(),
            status: Status::Idle,
            procedure: None,
            version: 0,
            cycle: 0,
            anchor_due: None,
            cycle_started: None,
            current_step: None,
            current_index: None,
            current_at: None,
            last_step_at: None,
            next_step: None,
            next_at: None,
            paused_reason: None,
            detail: None,
            followed_promises: Vec::new(),
        }
    }

    fn cycle_open(&self) -> bool {
        self.anchor_due.is_some()
    }
}

/// A step to enqueue now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueStep {
    pub work: StepWork,
    /// Not to be run before this instant (inside business hours for contact steps).
    pub due_at: DateTime<Utc>,
}

/// A promise the planner judged kept or broken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromiseOutcome {
    pub promise_id: String,
    /// `Kept` or `Broken`.
    pub status: PromiseStatus,
    pub amount: Money,
    /// Paid towards it within its window, minor units.
    pub paid_minor: i64,
    /// Broken, but payments covered part of it.
    pub partially_kept: bool,
    /// The day it was found broken (its date + grace + 1), for broken promises.
    pub broken_on: Option<NaiveDate>,
}

/// What the planner decided for one account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub state: State,
    pub due: Option<DueStep>,
    pub promises: Vec<PromiseOutcome>,
    /// The cycle ended in this plan (the balance was cleared): queued steps are moot.
    pub ended: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("customer {0}: {1}")]
    Money(String, argent_core::MoneyError),
}

/// The instant a step dated `date` is due: see the module docs.
pub fn schedule(
    date: NaiveDate,
    now: DateTime<Utc>,
    tz: Tz,
    hours: Hours,
    contact: bool,
) -> DateTime<Utc> {
    let local = |d: NaiveDate, h: u32| -> DateTime<Utc> {
        let naive = d.and_time(NaiveTime::from_hms_opt(h.min(23), 0, 0).unwrap_or_default());
        // A local time in a DST gap does not exist: take the first instant after it.
        match tz.from_local_datetime(&naive).earliest() {
            Some(t) => t.with_timezone(&Utc),
            None => tz
                .from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
                .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc)),
        }
    };
    if !contact {
        return now.max(local(date, 0));
    }
    let mut t = now.max(local(date, hours.start));
    // At most a week of weekend and after-hours days to pass over.
    for _ in 0..10 {
        let lt = t.with_timezone(&tz);
        let day = lt.date_naive();
        let business_day = hours.weekends || !matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
        if !business_day || lt.hour() >= hours.end {
            t = local(day + Duration::days(1), hours.start);
            continue;
        }
        if lt.hour() < hours.start {
            t = local(day, hours.start);
            continue;
        }
        return t;
    }
    t
}

/// Whether `at` is inside `hours` in `tz`.
pub fn in_business_hours(at: DateTime<Utc>, tz: Tz, hours: Hours) -> bool {
    let lt = at.with_timezone(&tz);
    let business_day =
        hours.weekends || !matches!(lt.date_naive().weekday(), Weekday::Sat | Weekday::Sun);
    business_day && lt.hour() >= hours.start && lt.hour() < hours.end
}

/// The procedure a planned state continues with: the open cycle's (the active version of
/// it) if it is still there, else the one the assignment gives.
fn procedure_for<'s>(
    set: &'s ProcedureSet,
    prior: &State,
    segment: RiskSegment,
    customer: &Customer,
) -> Option<(i64, &'s Procedure)> {
    if prior.cycle_open()
        && let Some(name) = &prior.procedure
        && let Some(p) = set.get(name)
    {
        return Some(p);
    }
    set.for_account(segment, customer.tier, customer.jurisdiction)
}

struct Facts<'a> {
    /// Collectible open invoices: (invoice, open minor, days past due), oldest due first.
    collectible: Vec<(&'a Invoice, i64, i64)>,
    /// Any open overdue invoice, collectible or not.
    any_overdue: bool,
    /// Collectible overdue balance per currency.
    overdue_by_currency: BTreeMap<Currency, i64>,
}

fn facts<'a>(s: &Snapshot<'a>, today: NaiveDate) -> Result<Facts<'a>, PlanError> {
    let mut collectible = Vec::new();
    let mut any_overdue = false;
    let mut overdue_by_currency: BTreeMap<Currency, i64> = BTreeMap::new();
    for st in invoice_states(s.invoices, s.payments, today) {
        if !st.is_open() {
            continue;
        }
        if st.is_overdue() {
            any_overdue = true;
        }
        let inv = st.invoice;
        let excluded = inv.disputed || s.cases.iter().any(|c| c.pauses(&inv.number));
        if excluded {
            continue;
        }
        if st.is_overdue() {
            let cur = inv.amount.currency;
            let total = overdue_by_currency.entry(cur).or_insert(0);
            Money::add_minor(total, st.open_minor, cur, || {
                format!("the overdue balance of customer {}", s.customer.id)
            })
            .map_err(|e| PlanError::Money(s.customer.id.clone(), e))?;
        }
        collectible.push((inv, st.open_minor, st.days_past_due));
    }
    collectible.sort_by(|a, b| (a.0.due_date, &a.0.number).cmp(&(b.0.due_date, &b.0.number)));
    Ok(Facts {
        collectible,
        any_overdue,
        overdue_by_currency,
    })
}

/// Judges open promises as of `today`.
fn judge_promises(s: &Snapshot<'_>, today: NaiveDate, grace: i64) -> Vec<PromiseOutcome> {
    let mut out = Vec::new();
    for p in s
        .promises
        .iter()
        .filter(|p| p.status == PromiseStatus::Open)
    {
        let status = p.assess(s.payments, today, grace);
        if status == PromiseStatus::Open {
            continue;
        }
        let made_on = p.created_at.date_naive();
        let deadline = p.promised_date + Duration::days(grace);
        let paid: i128 = s
            .payments
            .iter()
            .filter(|x| x.amount.currency == p.amount.currency)
            .filter(|x| {
                p.invoice_numbers.is_empty() || p.invoice_numbers.contains(&x.invoice_number)
            })
            .filter(|x| x.received_on >= made_on && x.received_on <= deadline.min(today))
            .map(|x| i128::from(x.amount.minor))
            .sum();
        let paid_minor = i64::try_from(paid).unwrap_or(i64::MAX);
        out.push(PromiseOutcome {
            promise_id: p.id.clone(),
            status,
            amount: p.amount,
            paid_minor,
            partially_kept: status == PromiseStatus::Broken && paid_minor > 0,
            broken_on: (status == PromiseStatus::Broken).then(|| deadline + Duration::days(1)),
        });
    }
    out
}

fn local_date(t: DateTime<Utc>, tz: Tz) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// Whether `step` applies to the account at all (tier, jurisdiction, balance, stop flags).
fn applies(step: &Step, s: &Snapshot<'_>, f: &Facts<'_>) -> bool {
    let flags = &s.customer.flags;
    if step.kind.contacts_customer() && (flags.cease_contact || flags.attorney_represented) {
        return false;
    }
    let w = &step.when;
    (w.tiers.is_empty() || w.tiers.contains(&s.customer.tier))
        && (w.jurisdictions.is_empty() || w.jurisdictions.contains(&s.customer.jurisdiction))
        && w.balance_ok(&f.overdue_by_currency)
}

/// Plans one account. `prior` is its stored state (`None` when it has none).
pub fn plan(
    s: &Snapshot<'_>,
    prior: Option<&State>,
    set: &ProcedureSet,
    now: DateTime<Utc>,
) -> Result<Plan, PlanError> {
    let mut p = plan_once(s, prior, set, now)?;
    if p.ended {
        // A cycle that ends may let the next one open at once (a newer invoice already
        // calls for a step): plan that now, so a second tick minutes later finds nothing
        // new (planning is a fixpoint for a given instant).
        let next = plan_once(s, Some(&p.state), set, now)?;
        p = Plan {
            ended: true,
            promises: p.promises,
            ..next
        };
    }
    if p.due.is_some() {
        // What comes next and when, as the next plan will see it (it plans no step today).
        let next = plan_once(s, Some(&p.state), set, now)?;
        p.state.next_step = next.state.next_step;
        p.state.next_at = next.state.next_at;
    }
    Ok(p)
}

fn plan_once(
    s: &Snapshot<'_>,
    prior: Option<&State>,
    set: &ProcedureSet,
    now: DateTime<Utc>,
) -> Result<Plan, PlanError> {
    let tz = s.customer.time_zone;
    let today = local_date(now, tz);
    let fresh = State::new(&s.customer.id);
    let prior = prior.unwrap_or(&fresh);
    let f = facts(s, today)?;
    let segment = match payment_history(s.invoices, s.payments, today) {
        Ok(h) => assess(h, &s.customer.flags).segment,
        Err(e) => return Err(PlanError::Money(s.customer.id.clone(), e)),
    };
    let chosen = procedure_for(set, prior, segment, s.customer);
    let grace = chosen.map_or(DEFAULT_PROMISE_GRACE_DAYS, |(_, p)| p.promise_grace_days);
    let promises = judge_promises(s, today, grace);
    let status_of = |p: &PromiseToPay| {
        promises
            .iter()
            .find(|o| o.promise_id == p.id)
            .map_or(p.status, |o| o.status)
    };

    let mut state = prior.clone();
    state.next_step = None;
    state.next_at = None;
    state.paused_reason = None;
    state.detail = None;
    let mut plan = Plan {
        state,
        due: None,
        promises: promises.clone(),
        ended: false,
    };

    // Nothing owed on anything due so far: the cycle (if any) ends.
    let oldest_open = f.collectible.first().map(|c| c.0.due_date);
    let anchor_paid = match (prior.anchor_due, oldest_open) {
        (Some(anchor), Some(oldest)) => oldest > anchor,
        _ => true,
    };
    if prior.cycle_open() && !f.any_overdue && anchor_paid {
        end_cycle(&mut plan.state);
        plan.ended = true;
        plan.state.detail = Some("the overdue balance was cleared".into());
        return Ok(plan);
    }
    if f.collectible.is_empty() && !f.any_overdue {
        // Nothing open (or only disputed invoices not yet due).
        end_cycle(&mut plan.state);
        return Ok(plan);
    }

    // Pauses.
    let flags = &s.customer.flags;
    let open_case = |k: CaseKind| s.cases.iter().any(|c| c.kind == k && c.status.is_open());
    let open_promise = s
        .promises
        .iter()
        .filter(|p| status_of(p) == PromiseStatus::Open)
        .max_by_key(|p| p.promised_date);
    let all_disputed = f.any_overdue && f.overdue_by_currency.values().all(|v| *v == 0);
    let pause = if flags.bankrupt {
        Some((
            PauseReason::Bankruptcy,
            "bankruptcy: automatic stay".to_string(),
        ))
    } else if flags.disputed || all_disputed {
        Some((
            PauseReason::Disputed,
            "the whole overdue balance is disputed".to_string(),
        ))
    } else if open_case(CaseKind::Hardship) {
        Some((
            PauseReason::Hardship,
            "an open hardship case: until a person closes it".to_string(),
        ))
    } else if open_case(CaseKind::PaymentClaimed) {
        Some((
            PauseReason::PaymentClaimed,
            "the customer says they paid: until a person closes the case".to_string(),
        ))
    } else if let Some(until) = s
        .customer
        .facts
        .contact_paused_until
        .filter(|until| today < *until)
    {
        Some((
            PauseReason::OutOfOffice,
            format!("out-of-office reply: away until {until}"),
        ))
    } else {
        open_promise.map(|p| {
            (
                PauseReason::Promise,
                format!(
                    "promise {} to pay {} by {}: paused until {}",
                    p.id,
                    p.amount,
                    p.promised_date,
                    p.promised_date + Duration::days(grace)
                ),
            )
        })
    };

    let Some((version, procedure)) = chosen else {
        if !prior.cycle_open() {
            plan.state.status = Status::Unassigned;
            plan.state.detail = Some(if segment == RiskSegment::InReview {
                "risk segment in review: a person decides before any dunning".into()
            } else {
                format!("no assignment rule gives a procedure to this {segment}-risk account")
            });
        }
        return Ok(plan);
    };

    if let Some((reason, detail)) = pause {
        plan.state.status = Status::Paused;
        plan.state.paused_reason = Some(reason);
        plan.state.detail = Some(detail);
        if !prior.cycle_open() {
            plan.state.procedure = Some(procedure.name.clone());
            plan.state.version = version;
        }
        return Ok(plan);
    }

    // The cycle the step belongs to (opened if one is due now).
    let opening = !prior.cycle_open();
    let anchor = prior.anchor_due.or(oldest_open).unwrap_or(today);
    let cycle_started = prior.cycle_started.unwrap_or(today);
    let oldest_dpd = f.collectible.first().map_or(0, |c| c.2);
    // Steps planned in this cycle count as contacts for the gap (they may not have run yet).
    let last_touch = match (s.last_contact, prior.last_step_at.filter(|_| !opening)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    // At most one step per account per local day, however often the tick runs.
    let day_after_last = prior
        .last_step_at
        .filter(|_| !opening)
        .map(|t| local_date(t, tz) + Duration::days(1));
    let gap_date = |step: &Step, date: NaiveDate| -> NaiveDate {
        let date = day_after_last.map_or(date, |d| date.max(d));
        match last_touch {
            Some(t) if step.kind.contacts_customer() && step.min_gap_days > 0 => {
                date.max(local_date(t, tz) + Duration::days(step.min_gap_days))
            }
            _ => date,
        }
    };

    // The broken-promise follow-up, if one is owed.
    let followup = procedure.broken_promise.as_ref().and_then(|step| {
        if !applies(step, s, &f) {
            return None;
        }
        let Anchor::BrokenPromise(days) = step.anchor else {
            return None;
        };
        s.promises
            .iter()
            .filter(|p| status_of(p) == PromiseStatus::Broken)
            .filter(|p| opening || !prior.followed_promises.contains(&p.id))
            .filter_map(|p| {
                let broken_on = p.promised_date + Duration::days(grace + 1);
                (broken_on >= cycle_started)
                    .then(|| (p, gap_date(step, broken_on + Duration::days(days))))
            })
            .min_by_key(|(p, d)| (*d, p.id.clone()))
            .map(|(p, d)| (step, p, d))
    });

    // The next ladder step.
    let start = if opening {
        0
    } else {
        match prior
            .current_step
            .as_deref()
            .and_then(|id| procedure.ladder_step(id))
        {
            Some((i, _)) => i + 1,
            None => prior
                .current_index
                .map_or(0, |i| usize::try_from(i + 1).unwrap_or(0)),
        }
    };
    let prev_date = prior
        .current_at
        .filter(|_| !opening)
        .map_or(anchor, |t| local_date(t, tz));
    let mut next = None;
    for (i, step) in procedure.ladder.iter().enumerate().skip(start) {
        if !applies(step, s, &f) {
            continue;
        }
        if step.skip_after_days.is_some_and(|k| oldest_dpd > k) {
            continue;
        }
        let mut date = match step.anchor {
            Anchor::DueDate(d) => anchor + Duration::days(d),
            Anchor::PreviousStep(d) => prev_date + Duration::days(d),
            Anchor::BrokenPromise(_) => continue,
        };
        if let (Some(m), Some(oldest)) = (step.when.min_days_past_due, oldest_open) {
            date = date.max(oldest + Duration::days(m));
        }
        next = Some((i, step, gap_date(step, date)));
        break;
    }

    let contact_flag_reason = || {
        if flags.cease_contact {
            Some(PauseReason::CeaseContact)
        } else if flags.attorney_represented {
            Some(PauseReason::AttorneyRepresented)
        } else {
            None
        }
    };

    let invoices_for = |step: &Step| -> Vec<String> {
        let pre_due = matches!(step.anchor, Anchor::DueDate(d) if d <= 0) && oldest_dpd <= 0;
        f.collectible
            .iter()
            .filter(|c| pre_due || c.2 > 0)
            .map(|c| c.0.number.clone())
            .collect()
    };
    let open_cycle = |st: &mut State| {
        if opening {
            st.cycle = prior.cycle + 1;
            st.anchor_due = Some(anchor);
            st.cycle_started = Some(today);
            st.current_step = None;
            st.current_index = None;
            st.current_at = None;
            st.last_step_at = None;
            st.followed_promises.clear();
            st.procedure = Some(procedure.name.clone());
        }
        st.version = version;
        st.status = Status::Active;
    };

    if let Some((step, promise, date)) = followup
        && date <= today
    {
        let due_at = schedule(
            date,
            now,
            tz,
            procedure.hours,
            step.kind.contacts_customer(),
        );
        open_cycle(&mut plan.state);
        plan.state.last_step_at = Some(due_at);
        plan.state.followed_promises.push(promise.id.clone());
        plan.due = Some(DueStep {
            work: StepWork {
                procedure: procedure.name.clone(),
                version,
                step: step.id.clone(),
                kind: step.kind,
                cycle: plan.state.cycle,
                prompt: step.prompt.clone(),
                invoices: invoices_for(step),
                promise_id: Some(promise.id.clone()),
                reason: format!(
                    "promise {} ({} by {}) was broken",
                    promise.id, promise.amount, promise.promised_date
                ),
            },
            due_at,
        });
        if let Some((_, st, d)) = next {
            plan.state.next_step = Some(st.id.clone());
            plan.state.next_at = Some(schedule(
                d.max(today),
                now,
                tz,
                procedure.hours,
                st.kind.contacts_customer(),
            ));
        }
        return Ok(plan);
    }

    // A follow-up owed but not yet due holds the ladder back until it has run.
    let next = match (&followup, next) {
        (Some((fs, _, fd)), Some((_, _, d))) if d <= today => {
            // The account is in dunning (a cycle opens if none was), waiting on the
            // follow-up.
            open_cycle(&mut plan.state);
            plan.state.next_step = Some(fs.id.clone());
            plan.state.next_at = Some(schedule(
                (*fd).max(today),
                now,
                tz,
                procedure.hours,
                fs.kind.contacts_customer(),
            ));
            return Ok(plan);
        }
        (_, next) => next,
    };

    match next {
        Some((i, step, date)) if date <= today => {
            // An account whose ladder would open with nothing overdue and no pre-due step
            // is not in dunning yet.
            let due_at = schedule(
                date,
                now,
                tz,
                procedure.hours,
                step.kind.contacts_customer(),
            );
            open_cycle(&mut plan.state);
            plan.state.current_step = Some(step.id.clone());
            plan.state.current_index = i64::try_from(i).ok();
            plan.state.current_at = Some(due_at);
            plan.state.last_step_at = Some(due_at);
            let reason = match step.anchor {
                Anchor::DueDate(d) if d < 0 => format!("{} days before the due date {anchor}", -d),
                Anchor::DueDate(0) => format!("the due date {anchor}"),
                Anchor::DueDate(d) => format!("{d} days past the due date {anchor}"),
                Anchor::PreviousStep(d) => format!("{d} days after the previous step"),
                Anchor::BrokenPromise(d) => format!("{d} days after a broken promise"),
            };
            plan.due = Some(DueStep {
                work: StepWork {
                    procedure: procedure.name.clone(),
                    version,
                    step: step.id.clone(),
                    kind: step.kind,
                    cycle: plan.state.cycle,
                    prompt: step.prompt.clone(),
                    invoices: invoices_for(step),
                    promise_id: None,
                    reason,
                },
                due_at,
            });
        }
        Some((_, step, date)) => {
            plan.state.status = if prior.cycle_open() {
                Status::Active
            } else {
                Status::Idle
            };
            if opening {
                plan.state.procedure = Some(procedure.name.clone());
            }
            plan.state.version = version;
            let (nstep, ndate) = match &followup {
                Some((fs, _, fd)) if *fd < date => (*fs, *fd),
                _ => (step, date),
            };
            plan.state.next_step = Some(nstep.id.clone());
            plan.state.next_at = Some(schedule(
                ndate,
                now,
                tz,
                procedure.hours,
                nstep.kind.contacts_customer(),
            ));
        }
        None => {
            if let Some(reason) = contact_flag_reason() {
                plan.state.status = Status::Paused;
                plan.state.paused_reason = Some(reason);
                plan.state.detail = Some(format!(
                    "{reason}: no step left that does not contact the customer"
                ));
            } else if prior.cycle_open() {
                plan.state.status = Status::Finished;
                plan.state.detail = Some(
                    "every step of the procedure has run: waiting for payment or a person".into(),
                );
            } else {
                plan.state.status = Status::Idle;
            }
            if let Some((fs, _, fd)) = &followup {
                plan.state.next_step = Some(fs.id.clone());
                plan.state.next_at = Some(schedule(
                    *fd,
                    now,
                    tz,
                    procedure.hours,
                    fs.kind.contacts_customer(),
                ));
            }
        }
    }
    Ok(plan)
}

fn end_cycle(st: &mut State) {
    st.status = Status::Idle;
    st.anchor_due = None;
    st.cycle_started = None;
    st.current_step = None;
    st.current_index = None;
    st.current_at = None;
    st.last_step_at = None;
    st.next_step = None;
    st.next_at = None;
    st.paused_reason = None;
    st.followed_promises.clear();
}
