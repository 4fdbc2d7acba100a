//! What a producer may ask of a job: delay, priority, attempts, backoff,
//! timeout, retention. Checked before anything is written, with each
//! problem named, since a bad option is the producer's mistake. Stored in
//! a job's spec as only what differs from the defaults (`serialize_changed`).

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use std::time::Duration;

/// The highest priority; higher runs first.
pub const MAX_PRIORITY: u32 = 4000;
/// Attempts beyond this are a mistake (a retry storm), not a policy.
pub const MAX_ATTEMPTS: u32 = 1000;
/// The furthest into the future a job may be delayed.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

/// Completed jobs kept by default: enough to inspect recent work, bounded
/// so that Redis memory does not grow with every job ever run.
pub const DEFAULT_KEEP_COMPLETED: Keep = Keep { count: Some(1000), age_ms: Some(24 * 3600 * 1000) };
/// Failed jobs are kept longer: they are what operators come to look at.
pub const DEFAULT_KEEP_FAILED: Keep = Keep { count: Some(10_000), age_ms: Some(7 * 24 * 3600 * 1000) };

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Backoff {
    /// Retry at once.
    None,
    /// The same delay before every retry.
    Fixed { delay_ms: u64 },
    /// `delay_ms * 2^(attempt-1)`, capped at `max_delay_ms` (0: no cap); each
    /// delay shortened by up to `jitter` (0 to 1) of itself, at random, so
    /// that jobs failing together do not all retry together.
    Exponential {
        delay_ms: u64,
        #[serde(default)]
        max_delay_ms: u64,
        #[serde(default)]
        jitter: f64,
    },
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::Exponential { delay_ms: 1000, max_delay_ms: 3_600_000, jitter: 0.2 }
    }
}

/// How many finished jobs to keep, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    pub count: Option<u64>,
    pub age_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobOptions {
    /// Run no sooner than this many milliseconds after enqueueing.
    pub delay_ms: u64,
    /// 0 to 4000; higher runs first. Jobs of equal priority run in order.
    pub priority: u32,
    /// Attempts allowed in all (at least 1).
    pub attempts: u32,
    pub backoff: Backoff,
    /// The job's own timeout; none uses the plugin's.
    pub timeout_ms: Option<u64>,
    pub keep_completed: Keep,
    pub keep_failed: Keep,
    /// A fairness and rate-limit group (for example a vendor id): jobs are
    /// handed out fairly between groups, and a per-group rate limit applies.
    pub group: Option<String>,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            delay_ms: 0,
            priority: 0,
            attempts: 3,
            backoff: Backoff::default(),
            timeout_ms: None,
            keep_completed: DEFAULT_KEEP_COMPLETED,
            keep_failed: DEFAULT_KEEP_FAILED,
            group: None,
        }
    }
}

impl JobOptions {
    /// A job that starts now, at priority 0 and in no group: the scripts'
    /// short layout (`enqueue.lua`) and, for one new job, the lean `push`.
    pub(crate) fn starts_now_in_line(&self) -> bool {
        self.delay_ms == 0 && self.priority == 0 && self.group.is_none()
    }

    /// Writes only the options that differ from the defaults, for the spec
    /// stored with every job: written in full, the defaults were about 250
    /// of a no-op job's 300 bytes, copied into Lua, stored in Redis, sent
    /// back on every fetch and parsed again. Reading fills in what is left
    /// out (`#[serde(default)]`), and so do the scripts (`DEFAULT_OPTS`).
    pub(crate) fn serialize_changed<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // No `..`: an option added to the struct fails to compile here
        // until it is written here too.
        let JobOptions { delay_ms, priority, attempts, backoff, timeout_ms, keep_completed, keep_failed, group } = self;
        let d = JobOptions::default();
        let mut m = s.serialize_map(None)?;
        // Each field under its own name, as `Serialize` writes it.
        macro_rules! if_changed {
            ($($field:ident),*) => {$(
                if *$field != d.$field {
                    m.serialize_entry(stringify!($field), $field)?;
                }
            )*};
        }
        if_changed!(delay_ms, priority, attempts, backoff, timeout_ms, keep_completed, keep_failed, group);
        m.end()
    }

    /// Checks every option, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.attempts == 0 {
            return Err("attempts must be at least 1".into());
        }
        if self.attempts > MAX_ATTEMPTS {
            return Err(format!("attempts must be at most {MAX_ATTEMPTS}"));
        }
        if self.priority > MAX_PRIORITY {
            return Err(format!("priority must be from 0 to {MAX_PRIORITY}"));
        }
        if Duration::from_millis(self.delay_ms) > MAX_DELAY {
            return Err("delay must be at most a year".into());
        }
        if let Some(g) = &self.group {
            jobrunner_job::check_job_id(g).map_err(|e| e.replace("job id", "group"))?;
        }
        if self.timeout_ms == Some(0) {
            return Err("timeout must be more than zero".into());
        }
        if let Backoff::Exponential { jitter, .. } = self.backoff
            && !(0.0..=1.0).contains(&jitter)
        {
            return Err("backoff jitter must be from 0 to 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounded() {
        let o = JobOptions::default();
        assert!(o.validate().is_ok());
        assert!(o.keep_completed.count.is_some() && o.keep_failed.count.is_some());
    }

    #[test]
    fn bad_options_are_named() {
        let bad = |f: fn(&mut JobOptions)| {
            let mut o = JobOptions::default();
            f(&mut o);
            o.validate().unwrap_err()
        };
        assert!(bad(|o| o.attempts = 0).contains("attempts"));
        assert!(bad(|o| o.priority = 9999).contains("priority"));
        assert!(bad(|o| o.delay_ms = u64::MAX).contains("delay"));
        assert!(
            bad(|o| o.backoff = Backoff::Exponential { delay_ms: 1, max_delay_ms: 0, jitter: 2.0 }).contains("jitter")
        );
        let unknown = serde_json::from_str::<JobOptions>(r#"{"atempts": 3}"#).unwrap_err().to_string();
        assert!(unknown.contains("atempts"), "{unknown}");
    }

    /// What `serialize_changed` writes, read back.
    fn compact_round_trip(o: &JobOptions) -> (String, JobOptions) {
        let mut out = Vec::new();
        o.serialize_changed(&mut serde_json::Serializer::new(&mut out)).unwrap();
        let text = String::from_utf8(out).unwrap();
        let back = serde_json::from_str(&text).unwrap();
        (text, back)
    }

    #[test]
    fn stored_options_leave_out_the_defaults_and_read_back_the_same() {
        assert_eq!(compact_round_trip(&JobOptions::default()), ("{}".to_string(), JobOptions::default()));
        // Each option changed on its own is written, and only it.
        let changes: [fn(&mut JobOptions); 8] = [
            |o| o.delay_ms = 5,
            |o| o.priority = 7,
            |o| o.attempts = 1,
            |o| o.backoff = Backoff::None,
            |o| o.timeout_ms = Some(250),
            |o| o.keep_completed = Keep { count: None, age_ms: Some(1) },
            |o| o.keep_failed = Keep { count: Some(3), age_ms: None },
            |o| o.group = Some("vendor-7".into()),
        ];
        for change in changes {
            let mut o = JobOptions::default();
            change(&mut o);
            let (text, back) = compact_round_trip(&o);
            assert_eq!(back, o, "{text}");
            let fields = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text).unwrap();
            assert_eq!(fields.len(), 1, "only the changed option is written: {text}");
        }
    }
}
