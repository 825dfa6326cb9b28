//! The signed-in user, resolved from the session on every request and checked against the database.
use axum::{extract::FromRequestParts, http::request::Parts};
use sha2::{Digest, Sha256};

use super::csrf::{CsrfKey, new_token};
use crate::{
    domain::Role,
    error::AppError,
    repo::users::{self, User},
    session::{Session, SessionKey},
    state::AppState,
};

/// Session key `auth.user_id`.
pub struct AuthUserId;
impl SessionKey for AuthUserId {
    const NAME: &'static str = "auth.user_id";
    type Value = i64;
}

/// Session key `auth.hash`: derived from the password hash and role, so that
/// changing either ends the user's other sessions (S6).
pub struct AuthFingerprint;
impl SessionKey for AuthFingerprint {
    const NAME: &'static str = "auth.hash";
    type Value = String;
}

/// A one-way digest of what must not change under a live session.
pub fn fingerprint(user: &User) -> String {
    let mut digest = Sha256::new();
    digest.update(b"bursar-auth-v1\0");
    digest.update(user.password_hash.as_bytes());
    digest.update(b"\0");
    digest.update(user.role.as_bytes());
    digest.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct CurrentUser {
    pub id: i64,
    pub username: String,
    pub role: Role,
}

impl CurrentUser {
    /// 403 unless the user's role allows at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), AppError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "This needs the {needed} role; you are signed in as a {}.",
                self.role
            )))
        }
    }
}

impl From<&User> for CurrentUser {
    fn from(user: &User) -> Self {
        CurrentUser {
            id: user.id,
            username: user.username.clone(),
            role: user.role(),
        }
    }
}

/// Signs `user` in on this session: new id (fixation defence), the user's
/// keys, and a fresh CSRF token, which it returns.
pub async fn sign_in(session: &Session, user: &User) -> Result<String, AppError> {
    session.cycle_id().await?;
    session.insert::<AuthUserId>(&user.id).await?;
    session
        .insert::<AuthFingerprint>(&fingerprint(user))
        .await?;
    let token = new_token();
    session.insert::<CsrfKey>(&token).await?;
    Ok(token)
}

/// The user this session belongs to, if it is still valid. A session whose
/// user was deactivated or whose password or role changed is deleted here.
async fn resolve(session: &Session, state: &AppState) -> Result<Option<CurrentUser>, AppError> {
    let Some(user_id) = session.get::<AuthUserId>().await? else {
        return Ok(None);
    };
    let stored = session.get::<AuthFingerprint>().await?;
    match users::find_by_id(&state.db, user_id).await? {
        Some(user) if user.active && stored.as_deref() == Some(fingerprint(&user).as_str()) => {
            Ok(Some(CurrentUser::from(&user)))
        }
        _ => {
            let session_hash = session.log_hash().await.unwrap_or_default();
            tracing::info!(
                target: "bursar::session",
                event = "session_revoked",
                user_id,
                session = session_hash,
                "ending a session whose account was changed or deactivated"
            );
            session.delete().await?;
            Ok(None)
        }
    }
}

/// The user, when signed in; `None` otherwise.
pub struct MaybeUser(pub Option<CurrentUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(MaybeUser(Some(user.clone())));
        }
        let session = Session::from_request_parts(parts, state).await?;
        let user = resolve(&session, state).await?;
        if let Some(user) = &user {
            parts.extensions.insert(user.clone());
        }
        Ok(MaybeUser(user))
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        MaybeUser::from_request_parts(parts, state)
            .await?
            .0
            .ok_or(AppError::SignInRequired { next: None })
    }
}
