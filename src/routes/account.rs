//! `/account/password`: a signed-in user changes their own password.
use std::collections::BTreeMap;

use axum::{
    Router,
    extract::State,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use serde::Deserialize;
use serde_json::json;

use super::page::Page;
use crate::{
    auth::{
        CsrfForm,
        password::{hash_password, verify_password},
        user::{AuthFingerprint, fingerprint},
    },
    domain::NewPassword,
    error::AppError,
    repo::users,
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/account/password",
        get(password_page).post(change_password),
    )
}

async fn password_page(page: Page) -> Result<Response, AppError> {
    Ok(page
        .render(
            "account/password.html",
            json!({"title": "Change password", "errors": {}}),
        )
        .await?
        .into_response())
}

// No Debug: it holds passwords.
#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

/// Changes the password and keeps this session signed in; every other
/// session of this user ends at its next request (S6).
async fn change_password(
    State(state): State<AppState>,
    page: Page,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response, AppError> {
    let mut errors = BTreeMap::new();
    let account = users::find_by_id(&state.db, page.user.id)
        .await?
        .ok_or(AppError::SignInRequired { next: None })?;
    let new_password = match NewPassword::parse(form.new_password) {
        Ok(p) => Some(p),
        Err(message) => {
            errors.insert("new_password", message);
            None
        }
    };
    if let Some(p) = &new_password
        && p.expose() != form.confirm_password
    {
        errors.insert(
            "confirm_password",
            "The two new passwords differ.".to_string(),
        );
    }
    if !verify_password(form.current_password, Some(account.password_hash.clone())).await? {
        errors.insert(
            "current_password",
            "This is not your current password.".to_string(),
        );
    }
    let Some(new_password) = new_password.filter(|_| errors.is_empty()) else {
        return page
            .render_invalid(
                "account/password.html",
                json!({"title": "Change password", "errors": errors}),
            )
            .await;
    };
    let hash = hash_password(new_password.expose().to_string()).await?;
    let updated = users::set_password_hash(&state.db, &account, hash).await?;
    page.session
        .insert::<AuthFingerprint>(&fingerprint(&updated))
        .await?;
    tracing::info!(user_id = page.user.id, "password changed");
    page.flash("Your password has been changed. Other sessions have been signed out.")
        .await?;
    Ok(Redirect::to("/dashboard/").into_response())
}
