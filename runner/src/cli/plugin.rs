//! `runner plugin check FILE.wasm`, `runner plugin compile FILE.wasm...`
//! and `runner plugin new NAME`.
//!
//! `check` compiles and links a component against the contract, exactly as
//! the runner would, and prints what `describe()` says, or which import or
//! export does not match. `compile` does the same under the config's engine
//! and writes each result into the config's compile cache, so that a
//! restart after a deploy loads its plugins in milliseconds rather than
//! compiling them. `new` writes a plugin from the template of its
//! language (`templates.rs`: Rust, TypeScript or Python), with its own copy
//! of the contract.

use super::templates::{self, Lang};
use crate::config::Config;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use jobrunner_host::cache::Cache;
use jobrunner_host::mail::Mailer;
use jobrunner_host::{Host, HostOptions, Services};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Check a component against the contract and print what it says of itself.
    Check {
        file: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compile components into the config's compile cache (as `serve` would),
    /// so that the next start loads them without compiling.
    Compile {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Write a new plugin from the template of a language.
    New {
        /// The plugin's name: also its package name and its first job type.
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
        /// Where to write it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `config_path` is read only by `compile`, which needs the engine's
/// settings and the compile cache of the runner it prepares for.
pub async fn run(cmd: PluginCommand, config_path: Option<&Path>) -> Result<ExitCode> {
    match cmd {
        PluginCommand::Check { file, json } => check(&file, json).await,
        PluginCommand::Compile { files } => compile(&files, super::load_config(config_path)?).await,
        PluginCommand::New { name, lang, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            new_plugin(&name, &dir, lang)?;
            println!("wrote plugin `{name}` ({lang:?}) to {}", dir.display());
            for line in templates::next_steps(lang, &name, &dir) {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads each file under `config`'s host options, as `serve` does (the
/// same engine settings, so the same cache keys), one after another (each
/// compile uses every core): a failure is reported per file and makes the
/// exit code non-zero, and the others are still compiled.
async fn compile(files: &[PathBuf], config: Config) -> Result<ExitCode> {
    let options = config.host_options();
    let Some(dir) = options.compile_cache_dir.clone() else {
        bail!("the compile cache is off ([runner] compile_cache = false): there is nothing to fill");
    };
    let host = Host::new(options, Services::new(Cache::memory(), Mailer::outbox(std::env::temp_dir())))?;
    let mut failed = 0;
    for file in files {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let result = host.load_file(file, |_| config.settings_for_file(&name)).await.map(|(plugin, load)| {
            let how = match load.compile {
                jobrunner_host::compile_cache::CompileSource::Compiled => "compiled",
                jobrunner_host::compile_cache::CompileSource::Cached => "already in the cache",
            };
            format!(
                "{} {}: {how} in {} ms",
                plugin.description.name,
                plugin.description.version,
                load.compile_time.as_millis()
            )
        });
        match result {
            Ok(line) => println!("{}: {line}", file.display()),
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {e:#}", file.display());
            }
        }
    }
    println!("compile cache: {}", dir.display());
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn check(file: &Path, json: bool) -> Result<ExitCode> {
    let host = Host::new(HostOptions::default(), Services::new(Cache::memory(), Mailer::outbox(std::env::temp_dir())))?;
    let config = Config::default();
    let (plugin, load) = host.load_file(file, |name| config.plugin_settings(name)).await?;
    let d = &plugin.description;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": true, "plugin": d, "sha256": plugin.sha256,
                "contract": d.contract.handler_export(), "load": load,
            }))?
        );
    } else {
        println!("ok: {} {}", d.name, d.version);
        println!("  job types: {}", d.job_types.join(", "));
        println!("  contract:  {} (version {})", d.contract.handler_export(), d.contract);
        println!("  sha256:    {}", plugin.sha256);
        println!(
            "  compiled in {}",
            humantime::format_duration(std::time::Duration::from_millis(load.compile_time.as_millis() as u64))
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn new_plugin(name: &str, dir: &Path, lang: Lang) -> Result<()> {
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
    {
        bail!("plugin name `{name}`: use lowercase letters, digits and `-`, starting with a letter");
    }
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} already exists and is not empty", dir.display());
    }
    for (rel, text) in templates::files(lang, name) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file in a folder"))
            .with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
