//! Prometheus metrics of one runner process, served at `/metrics`.
//!
//! Jobs by queue, type and outcome; job duration and wait time; failures by
//! reason; stalls; plugin reloads and their errors; wasm instantiation time,
//! and attempts run in fresh or reused instances (`isolation = "instance"`);
//! Redis errors (each one a reconnection the connection makes by itself);
//! cache hits and misses; jobs started and running now; jobs stopped because their lease
//! could not be kept; and, read at scrape time, the jobs in each queue by
//! state (native and BullMQ-backed alike), whether it is paused, and the
//! age of the job next in line.
//!
//! The signals to scale on (`deploy/README.md` shows an autoscaler's
//! queries): `queue_jobs{state="waiting"}`,
//! `queue_latency_seconds`, and the rates of `jobs_started_total` and
//! `jobs_total`. The queue gauges are the queue's, read from Redis, so
//! every runner reports the same value: take `max by (queue)`, not `sum`.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder, exponential_buckets,
};

pub struct Metrics {
    registry: Registry,
    pub jobs: IntCounterVec,
    pub job_duration: HistogramVec,
    pub job_wait: HistogramVec,
    pub failures: IntCounterVec,
    pub stalls: IntCounterVec,
    pub reloads: IntCounterVec,
    pub instantiate: HistogramVec,
    pub instances: IntCounterVec,
    pub redis_errors: IntCounter,
    pub cache: IntCounterVec,
    pub queue_jobs: IntGaugeVec,
    pub queue_paused: IntGaugeVec,
    pub queue_latency: GaugeVec,
    pub started: IntCounterVec,
    pub lease_stops: IntCounterVec,
    /// Job attempts running now, per queue (`daemon::running` keeps it).
    pub running: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("jobrunner".into()), None).expect("a valid prefix");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("registered once");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("registered once");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("valid metric");
            registry.register(Box::new(h.clone())).expect("registered once");
            h
        };
        // 100 µs to about 100 s.
        let seconds = exponential_buckets(0.0001, 4.0, 11).expect("valid buckets");
        Metrics {
            jobs: counter("jobs_total", "Job attempts finished, by outcome", &["queue", "type", "outcome"]),
            job_duration: histogram(
                "job_duration_seconds",
                "Time a job ran in its plugin",
                &["queue", "type"],
                seconds.clone(),
            ),
            job_wait: histogram("job_wait_seconds", "Time from enqueue to start", &["queue"], seconds.clone()),
            failures: counter("failures_total", "Failed attempts by reason", &["queue", "reason"]),
            stalls: counter("stalls_total", "Jobs whose lease expired and were put back", &["queue"]),
            reloads: counter("plugin_reloads_total", "Plugin loads by outcome (loaded, failed, removed)", &["outcome"]),
            instantiate: histogram(
                "wasm_instantiate_seconds",
                "Time to instantiate a plugin for one job",
                &["plugin"],
                seconds,
            ),
            instances: counter(
                "plugin_instance_jobs_total",
                "Job attempts by the instance they ran in: fresh, or reused (isolation = \"instance\")",
                &["plugin", "instance"],
            ),
            redis_errors: {
                let c = IntCounter::new(
                    "redis_errors_total",
                    "Redis calls that failed (the connection reconnects by itself)",
                )
                .expect("valid metric");
                registry.register(Box::new(c.clone())).expect("registered once");
                c
            },
            cache: counter("cache_requests_total", "Plugin cache reads by result (hit, miss)", &["result"]),
            queue_jobs: gauge(
                "queue_jobs",
                "Jobs in each queue by state, read at scrape",
                &["queue", "backend", "state"],
            ),
            queue_paused: gauge("queue_paused", "1 if the queue is paused", &["queue", "backend"]),
            queue_latency: {
                let g = GaugeVec::new(
                    Opts::new(
                        "queue_latency_seconds",
                        "Age of the waiting job next in line (since it was enqueued or became due), read at scrape; 0 when none waits. Without priorities or groups, the oldest waiting job",
                    ),
                    &["queue", "backend"],
                )
                .expect("valid metric");
                registry.register(Box::new(g.clone())).expect("registered once");
                g
            },
            started: counter("jobs_started_total", "Job attempts started (handed to their plugin)", &["queue"]),
            lease_stops: counter(
                "lease_stops_total",
                "Running jobs stopped because their lease was taken by another runner (`lost`), could not be extended before it ran out (`unreachable`: Redis out of reach), or ended in Redis while they ran (`ended`: put back or removed)",
                &["queue", "reason"],
            ),
            running: gauge(
                "jobs_running",
                "Job attempts running on this runner now (in their plugin, or their outcome being recorded)",
                &["queue"],
            ),
            registry,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("encoding to memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
