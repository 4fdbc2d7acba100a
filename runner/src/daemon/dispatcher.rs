//! One queue's dispatcher: takes jobs as slots free up, runs each on the
//! plugin that handles its type, and records the outcome.
//!
//! Duties, per job:
//! 1. find the plugin for its type; while plugin files are still loading
//!    (at start), a job of a type none serves yet waits for them, its lease
//!    held and no attempt spent; with none then, the job is retried under
//!    its backoff and fails with "no plugin handles type X" once its
//!    attempts run out (so a job sent before its plugin is deployed is not
//!    lost);
//! 2. keep the job's lease while the plugin runs (`leases`: one batched
//!    extension every third of the lease for all running jobs);
//! 3. on success, enqueue the follow-up jobs first and complete the job
//!    after (at least once: a crash between the two re-runs the job, and the
//!    follow-ups' ids de-duplicate what was already enqueued);
//! 4. on failure, record it: retry with backoff, retry after a delay, or
//!    fail for good; a fault is a failed attempt, retried;
//! 5. on shutdown, stop taking jobs; jobs still running when the grace
//!    period ends are cancelled and put back on the queue, unspent;
//! 6. after a job, have its plugin make the next job's instance ahead of it
//!    (`Plugin::prepare`).
//!
//! Fetching: when the queue's jobs are short (under `PREFETCH_BELOW` on
//! average, timed from start to the slot given back), a fetch takes jobs
//! beyond the free slots and holds them in a small buffer, so that a slot
//! that frees up starts its next job at once instead of after a round trip.
//! It takes a round of `concurrency` jobs ahead, or more when that is less
//! than `PREFETCH_WORK` of them (at concurrency 1 and 40 µs a job, a round
//! of one would cost a round trip per two jobs). Long jobs are not fetched
//! ahead, and a buffered job waits at most `MAX_BUFFERED`, far inside its
//! lease: if the jobs turn long, whatever is still buffered then goes back
//! to the queue, unspent, as it does on shutdown.
//!
//! The next fetch goes out when the buffer is down to half a round, and
//! runs while the buffered and running jobs go on; when it lands, every
//! free slot takes a job at once. (Fetching only when the buffer was empty
//! left the plugins idle for every fetch's round trip; see
//! docs/performance.md for what each change measured.)

use crate::daemon::Shared;
use crate::daemon::acker::Acker;
use crate::daemon::leases::{Held, Leases};
use jobrunner_bullmq::any_queue::AnyQueue;
use jobrunner_host::Plugin;
use jobrunner_job::{JobInput, Outcome, Report};
use jobrunner_queue::{Completion, Consumer, Failure, Leased, NewJob, Queue, RunMark};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// How long an idle dispatcher waits before it looks again on its own (a
/// safety net: wake-ups normally come at once).
const IDLE_WAIT: Duration = Duration::from_secs(2);
/// Backoff after a failed fetch (Redis away): retried until it comes back.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);
/// Error messages are stored with the attempt; a backtrace beyond this is cut.
const MAX_ERROR_LEN: usize = 8 * 1024;
/// Jobs shorter than this on average are fetched a round ahead.
const PREFETCH_BELOW: Duration = Duration::from_millis(20);
/// The most jobs fetched ahead.
const MAX_PREFETCH: usize = 1024;
/// Fetch ahead at least this much work, by the queue's average job time.
/// It is one job's time, and the worker threads run jobs side by side, so
/// the buffer drains faster than this says; and under load a fetch's
/// round trip waits behind completions in Redis and ends with its reply
/// parsed here. At 5 ms (and at most 256 jobs), in a drain of no-op jobs
/// each of the runner's two threads was busy about half the time and the
/// machine idle a sixth, the plugins waiting for the next fetch; 15 ms
/// (and 1024) measured a fifth more jobs a second at concurrency 10 and
/// 50, and more did not help (docs/performance.md).
const PREFETCH_WORK: Duration = Duration::from_millis(15);
/// The longest a job fetched ahead waits for a slot before it goes back to
/// the queue (jobs that were short can turn long).
const MAX_BUFFERED: Duration = Duration::from_millis(100);
/// How long a failure that Redis does not take is tried again (a job's
/// task, and so a shutdown, waits for it).
const FAILURE_TRIES_FOR: Duration = Duration::from_secs(30);
/// On shutdown, how long a fetch in flight gets to land.
const LAST_FETCH_WAIT: Duration = Duration::from_millis(100);

/// A moving average of how long this queue's jobs take (µs; `u64::MAX`
/// until the first job ends).
struct Pace(AtomicU64);

impl Pace {
    fn record(&self, took: Duration) {
        let us = took.as_micros().min(u128::from(u64::MAX - 1)) as u64;
        let old = self.0.load(Ordering::Relaxed);
        let new = if old == u64::MAX { us } else { (old * 7 + us) / 8 };
        self.0.store(new, Ordering::Relaxed);
    }

    /// How many jobs to fetch beyond the free slots: none for long jobs.
    fn ahead(&self, concurrency: usize) -> usize {
        let us = self.0.load(Ordering::Relaxed);
        if us >= PREFETCH_BELOW.as_micros() as u64 {
            return 0;
        }
        let by_work = (PREFETCH_WORK.as_micros() as u64 / us.max(1)) as usize;
        concurrency.max(by_work).min(MAX_PREFETCH)
    }
}

/// What a queue's jobs share besides the daemon's `Shared`.
struct Tools {
    acker: Acker,
    leases: Leases,
    pace: Pace,
    cancels: Arc<super::cancels::Cancels>,
}

pub async fn run(
    shared: Arc<Shared>,
    queue: Queue,
    concurrency: usize,
    stop_fetching: CancellationToken,
    cancel_jobs: CancellationToken,
) {
    let consumer = Consumer::new(queue.clone());
    let cancels = Arc::new(super::cancels::Cancels::default());
    let listener = super::cancels::listen(queue.clone(), cancels.clone()).await;
    let tools = Arc::new(Tools {
        acker: Acker::start(queue.clone()),
        leases: Leases::start(queue.clone(), shared.lease, shared.metrics.clone()),
        pace: Pace(AtomicU64::new(u64::MAX)),
        cancels,
    });
    let slots = Arc::new(Semaphore::new(concurrency));
    // Jobs fetched but not started, each with when it was fetched.
    let mut buffer: VecDeque<(Leased, Instant)> = VecDeque::new();
    // The fetch in flight, if any. It runs beside the jobs rather than
    // between them: taken in turns, every fetch left the plugins idle for
    // its round trip (at concurrency 1, 43k jobs/s then, 56k now).
    let mut fetching: Option<Fetch<'_>> = None;
    // The jobs' tasks. A tracker, not a `JoinSet`: nothing reads a job's
    // result (a job records its own outcome), and a `JoinSet` took a lock
    // twice per job to keep finished tasks for `join_next`.
    let running = TaskTracker::new();
    loop {
        let free = slots.available_permits();
        let ahead = tools.pace.ahead(concurrency);
        // Fetch when the buffer is down to half a round ahead (for long
        // jobs, nothing ahead: when it is empty and a slot is free), for
        // the free slots and a round ahead.
        let want = (free + ahead).saturating_sub(buffer.len());
        if fetching.is_none() && buffer.len() * 2 <= ahead && want > 0 {
            fetching = Some(Box::pin(consumer.next(want, shared.lease, IDLE_WAIT)));
        }
        let oldest = buffer.front().map(|(_, at)| *at + MAX_BUFFERED);
        tokio::select! {
            // A slot: for a buffered job, or, with nothing buffered and no
            // fetch to wait for (every slot was busy), to look again.
            p = slots.clone().acquire_owned(), if !buffer.is_empty() || fetching.is_none() => {
                // Jobs that were short can turn long while a round fetched
                // ahead waits its turn: what is still buffered
                // `MAX_BUFFERED` after its fetch goes back, so a buffered
                // job's wait is bounded whatever the queue's pace was when
                // it was fetched.
                if oldest.is_some_and(|o| Instant::now() > o) {
                    give_back(&queue, &mut buffer, &tools.pace).await;
                    continue;
                }
                // Every slot that is free takes a job now, in one go: one
                // job per turn of this loop queued the dispatcher behind the
                // jobs it had started, with slots free and jobs buffered.
                let mut first = Some(p.expect("the semaphore is never closed"));
                while let Some(permit) = first.take().or_else(|| slots.clone().try_acquire_owned().ok()) {
                    let Some((leased, landed)) = buffer.pop_front() else { break };
                    start(&running, &shared, &queue, &tools, &cancel_jobs, (leased, landed), permit);
                }
            }
            batch = async { fetching.as_mut().expect("guarded").await }, if fetching.is_some() => {
                fetching = None;
                let stalls = consumer.take_stalls();
                if stalls > 0 {
                    shared.metrics.stalls.with_label_values(&[queue.name()]).inc_by(stalls);
                }
                match batch {
                    Ok(jobs) => {
                        let now = Instant::now();
                        buffer.extend(jobs.into_iter().map(|j| (j, now)));
                    }
                    Err(e) => {
                        shared.metrics.redis_errors.inc();
                        tracing::warn!(queue = queue.name(), error = %format!("{e:#}"), "cannot fetch jobs; retrying");
                        // Shutdown need not wait out the backoff.
                        tokio::select! {
                            _ = tokio::time::sleep(ERROR_BACKOFF) => {}
                            _ = stop_fetching.cancelled() => {}
                        }
                    }
                }
            }
            // No slot freed up in time: the jobs turned out long, and the
            // buffered ones go back for another runner (or later) to take.
            _ = tokio::time::sleep_until(oldest.unwrap_or_else(Instant::now).into()), if oldest.is_some() => {
                give_back(&queue, &mut buffer, &tools.pace).await;
            }
            _ = stop_fetching.cancelled() => break,
        }
    }
    // A fetch in flight may be one round trip from leasing jobs: it gets a
    // moment to land, so that its jobs go back now rather than when their
    // lease expires (an idle one, waiting for work, is simply dropped).
    if let Some(fetch) = fetching.take()
        && let Ok(Ok(jobs)) = tokio::time::timeout(LAST_FETCH_WAIT, fetch).await
    {
        let now = Instant::now();
        buffer.extend(jobs.into_iter().map(|j| (j, now)));
    }
    // Jobs handed to this runner by enqueues while it was idle are leased
    // to it too: its registration ends, and they go back with the rest.
    match consumer.retire().await {
        Ok(jobs) => {
            let now = Instant::now();
            buffer.extend(jobs.into_iter().map(|j| (j, now)));
        }
        Err(e) => {
            tracing::warn!(queue = queue.name(), error = %format!("{e:#}"), "could not end this runner's idle registration (jobs handed to it now run again when their lease expires)")
        }
    }
    // Jobs fetched ahead but not started go back, unspent.
    release_all(&queue, &mut buffer).await;
    // Stop fetching; let the jobs in flight finish (or be cancelled when
    // the daemon's grace period ends, which cancels `cancel_jobs`).
    running.close();
    running.wait().await;
    listener.abort();
    // Every job's task has ended, and with it its hold on the tools: the
    // completions they handed over are recorded before the daemon goes on
    // with its shutdown.
    match Arc::into_inner(tools) {
        Some(tools) => tools.acker.close().await,
        None => tracing::warn!(queue = queue.name(), "a job task outlived the dispatcher; its completion may be lost"),
    }
}

/// A fetch of the next jobs, polled beside the running ones.
type Fetch<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Vec<Leased>>> + Send + 'a>>;

/// Starts one job in its slot, in a task of its own.
fn start(
    running: &TaskTracker,
    shared: &Arc<Shared>,
    queue: &Queue,
    tools: &Arc<Tools>,
    cancel: &CancellationToken,
    (leased, landed): (Leased, Instant),
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let (shared, queue, cancel, tools) = (shared.clone(), queue.clone(), cancel.clone(), tools.clone());
    let span = tracing::info_span!("job", id = %leased.id, r#type = %leased.spec.job_type, queue = queue.name(), attempt = leased.attempt);
    // Boxed: a job's future is about 3.7 KB (the store's future inside it),
    // and tokio moves a task's future by value when it spawns it and when
    // the task ends; those copies were about half of the runner's `memmove`
    // per job. In a box, what moves is a pointer.
    running.spawn(Box::pin(
        async move {
            run_job(&shared, &queue, &tools, (leased, landed), &cancel, permit).await;
        }
        .instrument(span),
    ));
}

/// The buffered jobs waited too long (the queue's jobs turned long): they
/// go back, and nothing is fetched ahead until jobs are seen short again.
async fn give_back(queue: &Queue, buffer: &mut VecDeque<(Leased, Instant)>, pace: &Pace) {
    release_all(queue, buffer).await;
    pace.0.store(MAX_BUFFERED.as_micros() as u64, Ordering::Relaxed);
}

/// Puts jobs fetched ahead but not started back on the queue, unspent.
/// The calls go out together, and the multiplexed connection pipelines
/// them: a buffer holds up to `MAX_PREFETCH` jobs, and one round trip each,
/// in turn, kept the dispatcher from starting jobs for as many.
async fn release_all(queue: &Queue, buffer: &mut VecDeque<(Leased, Instant)>) {
    let releases = buffer.drain(..).map(|(leased, _)| async move {
        if let Err(e) = queue.release(&leased.id, &leased.token).await {
            tracing::warn!(id = %leased.id, error = %format!("{e:#}"), "could not put a fetched job back (its lease will expire and it will run again)");
        }
    });
    futures::future::join_all(releases).await;
}

/// Runs one job. `slot` is its place under the queue's concurrency: given
/// back as soon as the plugin has returned, so that recording the outcome
/// (a round trip, batched with other jobs') overlaps the next job's run.
/// `landed`: when its fetch came back, which the lease keeper counts its
/// lease from.
async fn run_job(
    shared: &Shared,
    queue: &Queue,
    tools: &Tools,
    (mut leased, landed): (Leased, Instant),
    cancel: &CancellationToken,
    slot: tokio::sync::OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let job_type = leased.spec.job_type.clone();
    observe_wait(shared, queue.name(), leased.spec.created_at + leased.spec.opts.delay_ms);
    // The lease is held from here until the outcome is recorded: one hold
    // for the wait for a plugin still loading and the run, so that the
    // keeper's count of how long Redis has not confirmed it (`leases`)
    // carries over from the one to the other.
    let held = tools.leases.hold(&leased.id, &leased.token, landed);
    let plugin = match shared.registry.get(&job_type) {
        Some(plugin) => plugin,
        None => {
            // Its lease is kept while it waits for plugins still loading;
            // not started, so an attempt is spent only if it then runs.
            match plugin_for(shared, &job_type, cancel).await {
                PluginFor::Found(plugin) => plugin,
                PluginFor::None => {
                    let reason = no_plugin(shared, queue.name(), &job_type);
                    record_failure(queue, &leased, Failure::Retry(reason), None, None).await;
                    drop(held);
                    return;
                }
                PluginFor::Shutdown => {
                    drop(held);
                    match queue.release(&leased.id, &leased.token).await {
                        Ok(_) => tracing::info!("shut down while waiting for its plugin; put back on the queue"),
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "shut down while waiting for its plugin; could not put it back (its lease will expire and it will run again)")
                        }
                    }
                    return;
                }
            }
        }
    };
    // A lease that ran out, or could not be kept, while the job waited for
    // its plugin: the job is left to the runner that takes it (the keeper
    // logged why).
    if held.is_lost() {
        return;
    }
    // From here the job runs: its attempt is spent if its lease stalls.
    // (Logged first, at debug: the fault tests read it as the runner's word
    // that the job started.)
    tracing::debug!("started");
    tools.acker.started(&leased.id, &leased.token);
    // Kept with the job's outcome: its duration and timeline on the dashboard.
    let run = RunMark::new(jobrunner_queue::stats::now_ms(), super::runner_id());
    shared.metrics.started.with_label_values(&[queue.name()]).inc();
    let _running = shared.running.start(&shared.metrics, queue.name(), &leased.id, &job_type);
    // The payload moves into the job (and from there into the guest): only
    // its plugin reads it, so the dispatcher need not keep a copy.
    let payload = std::mem::replace(&mut leased.spec.payload, serde_json::value::RawValue::NULL.to_owned());
    // The queue's policy, for what the job's producer left unset.
    let policy = shared.policy(queue.name());
    let input = JobInput {
        id: leased.id.clone(),
        queue: queue.name().to_string(),
        job_type: job_type.clone(),
        payload: Box::<str>::from(payload).into_string(),
        attempt: leased.attempt,
        max_attempts: policy.attempts_for(&leased.spec.opts),
        enqueued_at_ms: leased.spec.created_at,
        parent: leased.spec.parent.clone(),
    };
    let timeout = policy.timeout_for(&leased.spec.opts);
    // `biased`: polled in this order rather than a random one, which spent
    // a random number per poll of every job (the plugin returns at once
    // most of the time; a shutdown is still seen at the next poll).
    let asked = tools.cancels.register(&leased.id);
    let live = super::progress::LiveProgress::native(queue, &leased);
    let mut report = tokio::select! {
        biased;
        r = plugin.run_reporting(input, timeout, Some(live.sink())) => r,
        _ = asked.token.cancelled() => {
            // Stopped on request: failed for good, its lease held until
            // that is recorded.
            drop(live);
            let reason = jobrunner_queue::cancel::CANCELLED.to_string();
            record_failure(queue, &leased, Failure::Permanent(reason), None, Some(&run)).await;
            tools.acker.settled(&leased.token);
            drop(held);
            tracing::info!("cancelled on request: recorded failed, not to be retried");
            return;
        }
        _ = held.lost() => {
            // The lease is lost, or runs out with Redis out of reach (the
            // keeper logged which): the plugin is stopped, as by a
            // timeout, and nothing is recorded. The job runs again on the
            // runner that takes it; this attempt is spent, as a stall's.
            drop(live);
            tools.acker.settled(&leased.token);
            drop(held);
            return;
        }
        _ = cancel.cancelled() => {
            drop(live);
            drop(held);
            tools.acker.settled(&leased.token);
            match queue.release(&leased.id, &leased.token).await {
                Ok(true) => tracing::info!("cancelled by shutdown; put back on the queue"),
                Ok(false) => tracing::warn!("cancelled by shutdown; the lease had already expired"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "cancelled by shutdown; could not put it back (its lease will expire and it will run again)"),
            }
            return;
        }
    };
    drop(asked);
    live.finish().await;
    // The lease stays held (extended) until the outcome is recorded: a
    // completion that Redis does not take at once is kept and sent again.
    drop(slot);
    // The pace is how long a job holds its slot; recording the outcome
    // overlaps the next job.
    tools.pace.record(started.elapsed());
    // The stored log is the latest attempt's. A first attempt that logged
    // nothing has no earlier log to replace, so it writes none: a write per
    // job that most jobs would spend on `[]`.
    let log = if report.log.is_empty() && leased.attempt <= 1 && !report.log_truncated {
        None
    } else {
        serde_json::to_string(&report.log).ok()
    };
    observe(shared, queue.name(), &job_type, &plugin, &report);
    // The outcome is taken out of the report rather than cloned (a
    // completion's output can be large); what is left of the report is
    // still read below.
    let outcome = std::mem::replace(&mut report.outcome, Outcome::Completed { output: None });
    let failure = match outcome {
        Outcome::Completed { output } => Err(output),
        Outcome::Retry { message } => Ok(Failure::Retry(message)),
        // A plugin cannot park a job longer than a producer could delay it.
        Outcome::RetryAfter { delay, message } => {
            Ok(Failure::RetryAfter(delay.min(jobrunner_queue::options::MAX_DELAY), message))
        }
        Outcome::Permanent { message } => Ok(Failure::Permanent(message)),
        Outcome::Fault(f) => Ok(Failure::Retry(fault_message(&f))),
    };
    match failure {
        Err(output) => complete(shared, queue, &tools.acker, (leased, run), &report, output, log, held).await,
        Ok(failure) => {
            record_failure(queue, &leased, failure, Some((&report, log)), Some(&run)).await;
            tools.acker.settled(&leased.token);
            drop(held);
        }
    }
    // The plugin's next job finds its instance made (`host::spare`): made
    // now, on caches still warm from this job and in the pool slot it just
    // gave back, and after its outcome was handed over, so that it delays
    // neither.
    plugin.prepare().await;
}

/// Counts one attempt in the metrics, and logs it (failures at `info` or
/// `warn`; completions at `debug`, since every one at `info` would drown a
/// busy runner's log). Shared with the BullMQ worker.
pub(crate) fn observe(shared: &Shared, queue: &str, job_type: &str, plugin: &Plugin, report: &Report) {
    let outcome_name = match &report.outcome {
        Outcome::Completed { .. } => "completed",
        Outcome::Retry { .. } => "retry",
        Outcome::RetryAfter { .. } => "retry_after",
        Outcome::Permanent { .. } => "permanent",
        Outcome::Fault(_) => "fault",
    };
    shared.plugin_stats.record(plugin, report);
    let m = &shared.metrics;
    m.jobs.with_label_values(&[queue, job_type, outcome_name]).inc();
    m.job_duration.with_label_values(&[queue, job_type]).observe(report.duration.as_secs_f64());
    // A reused instance was not instantiated for its job: only fresh ones'
    // times go into the histogram.
    if report.instance_job <= 1 {
        m.instantiate.with_label_values(&[plugin.name()]).observe(report.instantiate.as_secs_f64());
        m.instances.with_label_values(&[plugin.name(), "fresh"]).inc();
    } else {
        m.instances.with_label_values(&[plugin.name(), "reused"]).inc();
    }
    if let Outcome::Fault(f) = &report.outcome {
        m.failures.with_label_values(&[queue, &f.kind.to_string()]).inc();
    } else if outcome_name != "completed" {
        m.failures.with_label_values(&[queue, outcome_name]).inc();
    }
    let ms = report.duration.as_secs_f64() * 1e3;
    match &report.outcome {
        Outcome::Completed { .. } => tracing::debug!(outcome = outcome_name, ms, "job finished"),
        Outcome::Fault(f) => tracing::warn!(outcome = outcome_name, ms, fault = %f, "job failed"),
        other => tracing::info!(outcome = outcome_name, ms, reason = other.reason().unwrap_or_default(), "job failed"),
    }
}

/// What `plugin_for` found.
pub(crate) enum PluginFor {
    Found(Arc<Plugin>),
    /// No loaded plugin serves the type, and none is still loading.
    None,
    /// The runner is shutting down while the job waited.
    Shutdown,
}

/// The plugin for a type no loaded plugin serves yet: while plugin files
/// are still loading (at start, in the background), the job waits for
/// them rather than failing, since the type may be one of theirs.
pub(crate) async fn plugin_for(shared: &Shared, job_type: &str, cancel: &CancellationToken) -> PluginFor {
    let found = if shared.registry.is_loading() {
        tracing::info!(job_type, "no plugin for this type yet; waiting for the plugins still loading");
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return PluginFor::Shutdown,
            found = shared.registry.wait_for_type(job_type) => found,
        }
    } else {
        shared.registry.get(job_type)
    };
    match found {
        Some(plugin) => PluginFor::Found(plugin),
        None => PluginFor::None,
    }
}

/// A job that waited for no plugin: counted, logged, and its reason.
pub(crate) fn no_plugin(shared: &Shared, queue: &str, job_type: &str) -> String {
    let reason = format!("no plugin handles type `{job_type}`");
    tracing::warn!("{reason}");
    shared.metrics.jobs.with_label_values(&[queue, job_type, "no_plugin"]).inc();
    shared.metrics.failures.with_label_values(&[queue, "no_plugin"]).inc();
    reason
}

/// Records how long a job waited from when it was due to when it started.
pub(crate) fn observe_wait(shared: &Shared, queue: &str, due_ms: u64) {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let waited_ms = (now_ms as u64).saturating_sub(due_ms);
    shared.metrics.job_wait.with_label_values(&[queue]).observe(waited_ms as f64 / 1e3);
}

/// A fault as the error stored with the attempt: its message and the wasm
/// backtrace, cut to `MAX_ERROR_LEN`.
pub(crate) fn fault_message(f: &jobrunner_job::Fault) -> String {
    let mut message = f.to_string();
    if let Some(bt) = &f.backtrace {
        message.push('\n');
        message.push_str(bt);
    }
    if message.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

/// Enqueues a report's follow-up jobs, one bulk call per queue, each queue
/// native or BullMQ-backed as the config declares it. Answers why not, if not.
pub(crate) async fn enqueue_follow_ups(shared: &Shared, report: &Report) -> Result<(), String> {
    let mut by_queue: BTreeMap<&str, Vec<NewJob>> = BTreeMap::new();
    for f in &report.follow_ups {
        let options = jobrunner_queue::JobOptions {
            delay_ms: f.delay_ms.unwrap_or(0),
            priority: f.priority.map(|p| p.min(jobrunner_queue::options::MAX_PRIORITY)),
            attempts: f.max_attempts,
            group: f.group.clone(),
            ..Default::default()
        };
        by_queue.entry(f.queue.as_str()).or_default().push(NewJob {
            id: Some(f.id.clone()),
            job_type: f.job_type.clone(),
            payload: f.payload.to_string(),
            options,
        });
    }
    for (name, jobs) in by_queue {
        let result = match AnyQueue::open(&shared.connection, &shared.bull, name) {
            Ok(q @ AnyQueue::Native(_)) => q.enqueue_bulk(jobs).await.map(drop),
            Ok(q @ AnyQueue::Bull(_)) => {
                // Plugins write ids such as `reminder:c1:step:2`; BullMQ's
                // keys are `prefix:queue:id`, so a BullMQ id has no `:`.
                let jobs = jobs
                    .into_iter()
                    .map(|j| NewJob { id: j.id.map(|id| jobrunner_bullmq::follow_up_id(&id)), ..j })
                    .collect();
                q.enqueue_bulk(jobs).await.map(drop)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let reason = format!("the job succeeded but its follow-up jobs could not be enqueued to `{name}`: {e:#}");
            tracing::warn!("{reason}");
            return Err(reason);
        }
    }
    for flow in &report.flows {
        let mut kids = vec![Vec::new(); flow.jobs.len()];
        for (k, j) in flow.jobs.iter().enumerate() {
            if let Some(p) = j.parent {
                kids[p].push(k);
            }
        }
        let root = flow_job(flow, &kids, 0);
        if let Some(name) = bullmq_queue_in(shared, &root) {
            return Err(format!(
                "the job succeeded but its flow cannot be enqueued: queue `{name}` is BullMQ-backed, and a plugin's flows go to native queues"
            ));
        }
        match jobrunner_queue::add_flow(&shared.connection, root).await {
            Ok(added) => {
                if let Some(why) = added.unfinished {
                    // The flow is whole: a runner of its root's queue finishes it.
                    tracing::warn!(queue = %added.queue, id = %added.id, error = %why, "a plugin's flow was added, not every job below its root yet");
                }
            }
            Err(e) => {
                let reason = format!("the job succeeded but its flow could not be enqueued: {e:#}");
                tracing::warn!("{reason}");
                return Err(reason);
            }
        }
    }
    Ok(())
}

/// A plugin's flow (a list, each job naming its parent's index; `kids`,
/// each job's children's indexes) as the tree `add_flow` takes, from job
/// `i` down. The host checked the list:
/// a root first, each parent before its children, at most
/// `MAX_FLOW_DEPTH` deep (so this recursion is bounded).
fn flow_job(flow: &jobrunner_job::flow::FlowFollowUp, kids: &[Vec<usize>], i: usize) -> jobrunner_queue::FlowJob {
    let job = &flow.jobs[i];
    let f = &job.job;
    let children = kids[i].iter().map(|&k| flow_job(flow, kids, k)).collect();
    jobrunner_queue::FlowJob {
        queue: f.queue.clone(),
        id: Some(f.id.clone()),
        job_type: f.job_type.clone(),
        payload: serde_json::value::to_raw_value(&f.payload).expect("a JSON value serializes"),
        options: jobrunner_queue::JobOptions {
            delay_ms: f.delay_ms.unwrap_or(0),
            priority: f.priority.map(|p| p.min(jobrunner_queue::options::MAX_PRIORITY)),
            attempts: f.max_attempts,
            group: f.group.clone(),
            ..Default::default()
        },
        on_failure: (i > 0).then_some(job.on_failure),
        children,
    }
}

/// A BullMQ-backed queue named anywhere in a flow, if any.
fn bullmq_queue_in<'a>(shared: &Shared, job: &'a jobrunner_queue::FlowJob) -> Option<&'a str> {
    if shared.bull.contains_key(&job.queue) {
        return Some(&job.queue);
    }
    job.children.iter().find_map(|c| bullmq_queue_in(shared, c))
}

/// Records a success: its follow-ups now, its completion through the
/// acker, which logs what Redis says of it (the task does not wait) and
/// keeps the lease held until then.
#[allow(clippy::too_many_arguments)]
async fn complete(
    shared: &Shared,
    queue: &Queue,
    acker: &Acker,
    (leased, run): (Leased, RunMark),
    report: &Report,
    output: Option<serde_json::Value>,
    log: Option<String>,
    held: Held,
) {
    // Follow-ups first (at least once: their ids de-duplicate a re-run).
    if let Err(reason) = enqueue_follow_ups(shared, report).await {
        record_failure(queue, &leased, Failure::Retry(reason), None, Some(&run)).await;
        acker.settled(&leased.token);
        return;
    }
    let keep = shared.policy(queue.name()).keep_completed_for(&leased.spec.opts);
    let done = Completion {
        id: leased.id,
        token: leased.token,
        result: output.map(|o| o.to_string()),
        progress: report.progress,
        log,
        run: Some(run),
    };
    acker.complete(done, keep, Some(held));
}

/// Records a failed attempt. While Redis fails the call, it is tried again
/// (the caller still holds the lease, so it is extended meanwhile) for up
/// to `FAILURE_TRIES_FOR`; past that the lease is left to expire, and the
/// job goes through its retry policy as a stall.
async fn record_failure(
    queue: &Queue,
    leased: &Leased,
    failure: Failure,
    report: Option<(&Report, Option<String>)>,
    run: Option<&RunMark>,
) {
    let (progress, log) = match report {
        Some((r, log)) => (r.progress, log),
        None => (None, None),
    };
    let deadline = Instant::now() + FAILURE_TRIES_FOR;
    let mut wait = ERROR_BACKOFF / 10;
    loop {
        match queue.fail_run(&leased.id, &leased.token, &failure, progress, log.clone(), run).await {
            Ok(after) => {
                tracing::debug!(?after, "failure recorded");
                return;
            }
            Err(e) if Instant::now() > deadline => {
                tracing::warn!(error = %format!("{e:#}"), "could not record the failure; the lease will expire and the job go through its retry policy as a stall");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "could not record the failure yet; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(ERROR_BACKOFF * 4);
            }
        }
    }
}
