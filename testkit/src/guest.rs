//! The JavaScript and Python plugins of `examples/`, built once per test
//! process through their own build scripts (`npm run build`, `python
//! build.py`), which skip a plugin whose sources did not change.
//!
//! - the tools: npm packages with `npm ci` into `examples/node_modules`;
//!   componentize-py with pip into a venv at `target/guest-tools/python`
//!   (both from the package registries, once per machine);
//! - [`plugin`]: the built component of one plugin folder, or why not;
//! - [`plugin_or_skip`]: the same for a test, which is skipped, printing
//!   why, when a tool is missing, unless `JOBRUNNER_REQUIRE_GUESTS` is set
//!   (`cargo xtask test` sets it, so CI fails rather than skips).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Js,
    Python,
}

/// Where the Python tools live: beside the build outputs, never in the checkout.
pub fn python_venv() -> PathBuf {
    crate::workspace_root().join("target/guest-tools/python")
}

/// The venv's interpreter, with componentize-py installed.
pub fn python() -> Result<PathBuf, String> {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    READY.get_or_init(install_python_tools).clone()
}

fn install_python_tools() -> Result<PathBuf, String> {
    let requirements = crate::workspace_root().join("examples/plugin-template-python/requirements.txt");
    venv(&python_venv(), &requirements, "componentize_py")
}

/// A venv at `dir` with `requirements` pip-installed, made unless its
/// interpreter already imports `module`; returns its interpreter. (The
/// Python tools of the plugin tests, the clients' tests and the benchmark's
/// BullMQ side each have one, beside the build outputs.)
pub fn venv(dir: &Path, requirements: &Path, module: &str) -> Result<PathBuf, String> {
    let python = dir.join("bin/python");
    if python.exists() && run(Command::new(&python).args(["-c", &format!("import {module}")])).is_ok() {
        return Ok(python);
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(dir)).map_err(|e| format!("python3 -m venv: {e}"))?;
    run(Command::new(dir.join("bin/pip")).args(["install", "--quiet", "-r"]).arg(requirements))
        .map_err(|e| format!("pip install -r {}: {e}", requirements.display()))?;
    Ok(python)
}

/// `examples/node_modules`, installed from the lock file when missing.
pub fn node_modules() -> Result<PathBuf, String> {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    READY.get_or_init(install_node_modules).clone()
}

fn install_node_modules() -> Result<PathBuf, String> {
    let examples = crate::workspace_root().join("examples");
    let modules = examples.join("node_modules");
    run(Command::new("node").arg("--version")).map_err(|e| format!("node: {e}"))?;
    // npm writes this file last; its absence means no (or a broken) install,
    // and a lock file newer than it, an install of other versions.
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(modules.join(".package-lock.json"));
    if installed.is_none() || modified(examples.join("package-lock.json")) > installed {
        run(Command::new("npm").current_dir(&examples).args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]))
            .map_err(|e| format!("npm ci in examples: {e}"))?;
    }
    Ok(modules)
}

/// Builds the plugin in `examples/DIR` (once per process) and returns its component.
pub fn plugin(lang: Lang, dir: &str) -> Result<PathBuf, String> {
    static BUILT: OnceLock<Mutex<HashMap<String, Result<PathBuf, String>>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    built
        .entry(dir.to_string())
        .or_insert_with(|| build(lang, &crate::workspace_root().join("examples").join(dir)))
        .clone()
}

/// Builds the plugin in `dir` with its language's build script; the
/// component is `dist/NAME.wasm`, NAME being the folder's name.
pub fn build(lang: Lang, dir: &Path) -> Result<PathBuf, String> {
    let name = dir.file_name().and_then(|n| n.to_str()).ok_or("a plugin folder has a name")?;
    match lang {
        Lang::Js => {
            node_modules()?;
            run(Command::new("npm").current_dir(dir).args(["run", "--silent", "build"]))?;
        }
        Lang::Python => {
            let python = python()?;
            // The template's build script serves every Python plugin here.
            let script = crate::workspace_root().join("examples/plugin-template-python/build.py");
            let script = if dir.join("build.py").exists() { dir.join("build.py") } else { script };
            run(Command::new(python).current_dir(dir).arg(script))?;
        }
    }
    let wasm = dir.join("dist").join(format!("{name}.wasm"));
    if wasm.exists() { Ok(wasm) } else { Err(format!("{} was not built", wasm.display())) }
}

/// Whether a missing tool fails the test rather than skipping it.
pub fn required() -> bool {
    std::env::var_os("JOBRUNNER_REQUIRE_GUESTS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The plugin's component, or `None` (after saying why) when the test
/// should be skipped because a tool is missing here.
pub fn plugin_or_skip(lang: Lang, dir: &str) -> Option<PathBuf> {
    match plugin(lang, dir) {
        Ok(path) => Some(path),
        Err(why) if !required() => {
            eprintln!("skipped: the {lang:?} plugin {dir} cannot be built here: {why}");
            None
        }
        Err(why) => panic!("the {lang:?} plugin {dir} did not build: {why}"),
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let text = if text.trim().is_empty() { String::from_utf8_lossy(&out.stdout) } else { text };
    Err(format!("{:?} failed ({}): {}", cmd.get_program(), out.status, text.trim()))
}
