//! End-to-end tests through the real `runner` binary.
//!
//! Layout: `exec` (each plugin on its sample payload, exit codes, errors),
//! `plugin_cmd` (`plugin check` and `plugin new`), `serve` (the daemon),
//! `faults` (crashes, Redis loss, cluster failover, hostile and broken
//! plugins under load), `hosts` (three runner hosts and Redis in network
//! namespaces: a partition, a rolling restart, a slow lossy network),
//! `package` (the Debian package installed and serving a job), `flows` (flows through the daemon, across a
//! `kill -9`), `soak` (a million jobs), `browser` (the dashboard in
//! a real headless Chromium), `parity` (the webhook in Rust, TypeScript and
//! Python alike; the TypeScript and Python templates), `bullmq` (BullMQ-backed queues, with Node's
//! BullMQ as producer, reader and fellow worker), `trust` (attempts spent only
//! by jobs that ran; a Redis that may evict jobs refused).

mod apps;
mod browser;
mod bullmq;
mod clients;
mod exec;
mod faults;
mod flows;
mod hosts;
mod package;
mod parity;
mod plugin_cmd;
mod serve;
mod soak;
mod trust;
mod wait;

use std::path::Path;
use std::process::{Command, Output};

/// Runs the binary in `dir` and returns its output.
pub fn runner(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(dir)
        .args(args)
        .env_remove("RUNNER_CONFIG")
        .output()
        .expect("the runner binary runs")
}

/// The same, from async tests, without blocking the runtime that serves
/// the local receivers the plugin is talking to.
pub async fn runner_async(dir: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(dir)
        .args(args)
        .env_remove("RUNNER_CONFIG")
        .output()
        .await
        .expect("the runner binary runs")
}

/// As `runner_async`, with extra environment.
pub async fn runner_async_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(dir)
        .args(args)
        .env_remove("RUNNER_CONFIG")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("the runner binary runs")
}

/// Installs a Node package folder's dependencies from its lock file
/// (`npm ci`) unless `installed` (a path inside it) shows they are there.
pub fn npm_ci(dir: &Path, installed: &str) {
    if dir.join(installed).exists() {
        return;
    }
    let out = Command::new("npm")
        .current_dir(dir)
        .args(["ci", "--no-audit", "--no-fund"])
        .output()
        .expect("these tests need Node.js and npm on the PATH");
    assert!(out.status.success(), "npm ci in {} failed: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An error is one line on stderr, and exit code 2.
pub fn assert_cli_error(o: &Output, contains: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: ") && err.contains(contains), "{err}");
}
