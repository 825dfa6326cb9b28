//! `/`, `/login/` and `/logout/`: the HTML way in and out.
use axum::{
    Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    auth::{
        CsrfForm, MaybeUser,
        csrf::{token_for, verify},
        login::{LoginOutcome, log_in, safe_next},
    },
    error::AppError,
    extract::ClientAddr,
    session::Session,
    state::AppState,
    templates,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login/", get(login_page).post(login_submit))
        .route("/logout/", post(logout))
}

async fn home(MaybeUser(user): MaybeUser) -> Redirect {
    Redirect::to(if user.is_some() {
        "/dashboard/"
    } else {
        "/login/"
    })
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

fn login_form(
    csrf_token: &str,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> Result<Response, AppError> {
    let next = (next != "/dashboard/").then_some(next);
    Ok(templates::render(
        "login.html",
        &json!({"csrf_token": csrf_token, "next": next, "username": username, "error": error}),
    )?
    .into_response())
}

async fn login_page(
    MaybeUser(user): MaybeUser,
    session: Session,
    Query(query): Query<NextQuery>,
) -> Result<Response, AppError> {
    let next = safe_next(query.next.as_deref());
    if user.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let csrf_token = token_for(&session).await?;
    login_form(&csrf_token, &next, "", None)
}

// No Debug: it holds a password.
#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

async fn login_submit(
    State(state): State<AppState>,
    session: Session,
    ClientAddr(addr): ClientAddr,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, AppError> {
    let next = safe_next(form.next.as_deref());
    let typed = form.username.chars().take(200).collect::<String>();
    match log_in(&state, &session, &typed, form.password, addr).await? {
        LoginOutcome::SignedIn { .. } => Ok(Redirect::to(&next).into_response()),
        LoginOutcome::Rejected => {
            let csrf_token = token_for(&session).await?;
            login_form(
                &csrf_token,
                &next,
                &typed,
                Some("The username or password is not right."),
            )
        }
        LoginOutcome::Throttled => {
            let csrf_token = token_for(&session).await?;
            let mut page = login_form(
                &csrf_token,
                &next,
                &typed,
                Some("Too many failed attempts. Please wait 15 minutes and try again."),
            )?;
            *page.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            Ok(page)
        }
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf_token: Option<String>,
}

/// Deletes the session everywhere and clears the cookie. Someone who is not
/// signed in has nothing to protect, so they are simply sent to the login page.
async fn logout(
    MaybeUser(user): MaybeUser,
    session: Session,
    form: axum::extract::Request,
) -> Result<Redirect, AppError> {
    if user.is_some() {
        let bytes = crate::auth::csrf::form_bytes(form, &()).await?;
        let token = serde_urlencoded::from_bytes::<LogoutForm>(&bytes)
            .ok()
            .and_then(|f| f.csrf_token)
            .unwrap_or_default();
        verify(&session, &token).await?;
        session.delete().await?;
    }
    Ok(Redirect::to("/login/"))
}
