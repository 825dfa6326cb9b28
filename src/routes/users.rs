//! `/users/`: admins create accounts, change roles, deactivate, and reset passwords.
use std::collections::BTreeMap;

use axum::{
    Router,
    extract::State,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::page::{Id, Page};
use crate::{
    auth::{CsrfForm, password::hash_password},
    domain::{NewPassword, Role, Username},
    error::AppError,
    repo::users::{self, Change, User},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users/", get(list).post(create))
        .route("/users/{id}/role", post(change_role))
        .route("/users/{id}/active", post(change_active))
        .route("/users/{id}/password", post(reset_password))
}

#[derive(Serialize)]
struct UserRow {
    id: i64,
    username: String,
    role: String,
    active: bool,
    created_at: String,
}

impl From<&User> for UserRow {
    fn from(u: &User) -> Self {
        UserRow {
            id: u.id,
            username: u.username.clone(),
            role: u.role.clone(),
            active: u.active,
            created_at: u.created_at.format("%Y-%m-%d").to_string(),
        }
    }
}

async fn render(
    state: &AppState,
    page: &Page,
    form: serde_json::Value,
    errors: BTreeMap<&str, String>,
) -> Result<Html<String>, AppError> {
    let rows: Vec<UserRow> = users::list(&state.db)
        .await?
        .iter()
        .map(UserRow::from)
        .collect();
    page.render(
        "users/list.html",
        json!({
            "title": "Users",
            "nav": "users",
            "users": rows,
            "roles": Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "form": form,
            "errors": errors,
        }),
    )
    .await
}

async fn list(State(state): State<AppState>, page: Page) -> Result<Html<String>, AppError> {
    page.require(Role::Admin)?;
    render(&state, &page, json!({"role": "viewer"}), BTreeMap::new()).await
}

// No Debug: it holds a password.
#[derive(Deserialize, Default)]
#[serde(default)]
struct NewUserForm {
    username: String,
    role: String,
    password: String,
}

async fn create(
    State(state): State<AppState>,
    page: Page,
    CsrfForm(form): CsrfForm<NewUserForm>,
) -> Result<Response, AppError> {
    page.require(Role::Admin)?;
    let mut errors = BTreeMap::new();
    let username = Username::parse(&form.username)
        .map_err(|e| errors.insert("username", e))
        .ok();
    let role = form
        .role
        .parse::<Role>()
        .map_err(|e| errors.insert("role", e))
        .ok();
    let password = NewPassword::parse(form.password)
        .map_err(|e| errors.insert("password", e))
        .ok();
    let typed = json!({"username": form.username, "role": form.role});
    let (Some(username), Some(role), Some(password)) = (username, role, password) else {
        let mut response = render(&state, &page, typed, errors).await?.into_response();
        *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
        return Ok(response);
    };
    let hash = hash_password(password.expose().to_string()).await?;
    match users::create_by(&state.db, Some(page.user.id), &username, hash, role).await? {
        Some(user) => {
            page.flash(&format!("Created {} ({}).", user.username, user.role))
                .await?;
            Ok(Redirect::to("/users/").into_response())
        }
        None => {
            errors.insert("username", "This username is taken.".into());
            let mut response = render(&state, &page, typed, errors).await?.into_response();
            *response.status_mut() = axum::http::StatusCode::CONFLICT;
            Ok(response)
        }
    }
}

/// The account being changed: it exists, and it is not the admin's own
/// (an admin cannot lock themselves out).
async fn other_user(state: &AppState, page: &Page, id: i64) -> Result<User, AppError> {
    page.require(Role::Admin)?;
    let user = users::find_by_id(&state.db, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if user.id == page.user.id {
        return Err(AppError::BadRequest(
            "You cannot change your own role or status here; change your password at /account/password.".into(),
        ));
    }
    Ok(user)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RoleForm {
    role: String,
}

async fn change_role(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    CsrfForm(form): CsrfForm<RoleForm>,
) -> Result<Response, AppError> {
    let user = other_user(&state, &page, id).await?;
    let role = form.role.parse::<Role>().map_err(AppError::BadRequest)?;
    let user = users::change(&state.db, Some(page.user.id), &user, Change::Role(role)).await?;
    page.flash(&format!(
        "{} is now a {}; their other sessions have ended.",
        user.username, user.role
    ))
    .await?;
    Ok(Redirect::to("/users/").into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ActiveForm {
    active: String,
}

async fn change_active(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    CsrfForm(form): CsrfForm<ActiveForm>,
) -> Result<Response, AppError> {
    let user = other_user(&state, &page, id).await?;
    let active = match form.active.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(AppError::BadRequest("active must be true or false.".into())),
    };
    let user = users::change(&state.db, Some(page.user.id), &user, Change::Active(active)).await?;
    let message = if user.active {
        "can sign in again"
    } else {
        "is deactivated and signed out everywhere"
    };
    page.flash(&format!("{} {message}.", user.username)).await?;
    Ok(Redirect::to("/users/").into_response())
}

// No Debug: it holds a password.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ResetForm {
    password: String,
}

async fn reset_password(
    State(state): State<AppState>,
    page: Page,
    Id(id): Id,
    CsrfForm(form): CsrfForm<ResetForm>,
) -> Result<Response, AppError> {
    let user = other_user(&state, &page, id).await?;
    let password = NewPassword::parse(form.password).map_err(AppError::BadRequest)?;
    let hash = hash_password(password.expose().to_string()).await?;
    let user = users::change(
        &state.db,
        Some(page.user.id),
        &user,
        Change::PasswordHash(hash),
    )
    .await?;
    page.flash(&format!(
        "{}'s password was reset; their sessions have ended.",
        user.username
    ))
    .await?;
    Ok(Redirect::to("/users/").into_response())
}
