//! One error type for every handler, rendered as an HTML page or API JSON depending on the route.
use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Json,
    body::Body,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{Html, IntoResponse, Response},
};
use serde_json::json;

use crate::session::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    #[error("the form has expired or did not come from this site")]
    CsrfRejected,
    #[error("sign in required")]
    SignInRequired { next: Option<String> },
    #[error("The username or password is not right.")]
    BadCredentials,
    #[error("the session ended while the request ran")]
    SessionInterrupted,
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Validation {
        message: String,
        fields: BTreeMap<String, String>,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    Duplicate {
        field: &'static str,
        message: String,
    },
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many attempts; try again later")]
    TooManyRequests,
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// The database did not answer (down, or every connection busy).
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(String),
    /// The database answered with an error nobody expected.
    #[error("database error: {0}")]
    Database(sea_orm::DbErr),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What the error renderer needs, carried from the handler in the response's
/// extensions so that the route (HTML or API) decides the final shape.
#[derive(Clone, Debug)]
pub struct ErrorInfo {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: BTreeMap<String, String>,
    /// For `SignInRequired`: where to come back to after signing in.
    pub next: Option<String>,
    /// The database failed (counted on `/metrics`).
    pub database_failed: bool,
}

impl AppError {
    fn info(&self) -> ErrorInfo {
        let (status, code) = match self {
            AppError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::CsrfRejected => (StatusCode::FORBIDDEN, "csrf_failed"),
            AppError::SignInRequired { .. } => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::BadCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            AppError::SessionInterrupted => (StatusCode::UNAUTHORIZED, "session_interrupted"),
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AppError::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            AppError::Conflict(_) | AppError::Duplicate { .. } => {
                (StatusCode::CONFLICT, "conflict")
            }
            AppError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            AppError::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            AppError::Unavailable(_) | AppError::DatabaseUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            AppError::Database(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = match self {
            // Infrastructure details stay in the log, not in the answer.
            AppError::Unavailable(_) => {
                "Bursar is temporarily unavailable. Please try again in a moment.".into()
            }
            AppError::Internal(_) => "Something went wrong on our side. It has been logged.".into(),
            AppError::NotFound => "There is nothing at this address.".into(),
            AppError::SignInRequired { .. } => "Please sign in.".into(),
            other => other.to_string(),
        };
        ErrorInfo {
            status,
            code,
            message,
            fields: match self {
                AppError::Validation { fields, .. } => fields.clone(),
                AppError::Duplicate { field, message } => {
                    BTreeMap::from([(field.to_string(), message.clone())])
                }
                _ => BTreeMap::new(),
            },
            next: match self {
                AppError::SignInRequired { next } => next.clone(),
                _ => None,
            },
            database_failed: matches!(
                self,
                AppError::Database(_) | AppError::DatabaseUnavailable(_)
            ),
        }
    }
}

impl From<SessionError> for AppError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::Unavailable(e) => AppError::Unavailable(e.to_string()),
            SessionError::Interrupted(_) => AppError::SessionInterrupted,
            SessionError::Contended(key) => {
                AppError::Unavailable(format!("session key {key} is contended"))
            }
            SessionError::Encode(e) => AppError::Internal(anyhow::anyhow!(e)),
        }
    }
}

impl From<crate::session::StoreError> for AppError {
    fn from(err: crate::session::StoreError) -> Self {
        AppError::Unavailable(err.to_string())
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        use sea_orm::DbErr;
        match err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
                AppError::DatabaseUnavailable(err.to_string())
            }
            other => AppError::Database(other),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            AppError::Internal(err) => tracing::error!(error = ?err, "request failed"),
            AppError::Unavailable(why) | AppError::DatabaseUnavailable(why) => {
                tracing::warn!(why = %why, "dependency unavailable")
            }
            AppError::Database(err) => tracing::error!(error = %err, "database query failed"),
            _ => {}
        }
        let info = self.info();
        let mut response = (info.status, info.message.clone()).into_response();
        response.extensions_mut().insert(Arc::new(info));
        response
    }
}

/// Renders the error page (or API JSON) for a response that carries an
/// [`ErrorInfo`], and dresses axum's plain-text rejections (413, 405, ...)
/// the same way, keeping every header (cookies included).
pub async fn render_errors(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let here = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let is_get = request.method() == axum::http::Method::GET;
    let response = next.run(request).await;

    let info = match response.extensions().get::<Arc<ErrorInfo>>() {
        Some(info) => info.as_ref().clone(),
        None => {
            let status = response.status();
            let plain = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|ct| ct.starts_with("text/plain"));
            if !(status.is_client_error() || status.is_server_error()) || !plain {
                return response;
            }
            generic_info(status)
        }
    };
    let (mut parts, _) = response.into_parts();

    if info.code == "unauthorized" && !api {
        let next = info.next.or_else(|| is_get.then_some(here));
        let location = match next {
            Some(next) if next != "/" && next.starts_with('/') => {
                format!("/login/?next={}", urlencode(&next))
            }
            _ => "/login/".to_string(),
        };
        parts.status = StatusCode::SEE_OTHER;
        parts.headers.insert(
            header::LOCATION,
            HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static("/login/")),
        );
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::empty());
    }

    parts.status = info.status;
    parts.headers.remove(header::CONTENT_LENGTH);
    let fresh = if api {
        let mut error = json!({"code": info.code, "message": info.message});
        if !info.fields.is_empty() {
            error["fields"] = json!(info.fields);
        }
        Json(json!({ "error": error })).into_response()
    } else {
        Html(crate::templates::error_page(info.status, &info.message)).into_response()
    };
    let (fresh_parts, body) = fresh.into_parts();
    if let Some(ct) = fresh_parts.headers.get(header::CONTENT_TYPE) {
        parts.headers.insert(header::CONTENT_TYPE, ct.clone());
    }
    if info.status == StatusCode::TOO_MANY_REQUESTS {
        parts
            .headers
            .insert(header::RETRY_AFTER, HeaderValue::from_static("900"));
    }
    Response::from_parts(parts, body)
}

fn generic_info(status: StatusCode) -> ErrorInfo {
    let (code, message) = match status.as_u16() {
        400 => ("bad_request", "The request could not be understood."),
        401 => ("unauthorized", "Please sign in."),
        403 => ("forbidden", "You do not have permission to do that."),
        404 => ("not_found", "There is nothing at this address."),
        405 => ("method_not_allowed", "That action is not allowed here."),
        408 => ("timeout", "The request took too long."),
        413 => ("payload_too_large", "The request body is too large."),
        415 => (
            "unsupported_media_type",
            "The request body has the wrong content type.",
        ),
        422 => ("validation_failed", "The request could not be processed."),
        429 => ("too_many_requests", "Too many attempts; try again later."),
        503 => (
            "unavailable",
            "Bursar is temporarily unavailable. Please try again in a moment.",
        ),
        s if s >= 500 => (
            "internal",
            "Something went wrong on our side. It has been logged.",
        ),
        _ => ("error", "The request could not be completed."),
    };
    ErrorInfo {
        status,
        code,
        message: message.to_string(),
        fields: BTreeMap::new(),
        next: None,
        database_failed: false,
    }
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|encoded| encoded.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_percent_encoded() {
        assert_eq!(
            urlencode("/students/?q=a b&x=1"),
            "%2Fstudents%2F%3Fq%3Da+b%26x%3D1"
        );
    }
}
