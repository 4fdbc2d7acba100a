//! One loaded plugin version: compiled once, linked once (`PluginPre`), and
//! run any number of times, each job in a fresh `Store` (or, under
//! `isolation = "instance"`, in the store of an instance that completed
//! the plugin's last job).
//!
//! Duties:
//! 1. check a component against the contract: it must export the handler
//!    and import nothing the runner does not provide (`load`);
//! 2. ask it to `describe` itself, and validate what it says;
//! 3. run one job under the plugin's limits and turn everything that can
//!    happen into a `Report` (`run`). A trap, a panic, a timeout or a limit
//!    becomes a `Fault`; none of them reaches past the store;
//! 4. make the next job's instance ahead of it when asked (`prepare`; see
//!    `spare`), and hand it to that job;
//! 5. under `isolation = "instance"`, keep an instance whose job completed
//!    for the next job, up to `max_jobs_per_instance` jobs, and drop it
//!    after any job that did not complete.

use crate::contract::{self, Pre, Version};
use crate::fault;
use crate::spare::{Idle, Spare, SpareSlots};
use crate::state::{JobState, PluginContext};
use anyhow::{Result, anyhow, bail};
use jobrunner_job::flow::JobRef;
use jobrunner_job::{Fault, FaultKind, JobInput, LogLevel, LogSource, Outcome, Report, check_job_type};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

/// Work the host may still be doing when a timeout ends the guest's own
/// time (a host call in flight) gets this much longer before it is cut.
const HOST_GRACE: Duration = Duration::from_millis(250);

/// The most host resources (open streams, pollables, HTTP requests and
/// bodies) an instance may hold to be kept for the next job under
/// `isolation = "instance"`: a runtime keeps a few open between calls;
/// a plugin that leaks one a job would otherwise hold sockets and timers
/// across up to `max_jobs_per_instance` jobs. Past it the instance is
/// dropped with its store, which closes them all.
const MAX_IDLE_RESOURCES: usize = 64;

/// `describe` should answer at once; a plugin that does not is broken.
pub const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a plugin says about itself, and the contract version it targets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Description {
    pub name: String,
    pub version: String,
    pub job_types: Vec<String>,
    pub contract: Version,
}

pub struct Plugin {
    pub description: Description,
    pub sha256: String,
    pub(crate) context: Arc<PluginContext>,
    engine: Engine,
    pre: Pre,
    /// The next job's instance, made ahead of it (`prepare`).
    spare: Mutex<Option<Spare>>,
    /// A `prepare` is making the spare: another need not.
    preparing: AtomicBool,
    /// A spare failed to instantiate once: this version's jobs instantiate
    /// their own (and report why it fails), rather than every job paying
    /// for a spare that fails too.
    no_spares: AtomicBool,
    spare_slots: Arc<SpareSlots>,
    /// Instances that completed a job, kept for the next
    /// (`isolation = "instance"`; always empty otherwise). The last one in
    /// is the first out: its memory is the likeliest still in the caches.
    idle: Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("description", &self.description).field("sha256", &self.sha256).finish()
    }
}

/// The longest name and version a plugin may declare: both go into every
/// runner's heartbeat in Redis and onto the dashboard, so a plugin must
/// not be able to make them large.
pub const MAX_DESCRIBED: usize = 64;

/// What `describe()` may answer: a name of letters, digits, `-`, `_` or
/// `.`, a version of printable characters, both at most `MAX_DESCRIBED`
/// bytes, and valid job types.
fn check_description(d: &Description) -> Result<()> {
    if d.name.is_empty()
        || d.name.len() > MAX_DESCRIBED
        || !d.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!(
            "describe() gave the name `{}`: use 1 to {MAX_DESCRIBED} letters, digits, `-`, `_` or `.`",
            d.name.chars().take(MAX_DESCRIBED).collect::<String>().escape_default()
        );
    }
    if d.version.len() > MAX_DESCRIBED || d.version.chars().any(char::is_control) {
        bail!(
            "describe() gave the version `{}`: at most {MAX_DESCRIBED} bytes, no control characters",
            d.version.chars().take(MAX_DESCRIBED).collect::<String>().escape_default()
        );
    }
    if d.job_types.is_empty() {
        bail!("describe() lists no job types");
    }
    for t in &d.job_types {
        check_job_type(t).map_err(|e| anyhow!("describe(): {e}"))?;
    }
    Ok(())
}

/// Links a component against the contract version it exports, explaining
/// any mismatch.
pub fn link(engine: &Engine, linker: &Linker<JobState>, component: &Component) -> Result<Pre> {
    contract::link(engine, linker, component)
}

impl Plugin {
    pub(crate) fn new(
        engine: Engine,
        pre: Pre,
        sha256: String,
        context: Arc<PluginContext>,
        description: Description,
        spare_slots: Arc<SpareSlots>,
    ) -> Self {
        Plugin {
            description,
            sha256,
            context,
            engine,
            pre,
            spare: Mutex::new(None),
            preparing: AtomicBool::new(false),
            no_spares: AtomicBool::new(false),
            spare_slots,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The operator's name for the plugin: its config section's, or its
    /// file's when no section is bound to it (not what `describe` says).
    pub fn name(&self) -> &str {
        &self.context.name
    }

    pub fn limits(&self) -> &crate::settings::Limits {
        &self.context.limits
    }

    /// What the operator granted it (secret values included: the caller
    /// shows their names only).
    pub fn grants(&self) -> &crate::settings::Grants {
        &self.context.grants
    }

    /// Calls `describe` in a store of its own.
    pub(crate) async fn describe(engine: &Engine, pre: &Pre, context: Arc<PluginContext>) -> Result<Description> {
        let mut store = new_store(engine, context, String::new());
        arm(&mut store, DESCRIBE_TIMEOUT);
        let call = async {
            let bindings = pre.instantiate(&mut store).await?;
            bindings.describe(&mut store).await
        };
        let info = match tokio::time::timeout(DESCRIBE_TIMEOUT + HOST_GRACE, call).await {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => {
                let stderr = store.data().log.lock().unwrap().stderr_text();
                let f = fault::classify(&e, DESCRIBE_TIMEOUT, &stderr);
                bail!("describe() failed: {f}{}", f.backtrace.as_ref().map(|b| format!("\n{b}")).unwrap_or_default());
            }
            Err(_) => bail!("describe() did not answer within {}", humantime::format_duration(DESCRIBE_TIMEOUT)),
        };
        let d =
            Description { name: info.name, version: info.version, job_types: info.job_types, contract: pre.version() };
        check_description(&d)?;
        Ok(d)
    }

    /// Runs one attempt of `job` and reports what happened. Never fails:
    /// every failure is an outcome.
    pub async fn run(&self, job: &JobInput) -> Report {
        self.run_with_timeout(job.clone(), None).await
    }

    /// As `run`, with the job's own timeout when it is shorter than the
    /// plugin's (a job cannot lengthen what the operator allowed). Takes the
    /// job by value: its strings move into the guest's job record rather
    /// than being copied (the daemon's dispatcher has no further use for
    /// them).
    pub async fn run_with_timeout(&self, job: JobInput, job_timeout: Option<Duration>) -> Report {
        self.run_reporting(job, job_timeout, None).await
    }

    /// As `run_with_timeout`, telling `on_progress` of each progress the
    /// plugin reports while it runs.
    pub async fn run_reporting(
        &self,
        job: JobInput,
        job_timeout: Option<Duration>,
        on_progress: Option<crate::state::OnProgress>,
    ) -> Report {
        let mut limits = self.context.limits.clone();
        if let Some(t) = job_timeout {
            limits.timeout = limits.timeout.min(t);
        }
        let jobs_per_instance = limits.isolation.jobs_per_instance();
        // An idle instance of this plugin's (under `isolation = "instance"`),
        // else the spare, if one was made, else a store of its own. Either
        // way the job's deadline runs from now.
        let idle = if jobs_per_instance > 1 { self.idle.lock().unwrap().pop() } else { None };
        let (mut store, mut ready, served) = match idle {
            Some(Idle { mut store, bindings, served, slot }) => {
                drop(slot);
                store.data_mut().next_job(job.queue.clone());
                (store, Some((bindings, Duration::ZERO)), served)
            }
            None => match self.spare.lock().unwrap().take() {
                Some(Spare { mut store, bindings, instantiate, slot }) => {
                    drop(slot);
                    store.data_mut().queue = job.queue.clone();
                    (store, Some((bindings, instantiate)), 0)
                }
                None => (new_store(&self.engine, self.context.clone(), job.queue.clone()), None, 0),
            },
        };
        store.data_mut().on_progress = on_progress;
        store.data_mut().job = Some(JobRef { queue: job.queue.clone(), id: job.id.clone() });
        arm(&mut store, limits.timeout);
        // A spare's instantiation is reported as its job's, as is its time.
        let ahead = ready.as_ref().map_or(Duration::ZERO, |(_, took)| *took);
        let started = Instant::now();
        let mut instantiate = Duration::ZERO;
        let call = async {
            let bindings = match ready.take() {
                Some((bindings, took)) => {
                    instantiate = took;
                    bindings
                }
                None => {
                    let bindings = self.pre.instantiate(&mut store).await.map_err(|e| (FaultKind::Instantiation, e))?;
                    instantiate = started.elapsed();
                    bindings
                }
            };
            let out = bindings.handle(&mut store, job).await.map_err(|e| (FaultKind::Trap, e))?;
            Ok((out, bindings))
        };
        let result = tokio::time::timeout(limits.timeout + HOST_GRACE, call).await;
        let duration = started.elapsed() + ahead;
        // The instance, kept only while its call returned.
        let (result, bindings) = match result {
            Ok(Ok((out, bindings))) => (Ok(Ok(out)), Some(bindings)),
            Ok(Err(e)) => (Ok(Err(e)), None),
            Err(elapsed) => (Err(elapsed), None),
        };

        let state = store.data_mut();
        let stderr = state.log.lock().unwrap().stderr_text();
        let outcome = match result {
            Err(_) => Outcome::Fault(fault::timed_out_in_host(limits.timeout)),
            Ok(Err((FaultKind::Instantiation, e))) => Outcome::Fault(Fault {
                kind: FaultKind::Instantiation,
                message: format!("{:#}", anyhow::Error::from(e)),
                backtrace: None,
            }),
            Ok(Err((_, e))) => Outcome::Fault(fault::classify(&e, limits.timeout, &stderr)),
            Ok(Ok(Ok(None))) => Outcome::Completed { output: None },
            Ok(Ok(Ok(Some(text)))) if text.len() as u64 > limits.output_bytes => Outcome::Fault(Fault {
                kind: FaultKind::InvalidOutput,
                message: format!(
                    "the output is {} bytes, over the plugin's limit of {} (max_output_bytes)",
                    text.len(),
                    limits.output_bytes
                ),
                backtrace: None,
            }),
            Ok(Ok(Ok(Some(text)))) => match serde_json::from_str(&text) {
                Ok(value) => Outcome::Completed { output: Some(value) },
                Err(e) => Outcome::Fault(Fault {
                    kind: FaultKind::InvalidOutput,
                    message: format!("the output is not JSON ({e}): {}", text.chars().take(200).collect::<String>()),
                    backtrace: None,
                }),
            },
            Ok(Ok(Err(failure))) => failure,
        };
        let (follow_ups, flows) = if outcome.is_success() {
            (std::mem::take(&mut state.follow_ups), std::mem::take(&mut state.flows))
        } else {
            let n = state.follow_ups.len() + state.flows.iter().map(|f| f.jobs.len()).sum::<usize>();
            if n > 0 {
                state.log.lock().unwrap().push(
                    LogLevel::Info,
                    LogSource::Host,
                    format!("{n} follow-up job(s) discarded: they are enqueued only when the attempt succeeds"),
                );
            }
            (Vec::new(), Vec::new())
        };
        let (log, log_truncated) = state.log.lock().unwrap().finish();
        let report = Report {
            outcome,
            log,
            log_truncated,
            progress: state.progress,
            follow_ups,
            flows,
            emails: std::mem::take(&mut state.emails),
            duration,
            instantiate,
            instance_job: served + 1,
            memory_peak: state.limiter.peak as u64,
        };
        // Kept for the next job only after a completed one, short of its
        // bound, holding few host resources, and while a slot for idle
        // instances is free. A job that
        // failed in any way may have left the guest's state half-changed,
        // so its instance goes with it.
        if let Some(bindings) = bindings
            && matches!(report.outcome, Outcome::Completed { .. })
            && served + 1 < jobs_per_instance
            && store.data_mut().host_resources() <= MAX_IDLE_RESOURCES
            && let Some(slot) = self.spare_slots.acquire()
        {
            // Nothing of this job's may stay reachable from the idle store.
            store.data_mut().on_progress = None;
            store.data_mut().job = None;
            self.idle.lock().unwrap().push(Idle { store, bindings, served: served + 1, slot });
        }
        report
    }
}

impl Plugin {
    /// Makes the instance this plugin's next job will take, unless one is
    /// waiting or being made, or none can be (no spare slot free, or a
    /// spare of this version failed before). The daemon calls it after
    /// each job, once the job's own store is gone (its pool slot, still
    /// warm, is the one the spare takes); `runner exec`, which runs one
    /// job, does not. Never fails: without a spare, the next job
    /// instantiates its own, as it would have.
    pub async fn prepare(&self) {
        if self.no_spares.load(Ordering::Relaxed) || self.spare.lock().unwrap().is_some() {
            return;
        }
        // An idle instance will serve the next job: no spare is needed.
        if !self.idle.lock().unwrap().is_empty() {
            return;
        }
        if self.preparing.swap(true, Ordering::AcqRel) {
            return;
        }
        // Cleared however this ends, dropped futures included.
        struct Preparing<'a>(&'a AtomicBool);
        impl Drop for Preparing<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _preparing = Preparing(&self.preparing);
        let Some(slot) = self.spare_slots.acquire() else { return };
        let timeout = self.context.limits.timeout;
        let mut store = new_store(&self.engine, self.context.clone(), String::new());
        arm(&mut store, timeout);
        let started = Instant::now();
        match tokio::time::timeout(timeout + HOST_GRACE, self.pre.instantiate(&mut store)).await {
            Ok(Ok(bindings)) => {
                let spare = Spare { store, bindings, instantiate: started.elapsed(), slot };
                *self.spare.lock().unwrap() = Some(spare);
            }
            outcome => {
                self.no_spares.store(true, Ordering::Relaxed);
                let why = match outcome {
                    Ok(Err(e)) => format!("{:#}", anyhow::Error::from(e)),
                    _ => format!("no instance within {}", humantime::format_duration(timeout)),
                };
                tracing::debug!(plugin = %self.context.name, error = %why, "no instance made ahead of jobs; each job instantiates its own");
            }
        }
    }

    /// Whether an instance is waiting for the next job (for tests).
    pub fn has_spare(&self) -> bool {
        self.spare.lock().unwrap().is_some()
    }

    /// How many instances that completed a job wait for the next one
    /// (`isolation = "instance"`).
    pub fn idle_instances(&self) -> usize {
        self.idle.lock().unwrap().len()
    }
}

fn new_store(engine: &Engine, context: Arc<PluginContext>, queue: String) -> Store<JobState> {
    let mut store = Store::new(engine, JobState::new(context, queue));
    store.limiter(|s| &mut s.limiter);
    store
}

/// Gives a store its deadline, `timeout` from now. Every tick, a running
/// guest yields to tokio: a plugin spinning in a loop then holds a worker
/// thread for at most a tick at a time, so the other jobs, the API and the
/// heartbeats go on. Past its timeout it traps.
fn arm(store: &mut Store<JobState>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_is_bounded_before_it_reaches_redis() {
        let d = |name: &str, version: &str, types: &[&str]| Description {
            name: name.into(),
            version: version.into(),
            job_types: types.iter().map(|t| t.to_string()).collect(),
            contract: crate::contract::Version::V0_2,
        };
        assert!(check_description(&d("thumbs", "1.4.0-rc.1+build 7", &["resize"])).is_ok());
        let err = |d: Description| check_description(&d).unwrap_err().to_string();
        assert!(err(d("", "1", &["t"])).contains("the name ``"));
        assert!(err(d("a b", "1", &["t"])).contains("letters, digits"));
        assert!(err(d(&"n".repeat(65), "1", &["t"])).contains("1 to 64"));
        let long = err(d("ok", &"v".repeat(10_000), &["t"]));
        assert!(long.contains("at most 64 bytes") && long.len() < 300, "the error quotes a bounded part: {long}");
        assert!(err(d("ok", "1\n2", &["t"])).contains("no control characters"));
        assert!(err(d("ok", "1", &[])).contains("no job types"));
        assert!(err(d("ok", "1", &["bad type!"])).starts_with("describe():"));
    }
}
