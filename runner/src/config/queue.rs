//! `[queues.NAME]`: how many of a queue's jobs run at once here, and the
//! queue's policy, the defaults its jobs take where their producers set
//! none (attempts, backoff, timeout, priority, retention), its rate limits
//! and where a job's group comes from. Read into the queue crate's
//! `QueuePolicy`, which the daemon writes to Redis at start and on reload.
//!
//! ```toml
//! [queues.emails]
//! concurrency = 20
//! attempts = 5                                   # BullMQ: attempts
//! backoff = { type = "exponential", delay = "1s", max = "1h", jitter = 0.2 }
//! timeout = "10m"
//! priority = 0
//! keep_completed = 100                           # removeOnComplete: 100
//! keep_failed = { count = 500, age = "7d" }      # removeOnFail: { count, age }
//! rate = "20/1m"                                 # limiter: { max: 20, duration: 60000 }
//! group_rate = "5/1s"                            # per vendor, below
//! group_from = "/vendor_id"                      # a JSON pointer into the payload
//! dead_letter = "emails-dead"                    # where jobs whose attempts ran out go
//! ```

use anyhow::{Result, bail};
use jobrunner_bullmq::BullmqSection;
use jobrunner_queue::{Backoff, Keep, QueuePolicy, Rate};
use serde::Deserialize;
use std::time::Duration;

/// Jobs run at once per queue when the config says nothing: enough to keep
/// two cores busy with I/O-bound handlers.
pub const DEFAULT_CONCURRENCY: usize = 10;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSection {
    /// Jobs of this queue run at once in this runner.
    pub concurrency: usize,
    /// Set: the queue is a BullMQ queue that BullMQ producers fill, read
    /// and written through BullMQ's own protocol (see `bull`).
    pub bullmq: Option<BullmqSection>,
    /// The most jobs waiting, delayed or running at once; an enqueue past
    /// it is refused (producers get 429, a plugin's follow-ups fail its
    /// attempt), so that a runaway cannot fill Redis. None: no bound.
    pub max_waiting: Option<u64>,
    /// Attempts a job gets in all.
    pub attempts: Option<u32>,
    /// The delay before each retry.
    pub backoff: Option<BackoffSetting>,
    /// How long one attempt may run; unset, each plugin's own timeout.
    #[serde(with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    /// 0 to 4000, higher first.
    pub priority: Option<u32>,
    /// Completed jobs kept: a count, `{ count, age }`, or `"all"`.
    pub keep_completed: Option<KeepSetting>,
    /// Failed jobs kept, as `keep_completed`.
    pub keep_failed: Option<KeepSetting>,
    /// Jobs started per window over the queue: `"20/1m"`.
    pub rate: Option<String>,
    /// Jobs started per window per group.
    pub group_rate: Option<String>,
    /// A JSON pointer into the payload whose value is the job's group when
    /// its producer gives none: `"/vendor_id"`.
    pub group_from: Option<String>,
    /// The queue a job whose attempts ran out moves to, with its errors,
    /// kept there until retried back or removed.
    pub dead_letter: Option<String>,
}

impl Default for QueueSection {
    fn default() -> Self {
        QueueSection {
            concurrency: DEFAULT_CONCURRENCY,
            bullmq: None,
            max_waiting: None,
            attempts: None,
            backoff: None,
            timeout: None,
            priority: None,
            keep_completed: None,
            keep_failed: None,
            rate: None,
            group_rate: None,
            group_from: None,
            dead_letter: None,
        }
    }
}

/// `backoff = { type = "exponential", delay = "1s", max = "1h", jitter = 0.2 }`,
/// `{ type = "fixed", delay = "30s" }` or `{ type = "none" }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackoffSetting {
    #[serde(rename = "type")]
    pub kind: BackoffKind,
    #[serde(default, with = "humantime_serde::option")]
    pub delay: Option<Duration>,
    /// The longest delay an exponential backoff reaches.
    #[serde(default, with = "humantime_serde::option")]
    pub max: Option<Duration>,
    /// Each delay shortened by up to this share of itself, at random (0 to 1).
    pub jitter: Option<f64>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BackoffKind {
    None,
    Fixed,
    Exponential,
}

/// How many finished jobs to keep: `100`, `{ count = 100, age = "24h" }`
/// (either may be left out: no limit on that side), or `"all"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum KeepSetting {
    Count(u64),
    Word(String),
    Table(KeepTable),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeepTable {
    pub count: Option<u64>,
    #[serde(default, with = "humantime_serde::option")]
    pub age: Option<Duration>,
}

impl KeepSetting {
    pub(crate) fn to_keep(&self) -> Result<Keep, String> {
        match self {
            KeepSetting::Count(n) => Ok(Keep { count: Some(*n), age_ms: None }),
            KeepSetting::Word(w) if w == "all" => Ok(Keep { count: None, age_ms: None }),
            KeepSetting::Word(w) => Err(format!("`{w}`: write a count, {{ count = 100, age = \"24h\" }} or \"all\"")),
            KeepSetting::Table(t) => Ok(Keep { count: t.count, age_ms: t.age.map(|a| a.as_millis() as u64) }),
        }
    }
}

impl BackoffSetting {
    fn to_backoff(&self) -> Result<Backoff, String> {
        let ms = |d: Duration| d.as_millis() as u64;
        match self.kind {
            BackoffKind::None => {
                if self.delay.is_some() || self.max.is_some() || self.jitter.is_some() {
                    return Err("`none` takes no delay, max or jitter".into());
                }
                Ok(Backoff::None)
            }
            BackoffKind::Fixed => {
                if self.max.is_some() || self.jitter.is_some() {
                    return Err("`fixed` takes a delay only (max and jitter are exponential's)".into());
                }
                let delay = self.delay.ok_or("`fixed` needs a delay, as delay = \"30s\"")?;
                Ok(Backoff::Fixed { delay_ms: ms(delay) })
            }
            BackoffKind::Exponential => {
                let delay = self.delay.ok_or("`exponential` needs a base delay, as delay = \"1s\"")?;
                let jitter = self.jitter.unwrap_or(0.0);
                if !(0.0..=1.0).contains(&jitter) {
                    return Err(format!("jitter {jitter} is not from 0 to 1"));
                }
                Ok(Backoff::Exponential { delay_ms: ms(delay), max_delay_ms: self.max.map(ms).unwrap_or(0), jitter })
            }
        }
    }
}

impl QueueSection {
    /// The queue's policy, each wrong value named by its key (without the
    /// `queues.NAME.` in front, which `check_policy` adds).
    pub fn policy(&self) -> Result<QueuePolicy, String> {
        let at = |k: &'static str| move |e: String| format!("{k}: {e}");
        let rate =
            |k: &'static str, r: &Option<String>| r.as_deref().map(str::parse::<Rate>).transpose().map_err(at(k));
        let policy = QueuePolicy {
            attempts: self.attempts,
            backoff: self.backoff.as_ref().map(BackoffSetting::to_backoff).transpose().map_err(at("backoff"))?,
            timeout_ms: self.timeout.map(|t| t.as_millis() as u64),
            priority: self.priority,
            keep_completed: self
                .keep_completed
                .as_ref()
                .map(KeepSetting::to_keep)
                .transpose()
                .map_err(at("keep_completed"))?,
            keep_failed: self.keep_failed.as_ref().map(KeepSetting::to_keep).transpose().map_err(at("keep_failed"))?,
            rate: rate("rate", &self.rate)?,
            group_rate: rate("group_rate", &self.group_rate)?,
            group_from: self.group_from.clone(),
            dead_letter: self.dead_letter.clone(),
        };
        policy.validate()?;
        Ok(policy)
    }

    /// The policy, for a section `check_policy` has passed.
    pub fn policy_or_default(&self) -> QueuePolicy {
        self.policy().unwrap_or_default()
    }

    /// Refuses a wrong value, and on a BullMQ-backed queue a key BullMQ
    /// has no place for, naming it.
    pub fn check_policy(&self, name: &str) -> Result<()> {
        self.policy().map_err(|e| anyhow::anyhow!("queues.{name}.{e}"))?;
        if self.bullmq.is_none() {
            return Ok(());
        }
        let per_job = "BullMQ keeps it on each job, as its producer sets it (the job's options, or the Queue's `defaultJobOptions`); a BullMQ-backed queue has no queue-wide default";
        let refused: [(&str, bool, &str); 7] = [
            (
                "dead_letter",
                self.dead_letter.is_some(),
                "BullMQ keeps a job whose attempts ran out in its failed set; it has no dead-letter queue",
            ),
            ("max_waiting", self.max_waiting.is_some(), "BullMQ has no such bound"),
            ("attempts", self.attempts.is_some(), per_job),
            ("backoff", self.backoff.is_some(), per_job),
            ("priority", self.priority.is_some(), per_job),
            (
                "group_rate",
                self.group_rate.is_some(),
                "per-group rate limits are BullMQ Pro's, not BullMQ's; use a native queue for them",
            ),
            (
                "group_from",
                self.group_from.is_some(),
                "groups are BullMQ Pro's, not BullMQ's; use a native queue for them",
            ),
        ];
        if let Some((key, _, why)) = refused.iter().find(|(_, set, _)| *set) {
            bail!("queues.{name}.{key}: not on a BullMQ-backed queue: {why}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use jobrunner_queue::{Backoff, Keep, Rate};

    fn bad(text: &str) -> String {
        format!("{:#}", Config::parse(text).unwrap_err())
    }

    #[test]
    fn a_queue_policy_reads_as_bullmq_users_write_it() {
        let c = Config::parse(
            r#"
[queues.emails]
attempts = 5
backoff = { type = "exponential", delay = "1s", max = "1h", jitter = 0.2 }
timeout = "10m"
priority = 7
keep_completed = 100
keep_failed = { count = 500, age = "7d" }
rate = "20/1m"
group_rate = "5/1s"
group_from = "/vendor_id"
[queues.reports]
backoff = { type = "fixed", delay = "30s" }
keep_completed = "all"
"#,
        )
        .unwrap();
        let p = c.queue_policy("emails");
        assert_eq!(p.attempts, Some(5));
        assert_eq!(p.backoff, Some(Backoff::Exponential { delay_ms: 1000, max_delay_ms: 3_600_000, jitter: 0.2 }));
        assert_eq!(p.timeout_ms, Some(600_000));
        assert_eq!(p.priority, Some(7));
        assert_eq!(p.keep_completed, Some(Keep { count: Some(100), age_ms: None }));
        assert_eq!(p.keep_failed, Some(Keep { count: Some(500), age_ms: Some(7 * 24 * 3600 * 1000) }));
        assert_eq!(p.rate, Some(Rate { max: 20, window_ms: 60_000 }));
        assert_eq!(p.group_rate, Some(Rate { max: 5, window_ms: 1000 }));
        assert_eq!(p.group_from.as_deref(), Some("/vendor_id"));
        let r = c.queue_policy("reports");
        assert_eq!(r.backoff, Some(Backoff::Fixed { delay_ms: 30_000 }));
        assert_eq!(r.keep_completed, Some(Keep { count: None, age_ms: None }));
        assert_eq!(c.queue_policy("undeclared"), Default::default());
    }

    #[test]
    fn a_wrong_policy_value_is_named_by_its_key() {
        let q = "[queues.m]\n";
        assert!(bad(&format!("{q}attempts = 0\n")).contains("queues.m.attempts"));
        assert!(bad(&format!("{q}rate = \"20 per minute\"\n")).contains("queues.m.rate"));
        assert!(bad(&format!("{q}group_rate = \"0/1s\"\n")).contains("queues.m.group_rate"));
        assert!(bad(&format!("{q}group_from = \"vendor_id\"\n")).contains("queues.m.group_from"));
        assert!(bad(&format!("{q}backoff = {{ type = \"fixed\" }}\n")).contains("queues.m.backoff"));
        assert!(
            bad(&format!("{q}backoff = {{ type = \"exponential\", delay = \"1s\", jitter = 3.0 }}\n"))
                .contains("queues.m.backoff")
        );
        assert!(bad(&format!("{q}backoff = {{ type = \"linear\", delay = \"1s\" }}\n")).contains("linear"));
        assert!(bad(&format!("{q}keep_failed = \"some\"\n")).contains("queues.m.keep_failed"));
        assert!(bad(&format!("{q}priority = 5000\n")).contains("queues.m.priority"));
        assert!(bad(&format!("{q}timout = \"1m\"\n")).contains("timout"));
    }

    #[test]
    fn a_dead_letter_queue_keeps_every_letter_and_is_a_native_other_queue() {
        let c = Config::parse("[queues.orders]\ndead_letter = \"orders-dead\"\n").unwrap();
        assert_eq!(c.queue_policy("orders").dead_letter.as_deref(), Some("orders-dead"));
        assert_eq!(c.queue_policy("orders-dead").keep_failed, Some(Keep { count: None, age_ms: None }));
        assert!(bad("[queues.a]\ndead_letter = \"a\"\n").contains("its own dead-letter queue"));
        assert!(bad("[queues.a]\ndead_letter = \"has space\"\n").contains("queues.a.dead_letter"));
        assert!(
            bad("[queues.a]\ndead_letter = \"b\"\n[queues.b]\nkeep_failed = 10\n").contains("queues.b.keep_failed")
        );
        assert!(bad("[queues.a]\ndead_letter = \"b\"\n[queues.b.bullmq]\n").contains("BullMQ-backed"));
        Config::parse("[queues.a]\ndead_letter = \"b\"\n[queues.b]\nkeep_failed = \"all\"\n").unwrap();
        // Written as a table with neither bound, it keeps all too.
        Config::parse("[queues.a]\ndead_letter = \"b\"\n[queues.b]\nkeep_failed = {}\n").unwrap();
    }

    #[test]
    fn a_bullmq_queue_takes_what_bullmq_has_and_names_what_it_has_not() {
        let b = "[queues.m.bullmq]\n";
        let ok = Config::parse(&format!("[queues.m]\nrate = \"10/1s\"\nkeep_completed = 100\ntimeout = \"1m\"\n{b}"))
            .unwrap();
        assert_eq!(ok.queue_policy("m").rate, Some(Rate { max: 10, window_ms: 1000 }));
        for (key, line) in [
            ("attempts", "attempts = 2"),
            ("backoff", "backoff = { type = \"none\" }"),
            ("priority", "priority = 3"),
            ("group_rate", "group_rate = \"1/1s\""),
            ("group_from", "group_from = \"/a\""),
            ("max_waiting", "max_waiting = 10"),
            ("dead_letter", "dead_letter = \"dlq\""),
        ] {
            let e = bad(&format!("[queues.m]\n{line}\n{b}"));
            assert!(e.contains(&format!("queues.m.{key}: not on a BullMQ-backed queue")), "{e}");
        }
    }
}
