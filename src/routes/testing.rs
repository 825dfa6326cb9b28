//! Routes mounted only in tests (`Settings::test_hooks`): a session write with a widened load–save window.
use std::time::Duration;

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    response::Html,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    auth::CurrentUser,
    error::AppError,
    session::{Session, SessionKey},
    state::AppState,
};

pub struct TestKeyA;
impl SessionKey for TestKeyA {
    const NAME: &'static str = "test.a";
    type Value = String;
}

pub struct TestKeyB;
impl SessionKey for TestKeyB {
    const NAME: &'static str = "test.b";
    type Value = String;
}

pub struct TestList;
impl SessionKey for TestList {
    const NAME: &'static str = "test.list";
    type Value = Vec<String>;
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/_test/session", get(read))
        .route("/_test/session/{slot}", post(write))
        .route("/api/v1/_test/session/{slot}", post(write))
        .route("/_test/session-list", post(append))
        .route("/_test/dashboard", get(dashboard_without_session))
}

#[derive(Deserialize)]
struct WriteQuery {
    value: String,
    #[serde(default)]
    delay_ms: u64,
}

/// Loads the session, waits, then sets key `test.a` or `test.b`: two of these
/// in flight on one session overlap between load and save. Answers with the
/// keys as this request loaded them.
async fn write(
    _user: CurrentUser,
    session: Session,
    Path(slot): Path<String>,
    Query(query): Query<WriteQuery>,
) -> Result<Json<Value>, AppError> {
    // What this request loaded, before it writes: tests tell from it whether
    // two requests really overlapped (neither saw the other's write).
    let loaded =
        json!({"a": session.get::<TestKeyA>().await?, "b": session.get::<TestKeyB>().await?});
    tokio::time::sleep(Duration::from_millis(query.delay_ms.min(5_000))).await;
    match slot.as_str() {
        "a" => session.insert::<TestKeyA>(&query.value).await?,
        "b" => session.insert::<TestKeyB>(&query.value).await?,
        _ => return Err(AppError::NotFound),
    }
    Ok(Json(json!({"ok": true, "loaded": loaded})))
}

/// Appends to `test.list` with update-with-retry, after a delay.
async fn append(
    _user: CurrentUser,
    session: Session,
    Query(query): Query<WriteQuery>,
) -> Result<Json<Value>, AppError> {
    tokio::time::sleep(Duration::from_millis(query.delay_ms.min(5_000))).await;
    let list = session
        .update::<TestList>(|list| {
            let mut list = list.unwrap_or_default();
            list.push(query.value.clone());
            list
        })
        .await?;
    Ok(Json(json!({"list": list})))
}

/// The dashboard's handler without the session: what the benchmark compares
/// an authenticated page against, to price the session layer.
async fn dashboard_without_session(
    State(state): State<AppState>,
) -> Result<Html<String>, AppError> {
    let content = crate::routes::dashboard::content(&state, Vec::new()).await?;
    let visitor = CurrentUser {
        id: 0,
        username: "bench".into(),
        role: crate::domain::Role::Viewer,
    };
    let content =
        crate::routes::page::layout(content, &visitor, "", None, &state.settings.currency)?;
    crate::templates::render("dashboard.html", &content)
}

async fn read(_user: CurrentUser, session: Session) -> Result<Json<Value>, AppError> {
    Ok(Json(json!({
        "a": session.get::<TestKeyA>().await?,
        "b": session.get::<TestKeyB>().await?,
        "list": session.get::<TestList>().await?,
    })))
}
