//! What the customer said that changes what we may do: the kinds of signal the inbound
//! classifier (`argent_policy::inbound`) recognises, the fact each sets on the account at
//! once, and what a person's confirmation or clearing does to it.
//!
//! Recognising a signal sets a *pending* fact (the policy stops collection email on it);
//! only a person turns it into the confirmed flag, or clears it. Pure: the store keeps the
//! signal rows, the agent applies these functions inside one transaction.

use serde::{Deserialize, Serialize};

use crate::customer::{Channel, Customer};
use crate::facts::MAX_FACT_TEXT;

/// A kind of signal recognised in what the customer wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// "STOP", "unsubscribe", "don't email me": the sender opts out of email.
    OptOut,
    /// "stop contacting me", "cease all communication", "leave me alone".
    CeaseContact,
    /// "I don't owe this", "send me proof", "validate this debt", "I dispute".
    Dispute,
    /// "my lawyer", "my attorney is Jane Roe of …": representation suspected.
    Attorney,
    /// "I filed for bankruptcy", "chapter 7", "IVA", "in administration".
    Bankruptcy,
    /// "passed away", "estate of": the debtor is reported to have died.
    Deceased,
    /// "I'm writing on behalf of my mother", "I am her carer".
    ThirdParty,
}
crate::str_enum!(SignalKind {
    OptOut => "opt_out",
    CeaseContact => "cease_contact",
    Dispute => "dispute",
    Attorney => "attorney",
    Bankruptcy => "bankruptcy",
    Deceased => "deceased",
    ThirdParty => "third_party",
});

/// Where a signal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalStatus {
    Pending,
    Confirmed,
    Cleared,
}
crate::str_enum!(SignalStatus {
    Pending => "pending",
    Confirmed => "confirmed",
    Cleared => "cleared",
});

/// What a person decides about a pending signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalVerdict {
    Confirm,
    Clear,
}

impl SignalVerdict {
    pub fn status(self) -> SignalStatus {
        match self {
            SignalVerdict::Confirm => SignalStatus::Confirmed,
            SignalVerdict::Clear => SignalStatus::Cleared,
        }
    }
}

/// What recognising a signal changed beyond the pending fact, kept with the signal so that
/// a person's decision undoes exactly that.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalDetail {
    /// Opt-out: the contacts (by email address) whose `opted_out` gained `email` because of
    /// this signal (not those that had opted out already).
    pub opted_out: Vec<String>,
    /// Attorney: the name the customer gave, if any.
    pub attorney_name: Option<String>,
}

impl SignalKind {
    /// Sets the fact this signal stands for on `customer`, at once. `sender` is the
    /// address the message came from. Opt-out: the contact with that address opts out of
    /// email, or every contact when the sender is not one. Returns what changed beyond
    /// the pending fact.
    pub fn recognise(
        self,
        customer: &mut Customer,
        sender: &str,
        attorney_name: Option<&str>,
    ) -> SignalDetail {
        let mut detail = SignalDetail::default();
        let facts = &mut customer.facts;
        match self {
            SignalKind::OptOut => {
                let is_sender = |c: &crate::Contact| {
                    c.email
                        .as_deref()
                        .is_some_and(|e| e.trim().eq_ignore_ascii_case(sender.trim()))
                };
                let sender_on_file = customer.contacts.iter().any(is_sender);
                for c in customer
                    .contacts
                    .iter_mut()
                    .filter(|c| !sender_on_file || is_sender(c))
                {
                    if !c.opted_out.contains(&Channel::Email) {
                        c.opted_out.push(Channel::Email);
                        if let Some(e) = &c.email {
                            detail.opted_out.push(e.clone());
                        }
                    }
                }
            }
            SignalKind::CeaseContact => facts.cease_contact_pending = true,
            SignalKind::Attorney => {
                facts.attorney_suspected = true;
                if let Some(name) = attorney_name.map(clean_name).filter(|n| !n.is_empty()) {
                    if facts.attorney_name.is_none() {
                        facts.attorney_name = Some(name.clone());
                    }
                    detail.attorney_name = Some(name);
                }
            }
            SignalKind::Dispute => facts.dispute_pending = true,
            SignalKind::Bankruptcy => facts.bankruptcy_reported = true,
            SignalKind::Deceased => facts.deceased_reported = true,
            SignalKind::ThirdParty => facts.third_party_writer = true,
        }
        detail
    }

    /// A person's decision on one signal of this kind. `others_pending` says whether
    /// another signal of the same kind on this customer is still pending (then the pending
    /// fact stays: it stands for all of them).
    ///
    /// Confirm: cease → `flags.cease_contact`; attorney → `flags.attorney_represented`;
    /// dispute → `flags.disputed` (the whole account, until verification; a collector may
    /// narrow it to invoices with a dispute case); bankruptcy → `flags.bankrupt`; deceased
    /// → `flags.cease_contact` (collection from the debtor ends; the estate is handled by
    /// a person); opt-out stays opted out; third party → nothing more (a person has dealt
    /// with the writer's authority; the writer is still not a contact on file unless a
    /// person adds them). Clear: the pending fact goes; a cleared opt-out gives the
    /// contacts it opted out their email back.
    pub fn decide(
        self,
        verdict: SignalVerdict,
        customer: &mut Customer,
        detail: &SignalDetail,
        others_pending: bool,
    ) {
        let confirm = verdict == SignalVerdict::Confirm;
        let flags = &mut customer.flags;
        let facts = &mut customer.facts;
        match self {
            SignalKind::OptOut => {
                if !confirm {
                    for c in customer.contacts.iter_mut().filter(|c| {
                        c.email.as_deref().is_some_and(|e| {
                            detail.opted_out.iter().any(|o| o.eq_ignore_ascii_case(e))
                        })
                    }) {
                        c.opted_out.retain(|ch| *ch != Channel::Email);
                    }
                }
            }
            SignalKind::CeaseContact => {
                flags.cease_contact |= confirm;
                facts.cease_contact_pending = others_pending;
            }
            SignalKind::Attorney => {
                flags.attorney_represented |= confirm;
                facts.attorney_suspected = others_pending;
                if !confirm && !others_pending && !flags.attorney_represented {
                    facts.attorney_name = None;
                }
            }
            SignalKind::Dispute => {
                flags.disputed |= confirm;
                facts.dispute_pending = others_pending;
            }
            SignalKind::Bankruptcy => {
                flags.bankrupt |= confirm;
                facts.bankruptcy_reported = others_pending;
            }
            SignalKind::Deceased => {
                flags.cease_contact |= confirm;
                facts.deceased_reported = others_pending;
            }
            SignalKind::ThirdParty => facts.third_party_writer = others_pending,
        }
    }
}

/// A name as the facts keep it: no control characters, at most [`MAX_FACT_TEXT`]
/// characters.
fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(MAX_FACT_TEXT)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Contact, CustomerFlags, Jurisdiction, Tier};

    fn customer() -> Customer {
        let contact = |name: &str, email: &str| Contact {
            name: name.into(),
            email: Some(email.into()),
            phone: None,
            opted_out: Vec::new(),
        };
        Customer {
            id: "C1".into(),
            name: "Dana".into(),
            tier: Tier::Standard,
            jurisdiction: Jurisdiction::UsConsumer,
            time_zone: chrono_tz::America::Chicago,
            contacts: vec![
                contact("Dana", "dana@example.com"),
                contact("Sam", "sam@example.com"),
            ],
            flags: CustomerFlags::default(),
            facts: Default::default(),
        }
    }

    #[test]
    fn an_opt_out_from_a_contact_is_theirs_and_clearing_gives_it_back() {
        let mut c = customer();
        let d = SignalKind::OptOut.recognise(&mut c, "DANA@example.com ", None);
        assert_eq!(d.opted_out, vec!["dana@example.com".to_string()]);
        assert!(!c.contacts[0].allows(Channel::Email));
        assert!(c.contacts[1].allows(Channel::Email));
        SignalKind::OptOut.decide(SignalVerdict::Clear, &mut c, &d, false);
        assert!(c.contacts[0].allows(Channel::Email));
    }

    #[test]
    fn an_opt_out_from_a_stranger_opts_out_every_contact_and_confirming_keeps_it() {
        let mut c = customer();
        c.contacts[1].opted_out.push(Channel::Email);
        let d = SignalKind::OptOut.recognise(&mut c, "someone@else.example", None);
        // Sam had opted out already: only Dana's opt-out is this signal's.
        assert_eq!(d.opted_out, vec!["dana@example.com".to_string()]);
        assert!(c.contacts.iter().all(|k| !k.allows(Channel::Email)));
        SignalKind::OptOut.decide(SignalVerdict::Confirm, &mut c, &d, false);
        assert!(c.contacts.iter().all(|k| !k.allows(Channel::Email)));
        SignalKind::OptOut.decide(SignalVerdict::Clear, &mut c, &d, false);
        assert!(c.contacts[0].allows(Channel::Email));
        assert!(
            !c.contacts[1].allows(Channel::Email),
            "Sam's own opt-out stays"
        );
    }

    #[test]
    fn confirming_turns_each_pending_fact_into_its_flag() {
        for (kind, flag) in [
            (
                SignalKind::CeaseContact,
                (|f: &CustomerFlags| f.cease_contact) as fn(&CustomerFlags) -> bool,
            ),
            (SignalKind::Attorney, |f| f.attorney_represented),
            (SignalKind::Dispute, |f| f.disputed),
            (SignalKind::Bankruptcy, |f| f.bankrupt),
            (SignalKind::Deceased, |f| f.cease_contact),
        ] {
            let mut c = customer();
            let d = kind.recognise(&mut c, "dana@example.com", Some("Jane Roe"));
            assert!(c.facts.has_pending_signal(), "{kind}");
            assert!(!flag(&c.flags), "{kind}: recognising must not confirm");
            kind.decide(SignalVerdict::Confirm, &mut c, &d, false);
            assert!(flag(&c.flags), "{kind}");
            assert!(!c.facts.has_pending_signal(), "{kind}");

            let mut c = customer();
            let d = kind.recognise(&mut c, "dana@example.com", None);
            kind.decide(SignalVerdict::Clear, &mut c, &d, false);
            assert_eq!(c.flags, CustomerFlags::default(), "{kind}");
            assert!(!c.facts.has_pending_signal(), "{kind}");
        }
    }

    #[test]
    fn a_pending_fact_stays_while_another_signal_of_its_kind_waits() {
        let mut c = customer();
        let d = SignalKind::Dispute.recognise(&mut c, "dana@example.com", None);
        SignalKind::Dispute.decide(SignalVerdict::Clear, &mut c, &d, true);
        assert!(c.facts.dispute_pending);
    }

    #[test]
    fn the_attorney_name_is_kept_once_and_cleaned() {
        let mut c = customer();
        let d = SignalKind::Attorney.recognise(&mut c, "x@y", Some(" Jane\u{7} Roe "));
        assert_eq!(d.attorney_name.as_deref(), Some("Jane Roe"));
        assert_eq!(c.facts.attorney_name.as_deref(), Some("Jane Roe"));
        assert!(c.facts.check().is_ok());
        SignalKind::Attorney.decide(SignalVerdict::Confirm, &mut c, &d, false);
        assert!(c.flags.attorney_represented && !c.facts.attorney_suspected);
        assert_eq!(c.facts.attorney_name.as_deref(), Some("Jane Roe"));
        let mut c = customer();
        SignalKind::ThirdParty.recognise(&mut c, "x@y", None);
        assert!(c.facts.third_party_writer);
        assert_eq!(
            "third_party".parse::<SignalKind>().unwrap(),
            SignalKind::ThirdParty
        );
    }
}
