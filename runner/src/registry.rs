//! The plugins a runner serves, by job type, swapped atomically on reload.
//!
//! Duties:
//! 1. load every `*.wasm` in the plugins folder, and again when one changes;
//! 2. swap a new version in only once it has compiled, linked and described
//!    itself; a version that fails leaves the old one serving, and the error
//!    is kept for the API and logged;
//! 3. answer "which plugin handles type X" for each job. A job holds an
//!    `Arc<Plugin>` for its whole run, so jobs in flight finish on the
//!    version they started with;
//! 4. keep identity the operator's: a file gets the config section bound
//!    to it (`file`, or `NAME.wasm`; its `sha256` pin checked), or none
//!    and no grants, whatever name the plugin gives itself; and a file
//!    that claims a job type another loaded file serves is refused, so
//!    that no plugin takes over another's jobs;
//! 5. know which files are still loading at start (`begin_loading`), so
//!    that `/ready` can name them and a job whose type no loaded plugin
//!    serves can wait for them rather than fail (`wait_loading`).

use crate::config::{Config, Limits};
use anyhow::{Context, anyhow, bail};
use jobrunner_host::{Host, Plugin};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
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
    /// The operator's name: the config section bound to the file, or the
    /// file's name when none is.
    pub name: Option<String>,
    /// What the plugin's `describe()` calls it.
    pub declared_name: Option<String>,
    pub version: Option<String>,
    /// The contract version it is built against (`0.1`, `0.2`).
    pub contract: Option<jobrunner_host::contract::Version>,
    pub sha256: Option<String>,
    pub job_types: Vec<String>,
    pub limits: Option<Limits>,
    /// What the operator granted it (names of secrets, never values).
    pub grants: Option<jobrunner_host::settings::GrantsShown>,
    pub loaded_at_ms: Option<u64>,
    pub last_error: Option<String>,
    pub reloads: u64,
    pub history: VecDeque<ReloadEvent>,
    /// Its first load is under way (compiling, most of the time).
    pub loading: bool,
}

impl PluginStatus {
    fn new(file: &Path) -> Self {
        PluginStatus {
            file: file.to_path_buf(),
            name: None,
            declared_name: None,
            version: None,
            contract: None,
            sha256: None,
            job_types: vec![],
            limits: None,
            grants: None,
            loaded_at_ms: None,
            last_error: None,
            reloads: 0,
            history: VecDeque::new(),
            loading: false,
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

pub struct Registry {
    /// Job type → plugin; replaced whole, so a reader never sees half a swap.
    by_type: RwLock<Arc<HashMap<String, Arc<Plugin>>>>,
    files: Mutex<Files>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// How many files announced by `begin_loading` have not finished
    /// their load yet; watched by jobs waiting for their plugin.
    loading: tokio::sync::watch::Sender<usize>,
    /// The files announced by `begin_loading`: while they load (smallest
    /// first), two of them claiming one job type are settled by name, as
    /// if loaded in name order, whatever their sizes.
    boot: Mutex<BTreeSet<PathBuf>>,
}

impl Registry {
    pub fn new(metrics: Option<Arc<crate::metrics::Metrics>>) -> Registry {
        Registry {
            by_type: RwLock::default(),
            files: Mutex::default(),
            metrics,
            loading: tokio::sync::watch::Sender::new(0),
            boot: Mutex::default(),
        }
    }

    /// Announces files about to be loaded (at start, in the background):
    /// they are listed, marked loading, until their load ends either way.
    pub fn begin_loading(&self, files: &[PathBuf]) {
        self.boot.lock().unwrap().extend(files.iter().cloned());
        let mut known = self.files.lock().unwrap();
        let mut added = 0;
        for file in files {
            let entry = known.entry(file.clone()).or_insert_with(|| (None, PluginStatus::new(file)));
            if !entry.1.loading {
                entry.1.loading = true;
                added += 1;
            }
        }
        self.loading.send_modify(|n| *n += added);
    }

    /// The files whose first load is still under way.
    pub fn loading(&self) -> BTreeSet<PathBuf> {
        self.files.lock().unwrap().iter().filter(|(_, (_, s))| s.loading).map(|(f, _)| f.clone()).collect()
    }

    /// Whether any announced file is still loading.
    pub fn is_loading(&self) -> bool {
        *self.loading.borrow() > 0
    }

    /// Returns once no announced file is still loading.
    pub async fn wait_loading(&self) {
        let mut seen = self.loading.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail here.
        let _ = seen.wait_for(|n| *n == 0).await;
    }

    /// The plugin for `job_type` once one serves it, or `None` once no
    /// announced file is left loading without one having come.
    pub async fn wait_for_type(&self, job_type: &str) -> Option<Arc<Plugin>> {
        let mut seen = self.loading.subscribe();
        loop {
            // Checked after subscribing, so a load that ends in between is
            // seen either here or as a change. A load indexes its types
            // before it counts itself done.
            if let Some(plugin) = self.get(job_type) {
                return Some(plugin);
            }
            if *seen.borrow_and_update() == 0 || seen.changed().await.is_err() {
                return self.get(job_type);
            }
        }
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
        let result = self.load_file(host, config, file).await;
        // Its first load is over, however it went.
        let mut files = self.files.lock().unwrap();
        if let Some((_, status)) = files.get_mut(file)
            && std::mem::take(&mut status.loading)
        {
            self.loading.send_modify(|n| *n = n.saturating_sub(1));
        }
        result
    }

    async fn load_file(&self, host: &Host, config: &Config, file: &Path) -> Result<(), String> {
        let started = Instant::now();
        let file_name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let result = async {
            let bytes = tokio::fs::read(file).await.with_context(|| format!("cannot read {}", file.display()))?;
            if let Some((section, Some(pin))) = config.section_for_file(&file_name) {
                let sha = hex::encode(Sha256::digest(&bytes));
                if !sha.eq_ignore_ascii_case(pin) {
                    bail!("its SHA-256 is {sha}, not the {pin} that plugins.{section}.sha256 pins");
                }
            }
            // The section is the file's, not the one the plugin names.
            host.load(bytes, |_| config.settings_for_file(&file_name)).await
        }
        .await
        .with_context(|| format!("plugin {}", file.display()));
        let mut files = self.files.lock().unwrap();
        if let Ok((plugin, _)) = &result {
            self.settle_by_name(&mut files, file, &plugin.description.job_types);
        }
        // A job type is served by one file: a file claiming one that another
        // loaded file serves is refused (its previous version, if any, keeps
        // serving), rather than take over the other's jobs.
        let result = result.and_then(|(plugin, info)| {
            let taken: Vec<String> = plugin
                .description
                .job_types
                .iter()
                .filter_map(|t| {
                    let owner = files.iter().find(|(f, (p, _))| {
                        f.as_path() != file && p.as_ref().is_some_and(|p| p.description.job_types.contains(t))
                    })?;
                    Some(format!("`{t}` (served by {})", owner.0.display()))
                })
                .collect();
            if taken.is_empty() {
                Ok((plugin, info))
            } else {
                Err(anyhow!(
                    "plugin {} claims job types another plugin serves: {}; a job type has one plugin, so this one is not loaded",
                    file.display(),
                    taken.join(", ")
                ))
            }
        });
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
                tracing::info!(file = %file.display(), plugin = %plugin.name(), declared = %d.name, version = %d.version, sha256 = %&plugin.sha256[..12], "plugin loaded");
                // Shared instances widen the default isolation: say so.
                if let jobrunner_host::Isolation::Instance { max_jobs_per_instance } = plugin.limits().isolation {
                    tracing::warn!(
                        plugin = %plugin.name(),
                        max_jobs_per_instance,
                        "isolation = \"instance\": this plugin's jobs share instances (globals and heap carry over from one completed job to the next)"
                    );
                }
                // Before sections were bound to files, a plugin took the
                // section of the name it declared: say why it has none now.
                if config.section_for_file(&file_name).is_none() && config.plugins.contains_key(&d.name) {
                    tracing::warn!(
                        file = %file.display(),
                        "this plugin says it is `{}`, but [plugins.{}] is for another file, so it runs with no grants; if it is that plugin, add `file = \"{file_name}\"` to the section",
                        d.name,
                        d.name
                    );
                }
                let status = &mut entry.1;
                status.name = Some(plugin.name().to_string());
                status.declared_name = Some(d.name.clone());
                status.version = Some(d.version.clone());
                status.contract = Some(d.contract);
                status.sha256 = Some(plugin.sha256.clone());
                status.job_types = d.job_types.clone();
                status.limits = Some(plugin.limits().clone());
                status.grants = Some(plugin.grants().shown());
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

    /// While the files of the start load (smallest first), a file that
    /// claims a job type one of them already serves takes it over when its
    /// name comes first: the same file serves a type whatever the files'
    /// sizes, as when they loaded in name order. The one displaced is
    /// refused as a later file would have been.
    fn settle_by_name(&self, files: &mut Files, file: &Path, job_types: &[String]) {
        let boot = self.boot.lock().unwrap();
        if !self.is_loading() || !boot.contains(file) {
            return;
        }
        for (other, (plugin, status)) in files.iter_mut() {
            let displaced = other.as_path() > file
                && boot.contains(other)
                && plugin.as_ref().is_some_and(|p| p.description.job_types.iter().any(|t| job_types.contains(t)));
            if displaced {
                let message = format!(
                    "plugin {} claims job types that {} also claims, which comes first by name among the plugins loaded at start; a job type has one plugin, so this one is not loaded",
                    other.display(),
                    file.display()
                );
                tracing::error!(file = %other.display(), error = %message, "plugin refused");
                *plugin = None;
                status.last_error = Some(message.clone());
                status.record("failed", message);
            }
        }
    }

    /// The files known but not serving (refused or broken), to try again
    /// when a removal may have freed the job types one was refused for.
    pub fn not_serving(&self) -> Vec<PathBuf> {
        self.files.lock().unwrap().iter().filter(|(_, (p, _))| p.is_none()).map(|(f, _)| f.clone()).collect()
    }

    /// Forgets a file that was deleted: its job types are no longer served.
    pub fn remove(&self, file: &Path) {
        let mut files = self.files.lock().unwrap();
        if let Some((_, status)) = files.remove(file) {
            if status.loading {
                self.loading.send_modify(|n| *n = n.saturating_sub(1));
            }
            tracing::info!(file = %file.display(), "plugin removed");
            self.reindex(&mut files);
            self.count("removed");
        }
    }

    /// Rebuilds the type index. `load` refuses a file that claims a type
    /// another serves; should two still claim one (a file removed and
    /// loaded again in another order), the first by file name serves it,
    /// and the other's status says so.
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
