//! This runner's figures per plugin version (`jobrunner_queue::plugin_stats`),
//! counted as each attempt ends (`dispatcher::observe`, for native and
//! BullMQ-backed queues alike) and sent in each heartbeat, where the
//! dashboard's Plugins page adds up every runner's.
//!
//! A version no longer loaded keeps its figures (the page compares it with
//! the one that replaced it) until more than `KEPT_PER_PLUGIN` versions of
//! one plugin have figures: then the oldest goes.

use crate::registry::PluginStatus;
use jobrunner_host::Plugin;
use jobrunner_job::{Outcome, Report};
use jobrunner_queue::plugin_stats::{Ended, PluginStats};
use jobrunner_queue::runners::PluginBrief;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Versions of one plugin whose figures are kept.
pub const KEPT_PER_PLUGIN: usize = 5;

/// Plugin name, then version: looked up by `&str` on each attempt, so the
/// hot path makes no strings.
#[derive(Default)]
pub struct PluginStatsBook {
    by_plugin: Mutex<BTreeMap<String, BTreeMap<String, PluginStats>>>,
}

impl PluginStatsBook {
    pub fn record(&self, plugin: &Plugin, report: &Report) {
        let ended = match &report.outcome {
            Outcome::Completed { .. } => Ended::Completed,
            Outcome::Retry { .. } | Outcome::RetryAfter { .. } | Outcome::Permanent { .. } => Ended::Failed,
            Outcome::Fault(f) => Ended::Fault(fault_kind(f.kind)),
        };
        // A reused instance was not instantiated for its job.
        let instantiate = (report.instance_job <= 1).then_some(report.instantiate);
        let now = jobrunner_queue::stats::now_ms();
        let mut by_plugin = self.by_plugin.lock().unwrap();
        // Looked up twice rather than through `entry`, which would make the
        // name a `String` on every attempt.
        if !by_plugin.contains_key(plugin.name()) {
            by_plugin.insert(plugin.name().to_string(), BTreeMap::new());
        }
        let versions = by_plugin.get_mut(plugin.name()).expect("inserted above");
        let version = plugin.description.version.as_str();
        if !versions.contains_key(version) {
            if versions.len() >= KEPT_PER_PLUGIN
                && let Some(oldest) = versions.iter().min_by_key(|(_, s)| s.since_ms).map(|(v, _)| v.clone())
            {
                versions.remove(&oldest);
            }
            versions.insert(version.to_string(), PluginStats::default());
        }
        let stats = versions.get_mut(version).expect("inserted above");
        stats.memory_cap = plugin.limits().memory_bytes;
        stats.record(ended, report.duration, instantiate, report.memory_peak, now);
    }

    /// The heartbeat's list: each loaded plugin with its types and this
    /// version's figures, then the versions no longer loaded that still
    /// have figures (no types).
    pub fn briefs(&self, statuses: Vec<PluginStatus>) -> Vec<PluginBrief> {
        let by_plugin = self.by_plugin.lock().unwrap();
        let mut out: Vec<PluginBrief> = statuses
            .into_iter()
            .filter(|p| !p.job_types.is_empty())
            .map(|p| {
                let name = p.name.unwrap_or_else(|| p.file.display().to_string());
                let version = p.version.unwrap_or_default();
                let stats = by_plugin.get(&name).and_then(|v| v.get(&version)).cloned().unwrap_or_default();
                PluginBrief { name, version, job_types: p.job_types, stats }
            })
            .collect();
        for (name, versions) in by_plugin.iter() {
            for (version, stats) in versions {
                if !out.iter().any(|b| &b.name == name && &b.version == version) {
                    out.push(PluginBrief {
                        name: name.clone(),
                        version: version.clone(),
                        job_types: vec![],
                        stats: stats.clone(),
                    });
                }
            }
        }
        out
    }
}

/// The short names the Plugins page groups faults by.
fn fault_kind(kind: jobrunner_job::FaultKind) -> &'static str {
    use jobrunner_job::FaultKind::*;
    match kind {
        Timeout => "timeout",
        MemoryLimit => "memory",
        StackOverflow => "stack overflow",
        Panic => "panic",
        Trap => "trap",
        Instantiation => "instantiation",
        InvalidOutput => "invalid output",
    }
}
