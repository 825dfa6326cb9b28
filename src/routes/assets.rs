//! `/static/…`: the stylesheet, compiled into the binary.
use axum::{Router, http::header, response::IntoResponse, routing::get};

use crate::state::AppState;

const STYLE: &str = include_str!("../../static/style.css");

pub fn router() -> Router<AppState> {
    Router::new().route("/static/style.css", get(style))
}

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
}
