//! `GET /students/` and `GET /students.csv`: the filtered list with balances, remembered per session.
use axum::{
    extract::{RawQuery, State},
    response::{Html, Response},
};
use serde_json::json;

use super::StudentsFilter;
use crate::{
    error::AppError,
    export::{self, safe_cell},
    ledger::students::{self, StudentView},
    routes::{
        page::Page,
        query::{self, Pager},
    },
    session::Session,
    state::AppState,
};

/// The filter this request asks for: its query string, or the one this
/// session last used when there is none. A new filter is remembered.
pub async fn filter_for(
    session: &Session,
    raw: Option<&str>,
) -> Result<(StudentsFilter, u64), AppError> {
    let params = query::params(raw)?;
    if params.is_empty() {
        return Ok((
            session.get::<StudentsFilter>().await?.unwrap_or_default(),
            1,
        ));
    }
    let filter = StudentsFilter::from_params(&params)?;
    let page = query::page(&params)?;
    if session.get::<StudentsFilter>().await?.as_ref() != Some(&filter) {
        session.insert::<StudentsFilter>(&filter).await?;
    }
    Ok((filter, page))
}

pub async fn page(
    State(state): State<AppState>,
    page: Page,
    RawQuery(raw): RawQuery,
) -> Result<Html<String>, AppError> {
    let (filter, page_no) = filter_for(&page.session, raw.as_deref()).await?;
    let query = filter.query(page_no);
    let (rows, total) = students::list(&state.db, &query).await?;
    let classes = students::class_names(&state.db).await?;
    let rows: Vec<StudentView> = rows.iter().map(StudentView::from).collect();
    let pager = Pager::new(page_no, query.per_page, total, |p| {
        format!("/students/?{}", filter.link(&[("page", p.to_string())]))
    });
    // Each column header sorts by it; a second click reverses.
    let sort_link = |column: &str| {
        let active = filter.sort == column || (filter.sort.is_empty() && column == "name");
        let dir = if active && filter.dir != "desc" {
            "desc"
        } else {
            "asc"
        };
        format!(
            "/students/?{}",
            filter.link(&[("sort", column.to_string()), ("dir", dir.to_string())])
        )
    };
    page.render(
        "students/list.html",
        json!({
            "title": "Students",
            "nav": "students",
            "filter": filter,
            "rows": rows,
            "pager": pager,
            "classes": classes,
            "sort_links": {
                "name": sort_link("name"),
                "admission_no": sort_link("admission_no"),
                "balance": sort_link("balance"),
            },
            "export_link": format!("/students.csv?{}", filter.link(&[])),
        }),
    )
    .await
}

const HEADER: [&str; 11] = [
    "admission_no",
    "first_name",
    "last_name",
    "class_name",
    "status",
    "guardian_name",
    "guardian_phone",
    "guardian_email",
    "charged",
    "paid",
    "balance",
];

/// Every student matching the current filter, as CSV.
pub async fn export(
    State(state): State<AppState>,
    page: Page,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let (filter, _) = filter_for(&page.session, raw.as_deref()).await?;
    let query = filter.query(1);
    let db = state.db.clone();
    Ok(export::download(
        "students.csv",
        &HEADER,
        0i64,
        move |after| {
            let (db, query) = (db.clone(), query.clone());
            async move {
                let batch = students::list_all_batched(&db, &query, after, 2_000).await?;
                let Some(last) = batch.last().map(|s| s.id) else {
                    return Ok(None);
                };
                let rows = batch
                    .iter()
                    .map(|s| {
                        vec![
                            safe_cell(&s.admission_no).into_owned(),
                            safe_cell(&s.first_name).into_owned(),
                            safe_cell(&s.last_name).into_owned(),
                            safe_cell(&s.class_name).into_owned(),
                            s.status.clone(),
                            safe_cell(&s.guardian_name).into_owned(),
                            safe_cell(&s.guardian_phone).into_owned(),
                            safe_cell(&s.guardian_email).into_owned(),
                            s.charged_total.0.to_string(),
                            s.paid_total.0.to_string(),
                            s.balance.0.to_string(),
                        ]
                    })
                    .collect();
                Ok(Some((rows, last)))
            }
        },
    ))
}
