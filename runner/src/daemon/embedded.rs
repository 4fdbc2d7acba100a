//! The embedded Redis: with no Redis configured, `runner serve` runs its own
//! `redis-server`, as Faktory does, bound to loopback, with its data and an
//! append-only file in the state directory so that jobs survive a restart.
//!
//! The URL is written to `<state_dir>/redis.url`, where the CLI finds it.
//! If a runner was killed (`kill -9`) its Redis may outlive it: the next
//! runner finds it through `<state_dir>/redis.pid` and adopts it, rather
//! than start a second server on the same files.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The default port: not 6379, so a system Redis is never taken for ours.
pub const DEFAULT_PORT: u16 = 6390;

pub struct EmbeddedRedis {
    child: Option<Child>,
    pid: u32,
    pub url: String,
    state_dir: PathBuf,
}

pub fn url_file(state_dir: &Path) -> PathBuf {
    state_dir.join("redis.url")
}

fn pid_file(state_dir: &Path) -> PathBuf {
    state_dir.join("redis.pid")
}

fn answers(url: &str) -> bool {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

impl EmbeddedRedis {
    pub fn start(state_dir: &Path, port: Option<u16>) -> Result<EmbeddedRedis> {
        std::fs::create_dir_all(state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
        // A server left by a runner that was killed: adopt it.
        if let (Ok(pid), Ok(url)) =
            (std::fs::read_to_string(pid_file(state_dir)), std::fs::read_to_string(url_file(state_dir)))
            && let Ok(pid) = pid.trim().parse::<u32>()
            && alive(pid)
            && answers(url.trim())
        {
            tracing::info!(pid, url = url.trim(), "adopting the embedded Redis left by an earlier runner");
            return Ok(EmbeddedRedis {
                child: None,
                pid,
                url: url.trim().to_string(),
                state_dir: state_dir.to_path_buf(),
            });
        }
        if Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_err() {
            bail!("redis-server is not installed: install it (apt-get install redis-server) or set REDIS_URL");
        }
        let data = state_dir.join("redis");
        std::fs::create_dir_all(&data)?;
        let data = data.canonicalize()?;
        let port = match port.unwrap_or(DEFAULT_PORT) {
            p if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() => p,
            _ => std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
        };
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--protected-mode", "yes"])
            .args(["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""])
            .arg("--dir")
            .arg(&data)
            .arg("--logfile")
            .arg(data.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start redis-server")?;
        let pid = child.id();
        let url = format!("redis://127.0.0.1:{port}/");
        let mut me = EmbeddedRedis { child: Some(child), pid, url, state_dir: state_dir.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !answers(&me.url) {
            if let Some(status) = me.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("redis-server exited at start ({status}); see {}", data.join("redis.log").display());
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer within 15 s; see {}", data.join("redis.log").display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::write(url_file(state_dir), &me.url)?;
        std::fs::write(pid_file(state_dir), pid.to_string())?;
        tracing::info!(url = %me.url, dir = %data.display(), "started the embedded Redis");
        Ok(me)
    }

    /// Stops the server with SIGTERM, which flushes the append-only file.
    pub fn stop(&mut self) {
        // SAFETY: signalling our own child (or the adopted server) by pid.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
        match self.child.take() {
            Some(mut c) => {
                let _ = c.wait();
            }
            None => {
                let deadline = Instant::now() + Duration::from_secs(10);
                while alive(self.pid) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let _ = std::fs::remove_file(pid_file(&self.state_dir));
        let _ = std::fs::remove_file(url_file(&self.state_dir));
    }
}

impl Drop for EmbeddedRedis {
    fn drop(&mut self) {
        if self.child.is_some() || alive(self.pid) {
            self.stop();
        }
    }
}
