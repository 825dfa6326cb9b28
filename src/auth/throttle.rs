//! Login throttling: 5 failures per username or 30 per address within 15 minutes, shared through Redis.
use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use fred::prelude::{KeysInterface, LuaInterface, Pool};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;

use crate::session::StoreError;

pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const USERNAME_LIMIT: u64 = 5;
pub const ADDRESS_LIMIT: u64 = 30;

/// Counts one failure; the window starts at the first.
const RECORD_LUA: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"#;

pub enum LoginThrottle {
    /// Shared by every instance.
    Redis {
        pool: Pool,
        prefix: String,
        /// Failed calls, for `bursar_redis_errors`.
        errors: Counter,
    },
    /// One instance only (embedded mode).
    Memory(Mutex<HashMap<String, (u64, Instant)>>),
}

impl LoginThrottle {
    pub fn redis(pool: Pool, prefix: &str, errors: Counter) -> Self {
        LoginThrottle::Redis {
            pool,
            prefix: prefix.to_string(),
            errors,
        }
    }

    pub fn memory() -> Self {
        LoginThrottle::Memory(Mutex::new(HashMap::new()))
    }

    fn keys(prefix: &str, username: &str, addr: IpAddr) -> [String; 2] {
        [
            format!("{prefix}:login:user:{username}"),
            format!("{prefix}:login:addr:{addr}"),
        ]
    }

    fn failed(errors: &Counter) -> impl Fn(fred::error::Error) -> StoreError + '_ {
        move |err| {
            errors.inc();
            StoreError::from(err)
        }
    }

    /// `false` when this username or address has failed too often lately.
    pub async fn allows(&self, username: &str, addr: IpAddr) -> Result<bool, StoreError> {
        let counts: [u64; 2] = match self {
            LoginThrottle::Redis {
                pool,
                prefix,
                errors,
            } => {
                let [user_key, addr_key] = Self::keys(prefix, username, addr);
                let client = pool.next();
                let pipeline = client.pipeline();
                let _: () = pipeline.get(user_key).await.map_err(Self::failed(errors))?;
                let _: () = pipeline.get(addr_key).await.map_err(Self::failed(errors))?;
                let (user, addr): (Option<u64>, Option<u64>) =
                    pipeline.all().await.map_err(Self::failed(errors))?;
                [user.unwrap_or(0), addr.unwrap_or(0)]
            }
            LoginThrottle::Memory(counters) => {
                let now = Instant::now();
                let mut counters = counters.lock();
                counters.retain(|_, (_, until)| *until > now);
                Self::keys("", username, addr).map(|k| counters.get(&k).map_or(0, |(n, _)| *n))
            }
        };
        Ok(counts[0] < USERNAME_LIMIT && counts[1] < ADDRESS_LIMIT)
    }

    pub async fn record_failure(&self, username: &str, addr: IpAddr) -> Result<(), StoreError> {
        match self {
            LoginThrottle::Redis {
                pool,
                prefix,
                errors,
            } => {
                // Failures are rare; one small script per counter keeps
                // each increment and its expiry atomic.
                let window = WINDOW.as_millis().to_string();
                for key in Self::keys(prefix, username, addr) {
                    let _: u64 = pool
                        .eval(RECORD_LUA, key, window.clone())
                        .await
                        .map_err(Self::failed(errors))?;
                }
            }
            LoginThrottle::Memory(counters) => {
                let now = Instant::now();
                let mut counters = counters.lock();
                for key in Self::keys("", username, addr) {
                    let entry = counters.entry(key).or_insert((0, now + WINDOW));
                    if entry.1 <= now {
                        *entry = (0, now + WINDOW);
                    }
                    entry.0 += 1;
                }
            }
        }
        Ok(())
    }
}
