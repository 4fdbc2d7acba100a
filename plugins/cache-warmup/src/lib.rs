//! The cache-warmup plugin (job type `cache-warmup`).
//!
//! For each entry `{key, url, ttl_secs, tags}`: fetches the URL (only hosts
//! the operator allowed) and stores a 2xx body under the key with its TTL and
//! tags, reporting progress after each entry. Partial failures are listed in
//! the output; when every entry fails the job is retried, unless every
//! failure is one a retry cannot fix (a denied host, a 4xx), then it fails
//! permanently.

// Off wasm, the handler is compiled only for its unit tests and is not
// exported, so parts of it are unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use jobrunner_sdk::http::Request;
use jobrunner_sdk::{Failure, Job, Plugin, PluginInfo, cache, log};
use serde::{Deserialize, Serialize};

/// More entries than this in one job is almost certainly a mistake; split it.
const MAX_ENTRIES: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    key: String,
    url: String,
    ttl_secs: Option<u64>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    entries: Vec<Entry>,
}

#[derive(Debug, Serialize)]
struct EntryFailure {
    key: String,
    url: String,
    error: String,
    #[serde(skip)]
    retryable: bool,
}

struct CacheWarmup;

fn warm(entry: &Entry) -> Result<usize, EntryFailure> {
    let fail = |error: String, retryable: bool| EntryFailure {
        key: entry.key.clone(),
        url: entry.url.clone(),
        error,
        retryable,
    };
    let response = Request::get(&entry.url).send().map_err(|e| {
        let retryable = e.is_transient();
        fail(e.to_string(), retryable)
    })?;
    if !(200..300).contains(&response.status) {
        let retryable = response.status >= 500 || response.status == 408 || response.status == 429;
        return Err(fail(format!("answered {}", response.status), retryable));
    }
    cache::set(&entry.key, &response.body, entry.ttl_secs.map(|s| s * 1000), &entry.tags)
        .map_err(|e| fail(format!("cache: {e}"), true))?;
    Ok(response.body.len())
}

impl Plugin for CacheWarmup {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "cache-warmup".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            job_types: vec!["cache-warmup".into()],
        }
    }

    fn handle(job: Job) -> Result<Option<String>, Failure> {
        let p: Payload = jobrunner_sdk::payload(&job)?;
        if p.entries.is_empty() {
            return Err(Failure::Permanent("`entries` is empty".into()));
        }
        if p.entries.len() > MAX_ENTRIES {
            return Err(Failure::Permanent(format!("{} entries; at most {MAX_ENTRIES} per job", p.entries.len())));
        }
        let total = p.entries.len();
        let mut warmed = 0usize;
        let mut bytes = 0usize;
        let mut failed = Vec::new();
        for (i, entry) in p.entries.iter().enumerate() {
            match warm(entry) {
                Ok(n) => {
                    warmed += 1;
                    bytes += n;
                    log::debug(&format!("warmed {} ({n} bytes)", entry.key));
                }
                Err(f) => {
                    log::warn(&format!("{}: {}", f.key, f.error));
                    failed.push(f);
                }
            }
            log::progress((((i + 1) * 100) / total) as u8);
        }
        if warmed == 0 {
            let summary = failed.iter().map(|f| format!("{}: {}", f.key, f.error)).collect::<Vec<_>>().join("; ");
            return Err(if failed.iter().any(|f| f.retryable) {
                Failure::Retry(format!("every entry failed: {summary}"))
            } else {
                Failure::Permanent(format!("every entry failed: {summary}"))
            });
        }
        Ok(Some(serde_json::json!({"warmed": warmed, "bytes": bytes, "failed": failed}).to_string()))
    }
}

// The export exists only in the wasm build: natively the handler is
// compiled for unit tests, and exported names with `:` would not link.
#[cfg(target_arch = "wasm32")]
jobrunner_sdk::export_plugin!(CacheWarmup);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_shape() {
        let p: Payload = serde_json::from_str(
            r#"{"entries":[{"key":"home","url":"http://127.0.0.1:1/","ttl_secs":60,"tags":["pages"]}]}"#,
        )
        .unwrap();
        assert_eq!(p.entries[0].tags, vec!["pages"]);
        assert!(serde_json::from_str::<Payload>(r#"{"entries":[{"key":"k"}]}"#).is_err());
    }
}
