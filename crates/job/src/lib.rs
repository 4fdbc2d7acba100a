//! The version-free values the host passes around: a job going into a
//! plugin, and the report of what happened.

use serde::Serialize;
use std::time::Duration;

pub mod flow;

/// One job, as the host hands it to a plugin.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct JobInput {
    pub id: String,
    pub queue: String,
    pub job_type: String,
    /// JSON text.
    pub payload: String,
    /// 1-based.
    pub attempt: u32,
    pub max_attempts: u32,
    /// Milliseconds since the Unix epoch.
    pub enqueued_at_ms: u64,
    /// For a child in a flow: its parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<flow::JobRef>,
}

/// How one attempt ended.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The handler succeeded, optionally with a JSON output.
    Completed { output: Option<serde_json::Value> },
    /// The handler asked for a retry under the job's backoff policy.
    Retry { message: String },
    /// The handler asked for a retry no sooner than `delay`.
    RetryAfter {
        #[serde(with = "duration_ms")]
        delay: Duration,
        message: String,
    },
    /// The handler gave up: no further attempts.
    Permanent { message: String },
    /// The sandbox stopped the plugin (trap, panic, timeout, limit). Faults
    /// count as failed attempts and are retried while attempts remain.
    Fault(Fault),
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Completed { .. })
    }

    /// A one-line reason for a failed outcome, as stored with the attempt.
    pub fn reason(&self) -> Option<String> {
        match self {
            Outcome::Completed { .. } => None,
            Outcome::Retry { message } => Some(format!("retry: {message}")),
            Outcome::RetryAfter { delay, message } => {
                Some(format!("retry after {}: {message}", humantime::format_duration(*delay)))
            }
            Outcome::Permanent { message } => Some(format!("permanent: {message}")),
            Outcome::Fault(f) => Some(f.to_string()),
        }
    }
}

/// What kind of fault stopped a plugin.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Ran past its wall-clock timeout.
    Timeout,
    /// Tried to grow its memory past the cap.
    MemoryLimit,
    /// Overflowed the wasm stack.
    StackOverflow,
    /// The guest panicked (for Rust, `panic!`; the panic message is kept).
    Panic,
    /// Any other trap (unreachable, out-of-bounds access, ...).
    Trap,
    /// The component could not be instantiated for this job.
    Instantiation,
    /// The guest returned something the contract does not allow.
    InvalidOutput,
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FaultKind::Timeout => "timeout",
            FaultKind::MemoryLimit => "memory limit exceeded",
            FaultKind::StackOverflow => "stack overflow",
            FaultKind::Panic => "panic",
            FaultKind::Trap => "trap",
            FaultKind::Instantiation => "instantiation failed",
            FaultKind::InvalidOutput => "invalid output",
        })
    }
}

/// A fault with what a person needs to act on it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub message: String,
    /// The wasm backtrace with function names, when there is one.
    pub backtrace: Option<String>,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// The plugin's `log.write` calls.
    Plugin,
    Stdout,
    Stderr,
    /// The host, about the job (HTTP requests, denials, truncation).
    Host,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogLine {
    /// Milliseconds since the attempt started.
    pub at_ms: u64,
    pub level: LogLevel,
    pub source: LogSource,
    pub message: String,
}

/// A follow-up job the plugin asked for. Follow-ups are enqueued only when
/// the attempt succeeds, so a retried attempt does not fan out twice.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FollowUp {
    pub id: String,
    pub queue: String,
    pub job_type: String,
    pub payload: serde_json::Value,
    pub delay_ms: Option<u64>,
    pub priority: Option<u32>,
    pub max_attempts: Option<u32>,
    /// Its fairness and rate-limit group (contract 0.2 on).
    pub group: Option<String>,
    /// Whether the plugin chose the id (for de-duplication).
    pub explicit_id: bool,
}

/// An email the plugin sent through the host, as delivered.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SentEmail {
    pub message_id: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    /// Where it went: an `.eml` path in the outbox, or `smtp://host:port`.
    pub delivered_to: String,
}

/// Everything one attempt produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    pub log: Vec<LogLine>,
    pub log_truncated: bool,
    pub progress: Option<u8>,
    pub follow_ups: Vec<FollowUp>,
    /// Flows the plugin asked for (contract 0.2 on), enqueued as follow-ups are.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flows: Vec<flow::FlowFollowUp>,
    pub emails: Vec<SentEmail>,
    #[serde(with = "duration_ms")]
    pub duration: Duration,
    /// Time spent instantiating the component for this job.
    #[serde(with = "duration_ms")]
    pub instantiate: Duration,
    /// Which job of its instance this was: 1 for a fresh instance (always,
    /// under the default `isolation = "job"`); 2 or more for an instance
    /// reused under `isolation = "instance"`.
    pub instance_job: u32,
    /// The largest its linear memory grew to, in bytes: the instance's
    /// peak, so a reused instance's includes its earlier jobs'.
    pub memory_peak: u64,
}

/// Durations as whole milliseconds in JSON, which every language reads.
mod duration_ms {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }
}

/// The largest payload a job may carry. Payloads are data for a handler,
/// not files: larger ones belong in object storage, referenced by URL.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// Queue names go into Redis keys inside a hash tag, and into URLs: a plain
/// alphabet keeps both unambiguous.
pub fn check_queue_name(name: &str) -> Result<(), String> {
    check_name("queue name", name, 128, |c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// Job types name plugins' handlers.
pub fn check_job_type(name: &str) -> Result<(), String> {
    check_name("job type", name, 128, |c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
}

/// Job ids are chosen by producers for de-duplication: printable ASCII
/// without spaces or braces (braces would break Redis Cluster hash tags).
pub fn check_job_id(id: &str) -> Result<(), String> {
    check_name("job id", id, 256, |c| c.is_ascii_graphic() && c != '{' && c != '}')
}

fn check_name(what: &str, name: &str, max: usize, ok: impl Fn(char) -> bool) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if name.len() > max {
        return Err(format!("{what} is longer than {max} characters"));
    }
    if let Some(bad) = name.chars().find(|c| !ok(*c)) {
        return Err(format!(
            "{what} `{}` contains `{}`, which is not allowed",
            name.escape_default(),
            bad.escape_default()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_queue_name("emails.high-1").is_ok());
        assert!(check_queue_name("").unwrap_err().contains("empty"));
        assert!(check_queue_name("a{b}").unwrap_err().contains("`{`"));
        assert!(check_queue_name("a b").is_err());
        assert!(check_queue_name(&"x".repeat(129)).is_err());
        assert!(check_job_type("email").is_ok());
        assert!(check_job_id("reminder:c1:step:2").is_ok());
        assert!(check_job_id("a\nb").is_err());
    }

    #[test]
    fn reasons_read_well() {
        let o = Outcome::RetryAfter { delay: Duration::from_secs(90), message: "busy".into() };
        assert_eq!(o.reason().unwrap(), "retry after 1m 30s: busy");
        assert_eq!(Outcome::Completed { output: None }.reason(), None);
    }
}
