//! Account facts a compliance officer expects the policy to see, beyond the four
//! contact-stopping flags on [`crate::CustomerFlags`]: what the customer said that a person
//! has not yet confirmed, the US validation notice, time-barred debt, litigation authority,
//! inconvenient times and places, the customer's own offer, per-account negotiation limits.
//!
//! They travel with the customer ([`crate::Customer::facts`]), are stored as one JSON
//! document per customer, edited by a collector (or a manager for the limits) with an audit
//! event, imported from a facts file, and read by policy conditions. Every field defaults to
//! "nothing known", so an account without facts is judged as before.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::customer::Channel;
use crate::money::Currency;

/// The most free text one fact may carry (a name, a note).
pub const MAX_FACT_TEXT: usize = 200;
/// The most entries one list of facts may hold (windows, addresses, acknowledgements).
pub const MAX_FACT_ENTRIES: usize = 64;

/// Facts about one customer's account. See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountFacts {
    // ---- Recognised in what the customer wrote, awaiting a person ---------------------
    /// The customer asked us to stop contacting them; a person has not yet confirmed it
    /// (confirming sets [`crate::CustomerFlags::cease_contact`]). Stops contact meanwhile.
    pub cease_contact_pending: bool,
    /// The customer mentioned a lawyer or attorney but no representation is confirmed.
    /// Stops direct contact until a person confirms (the attorney flag) or clears it.
    pub attorney_suspected: bool,
    /// The attorney's name and contact, when known.
    pub attorney_name: Option<String>,
    /// The customer disputed the debt or asked for proof; a person has not yet opened the
    /// dispute case or cleared it. Collection stops meanwhile.
    pub dispute_pending: bool,
    /// The customer said they are in bankruptcy (or an insolvency procedure); not yet
    /// confirmed. Collection stops meanwhile.
    pub bankruptcy_reported: bool,
    /// Someone wrote that the debtor has died; not yet confirmed.
    pub deceased_reported: bool,
    /// The last message came from someone other than the debtor (a relative, a carer, a
    /// third party); nothing about the debt may go back to that writer.
    pub third_party_writer: bool,

    // ---- US validation notice ----------------------------------------------------------
    /// When and how the validation notice (12 CFR 1006.34) was sent.
    pub validation_notice: Option<ValidationNotice>,

    // ---- Limitation ----------------------------------------------------------------------
    /// The state, nation or province whose limitation period applies (e.g. `NY`, `scotland`);
    /// the policy pack maps regions to periods.
    pub region: Option<String>,
    /// The last written acknowledgement of the whole debt.
    pub acknowledged_on: Option<NaiveDate>,
    /// The last written acknowledgement per invoice number.
    pub invoice_acknowledged_on: BTreeMap<String, NaiveDate>,

    // ---- Litigation --------------------------------------------------------------------
    /// The creditor has authorised legal proceedings on this account. Without it any
    /// mention of suit, court or enforcement threatens an action that is not intended.
    pub litigation_authorised: bool,

    // ---- How and when the customer may be contacted ------------------------------------
    /// Times the customer said are inconvenient, in their own time zone.
    pub inconvenient_times: Vec<LocalWindow>,
    /// The customer's employer prohibits (or the customer refused) contact at work.
    pub no_workplace_contact: bool,
    /// Addresses (email) known to be at the customer's workplace.
    pub workplace_addresses: Vec<String>,
    /// The channel the customer asked to be contacted on.
    pub preferred_channel: Option<Channel>,
    /// The customer's out-of-office reply says they are away until this date (their
    /// local date): no contact before it. Set by inbound mail processing.
    pub contact_paused_until: Option<NaiveDate>,
    /// Email addresses that bounced permanently (lowercased): no email to them until a
    /// person removes them. Set by inbound mail processing.
    pub undeliverable_emails: Vec<String>,

    // ---- Negotiation -------------------------------------------------------------------
    /// The customer's own repayment offer, and whether an income and expenditure
    /// statement backs it (UK CONC 7.3).
    pub customer_offer: Option<CustomerOffer>,
    /// A manager's per-account negotiation limits, replacing the pack's range where set.
    pub limits: Option<LimitOverride>,
}

/// When and how the validation notice was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationNotice {
    pub sent_on: NaiveDate,
    pub channel: Channel,
}

/// A span of the customer's local day, `from` inclusive to `to` exclusive; when `to` is
/// not after `from` the span crosses midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalWindow {
    pub from: NaiveTime,
    pub to: NaiveTime,
}

impl LocalWindow {
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.from < self.to {
            t >= self.from && t < self.to
        } else {
            t >= self.from || t < self.to
        }
    }
}

/// The customer's own offer: `amount_minor` every `every_days` days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerOffer {
    pub amount_minor: i64,
    pub currency: Currency,
    #[serde(default = "monthly")]
    pub every_days: u32,
    /// An income and expenditure statement supports the offer.
    #[serde(default)]
    pub income_expenditure: bool,
    pub received_on: NaiveDate,
}

fn monthly() -> u32 {
    30
}

/// A manager's limits for one account; unset terms keep the pack's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitOverride {
    /// Basis points (1000 = 10%).
    pub max_discount_bps: Option<u32>,
    pub max_installments: Option<u32>,
    /// Basis points of what the plan collects.
    pub min_down_payment_bps: Option<u32>,
    pub max_plan_days: Option<u32>,
    /// Why, in the manager's words.
    pub note: Option<String>,
}

impl AccountFacts {
    /// Whether anything recognised in the customer's messages still waits for a person.
    pub fn has_pending_signal(&self) -> bool {
        self.cease_contact_pending
            || self.attorney_suspected
            || self.dispute_pending
            || self.bankruptcy_reported
            || self.deceased_reported
            || self.third_party_writer
    }

    /// The last written acknowledgement of `invoice`: its own, or the account's, whichever
    /// is later.
    pub fn acknowledged(&self, invoice: &str) -> Option<NaiveDate> {
        let own = self.invoice_acknowledged_on.get(invoice).copied();
        match (own, self.acknowledged_on) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Only the facts that are set, as JSON: what the agent is shown. `false`, `null`,
    /// empty lists and maps are left out (serde-driven, so a new field needs nothing here).
    pub fn set_json(&self) -> serde_json::Value {
        fn prune(v: serde_json::Value) -> Option<serde_json::Value> {
            use serde_json::Value;
            match v {
                Value::Null | Value::Bool(false) => None,
                Value::Array(a) if a.is_empty() => None,
                Value::Object(m) => {
                    let m: serde_json::Map<String, Value> = m
                        .into_iter()
                        .filter_map(|(k, v)| prune(v).map(|v| (k, v)))
                        .collect();
                    (!m.is_empty()).then_some(Value::Object(m))
                }
                other => Some(other),
            }
        }
        serde_json::to_value(self)
            .ok()
            .and_then(prune)
            .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()))
    }

    /// The top-level fields that differ between `before` and `after`, each with its value
    /// before and after (JSON): what an audit event records.
    pub fn changed_fields(
        before: &AccountFacts,
        after: &AccountFacts,
    ) -> BTreeMap<String, (serde_json::Value, serde_json::Value)> {
        let (b, a) = (
            serde_json::to_value(before).unwrap_or_default(),
            serde_json::to_value(after).unwrap_or_default(),
        );
        let mut out = BTreeMap::new();
        if let (Some(b), Some(a)) = (b.as_object(), a.as_object()) {
            for (k, av) in a {
                let bv = b.get(k).cloned().unwrap_or_default();
                if &bv != av {
                    out.insert(k.clone(), (bv, av.clone()));
                }
            }
        }
        out
    }

    /// The days the US validation period lasts after the notice is sent: 30 days to dispute
    /// plus 5 days presumed for it to arrive (12 CFR 1006.34(b)(5)).
    pub const VALIDATION_PERIOD_DAYS: u64 = 35;

    /// The last day of the validation period, if a notice was sent.
    pub fn validation_period_ends(&self) -> Option<NaiveDate> {
        self.validation_notice.and_then(|v| {
            v.sent_on
                .checked_add_days(chrono::Days::new(Self::VALIDATION_PERIOD_DAYS))
        })
    }

    /// Every fact that is set, in plain words, for the account page (one line each).
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        let flags: [(bool, &str); 6] = [
            (
                self.cease_contact_pending,
                "Asked us to stop contacting them; a person has not yet confirmed it (contact stops meanwhile).",
            ),
            (
                self.attorney_suspected,
                "Mentioned a lawyer; representation is not confirmed (no direct contact meanwhile).",
            ),
            (
                self.dispute_pending,
                "Disputed the debt or asked for proof; not yet opened as a dispute or cleared (collection stops meanwhile).",
            ),
            (
                self.bankruptcy_reported,
                "Reported bankruptcy or insolvency; not yet confirmed (collection stops meanwhile).",
            ),
            (
                self.deceased_reported,
                "Someone reported that the debtor has died; not yet confirmed.",
            ),
            (
                self.third_party_writer,
                "The last message came from someone other than the debtor; nothing about the debt goes back to that writer.",
            ),
        ];
        out.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, s)| s.to_string()),
        );
        if let Some(n) = &self.attorney_name {
            out.push(format!("Attorney: {n}."));
        }
        if let Some(v) = &self.validation_notice {
            let ends = self
                .validation_period_ends()
                .map_or_else(String::new, |d| format!("; validation period ends {d}"));
            out.push(format!(
                "Validation notice sent {} by {}{ends}.",
                v.sent_on, v.channel
            ));
        }
        if let Some(r) = &self.region {
            out.push(format!("Limitation period of region {r}."));
        }
        if let Some(d) = self.acknowledged_on {
            out.push(format!("Debt last acknowledged in writing on {d}."));
        }
        for (n, d) in &self.invoice_acknowledged_on {
            out.push(format!("Invoice {n} last acknowledged in writing on {d}."));
        }
        out.push(if self.litigation_authorised {
            "The creditor has authorised legal proceedings.".to_string()
        } else {
            "Legal proceedings are not authorised: no mention of suit, court or enforcement."
                .to_string()
        });
        if !self.inconvenient_times.is_empty() {
            let ws: Vec<String> = self
                .inconvenient_times
                .iter()
                .map(|w| format!("{}-{}", w.from.format("%H:%M"), w.to.format("%H:%M")))
                .collect();
            out.push(format!(
                "Inconvenient times (their local time): {}.",
                ws.join(", ")
            ));
        }
        if self.no_workplace_contact {
            out.push("No contact at their workplace.".to_string());
        }
        if !self.workplace_addresses.is_empty() {
            out.push(format!(
                "Workplace addresses: {}.",
                self.workplace_addresses.join(", ")
            ));
        }
        if let Some(c) = self.preferred_channel {
            out.push(format!("Prefers to be contacted by {c}."));
        }
        if let Some(d) = self.contact_paused_until {
            out.push(format!(
                "Away (out-of-office reply) until {d}: no contact before then."
            ));
        }
        if !self.undeliverable_emails.is_empty() {
            out.push(format!(
                "Undeliverable email addresses (bounced): {}.",
                self.undeliverable_emails.join(", ")
            ));
        }
        if let Some(o) = &self.customer_offer {
            let amount = crate::money::Money::new(o.amount_minor, o.currency);
            let ie = if o.income_expenditure {
                ", backed by an income and expenditure statement"
            } else {
                ", without an income and expenditure statement"
            };
            out.push(format!(
                "Offered {amount} every {} days{ie} (received {}).",
                o.every_days, o.received_on
            ));
        }
        if let Some(l) = &self.limits {
            let pct = |b: u32| format!("{}.{:02}%", b / 100, b % 100);
            let mut terms = Vec::new();
            if let Some(b) = l.max_discount_bps {
                terms.push(format!("discount at most {}", pct(b)));
            }
            if let Some(n) = l.max_installments {
                terms.push(format!("at most {n} instalments"));
            }
            if let Some(b) = l.min_down_payment_bps {
                terms.push(format!("down payment at least {}", pct(b)));
            }
            if let Some(d) = l.max_plan_days {
                terms.push(format!("plans at most {d} days"));
            }
            if terms.is_empty() {
                terms.push("the pack's".to_string());
            }
            let note = l
                .note
                .as_ref()
                .map_or_else(String::new, |n| format!(" ({n})"));
            out.push(format!(
                "Negotiation limits for this account: {}{note}.",
                terms.join(", ")
            ));
        }
        out
    }

    /// Every problem with these facts, each naming the field (`/path`), or nothing.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut out = Vec::new();
        let mut date = |name: &str, d: NaiveDate| {
            if let Err(e) = bounds::check_date(name, d) {
                out.push(e.to_string());
            }
        };
        if let Some(v) = &self.validation_notice {
            date("/validation_notice/sent_on", v.sent_on);
        }
        if let Some(d) = self.acknowledged_on {
            date("/acknowledged_on", d);
        }
        for (n, d) in &self.invoice_acknowledged_on {
            date(&format!("/invoice_acknowledged_on/{n}"), *d);
        }
        if let Some(o) = &self.customer_offer {
            date("/customer_offer/received_on", o.received_on);
        }
        if let Some(d) = self.contact_paused_until {
            date("/contact_paused_until", d);
        }
        let text = |name: &str, s: &str, out: &mut Vec<String>| {
            if s.chars().count() > MAX_FACT_TEXT {
                out.push(format!("{name}: longer than {MAX_FACT_TEXT} characters"));
            }
            if s.chars().any(char::is_control) {
                out.push(format!("{name}: contains control characters"));
            }
        };
        if let Some(n) = &self.attorney_name {
            text("/attorney_name", n, &mut out);
        }
        if let Some(r) = &self.region {
            text("/region", r, &mut out);
            if r.trim().is_empty() {
                out.push("/region: empty".to_string());
            }
        }
        for (i, a) in self.workplace_addresses.iter().enumerate() {
            text(&format!("/workplace_addresses/{i}"), a, &mut out);
            if !a.contains('@') {
                out.push(format!(
                    "/workplace_addresses/{i}: '{a}' is not an email address"
                ));
            }
        }
        for (i, a) in self.undeliverable_emails.iter().enumerate() {
            text(&format!("/undeliverable_emails/{i}"), a, &mut out);
            if !a.contains('@') {
                out.push(format!(
                    "/undeliverable_emails/{i}: '{a}' is not an email address"
                ));
            }
        }
        for (name, n) in [
            ("/undeliverable_emails", self.undeliverable_emails.len()),
            ("/inconvenient_times", self.inconvenient_times.len()),
            ("/workplace_addresses", self.workplace_addresses.len()),
            (
                "/invoice_acknowledged_on",
                self.invoice_acknowledged_on.len(),
            ),
        ] {
            if n > MAX_FACT_ENTRIES {
                out.push(format!("{name}: more than {MAX_FACT_ENTRIES} entries"));
            }
        }
        for (i, w) in self.inconvenient_times.iter().enumerate() {
            if w.from == w.to {
                out.push(format!(
                    "/inconvenient_times/{i}: 'from' and 'to' are both {}",
                    w.from.format("%H:%M")
                ));
            }
        }
        if let Some(o) = &self.customer_offer {
            if o.amount_minor <= 0 || o.amount_minor > bounds::MAX_AMOUNT_MINOR {
                out.push(format!(
                    "/customer_offer/amount_minor: {} is not within 1..={}",
                    o.amount_minor,
                    bounds::MAX_AMOUNT_MINOR
                ));
            }
            if o.every_days == 0 || o.every_days > bounds::MAX_PERIOD_DAYS {
                out.push(format!(
                    "/customer_offer/every_days: {} is not within 1..={}",
                    o.every_days,
                    bounds::MAX_PERIOD_DAYS
                ));
            }
        }
        if let Some(l) = &self.limits {
            for (name, bps) in [
                ("/limits/max_discount_bps", l.max_discount_bps),
                ("/limits/min_down_payment_bps", l.min_down_payment_bps),
            ] {
                if let Some(b) = bps
                    && b > 10_000
                {
                    out.push(format!("{name}: {b} is more than 10000 (100%)"));
                }
            }
            if let Some(d) = l.max_plan_days
                && d > bounds::MAX_PERIOD_DAYS
            {
                out.push(format!(
                    "/limits/max_plan_days: {d} is more than {}",
                    bounds::MAX_PERIOD_DAYS
                ));
            }
            if let Some(n) = &l.note {
                text("/limits/note", n, &mut out);
            }
        }
        if out.is_empty() { Ok(()) } else { Err(out) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_document_is_no_facts_and_unknown_fields_are_refused() {
        let f: AccountFacts = serde_json::from_str("{}").unwrap();
        assert_eq!(f, AccountFacts::default());
        assert!(!f.has_pending_signal());
        let e = serde_json::from_str::<AccountFacts>(r#"{"ceasecontact": true}"#).unwrap_err();
        assert!(e.to_string().contains("ceasecontact"), "{e}");
    }

    #[test]
    fn windows_may_cross_midnight() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let day = LocalWindow {
            from: t(9, 0),
            to: t(17, 0),
        };
        assert!(day.contains(t(9, 0)) && day.contains(t(16, 59)) && !day.contains(t(17, 0)));
        let night = LocalWindow {
            from: t(22, 0),
            to: t(7, 0),
        };
        assert!(night.contains(t(23, 30)) && night.contains(t(6, 0)) && !night.contains(t(12, 0)));
    }

    #[test]
    fn acknowledgement_is_the_later_of_invoice_and_account() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let mut f = AccountFacts {
            acknowledged_on: Some(d("2020-01-01")),
            ..AccountFacts::default()
        };
        f.invoice_acknowledged_on
            .insert("A".into(), d("2021-06-01"));
        assert_eq!(f.acknowledged("A"), Some(d("2021-06-01")));
        assert_eq!(f.acknowledged("B"), Some(d("2020-01-01")));
    }

    #[test]
    fn facts_are_described_in_plain_words_and_only_set_ones_shown_as_json() {
        let f: AccountFacts = serde_json::from_value(serde_json::json!({
            "validation_notice": {"sent_on": "2026-01-05", "channel": "letter"},
            "limits": {"max_discount_bps": 1250}
        }))
        .unwrap();
        let words = f.describe().join("\n");
        assert!(
            words.contains(
                "Validation notice sent 2026-01-05 by letter; validation period ends 2026-02-09."
            ),
            "{words}"
        );
        assert!(words.contains("discount at most 12.50%"), "{words}");
        assert!(
            words.contains("Legal proceedings are not authorised"),
            "{words}"
        );
        assert_eq!(
            f.set_json(),
            serde_json::json!({
                "validation_notice": {"sent_on": "2026-01-05", "channel": "letter"},
                "limits": {"max_discount_bps": 1250}
            })
        );
        assert_eq!(AccountFacts::default().set_json(), serde_json::json!({}));
        let changed = AccountFacts::changed_fields(&AccountFacts::default(), &f);
        assert_eq!(
            changed.keys().collect::<Vec<_>>(),
            ["limits", "validation_notice"]
        );
        assert_eq!(changed["limits"].0, serde_json::Value::Null);
    }

    #[test]
    fn check_names_each_bad_field() {
        let f: AccountFacts = serde_json::from_value(serde_json::json!({
            "acknowledged_on": "1900-01-01",
            "workplace_addresses": ["not-an-address"],
            "inconvenient_times": [{"from": "09:00:00", "to": "09:00:00"}],
            "customer_offer": {"amount_minor": 0, "currency": "GBP", "received_on": "2026-01-01"},
            "limits": {"max_discount_bps": 20000}
        }))
        .unwrap();
        let problems = f.check().unwrap_err().join("\n");
        for needle in [
            "/acknowledged_on",
            "/workplace_addresses/0",
            "/inconvenient_times/0",
            "/customer_offer/amount_minor",
            "/limits/max_discount_bps",
        ] {
            assert!(
                problems.contains(needle),
                "{needle} missing from:\n{problems}"
            );
        }
    }
}
