//! `cargo xtask <chore>`: the project's chores, in Rust rather than shell,
//! so they run the same on every machine.
//!
//! - `plugins`: build every plugin for `wasm32-wasip2` (release);
//! - `lint`: `cargo fmt --check` and `cargo clippy --all-targets -D warnings`;
//! - `test`: build the plugins, then run every test of the workspace;
//! - `ci`: `lint`, then `test`.

use std::process::{Command, ExitCode};

/// The wasm packages: the built-in plugins, the template and the fixtures.
const PLUGINS: &[&str] = &[
    "email-plugin",
    "webhook-plugin",
    "vendor-notification-plugin",
    "response-reminder-plugin",
    "cache-warmup-plugin",
    "plugin-template",
    "hostile-plugin",
    "noop-plugin",
];

fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(cargo).args(args).status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed ({status})", args.join(" "))) }
}

fn plugins() -> Result<(), String> {
    let mut args = vec!["build", "--target", "wasm32-wasip2", "--release"];
    for p in PLUGINS {
        args.extend(["-p", p]);
    }
    cargo(&args)
}

fn lint() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])
}

fn test() -> Result<(), String> {
    plugins()?;
    cargo(&["test", "--workspace"])
}

fn main() -> ExitCode {
    let chore = std::env::args().nth(1).unwrap_or_default();
    let result = match chore.as_str() {
        "plugins" => plugins(),
        "lint" => lint(),
        "test" => test(),
        "ci" => lint().and_then(|_| test()),
        _ => Err("usage: cargo xtask <plugins|lint|test|ci>".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
