//! Sessions shared by every instance, with per-key optimistic writes where deletion always wins.
//!
//! # Data layout in Redis
//!
//! A session is one hash, `{prefix}:s:{ID}` (the braces are a Redis Cluster
//! hash tag, so everything about one session lives in one slot):
//!
//! | field        | holds                                              |
//! |--------------|----------------------------------------------------|
//! | `k:<name>`   | the JSON value of session key `<name>`             |
//! | `v:<name>`   | that key's version: 1 when first written, +1 on every write or removal (kept after removal) |
//! | `m:created`  | creation time, Unix ms                             |
//! | `m:exp`      | when the hash expires unless refreshed, Unix ms    |
//!
//! The hash carries a TTL equal to the idle timeout. When a session is
//! deleted (logout, account change) or its id is cycled (login), a tombstone
//! `{prefix}:s:{ID}:gone` holding `deleted` or `cycled` lives for five
//! minutes beside it.
//!
//! # Protocol
//!
//! - **Load** is one `HGETALL`, lazily, the first time a request touches its
//!   session. A request that never looks at its session costs nothing. Only
//!   when the hash is missing does a second `GET` read the tombstone, to tell
//!   a request that raced a logout from one with an old cookie.
//! - **Save** happens once, when the handler has answered, and only if the
//!   request changed a key or the expiry has less than half the idle timeout
//!   left. It is one `EVALSHA` of a script that: answers `gone` with the
//!   tombstone's reason (or `expired`) if the hash no longer exists, writing
//!   nothing; otherwise, for each changed key, writes it only if its version
//!   still equals the one this request loaded, bumps the version, and lists
//!   the keys where it did not (first writer wins, the late write is dropped,
//!   counted and logged); then refreshes `m:exp` and the TTL.
//! - **Create** (first save of a new session, or the new id at login) runs a
//!   script that refuses if the hash or a tombstone already exists, so a
//!   deleted session can never come back.
//! - **Delete** removes the hash and writes the tombstone in one script.
//! - **Update with retry** (values that must merge) re-reads one key with
//!   `HMGET`, applies a closure and compare-and-sets it with the save script,
//!   a bounded number of times.
//!
//! A read-only request therefore costs one Redis round trip and a writing
//! request two. The in-process store ([`memory`]) gives the same semantics
//! under one mutex when no `REDIS_URL` is set. `BURSAR_SESSION_STORE=stock`
//! swaps all of this for tower-sessions' own layer with
//! tower-sessions-redis-store, unchanged, for comparison; handlers see the
//! same [`Session`] either way.
//!
//! tower-sessions supplies the session id type (128 random bits, base64url)
//! and the stock layer. Its `Session` handle and `SessionStore` trait save
//! whole records behind a single dirty flag, which is the lost-update design
//! this module exists to avoid, so the optimistic path has its own handle
//! ([`handle::OptimisticSession`]) and store trait ([`store::SessionStore`]).

pub mod handle;
pub mod layer;
pub mod memory;
pub mod metrics;
pub mod redis;
pub mod store;

use axum::{extract::FromRequestParts, http::request::Parts};
use serde::{Serialize, de::DeserializeOwned};

pub use handle::OptimisticSession;
pub use store::{Gone, SessionId, StoreError};

/// The session cookie's name (S1).
pub const COOKIE_NAME: &str = "bursar_session";

/// A session key with its value type. Handlers reach the session only
/// through these, never with string keys.
pub trait SessionKey {
    const NAME: &'static str;
    type Value: Serialize + DeserializeOwned + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Unavailable(#[from] StoreError),
    #[error("the session was {0} while the request ran")]
    Interrupted(Gone),
    #[error("session key `{0}` kept changing under concurrent requests")]
    Contended(String),
    #[error("session value could not be encoded: {0}")]
    Encode(String),
}

/// The request's session, whichever store backs it.
#[derive(Clone)]
pub enum Session {
    Optimistic(OptimisticSession),
    /// tower-sessions with tower-sessions-redis-store, for comparison.
    Stock(tower_sessions::Session),
}

fn stock_error(err: tower_sessions::session::Error) -> SessionError {
    SessionError::Unavailable(StoreError(err.to_string()))
}

fn decode<T: DeserializeOwned>(key: &str, raw: &str) -> Option<T> {
    match serde_json::from_str(raw) {
        Ok(value) => Some(value),
        Err(err) => {
            // An unreadable value (an older format, say) is treated as absent.
            tracing::debug!(target: "bursar::session", key, %err, "ignoring undecodable session value");
            None
        }
    }
}

impl Session {
    pub async fn get<K: SessionKey>(&self) -> Result<Option<K::Value>, SessionError> {
        match self {
            Session::Optimistic(s) => Ok(s
                .get_raw(K::NAME)
                .await?
                .and_then(|raw| decode(K::NAME, &raw))),
            Session::Stock(s) => {
                let value: Option<serde_json::Value> = s.get(K::NAME).await.map_err(stock_error)?;
                Ok(value.and_then(|v| serde_json::from_value(v).ok()))
            }
        }
    }

    pub async fn insert<K: SessionKey>(&self, value: &K::Value) -> Result<(), SessionError> {
        match self {
            Session::Optimistic(s) => {
                let json = serde_json::to_string(value)
                    .map_err(|e| SessionError::Encode(e.to_string()))?;
                s.insert_raw(K::NAME, json).await
            }
            Session::Stock(s) => s.insert(K::NAME, value).await.map_err(stock_error),
        }
    }

    pub async fn remove<K: SessionKey>(&self) -> Result<(), SessionError> {
        match self {
            Session::Optimistic(s) => s.remove(K::NAME).await,
            Session::Stock(s) => s.remove_value(K::NAME).await.map(drop).map_err(stock_error),
        }
    }

    /// Read-modify-write of one key that merges with concurrent requests
    /// instead of overwriting them (S4's update-with-retry).
    pub async fn update<K: SessionKey>(
        &self,
        mut apply: impl FnMut(Option<K::Value>) -> K::Value + Send,
    ) -> Result<K::Value, SessionError> {
        match self {
            Session::Optimistic(s) => {
                let json = s
                    .update_raw(K::NAME, |raw| {
                        let current = raw.and_then(|r| decode::<K::Value>(K::NAME, r));
                        serde_json::to_string(&apply(current))
                            .map_err(|e| SessionError::Encode(e.to_string()))
                    })
                    .await?;
                serde_json::from_str(&json).map_err(|e| SessionError::Encode(e.to_string()))
            }
            Session::Stock(s) => {
                let current: Option<serde_json::Value> =
                    s.get(K::NAME).await.map_err(stock_error)?;
                let next = apply(current.and_then(|v| serde_json::from_value(v).ok()));
                s.insert(K::NAME, &next).await.map_err(stock_error)?;
                Ok(next)
            }
        }
    }

    /// A new id at the end of this request, keeping the keys (login).
    pub async fn cycle_id(&self) -> Result<(), SessionError> {
        match self {
            Session::Optimistic(s) => s.cycle_id().await,
            Session::Stock(s) => s.cycle_id().await.map_err(stock_error),
        }
    }

    /// Ends the session everywhere (logout).
    pub async fn delete(&self) -> Result<(), SessionError> {
        match self {
            Session::Optimistic(s) => s.delete().await,
            Session::Stock(s) => s.flush().await.map_err(stock_error),
        }
    }

    /// A digest of the session id that is safe to log.
    pub async fn log_hash(&self) -> Option<String> {
        match self {
            Session::Optimistic(s) => s.log_hash().await,
            Session::Stock(s) => s.id().map(|id| store::log_hash(&id)),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = crate::error::AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(session) = parts.extensions.get::<OptimisticSession>() {
            return Ok(Session::Optimistic(session.clone()));
        }
        if let Some(session) = parts.extensions.get::<tower_sessions::Session>() {
            return Ok(Session::Stock(session.clone()));
        }
        Err(crate::error::AppError::Internal(anyhow::anyhow!(
            "the session layer is missing from this route"
        )))
    }
}
