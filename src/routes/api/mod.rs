//! The JSON API under `/api/v1`: same session cookie, `X-CSRF-Token` on mutating calls.
pub mod session;
pub mod students;

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(session::router())
        .merge(students::router())
}
