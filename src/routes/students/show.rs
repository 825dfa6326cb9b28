//! A student's page: details, statement with running balance, and the charge and payment forms.
use std::collections::BTreeMap;

use axum::{
    extract::State,
    response::{IntoResponse, Redirect, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    auth::CsrfForm,
    domain::{
        Amount, Role,
        ledger::{self, PaymentMethod},
    },
    error::AppError,
    ledger::{
        LedgerError,
        entries::{self, NewCharge, NewPayment, Voided},
        students::{self, StudentView},
        today,
    },
    routes::page::{Id, Page},
    session::SessionKey,
    state::AppState,
};

/// One recently viewed student, for the dashboard's shortcuts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentStudent {
    pub id: i64,
    pub name: String,
    pub admission_no: String,
}

/// Session key `recent.students`: the last five students viewed, newest
/// first. Tabs open on several students merge their views through
/// update-with-retry instead of overwriting each other.
pub struct RecentStudents;
impl SessionKey for RecentStudents {
    const NAME: &'static str = "recent.students";
    type Value = Vec<RecentStudent>;
}

const RECENT: usize = 5;

/// What the forms on the page hold: blank, or what was typed and what was wrong with it.
#[derive(Serialize)]
pub struct Forms {
    pub charge: ChargeForm,
    pub charge_errors: BTreeMap<String, String>,
    pub payment: PaymentForm,
    pub payment_errors: BTreeMap<String, String>,
}

impl Default for Forms {
    fn default() -> Self {
        Forms {
            charge: ChargeForm::default(),
            charge_errors: BTreeMap::new(),
            payment: PaymentForm {
                method: "cash".into(),
                paid_on: today().to_string(),
                ..PaymentForm::default()
            },
            payment_errors: BTreeMap::new(),
        }
    }
}

pub async fn page(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
) -> Result<Response, AppError> {
    let student = students::get(&state.db, id).await?;
    let seen = RecentStudent {
        id,
        name: format!("{} {}", student.first_name, student.last_name),
        admission_no: student.admission_no.clone(),
    };
    // Viewing the same student again changes nothing and writes nothing.
    let current = page
        .session
        .get::<RecentStudents>()
        .await?
        .unwrap_or_default();
    if current.first() != Some(&seen) {
        page.session
            .update::<RecentStudents>(|list| {
                let mut list = list.unwrap_or_default();
                list.retain(|s| s.id != seen.id);
                list.insert(0, seen.clone());
                list.truncate(RECENT);
                list
            })
            .await?;
    }
    render(&state, &page, id, Forms::default(), false).await
}

/// The student page, with `forms` filled in; `invalid` answers 400.
async fn render(
    state: &AppState,
    page: &Page,
    id: i64,
    mut forms: Forms,
    invalid: bool,
) -> Result<Response, AppError> {
    let student = students::get(&state.db, id).await?;
    let (_, _, lines) = entries::statement(&state.db, id).await?;
    // A fresh key per form shown: submitting it twice records one payment.
    if forms.payment.idempotency_key.trim().is_empty() {
        forms.payment.idempotency_key = uuid::Uuid::new_v4().to_string();
    }
    let content = json!({
        "title": format!("{} {}", student.first_name, student.last_name),
        "nav": "students",
        "student": StudentView::from(&student),
        "lines": lines,
        "methods": PaymentMethod::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "today": today().to_string(),
        "forms": forms,
    });
    if invalid {
        page.render_invalid("students/show.html", content).await
    } else {
        Ok(page
            .render("students/show.html", content)
            .await?
            .into_response())
    }
}

#[derive(Deserialize, Serialize, Default)]
#[serde(default)]
pub struct ChargeForm {
    pub amount: String,
    pub description: String,
    pub due_on: String,
}

impl ChargeForm {
    pub fn parse(&self) -> Result<NewCharge, BTreeMap<String, String>> {
        let mut errors = BTreeMap::new();
        let amount = Amount::parse(&self.amount)
            .map_err(|e| errors.insert("amount".into(), e))
            .ok();
        let description = ledger::description(&self.description)
            .map_err(|e| errors.insert("description".into(), e))
            .ok();
        let due_on = if self.due_on.trim().is_empty() {
            Some(None)
        } else {
            ledger::date(&self.due_on, "Due date")
                .map(Some)
                .map_err(|e| errors.insert("due_on".into(), e))
                .ok()
        };
        match (amount, description, due_on) {
            (Some(amount), Some(description), Some(due_on)) if errors.is_empty() => Ok(NewCharge {
                amount,
                description,
                due_on,
            }),
            _ => Err(errors),
        }
    }
}

pub async fn post_charge(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    CsrfForm(form): CsrfForm<ChargeForm>,
) -> Result<Response, AppError> {
    page.require(Role::Bursar)?;
    let new = match form.parse() {
        Ok(new) => new,
        Err(errors) => {
            students::get(&state.db, id).await?;
            let forms = Forms {
                charge: form,
                charge_errors: errors,
                ..Forms::default()
            };
            return render(&state, &page, id, forms, true).await;
        }
    };
    let charge = entries::post_charge(&state.db, page.user.id, id, &new).await?;
    page.flash(&format!(
        "Charged {} for {}.",
        charge.amount.0.grouped(),
        charge.description
    ))
    .await?;
    Ok(Redirect::to(&format!("/students/{id}/")).into_response())
}

#[derive(Deserialize, Serialize, Default)]
#[serde(default)]
pub struct PaymentForm {
    pub amount: String,
    pub method: String,
    pub reference: String,
    pub paid_on: String,
    pub idempotency_key: String,
}

impl PaymentForm {
    pub fn parse(&self) -> Result<NewPayment, BTreeMap<String, String>> {
        let mut errors = BTreeMap::new();
        let amount = Amount::parse(&self.amount)
            .map_err(|e| errors.insert("amount".into(), e))
            .ok();
        let method = self
            .method
            .parse::<PaymentMethod>()
            .map_err(|e| errors.insert("method".into(), e))
            .ok();
        let reference = ledger::reference(&self.reference)
            .map_err(|e| errors.insert("reference".into(), e))
            .ok();
        let paid_on = ledger::paid_on(&self.paid_on, today())
            .map_err(|e| errors.insert("paid_on".into(), e))
            .ok();
        let key = ledger::idempotency_key(&self.idempotency_key)
            .map_err(|e| errors.insert("idempotency_key".into(), e))
            .ok();
        match (amount, method, reference, paid_on, key) {
            (Some(amount), Some(method), Some(reference), Some(paid_on), Some(idempotency_key))
                if errors.is_empty() =>
            {
                Ok(NewPayment {
                    amount,
                    method,
                    reference,
                    paid_on,
                    idempotency_key,
                })
            }
            _ => Err(errors),
        }
    }
}

/// Records the payment (once per form, however often it is submitted) and
/// shows its receipt.
pub async fn post_payment(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    CsrfForm(form): CsrfForm<PaymentForm>,
) -> Result<Response, AppError> {
    page.require(Role::Bursar)?;
    let new = match form.parse() {
        Ok(new) => new,
        Err(errors) => {
            students::get(&state.db, id).await?;
            let forms = Forms {
                payment: form,
                payment_errors: errors,
                ..Forms::default()
            };
            return render(&state, &page, id, forms, true).await;
        }
    };
    let recorded = entries::record_payment(&state.db, page.user.id, id, &new).await?;
    Ok(Redirect::to(&format!("/payments/{}/receipt/", recorded.payment().id)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct VoidForm {
    pub reason: String,
}

impl VoidForm {
    pub fn reason(&self) -> Result<String, AppError> {
        ledger::void_reason(&self.reason).map_err(AppError::BadRequest)
    }
}

pub async fn void_charge(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    CsrfForm(form): CsrfForm<VoidForm>,
) -> Result<Response, AppError> {
    page.require(Role::Bursar)?;
    let reason = form.reason()?;
    let (charge, message) = match entries::void_charge(&state.db, page.user.id, id, &reason).await {
        Ok(Voided::Now(charge)) => (charge, "The charge was voided."),
        Ok(Voided::Already(charge)) => (charge, "That charge had already been voided."),
        Err(LedgerError::NotFound) => return Err(AppError::NotFound),
        Err(err) => return Err(err.into()),
    };
    page.flash(message).await?;
    Ok(Redirect::to(&format!("/students/{}/", charge.student_id)).into_response())
}
