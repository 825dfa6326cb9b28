//! Exact money: `Amount` (a strictly parsed positive entry, M2) and `Money` (any signed sum, M1).
use std::{fmt, ops::Add, ops::Neg, ops::Sub, str::FromStr};

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

/// The largest amount one charge or payment may carry.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// A sum of money with exactly two decimal places: balances, totals, and
/// anything the ledger adds up. Never a float.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    pub fn new(value: Decimal) -> Self {
        let mut value = value.round_dp(2);
        value.rescale(2);
        Money(value)
    }

    /// From integer minor units (cents).
    pub fn from_minor(units: i64) -> Self {
        Money(Decimal::new(units, 2))
    }

    /// Integer minor units (cents). Exact for every amount Bursar accepts.
    pub fn minor_units(self) -> i64 {
        let mut scaled = self.0;
        scaled.rescale(2);
        i64::try_from(scaled.mantissa()).unwrap_or(if scaled.is_sign_negative() {
            i64::MIN
        } else {
            i64::MAX
        })
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }

    pub fn is_positive(self) -> bool {
        self.0 > Decimal::ZERO
    }

    pub fn is_negative(self) -> bool {
        self.0 < Decimal::ZERO
    }

    pub fn abs(self) -> Money {
        Money(self.0.abs())
    }

    /// "1,234.50" (and "-1,234.50"): grouped for people to read.
    pub fn grouped(self) -> String {
        let text = format!("{:.2}", self.0.abs());
        let (whole, cents) = text.split_once('.').unwrap_or((&text, "00"));
        let mut grouped = String::with_capacity(whole.len() + whole.len() / 3 + 4);
        for (i, digit) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        let sign = if self.is_negative() { "-" } else { "" };
        format!("{sign}{grouped}.{cents}")
    }
}

impl fmt::Display for Money {
    /// "1234.50": the plain decimal string the API and CSV files use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, other: Money) -> Money {
        Money(self.0 + other.0)
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, other: Money) -> Money {
        Money(self.0 - other.0)
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(-self.0)
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

/// An amount someone typed for a charge or a payment (M2): more than zero,
/// at most two decimal places, at most 1,000,000,000, written as plain
/// digits with an optional decimal point. Anything else is refused with a
/// message saying why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(Money);

impl Amount {
    pub fn parse(input: &str) -> Result<Amount, String> {
        let text = input.trim();
        if text.is_empty() {
            return Err("Enter an amount.".into());
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
            return Err("Write the amount as plain digits with an optional decimal point, such as 1250 or 1250.50.".into());
        }
        if fraction.is_some_and(|f| f.len() > 2) {
            return Err("An amount has at most two decimal places.".into());
        }
        if whole.trim_start_matches('0').len() > 10 {
            return Err("An amount is at most 1,000,000,000.".into());
        }
        let value = Decimal::from_str(text).map_err(|_| "This is not an amount.".to_string())?;
        if value <= Decimal::ZERO {
            return Err("An amount must be more than zero.".into());
        }
        if value > MAX_AMOUNT {
            return Err("An amount is at most 1,000,000,000.".into());
        }
        Ok(Amount(Money::new(value)))
    }

    pub fn money(self) -> Money {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_amounts() {
        for (input, expected) in [
            ("10", "10.00"),
            ("10.5", "10.50"),
            ("10.50", "10.50"),
            (" 7 ", "7.00"),
            ("0.01", "0.01"),
            ("007", "7.00"),
            ("1000000000", "1000000000.00"),
            ("1000000000.00", "1000000000.00"),
        ] {
            assert_eq!(
                Amount::parse(input).unwrap().to_string(),
                expected,
                "{input:?}"
            );
        }
    }

    #[test]
    fn rejects_everything_else() {
        for input in [
            "-1",
            "0",
            "0.00",
            "1e3",
            "10.005",
            "1,000",
            "NaN",
            "",
            "abc",
            "1000000000.01",
            "10.",
            ".5",
            "+5",
            "5 0",
            "١٢",
            "0x10",
            "inf",
            "1_000",
            "12.5.0",
            "   ",
            "99999999999999999999999999999999",
        ] {
            assert!(Amount::parse(input).is_err(), "{input:?} accepted");
        }
    }

    #[test]
    fn sums_are_exact() {
        let a = Amount::parse("0.1").unwrap().money();
        let b = Amount::parse("0.2").unwrap().money();
        assert_eq!((a + b).to_string(), "0.30");
        let many: Money = std::iter::repeat_n(a, 1000).sum();
        assert_eq!(many.to_string(), "100.00");
    }

    #[test]
    fn minor_units_round_trip() {
        for cents in [0, 1, 1050, -1050, 100_000_000_000] {
            assert_eq!(Money::from_minor(cents).minor_units(), cents);
        }
        assert_eq!(Amount::parse("12.5").unwrap().money().minor_units(), 1250);
    }

    #[test]
    fn groups_thousands_for_display() {
        assert_eq!(Money::from_minor(123_456_789).grouped(), "1,234,567.89");
        assert_eq!(Money::from_minor(-100_000).grouped(), "-1,000.00");
        assert_eq!(Money::from_minor(5).grouped(), "0.05");
        assert_eq!(Money::from_minor(99_999).grouped(), "999.99");
    }
}
