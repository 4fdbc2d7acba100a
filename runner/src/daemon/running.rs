//! The job attempts running on this runner now: counted per queue in the
//! `jobs_running` metric and kept by id with their start, so that the
//! heartbeat can tell the dashboard's Busy page what runs here and for how
//! long (the queue's records say a job is active, not since when).
//!
//! A `Running` guard holds each entry from the job's start until it is
//! dropped, however the run ends.

use crate::metrics::Metrics;
use jobrunner_queue::runners::RunningJob;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Running jobs reported in one heartbeat, the longest-running first: a
/// bound on the heartbeat's size whatever the concurrency.
pub const REPORTED: usize = 200;

/// Keyed by a number of its own per attempt (not by queue and id, which
/// would cost two more strings a job on the hot path).
#[derive(Default)]
pub struct RunningJobs {
    next: AtomicU64,
    jobs: Mutex<HashMap<u64, RunningJob>>,
}

/// One job attempt counted as running until dropped.
pub struct Running {
    gauge: prometheus::IntGauge,
    key: u64,
    jobs: Arc<RunningJobs>,
}

impl RunningJobs {
    pub fn start(self: &Arc<Self>, metrics: &Metrics, queue: &str, id: &str, job_type: &str) -> Running {
        let gauge = metrics.running.with_label_values(&[queue]);
        gauge.inc();
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let job = RunningJob {
            queue: queue.to_string(),
            id: id.to_string(),
            job_type: job_type.to_string(),
            started_at_ms: now_ms(),
        };
        self.jobs.lock().unwrap().insert(key, job);
        Running { gauge, key, jobs: self.clone() }
    }

    /// Up to `REPORTED` running jobs, the longest-running first.
    pub fn longest(&self) -> Vec<RunningJob> {
        let mut all: Vec<RunningJob> = self.jobs.lock().unwrap().values().cloned().collect();
        all.sort_by_key(|j| j.started_at_ms);
        all.truncate(REPORTED);
        all
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.gauge.dec();
        self.jobs.jobs.lock().unwrap().remove(&self.key);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
