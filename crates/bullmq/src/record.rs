//! Between BullMQ's job and the runner's: a BullMQ job read as a
//! `JobRecord`, and the runner's job options written as BullMQ's.
//!
//! The runner's record has no place for everything BullMQ keeps (its raw
//! options, `attemptsStarted`, when it was processed), so those travel in
//! the record's `bullmq` field, as BullMQ names them.

use crate::section::BullmqSection;
use anyhow::Result;
use bullmq::types::{BackoffStrategy, KeepJobs, RemoveOnFinish};
use bullmq::{Job, JobProgress};
use jobrunner_queue::options::{Backoff, Keep, MAX_PRIORITY};
use jobrunner_queue::{AttemptError, DEFAULTS, JobOptions, JobRecord, QueuePolicy, Run, State};
use serde_json::{Value, json};

/// The runner's priority (0 to 4000, higher first) as BullMQ's (0: none;
/// else 1 first, larger later), and back.
pub fn to_bull_priority(priority: u32) -> u32 {
    if priority == 0 { 0 } else { MAX_PRIORITY + 1 - priority.min(MAX_PRIORITY) }
}

pub fn from_bull_priority(priority: u32) -> u32 {
    if priority == 0 { 0 } else { (MAX_PRIORITY + 1).saturating_sub(priority).max(1) }
}

pub fn keep(k: &Keep) -> RemoveOnFinish {
    match (k.count, k.age_ms) {
        (None, None) => RemoveOnFinish::Bool(false),
        (count, age_ms) => RemoveOnFinish::Options(KeepJobs {
            // BullMQ's ages are in seconds (its scripts multiply by 1000).
            age: age_ms.map(|ms| ms.div_ceil(1000)),
            count: count.map(|c| c as usize),
            limit: None,
        }),
    }
}

/// The runner's options for a new job, as BullMQ's. BullMQ has no jitter,
/// cap or per-job timeout: an exponential backoff keeps only its base delay.
/// What the job leaves unset is the runner's default, and its retention the
/// queue's (`policy`) where the config sets one, written on the job as
/// BullMQ producers would.
pub fn to_bull_options(id: &Option<String>, o: &JobOptions, policy: &QueuePolicy) -> Result<bullmq::JobOptions> {
    let mut b = bullmq::JobOptions::new();
    if o.delay_ms > 0 {
        b.delay = Some(o.delay_ms);
    }
    if let Some(p) = o.priority.filter(|p| *p > 0) {
        b.priority = Some(to_bull_priority(p));
    }
    b.attempts = Some(o.attempts.unwrap_or(DEFAULTS.attempts));
    b.backoff = match o.backoff.unwrap_or(DEFAULTS.backoff) {
        Backoff::None => None,
        Backoff::Fixed { delay_ms } => Some(BackoffStrategy::Fixed(delay_ms)),
        Backoff::Exponential { delay_ms, .. } => Some(BackoffStrategy::Exponential(delay_ms)),
    };
    b.remove_on_complete = Some(keep(&o.keep_completed.or(policy.keep_completed).unwrap_or(DEFAULTS.keep_completed)));
    b.remove_on_fail = Some(keep(&o.keep_failed.or(policy.keep_failed).unwrap_or(DEFAULTS.keep_failed)));
    if let Some(id) = id {
        // BullMQ refuses ids that are integers (they would meet its own
        // counter's) and ids with `:` (its keys are `prefix:queue:id`).
        if id.parse::<u64>().is_ok() || id.contains(':') {
            anyhow::bail!("job id `{id}`: a BullMQ job id may not be an integer or contain `:`");
        }
        b.job_id = Some(id.clone());
    }
    Ok(b)
}

fn parse_or_text(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// A BullMQ job as the runner's record. `log` is read only for one job.
/// Where a job lives: the runner's name for its queue, BullMQ's, and the
/// declaration (prefix, job-name mapping).
pub struct Place<'a> {
    pub name: &'a str,
    pub bull_name: &'a str,
    pub decl: &'a BullmqSection,
}

pub fn to_record(queue: &Place<'_>, job: &Job, state: State, log: Option<Vec<String>>) -> JobRecord {
    let o = job.opts();
    let options = JobOptions {
        delay_ms: o.delay.unwrap_or(0),
        priority: Some(from_bull_priority(o.priority.unwrap_or(0))),
        attempts: Some(o.attempts.unwrap_or(1).max(1)),
        backoff: Some(match &o.backoff {
            None | Some(BackoffStrategy::Custom(_)) => Backoff::None,
            Some(BackoffStrategy::Fixed(d)) => Backoff::Fixed { delay_ms: *d },
            Some(BackoffStrategy::Exponential(d)) => {
                Backoff::Exponential { delay_ms: *d, max_delay_ms: 0, jitter: 0.0 }
            }
        }),
        ..JobOptions::default()
    };
    let finished = job.finished_on();
    let state_since_or_until = match state {
        State::Delayed => Some(job.timestamp() + job.delay()),
        State::Active => job.processed_on(),
        State::Completed | State::Failed => finished,
        State::Waiting | State::WaitingChildren => None,
    };
    let (progress, progress_value) = match job.progress() {
        JobProgress::Number(n) => (Some(n.clamp(0.0, 100.0) as u8), json!(n)),
        JobProgress::Object(v) => (None, v.clone()),
    };
    let result = match state {
        State::Completed => Some(parse_or_text(job.returnvalue())),
        State::Failed => Some(json!({"failed_reason": job.failed_reason(), "attempts": job.attempts_made()})),
        _ => None,
    };
    let errors = if job.failed_reason().is_empty() {
        vec![]
    } else {
        vec![AttemptError {
            attempt: job.attempts_made(),
            at: finished.or(job.processed_on()).unwrap_or(0),
            kind: if state == State::Failed { "failed".into() } else { "retry".into() },
            error: job.failed_reason().to_string(),
            started: if state == State::Failed { job.processed_on() } else { None },
            runner: if state == State::Failed { job.processed_by().map(str::to_string) } else { None },
        }]
    };
    // BullMQ keeps the last attempt's start (`processedOn`) and, from its
    // 5.x workers, the worker's name (`processedBy`).
    let run = match (state, job.processed_on()) {
        (State::Completed, Some(started)) => {
            Some(Run { started, runner: job.processed_by().unwrap_or_default().to_string() })
        }
        _ => None,
    };
    JobRecord {
        id: job.id().to_string(),
        queue: queue.name.to_string(),
        state,
        job_type: queue.decl.job_type(job.name()).to_string(),
        payload: job.data().clone(),
        options,
        effective: None,
        attempts_made: job.attempts_made(),
        created_at: job.timestamp(),
        state_since_or_until,
        progress,
        result,
        errors,
        log: log.map(|lines| json!(lines)),
        run,
        stalls: 0,
        dead_letter: None,
        parent: parent_of(queue, job),
        children: None,
        bullmq: Some(json!({
            "name": job.name(),
            "queue": queue.bull_name,
            "prefix": queue.decl.prefix,
            "opts": serde_json::to_value(o).unwrap_or(Value::Null),
            "attempts_started": job.attempts_started(),
            "processed_on": job.processed_on(),
            "finished_on": finished,
            "progress": progress_value,
        })),
    }
}

/// A BullMQ flow child's parent (from BullMQ's `parentKey`): in this
/// queue, by the runner's name for it; elsewhere, by BullMQ's name.
fn parent_of(queue: &Place<'_>, job: &Job) -> Option<jobrunner_queue::ParentRef> {
    let parent = job.parent()?;
    let own = format!("{}:{}", queue.decl.prefix, queue.bull_name);
    let name = if parent.queue_key == own {
        queue.name.to_string()
    } else {
        parent.queue_key.strip_prefix(&format!("{}:", queue.decl.prefix)).unwrap_or(&parent.queue_key).to_string()
    };
    Some(jobrunner_queue::ParentRef { queue: name, id: parent.id.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_map_both_ways_in_order() {
        assert_eq!(to_bull_priority(0), 0);
        assert_eq!(to_bull_priority(MAX_PRIORITY), 1);
        assert!(to_bull_priority(10) > to_bull_priority(20), "higher runs first in the runner, lower in BullMQ");
        for p in [1, 7, 2000, MAX_PRIORITY] {
            assert_eq!(from_bull_priority(to_bull_priority(p)), p);
        }
        // BullMQ allows up to 2^21; anything past the runner's range is its lowest.
        assert_eq!(from_bull_priority(2_097_152), 1);
    }

    #[test]
    fn options_carry_over_and_bad_ids_are_refused() {
        let o = JobOptions { delay_ms: 5, priority: Some(4000), attempts: Some(4), ..Default::default() };
        let policy = QueuePolicy { keep_failed: Some(Keep { count: Some(500), age_ms: None }), ..Default::default() };
        let b = to_bull_options(&Some("mail-1".into()), &o, &policy).unwrap();
        assert_eq!((b.delay, b.priority, b.attempts), (Some(5), Some(1), Some(4)));
        assert!(matches!(b.backoff, Some(BackoffStrategy::Exponential(1000))));
        assert!(matches!(b.remove_on_complete, Some(RemoveOnFinish::Options(KeepJobs { age: Some(86_400), .. }))));
        // The queue's retention, where the job sets none.
        assert!(matches!(
            b.remove_on_fail,
            Some(RemoveOnFinish::Options(KeepJobs { count: Some(500), age: None, .. }))
        ));
        for bad in ["42", "a:b"] {
            let e = to_bull_options(&Some(bad.into()), &o, &policy).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
