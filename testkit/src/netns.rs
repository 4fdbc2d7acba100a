//! Several hosts on one machine: network namespaces that the test makes
//! itself, joined by a bridge, each with its own address on `10.0.0.0/24`,
//! and the faults a real network has.
//!
//! - [`Network::new`] makes a switch namespace holding a bridge and one
//!   namespace per host, each joined to the bridge by a veth pair (its end
//!   is `eth0` in the host, `10.0.0.N`). Every namespace is the test's own
//!   and deleted on drop, so tests in parallel each have their own
//!   `10.0.0.0/24`, and the machine's own network is never touched.
//! - [`Network::command`] runs a program on a host (`ip netns exec`).
//! - [`Network::cut`] and [`Network::heal`] drop every packet between two
//!   hosts (nftables in the first host's namespace), silently, as a
//!   partition does: nothing is refused, packets just go unanswered.
//! - [`Network::lossy`] drops a share of the packets between two hosts.
//! - [`Network::listen`] binds a TCP listener inside a host, for a server
//!   of the test's own (an HTTP recorder) to serve from there.
//! - [`DelayRelay`] adds latency between a host and a Unix socket.
//!
//! Needs root (`CAP_NET_ADMIN` and `CAP_SYS_ADMIN`), `ip` (iproute2) and
//! `nft` (nftables). [`available`] says whether this machine can.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Whether this process can make namespaces here: root, with `ip` and
/// `nft`. `None` if so, else why not.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces)".into());
    }
    for (program, package) in [("ip", "iproute2"), ("nft", "nftables")] {
        if Command::new(program).arg("-V").output().is_err() {
            return Some(format!("needs `{program}` (apt-get install {package})"));
        }
    }
    None
}

/// Fails the test, or, where the machine cannot make namespaces and the
/// run did not ask for them (`JOBRUNNER_REQUIRE_NETNS`, set by `cargo xtask
/// ci`), says so and returns false: the caller skips.
pub fn available() -> bool {
    match unavailable() {
        None => true,
        Some(why) if std::env::var_os("JOBRUNNER_REQUIRE_NETNS").is_some() => panic!("{why}"),
        Some(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(out.status.success(), "`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn nft(ns: &str, script: &str) {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ip netns exec nft");
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "nft in {ns} failed: {}\n{script}", String::from_utf8_lossy(&out.stderr));
}

/// One host: its namespace and address.
pub struct Host {
    pub name: String,
    pub ns: String,
    pub ip: String,
}

pub struct Network {
    switch: String,
    hosts: Vec<Host>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Network {
    /// Hosts named `names`, at `10.0.0.1`, `10.0.0.2`, … in that order.
    pub fn new(names: &[&str]) -> Network {
        let tag = format!("jr{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let switch = format!("{tag}-sw");
        run(&["ip", "netns", "add", &switch]);
        let mut net = Network { switch: switch.clone(), hosts: vec![] };
        run(&["ip", "-n", &switch, "link", "add", "br0", "type", "bridge"]);
        run(&["ip", "-n", &switch, "link", "set", "br0", "up"]);
        for (i, name) in names.iter().enumerate() {
            let ns = format!("{tag}-{name}");
            run(&["ip", "netns", "add", &ns]);
            let ip = format!("10.0.0.{}", i + 1);
            net.hosts.push(Host { name: name.to_string(), ns: ns.clone(), ip: ip.clone() });
            // Each end named in its own namespace: nothing is made in the
            // machine's, so no name can clash with another test's.
            let port = format!("p{}", i + 1);
            run(&[
                "ip", "link", "add", "name", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port, "netns",
                &switch,
            ]);
            run(&["ip", "-n", &switch, "link", "set", &port, "master", "br0"]);
            run(&["ip", "-n", &switch, "link", "set", &port, "up"]);
            run(&["ip", "-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|h| h.name == name).unwrap_or_else(|| panic!("no host `{name}`"))
    }

    /// `program` on host `name`.
    pub fn command(&self, name: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.host(name).ns]).arg(program);
        cmd
    }

    /// Drops every packet between hosts `a` and `b`, both ways, until
    /// `heal`. Made in `a`'s namespace: `b` and the others see nothing.
    pub fn cut(&self, a: &str, b: &str) {
        let (ns, peer) = (&self.host(a).ns, &self.host(b).ip);
        nft(
            ns,
            &format!(
                "table inet cut {{\n chain o {{\n  type filter hook output priority 0;\n  ip daddr {peer} drop\n }}\n chain i {{\n  type filter hook input priority 0;\n  ip saddr {peer} drop\n }}\n}}\n"
            ),
        );
    }

    pub fn heal(&self, a: &str, _b: &str) {
        run(&["ip", "netns", "exec", &self.host(a).ns, "nft", "delete", "table", "inet", "cut"]);
    }

    /// Drops `percent` of the packets between `a` and `b`, each way, at
    /// random (`numgen random`): TCP retransmits them, as on a lossy link.
    pub fn lossy(&self, a: &str, b: &str, percent: u32) {
        let (ns, peer) = (&self.host(a).ns, &self.host(b).ip);
        nft(
            ns,
            &format!(
                "table inet loss {{\n chain o {{\n  type filter hook output priority 0;\n  ip daddr {peer} numgen random mod 100 < {percent} drop\n }}\n chain i {{\n  type filter hook input priority 0;\n  ip saddr {peer} numgen random mod 100 < {percent} drop\n }}\n}}\n"
            ),
        );
    }

    /// A TCP listener on `port` of host `name` (all its addresses): bound
    /// from a thread that enters the host's namespace, so the socket, and
    /// every connection it accepts, is the host's wherever it is used.
    pub fn listen(&self, name: &str, port: u16) -> std::net::TcpListener {
        let ns = self.host(name).ns.clone();
        std::thread::spawn(move || {
            enter(&ns);
            let listener = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind in the namespace");
            listener.set_nonblocking(true).unwrap();
            listener
        })
        .join()
        .unwrap()
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of each veth, and with it
        // the other end. Processes still in it keep it alive until they
        // end; the tests stop theirs first.
        for ns in self.hosts.iter().map(|h| &h.ns).chain([&self.switch]) {
            let _ = Command::new("ip").args(["netns", "delete", ns]).output();
        }
    }
}

/// Moves the calling thread into network namespace `ns`.
fn enter(ns: &str) {
    let file = std::fs::File::open(Path::new("/var/run/netns").join(ns)).expect("the namespace exists");
    // SAFETY: a valid namespace file descriptor; only this thread moves.
    let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// A TCP relay on a host that holds every chunk `each_way` before passing
/// it on, in both directions, to a Unix socket: latency on the way to a
/// server.
///
/// Why this rather than `tc qdisc … netem delay`: the kernels the tests
/// run on here are built without netem (`CONFIG_NET_SCH_NETEM` is not set,
/// and modules cannot be loaded), and no fault proxy (toxiproxy) is in the
/// package registries the machines reach. The relay keeps order and adds
/// the delay to each byte; unlike netem it does not delay TCP's own
/// acknowledgements, so the loss that `Network::lossy` adds is recovered
/// on the runner's side of the relay at the link's round trip.
pub struct DelayRelay {
    stop: std::sync::Arc<tokio::sync::Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DelayRelay {
    pub fn start(net: &Network, host: &str, port: u16, upstream: PathBuf, each_way: Duration) -> DelayRelay {
        let listener = net.listen(host, port);
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        _ = stopped.notified() => return,
                        accepted = listener.accept() => {
                            let Ok((client, _)) = accepted else { continue };
                            let _ = client.set_nodelay(true);
                            let upstream = upstream.clone();
                            tokio::spawn(async move {
                                let Ok(server) = tokio::net::UnixStream::connect(&upstream).await else { return };
                                let (cr, cw) = client.into_split();
                                let (sr, sw) = server.into_split();
                                tokio::join!(delayed(cr, sw, each_way), delayed(sr, cw, each_way));
                            });
                        }
                    }
                }
            });
        });
        DelayRelay { stop, thread: Some(thread) }
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
async fn delayed(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin + Send + 'static,
    delay: Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due.into()).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}
