//! The in-process cache backend. Expired entries are dropped when read and
//! swept when the map grows, so memory does not hold dead entries for long.

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

    pub fn set(&self, ns: &str, key: &str, value: Vec<u8>, ttl: Option<Duration>, tags: &[String]) {
        let mut inner = self.inner.lock().unwrap();
        let now = Instant::now();
        inner.writes += 1;
        if inner.writes.is_multiple_of(SWEEP_EVERY) {
            inner.entries.retain(|_, e| e.live(now));
        }
        inner.entries.insert((ns.to_string(), key.to_string()), Entry { value, expires: ttl.map(|t| now + t) });
        for tag in tags {
            inner.tags.entry((ns.to_string(), tag.clone())).or_default().insert(key.to_string());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_ttl_and_tags() {
        let c = MemoryCache::new();
        c.set("a", "k", b"1".to_vec(), None, &["t".into()]);
        c.set("a", "k2", b"2".to_vec(), None, &["t".into()]);
        c.set("b", "k", b"other".to_vec(), None, &[]);
        assert_eq!(c.get("a", "k").as_deref(), Some(&b"1"[..]));
        assert_eq!(c.get("b", "k").as_deref(), Some(&b"other"[..]));
        assert_eq!(c.invalidate_tag("a", "t"), 2);
        assert_eq!(c.get("a", "k"), None);
        assert_eq!(c.get("b", "k").as_deref(), Some(&b"other"[..]));
        c.set("a", "gone", b"x".to_vec(), Some(Duration::from_nanos(1)), &[]);
        std::thread::sleep(Duration::from_millis(2)); // the TTL itself is what is under test
        assert_eq!(c.get("a", "gone"), None);
        assert!(c.delete("b", "k"));
        assert!(!c.delete("b", "k"));
    }
}
