//! Database operations taking domain types: the only place queries live.
pub mod users;

/// A unique constraint said no: the caller turns it into a 409/400 naming the field.
pub fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}
