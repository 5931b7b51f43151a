//! What else happened on the account: the promises, plans, cases and escalations of this
//! run and of the account, each with its status. An email is judged against them: it may
//! not tell the customer that something happened when it has not (see
//! [`crate::consistency`]).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use argent_core::{Action, Currency, Role};

/// The kind of action an email may confirm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecentKind {
    /// A promise to pay (`log_promise`).
    Promise,
    /// A payment plan (`propose_plan`).
    Plan,
    /// A case opened for a person (`open_case`).
    Case,
    /// A hand-over to a person (`escalate`).
    Escalation,
}

impl RecentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecentKind::Promise => "promise",
            RecentKind::Plan => "plan",
            RecentKind::Case => "case",
            RecentKind::Escalation => "escalation",
        }
    }
}

/// Where an action stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecentStatus {
    /// It happened: the policy allowed it, or a person approved it.
    Executed,
    /// Waiting in the approval queue (`approval_id` names the item).
    PendingApproval,
    /// The policy denied it or a person rejected it.
    Refused,
}

impl RecentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecentStatus::Executed => "executed",
            RecentStatus::PendingApproval => "pending approval",
            RecentStatus::Refused => "refused",
        }
    }
}

/// One action of the account an email may refer to. Amounts are minor units in
/// `currency`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecentAction {
    pub kind: RecentKind,
    pub status: RecentStatus,
    #[serde(default)]
    pub currency: Option<Currency>,
    /// A promise: the promised amount. A plan: what it collects (down payment plus
    /// instalments). A case: the disputed amount, if any.
    #[serde(default)]
    pub amount_minor: Option<i64>,
    /// A plan: the balance it settles, as stated.
    #[serde(default)]
    pub balance_minor: Option<i64>,
    /// A plan: what it forgives.
    #[serde(default)]
    pub discount_minor: i64,
    /// A plan: the down payment.
    #[serde(default)]
    pub down_payment_minor: i64,
    /// A plan: each instalment's amount, in order.
    #[serde(default)]
    pub installments_minor: Vec<i64>,
    /// A promise: the promised date. A plan: its start date and every instalment's due
    /// date.
    #[serde(default)]
    pub dates: Vec<NaiveDate>,
    #[serde(default)]
    pub invoices: Vec<String>,
    /// The approval item, when pending (or rejected by a person).
    #[serde(default)]
    pub approval_id: Option<String>,
    /// The roles that may approve it, when pending.
    #[serde(default)]
    pub approvers: Vec<Role>,
    /// When it was made.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// Made in the current run.
    #[serde(default)]
    pub this_run: bool,
}

impl RecentAction {
    /// An action of `kind` with nothing else known.
    pub fn new(kind: RecentKind, status: RecentStatus) -> RecentAction {
        RecentAction {
            kind,
            status,
            currency: None,
            amount_minor: None,
            balance_minor: None,
            discount_minor: 0,
            down_payment_minor: 0,
            installments_minor: Vec::new(),
            dates: Vec::new(),
            invoices: Vec::new(),
            approval_id: None,
            approvers: Vec::new(),
            at: None,
            this_run: false,
        }
    }

    /// The recent action a typed tool call is, if it is one an email may confirm (a
    /// promise, a plan, a case or an escalation). Amounts that do not parse are left out.
    pub fn from_action(action: &Action, status: RecentStatus) -> Option<RecentAction> {
        match action {
            Action::LogPromise(p) => {
                let mut r = RecentAction::new(RecentKind::Promise, status);
                r.currency = Some(p.currency);
                r.amount_minor = p.amount.to_money(p.currency).ok().map(|m| m.minor);
                r.dates = vec![p.promised_date];
                r.invoices = p.invoice_numbers.clone();
                Some(r)
            }
            Action::ProposePlan(p) => {
                let mut r = RecentAction::new(RecentKind::Plan, status);
                r.currency = Some(p.currency);
                let minor = |a: &argent_core::action::DecimalAmount| {
                    a.to_money(p.currency).ok().map(|m| m.minor)
                };
                r.balance_minor = minor(&p.balance);
                r.discount_minor = minor(&p.discount).unwrap_or(0);
                r.down_payment_minor = minor(&p.down_payment).unwrap_or(0);
                r.installments_minor = p
                    .installments
                    .iter()
                    .filter_map(|i| minor(&i.amount))
                    .collect();
                r.amount_minor = Some(
                    r.installments_minor
                        .iter()
                        .fold(r.down_payment_minor, |a, b| a.saturating_add(*b)),
                );
                r.dates = std::iter::once(p.start_date)
                    .chain(p.installments.iter().map(|i| i.due_date))
                    .collect();
                r.invoices = p.invoice_numbers.clone();
                Some(r)
            }
            Action::OpenCase(c) => {
                let mut r = RecentAction::new(RecentKind::Case, status);
                if let Some(m) = &c.disputed_amount {
                    r.currency = Some(m.currency);
                    r.amount_minor = m.amount.to_money(m.currency).ok().map(|m| m.minor);
                }
                r.invoices = c.invoice_numbers.clone();
                Some(r)
            }
            Action::Escalate(_) => Some(RecentAction::new(RecentKind::Escalation, status)),
            _ => None,
        }
    }

    /// Builder: the approval item (and who may approve it).
    pub fn with_approval(mut self, id: impl Into<String>, approvers: Vec<Role>) -> RecentAction {
        self.approval_id = Some(id.into());
        self.approvers = approvers;
        self
    }

    /// The figures an email confirming this action may state, in its currency: a promise's
    /// amount; a plan's balance, discount, balance after discount, what it collects, down
    /// payment and instalments; a case's disputed amount.
    pub fn figures(&self) -> Vec<i64> {
        let mut out: Vec<i64> = Vec::new();
        out.extend(self.amount_minor);
        if self.kind == RecentKind::Plan {
            out.extend(self.balance_minor);
            if self.discount_minor > 0 {
                out.push(self.discount_minor);
            }
            if let Some(b) = self.balance_minor {
                out.push(b.saturating_sub(self.discount_minor));
            }
            if self.down_payment_minor > 0 {
                out.push(self.down_payment_minor);
            }
            out.extend(self.installments_minor.iter().copied());
        }
        out.retain(|f| *f > 0);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// A plan's discount against the balance it states, in basis points (0 without one).
    pub fn discount_bps(&self) -> i64 {
        match self.balance_minor {
            Some(b) if b > 0 => {
                let v = i128::from(self.discount_minor) * 10_000 / i128::from(b);
                i64::try_from(v).unwrap_or(i64::MAX)
            }
            _ => 0,
        }
    }

    /// How the reviewer and the model see it: "pending approval promise of 400.00 (apr-1)".
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}", self.status.as_str(), self.kind.as_str());
        if let (Some(c), Some(a)) = (self.currency, self.amount_minor) {
            s.push_str(&format!(" of {}", argent_core::Money::new(a, c)));
        }
        if let Some(id) = &self.approval_id {
            s.push_str(&format!(" ({id})"));
        }
        s
    }
}
