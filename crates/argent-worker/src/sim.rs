//! The desk over simulated days (`argent demo`): the scheduler and a worker run as in
//! production, day after day, while a seeded model of debtors
//! ([`argent_core::debtors`]) answers the contacts: pays, promises (and keeps, partly
//! keeps or breaks the promise), disputes, writes about hardship or ignores it.
//!
//! Each simulated day: the debtors' payments due that day are booked; then, at every
//! `hours` instant (UTC) of the day, a tick plans and enqueues what is due, a worker
//! (`once`) runs it with the agent's clock at that instant, and the outbox is delivered
//! into a directory; at `review_hour` a simulated reviewer first approves what the agent
//! held for a person (except on the `unreviewed_last_days` last days, whose held items are
//! left pending for people) (each item re-judged at approval, as in the web app; a refusal, such
//! as an email outside the debtor's contact hours, leaves it pending for the next pass).
//! At the end of the day every account an email reached draws its debtor's answer, and the
//! dashboard's snapshot of the day is taken ([`argent_agent::snapshot`]). Every 30 days each customer is
//! invoiced again at its rate of the 90 days before day 0 (net 30), so DSO compares like
//! with like.
//!
//! Nothing here bypasses the product: steps run through the worker and the agent, replies
//! through the agent's inbound path and its policy, payments through the ledger import.
//! The time the store stamps on audit events is still the wall clock (see ARCHITECTURE,
//! "two clocks"); everything the planner and the policy judge uses the simulated one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use argent_agent::outbox::DirMailer;
use argent_agent::review::Reviewer;
use argent_agent::{Agent, ManualClock, Trigger};
use argent_core::debtors::{Keep, Response, habit, respond};
use argent_core::ledger::invoice_states;
use argent_core::{
    Currency, Dashboard, DashboardInput, Invoice, Money, Payment, Portfolio, PromiseStatus,
    RiskSegment, Role, dashboard,
};
use argent_procedure::{ProcedureSet, StepWork, WORK_KIND};
use argent_store::{ApprovalStatus, Store, WorkFilter, WorkStatus};
use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use serde::Serialize;

use crate::{StepExecutor, Worker, WorkerConfig};

/// The actor of what the simulation itself records (the days' dashboard snapshots).
pub const SIM_ACTOR: &str = "simulation";

/// How a simulation runs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Simulated days.
    pub days: u32,
    /// Day 0.
    pub start: NaiveDate,
    /// The debtors' seed.
    pub seed: u64,
    /// The instants of each day (UTC hours) at which the scheduler ticks and the worker
    /// runs what is due.
    pub hours: Vec<u32>,
    /// Where delivered emails are written.
    pub outbox_dir: PathBuf,
    /// The sender address.
    pub from: String,
    /// The hour (one of `hours`) at which the simulated reviewer approves what is held.
    pub review_hour: u32,
    /// The last days on which the reviewer does not come in (0: they review every day):
    /// what the agent held for a person then is still pending at the end, so a server
    /// started on the database afterwards has a real queue to work.
    pub unreviewed_last_days: u32,
    /// Worker concurrency.
    pub concurrency: usize,
}

/// Counts per risk segment (the segment each account had on day 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SegmentStats {
    pub accounts: usize,
    pub overdue_at_start: usize,
    pub emails: usize,
    pub replies: usize,
    /// Promises logged during the simulation (by the agent, from debtors' replies), and
    /// how the ledger judged them by the last day.
    pub promises: usize,
    pub promises_kept: usize,
    pub promises_broken: usize,
    /// Promises whose debtor paid half by the date (judged broken: the amount was not
    /// covered).
    pub promises_partial: usize,
    pub disputes: usize,
    pub hardship: usize,
    /// Accounts that paid after a contact (in full, or what they promised).
    pub payments: usize,
    /// Invoices paid unprompted, by habit, as they fell due.
    pub paid_unprompted: usize,
    /// Paid by debtors during the simulation, minor units per currency.
    pub paid: BTreeMap<String, i64>,
    /// Accounts overdue on day 0 whose invoices overdue then are all paid by the last day.
    pub cleared: usize,
}

/// Per procedure step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StepStats {
    pub enqueued: usize,
    pub done: usize,
    pub cancelled: usize,
    pub failed: usize,
    pub open: usize,
}

/// DSO on day 0 and on the last day, per currency.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DsoRow {
    pub currency: String,
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub open_start: i64,
    pub open_end: i64,
}

/// What a simulation did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SimReport {
    pub days: u32,
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
    pub seed: u64,
    /// `procedure/step` → counts.
    pub steps: BTreeMap<String, StepStats>,
    pub segments: BTreeMap<String, SegmentStats>,
    /// Accounts paused on the last day, by reason.
    pub paused_at_end: BTreeMap<String, usize>,
    pub emails_delivered: usize,
    pub approvals_approved: usize,
    /// Held items the simulated reviewer's approval was refused for at least once
    /// (re-judged as forbidden at approval, e.g. outside the debtor's contact hours);
    /// they stay pending for the next pass.
    pub approvals_refused: usize,
    pub approvals_pending_at_end: i64,
    pub promises_broken_marked: usize,
    pub invoices_issued: usize,
    pub dso: Vec<DsoRow>,
    /// Worker attempts that failed.
    pub worker_failures: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("store: {0}")]
    Store(#[from] argent_store::StoreError),
    #[error("agent: {0}")]
    Agent(#[from] argent_agent::AgentError),
    #[error("{0}")]
    Other(String),
}

/// A payment the debtors will make.
#[derive(Clone, Debug)]
struct Planned {
    customer: String,
    /// Fraction paid of what is overdue on the day: 2 = all, 1 = half.
    halves: i64,
    promise: Option<Keep>,
}

/// Runs the simulation. `agent`'s clock must be `clock` (the simulation moves it);
/// `progress` is called after each day with its date and a one-line summary.
pub async fn simulate(
    store: &Store,
    agent: Arc<Agent>,
    clock: &'static ManualClock,
    set: &ProcedureSet,
    cfg: &SimConfig,
    mut progress: impl FnMut(NaiveDate, &str),
) -> Result<SimReport, SimError> {
    let mut report = SimReport {
        days: cfg.days,
        start: Some(cfg.start),
        seed: cfg.seed,
        ..SimReport::default()
    };
    let at = |d: NaiveDate, h: u32| -> DateTime<Utc> {
        d.and_time(NaiveTime::from_hms_opt(h.min(23), 0, 0).unwrap_or_default())
            .and_utc()
    };
    let ledger = store.ledger().await?;
    let promises = store.promises(None).await?;
    let start_dash = dash(&ledger, &promises, cfg.start)?;
    let segments = argent_core::analytics::customer_segments(
        &ledger.customers,
        &ledger.invoices,
        &ledger.payments,
        &promises,
        cfg.start,
    )
    .map_err(|e| SimError::Other(format!("segments: {e}")))?;
    let segment_of = |id: &str| {
        segments
            .get(id)
            .copied()
            .unwrap_or(RiskSegment::InReview)
            .as_str()
            .to_string()
    };
    // Each customer's invoicing rate over the 90 days before day 0.
    let window = cfg
        .start
        .checked_sub_days(Days::new(90))
        .unwrap_or(cfg.start);
    let mut rate: BTreeMap<String, Money> = BTreeMap::new();
    for i in &ledger.invoices {
        if i.issue_date > window && i.issue_date <= cfg.start {
            let e = rate
                .entry(i.customer_id.clone())
                .or_insert(Money::zero(i.amount.currency));
            if e.currency == i.amount.currency {
                *e = e
                    .checked_add(i.amount)
                    .map_err(|e| SimError::Other(format!("invoicing rate: {e}")))?;
            }
        }
    }
    let start_overdue = overdue_by_customer(&ledger, cfg.start, cfg.start);
    for c in &ledger.customers {
        let s = report.segments.entry(segment_of(&c.id)).or_default();
        s.accounts += 1;
        if start_overdue.get(&c.id).is_some_and(|o| *o > 0) {
            s.overdue_at_start += 1;
        }
    }
    let reviewer = Reviewer {
        name: "simulated reviewer".into(),
        role: Role::Manager,
    };
    let exec = Arc::new(StepExecutor::new(agent.clone()));
    let mut contacts: HashMap<String, u32> = HashMap::new();
    let mut planned: BTreeMap<NaiveDate, Vec<Planned>> = BTreeMap::new();
    let mut last_paused = BTreeMap::new();
    let mut refused: BTreeSet<String> = BTreeSet::new();
    let mut day = cfg.start;
    for d in 0..cfg.days {
        day = cfg
            .start
            .checked_add_days(Days::new(u64::from(d)))
            .ok_or_else(|| SimError::Other("the simulation runs past the calendar".into()))?;
        // Debtors' payments of the day, then new invoices every 30 days.
        let mut paid_today = habits(store, cfg, day, &segments, &segment_of, &mut report).await?;
        if let Some(todo) = planned.remove(&day) {
            paid_today += pay(store, &todo, day, &segment_of, &mut report).await?;
        }
        if d % 30 == 0 {
            report.invoices_issued += invoice(store, &rate, day, d).await?;
        }
        let mut line = DayLine::default();
        let mut reached: BTreeSet<String> = BTreeSet::new();
        for &h in &cfg.hours {
            let now = at(day, h);
            clock.set(now);
            let t = argent_agent::tick::tick(store, set, now, argent_agent::tick::DEFAULT_BATCH)
                .await?;
            line.enqueued += t.enqueued;
            report.promises_broken_marked += t.promises_broken;
            last_paused = t.paused.clone();
            let mut config = WorkerConfig::new(format!("sim-worker-{d}-{h}"));
            config.concurrency = cfg.concurrency.max(1);
            config.kinds = Some(vec![WORK_KIND.to_string()]);
            config.due_at = Some(now);
            config.once = true;
            config.sweep_every = None;
            let worker = Arc::new(
                Worker::new(store.clone(), exec.clone(), config).map_err(SimError::Other)?,
            );
            let (_tx, rx) = tokio::sync::watch::channel(false);
            let w = worker.run(rx).await;
            line.steps += usize::try_from(w.done).unwrap_or(usize::MAX);
            report.worker_failures += w.failed + w.retried;
            let reviewer_in = d.saturating_add(cfg.unreviewed_last_days) < cfg.days;
            if h == cfg.review_hour && reviewer_in {
                // The reviewer's pass: each held item re-judged now, as in the web app.
                for item in store
                    .approvals(Some(ApprovalStatus::Pending), 10_000, 0)
                    .await?
                {
                    match agent
                        .approve(&item.id, &reviewer, Some("simulated reviewer"))
                        .await
                    {
                        Ok(_) => report.approvals_approved += 1,
                        Err(argent_agent::AgentError::Denied(_)) => {
                            refused.insert(item.id);
                        }
                        // Held with another item (a plan and its email): decided with
                        // that one, in this pass or already.
                        Err(
                            argent_agent::AgentError::AlreadyDecided(_)
                            | argent_agent::AgentError::NotPermitted(_),
                        ) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            let sent = deliver(store, &agent, cfg).await?;
            line.emails += sent.len();
            reached.extend(sent);
        }
        report.emails_delivered += line.emails;
        // The end of the day: the debtors an email reached answer it.
        let evening = at(day, 23);
        clock.set(evening);
        for customer in reached {
            let seg = segment_of(&customer);
            report.segments.entry(seg.clone()).or_default().emails += 1;
            let n = contacts.entry(customer.clone()).or_insert(0);
            *n += 1;
            let segment = segments
                .get(&customer)
                .copied()
                .unwrap_or(RiskSegment::InReview);
            let answer = respond(cfg.seed, &customer, *n, segment);
            let due = overdue_invoices(store, &customer, day).await?;
            if due.is_empty() {
                continue;
            }
            let total = due
                .iter()
                .try_fold(0i64, |a, (_, open, _)| a.checked_add(*open))
                .ok_or_else(|| SimError::Other(format!("{customer}: balance overflows")))?;
            let currency = due[0].2;
            let s = report.segments.entry(seg).or_default();
            let body = match answer {
                Response::Ignore => None,
                Response::Pay { in_days } => {
                    schedule(&mut planned, day, in_days, &customer, 2, None);
                    None
                }
                Response::Promise { in_days, keep } => {
                    let date = day
                        .checked_add_days(Days::new(u64::try_from(in_days).unwrap_or(7)))
                        .unwrap_or(day);
                    let halves = match keep {
                        Keep::Full => 2,
                        Keep::Partial => 1,
                        Keep::Broken => 0,
                    };
                    if halves > 0 {
                        schedule(&mut planned, day, in_days, &customer, halves, Some(keep));
                    }
                    Some(format!(
                        "Hello, sorry for the delay. We will pay {} {} by {}.\nThank you.",
                        currency.as_str(),
                        major(total, currency),
                        date.format("%B %-d, %Y")
                    ))
                }
                Response::Dispute => {
                    s.disputes += 1;
                    Some(format!(
                        "We dispute invoice {}: the goods arrived damaged and we will not pay it \
                         until this is sorted out.",
                        due[0].0
                    ))
                }
                Response::Hardship => {
                    s.hardship += 1;
                    Some(
                        "We are in financial difficulty at the moment and cannot pay the full \
                         amount. Can we talk about a payment plan?"
                            .to_string(),
                    )
                }
            };
            if let Some(body) = body {
                s.replies += 1;
                let email = store
                    .customer(&customer)
                    .await?
                    .contacts
                    .iter()
                    .find_map(|c| c.email.clone())
                    .unwrap_or_else(|| format!("{customer}@example.com"));
                agent
                    .start(
                        &customer,
                        Trigger::Inbound {
                            from: email,
                            subject: "Re: your reminder".into(),
                            body,
                            received_at: evening,
                            message_id: None,
                            references: Vec::new(),
                            mail: None,
                        },
                    )
                    .await?;
            }
        }
        // The dashboard's snapshot of the day, as the scheduler takes it once a day is
        // over, so a fresh demo database has trends.
        argent_agent::snapshot::take(store, day, SIM_ACTOR).await?;
        let summary = format!(
            "{} steps enqueued, {} run, {} emails delivered, {} accounts paid",
            line.enqueued, line.steps, line.emails, paid_today
        );
        progress(day, &summary);
    }
    report.end = Some(day);
    report.paused_at_end = last_paused;
    report.approvals_pending_at_end = store.count_approvals(Some(ApprovalStatus::Pending)).await?;
    report.approvals_refused = refused.len();
    for w in store
        .work_items(&WorkFilter {
            status: None,
            customer_id: None,
            kind: Some(WORK_KIND),
            limit: 1_000_000,
        })
        .await?
    {
        let Ok(step) = serde_json::from_value::<StepWork>(w.payload.clone()) else {
            continue;
        };
        let s = report
            .steps
            .entry(format!("{}/{}", step.procedure, step.step))
            .or_default();
        s.enqueued += 1;
        match w.status {
            WorkStatus::Done => s.done += 1,
            WorkStatus::Cancelled => s.cancelled += 1,
            WorkStatus::Failed => s.failed += 1,
            WorkStatus::Queued | WorkStatus::Leased => s.open += 1,
        }
    }
    let promises = store.promises(None).await?;
    let sim_start = at(cfg.start, 0);
    for p in promises.iter().filter(|p| p.created_at >= sim_start) {
        let s = report
            .segments
            .entry(segment_of(&p.customer_id))
            .or_default();
        s.promises += 1;
        match p.status {
            PromiseStatus::Kept => s.promises_kept += 1,
            PromiseStatus::Broken => s.promises_broken += 1,
            PromiseStatus::Open | PromiseStatus::Cancelled => {}
        }
    }
    let ledger = store.ledger().await?;
    let end_dash = dash(&ledger, &promises, day)?;
    // What was overdue on day 0, with every payment booked since.
    let left_of_start = overdue_by_customer(&ledger, cfg.start, day);
    for c in &ledger.customers {
        if start_overdue.get(&c.id).is_some_and(|o| *o > 0)
            && left_of_start.get(&c.id).copied().unwrap_or(0) == 0
        {
            report
                .segments
                .entry(segment_of(&c.id))
                .or_default()
                .cleared += 1;
        }
    }
    for t in &start_dash.totals {
        let end = end_dash.totals.iter().find(|e| e.currency == t.currency);
        report.dso.push(DsoRow {
            currency: t.currency.as_str().to_string(),
            start: t.dso_days,
            end: end.and_then(|e| e.dso_days),
            open_start: t.open_total,
            open_end: end.map_or(0, |e| e.open_total),
        });
    }
    Ok(report)
}

#[derive(Default)]
struct DayLine {
    enqueued: usize,
    steps: usize,
    emails: usize,
}

fn dash(
    ledger: &argent_store::LedgerSnapshot,
    promises: &[argent_core::PromiseToPay],
    as_of: NaiveDate,
) -> Result<Dashboard, SimError> {
    dashboard(&DashboardInput {
        customers: &ledger.customers,
        invoices: &ledger.invoices,
        payments: &ledger.payments,
        promises,
        as_of,
        period_days: 90,
        promise_grace_days: 3,
    })
    .map_err(|e| SimError::Other(format!("dashboard: {e}")))
}

/// Per customer, the minor units still open on the invoices due before `due_before`
/// (disputed ones excluded), with the payments received up to `paid_by`
/// ([`invoice_states`]).
fn overdue_by_customer(
    ledger: &argent_store::LedgerSnapshot,
    due_before: NaiveDate,
    paid_by: NaiveDate,
) -> HashMap<String, i64> {
    let mut out: HashMap<String, i64> = HashMap::new();
    for st in invoice_states(&ledger.invoices, &ledger.payments, paid_by) {
        let i = st.invoice;
        if i.due_date < due_before && !i.disputed {
            let e = out.entry(i.customer_id.clone()).or_default();
            *e = e.saturating_add(st.open_minor);
        }
    }
    out
}

/// A customer's overdue invoices on `day` (number, open minor units, currency), oldest
/// due first, disputed ones and those of an open dispute case excluded.
async fn overdue_invoices(
    store: &Store,
    customer: &str,
    day: NaiveDate,
) -> Result<Vec<(String, i64, Currency)>, SimError> {
    let invoices = store.invoices(Some(customer)).await?;
    let payments = store.payments(Some(customer)).await?;
    let disputed: BTreeSet<String> = store
        .cases(Some(customer))
        .await?
        .into_iter()
        .filter(|c| c.kind == argent_core::CaseKind::Dispute && c.status.is_open())
        .flat_map(|c| c.invoice_numbers)
        .collect();
    let mut open: Vec<_> = invoice_states(&invoices, &payments, day)
        .into_iter()
        .filter(|st| {
            let i = st.invoice;
            st.is_open() && i.due_date < day && !i.disputed && !disputed.contains(&i.number)
        })
        .collect();
    open.sort_by(|a, b| {
        (a.invoice.due_date, &a.invoice.number).cmp(&(b.invoice.due_date, &b.invoice.number))
    });
    Ok(open
        .into_iter()
        .map(|st| {
            (
                st.invoice.number.clone(),
                st.open_minor,
                st.invoice.amount.currency,
            )
        })
        .collect())
}

fn schedule(
    planned: &mut BTreeMap<NaiveDate, Vec<Planned>>,
    day: NaiveDate,
    in_days: i64,
    customer: &str,
    halves: i64,
    promise: Option<Keep>,
) {
    let when = day
        .checked_add_days(Days::new(u64::try_from(in_days.max(1)).unwrap_or(1)))
        .unwrap_or(day);
    planned.entry(when).or_default().push(Planned {
        customer: customer.to_string(),
        halves,
        promise,
    });
}

/// Books what debtors pay unprompted today: each invoice that fell due during the
/// simulation and is still open on its habit's day ([`argent_core::debtors::habit`]).
/// Returns how many accounts paid.
async fn habits(
    store: &Store,
    cfg: &SimConfig,
    day: NaiveDate,
    segments: &BTreeMap<String, RiskSegment>,
    segment_of: &impl Fn(&str) -> String,
    report: &mut SimReport,
) -> Result<usize, SimError> {
    let ledger = store.ledger().await?;
    let mut payments = Vec::new();
    let mut accounts = BTreeSet::new();
    for st in invoice_states(&ledger.invoices, &ledger.payments, day) {
        let i = st.invoice;
        if i.due_date < cfg.start || i.disputed {
            continue;
        }
        let segment = segments
            .get(&i.customer_id)
            .copied()
            .unwrap_or(RiskSegment::InReview);
        let Some(k) = habit(cfg.seed, &i.number, segment) else {
            continue;
        };
        if i.due_date
            .checked_add_days(Days::new(u64::try_from(k).unwrap_or(0)))
            != Some(day)
        {
            continue;
        }
        let open = st.open_minor;
        if open <= 0 {
            continue;
        }
        accounts.insert(i.customer_id.clone());
        let s = report
            .segments
            .entry(segment_of(&i.customer_id))
            .or_default();
        s.paid_unprompted += 1;
        *s.paid
            .entry(i.amount.currency.as_str().to_string())
            .or_default() += open;
        payments.push(Payment {
            id: format!("sim-habit-{}", i.number),
            customer_id: i.customer_id.clone(),
            invoice_number: i.number.clone(),
            amount: Money::new(open, i.amount.currency),
            received_on: day,
        });
    }
    if !payments.is_empty() {
        store
            .import_portfolio(
                &Portfolio {
                    customers: Vec::new(),
                    invoices: Vec::new(),
                    payments,
                },
                "argent demo: simulated debtors",
            )
            .await?;
    }
    Ok(accounts.len())
}

/// Books the day's planned payments (through the ledger import); returns how many
/// accounts paid.
async fn pay(
    store: &Store,
    todo: &[Planned],
    day: NaiveDate,
    segment_of: &impl Fn(&str) -> String,
    report: &mut SimReport,
) -> Result<usize, SimError> {
    let mut payments = Vec::new();
    let mut accounts = 0;
    for p in todo {
        let due = overdue_invoices(store, &p.customer, day).await?;
        let total: i64 = due
            .iter()
            .map(|(_, o, _)| *o)
            .fold(0i64, i64::saturating_add);
        let mut left = if p.halves >= 2 { total } else { total / 2 };
        if left <= 0 {
            continue;
        }
        accounts += 1;
        let s = report.segments.entry(segment_of(&p.customer)).or_default();
        s.payments += 1;
        if p.promise == Some(Keep::Partial) {
            s.promises_partial += 1;
        }
        for (n, (number, open, currency)) in due.iter().enumerate() {
            if left <= 0 {
                break;
            }
            let amount = left.min(*open);
            left -= amount;
            *s.paid.entry(currency.as_str().to_string()).or_default() += amount;
            payments.push(Payment {
                id: format!("sim-{}-{}-{n}", day.format("%Y%m%d"), p.customer),
                customer_id: p.customer.clone(),
                invoice_number: number.clone(),
                amount: Money::new(amount, *currency),
                received_on: day,
            });
        }
    }
    if !payments.is_empty() {
        store
            .import_portfolio(
                &Portfolio {
                    customers: Vec::new(),
                    invoices: Vec::new(),
                    payments,
                },
                "argent demo: simulated debtors",
            )
            .await?;
    }
    Ok(accounts)
}

/// Issues each customer's invoice for the next 30 days (net 30) at its rate.
/// Delivers the outbox; returns the customers an email reached.
async fn deliver(
    store: &Store,
    agent: &Agent,
    cfg: &SimConfig,
) -> Result<BTreeSet<String>, SimError> {
    let waiting: Vec<(String, String)> = store
        .pending_emails(100_000)
        .await?
        .into_iter()
        .map(|e| (e.id, e.customer_id))
        .collect();
    if waiting.is_empty() {
        return Ok(BTreeSet::new());
    }
    agent
        .deliver_outbox(
            &DirMailer {
                dir: cfg.outbox_dir.clone(),
            },
            &cfg.from,
            100_000,
        )
        .await?;
    let still: BTreeSet<String> = store
        .pending_emails(100_000)
        .await?
        .into_iter()
        .map(|e| e.id)
        .collect();
    Ok(waiting
        .into_iter()
        .filter(|(id, _)| !still.contains(id))
        .map(|(_, c)| c)
        .collect())
}

async fn invoice(
    store: &Store,
    rate: &BTreeMap<String, Money>,
    day: NaiveDate,
    d: u32,
) -> Result<usize, SimError> {
    let due = day.checked_add_days(Days::new(30)).unwrap_or(day);
    let invoices: Vec<Invoice> = rate
        .iter()
        .filter(|(_, m)| m.minor > 0)
        .map(|(c, m)| Invoice {
            number: format!("SIM-{d:03}-{c}"),
            customer_id: c.clone(),
            issue_date: day,
            due_date: due,
            // Three months of invoicing, billed monthly.
            amount: Money::new(m.minor / 3, m.currency),
            disputed: false,
        })
        .filter(|i| i.amount.minor > 0)
        .collect();
    let n = invoices.len();
    if n > 0 {
        store
            .import_portfolio(
                &Portfolio {
                    customers: Vec::new(),
                    invoices,
                    payments: Vec::new(),
                },
                "argent demo: simulated invoicing",
            )
            .await?;
    }
    Ok(n)
}

fn major(minor: i64, currency: Currency) -> String {
    Money::new(minor, currency).amount_string()
}
