//! Policy documents: the TOML form, its validation (JSON Schema, then semantic checks) and
//! the compiled [`Policy`] the engine evaluates (regexes compiled once, at load).

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use chrono::NaiveTime;
use regex::Regex;
use serde::Deserialize;

use argent_core::{Channel, Currency, Jurisdiction, Money, RiskSegment, Role, Tier, ToolName};

use crate::error::{KeyProblem, PolicyError, line_col, pointer_to_key};
use crate::scan::SetScan;

/// The JSON Schema every policy document must satisfy (policies/policy.schema.json).
pub const POLICY_SCHEMA: &str = include_str!("../../../policies/policy.schema.json");

fn schema_validator() -> Result<&'static jsonschema::Validator, String> {
    static V: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    V.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(POLICY_SCHEMA).map_err(|e| format!("policy.schema.json: {e}"))?;
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|e| format!("policy.schema.json: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// What a rule does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    NeedsApproval,
    Deny,
}

impl Effect {
    pub fn outcome(self) -> argent_core::Outcome {
        match self {
            Effect::NeedsApproval => argent_core::Outcome::NeedsApproval,
            Effect::Deny => argent_core::Outcome::Deny,
        }
    }
}

/// The fields every rule has: what it is, why, and what happens when it fires.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RuleMeta {
    pub id: String,
    pub effect: Effect,
    pub message: String,
    pub citation: String,
    /// Who may approve, for `needs_approval` rules.
    #[serde(default)]
    pub approvers: Vec<Role>,
}

/// The account condition a contact stop looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopCondition {
    CeaseContact,
    Bankrupt,
    AttorneyRepresented,
    /// The customer disputes the debt as a whole.
    AccountDisputed,
    /// The action concerns disputed debt, whatever invoices it lists: it names an invoice
    /// whose collection is paused (disputed, or under an open dispute case); an email
    /// names such an invoice's number or a disputed amount (or the total that includes
    /// it) in a sentence that asks for payment (the rule's `demand` pattern); a promise or
    /// plan is for an amount that includes disputed debt.
    InvoiceDisputed,
    /// The recipient opted out of the action's channel.
    ChannelOptedOut,
    /// The recipient is not a contact on file (third-party disclosure risk).
    RecipientNotOnFile,
    /// The contact (an email now, a call at its `not_before`) falls in a window of the
    /// customer's local day they said is inconvenient (`facts.inconvenient_times`).
    InconvenientTime,
    /// An email to an address in `facts.workplace_addresses` while
    /// `facts.no_workplace_contact` is set.
    WorkplaceContact,
    /// The action contacts the customer on a channel other than `facts.preferred_channel`.
    NotPreferredChannel,
    /// No validation notice is recorded (`facts.validation_notice`) and no initial
    /// communication (which must carry the validation information) has been sent.
    ValidationNoticeNotSent,
    // What the customer said, recognised by `crate::inbound` and not yet confirmed or
    // cleared by a person (`argent_core::facts::AccountFacts`).
    /// The customer asked us to stop contacting them (pending confirmation).
    CeaseContactPending,
    /// The customer mentioned their lawyer (representation suspected, not confirmed).
    AttorneySuspected,
    /// The customer disputed the debt or asked for proof (pending confirmation).
    DisputePending,
    /// The customer reported a bankruptcy or insolvency (pending confirmation).
    BankruptcyReported,
    /// Someone wrote that the debtor has died (pending confirmation).
    DeceasedReported,
    /// The last message came from someone other than the debtor (pending review).
    ThirdPartyWriter,
    // Recognised in inbound mail by code (`argent_agent::mail_in`).
    /// The customer's out-of-office reply says they are away until a date
    /// (`facts.contact_paused_until`) that has not come yet in their time zone.
    ContactPaused,
    /// An email to an address that bounced permanently (`facts.undeliverable_emails`).
    AddressUndeliverable,
    /// The run answers a message whose sender is not a contact on file, though it came in
    /// the customer's thread (`Context::inbound_sender_not_on_file`).
    InboundSenderNotOnFile,
    /// The run answers a message whose SPF, DKIM or DMARC check failed
    /// (`Context::inbound_auth_failed`): the sender may be forged.
    InboundAuthFailed,
}

#[derive(Clone, Debug, Deserialize)]
struct StopDoc {
    #[serde(flatten)]
    meta: RuleMeta,
    when: StopCondition,
    actions: Vec<ToolName>,
    /// `invoice_disputed` only: what a sentence asking for payment looks like. Without
    /// it, any email sentence naming disputed debt fires the rule.
    #[serde(default)]
    demand: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
struct QuietHoursDoc {
    #[serde(flatten)]
    meta: RuleMeta,
    earliest: String,
    latest: String,
    #[serde(default = "contact_actions")]
    actions: Vec<ToolName>,
}

#[derive(Clone, Debug, Deserialize)]
struct FrequencyDoc {
    #[serde(flatten)]
    meta: RuleMeta,
    channels: Vec<Channel>,
    max: u32,
    window_days: u32,
    /// Also fires when a conversation on one of `channels` took place less than this many
    /// days before the contact (Regulation F: no call within 7 days after a conversation).
    #[serde(default)]
    after_conversation_days: Option<u32>,
    #[serde(default = "contact_actions")]
    actions: Vec<ToolName>,
}

/// A prohibited-language rule: one `pattern`, or a maintained phrase family (`patterns`,
/// each a phrasing of the same meaning). Every pattern goes into the one language pass
/// (`crate::scan::SetScan`).
#[derive(Clone, Debug, Deserialize)]
struct PatternDoc {
    #[serde(flatten)]
    meta: RuleMeta,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    patterns: Vec<String>,
}

/// Echoing the customer's instruction back: the inbound message holds an instruction
/// (`instruction`, e.g. "ignore previous instructions", "mark the account settled") and the
/// draft repeats `min_words` or more consecutive words of the sentence that holds it.
#[derive(Clone, Debug, Deserialize)]
struct EchoDoc {
    #[serde(flatten)]
    meta: RuleMeta,
    instruction: String,
    #[serde(default = "default_echo_words")]
    min_words: usize,
}

/// The model-based content check's rule: what its hold is called and who may release it.
#[derive(Clone, Debug, Deserialize)]
struct ContentCheckDoc {
    #[serde(flatten)]
    meta: RuleMeta,
}

/// The rules a promise, payment claim or dispute the customer's words do not give is held
/// under (`[grounding.promise]`, `[grounding.case]`; see [`crate::grounding`]).
#[derive(Clone, Debug, Default, Deserialize)]
struct GroundingDoc {
    #[serde(default)]
    promise: Option<RuleMeta>,
    #[serde(default)]
    case: Option<RuleMeta>,
}

/// Which communications a required disclosure applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// The first communication with the debtor about the debt.
    Initial,
    /// Every later communication.
    Subsequent,
    Any,
}

#[derive(Clone, Debug, Deserialize)]
struct RequiredDoc {
    #[serde(flatten)]
    meta: RuleMeta,
    pattern: String,
    kind: MessageKind,
    #[serde(default = "email_only")]
    channels: Vec<Channel>,
}

#[derive(Clone, Debug, Deserialize)]
struct AmountsDoc {
    #[serde(flatten)]
    meta: RuleMeta,
    balance_context: String,
    #[serde(default = "default_context_chars")]
    context_chars: usize,
}

#[derive(Clone, Debug, Deserialize)]
struct OffersDoc {
    #[serde(flatten)]
    meta: RuleMeta,
    #[serde(default)]
    ambiguous: Option<RuleMeta>,
}

#[derive(Clone, Debug, Deserialize)]
struct CeilingDoc {
    id: String,
    message: String,
    citation: String,
    max_discount_percent: f64,
    max_installments: u32,
    min_down_payment_percent: f64,
    max_plan_days: u32,
}

#[derive(Clone, Debug, Deserialize)]
struct RangeDoc {
    id: String,
    message: String,
    citation: String,
    approvers: Vec<Role>,
    #[serde(default)]
    segments: Vec<RiskSegment>,
    #[serde(default)]
    tiers: Vec<Tier>,
    max_discount_percent: f64,
    max_installments: u32,
    min_down_payment_percent: f64,
    max_plan_days: u32,
    ceiling: CeilingDoc,
}

#[derive(Clone, Debug, Deserialize)]
struct ApprovalDoc {
    #[serde(flatten)]
    meta: RuleMeta,
    actions: Vec<ToolName>,
    #[serde(default)]
    tiers: Vec<Tier>,
    #[serde(default)]
    segments: Vec<RiskSegment>,
    #[serde(default)]
    amount_over: Option<String>,
    #[serde(default)]
    currency: Option<Currency>,
}

#[derive(Clone, Debug, Deserialize)]
struct PromiseDoc {
    #[serde(flatten)]
    meta: RuleMeta,
    max_days_ahead: u32,
}

#[derive(Clone, Debug, Deserialize)]
struct BandDoc {
    #[serde(default)]
    below: Option<String>,
    amount: String,
}

#[derive(Clone, Debug, Deserialize)]
struct CompensationDoc {
    currency: Currency,
    bands: Vec<BandDoc>,
}

#[derive(Clone, Debug, Deserialize)]
struct LatePaymentDoc {
    interest_over_base_percent: f64,
    compensation: Vec<CompensationDoc>,
}

#[derive(Clone, Debug, Deserialize)]
struct PolicyDoc {
    id: String,
    title: String,
    version: String,
    jurisdiction: Jurisdiction,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    stop: Vec<StopDoc>,
    #[serde(default)]
    quiet_hours: Vec<QuietHoursDoc>,
    #[serde(default)]
    frequency: Vec<FrequencyDoc>,
    #[serde(default)]
    prohibited: Vec<PatternDoc>,
    #[serde(default)]
    echo: Option<EchoDoc>,
    #[serde(default)]
    content_check: Option<ContentCheckDoc>,
    #[serde(default)]
    grounding: Option<GroundingDoc>,
    #[serde(default)]
    required: Vec<RequiredDoc>,
    #[serde(default)]
    amounts: Option<AmountsDoc>,
    #[serde(default)]
    offers: Option<OffersDoc>,
    #[serde(default)]
    negotiation: Vec<RangeDoc>,
    #[serde(default)]
    approval: Vec<ApprovalDoc>,
    #[serde(default)]
    promise: Option<PromiseDoc>,
    #[serde(default)]
    late_payment: Option<LatePaymentDoc>,
    // Money and legal facts (crate::legal).
    #[serde(default)]
    litigation: Option<crate::legal::LitigationDoc>,
    #[serde(default)]
    limitation: Option<crate::legal::LimitationDoc>,
    #[serde(default)]
    customer_offer: Option<crate::legal::OfferDoc>,
    #[serde(default)]
    validation_period: Vec<crate::contact::ValidationPeriodDoc>,
}

fn contact_actions() -> Vec<ToolName> {
    vec![ToolName::SendEmail]
}
fn email_only() -> Vec<Channel> {
    vec![Channel::Email]
}
fn default_context_chars() -> usize {
    48
}
fn default_echo_words() -> usize {
    6
}

// ---------------------------------------------------------------------------------------
// Compiled form.

#[derive(Clone, Debug)]
pub(crate) struct Stop {
    pub meta: RuleMeta,
    pub when: StopCondition,
    pub actions: Vec<ToolName>,
    pub demand: Option<Regex>,
}

#[derive(Clone, Debug)]
pub(crate) struct QuietHours {
    pub meta: RuleMeta,
    pub earliest: NaiveTime,
    pub latest: NaiveTime,
    pub actions: Vec<ToolName>,
}

#[derive(Clone, Debug)]
pub(crate) struct Frequency {
    pub meta: RuleMeta,
    pub channels: Vec<Channel>,
    pub max: u32,
    pub window_days: u32,
    pub after_conversation_days: Option<u32>,
    pub actions: Vec<ToolName>,
}

#[derive(Clone, Debug)]
pub(crate) struct Required {
    pub meta: RuleMeta,
    pub kind: MessageKind,
    pub channels: Vec<Channel>,
}

#[derive(Clone, Debug)]
pub(crate) struct Echo {
    pub meta: RuleMeta,
    pub instruction: Regex,
    pub min_words: usize,
}

#[derive(Clone, Debug)]
pub(crate) struct Amounts {
    pub meta: RuleMeta,
    pub balance_context: Regex,
    pub context_chars: usize,
}

/// Terms offered in an email: `meta` fires on a clear offer no allowed or approved plan
/// backs (or that states other terms than the plan), `ambiguous` on hedged wording.
#[derive(Clone, Debug)]
pub(crate) struct Offers {
    pub meta: RuleMeta,
    pub ambiguous: Option<RuleMeta>,
}

/// Plan terms in basis points and counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Terms {
    pub max_discount_bps: i64,
    pub max_installments: u32,
    pub min_down_payment_bps: i64,
    pub max_plan_days: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct Range {
    pub id: String,
    pub message: String,
    pub citation: String,
    pub approvers: Vec<Role>,
    pub segments: Vec<RiskSegment>,
    pub tiers: Vec<Tier>,
    pub within: Terms,
    pub ceiling_id: String,
    pub ceiling_message: String,
    pub ceiling_citation: String,
    pub ceiling: Terms,
}

#[derive(Clone, Debug)]
pub(crate) struct Approval {
    pub meta: RuleMeta,
    pub actions: Vec<ToolName>,
    pub tiers: Vec<Tier>,
    pub segments: Vec<RiskSegment>,
    pub amount_over: Option<Money>,
}

#[derive(Clone, Debug)]
pub(crate) struct PromiseRule {
    pub meta: RuleMeta,
    pub max_days_ahead: u32,
}

/// Fixed compensation bands for one currency: (exclusive upper bound of the debt, sum).
#[derive(Clone, Debug)]
pub(crate) struct Compensation {
    pub currency: Currency,
    pub bands: Vec<(Option<i64>, i64)>,
}

#[derive(Clone, Debug)]
pub(crate) struct LatePayment {
    pub interest_over_base_bps: i64,
    pub compensation: Vec<Compensation>,
}

/// A validated, compiled policy document. Cheap to share; evaluation never allocates
/// regexes.
/// A document that is not TOML (or whose header does not read), named at its line and
/// column.
pub(crate) fn toml_error(text: &str, file: &Path, e: &toml::de::Error) -> PolicyError {
    PolicyError::invalid(
        file,
        toml_at(text, e),
        format!("not valid TOML: {}", e.message()),
    )
}

/// Where in `text` a TOML error is, as the key of its problem: `(line L, column C)`, or
/// empty when the error has no position.
pub(crate) fn toml_at(text: &str, e: &toml::de::Error) -> String {
    e.span()
        .map(|s| {
            let (l, c) = line_col(text, s.start);
            format!("(line {l}, column {c})")
        })
        .unwrap_or_default()
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub id: String,
    pub title: String,
    pub version: String,
    pub jurisdiction: Jurisdiction,
    pub(crate) stops: Vec<Stop>,
    pub(crate) quiet_hours: Vec<QuietHours>,
    pub(crate) frequency: Vec<Frequency>,
    pub(crate) prohibited: Vec<RuleMeta>,
    /// For each prohibited pattern in `text_set` (the first `prohibited_of.len()`), the
    /// index of its rule in `prohibited`: a family contributes several patterns.
    pub(crate) prohibited_of: Vec<usize>,
    /// Prohibited patterns followed by required-disclosure patterns (and the litigation
    /// phrase family, at `litigation_at`), matched in one pass over each field.
    pub(crate) text_set: SetScan,
    pub(crate) litigation_at: Option<usize>,
    /// Where the consistency families' patterns start in `text_set` (they follow the
    /// litigation family), so a field's one language pass answers for them too.
    pub(crate) families_at: Option<usize>,
    pub(crate) echo: Option<Echo>,
    pub(crate) content_check: Option<RuleMeta>,
    /// `[grounding.promise]` and `[grounding.case]`, when the document sets them (else the
    /// defaults of [`Policy::grounding_rules`]).
    pub(crate) grounding_promise: Option<RuleMeta>,
    pub(crate) grounding_case: Option<RuleMeta>,
    pub(crate) required: Vec<Required>,
    pub(crate) amounts: Option<Amounts>,
    pub(crate) offers: Option<Offers>,
    pub(crate) money_mention: Regex,
    pub(crate) negotiation: Vec<Range>,
    pub(crate) approval: Vec<Approval>,
    pub(crate) promise: Option<PromiseRule>,
    pub(crate) late_payment: Option<LatePayment>,
    // Money and legal facts (crate::legal).
    pub(crate) litigation: Option<crate::legal::Litigation>,
    pub(crate) limitation: Option<crate::legal::Limitation>,
    pub(crate) customer_offer: Option<crate::legal::OfferRule>,
    pub(crate) validation_periods: Vec<crate::contact::ValidationPeriod>,
}

impl Policy {
    /// Parses and validates a policy document. `file` is only used to name the source in
    /// errors.
    pub fn from_toml_str(text: &str, file: &Path) -> Result<Policy, PolicyError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| toml_error(text, file, &e))?;
        let json = serde_json::to_value(&table)
            .map_err(|e| PolicyError::invalid(file, "", format!("cannot convert: {e}")))?;
        let validator = schema_validator().map_err(|e| PolicyError::invalid(file, "", e))?;
        let problems: Vec<KeyProblem> = validator
            .iter_errors(&json)
            .map(|e| KeyProblem {
                key: pointer_to_key(e.instance_path().as_str()),
                problem: e.to_string(),
            })
            .collect();
        if !problems.is_empty() {
            return Err(PolicyError::Invalid {
                file: file.to_path_buf(),
                problems,
            });
        }
        let doc: PolicyDoc = serde_json::from_value(json)
            .map_err(|e| PolicyError::invalid(file, "", e.to_string()))?;
        compile(doc).map_err(|problems| PolicyError::Invalid {
            file: file.to_path_buf(),
            problems,
        })
    }

    /// Reads and validates one policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Policy::from_toml_str(&text, path)
    }

    /// Ids of every rule in the document.
    pub fn rule_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        ids.extend(self.stops.iter().map(|r| r.meta.id.as_str()));
        ids.extend(self.quiet_hours.iter().map(|r| r.meta.id.as_str()));
        ids.extend(self.frequency.iter().map(|r| r.meta.id.as_str()));
        ids.extend(self.prohibited.iter().map(|r| r.id.as_str()));
        ids.extend(self.required.iter().map(|r| r.meta.id.as_str()));
        ids.extend(self.amounts.iter().map(|r| r.meta.id.as_str()));
        if let Some(o) = &self.offers {
            ids.push(&o.meta.id);
            ids.extend(o.ambiguous.iter().map(|a| a.id.as_str()));
        }
        for r in &self.negotiation {
            ids.push(&r.id);
            ids.push(&r.ceiling_id);
        }
        ids.extend(self.approval.iter().map(|r| r.meta.id.as_str()));
        ids.extend(self.promise.iter().map(|r| r.meta.id.as_str()));
        ids.extend(self.grounding_promise.iter().map(|r| r.id.as_str()));
        ids.extend(self.grounding_case.iter().map(|r| r.id.as_str()));
        ids.extend(self.legal_rules().into_iter().map(|r| r.id.as_str()));
        ids.extend(self.validation_periods.iter().map(|r| r.meta.id.as_str()));
        ids
    }
}

impl Policy {
    /// Every rule of the document with what it does, why and who may approve it, in
    /// document order (a negotiation range gives two: the range and its ceiling).
    pub fn rules(&self) -> Vec<RuleMeta> {
        let mut out: Vec<RuleMeta> = Vec::new();
        out.extend(self.stops.iter().map(|r| r.meta.clone()));
        out.extend(self.quiet_hours.iter().map(|r| r.meta.clone()));
        out.extend(self.frequency.iter().map(|r| r.meta.clone()));
        out.extend(self.prohibited.iter().cloned());
        out.extend(self.echo.iter().map(|r| r.meta.clone()));
        out.push(self.content_check_rule());
        out.extend(self.required.iter().map(|r| r.meta.clone()));
        out.extend(self.amounts.iter().map(|r| r.meta.clone()));
        if let Some(o) = &self.offers {
            out.push(o.meta.clone());
            out.extend(o.ambiguous.iter().cloned());
        }
        for r in &self.negotiation {
            out.push(RuleMeta {
                id: r.id.clone(),
                effect: Effect::NeedsApproval,
                message: r.message.clone(),
                citation: r.citation.clone(),
                approvers: r.approvers.clone(),
            });
            out.push(RuleMeta {
                id: r.ceiling_id.clone(),
                effect: Effect::Deny,
                message: r.ceiling_message.clone(),
                citation: r.ceiling_citation.clone(),
                approvers: Vec::new(),
            });
        }
        out.extend(self.approval.iter().map(|r| r.meta.clone()));
        out.extend(self.promise.iter().map(|r| r.meta.clone()));
        let (promise, case) = self.grounding_rules();
        out.push(promise);
        out.push(case);
        out.extend(self.validation_periods.iter().map(|r| r.meta.clone()));
        out.extend(self.legal_rules().into_iter().cloned());
        out
    }

    /// The rules of the money-and-legal-facts sections, in document order.
    fn legal_rules(&self) -> Vec<&RuleMeta> {
        let mut out: Vec<&RuleMeta> = Vec::new();
        if let Some(l) = &self.litigation {
            out.push(&l.meta);
            out.extend(l.authorised.iter());
        }
        if let Some(l) = &self.limitation {
            out.push(&l.meta);
            out.extend(l.disclosure.iter().map(|d| &d.meta));
        }
        out.extend(self.customer_offer.iter().map(|o| &o.meta));
        out
    }

    /// The rule the model-based content check holds a draft under (always
    /// `needs_approval`): the document's `[content_check]`, else `<id>.content-check`
    /// releasable by a collector, manager or admin.
    pub fn content_check_rule(&self) -> RuleMeta {
        self.content_check.clone().unwrap_or_else(|| RuleMeta {
            id: format!("{}.content-check", self.id),
            effect: Effect::NeedsApproval,
            message:
                "The compliance check flagged this draft; a person must read it before it is sent."
                    .into(),
            citation: "House compliance procedure: second-line content check".into(),
            approvers: vec![Role::Collector, Role::Manager, Role::Admin],
        })
    }

    /// The rules an ungrounded promise and an ungrounded payment claim or dispute are held
    /// under ([`crate::grounding`]): the document's `[grounding.promise]` and
    /// `[grounding.case]`, else `<id>.ungrounded-promise` and `<id>.ungrounded-case`, both
    /// `needs_approval` by a collector, manager or admin. Grounding always applies: a
    /// document without the section gets these defaults, never no check.
    pub fn grounding_rules(&self) -> (RuleMeta, RuleMeta) {
        let default = |suffix: &str, what: &str| RuleMeta {
            id: format!("{}.{suffix}", self.id),
            effect: Effect::NeedsApproval,
            message: format!(
                "{what} the customer's message does not give: a person must read the message before it is recorded."
            ),
            citation: "House procedure: a record of what the customer said must be in their words"
                .into(),
            approvers: vec![Role::Collector, Role::Manager, Role::Admin],
        };
        (
            self.grounding_promise.clone().unwrap_or_else(|| {
                default(
                    "ungrounded-promise",
                    "A promise to pay with an amount or date",
                )
            }),
            self.grounding_case
                .clone()
                .unwrap_or_else(|| default("ungrounded-case", "A payment claim or dispute")),
        )
    }

    /// The rule with this id, if the document has one.
    pub fn rule(&self, id: &str) -> Option<RuleMeta> {
        self.rules().into_iter().find(|r| r.id == id)
    }
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::NeedsApproval => "needs_approval",
            Effect::Deny => "deny",
        }
    }
}

/// Collects semantic problems with key paths.
pub(crate) struct Checker {
    pub(crate) problems: Vec<KeyProblem>,
    ids: HashSet<String>,
}

impl Checker {
    pub(crate) fn new() -> Checker {
        Checker {
            problems: Vec::new(),
            ids: HashSet::new(),
        }
    }

    pub(crate) fn problem(&mut self, key: String, problem: impl Into<String>) {
        self.problems.push(KeyProblem {
            key,
            problem: problem.into(),
        });
    }

    fn id(&mut self, key: String, id: &str) {
        if !self.ids.insert(id.to_string()) {
            self.problem(key, format!("rule id '{id}' is used more than once"));
        }
    }

    pub(crate) fn meta(&mut self, key: &str, meta: &RuleMeta) {
        self.id(format!("{key}.id"), &meta.id);
        match meta.effect {
            Effect::NeedsApproval if meta.approvers.is_empty() => self.problem(
                format!("{key}.approvers"),
                "a needs_approval rule must name at least one role that may approve",
            ),
            Effect::Deny if !meta.approvers.is_empty() => self.problem(
                format!("{key}.approvers"),
                "a deny rule cannot have approvers: a deny is final",
            ),
            _ => {}
        }
    }

    pub(crate) fn regex(&mut self, key: String, pattern: &str) -> Option<Regex> {
        match regex::RegexBuilder::new(pattern)
            .size_limit(1 << 22)
            .build()
        {
            Ok(r) => Some(r),
            Err(e) => {
                self.problem(key, format!("pattern does not compile: {e}"));
                None
            }
        }
    }

    /// Whether `pattern` is a valid regular expression, checked by parsing it (the
    /// syntax `regex` accepts, with its defaults), not by compiling it: for a pattern
    /// compiled later with others (the language set, a phrase family), where compiling it
    /// alone as well cost most of a policy's compile time. A pattern that parses but is too
    /// big is reported when its set is compiled (see [`Checker::name_oversized`]).
    pub(crate) fn pattern(&mut self, key: String, pattern: &str) -> bool {
        match regex_automata::util::syntax::parse(pattern) {
            Ok(_) => true,
            Err(e) => {
                self.problem(key, format!("pattern does not compile: {e}"));
                false
            }
        }
    }

    /// After a set of parsed patterns failed to compile: compiles each alone, so the ones
    /// that do not compile (too big) are reported under their own keys; whether any was.
    pub(crate) fn name_oversized(&mut self, keyed: &[(String, String)]) -> bool {
        let before = self.problems.len();
        for (key, pattern) in keyed {
            self.regex(key.clone(), pattern);
        }
        self.problems.len() > before
    }

    fn percent(&mut self, key: String, v: f64) -> i64 {
        let bps = (v * 100.0).round();
        if !(0.0..=100.0).contains(&v) || (v * 100.0 - bps).abs() > 1e-6 {
            self.problem(
                key,
                format!("{v} is not a percentage between 0 and 100 with at most 2 decimals"),
            );
            return 0;
        }
        bps as i64
    }

    fn time(&mut self, key: String, s: &str) -> NaiveTime {
        match NaiveTime::parse_from_str(s, "%H:%M") {
            Ok(t) => t,
            Err(_) => {
                self.problem(key, format!("'{s}' is not a time of day HH:MM"));
                NaiveTime::MIN
            }
        }
    }

    fn money(&mut self, key: String, s: &str, currency: Currency) -> i64 {
        match Money::parse(s, currency) {
            Ok(m) if m.minor >= 0 => m.minor,
            Ok(_) => {
                self.problem(key, "an amount must not be negative");
                0
            }
            Err(e) => {
                self.problem(key, e.to_string());
                0
            }
        }
    }

    fn terms(&mut self, key: &str, disc: f64, inst: u32, down: f64, days: u32) -> Terms {
        let t = Terms {
            max_discount_bps: self.percent(format!("{key}max_discount_percent"), disc),
            max_installments: inst,
            min_down_payment_bps: self.percent(format!("{key}min_down_payment_percent"), down),
            max_plan_days: days,
        };
        if inst == 0 {
            self.problem(format!("{key}max_installments"), "must be at least 1");
        }
        if days == 0 {
            self.problem(format!("{key}max_plan_days"), "must be at least 1");
        }
        t
    }
}

/// The language set's compiled size limit (as `regex::RegexSetBuilder::size_limit`).
const LANGUAGE_SET_BYTES: usize = 1 << 25;

/// After the language set failed to compile (`error`): the problems that name why. Each
/// pattern a document gave (`keys[i]` for `patterns[i]`; the ones after are the
/// pack's own and compiled before) is parsed alone, and a syntax error is reported under
/// its key; the ones that parse are compiled as a set again and, if that fails too, each
/// alone, so one too big is named (else the set as a whole is). What a policy with one bad
/// pattern reports is what it reported when every pattern was parsed before the set was
/// compiled; a policy whose set compiles has parsed no pattern twice.
fn name_bad_patterns(ck: &mut Checker, keys: &[String], patterns: &[String], error: String) {
    let mut keyed: Vec<(String, String)> = Vec::with_capacity(patterns.len());
    let mut rest: Vec<&String> = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        match keys.get(i) {
            Some(key) => {
                if ck.pattern(key.clone(), pattern) {
                    keyed.push((key.clone(), pattern.clone()));
                }
            }
            None => rest.push(pattern),
        }
    }
    let valid: Vec<&String> = keyed.iter().map(|(_, p)| p).chain(rest).collect();
    let error = if valid.len() == patterns.len() {
        error
    } else {
        match SetScan::new(&valid, LANGUAGE_SET_BYTES) {
            Ok(_) => return,
            Err(e) => e,
        }
    };
    if !ck.name_oversized(&keyed) {
        ck.problem(
            "prohibited".into(),
            format!("language patterns do not compile together: {error}"),
        );
    }
}

fn compile(doc: PolicyDoc) -> Result<Policy, Vec<KeyProblem>> {
    let mut ck = Checker {
        problems: Vec::new(),
        ids: HashSet::new(),
    };

    let mut stops = Vec::new();
    for (i, s) in doc.stop.into_iter().enumerate() {
        ck.meta(&format!("stop[{i}]"), &s.meta);
        if s.actions.is_empty() {
            ck.problem(format!("stop[{i}].actions"), "must name at least one tool");
        }
        let demand = match &s.demand {
            Some(_) if s.when != StopCondition::InvoiceDisputed => {
                ck.problem(
                    format!("stop[{i}].demand"),
                    "only an invoice_disputed stop has a demand pattern",
                );
                None
            }
            Some(p) => ck.regex(format!("stop[{i}].demand"), p),
            None => None,
        };
        stops.push(Stop {
            meta: s.meta,
            when: s.when,
            actions: s.actions,
            demand,
        });
    }

    let mut quiet_hours = Vec::new();
    for (i, q) in doc.quiet_hours.into_iter().enumerate() {
        let key = format!("quiet_hours[{i}]");
        ck.meta(&key, &q.meta);
        let earliest = ck.time(format!("{key}.earliest"), &q.earliest);
        let latest = ck.time(format!("{key}.latest"), &q.latest);
        if earliest >= latest {
            ck.problem(
                format!("{key}.latest"),
                format!(
                    "latest ({}) must be after earliest ({})",
                    q.latest, q.earliest
                ),
            );
        }
        quiet_hours.push(QuietHours {
            meta: q.meta,
            earliest,
            latest,
            actions: q.actions,
        });
    }

    let mut frequency = Vec::new();
    for (i, f) in doc.frequency.into_iter().enumerate() {
        let key = format!("frequency[{i}]");
        ck.meta(&key, &f.meta);
        if f.max == 0 {
            ck.problem(
                format!("{key}.max"),
                "must be at least 1 (use a stop rule to forbid contact)",
            );
        }
        if f.window_days == 0 || f.window_days > 366 {
            ck.problem(
                format!("{key}.window_days"),
                format!("{} is not between 1 and 366", f.window_days),
            );
        }
        if f.channels.is_empty() {
            ck.problem(format!("{key}.channels"), "must name at least one channel");
        }
        if let Some(n) = f.after_conversation_days
            && (n == 0 || n > 366)
        {
            ck.problem(
                format!("{key}.after_conversation_days"),
                format!("{n} is not between 1 and 366"),
            );
        }
        frequency.push(Frequency {
            meta: f.meta,
            channels: f.channels,
            max: f.max,
            window_days: f.window_days,
            after_conversation_days: f.after_conversation_days,
            actions: f.actions,
        });
    }

    let mut prohibited = Vec::new();
    let mut prohibited_of = Vec::new();
    let mut patterns = Vec::new();
    // The key of each of `patterns` a document gave (the ones before `litigation_at`).
    let mut pattern_keys: Vec<String> = Vec::new();
    for (i, p) in doc.prohibited.into_iter().enumerate() {
        let key = format!("prohibited[{i}]");
        ck.meta(&key, &p.meta);
        let family: Vec<(String, String)> = match (p.pattern, p.patterns.is_empty()) {
            (Some(one), true) => vec![(format!("{key}.pattern"), one)],
            (None, false) => p
                .patterns
                .into_iter()
                .enumerate()
                .map(|(j, pat)| (format!("{key}.patterns[{j}]"), pat))
                .collect(),
            (Some(_), false) => {
                ck.problem(key, "give either pattern or patterns, not both");
                continue;
            }
            (None, true) => {
                ck.problem(
                    key,
                    "a prohibited rule needs a pattern or a list of patterns",
                );
                continue;
            }
        };
        // Not parsed here: the language set below compiles every pattern, and only when it
        // does not are they parsed one by one to name the bad ones (`name_bad_patterns`).
        let index = prohibited.len();
        for (k, pat) in family {
            pattern_keys.push(k);
            patterns.push(pat);
            prohibited_of.push(index);
        }
        prohibited.push(p.meta);
    }

    let echo = doc.echo.and_then(|e| {
        ck.meta("echo", &e.meta);
        if !(3..=40).contains(&e.min_words) {
            ck.problem("echo.min_words".into(), "must be between 3 and 40");
        }
        ck.regex("echo.instruction".into(), &e.instruction)
            .map(|instruction| Echo {
                meta: e.meta,
                instruction,
                min_words: e.min_words,
            })
    });

    let content_check = doc.content_check.map(|c| {
        ck.meta("content_check", &c.meta);
        if c.meta.effect != Effect::NeedsApproval {
            ck.problem(
                "content_check.effect".into(),
                "the content check can only hold a draft for a person: effect must be needs_approval",
            );
        }
        c.meta
    });

    let grounding = doc.grounding.unwrap_or_default();
    for (key, meta) in [
        ("grounding.promise", &grounding.promise),
        ("grounding.case", &grounding.case),
    ] {
        if let Some(m) = meta {
            ck.meta(key, m);
        }
    }
    let (grounding_promise, grounding_case) = (grounding.promise, grounding.case);

    let mut required = Vec::new();
    for (i, r) in doc.required.into_iter().enumerate() {
        let key = format!("required[{i}]");
        ck.meta(&key, &r.meta);
        pattern_keys.push(format!("{key}.pattern"));
        patterns.push(r.pattern);
        required.push(Required {
            meta: r.meta,
            kind: r.kind,
            channels: r.channels,
        });
    }

    let amounts = match doc.amounts {
        Some(a) => {
            ck.meta("amounts", &a.meta);
            if a.context_chars == 0 || a.context_chars > 400 {
                ck.problem("amounts.context_chars".into(), "must be between 1 and 400");
            }
            ck.regex("amounts.balance_context".into(), &a.balance_context)
                .map(|balance_context| Amounts {
                    meta: a.meta,
                    balance_context,
                    context_chars: a.context_chars,
                })
        }
        None => None,
    };

    let offers = doc.offers.map(|o| {
        ck.meta("offers", &o.meta);
        if let Some(a) = &o.ambiguous {
            ck.meta("offers.ambiguous", a);
        }
        Offers {
            meta: o.meta,
            ambiguous: o.ambiguous,
        }
    });

    let mut negotiation = Vec::new();
    let n_ranges = doc.negotiation.len();
    for (i, r) in doc.negotiation.into_iter().enumerate() {
        let key = format!("negotiation[{i}]");
        ck.id(format!("{key}.id"), &r.id);
        ck.id(format!("{key}.ceiling.id"), &r.ceiling.id);
        if r.approvers.is_empty() {
            ck.problem(
                format!("{key}.approvers"),
                "must name at least one role that may approve",
            );
        }
        let within = ck.terms(
            &format!("{key}."),
            r.max_discount_percent,
            r.max_installments,
            r.min_down_payment_percent,
            r.max_plan_days,
        );
        let c = &r.ceiling;
        let ceiling = ck.terms(
            &format!("{key}.ceiling."),
            c.max_discount_percent,
            c.max_installments,
            c.min_down_payment_percent,
            c.max_plan_days,
        );
        let ck_key = |f: &str| format!("{key}.ceiling.{f}");
        if ceiling.max_discount_bps < within.max_discount_bps {
            ck.problem(
                ck_key("max_discount_percent"),
                "the hard ceiling is below the range it caps",
            );
        }
        if ceiling.max_installments < within.max_installments {
            ck.problem(
                ck_key("max_installments"),
                "the hard ceiling is below the range it caps",
            );
        }
        if ceiling.min_down_payment_bps > within.min_down_payment_bps {
            ck.problem(
                ck_key("min_down_payment_percent"),
                "the hard floor is above the range it bounds",
            );
        }
        if ceiling.max_plan_days < within.max_plan_days {
            ck.problem(
                ck_key("max_plan_days"),
                "the hard ceiling is below the range it caps",
            );
        }
        if i + 1 == n_ranges && !(r.segments.is_empty() && r.tiers.is_empty()) {
            ck.problem(
                key.clone(),
                "the last negotiation range must be a catch-all (no segments, no tiers) so every plan is judged",
            );
        }
        negotiation.push(Range {
            id: r.id,
            message: r.message,
            citation: r.citation,
            approvers: r.approvers,
            segments: r.segments,
            tiers: r.tiers,
            within,
            ceiling_id: r.ceiling.id,
            ceiling_message: r.ceiling.message,
            ceiling_citation: r.ceiling.citation,
            ceiling,
        });
    }

    let mut approval = Vec::new();
    for (i, a) in doc.approval.into_iter().enumerate() {
        let key = format!("approval[{i}]");
        ck.meta(&key, &a.meta);
        if a.actions.is_empty() {
            ck.problem(format!("{key}.actions"), "must name at least one tool");
        }
        let amount_over = match (&a.amount_over, a.currency) {
            (Some(s), Some(c)) => Some(Money::new(ck.money(format!("{key}.amount_over"), s, c), c)),
            (None, None) => None,
            (Some(_), None) => {
                ck.problem(format!("{key}.currency"), "amount_over needs a currency");
                None
            }
            (None, Some(_)) => {
                ck.problem(
                    format!("{key}.amount_over"),
                    "currency is given without amount_over",
                );
                None
            }
        };
        approval.push(Approval {
            meta: a.meta,
            actions: a.actions,
            tiers: a.tiers,
            segments: a.segments,
            amount_over,
        });
    }

    let promise = doc.promise.map(|p| {
        ck.meta("promise", &p.meta);
        if p.max_days_ahead == 0 {
            ck.problem("promise.max_days_ahead".into(), "must be at least 1");
        }
        PromiseRule {
            meta: p.meta,
            max_days_ahead: p.max_days_ahead,
        }
    });

    let late_payment = doc.late_payment.map(|lp| {
        let interest_over_base_bps = ck.percent(
            "late_payment.interest_over_base_percent".into(),
            lp.interest_over_base_percent,
        );
        let mut compensation = Vec::new();
        for (i, c) in lp.compensation.iter().enumerate() {
            let key = format!("late_payment.compensation[{i}]");
            let mut bands = Vec::new();
            let mut prev: Option<i64> = None;
            for (j, b) in c.bands.iter().enumerate() {
                let bkey = format!("{key}.bands[{j}]");
                let amount = ck.money(format!("{bkey}.amount"), &b.amount, c.currency);
                let below = b
                    .below
                    .as_ref()
                    .map(|s| ck.money(format!("{bkey}.below"), s, c.currency));
                match (below, prev) {
                    (Some(b), Some(p)) if b <= p => ck.problem(
                        format!("{bkey}.below"),
                        "bands must be in increasing order of 'below'",
                    ),
                    (None, _) if j + 1 != c.bands.len() => ck.problem(
                        format!("{bkey}.below"),
                        "only the last band may omit 'below'",
                    ),
                    (Some(_), _) if j + 1 == c.bands.len() => ck.problem(
                        format!("{bkey}.below"),
                        "the last band must omit 'below' so every debt has a band",
                    ),
                    _ => {}
                }
                prev = below;
                bands.push((below, amount));
            }
            if bands.is_empty() {
                ck.problem(format!("{key}.bands"), "must have at least one band");
            }
            compensation.push(Compensation {
                currency: c.currency,
                bands,
            });
        }
        LatePayment {
            interest_over_base_bps,
            compensation,
        }
    });

    let has_litigation = doc.litigation.is_some();
    let litigation = doc
        .litigation
        .and_then(|l| crate::legal::compile_litigation(&mut ck, l));
    let limitation = doc
        .limitation
        .and_then(|l| crate::legal::compile_limitation(&mut ck, l, has_litigation));
    let customer_offer = doc
        .customer_offer
        .and_then(|o| crate::legal::compile_offer(&mut ck, o));
    let validation_periods =
        crate::contact::compile_validation_periods(doc.validation_period, &mut ck);

    // The litigation phrase family joins the language set: a field it matches nowhere in
    // needs no search of its own for where it does.
    let litigation_at = litigation.as_ref().map(|l| {
        patterns.push(l.phrases.as_str().to_string());
        patterns.len() - 1
    });
    // So do the consistency families (what an email confirms or offers).
    let families_at = patterns.len();
    patterns.extend(
        crate::consistency::family_patterns()
            .into_iter()
            .map(str::to_string),
    );
    let (text_set, families_at) = match SetScan::new(&patterns, LANGUAGE_SET_BYTES) {
        Ok(s) => (s, Some(families_at)),
        Err(e) => {
            name_bad_patterns(&mut ck, &pattern_keys, &patterns, e);
            (SetScan::empty(), None)
        }
    };

    let money_mention = match Regex::new(crate::words::MONEY_PATTERN) {
        Ok(r) => r,
        Err(e) => {
            ck.problem(String::new(), format!("internal money pattern: {e}"));
            return Err(ck.problems);
        }
    };

    if !ck.problems.is_empty() {
        return Err(ck.problems);
    }
    Ok(Policy {
        id: doc.id,
        title: doc.title,
        version: doc.version,
        jurisdiction: doc.jurisdiction,
        stops,
        quiet_hours,
        frequency,
        prohibited,
        prohibited_of,
        text_set,
        litigation_at,
        families_at,
        echo,
        content_check,
        grounding_promise,
        grounding_case,
        required,
        amounts,
        offers,
        money_mention,
        negotiation,
        approval,
        promise,
        late_payment,
        litigation,
        limitation,
        customer_offer,
        validation_periods,
    })
}
