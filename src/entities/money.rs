//! How money columns read back: `NUMERIC` on PostgreSQL, integer minor units on SQLite.
use rust_decimal::Decimal;
use sea_orm::{
    ColIdx, QueryResult, TryGetError, TryGetable,
    sea_query::{ArrayType, ColumnType, Nullable, Value, ValueType, ValueTypeErr},
};

use crate::domain::Money;

/// A money column. Reading is exact on both databases. Writing goes through
/// `ledger::sql::money`, which knows the database: this type's own
/// conversion into a query value is the PostgreSQL form only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbMoney(pub Money);

impl TryGetable for DbMoney {
    fn try_get_by<I: ColIdx>(res: &QueryResult, index: I) -> Result<Self, TryGetError> {
        if res.try_as_sqlite_row().is_some() {
            let minor = i64::try_get_by(res, index)?;
            Ok(DbMoney(Money::from_minor(minor)))
        } else {
            Ok(DbMoney(Money::new(Decimal::try_get_by(res, index)?)))
        }
    }
}

impl From<DbMoney> for Value {
    fn from(money: DbMoney) -> Value {
        Value::Decimal(Some(money.0.decimal()))
    }
}

impl ValueType for DbMoney {
    fn try_from(value: Value) -> Result<Self, ValueTypeErr> {
        match value {
            Value::Decimal(Some(d)) => Ok(DbMoney(Money::new(d))),
            Value::BigInt(Some(minor)) => Ok(DbMoney(Money::from_minor(minor))),
            _ => Err(ValueTypeErr),
        }
    }

    fn type_name() -> String {
        "DbMoney".into()
    }

    fn array_type() -> ArrayType {
        ArrayType::Decimal
    }

    fn column_type() -> ColumnType {
        ColumnType::Decimal(Some((20, 2)))
    }
}

impl Nullable for DbMoney {
    fn null() -> Value {
        Value::Decimal(None)
    }
}
