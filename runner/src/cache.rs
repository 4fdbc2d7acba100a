//! The plugins' cache in Redis: the `CacheStore` every runner shares (the
//! host checks what a plugin asks; this stores it and keeps the budget).
//! It counts hits and misses in the runner's metrics when given them.
//!
//! Key layout, per namespace NS, under the connection's prefix P (`jr`
//! unless `[redis] prefix` says otherwise; the hash tag keeps a
//! namespace's keys in one Redis Cluster slot, so one script can update a
//! value, its tags and the namespace's usage together):
//! - `P:cache:{NS}:k:KEY`: the value, with its TTL;
//! - `P:cache:{NS}:t:TAG`: a set of the value keys carrying TAG; it lives as
//!   long as its longest-lived member;
//! - `P:cache:{NS}:sizes` (value key → bytes), `P:cache:{NS}:exp` (value
//!   key → when it expires, ms) and `P:cache:{NS}:usage` (`bytes`): what
//!   the plugins' own writes hold, for the budget (`Budget`). Every entry a
//!   plugin writes has a TTL, so every entry leaves the accounts: a write
//!   first settles the ones that have expired since.
//!
//! An app writes `P:cache:{NS}:k:KEY` with a plain `SET` to hand a value to
//! a plugin (for example a "vendor answered" flag); such values are the
//! app's, outside the plugins' budget.

use crate::metrics::Metrics;
use anyhow::{Context, Result};
use futures::FutureExt;
use futures::future::BoxFuture;
use jobrunner_host::cache::{Budget, CacheStore};
use jobrunner_queue::Connection;
use std::sync::Arc;
use std::time::Duration;

/// Settles expired entries (at most 1000 per call, so no call runs long;
/// later calls finish the work). Shared by the scripts below.
const SETTLE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function forget(sizes, exp, usage, key)
  local size = tonumber(redis.call('HGET', sizes, key) or '0')
  if size > 0 or redis.call('ZSCORE', exp, key) then
    redis.call('HDEL', sizes, key)
    redis.call('ZREM', exp, key)
    redis.call('HINCRBY', usage, 'bytes', -size)
  end
end
local function settle(sizes, exp, usage, now)
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 1000)) do
    forget(sizes, exp, usage, key)
  end
end
"#;

const SET_SCRIPT: &str = r#"
-- KEYS[1]: value key, KEYS[2]: sizes, KEYS[3]: exp, KEYS[4]: usage;
-- KEYS[5..]: tag sets. ARGV: value, TTL ms (always some: the budget's
-- longest at most), max bytes, max keys.
-- Returns 1, or an error starting `CACHE_BUDGET` with the usage.
local key, sizes, exp, usage = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl, max_bytes, max_keys = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
settle(sizes, exp, usage, now)
local size = #ARGV[1] + #key
local old = redis.call('HGET', sizes, key)
local bytes = tonumber(redis.call('HGET', usage, 'bytes') or '0')
local keys = redis.call('HLEN', sizes)
local after_bytes = bytes - tonumber(old or '0') + size
local after_keys = keys + (old and 0 or 1)
if after_bytes > max_bytes or after_keys > max_keys then
  return redis.error_reply(string.format('CACHE_BUDGET %d %d %d %d %d', bytes, keys, size, max_bytes, max_keys))
end
redis.call('SET', key, ARGV[1], 'PX', ttl)
redis.call('HSET', sizes, key, size)
redis.call('ZADD', exp, now + ttl, key)
redis.call('HINCRBY', usage, 'bytes', size - tonumber(old or '0'))
for i = 5, #KEYS do
  -- PTTL: -2 for a set that does not exist yet, -1 for one without a TTL.
  local current = redis.call('PTTL', KEYS[i])
  redis.call('SADD', KEYS[i], key)
  if current == -2 or (current >= 0 and current < ttl) then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return 1
"#;

const DELETE_SCRIPT: &str = r#"
-- KEYS: value key, sizes, exp, usage. Returns 1 if the value existed.
forget(KEYS[2], KEYS[3], KEYS[4], KEYS[1])
return redis.call('DEL', KEYS[1])
"#;

// The members of a tag set are keys of the same namespace, hence of the same
// slot as KEYS[1]: Redis Cluster accepts them although the script cannot
// declare them in advance (they are only known once the set is read).
const INVALIDATE_SCRIPT: &str = r#"
-- KEYS: tag set, sizes, exp, usage. Deletes every member and the set;
-- returns how many existed.
local removed = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  forget(KEYS[2], KEYS[3], KEYS[4], key)
  removed = removed + redis.call('DEL', key)
end
redis.call('DEL', KEYS[1])
return removed
"#;

pub struct RedisCache {
    conn: Connection,
    set: redis::Script,
    delete: redis::Script,
    invalidate: redis::Script,
    metrics: Option<Arc<Metrics>>,
}

impl RedisCache {
    /// The keys live under the connection's prefix (`[redis] prefix`):
    /// `PREFIX:cache:{NAMESPACE}:...`, one cluster slot per namespace.
    fn value_key(&self, ns: &str, key: &str) -> String {
        self.conn.key(&format!("cache:{{{ns}}}:k:{key}"))
    }

    fn tag_key(&self, ns: &str, tag: &str) -> String {
        self.conn.key(&format!("cache:{{{ns}}}:t:{tag}"))
    }

    /// The namespace's accounting keys: sizes, expiries, usage.
    fn accounts(&self, ns: &str) -> [String; 3] {
        ["sizes", "exp", "usage"].map(|k| self.conn.key(&format!("cache:{{{ns}}}:{k}")))
    }

    pub fn new(conn: Connection) -> Self {
        let script = |body: &str| redis::Script::new(&format!("{SETTLE}\n{body}"));
        RedisCache {
            conn,
            set: script(SET_SCRIPT),
            delete: script(DELETE_SCRIPT),
            invalidate: script(INVALIDATE_SCRIPT),
            metrics: None,
        }
    }

    /// Counts each lookup as a hit or a miss in `metrics`.
    pub fn counted(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let got: Option<Vec<u8>> =
            self.conn.query(redis::cmd("GET").arg(self.value_key(ns, key))).await.context("cache get")?;
        if let Some(m) = &self.metrics {
            m.cache.with_label_values(&[if got.is_some() { "hit" } else { "miss" }]).inc();
        }
        Ok(got)
    }

    pub async fn set(
        &self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        tags: &[String],
        budget: &Budget,
    ) -> Result<()> {
        let mut keys = vec![self.value_key(ns, key)];
        keys.extend(self.accounts(ns));
        keys.extend(tags.iter().map(|t| self.tag_key(ns, t)));
        let args = [
            value,
            (ttl.as_millis().max(1) as u64).to_string().into_bytes(),
            budget.max_bytes.to_string().into_bytes(),
            budget.max_keys.to_string().into_bytes(),
        ];
        match self.conn.invoke::<i64>(&self.set, &keys, &args).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("CACHE_BUDGET") => {
                let n: Vec<u64> = e.detail().unwrap_or("").split_whitespace().filter_map(|w| w.parse().ok()).collect();
                // The script reports the limits it was given: the budget's.
                match n[..] {
                    [bytes, keys, size, _, _] => Err(budget.refusal(ns, bytes, keys, size)),
                    _ => Err(anyhow::Error::from(e).context("cache set")),
                }
            }
            Err(e) => Err(anyhow::Error::from(e).context("cache set")),
        }
    }

    pub async fn delete(&self, ns: &str, key: &str) -> Result<bool> {
        let mut keys = vec![self.value_key(ns, key)];
        keys.extend(self.accounts(ns));
        let n: i64 = self.conn.invoke(&self.delete, &keys, &[]).await.context("cache delete")?;
        Ok(n > 0)
    }

    pub async fn invalidate_tag(&self, ns: &str, tag: &str) -> Result<u32> {
        let mut keys = vec![self.tag_key(ns, tag)];
        keys.extend(self.accounts(ns));
        let n: u32 = self.conn.invoke(&self.invalidate, &keys, &[]).await.context("cache invalidate")?;
        Ok(n)
    }
}

impl CacheStore for RedisCache {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        RedisCache::get(self, ns, key).boxed()
    }

    fn set<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Duration,
        tags: &'a [String],
        budget: &'a Budget,
    ) -> BoxFuture<'a, Result<()>> {
        RedisCache::set(self, ns, key, value, ttl, tags, budget).boxed()
    }

    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        RedisCache::delete(self, ns, key).boxed()
    }

    fn invalidate_tag<'a>(&'a self, ns: &'a str, tag: &'a str) -> BoxFuture<'a, Result<u32>> {
        RedisCache::invalidate_tag(self, ns, tag).boxed()
    }
}
