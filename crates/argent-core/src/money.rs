//! Money as integer minor units plus an ISO 4217 currency. Never floats.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// An ISO 4217 alphabetic currency code, validated to three ASCII upper-case letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const USD: Currency = Currency(*b"USD");
    pub const GBP: Currency = Currency(*b"GBP");
    pub const EUR: Currency = Currency(*b"EUR");

    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII upper-case letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Number of digits after the decimal point (ISO 4217 exponent).
    pub fn exponent(&self) -> u32 {
        match &self.0 {
            b"JPY" | b"KRW" | b"CLP" | b"ISK" | b"VND" | b"XAF" | b"XOF" | b"UGX" | b"PYG" => 0,
            b"BHD" | b"KWD" | b"OMR" | b"JOD" | b"TND" | b"IQD" | b"LYD" => 3,
            _ => 2,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("'{0}' is not a currency code (expected three upper-case letters, e.g. USD)")]
    BadCurrency(String),
    #[error(
        "'{0}' is not an amount (expected digits with an optional '.' and at most {1} decimals)"
    )]
    BadAmount(String, u32),
    #[error("amount '{0}' is too large")]
    Overflow(String),
    #[error("currency mismatch: {0} vs {1}")]
    CurrencyMismatch(Currency, Currency),
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(|c| c.is_ascii_uppercase()) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(MoneyError::BadCurrency(s.to_string()))
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An amount in integer minor units (cents, pence) of one currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub const fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    pub const fn zero(currency: Currency) -> Money {
        Money { minor: 0, currency }
    }

    /// Parses a decimal amount such as `1234.5` or `-12.34` into minor units of `currency`.
    /// More decimals than the currency has is an error, never a rounding.
    pub fn parse(amount: &str, currency: Currency) -> Result<Money, MoneyError> {
        let exp = currency.exponent();
        let bad = || MoneyError::BadAmount(amount.to_string(), exp);
        let s = amount.trim();
        let (neg, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (whole, frac) = match digits.split_once('.') {
            Some((w, f)) => (w, f),
            None => (digits, ""),
        };
        if whole.is_empty() && frac.is_empty()
            || !whole.bytes().all(|c| c.is_ascii_digit())
            || !frac.bytes().all(|c| c.is_ascii_digit())
            || frac.len() > exp as usize
            || (digits.contains('.') && frac.is_empty())
        {
            return Err(bad());
        }
        let overflow = || MoneyError::Overflow(amount.to_string());
        let mut minor: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| overflow())?
        };
        minor = minor.checked_mul(10_i64.pow(exp)).ok_or_else(overflow)?;
        if !frac.is_empty() {
            let f: i64 = frac.parse().map_err(|_| bad())?;
            let scale = 10_i64.pow(exp - frac.len() as u32);
            minor = minor.checked_add(f * scale).ok_or_else(overflow)?;
        }
        Ok(Money::new(if neg { -minor } else { minor }, currency))
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        self.minor
            .checked_add(other.minor)
            .map(|m| Money::new(m, self.currency))
            .ok_or_else(|| MoneyError::Overflow(format!("{self} + {other}")))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        self.minor
            .checked_sub(other.minor)
            .map(|m| Money::new(m, self.currency))
            .ok_or_else(|| MoneyError::Overflow(format!("{self} - {other}")))
    }

    fn same(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }

    pub fn is_positive(&self) -> bool {
        self.minor > 0
    }

    /// The amount as a decimal string without the currency, e.g. `1234.50`.
    pub fn amount_string(&self) -> String {
        let exp = self.currency.exponent();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if exp == 0 {
            return format!("{sign}{abs}");
        }
        let scale = 10_u64.pow(exp);
        format!(
            "{sign}{}.{:0width$}",
            abs / scale,
            abs % scale,
            width = exp as usize
        )
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.currency, self.amount_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_decimal_amounts_exactly() {
        assert_eq!(
            Money::parse("1234.56", Currency::USD).unwrap().minor,
            123456
        );
        assert_eq!(Money::parse("12.5", Currency::USD).unwrap().minor, 1250);
        assert_eq!(Money::parse("-0.07", Currency::GBP).unwrap().minor, -7);
        assert_eq!(Money::parse("100", Currency::EUR).unwrap().minor, 10000);
        let jpy: Currency = "JPY".parse().unwrap();
        assert_eq!(Money::parse("5000", jpy).unwrap().minor, 5000);
        let kwd: Currency = "KWD".parse().unwrap();
        assert_eq!(Money::parse("1.234", kwd).unwrap().minor, 1234);
    }

    #[test]
    fn rejects_what_is_not_an_amount() {
        for bad in [
            "", ".", "1.", "1.234", "1,000.00", "abc", "1e5", "--1", " 1 2",
        ] {
            assert!(Money::parse(bad, Currency::USD).is_err(), "{bad:?} parsed");
        }
        assert!(Money::parse("1.5", "JPY".parse().unwrap()).is_err());
        assert!(matches!(
            Money::parse("99999999999999999999", Currency::USD),
            Err(MoneyError::Overflow(_))
        ));
    }

    #[test]
    fn currency_codes_are_validated() {
        assert!("usd".parse::<Currency>().is_err());
        assert!("US".parse::<Currency>().is_err());
        assert_eq!("GBP".parse::<Currency>().unwrap(), Currency::GBP);
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies() {
        let a = Money::new(100, Currency::USD);
        let b = Money::new(100, Currency::GBP);
        assert_eq!(
            a.checked_add(b),
            Err(MoneyError::CurrencyMismatch(Currency::USD, Currency::GBP))
        );
        assert_eq!(a.checked_sub(a).unwrap().minor, 0);
    }

    #[test]
    fn currency_codes_are_iso_4217_with_their_minor_units() {
        for not_iso in ["XYZ", "ABC", "XAU", "XXX", "XTS", "XDR"] {
            assert!(not_iso.parse::<Currency>().is_err(), "{not_iso} parsed");
        }
        let exp = |c: &str| c.parse::<Currency>().unwrap().exponent();
        assert_eq!(exp("USD"), 2);
        assert_eq!(exp("JPY"), 0);
        assert_eq!(exp("BIF"), 0);
        assert_eq!(exp("XPF"), 0);
        assert_eq!(exp("VUV"), 0);
        assert_eq!(exp("KWD"), 3);
        assert_eq!(exp("CLF"), 4);
        assert_eq!(exp("UYW"), 4);
    }

    proptest! {
        #[test]
        fn display_round_trips(minor in -10_000_000_000_i64..10_000_000_000) {
            let m = Money::new(minor, Currency::USD);
            prop_assert_eq!(Money::parse(&m.amount_string(), Currency::USD).unwrap(), m);
        }
    }
}
