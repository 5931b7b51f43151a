//! One send_email decision with the us-consumer pack on a ~2 KB body (target: < 20 µs median).

use std::hint::black_box;
use std::path::PathBuf;

use argent_core::{
    Action, Contact, Currency, Customer, CustomerFlags, Jurisdiction, RiskSegment, SendEmailArgs,
    Tier,
};
use argent_policy::{Context, OpenInvoice, Policy, PriorContact, evaluate};
use criterion::{Criterion, criterion_group};

fn setup() -> (Policy, Action, Context) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let policy = Policy::load(&dir.join("us-consumer.toml")).expect("us-consumer loads");
    let para = "We are writing about your account with Acme Services. This message is from a debt collector. \
        Our records show that invoices INV-1 and INV-2 remain unpaid; your balance is $1,500.50. \
        If you would like to set up a payment plan that fits your budget, reply to this email and a member of our team will help. ";
    let mut body = String::new();
    while body.len() < 2000 {
        body.push_str(para);
    }
    body.push_str("To stop receiving these emails, reply STOP or click unsubscribe.");
    assert!(
        body.len() >= 2048 - 100 && body.len() <= 2300,
        "{}",
        body.len()
    );
    let action = Action::SendEmail(SendEmailArgs {
        customer_id: "C1".into(),
        to: "dana@example.com".into(),
        subject: "Your account with Acme Services".into(),
        body,
        invoice_numbers: vec!["INV-1".into(), "INV-2".into()],
    });
    let customer = Customer {
        id: "C1".into(),
        name: "Dana Reyes".into(),
        tier: Tier::Standard,
        jurisdiction: Jurisdiction::UsConsumer,
        time_zone: chrono_tz::America::New_York,
        contacts: vec![Contact {
            name: "Dana".into(),
            email: Some("dana@example.com".into()),
            phone: None,
            opted_out: vec![],
        }],
        flags: CustomerFlags::default(),
        facts: Default::default(),
    };
    let now = "2026-03-10T15:00:00Z".parse().expect("instant");
    let mut ctx = Context::new(customer, now, RiskSegment::Medium);
    ctx.initial_communication_sent = true;
    ctx.invoices = vec![
        OpenInvoice {
            number: "INV-1".into(),
            currency: Currency::USD,
            amount_minor: 1200_00,
            open_minor: 1200_00,
            due_date: "2026-01-15".parse().expect("date"),
            disputed: false,
            last_payment_on: None,
        },
        OpenInvoice {
            number: "INV-2".into(),
            currency: Currency::USD,
            amount_minor: 450_50,
            open_minor: 300_50,
            due_date: "2026-02-01".parse().expect("date"),
            disputed: false,
            last_payment_on: None,
        },
    ];
    ctx.prior_contacts = (1..=4)
        .map(|d| PriorContact {
            at: format!("2026-03-0{d}T14:00:00Z").parse().expect("instant"),
            channel: argent_core::Channel::Email,
            conversation: false,
        })
        .collect();
    (policy, action, ctx)
}

/// The two cases: the plain 2 KB email, and the legal-facts path at its most work.
fn cases() -> Vec<(&'static str, Policy, Action, Context)> {
    let (policy, action, ctx) = setup();
    let plain = ("evaluate send_email us-consumer 2KB", policy, action, ctx);
    // The legal-facts path at its most work: a New York account whose invoices are
    // time-barred, so every invoice's limitation date is computed, the disclosure is
    // required and found, and the litigation phrases inside it ("sued", "sue you") are
    // matched and then excused. Allowed, like the first.
    let (policy, mut action, mut ctx) = setup();
    if let Action::SendEmail(e) = &mut action {
        e.body.insert_str(
            0,
            "The law limits how long you can be sued on a debt. Because of the age of your debt, we cannot sue you for it. ",
        );
    }
    ctx.customer.facts.region = Some("NY".into());
    for inv in &mut ctx.invoices {
        inv.due_date = "2021-01-15".parse().expect("date");
        inv.last_payment_on = Some("2022-01-15".parse().expect("date"));
    }
    let barred = (
        "evaluate send_email us-consumer 2KB time-barred NY",
        policy,
        action,
        ctx,
    );
    vec![plain, barred]
}

fn bench(c: &mut Criterion) {
    for (name, policy, action, ctx) in cases() {
        let d = evaluate(&policy, &action, &ctx);
        assert!(d.is_allowed(), "{name}: {d}");
        c.bench_function(name, |b| {
            b.iter(|| evaluate(black_box(&policy), black_box(&action), black_box(&ctx)))
        });
    }
}

criterion_group!(benches, bench);

/// `ARGENT_EVAL_ITERS=N [ARGENT_EVAL_CASE=i]`: evaluate case `i` (default 0) N times
/// and exit, without criterion, for a profiler such as
/// `valgrind --tool=callgrind` (instruction counts are repeatable where medians on a
/// shared machine are not). With `ARGENT_EVAL_FASTEST=1` it also prints the fastest batch
/// of 100 evaluations, per evaluation (on a busy machine the fastest batch is the one
/// least disturbed). Otherwise the criterion benchmarks.
fn main() {
    if let Some(n) = std::env::var("ARGENT_EVAL_ITERS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        let i: usize = std::env::var("ARGENT_EVAL_CASE")
            .ok()
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        let cases = cases();
        let (name, policy, action, ctx) = &cases[i];
        let d = evaluate(policy, action, ctx);
        assert!(d.is_allowed(), "{name}: {d}");
        let mut fastest = std::time::Duration::MAX;
        for _ in 0..n.div_ceil(100) {
            let start = std::time::Instant::now();
            for _ in 0..100 {
                black_box(evaluate(
                    black_box(policy),
                    black_box(action),
                    black_box(ctx),
                ));
            }
            fastest = fastest.min(start.elapsed());
        }
        if std::env::var_os("ARGENT_EVAL_FASTEST").is_some() {
            println!(
                "{name}: fastest batch {:.2} µs per evaluation",
                fastest.as_secs_f64() * 1e4
            );
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
