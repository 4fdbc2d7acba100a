//! The embedded Redis: with no Redis configured, `runner serve` runs its own
//! `redis-server`, as Faktory does, bound to loopback, with its data and an
//! append-only file in the state directory so that jobs survive a restart.
//!
//! The URL is written to `<state_dir>/redis.url`, where the CLI finds it.
//! If a runner was killed (`kill -9`) its Redis may outlive it: the next
//! runner finds it through `<state_dir>/redis.pid` and adopts it, rather
//! than start a second server on the same files. If the Redis dies while
//! the runner lives, the runner starts it again on the same port and files
//! (`supervise`): the append-only file brings the jobs back, and the queue
//! connections reconnect on their own.
//!
//! It has a password, so that another local user cannot reach the queues
//! (and the plugins' cache) around the API's token: random, made once and
//! kept in `<state_dir>/redis.conf` (the server reads it from there, so it
//! never shows in the process list), and in the URL file; both are mode
//! 0600, readable by the runner's user only.

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
    port: u16,
    state_dir: PathBuf,
    stopped: bool,
}

/// How often the supervisor checks that the server is alive.
const SUPERVISE_EVERY: Duration = Duration::from_millis(250);

pub fn url_file(state_dir: &Path) -> PathBuf {
    state_dir.join("redis.url")
}

fn pid_file(state_dir: &Path) -> PathBuf {
    state_dir.join("redis.pid")
}

fn conf_file(state_dir: &Path) -> PathBuf {
    state_dir.join("redis.conf")
}

/// Writes `contents` to `path`, readable and writable by this user only.
fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // A file made by an older runner keeps its mode on open: set it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

/// The embedded server's password: the one in its config file, or a new
/// random one written there (256 bits, hex).
fn password(state_dir: &Path) -> Result<String> {
    let conf = conf_file(state_dir);
    if let Ok(text) = std::fs::read_to_string(&conf)
        && let Some(pw) = text.lines().find_map(|l| l.strip_prefix("requirepass "))
        && !pw.trim().is_empty()
    {
        return Ok(pw.trim().to_string());
    }
    let pw = hex::encode(rand::random::<[u8; 32]>());
    write_private(&conf, &format!("# Written by the runner: the embedded Redis's password.\nrequirepass {pw}\n"))?;
    Ok(pw)
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
            tracing::info!(pid, url = %jobrunner_queue::connection::redact(url.trim()), "adopting the embedded Redis left by an earlier runner");
            let port = url.trim().trim_end_matches('/').rsplit(':').next().and_then(|p| p.parse().ok());
            return Ok(EmbeddedRedis {
                child: None,
                pid,
                url: url.trim().to_string(),
                port: port.context("the embedded Redis's URL file names no port")?,
                state_dir: state_dir.to_path_buf(),
                stopped: false,
            });
        }
        if Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_err() {
            bail!("redis-server is not installed: install it (apt-get install redis-server) or set REDIS_URL");
        }
        let port = match port.unwrap_or(DEFAULT_PORT) {
            p if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() => p,
            _ => std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
        };
        let password = password(state_dir)?;
        let mut me = EmbeddedRedis {
            child: None,
            pid: 0,
            url: format!("redis://:{password}@127.0.0.1:{port}/"),
            port,
            state_dir: state_dir.to_path_buf(),
            stopped: false,
        };
        me.spawn()?;
        write_private(&url_file(state_dir), &me.url)?;
        tracing::info!(url = %jobrunner_queue::connection::redact(&me.url), dir = %state_dir.join("redis").display(), "started the embedded Redis (with a password, in redis.conf)");
        Ok(me)
    }

    /// Starts `redis-server` on our port and files, waits until it answers
    /// and records its pid.
    fn spawn(&mut self) -> Result<()> {
        let data = self.state_dir.join("redis");
        std::fs::create_dir_all(&data)?;
        let data = data.canonicalize()?;
        let conf = conf_file(&self.state_dir).canonicalize()?;
        let child = Command::new("redis-server")
            // The config file first (redis-server takes it as its first
            // argument): it holds the password.
            .arg(&conf)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--protected-mode", "yes"])
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
        self.pid = child.id();
        self.child = Some(child);
        // Loading a large append-only file takes a while; Redis answers
        // LOADING until it is done, which `answers` does not count.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !answers(&self.url) {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("redis-server exited at start ({status}); see {}", data.join("redis.log").display());
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer within 60 s; see {}", data.join("redis.log").display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::write(pid_file(&self.state_dir), self.pid.to_string())?;
        Ok(())
    }

    /// Whether the server process has died.
    fn dead(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => !alive(self.pid),
        }
    }

    /// Restarts the server whenever it dies, until `stop` is called. Runs
    /// on a thread of its own (starting Redis blocks).
    pub fn supervise(me: std::sync::Arc<std::sync::Mutex<EmbeddedRedis>>) {
        std::thread::Builder::new()
            .name("embedded-redis".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(SUPERVISE_EVERY);
                    let mut redis = me.lock().unwrap();
                    if redis.stopped {
                        return;
                    }
                    if redis.dead() {
                        tracing::warn!(pid = redis.pid, "the embedded Redis died; starting it again on its append-only file");
                        match redis.spawn() {
                            Ok(()) => tracing::info!(pid = redis.pid, url = %jobrunner_queue::connection::redact(&redis.url), "the embedded Redis is back"),
                            Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot restart the embedded Redis; trying again"),
                        }
                    }
                }
            })
            .expect("spawning the embedded Redis's supervisor");
    }

    /// Stops the server with SIGTERM, which flushes the append-only file.
    pub fn stop(&mut self) {
        self.stopped = true;
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
        if !self.stopped && (self.child.is_some() || alive(self.pid)) {
            self.stop();
        }
    }
}
