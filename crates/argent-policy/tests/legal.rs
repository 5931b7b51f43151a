#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Money and legal facts at the engine (issue #12 §1): the threat-of-legal-action phrase
//! family per pack, one test per phrasing; what does not count as a threat; the limitation
//! clock from the ledger's last payment; exact statutory interest.

use std::path::PathBuf;

use serde_json::{Value, json};

use argent_core::{Action, Currency, Decision, Invoice, Money, Outcome, Payment};
use argent_policy::{Context, Policy, evaluate, statutory_interest};

fn pack(name: &str) -> Policy {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    Policy::load(&dir.join(format!("{name}.toml"))).unwrap()
}

/// A context for `pack`'s usual test customer owing one recent invoice, with `facts`.
fn ctx(pack: &str, facts: Value) -> Context {
    let (id, email, tz, currency, now) = match pack {
        "us-consumer" => (
            "C1",
            "dana@example.com",
            "America/New_York",
            "USD",
            "2026-03-10T15:00:00Z",
        ),
        "uk-consumer" => (
            "C2",
            "alex@example.co.uk",
            "Europe/London",
            "GBP",
            "2026-03-10T10:00:00Z",
        ),
        _ => (
            "B1",
            "ap@northwind.example",
            "Europe/London",
            "GBP",
            "2026-03-10T11:00:00Z",
        ),
    };
    serde_json::from_value(json!({
        "customer": {
            "id": id, "name": "Test", "tier": "standard", "jurisdiction": pack,
            "time_zone": tz,
            "contacts": [{"name": "Test", "email": email, "opted_out": []}],
            "flags": {"cease_contact": false, "disputed": false, "bankrupt": false, "attorney_represented": false},
            "facts": facts
        },
        "invoices": [{"number": "INV-1", "currency": currency, "amount_minor": 80000,
                      "open_minor": 80000, "due_date": "2026-01-20"}],
        "now": now,
        "segment": "medium",
        "initial_communication_sent": true,
        // A referral to lawyers really happened (an executed escalation), so a sentence
        // saying so is not an unbacked confirmation: only the litigation rules are tested.
        "recent_actions": [{"kind": "escalation", "status": "executed"}]
    }))
    .unwrap()
}

/// An email to `pack`'s customer that carries the pack's required wording around `sentence`.
fn email(pack: &str, sentence: &str) -> Action {
    let (id, to, body) = match pack {
        "us-consumer" => (
            "C1",
            "dana@example.com",
            format!(
                "Hello, this message is from a debt collector. Your balance is $800.00. {sentence} To stop receiving these emails, reply STOP."
            ),
        ),
        "uk-consumer" => (
            "C2",
            "alex@example.co.uk",
            format!(
                "Dear Alex, your balance is £800.00. {sentence} Free and impartial debt advice is available from MoneyHelper. To stop receiving these emails, click unsubscribe."
            ),
        ),
        _ => (
            "B1",
            "ap@northwind.example",
            format!("Hello, invoice INV-1 for £800.00 is overdue. {sentence}"),
        ),
    };
    serde_json::from_value(json!({"tool": "send_email", "args": {
        "customer_id": id, "to": to, "subject": "Your account", "body": body}}))
    .unwrap()
}

fn fired(d: &Decision, id: &str) -> bool {
    d.rule_ids().contains(&id)
}

/// Each phrasing, unauthorised, is denied by the pack's threat rule; with authority it is
/// the pack's authorised outcome (`authorised_rule` fires, or nothing legal fires).
fn check_family(pack_name: &str, phrasings: &[&str], authorised_rule: Option<&str>) {
    let p = pack(pack_name);
    let prefix = pack_name.split('-').next().unwrap();
    let threat = format!("{prefix}.threat-legal-action");
    let mut wrong = Vec::new();
    for s in phrasings {
        let d = evaluate(&p, &email(pack_name, s), &ctx(pack_name, json!({})));
        if !(d.outcome == Outcome::Deny && fired(&d, &threat)) {
            wrong.push(format!("unauthorised: {s:?} -> {d}"));
        }
        let d = evaluate(
            &p,
            &email(pack_name, s),
            &ctx(pack_name, json!({"litigation_authorised": true})),
        );
        let ok = match authorised_rule {
            Some(id) => d.outcome == Outcome::NeedsApproval && fired(&d, id),
            None => d.outcome == Outcome::Allow,
        };
        if !ok || fired(&d, &threat) {
            wrong.push(format!("authorised: {s:?} -> {d}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn uk_threat_family_one_phrasing_each() {
    check_family(
        "uk-consumer",
        &[
            "We will apply for a County Court Judgment.",
            "We will apply for a county-court judgement.",
            "A CCJ may be registered against you.",
            "We will take you to court.",
            "The matter may go before the courts.",
            "We will issue a money claim online.",
            "A claim form will be sent to you.",
            "We may start court proceedings.",
            "We will commence legal proceedings.",
            "We will take legal action.",
            "We are taking legal steps to recover it.",
            "We will sue you.",
            "We intend to sue for the balance.",
            "This is a letter before claim.",
            "Bailiffs may attend your home.",
            "Enforcement agents may visit.",
            "We may instruct a High Court Enforcement Officer.",
            "A warrant of control may be issued.",
            "We may apply for a charging order.",
            "An attachment of earnings order may follow.",
            "We may seek a third party debt order on your bank account.",
            "Deductions from your wages may be ordered.",
            "We may seize your goods.",
            "Your car may be repossessed.",
            "We may take control of your goods.",
            "We may serve a statutory demand.",
            "We may present a bankruptcy petition.",
            "We may make you bankrupt.",
            "Your account will be passed to our solicitors.",
            "We have referred the debt to our legal team.",
            "Our solicitors will write to you.",
            "We have instructed solicitors.",
        ],
        Some("uk.legal-statement"),
    );
}

#[test]
fn us_threat_family_one_phrasing_each() {
    check_family(
        "us-consumer",
        &[
            "We will sue you.",
            "We may decide to sue.",
            "You may be sued.",
            "We are considering suing.",
            "A lawsuit may be filed.",
            "A law suit may follow.",
            "We may file a suit against you.",
            "We may file a civil action.",
            "We may take legal action.",
            "Court proceedings may begin.",
            "This may go to court.",
            "We may pursue this in small claims.",
            "You may receive a summons.",
            "A judgment may be entered.",
            "Your wages may be garnished.",
            "We may seek wage garnishment.",
            "A bank levy may follow.",
            "We may levy your account.",
            "A lien may be placed on your home.",
            "We may attach your wages.",
            "Your car may be repossessed.",
            "We may seize your property.",
            "The sheriff may serve papers.",
            "We will refer your account to our attorneys.",
            "We have forwarded the file to a law firm.",
            "Our attorneys will file papers.",
            "We may litigate.",
        ],
        Some("us.legal-statement"),
    );
}

#[test]
fn b2b_threat_family_one_phrasing_each() {
    check_family(
        "b2b",
        &[
            "We will issue a County Court claim.",
            "We will issue proceedings.",
            "We will take legal action.",
            "A CCJ will be entered.",
            "We will obtain judgment.",
            "We will sue the company.",
            "This is a letter before action.",
            "We will serve a statutory demand.",
            "We will present a winding-up petition.",
            "We will present a winding up petition.",
            "We will wind the company up.",
            "The company may go into compulsory liquidation.",
            "We will instruct High Court enforcement.",
            "Bailiffs will attend your premises.",
            "We may seek a charging order.",
            "We will pass the invoices to our solicitors.",
            "Our solicitors have been instructed.",
            "We will seize your stock.",
        ],
        None,
    );
}

#[test]
fn ordinary_collection_wording_is_no_threat() {
    for pack_name in ["uk-consumer", "us-consumer", "b2b"] {
        let p = pack(pack_name);
        for s in [
            "Thank you for being so courteous on the phone.",
            "As a courtesy, we have not added any charges.",
            "Please take action to pay by Friday.",
            "We can set up a plan that suits you.",
            "Please judge for yourself whether the plan is affordable.",
            "We would like to resolve this without any further steps.",
            "We spoke to Sue, your adviser, yesterday.",
        ] {
            let d = evaluate(&p, &email(pack_name, s), &ctx(pack_name, json!({})));
            assert_eq!(d.outcome, Outcome::Allow, "{pack_name}: {s:?} -> {d}");
        }
    }
}

#[test]
fn a_threat_hidden_with_homoglyphs_and_invisible_characters_is_still_read() {
    let p = pack("uk-consumer");
    // Cyrillic "а" in "bailiffs" and a zero-width space in "County Court".
    let d = evaluate(
        &p,
        &email(
            "uk-consumer",
            "B\u{0430}iliffs will call. County\u{200B} Court next.",
        ),
        &ctx("uk-consumer", json!({})),
    );
    assert!(fired(&d, "uk.threat-legal-action"), "{d}");
}

#[test]
fn the_us_disclosure_may_say_sue_but_a_threat_next_to_it_may_not() {
    let p = pack("us-consumer");
    let facts = json!({"region": "NY"});
    let mut c = ctx("us-consumer", facts);
    c.invoices[0].due_date = "2021-01-20".parse().unwrap();
    let disclosure = "The law limits how long you can be sued on a debt. Because of the age of your debt, we cannot sue you for it.";
    let d = evaluate(&p, &email("us-consumer", disclosure), &c);
    assert_eq!(d.outcome, Outcome::Allow, "{d}");
    let d = evaluate(
        &p,
        &email(
            "us-consumer",
            &format!("{disclosure} But we will sue you anyway."),
        ),
        &c,
    );
    assert!(fired(&d, "us.time-barred-threat"), "{d}");
    assert!(fired(&d, "us.threat-legal-action"), "{d}");
}

#[test]
fn the_ledger_gives_each_invoice_its_last_payment() {
    let customer = ctx("uk-consumer", json!({})).customer;
    let gbp = |minor| Money::new(minor, Currency::GBP);
    let inv = |n: &str| Invoice {
        number: n.into(),
        customer_id: "C2".into(),
        amount: gbp(80_000),
        issue_date: "2018-12-20".parse().unwrap(),
        due_date: "2019-01-20".parse().unwrap(),
        disputed: false,
    };
    let pay = |id: &str, n: &str, on: &str| Payment {
        id: id.into(),
        customer_id: "C2".into(),
        invoice_number: n.into(),
        amount: gbp(1_000),
        received_on: on.parse().unwrap(),
    };
    let now = "2026-03-10T10:00:00Z".parse().unwrap();
    let c = Context::new(customer, now, argent_core::RiskSegment::Medium).with_ledger(
        &[inv("A"), inv("B")],
        &[
            pay("p1", "A", "2021-01-01"),
            pay("p2", "A", "2022-02-01"),
            pay("p3", "A", "2020-01-01"),
            // After `now`: not yet received.
            pay("p4", "B", "2026-04-01"),
        ],
    );
    let last = |n: &str| {
        c.invoices
            .iter()
            .find(|i| i.number == n)
            .unwrap()
            .last_payment_on
    };
    assert_eq!(last("A"), Some("2022-02-01".parse().unwrap()));
    assert_eq!(last("B"), None);

    // The payment restarts the clock: A is not statute-barred, B is.
    let p = pack("uk-consumer");
    let threat = |number: &str| {
        let a: Action = serde_json::from_value(json!({"tool": "send_email", "args": {
            "customer_id": "C2", "to": "alex@example.co.uk", "subject": format!("Invoice {number}"),
            "body": format!("Dear Alex, invoice {number} is unpaid; we will issue a claim in the County Court. Free debt advice is available from MoneyHelper. Click unsubscribe to stop receiving these emails.")}}))
        .unwrap();
        let mut c = c.clone();
        c.customer.facts.litigation_authorised = true;
        evaluate(&p, &a, &c)
    };
    assert!(!fired(&threat("A"), "uk.time-barred-threat"));
    assert!(fired(&threat("B"), "uk.time-barred-threat"));
}

#[test]
fn statutory_interest_is_exact_act_365_rounded_down_per_invoice() {
    // £5,000.00 at 12% for 38 days: 500000 * 1200 * 38 / 3650000 = 6246.57… -> 6246.
    assert_eq!(statutory_interest(500_000, 1_200, 38), Some(6_246));
    // A whole year is exactly the rate, leap year or not.
    assert_eq!(statutory_interest(100_000, 1_200, 365), Some(12_000));
    // Just under one minor unit rounds to nothing.
    assert_eq!(statutory_interest(3_041, 1_200, 1), Some(0));
    assert_eq!(statutory_interest(3_042, 1_200, 1), Some(1));
    // Not overdue, nothing owed, no rate: nothing.
    assert_eq!(statutory_interest(100_000, 1_200, 0), Some(0));
    assert_eq!(statutory_interest(100_000, 1_200, -5), Some(0));
    assert_eq!(statutory_interest(0, 1_200, 30), Some(0));
    // The largest figures do not overflow silently.
    assert_eq!(statutory_interest(i64::MAX, i64::MAX, i64::MAX), None);
}

#[test]
fn a_b2b_claim_at_the_statutory_cap_is_allowed_and_one_minor_unit_over_is_not() {
    let p = pack("b2b");
    let mut c = ctx("b2b", json!({}));
    c.base_rate_bps = 400;
    // INV-1: £800.00 due 2026-01-20, 49 days overdue on 2026-03-10 at 12%:
    // 80000 * 1200 * 49 / 3650000 = 1288.76… -> £12.88; fixed compensation £40.00.
    let cap = 80_000 + 1_288 + 4_000;
    let claim = |minor: i64| {
        let m = Money::new(minor, Currency::GBP);
        let a: Action = serde_json::from_value(json!({"tool": "send_email", "args": {
            "customer_id": "B1", "to": "ap@northwind.example", "subject": "Invoice INV-1",
            "body": format!("Hello, invoice INV-1 is overdue. With statutory interest and compensation the total due is {m}.")}}))
        .unwrap();
        evaluate(&p, &a, &c)
    };
    let at = claim(cap);
    assert_eq!(at.outcome, Outcome::Allow, "{at}");
    let over = claim(cap + 1);
    assert!(fired(&over, "b2b.misstated-amount"), "{over}");
}
