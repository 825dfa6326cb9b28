//! Money in SQL: the one place that knows PostgreSQL keeps `NUMERIC` and SQLite keeps minor units.
use sea_orm::{DbBackend, DeriveIden, sea_query::Value};

use crate::domain::Money;

/// A money value to bind in a query on `backend`.
pub fn money(backend: DbBackend, amount: Money) -> Value {
    match backend {
        DbBackend::Sqlite => Value::BigInt(Some(amount.minor_units())),
        _ => Value::Decimal(Some(amount.decimal())),
    }
}

/// `ledger_daily`: what was charged and paid on each day (by `posted_on`
/// and `paid_on`), so that totals never add up a million rows.
#[derive(DeriveIden)]
pub enum LedgerDaily {
    Table,
    Day,
    Charged,
    Paid,
}

/// `receipt_counters`: the last receipt number issued in each year.
#[derive(DeriveIden)]
pub enum ReceiptCounters {
    Table,
    Year,
    LastSeq,
}

/// Escapes `%`, `_` and `\` so user text matches literally in `LIKE … ESCAPE '\'`.
pub fn like_prefix(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_metacharacters_are_literal() {
        assert_eq!(like_prefix("50%_a\\b"), "50\\%\\_a\\\\b%");
    }

    #[test]
    fn money_binds_exactly_per_database() {
        let amount = Money::from_minor(1050);
        assert_eq!(money(DbBackend::Sqlite, amount), Value::BigInt(Some(1050)));
        assert_eq!(
            money(DbBackend::Postgres, amount),
            Value::Decimal(Some(amount.decimal()))
        );
    }
}
