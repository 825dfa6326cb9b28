//! Creating and editing a student.
use axum::{
    extract::State,
    response::{Html, IntoResponse, Redirect, Response},
};
use serde_json::json;

use crate::{
    auth::CsrfForm,
    domain::{Role, student::StudentInput},
    error::AppError,
    ledger::students,
    routes::page::{Id, Page},
    state::AppState,
};

fn input_of(student: &students::Student) -> StudentInput {
    StudentInput {
        admission_no: student.admission_no.clone(),
        first_name: student.first_name.clone(),
        last_name: student.last_name.clone(),
        class_name: student.class_name.clone(),
        guardian_name: student.guardian_name.clone(),
        guardian_phone: student.guardian_phone.clone(),
        guardian_email: student.guardian_email.clone(),
        status: student.status.clone(),
    }
}

fn context(
    title: &str,
    action: &str,
    input: &StudentInput,
    errors: impl serde::Serialize,
) -> serde_json::Value {
    json!({"title": title, "nav": "students", "action": action, "student": input, "errors": errors, "editing": action != "/students/"})
}

pub async fn new(page: Page) -> Result<Html<String>, AppError> {
    page.require(Role::Bursar)?;
    let blank = StudentInput {
        status: "active".into(),
        ..StudentInput::default()
    };
    page.render(
        "students/form.html",
        context("New student", "/students/", &blank, json!({})),
    )
    .await
}

pub async fn create(
    State(state): State<AppState>,
    page: Page,
    CsrfForm(input): CsrfForm<StudentInput>,
) -> Result<Response, AppError> {
    page.require(Role::Bursar)?;
    let outcome = match input.parse() {
        Ok(fields) => students::create(&state.db, page.user.id, &fields).await,
        Err(errors) => Err(crate::ledger::LedgerError::Invalid(errors)),
    };
    match outcome {
        Ok(student) => {
            page.flash(&format!(
                "Added {} {}.",
                student.first_name, student.last_name
            ))
            .await?;
            Ok(Redirect::to(&format!("/students/{}/", student.id)).into_response())
        }
        Err(err) => match err.field_errors() {
            Some(errors) => {
                page.render_invalid(
                    "students/form.html",
                    context("New student", "/students/", &input, errors),
                )
                .await
            }
            None => Err(err.into()),
        },
    }
}

pub async fn edit(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
) -> Result<Html<String>, AppError> {
    page.require(Role::Bursar)?;
    let student = students::get(&state.db, id).await?;
    page.render(
        "students/form.html",
        context(
            "Edit student",
            &format!("/students/{id}/"),
            &input_of(&student),
            json!({}),
        ),
    )
    .await
}

pub async fn update(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    CsrfForm(input): CsrfForm<StudentInput>,
) -> Result<Response, AppError> {
    page.require(Role::Bursar)?;
    let outcome = match input.parse() {
        Ok(fields) => students::update(&state.db, page.user.id, id, &fields).await,
        Err(errors) => Err(crate::ledger::LedgerError::Invalid(errors)),
    };
    match outcome {
        Ok(_) => {
            page.flash("Saved.").await?;
            Ok(Redirect::to(&format!("/students/{id}/")).into_response())
        }
        Err(err) => match err.field_errors() {
            Some(errors) => {
                page.render_invalid(
                    "students/form.html",
                    context("Edit student", &format!("/students/{id}/"), &input, errors),
                )
                .await
            }
            None => Err(err.into()),
        },
    }
}
