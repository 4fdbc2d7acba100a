//! The plugin components the tests load, built once per test process.
//!
//! Building here (rather than trusting a `.wasm` left on disk) means a test
//! never runs against a stale plugin. When nothing changed, cargo's check
//! takes well under a second.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Every wasm package in the workspace.
pub const PACKAGES: &[&str] = &[
    "email-plugin",
    "webhook-plugin",
    "vendor-notification-plugin",
    "response-reminder-plugin",
    "cache-warmup-plugin",
    "hostile-plugin",
    "noop-plugin",
    "evil-plugin",
    "plugin-template",
];

static BUILT: OnceLock<Result<(), String>> = OnceLock::new();

/// Builds every plugin for `wasm32-wasip2` (once per process).
pub fn build_all() {
    let result = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.current_dir(crate::workspace_root()).args(["build", "--quiet", "--target", "wasm32-wasip2", "--release"]);
        for p in PACKAGES {
            cmd.args(["-p", p]);
        }
        match cmd.status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!(
                "building the plugins failed ({s}); is the target installed? rustup target add wasm32-wasip2"
            )),
            Err(e) => Err(format!("cannot run cargo: {e}")),
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The path of a built plugin, by crate name (e.g. `webhook_plugin`).
pub fn path(crate_name: &str) -> PathBuf {
    build_all();
    let p = crate::workspace_root().join(format!("target/wasm32-wasip2/release/{crate_name}.wasm"));
    assert!(p.exists(), "{} was not built", p.display());
    p
}
