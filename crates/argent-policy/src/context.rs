//! The account facts a policy rule may look at. Built by the caller (the agent loads them
//! from the store); the engine itself does no I/O.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use argent_core::ledger::invoice_states;

use crate::recent::RecentAction;
use argent_core::{Case, Channel, Currency, Customer, Invoice, Money, Payment, RiskSegment};

/// One invoice with what is still open on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenInvoice {
    pub number: String,
    pub currency: Currency,
    /// The invoiced amount, minor units.
    pub amount_minor: i64,
    /// What is still owed on it, minor units.
    pub open_minor: i64,
    pub due_date: NaiveDate,
    /// Disputed and not yet verified: collection on it is paused.
    #[serde(default)]
    pub disputed: bool,
    /// The date of the last payment received on it, if any: the limitation period runs
    /// again from it (see [`crate::legal`]).
    #[serde(default)]
    pub last_payment_on: Option<NaiveDate>,
}

impl OpenInvoice {
    pub fn amount(&self) -> Money {
        Money::new(self.amount_minor, self.currency)
    }
    pub fn open(&self) -> Money {
        Money::new(self.open_minor, self.currency)
    }
}

/// A past outbound contact attempt with the debtor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorContact {
    pub at: DateTime<Utc>,
    pub channel: Channel,
    /// A telephone conversation took place (not only an attempt).
    #[serde(default)]
    pub conversation: bool,
}

/// Everything a rule may consult about the account, as of `now`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    pub customer: Customer,
    /// Open invoices (open_minor > 0), from the ledger.
    #[serde(default)]
    pub invoices: Vec<OpenInvoice>,
    /// Cases not yet resolved; a dispute that is open (no verification recorded) or upheld
    /// pauses collection on the invoices it names ([`Case::pauses`]).
    #[serde(default)]
    pub open_cases: Vec<Case>,
    /// Outbound contact attempts, any order.
    #[serde(default)]
    pub prior_contacts: Vec<PriorContact>,
    /// Whether the initial communication (US: with the validation notice) was already sent.
    #[serde(default)]
    pub initial_communication_sent: bool,
    /// The current instant. Quiet hours are judged in the customer's time zone.
    pub now: DateTime<Utc>,
    pub segment: RiskSegment,
    /// Reference (central bank base) rate in basis points, for statutory late-payment
    /// interest in B2B packs.
    #[serde(default)]
    pub base_rate_bps: u32,
    /// The customer's message this action answers (subject and body), if a message
    /// started the run: the content rules refuse a draft that echoes an instruction in it.
    #[serde(default)]
    pub inbound_text: Option<String>,
    /// The message this run answers came in the customer's thread from an address that
    /// is not a contact on file (a possible third party).
    #[serde(default)]
    pub inbound_sender_not_on_file: bool,
    /// The message this run answers failed SPF, DKIM or DMARC (its sender may be forged).
    #[serde(default)]
    pub inbound_auth_failed: bool,
    /// When the message this run answers was received: its relative dates ("next Friday",
    /// "end of the month") are read on that day in the customer's time zone (else on
    /// `now`'s). See [`crate::grounding`].
    #[serde(default)]
    pub inbound_at: Option<DateTime<Utc>>,
    /// The action is a person's (a collector logging what the customer said on a call),
    /// not the model's: the person is the witness of the customer's words, so grounding in
    /// a message ([`crate::grounding`]) does not apply. Every other rule does.
    #[serde(default)]
    pub by_person: bool,
    /// The promises, plans, cases and escalations of this run and of the account that an
    /// email may refer to, each with its status (executed, pending approval, refused).
    #[serde(default)]
    pub recent_actions: Vec<RecentAction>,
}

impl Context {
    /// A context with no ledger, cases or contact history.
    pub fn new(customer: Customer, now: DateTime<Utc>, segment: RiskSegment) -> Context {
        Context {
            customer,
            invoices: Vec::new(),
            open_cases: Vec::new(),
            prior_contacts: Vec::new(),
            initial_communication_sent: false,
            now,
            segment,
            base_rate_bps: 0,
            inbound_text: None,
            inbound_sender_not_on_file: false,
            inbound_auth_failed: false,
            inbound_at: None,
            by_person: false,
            recent_actions: Vec::new(),
        }
    }

    /// Fills `invoices` with the customer's open invoices as of `now`'s date (UTC),
    /// applying `payments` with the core ledger rules.
    pub fn with_ledger(mut self, invoices: &[Invoice], payments: &[Payment]) -> Context {
        let as_of = self.now.date_naive();
        self.invoices = invoice_states(invoices, payments, as_of)
            .into_iter()
            .filter(|s| s.is_open() && s.invoice.customer_id == self.customer.id)
            .map(|s| OpenInvoice {
                number: s.invoice.number.clone(),
                currency: s.invoice.amount.currency,
                amount_minor: s.invoice.amount.minor,
                open_minor: s.open_minor,
                due_date: s.invoice.due_date,
                disputed: s.invoice.disputed,
                last_payment_on: payments
                    .iter()
                    .filter(|p| {
                        p.invoice_number == s.invoice.number
                            && p.customer_id == s.invoice.customer_id
                            && p.amount.currency == s.invoice.amount.currency
                            && p.amount.minor > 0
                            && p.received_on <= as_of
                    })
                    .map(|p| p.received_on)
                    .max(),
            })
            .collect();
        self
    }

    /// Whether collection on `number` is paused: the invoice is marked disputed, an open
    /// dispute case covers it, or the whole account is disputed.
    pub fn invoice_paused(&self, number: &str) -> bool {
        self.customer.flags.disputed
            || self
                .invoices
                .iter()
                .any(|i| i.number == number && i.disputed)
            || self.open_cases.iter().any(|c| c.pauses(number))
    }

    /// Total open balance in `currency`, minor units.
    pub fn open_balance(&self, currency: Currency) -> i64 {
        self.invoices
            .iter()
            .filter(|i| i.currency == currency)
            .fold(0_i64, |acc, i| acc.saturating_add(i.open_minor))
    }

    /// Open balance in `currency` on invoices whose collection is not paused.
    pub fn collectible_balance(&self, currency: Currency) -> i64 {
        self.invoices
            .iter()
            .filter(|i| i.currency == currency && !self.invoice_paused(&i.number))
            .fold(0_i64, |acc, i| acc.saturating_add(i.open_minor))
    }

    /// The ledger balance a payment plan settles, in `currency`, minor units: the open
    /// amount of the invoices it names, or — when it names none — of every open invoice in
    /// `currency` whose collection is not paused (the collectible balance). Names that are
    /// not an open invoice of this customer in `currency` are the error, each once.
    pub fn plan_basis(&self, currency: Currency, named: &[String]) -> Result<i64, Vec<String>> {
        if named.is_empty() {
            return Ok(self.collectible_balance(currency));
        }
        let mut seen: Vec<&str> = Vec::with_capacity(named.len());
        let mut unknown: Vec<String> = Vec::new();
        let mut total: i64 = 0;
        for n in named {
            if seen.contains(&n.as_str()) {
                continue;
            }
            seen.push(n);
            match self
                .invoices
                .iter()
                .find(|i| i.number == *n && i.currency == currency)
            {
                Some(i) => total = total.saturating_add(i.open_minor),
                None => unknown.push(n.clone()),
            }
        }
        if unknown.is_empty() {
            Ok(total)
        } else {
            Err(unknown)
        }
    }

    /// Open balance in `currency` on invoices whose collection is paused (disputed).
    pub fn paused_balance(&self, currency: Currency) -> i64 {
        self.invoices
            .iter()
            .filter(|i| i.currency == currency && self.invoice_paused(&i.number))
            .fold(0_i64, |acc, i| acc.saturating_add(i.open_minor))
    }

    /// The open invoices whose collection is paused.
    pub fn paused_invoices(&self) -> impl Iterator<Item = &OpenInvoice> {
        self.invoices
            .iter()
            .filter(|i| self.invoice_paused(&i.number))
    }

    /// Whether anything on the account is disputed: a paused invoice, or an open dispute
    /// case with a disputed amount.
    pub fn has_disputed_debt(&self) -> bool {
        self.paused_invoices().next().is_some()
            || self
                .open_cases
                .iter()
                .any(|c| c.pauses_collection() && c.disputed_amount.is_some())
    }

    /// Amounts in `currency` that can only name disputed debt, minor units: each paused
    /// invoice's open and original amount, each open dispute case's disputed amount and —
    /// when anything is paused — the total open balance that includes it; less any figure
    /// that is also a collectible one (the collectible balance, an unpaused invoice's open or
    /// original amount), which names undisputed debt as well.
    pub fn disputed_figures(&self, currency: Currency) -> Vec<i64> {
        let mut figures: Vec<i64> = Vec::new();
        for i in self.paused_invoices().filter(|i| i.currency == currency) {
            figures.push(i.open_minor);
            figures.push(i.amount_minor);
        }
        for c in &self.open_cases {
            if c.pauses_collection()
                && let Some(m) = c.disputed_amount
                && m.currency == currency
            {
                figures.push(m.minor);
            }
        }
        if self.paused_balance(currency) > 0 {
            figures.push(self.open_balance(currency));
        }
        let collectible = self.collectible_balance(currency);
        figures.retain(|f| {
            *f > 0
                && *f != collectible
                && !self.invoices.iter().any(|i| {
                    i.currency == currency
                        && !self.invoice_paused(&i.number)
                        && (i.open_minor == *f || i.amount_minor == *f)
                })
        });
        figures.sort_unstable();
        figures.dedup();
        figures
    }

    /// Whether an amount of `money` includes disputed debt: it is more than the collectible
    /// balance while something is paused, or it is one of the [`Context::disputed_figures`].
    pub fn amount_includes_disputed(&self, money: Money) -> bool {
        let c = money.currency;
        (self.paused_balance(c) > 0 && money.minor > self.collectible_balance(c))
            || self.disputed_figures(c).contains(&money.minor)
    }

    /// The customer's local date of the day the message this run answers was received
    /// (today's, when no message started the run): what its relative dates are read on.
    pub fn message_day(&self) -> NaiveDate {
        self.inbound_at
            .unwrap_or(self.now)
            .with_timezone(&self.customer.time_zone)
            .date_naive()
    }

    /// The customer's local date today.
    pub fn local_today(&self) -> NaiveDate {
        self.now
            .with_timezone(&self.customer.time_zone)
            .date_naive()
    }
}
