//! BullMQ's side of the comparison: the `bullmq` npm package on the
//! machine's Node, one worker with a no-op processor (or the TypeScript
//! template's handler written for BullMQ, `bench/bullmq/template.mjs`),
//! against the same Redis and with the same counts as the runner's side
//! (see `bench/bullmq/bench.mjs`); and BullMQ's Python package running the
//! Python template's handler (`bench/bullmq-python/`).
//!
//! Duties: install the pinned packages once (`npm ci`, from the lock file;
//! pip into a venv under `target/`), run one measure as a child process
//! and read its one line of JSON.

use crate::measure::{Drain, Enqueue, Timing};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct BullMq {
    dir: PathBuf,
    url: String,
}

/// BullMQ's Python package, in a venv of its own.
pub struct BullMqPython {
    dir: PathBuf,
    python: PathBuf,
    url: String,
}

#[derive(Deserialize)]
struct Rate {
    jobs_per_s: f64,
    #[serde(default)]
    commands_per_job: f64,
    #[serde(default)]
    worker_cpu_us: f64,
    #[serde(default)]
    redis_cpu_us: f64,
    #[serde(default)]
    redis_bytes_per_job: f64,
}

impl Rate {
    fn drain(&self) -> Drain {
        Drain {
            jobs_per_s: self.jobs_per_s,
            commands_per_job: self.commands_per_job,
            worker_cpu_us: self.worker_cpu_us,
            redis_cpu_us: self.redis_cpu_us,
        }
    }
}

#[derive(Deserialize)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    add_p50_ms: f64,
}

impl BullMq {
    /// Installs the package when `node_modules` is missing.
    pub fn prepare(workspace: &Path, redis_url: &str) -> Result<BullMq> {
        let dir = workspace.join("bench/bullmq");
        let node = Command::new("node").arg("--version").output();
        if !node.is_ok_and(|o| o.status.success()) {
            bail!("--bullmq needs Node.js (node and npm) on the PATH");
        }
        if !dir.join("node_modules/bullmq").exists() {
            eprintln!("$ npm ci (in {})", dir.display());
            let ok = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .context("cannot run npm")?;
            if !ok.success() {
                bail!("npm ci failed in {}", dir.display());
            }
        }
        Ok(BullMq { dir, url: redis_url.trim_end_matches('/').to_string() })
    }

    fn run<T: for<'de> Deserialize<'de>>(&self, redis: &testkit::redis::RedisServer, args: &[String]) -> Result<T> {
        run_script(redis, Path::new("node"), "bench.mjs", &self.dir, &self.url, args)
    }

    pub fn enqueue(&self, redis: &testkit::redis::RedisServer, bulk: bool, jobs: usize) -> Result<Enqueue> {
        let mode = if bulk { "enqueue-bulk" } else { "enqueue-single" };
        let r: Rate = self.run(redis, &[mode.into(), jobs.to_string()])?;
        Ok(Enqueue { jobs_per_s: r.jobs_per_s, redis_bytes_per_job: r.redis_bytes_per_job })
    }

    pub fn drain(&self, redis: &testkit::redis::RedisServer, concurrency: usize, jobs: usize) -> Result<Drain> {
        let r: Rate = self.run(redis, &["drain".into(), jobs.to_string(), concurrency.to_string()])?;
        Ok(r.drain())
    }

    /// The TypeScript template's handler, natively (`template.mjs`).
    pub fn template_drain(
        &self,
        redis: &testkit::redis::RedisServer,
        concurrency: usize,
        jobs: usize,
    ) -> Result<Drain> {
        let r: Rate = self.run(redis, &["template".into(), jobs.to_string(), concurrency.to_string()])?;
        Ok(r.drain())
    }

    pub fn timing(&self, redis: &testkit::redis::RedisServer, delayed: bool, jobs: usize) -> Result<Timing> {
        let mode = if delayed { "delayed" } else { "latency" };
        let r: Latency = self.run(redis, &[mode.into(), jobs.to_string()])?;
        Ok(Timing { p50_ms: r.p50_ms, p99_ms: r.p99_ms, max_ms: r.max_ms, enqueue_p50_ms: r.add_p50_ms })
    }
}

impl BullMqPython {
    /// Makes the venv (`target/bench-tools/bullmq-python`) and installs the
    /// pinned package into it when missing.
    pub fn prepare(workspace: &Path, redis_url: &str) -> Result<BullMqPython> {
        let dir = workspace.join("bench/bullmq-python");
        let venv = workspace.join("target/bench-tools/bullmq-python");
        let python =
            testkit::guest::venv(&venv, &dir.join("requirements.txt"), "bullmq").map_err(anyhow::Error::msg)?;
        Ok(BullMqPython { dir, python, url: redis_url.trim_end_matches('/').to_string() })
    }

    /// The Python template's handler, natively (`template.py`).
    pub fn template_drain(
        &self,
        redis: &testkit::redis::RedisServer,
        concurrency: usize,
        jobs: usize,
    ) -> Result<Drain> {
        let args = ["template".to_string(), jobs.to_string(), concurrency.to_string()];
        let r: Rate = run_script(redis, &self.python, "bench.py", &self.dir, &self.url, &args)?;
        Ok(r.drain())
    }
}

/// Runs one measure of a side's script (`program script URL ARGS...` in
/// `dir`) on an empty Redis and reads the one line of JSON it prints last.
fn run_script<T: for<'de> Deserialize<'de>>(
    redis: &testkit::redis::RedisServer,
    program: &Path,
    script: &str,
    dir: &Path,
    url: &str,
    args: &[String],
) -> Result<T> {
    redis::cmd("FLUSHALL").exec(&mut redis.connection())?;
    let what = format!("{} {script} {}", program.display(), args.join(" "));
    let out = Command::new(program)
        .arg(script)
        .arg(url)
        .args(args)
        .current_dir(dir)
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("{what} printed `{line}`"))
}
