//! Loading an account from the store: the policy engine's [`Context`] and the data the
//! prompt templates render.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use argent_core::action::Action;
use argent_core::ledger::{invoice_states, open_balances};
use argent_core::risk::{RiskAssessment, assess, payment_history};
use argent_core::{
    Case, CaseStatus, Channel, Customer, Invoice, Money, Payment, PromiseStatus, PromiseToPay,
};
use argent_core::{PaymentPlan, PlanStatus, Role};
use argent_policy::{Context, PriorContact, RecentAction, RecentKind, RecentStatus};
use argent_store::Store;

use crate::AgentError;

/// Everything the agent knows about one account at one instant.
#[derive(Clone, Debug)]
pub struct Account {
    pub customer: Customer,
    pub invoices: Vec<Invoice>,
    pub payments: Vec<Payment>,
    pub cases: Vec<Case>,
    pub promises: Vec<PromiseToPay>,
    pub contacts: Vec<PriorContact>,
    /// Whether any email to this customer is already in the outbox.
    pub initial_sent: bool,
    pub risk: RiskAssessment,
    pub now: DateTime<Utc>,
    /// The promises, plans, cases and escalations an email may refer to, with their
    /// status: executed (the ledger's records), pending approval and refused (the queue and
    /// the refused calls). Empty for an account assembled from parts.
    pub recent: Vec<RecentAction>,
}

impl Account {
    pub async fn load(
        store: &Store,
        customer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Account, AgentError> {
        let mut r = store.account_records(customer_id).await?;
        let contacts = r
            .contacts
            .into_iter()
            .filter_map(|(at, channel, conversation)| {
                channel.parse::<Channel>().ok().map(|channel| PriorContact {
                    at,
                    channel,
                    conversation,
                })
            })
            .collect();
        let mut account = Account::assemble(
            r.customer, r.invoices, r.payments, r.cases, r.promises, contacts, r.emailed, now,
        )?;
        account.recent = recent_actions(
            &account,
            std::mem::take(&mut r.plans),
            std::mem::take(&mut r.approvals),
            std::mem::take(&mut r.refused_calls),
        );
        Ok(account)
    }

    /// An account from its parts, assessing its risk from the payment history as of `now`.
    /// An error if its open balances do not fit in `i64` minor units (a ledger beyond the
    /// import bounds), so no figure of an assembled account is a wrapped one.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        customer: Customer,
        invoices: Vec<Invoice>,
        payments: Vec<Payment>,
        cases: Vec<Case>,
        promises: Vec<PromiseToPay>,
        contacts: Vec<PriorContact>,
        initial_sent: bool,
        now: DateTime<Utc>,
    ) -> Result<Account, AgentError> {
        let risk = assess(
            payment_history(&invoices, &payments, now.date_naive())?,
            &customer.flags,
        );
        // What `balances` adds up, checked once here.
        open_balances(&invoices, &payments, now.date_naive())?;
        Ok(Account {
            customer,
            invoices,
            payments,
            cases,
            promises,
            contacts,
            initial_sent,
            risk,
            now,
            recent: Vec::new(),
        })
    }

    /// The facts the policy engine judges an action against.
    pub fn policy_context(&self) -> Context {
        let mut ctx = Context::new(self.customer.clone(), self.now, self.risk.segment)
            .with_ledger(&self.invoices, &self.payments);
        ctx.open_cases = self
            .cases
            .iter()
            .filter(|c| !matches!(c.status, CaseStatus::Resolved | CaseStatus::Rejected))
            .cloned()
            .collect();
        ctx.prior_contacts = self.contacts.clone();
        ctx.initial_communication_sent = self.initial_sent;
        ctx.recent_actions = self.recent.clone();
        ctx
    }

    pub fn contact_email(&self) -> Option<&str> {
        self.customer
            .primary_contact()
            .and_then(|c| c.email.as_deref())
    }

    /// The open invoices as the model sees them (amounts as decimal strings).
    pub fn open_invoices_json(&self) -> Vec<Value> {
        let ctx = self.policy_context();
        invoice_states(&self.invoices, &self.payments, self.now.date_naive())
            .into_iter()
            .filter(|s| s.is_open())
            .map(|s| {
                let cur = s.invoice.amount.currency;
                json!({
                    "number": s.invoice.number,
                    "currency": cur.as_str(),
                    "amount": s.invoice.amount.amount_string(),
                    "open": Money::new(s.open_minor, cur).amount_string(),
                    "due_date": s.invoice.due_date.to_string(),
                    "days_past_due": s.days_past_due,
                    "paused": ctx.invoice_paused(&s.invoice.number),
                })
            })
            .collect()
    }

    /// Open balance per currency, e.g. `[("USD", 1234_56)]`.
    pub fn balances(&self) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = Vec::new();
        for s in invoice_states(&self.invoices, &self.payments, self.now.date_naive()) {
            if !s.is_open() {
                continue;
            }
            let cur = s.invoice.amount.currency.as_str().to_string();
            match out.iter_mut().find(|(c, _)| *c == cur) {
                // `assemble` checked these sums fit (`open_balances`): never saturates.
                Some((_, v)) => *v = v.saturating_add(s.open_minor),
                None => out.push((cur, s.open_minor)),
            }
        }
        out
    }

    pub fn balance_text(&self) -> String {
        let parts: Vec<String> = self
            .balances()
            .into_iter()
            .filter_map(|(c, v)| c.parse().ok().map(|cur| Money::new(v, cur).to_string()))
            .collect();
        if parts.is_empty() {
            "nothing open".to_string()
        } else {
            parts.join(", ")
        }
    }

    pub fn open_promises(&self) -> Vec<&PromiseToPay> {
        self.promises
            .iter()
            .filter(|p| p.status == PromiseStatus::Open)
            .collect()
    }

    /// The machine-readable context block embedded in the system prompt.
    pub fn context_json(&self, footer: &str) -> Value {
        let local = self.now.with_timezone(&self.customer.time_zone);
        json!({
            "customer_id": self.customer.id,
            "customer_name": self.customer.name,
            "tier": self.customer.tier.as_str(),
            "jurisdiction": self.customer.jurisdiction.as_str(),
            "segment": self.risk.segment.as_str(),
            "contact_email": self.contact_email(),
            "today_local": local.date_naive().to_string(),
            "balances": self.balances().into_iter().map(|(c, v)| {
                let amount = c.parse().map(|cur| Money::new(v, cur).amount_string()).unwrap_or_default();
                json!({"currency": c, "amount": amount})
            }).collect::<Vec<_>>(),
            "invoices": self.open_invoices_json(),
            "open_cases": self.cases.iter().filter(|c| matches!(c.status, CaseStatus::Open | CaseStatus::InProgress)).map(|c| json!({"id": c.id, "kind": c.kind.as_str(), "invoices": c.invoice_numbers})).collect::<Vec<_>>(),
            "open_promises": self.open_promises().iter().map(|p| json!({"amount": p.amount.amount_string(), "currency": p.amount.currency.as_str(), "promised_date": p.promised_date.to_string()})).collect::<Vec<_>>(),
            "facts": self.customer.facts.set_json(),
            "footer": footer,
        })
    }
}

/// The typed action a stored tool call or approval item holds, if it parses.
pub(crate) fn stored_action(tool: &str, args: &Value) -> Option<Action> {
    serde_json::from_value(json!({"tool": tool, "args": args})).ok()
}

/// The roles a stored item's `required_role` names.
fn roles(required: &str) -> Vec<Role> {
    required
        .split(',')
        .filter_map(|r| r.trim().parse::<Role>().ok())
        .collect()
}

/// What an email may refer to on this account: its open promises, its plans that are
/// proposed or active, its open cases and escalations (executed); the items waiting in the
/// queue (pending approval); the items a person rejected and the calls the policy refused
/// (refused). The items and calls are the newest [`argent_store::ACCOUNT_RECENT`], as
/// `Store::account_records` read them with the rest of the account.
fn recent_actions(
    account: &Account,
    plans: Vec<PaymentPlan>,
    approvals: Vec<argent_store::ApprovalItem>,
    refused_calls: Vec<argent_store::ToolCallRecord>,
) -> Vec<RecentAction> {
    let mut out: Vec<RecentAction> = Vec::new();
    for p in account
        .promises
        .iter()
        .filter(|p| p.status == PromiseStatus::Open)
    {
        let mut r = RecentAction::new(RecentKind::Promise, RecentStatus::Executed);
        r.currency = Some(p.amount.currency);
        r.amount_minor = Some(p.amount.minor);
        r.dates = vec![p.promised_date];
        r.invoices = p.invoice_numbers.clone();
        r.at = Some(p.created_at);
        out.push(r);
    }
    for p in plans {
        if !matches!(p.status, PlanStatus::Proposed | PlanStatus::Active) {
            continue;
        }
        let mut r = RecentAction::new(RecentKind::Plan, RecentStatus::Executed);
        r.currency = Some(p.currency);
        r.balance_minor = Some(p.balance_minor);
        r.discount_minor = p.discount_minor;
        r.down_payment_minor = p.down_payment_minor;
        r.installments_minor = p.installments.iter().map(|i| i.amount_minor).collect();
        r.amount_minor = Some(
            r.installments_minor
                .iter()
                .fold(p.down_payment_minor, |a, b| a.saturating_add(*b)),
        );
        r.dates = std::iter::once(p.start_date)
            .chain(p.installments.iter().map(|i| i.due_date))
            .collect();
        out.push(r);
    }
    for c in account
        .cases
        .iter()
        .filter(|c| matches!(c.status, CaseStatus::Open | CaseStatus::InProgress))
    {
        let kind = if c.id.starts_with("ESC") {
            RecentKind::Escalation
        } else {
            RecentKind::Case
        };
        let mut r = RecentAction::new(kind, RecentStatus::Executed);
        if let Some(m) = c.disputed_amount {
            r.currency = Some(m.currency);
            r.amount_minor = Some(m.minor);
        }
        r.invoices = c.invoice_numbers.clone();
        r.at = Some(c.opened_at);
        out.push(r);
    }
    for item in approvals {
        let status = match item.status {
            argent_store::ApprovalStatus::Pending => RecentStatus::PendingApproval,
            argent_store::ApprovalStatus::Rejected => RecentStatus::Refused,
            argent_store::ApprovalStatus::Approved => continue,
        };
        let Some(action) = stored_action(&item.tool, &item.action) else {
            continue;
        };
        if let Some(mut r) = RecentAction::from_action(&action, status) {
            r.at = Some(item.created_at);
            out.push(r.with_approval(item.id.clone(), roles(&item.required_role)));
        }
    }
    for call in refused_calls {
        let action = serde_json::from_str::<Value>(&call.arguments)
            .ok()
            .and_then(|args| stored_action(&call.name, &args));
        if let Some(mut r) =
            action.and_then(|a| RecentAction::from_action(&a, RecentStatus::Refused))
        {
            r.at = Some(call.updated_at);
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use argent_core::{Contact, Currency, CustomerFlags, Jurisdiction, Tier};

    fn customer() -> Customer {
        Customer {
            id: "C1".into(),
            name: "Acme".into(),
            tier: Tier::Standard,
            jurisdiction: Jurisdiction::B2b,
            time_zone: chrono_tz::UTC,
            contacts: vec![Contact {
                name: "Acme".into(),
                email: Some("ap@acme.example".into()),
                phone: None,
                opted_out: vec![],
            }],
            flags: CustomerFlags::default(),
            facts: Default::default(),
        }
    }

    fn invoice(number: &str, minor: i64) -> Invoice {
        Invoice {
            number: number.into(),
            customer_id: "C1".into(),
            issue_date: "2026-01-01".parse().unwrap(),
            due_date: "2026-01-31".parse().unwrap(),
            amount: Money::new(minor, Currency::USD),
            disputed: false,
        }
    }

    /// Two invoices whose open amounts add up past `i64::MAX` (built directly, as no import
    /// would take them): the account is an error naming the sum, not an account with a
    /// wrapped, negative balance (or a panic).
    #[test]
    fn an_account_whose_balance_overflows_is_an_error() {
        let half = i64::MAX / 2 + 1;
        let now: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().unwrap();
        let assemble = |invoices: Vec<Invoice>| {
            Account::assemble(
                customer(),
                invoices,
                vec![],
                vec![],
                vec![],
                vec![],
                false,
                now,
            )
        };
        let err = assemble(vec![invoice("I1", half), invoice("I2", half)]).unwrap_err();
        assert!(
            matches!(&err, AgentError::Money(_))
                && err
                    .to_string()
                    .starts_with("the open invoices of customer C1 in USD add up to more than"),
            "{err}"
        );
        // Not yet issued (so outside the payment history), still in the balances.
        let mut future = invoice("I2", half);
        future.issue_date = "2026-06-01".parse().unwrap();
        future.due_date = "2026-07-01".parse().unwrap();
        assert!(assemble(vec![invoice("I1", half), future]).is_err());
        let one = assemble(vec![invoice("I1", half)]).unwrap();
        assert_eq!(one.balances(), vec![("USD".to_string(), half)]);
    }
}
