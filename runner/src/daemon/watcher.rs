//! Watches the plugins folder and the config file, and tells the daemon
//! what changed once things are quiet.
//!
//! Editors and `cargo build` write a file in several steps (truncate,
//! write, rename), so events are debounced: a change is reported when no
//! event has arrived for `DEBOUNCE`.

use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Quiet time before a change is acted on: long enough for a multi-step
/// write to finish, short enough that a reload is well under a second.
pub const DEBOUNCE: Duration = Duration::from_millis(150);
/// The longest a change waits while events keep coming.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(1);

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || a.canonicalize().ok().zip(b.canonicalize().ok()).is_some_and(|(x, y)| x == y)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `.wasm` files created or modified (or removed: the daemon checks).
    Plugins(BTreeSet<PathBuf>),
    Config,
}

/// Starts watching; changes arrive on the returned channel. The watcher
/// stops when the returned guard is dropped.
pub fn watch(
    plugins_dir: &Path,
    config_file: Option<&Path>,
) -> notify::Result<(notify::RecommendedWatcher, mpsc::Receiver<Change>)> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<notify::Event>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event {
            let _ = raw_tx.send(e);
        }
    })?;
    watcher.watch(plugins_dir, RecursiveMode::NonRecursive)?;
    let config_file = config_file.map(|p| p.canonicalize().unwrap_or_else(|_| p.to_path_buf()));
    if let Some(cfg) = &config_file {
        // Watch the folder: editors replace the file, which would end a
        // watch on the file itself.
        watcher.watch(cfg.parent().unwrap_or(Path::new(".")), RecursiveMode::NonRecursive)?;
    }
    let (tx, rx) = mpsc::channel(16);
    let plugins_dir = plugins_dir.to_path_buf();
    // Only these paths count: other files in the same folders (a log file
    // beside the config) must neither trigger nor delay a reload.
    let relevant = move |p: &Path| -> Option<bool> {
        if p.extension().is_some_and(|x| x == "wasm") && p.parent().is_some_and(|d| same_dir(d, &plugins_dir)) {
            return Some(false);
        }
        let cfg = config_file.as_ref()?;
        let cfg_dir = cfg.parent()?;
        (p.file_name() == cfg.file_name() && p.parent().is_some_and(|d| same_dir(d, cfg_dir))).then_some(true)
    };
    tokio::spawn(async move {
        loop {
            let mut plugins = BTreeSet::new();
            let mut config = false;
            let mut note = |e: notify::Event| {
                if matches!(e.kind, notify::EventKind::Access(_)) {
                    return false;
                }
                let mut any = false;
                for p in e.paths {
                    match relevant(&p) {
                        Some(true) => config = true,
                        Some(false) => {
                            plugins.insert(p);
                        }
                        None => continue,
                    }
                    any = true;
                }
                any
            };
            // Wait for a relevant event, then until things are quiet (but
            // no longer than MAX_DEBOUNCE, so a busy folder cannot starve it).
            loop {
                let Some(e) = raw_rx.recv().await else { return };
                if note(e) {
                    break;
                }
            }
            let deadline = tokio::time::Instant::now() + MAX_DEBOUNCE;
            while let Ok(Some(e)) =
                tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + DEBOUNCE), raw_rx.recv()).await
            {
                note(e);
            }
            if config && tx.send(Change::Config).await.is_err() {
                return;
            }
            if !plugins.is_empty() && tx.send(Change::Plugins(plugins)).await.is_err() {
                return;
            }
        }
    });
    Ok((watcher, rx))
}
