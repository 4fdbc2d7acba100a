//! The `runner` command line.
//!
//! Layout: `exec` (run one job locally), `plugin` (`check`, `new`). Each
//! command returns an exit code; an error is printed by `main` as one line.

mod exec;
mod plugin;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "runner", version, about = "A job runner whose handlers are sandboxed WebAssembly plugins")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one job through a plugin, locally, and print what happened.
    Exec(Box<exec::ExecArgs>),
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Exec(args) => exec::run(*args).await,
        Command::Plugin(cmd) => plugin::run(cmd).await,
    }
}

/// Parses `KEY=VALUE`.
pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}
