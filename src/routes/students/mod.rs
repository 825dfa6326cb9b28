//! `/students/…`: the list with its remembered filter, a student's page, forms, charges, import and export.
mod form;
mod import;
mod list;
mod show;

use std::collections::BTreeMap;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};

use super::query::{self, DEFAULT_PER_PAGE};
use crate::{
    domain::student::StudentStatus,
    error::AppError,
    ledger::students::{StudentQuery, StudentSort},
    session::SessionKey,
    state::AppState,
};

pub use show::{RecentStudent, RecentStudents, VoidForm};

/// CSV imports may be up to 10 MiB.
const IMPORT_LIMIT: usize = 10 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/students/", get(list::page).post(form::create))
        .route("/students.csv", get(list::export))
        .route("/students/new", get(form::new))
        .route(
            "/students/import",
            get(import::page)
                .post(import::upload)
                .layer(DefaultBodyLimit::max(IMPORT_LIMIT)),
        )
        .route("/students/{id}/", get(show::page).post(form::update))
        .route("/students/{id}/edit", get(form::edit))
        .route("/students/{id}/charges/", post(show::post_charge))
        .route("/students/{id}/payments/", post(show::post_payment))
        .route("/charges/{id}/void", post(show::void_charge))
}

/// Session key `students.filter`: the last students-list filter, restored
/// by `GET /students/` without parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudentsFilter {
    pub q: String,
    pub class_name: String,
    pub status: String,
    pub sort: String,
    pub dir: String,
    pub per_page: u64,
}

impl SessionKey for StudentsFilter {
    const NAME: &'static str = "students.filter";
    type Value = StudentsFilter;
}

impl StudentsFilter {
    /// Reads and checks the filter in a query string (400 when malformed).
    pub fn from_params(params: &BTreeMap<String, String>) -> Result<Self, AppError> {
        Ok(StudentsFilter {
            q: query::text(params, "q", 100)?,
            class_name: query::text(params, "class_name", 50)?,
            status: query::choice(params, "status", &["active", "left"])?,
            sort: query::choice(params, "sort", &["name", "admission_no", "balance"])?,
            dir: query::choice(params, "dir", &["asc", "desc"])?,
            per_page: query::per_page(params.get("per_page").map(String::as_str))?,
        })
    }

    pub fn query(&self, page: u64) -> StudentQuery {
        StudentQuery {
            q: self.q.clone(),
            class_name: (!self.class_name.is_empty()).then(|| self.class_name.clone()),
            status: self.status.parse::<StudentStatus>().ok(),
            sort: StudentSort::parse(&self.sort).unwrap_or_default(),
            descending: self.dir == "desc",
            page,
            per_page: if self.per_page == 0 {
                DEFAULT_PER_PAGE
            } else {
                self.per_page
            },
        }
    }

    /// The query string that shows this filter (for links), with `extra` pairs.
    pub fn link(&self, extra: &[(&str, String)]) -> String {
        let mut pairs = vec![
            ("q", self.q.clone()),
            ("class_name", self.class_name.clone()),
            ("status", self.status.clone()),
            ("sort", self.sort.clone()),
            ("dir", self.dir.clone()),
            (
                "per_page",
                if self.per_page == DEFAULT_PER_PAGE || self.per_page == 0 {
                    String::new()
                } else {
                    self.per_page.to_string()
                },
            ),
        ];
        for (key, value) in extra {
            pairs.retain(|(k, _)| k != key);
            pairs.push((key, value.clone()));
        }
        query::encode(&pairs)
    }
}
