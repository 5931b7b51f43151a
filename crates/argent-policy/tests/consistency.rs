//! Issue #12, consistency between an email and the account's actions, and terms offered in
//! an email: the phrase families (many phrasings, and the near misses that must not count)
//! and the engine's verdicts against `Context::recent_actions`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;

use chrono::{DateTime, Utc};

use argent_core::{
    Action, Contact, Customer, CustomerFlags, Jurisdiction, Outcome, RiskSegment, SendEmailArgs,
    Tier,
};
use argent_policy::consistency::{Claim, OfferKind, confirmations, date_mentions, offers};
use argent_policy::{
    Context, OpenInvoice, Policy, RULE_CONFIRMATION_MISMATCH, RULE_HELD_WITH_ACTION,
    RULE_UNBACKED_CONFIRMATION, RecentAction, RecentKind, RecentStatus, evaluate, text,
};

fn claims(text: &str) -> Vec<Claim> {
    confirmations(&text::normalize(text))
        .into_iter()
        .map(|c| c.claim)
        .collect()
}

fn offered(text: &str) -> Vec<(OfferKind, bool)> {
    offers(&text::normalize(text))
        .into_iter()
        .map(|o| (o.kind, o.clear))
        .collect()
}

#[test]
fn promise_confirmations_are_recognised_however_they_are_phrased() {
    for s in [
        "We've recorded your promise to pay $300.50 on 20 March.",
        "We have recorded your promise to pay.",
        "I have noted your commitment to pay GBP 80.00 on 2026-03-31.",
        "Thank you for your promise to pay by Friday.",
        "Thanks for your payment promise.",
        "Your promise to pay $1,200.00 has been recorded.",
        "Your promise of payment is now on file.",
        "This email confirms your promise to pay $50.00.",
        "WE HAVE LOGGED YOUR PROMISE TO PAY.",
        "We\u{2019}ve recorded your promise to pay.", // a curly apostrophe
        "We've r\u{0435}corded your promise to pay.", // a Cyrillic e
        "We have duly noted your promise to pay on the 5th.",
    ] {
        assert!(claims(s).contains(&Claim::Promise), "{s}: {:?}", claims(s));
    }
    // An agreement to pay is backed by a promise or a plan.
    for s in [
        "As agreed, you will pay $200.00 on 1 April.",
        "We note that you have promised to pay the balance next week.",
        "As arranged, you'll pay £100.00 a month.",
    ] {
        assert!(
            claims(s).contains(&Claim::Agreement),
            "{s}: {:?}",
            claims(s)
        );
    }
}

#[test]
fn near_misses_do_not_confirm_a_promise() {
    for s in [
        "Could you tell us when you expect to pay?",
        "If you promise to pay by Friday, we will note it.",
        "Once we have recorded your promise, we will confirm it in writing.",
        "We have not recorded any promise to pay.",
        "We haven't recorded your promise yet.",
        "Please let us know the date you will pay so we can note it.",
        "Your promise is being reviewed by a colleague.",
        "We look forward to receiving your payment.",
        "A promise to pay can be made by replying to this email.",
    ] {
        assert!(!claims(s).contains(&Claim::Promise), "{s}: {:?}", claims(s));
    }
}

#[test]
fn plan_confirmations_are_recognised_however_they_are_phrased() {
    for s in [
        "Your payment plan has been set up.",
        "Your instalment plan is now in place.",
        "Your repayment arrangement has been agreed.",
        "We have set up your payment plan of six monthly instalments.",
        "We've agreed a revised payment plan with you.",
        "This letter confirms your payment plan.",
        "Good news: your plan has been approved and is now active.",
        "The arrangement was accepted on 3 March.",
        "Thank you for agreeing to a payment plan.",
        "Your installment plan is live.",
    ] {
        assert!(claims(s).contains(&Claim::Plan), "{s}: {:?}", claims(s));
    }
}

#[test]
fn near_misses_do_not_confirm_a_plan() {
    for s in [
        "If you would like a payment plan, reply to this email.",
        "Would you like us to set up a payment plan?",
        "Once the plan is approved, we will write to you.",
        "We have prepared a proposal for you to consider.",
        "Your plan has not been approved.",
        "We can discuss a plan that fits your budget.",
        "Reply to this email and we will agree an arrangement you can afford.",
        "When your plan is in place, payments are due on the 1st.",
    ] {
        assert!(!claims(s).contains(&Claim::Plan), "{s}: {:?}", claims(s));
    }
}

#[test]
fn follow_up_promises_are_recognised_however_they_are_phrased() {
    for s in [
        "A member of our team will call you tomorrow.",
        "A member of our collections team will be in touch.",
        "Someone from our team will contact you shortly.",
        "Our specialist team will review your case.",
        "Our manager will get back to you this week.",
        "Someone will call you on Monday.",
        "We have escalated your account to a supervisor.",
        "We've referred this to our disputes team.",
        "We have opened a case for your query.",
        "Your case has been passed to our specialist support team.",
        "Your account has been referred to our credit manager.",
    ] {
        assert!(claims(s).contains(&Claim::FollowUp), "{s}: {:?}", claims(s));
    }
}

#[test]
fn near_misses_do_not_promise_a_follow_up() {
    for s in [
        "If you would like a member of our team to call you, reply to this email.",
        "A member of our team can help if you reply.",
        "Reply to this email and we will explain it.",
        "We will write to the account holder directly.",
        "Our team is available from 9am to 5pm.",
        "We have not escalated your account.",
        "Would you like someone to call you?",
    ] {
        assert!(
            !claims(s).contains(&Claim::FollowUp),
            "{s}: {:?}",
            claims(s)
        );
    }
}

#[test]
fn offers_are_recognised_in_figures_percentages_and_words() {
    let cases: &[(&str, OfferKind, bool)] = &[
        (
            "We have applied a 90% discount to your account.",
            OfferKind::Discount,
            true,
        ),
        (
            "We will take 30 percent off your balance.",
            OfferKind::Discount,
            true,
        ),
        (
            "You can pay just $400 and we will knock the rest off.",
            OfferKind::Discount,
            true,
        ),
        ("We will waive the late fees.", OfferKind::Waiver, true),
        (
            "We have written off the interest on invoice INV-1.",
            OfferKind::Waiver,
            true,
        ),
        (
            "We can settle your account for half.",
            OfferKind::Settlement,
            true,
        ),
        (
            "We will accept £500 in full and final settlement.",
            OfferKind::Settlement,
            true,
        ),
        (
            "We have frozen interest and charges on your account.",
            OfferKind::Concession,
            true,
        ),
        (
            "No further interest will be added to your balance.",
            OfferKind::Concession,
            true,
        ),
        (
            "You can pay in six monthly instalments.",
            OfferKind::Instalments,
            true,
        ),
        (
            "You can pay £100.00 a month for eight months.",
            OfferKind::Instalments,
            true,
        ),
        (
            "We can spread the balance over twelve months.",
            OfferKind::Instalments,
            true,
        ),
        (
            "We may be able to offer a reduction.",
            OfferKind::Discount,
            false,
        ),
        (
            "We might consider waiving the fee.",
            OfferKind::Waiver,
            false,
        ),
        (
            "We could possibly freeze interest.",
            OfferKind::Concession,
            false,
        ),
    ];
    for (s, kind, clear) in cases {
        let got = offered(s);
        assert!(got.contains(&(*kind, *clear)), "{s}: {got:?}");
    }
}

#[test]
fn invitations_and_refusals_are_not_offers() {
    for s in [
        "Reply to this email and we will agree an arrangement you can afford.",
        "If you would like a payment plan, let us know.",
        "We are unable to offer a discount.",
        "We cannot waive the fees on this account.",
        "Please settle your account by the end of the month.",
        "Your balance is $1,500.50.",
        "Interest continues to accrue at the contractual rate.",
    ] {
        assert!(offered(s).is_empty(), "{s}: {:?}", offered(s));
    }
}

#[test]
fn dates_are_read_in_the_usual_forms() {
    let d = |s: &str| -> Vec<String> { date_mentions(s).iter().map(|d| d.to_string()).collect() };
    assert_eq!(d("on 2026-03-20"), vec!["2026-03-20"]);
    assert_eq!(d("on 20 March 2026"), vec!["2026-03-20"]);
    assert_eq!(d("by the 5th of April"), vec!["--04-05"]);
    assert_eq!(d("on March 20, 2026"), vec!["2026-03-20"]);
    assert_eq!(d("on Mar 20"), vec!["--03-20"]);
    assert!(d("on 03/04/2026").is_empty(), "slashed dates are ambiguous");
}

// ---------------------------------------------------------------------------------------
// The engine

fn policy() -> Policy {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/us-consumer.toml");
    Policy::load(&p).unwrap()
}

fn ctx(recent: Vec<RecentAction>) -> Context {
    let now: DateTime<Utc> = "2026-03-10T15:00:00Z".parse().unwrap();
    let customer = Customer {
        id: "C1".into(),
        name: "Dana Reyes".into(),
        tier: Tier::Standard,
        jurisdiction: Jurisdiction::UsConsumer,
        time_zone: chrono_tz::America::New_York,
        contacts: vec![Contact {
            name: "Dana Reyes".into(),
            email: Some("dana@example.com".into()),
            phone: None,
            opted_out: vec![],
        }],
        flags: CustomerFlags::default(),
        facts: Default::default(),
    };
    let mut c = Context::new(customer, now, RiskSegment::Medium);
    c.initial_communication_sent = true;
    c.invoices = vec![
        OpenInvoice {
            number: "INV-1".into(),
            currency: argent_core::Currency::USD,
            amount_minor: 120_000,
            open_minor: 120_000,
            due_date: "2026-01-15".parse().unwrap(),
            disputed: false,
            last_payment_on: None,
        },
        OpenInvoice {
            number: "INV-2".into(),
            currency: argent_core::Currency::USD,
            amount_minor: 45_050,
            open_minor: 30_050,
            due_date: "2026-02-01".parse().unwrap(),
            disputed: false,
            last_payment_on: None,
        },
    ];
    c.recent_actions = recent;
    c
}

fn mail(body: &str) -> Action {
    Action::SendEmail(SendEmailArgs {
        customer_id: "C1".into(),
        to: "dana@example.com".into(),
        subject: "Your account".into(),
        body: format!(
            "Dear Dana,\n\n{body}\n\nThis communication is from a debt collector. To stop receiving emails from us, reply STOP."
        ),
        invoice_numbers: vec![],
    })
}

fn promise(status: RecentStatus) -> RecentAction {
    let mut r = RecentAction::new(RecentKind::Promise, status);
    r.currency = Some(argent_core::Currency::USD);
    r.amount_minor = Some(30_050);
    r.dates = vec!["2026-03-20".parse().unwrap()];
    r.invoices = vec!["INV-2".into()];
    r
}

const CONFIRM: &str = "We've recorded your promise to pay $300.50 on 20 March 2026.";

#[test]
fn a_confirmation_waits_with_its_pending_action_and_names_it() {
    let p = policy();
    let pending = promise(RecentStatus::PendingApproval)
        .with_approval("apr-7", vec![argent_core::Role::Collector]);
    let d = evaluate(&p, &mail(CONFIRM), &ctx(vec![pending]));
    assert_eq!(d.outcome, Outcome::NeedsApproval, "{d}");
    assert_eq!(d.rule_ids(), vec![RULE_HELD_WITH_ACTION], "{d}");
    assert_eq!(d.held_with.as_deref(), Some("apr-7"));
    assert_eq!(d.approvers(), vec![argent_core::Role::Collector]);
    assert!(d.rules[0].message.contains("apr-7"), "{d}");
}

#[test]
fn a_confirmation_of_an_executed_action_with_its_figures_is_allowed() {
    let d = evaluate(
        &policy(),
        &mail(CONFIRM),
        &ctx(vec![promise(RecentStatus::Executed)]),
    );
    assert_eq!(d.outcome, Outcome::Allow, "{d}");
    assert_eq!(d.held_with, None);
}

#[test]
fn an_executed_action_is_preferred_over_a_pending_one() {
    let pending = promise(RecentStatus::PendingApproval).with_approval("apr-8", vec![]);
    let d = evaluate(
        &policy(),
        &mail(CONFIRM),
        &ctx(vec![pending, promise(RecentStatus::Executed)]),
    );
    assert_eq!(d.outcome, Outcome::Allow, "{d}");
}

#[test]
fn a_confirmation_of_a_refused_or_missing_action_is_denied() {
    let p = policy();
    for recent in [vec![], vec![promise(RecentStatus::Refused)]] {
        let d = evaluate(&p, &mail(CONFIRM), &ctx(recent.clone()));
        assert_eq!(d.outcome, Outcome::Deny, "{d}");
        assert_eq!(d.rule_ids(), vec![RULE_UNBACKED_CONFIRMATION], "{d}");
        assert_eq!(d.held_with, None);
        if !recent.is_empty() {
            assert!(d.rules[0].message.contains("refused promise"), "{d}");
        }
    }
}

#[test]
fn figures_that_are_not_the_actions_are_denied() {
    let p = policy();
    for body in [
        // The balance, not the one invoice the promise is for.
        "We've recorded your promise to pay $1,500.50 on 20 March 2026.",
        // Another date.
        "We've recorded your promise to pay $300.50 on 27 March 2026.",
        // In words.
        "We've recorded your promise to pay three hundred dollars on 20 March.",
    ] {
        let d = evaluate(&p, &mail(body), &ctx(vec![promise(RecentStatus::Executed)]));
        assert_eq!(d.outcome, Outcome::Deny, "{body}: {d}");
        assert!(
            d.rule_ids().contains(&RULE_CONFIRMATION_MISMATCH),
            "{body}: {d}"
        );
    }
    // A pending action with other figures is a mismatch too, not a hold.
    let pending = promise(RecentStatus::PendingApproval).with_approval("apr-9", vec![]);
    let d = evaluate(
        &p,
        &mail("We've recorded your promise to pay $1,500.50 on 20 March 2026."),
        &ctx(vec![pending]),
    );
    assert_eq!(d.outcome, Outcome::Deny, "{d}");
    assert_eq!(d.held_with, None);
}

#[test]
fn an_email_confirming_two_different_pending_actions_is_denied() {
    let a = promise(RecentStatus::PendingApproval).with_approval("apr-a", vec![]);
    let mut b = RecentAction::new(RecentKind::Escalation, RecentStatus::PendingApproval)
        .with_approval("apr-b", vec![]);
    b.at = a.at;
    let d = evaluate(
        &policy(),
        &mail(&format!("{CONFIRM} A member of our team will call you.")),
        &ctx(vec![a, b]),
    );
    assert_eq!(d.outcome, Outcome::Deny, "{d}");
}

fn plan(status: RecentStatus, discount: i64) -> RecentAction {
    let mut r = RecentAction::new(RecentKind::Plan, status);
    r.currency = Some(argent_core::Currency::USD);
    r.balance_minor = Some(150_050);
    r.discount_minor = discount;
    r.down_payment_minor = 150_050 - discount - 120_000;
    r.installments_minor = vec![20_000; 6];
    r.amount_minor = Some(150_050 - discount);
    r
}

#[test]
fn offers_need_a_plan_with_the_same_terms() {
    let p = policy();
    // No plan: denied, in figures, percentages and words.
    for body in [
        "We have applied a 90% discount to your account.",
        "We will accept $500.00 in full and final settlement.",
        "We will waive the late fees on your account.",
        "You can settle the account for half.",
        "You can pay in six monthly instalments of $200.00.",
        "We will take ninety percent off.",
    ] {
        let d = evaluate(&p, &mail(body), &ctx(vec![]));
        assert_eq!(d.outcome, Outcome::Deny, "{body}: {d}");
        assert!(d.rule_ids().contains(&"us.offer-unbacked"), "{body}: {d}");
    }
    // The allowed plan's terms: allowed; other terms: denied.
    let allowed = plan(RecentStatus::Executed, 15_005);
    let ok = evaluate(
        &p,
        &mail(
            "As agreed, we have applied a 10% discount. You pay $150.45 now, then six monthly instalments of $200.00.",
        ),
        &ctx(vec![allowed.clone()]),
    );
    assert_eq!(ok.outcome, Outcome::Allow, "{ok}");
    for body in [
        "We have applied a 25% discount.",
        "You pay $150.45 now, then twelve monthly instalments.",
        "You pay $99.00 now, then six monthly instalments of $200.00.",
    ] {
        let d = evaluate(&p, &mail(body), &ctx(vec![allowed.clone()]));
        assert_eq!(d.outcome, Outcome::Deny, "{body}: {d}");
    }
    // A plan without a discount does not back a discount.
    let d = evaluate(
        &p,
        &mail("We have applied a 10% discount."),
        &ctx(vec![plan(RecentStatus::Executed, 0)]),
    );
    assert_eq!(d.outcome, Outcome::Deny, "{d}");
    // A pending plan holds the email with it.
    let pending = plan(RecentStatus::PendingApproval, 15_005).with_approval("apr-p", vec![]);
    let d = evaluate(
        &p,
        &mail("We have applied a 10% discount."),
        &ctx(vec![pending]),
    );
    assert_eq!(d.outcome, Outcome::NeedsApproval, "{d}");
    assert_eq!(d.held_with.as_deref(), Some("apr-p"));
    // Hedged: a person decides.
    let d = evaluate(
        &p,
        &mail("We may be able to offer a reduction."),
        &ctx(vec![]),
    );
    assert_eq!(d.outcome, Outcome::NeedsApproval, "{d}");
    assert_eq!(d.rule_ids(), vec!["us.offer-ambiguous"], "{d}");
    assert_eq!(d.held_with, None);
}

#[test]
fn a_hold_never_survives_a_deny() {
    // Held with the pending promise, but a threat makes it a deny: no bundle.
    let pending = promise(RecentStatus::PendingApproval).with_approval("apr-7", vec![]);
    let d = evaluate(
        &policy(),
        &mail(&format!("{CONFIRM} We have applied a 90% discount.")),
        &ctx(vec![pending]),
    );
    assert_eq!(d.outcome, Outcome::Deny, "{d}");
    assert_eq!(d.held_with, None);
}
