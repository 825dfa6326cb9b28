//! The in-process optimistic session store used without `REDIS_URL`: same semantics, one instance.
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::store::{
    Change, Entry, Gone, LoadedSession, SaveOutcome, SessionId, SessionStore, StoreError,
    TOMBSTONE_TTL, now_ms,
};

struct Stored {
    entries: HashMap<String, Entry>,
    expires: Instant,
    expires_at_ms: i64,
}

#[derive(Default)]
struct Sessions {
    live: HashMap<SessionId, Stored>,
    tombstones: HashMap<SessionId, (Gone, Instant)>,
}

impl Sessions {
    /// The live session, dropping it first if it has expired.
    fn live(&mut self, id: &SessionId, now: Instant) -> Option<&mut Stored> {
        if self.live.get(id).is_some_and(|s| s.expires <= now) {
            self.live.remove(id);
        }
        self.live.get_mut(id)
    }

    fn tombstone(&mut self, id: &SessionId, now: Instant) -> Option<Gone> {
        match self.tombstones.get(id) {
            Some((why, until)) if *until > now => Some(*why),
            Some(_) => {
                self.tombstones.remove(id);
                None
            }
            None => None,
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.live.retain(|_, s| s.expires > now);
        self.tombstones.retain(|_, (_, until)| *until > now);
    }
}

/// Sessions held in this process's memory. Every operation takes one short
/// lock, which gives the same atomicity the Lua scripts give on Redis.
#[derive(Clone, Default)]
pub struct MemorySessionStore {
    sessions: Arc<Mutex<Sessions>>,
}

impl MemorySessionStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops expired sessions and tombstones every minute, for as long as the
    /// store exists.
    pub fn spawn_sweeper(&self) {
        let weak = Arc::downgrade(&self.sessions);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(sessions) = weak.upgrade() else {
                    break;
                };
                sessions.lock().sweep(Instant::now());
            }
        });
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn load(&self, id: &SessionId) -> Result<Option<LoadedSession>, StoreError> {
        let mut sessions = self.sessions.lock();
        Ok(sessions.live(id, Instant::now()).map(|s| LoadedSession {
            entries: s.entries.clone(),
            expires_at_ms: s.expires_at_ms,
        }))
    }

    async fn load_key(&self, id: &SessionId, key: &str) -> Result<Option<Entry>, StoreError> {
        let mut sessions = self.sessions.lock();
        Ok(sessions.live(id, Instant::now()).map(|s| {
            s.entries.get(key).cloned().unwrap_or(Entry {
                value: None,
                version: 0,
            })
        }))
    }

    async fn gone_reason(&self, id: &SessionId) -> Result<Gone, StoreError> {
        let mut sessions = self.sessions.lock();
        Ok(sessions
            .tombstone(id, Instant::now())
            .unwrap_or(Gone::Expired))
    }

    async fn create(
        &self,
        id: &SessionId,
        values: &[(String, String)],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        if sessions.live(id, now).is_some() || sessions.tombstone(id, now).is_some() {
            return Ok(false);
        }
        let entries = values
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Entry {
                        value: Some(v.clone()),
                        version: 1,
                    },
                )
            })
            .collect();
        sessions.live.insert(
            *id,
            Stored {
                entries,
                expires: now + ttl,
                expires_at_ms: now_ms() + ttl.as_millis() as i64,
            },
        );
        Ok(true)
    }

    async fn save(
        &self,
        id: &SessionId,
        changes: &[Change],
        ttl: Duration,
    ) -> Result<SaveOutcome, StoreError> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        let Some(stored) = sessions.live(id, now) else {
            let why = sessions.tombstone(id, now).unwrap_or(Gone::Expired);
            return Ok(SaveOutcome::Gone(why));
        };
        let mut conflicts = Vec::new();
        for change in changes {
            let entry = stored.entries.entry(change.key.clone()).or_insert(Entry {
                value: None,
                version: 0,
            });
            if entry.version != change.expected_version {
                conflicts.push(change.key.clone());
                continue;
            }
            entry.version += 1;
            entry.value = change.value.clone();
        }
        stored.expires = now + ttl;
        stored.expires_at_ms = now_ms() + ttl.as_millis() as i64;
        Ok(SaveOutcome::Saved { conflicts })
    }

    async fn delete(&self, id: &SessionId, why: Gone) -> Result<(), StoreError> {
        let mut sessions = self.sessions.lock();
        sessions.live.remove(id);
        sessions
            .tombstones
            .insert(*id, (why, Instant::now() + TOMBSTONE_TTL));
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
