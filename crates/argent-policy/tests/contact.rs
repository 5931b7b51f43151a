#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Contact-side account facts (issue #12 §1) against the shipped packs: stated inconvenient
//! times, workplace contact, preferred channel, the validation notice and its period, the
//! dispute lifecycle, and calls (the Regulation F call-frequency presumption).

use std::path::{Path, PathBuf};

use argent_core::{Action, Decision, Outcome, Role};
use argent_policy::{Context, Policy, evaluate};
use serde_json::{Value, json};

fn policy(name: &str) -> Policy {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    Policy::load(&dir.join(format!("{name}.toml"))).unwrap()
}

/// A US consumer in New York, 11:00 local on 2026-03-10, two open invoices.
fn us_ctx(facts: Value) -> Context {
    serde_json::from_value(json!({
        "now": "2026-03-10T15:00:00Z",
        "segment": "medium",
        "initial_communication_sent": true,
        "customer": {
            "id": "C1", "name": "Dana Reyes", "tier": "standard",
            "jurisdiction": "us-consumer", "time_zone": "America/New_York",
            "contacts": [
                {"name": "Dana", "email": "dana@example.com", "phone": null, "opted_out": []},
                {"name": "Dana (work)", "email": "dana@acme.example", "phone": null, "opted_out": []}
            ],
            "flags": {"cease_contact": false, "disputed": false, "bankrupt": false, "attorney_represented": false},
            "facts": facts
        },
        "invoices": [
            {"number": "INV-1", "currency": "USD", "amount_minor": 120000, "open_minor": 120000, "due_date": "2026-01-15"},
            {"number": "INV-2", "currency": "USD", "amount_minor": 45050, "open_minor": 30050, "due_date": "2026-02-01"}
        ]
    }))
    .unwrap()
}

const FOOTER: &str = "This message is from a debt collector. To stop receiving these emails, reply STOP or click unsubscribe.";

fn email(to: &str, body: &str) -> Action {
    serde_json::from_value(json!({
        "tool": "send_email",
        "args": {"customer_id": "C1", "to": to, "subject": "Your account", "body": format!("Hello Dana. {body} {FOOTER}")}
    }))
    .unwrap()
}

fn call(not_before: Option<&str>, script: &str) -> Action {
    let mut args = json!({"customer_id": "C1", "reason": "no reply to emails", "script": script});
    if let Some(t) = not_before {
        args["not_before"] = json!(t);
    }
    serde_json::from_value(json!({"tool": "request_call", "args": args})).unwrap()
}

fn ids(d: &Decision) -> Vec<&str> {
    d.rules.iter().map(|r| r.id.as_str()).collect()
}

fn assert_only(d: &Decision, outcome: Outcome, rules: &[&str]) {
    assert_eq!((d.outcome, ids(d)), (outcome, rules.to_vec()), "{d:#?}");
}

#[test]
fn a_stated_inconvenient_time_stops_email_and_calls_at_their_own_instant() {
    let us = policy("us-consumer");
    let facts = json!({"inconvenient_times": [{"from": "10:30:00", "to": "11:30:00"}]});
    let d = evaluate(
        &us,
        &email("dana@example.com", "Your balance is $1,500.50."),
        &us_ctx(facts.clone()),
    );
    assert_only(&d, Outcome::Deny, &["us.consumer-inconvenient-time"]);
    assert!(
        d.rules[0].message.contains("10:30–11:30"),
        "{}",
        d.rules[0].message
    );
    // A call is judged when it may be made: 14:00 local is fine, 11:00 the next day is not.
    let ctx = us_ctx(facts);
    assert_only(
        &evaluate(&us, &call(Some("2026-03-10T18:00:00Z"), "Hello."), &ctx),
        Outcome::Allow,
        &[],
    );
    assert_only(
        &evaluate(&us, &call(Some("2026-03-11T15:00:00Z"), "Hello."), &ctx),
        Outcome::Deny,
        &["us.consumer-inconvenient-time"],
    );
    // A not_before in the past is now.
    assert_only(
        &evaluate(&us, &call(Some("2026-03-01T18:00:00Z"), "Hello."), &ctx),
        Outcome::Deny,
        &["us.consumer-inconvenient-time"],
    );
    // Without the fact nothing fires.
    assert_only(
        &evaluate(&us, &email("dana@example.com", "Hi."), &us_ctx(json!({}))),
        Outcome::Allow,
        &[],
    );
}

#[test]
fn a_workplace_address_is_refused_only_when_work_contact_is() {
    let us = policy("us-consumer");
    let work = email("dana@acme.example", "Your balance is $1,500.50.");
    let listed = json!({"workplace_addresses": ["DANA@acme.example"]});
    assert_only(&evaluate(&us, &work, &us_ctx(listed)), Outcome::Allow, &[]);
    let refused =
        json!({"workplace_addresses": ["DANA@acme.example"], "no_workplace_contact": true});
    assert_only(
        &evaluate(&us, &work, &us_ctx(refused.clone())),
        Outcome::Deny,
        &["us.workplace-contact"],
    );
    let home = email("dana@example.com", "Your balance is $1,500.50.");
    assert_only(&evaluate(&us, &home, &us_ctx(refused)), Outcome::Allow, &[]);
}

#[test]
fn another_channel_than_the_preferred_one_waits_for_a_person() {
    let us = policy("us-consumer");
    let d = evaluate(
        &us,
        &email("dana@example.com", "Hi."),
        &us_ctx(json!({"preferred_channel": "letter"})),
    );
    assert_only(&d, Outcome::NeedsApproval, &["us.preferred-channel"]);
    assert!(d.rules[0].approvers.contains(&Role::Compliance));
    assert!(
        d.rules[0].message.contains("by letter, not by email"),
        "{}",
        d.rules[0].message
    );
    let d = evaluate(
        &us,
        &call(None, "Hello."),
        &us_ctx(json!({"preferred_channel": "phone"})),
    );
    assert_only(&d, Outcome::Allow, &[]);
    let d = evaluate(
        &us,
        &call(None, "Hello."),
        &us_ctx(json!({"preferred_channel": "email"})),
    );
    assert_only(&d, Outcome::NeedsApproval, &["us.preferred-channel"]);
}

#[test]
fn the_validation_period_runs_thirty_five_days_from_sending() {
    let us = policy("us-consumer");
    let deadline = email(
        "dana@example.com",
        "Please pay the balance by April 6, 2026.",
    );
    // Sent 2026-03-02: the period runs to 2026-04-06 (5 days' receipt + 30).
    let sent = |d: &str| us_ctx(json!({"validation_notice": {"sent_on": d, "channel": "letter"}}));
    let d = evaluate(&us, &deadline, &sent("2026-03-02"));
    assert_only(&d, Outcome::Deny, &["us.validation-overshadowing"]);
    assert!(
        d.rules[0].message.contains("2026-04-06"),
        "{}",
        d.rules[0].message
    );
    // A deadline the day after the period ends does not overshadow it.
    let later = email(
        "dana@example.com",
        "Please pay the balance by April 7, 2026.",
    );
    assert_only(
        &evaluate(&us, &later, &sent("2026-03-02")),
        Outcome::Allow,
        &[],
    );
    // Sent 2026-02-03, the period ends today (2026-03-10): a deadline today overshadows it…
    let today = email(
        "dana@example.com",
        "Please pay the balance by March 10, 2026.",
    );
    assert_only(
        &evaluate(&us, &today, &sent("2026-02-03")),
        Outcome::Deny,
        &["us.validation-overshadowing"],
    );
    // …sent a day earlier, the period is over and nothing overshadows it.
    assert_only(
        &evaluate(&us, &today, &sent("2026-02-02")),
        Outcome::Allow,
        &[],
    );
    // Without a recorded notice the rule cannot judge a period.
    assert_only(
        &evaluate(&us, &deadline, &us_ctx(json!({}))),
        Outcome::Allow,
        &[],
    );
}

#[test]
fn overshadowing_language_is_refused_in_emails_and_call_scripts() {
    let us = policy("us-consumer");
    let ctx = us_ctx(json!({"validation_notice": {"sent_on": "2026-03-02", "channel": "email"}}));
    for body in [
        "We need you to pay immediately.",
        "Please disregard the notice we sent last week.",
        "Disputing will not delay anything, so do not dispute.",
        "Payment is due within 48 hours.",
        "Please settle the balance by tomorrow.",
        "Payment must be received by 2026-03-15.",
        "Kindly pay by the end of the month.",
    ] {
        let d = evaluate(&us, &email("dana@example.com", body), &ctx);
        // Other families may fire too ("do not dispute" also misstates the consumer's
        // rights); the validation-period rule must be among them.
        assert_eq!(d.outcome, Outcome::Deny, "{body}: {d}");
        assert!(
            ids(&d).contains(&"us.validation-overshadowing"),
            "{body}: {d}"
        );
    }
    // A sentence that sets no payment deadline is fine; so is a date that is not a demand.
    for body in [
        "You can pay online whenever it suits you.",
        "We received your letter of March 3, 2026 and will answer it.",
    ] {
        assert_only(
            &evaluate(&us, &email("dana@example.com", body), &ctx),
            Outcome::Allow,
            &[],
        );
    }
    let d = evaluate(
        &us,
        &call(None, "Ask them to pay right now, whatever the notice says."),
        &ctx,
    );
    assert_only(&d, Outcome::Deny, &["us.validation-overshadowing"]);
    assert!(
        d.rules[0].message.contains("call script"),
        "{}",
        d.rules[0].message
    );
}

#[test]
fn collection_before_any_validation_notice_is_held() {
    let us = policy("us-consumer");
    let promise: Action = serde_json::from_value(json!({
        "tool": "log_promise",
        "args": {"customer_id": "C1", "amount": "100.00", "currency": "USD", "promised_date": "2026-03-20"}
    }))
    .unwrap();
    // The customer's own words (#17: a promise must be in them).
    let said = Some("I will pay $100 on 20 March.".to_string());
    let mut ctx = us_ctx(json!({}));
    ctx.inbound_text = said.clone();
    ctx.initial_communication_sent = false;
    assert_only(
        &evaluate(&us, &promise, &ctx),
        Outcome::NeedsApproval,
        &["us.before-validation-notice"],
    );
    // The initial communication carries the validation information, or the notice is recorded.
    ctx.initial_communication_sent = true;
    assert_only(&evaluate(&us, &promise, &ctx), Outcome::Allow, &[]);
    let mut ctx =
        us_ctx(json!({"validation_notice": {"sent_on": "2026-03-02", "channel": "letter"}}));
    ctx.inbound_text = said;
    ctx.initial_communication_sent = false;
    assert_only(&evaluate(&us, &promise, &ctx), Outcome::Allow, &[]);
}

fn calls(ctx: &mut Context, specs: &[(&str, bool)]) {
    ctx.prior_contacts = specs
        .iter()
        .map(|(at, conversation)| {
            serde_json::from_value(
                json!({"at": at, "channel": "phone", "conversation": conversation}),
            )
            .unwrap()
        })
        .collect();
}

#[test]
fn the_regulation_f_call_frequency_presumption_is_a_pack_rule() {
    let us = policy("us-consumer");
    let mut ctx = us_ctx(json!({}));
    let attempts: Vec<String> = (0..7)
        .map(|h| format!("2026-03-0{}T14:00:00Z", 4 + h % 6))
        .collect();
    let seven: Vec<(&str, bool)> = attempts.iter().map(|a| (a.as_str(), false)).collect();
    calls(&mut ctx, &seven[..6]);
    assert_only(
        &evaluate(&us, &call(None, "Hello."), &ctx),
        Outcome::Allow,
        &[],
    );
    calls(&mut ctx, &seven);
    let d = evaluate(&us, &call(None, "Hello."), &ctx);
    assert_only(&d, Outcome::Deny, &["us.call-frequency"]);
    assert!(
        d.rules[0].message.contains("7 contact attempts"),
        "{}",
        d.rules[0].message
    );
    // A conversation 6 days 23 hours ago: no call yet; 7 days and 1 hour ago: fine.
    calls(&mut ctx, &[("2026-03-03T16:00:00Z", true)]);
    let d = evaluate(&us, &call(None, "Hello."), &ctx);
    assert_only(&d, Outcome::Deny, &["us.call-frequency"]);
    assert!(
        d.rules[0].message.contains("conversation"),
        "{}",
        d.rules[0].message
    );
    calls(&mut ctx, &[("2026-03-03T14:00:00Z", true)]);
    assert_only(
        &evaluate(&us, &call(None, "Hello."), &ctx),
        Outcome::Allow,
        &[],
    );
    // A call set for after the 7 days is judged then.
    calls(&mut ctx, &[("2026-03-09T14:00:00Z", true)]);
    assert_only(
        &evaluate(&us, &call(Some("2026-03-16T15:00:00Z"), "Hello."), &ctx),
        Outcome::Allow,
        &[],
    );
    // Emails are not calls.
    let d = evaluate(&us, &email("dana@example.com", "Hi."), &ctx);
    assert_only(&d, Outcome::Allow, &[]);
}

#[test]
fn a_dispute_pauses_until_verified_and_an_upheld_one_for_good() {
    let us = policy("us-consumer");
    let ask = email(
        "dana@example.com",
        "Please pay invoice INV-2 now that it is overdue.",
    );
    for (status, outcome) in [
        ("open", Outcome::Deny),
        ("verification_sent", Outcome::Allow),
        ("upheld", Outcome::Deny),
        ("resolved", Outcome::Allow),
    ] {
        let mut ctx = us_ctx(json!({}));
        ctx.open_cases =
            vec![serde_json::from_value(json!({
            "id": "K1", "customer_id": "C1", "kind": "dispute", "status": status,
            "invoice_numbers": ["INV-2"], "disputed_amount": null, "summary": "not delivered",
            "opened_at": "2026-03-01T10:00:00Z"
        }))
        .unwrap()];
        assert_eq!(evaluate(&us, &ask, &ctx).outcome, outcome, "{status}");
    }
}

#[test]
fn contact_rule_documents_are_checked() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let us = std::fs::read_to_string(dir.join("us-consumer.toml")).unwrap();
    let bad = us.replace("after_conversation_days = 7", "after_conversation_days = 0");
    let e = Policy::from_toml_str(&bad, Path::new("policies/broken.toml")).unwrap_err();
    assert!(e.to_string().contains("after_conversation_days"), "{e}");
    let bad = us.replace("dispute_days = 30", "dispute_days = 0");
    let e = Policy::from_toml_str(&bad, Path::new("policies/broken.toml")).unwrap_err();
    assert!(
        e.to_string().contains("validation_period[0].dispute_days"),
        "{e}"
    );
    let bad = us.replace(
        "demand = '(?i)\\b(pay|paid|payment",
        "demand = '(?i)\\b((pay|paid|payment",
    );
    assert_ne!(bad, us);
    let e = Policy::from_toml_str(&bad, Path::new("policies/broken.toml")).unwrap_err();
    assert!(e.to_string().contains("validation_period[0].demand"), "{e}");
    let bad = us.replace(
        "when = \"inconvenient_time\"",
        "when = \"inconvenient_hour\"",
    );
    let e = Policy::from_toml_str(&bad, Path::new("policies/broken.toml")).unwrap_err();
    assert!(e.to_string().contains("inconvenient_hour"), "{e}");
}
