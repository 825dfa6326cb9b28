//! `/api/v1/students…` and `/api/v1/dashboard`: the school office's data as JSON.
use std::collections::BTreeMap;

use axum::{
    Json, Router,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Map, Value, json};

use crate::{
    auth::{CsrfHeader, CurrentUser},
    domain::{
        Amount, Role,
        ledger::{self, PaymentMethod},
        student::StudentInput,
    },
    error::AppError,
    extract::ApiJson,
    ledger::{
        dashboard,
        entries::{self, ChargeView, NewCharge, NewPayment, PaymentView, Recorded},
        students::{self, StudentView},
        today,
    },
    routes::{page::Id, query, students::StudentsFilter},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/students", get(list).post(create))
        .route("/students/{id}", get(show))
        .route("/students/{id}/charges", axum::routing::post(post_charge))
        .route("/students/{id}/payments", axum::routing::post(post_payment))
        .route("/dashboard", get(show_dashboard))
}

fn invalid(fields: BTreeMap<String, String>) -> AppError {
    AppError::Validation {
        message: "Some fields are not valid.".into(),
        fields,
    }
}

async fn list(
    State(state): State<AppState>,
    _user: CurrentUser,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, AppError> {
    let params = query::params(raw.as_deref())?;
    let filter = StudentsFilter::from_params(&params)?;
    let page = query::page(&params)?;
    let query = filter.query(page);
    let (rows, total) = students::list(&state.db, &query).await?;
    let items: Vec<StudentView> = rows.iter().map(StudentView::from).collect();
    Ok(Json(
        json!({"items": items, "total": total, "page": page, "per_page": query.per_page}),
    ))
}

async fn show(
    State(state): State<AppState>,
    _user: CurrentUser,
    Id(id): Id,
) -> Result<Json<StudentView>, AppError> {
    Ok(Json(StudentView::from(
        &students::get(&state.db, id).await?,
    )))
}

async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    _csrf: CsrfHeader,
    ApiJson(input): ApiJson<StudentInput>,
) -> Result<Response, AppError> {
    user.require(Role::Bursar)?;
    let fields = input.parse().map_err(invalid)?;
    let student = students::create(&state.db, user.id, &fields).await?;
    Ok((StatusCode::CREATED, Json(StudentView::from(&student))).into_response())
}

/// A string member of a JSON body: absent reads as empty; money and dates
/// must be strings ("12.50"), never JSON numbers, so nothing is ever a float.
fn string_field(
    body: &Map<String, Value>,
    name: &str,
    errors: &mut BTreeMap<String, String>,
) -> String {
    match body.get(name) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            errors.insert(
                name.into(),
                format!("{name} must be a string, such as \"12.50\" for an amount."),
            );
            String::new()
        }
    }
}

fn object(body: Value) -> Result<Map<String, Value>, AppError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(AppError::BadRequest(
            "The body must be a JSON object.".into(),
        )),
    }
}

async fn post_charge(
    State(state): State<AppState>,
    user: CurrentUser,
    _csrf: CsrfHeader,
    Id(id): Id,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, AppError> {
    user.require(Role::Bursar)?;
    let body = object(body)?;
    let mut errors = BTreeMap::new();
    let amount = string_field(&body, "amount", &mut errors);
    let description = string_field(&body, "description", &mut errors);
    let due_on = string_field(&body, "due_on", &mut errors);
    let amount = Amount::parse(&amount)
        .map_err(|e| errors.entry("amount".into()).or_insert(e).clone())
        .ok();
    let description = ledger::description(&description)
        .map_err(|e| errors.insert("description".into(), e))
        .ok();
    let due_on = if due_on.trim().is_empty() {
        Some(None)
    } else {
        ledger::date(&due_on, "Due date")
            .map(Some)
            .map_err(|e| errors.entry("due_on".into()).or_insert(e).clone())
            .ok()
    };
    let (Some(amount), Some(description), Some(due_on)) = (amount, description, due_on) else {
        return Err(invalid(errors));
    };
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    let charge = entries::post_charge(
        &state.db,
        user.id,
        id,
        &NewCharge {
            amount,
            description,
            due_on,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(ChargeView::from(&charge))).into_response())
}

/// 201 with the payment; the same `Idempotency-Key` again answers 200 with
/// the same body and records nothing (M6).
async fn post_payment(
    State(state): State<AppState>,
    user: CurrentUser,
    _csrf: CsrfHeader,
    Id(id): Id,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, AppError> {
    user.require(Role::Bursar)?;
    let idempotency_key = match headers.get("idempotency-key") {
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| AppError::BadRequest("Idempotency-Key must be ASCII.".into()))?;
            ledger::idempotency_key(text).map_err(AppError::BadRequest)?
        }
        // Without a key every call is a new payment.
        None => uuid::Uuid::new_v4().to_string(),
    };
    let body = object(body)?;
    let mut errors = BTreeMap::new();
    let amount = string_field(&body, "amount", &mut errors);
    let method = string_field(&body, "method", &mut errors);
    let reference = string_field(&body, "reference", &mut errors);
    let paid_on = string_field(&body, "paid_on", &mut errors);
    let amount = Amount::parse(&amount)
        .map_err(|e| errors.entry("amount".into()).or_insert(e).clone())
        .ok();
    let method = method
        .parse::<PaymentMethod>()
        .map_err(|e| errors.entry("method".into()).or_insert(e).clone())
        .ok();
    let reference = ledger::reference(&reference)
        .map_err(|e| errors.entry("reference".into()).or_insert(e).clone())
        .ok();
    let paid_on = ledger::paid_on(&paid_on, today())
        .map_err(|e| errors.entry("paid_on".into()).or_insert(e).clone())
        .ok();
    let (Some(amount), Some(method), Some(reference), Some(paid_on)) =
        (amount, method, reference, paid_on)
    else {
        return Err(invalid(errors));
    };
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    let new = NewPayment {
        amount,
        method,
        reference,
        paid_on,
        idempotency_key,
    };
    let (status, payment) = match entries::record_payment(&state.db, user.id, id, &new).await? {
        Recorded::New(payment) => (StatusCode::CREATED, payment),
        Recorded::Replayed(payment) => (StatusCode::OK, payment),
    };
    Ok((status, Json(PaymentView::from(&payment))).into_response())
}

async fn show_dashboard(
    State(state): State<AppState>,
    _user: CurrentUser,
) -> Result<Json<Value>, AppError> {
    let figures = dashboard::load(&state.db, 12).await?;
    Ok(Json(json!(figures)))
}
