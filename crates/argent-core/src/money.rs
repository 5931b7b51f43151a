//! Money as integer minor units plus an ISO 4217 currency. Never floats.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// An active ISO 4217 currency: its alphabetic code, one of [`ISO_4217`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

/// Every active ISO 4217 currency that has minor units, with their number (the exponent):
/// ISO 4217 list one as published on 2026-01-01, less the codes whose minor unit is "N.A."
/// (precious metals, bond-market units, the SDR, the ADB unit, Sucre, XTS and XXX), which
/// no invoice is written in. Funds codes with minor units (BOV, CHE, CHW, CLF, COU, MXV,
/// USN, UYI, UYW) are in. Sorted by code.
pub const ISO_4217: &[([u8; 3], u8)] = &[
    (*b"AED", 2),
    (*b"AFN", 2),
    (*b"ALL", 2),
    (*b"AMD", 2),
    (*b"AOA", 2),
    (*b"ARS", 2),
    (*b"AUD", 2),
    (*b"AWG", 2),
    (*b"AZN", 2),
    (*b"BAM", 2),
    (*b"BBD", 2),
    (*b"BDT", 2),
    (*b"BHD", 3),
    (*b"BIF", 0),
    (*b"BMD", 2),
    (*b"BND", 2),
    (*b"BOB", 2),
    (*b"BOV", 2),
    (*b"BRL", 2),
    (*b"BSD", 2),
    (*b"BTN", 2),
    (*b"BWP", 2),
    (*b"BYN", 2),
    (*b"BZD", 2),
    (*b"CAD", 2),
    (*b"CDF", 2),
    (*b"CHE", 2),
    (*b"CHF", 2),
    (*b"CHW", 2),
    (*b"CLF", 4),
    (*b"CLP", 0),
    (*b"CNY", 2),
    (*b"COP", 2),
    (*b"COU", 2),
    (*b"CRC", 2),
    (*b"CUP", 2),
    (*b"CVE", 2),
    (*b"CZK", 2),
    (*b"DJF", 0),
    (*b"DKK", 2),
    (*b"DOP", 2),
    (*b"DZD", 2),
    (*b"EGP", 2),
    (*b"ERN", 2),
    (*b"ETB", 2),
    (*b"EUR", 2),
    (*b"FJD", 2),
    (*b"FKP", 2),
    (*b"GBP", 2),
    (*b"GEL", 2),
    (*b"GHS", 2),
    (*b"GIP", 2),
    (*b"GMD", 2),
    (*b"GNF", 0),
    (*b"GTQ", 2),
    (*b"GYD", 2),
    (*b"HKD", 2),
    (*b"HNL", 2),
    (*b"HTG", 2),
    (*b"HUF", 2),
    (*b"IDR", 2),
    (*b"ILS", 2),
    (*b"INR", 2),
    (*b"IQD", 3),
    (*b"IRR", 2),
    (*b"ISK", 0),
    (*b"JMD", 2),
    (*b"JOD", 3),
    (*b"JPY", 0),
    (*b"KES", 2),
    (*b"KGS", 2),
    (*b"KHR", 2),
    (*b"KMF", 0),
    (*b"KPW", 2),
    (*b"KRW", 0),
    (*b"KWD", 3),
    (*b"KYD", 2),
    (*b"KZT", 2),
    (*b"LAK", 2),
    (*b"LBP", 2),
    (*b"LKR", 2),
    (*b"LRD", 2),
    (*b"LSL", 2),
    (*b"LYD", 3),
    (*b"MAD", 2),
    (*b"MDL", 2),
    (*b"MGA", 2),
    (*b"MKD", 2),
    (*b"MMK", 2),
    (*b"MNT", 2),
    (*b"MOP", 2),
    (*b"MRU", 2),
    (*b"MUR", 2),
    (*b"MVR", 2),
    (*b"MWK", 2),
    (*b"MXN", 2),
    (*b"MXV", 2),
    (*b"MYR", 2),
    (*b"MZN", 2),
    (*b"NAD", 2),
    (*b"NGN", 2),
    (*b"NIO", 2),
    (*b"NOK", 2),
    (*b"NPR", 2),
    (*b"NZD", 2),
    (*b"OMR", 3),
    (*b"PAB", 2),
    (*b"PEN", 2),
    (*b"PGK", 2),
    (*b"PHP", 2),
    (*b"PKR", 2),
    (*b"PLN", 2),
    (*b"PYG", 0),
    (*b"QAR", 2),
    (*b"RON", 2),
    (*b"RSD", 2),
    (*b"RUB", 2),
    (*b"RWF", 0),
    (*b"SAR", 2),
    (*b"SBD", 2),
    (*b"SCR", 2),
    (*b"SDG", 2),
    (*b"SEK", 2),
    (*b"SGD", 2),
    (*b"SHP", 2),
    (*b"SLE", 2),
    (*b"SOS", 2),
    (*b"SRD", 2),
    (*b"SSP", 2),
    (*b"STN", 2),
    (*b"SVC", 2),
    (*b"SYP", 2),
    (*b"SZL", 2),
    (*b"THB", 2),
    (*b"TJS", 2),
    (*b"TMT", 2),
    (*b"TND", 3),
    (*b"TOP", 2),
    (*b"TRY", 2),
    (*b"TTD", 2),
    (*b"TWD", 2),
    (*b"TZS", 2),
    (*b"UAH", 2),
    (*b"UGX", 0),
    (*b"USD", 2),
    (*b"USN", 2),
    (*b"UYI", 0),
    (*b"UYU", 2),
    (*b"UYW", 4),
    (*b"UZS", 2),
    (*b"VED", 2),
    (*b"VES", 2),
    (*b"VND", 0),
    (*b"VUV", 0),
    (*b"WST", 2),
    (*b"XAD", 2),
    (*b"XAF", 0),
    (*b"XCD", 2),
    (*b"XCG", 2),
    (*b"XOF", 0),
    (*b"XPF", 0),
    (*b"YER", 2),
    (*b"ZAR", 2),
    (*b"ZMW", 2),
    (*b"ZWG", 2),
];

impl Currency {
    pub const USD: Currency = Currency(*b"USD");
    pub const GBP: Currency = Currency(*b"GBP");
    pub const EUR: Currency = Currency(*b"EUR");

    pub fn as_str(&self) -> &str {
        // Constructed only from the ASCII codes of ISO_4217.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Number of digits after the decimal point (the ISO 4217 minor unit).
    pub fn exponent(&self) -> u32 {
        match ISO_4217.binary_search_by(|(code, _)| code.cmp(&self.0)) {
            Ok(i) => u32::from(ISO_4217[i].1),
            // Not reachable: a Currency is only made from a code of the table.
            Err(_) => 2,
        }
    }

    /// Every currency of [`ISO_4217`], in code order.
    pub fn all() -> impl Iterator<Item = Currency> {
        ISO_4217.iter().map(|(code, _)| Currency(*code))
    }
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error(
        "'{0}' is not an ISO 4217 currency code (expected an active code such as USD, EUR, GBP, JPY)"
    )]
    BadCurrency(String),
    #[error(
        "'{0}' is not an amount (expected digits with an optional '.' and at most {1} decimals)"
    )]
    BadAmount(String, u32),
    #[error("amount '{0}' is too large")]
    Overflow(String),
    /// A sum of amounts does not fit in `i64` minor units: the figure cannot be computed.
    #[error(
        "{what} in {currency} add up to more than the largest amount argent can hold \
         ({} minor units)",
        i64::MAX
    )]
    SumOverflow { what: String, currency: Currency },
    #[error("currency mismatch: {0} vs {1}")]
    CurrencyMismatch(Currency, Currency),
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let code: Option<[u8; 3]> = s.as_bytes().try_into().ok();
        match code.and_then(|c| ISO_4217.binary_search_by(|(k, _)| k.cmp(&c)).ok()) {
            Some(i) => Ok(Currency(ISO_4217[i].0)),
            None => {
                // Echo at most a few characters of what was given.
                let shown: String = s.chars().take(16).collect();
                Err(MoneyError::BadCurrency(shown))
            }
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

    /// Adds `minor` to `total`, both minor units of `currency`; an overflow is
    /// [`MoneyError::SumOverflow`] naming `what` is being added up.
    pub fn add_minor(
        total: &mut i64,
        minor: i64,
        currency: Currency,
        what: impl FnOnce() -> String,
    ) -> Result<(), MoneyError> {
        match total.checked_add(minor) {
            Some(t) => {
                *total = t;
                Ok(())
            }
            None => Err(MoneyError::SumOverflow {
                what: what(),
                currency,
            }),
        }
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

impl Money {
    /// The amount as a person reads it, without the currency: thousands grouped with `,`,
    /// e.g. `1,234,567.50` (`-1,200.00`; `5,000` for a currency without decimals).
    pub fn grouped(&self) -> String {
        let plain = self.amount_string();
        let (sign, rest) = match plain.strip_prefix('-') {
            Some(r) => ("-", r),
            None => ("", plain.as_str()),
        };
        let (whole, frac) = match rest.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (rest, None),
        };
        let mut out = String::with_capacity(plain.len() + whole.len() / 3);
        out.push_str(sign);
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if let Some(f) = frac {
            out.push('.');
            out.push_str(f);
        }
        out
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
    fn grouped_amounts_read_as_people_write_them() {
        let usd = |m: i64| Money::new(m, Currency::USD).grouped();
        assert_eq!(usd(120_000), "1,200.00");
        assert_eq!(usd(100_000_000), "1,000,000.00");
        assert_eq!(usd(99_999), "999.99");
        assert_eq!(usd(5), "0.05");
        assert_eq!(usd(-120_000), "-1,200.00");
        let jpy: Currency = "JPY".parse().unwrap();
        assert_eq!(Money::new(1_234_567, jpy).grouped(), "1,234,567");
        assert_eq!(
            Money::new(i64::MIN, jpy).grouped(),
            "-9,223,372,036,854,775,808"
        );
    }

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
