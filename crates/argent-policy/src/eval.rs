//! `evaluate`: judge one typed action in context. Pure, synchronous, no I/O.

use std::borrow::Cow;

use chrono::{DateTime, Duration, Timelike, Utc};

use argent_core::{
    Action, Channel, Currency, Decision, FiredRule, Money, Outcome, PaymentPlan, ProposePlanArgs,
    Role, SendEmailArgs, ToolName,
};

use crate::context::Context;
use crate::policy::{MessageKind, Policy, RuleMeta, Stop, StopCondition, Terms};
use crate::scan::SetMatches;
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
/// An email tells the customer that a promise, plan or follow-up exists when none does, or
/// only a refused one.
pub const RULE_UNBACKED_CONFIRMATION: &str = "engine.unbacked-confirmation";
/// An email confirms an action with amounts or dates that action does not have.
pub const RULE_CONFIRMATION_MISMATCH: &str = "engine.confirmation-mismatch";
/// An email confirms (or offers the terms of) an action still waiting for a person: it is
/// held with that action and decided with it.
pub const RULE_HELD_WITH_ACTION: &str = "engine.held-with-action";
/// A promise with the amount, currency, date and invoices of a promise of the customer
/// that is already open: it is not recorded twice.
pub const RULE_DUPLICATE_PROMISE: &str = "engine.duplicate-promise";
/// Every engine invariant's rule id.
pub const ENGINE_RULES: &[&str] = &[
    RULE_CUSTOMER_MISMATCH,
    RULE_INVALID_ARGUMENTS,
    RULE_JURISDICTION_MISMATCH,
    RULE_INVISIBLE_CHARACTERS,
    RULE_PLAN_BALANCE_MISMATCH,
    RULE_UNKNOWN_INVOICE,
    RULE_UNBACKED_CONFIRMATION,
    RULE_CONFIRMATION_MISMATCH,
    RULE_HELD_WITH_ACTION,
    RULE_DUPLICATE_PROMISE,
];
const ENGINE_CITATION: &str = "argent engine invariant";
/// The detail of a stop on a fact recognised in what the customer wrote.
const PENDING_SIGNAL: &str =
    "recognised in the customer's message; until a person confirms or clears it on /signals";

pub(crate) fn fire(d: &mut Decision, meta: &RuleMeta, detail: Option<String>) {
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

use crate::contact::{channel_of, contact_at};

/// One field of an email as the content rules read it: normalised (see [`crate::text`]),
/// with the amounts it mentions and which of the policy's language patterns match in it
/// (one pass, read by the language and legal rules).
struct Field<'a> {
    name: &'static str,
    text: Cow<'a, str>,
    mentions: Vec<Mention>,
    language: SetMatches,
}

impl<'a> Field<'a> {
    fn read(policy: &Policy, name: &'static str, raw: &'a str) -> Field<'a> {
        let text = text::normalize(raw);
        let mentions = money_mentions(&policy.money_mention, &text);
        let language = policy.text_set.matches(&text);
        Field {
            name,
            text,
            mentions,
            language,
        }
    }

    /// Whether the policy's litigation phrase family may match in this field (false only
    /// when the language pass saw it match nowhere).
    fn may_mention_litigation(&self, policy: &Policy) -> bool {
        policy
            .litigation_at
            .is_none_or(|i| self.language.matched(i))
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
        let at = contact_at(action, ctx);
        check_quiet_hours(policy, tool, at, ctx, &mut d);
        check_frequency(policy, tool, channel, at, ctx, &mut d);
    }
    check_validation_period(policy, action, email.as_ref(), ctx, &mut d);
    if let Some(fields) = &email {
        check_language(policy, fields, ctx, &mut d);
        let [subject, body] = fields;
        crate::legal::check_email_legal(
            policy.litigation.as_ref(),
            policy.limitation.as_ref(),
            policy.customer_offer.as_ref(),
            action.invoice_numbers(),
            &[subject.text.as_ref(), body.text.as_ref()],
            &[
                subject.may_mention_litigation(policy),
                body.may_mention_litigation(policy),
            ],
            ctx,
            &mut d,
        );
        check_consistency(policy, fields, ctx, &mut d);
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
    if let Some((_, plan)) = &plan {
        crate::legal::check_plan_offer(policy.customer_offer.as_ref(), plan, ctx, &mut d);
    }
    if let Action::LogPromise(p) = action {
        check_promise(policy, p.promised_date, ctx, &mut d);
        check_duplicate_promise(p, ctx, &mut d);
    }
    check_grounding(policy, action, ctx, &mut d);
    check_approval(policy, action, amount, ctx, &mut d);
    if d.outcome != Outcome::NeedsApproval {
        d.held_with = None;
    }
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
            StopCondition::ContactPaused => facts
                .contact_paused_until
                .filter(|until| {
                    ctx.now.with_timezone(&ctx.customer.time_zone).date_naive() < *until
                })
                .map(|until| Some(format!("out of office until {until}"))),
            StopCondition::AddressUndeliverable => match action {
                Action::SendEmail(e) => facts
                    .undeliverable_emails
                    .iter()
                    .find(|a| a.eq_ignore_ascii_case(e.to.trim()))
                    .map(|a| Some(format!("{a} bounced permanently"))),
                _ => None,
            },
            StopCondition::InboundSenderNotOnFile => ctx.inbound_sender_not_on_file.then(|| {
                Some("the message this run answers came from an address not on file".to_string())
            }),
            StopCondition::InboundAuthFailed => ctx.inbound_auth_failed.then(|| {
                Some("the message this run answers failed SPF, DKIM or DMARC".to_string())
            }),
            StopCondition::RecipientNotOnFile => match action {
                Action::SendEmail(e) => (!ctx.customer.contacts.iter().any(|c| {
                    c.email
                        .as_deref()
                        .is_some_and(|m| m.eq_ignore_ascii_case(&e.to))
                }))
                .then(|| Some(format!("{} is not a contact on file", e.to))),
                _ => None,
            },
            StopCondition::InconvenientTime
            | StopCondition::WorkplaceContact
            | StopCondition::NotPreferredChannel
            | StopCondition::ValidationNoticeNotSent => {
                crate::contact::stop_detail(stop.when, action, ctx).map(Some)
            }
        };
        if let Some(detail) = detail {
            fire(d, &stop.meta, detail);
        }
    }
}

fn check_quiet_hours(
    policy: &Policy,
    tool: ToolName,
    at: DateTime<Utc>,
    ctx: &Context,
    d: &mut Decision,
) {
    let local = at.with_timezone(&ctx.customer.time_zone);
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
    at: DateTime<Utc>,
    ctx: &Context,
    d: &mut Decision,
) {
    for f in policy
        .frequency
        .iter()
        .filter(|f| f.actions.contains(&tool) && f.channels.contains(&channel))
    {
        if let Some(days) = f.after_conversation_days {
            let since = at - Duration::days(i64::from(days));
            if let Some(last) = ctx
                .prior_contacts
                .iter()
                .filter(|c| {
                    c.conversation && f.channels.contains(&c.channel) && c.at > since && c.at <= at
                })
                .map(|c| c.at)
                .max()
            {
                fire(
                    d,
                    &f.meta,
                    Some(format!(
                        "a {} conversation took place at {}, less than {days} days before this contact",
                        channel,
                        last.format("%Y-%m-%d %H:%M UTC")
                    )),
                );
                continue;
            }
        }
        let since = at - Duration::days(i64::from(f.window_days));
        let prior = ctx
            .prior_contacts
            .iter()
            .filter(|c| f.channels.contains(&c.channel) && c.at > since && c.at <= at)
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

/// The validation-period rules: an email's subject and body, or a call's script, must not
/// overshadow the right to dispute while the period runs.
fn check_validation_period(
    policy: &Policy,
    action: &Action,
    email: Option<&[Field<'_>; 2]>,
    ctx: &Context,
    d: &mut Decision,
) {
    let tool = action.tool();
    let mut rules = policy
        .validation_periods
        .iter()
        .filter(|r| r.actions.contains(&tool))
        .peekable();
    if rules.peek().is_none() || ctx.customer.facts.validation_notice.is_none() {
        return;
    }
    let script;
    let texts: Vec<(&str, &str)> = match (action, email) {
        (Action::SendEmail(_), Some([subject, body])) => vec![
            (subject.name, subject.text.as_ref()),
            (body.name, body.text.as_ref()),
        ],
        (Action::RequestCall(c), _) => {
            script = text::normalize(&c.script);
            vec![("call script", script.as_ref())]
        }
        _ => return,
    };
    for rule in rules {
        if let Some(detail) = crate::contact::overshadowing_detail(rule, &texts, action, ctx) {
            fire(d, &rule.meta, Some(detail));
        }
    }
}

fn check_language(policy: &Policy, fields: &[Field<'_>; 2], ctx: &Context, d: &mut Decision) {
    // Prohibited and required patterns: one pass per (normalised) field over all of them.
    // A phrase family contributes several patterns; its rule fires once.
    let n = policy.prohibited_of.len();
    let [subject_field, body_field] = fields;
    let subject = &subject_field.language;
    let body = &body_field.language;
    let mut fired = vec![false; policy.prohibited.len()];
    for (i, rule) in policy.prohibited_of.iter().enumerate() {
        if (subject.matched(i) || body.matched(i))
            && let Some(seen) = fired.get_mut(*rule)
        {
            *seen = true;
        }
    }
    for (meta, _) in policy.prohibited.iter().zip(&fired).filter(|(_, f)| **f) {
        fire(d, meta, None);
    }
    if let (Some(echo), Some(inbound)) = (&policy.echo, ctx.inbound_text.as_deref())
        && let Some(detail) = echoed_instruction(echo, inbound, fields)
    {
        fire(d, &echo.meta, Some(detail));
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

/// Statutory late-payment interest on one invoice, in minor units: simple interest on the
/// open amount at `rate_bps` a year for `days` days, ACT/365 (a year is 365 days, leap or
/// not), rounded down to the minor unit. `days` is the number of days from the due date
/// (not counted) to today (counted); none when not overdue. Exact: computed in `i128`;
/// `None` only when the result does not fit an `i64`.
pub fn statutory_interest(open_minor: i64, rate_bps: i64, days: i64) -> Option<i64> {
    if open_minor <= 0 || rate_bps <= 0 || days <= 0 {
        return Some(0);
    }
    let v = i128::from(open_minor)
        .checked_mul(i128::from(rate_bps))?
        .checked_mul(i128::from(days))?
        / (10_000 * 365);
    i64::try_from(v).ok()
}

/// The words of `text`, lowercased: runs of letters and digits.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether the draft repeats an instruction the customer's message holds: `min_words` or
/// more consecutive words of an inbound sentence that matches the rule's `instruction`
/// pattern appear, in order, in the subject or body. Returns the words echoed.
fn echoed_instruction(
    echo: &crate::policy::Echo,
    inbound: &str,
    fields: &[Field<'_>; 2],
) -> Option<String> {
    let inbound = text::normalize(inbound);
    let k = echo.min_words;
    let mut shingles: std::collections::HashSet<Vec<String>> = std::collections::HashSet::new();
    for range in text::sentences(&inbound) {
        let sentence = &inbound[range];
        if !echo.instruction.is_match(sentence) {
            continue;
        }
        let w = words(sentence);
        for win in w.windows(k) {
            shingles.insert(win.to_vec());
        }
    }
    if shingles.is_empty() {
        return None;
    }
    for field in fields {
        let w = words(&field.text);
        if let Some(win) = w.windows(k).find(|win| shingles.contains(*win)) {
            return Some(format!(
                "the {} repeats the instruction in the customer's message: \"{}\"",
                field.name,
                win.join(" ")
            ));
        }
    }
    None
}

/// An email may not tell the customer something happened when it has not, nor offer terms
/// no allowed or approved plan has (see [`crate::consistency`]). A confirmation or offer of
/// an action still pending approval holds the email with it (`Decision::held_with`).
fn check_consistency(policy: &Policy, fields: &[Field<'_>; 2], ctx: &Context, d: &mut Decision) {
    use crate::consistency::{
        Backing, Reading, back_confirmation, back_offer, confirmations_in, offers_in,
    };
    let mut j = Judged {
        d: &mut *d,
        held: None,
        fired: Vec::new(),
    };
    for field in fields {
        let text = field.text.as_ref();
        let in_sentence = |r: &std::ops::Range<usize>| -> Vec<&Mention> {
            field
                .mentions
                .iter()
                .filter(|m| r.contains(&m.start))
                .collect()
        };
        // One pass of the family patterns and one sentence split serve both readers.
        // The family pass was part of the field's language pass when the policy's set
        // holds the families (it does unless it failed to compile, which fails the load).
        let reading = match policy.families_at {
            Some(at) => Reading::with_matches(
                text,
                field.language.slice(at, crate::consistency::family_count()),
            ),
            None => Reading::new(text),
        };
        for c in confirmations_in(&reading) {
            let sentence = &text[c.sentence.clone()];
            let quote = text::excerpt(sentence, 160);
            match back_confirmation(ctx, c.claim, sentence, &in_sentence(&c.sentence)) {
                Backing::Backed => {}
                Backing::Pending {
                    approval_id,
                    approvers,
                    detail,
                } => j.hold(
                    approval_id,
                    approvers,
                    format!("\"{quote}\" confirms {} and {detail}", c.claim.as_str()),
                ),
                Backing::Mismatch(why) => j.engine(
                    RULE_CONFIRMATION_MISMATCH,
                    format!(
                        "the {} confirms {} with figures it does not have: {why} (\"{quote}\")",
                        field.name,
                        c.claim.as_str()
                    ),
                ),
                Backing::Unbacked(why) => j.engine(
                    RULE_UNBACKED_CONFIRMATION,
                    format!(
                        "the {} tells the customer about {} that has not happened: {why} (\"{quote}\")",
                        field.name,
                        c.claim.as_str()
                    ),
                ),
            }
        }
        let Some(rule) = &policy.offers else { continue };
        for o in offers_in(&reading) {
            let sentence = &text[o.sentence.clone()];
            let quote = text::excerpt(sentence, 160);
            match back_offer(ctx, &o, sentence, &in_sentence(&o.sentence)) {
                Backing::Backed => {}
                Backing::Pending {
                    approval_id,
                    approvers,
                    detail,
                } => j.hold(
                    approval_id,
                    approvers,
                    format!("\"{quote}\" offers {} and {detail}", o.kind.as_str()),
                ),
                Backing::Mismatch(why) => j.rule(&rule.meta, format!("{why}: \"{quote}\"")),
                Backing::Unbacked(why) => {
                    let meta = if o.clear {
                        &rule.meta
                    } else {
                        rule.ambiguous.as_ref().unwrap_or(&rule.meta)
                    };
                    j.rule(
                        meta,
                        format!(
                            "the {} offers {}{}; {why}: \"{quote}\"",
                            field.name,
                            o.kind.as_str(),
                            if o.clear { "" } else { " in ambiguous words" }
                        ),
                    );
                }
            }
        }
    }
    let held = j.held;
    d.held_with = held;
}

/// What [`check_consistency`] found so far: each rule fires once per message, and an email
/// is held with at most one pending item.
struct Judged<'d> {
    d: &'d mut Decision,
    held: Option<String>,
    fired: Vec<(String, String)>,
}

impl Judged<'_> {
    fn fire(&mut self, rule: FiredRule) {
        if self
            .fired
            .iter()
            .any(|(i, m)| *i == rule.id && *m == rule.message)
        {
            return;
        }
        self.fired.push((rule.id.clone(), rule.message.clone()));
        self.d.fire(rule);
    }

    fn engine(&mut self, id: &str, message: String) {
        self.fire(FiredRule {
            id: id.to_string(),
            outcome: Outcome::Deny,
            message,
            citation: ENGINE_CITATION.to_string(),
            approvers: Vec::new(),
        });
    }

    fn rule(&mut self, meta: &RuleMeta, detail: String) {
        let outcome = meta.effect.outcome();
        self.fire(FiredRule {
            id: meta.id.clone(),
            outcome,
            message: format!("{} ({detail})", meta.message),
            citation: meta.citation.clone(),
            approvers: if outcome == Outcome::NeedsApproval {
                meta.approvers.clone()
            } else {
                Vec::new()
            },
        });
    }

    /// Holds the email with the pending item `approval_id`; a second, different item is a
    /// deny (one email, one action to wait for).
    fn hold(&mut self, approval_id: String, approvers: Vec<Role>, detail: String) {
        match &self.held {
            Some(id) if *id == approval_id => {}
            Some(id) => {
                let message = format!(
                    "the email refers to two actions waiting for different approvals ({id}, {approval_id}); write one email per action"
                );
                self.engine(RULE_UNBACKED_CONFIRMATION, message);
            }
            None => {
                self.held = Some(approval_id.clone());
                let approvers = if approvers.is_empty() {
                    vec![Role::Collector, Role::Manager]
                } else {
                    approvers
                };
                self.fire(FiredRule {
                    id: RULE_HELD_WITH_ACTION.to_string(),
                    outcome: Outcome::NeedsApproval,
                    message: format!(
                        "the email must not go before the action it refers to is approved: {detail}; it is decided with approval {approval_id}"
                    ),
                    citation: ENGINE_CITATION.to_string(),
                    approvers,
                });
            }
        }
    }
}

/// Statutory extras a B2B creditor may claim on overdue invoices in `currency`: fixed
/// compensation per invoice (by the band of its invoiced amount) and, per invoice, simple
/// interest at base + margin on its open amount ([`statutory_interest`]), each rounded down
/// to the minor unit and then summed. Returns the total and the fixed sums, minor units.
/// A claim of exactly the open balance plus this total is allowed; one minor unit more is
/// not.
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
    let rate_bps = i64::from(ctx.base_rate_bps).saturating_add(lp.interest_over_base_bps);
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
        let days = (today - inv.due_date).num_days();
        let interest = statutory_interest(inv.open_minor, rate_bps, days).unwrap_or(i64::MAX);
        total = total.saturating_add(interest);
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
                || (extras > 0 && mentioned.minor == open.saturating_add(extras))
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

/// The within-range terms for this account: a manager's per-account limits replace the
/// pack's where set — wider or narrower — but never beyond the pack's hard ceiling, which
/// nobody may approve past (a wider limit is cut back to the ceiling; the ceiling itself is
/// judged first, unchanged).
fn account_terms(
    within: &Terms,
    ceiling: &Terms,
    limits: Option<&argent_core::facts::LimitOverride>,
) -> Terms {
    let Some(l) = limits else { return *within };
    Terms {
        max_discount_bps: l
            .max_discount_bps
            .map_or(within.max_discount_bps, i64::from)
            .min(ceiling.max_discount_bps),
        max_installments: l
            .max_installments
            .unwrap_or(within.max_installments)
            .min(ceiling.max_installments),
        min_down_payment_bps: l
            .min_down_payment_bps
            .map_or(within.min_down_payment_bps, i64::from)
            .max(ceiling.min_down_payment_bps),
        max_plan_days: l
            .max_plan_days
            .unwrap_or(within.max_plan_days)
            .min(ceiling.max_plan_days),
    }
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
    let limits = ctx.customer.facts.limits.as_ref();
    let within = account_terms(&range.within, &range.ceiling, limits);
    let soft = breaches(plan, &within);
    if !soft.is_empty() {
        let whose = if within == range.within {
            String::new()
        } else {
            "; this account's limits, set by a manager".to_string()
        };
        d.fire(FiredRule {
            id: range.id.clone(),
            outcome: Outcome::NeedsApproval,
            message: format!(
                "{} ({}; segment {}, tier {}{whose})",
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

/// Holds a promise whose amount or date the customer's message and the ledger do not give,
/// and a payment claim or dispute the message does not raise ([`crate::grounding`]): the
/// model may have made them up (an injection, an out-of-office reply, a cease-contact
/// request). A run no message started (a scheduled step) has no customer words, so such a
/// record is never grounded there. A person's action is not judged on this.
fn check_grounding(policy: &Policy, action: &Action, ctx: &Context, d: &mut Decision) {
    if ctx.by_person {
        return;
    }
    let text = ctx.inbound_text.as_deref();
    match action {
        Action::LogPromise(p) => {
            let gaps = crate::grounding::promise_gaps(text, ctx.message_day(), &ctx.invoices, p);
            if !gaps.is_empty() {
                fire(d, &policy.grounding_rules().0, Some(gaps.join("; ")));
            }
        }
        Action::OpenCase(c) => {
            if let Some(gap) = crate::grounding::case_gap(text, c) {
                fire(d, &policy.grounding_rules().1, Some(gap));
            }
        }
        _ => {}
    }
}

/// Refuses a promise that repeats one of the customer's open promises: same amount and
/// currency, same date, same invoices (in any order).
fn check_duplicate_promise(
    p: &argent_core::action::LogPromiseArgs,
    ctx: &Context,
    d: &mut Decision,
) {
    let Ok(money) = p.amount.to_money(p.currency) else {
        return;
    };
    let mut invoices: Vec<&str> = p.invoice_numbers.iter().map(String::as_str).collect();
    invoices.sort_unstable();
    invoices.dedup();
    let same = ctx.recent_actions.iter().find(|r| {
        let mut theirs: Vec<&str> = r.invoices.iter().map(String::as_str).collect();
        theirs.sort_unstable();
        theirs.dedup();
        r.kind == crate::recent::RecentKind::Promise
            && r.status == crate::recent::RecentStatus::Executed
            && r.currency == Some(p.currency)
            && r.amount_minor == Some(money.minor)
            && r.dates.contains(&p.promised_date)
            && theirs == invoices
    });
    if let Some(r) = same {
        let made =
            r.at.map(|at| format!(", recorded {}", at.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default();
        engine_deny(
            d,
            RULE_DUPLICATE_PROMISE,
            format!(
                "the customer already has an open promise of {money} on {}{}{made}: it is not recorded twice",
                p.promised_date,
                if invoices.is_empty() {
                    String::new()
                } else {
                    format!(" for {}", invoices.join(", "))
                }
            ),
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
