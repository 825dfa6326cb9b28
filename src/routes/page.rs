//! What every signed-in page shows around its content: the user, the logout form, the flash message.
use axum::response::Html;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    auth::{CurrentUser, csrf::token_for},
    error::AppError,
    session::{Session, SessionKey},
    templates,
};

/// Session key `flash`: a one-time message shown on the next page.
pub struct Flash;
impl SessionKey for Flash {
    const NAME: &'static str = "flash";
    type Value = String;
}

/// Leaves a message for the next page this session renders.
pub async fn flash(session: &Session, message: &str) -> Result<(), AppError> {
    session.insert::<Flash>(&message.to_string()).await?;
    Ok(())
}

/// Renders `template` inside the site layout for a signed-in user. `content`
/// is the page's own context (a JSON object).
pub async fn render_page(
    session: &Session,
    user: &CurrentUser,
    template: &str,
    content: impl Serialize,
) -> Result<Html<String>, AppError> {
    let csrf_token = token_for(session).await?;
    // Reading the flash only writes the session when there was one to show.
    let flash = session.get::<Flash>().await?;
    if flash.is_some() {
        session.remove::<Flash>().await?;
    }
    let mut context = serde_json::to_value(content).map_err(|e| AppError::Internal(e.into()))?;
    if !context.is_object() {
        context = json!({});
    }
    if let Value::Object(map) = &mut context {
        map.insert("user".into(), json!(user));
        map.insert("csrf_token".into(), json!(csrf_token));
        map.insert("flash".into(), json!(flash));
    }
    templates::render(template, &context)
}
