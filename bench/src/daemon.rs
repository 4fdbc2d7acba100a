//! `runner serve` as a child process, the way an operator runs it: a
//! config file, a plugins folder and a Redis. The harness measures it from
//! outside, so what it reports is what the release binary does.
//!
//! Duties: write the config, start the process, wait until `/ready`
//! answers 200, read its resident memory and CPU time, stop it with
//! SIGTERM (as a deployment would) and keep its log for when something
//! goes wrong.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a daemon is started with.
pub struct Setup<'a> {
    pub binary: &'a Path,
    /// A folder for the config, the plugins, the state and the log.
    pub dir: &'a Path,
    pub redis_url: &'a str,
    /// `(queue, concurrency)`.
    pub queues: &'a [(&'a str, usize)],
    /// `.wasm` files to put in the plugins folder.
    pub plugins: &'a [PathBuf],
    pub compile_cache: bool,
    /// `[engine] max_instances`, when the default (1000) is not enough.
    pub max_instances: Option<u32>,
    /// The queues are BullMQ's (`[queues.NAME.bullmq]`, prefix `bull`).
    pub bullmq: bool,
    /// With `bullmq`: record BullMQ's per-minute metrics (the default).
    pub bullmq_metrics: bool,
    /// Lines added to each queue's section (`keep_completed = "all"`, ...).
    pub queue_extra: &'a str,
    /// Sections added at the end of the config (`[plugins.NAME]`, ...).
    pub extra: &'a str,
    /// `[http] token`, for measures that call the API.
    pub token: Option<&'a str>,
}

pub struct Daemon {
    child: Child,
    /// `[http] token`, sent with `/ready` (which asks for it when one is set).
    token: Option<String>,
    pub http: String,
    pub log: PathBuf,
    pub plugins_dir: PathBuf,
}

impl Daemon {
    /// Writes the config and the plugins folder, and starts the process.
    pub fn start(setup: &Setup) -> Result<Daemon> {
        let plugins_dir = setup.dir.join("plugins");
        std::fs::create_dir_all(&plugins_dir)?;
        for p in setup.plugins {
            let name = p.file_name().context("a plugin path without a file name")?;
            std::fs::copy(p, plugins_dir.join(name)).with_context(|| format!("copying {}", p.display()))?;
        }
        let port = testkit::free_port();
        let mut config = format!(
            "[runner]\nplugins_dir = {:?}\nstate_dir = {:?}\ncompile_cache = {}\n\n[redis]\nurl = {:?}\n\n[http]\nbind = \"127.0.0.1:{port}\"\n",
            plugins_dir,
            setup.dir.join("state"),
            setup.compile_cache,
            setup.redis_url
        );
        if let Some(t) = setup.token {
            config.push_str(&format!("token = {t:?}\n"));
        }
        if let Some(n) = setup.max_instances {
            config.push_str(&format!("\n[engine]\nmax_instances = {n}\n"));
        }
        for (q, c) in setup.queues {
            config.push_str(&format!("\n[queues.{q}]\nconcurrency = {c}\n{}", setup.queue_extra));
            if setup.bullmq {
                config.push_str(&format!("[queues.{q}.bullmq]\n"));
                if !setup.bullmq_metrics {
                    config.push_str("metrics = false\n");
                }
            }
        }
        config.push_str(setup.extra);
        let config_path = setup.dir.join("runner.toml");
        std::fs::write(&config_path, config)?;
        let log = setup.dir.join("runner.log");
        let child = Command::new(setup.binary)
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            // Completions are logged at debug; warnings are what a run should
            // show, and logging costs nothing measurable at this level.
            .env("RUNNER_LOG", "warn")
            .env_remove("REDIS_URL")
            .env_remove("RUNNER_QUEUES")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", setup.binary.display()))?;
        Ok(Daemon {
            child,
            token: setup.token.map(String::from),
            http: format!("http://127.0.0.1:{port}"),
            log,
            plugins_dir,
        })
    }

    /// Waits until `/ready` answers 200 (Redis reachable, plugins loaded)
    /// and says how long that took since `since`.
    pub async fn wait_ready(&mut self, since: Instant, timeout: Duration) -> Result<Duration> {
        let client = reqwest::Client::new();
        let url = format!("{}/ready", self.http);
        loop {
            let mut request = client.get(&url);
            if let Some(t) = &self.token {
                request = request.bearer_auth(t);
            }
            if let Ok(r) = request.send().await
                && r.status().is_success()
            {
                return Ok(since.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the runner exited ({status}) before it was ready: see {}", self.log.display());
            }
            if since.elapsed() > timeout {
                bail!("the runner was not ready after {timeout:?}: see {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Resident memory (VmRSS), in bytes.
    pub fn rss(&self) -> Result<u64> {
        self.proc_kb("status", "VmRSS:").map(|kb| kb * 1024)
    }

    /// Seconds of CPU the daemon has used, user and system.
    pub fn cpu_seconds(&self) -> Result<f64> {
        process_cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }

    /// Proportional set size (Pss), in bytes: resident memory with each
    /// page counted once however often it is mapped. VmRSS counts a page
    /// once per mapping, and the plugins' copy-on-write memory image is
    /// mapped once per instance: at 1000 in flight it counts the same
    /// shared pages a thousand times.
    pub fn pss(&self) -> Result<u64> {
        self.proc_kb("smaps_rollup", "Pss:").map(|kb| kb * 1024)
    }

    /// A `KEY: N kB` line of one of the daemon's `/proc/PID/` files.
    fn proc_kb(&self, file: &str, key: &str) -> Result<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/{file}", self.child.id()))?;
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no {key} in /proc/PID/{file}"))
    }

    /// SIGTERM, and waits for the graceful shutdown to finish.
    pub fn stop(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().context("kill -TERM")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
                bail!("the runner did not stop within 60 s of SIGTERM: see {}", self.log.display());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A measure that failed half-way must not leave a runner behind.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Seconds of CPU a process has used, user and system, from its
/// `/proc/PID/stat` (`/proc/self/stat` for this one): fields 14 and 15, in
/// clock ticks.
pub fn process_cpu_seconds(stat_file: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(stat_file).with_context(|| format!("cannot read {stat_file}"))?;
    // The command name (field 2) may hold spaces; it ends at the last ')'.
    let unreadable = || format!("unreadable {stat_file}");
    let rest = stat.rsplit_once(')').map(|(_, r)| r).with_context(unreadable)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so fields 14 and 15 are at 11 and 12.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).with_context(unreadable);
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((ticks(11)? + ticks(12)?) as f64 / per_second)
}
