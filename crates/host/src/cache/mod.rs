//! The plugins' cache: values with TTLs and tags, namespaced per plugin.
//!
//! `Cache` checks what a plugin asks (key and tag names, value size, TTL
//! within its budget) and hands it to a `CacheStore`: `MemoryCache` here
//! (for `runner exec` and tests of a single process), or the runner's Redis
//! store (shared by every runner, and visible to the app, which may write
//! keys such as "vendor answered" itself). The host holds no Redis code.
//! A namespace keeps one plugin from reading or evicting another's entries.

mod memory;

pub use memory::MemoryCache;

use anyhow::{Result, bail};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// Keys and tags longer than this are refused: they are names, not data.
pub const MAX_KEY_LEN: usize = 512;
/// The largest value one entry may hold.
pub const MAX_VALUE_BYTES: usize = 8 << 20;
/// The most tags one entry may carry.
pub const MAX_TAGS: usize = 32;

/// What one plugin's writes may hold in its cache namespace (checked on
/// each write against the namespace's usage; plugins sharing a namespace
/// share its usage), and how long an entry may live: an entry written
/// without a TTL, or with a longer one, gets `max_ttl`, so that every entry
/// leaves in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Budget {
    pub max_bytes: u64,
    pub max_keys: u64,
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
}

impl Budget {
    /// Why a write of `size` bytes to namespace `ns`, which holds `bytes`
    /// in `keys` entries, is refused: said alike by both backends.
    pub fn refusal(&self, ns: &str, bytes: u64, keys: u64, size: u64) -> anyhow::Error {
        anyhow::anyhow!(
            "the cache namespace `{ns}` is at its budget: it holds {bytes} bytes in {keys} keys, this entry is {size} bytes, and the plugin may hold {} bytes in {} keys (cache_max_bytes, cache_max_keys); delete entries, let them expire, or ask the operator for more",
            self.max_bytes,
            self.max_keys
        )
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_bytes: 32 << 20, max_keys: 100_000, max_ttl: Duration::from_secs(7 * 86400) }
    }
}

/// Where a cache's entries live. Each call gets names and values already
/// checked by `Cache`, and a TTL already bounded by the budget; the store
/// enforces the budget's bytes and keys against what the namespace holds.
pub trait CacheStore: Send + Sync {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>>;
    fn set<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Duration,
        tags: &'a [String],
        budget: &'a Budget,
    ) -> BoxFuture<'a, Result<()>>;
    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFuture<'a, Result<bool>>;
    fn invalidate_tag<'a>(&'a self, ns: &'a str, tag: &'a str) -> BoxFuture<'a, Result<u32>>;
}

/// The plugins' cache: checks, then its store. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    store: Arc<dyn CacheStore>,
}

impl Cache {
    pub fn new(store: impl CacheStore + 'static) -> Cache {
        Cache { store: Arc::new(store) }
    }

    /// A cache in this process's memory.
    pub fn memory() -> Cache {
        Cache::new(MemoryCache::new())
    }

    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        check_name("key", key)?;
        self.store.get(ns, key).await
    }

    pub async fn set(
        &self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        tags: &[String],
        budget: &Budget,
    ) -> Result<()> {
        check_name("key", key)?;
        if value.len() > MAX_VALUE_BYTES {
            bail!("value of {} bytes is over the {MAX_VALUE_BYTES} byte limit", value.len());
        }
        if tags.len() > MAX_TAGS {
            bail!("{} tags; at most {MAX_TAGS}", tags.len());
        }
        for tag in tags {
            check_name("tag", tag)?;
        }
        if ttl.is_some_and(|t| t.is_zero()) {
            bail!("a TTL of zero would expire the entry at once; give none to keep it");
        }
        let ttl = ttl.unwrap_or(budget.max_ttl).min(budget.max_ttl);
        self.store.set(ns, key, value, ttl, tags, budget).await
    }

    pub async fn delete(&self, ns: &str, key: &str) -> Result<bool> {
        check_name("key", key)?;
        self.store.delete(ns, key).await
    }

    pub async fn invalidate_tag(&self, ns: &str, tag: &str) -> Result<u32> {
        check_name("tag", tag)?;
        self.store.invalidate_tag(ns, tag).await
    }
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("empty {what}");
    }
    if name.len() > MAX_KEY_LEN {
        bail!("{what} of {} bytes is over the {MAX_KEY_LEN} byte limit", name.len());
    }
    Ok(())
}

/// Namespaces end up inside Redis hash tags, so they are kept to a plain
/// alphabet; the config is refused otherwise.
pub fn check_namespace(ns: &str) -> Result<()> {
    if ns.is_empty() || ns.len() > 64 || !ns.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        bail!("cache namespace `{ns}` must be 1 to 64 characters of letters, digits, `-`, `_` or `.`");
    }
    Ok(())
}
