//! Finding jobs in one state of a queue by type or by a payload field, for
//! the dashboard's queue page: a bounded, paged scan. Neither queue keeps
//! an index by type or payload, so a search reads the state's jobs in
//! order, a page at a time, until it has a page of matches or has read
//! `budget` jobs; the caller continues from the offset it returns. The
//! cost is that of listing the jobs read (their records), whatever matched.

use crate::any_queue::AnyQueue;
use anyhow::Result;
use jobrunner_queue::{JobRecord, State};

/// Jobs read per round trip while scanning.
const CHUNK: u64 = 200;

/// What a job must have to be listed; an empty filter lists every job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub job_type: Option<String>,
    /// A payload field by path (`user.id`, `items.0.sku`) and the value it
    /// must have: a string's text, or any other value's JSON (`42`, `true`).
    pub field: Option<(String, String)>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.job_type.is_none() && self.field.is_none()
    }

    pub fn matches(&self, job: &JobRecord) -> bool {
        if self.job_type.as_ref().is_some_and(|t| *t != job.job_type) {
            return false;
        }
        match &self.field {
            None => true,
            Some((path, want)) => {
                let pointer: String =
                    path.split('.').map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1"))).collect();
                match job.payload.pointer(&pointer) {
                    Some(serde_json::Value::String(s)) => s == want,
                    Some(other) => serde_json::from_str::<serde_json::Value>(want).is_ok_and(|w| w == *other),
                    None => false,
                }
            }
        }
    }
}

/// A page of matches.
#[derive(Debug)]
pub struct Found {
    pub jobs: Vec<JobRecord>,
    /// Jobs read to find them.
    pub scanned: u64,
    /// Where the next page starts, when the state has more jobs past the
    /// ones read.
    pub next: Option<u64>,
}

impl AnyQueue {
    /// Up to `limit` jobs in `state` that match `filter`, from `offset` in
    /// the state's order, reading at most `budget` jobs.
    pub async fn search(&self, state: State, offset: u64, limit: u64, filter: &Filter, budget: u64) -> Result<Found> {
        let mut found = Found { jobs: Vec::new(), scanned: 0, next: None };
        let mut at = offset;
        while (found.jobs.len() as u64) < limit && found.scanned < budget {
            let chunk = CHUNK.min(budget - found.scanned);
            let page = self.list(state, at, chunk).await?;
            let read = page.len() as u64;
            for (i, job) in page.into_iter().enumerate() {
                if filter.matches(&job) {
                    found.jobs.push(job);
                    if found.jobs.len() as u64 == limit {
                        // Continue after this match, not after the chunk.
                        found.scanned += i as u64 + 1;
                        found.next = Some(at + i as u64 + 1);
                        return Ok(found);
                    }
                }
            }
            found.scanned += read;
            at += read;
            if read < chunk {
                // The end of the state.
                return Ok(found);
            }
        }
        found.next = Some(at);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_by_type_and_payload_field() {
        let job = |t: &str, payload: serde_json::Value| JobRecord {
            id: "1".into(),
            queue: "q".into(),
            state: State::Waiting,
            job_type: t.into(),
            payload,
            options: Default::default(),
            effective: None,
            attempts_made: 0,
            created_at: 0,
            state_since_or_until: None,
            progress: None,
            result: None,
            errors: vec![],
            log: None,
            run: None,
            stalls: 0,
            dead_letter: None,
            parent: None,
            children: None,
            bullmq: None,
        };
        let a = job("email", json!({"user": {"id": 42, "name": "ann"}, "tags": ["x", "y"]}));
        let by = |t: Option<&str>, f: Option<(&str, &str)>| Filter {
            job_type: t.map(str::to_string),
            field: f.map(|(p, v)| (p.to_string(), v.to_string())),
        };
        assert!(by(None, None).matches(&a));
        assert!(by(Some("email"), None).matches(&a));
        assert!(!by(Some("sms"), None).matches(&a));
        assert!(by(None, Some(("user.id", "42"))).matches(&a));
        assert!(by(Some("email"), Some(("user.name", "ann"))).matches(&a));
        assert!(!by(None, Some(("user.name", "\"ann\""))).matches(&a));
        assert!(by(None, Some(("tags.1", "y"))).matches(&a));
        assert!(!by(None, Some(("user.missing", "1"))).matches(&a));
    }
}
