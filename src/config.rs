//! Settings read from the environment (flags override), typed, with secrets redacted in `Debug`.
use std::{fmt, str::FromStr, time::Duration};

use anyhow::{Context, bail};

/// Which session store backs the session layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStoreKind {
    /// Bursar's per-key optimistic store (Redis, or in-process without `REDIS_URL`).
    Optimistic,
    /// tower-sessions-redis-store, unchanged, kept for side-by-side comparison.
    Stock,
}

impl FromStr for SessionStoreKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "optimistic" => Ok(Self::Optimistic),
            "stock" => Ok(Self::Stock),
            other => bail!("BURSAR_SESSION_STORE must be `optimistic` or `stock`, not `{other}`"),
        }
    }
}

/// How often the log files roll over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogRotation {
    Hourly,
    Daily,
    Never,
}

impl FromStr for LogRotation {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hourly" => Ok(Self::Hourly),
            "daily" => Ok(Self::Daily),
            "never" => Ok(Self::Never),
            other => bail!("BURSAR_LOG_ROTATION must be hourly, daily or never, not `{other}`"),
        }
    }
}

/// Console log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => bail!("BURSAR_LOG_FORMAT must be text or json, not `{other}`"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct LogSettings {
    pub dir: std::path::PathBuf,
    pub rotation: LogRotation,
    pub keep: usize,
    pub format: LogFormat,
}

/// Everything an instance needs to start. Built from the environment by
/// [`Settings::from_env`]; tests build it directly.
#[derive(Clone)]
pub struct Settings {
    pub database_url: String,
    pub db_pool_size: u32,
    pub redis_url: Option<String>,
    pub redis_pool_size: usize,
    /// Prefix of every Redis key this deployment writes (sessions, throttling).
    pub redis_prefix: String,
    pub bind: String,
    pub instance_id: String,
    pub log: LogSettings,
    pub session_idle: Duration,
    pub cookie_secure: bool,
    pub currency: String,
    pub session_store: SessionStoreKind,
    /// Apply pending migrations at start (`serve --no-migrate` turns it off).
    pub migrate: bool,
    /// Seed demo data into a database with no students (`serve --demo`).
    pub demo: bool,
    /// Mount the routes the race tests use to widen the load–save window.
    /// Never set from the environment: only tests turn it on.
    pub test_hooks: bool,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://bursar.db?mode=rwc";

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so parsing can be tested without
    /// touching the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let parse_bool = |name: &str, default: bool| -> anyhow::Result<bool> {
            match get(name) {
                None => Ok(default),
                Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => Ok(true),
                    "0" | "false" | "no" | "off" => Ok(false),
                    other => bail!("{name} must be true or false, not `{other}`"),
                },
            }
        };
        let parse_num = |name: &str, default: u64| -> anyhow::Result<u64> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .with_context(|| format!("{name} must be a whole number, not `{v}`")),
            }
        };

        let session_idle = match get("BURSAR_SESSION_IDLE") {
            None => Duration::from_secs(8 * 3600),
            Some(v) => humantime::parse_duration(v.trim()).with_context(|| {
                format!("BURSAR_SESSION_IDLE must be a duration such as 8h or 30m, not `{v}`")
            })?,
        };
        if session_idle < Duration::from_secs(60) {
            bail!("BURSAR_SESSION_IDLE must be at least 1m");
        }

        let currency = get("BURSAR_CURRENCY")
            .unwrap_or_else(|| "USD".into())
            .trim()
            .to_string();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            bail!("BURSAR_CURRENCY must be an ISO 4217 code such as USD, not `{currency}`");
        }

        let redis_prefix = get("BURSAR_REDIS_PREFIX").unwrap_or_else(|| "bursar".into());
        if redis_prefix.contains(['{', '}', ' ']) {
            bail!("BURSAR_REDIS_PREFIX must not contain braces or spaces");
        }

        let instance_id = get("BURSAR_INSTANCE_ID").unwrap_or_else(default_instance_id);
        // `{instance}` in the log directory gives each instance its own
        // folder when replicas share one volume.
        let log_dir = get("BURSAR_LOG_DIR")
            .unwrap_or_else(|| "./logs".into())
            .replace("{instance}", &instance_id);

        Ok(Self {
            database_url: get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            db_pool_size: parse_num("BURSAR_DB_POOL", 10)?.clamp(1, 1000) as u32,
            redis_url: get("REDIS_URL"),
            redis_pool_size: parse_num("BURSAR_REDIS_POOL", 4)?.clamp(1, 64) as usize,
            redis_prefix,
            bind: get("BURSAR_BIND").unwrap_or_else(|| "127.0.0.1:8080".into()),
            instance_id,
            log: LogSettings {
                dir: log_dir.into(),
                rotation: get("BURSAR_LOG_ROTATION")
                    .as_deref()
                    .unwrap_or("daily")
                    .parse()?,
                keep: parse_num("BURSAR_LOG_KEEP", 14)?.clamp(1, 10_000) as usize,
                format: get("BURSAR_LOG_FORMAT")
                    .as_deref()
                    .unwrap_or("text")
                    .parse()?,
            },
            session_idle,
            cookie_secure: parse_bool("BURSAR_COOKIE_SECURE", false)?,
            currency,
            session_store: get("BURSAR_SESSION_STORE")
                .as_deref()
                .unwrap_or("optimistic")
                .parse()?,
            migrate: true,
            demo: false,
            test_hooks: false,
        })
    }

    pub fn is_embedded_database(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

/// Host name and process id: unique per process on one machine, readable in logs.
pub fn default_instance_id() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("{host}-{}", std::process::id())
}

/// Hides the password part of a connection URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme_end], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("db_pool_size", &self.db_pool_size)
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_pool_size", &self.redis_pool_size)
            .field("redis_prefix", &self.redis_prefix)
            .field("bind", &self.bind)
            .field("instance_id", &self.instance_id)
            .field("log", &self.log)
            .field("session_idle", &self.session_idle)
            .field("cookie_secure", &self.cookie_secure)
            .field("currency", &self.currency)
            .field("session_store", &self.session_store)
            .field("migrate", &self.migrate)
            .field("demo", &self.demo)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_pair() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert!(s.redis_url.is_none());
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert_eq!(s.session_idle, Duration::from_secs(8 * 3600));
        assert_eq!(s.log.rotation, LogRotation::Daily);
        assert_eq!(s.log.keep, 14);
        assert_eq!(s.session_store, SessionStoreKind::Optimistic);
        assert_eq!(s.currency, "USD");
        assert!(!s.cookie_secure);
    }

    #[test]
    fn reads_every_variable() {
        let s = settings(&[
            ("DATABASE_URL", "postgres://u:pw@db/x"),
            ("REDIS_URL", "redis://:secret@cache:6379"),
            ("BURSAR_BIND", "0.0.0.0:9000"),
            ("BURSAR_INSTANCE_ID", "app-1"),
            ("BURSAR_LOG_DIR", "/var/log/bursar"),
            ("BURSAR_LOG_ROTATION", "hourly"),
            ("BURSAR_LOG_KEEP", "3"),
            ("BURSAR_LOG_FORMAT", "json"),
            ("BURSAR_SESSION_IDLE", "30m"),
            ("BURSAR_COOKIE_SECURE", "true"),
            ("BURSAR_CURRENCY", "KES"),
            ("BURSAR_SESSION_STORE", "stock"),
        ])
        .unwrap();
        assert_eq!(s.bind, "0.0.0.0:9000");
        assert_eq!(s.instance_id, "app-1");
        assert_eq!(s.log.rotation, LogRotation::Hourly);
        assert_eq!(s.log.keep, 3);
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.session_idle, Duration::from_secs(1800));
        assert!(s.cookie_secure);
        assert_eq!(s.currency, "KES");
        assert_eq!(s.session_store, SessionStoreKind::Stock);
    }

    #[test]
    fn each_instance_can_have_its_own_log_folder() {
        let s = settings(&[
            ("BURSAR_LOG_DIR", "/var/log/bursar/{instance}"),
            ("BURSAR_INSTANCE_ID", "app-7"),
        ])
        .unwrap();
        assert_eq!(s.log.dir, std::path::PathBuf::from("/var/log/bursar/app-7"));
    }

    #[test]
    fn rejects_nonsense_with_the_variable_named() {
        for (name, value) in [
            ("BURSAR_SESSION_IDLE", "soon"),
            ("BURSAR_LOG_ROTATION", "weekly"),
            ("BURSAR_CURRENCY", "dollars"),
            ("BURSAR_SESSION_STORE", "cookie"),
            ("BURSAR_COOKIE_SECURE", "maybe"),
            ("BURSAR_LOG_KEEP", "-1"),
        ] {
            let err = settings(&[(name, value)]).unwrap_err();
            assert!(format!("{err:#}").contains(name), "{name}: {err:#}");
        }
    }

    #[test]
    fn debug_hides_passwords() {
        let s = settings(&[
            ("DATABASE_URL", "postgres://u:topsecret@db/x"),
            ("REDIS_URL", "redis://:hunter2@cache:6379"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(shown.contains("postgres://u:***@db/x"), "{shown}");
    }
}
