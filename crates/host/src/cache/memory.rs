//! The in-process cache backend. Expired entries are dropped when read and
//! swept when the map grows, so memory does not hold dead entries for long.

use super::{Budget, CacheStore};
use futures::future::{BoxFuture, FutureExt, ready};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sweep expired entries after this many writes.
const SWEEP_EVERY: u64 = 1024;

#[derive(Default)]
pub struct MemoryCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<(String, String), Entry>,
    tags: HashMap<(String, String), HashSet<String>>,
    writes: u64,
}

struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

impl MemoryCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, ns: &str, key: &str) -> Option<Vec<u8>> {
        let mut inner = self.inner.lock().unwrap();
        let k = (ns.to_string(), key.to_string());
        match inner.entries.get(&k) {
            Some(e) if e.live(Instant::now()) => Some(e.value.clone()),
            Some(_) => {
                inner.entries.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Stores an entry, or refuses it past the namespace's budget (counted
    /// as the Redis backend counts: value and key bytes of live entries).
    /// The namespace's usage is summed on each write: this backend serves
    /// `runner exec` and tests, one process with few entries.
    pub fn set(
        &self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        tags: &[String],
        budget: &Budget,
    ) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().unwrap();
        let now = Instant::now();
        inner.writes += 1;
        if inner.writes.is_multiple_of(SWEEP_EVERY) {
            inner.entries.retain(|_, e| e.live(now));
        }
        let (mut bytes, mut keys) = (0u64, 0u64);
        for ((n, k), e) in &inner.entries {
            if n == ns && k != key && e.live(now) {
                bytes += (e.value.len() + k.len()) as u64;
                keys += 1;
            }
        }
        let size = (value.len() + key.len()) as u64;
        if bytes + size > budget.max_bytes || keys + 1 > budget.max_keys {
            return Err(budget.refusal(ns, bytes, keys, size));
        }
        inner.entries.insert((ns.to_string(), key.to_string()), Entry { value, expires: Some(now + ttl) });
        for tag in tags {
            inner.tags.entry((ns.to_string(), tag.clone())).or_default().insert(key.to_string());
        }
        Ok(())
    }

    pub fn delete(&self, ns: &str, key: &str) -> bool {
        let mut inner = self.inner.lock().unwrap();
        let now = Instant::now();
        inner.entries.remove(&(ns.to_string(), key.to_string())).is_some_and(|e| e.live(now))
    }

    pub fn invalidate_tag(&self, ns: &str, tag: &str) -> u32 {
        let mut inner = self.inner.lock().unwrap();
        let now = Instant::now();
        let keys = inner.tags.remove(&(ns.to_string(), tag.to_string())).unwrap_or_default();
        keys.into_iter()
            .filter(|k| inner.entries.remove(&(ns.to_string(), k.clone())).is_some_and(|e| e.live(now)))
            .count() as u32
    }
}

impl CacheStore for MemoryCache {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Vec<u8>>>> {
        ready(Ok(MemoryCache::get(self, ns, key))).boxed()
    }

    fn set<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Duration,
        tags: &'a [String],
        budget: &'a Budget,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        ready(MemoryCache::set(self, ns, key, value, ttl, tags, budget)).boxed()
    }

    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        ready(Ok(MemoryCache::delete(self, ns, key))).boxed()
    }

    fn invalidate_tag<'a>(&'a self, ns: &'a str, tag: &'a str) -> BoxFuture<'a, anyhow::Result<u32>> {
        ready(Ok(MemoryCache::invalidate_tag(self, ns, tag))).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86400);

    #[test]
    fn namespaces_ttl_and_tags() {
        let c = MemoryCache::new();
        let b = crate::cache::Budget::default();
        c.set("a", "k", b"1".to_vec(), DAY, &["t".into()], &b).unwrap();
        c.set("a", "k2", b"2".to_vec(), DAY, &["t".into()], &b).unwrap();
        c.set("b", "k", b"other".to_vec(), DAY, &[], &b).unwrap();
        assert_eq!(c.get("a", "k").as_deref(), Some(&b"1"[..]));
        assert_eq!(c.get("b", "k").as_deref(), Some(&b"other"[..]));
        assert_eq!(c.invalidate_tag("a", "t"), 2);
        assert_eq!(c.get("a", "k"), None);
        assert_eq!(c.get("b", "k").as_deref(), Some(&b"other"[..]));
        c.set("a", "gone", b"x".to_vec(), Duration::from_nanos(1), &[], &b).unwrap();
        std::thread::sleep(Duration::from_millis(2)); // the TTL itself is what is under test
        assert_eq!(c.get("a", "gone"), None);
        assert!(c.delete("b", "k"));
        assert!(!c.delete("b", "k"));
    }

    #[test]
    fn a_namespace_stays_within_its_budget() {
        let c = MemoryCache::new();
        let b = crate::cache::Budget { max_bytes: 100, max_keys: 2, max_ttl: DAY };
        c.set("a", "k1", vec![0; 40], DAY, &[], &b).unwrap();
        // Replacing an entry counts it once.
        c.set("a", "k1", vec![0; 40], DAY, &[], &b).unwrap();
        c.set("a", "k2", vec![0; 40], DAY, &[], &b).unwrap();
        let e = c.set("a", "k3", vec![0; 1], DAY, &[], &b).unwrap_err().to_string();
        assert!(e.contains("at its budget") && e.contains("2 keys"), "{e}");
        assert!(c.set("a", "k2", vec![0; 60], DAY, &[], &b).is_err(), "bytes");
        assert!(c.delete("a", "k1"));
        c.set("a", "k3", vec![0; 1], DAY, &[], &b).unwrap();
        c.set("other", "k", vec![0; 90], DAY, &[], &b).unwrap();
    }
}
