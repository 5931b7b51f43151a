//! Typed arguments of the agent's tools, and [`Action`]: one proposed tool call.
//!
//! These structs are the single source of truth for what a model may send: the JSON Schemas
//! advertised to the model (tools/<name>.json) are generated from them with `schemars`, and
//! the same structs deserialize the model's arguments, so schema and parser cannot drift.
//! Every struct denies unknown fields; strings are bounded; dates are `YYYY-MM-DD`; amounts
//! are non-negative decimal strings next to an explicit ISO 4217 currency and are converted
//! to integer minor units ([`Money`]), never through floats.
//!
//! Schema validation catches shapes; [`Action::check`] then catches what a schema cannot
//! express (an amount with more decimals than its currency has, a plan that does not add up).
//! An `Action` is only handed to the policy engine after both passed.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::case::CaseKind;
use crate::decision::Role;
use crate::money::{Currency, Money, MoneyError};
use crate::plan::{Installment, PaymentPlan, PlanError, PlanStatus, PlanTerms, TermsError};

/// Longest identifier (customer id, invoice number) accepted from a model.
pub const MAX_ID_LEN: usize = 64;
/// Longest email subject.
pub const MAX_SUBJECT_LEN: usize = 200;
/// Longest email body (characters).
pub const MAX_BODY_LEN: usize = 8000;
/// Longest free-text note, summary or reason.
pub const MAX_NOTE_LEN: usize = 2000;
/// Most invoice references in one call.
pub const MAX_INVOICE_REFS: usize = 50;
/// Most installments in one proposed plan.
pub const MAX_INSTALLMENTS: usize = 120;
/// The pattern every amount string must match: a non-negative decimal, at most 15 integer
/// digits and 3 decimals, no sign, no exponent, no thousands separators.
pub const AMOUNT_PATTERN: &str = r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,3})?$";

/// The seven tools the agent may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolName {
    ReadAging,
    SendEmail,
    LogPromise,
    OpenCase,
    ProposePlan,
    Escalate,
    RequestCall,
}

impl ToolName {
    pub const ALL: [ToolName; 7] = [
        ToolName::ReadAging,
        ToolName::SendEmail,
        ToolName::LogPromise,
        ToolName::OpenCase,
        ToolName::ProposePlan,
        ToolName::Escalate,
        ToolName::RequestCall,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ToolName::ReadAging => "read_aging",
            ToolName::SendEmail => "send_email",
            ToolName::LogPromise => "log_promise",
            ToolName::OpenCase => "open_case",
            ToolName::ProposePlan => "propose_plan",
            ToolName::Escalate => "escalate",
            ToolName::RequestCall => "request_call",
        }
    }
}

impl fmt::Display for ToolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ToolName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ToolName::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ToolName::ALL.iter().map(ToolName::as_str).collect();
                format!(
                    "'{s}' is not a tool (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// A non-negative decimal amount as a string, e.g. `"1250.00"`. Validated on deserialize;
/// converted to minor units only together with a currency ([`DecimalAmount::to_money`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DecimalAmount(String);

impl DecimalAmount {
    /// Accepts exactly the strings [`AMOUNT_PATTERN`] accepts.
    pub fn new(s: &str) -> Result<DecimalAmount, String> {
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (s, None),
        };
        let whole_ok = !whole.is_empty()
            && whole.len() <= 15
            && whole.bytes().all(|b| b.is_ascii_digit())
            && (whole == "0" || !whole.starts_with('0'));
        let frac_ok = frac
            .is_none_or(|f| !f.is_empty() && f.len() <= 3 && f.bytes().all(|b| b.is_ascii_digit()));
        if whole_ok && frac_ok {
            Ok(DecimalAmount(s.to_string()))
        } else {
            Err(format!(
                "'{}' is not a non-negative decimal amount (expected e.g. \"1250.00\": digits, optional '.' and up to 3 decimals, no sign or separators)",
                truncate(s, 40)
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Minor units in `currency`; more decimals than the currency has is an error.
    pub fn to_money(&self, currency: Currency) -> Result<Money, MoneyError> {
        Money::parse(&self.0, currency)
    }
}

impl fmt::Display for DecimalAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DecimalAmount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DecimalAmount::new(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for DecimalAmount {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "DecimalAmount".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": AMOUNT_PATTERN,
            "maxLength": 19,
            "description": "A non-negative decimal amount as a string, e.g. \"1250.00\" (no sign, no thousands separators, no currency symbol)."
        })
    }
}

impl JsonSchema for Currency {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Currency".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "ISO 4217 currency code, e.g. \"USD\", \"GBP\", \"EUR\"."
        })
    }
}

impl JsonSchema for CaseKind {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "CaseKind".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = CaseKind::ALL.iter().map(CaseKind::as_str).collect();
        json_schema!({
            "type": "string",
            "enum": names,
            "description": "dispute: the customer disputes an invoice (collection on it pauses); hardship: cannot pay as agreed; payment_claimed: says it already paid; question; other."
        })
    }
}

/// Show the aging of one customer's open invoices. Read-only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadAgingArgs {
    /// The customer's id as shown in the context.
    #[schemars(length(min = 1, max = 64))]
    pub customer_id: String,
}

/// Send an email to the debtor. The policy engine decides whether it may go out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendEmailArgs {
    /// The customer's id as shown in the context.
    #[schemars(length(min = 1, max = 64))]
    pub customer_id: String,
    /// Recipient address; must be a contact on file for this customer.
    #[schemars(email, length(max = 254))]
    pub to: String,
    /// Subject line.
    #[schemars(length(min = 1, max = 200))]
    pub subject: String,
    /// Plain-text body, including any disclosures the jurisdiction requires.
    #[schemars(length(min = 1, max = 8000))]
    pub body: String,
    /// Invoice numbers the email is about (may be empty).
    #[serde(default)]
    #[schemars(length(max = 50), inner(length(min = 1, max = 64)))]
    pub invoice_numbers: Vec<String>,
}

/// Record the debtor's promise to pay an amount by a date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogPromiseArgs {
    /// The customer's id as shown in the context.
    #[schemars(length(min = 1, max = 64))]
    pub customer_id: String,
    /// Amount promised, e.g. "250.00".
    pub amount: DecimalAmount,
    /// Currency of the amount.
    pub currency: Currency,
    /// Date by which the debtor promised to pay (YYYY-MM-DD).
    pub promised_date: NaiveDate,
    /// Invoices the promise covers; empty means the balance in general.
    #[serde(default)]
    #[schemars(length(max = 50), inner(length(min = 1, max = 64)))]
    pub invoice_numbers: Vec<String>,
    /// What the debtor said, briefly.
    #[serde(default)]
    #[schemars(length(max = 2000))]
    pub note: Option<String>,
}

/// An amount with its currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyArg {
    pub amount: DecimalAmount,
    pub currency: Currency,
}

/// Open a case for a person to own: a dispute, hardship, a payment the debtor says was sent, a question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenCaseArgs {
    /// The customer's id as shown in the context.
    #[schemars(length(min = 1, max = 64))]
    pub customer_id: String,
    pub kind: CaseKind,
    /// Invoices concerned; empty means the account as a whole.
    #[serde(default)]
    #[schemars(length(max = 50), inner(length(min = 1, max = 64)))]
    pub invoice_numbers: Vec<String>,
    /// For a partial dispute, the amount in question.
    #[serde(default)]
    pub disputed_amount: Option<MoneyArg>,
    /// What the case is about, for the person who will own it.
    #[schemars(length(min = 1, max = 2000))]
    pub summary: String,
}

/// One dated installment of a proposed plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallmentArg {
    /// Due date (YYYY-MM-DD).
    pub due_date: NaiveDate,
    /// Installment amount, e.g. "300.00"; must be positive.
    pub amount: DecimalAmount,
}

/// Propose a payment plan: optional discount, a down payment and dated installments that together settle the balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposePlanArgs {
    /// The customer's id as shown in the context.
    #[schemars(length(min = 1, max = 64))]
    pub customer_id: String,
    /// Currency of every amount in the plan.
    pub currency: Currency,
    /// The open balance the plan settles, before discount: exactly the ledger's open amount of the invoices in `invoice_numbers` (or, when that is empty, of every open, undisputed invoice in `currency`).
    pub balance: DecimalAmount,
    /// Discount off the balance ("0" for none).
    pub discount: DecimalAmount,
    /// Paid on the start date ("0" for none).
    pub down_payment: DecimalAmount,
    /// The plan's first day (YYYY-MM-DD).
    pub start_date: NaiveDate,
    /// Installments on strictly increasing dates; down payment plus installments must equal balance minus discount.
    #[schemars(length(min = 1, max = 120))]
    pub installments: Vec<InstallmentArg>,
    /// Why this plan, for the reviewer.
    #[serde(default)]
    #[schemars(length(max = 2000))]
    pub note: Option<String>,
    /// Invoices the plan settles; empty means every open, undisputed invoice in `currency`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(min = 1, max = 64)))]
    pub invoice_numbers: Vec<String>,
}

/// How soon a person should look at an escalation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Low,
    #[default]
    Normal,
    High,
}

/// Hand the account to a person, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateArgs {
    /// The customer's id as shown in the context.
    #[schemars(length(min = 1, max = 64))]
    pub customer_id: String,
    /// Why a person is needed.
    #[schemars(length(min = 1, max = 2000))]
    pub reason: String,
    /// Which role should pick it up (default: collector).
    #[serde(default)]
    pub to_role: Option<Role>,
    #[serde(default)]
    pub urgency: Urgency,
}

/// Ask a collector to telephone the debtor. Calls are made by people: this creates a call
/// task with the reason and what to say; the collector logs the attempt or conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestCallArgs {
    /// The customer's id as shown in the context.
    #[schemars(length(min = 1, max = 64))]
    pub customer_id: String,
    /// Why a call is needed now, for the collector.
    #[schemars(length(min = 1, max = 2000))]
    pub reason: String,
    /// What the collector should say, including any disclosures the jurisdiction requires.
    #[schemars(length(min = 1, max = 2000))]
    pub script: String,
    /// The earliest instant the call may be made (RFC 3339, e.g. "2026-03-11T15:00:00Z"); omit for as soon as possible.
    #[serde(default)]
    pub not_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// One tool call proposed by the model, with typed arguments.
///
/// Serialized as `{"tool": "send_email", "args": {...}}` (also the form policy tests use).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "tool",
    content = "args",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Action {
    ReadAging(ReadAgingArgs),
    SendEmail(SendEmailArgs),
    LogPromise(LogPromiseArgs),
    OpenCase(OpenCaseArgs),
    ProposePlan(ProposePlanArgs),
    Escalate(EscalateArgs),
    RequestCall(RequestCallArgs),
}

/// A problem with one argument that the JSON Schema cannot express; `pointer` is a JSON
/// pointer into the arguments object (e.g. `/installments/2/amount`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgProblem {
    pub pointer: String,
    pub problem: String,
}

impl fmt::Display for ArgProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "(root)"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.problem)
    }
}

fn problem(pointer: impl Into<String>, problem: impl Into<String>) -> ArgProblem {
    ArgProblem {
        pointer: pointer.into(),
        problem: problem.into(),
    }
}

fn money_at(
    amount: &DecimalAmount,
    currency: Currency,
    pointer: &str,
) -> Result<Money, ArgProblem> {
    amount
        .to_money(currency)
        .map_err(|e| problem(pointer, e.to_string()))
}

impl Action {
    pub fn tool(&self) -> ToolName {
        match self {
            Action::ReadAging(_) => ToolName::ReadAging,
            Action::SendEmail(_) => ToolName::SendEmail,
            Action::LogPromise(_) => ToolName::LogPromise,
            Action::OpenCase(_) => ToolName::OpenCase,
            Action::ProposePlan(_) => ToolName::ProposePlan,
            Action::Escalate(_) => ToolName::Escalate,
            Action::RequestCall(_) => ToolName::RequestCall,
        }
    }

    pub fn customer_id(&self) -> &str {
        match self {
            Action::ReadAging(a) => &a.customer_id,
            Action::SendEmail(a) => &a.customer_id,
            Action::LogPromise(a) => &a.customer_id,
            Action::OpenCase(a) => &a.customer_id,
            Action::ProposePlan(a) => &a.customer_id,
            Action::Escalate(a) => &a.customer_id,
            Action::RequestCall(a) => &a.customer_id,
        }
    }

    /// Invoice numbers the action refers to.
    pub fn invoice_numbers(&self) -> &[String] {
        match self {
            Action::SendEmail(a) => &a.invoice_numbers,
            Action::LogPromise(a) => &a.invoice_numbers,
            Action::OpenCase(a) => &a.invoice_numbers,
            Action::ProposePlan(a) => &a.invoice_numbers,
            _ => &[],
        }
    }

    /// The money amount the action states: the promised amount, the plan's stated
    /// balance, the disputed amount. The policy engine judges a plan's approval limits on
    /// the ledger's balance, not on this figure. `None` when the action carries no amount (or an
    /// amount that does not convert, which [`Action::check`] rejects).
    pub fn principal_amount(&self) -> Option<Money> {
        match self {
            Action::LogPromise(a) => a.amount.to_money(a.currency).ok(),
            Action::ProposePlan(a) => a.balance.to_money(a.currency).ok(),
            Action::OpenCase(a) => a
                .disputed_amount
                .as_ref()
                .and_then(|m| m.amount.to_money(m.currency).ok()),
            _ => None,
        }
    }

    /// Checks what the JSON Schema cannot: amounts fit their currency's decimals, promised
    /// amounts are positive, and a plan is coherent (see [`PaymentPlan::validate`]).
    pub fn check(&self) -> Result<(), Vec<ArgProblem>> {
        let mut problems = Vec::new();
        match self {
            Action::ReadAging(_) | Action::SendEmail(_) | Action::Escalate(_) => {}
            Action::RequestCall(a) => {
                if let Some(t) = a.not_before
                    && let Err(e) = crate::bounds::check_instant("/not_before", t)
                {
                    problems.push(problem("/not_before", e.to_string()));
                }
            }
            Action::LogPromise(a) => match money_at(&a.amount, a.currency, "/amount") {
                Ok(m) if m.minor <= 0 => {
                    problems.push(problem("/amount", "a promised amount must be positive"));
                }
                Ok(_) => {}
                Err(p) => problems.push(p),
            },
            Action::OpenCase(a) => {
                if let Some(m) = &a.disputed_amount
                    && let Err(p) = money_at(&m.amount, m.currency, "/disputed_amount/amount")
                {
                    problems.push(p);
                }
            }
            Action::ProposePlan(a) => {
                if let Err(p) = a.to_plan("proposed") {
                    problems.push(p);
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl ProposePlanArgs {
    /// These arguments with the reviewer's terms (the plan editor): the discount, the down
    /// payment, the start date and the instalments [`PlanTerms::schedule`] computes.
    /// The customer, the currency, the balance, the invoices and the note stay as they
    /// are; `terms` must be in this plan's currency.
    pub fn with_terms(&self, terms: &PlanTerms) -> Result<ProposePlanArgs, TermsError> {
        let schedule = terms.schedule()?;
        let amount = |minor: i64| DecimalAmount(Money::new(minor, self.currency).amount_string());
        Ok(ProposePlanArgs {
            discount: amount(terms.discount_minor),
            down_payment: amount(terms.down_payment_minor),
            start_date: terms.start_date,
            installments: schedule
                .iter()
                .map(|i| InstallmentArg {
                    due_date: i.due_date,
                    amount: amount(i.amount_minor),
                })
                .collect(),
            ..self.clone()
        })
    }

    /// Converts the arguments to a [`PaymentPlan`] (status `proposed`) and checks that it is
    /// coherent; the error points at the offending argument.
    pub fn to_plan(&self, id: &str) -> Result<PaymentPlan, ArgProblem> {
        let c = self.currency;
        let balance = money_at(&self.balance, c, "/balance")?;
        let discount = money_at(&self.discount, c, "/discount")?;
        let down = money_at(&self.down_payment, c, "/down_payment")?;
        let mut installments = Vec::with_capacity(self.installments.len());
        for (i, inst) in self.installments.iter().enumerate() {
            let m = inst
                .amount
                .to_money(c)
                .map_err(|e| problem(format!("/installments/{i}/amount"), e.to_string()))?;
            installments.push(Installment {
                due_date: inst.due_date,
                amount_minor: m.minor,
            });
        }
        let plan = PaymentPlan {
            id: id.to_string(),
            customer_id: self.customer_id.clone(),
            currency: c,
            balance_minor: balance.minor,
            discount_minor: discount.minor,
            down_payment_minor: down.minor,
            start_date: self.start_date,
            installments,
            status: PlanStatus::Proposed,
        };
        plan.validate().map_err(|e| {
            let pointer = match &e {
                PlanError::NoInstallments => "/installments".to_string(),
                PlanError::NonPositiveInstallment(n)
                | PlanError::DatesNotIncreasing(n)
                | PlanError::BeforeStart(n) => {
                    let i = n.saturating_sub(1);
                    match e {
                        PlanError::NonPositiveInstallment(_) => format!("/installments/{i}/amount"),
                        _ => format!("/installments/{i}/due_date"),
                    }
                }
                PlanError::BadAmounts => "/discount".to_string(),
                PlanError::DoesNotSettle { .. } => "/installments".to_string(),
            };
            problem(pointer, e.to_string())
        })?;
        if balance.minor <= 0 {
            return Err(problem("/balance", "the balance must be positive"));
        }
        Ok(plan)
    }
}

fn truncate(s: &str, max_chars: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan_args() -> serde_json::Value {
        json!({
            "customer_id": "C1",
            "currency": "USD",
            "balance": "1000.00",
            "discount": "100",
            "down_payment": "300.00",
            "start_date": "2026-03-01",
            "installments": [
                {"due_date": "2026-04-01", "amount": "300.00"},
                {"due_date": "2026-05-01", "amount": "300"}
            ]
        })
    }

    #[test]
    fn a_reviewers_terms_keep_the_customer_currency_balance_and_note() {
        let mut v = plan_args();
        v["note"] = json!("asked for two months");
        v["invoice_numbers"] = json!(["INV-1"]);
        let args: ProposePlanArgs = serde_json::from_value(v).unwrap();
        let (mut terms, _) = PlanTerms::of_plan(&args.to_plan("P").unwrap());
        terms.discount_minor = 0;
        terms.down_payment_minor = 100_00;
        terms.count = 4;
        terms.frequency = crate::plan::Frequency::Weekly;
        let edited = args.with_terms(&terms).unwrap();
        assert_eq!(edited.customer_id, "C1");
        assert_eq!(edited.currency, Currency::USD);
        assert_eq!(edited.balance.to_string(), "1000.00");
        assert_eq!(edited.note.as_deref(), Some("asked for two months"));
        assert_eq!(edited.invoice_numbers, ["INV-1"]);
        assert_eq!(edited.discount.to_string(), "0.00");
        assert_eq!(edited.down_payment.to_string(), "100.00");
        let amounts: Vec<String> = edited
            .installments
            .iter()
            .map(|i| i.amount.to_string())
            .collect();
        assert_eq!(amounts, ["225.00", "225.00", "225.00", "225.00"]);
        assert_eq!(edited.installments[3].due_date.to_string(), "2026-03-29");
        // What the editor writes is a plan the tool accepts.
        assert!(edited.to_plan("P").is_ok());
        terms.down_payment_minor = 1200_00;
        assert_eq!(
            args.with_terms(&terms).unwrap_err().to_string(),
            "down payment 1,200.00 exceeds the balance 1,000.00"
        );
    }

    #[test]
    fn amounts_are_non_negative_decimal_strings() {
        for ok in ["0", "0.5", "12", "1250.00", "999999999999999.999"] {
            assert!(DecimalAmount::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-1",
            "+1",
            "1.",
            ".5",
            "01",
            "1e3",
            "1,000",
            "1.2345",
            "NaN",
            " 1",
            "$5",
            "1000000000000000",
        ] {
            assert!(DecimalAmount::new(bad).is_err(), "{bad:?} accepted");
        }
        let m = DecimalAmount::new("12.5")
            .unwrap()
            .to_money(Currency::USD)
            .unwrap();
        assert_eq!(m, Money::new(1250, Currency::USD));
        // More decimals than the currency has is an error, not a rounding.
        assert!(
            DecimalAmount::new("1.5")
                .unwrap()
                .to_money("JPY".parse().unwrap())
                .is_err()
        );
    }

    #[test]
    fn plan_arguments_convert_to_a_coherent_plan() {
        let args: ProposePlanArgs = serde_json::from_value(plan_args()).unwrap();
        let plan = args.to_plan("P1").unwrap();
        assert_eq!(plan.balance_minor, 1000_00);
        assert_eq!(plan.discount_minor, 100_00);
        assert_eq!(plan.discount_bps(), 1000);
        assert_eq!(plan.length_days(), 61);
        assert_eq!(
            Action::ProposePlan(args.clone()).principal_amount(),
            Some(Money::new(1000_00, Currency::USD))
        );
        assert!(Action::ProposePlan(args).check().is_ok());
    }

    #[test]
    fn incoherent_plans_point_at_the_argument() {
        let mut v = plan_args();
        v["installments"][1]["due_date"] = json!("2026-04-01");
        let args: ProposePlanArgs = serde_json::from_value(v).unwrap();
        let errs = Action::ProposePlan(args).check().unwrap_err();
        assert_eq!(errs[0].pointer, "/installments/1/due_date");

        let mut v = plan_args();
        v["installments"][1]["amount"] = json!("200.00");
        let args: ProposePlanArgs = serde_json::from_value(v).unwrap();
        let errs = Action::ProposePlan(args).check().unwrap_err();
        assert_eq!(errs[0].pointer, "/installments");
        assert!(
            errs[0].problem.contains("balance less discount"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn unknown_fields_and_negative_amounts_do_not_deserialize() {
        let mut v = plan_args();
        v["admin_override"] = json!(true);
        assert!(serde_json::from_value::<ProposePlanArgs>(v).is_err());
        let mut v = plan_args();
        v["discount"] = json!("-5");
        assert!(serde_json::from_value::<ProposePlanArgs>(v).is_err());
    }

    #[test]
    fn action_round_trips_in_tagged_form() {
        let a: Action = serde_json::from_value(json!({
            "tool": "read_aging", "args": {"customer_id": "C9"}
        }))
        .unwrap();
        assert_eq!(a.tool(), ToolName::ReadAging);
        assert_eq!(a.customer_id(), "C9");
        let back = serde_json::to_value(&a).unwrap();
        assert_eq!(back["tool"], "read_aging");
        assert_eq!("send_email".parse::<ToolName>(), Ok(ToolName::SendEmail));
        assert!(
            "rm_rf"
                .parse::<ToolName>()
                .unwrap_err()
                .contains("escalate")
        );
    }

    #[test]
    fn promised_amount_must_be_positive_and_fit_the_currency() {
        let a: LogPromiseArgs = serde_json::from_value(json!({
            "customer_id": "C1", "amount": "0", "currency": "USD", "promised_date": "2026-03-20"
        }))
        .unwrap();
        assert_eq!(
            Action::LogPromise(a).check().unwrap_err()[0].pointer,
            "/amount"
        );
        let a: LogPromiseArgs = serde_json::from_value(json!({
            "customer_id": "C1", "amount": "10.125", "currency": "USD", "promised_date": "2026-03-20"
        }))
        .unwrap();
        assert!(Action::LogPromise(a).check().is_err());
    }
}
