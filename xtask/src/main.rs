//! `cargo xtask <chore>`: the project's chores, in Rust rather than shell,
//! so they run the same on every machine.
//!
//! - `setup`: install what a fresh machine lacks (the `wasm32-wasip2` target;
//!   `redis-server` with apt-get when run as root); `test` also installs
//!   Chromium and its driver for the dashboard's browser test, and Node.js
//!   with npm for the BullMQ tests (which `npm ci` BullMQ themselves) and
//!   the TypeScript plugins (whose tests `npm ci` componentize-js; the
//!   Python plugins' tests pip-install componentize-py in a venv);
//! - `plugins`: build every plugin for `wasm32-wasip2` (release);
//! - `lint`: `cargo fmt --check` and `cargo clippy --all-targets -D warnings`;
//! - `test`: set up, build the plugins, then run every test of the workspace,
//!   with `JOBRUNNER_REQUIRE_GUESTS` set so that the TypeScript and Python
//!   plugin tests fail, rather than skip, when their tools are missing, and
//!   `JOBRUNNER_REQUIRE_NETNS` and `JOBRUNNER_PACKAGE_TEST` so that the
//!   tests of several hosts (network namespaces) and of the Debian package
//!   (installed on this machine) run rather than skip;
//! - `deb`: build the release binary and the Debian package,
//!   `target/deb/jobrunner_VERSION_ARCH.deb` (`deploy/debian/build-deb.sh`);
//! - `image`: build the container image `jobrunner:VERSION` from scratch
//!   with buildah (`deploy/container/build-image.sh`); not run by `ci`;
//! - `ci`: `lint`, then `test`;
//! - `demo`: set up, build, and run the demo (see `demo.rs`);
//! - `bench [ARGS]`: set up, build the release binaries and run the
//!   end-to-end benchmark harness (`bench/src/bin/harness.rs`) with ARGS,
//!   for example `--bullmq` to measure BullMQ in the same run, or
//!   `--check` to exit non-zero, naming it, when a target is missed.

mod demo;

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
    "evil-plugin",
];

pub fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(cargo).args(args).status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed ({status})", args.join(" "))) }
}

fn has(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).output().is_ok_and(|o| o.status.success())
}

/// Installs Debian packages that are missing, when run as root with apt-get.
fn apt_install(missing: &[&str]) -> Result<(), String> {
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !(root && has("apt-get", "--version")) {
        return Err(format!("missing: {} (install with apt-get install {})", missing.join(", "), missing.join(" ")));
    }
    eprintln!("$ apt-get install {}", missing.join(" "));
    let ok = Command::new("apt-get").args(["update", "-qq"]).status().is_ok_and(|s| s.success())
        && Command::new("apt-get").args(["install", "-y", "-qq"]).args(missing).status().is_ok_and(|s| s.success());
    if ok { Ok(()) } else { Err(format!("cannot install {} with apt-get", missing.join(" "))) }
}

/// What the tests need beyond `setup`: the browser for the dashboard test,
/// Node for the BullMQ tests and the TypeScript plugins, Python for the
/// Python plugins.
fn setup_tests() -> Result<(), String> {
    let mut missing = Vec::new();
    if !has("chromium", "--version") {
        missing.push("chromium");
    }
    if !has("chromedriver", "--version") {
        missing.push("chromium-driver");
    }
    if !has("node", "--version") {
        missing.push("nodejs");
    }
    if !has("npm", "--version") {
        missing.push("npm");
    }
    // componentize-py goes into a venv the Python plugin tests make.
    if !has("python3", "--version") {
        missing.extend(["python3", "python3-venv", "python3-pip"]);
    }
    // The tests of several hosts (network namespaces, nftables) and of the
    // Debian package (systemd-analyze).
    if !has("nft", "--version") {
        missing.push("nftables");
    }
    if !has("ip", "-V") {
        missing.push("iproute2");
    }
    if !has("systemd-analyze", "--version") {
        missing.push("systemd");
    }
    apt_install(&missing)
}

fn setup() -> Result<(), String> {
    let targets = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match targets {
        Ok(o) if String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == "wasm32-wasip2") => {}
        Ok(_) => {
            eprintln!("$ rustup target add wasm32-wasip2");
            let ok =
                Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status().is_ok_and(|s| s.success());
            if !ok {
                return Err("cannot install the wasm32-wasip2 target (rustup target add wasm32-wasip2)".into());
            }
        }
        Err(_) => eprintln!("rustup not found: make sure the wasm32-wasip2 target is installed"),
    }
    if !has("redis-server", "--version") {
        apt_install(&["redis-server"])?;
    }
    Ok(())
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
    setup()?;
    setup_tests()?;
    plugins()?;
    // The TypeScript and Python plugins' tests build them with their own
    // tools (installed by the tests from the registries); here, a missing
    // tool fails those tests instead of skipping them.
    // SAFETY: no other thread runs yet.
    unsafe {
        std::env::set_var("JOBRUNNER_REQUIRE_GUESTS", "1");
        std::env::set_var("JOBRUNNER_REQUIRE_NETNS", "1");
        std::env::set_var("JOBRUNNER_PACKAGE_TEST", "1");
    };
    cargo(&["test", "--workspace"])
}

fn bench() -> Result<(), String> {
    setup()?;
    // The HTTP measure's load generator (`wrk` prints its usage and exits
    // non-zero when asked its version, so only whether it runs is asked).
    if Command::new("wrk").output().is_err() {
        apt_install(&["wrk"])?;
    }
    plugins()?;
    cargo(&["build", "--release", "-p", "runner", "-p", "bench", "--bin", "runner", "--bin", "harness"])?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace");
    let status = Command::new(root.join("target/release/harness"))
        .args(std::env::args().skip(2))
        .status()
        .map_err(|e| format!("cannot run the harness: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("the harness failed ({status})")) }
}

/// The Node client beside BullMQ's `Queue` (`clients/node/bench/add.mjs`),
/// its packages installed from the lock file; ARGS go to the script.
fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace").to_path_buf()
}

/// Runs a script of `deploy/` with `args`.
fn deploy_script(script: &str, args: &[&str]) -> Result<(), String> {
    let path = workspace_root().join("deploy").join(script);
    eprintln!("$ {} {}", path.display(), args.join(" "));
    let status = Command::new(&path).args(args).status().map_err(|e| format!("cannot run {script}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{script} failed ({status})")) }
}

fn deb() -> Result<(), String> {
    cargo(&["build", "--release", "-p", "runner", "--bin", "runner"])?;
    let root = workspace_root();
    let binary = root.join("target/release/runner");
    let out = root.join("target/deb");
    deploy_script(
        "debian/build-deb.sh",
        &[&binary.to_string_lossy(), env!("CARGO_PKG_VERSION"), &out.to_string_lossy()],
    )
}

fn image() -> Result<(), String> {
    deploy_script("container/build-image.sh", &[env!("CARGO_PKG_VERSION")])
}

fn bench_clients() -> Result<(), String> {
    setup()?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/node");
    let npm = |args: &[&str]| -> Result<(), String> {
        let status = Command::new("npm").current_dir(&dir).args(args).status().map_err(|e| format!("npm: {e}"))?;
        if status.success() { Ok(()) } else { Err(format!("npm {} failed ({status})", args.join(" "))) }
    };
    npm(&["ci", "--no-audit", "--no-fund"])?;
    let mut args = vec!["run", "bench", "--"];
    let rest: Vec<String> = std::env::args().skip(2).collect();
    args.extend(rest.iter().map(String::as_str));
    npm(&args)
}

fn main() -> ExitCode {
    let chore = std::env::args().nth(1).unwrap_or_default();
    let result = match chore.as_str() {
        "setup" => setup(),
        "plugins" => plugins(),
        "lint" => lint(),
        "test" => test(),
        "ci" => lint().and_then(|_| test()),
        "demo" => {
            setup().and_then(|_| plugins()).and_then(|_| cargo(&["build", "-p", "runner"])).and_then(|_| demo::run())
        }
        "bench" => bench(),
        "bench-clients" => bench_clients(),
        "deb" => deb(),
        "image" => image(),
        _ => Err("usage: cargo xtask <setup|plugins|lint|test|ci|demo|bench [ARGS]|bench-clients [ARGS]|deb|image>"
            .to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
