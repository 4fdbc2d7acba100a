//! What one job's `Store` holds: its WASI context (no files, no environment,
//! no sockets), its HTTP gate, its memory limiter, its log, and what the job
//! produced (progress, follow-up jobs and flows, emails).
//!
//! A store lives for one attempt and is dropped after it, so nothing a
//! plugin does in one job can be seen by the next; except with
//! `isolation = "instance"`, where a completed job's store serves the
//! plugin's next job, its per-job state emptied first (`next_job`) and the
//! guest's memory kept.

use crate::cache::Cache;
use crate::fault::MemoryLimitExceeded;
use crate::http::{HostPattern, HttpGate};
use crate::mail::Mailer;
use crate::settings::{Grants, Limits};
use crate::stdio::{JobLog, LogStream};
use jobrunner_job::flow::{FlowFollowUp, JobRef};
use jobrunner_job::{FollowUp, LogSource, SentEmail};
use std::sync::{Arc, Mutex};
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Tables are the guest's function tables; real plugins use a few thousand
/// entries at most, so a larger growth is a runaway.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The shared services behind the host capabilities.
pub struct Services {
    pub cache: Cache,
    pub mailer: Mailer,
    /// Reads flows' children for `flow.children`; none outside a runner.
    pub flows: Option<Arc<dyn crate::flows::FlowReader>>,
}

impl Services {
    pub fn new(cache: Cache, mailer: Mailer) -> Services {
        Services { cache, mailer, flows: None }
    }

    /// With a reader of flows' children (the runner's, over its queues).
    pub fn with_flows(mut self, reader: Arc<dyn crate::flows::FlowReader>) -> Services {
        self.flows = Some(reader);
        self
    }
}

/// One plugin's name, limits and grants, shared by all its jobs.
pub struct PluginContext {
    pub name: String,
    pub limits: Limits,
    pub grants: Grants,
    pub allowed_hosts: Arc<Vec<HostPattern>>,
    /// The special-purpose networks its HTTP may reach (`host::egress`).
    pub allowed_networks: Arc<crate::egress::NetPolicy>,
    /// What its follow-ups and email may do (`host::grants`).
    pub rules: crate::grants::PluginGrants,
    pub services: Arc<Services>,
}

/// Refuses memory growth past the plugin's cap, recording why, so the
/// fault says "memory limit" rather than a bare allocation failure; and
/// keeps the largest size granted, the instance's peak (a wasm memory
/// never shrinks), which each job's report carries.
pub struct MemoryLimiter {
    cap: usize,
    pub(crate) peak: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            return Err(wasmtime::Error::new(MemoryLimitExceeded { desired, cap: self.cap }));
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Told of each `log.progress` as the plugin reports it (the daemon writes
/// it to the job while it runs). Called on the job's task: it must return
/// at once.
pub type OnProgress = Arc<dyn Fn(u8) + Send + Sync>;

pub struct JobState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    gate: HttpGate,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) log: Arc<Mutex<JobLog>>,
    pub(crate) progress: Option<u8>,
    pub(crate) on_progress: Option<OnProgress>,
    pub(crate) follow_ups: Vec<FollowUp>,
    /// The payload bytes of this attempt's follow-ups and flows so far
    /// (`capabilities::MAX_FOLLOW_UP_BYTES`).
    pub(crate) follow_up_bytes: usize,
    pub(crate) flows: Vec<FlowFollowUp>,
    pub(crate) emails: Vec<SentEmail>,
    /// The queue of the job being handled: the default for follow-ups.
    pub(crate) queue: String,
    /// The job being handled (none while describing or making a spare):
    /// whose children `flow.children` reads.
    pub(crate) job: Option<JobRef>,
    pub(crate) plugin: Arc<PluginContext>,
}

impl JobState {
    pub fn new(plugin: Arc<PluginContext>, queue: String) -> Self {
        let log = Arc::new(Mutex::new(JobLog::new(plugin.limits.log_bytes)));
        let wasi = WasiCtx::builder()
            .stdout(LogStream { log: log.clone(), source: LogSource::Stdout })
            .stderr(LogStream { log: log.clone(), source: LogSource::Stderr })
            // No environment, no arguments, no preopened directories: the
            // calls exist so that any standard library links, and find nothing.
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        JobState {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            gate: HttpGate {
                allowed: plugin.allowed_hosts.clone(),
                networks: plugin.allowed_networks.clone(),
                max_response_bytes: plugin.limits.http_response_bytes,
                log: log.clone(),
            },
            limiter: MemoryLimiter { cap: plugin.limits.memory_bytes as usize, peak: 0 },
            log,
            progress: None,
            on_progress: None,
            follow_ups: Vec::new(),
            follow_up_bytes: 0,
            flows: Vec::new(),
            emails: Vec::new(),
            queue,
            job: None,
            plugin,
        }
    }
}

impl JobState {
    /// How many host resources (streams, pollables, HTTP requests and
    /// bodies...) the guest holds open in this store.
    pub(crate) fn host_resources(&mut self) -> usize {
        self.table.iter_mut().count()
    }

    /// Readies a reused instance's store for its next job: what the last
    /// job produced (its log, progress, follow-ups and emails) was taken
    /// with its report; nothing of it may reach the next one's.
    pub(crate) fn next_job(&mut self, queue: String) {
        self.log.lock().unwrap().reset();
        self.progress = None;
        self.on_progress = None;
        self.follow_ups.clear();
        self.follow_up_bytes = 0;
        self.flows.clear();
        self.emails.clear();
        self.queue = queue;
        self.job = None;
    }
}

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for JobState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.gate }
    }
}
