//! `/health/live`, `/health/ready` and `/metrics`: no login needed.
use std::time::Duration;

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use serde_json::json;

use crate::{db, metrics, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics::serve))
}

/// The process answers; nothing else is checked.
async fn live(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({"status": "live", "instance": state.settings.instance_id}))
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Ready when the database and the session store both answer within a second.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let database = match tokio::time::timeout(CHECK_TIMEOUT, db::ping(&state.db)).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "timeout".to_string(),
    };
    let sessions = match (&state.session_store, &state.redis) {
        (Some(store), _) => match tokio::time::timeout(CHECK_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(e)) => format!("error: {e}"),
            Err(_) => "timeout".to_string(),
        },
        (None, Some(redis)) => {
            use fred::prelude::ClientLike;
            match tokio::time::timeout(CHECK_TIMEOUT, redis.next().ping::<String>(None)).await {
                Ok(Ok(_)) => "ok".to_string(),
                Ok(Err(e)) => format!("error: {e}"),
                Err(_) => "timeout".to_string(),
            }
        }
        (None, None) => "ok".to_string(),
    };
    let ready = database == "ok" && sessions == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not ready" },
            "instance": state.settings.instance_id,
            "database": database,
            "sessions": sessions,
        })),
    )
}
