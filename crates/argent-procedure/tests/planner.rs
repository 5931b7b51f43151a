//! The planner over the shipped procedures: which step is due, pauses and their end,
//! broken promises, business hours; and property tests of its invariants.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use argent_core::{
    Case, CaseKind, CaseStatus, Contact, Currency, Customer, CustomerFlags, Invoice, Jurisdiction,
    Money, Payment, PromiseStatus, PromiseToPay, Tier,
};
use argent_procedure::{
    ASSIGNMENT, PauseReason, ProcedureSet, Snapshot, State, Status, StepKind, in_business_hours,
    plan,
};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;

fn shipped_with(assignment: &str) -> ProcedureSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../procedures");
    let mut docs = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if name != ASSIGNMENT {
            docs.push((name, std::fs::read_to_string(&p).unwrap()));
        }
    }
    docs.push((ASSIGNMENT.to_string(), assignment.to_string()));
    ProcedureSet::from_sources(docs.iter().map(|(n, b)| (n.as_str(), 1, b.as_str()))).unwrap()
}

/// Every account on the standard ladder, whatever its segment.
fn standard() -> ProcedureSet {
    shipped_with("[[rules]]\nprocedure = \"standard\"\n")
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// 10:00 in Chicago on `day`.
fn at(day: &str) -> DateTime<Utc> {
    chrono_tz::America::Chicago
        .from_local_datetime(&d(day).and_hms_opt(10, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn customer(tier: Tier, flags: CustomerFlags) -> Customer {
    Customer {
        id: "C1".into(),
        name: "Ann".into(),
        tier,
        jurisdiction: Jurisdiction::B2b,
        time_zone: chrono_tz::America::Chicago,
        contacts: vec![Contact {
            name: "Ann".into(),
            email: Some("ann@x.example".into()),
            phone: None,
            opted_out: vec![],
        }],
        flags,
        facts: Default::default(),
    }
}

fn inv(n: &str, due: &str, minor: i64, disputed: bool) -> Invoice {
    Invoice {
        number: n.into(),
        customer_id: "C1".into(),
        issue_date: d(due) - Duration::days(30),
        due_date: d(due),
        amount: Money::new(minor, Currency::USD),
        disputed,
    }
}

fn pay(n: &str, minor: i64, on: &str) -> Payment {
    Payment {
        id: format!("p-{n}-{on}"),
        customer_id: "C1".into(),
        invoice_number: n.into(),
        amount: Money::new(minor, Currency::USD),
        received_on: d(on),
    }
}

/// Three paid invoices of history, so the account has a risk segment.
fn history() -> (Vec<Invoice>, Vec<Payment>) {
    let mut invoices = Vec::new();
    let mut payments = Vec::new();
    for (i, due) in ["2026-06-01", "2026-07-01", "2026-08-01"]
        .iter()
        .enumerate()
    {
        let n = format!("H{i}");
        invoices.push(inv(&n, due, 100_00, false));
        payments.push(pay(&n, 100_00, due));
    }
    (invoices, payments)
}

#[derive(Debug)]
struct Account {
    customer: Customer,
    invoices: Vec<Invoice>,
    payments: Vec<Payment>,
    cases: Vec<Case>,
    promises: Vec<PromiseToPay>,
    state: Option<State>,
}

impl Account {
    fn overdue(due: &str, minor: i64) -> Account {
        let (mut invoices, payments) = history();
        invoices.push(inv("INV-1", due, minor, false));
        Account {
            customer: customer(Tier::Standard, CustomerFlags::default()),
            invoices,
            payments,
            cases: vec![],
            promises: vec![],
            state: None,
        }
    }

    /// Plans at `now` and keeps the new state; the step due, if any.
    fn tick(&mut self, now: DateTime<Utc>, set: &ProcedureSet) -> argent_procedure::Plan {
        let snap = Snapshot {
            customer: &self.customer,
            invoices: &self.invoices,
            payments: &self.payments,
            cases: &self.cases,
            promises: &self.promises,
            last_contact: None,
        };
        let p = plan(&snap, self.state.as_ref(), set, now).unwrap();
        for o in &p.promises {
            if let Some(pr) = self.promises.iter_mut().find(|x| x.id == o.promise_id) {
                pr.status = o.status;
            }
        }
        self.state = Some(p.state.clone());
        p
    }

    /// Ticks each day from `from` for `days` days; the (day, step) pairs due.
    fn run(&mut self, from: &str, days: i64, set: &ProcedureSet) -> Vec<(NaiveDate, String)> {
        let mut out = Vec::new();
        for k in 0..days {
            let day = d(from) + Duration::days(k);
            let p = self.tick(at(&day.to_string()), set);
            if let Some(due) = p.due {
                out.push((day, due.work.step));
            }
        }
        out
    }
}

fn steps(v: &[(NaiveDate, String)]) -> Vec<&str> {
    v.iter().map(|(_, s)| s.as_str()).collect()
}

#[test]
fn the_standard_ladder_runs_one_step_at_a_time_on_its_days() {
    let set = standard();
    let mut a = Account::overdue("2026-10-01", 900_00);
    let due = a.run("2026-09-25", 90, &set);
    assert_eq!(
        steps(&due),
        [
            "pre_due_reminder",
            "due_today",
            "overdue_notice",
            "call_request",
            "credit_hold",
            "formal_demand",
            "agency_referral"
        ]
    );
    let day = |s: &str| due.iter().find(|(_, x)| x == s).unwrap().0;
    assert_eq!(day("pre_due_reminder"), d("2026-09-28"));
    assert_eq!(day("due_today"), d("2026-10-01"));
    assert_eq!(day("overdue_notice"), d("2026-10-08"));
    assert_eq!(day("call_request"), d("2026-10-16"));
    // 7 days after the call, and 30 days past due at the earliest.
    assert_eq!(day("credit_hold"), d("2026-10-31"));
    assert_eq!(day("formal_demand"), d("2026-11-15"));
    assert_eq!(day("agency_referral"), d("2026-12-15"));
    assert_eq!(a.state.as_ref().unwrap().status, Status::Finished);
    assert_eq!(a.state.as_ref().unwrap().cycle, 1);
}

#[test]
fn a_late_start_skips_the_pre_due_steps_and_catches_up_with_gaps() {
    let set = standard();
    let mut a = Account::overdue("2026-10-01", 900_00);
    let due = a.run("2026-10-20", 20, &set);
    // 19 days past due: the overdue notice first, the call five days after it.
    assert_eq!(due[0], (d("2026-10-20"), "overdue_notice".to_string()));
    assert_eq!(due[1], (d("2026-10-25"), "call_request".to_string()));
}

#[test]
fn strategic_accounts_get_an_account_manager_alert_instead_of_a_credit_hold() {
    let set = standard();
    let mut a = Account::overdue("2026-10-01", 900_00);
    a.customer.tier = Tier::Strategic;
    let due = a.run("2026-09-25", 80, &set);
    assert!(steps(&due).contains(&"account_manager_alert"));
    assert!(!steps(&due).contains(&"credit_hold"));
}

#[test]
fn a_small_balance_is_not_held_or_referred() {
    let set = standard();
    let mut a = Account::overdue("2026-10-01", 100_00);
    let due = a.run("2026-09-25", 90, &set);
    assert!(!steps(&due).contains(&"credit_hold"));
    assert!(!steps(&due).contains(&"agency_referral"));
    assert!(steps(&due).contains(&"formal_demand"));
}

#[test]
fn a_dispute_of_the_whole_balance_pauses_and_resolving_it_resumes() {
    let set = standard();
    let mut a = Account::overdue("2026-10-01", 900_00);
    assert_eq!(a.run("2026-10-08", 1, &set).len(), 1);
    a.cases.push(Case {
        id: "K1".into(),
        customer_id: "C1".into(),
        kind: CaseKind::Dispute,
        status: CaseStatus::Open,
        invoice_numbers: vec!["INV-1".into()],
        disputed_amount: None,
        summary: "damaged".into(),
        opened_at: at("2026-10-09"),
    });
    assert!(a.run("2026-10-09", 20, &set).is_empty());
    let st = a.state.clone().unwrap();
    assert_eq!(st.status, Status::Paused);
    assert_eq!(st.paused_reason, Some(PauseReason::Disputed));
    a.cases[0].status = CaseStatus::Resolved;
    let due = a.run("2026-10-29", 1, &set);
    assert_eq!(steps(&due), ["call_request"]);
    assert_eq!(a.state.unwrap().paused_reason, None);
}

#[test]
fn a_disputed_invoice_is_left_out_of_the_step() {
    let set = standard();
    let mut a = Account::overdue("2026-10-01", 900_00);
    a.invoices.push(inv("INV-2", "2026-10-02", 50_00, true));
    a.invoices.push(inv("INV-3", "2026-10-03", 70_00, false));
    let p = a.tick(at("2026-10-08"), &set);
    assert_eq!(p.due.unwrap().work.invoices, ["INV-1", "INV-3"]);
}

#[test]
fn hardship_and_payment_claimed_cases_pause_until_closed() {
    let set = standard();
    for kind in [CaseKind::Hardship, CaseKind::PaymentClaimed] {
        let mut a = Account::overdue("2026-10-01", 900_00);
        a.cases.push(Case {
            id: "K1".into(),
            customer_id: "C1".into(),
            kind,
            status: CaseStatus::Open,
            invoice_numbers: vec![],
            disputed_amount: None,
            summary: "x".into(),
            opened_at: at("2026-10-01"),
        });
        assert!(a.run("2026-10-05", 30, &set).is_empty(), "{kind}");
        let reason = a.state.as_ref().unwrap().paused_reason;
        assert_eq!(
            reason,
            Some(if kind == CaseKind::Hardship {
                PauseReason::Hardship
            } else {
                PauseReason::PaymentClaimed
            })
        );
        a.cases[0].status = CaseStatus::Resolved;
        assert_eq!(a.run("2026-11-04", 1, &set).len(), 1, "{kind}");
    }
}

fn promise(id: &str, minor: i64, date: &str, made: &str) -> PromiseToPay {
    PromiseToPay {
        id: id.into(),
        customer_id: "C1".into(),
        invoice_numbers: vec![],
        amount: Money::new(minor, Currency::USD),
        promised_date: d(date),
        created_at: at(made),
        status: PromiseStatus::Open,
    }
}

#[test]
fn a_broken_promise_fires_its_follow_up_on_the_right_day() {
    let set = standard();
    let mut a = Account::overdue("2026-10-01", 900_00);
    assert_eq!(steps(&a.run("2026-10-08", 1, &set)), ["overdue_notice"]);
    // Promised for the 20th; grace 3 days: broken on the 24th, follow-up a day later.
    a.promises
        .push(promise("PTP-1", 900_00, "2026-10-20", "2026-10-09"));
    a.payments.push(pay("INV-1", 200_00, "2026-10-19"));
    let mut broken_seen = None;
    let mut due = Vec::new();
    for k in 0..25 {
        let day = d("2026-10-09") + Duration::days(k);
        let p = a.tick(at(&day.to_string()), &set);
        for o in &p.promises {
            broken_seen = Some((day, o.clone()));
        }
        if let Some(x) = p.due {
            due.push((day, x.work.step.clone(), x.work.promise_id.clone()));
        }
        if day < d("2026-10-24") {
            assert_eq!(
                a.state.as_ref().unwrap().paused_reason,
                Some(PauseReason::Promise),
                "{day}"
            );
        }
    }
    let (day, o) = broken_seen.unwrap();
    assert_eq!(day, d("2026-10-24"));
    assert_eq!(o.status, PromiseStatus::Broken);
    assert!(o.partially_kept);
    assert_eq!(o.paid_minor, 200_00);
    assert_eq!(
        due[0],
        (
            d("2026-10-25"),
            "broken_promise".to_string(),
            Some("PTP-1".to_string())
        )
    );
    // The 25th is a Sunday: the follow-up is due at 09:00 on Monday the 26th. Then the
    // ladder goes on: the call request, five days' gap after it.
    assert_eq!(
        a.state.as_ref().unwrap().followed_promises,
        ["PTP-1".to_string()]
    );
    assert_eq!(due[1].1, "call_request");
    assert_eq!(due[1].0, d("2026-10-31"));
}

#[test]
fn a_kept_promise_and_a_cleared_balance_end_the_cycle() {
    let set = standard();
    let mut a = Account::overdue("2026-10-01", 900_00);
    a.run("2026-10-08", 1, &set);
    a.promises
        .push(promise("PTP-1", 900_00, "2026-10-20", "2026-10-09"));
    a.payments.push(pay("INV-1", 900_00, "2026-10-18"));
    let p = a.tick(at("2026-10-19"), &set);
    assert!(p.ended);
    assert_eq!(p.promises[0].status, PromiseStatus::Kept);
    assert_eq!(p.state.status, Status::Idle);
    // The next invoice falls due: a new cycle.
    a.invoices.push(inv("INV-9", "2026-11-20", 300_00, false));
    let due = a.run("2026-11-01", 30, &set);
    assert_eq!(due[0].1, "pre_due_reminder");
    assert_eq!(a.state.unwrap().cycle, 2);
}

#[test]
fn stop_flags_skip_contact_steps_and_bankruptcy_stops_everything() {
    let set = standard();
    let mut a = Account::overdue("2026-10-01", 900_00);
    a.customer.flags.cease_contact = true;
    let due = a.run("2026-09-25", 90, &set);
    assert_eq!(steps(&due), ["credit_hold", "agency_referral"]);
    // Every internal step ran; what is left would contact the customer.
    let st = a.state.unwrap();
    assert_eq!(st.status, Status::Paused);
    assert_eq!(st.paused_reason, Some(PauseReason::CeaseContact));
    let mut a = Account::overdue("2026-10-01", 900_00);
    a.customer.flags.bankrupt = true;
    assert!(a.run("2026-09-25", 80, &set).is_empty());
}

#[test]
fn contact_steps_are_due_inside_business_hours() {
    let set = standard();
    let mut a = Account::overdue("2026-10-01", 900_00);
    // Saturday 2026-10-10, 23:00 Chicago.
    let sat = chrono_tz::America::Chicago
        .with_ymd_and_hms(2026, 10, 10, 23, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let p = a.tick(sat, &set);
    let due = p.due.unwrap();
    assert_eq!(due.work.kind, StepKind::Email);
    let monday_nine = chrono_tz::America::Chicago
        .with_ymd_and_hms(2026, 10, 12, 9, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(due.due_at, monday_nine);
}

// ---------------------------------------------------------------------------------------
// Properties.

fn arb_account() -> impl Strategy<Value = (Account, i64)> {
    (
        prop::collection::vec((0i64..120, 1i64..2_000_00, any::<bool>(), 0i64..3), 1..5),
        prop::collection::vec((0usize..3, any::<bool>()), 0..3),
        prop::collection::vec((0i64..60, 1i64..1_000_00), 0..3),
        any::<[bool; 4]>(),
        0usize..3,
        0i64..24,
    )
        .prop_map(|(invs, cases, proms, flags, tier, hour)| {
            let (mut invoices, mut payments) = history();
            let base = d("2026-09-01");
            for (i, (due_off, minor, disputed, paid)) in invs.iter().enumerate() {
                let n = format!("INV-{i}");
                let due = base + Duration::days(*due_off);
                invoices.push(inv(&n, &due.to_string(), *minor, *disputed && i % 2 == 0));
                if *paid == 1 {
                    payments.push(pay(&n, *minor, &(due + Duration::days(20)).to_string()));
                }
            }
            let kinds = [
                CaseKind::Dispute,
                CaseKind::Hardship,
                CaseKind::PaymentClaimed,
            ];
            let cases = cases
                .iter()
                .enumerate()
                .map(|(i, (k, open))| Case {
                    id: format!("K{i}"),
                    customer_id: "C1".into(),
                    kind: kinds[*k],
                    status: if *open {
                        CaseStatus::Open
                    } else {
                        CaseStatus::Resolved
                    },
                    invoice_numbers: vec!["INV-0".into()],
                    disputed_amount: None,
                    summary: String::new(),
                    opened_at: at("2026-09-01"),
                })
                .collect();
            let promises = proms
                .iter()
                .enumerate()
                .map(|(i, (off, minor))| {
                    let date = base + Duration::days(30 + off);
                    promise(&format!("PTP-{i}"), *minor, &date.to_string(), "2026-09-20")
                })
                .collect();
            let f = CustomerFlags {
                cease_contact: flags[0],
                disputed: flags[1] && flags[2],
                bankrupt: flags[2] && flags[3],
                attorney_represented: flags[3] && !flags[0],
            };
            let tier = [Tier::Strategic, Tier::Standard, Tier::Small][tier];
            let mut c = customer(tier, f);
            c.time_zone = [
                chrono_tz::America::Chicago,
                chrono_tz::Europe::London,
                chrono_tz::Asia::Tokyo,
            ][usize::try_from(hour % 3).unwrap()];
            (
                Account {
                    customer: c,
                    invoices,
                    payments,
                    cases,
                    promises,
                    state: None,
                },
                hour,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Ticking every day (at a random hour, and again minutes later): at most one step per
    /// account per day, each step of a cycle is planned at most once,
    /// a paused account gets nothing, contact steps are due inside business hours in the
    /// debtor's zone, and nothing is due before the tick.
    #[test]
    fn invariants_hold_over_days((mut a, hour) in arb_account()) {
        let set = shipped_with(
            "[[rules]]\nsegment = \"low\"\nprocedure = \"gentle\"\n\n\
             [[rules]]\nsegment = \"medium\"\nprocedure = \"standard\"\n\n\
             [[rules]]\nsegment = \"high\"\nprocedure = \"phone-first\"\n",
        );
        let standard = set.get("standard").unwrap().1.hours;
        let mut keys = BTreeSet::new();
        for k in 0..150 {
            let now = Utc.with_ymd_and_hms(2026, 8, 20, 0, 0, 0).unwrap()
                + Duration::days(k)
                + Duration::hours(hour);
            let p = a.tick(now, &set);
            // The same tick again (a second scheduler, a re-run): nothing more.
            let again = a.tick(now + Duration::minutes(5), &set);
            prop_assert!(again.due.is_none(), "a second step the same day: {:?}", again.due);
            if p.state.status == Status::Paused {
                prop_assert!(p.due.is_none());
            }
            if a.customer.flags.bankrupt {
                prop_assert!(p.due.is_none());
            }
            if let Some(due) = p.due {
                prop_assert!(keys.insert(due.work.dedupe_key("C1")), "planned twice: {}", due.work.dedupe_key("C1"));
                prop_assert!(due.due_at >= now);
                if due.work.kind.contacts_customer() {
                    prop_assert!(!a.customer.flags.cease_contact && !a.customer.flags.attorney_represented);
                    prop_assert!(in_business_hours(due.due_at, a.customer.time_zone, standard));
                }
                prop_assert!(!due.work.invoices.iter().any(|n| {
                    a.invoices.iter().any(|i| &i.number == n && i.disputed)
                }), "a disputed invoice in a step");
            }
        }
    }
}
