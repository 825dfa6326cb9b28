//! `/payments/…`: the list with its remembered filter, the CSV export, receipts and voids.
use std::collections::BTreeMap;

use axum::{
    Router,
    extract::{RawQuery, State},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    page::{Id, Page},
    query::{self, Pager},
    students::VoidForm,
};
use crate::{
    auth::CsrfForm,
    domain::{
        Role,
        ledger::{self, PaymentMethod},
    },
    error::AppError,
    export::{self, safe_cell},
    ledger::{
        LedgerError,
        entries::{self, PaymentView, Voided},
        payments::{self, PaymentQuery},
        students::{self, StudentView},
    },
    session::{Session, SessionKey},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/payments/", get(list))
        .route("/payments.csv", get(export_csv))
        .route("/payments/{id}/receipt/", get(receipt))
        .route("/payments/{id}/void", post(void))
}

/// Session key `payments.filter`: the last payments-list filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentsFilter {
    pub from: String,
    pub to: String,
    pub method: String,
    pub q: String,
}

impl SessionKey for PaymentsFilter {
    const NAME: &'static str = "payments.filter";
    type Value = PaymentsFilter;
}

impl PaymentsFilter {
    fn from_params(params: &BTreeMap<String, String>) -> Result<Self, AppError> {
        let methods: Vec<&str> = PaymentMethod::ALL.iter().map(|m| m.as_str()).collect();
        let filter = PaymentsFilter {
            from: query::text(params, "from", 10)?,
            to: query::text(params, "to", 10)?,
            method: query::choice(params, "method", &methods)?,
            q: query::text(params, "q", 100)?,
        };
        filter.query(1, query::DEFAULT_PER_PAGE)?;
        Ok(filter)
    }

    fn query(&self, page: u64, per_page: u64) -> Result<PaymentQuery, AppError> {
        let date = |text: &str, label: &str| {
            if text.is_empty() {
                Ok(None)
            } else {
                ledger::date(text, label)
                    .map(Some)
                    .map_err(AppError::BadRequest)
            }
        };
        Ok(PaymentQuery {
            from: date(&self.from, "from")?,
            to: date(&self.to, "to")?,
            method: self.method.parse().ok(),
            q: self.q.clone(),
            page,
            per_page,
        })
    }

    fn link(&self, extra: &[(&str, String)]) -> String {
        let mut pairs = vec![
            ("from", self.from.clone()),
            ("to", self.to.clone()),
            ("method", self.method.clone()),
            ("q", self.q.clone()),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        query::encode(&pairs)
    }
}

/// The filter this request asks for, or the one this session last used.
async fn filter_for(
    session: &Session,
    raw: Option<&str>,
) -> Result<(PaymentsFilter, BTreeMap<String, String>), AppError> {
    let params = query::params(raw)?;
    if params.is_empty() {
        return Ok((
            session.get::<PaymentsFilter>().await?.unwrap_or_default(),
            params,
        ));
    }
    let filter = PaymentsFilter::from_params(&params)?;
    if session.get::<PaymentsFilter>().await?.as_ref() != Some(&filter) {
        session.insert::<PaymentsFilter>(&filter).await?;
    }
    Ok((filter, params))
}

async fn list(
    State(state): State<AppState>,
    page: Page,
    RawQuery(raw): RawQuery,
) -> Result<Html<String>, AppError> {
    let (filter, params) = filter_for(&page.session, raw.as_deref()).await?;
    let page_no = query::page(&params)?;
    let per_page = query::per_page(params.get("per_page").map(String::as_str))?;
    let (rows, total) = payments::list(&state.db, &filter.query(page_no, per_page)?).await?;
    let pager = Pager::new(page_no, per_page, total, |p| {
        format!("/payments/?{}", filter.link(&[("page", p.to_string())]))
    });
    page.render(
        "payments/list.html",
        json!({
            "title": "Payments",
            "nav": "payments",
            "filter": filter,
            "rows": rows,
            "pager": pager,
            "methods": PaymentMethod::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            "export_link": format!("/payments.csv?{}", filter.link(&[])),
        }),
    )
    .await
}

const HEADER: [&str; 10] = [
    "receipt_no",
    "paid_on",
    "admission_no",
    "student",
    "class_name",
    "amount",
    "method",
    "reference",
    "voided",
    "void_reason",
];

async fn export_csv(
    State(state): State<AppState>,
    page: Page,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let (filter, _) = filter_for(&page.session, raw.as_deref()).await?;
    let query = filter.query(1, query::DEFAULT_PER_PAGE)?;
    let db = state.db.clone();
    Ok(export::download(
        "payments.csv",
        &HEADER,
        i64::MAX,
        move |before| {
            let (db, query) = (db.clone(), query.clone());
            async move {
                let batch = payments::list_batch(&db, &query, before, 2_000).await?;
                let Some(last) = batch.last().map(|row| row.payment.id) else {
                    return Ok(None);
                };
                let rows = batch
                    .iter()
                    .map(|row| {
                        let p = &row.payment;
                        let (admission_no, name, class_name) = row
                            .student
                            .as_ref()
                            .map(|s| {
                                (
                                    s.admission_no.clone(),
                                    s.full_name.clone(),
                                    s.class_name.clone(),
                                )
                            })
                            .unwrap_or_default();
                        vec![
                            p.receipt_no.clone(),
                            p.paid_on.to_string(),
                            safe_cell(&admission_no).into_owned(),
                            safe_cell(&name).into_owned(),
                            safe_cell(&class_name).into_owned(),
                            p.amount.to_string(),
                            p.method.clone(),
                            safe_cell(&p.reference).into_owned(),
                            if p.voided { "yes".into() } else { "no".into() },
                            safe_cell(p.void_reason.as_deref().unwrap_or("")).into_owned(),
                        ]
                    })
                    .collect();
                Ok(Some((rows, last)))
            }
        },
    ))
}

async fn receipt(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
) -> Result<Html<String>, AppError> {
    let payment = entries::payment(&state.db, id).await?;
    let student = students::get(&state.db, payment.student_id).await?;
    let recorded_by = crate::repo::users::find_by_id(&state.db, payment.created_by)
        .await?
        .map(|u| u.username);
    page.render(
        "payments/receipt.html",
        json!({
            "title": format!("Receipt {}", payment.receipt_no),
            "nav": "payments",
            "payment": PaymentView::from(&payment),
            "student": StudentView::from(&student),
            "recorded_by": recorded_by,
        }),
    )
    .await
}

async fn void(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    CsrfForm(form): CsrfForm<VoidForm>,
) -> Result<Response, AppError> {
    page.require(Role::Bursar)?;
    let reason = form.reason()?;
    let (payment, message) = match entries::void_payment(&state.db, page.user.id, id, &reason).await
    {
        Ok(Voided::Now(payment)) => {
            let message = format!("Receipt {} was voided.", payment.receipt_no);
            (payment, message)
        }
        Ok(Voided::Already(payment)) => {
            (payment, "That payment had already been voided.".to_string())
        }
        Err(LedgerError::NotFound) => return Err(AppError::NotFound),
        Err(err) => return Err(err.into()),
    };
    page.flash(&message).await?;
    Ok(Redirect::to(&format!("/students/{}/", payment.student_id)).into_response())
}
