//! The small interface every optimistic session store implements (Redis and in-process).
use std::{collections::HashMap, fmt, time::Duration};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
pub use tower_sessions::session::Id as SessionId;

/// One session key as stored: its JSON text (absent once removed) and its version.
///
/// Versions start at 1 when a key is first written and grow by one on every
/// write or removal, so a request can tell whether anyone touched the key
/// since it loaded it. A removed key keeps its version (no ABA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub value: Option<String>,
    pub version: u64,
}

/// A session as loaded in one round trip.
#[derive(Clone, Debug, Default)]
pub struct LoadedSession {
    pub entries: HashMap<String, Entry>,
    /// When the store will drop the session unless it is refreshed (Unix ms).
    pub expires_at_ms: i64,
}

/// Why a session id no longer names a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gone {
    /// Deleted by logout or because the account changed.
    Deleted,
    /// Replaced by a new id at login.
    Cycled,
    /// Idle for longer than the timeout, or never existed.
    Expired,
}

impl Gone {
    pub fn as_str(self) -> &'static str {
        match self {
            Gone::Deleted => "deleted",
            Gone::Cycled => "cycled",
            Gone::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Gone {
        match s {
            "deleted" => Gone::Deleted,
            "cycled" => Gone::Cycled,
            _ => Gone::Expired,
        }
    }
}

impl fmt::Display for Gone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key a request changed, guarded by the version it loaded (0: absent).
#[derive(Clone, Debug)]
pub struct Change {
    pub key: String,
    pub expected_version: u64,
    /// New JSON text, or `None` to remove the key.
    pub value: Option<String>,
}

/// What an atomic save did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// The session exists; every change was written except the keys listed,
    /// which someone else changed first (first writer wins). The expiry was
    /// refreshed.
    Saved { conflicts: Vec<String> },
    /// The session no longer exists; nothing was written.
    Gone(Gone),
}

/// The store could not be reached or answered nonsense; the request gets a 503.
#[derive(Debug, thiserror::Error)]
#[error("session store unavailable: {0}")]
pub struct StoreError(pub String);

impl From<fred::error::Error> for StoreError {
    fn from(err: fred::error::Error) -> Self {
        StoreError(err.to_string())
    }
}

/// A per-key optimistic session store.
///
/// The contract every implementation honours (SPEC S2–S5):
/// - `load` is one round trip;
/// - `save` writes only the given keys, each only if its version still
///   matches, refreshes the expiry, and never recreates a missing session;
/// - `create` never overwrites an existing or tombstoned id;
/// - `delete` removes the session and leaves a tombstone saying why, so a
///   late save can report `deleted` or `cycled` instead of `expired`.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn load(&self, id: &SessionId) -> Result<Option<LoadedSession>, StoreError>;

    /// Reads one key for a compare-and-set retry. `None`: the session is gone.
    async fn load_key(&self, id: &SessionId, key: &str) -> Result<Option<Entry>, StoreError>;

    /// Why `id` names no session (tombstone, or expired when there is none).
    async fn gone_reason(&self, id: &SessionId) -> Result<Gone, StoreError>;

    /// Creates a session with the given keys at version 1. `false`: the id
    /// is taken (or tombstoned) and nothing was written.
    async fn create(
        &self,
        id: &SessionId,
        values: &[(String, String)],
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Applies `changes` atomically, each guarded by its expected version,
    /// and refreshes the expiry to `ttl` from now.
    async fn save(
        &self,
        id: &SessionId,
        changes: &[Change],
        ttl: Duration,
    ) -> Result<SaveOutcome, StoreError>;

    /// Removes the session and leaves a tombstone with `why`.
    async fn delete(&self, id: &SessionId, why: Gone) -> Result<(), StoreError>;

    /// Answers when the store is reachable.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// How long a tombstone outlives its session: longer than any request, so a
/// late save always learns why the session went away.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(300);

/// A short one-way digest of a session id, safe to log and correlate across
/// instances. The id itself carries 128 random bits, so the digest cannot be
/// turned back into it.
pub fn log_hash(id: &SessionId) -> String {
    let digest = Sha256::digest(id.to_string().as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
