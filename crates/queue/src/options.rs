//! What a producer may ask of a job: delay, priority, attempts, backoff,
//! timeout, retention, group. Checked before anything is written, with each
//! problem named, since a bad option is the producer's mistake. Stored in
//! a job's spec as only what the producer set: the rest comes from the
//! queue's policy (`policy.rs`) or the built-in `DEFAULTS`.

use serde::{Deserialize, Serialize};
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
        DEFAULTS.backoff
    }
}

/// How many finished jobs to keep, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    pub count: Option<u64>,
    pub age_ms: Option<u64>,
}

/// What a producer asked of one job. An option left unset (`None`) takes
/// the queue's policy (`[queues.NAME]` in the runner's config, kept in the
/// queue's `meta`; see `policy.rs`) and, where that is silent, the built-in
/// default (`DEFAULTS`). A job stores only the options its producer set,
/// so an option set to the built-in value still overrides the queue's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobOptions {
    /// Run no sooner than this many milliseconds after enqueueing.
    #[serde(skip_serializing_if = "is_zero")]
    pub delay_ms: u64,
    /// 0 to 4000; higher runs first. Jobs of equal priority run in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Attempts allowed in all (at least 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// The job's own timeout; none uses the queue's, else the plugin's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_completed: Option<Keep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_failed: Option<Keep>,
    /// A fairness and rate-limit group (for example a vendor id): jobs are
    /// handed out fairly between groups, and a per-group rate limit applies.
    /// Unset, a queue with a `group_from` reads it from the payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The built-in defaults of the options a queue's policy may set: what a
/// job gets when neither its producer nor its queue says. The scripts get
/// them as JSON (`scripts.rs`, `DEFAULT_OPTS`), so Lua and Rust agree.
#[derive(Debug, Serialize)]
pub struct Defaults {
    pub priority: u32,
    pub attempts: u32,
    pub backoff: Backoff,
    pub keep_completed: Keep,
    pub keep_failed: Keep,
}

pub const DEFAULTS: Defaults = Defaults {
    priority: 0,
    attempts: 3,
    backoff: Backoff::Exponential { delay_ms: 1000, max_delay_ms: 3_600_000, jitter: 0.2 },
    keep_completed: DEFAULT_KEEP_COMPLETED,
    keep_failed: DEFAULT_KEEP_FAILED,
};

impl JobOptions {
    /// A job that starts now, with no priority or group of its producer's:
    /// the scripts' short layout (`enqueue.lua`) and, for one new job, the
    /// lean `push` (which hands the job back to `enqueue` when the queue's
    /// policy gives it a priority or a group).
    pub(crate) fn starts_now_in_line(&self) -> bool {
        self.delay_ms == 0 && self.priority.is_none() && self.group.is_none()
    }

    /// Checks every option, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(a) = self.attempts {
            check_attempts(a)?;
        }
        if let Some(p) = self.priority {
            check_priority(p)?;
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
        if let Some(b) = &self.backoff {
            check_backoff(b)?;
        }
        Ok(())
    }
}

pub(crate) fn check_attempts(a: u32) -> Result<(), String> {
    if a == 0 {
        return Err("attempts must be at least 1".into());
    }
    if a > MAX_ATTEMPTS {
        return Err(format!("attempts must be at most {MAX_ATTEMPTS}"));
    }
    Ok(())
}

pub(crate) fn check_priority(p: u32) -> Result<(), String> {
    if p > MAX_PRIORITY {
        return Err(format!("priority must be from 0 to {MAX_PRIORITY}"));
    }
    Ok(())
}

pub(crate) fn check_backoff(b: &Backoff) -> Result<(), String> {
    if let Backoff::Exponential { jitter, .. } = *b
        && !(0.0..=1.0).contains(&jitter)
    {
        return Err("backoff jitter must be from 0 to 1".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounded() {
        assert!(JobOptions::default().validate().is_ok());
        assert!(DEFAULTS.keep_completed.count.is_some() && DEFAULTS.keep_failed.count.is_some());
    }

    #[test]
    fn bad_options_are_named() {
        let bad = |f: fn(&mut JobOptions)| {
            let mut o = JobOptions::default();
            f(&mut o);
            o.validate().unwrap_err()
        };
        assert!(bad(|o| o.attempts = Some(0)).contains("attempts"));
        assert!(bad(|o| o.priority = Some(9999)).contains("priority"));
        assert!(bad(|o| o.delay_ms = u64::MAX).contains("delay"));
        assert!(
            bad(|o| o.backoff = Some(Backoff::Exponential { delay_ms: 1, max_delay_ms: 0, jitter: 2.0 }))
                .contains("jitter")
        );
        let unknown = serde_json::from_str::<JobOptions>(r#"{"atempts": 3}"#).unwrap_err().to_string();
        assert!(unknown.contains("atempts"), "{unknown}");
    }

    #[test]
    fn stored_options_are_what_the_producer_set_and_read_back_the_same() {
        let text = serde_json::to_string(&JobOptions::default()).unwrap();
        assert_eq!(text, "{}");
        // Each option set on its own is written, and only it: set to the
        // built-in value too, since it then overrides the queue's policy.
        let changes: [fn(&mut JobOptions); 8] = [
            |o| o.delay_ms = 5,
            |o| o.priority = Some(0),
            |o| o.attempts = Some(DEFAULTS.attempts),
            |o| o.backoff = Some(Backoff::None),
            |o| o.timeout_ms = Some(250),
            |o| o.keep_completed = Some(Keep { count: None, age_ms: Some(1) }),
            |o| o.keep_failed = Some(Keep { count: Some(3), age_ms: None }),
            |o| o.group = Some("vendor-7".into()),
        ];
        for change in changes {
            let mut o = JobOptions::default();
            change(&mut o);
            let text = serde_json::to_string(&o).unwrap();
            let back: JobOptions = serde_json::from_str(&text).unwrap();
            assert_eq!(back, o, "{text}");
            let fields = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text).unwrap();
            assert_eq!(fields.len(), 1, "only the option set is written: {text}");
        }
    }
}
