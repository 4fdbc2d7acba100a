//! The producer clients against real servers: Node's (`clients/node`, with
//! its pinned packages installed by `npm ci`) and Python's
//! (`clients/python`, in a venv of its own with its pinned redis-py), each
//! run by its own test runner against a Redis that a real `runner serve`
//! consumes with the `hostile` fixture plugin, and against a three-master
//! Redis Cluster.

use crate::serve::serve_bed;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `clients/node`, its packages installed and its scripts copied (once).
fn node_client() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = testkit::workspace_root().join("clients/node");
        crate::npm_ci(&dir, "node_modules/ioredis/package.json");
        let out = std::process::Command::new("node").current_dir(&dir).arg("scripts/copy-lua.mjs").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        dir
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_client_against_runner_serve_and_a_cluster() {
    let (redis, _dir, daemon) = serve_bed("[queues.clients]\nconcurrency = 4\n", &[("hostile_plugin", "hostile.wasm")]);
    let cluster = testkit::cluster::RedisCluster::start(3, 0);
    let out = tokio::process::Command::new("node")
        .current_dir(node_client())
        .args(["--test", "--test-reporter=spec", "test/"])
        .env("JR_REDIS_URL", redis.url())
        .env("JR_QUEUE", "clients")
        .env("JR_CLUSTER", cluster.url())
        .output()
        .await
        .expect("node runs");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{report}\n--- runner log:\n{}", daemon.log());
    // Every test ran: none was skipped for want of a server.
    assert!(report.contains("skipped 0"), "{report}");
}

/// A venv beside the build outputs with the Python client's test
/// requirements (its pinned redis-py), and the scripts copied (once).
fn python_client() -> (&'static Path, &'static Path) {
    static READY: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (dir, python) = READY.get_or_init(|| {
        let root = testkit::workspace_root();
        let dir = root.join("clients/python");
        let venv = root.join("target/client-tools/python");
        let python = testkit::guest::venv(&venv, &dir.join("requirements-test.txt"), "redis").unwrap();
        let out = std::process::Command::new(&python).current_dir(&dir).arg("scripts/copy_lua.py").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (dir, python)
    });
    (dir, python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_against_runner_serve_and_a_cluster() {
    let (redis, _dir, daemon) = serve_bed("[queues.clients]\nconcurrency = 4\n", &[("hostile_plugin", "hostile.wasm")]);
    let cluster = testkit::cluster::RedisCluster::start(3, 0);
    let (dir, python) = python_client();
    let out = tokio::process::Command::new(python)
        .current_dir(dir)
        .args(["-m", "unittest", "discover", "-s", "tests", "-v"])
        .env("PYTHONPATH", dir.join("src"))
        .env("JR_REDIS_URL", redis.url())
        .env("JR_QUEUE", "clients")
        .env("JR_CLUSTER", cluster.url())
        .output()
        .await
        .expect("python runs");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{report}\n--- runner log:\n{}", daemon.log());
    assert!(!report.contains("skipped"), "every test ran: {report}");
}
