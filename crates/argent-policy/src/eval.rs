//! `evaluate`: judge one typed action in context. Pure, synchronous, no I/O.

use chrono::{Duration, Timelike};

use argent_core::{
    Action, Channel, Currency, Decision, FiredRule, Money, Outcome, SendEmailArgs, ToolName,
};

use crate::context::Context;
use crate::policy::{MessageKind, Policy, RuleMeta, StopCondition, Terms};

/// Engine invariants that hold whatever the policy says.
pub const RULE_CUSTOMER_MISMATCH: &str = "engine.customer-mismatch";
pub const RULE_INVALID_ARGUMENTS: &str = "engine.invalid-arguments";
pub const RULE_JURISDICTION_MISMATCH: &str = "engine.jurisdiction-mismatch";
const ENGINE_CITATION: &str = "argent engine invariant";

fn fire(d: &mut Decision, meta: &RuleMeta, detail: Option<String>) {
    let message = match detail {
        Some(detail) => format!("{} ({detail})", meta.message),
        None => meta.message.clone(),
    };
    let outcome = meta.effect.outcome();
    d.fire(FiredRule {
        id: meta.id.clone(),
        outcome,
        message,
        citation: meta.citation.clone(),
        approvers: if outcome == Outcome::NeedsApproval {
            meta.approvers.clone()
        } else {
            Vec::new()
        },
    });
}

fn engine_deny(d: &mut Decision, id: &str, message: String) {
    d.fire(FiredRule {
        id: id.to_string(),
        outcome: Outcome::Deny,
        message,
        citation: ENGINE_CITATION.to_string(),
        approvers: Vec::new(),
    });
}

/// The channel a tool contacts the debtor on, if it does.
fn channel_of(tool: ToolName) -> Option<Channel> {
    match tool {
        ToolName::SendEmail => Some(Channel::Email),
        _ => None,
    }
}

/// Judges `action` under `policy` given the account facts in `ctx`.
///
/// Every rule that applies is checked and every one that fires is listed; the outcome is
/// the most severe (deny > needs_approval > allow). Nothing the model wrote other than the
/// typed arguments is consulted.
pub fn evaluate(policy: &Policy, action: &Action, ctx: &Context) -> Decision {
    let mut d = Decision::allow();
    let tool = action.tool();

    if action.customer_id() != ctx.customer.id {
        engine_deny(
            &mut d,
            RULE_CUSTOMER_MISMATCH,
            format!(
                "the action names customer '{}' but this conversation is about customer '{}'",
                action.customer_id(),
                ctx.customer.id
            ),
        );
    }
    if ctx.customer.jurisdiction != policy.jurisdiction {
        engine_deny(
            &mut d,
            RULE_JURISDICTION_MISMATCH,
            format!(
                "policy '{}' is for {} accounts but the customer is {}",
                policy.id, policy.jurisdiction, ctx.customer.jurisdiction
            ),
        );
    }
    if let Err(problems) = action.check() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        engine_deny(
            &mut d,
            RULE_INVALID_ARGUMENTS,
            format!("invalid arguments: {}", list.join("; ")),
        );
    }

    check_stops(policy, action, ctx, &mut d);
    if let Some(channel) = channel_of(tool) {
        check_quiet_hours(policy, tool, ctx, &mut d);
        check_frequency(policy, tool, channel, ctx, &mut d);
    }
    if let Action::SendEmail(email) = action {
        check_language(policy, email, ctx, &mut d);
    }
    match action {
        Action::ProposePlan(p) => {
            if let Ok(plan) = p.to_plan("proposed") {
                check_negotiation(policy, &plan, ctx, &mut d);
                check_overclaim(
                    policy,
                    plan.currency,
                    plan.balance_minor,
                    "plan balance",
                    ctx,
                    &mut d,
                );
            }
        }
        Action::LogPromise(p) => check_promise(policy, p.promised_date, ctx, &mut d),
        _ => {}
    }
    check_approval(policy, action, ctx, &mut d);
    d
}

fn check_stops(policy: &Policy, action: &Action, ctx: &Context, d: &mut Decision) {
    let tool = action.tool();
    let flags = ctx.customer.flags;
    for stop in policy.stops.iter().filter(|s| s.actions.contains(&tool)) {
        let detail: Option<Option<String>> = match stop.when {
            StopCondition::CeaseContact => flags.cease_contact.then_some(None),
            StopCondition::Bankrupt => flags.bankrupt.then_some(None),
            StopCondition::AttorneyRepresented => flags.attorney_represented.then_some(None),
            StopCondition::AccountDisputed => flags.disputed.then_some(None),
            StopCondition::InvoiceDisputed => {
                let paused: Vec<&str> = action
                    .invoice_numbers()
                    .iter()
                    .filter(|n| ctx.invoice_paused(n))
                    .map(String::as_str)
                    .collect();
                (!paused.is_empty()).then(|| Some(format!("paused: {}", paused.join(", "))))
            }
            StopCondition::ChannelOptedOut => match action {
                Action::SendEmail(e) => ctx
                    .customer
                    .contacts
                    .iter()
                    .find(|c| {
                        c.email
                            .as_deref()
                            .is_some_and(|m| m.eq_ignore_ascii_case(&e.to))
                    })
                    .filter(|c| !c.allows(Channel::Email))
                    .map(|c| Some(format!("{} opted out of email", c.name))),
                _ => None,
            },
            StopCondition::RecipientNotOnFile => match action {
                Action::SendEmail(e) => (!ctx.customer.contacts.iter().any(|c| {
                    c.email
                        .as_deref()
                        .is_some_and(|m| m.eq_ignore_ascii_case(&e.to))
                }))
                .then(|| Some(format!("{} is not a contact on file", e.to))),
                _ => None,
            },
        };
        if let Some(detail) = detail {
            fire(d, &stop.meta, detail);
        }
    }
}

fn check_quiet_hours(policy: &Policy, tool: ToolName, ctx: &Context, d: &mut Decision) {
    let local = ctx.now.with_timezone(&ctx.customer.time_zone);
    let t = local.time();
    for q in policy
        .quiet_hours
        .iter()
        .filter(|q| q.actions.contains(&tool))
    {
        if t < q.earliest || t >= q.latest {
            fire(
                d,
                &q.meta,
                Some(format!(
                    "it is {:02}:{:02} in {} for the debtor; allowed {}–{}",
                    t.hour(),
                    t.minute(),
                    ctx.customer.time_zone,
                    q.earliest.format("%H:%M"),
                    q.latest.format("%H:%M")
                )),
            );
        }
    }
}

fn check_frequency(
    policy: &Policy,
    tool: ToolName,
    channel: Channel,
    ctx: &Context,
    d: &mut Decision,
) {
    for f in policy
        .frequency
        .iter()
        .filter(|f| f.actions.contains(&tool) && f.channels.contains(&channel))
    {
        let since = ctx.now - Duration::days(i64::from(f.window_days));
        let prior = ctx
            .prior_contacts
            .iter()
            .filter(|c| f.channels.contains(&c.channel) && c.at > since && c.at <= ctx.now)
            .count();
        if prior + 1 > f.max as usize {
            fire(
                d,
                &f.meta,
                Some(format!(
                    "{prior} contact attempts in the last {} days; at most {} allowed",
                    f.window_days, f.max
                )),
            );
        }
    }
}

fn check_language(policy: &Policy, email: &SendEmailArgs, ctx: &Context, d: &mut Decision) {
    // Prohibited and required patterns: one pass per field over all of them.
    let n = policy.prohibited.len();
    let subject = policy.text_set.matches(&email.subject);
    let body = policy.text_set.matches(&email.body);
    for (i, meta) in policy.prohibited.iter().enumerate() {
        if subject.matched(i) || body.matched(i) {
            fire(d, meta, None);
        }
    }
    // Required disclosures by message kind and channel, in the body.
    let kind = if ctx.initial_communication_sent {
        MessageKind::Subsequent
    } else {
        MessageKind::Initial
    };
    for (j, r) in policy.required.iter().enumerate() {
        let applies =
            (r.kind == MessageKind::Any || r.kind == kind) && r.channels.contains(&Channel::Email);
        if applies && !body.matched(n + j) {
            fire(d, &r.meta, None);
        }
    }
    // Amounts mentioned against the ledger.
    if let Some(amounts) = &policy.amounts {
        for text in [&email.subject, &email.body] {
            if let Some(detail) = misstated_amount(policy, amounts, text, ctx) {
                fire(d, &amounts.meta, Some(detail));
                break;
            }
        }
    }
}

/// Statutory extras a B2B creditor may claim on overdue invoices in `currency`: fixed
/// compensation per invoice (by band) and simple interest at base + margin, minor units.
fn claimable_extras(policy: &Policy, currency: Currency, ctx: &Context) -> (i64, Vec<i64>) {
    let Some(lp) = &policy.late_payment else {
        return (0, Vec::new());
    };
    let bands = lp
        .compensation
        .iter()
        .find(|c| c.currency == currency)
        .map(|c| c.bands.as_slice())
        .unwrap_or(&[]);
    let today = ctx.local_today();
    let rate_bps = i128::from(ctx.base_rate_bps) + i128::from(lp.interest_over_base_bps);
    let mut total: i64 = 0;
    let mut fixed = Vec::new();
    for inv in ctx
        .invoices
        .iter()
        .filter(|i| i.currency == currency && i.due_date < today && !ctx.invoice_paused(&i.number))
    {
        if let Some((_, comp)) = bands
            .iter()
            .find(|(below, _)| below.is_none_or(|b| inv.amount_minor < b))
        {
            total = total.saturating_add(*comp);
            fixed.push(*comp);
        }
        let days = i128::from((today - inv.due_date).num_days().max(0));
        let interest = i128::from(inv.open_minor) * rate_bps * days / (10_000 * 365);
        total = total.saturating_add(i64::try_from(interest).unwrap_or(i64::MAX));
    }
    (total, fixed)
}

/// Returns why an amount in `text` misstates the debt, if one does. An amount is misstated
/// when it exceeds what the ledger says is open (plus claimable statutory extras), when it
/// is in a currency the account owes nothing in, or when it is presented as the balance
/// (a balance word shortly before it) and matches no ledger figure.
fn misstated_amount(
    policy: &Policy,
    amounts: &crate::policy::Amounts,
    text: &str,
    ctx: &Context,
) -> Option<String> {
    for caps in policy.money_mention.captures_iter(text) {
        let code = caps
            .name("sym")
            .map(|s| match s.as_str() {
                "£" => "GBP",
                "€" => "EUR",
                _ => "USD",
            })
            .or_else(|| caps.name("code").map(|c| c.as_str()))
            .or_else(|| caps.name("code2").map(|c| c.as_str()));
        let num = caps.name("num").or_else(|| caps.name("num2"));
        let frac = caps.name("frac").or_else(|| caps.name("frac2"));
        let (Some(code), Some(num)) = (code, num) else {
            continue;
        };
        let Ok(currency) = code.parse::<Currency>() else {
            continue;
        };
        let digits: String = num.as_str().chars().filter(|c| *c != ',').collect();
        let amount = match frac {
            Some(f) => format!("{digits}.{}", f.as_str()),
            None => digits,
        };
        let Ok(mentioned) = Money::parse(&amount, currency) else {
            continue;
        };
        let Some(whole) = caps.get(0) else { continue };
        let open = ctx.open_balance(currency);
        if open <= 0 {
            return Some(format!(
                "{mentioned} is mentioned but the account owes nothing in {currency}"
            ));
        }
        let (extras, fixed) = claimable_extras(policy, currency, ctx);
        if mentioned.minor > open.saturating_add(extras) {
            return Some(format!(
                "{mentioned} is more than the open balance of {}",
                Money::new(open, currency)
            ));
        }
        // Presented as the balance? Look a little way back for a balance word.
        let start = whole.start();
        let mut from = start.saturating_sub(amounts.context_chars);
        while !text.is_char_boundary(from) {
            from += 1;
        }
        let before = text.get(from..start).unwrap_or("");
        if amounts.balance_context.is_match(before) {
            let collectible = ctx.collectible_balance(currency);
            let fixed_sum: i64 = fixed.iter().sum();
            let figure_ok = mentioned.minor == open
                || mentioned.minor == collectible
                || mentioned.minor == open.saturating_add(fixed_sum)
                || fixed.contains(&mentioned.minor)
                || ctx.invoices.iter().any(|i| {
                    i.currency == currency
                        && (i.open_minor == mentioned.minor || i.amount_minor == mentioned.minor)
                });
            if !figure_ok {
                return Some(format!(
                    "{mentioned} is presented as owed but matches no ledger figure (open balance {})",
                    Money::new(open, currency)
                ));
            }
        }
    }
    None
}

fn check_overclaim(
    policy: &Policy,
    currency: Currency,
    claimed: i64,
    what: &str,
    ctx: &Context,
    d: &mut Decision,
) {
    let Some(amounts) = &policy.amounts else {
        return;
    };
    let collectible = ctx.collectible_balance(currency);
    let (extras, _) = claimable_extras(policy, currency, ctx);
    if claimed > collectible.saturating_add(extras) {
        fire(
            d,
            &amounts.meta,
            Some(format!(
                "{what} {} exceeds the collectible balance of {}",
                Money::new(claimed, currency),
                Money::new(collectible, currency)
            )),
        );
    }
}

fn pct(bps: i64) -> String {
    format!("{}.{:02}%", bps / 100, bps % 100)
}

/// The terms of `plan` that breach `t`, described.
fn breaches(plan: &argent_core::PaymentPlan, t: &Terms) -> Vec<String> {
    let mut out = Vec::new();
    let disc = plan.discount_bps();
    if disc > t.max_discount_bps {
        out.push(format!(
            "discount {} > {}",
            pct(disc),
            pct(t.max_discount_bps)
        ));
    }
    let n = plan.installments.len();
    if n > t.max_installments as usize {
        out.push(format!("{n} installments > {}", t.max_installments));
    }
    let down = plan.down_payment_bps();
    if down < t.min_down_payment_bps {
        out.push(format!(
            "down payment {} < {}",
            pct(down),
            pct(t.min_down_payment_bps)
        ));
    }
    let days = plan.length_days();
    if days > i64::from(t.max_plan_days) {
        out.push(format!("{days} days > {} days", t.max_plan_days));
    }
    out
}

fn check_negotiation(
    policy: &Policy,
    plan: &argent_core::PaymentPlan,
    ctx: &Context,
    d: &mut Decision,
) {
    let tier = ctx.customer.tier;
    let Some(range) = policy.negotiation.iter().find(|r| {
        (r.segments.is_empty() || r.segments.contains(&ctx.segment))
            && (r.tiers.is_empty() || r.tiers.contains(&tier))
    }) else {
        return;
    };
    let hard = breaches(plan, &range.ceiling);
    if !hard.is_empty() {
        d.fire(FiredRule {
            id: range.ceiling_id.clone(),
            outcome: Outcome::Deny,
            message: format!("{} ({})", range.ceiling_message, hard.join("; ")),
            citation: range.ceiling_citation.clone(),
            approvers: Vec::new(),
        });
        return;
    }
    let soft = breaches(plan, &range.within);
    if !soft.is_empty() {
        d.fire(FiredRule {
            id: range.id.clone(),
            outcome: Outcome::NeedsApproval,
            message: format!(
                "{} ({}; segment {}, tier {})",
                range.message,
                soft.join("; "),
                ctx.segment,
                tier
            ),
            citation: range.citation.clone(),
            approvers: range.approvers.clone(),
        });
    }
}

fn check_promise(policy: &Policy, date: chrono::NaiveDate, ctx: &Context, d: &mut Decision) {
    let Some(p) = &policy.promise else { return };
    let today = ctx.local_today();
    if date < today {
        fire(
            d,
            &p.meta,
            Some(format!("promised date {date} is in the past")),
        );
    } else if (date - today).num_days() > i64::from(p.max_days_ahead) {
        fire(
            d,
            &p.meta,
            Some(format!(
                "promised date {date} is more than {} days ahead",
                p.max_days_ahead
            )),
        );
    }
}

fn check_approval(policy: &Policy, action: &Action, ctx: &Context, d: &mut Decision) {
    let tool = action.tool();
    for a in policy.approval.iter().filter(|a| a.actions.contains(&tool)) {
        if !a.tiers.is_empty() && !a.tiers.contains(&ctx.customer.tier) {
            continue;
        }
        if !a.segments.is_empty() && !a.segments.contains(&ctx.segment) {
            continue;
        }
        let detail = match a.amount_over {
            None => None,
            Some(limit) => match action.principal_amount() {
                Some(m) if m.currency == limit.currency && m.minor > limit.minor => {
                    Some(format!("{m} is over the limit of {limit}"))
                }
                _ => continue,
            },
        };
        fire(d, &a.meta, detail);
    }
}
