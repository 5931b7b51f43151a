//! `evaluate`: judge one typed action in context. Pure, synchronous, no I/O.

use std::borrow::Cow;

use chrono::{Duration, Timelike};

use argent_core::{
    Action, Channel, Currency, Decision, FiredRule, Money, Outcome, PaymentPlan, ProposePlanArgs,
    SendEmailArgs, ToolName,
};

use crate::context::Context;
use crate::policy::{MessageKind, Policy, RuleMeta, Stop, StopCondition, Terms};
use crate::text;
use crate::words::{Mention, money_mentions};

/// Engine invariants that hold whatever the policy says.
pub const RULE_CUSTOMER_MISMATCH: &str = "engine.customer-mismatch";
pub const RULE_INVALID_ARGUMENTS: &str = "engine.invalid-arguments";
pub const RULE_JURISDICTION_MISMATCH: &str = "engine.jurisdiction-mismatch";
/// An email contains characters a reader cannot see (zero-width, soft hyphen, bidi
/// controls, …): content rules could be evaded with them, so the draft is refused.
pub const RULE_INVISIBLE_CHARACTERS: &str = "engine.invisible-characters";
/// A plan's stated balance is not the ledger's balance of what it covers.
pub const RULE_PLAN_BALANCE_MISMATCH: &str = "engine.plan-balance-mismatch";
/// A plan names an invoice that is not an open invoice of the customer in its currency.
pub const RULE_UNKNOWN_INVOICE: &str = "engine.unknown-invoice";
const ENGINE_CITATION: &str = "argent engine invariant";
/// The detail of a stop on a fact recognised in what the customer wrote.
const PENDING_SIGNAL: &str =
    "recognised in the customer's message; until a person confirms or clears it on /signals";

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

/// One field of an email as the content rules read it: normalised (see [`crate::text`])
/// and with the amounts it mentions.
struct Field<'a> {
    name: &'static str,
    text: Cow<'a, str>,
    mentions: Vec<Mention>,
}

impl<'a> Field<'a> {
    fn read(policy: &Policy, name: &'static str, raw: &'a str) -> Field<'a> {
        let text = text::normalize(raw);
        let mentions = money_mentions(&policy.money_mention, &text);
        Field {
            name,
            text,
            mentions,
        }
    }
}

/// A payment plan as the engine judges it: its terms against the ledger's balance of what
/// it covers, never against the balance the model states.
struct PlanTerms {
    currency: Currency,
    /// The ledger's open balance of the invoices the plan covers.
    ledger: i64,
    /// What the plan collects: down payment plus installments.
    collected: i64,
    /// What it forgives against the ledger: `ledger - collected`, at least 0.
    forgiven: i64,
    down_payment: i64,
    installments: usize,
    days: i64,
}

/// Judges `action` under `policy` given the account facts in `ctx`.
///
/// Every rule that applies is checked and every one that fires is listed; the outcome is
/// the most severe (deny > needs_approval > allow). Nothing the model wrote other than the
/// typed arguments is consulted. An email's subject and body are read normalised (no
/// invisible characters, NFKC, confusables folded to Latin); a plan is judged on the
/// ledger's balance of the invoices it covers.
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

    let email: Option<[Field<'_>; 2]> = match action {
        Action::SendEmail(e) => {
            check_invisible(e, &mut d);
            Some([
                Field::read(policy, "subject", &e.subject),
                Field::read(policy, "body", &e.body),
            ])
        }
        _ => None,
    };
    let plan: Option<(&ProposePlanArgs, PaymentPlan)> = match action {
        Action::ProposePlan(p) => p.to_plan("proposed").ok().map(|plan| (p, plan)),
        _ => None,
    };

    check_stops(policy, action, email.as_ref(), ctx, &mut d);
    if let Some(channel) = channel_of(tool) {
        check_quiet_hours(policy, tool, ctx, &mut d);
        check_frequency(policy, tool, channel, ctx, &mut d);
    }
    if let Some(fields) = &email {
        check_language(policy, fields, ctx, &mut d);
    }
    // The amount approval limits are judged on: a plan's ledger balance, else what the
    // action states (a promise's amount, a case's disputed amount).
    let mut amount = action.principal_amount();
    if let Some((args, plan)) = &plan
        && let Some(terms) = check_plan(policy, args, plan, ctx, &mut d)
    {
        amount = Some(Money::new(terms.ledger, terms.currency));
        check_negotiation(policy, &terms, ctx, &mut d);
    }
    if let Action::LogPromise(p) = action {
        check_promise(policy, p.promised_date, ctx, &mut d);
    }
    check_approval(policy, action, amount, ctx, &mut d);
    d
}

/// Refuses an email whose subject or body holds characters a reader cannot see.
fn check_invisible(email: &SendEmailArgs, d: &mut Decision) {
    const SHOWN: usize = 5;
    let mut found: Vec<String> = Vec::new();
    let mut total = 0;
    for (field, raw) in [("subject", &email.subject), ("body", &email.body)] {
        for (i, c) in text::invisible_chars(raw) {
            total += 1;
            if found.len() < SHOWN {
                found.push(format!(
                    "U+{:04X} at {field} character {}",
                    u32::from(c),
                    i + 1
                ));
            }
        }
    }
    if total > 0 {
        engine_deny(
            d,
            RULE_INVISIBLE_CHARACTERS,
            format!(
                "the draft contains {total} invisible or formatting character(s) a reader cannot see ({}{}); write it again in plain text without them",
                found.join(", "),
                if total > SHOWN { ", …" } else { "" }
            ),
        );
    }
}

/// Why `action` concerns disputed debt, if it does, whatever invoices it lists.
fn disputed_detail(
    stop: &Stop,
    action: &Action,
    email: Option<&[Field<'_>; 2]>,
    ctx: &Context,
) -> Option<String> {
    let listed: Vec<&str> = action
        .invoice_numbers()
        .iter()
        .filter(|n| ctx.invoice_paused(n))
        .map(String::as_str)
        .collect();
    if !listed.is_empty() {
        return Some(format!("paused: {}", listed.join(", ")));
    }
    if !ctx.has_disputed_debt() {
        return None;
    }
    let disputed_list = || {
        let mut names: Vec<String> = ctx.paused_invoices().map(|i| i.number.clone()).collect();
        names.dedup();
        if names.is_empty() {
            "the amount under an open dispute case".to_string()
        } else {
            names.join(", ")
        }
    };
    match action {
        Action::SendEmail(_) => email.and_then(|fields| disputed_in_text(stop, fields, ctx)),
        Action::LogPromise(p) => {
            let money = p.amount.to_money(p.currency).ok()?;
            ctx.amount_includes_disputed(money).then(|| {
                format!(
                    "the promised {money} includes disputed debt (disputed: {})",
                    disputed_list()
                )
            })
        }
        // A plan that names its invoices is judged by those (above).
        Action::ProposePlan(p) if p.invoice_numbers.is_empty() => {
            let stated = p.balance.to_money(p.currency).ok()?;
            let discount = p.discount.to_money(p.currency).ok()?;
            let collected = Money::new(stated.minor.saturating_sub(discount.minor), p.currency);
            [stated, collected]
                .into_iter()
                .find(|m| ctx.amount_includes_disputed(*m))
                .map(|m| {
                    format!(
                        "the plan's {m} includes disputed debt (disputed: {})",
                        disputed_list()
                    )
                })
        }
        _ => None,
    }
}

/// The first sentence of the email that names a disputed invoice's number or a disputed
/// amount (or more than the collectible balance) and — when the rule says what that looks
/// like — asks for payment.
fn disputed_in_text(stop: &Stop, fields: &[Field<'_>; 2], ctx: &Context) -> Option<String> {
    let paused: Vec<&str> = ctx.paused_invoices().map(|i| i.number.as_str()).collect();
    for field in fields {
        let text = field.text.as_ref();
        for range in text::sentences(text) {
            let sentence = &text[range.clone()];
            let mut named: Vec<String> = paused
                .iter()
                .filter(|n| text::names_id(sentence, n))
                .map(|n| n.to_string())
                .collect();
            named.extend(
                field
                    .mentions
                    .iter()
                    .filter(|m| range.contains(&m.start) && ctx.amount_includes_disputed(m.money))
                    .map(|m| m.money.to_string()),
            );
            if named.is_empty()
                || stop
                    .demand
                    .as_ref()
                    .is_some_and(|re| !re.is_match(sentence))
            {
                continue;
            }
            named.dedup();
            return Some(format!(
                "the {} names disputed debt ({}) while asking for payment: \"{}\"",
                field.name,
                named.join(", "),
                text::excerpt(sentence, 160)
            ));
        }
    }
    None
}

fn check_stops(
    policy: &Policy,
    action: &Action,
    email: Option<&[Field<'_>; 2]>,
    ctx: &Context,
    d: &mut Decision,
) {
    let tool = action.tool();
    let flags = ctx.customer.flags;
    let facts = &ctx.customer.facts;
    for stop in policy.stops.iter().filter(|s| s.actions.contains(&tool)) {
        let detail: Option<Option<String>> = match stop.when {
            StopCondition::CeaseContact => flags.cease_contact.then_some(None),
            StopCondition::Bankrupt => flags.bankrupt.then_some(None),
            StopCondition::AttorneyRepresented => flags.attorney_represented.then_some(None),
            StopCondition::AccountDisputed => flags.disputed.then_some(None),
            StopCondition::InvoiceDisputed => disputed_detail(stop, action, email, ctx).map(Some),
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
            StopCondition::CeaseContactPending => facts
                .cease_contact_pending
                .then_some(Some(PENDING_SIGNAL.into())),
            StopCondition::AttorneySuspected => facts.attorney_suspected.then(|| {
                Some(match &facts.attorney_name {
                    Some(name) => format!("{PENDING_SIGNAL}; attorney named: {name}"),
                    None => PENDING_SIGNAL.into(),
                })
            }),
            StopCondition::DisputePending => {
                facts.dispute_pending.then_some(Some(PENDING_SIGNAL.into()))
            }
            StopCondition::BankruptcyReported => facts
                .bankruptcy_reported
                .then_some(Some(PENDING_SIGNAL.into())),
            StopCondition::DeceasedReported => facts
                .deceased_reported
                .then_some(Some(PENDING_SIGNAL.into())),
            StopCondition::ThirdPartyWriter => facts
                .third_party_writer
                .then_some(Some(PENDING_SIGNAL.into())),
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

fn check_language(policy: &Policy, fields: &[Field<'_>; 2], ctx: &Context, d: &mut Decision) {
    // Prohibited and required patterns: one pass per (normalised) field over all of them.
    let n = policy.prohibited.len();
    let [subject_field, body_field] = fields;
    let subject = policy.text_set.matches(&subject_field.text);
    let body = policy.text_set.matches(&body_field.text);
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
    // Amounts mentioned (in figures or in words) against the ledger.
    if let Some(amounts) = &policy.amounts {
        for field in fields {
            if let Some(detail) = misstated_amount(policy, amounts, field, ctx) {
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

/// Returns why an amount in `field` misstates the debt, if one does. An amount (in figures
/// or in words) is misstated when it exceeds what the ledger says is open (plus claimable
/// statutory extras), when it is in a currency the account owes nothing in, or when it is
/// presented as the balance (a balance word shortly before it) and matches no ledger
/// figure.
fn misstated_amount(
    policy: &Policy,
    amounts: &crate::policy::Amounts,
    field: &Field<'_>,
    ctx: &Context,
) -> Option<String> {
    let text = field.text.as_ref();
    for m in &field.mentions {
        let mentioned = m.money;
        let currency = mentioned.currency;
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
        let start = m.start;
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

/// Checks a plan against the ledger: the invoices it names exist, its stated balance is the
/// ledger's balance of what it covers, it collects no more than that. Returns its terms
/// against the ledger for the negotiation ranges, unless it names unknown invoices.
fn check_plan(
    policy: &Policy,
    args: &ProposePlanArgs,
    plan: &PaymentPlan,
    ctx: &Context,
    d: &mut Decision,
) -> Option<PlanTerms> {
    let c = plan.currency;
    let ledger = match ctx.plan_basis(c, &args.invoice_numbers) {
        Ok(l) => l,
        Err(unknown) => {
            let open: Vec<&str> = ctx
                .invoices
                .iter()
                .filter(|i| i.currency == c)
                .map(|i| i.number.as_str())
                .collect();
            engine_deny(
                d,
                RULE_UNKNOWN_INVOICE,
                format!(
                    "/invoice_numbers: {} {} not an open {c} invoice of this customer (open {c} invoices: {})",
                    unknown.join(", "),
                    if unknown.len() == 1 { "is" } else { "are" },
                    if open.is_empty() {
                        "none".to_string()
                    } else {
                        open.join(", ")
                    }
                ),
            );
            return None;
        }
    };
    let covered = if args.invoice_numbers.is_empty() {
        format!("every open, undisputed {c} invoice")
    } else {
        format!("invoices {}", args.invoice_numbers.join(", "))
    };
    if plan.balance_minor != ledger {
        engine_deny(
            d,
            RULE_PLAN_BALANCE_MISMATCH,
            format!(
                "/balance: the plan states {} but the ledger's open balance of {covered} is {}; state that balance and put any reduction in /discount",
                Money::new(plan.balance_minor, c),
                Money::new(ledger, c)
            ),
        );
    }
    let collected = plan
        .installments
        .iter()
        .fold(plan.down_payment_minor, |acc, i| {
            acc.saturating_add(i.amount_minor)
        });
    if let Some(amounts) = &policy.amounts {
        let (extras, _) = claimable_extras(policy, c, ctx);
        if collected > ledger.saturating_add(extras) {
            fire(
                d,
                &amounts.meta,
                Some(format!(
                    "the plan collects {} but the ledger's open balance of {covered} is {}",
                    Money::new(collected, c),
                    Money::new(ledger, c)
                )),
            );
        }
    }
    if ledger <= 0 {
        return None;
    }
    Some(PlanTerms {
        currency: c,
        ledger,
        collected,
        forgiven: ledger.saturating_sub(collected).max(0),
        down_payment: plan.down_payment_minor,
        installments: plan.installments.len(),
        days: plan.length_days(),
    })
}

fn pct(bps: i64) -> String {
    format!("{}.{:02}%", bps / 100, bps % 100)
}

/// `num / den` in basis points, rounded up (so a breach never shows as equal to the limit).
fn bps_up(num: i64, den: i64) -> i64 {
    if den <= 0 {
        return 0;
    }
    let v = (i128::from(num) * 10_000 + i128::from(den) - 1) / i128::from(den);
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The terms of `p` that breach `t`, described. Ratios are compared exactly (cross
/// multiplied), never after rounding.
fn breaches(p: &PlanTerms, t: &Terms) -> Vec<String> {
    let mut out = Vec::new();
    let c = p.currency;
    if i128::from(p.forgiven) * 10_000 > i128::from(t.max_discount_bps) * i128::from(p.ledger) {
        out.push(format!(
            "discount {} > {} (forgives {} of the ledger balance {})",
            pct(bps_up(p.forgiven, p.ledger)),
            pct(t.max_discount_bps),
            Money::new(p.forgiven, c),
            Money::new(p.ledger, c)
        ));
    }
    if p.installments > t.max_installments as usize {
        out.push(format!(
            "{} installments > {}",
            p.installments, t.max_installments
        ));
    }
    if i128::from(p.down_payment) * 10_000
        < i128::from(t.min_down_payment_bps) * i128::from(p.collected)
    {
        let down = if p.collected > 0 {
            p.down_payment.saturating_mul(10_000) / p.collected
        } else {
            0
        };
        out.push(format!(
            "down payment {} < {}",
            pct(down),
            pct(t.min_down_payment_bps)
        ));
    }
    if p.days > i64::from(t.max_plan_days) {
        out.push(format!("{} days > {} days", p.days, t.max_plan_days));
    }
    out
}

fn check_negotiation(policy: &Policy, plan: &PlanTerms, ctx: &Context, d: &mut Decision) {
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

fn check_approval(
    policy: &Policy,
    action: &Action,
    amount: Option<Money>,
    ctx: &Context,
    d: &mut Decision,
) {
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
            Some(limit) => match amount {
                Some(m) if m.currency == limit.currency && m.minor > limit.minor => {
                    Some(format!("{m} is over the limit of {limit}"))
                }
                _ => continue,
            },
        };
        fire(d, &a.meta, detail);
    }
}
