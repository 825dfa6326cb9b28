//! CSRF: one token per session (key `csrf`), checked on every form POST and mutating API call.
use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{StatusCode, header, request::Parts},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::{Deserialize, de::DeserializeOwned};
use subtle::ConstantTimeEq;

use crate::{
    error::AppError,
    session::{Session, SessionKey},
};

/// Session key `csrf`.
pub struct CsrfKey;
impl SessionKey for CsrfKey {
    const NAME: &'static str = "csrf";
    type Value = String;
}

/// The header API clients send the token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// 256 random bits, base64url.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// This session's token, created on first use (for rendering a form).
pub struct CsrfToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await?;
        Ok(CsrfToken(token_for(&session).await?))
    }
}

pub async fn token_for(session: &Session) -> Result<String, AppError> {
    if let Some(token) = session.get::<CsrfKey>().await? {
        return Ok(token);
    }
    let token = new_token();
    session.insert::<CsrfKey>(&token).await?;
    Ok(token)
}

/// 403 unless `provided` is this session's token (compared in constant time).
pub async fn verify(session: &Session, provided: &str) -> Result<(), AppError> {
    match session.get::<CsrfKey>().await? {
        Some(expected)
            if !provided.is_empty()
                && bool::from(expected.as_bytes().ct_eq(provided.as_bytes())) =>
        {
            Ok(())
        }
        _ => Err(AppError::CsrfRejected),
    }
}

/// A urlencoded form whose `csrf_token` field was checked before anything
/// else was read from it.
pub struct CsrfForm<T>(pub T);

#[derive(Deserialize)]
struct TokenField {
    csrf_token: Option<String>,
}

/// Body of a form POST, with the size limit and content type enforced.
pub async fn form_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, AppError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(AppError::UnsupportedMediaType(
            "Forms must be sent as application/x-www-form-urlencoded.".into(),
        ));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge
        } else {
            AppError::BadRequest("The form could not be read.".into())
        }
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CsrfForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let bytes = form_bytes(Request::from_parts(parts, body), state).await?;
        let token = serde_urlencoded::from_bytes::<TokenField>(&bytes)
            .ok()
            .and_then(|t| t.csrf_token)
            .unwrap_or_default();
        verify(&session, &token).await?;
        serde_urlencoded::from_bytes::<T>(&bytes)
            .map(CsrfForm)
            .map_err(|_| AppError::BadRequest("The form could not be read.".into()))
    }
}

/// A mutating API call's `X-CSRF-Token` header, checked.
pub struct CsrfHeader;

impl<S: Send + Sync> FromRequestParts<S> for CsrfHeader {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await?;
        let provided = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        verify(&session, &provided).await?;
        Ok(CsrfHeader)
    }
}
