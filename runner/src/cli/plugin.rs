//! `runner plugin check FILE.wasm` and `runner plugin new NAME`.
//!
//! `check` compiles and links a component against the contract, exactly as
//! the runner would, and prints what `describe()` says, or which import or
//! export does not match. `new` writes a plugin crate from the template in
//! `examples/plugin-template`, with its own copy of the contract.

use crate::cache::{Cache, MemoryCache};
use crate::config::Config;
use crate::host::{Host, HostOptions, Services};
use crate::mail::Mailer;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
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
    /// Write a new plugin crate from the template.
    New {
        /// The plugin's name: also its crate name and its first job type.
        name: String,
        /// Where to write it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub async fn run(cmd: PluginCommand) -> Result<ExitCode> {
    match cmd {
        PluginCommand::Check { file, json } => check(&file, json).await,
        PluginCommand::New { name, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            new_plugin(&name, &dir)?;
            println!("wrote plugin `{name}` to {}", dir.display());
            println!("build it:  cd {} && cargo build --target wasm32-wasip2 --release", dir.display());
            let file = format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_"));
            println!("check it:  runner plugin check {file}");
            println!("run it:    runner exec {file} --type {name} --payload '{{\"name\": \"Ada\"}}'");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn check(file: &Path, json: bool) -> Result<ExitCode> {
    let host = Host::new(
        HostOptions::default(),
        Services {
            cache: Cache::Memory(MemoryCache::new()),
            mailer: Mailer::outbox(std::env::temp_dir()),
            metrics: None,
        },
    )?;
    let config = Config::default();
    let (plugin, load) = host.load_file(file, |name| config.plugin_settings(name)).await?;
    let d = &plugin.description;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": true, "plugin": d, "sha256": plugin.sha256,
                "contract": crate::host::contract::v0_1::HANDLER_EXPORT, "load": load,
            }))?
        );
    } else {
        println!("ok: {} {}", d.name, d.version);
        println!("  job types: {}", d.job_types.join(", "));
        println!("  contract:  {}", crate::host::contract::v0_1::HANDLER_EXPORT);
        println!("  sha256:    {}", plugin.sha256);
        println!(
            "  compiled in {}",
            humantime::format_duration(std::time::Duration::from_millis(load.compile_time.as_millis() as u64))
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The template's files, compiled into the binary so `plugin new` works
/// from an installed runner with no checkout beside it.
const TEMPLATE_CARGO: &str = include_str!("../../../examples/plugin-template/Cargo.toml");
const TEMPLATE_LIB: &str = include_str!("../../../examples/plugin-template/src/lib.rs");
const TEMPLATE_README: &str = include_str!("../../../examples/plugin-template/README.md");
const TEMPLATE_GITIGNORE: &str = "target/\n";
const WIT_FILES: &[(&str, &str)] = &[
    ("world.wit", include_str!("../../../wit/v0.1/world.wit")),
    ("types.wit", include_str!("../../../wit/v0.1/types.wit")),
];

/// The name the template uses for itself, replaced by the new plugin's name.
const TEMPLATE_NAME: &str = "plugin-template";

pub fn new_plugin(name: &str, dir: &Path) -> Result<()> {
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
    {
        bail!("plugin name `{name}`: use lowercase letters, digits and `-`, starting with a letter");
    }
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} already exists and is not empty", dir.display());
    }
    let cargo = TEMPLATE_CARGO.replace(TEMPLATE_NAME, name)
        // The template is a member of the runner's workspace; a new plugin
        // is a workspace of its own.
        + "\n[workspace]\n";
    let lib = TEMPLATE_LIB.replace(TEMPLATE_NAME, name).replace("../../wit/v0.1", "wit");
    let readme = TEMPLATE_README.replace(TEMPLATE_NAME, name);
    let files: Vec<(PathBuf, String)> = [
        (PathBuf::from("Cargo.toml"), cargo),
        (PathBuf::from("src/lib.rs"), lib),
        (PathBuf::from("README.md"), readme),
        (PathBuf::from(".gitignore"), TEMPLATE_GITIGNORE.to_string()),
    ]
    .into_iter()
    .chain(WIT_FILES.iter().map(|(f, text)| (PathBuf::from("wit").join(f), text.to_string())))
    .collect();
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file in a folder"))
            .with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
