//! A queue's policy: the defaults its jobs take where their producers set
//! nothing (attempts, backoff, timeout, priority, retention), its rate
//! limits, and where a job's group comes from. The runner writes it from
//! `[queues.NAME]` in its config, at start and on reload; it lives in the
//! queue's `meta` hash, so that the scripts apply it to every producer's
//! jobs alike (the Rust client's, another language's, the API's).
//!
//! Which value wins, per option: the job's own (its producer set it), then
//! the queue's policy, then the built-in default (`options::DEFAULTS`).
//! Where each applies:
//! - priority and group: when the job is enqueued (`enqueue.lua`, which
//!   reads the payload at `group_from`); a job keeps them;
//! - attempts, backoff and failed-job retention: when an attempt fails
//!   (`retry_or_fail`), from the policy as it is then;
//! - timeout and completed-job retention: in the runner, which has the
//!   policy from its own config.

use crate::options::{self, Backoff, DEFAULTS, JobOptions, Keep};
use crate::queue::{Queue, arg};
use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// At most `max` jobs started per `window_ms`: `"20/1m"` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub max: u64,
    pub window_ms: u64,
}

impl FromStr for Rate {
    type Err = String;

    /// `MAX/WINDOW`, the window a duration (`1m`, `30s`, `1h`; a bare unit
    /// is one of it: `20/m`).
    fn from_str(s: &str) -> Result<Rate, String> {
        let wrong = || format!("`{s}` is not a rate: write jobs per window, as \"20/1m\", \"5/1s\" or \"1000/1h\"");
        let (max, window) = s.split_once('/').ok_or_else(wrong)?;
        let max: u64 = max.trim().parse().map_err(|_| wrong())?;
        let window = window.trim();
        let window =
            if window.starts_with(|c: char| c.is_ascii_digit()) { window.to_string() } else { format!("1{window}") };
        let window = humantime::parse_duration(&window).map_err(|_| wrong())?;
        if max == 0 {
            return Err(format!("`{s}`: a rate allows at least one job per window"));
        }
        if window < Duration::from_millis(1) {
            return Err(format!("`{s}`: a rate's window is at least a millisecond"));
        }
        Ok(Rate { max, window_ms: window.as_millis() as u64 })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.max, humantime::format_duration(Duration::from_millis(self.window_ms)))
    }
}

/// What a queue's operator set; unset, the built-in default applies. Stored
/// as JSON in the queue's `meta` (`policy`), with the job options under the
/// names a job's spec gives them, which is how the scripts read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueuePolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_completed: Option<Keep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_failed: Option<Keep>,
    /// Jobs started per window, over the whole queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Jobs started per window, per group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_rate: Option<Rate>,
    /// A JSON pointer (RFC 6901) into the payload: a job whose producer
    /// set no group takes the string or number there as its group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_from: Option<String>,
    /// The queue a job whose attempts ran out moves to (`dead_letter.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
}

impl QueuePolicy {
    /// Checks every value, naming the first that is wrong by its key.
    pub fn validate(&self) -> Result<(), String> {
        let key = |k: &'static str| move |e: String| format!("{k}: {e}");
        if let Some(a) = self.attempts {
            options::check_attempts(a).map_err(key("attempts"))?;
        }
        if let Some(p) = self.priority {
            options::check_priority(p).map_err(key("priority"))?;
        }
        if let Some(b) = &self.backoff {
            options::check_backoff(b).map_err(key("backoff"))?;
        }
        if self.timeout_ms == Some(0) {
            return Err("timeout: must be more than zero".into());
        }
        if let Some(p) = &self.group_from {
            check_pointer(p).map_err(key("group_from"))?;
        }
        if let Some(q) = &self.dead_letter {
            jobrunner_job::check_queue_name(q).map_err(key("dead_letter"))?;
        }
        Ok(())
    }

    /// A job's timeout: its own, else the queue's; none leaves the plugin's.
    pub fn timeout_for(&self, job: &JobOptions) -> Option<Duration> {
        job.timeout_ms.or(self.timeout_ms).map(Duration::from_millis)
    }

    /// How many completed jobs to keep, as the job, its queue or the
    /// default says.
    pub fn keep_completed_for(&self, job: &JobOptions) -> Keep {
        job.keep_completed.or(self.keep_completed).unwrap_or(DEFAULTS.keep_completed)
    }

    /// Attempts a job is allowed, as the job, its queue or the default says.
    pub fn attempts_for(&self, job: &JobOptions) -> u32 {
        job.attempts.or(self.attempts).unwrap_or(DEFAULTS.attempts)
    }

    /// Every value with where it came from: the queue's view.
    pub fn effective(&self) -> EffectivePolicy {
        // A job that sets nothing takes exactly the queue's values.
        let EffectiveOptions { attempts, backoff, timeout_ms, priority, keep_completed, keep_failed, group: _ } =
            self.effective_for(&JobOptions::default(), None);
        EffectivePolicy {
            attempts,
            backoff,
            timeout_ms,
            priority,
            keep_completed,
            keep_failed,
            rate: pick_optional(None, self.rate),
            group_rate: pick_optional(None, self.group_rate),
            group_from: pick_optional(None, self.group_from.clone()),
            dead_letter: pick_optional(None, self.dead_letter.clone()),
        }
    }

    /// A job's options with where each came from. `group` is the group the
    /// job was given when enqueued (its own, or read at `group_from`).
    pub fn effective_for(&self, job: &JobOptions, group: Option<&str>) -> EffectiveOptions {
        EffectiveOptions {
            attempts: pick(job.attempts, self.attempts, DEFAULTS.attempts),
            backoff: pick(job.backoff, self.backoff, DEFAULTS.backoff),
            timeout_ms: pick_optional(job.timeout_ms, self.timeout_ms),
            priority: pick(job.priority, self.priority, DEFAULTS.priority),
            keep_completed: pick(job.keep_completed, self.keep_completed, DEFAULTS.keep_completed),
            keep_failed: pick(job.keep_failed, self.keep_failed, DEFAULTS.keep_failed),
            group: match (&job.group, group) {
                (Some(g), _) => Sourced { value: Some(g.clone()), source: Source::Producer },
                (None, Some(g)) => Sourced { value: Some(g.to_string()), source: Source::Config },
                (None, None) => Sourced { value: None, source: Source::Default },
            },
        }
    }
}

/// A JSON pointer into a payload: empty (the whole payload, never a group)
/// is refused, as is one not starting with `/`.
fn check_pointer(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!(
            "`{p}` is not a JSON pointer into the payload: write it as \"/vendor_id\" or \"/order/vendor\""
        ));
    }
    if p.split('/').skip(1).any(|part| part.replace("~0", "").replace("~1", "").contains('~')) {
        return Err(format!("`{p}`: in a JSON pointer, `~` is written `~0` and `/` inside a name `~1`"));
    }
    Ok(())
}

/// Who set a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The built-in default.
    Default,
    /// The queue's policy (`[queues.NAME]` in the runner's config).
    Config,
    /// The job's producer.
    Producer,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::Config => "config",
            Source::Producer => "producer",
        })
    }
}

/// A value and who set it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

fn pick<T>(job: Option<T>, queue: Option<T>, default: T) -> Sourced<T> {
    match (job, queue) {
        (Some(v), _) => Sourced { value: v, source: Source::Producer },
        (None, Some(v)) => Sourced { value: v, source: Source::Config },
        (None, None) => Sourced { value: default, source: Source::Default },
    }
}

/// As `pick`, for a value whose default is none.
fn pick_optional<T>(job: Option<T>, queue: Option<T>) -> Sourced<Option<T>> {
    pick(job.map(Some), queue.map(Some), None)
}

/// A queue's policy in effect, with each value's source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectivePolicy {
    pub attempts: Sourced<u32>,
    pub backoff: Sourced<Backoff>,
    /// None: each plugin's own timeout.
    pub timeout_ms: Sourced<Option<u64>>,
    pub priority: Sourced<u32>,
    pub keep_completed: Sourced<Keep>,
    pub keep_failed: Sourced<Keep>,
    pub rate: Sourced<Option<Rate>>,
    pub group_rate: Sourced<Option<Rate>>,
    pub group_from: Sourced<Option<String>>,
    pub dead_letter: Sourced<Option<String>>,
}

/// One job's options in effect, with each value's source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectiveOptions {
    pub attempts: Sourced<u32>,
    pub backoff: Sourced<Backoff>,
    pub timeout_ms: Sourced<Option<u64>>,
    pub priority: Sourced<u32>,
    pub keep_completed: Sourced<Keep>,
    pub keep_failed: Sourced<Keep>,
    pub group: Sourced<Option<String>>,
}

impl EffectivePolicy {
    /// Each value as a person reads it, with its key (as the config writes
    /// it) and source: what `runner queues` and the dashboard show.
    pub fn describe(&self) -> Vec<(&'static str, String, Source)> {
        let p = self;
        let ms = |ms: u64| humantime::format_duration(Duration::from_millis(ms)).to_string();
        let keep = |k: &Keep| match (k.count, k.age_ms) {
            (None, None) => "all".to_string(),
            (Some(c), None) => format!("{c} jobs"),
            (None, Some(a)) => format!("for {}", ms(a)),
            (Some(c), Some(a)) => format!("{c} jobs, for {}", ms(a)),
        };
        let backoff = match p.backoff.value {
            Backoff::None => "none".to_string(),
            Backoff::Fixed { delay_ms } => format!("fixed {}", ms(delay_ms)),
            Backoff::Exponential { delay_ms, max_delay_ms, jitter } => {
                let cap = if max_delay_ms > 0 { format!(", at most {}", ms(max_delay_ms)) } else { String::new() };
                format!("exponential from {}{cap}, jitter {jitter}", ms(delay_ms))
            }
        };
        let or_none = |v: Option<String>, none: &str| v.unwrap_or_else(|| none.to_string());
        vec![
            ("attempts", p.attempts.value.to_string(), p.attempts.source),
            ("backoff", backoff, p.backoff.source),
            ("timeout", or_none(p.timeout_ms.value.map(ms), "each plugin's own"), p.timeout_ms.source),
            ("priority", p.priority.value.to_string(), p.priority.source),
            ("keep_completed", keep(&p.keep_completed.value), p.keep_completed.source),
            ("keep_failed", keep(&p.keep_failed.value), p.keep_failed.source),
            ("rate", or_none(p.rate.value.map(|r| r.to_string()), "no limit"), p.rate.source),
            ("group_rate", or_none(p.group_rate.value.map(|r| r.to_string()), "no limit"), p.group_rate.source),
            ("group_from", or_none(p.group_from.value.clone(), "the producer's group"), p.group_from.source),
            ("dead_letter", or_none(p.dead_letter.value.clone(), "none: failed jobs stay here"), p.dead_letter.source),
        ]
    }
}

impl Queue {
    /// Replaces the queue's policy, rate limits included, in one script
    /// call: a value the policy leaves unset goes back to its default (a
    /// rate limit set before by `set_rate_limit` goes too).
    pub async fn set_policy(&self, policy: &QueuePolicy) -> Result<()> {
        policy.validate().map_err(|e| anyhow!("queue `{}`: {e}", self.name()))?;
        let rate = policy.rate.map(|r| (r.max, r.window_ms)).unwrap_or((0, 1));
        let group_rate = policy.group_rate.map(|r| (r.max, r.window_ms)).unwrap_or((0, 1));
        let extra = [
            serde_json::to_vec(policy)?,
            arg(policy.priority.unwrap_or(0)),
            arg(policy.group_from.as_deref().unwrap_or("")),
            arg(rate.0),
            arg(rate.1),
            arg(group_rate.0),
            arg(group_rate.1),
        ];
        self.admin::<String>("policy", &extra).await.map(drop)
    }

    /// The queue's policy as the runners last wrote it (empty: all defaults).
    pub async fn policy(&self) -> Result<QueuePolicy> {
        let json: Option<String> = self
            .inner
            .conn
            .query(redis::cmd("HGET").arg(self.inner.keys.get("meta")).arg("policy"))
            .await
            .with_context(|| format!("read the policy of queue {}", self.name()))?;
        match json {
            None => Ok(QueuePolicy::default()),
            Some(j) => {
                serde_json::from_str(&j).with_context(|| format!("the policy of queue {} is unreadable", self.name()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_operators_write_them() {
        assert_eq!("20/1m".parse::<Rate>().unwrap(), Rate { max: 20, window_ms: 60_000 });
        assert_eq!("20/m".parse::<Rate>().unwrap(), Rate { max: 20, window_ms: 60_000 });
        assert_eq!(" 5 / 250ms ".parse::<Rate>().unwrap(), Rate { max: 5, window_ms: 250 });
        assert_eq!("1000/1h".parse::<Rate>().unwrap().to_string(), "1000/1h");
        for bad in ["20", "0/1m", "x/1m", "20/soon", "20/0s", ""] {
            let e = bad.parse::<Rate>().unwrap_err();
            assert!(e.contains(bad.trim()), "{bad}: {e}");
        }
    }

    #[test]
    fn the_job_wins_then_the_queue_then_the_default() {
        let policy = QueuePolicy { attempts: Some(5), timeout_ms: Some(600_000), ..Default::default() };
        let job = JobOptions { attempts: Some(DEFAULTS.attempts), ..Default::default() };
        let e = policy.effective_for(&job, Some("vendor-1"));
        assert_eq!(e.attempts, Sourced { value: DEFAULTS.attempts, source: Source::Producer });
        assert_eq!(e.timeout_ms, Sourced { value: Some(600_000), source: Source::Config });
        assert_eq!(e.priority, Sourced { value: 0, source: Source::Default });
        assert_eq!(e.group.source, Source::Config);
        assert_eq!(policy.attempts_for(&JobOptions::default()), 5);
        assert_eq!(policy.timeout_for(&JobOptions::default()), Some(Duration::from_secs(600)));
        assert_eq!(policy.keep_completed_for(&JobOptions::default()), DEFAULTS.keep_completed);
        assert_eq!(QueuePolicy::default().effective().attempts.source, Source::Default);
    }

    #[test]
    fn bad_values_are_named_by_their_key() {
        let bad = |p: QueuePolicy| p.validate().unwrap_err();
        assert!(bad(QueuePolicy { attempts: Some(0), ..Default::default() }).starts_with("attempts:"));
        assert!(bad(QueuePolicy { priority: Some(5000), ..Default::default() }).starts_with("priority:"));
        assert!(bad(QueuePolicy { timeout_ms: Some(0), ..Default::default() }).starts_with("timeout:"));
        assert!(
            bad(QueuePolicy { group_from: Some("vendor".into()), ..Default::default() }).starts_with("group_from:")
        );
        assert!(bad(QueuePolicy { group_from: Some("/a~2".into()), ..Default::default() }).starts_with("group_from:"));
        assert!(QueuePolicy { group_from: Some("/a~1b/0".into()), ..Default::default() }.validate().is_ok());
    }
}
