//! The school's books: students, charges, payments, voids, totals and their checks. Queries live here.
pub mod audit;
pub mod check;
pub mod dashboard;
pub mod entries;
pub mod payments;
pub mod seed;
pub mod sql;
pub mod students;

use std::collections::BTreeMap;

use crate::error::AppError;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("not found")]
    NotFound,
    /// Field → message, for the form or the API's `fields`.
    #[error("some fields are not valid")]
    Invalid(BTreeMap<String, String>),
    #[error("{0}")]
    Conflict(String),
    /// A unique value (an admission number) that is already taken.
    #[error("{message}")]
    Duplicate {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl LedgerError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        LedgerError::Invalid(BTreeMap::from([(field.to_string(), message.into())]))
    }

    /// Field → message, for re-rendering a form; `None` for other errors.
    pub fn field_errors(&self) -> Option<BTreeMap<String, String>> {
        match self {
            LedgerError::Invalid(fields) => Some(fields.clone()),
            LedgerError::Duplicate { field, message } => {
                Some(BTreeMap::from([(field.to_string(), message.clone())]))
            }
            _ => None,
        }
    }
}

impl From<LedgerError> for AppError {
    fn from(err: LedgerError) -> Self {
        match err {
            LedgerError::NotFound => AppError::NotFound,
            LedgerError::Invalid(fields) => AppError::Validation {
                message: "Some fields are not valid.".into(),
                fields,
            },
            LedgerError::Conflict(message) => AppError::Conflict(message),
            LedgerError::Duplicate { field, message } => AppError::Duplicate { field, message },
            LedgerError::Db(err) => AppError::from(err),
        }
    }
}

/// The school's calendar day now. The server's local time zone decides
/// (set `TZ` in the environment); receipts and "collected today" follow it.
pub fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}
