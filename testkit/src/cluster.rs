//! A Redis Cluster of real `redis-server` processes on free loopback ports,
//! created with `redis-cli --cluster create`, killed when dropped. Nodes can
//! be killed one at a time, for failover tests; `master_of` and
//! `wait_replicated` say who owns a key and when the replicas caught up.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisCluster {
    pub ports: Vec<u16>,
    children: Vec<Option<Child>>,
    dir: std::path::PathBuf,
}

/// A port whose cluster-bus port (port + 10000) is free as well.
fn cluster_port() -> u16 {
    loop {
        let p = crate::free_port();
        if p < 55000 && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each.
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        let n = masters * (1 + replicas);
        let dir = std::env::temp_dir().join(format!("testkit-cluster-{}-{}", std::process::id(), crate::free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = RedisCluster { ports: (0..n).map(|_| cluster_port()).collect(), children: vec![], dir };
        for i in 0..n {
            let child = cluster.spawn(i);
            cluster.children.push(Some(child));
        }
        for &p in &cluster.ports {
            wait_ping(p);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for p in &cluster.ports {
            create.arg(format!("127.0.0.1:{p}"));
        }
        let out = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli is installed with redis-server");
        assert!(out.status.success(), "cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        cluster.wait_ok();
        cluster
    }

    fn spawn(&self, i: usize) -> Child {
        let port = self.ports[i];
        let node_dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).unwrap();
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
            .args(["--cluster-node-timeout", "1000", "--save", "", "--appendonly", "no", "--dir"])
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed")
    }

    /// Waits until every slot is served and the cluster says `ok`.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let live = self.ports.iter().zip(&self.children).filter(|(_, c)| c.is_some()).map(|(p, _)| *p);
            let ok = live.into_iter().any(|p| {
                Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "cluster", "info"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
                    .unwrap_or(false)
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster never became ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The seed URLs, comma-separated, as the runner takes them.
    pub fn url(&self) -> String {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}/")).collect::<Vec<_>>().join(",")
    }

    /// Kills node `i` at once.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the node listening on `port` at once.
    pub fn kill_port(&mut self, port: u16) {
        let i = self.ports.iter().position(|p| *p == port).expect("a node of this cluster");
        self.kill(i);
    }

    fn live_ports(&self) -> Vec<u16> {
        self.ports.iter().zip(&self.children).filter(|(_, c)| c.is_some()).map(|(p, _)| *p).collect()
    }

    /// The port of the live master that serves `key`'s slot, as the
    /// cluster sees it now.
    pub fn master_of(&self, key: &str) -> Option<u16> {
        let port = *self.live_ports().first()?;
        let slot: u16 = cli(port, &["cluster", "keyslot", key]).trim().parse().ok()?;
        cli(port, &["cluster", "nodes"]).lines().find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                return None;
            }
            let serves = f[8..].iter().any(|range| {
                let mut ends = range.split('-').filter_map(|n| n.parse::<u16>().ok());
                match (ends.next(), ends.next()) {
                    (Some(a), Some(b)) => (a..=b).contains(&slot),
                    (Some(a), None) => a == slot,
                    _ => false,
                }
            });
            serves.then(|| f[1].split('@').next()?.rsplit(':').next()?.parse().ok()).flatten()
        })
    }

    /// Waits until every live master's replicas have all it has written.
    pub fn wait_replicated(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in self.master_ports() {
            loop {
                let info = cli(port, &["info", "replication"]);
                let field =
                    |name: &str| info.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).map(String::from);
                let offset = field("master_repl_offset:").unwrap_or_default();
                let replicas: Vec<String> = info
                    .lines()
                    .filter(|l| l.starts_with("slave") && l.contains("offset="))
                    .filter_map(|l| l.split("offset=").nth(1)?.split(',').next().map(String::from))
                    .collect();
                if !replicas.is_empty() && replicas.iter().all(|o| *o == offset) {
                    break;
                }
                assert!(Instant::now() < deadline, "the replicas of {port} did not catch up: {info}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The ports of the nodes that are masters now.
    pub fn master_ports(&self) -> Vec<u16> {
        self.ports
            .iter()
            .zip(&self.children)
            .filter(|(_, c)| c.is_some())
            .filter(|(p, _)| {
                Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "role"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).starts_with("master"))
                    .unwrap_or(false)
            })
            .map(|(p, _)| *p)
            .collect()
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn wait_ping(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Command::new("redis-cli")
        .args(["-p", &port.to_string(), "ping"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "redis-server on {port} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
