//! `POST /api/v1/login`, `POST /api/v1/logout`, `GET /api/v1/session`.
use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    auth::{
        CsrfHeader, CurrentUser,
        csrf::token_for,
        login::{LoginOutcome, log_in},
    },
    error::AppError,
    extract::{ApiJson, ClientAddr},
    session::Session,
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/session", get(current))
}

// No Debug: it holds a password.
#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// Needs `Content-Type: application/json` (which a cross-site form cannot
/// send) instead of a CSRF token: there is no session to take one from yet.
async fn login(
    State(state): State<AppState>,
    session: Session,
    ClientAddr(addr): ClientAddr,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Json<Value>, AppError> {
    let typed: String = credentials.username.chars().take(200).collect();
    match log_in(&state, &session, &typed, credentials.password, addr).await? {
        LoginOutcome::SignedIn { user, csrf_token } => Ok(Json(json!({
            "user": user.username,
            "role": user.role(),
            "csrf_token": csrf_token,
        }))),
        LoginOutcome::Rejected => Err(AppError::BadCredentials),
        LoginOutcome::Throttled => Err(AppError::TooManyRequests),
    }
}

async fn logout(
    _user: CurrentUser,
    session: Session,
    _csrf: CsrfHeader,
) -> Result<Json<Value>, AppError> {
    session.delete().await?;
    Ok(Json(json!({"ok": true})))
}

async fn current(user: CurrentUser, session: Session) -> Result<Json<Value>, AppError> {
    let csrf_token = token_for(&session).await?;
    Ok(Json(
        json!({"user": user.username, "role": user.role, "csrf_token": csrf_token}),
    ))
}
