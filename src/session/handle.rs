//! One request's view of its session: loaded lazily, changes tracked per key, saved once at the end.
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use tokio::sync::Mutex;

use super::{
    SessionError,
    metrics::SessionMetrics,
    store::{
        Change, Entry, Gone, SaveOutcome, SessionId, SessionStore, StoreError, log_hash, now_ms,
    },
};

/// How many times `update_with_retry` re-reads and tries again before giving up.
const MAX_UPDATE_ATTEMPTS: usize = 16;

/// What the session cookie needs once the handler has answered.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum CookieAction {
    /// Leave the browser's cookie as it is.
    Keep,
    /// Send (or refresh) the session cookie with this id.
    Set(SessionId),
    /// Tell the browser to forget its cookie.
    Clear,
}

/// What the layer must do once the handler has answered.
#[derive(Debug, PartialEq, Eq)]
pub struct Finish {
    pub cookie: CookieAction,
    /// The session went away while the request ran (S5): the layer logs it
    /// and answers with the login redirect (or a 401) instead.
    pub interrupted: Option<Gone>,
}

impl Finish {
    fn cookie(cookie: CookieAction) -> Self {
        Finish {
            cookie,
            interrupted: None,
        }
    }
}

#[derive(Default)]
struct State {
    loaded: bool,
    /// The session as loaded; `None` when the request has no live session.
    id: Option<SessionId>,
    entries: HashMap<String, Entry>,
    expires_at_ms: i64,
    /// Keys this request changed: `Some(json)` to set, `None` to remove.
    pending: BTreeMap<String, Option<String>>,
    /// Give the session a new id at save (login).
    cycle: bool,
    deleted: bool,
    /// The cookie named a session that is no longer there.
    stale_cookie: bool,
    interrupted: Option<Gone>,
    /// The store already refreshed the expiry during this request.
    refreshed: bool,
}

impl State {
    fn current(&self, key: &str) -> Option<&str> {
        match self.pending.get(key) {
            Some(change) => change.as_deref(),
            None => self.entries.get(key).and_then(|e| e.value.as_deref()),
        }
    }

    fn version(&self, key: &str) -> u64 {
        self.entries.get(key).map_or(0, |e| e.version)
    }

    /// Every key with a value, as this request sees it.
    fn snapshot(&self) -> Vec<(String, String)> {
        let mut all: BTreeMap<&str, &str> = self
            .entries
            .iter()
            .filter_map(|(k, e)| e.value.as_deref().map(|v| (k.as_str(), v)))
            .collect();
        for (k, v) in &self.pending {
            match v {
                Some(v) => all.insert(k, v),
                None => all.remove(k.as_str()),
            };
        }
        all.into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// The per-request handle of Bursar's optimistic session (cheap to clone).
#[derive(Clone)]
pub struct OptimisticSession {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn SessionStore>,
    metrics: Arc<SessionMetrics>,
    idle: Duration,
    cookie_id: Option<SessionId>,
    state: Mutex<State>,
}

impl OptimisticSession {
    pub fn new(
        store: Arc<dyn SessionStore>,
        metrics: Arc<SessionMetrics>,
        idle: Duration,
        cookie_id: Option<SessionId>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                metrics,
                idle,
                cookie_id,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Loads the session on first use: one store round trip, or none when the
    /// request carries no cookie.
    async fn state(&self) -> Result<tokio::sync::MutexGuard<'_, State>, SessionError> {
        let mut state = self.inner.state.lock().await;
        if state.loaded {
            return Ok(state);
        }
        if let Some(id) = self.inner.cookie_id {
            self.inner.metrics.loads.inc();
            match self.call(self.inner.store.load(&id)).await? {
                Some(loaded) => {
                    state.id = Some(id);
                    state.entries = loaded.entries;
                    state.expires_at_ms = loaded.expires_at_ms;
                }
                None => {
                    // A cookie for a session that is gone: the request runs
                    // anonymously. If a logout or login removed it, this
                    // request raced that and is reported as interrupted.
                    state.stale_cookie = true;
                    let why = self.call(self.inner.store.gone_reason(&id)).await?;
                    if why != Gone::Expired {
                        state.interrupted = Some(why);
                    }
                }
            }
        }
        state.loaded = true;
        Ok(state)
    }

    /// Awaits a store call, counting a failure and turning it into a 503.
    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, SessionError> {
        call.await.map_err(|err| {
            self.inner.metrics.store_errors.inc();
            SessionError::Unavailable(err)
        })
    }

    /// The JSON text of `key`, as this request sees it.
    pub async fn get_raw(&self, key: &str) -> Result<Option<String>, SessionError> {
        Ok(self.state().await?.current(key).map(str::to_string))
    }

    /// Sets `key`. Writing the value it already has changes nothing.
    pub async fn insert_raw(&self, key: &str, json: String) -> Result<(), SessionError> {
        let mut state = self.state().await?;
        let loaded = state.entries.get(key).and_then(|e| e.value.as_deref());
        if loaded == Some(json.as_str()) {
            state.pending.remove(key);
        } else {
            state.pending.insert(key.to_string(), Some(json));
        }
        Ok(())
    }

    pub async fn remove(&self, key: &str) -> Result<(), SessionError> {
        let mut state = self.state().await?;
        let loaded = state.entries.get(key).is_some_and(|e| e.value.is_some());
        if loaded {
            state.pending.insert(key.to_string(), None);
        } else {
            state.pending.remove(key);
        }
        Ok(())
    }

    /// Gives the session a new id when the request ends (login), keeping its
    /// keys; the old id stops working on every instance.
    pub async fn cycle_id(&self) -> Result<(), SessionError> {
        self.state().await?.cycle = true;
        Ok(())
    }

    /// Deletes the session now (logout); the cookie is cleared at the end.
    pub async fn delete(&self) -> Result<(), SessionError> {
        let mut state = self.state().await?;
        if let Some(id) = state.id.take() {
            self.call(self.inner.store.delete(&id, Gone::Deleted))
                .await?;
        }
        state.entries.clear();
        state.pending.clear();
        state.cycle = false;
        state.deleted = true;
        Ok(())
    }

    /// Re-reads `key`, applies `apply`, and writes the result only if nobody
    /// changed the key in between; retries a bounded number of times.
    /// Use it for values that must merge (a recently-viewed list), not for
    /// values where the first writer should simply win.
    pub async fn update_raw(
        &self,
        key: &str,
        mut apply: impl FnMut(Option<&str>) -> Result<String, SessionError> + Send,
    ) -> Result<String, SessionError> {
        let mut state = self.state().await?;
        if let Some(why) = state.interrupted.filter(|_| state.id.is_some()) {
            return Err(SessionError::Interrupted(why));
        }
        let Some(id) = state.id.filter(|_| !state.cycle) else {
            // No stored session yet (or it is about to get a new id): the
            // change is saved with the rest at the end of the request.
            let next = apply(state.current(key))?;
            state.pending.insert(key.to_string(), Some(next.clone()));
            return Ok(next);
        };
        // The first attempt works from the copy loaded with the session; a
        // conflict means it was stale, so later attempts re-read the key.
        let mut current = state.entries.get(key).cloned().unwrap_or(Entry {
            value: None,
            version: 0,
        });
        for attempt in 1..=MAX_UPDATE_ATTEMPTS {
            let next = apply(current.value.as_deref())?;
            let change = Change {
                key: key.to_string(),
                expected_version: current.version,
                value: Some(next.clone()),
            };
            self.inner.metrics.saves.inc();
            let outcome = self
                .call(self.inner.store.save(&id, &[change], self.inner.idle))
                .await?;
            match outcome {
                SaveOutcome::Saved { conflicts } if conflicts.is_empty() => {
                    state.entries.insert(
                        key.to_string(),
                        Entry {
                            value: Some(next.clone()),
                            version: current.version + 1,
                        },
                    );
                    state.pending.remove(key);
                    state.refreshed = true;
                    return Ok(next);
                }
                SaveOutcome::Saved { .. } => {
                    self.inner.metrics.update_retries.inc();
                    // A short random pause spreads writers that collided,
                    // so that they do not collide again in lockstep.
                    let pause = rand::random_range(1..=2 * attempt as u64);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    tracing::debug!(target: "bursar::session", key, attempt, "update-with-retry lost a race; re-reading");
                    current = match self.call(self.inner.store.load_key(&id, key)).await? {
                        Some(entry) => entry,
                        None => {
                            let why = self.call(self.inner.store.gone_reason(&id)).await?;
                            state.interrupted = Some(why);
                            return Err(SessionError::Interrupted(why));
                        }
                    };
                }
                SaveOutcome::Gone(why) => {
                    state.interrupted = Some(why);
                    return Err(SessionError::Interrupted(why));
                }
            }
        }
        Err(SessionError::Contended(key.to_string()))
    }

    /// The session's log-safe digest, if it has an id.
    pub async fn log_hash(&self) -> Option<String> {
        let state = self.inner.state.lock().await;
        state.id.or(self.inner.cookie_id).map(|id| log_hash(&id))
    }

    /// Saves what the request changed, in one atomic step, and says what the
    /// response must carry.
    pub async fn finish(&self) -> Result<Finish, SessionError> {
        let mut state = self.inner.state.lock().await;
        if !state.loaded {
            return Ok(Finish::cookie(CookieAction::Keep));
        }
        if state.deleted {
            return Ok(Finish::cookie(CookieAction::Clear));
        }
        if let Some(why) = state.interrupted.filter(|_| state.id.is_some()) {
            // Interrupted mid-request (update-with-retry found it gone).
            return Ok(Finish {
                cookie: CookieAction::Clear,
                interrupted: Some(why),
            });
        }
        let idle = self.inner.idle;

        if state.cycle || state.id.is_none() {
            // A brand-new session, or a new id for this one: created whole by
            // its first save, never overwriting anything.
            let interrupted = state.interrupted;
            let values = state.snapshot();
            if let Some(old) = state.id.take() {
                // Retire the old id first: if anything below fails, the old
                // session is already unusable, which is the safe way round.
                self.call(self.inner.store.delete(&old, Gone::Cycled))
                    .await?;
            }
            if values.is_empty() {
                let cookie = if state.stale_cookie || state.cycle {
                    CookieAction::Clear
                } else {
                    CookieAction::Keep
                };
                return Ok(Finish {
                    cookie,
                    interrupted,
                });
            }
            loop {
                let id = SessionId::default();
                self.inner.metrics.saves.inc();
                if self
                    .call(self.inner.store.create(&id, &values, idle))
                    .await?
                {
                    state.id = Some(id);
                    state.cycle = false;
                    return Ok(Finish {
                        cookie: CookieAction::Set(id),
                        interrupted,
                    });
                }
            }
        }

        let id = state.id.expect("checked above");
        let changes: Vec<Change> = state
            .pending
            .iter()
            .map(|(key, value)| Change {
                key: key.clone(),
                expected_version: state.version(key),
                value: value.clone(),
            })
            .collect();
        let half_gone = state.expires_at_ms - now_ms() < (idle.as_millis() / 2) as i64;
        if changes.is_empty() {
            if state.refreshed {
                return Ok(Finish::cookie(CookieAction::Set(id)));
            }
            if !half_gone {
                return Ok(Finish::cookie(CookieAction::Keep));
            }
        }

        self.inner.metrics.saves.inc();
        let outcome = self
            .call(self.inner.store.save(&id, &changes, idle))
            .await?;
        match outcome {
            SaveOutcome::Saved { conflicts } => {
                for key in &conflicts {
                    self.inner.metrics.conflicts.inc();
                    tracing::info!(
                        target: "bursar::session",
                        event = "session_conflict",
                        key = key.as_str(),
                        session = log_hash(&id),
                        "another request changed this session key first; this request's value was dropped"
                    );
                }
                state.pending.clear();
                Ok(Finish::cookie(CookieAction::Set(id)))
            }
            // A refresh of a read-only request that finds the session gone
            // has lost nothing; the next request will find out.
            SaveOutcome::Gone(_) if changes.is_empty() => Ok(Finish::cookie(CookieAction::Keep)),
            SaveOutcome::Gone(why) => {
                state.interrupted = Some(why);
                Ok(Finish {
                    cookie: CookieAction::Clear,
                    interrupted: Some(why),
                })
            }
        }
    }
}
