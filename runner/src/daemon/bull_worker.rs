//! One BullMQ-backed queue's worker. BullMQ's own worker (from
//! `bullmq-official`) fetches jobs, holds and renews their locks, finds
//! stalled ones, and applies each job's attempts and backoff, exactly as a
//! Node BullMQ worker would; each job it hands over runs on the plugin for
//! its type, in the same sandbox, under the same limits, as a native job.
//!
//! The plugin's outcome, in BullMQ's terms:
//! - completed: the output becomes the job's return value (after the
//!   follow-up jobs are enqueued, as for native jobs);
//! - retry, or a fault (trap, timeout, limit): a failed attempt, retried
//!   under the job's own `attempts` and `backoff`;
//! - retry after a delay: the job moves to delayed for that long without
//!   spending an attempt (BullMQ's `DelayedError`); a queue's
//!   `max_started_attempts` bounds how often that may happen;
//! - permanent: failed at once (BullMQ's `UnrecoverableError`);
//! - no plugin for its type: a failed attempt, with that reason.
//!
//! The plugin's progress is written to the job's as it moves (BullMQ's
//! `updateProgress`, at most four times a second; `daemon::progress`), and
//! its log lines to the job's log when the attempt ends, where Bull Board
//! shows them.
//!
//! Shutdown: fetching stops; jobs in flight finish until the grace period
//! ends; those still running are then cancelled and moved back to wait
//! (`moveJobFromActiveToWait`), where any worker takes them again.

use crate::daemon::Shared;
use crate::daemon::dispatcher::{
    PluginFor, enqueue_follow_ups, fault_message, no_plugin, observe, observe_wait, plugin_for,
};
use bullmq::options::MetricsOptions;
use bullmq::worker::CancellationToken as BullCancel;
use bullmq::{Job, JobProgress, WorkerOptions};
use futures::FutureExt;
use jobrunner_bullmq::BullQueue;
use jobrunner_job::{JobInput, LogLine, Outcome, Report};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// A week of per-minute throughput (BullMQ's `MetricsTime.ONE_WEEK`), for
/// the dashboard's history chart and Bull Board: about 10,000 list entries
/// per metric.
const METRICS_MINUTES: usize = 7 * 24 * 60;
/// After a failed fetch (Redis away), BullMQ's worker waits this long.
const RETRY_FETCH: Duration = Duration::from_secs(1);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// Runs the queue's worker until `stop_fetching`, then drains it (see the
/// module's comment). `url` is the runner's Redis.
pub async fn run(
    shared: Arc<Shared>,
    queue: BullQueue,
    url: String,
    concurrency: usize,
    stop_fetching: CancellationToken,
    cancel_jobs: CancellationToken,
) {
    let processor = {
        let (shared, queue, cancel) = (shared.clone(), queue.clone(), cancel_jobs.clone());
        move |job: Job, _token: BullCancel| {
            let (shared, queue, cancel) = (shared.clone(), queue.clone(), cancel.clone());
            async move {
                let span = tracing::info_span!("job", id = %job.id(), name = %job.name(), queue = queue.name(), attempt = job.attempts_made() + 1);
                tracing::Instrument::instrument(process(&shared, &queue, job, &cancel), span).await
            }
        }
    };
    let mut options = WorkerOptions::new()
        .connection(jobrunner_bullmq::connection_options(&url))
        .prefix(queue.prefix())
        .name(format!("jobrunner@{}", super::runner_id()))
        .concurrency(concurrency)
        .lock_duration(shared.lease)
        .drain_delay(Duration::from_secs(1))
        .run_retry_delay(RETRY_FETCH);
    if queue.decl().metrics {
        options = options.metrics(MetricsOptions { max_data_points: METRICS_MINUTES });
    }
    options.max_started_attempts = queue.decl().max_started_attempts;
    // `[queues.NAME]`'s policy, where BullMQ has a place for it: the
    // worker's limiter, and the retention of the jobs it finishes whose
    // producers set none (the config refuses the rest).
    let policy = queue.policy();
    if let Some(rate) = policy.rate {
        options.limiter = Some(bullmq::RateLimiterOptions { max: rate.max, duration: rate.window_ms });
    }
    options.remove_on_complete = policy.keep_completed.as_ref().map(jobrunner_bullmq::record::keep);
    options.remove_on_fail = policy.keep_failed.as_ref().map(jobrunner_bullmq::record::keep);
    let worker = loop {
        match bullmq::Worker::with_options(queue.bull_name(), processor.clone(), options.clone()).await {
            Ok(w) => break w,
            Err(e) => {
                // Redis away at start: the daemon keeps trying, as the
                // native dispatchers do.
                tracing::warn!(queue = queue.name(), error = %e, "cannot start the BullMQ worker; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_FETCH) => {}
                    _ = stop_fetching.cancelled() => return,
                }
            }
        }
    };
    stop_fetching.cancelled().await;
    // `close` stops fetching and waits for the jobs in flight. The daemon
    // cancels `cancel_jobs` when its grace period ends; the jobs still
    // running then go back to wait, and `close` returns. Its own timeout is
    // only a backstop for a job that never answers the cancellation.
    let backstop = shared.config.read().unwrap().runner.shutdown_grace + Duration::from_secs(60);
    if let Err(e) = worker.close(backstop.as_millis() as u64).await {
        tracing::warn!(queue = queue.name(), error = %e, "the BullMQ worker did not close cleanly");
    }
}

/// Runs one BullMQ job on its plugin; the answer is what BullMQ's worker
/// records (see the module's comment).
async fn process(
    shared: &Shared,
    queue: &BullQueue,
    mut job: Job,
    cancel: &CancellationToken,
) -> Result<Value, bullmq::Error> {
    let job_type = queue.job_type(job.name()).to_string();
    observe_wait(shared, queue.name(), job.timestamp() + job.delay());
    let plugin = match shared.registry.get(&job_type) {
        Some(plugin) => plugin,
        // BullMQ's worker keeps the job's lock while it waits.
        None => match plugin_for(shared, &job_type, cancel).await {
            PluginFor::Found(plugin) => plugin,
            PluginFor::None => {
                return Err(bullmq::Error::ProcessingError(no_plugin(shared, queue.name(), &job_type)));
            }
            PluginFor::Shutdown => {
                match job.move_to_wait(None).await {
                    Ok(_) => tracing::info!("shut down while waiting for its plugin; moved back to wait"),
                    Err(e) => {
                        tracing::warn!(error = %e, "shut down while waiting for its plugin; could not move it back (its lock will expire and it will run again)")
                    }
                }
                return Err(bullmq::Error::Delayed);
            }
        },
    };
    let input = JobInput {
        id: job.id().to_string(),
        queue: queue.name().to_string(),
        job_type: job_type.clone(),
        payload: job.data().to_string(),
        attempt: job.attempts_made() + 1,
        max_attempts: job.opts().attempts.unwrap_or(1).max(1),
        enqueued_at_ms: job.timestamp(),
        // BullMQ's parent key names the parent's queue by BullMQ's name.
        parent: job.parent().map(|p| jobrunner_job::flow::JobRef {
            queue: p.queue_key.rsplit(':').next().unwrap_or(&p.queue_key).to_string(),
            id: p.id.clone(),
        }),
    };
    let live = {
        let (id, job) = (job.id().to_string(), job.clone());
        super::progress::LiveProgress::new(
            &id,
            Box::new(move |percent| {
                let mut job = job.clone();
                async move {
                    job.update_progress(JobProgress::Number(f64::from(percent))).await.map_err(anyhow::Error::from)
                }
                .boxed()
            }),
        )
    };
    shared.metrics.started.with_label_values(&[queue.name()]).inc();
    let _running = shared.running.start(&shared.metrics, queue.name(), job.id(), &job_type);
    let report = tokio::select! {
        r = plugin.run_reporting(input, queue.policy().timeout_ms.map(Duration::from_millis), Some(live.sink())) => r,
        _ = cancel.cancelled() => {
            drop(live);
            match job.move_to_wait(None).await {
                Ok(_) => tracing::info!("cancelled by shutdown; moved back to wait"),
                Err(e) => tracing::warn!(error = %e, "cancelled by shutdown; could not move it back (its lock will expire and it will run again)"),
            }
            // Tells BullMQ's worker the job was moved already.
            return Err(bullmq::Error::Delayed);
        }
    };
    live.finish().await;
    // The next job's instance, made ahead of it (`host::spare`). Here it
    // comes before the answer BullMQ's worker records, a few microseconds
    // beside the round trips of BullMQ's own completion.
    plugin.prepare().await;
    observe(shared, queue.name(), &job_type, &plugin, &report);
    write_progress_and_log(&mut job, &report).await;
    match report.outcome.clone() {
        Outcome::Completed { output } => match enqueue_follow_ups(shared, &report).await {
            Ok(()) => Ok(output.unwrap_or(Value::Null)),
            Err(reason) => Err(bullmq::Error::ProcessingError(reason)),
        },
        Outcome::Retry { message } => Err(bullmq::Error::ProcessingError(message)),
        Outcome::RetryAfter { delay, message } => {
            let delay = delay.min(jobrunner_queue::options::MAX_DELAY);
            let note = format!("retry after {}: {message}", humantime::format_duration(delay));
            let _ = job.log(&note).await;
            match job.move_to_delayed(now_ms() + delay.as_millis() as u64).await {
                Ok(()) => Err(bullmq::Error::Delayed),
                // Could not park it: a failed attempt instead, so it is not lost.
                Err(e) => Err(bullmq::Error::ProcessingError(format!("{note} (could not delay it: {e})"))),
            }
        }
        Outcome::Permanent { message } => Err(bullmq::Error::Unrecoverable(message)),
        Outcome::Fault(f) => Err(bullmq::Error::ProcessingError(fault_message(&f))),
    }
}

/// One log line as BullMQ keeps it: text, with its level and source.
fn log_row(line: &LogLine) -> String {
    let level = serde_json::to_value(line.level).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let source = serde_json::to_value(line.source).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    format!("{level} [{source}] +{}ms {}", line.at_ms, line.message)
}

/// Writes the attempt's progress and log to the job. Best effort: a
/// failure is logged, and does not change the job's outcome.
async fn write_progress_and_log(job: &mut Job, report: &Report) {
    if let Some(p) = report.progress
        && let Err(e) = job.update_progress(JobProgress::Number(f64::from(p))).await
    {
        tracing::warn!(error = %e, "could not write the job's progress");
    }
    for line in &report.log {
        if let Err(e) = job.log(&log_row(line)).await {
            tracing::warn!(error = %e, "could not write the job's log");
            break;
        }
    }
}
