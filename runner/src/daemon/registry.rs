//! The plugins a runner serves, by job type, swapped atomically on reload.
//!
//! Duties:
//! 1. load every `*.wasm` in the plugins folder, and again when one changes;
//! 2. swap a new version in only once it has compiled, linked and described
//!    itself; a version that fails leaves the old one serving, and the error
//!    is kept for the API and logged;
//! 3. answer "which plugin handles type X" for each job. A job holds an
//!    `Arc<Plugin>` for its whole run, so jobs in flight finish on the
//!    version they started with.

use crate::config::{Config, Limits};
use crate::host::{Host, Plugin};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Reload events kept per plugin file, for the API and dashboard.
const HISTORY: usize = 20;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Debug, Clone, Serialize)]
pub struct ReloadEvent {
    pub at_ms: u64,
    /// `loaded`, `failed` or `removed`.
    pub outcome: String,
    pub detail: String,
}

/// What the API shows of one plugin file.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub file: PathBuf,
    pub name: Option<String>,
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub job_types: Vec<String>,
    pub limits: Option<Limits>,
    pub loaded_at_ms: Option<u64>,
    pub last_error: Option<String>,
    pub reloads: u64,
    pub history: VecDeque<ReloadEvent>,
}

impl PluginStatus {
    fn new(file: &Path) -> Self {
        PluginStatus {
            file: file.to_path_buf(),
            name: None,
            version: None,
            sha256: None,
            job_types: vec![],
            limits: None,
            loaded_at_ms: None,
            last_error: None,
            reloads: 0,
            history: VecDeque::new(),
        }
    }

    fn record(&mut self, outcome: &str, detail: String) {
        self.history.push_back(ReloadEvent { at_ms: now_ms(), outcome: outcome.into(), detail });
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }
}

/// Each plugin file: the version serving (if any) and its status.
type Files = BTreeMap<PathBuf, (Option<Arc<Plugin>>, PluginStatus)>;

#[derive(Default)]
pub struct Registry {
    /// Job type → plugin; replaced whole, so a reader never sees half a swap.
    by_type: RwLock<Arc<HashMap<String, Arc<Plugin>>>>,
    files: Mutex<Files>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Registry {
    pub fn new(metrics: Option<Arc<crate::metrics::Metrics>>) -> Registry {
        Registry { metrics, ..Default::default() }
    }

    fn count(&self, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.reloads.with_label_values(&[outcome]).inc();
        }
    }

    pub fn get(&self, job_type: &str) -> Option<Arc<Plugin>> {
        self.by_type.read().unwrap().get(job_type).cloned()
    }

    pub fn statuses(&self) -> Vec<PluginStatus> {
        self.files.lock().unwrap().values().map(|(_, s)| s.clone()).collect()
    }

    /// Whether every known plugin file is loaded (for readiness).
    pub fn all_loaded(&self) -> bool {
        self.files.lock().unwrap().values().all(|(p, _)| p.is_some())
    }

    /// Loads (or reloads) one file. On failure the previous version, if
    /// any, keeps serving. Returns the error for the caller to report.
    pub async fn load(&self, host: &Host, config: &Config, file: &Path) -> Result<(), String> {
        let started = Instant::now();
        let result = host.load_file(file, |name| config.plugin_settings(name)).await;
        let mut files = self.files.lock().unwrap();
        let entry = files.entry(file.to_path_buf()).or_insert_with(|| (None, PluginStatus::new(file)));
        match result {
            Ok((plugin, info)) => {
                let d = &plugin.description;
                let detail = format!(
                    "{} {} ({} job types, {:?} in {} ms)",
                    d.name,
                    d.version,
                    d.job_types.len(),
                    info.compile,
                    started.elapsed().as_millis()
                );
                tracing::info!(file = %file.display(), plugin = %d.name, version = %d.version, sha256 = %&plugin.sha256[..12], "plugin loaded");
                let status = &mut entry.1;
                status.name = Some(d.name.clone());
                status.version = Some(d.version.clone());
                status.sha256 = Some(plugin.sha256.clone());
                status.job_types = d.job_types.clone();
                status.limits = Some(plugin.limits().clone());
                status.loaded_at_ms = Some(now_ms());
                status.last_error = None;
                status.reloads += 1;
                status.record("loaded", detail);
                entry.0 = Some(Arc::new(plugin));
                self.reindex(&mut files);
                self.count("loaded");
                Ok(())
            }
            Err(e) => {
                let message = format!("{e:#}");
                tracing::error!(file = %file.display(), error = %message, "plugin failed to load; the previous version (if any) keeps serving");
                entry.1.last_error = Some(message.clone());
                entry.1.record("failed", message.clone());
                self.count("failed");
                Err(message)
            }
        }
    }

    /// Forgets a file that was deleted: its job types are no longer served.
    pub fn remove(&self, file: &Path) {
        let mut files = self.files.lock().unwrap();
        if files.remove(file).is_some() {
            tracing::info!(file = %file.display(), "plugin removed");
            self.reindex(&mut files);
            self.count("removed");
        }
    }

    /// Rebuilds the type index. Two files claiming one type: the first by
    /// file name serves it, and the other's status says so.
    fn reindex(&self, files: &mut Files) {
        let mut index: HashMap<String, Arc<Plugin>> = HashMap::new();
        let mut owners: HashMap<String, PathBuf> = HashMap::new();
        for (file, (plugin, status)) in files.iter_mut() {
            let Some(plugin) = plugin else { continue };
            for t in &plugin.description.job_types {
                if let Some(owner) = owners.get(t) {
                    status.last_error = Some(format!("job type `{t}` is already served by {}", owner.display()));
                    continue;
                }
                owners.insert(t.clone(), file.clone());
                index.insert(t.clone(), plugin.clone());
            }
        }
        *self.by_type.write().unwrap() = Arc::new(index);
    }
}
