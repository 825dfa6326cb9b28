//! What every signed-in page shows around its content: the user, the logout form, the flash message.
use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
    response::{Html, IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    auth::{CurrentUser, csrf::token_for},
    domain::Role,
    error::AppError,
    session::{Session, SessionKey},
    state::AppState,
    templates,
};

/// Session key `flash`: a one-time message shown on the next page.
pub struct Flash;
impl SessionKey for Flash {
    const NAME: &'static str = "flash";
    type Value = String;
}

/// A signed-in page being built: who is asking, their session, and what
/// the layout needs.
pub struct Page {
    pub user: CurrentUser,
    pub session: Session,
    currency: String,
}

impl FromRequestParts<AppState> for Page {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        let session = Session::from_request_parts(parts, state).await?;
        Ok(Page {
            user,
            session,
            currency: state.settings.currency.clone(),
        })
    }
}

impl Page {
    /// 403 unless the user's role allows at least `role`.
    pub fn require(&self, role: Role) -> Result<(), AppError> {
        self.user.require(role)
    }

    /// Leaves a message for the next page this session renders.
    pub async fn flash(&self, message: &str) -> Result<(), AppError> {
        self.session.insert::<Flash>(&message.to_string()).await?;
        Ok(())
    }

    /// Renders `template` inside the site layout. `content` is the page's
    /// own context (a JSON object); `nav` marks the current section.
    pub async fn render(
        &self,
        template: &str,
        content: impl Serialize,
    ) -> Result<Html<String>, AppError> {
        let csrf_token = token_for(&self.session).await?;
        // Reading the flash writes the session only when there was one.
        let flash = self.session.get::<Flash>().await?;
        if flash.is_some() {
            self.session.remove::<Flash>().await?;
        }
        let context = layout(content, &self.user, &csrf_token, flash, &self.currency)?;
        templates::render(template, &context)
    }

    /// The same page with a 400: a form that did not pass its checks.
    pub async fn render_invalid(
        &self,
        template: &str,
        content: impl Serialize,
    ) -> Result<Response, AppError> {
        let mut response = self.render(template, content).await?.into_response();
        *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
        Ok(response)
    }
}

/// A page's own content with what the site layout reads around it.
pub fn layout(
    content: impl Serialize,
    user: &CurrentUser,
    csrf_token: &str,
    flash: Option<String>,
    currency: &str,
) -> Result<Value, AppError> {
    let mut context = serde_json::to_value(content).map_err(|e| AppError::Internal(e.into()))?;
    if !context.is_object() {
        context = json!({});
    }
    if let Value::Object(map) = &mut context {
        map.insert("user".into(), json!(user));
        map.insert("can_write".into(), json!(user.role.can_write()));
        map.insert("is_admin".into(), json!(user.role.can_manage_users()));
        map.insert("csrf_token".into(), json!(csrf_token));
        map.insert("flash".into(), json!(flash));
        map.insert("currency".into(), json!(currency));
    }
    Ok(context)
}

/// A numeric id from the path; anything else is a 404, like an id that does not exist.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::NotFound)?;
        raw.parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(Id)
            .ok_or(AppError::NotFound)
    }
}
