//! A `redis-server` child process on a free port, killed when dropped.
//! It can be stopped and restarted on the same port (with its data, when
//! started with an append-only file) for fault tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a throwaway server (no persistence).
    pub fn start() -> RedisServer {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// A throwaway server that holds at most `maxmemory` (`64mb`) and then
    /// does what `policy` says (`noeviction`, `allkeys-lru`, ...): for the
    /// tests of what a full Redis does to the queue.
    pub fn start_with_maxmemory(maxmemory: &str, policy: &str) -> RedisServer {
        Self::start_with(&["--save", "", "--appendonly", "no", "--maxmemory", maxmemory, "--maxmemory-policy", policy])
    }

    pub fn start_with(args: &[&str]) -> RedisServer {
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(format!("testkit-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer { port, dir, child: None, extra: args.iter().map(|s| s.to_string()).collect() };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts (again) on the same port and directory, and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--dir"])
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(client) = ::redis::Client::open(self.url())
                && let Ok(mut conn) = client.get_connection()
                && ::redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server on port {} did not come up", self.port);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A blocking connection for checks.
    pub fn connection(&self) -> ::redis::Connection {
        ::redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
