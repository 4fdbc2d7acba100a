//! What the queue says about jobs: their states, counts, one job in full,
//! and a job handed to a worker under a lease.

use crate::options::JobOptions;
use crate::policy::EffectiveOptions;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Waiting,
    Delayed,
    Active,
    Completed,
    Failed,
    /// A flow's parent waiting for its children (`flow.rs`).
    WaitingChildren,
}

impl State {
    pub const ALL: [State; 6] =
        [State::Waiting, State::Delayed, State::Active, State::Completed, State::Failed, State::WaitingChildren];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Delayed => "delayed",
            State::Active => "active",
            State::Completed => "completed",
            State::Failed => "failed",
            State::WaitingChildren => "waiting_children",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub(crate) fn key_name(self) -> &'static str {
        match self {
            State::Waiting => "wait",
            other => other.as_str(),
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is stored for a job when it is enqueued; it never changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    #[serde(rename = "type")]
    pub job_type: String,
    pub payload: Box<serde_json::value::RawValue>,
    /// Stored as only what its producer set (`{}` when nothing: a runner
    /// from before this change reads `{}`, but not a spec without `opts`).
    #[serde(default)]
    pub opts: JobOptions,
    /// Milliseconds since the epoch, by the producer's clock.
    pub created_at: u64,
    /// Set on a dead letter: where it failed for good (`dead_letter.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetter>,
    /// Set on a flow's child: its parent (`flow.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
}

/// A flow's parent, as its child names it: its queue and id.
pub type ParentRef = jobrunner_job::flow::JobRef;

/// Where a dead letter came from: its queue, its id there, and when it
/// failed for good (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub queue: String,
    pub id: String,
    pub failed_at: u64,
}

/// Jobs per state, and whether the queue is paused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub waiting: u64,
    pub delayed: u64,
    pub active: u64,
    pub completed: u64,
    pub failed: u64,
    /// Parents of flows waiting for their children.
    pub waiting_children: u64,
    pub paused: bool,
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    pub attempt: u32,
    /// Milliseconds since the epoch.
    pub at: u64,
    /// `retry`, `retry_after`, `permanent` or `stalled`; for a BullMQ-backed
    /// queue's job, `failed` or `retry` (BullMQ keeps only the last reason).
    pub kind: String,
    pub error: String,
    /// When the attempt started (ms since the epoch) and the runner it ran
    /// on, when the runner said (not for a stall, nor from older runners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
}

/// The attempt that completed a job: when it started and where it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Milliseconds since the epoch.
    pub started: u64,
    /// The runner's id (`host:pid`); empty when not known (a BullMQ job).
    pub runner: String,
}

impl Run {
    /// Reads `STARTED_MS RUNNER`, as `runs` keeps it.
    pub fn parse(s: &str) -> Option<Run> {
        let (started, runner) = s.split_once(' ')?;
        Some(Run { started: started.parse().ok()?, runner: runner.to_string() })
    }
}

/// Everything known about one job.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    pub id: String,
    pub queue: String,
    pub state: State,
    #[serde(rename = "type")]
    pub job_type: String,
    pub payload: serde_json::Value,
    /// What its producer set.
    pub options: JobOptions,
    /// Every option in effect, with who set it (producer, config, default);
    /// none for a BullMQ-backed queue's job, whose options are BullMQ's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<EffectiveOptions>,
    pub attempts_made: u32,
    pub created_at: u64,
    /// For delayed jobs, when they run; for active ones, when the lease
    /// ends; for finished ones, when they finished (ms since the epoch).
    pub state_since_or_until: Option<u64>,
    pub progress: Option<u8>,
    /// The handler's output (completed), or `{failed_reason, attempts}` (failed).
    pub result: Option<serde_json::Value>,
    pub errors: Vec<AttemptError>,
    pub log: Option<serde_json::Value>,
    /// The attempt that completed it (completed jobs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    pub stalls: u32,
    /// For a dead letter: the queue it failed in, and its id there; a retry
    /// sends it back to that queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetter>,
    /// For a flow's child: its parent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
    /// For a flow's parent: its children, counted by outcome (the
    /// children themselves are read a page at a time: `Queue::children`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children: Option<crate::flow::ChildCounts>,
    /// For a job of a BullMQ-backed queue: what BullMQ keeps that the
    /// record has no place for (its job name, raw options, attempts started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bullmq: Option<serde_json::Value>,
}

impl JobRecord {
    /// The attempts the job is allowed: as it, its queue or the default
    /// says (for a BullMQ job, as its options say).
    pub fn attempts_allowed(&self) -> u32 {
        match &self.effective {
            Some(e) => e.attempts.value,
            None => self.options.attempts.unwrap_or(crate::options::DEFAULTS.attempts),
        }
    }
}

/// A job handed to a worker. The token proves the lease: completing or
/// failing the job needs it, and it changes when the job is handed out again.
#[derive(Debug, Clone)]
pub struct Leased {
    pub id: String,
    pub token: String,
    /// 1-based.
    pub attempt: u32,
    pub spec: Spec,
}
