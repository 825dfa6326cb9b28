//! Signing in with a username and password, shared by the login page and the API.
use std::net::IpAddr;

use sha2::{Digest, Sha256};

use super::{password::verify_password, user::sign_in};
use crate::{
    domain::Username,
    error::AppError,
    repo::users::{self, User},
    session::Session,
    state::AppState,
};

pub enum LoginOutcome {
    SignedIn {
        user: User,
        csrf_token: String,
    },
    /// Wrong username or password (the two are never told apart).
    Rejected,
    /// Too many recent failures for this username or address.
    Throttled,
}

/// What throttling counts failures against: a digest, so that a password
/// typed into the username box never lands in Redis in clear.
fn throttle_key(typed: &str) -> String {
    let normalised = typed.trim().to_lowercase();
    let digest = Sha256::digest(normalised.as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn log_in(
    state: &AppState,
    session: &Session,
    typed_username: &str,
    password: String,
    addr: IpAddr,
) -> Result<LoginOutcome, AppError> {
    let key = throttle_key(typed_username);
    if !state.throttle.allows(&key, addr).await? {
        tracing::warn!(client = %addr, "login refused: too many recent failures");
        return Ok(LoginOutcome::Throttled);
    }
    let user = match Username::parse(typed_username) {
        Ok(name) => users::find_by_username(&state.db, &name).await?,
        Err(_) => None,
    };
    let user = user.filter(|u| u.active);
    // Always one argon2 verification, against a dummy hash for unknown or
    // inactive users, so that timing does not tell who exists.
    let matches = verify_password(password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    match user {
        Some(user) if matches => {
            let csrf_token = sign_in(session, &user).await?;
            tracing::info!(user_id = user.id, client = %addr, "signed in");
            Ok(LoginOutcome::SignedIn { user, csrf_token })
        }
        known => {
            state.throttle.record_failure(&key, addr).await?;
            tracing::info!(user_id = known.map(|u| u.id), client = %addr, "login failed");
            Ok(LoginOutcome::Rejected)
        }
    }
}

/// Where to go after signing in: a same-site relative path, else the dashboard.
pub fn safe_next(next: Option<&str>) -> String {
    const HOME: &str = "/dashboard/";
    let Some(next) = next.map(str::trim).filter(|n| !n.is_empty()) else {
        return HOME.into();
    };
    let same_site = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 2000
        && !next.chars().any(|c| c.is_control() || c == '\\');
    let loops = next.starts_with("/login") || next.starts_with("/logout");
    if same_site && !loops {
        next.to_string()
    } else {
        HOME.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_site() {
        assert_eq!(safe_next(Some("/students/?q=ann")), "/students/?q=ann");
        for hostile in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "/login/",
            "",
            "/a\nb",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/dashboard/", "{hostile:?}");
        }
        assert_eq!(safe_next(None), "/dashboard/");
    }

    #[test]
    fn throttle_keys_hide_what_was_typed() {
        let key = throttle_key("  Jane ");
        assert_eq!(key, throttle_key("jane"));
        assert!(!key.contains("jane"));
    }
}
