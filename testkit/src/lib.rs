//! Real parts for the tests, started by the tests themselves on free
//! loopback ports, so they pass on a fresh machine and never touch a
//! service that happens to run there already.
//!
//! Layout:
//! - [`wasm`]: the compiled plugin components, built on first use;
//! - [`guest`]: the JavaScript and Python plugins of `examples/`, likewise;
//! - [`redis`]: a `redis-server` child process that can be stopped and restarted;
//! - [`cluster`]: a Redis Cluster of such processes;
//! - [`netns`]: hosts in network namespaces joined by a bridge, with
//!   partitions, loss and latency;
//! - [`http`]: an HTTP server that records requests and answers as scripted;
//! - [`smtp`]: an SMTP server that keeps what it receives;
//! - [`wait_until`]: waiting on a condition rather than on the clock.

pub mod cluster;
pub mod guest;
pub mod http;
pub mod netns;
pub mod redis;
pub mod smtp;
pub mod wasm;

use std::time::{Duration, Instant};

/// A free TCP port on loopback. The port is released before it is returned,
/// so a server started right after gets it (the race with other processes
/// is narrow, and a test that loses it fails loudly at bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `condition` until it holds, failing the test with `what` after `timeout`.
pub async fn wait_until<F: FnMut() -> bool>(what: &str, timeout: Duration, mut condition: F) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The workspace root, for paths to examples and fixtures.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}
