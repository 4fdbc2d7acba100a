//! `runner plugin check FILE.wasm` and `runner plugin new NAME`.
//!
//! `check` compiles and links a component against the contract, exactly as
//! the runner would, and prints what `describe()` says, or which import or
//! export does not match. `new` writes a plugin from the template of its
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

pub async fn run(cmd: PluginCommand) -> Result<ExitCode> {
    match cmd {
        PluginCommand::Check { file, json } => check(&file, json).await,
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

async fn check(file: &Path, json: bool) -> Result<ExitCode> {
    let host = Host::new(
        HostOptions::default(),
        Services { cache: Cache::memory(), mailer: Mailer::outbox(std::env::temp_dir()) },
    )?;
    let config = Config::default();
    let (plugin, load) = host.load_file(file, |name| config.plugin_settings(name)).await?;
    let d = &plugin.description;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": true, "plugin": d, "sha256": plugin.sha256,
                "contract": jobrunner_host::contract::v0_1::HANDLER_EXPORT, "load": load,
            }))?
        );
    } else {
        println!("ok: {} {}", d.name, d.version);
        println!("  job types: {}", d.job_types.join(", "));
        println!("  contract:  {}", jobrunner_host::contract::v0_1::HANDLER_EXPORT);
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
