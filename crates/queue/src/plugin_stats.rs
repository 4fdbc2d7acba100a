//! What a runner says of each plugin version it ran, in its heartbeat
//! (`runners.rs`), for the dashboard's Plugins page: attempts by outcome,
//! faults by kind, durations and instantiation times as histograms, and
//! the largest memory an instance reached against its cap. The page adds
//! up the reports of every runner alive, so its figures cover the runners
//! there are now, since each of them started.
//!
//! Histograms are sparse, with buckets 20% wide (from 1 µs), so that any
//! number of jobs fits in a few hundred bytes and two runners' histograms
//! merge by adding their buckets; a percentile read from one is the upper
//! edge of its bucket, at most 20% above the true value.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Each bucket's upper edge is this times the one before.
const GROWTH: f64 = 1.2;

/// A histogram of durations: bucket `i` counts those in
/// `(GROWTH^(i-1), GROWTH^i]` microseconds (bucket 0: up to 1 µs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    pub buckets: BTreeMap<u16, u64>,
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let micros = d.as_secs_f64() * 1e6;
        let i = if micros <= 1.0 { 0 } else { (micros.ln() / GROWTH.ln()).ceil().min(u16::MAX as f64) as u16 };
        *self.buckets.entry(i).or_default() += 1;
    }

    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (i, n) in &other.buckets {
            *self.buckets.entry(*i).or_default() += n;
        }
    }

    /// The `q` quantile (0 to 1): the upper edge of the bucket where the
    /// count reaches it; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let want = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in &self.buckets {
            seen += n;
            if seen >= want {
                return Some(Duration::from_secs_f64(GROWTH.powi(i32::from(*i)) / 1e6));
            }
        }
        None
    }
}

/// One plugin version's figures on one runner (or, merged, on several).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginStats {
    /// Attempts handed to the plugin.
    pub jobs: u64,
    pub completed: u64,
    /// The plugin said the attempt failed (to be retried, or for good).
    pub failed: u64,
    /// Attempts that faulted, by kind (`timeout`, `memory limit exceeded`,
    /// `trap`, `panic`, ...): the plugin did not answer.
    pub faults: BTreeMap<String, u64>,
    pub duration: Histogram,
    /// Instantiation of fresh instances (a reused one's job has none).
    pub instantiate: Histogram,
    /// The largest linear memory any of its instances reached, in bytes.
    pub memory_peak: u64,
    /// Its memory cap, in bytes.
    pub memory_cap: u64,
    /// When the first of these attempts ended (ms since the epoch).
    pub since_ms: u64,
}

/// How one attempt ended, as the stats count it.
pub enum Ended<'a> {
    Completed,
    Failed,
    Fault(&'a str),
}

impl PluginStats {
    pub fn record(
        &mut self,
        ended: Ended<'_>,
        duration: Duration,
        instantiate: Option<Duration>,
        memory_peak: u64,
        now_ms: u64,
    ) {
        if self.jobs == 0 {
            self.since_ms = now_ms;
        }
        self.jobs += 1;
        match ended {
            Ended::Completed => self.completed += 1,
            Ended::Failed => self.failed += 1,
            Ended::Fault(kind) => *self.faults.entry(kind.to_string()).or_default() += 1,
        }
        self.duration.record(duration);
        if let Some(d) = instantiate {
            self.instantiate.record(d);
        }
        self.memory_peak = self.memory_peak.max(memory_peak);
    }

    /// Adds another runner's figures for the same version.
    pub fn merge(&mut self, other: &PluginStats) {
        if self.jobs == 0 || (other.jobs > 0 && other.since_ms < self.since_ms) {
            self.since_ms = other.since_ms;
        }
        self.jobs += other.jobs;
        self.completed += other.completed;
        self.failed += other.failed;
        for (kind, n) in &other.faults {
            *self.faults.entry(kind.clone()).or_default() += n;
        }
        self.duration.merge(&other.duration);
        self.instantiate.merge(&other.instantiate);
        self.memory_peak = self.memory_peak.max(other.memory_peak);
        self.memory_cap = self.memory_cap.max(other.memory_cap);
    }

    pub fn faulted(&self) -> u64 {
        self.faults.values().sum()
    }

    /// A share of the attempts, in percent.
    pub fn rate(&self, n: u64) -> f64 {
        if self.jobs == 0 { 0.0 } else { n as f64 * 100.0 / self.jobs as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bucket_and_merge_adds() {
        let mut a = PluginStats::default();
        for ms in 1..=100 {
            a.record(Ended::Completed, Duration::from_millis(ms), Some(Duration::from_micros(300)), 1 << 20, 5);
        }
        a.record(Ended::Fault("timeout"), Duration::from_secs(30), None, 2 << 20, 9);
        let p50 = a.duration.quantile(0.5).unwrap();
        assert!(p50 >= Duration::from_millis(51) && p50 <= Duration::from_millis(62), "{p50:?}");
        let p99 = a.duration.quantile(0.99).unwrap();
        assert!(p99 >= Duration::from_millis(100) && p99 <= Duration::from_millis(120), "{p99:?}");
        assert!(a.duration.quantile(1.0).unwrap() >= Duration::from_secs(30));
        assert_eq!(a.instantiate.count(), 100);
        assert_eq!((a.jobs, a.completed, a.faulted(), a.memory_peak), (101, 100, 1, 2 << 20));

        let mut b = PluginStats::default();
        b.record(Ended::Failed, Duration::from_millis(3), Some(Duration::from_micros(200)), 4 << 20, 2);
        // Through JSON, as a heartbeat carries it.
        let b: PluginStats = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        a.merge(&b);
        assert_eq!((a.jobs, a.failed, a.memory_peak, a.since_ms), (102, 1, 4 << 20, 2));
        assert_eq!(a.faults.get("timeout"), Some(&1));
        assert!((a.rate(a.completed) - 100.0 * 100.0 / 102.0).abs() < 1e-9);
        assert_eq!(PluginStats::default().duration.quantile(0.5), None);
    }
}
