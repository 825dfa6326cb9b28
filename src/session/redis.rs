//! The optimistic session store on Redis: one hash per session, Lua scripts for every write.
use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use fred::{
    prelude::{ClientLike, HashesInterface, KeysInterface, LuaInterface, Pool},
    types::{Value, scripts::Script},
};

use super::store::{
    Change, Entry, Gone, LoadedSession, SaveOutcome, SessionId, SessionStore, StoreError,
    TOMBSTONE_TTL,
};

/// Field name prefixes inside the session hash.
const VALUE: &str = "k:";
const VERSION: &str = "v:";
const EXPIRES: &str = "m:exp";

/// Writes the changed keys whose versions still match; reports the others.
/// KEYS: hash, tombstone. ARGV: ttl_ms, then (name, expected, op, value)*.
const SAVE_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'gone', redis.call('GET', KEYS[2]) or 'expired'}
end
local conflicts = {'ok'}
for i = 2, #ARGV, 4 do
  local name = ARGV[i]
  local current = tonumber(redis.call('HGET', KEYS[1], 'v:' .. name) or '0')
  if current ~= tonumber(ARGV[i + 1]) then
    conflicts[#conflicts + 1] = name
  elseif ARGV[i + 2] == 's' then
    redis.call('HSET', KEYS[1], 'k:' .. name, ARGV[i + 3], 'v:' .. name, current + 1)
  else
    redis.call('HDEL', KEYS[1], 'k:' .. name)
    redis.call('HSET', KEYS[1], 'v:' .. name, current + 1)
  end
end
local t = redis.call('TIME')
local ttl = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'm:exp', t[1] * 1000 + math.floor(t[2] / 1000) + ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
return conflicts
"#;

/// Creates a session unless the id is taken or tombstoned.
/// KEYS: hash, tombstone. ARGV: ttl_ms, then (name, value)*.
const CREATE_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'm:created', now, 'm:exp', now + ttl)
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], 'k:' .. ARGV[i], ARGV[i + 1], 'v:' .. ARGV[i], 1)
end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"#;

/// Removes a session and leaves a tombstone saying why.
/// KEYS: hash, tombstone. ARGV: reason, tombstone ttl_ms.
const DELETE_LUA: &str = r#"
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
"#;

/// Bursar's per-key optimistic session store on Redis (see the module docs of
/// `session` for the layout and the save protocol).
pub struct RedisSessionStore {
    pool: Pool,
    prefix: String,
    save: Script,
    create: Script,
    delete: Script,
}

impl RedisSessionStore {
    pub fn new(pool: Pool, prefix: &str) -> Self {
        Self {
            pool,
            prefix: prefix.to_string(),
            save: Script::from_lua(SAVE_LUA),
            create: Script::from_lua(CREATE_LUA),
            delete: Script::from_lua(DELETE_LUA),
        }
    }

    /// Loads the scripts ahead of the first request, so that no request
    /// pays for a `NOSCRIPT` round trip. Harmless if Redis is not up yet.
    pub async fn preload(&self) {
        let client = self.pool.next();
        for script in [&self.save, &self.create, &self.delete] {
            let source = script.lua().cloned().unwrap_or_default();
            if let Err(err) = client.script_load::<String, _>(source).await {
                tracing::debug!(%err, "could not preload a session script yet");
            }
        }
    }

    /// `{prefix}:s:{id}`: the braces make the id a Redis Cluster hash tag,
    /// so the hash and its tombstone share a slot and one script may touch both.
    fn hash_key(&self, id: &SessionId) -> String {
        format!("{}:s:{{{id}}}", self.prefix)
    }

    fn tombstone_key(&self, id: &SessionId) -> String {
        format!("{}:gone", self.hash_key(id))
    }

    /// The KEYS of every session script: the hash, then its tombstone.
    fn keys(&self, id: &SessionId) -> Vec<String> {
        vec![self.hash_key(id), self.tombstone_key(id)]
    }

    /// `EVALSHA`, loading the script once if the server does not know it yet
    /// (after a restart or `SCRIPT FLUSH`).
    async fn eval(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<Value, StoreError> {
        let client = self.pool.next();
        match client
            .evalsha::<Value, _, _, _>(script.sha1().clone(), keys.clone(), args.clone())
            .await
        {
            Err(err) if err.details().starts_with("NOSCRIPT") => {
                let source = script.lua().cloned().unwrap_or_default();
                let _: String = client.script_load(source).await?;
                Ok(client.evalsha(script.sha1().clone(), keys, args).await?)
            }
            other => Ok(other?),
        }
    }
}

fn ttl_ms(ttl: Duration) -> String {
    ttl.as_millis().max(1).to_string()
}

fn into_strings(value: Value) -> Result<Vec<String>, StoreError> {
    value
        .convert::<Vec<String>>()
        .map_err(|e| StoreError(format!("unexpected reply from the session script: {e}")))
}

/// Turns `HGETALL` fields back into entries.
fn parse_fields(fields: HashMap<String, String>) -> LoadedSession {
    let mut loaded = LoadedSession::default();
    for (field, raw) in fields {
        if let Some(name) = field.strip_prefix(VALUE) {
            loaded
                .entries
                .entry(name.to_string())
                .or_insert(Entry {
                    value: None,
                    version: 0,
                })
                .value = Some(raw);
        } else if let Some(name) = field.strip_prefix(VERSION) {
            loaded
                .entries
                .entry(name.to_string())
                .or_insert(Entry {
                    value: None,
                    version: 0,
                })
                .version = raw.parse().unwrap_or(0);
        } else if field == EXPIRES {
            loaded.expires_at_ms = raw.parse().unwrap_or(0);
        }
    }
    loaded
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn load(&self, id: &SessionId) -> Result<Option<LoadedSession>, StoreError> {
        let hash = self.hash_key(id);
        let fields: HashMap<String, String> = self.pool.hgetall(hash).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        Ok(Some(parse_fields(fields)))
    }

    async fn load_key(&self, id: &SessionId, key: &str) -> Result<Option<Entry>, StoreError> {
        let hash = self.hash_key(id);
        let fields = vec![
            format!("{VALUE}{key}"),
            format!("{VERSION}{key}"),
            EXPIRES.to_string(),
        ];
        let values: Vec<Option<String>> = self.pool.hmget(hash, fields).await?;
        match values.as_slice() {
            [_, _, None] => Ok(None),
            [value, version, Some(_)] => Ok(Some(Entry {
                value: value.clone(),
                version: version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0),
            })),
            _ => Err(StoreError("unexpected HMGET reply".into())),
        }
    }

    async fn gone_reason(&self, id: &SessionId) -> Result<Gone, StoreError> {
        let tombstone = self.tombstone_key(id);
        let why: Option<String> = self.pool.get(tombstone).await?;
        Ok(why.as_deref().map(Gone::parse).unwrap_or(Gone::Expired))
    }

    async fn create(
        &self,
        id: &SessionId,
        values: &[(String, String)],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut args = Vec::with_capacity(1 + values.len() * 2);
        args.push(ttl_ms(ttl));
        for (name, value) in values {
            args.push(name.clone());
            args.push(value.clone());
        }
        let created = self.eval(&self.create, self.keys(id), args).await?;
        Ok(created
            .convert::<i64>()
            .map_err(|e| StoreError(e.to_string()))?
            == 1)
    }

    async fn save(
        &self,
        id: &SessionId,
        changes: &[Change],
        ttl: Duration,
    ) -> Result<SaveOutcome, StoreError> {
        let mut args = Vec::with_capacity(1 + changes.len() * 4);
        args.push(ttl_ms(ttl));
        for change in changes {
            args.push(change.key.clone());
            args.push(change.expected_version.to_string());
            match &change.value {
                Some(value) => {
                    args.push("s".into());
                    args.push(value.clone());
                }
                None => {
                    args.push("d".into());
                    args.push(String::new());
                }
            }
        }
        let reply = into_strings(self.eval(&self.save, self.keys(id), args).await?)?;
        match reply.split_first() {
            Some((status, rest)) if status == "ok" => Ok(SaveOutcome::Saved {
                conflicts: rest.to_vec(),
            }),
            Some((status, rest)) if status == "gone" => Ok(SaveOutcome::Gone(
                rest.first()
                    .map(|s| Gone::parse(s))
                    .unwrap_or(Gone::Expired),
            )),
            _ => Err(StoreError(format!(
                "unexpected reply from the save script: {reply:?}"
            ))),
        }
    }

    async fn delete(&self, id: &SessionId, why: Gone) -> Result<(), StoreError> {
        let args = vec![why.as_str().to_string(), ttl_ms(TOMBSTONE_TTL)];
        self.eval(&self.delete, self.keys(id), args).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.pool.next().ping(None).await?;
        Ok(())
    }
}
