//! The Redis cache backend.
//!
//! Key layout, per namespace NS (the hash tag keeps a namespace's keys in
//! one Redis Cluster slot, so one script can update a value and its tags):
//! - `jr:cache:{NS}:k:KEY`: the value, with its TTL;
//! - `jr:cache:{NS}:t:TAG`: a set of the value keys carrying TAG; it lives as
//!   long as its longest-lived member.
//!
//! An app writes `jr:cache:{NS}:k:KEY` with a plain `SET` to hand a value to
//! a plugin (for example a "vendor answered" flag).

use crate::queue::Connection;
use anyhow::{Context, Result};
use std::time::Duration;

const SET_SCRIPT: &str = r#"
-- KEYS[1]: value key; KEYS[2..]: tag sets. ARGV[1]: value; ARGV[2]: TTL in ms (0: none).
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
for i = 2, #KEYS do
  local existed = redis.call('EXISTS', KEYS[i]) == 1
  local current = redis.call('PTTL', KEYS[i])
  redis.call('SADD', KEYS[i], KEYS[1])
  if ttl == 0 then
    redis.call('PERSIST', KEYS[i])
  elseif (not existed) or (current >= 0 and current < ttl) then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return 1
"#;

// The members of a tag set are keys of the same namespace, hence of the same
// slot as KEYS[1]: Redis Cluster accepts them although the script cannot
// declare them in advance (they are only known once the set is read).
const INVALIDATE_SCRIPT: &str = r#"
-- KEYS[1]: tag set. Deletes every member and the set; returns how many existed.
local removed = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  removed = removed + redis.call('DEL', key)
end
redis.call('DEL', KEYS[1])
return removed
"#;

pub struct RedisCache {
    conn: Connection,
    set: redis::Script,
    invalidate: redis::Script,
}

fn value_key(ns: &str, key: &str) -> String {
    format!("jr:cache:{{{ns}}}:k:{key}")
}

fn tag_key(ns: &str, tag: &str) -> String {
    format!("jr:cache:{{{ns}}}:t:{tag}")
}

impl RedisCache {
    pub fn new(conn: Connection) -> Self {
        RedisCache { conn, set: redis::Script::new(SET_SCRIPT), invalidate: redis::Script::new(INVALIDATE_SCRIPT) }
    }

    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.conn.query(redis::cmd("GET").arg(value_key(ns, key))).await.context("cache get")
    }

    pub async fn set(&self, ns: &str, key: &str, value: Vec<u8>, ttl: Option<Duration>, tags: &[String]) -> Result<()> {
        let mut keys = vec![value_key(ns, key)];
        keys.extend(tags.iter().map(|t| tag_key(ns, t)));
        let ttl_ms = ttl.map(|t| t.as_millis().max(1) as u64).unwrap_or(0);
        let _: i64 =
            self.conn.invoke(&self.set, &keys, &[value, ttl_ms.to_string().into_bytes()]).await.context("cache set")?;
        Ok(())
    }

    pub async fn delete(&self, ns: &str, key: &str) -> Result<bool> {
        let n: i64 = self.conn.query(redis::cmd("DEL").arg(value_key(ns, key))).await.context("cache delete")?;
        Ok(n > 0)
    }

    pub async fn invalidate_tag(&self, ns: &str, tag: &str) -> Result<u32> {
        let n: u32 = self.conn.invoke(&self.invalidate, &[tag_key(ns, tag)], &[]).await.context("cache invalidate")?;
        Ok(n)
    }
}
