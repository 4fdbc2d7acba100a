//! `[queues.NAME.bullmq]`: how the operator declares a BullMQ-backed queue.

use serde::Deserialize;
use std::collections::BTreeMap;

/// A queue kept in BullMQ's format, so that apps enqueueing with BullMQ
/// (and Bull Board) keep working while its jobs run in plugins.
///
/// ```toml
/// [queues.mail]                # the runner's name for it
/// concurrency = 20
/// [queues.mail.bullmq]
/// prefix = "bull"              # BullMQ's `prefix` option; `{bull}` on a cluster
/// name = "emails"              # the BullMQ queue's name; the runner's by default
/// [queues.mail.bullmq.types]   # BullMQ job name → plugin job type
/// send-email = "email"
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BullmqSection {
    #[serde(default = "default_bullmq_prefix")]
    pub prefix: String,
    /// The queue's name in BullMQ (`new Queue(name)`); the runner's by default.
    pub name: Option<String>,
    /// A BullMQ job's name selects the plugin's job type: through this table
    /// when the name is in it, else the name itself.
    #[serde(default)]
    pub types: BTreeMap<String, String>,
    /// A job started more times than this (stalls, waits asked for with
    /// retry-after) fails for good; unset, no limit, as in BullMQ.
    pub max_started_attempts: Option<u32>,
    /// Record BullMQ's per-minute metrics (Bull Board's and the dashboard's
    /// throughput charts); about two Redis commands more per job.
    #[serde(default = "default_true")]
    pub metrics: bool,
}

impl BullmqSection {
    /// The plugin job type for a BullMQ job name: through `types` when the
    /// name is in it, else the name itself.
    pub fn job_type<'a>(&'a self, job_name: &'a str) -> &'a str {
        self.types.get(job_name).map(String::as_str).unwrap_or(job_name)
    }

    /// The BullMQ job name for a plugin job type: the first name mapped to
    /// it, else the type itself (so that what the runner enqueues reads as
    /// the producers' own jobs).
    pub fn job_name<'a>(&'a self, job_type: &'a str) -> &'a str {
        self.types.iter().find(|(_, t)| t.as_str() == job_type).map(|(n, _)| n.as_str()).unwrap_or(job_type)
    }
}

fn default_bullmq_prefix() -> String {
    "bull".into()
}

fn default_true() -> bool {
    true
}
