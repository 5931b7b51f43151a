//! Money for people: the currency's symbol and thousands separators (`$12,345.67`,
//! `£1,000.00`, `€0.50`, `¥1,234`, `CHF 9,876.54`), and prices per 1,000 model tokens.
//!
//! Pure and exact: the digits come from the integer minor units (never a float). One
//! convention for every currency (English grouping: `,` every three digits, `.` before the
//! minor units, the symbol before the amount, a minus sign before the symbol); a currency
//! without a symbol here is shown with its ISO code and a space. The currency's own
//! number of minor digits (ISO 4217 exponent) is always shown.

use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};

/// The symbol shown before an amount of `currency`, if it has one here. Symbols that
/// several currencies share (`$`, `¥`, `kr`) are given to one only (USD, JPY); the others
/// are shown by code (or a prefixed symbol such as `CA$`), so no amount is ambiguous.
pub fn symbol(currency: Currency) -> Option<&'static str> {
    Some(match currency.as_str() {
        "USD" => "$",
        "GBP" => "£",
        "EUR" => "€",
        "JPY" => "¥",
        "INR" => "₹",
        "KRW" => "₩",
        "ILS" => "₪",
        "NGN" => "₦",
        "PHP" => "₱",
        "VND" => "₫",
        "UAH" => "₴",
        "CAD" => "CA$",
        "AUD" => "A$",
        "NZD" => "NZ$",
        "HKD" => "HK$",
        "SGD" => "S$",
        "MXN" => "MX$",
        "BRL" => "R$",
        "CNY" => "CN¥",
        _ => return None,
    })
}

/// `digits` (ASCII digits, no sign) with a `,` every three digits from the right.
pub fn group_thousands(digits: &str) -> String {
    let n = digits.len();
    let mut out = String::with_capacity(n + n / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (n - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `money` with its symbol and thousands separators: `$12,345.67`, `-£0.07`, `¥5,000`,
/// `CHF 1,234.50`. Exact for every `i64` (including `i64::MIN`).
pub fn format_money(money: Money) -> String {
    let exp = money.currency.exponent();
    let sign = if money.minor < 0 { "-" } else { "" };
    let abs = money.minor.unsigned_abs();
    let scale = 10_u64.pow(exp);
    let whole = group_thousands(&(abs / scale).to_string());
    let amount = if exp == 0 {
        whole
    } else {
        format!("{whole}.{:0width$}", abs % scale, width = exp as usize)
    };
    match symbol(money.currency) {
        Some(s) => format!("{sign}{s}{amount}"),
        None => format!("{sign}{} {amount}", money.currency),
    }
}

/// [`format_money`] of `minor` units of `currency`.
pub fn format_minor(minor: i64, currency: Currency) -> String {
    format_money(Money::new(minor, currency))
}

/// A count with thousands separators (`12,345`).
pub fn format_count(n: u64) -> String {
    group_thousands(&n.to_string())
}

/// The price of 1,000 model tokens, in millionths of the currency's major unit (so
/// `$0.00015` per 1k tokens, i.e. $0.15 per million, is 150 micro-dollars): exact, no float.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPrice {
    pub currency: Currency,
    pub micros_per_1k: i64,
}

/// Why a token price could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "token price '{given}': {why} (expected a currency code and a decimal price per 1,000 tokens, e.g. 'USD 0.002')"
)]
pub struct TokenPriceError {
    pub given: String,
    pub why: String,
}

impl std::str::FromStr for TokenPrice {
    type Err = TokenPriceError;

    /// `"USD 0.002"` (also `"0.002 USD"`): a currency code and a non-negative decimal with
    /// at most 6 decimals.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: &str| TokenPriceError {
            given: s.to_string(),
            why: why.to_string(),
        };
        let parts: Vec<&str> = s.split_whitespace().collect();
        let [a, b] = parts.as_slice() else {
            return Err(err("give two parts"));
        };
        let (code, amount) = if a.chars().all(|c| c.is_ascii_alphabetic()) {
            (*a, *b)
        } else {
            (*b, *a)
        };
        let currency: Currency = code
            .to_ascii_uppercase()
            .parse()
            .map_err(|e: crate::MoneyError| err(&e.to_string()))?;
        let (whole, frac) = amount.split_once('.').unwrap_or((amount, ""));
        if whole.is_empty() && frac.is_empty()
            || !whole.chars().all(|c| c.is_ascii_digit())
            || !frac.chars().all(|c| c.is_ascii_digit())
        {
            return Err(err("the price is not a non-negative decimal number"));
        }
        if frac.len() > 6 {
            return Err(err("the price has more than 6 decimals"));
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| err("the price is too large"))?
        };
        let frac_micros: i64 = format!("{frac:0<6}")
            .parse()
            .map_err(|_| err("the price is not a decimal number"))?;
        let micros_per_1k = whole
            .checked_mul(1_000_000)
            .and_then(|w| w.checked_add(frac_micros))
            .ok_or_else(|| err("the price is too large"))?;
        Ok(TokenPrice {
            currency,
            micros_per_1k,
        })
    }
}

impl TokenPrice {
    /// What `tokens` cost, in minor units of the price's currency, rounded half up; `None`
    /// if it does not fit in `i64` (or `tokens` is negative).
    pub fn cost_minor(&self, tokens: i64) -> Option<i64> {
        if tokens < 0 || self.micros_per_1k < 0 {
            return None;
        }
        // micro-units of the major unit = tokens × price ÷ 1000.
        let micro_1000 = i128::from(tokens) * i128::from(self.micros_per_1k);
        let exp = self.currency.exponent().min(6);
        // One minor unit is 10^(6 − exp) micro-units, so 1000 × that of micro_1000.
        let per_minor = 1000_i128 * 10_i128.pow(6 - exp);
        let minor = (micro_1000 + per_minor / 2) / per_minor;
        i64::try_from(minor).ok()
    }

    /// `$0.002 per 1k tokens`.
    pub fn describe(&self) -> String {
        let whole = self.micros_per_1k / 1_000_000;
        let frac = format!("{:06}", self.micros_per_1k % 1_000_000);
        let frac = frac.trim_end_matches('0');
        let amount = if frac.is_empty() {
            group_thousands(&whole.to_string())
        } else {
            format!("{}.{frac}", group_thousands(&whole.to_string()))
        };
        match symbol(self.currency) {
            Some(s) => format!("{s}{amount} per 1k tokens"),
            None => format!("{} {amount} per 1k tokens", self.currency),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn cur(code: &str) -> Currency {
        code.parse().unwrap()
    }

    #[test]
    fn money_has_its_symbol_and_thousands_separators() {
        assert_eq!(format_minor(1_234_567, Currency::USD), "$12,345.67");
        assert_eq!(format_minor(100_000, Currency::GBP), "£1,000.00");
        assert_eq!(format_minor(50, Currency::EUR), "€0.50");
        assert_eq!(format_minor(0, Currency::USD), "$0.00");
        assert_eq!(format_minor(5, Currency::USD), "$0.05");
        assert_eq!(format_minor(99_999, Currency::USD), "$999.99");
        assert_eq!(format_minor(100_000_000, Currency::USD), "$1,000,000.00");
        assert_eq!(format_minor(-7, Currency::GBP), "-£0.07");
        assert_eq!(format_minor(-123_456_789, Currency::EUR), "-€1,234,567.89");
    }

    #[test]
    fn the_currency_decides_the_minor_digits() {
        assert_eq!(format_minor(1_234, cur("JPY")), "¥1,234");
        assert_eq!(format_minor(1_234_567, cur("KWD")), "KWD 1,234.567");
        assert_eq!(format_minor(12_345, cur("CLF")), "CLF 1.2345");
        assert_eq!(format_minor(987_654, cur("CHF")), "CHF 9,876.54");
        assert_eq!(format_minor(150_000, cur("CAD")), "CA$1,500.00");
    }

    #[test]
    fn the_extremes_of_i64_are_exact() {
        assert_eq!(
            format_minor(i64::MAX, Currency::USD),
            "$92,233,720,368,547,758.07"
        );
        assert_eq!(
            format_minor(i64::MIN, Currency::USD),
            "-$92,233,720,368,547,758.08"
        );
    }

    #[test]
    fn grouping_puts_a_comma_every_three_digits() {
        for (d, g) in [
            ("0", "0"),
            ("12", "12"),
            ("123", "123"),
            ("1234", "1,234"),
            ("123456", "123,456"),
            ("1234567", "1,234,567"),
        ] {
            assert_eq!(group_thousands(d), g);
        }
        assert_eq!(format_count(1_000_000), "1,000,000");
    }

    #[test]
    fn no_two_currencies_share_a_symbol() {
        let mut seen = std::collections::BTreeMap::new();
        for c in Currency::all() {
            if let Some(s) = symbol(c) {
                assert!(seen.insert(s, c).is_none(), "{s} for {c} and {:?}", seen[s]);
            }
        }
        assert!(seen.len() >= 3);
    }

    #[test]
    fn token_prices_parse_exactly_and_cost_rounds_half_up() {
        let p: TokenPrice = "USD 0.002".parse().unwrap();
        assert_eq!(p.micros_per_1k, 2_000);
        assert_eq!(
            p.cost_minor(1_000_000),
            Some(200),
            "1M tokens at $0.002/1k = $2"
        );
        assert_eq!(p.cost_minor(2_499), Some(0), "$0.004998 rounds to $0.00");
        assert_eq!(p.cost_minor(2_500), Some(1), "$0.005 rounds half up");
        assert_eq!(p.describe(), "$0.002 per 1k tokens");
        let p: TokenPrice = "0.00015 eur".parse().unwrap();
        assert_eq!((p.currency, p.micros_per_1k), (Currency::EUR, 150));
        assert_eq!(p.cost_minor(10_000_000), Some(150), "10M tokens = €1.50");
        let yen: TokenPrice = "JPY 1.5".parse().unwrap();
        assert_eq!(yen.cost_minor(3_000), Some(5), "¥4.5 rounds to ¥5");
        assert_eq!(yen.describe(), "¥1.5 per 1k tokens");
        let big: TokenPrice = "USD 1000000".parse().unwrap();
        assert_eq!(
            big.cost_minor(i64::MAX),
            None,
            "overflow is None, not a wrap"
        );
        assert_eq!(p.cost_minor(-1), None);
    }

    #[test]
    fn bad_token_prices_say_what_is_wrong() {
        for (s, why) in [
            ("0.002", "give two parts"),
            ("USD -0.002", "not a non-negative decimal"),
            ("USD 0.0000001", "more than 6 decimals"),
            ("XYZ 0.1", "not an ISO 4217 currency code"),
            ("USD 1e3", "not a non-negative decimal"),
            ("USD .", "not a non-negative decimal"),
            ("USD 99999999999999999", "too large"),
        ] {
            let e = s.parse::<TokenPrice>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(s), "{s}: {e}");
        }
    }
}
