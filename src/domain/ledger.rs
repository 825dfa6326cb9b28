//! The parsed pieces of ledger entries: payment methods, descriptions, references, dates, void reasons.
use std::{fmt, str::FromStr};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::text::bounded;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentMethod {
    Cash,
    Bank,
    Mobile,
    Card,
    Cheque,
}

impl PaymentMethod {
    pub const ALL: [PaymentMethod; 5] = [
        PaymentMethod::Cash,
        PaymentMethod::Bank,
        PaymentMethod::Mobile,
        PaymentMethod::Card,
        PaymentMethod::Cheque,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Cash => "cash",
            PaymentMethod::Bank => "bank",
            PaymentMethod::Mobile => "mobile",
            PaymentMethod::Card => "card",
            PaymentMethod::Cheque => "cheque",
        }
    }
}

impl FromStr for PaymentMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PaymentMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| "Method must be cash, bank, mobile, card or cheque.".to_string())
    }
}

impl fmt::Display for PaymentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn description(input: &str) -> Result<String, String> {
    bounded(input, "Description", 1, 200)
}

pub fn reference(input: &str) -> Result<String, String> {
    bounded(input, "Reference", 0, 100)
}

/// Why an entry is voided: required, so that the ledger explains itself.
pub fn void_reason(input: &str) -> Result<String, String> {
    bounded(input, "Reason", 1, 500)
}

/// A date as `YYYY-MM-DD`, between 2000 and 2100.
pub fn date(input: &str, label: &str) -> Result<NaiveDate, String> {
    let text = input.trim();
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{label} must be a date like 2026-01-31."))?;
    let earliest = NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid");
    let latest = NaiveDate::from_ymd_opt(2100, 12, 31).expect("valid");
    if date < earliest || date > latest {
        return Err(format!("{label} must be between 2000 and 2100."));
    }
    Ok(date)
}

/// A payment's date: defaults to today, and cannot be in the future.
pub fn paid_on(input: &str, today: NaiveDate) -> Result<NaiveDate, String> {
    if input.trim().is_empty() {
        return Ok(today);
    }
    let date = date(input, "Payment date")?;
    if date > today {
        return Err("A payment date cannot be in the future.".into());
    }
    Ok(date)
}

/// An idempotency key from a form or header: 8–100 visible ASCII characters.
pub fn idempotency_key(input: &str) -> Result<String, String> {
    let key = input.trim();
    if key.len() < 8 || key.len() > 100 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("The idempotency key must be 8 to 100 visible ASCII characters.".into());
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse() {
        assert_eq!(
            "Cash".parse::<PaymentMethod>().unwrap(),
            PaymentMethod::Cash
        );
        assert!("bitcoin".parse::<PaymentMethod>().is_err());
    }

    #[test]
    fn dates_are_strict() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        assert_eq!(paid_on("", today).unwrap(), today);
        assert_eq!(
            paid_on("2026-12-01", today).unwrap(),
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
        );
        for bad in [
            "2026-12-05",
            "04/12/2026",
            "2026-02-30",
            "1999-12-31",
            "yesterday",
        ] {
            assert!(paid_on(bad, today).is_err(), "{bad}");
        }
    }

    #[test]
    fn void_reason_is_required() {
        assert!(void_reason("  ").is_err());
        assert_eq!(void_reason(" entered twice ").unwrap(), "entered twice");
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        assert!(idempotency_key("short").is_err());
        assert!(idempotency_key("has space inside").is_err());
        assert!(idempotency_key("9b2c1a8e-0f6d-4a55-9e1b-2f0d6c7e8a91").is_ok());
    }
}
