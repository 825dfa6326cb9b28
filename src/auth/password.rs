//! argon2id hashing and verification, always on the blocking pool.
use std::sync::LazyLock;

use anyhow::Context;
use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};
use rand::distr::{Alphanumeric, SampleString};
use tracing::Span;

/// Verified instead of a real hash when the username is unknown, so that an
/// unknown user costs the same argon2 time as a known one.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let throwaway = Alphanumeric.sample_string(&mut rand::rng(), 32);
    Argon2::default()
        .hash_password(throwaway.as_bytes())
        .map(|h| h.to_string())
        .unwrap_or_default()
});

/// Runs CPU-heavy password work off the async threads, inside the caller's span.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let span = Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .context("password hashing task failed")
}

pub async fn hash_password(password: String) -> anyhow::Result<String> {
    blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("failed to hash a password: {e}"))
    })
    .await?
}

/// Checks `password` against `stored`, or against a dummy hash when there is
/// no such user (the answer is then always `false`).
pub async fn verify_password(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    blocking(move || {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        known && matches
    })
    .await
}

/// Computes the dummy hash ahead of the first login, so that login's timing
/// does not reveal whether it was the first.
pub async fn warm_up() {
    let _ = blocking(|| LazyLock::force(&DUMMY_HASH).len()).await;
}

/// A random password for the first admin: 20 letters and digits (~119 bits).
pub fn generate_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            verify_password("correct horse battery".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong".into(), Some(hash)).await.unwrap());
        assert!(!verify_password("anything".into(), None).await.unwrap());
        assert!(
            !verify_password("x".into(), Some("not a phc string".into()))
                .await
                .unwrap()
        );
    }
}
