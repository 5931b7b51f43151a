//! Customers (debtors), their contacts and the flags that stop or shape collection.

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// How much the business values the relationship; drives tone and negotiation ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Strategic,
    Standard,
    Small,
}

/// Which regulatory pack governs collection from this customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Jurisdiction {
    /// US consumer debt: FDCPA and Regulation F (12 CFR part 1006).
    UsConsumer,
    /// UK consumer credit: FCA CONC 7.
    UkConsumer,
    /// Business-to-business commercial receivables.
    B2b,
}

/// Declares `ALL`, `as_str`, `Display` and `FromStr` for a string-backed enum. Shared by
/// the crates that store or print these enums, so every one parses and errs the same way.
#[macro_export]
macro_rules! str_enum {
    ($ty:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            pub fn as_str(&self) -> &'static str {
                match self { $($ty::$variant => $s),+ }
            }
        }
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl ::std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($ty::$variant),)+
                    _ => Err(format!(
                        "'{}' is not a {} (expected one of: {})",
                        s,
                        stringify!($ty).to_lowercase(),
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}
pub(crate) use crate::str_enum;

str_enum!(Tier { Strategic => "strategic", Standard => "standard", Small => "small" });
str_enum!(Jurisdiction { UsConsumer => "us-consumer", UkConsumer => "uk-consumer", B2b => "b2b" });

/// A way to reach the debtor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Phone,
    Sms,
    Letter,
}
str_enum!(Channel { Email => "email", Phone => "phone", Sms => "sms", Letter => "letter" });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Channels this contact asked not to be reached on.
    pub opted_out: Vec<Channel>,
}

impl Contact {
    pub fn allows(&self, channel: Channel) -> bool {
        !self.opted_out.contains(&channel)
    }
}

/// Facts that stop or restrict collection activity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerFlags {
    /// The debtor asked in writing that we stop contacting them (FDCPA 805(c)).
    pub cease_contact: bool,
    /// The debtor disputes the debt as a whole; collection pauses until verified.
    pub disputed: bool,
    /// The debtor is in a bankruptcy proceeding (automatic stay).
    pub bankrupt: bool,
    /// The debtor is represented by an attorney; contact goes to the attorney only.
    pub attorney_represented: bool,
}

impl CustomerFlags {
    pub const NAMES: &'static [&'static str] = &[
        "cease_contact",
        "disputed",
        "bankrupt",
        "attorney_represented",
    ];

    /// Parses a `;`-separated list such as `cease_contact;bankrupt` (empty means none).
    pub fn parse_list(s: &str) -> Result<CustomerFlags, String> {
        let mut flags = CustomerFlags::default();
        for name in s.split(';').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "cease_contact" => flags.cease_contact = true,
                "disputed" => flags.disputed = true,
                "bankrupt" => flags.bankrupt = true,
                "attorney_represented" => flags.attorney_represented = true,
                other => {
                    return Err(format!(
                        "'{other}' is not a customer flag (expected any of: {})",
                        Self::NAMES.join(", ")
                    ));
                }
            }
        }
        Ok(flags)
    }

    pub fn to_list(&self) -> String {
        let on = [
            self.cease_contact,
            self.disputed,
            self.bankrupt,
            self.attorney_represented,
        ];
        Self::NAMES
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(";")
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// The ERP's customer number; stable across imports.
    pub id: String,
    pub name: String,
    pub tier: Tier,
    pub jurisdiction: Jurisdiction,
    /// The debtor's local time zone; contact rules (quiet hours) are judged in it.
    pub time_zone: Tz,
    pub contacts: Vec<Contact>,
    pub flags: CustomerFlags,
    /// What else a policy must know about the account (see [`crate::facts`]).
    #[serde(default)]
    pub facts: crate::facts::AccountFacts,
}

impl Customer {
    pub fn primary_contact(&self) -> Option<&Contact> {
        self.contacts.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_and_reject_unknown_names() {
        let f = CustomerFlags::parse_list("bankrupt; cease_contact").unwrap();
        assert!(f.bankrupt && f.cease_contact && !f.disputed);
        assert_eq!(f.to_list(), "cease_contact;bankrupt");
        assert_eq!(
            CustomerFlags::parse_list("").unwrap(),
            CustomerFlags::default()
        );
        let err = CustomerFlags::parse_list("vip").unwrap_err();
        assert!(
            err.contains("'vip'") && err.contains("attorney_represented"),
            "{err}"
        );
    }

    #[test]
    fn enums_parse_their_own_names_only() {
        for t in Tier::ALL {
            assert_eq!(t.as_str().parse::<Tier>().unwrap(), *t);
        }
        assert_eq!(
            "uk-consumer".parse::<Jurisdiction>().unwrap(),
            Jurisdiction::UkConsumer
        );
        assert!(
            "UK".parse::<Jurisdiction>()
                .unwrap_err()
                .contains("us-consumer")
        );
    }
}
