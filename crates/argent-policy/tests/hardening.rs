#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Findings of issue #11 at the engine: plan limits judged on the ledger, not the model's
//! stated balance (2); content rules that see through invisible characters and homoglyphs
//! (4); disputed debt stopped whatever invoices the action lists (5); amounts written in
//! words (16). Plus a property test: a plan the engine allows is within the pack's allow
//! range computed from the ledger, whatever the edit.

use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::{Value, json};

use argent_core::{Action, Decision, Outcome, Role};
use argent_policy::{Context, Policy, evaluate};

fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

fn pack(name: &str) -> Policy {
    Policy::load(&policies_dir().join(format!("{name}.toml"))).unwrap()
}

fn invoice(number: &str, currency: &str, amount: i64, open: i64, disputed: bool) -> Value {
    json!({"number": number, "currency": currency, "amount_minor": amount, "open_minor": open,
           "due_date": "2026-01-15", "disputed": disputed})
}

/// A US consumer at 11:00 New York time, subsequent communication, with `invoices`.
fn us_ctx(segment: &str, invoices: Vec<Value>) -> Context {
    serde_json::from_value(json!({
        "customer": {
            "id": "C1", "name": "Dana Reyes", "tier": "standard", "jurisdiction": "us-consumer",
            "time_zone": "America/New_York",
            "contacts": [{"name": "Dana Reyes", "email": "dana@example.com", "opted_out": []}],
            "flags": {"cease_contact": false, "disputed": false, "bankrupt": false, "attorney_represented": false}
        },
        "invoices": invoices,
        "now": "2026-03-10T15:00:00Z",
        "segment": segment,
        "initial_communication_sent": true
    }))
    .unwrap()
}

/// A UK consumer owing £800.00 at 10:00 London time.
fn uk_ctx() -> Context {
    serde_json::from_value(json!({
        "customer": {
            "id": "C2", "name": "Alex Morgan", "tier": "standard", "jurisdiction": "uk-consumer",
            "time_zone": "Europe/London",
            "contacts": [{"name": "Alex Morgan", "email": "alex@example.co.uk", "opted_out": []}],
            "flags": {"cease_contact": false, "disputed": false, "bankrupt": false, "attorney_represented": false}
        },
        "invoices": [invoice("UK-1", "GBP", 800_00, 800_00, false)],
        "now": "2026-03-10T10:00:00Z",
        "segment": "medium",
        "initial_communication_sent": true
    }))
    .unwrap()
}

fn action(tool: &str, args: Value) -> Action {
    serde_json::from_value(json!({"tool": tool, "args": args})).unwrap()
}

/// `propose_plan` in USD starting 2026-03-10 with monthly installments.
fn plan(balance: &str, discount: &str, down: &str, installments: &[&str]) -> Value {
    let months = ["04", "05", "06", "07", "08", "09", "10", "11", "12"];
    json!({
        "customer_id": "C1", "currency": "USD", "balance": balance, "discount": discount,
        "down_payment": down, "start_date": "2026-03-10",
        "installments": installments.iter().zip(months).map(|(a, m)| json!({"due_date": format!("2026-{m}-10"), "amount": a})).collect::<Vec<_>>(),
    })
}

const DISCLOSURES: &str =
    "This message is from a debt collector. To stop receiving these emails, reply STOP.";

fn email(body: &str) -> Action {
    action(
        "send_email",
        json!({"customer_id": "C1", "to": "dana@example.com", "subject": "Your account",
               "body": format!("Hello Dana. {body} {DISCLOSURES}")}),
    )
}

fn fired(d: &Decision) -> Vec<String> {
    d.rule_ids().iter().map(|s| s.to_string()).collect()
}

// ---- 2. Plans are judged on the ledger ---------------------------------------------------

#[test]
fn a_plan_of_500_against_a_5000_debt_does_not_pass_as_no_discount() {
    let p = pack("us-consumer");
    let ctx = us_ctx(
        "medium",
        vec![invoice("INV-9", "USD", 5000_00, 5000_00, false)],
    );
    let understated = action("propose_plan", plan("500.00", "0", "50.00", &["450.00"]));
    let d = evaluate(&p, &understated, &ctx);
    assert_eq!(d.outcome, Outcome::Deny, "{d}");
    let ids = fired(&d);
    assert!(
        ids.contains(&"engine.plan-balance-mismatch".to_string()),
        "{d}"
    );
    // Forgiving 4,500.00 of 5,000.00 is 90%: beyond the hard ceiling too.
    assert!(ids.contains(&"us.plan.default.ceiling".to_string()), "{d}");
    let why = &d
        .rules
        .iter()
        .find(|r| r.id == "engine.plan-balance-mismatch")
        .unwrap()
        .message;
    assert!(
        why.contains("/balance") && why.contains("5000.00") && why.contains("500.00"),
        "{why}"
    );
    // Stating the ledger balance and the discount honestly: the same plan is a 90% discount.
    let honest = action(
        "propose_plan",
        plan("5000.00", "4500.00", "50.00", &["450.00"]),
    );
    let d = evaluate(&p, &honest, &ctx);
    assert_eq!(fired(&d), ["us.plan.default.ceiling"], "{d}");
}

#[test]
fn plan_limits_and_the_approval_threshold_use_the_ledger_balance() {
    let p = pack("us-consumer");
    // 15,000.00 owed: any plan for it needs a manager (over USD 10,000).
    let ctx = us_ctx(
        "medium",
        vec![invoice("INV-9", "USD", 15000_00, 15000_00, false)],
    );
    let stated_small = action(
        "propose_plan",
        plan("9000.00", "0", "900.00", &["2700.00", "2700.00", "2700.00"]),
    );
    let d = evaluate(&p, &stated_small, &ctx);
    assert!(d.is_denied(), "{d}");
    assert!(!d.may_approve(Role::Collector));
    let honest = action(
        "propose_plan",
        plan(
            "15000.00",
            "0",
            "1500.00",
            &["4500.00", "4500.00", "4500.00"],
        ),
    );
    let d = evaluate(&p, &honest, &ctx);
    assert_eq!(d.outcome, Outcome::NeedsApproval, "{d}");
    assert_eq!(fired(&d), ["us.approval.large-plan"]);
    assert!(!d.may_approve(Role::Collector));
}

#[test]
fn a_plan_may_cover_named_invoices_and_is_judged_on_their_ledger_balance() {
    let p = pack("us-consumer");
    let ctx = us_ctx(
        "medium",
        vec![
            invoice("INV-1", "USD", 1200_00, 1200_00, false),
            invoice("INV-2", "USD", 450_50, 300_50, false),
        ],
    );
    let mut only_two = plan("300.50", "0", "30.50", &["135.00", "135.00"]);
    only_two["invoice_numbers"] = json!(["INV-2"]);
    assert!(evaluate(&p, &action("propose_plan", only_two.clone()), &ctx).is_allowed());
    // The whole balance stated for one invoice is refused.
    let mut wrong = plan("1500.50", "0", "150.50", &["450.00", "450.00", "450.00"]);
    wrong["invoice_numbers"] = json!(["INV-2"]);
    let d = evaluate(&p, &action("propose_plan", wrong), &ctx);
    assert!(
        fired(&d).contains(&"engine.plan-balance-mismatch".to_string()),
        "{d}"
    );
    // An invoice that is not open on the account.
    only_two["invoice_numbers"] = json!(["INV-404"]);
    let d = evaluate(&p, &action("propose_plan", only_two), &ctx);
    assert_eq!(fired(&d), ["engine.unknown-invoice"], "{d}");
    assert!(d.rules[0].message.contains("INV-404"), "{d}");
}

#[test]
fn a_discount_a_hair_over_the_range_is_not_rounded_into_it() {
    let p = pack("us-consumer");
    let ctx = us_ctx(
        "medium",
        vec![invoice("INV-9", "USD", 10_000_00, 10_000_00, false)],
    );
    // 500.01 of 10,000.00 is 5.0001%: over the 5% default range.
    let over = action(
        "propose_plan",
        plan(
            "10000.00",
            "500.01",
            "1000.00",
            &["2833.33", "2833.33", "2833.33"],
        ),
    );
    let d = evaluate(&p, &over, &ctx);
    assert_eq!(fired(&d), ["us.plan.default"], "{d}");
    let at = action(
        "propose_plan",
        plan(
            "10000.00",
            "500.00",
            "950.00",
            &["2850.00", "2850.00", "2850.00"],
        ),
    );
    assert!(evaluate(&p, &at, &ctx).is_allowed());
}

// ---- 4. Content rules see through invisible characters and look-alikes -------------------

#[test]
fn prohibited_words_hidden_with_invisible_characters_or_homoglyphs_are_caught() {
    let p = pack("us-consumer");
    let ctx = us_ctx(
        "medium",
        vec![invoice("INV-1", "USD", 1500_50, 1500_50, false)],
    );
    for (body, rule) in [
        ("You could be ar\u{200B}rested.", "us.threat-arrest"),
        ("We will file a law\u{00AD}suit.", "us.threat-legal-action"),
        ("Pay or go to ja\u{200D}il.", "us.threat-arrest"),
        ("You will be \u{0430}rrested.", "us.threat-arrest"), // Cyrillic а
        ("You will be arr\u{0435}sted.", "us.threat-arrest"), // Cyrillic е
        ("You will go to pris\u{043E}n.", "us.threat-arrest"), // Cyrillic о
        ("Only an idi\u{03BF}t ignores this.", "us.abusive-language"), // Greek ο
        (
            "You will be \u{FF41}\u{FF52}\u{FF52}\u{FF45}\u{FF53}\u{FF54}ed.",
            "us.threat-arrest",
        ), // fullwidth
        (
            "We will file a \u{FF2C}\u{FF21}\u{FF37}\u{FF33}\u{FF35}\u{FF29}\u{FF34}.",
            "us.threat-legal-action",
        ),
    ] {
        let d = evaluate(&p, &email(body), &ctx);
        assert!(d.is_denied(), "{body:?}: {d}");
        assert!(
            fired(&d).contains(&rule.to_string()),
            "{body:?} should fire {rule}: {d}"
        );
    }
}

#[test]
fn a_draft_with_invisible_characters_is_refused_with_where_they_are() {
    let p = pack("us-consumer");
    let ctx = us_ctx(
        "medium",
        vec![invoice("INV-1", "USD", 1500_50, 1500_50, false)],
    );
    for c in ['\u{200B}', '\u{00AD}', '\u{FEFF}', '\u{202E}', '\u{2060}'] {
        let d = evaluate(
            &p,
            &email(&format!("Your balance is $1,500.50. Thank{c} you.")),
            &ctx,
        );
        assert_eq!(fired(&d), ["engine.invisible-characters"], "{c:?}: {d}");
        let msg = &d.rules[0].message;
        assert!(
            msg.contains(&format!("U+{:04X}", u32::from(c))) && msg.contains("body"),
            "{msg}"
        );
    }
}

#[test]
fn accented_french_and_spanish_drafts_are_not_false_positives() {
    let p = pack("us-consumer");
    let ctx = us_ctx(
        "medium",
        vec![invoice("INV-1", "USD", 1500_50, 1500_50, false)],
    );
    for body in [
        "Estimado señor García: su saldo pendiente es de $1,500.50. ¿Podría indicarnos cuándo podrá pagar? Le ofrecemos un plan de pagos cómodo. Atentamente, el equipo de cobranza.",
        "Chère Madame Lefèvre, votre solde est de $1,500.50. Nous espérons trouver une solution adaptée à votre situation. Répondez à ce courriel, à bientôt. Cordialement, l'équipe de recouvrement.",
    ] {
        let d = evaluate(&p, &email(body), &ctx);
        assert!(d.is_allowed(), "{body}: {d}");
    }
}

// ---- 5. Disputed debt, whatever invoices the action lists --------------------------------

fn disputed_ctx() -> Context {
    us_ctx(
        "medium",
        vec![
            invoice("INV-1", "USD", 1200_00, 1200_00, false),
            invoice("INV-2", "USD", 450_50, 300_50, true),
        ],
    )
}

#[test]
fn an_email_demanding_disputed_debt_is_stopped_with_no_invoice_listed() {
    let p = pack("us-consumer");
    let ctx = disputed_ctx();
    for body in [
        "Please pay invoice INV-2 by Friday.",
        "Please pay the $300.50 you owe by Friday.",
        "Your balance is $1,500.50; please pay it by Friday.",
        "Please pay the three hundred dollars and fifty cents by Friday.",
    ] {
        let d = evaluate(&p, &email(body), &ctx);
        assert!(d.is_denied(), "{body}: {d}");
        assert!(
            fired(&d).contains(&"us.invoice-disputed".to_string()),
            "{body}: {d}"
        );
    }
}

#[test]
fn an_email_about_undisputed_debt_or_acknowledging_the_dispute_goes_out() {
    let p = pack("us-consumer");
    let ctx = disputed_ctx();
    for body in [
        "Please pay the $1,200.00 on INV-1 by Friday.",
        "We have opened a dispute for INV-2 and paused collection on it while we look into it.",
    ] {
        let d = evaluate(&p, &email(body), &ctx);
        assert!(d.is_allowed(), "{body}: {d}");
    }
}

#[test]
fn a_promise_for_disputed_debt_is_stopped_with_no_invoice_listed() {
    let p = pack("us-consumer");
    let mut ctx = disputed_ctx();
    // The customer's words give each amount and the date (#17: grounding).
    ctx.inbound_text =
        Some("I can pay $1,500.50, $300.50, $1,400, $1,200 or $500 on 20 March.".into());
    let promise = |amount: &str| {
        action(
            "log_promise",
            json!({"customer_id": "C1", "amount": amount, "currency": "USD", "promised_date": "2026-03-20"}),
        )
    };
    for amount in ["1500.50", "300.50", "1400.00"] {
        let d = evaluate(&p, &promise(amount), &ctx);
        assert_eq!(fired(&d), ["us.invoice-disputed"], "{amount}: {d}");
    }
    assert!(evaluate(&p, &promise("1200.00"), &ctx).is_allowed());
    assert!(evaluate(&p, &promise("500.00"), &ctx).is_allowed());
}

#[test]
fn a_plan_for_disputed_debt_is_stopped() {
    let p = pack("us-consumer");
    let ctx = disputed_ctx();
    let with_disputed = action(
        "propose_plan",
        plan("1500.50", "0", "150.50", &["450.00", "450.00", "450.00"]),
    );
    let d = evaluate(&p, &with_disputed, &ctx);
    assert!(
        fired(&d).contains(&"us.invoice-disputed".to_string()),
        "{d}"
    );
    let mut named = plan("300.50", "0", "30.50", &["135.00", "135.00"]);
    named["invoice_numbers"] = json!(["INV-2"]);
    let d = evaluate(&p, &action("propose_plan", named), &ctx);
    assert_eq!(fired(&d), ["us.invoice-disputed"], "{d}");
    let undisputed = action(
        "propose_plan",
        plan("1200.00", "0", "120.00", &["360.00", "360.00", "360.00"]),
    );
    assert!(evaluate(&p, &undisputed, &ctx).is_allowed());
}

// ---- 16. Amounts written in words ---------------------------------------------------------

#[test]
fn a_balance_written_in_words_is_checked_like_one_in_figures() {
    let p = pack("us-consumer");
    let ctx = us_ctx(
        "medium",
        vec![invoice("INV-1", "USD", 1500_50, 1500_50, false)],
    );
    for body in [
        "Your balance is nine thousand nine hundred dollars.",
        "You owe one thousand four hundred dollars.",
        "Your balance is $10 thousand.",
        "Your balance is 9,900 dollars.",
    ] {
        let d = evaluate(&p, &email(body), &ctx);
        assert_eq!(fired(&d), ["us.misstated-amount"], "{body}: {d}");
    }
    for body in [
        "Your balance is one thousand five hundred dollars and fifty cents.",
        "One of the two invoices is older than the other.",
    ] {
        let d = evaluate(&p, &email(body), &ctx);
        assert!(d.is_allowed(), "{body}: {d}");
    }

    let uk = pack("uk-consumer");
    let uk_email = |body: &str| {
        action(
            "send_email",
            json!({"customer_id": "C2", "to": "alex@example.co.uk", "subject": "Your account",
                   "body": format!("Dear Alex, {body} Reply to this email and we will agree an arrangement you can afford. If you are finding things difficult, free and impartial debt advice is available from MoneyHelper (moneyhelper.org.uk). To stop receiving these emails, click unsubscribe.")}),
        )
    };
    let d = evaluate(
        &uk,
        &uk_email("your balance is nine thousand, nine hundred pounds and fifty pence."),
        &uk_ctx(),
    );
    assert_eq!(fired(&d), ["uk.misstated-amount"], "{d}");
    let d = evaluate(
        &uk,
        &uk_email("your balance is eight hundred pounds."),
        &uk_ctx(),
    );
    assert!(d.is_allowed(), "{d}");
}

// ---- Property: no plan outside the ledger's allow range is allowed ------------------------

/// The allow range of the us-consumer pack for a segment, read from the pack's TOML (the
/// first range whose `segments` contain it, else the catch-all).
struct AllowRange {
    max_discount_percent: f64,
    max_installments: usize,
    min_down_payment_percent: f64,
    max_plan_days: i64,
}

fn allow_range(segment: &str) -> (AllowRange, i64) {
    let text = std::fs::read_to_string(policies_dir().join("us-consumer.toml")).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let ranges = doc["negotiation"].as_array().unwrap();
    let r = ranges
        .iter()
        .find(|r| {
            r.get("segments")
                .and_then(|s| s.as_array())
                .is_none_or(|s| s.iter().any(|x| x.as_str() == Some(segment)))
        })
        .unwrap();
    let num = |k: &str| {
        r[k].as_float()
            .or(r[k].as_integer().map(|i| i as f64))
            .unwrap()
    };
    let large = doc["approval"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a.get("amount_over").is_some())
        .unwrap()["amount_over"]
        .as_str()
        .unwrap()
        .replace('.', "")
        .parse::<i64>()
        .unwrap();
    (
        AllowRange {
            max_discount_percent: num("max_discount_percent"),
            max_installments: r["max_installments"].as_integer().unwrap() as usize,
            min_down_payment_percent: num("min_down_payment_percent"),
            max_plan_days: r["max_plan_days"].as_integer().unwrap(),
        },
        large,
    )
}

fn cents(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// An edit of a held plan: what the stated balance, discount, down payment, installments
/// and invoice list become.
#[derive(Debug, Clone)]
struct Edit {
    stated: i64,
    discount: i64,
    down: i64,
    installments: Vec<i64>,
    invoices: Vec<&'static str>,
}

const LEDGER: [(&str, i64, bool); 3] = [
    ("INV-1", 1200_00, false),
    ("INV-2", 300_50, false),
    ("INV-3", 800_00, true),
];

fn edit_strategy() -> impl Strategy<Value = Edit> {
    // Biased towards edits near the allow range, so that many are allowed and checked.
    let invoices = prop_oneof![
        Just(Vec::new()),
        proptest::sample::subsequence(vec!["INV-1", "INV-2", "INV-3", "INV-404"], 1..=3),
    ];
    (
        // None: the ledger balance of the invoices named (what an honest edit states).
        prop_oneof![Just(None), (1_00_i64..4000_00).prop_map(Some)],
        prop_oneof![0_u32..=12, 0_u32..=100], // discount, percent of the stated balance
        prop_oneof![5_u32..=40, 0_u32..=100], // down payment, percent of what is left
        prop_oneof![1_usize..=6, 1_usize..=14],
        invoices,
    )
        .prop_filter_map(
            "a coherent plan",
            |(stated, disc_pct, down_pct, n, invoices): (
                Option<i64>,
                u32,
                u32,
                usize,
                Vec<&'static str>,
            )| {
                let stated = stated.unwrap_or_else(|| {
                    if invoices.is_empty() {
                        LEDGER.iter().filter(|l| !l.2).map(|l| l.1).sum()
                    } else {
                        invoices
                            .iter()
                            .filter_map(|n| LEDGER.iter().find(|l| l.0 == *n).map(|l| l.1))
                            .sum::<i64>()
                            .max(1_00)
                    }
                });
                let discount = stated * i64::from(disc_pct) / 100;
                let owed = stated - discount;
                let down = owed * i64::from(down_pct) / 100;
                let rest = owed - down;
                let n = n as i64;
                if rest < n {
                    return None;
                }
                let each = rest / n;
                let mut installments = vec![each; n as usize];
                *installments.last_mut().unwrap() += rest - each * n;
                Some(Edit {
                    stated,
                    discount,
                    down,
                    installments,
                    invoices,
                })
            },
        )
}

fn edit_args(e: &Edit) -> Value {
    let start: chrono::NaiveDate = "2026-03-10".parse().unwrap();
    let installments: Vec<Value> = e
        .installments
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let due = start
                .checked_add_months(chrono::Months::new(i as u32 + 1))
                .unwrap();
            json!({"due_date": due.to_string(), "amount": cents(*a)})
        })
        .collect();
    let mut args = json!({
        "customer_id": "C1", "currency": "USD", "balance": cents(e.stated),
        "discount": cents(e.discount), "down_payment": cents(e.down), "start_date": "2026-03-10",
        "installments": installments,
    });
    if !e.invoices.is_empty() {
        args["invoice_numbers"] = json!(e.invoices);
    }
    args
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn an_allowed_plan_is_within_the_allow_range_computed_from_the_ledger(
        edit in edit_strategy(),
        segment in prop_oneof![Just("low"), Just("medium"), Just("high"), Just("in_review")],
    ) {
        static US: std::sync::LazyLock<Policy> = std::sync::LazyLock::new(|| pack("us-consumer"));
        let p = &*US;
        let ctx = us_ctx(
            segment,
            LEDGER.iter().map(|(n, a, disputed)| invoice(n, "USD", *a, *a, *disputed)).collect(),
        );
        // The plan the reviewer started from needs approval (20% off the collectible 1,500.50).
        let held = plan("1500.50", "300.10", "120.04", &["360.12", "360.12", "360.12"]);
        let before = evaluate(p, &action("propose_plan", held), &ctx);
        prop_assert_eq!(before.outcome, Outcome::NeedsApproval, "{}", before);

        let args = edit_args(&edit);
        let d = evaluate(p, &action("propose_plan", args.clone()), &ctx);
        if d.is_allowed() {
            // The ledger balance the plan settles, computed here from the ledger.
            let ledger: i64 = if edit.invoices.is_empty() {
                LEDGER.iter().filter(|(_, _, disputed)| !disputed).map(|(_, a, _)| a).sum()
            } else {
                let mut names = edit.invoices.clone();
                names.dedup();
                prop_assert!(names.iter().all(|n| LEDGER.iter().any(|(m, _, disputed)| m == n && !disputed)),
                    "allowed a plan naming {:?}: {}", names, args);
                names.iter().map(|n| LEDGER.iter().find(|(m, _, _)| m == n).unwrap().1).sum()
            };
            let collected: i64 = edit.down + edit.installments.iter().sum::<i64>();
            let forgiven = ledger - collected;
            let (range, large) = allow_range(segment);
            let bps = |percent: f64| (percent * 100.0).round() as i128;
            prop_assert!(forgiven >= 0, "allowed a plan collecting {} of a ledger balance of {}: {}", collected, ledger, args);
            prop_assert!(
                i128::from(forgiven) * 10_000 <= bps(range.max_discount_percent) * i128::from(ledger),
                "allowed forgiving {} of {} ({:.4}%) past {}%: {}",
                forgiven, ledger, forgiven as f64 * 100.0 / ledger as f64, range.max_discount_percent, args
            );
            prop_assert!(edit.installments.len() <= range.max_installments, "{}", args);
            prop_assert!(
                i128::from(edit.down) * 10_000 >= bps(range.min_down_payment_percent) * i128::from(collected),
                "down payment {} of {}: {}", edit.down, collected, args
            );
            let start: chrono::NaiveDate = "2026-03-10".parse().unwrap();
            let last = start.checked_add_months(chrono::Months::new(edit.installments.len() as u32)).unwrap();
            prop_assert!((last - start).num_days() <= range.max_plan_days, "{}", args);
            prop_assert!(ledger <= large, "a plan over the approval limit was allowed: {}", args);
            prop_assert!(segment != "in_review", "{}", args);
            prop_assert_eq!(edit.stated, ledger, "the stated balance must be the ledger's: {}", args);
        }
    }
}
