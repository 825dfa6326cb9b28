//! `/dashboard/`: the first page after signing in.
use axum::{Router, response::Html, routing::get};
use serde_json::json;

use super::page::render_page;
use crate::{auth::CurrentUser, error::AppError, session::Session, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/dashboard/", get(dashboard))
}

async fn dashboard(user: CurrentUser, session: Session) -> Result<Html<String>, AppError> {
    render_page(
        &session,
        &user,
        "dashboard.html",
        json!({"title": "Dashboard"}),
    )
    .await
}
