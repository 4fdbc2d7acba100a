//! `runner serve`: loads the config, applies the environment and the
//! command line, and runs the daemon until SIGTERM or SIGINT.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A queue to consume, `name` or `name:concurrency` (repeatable; wins
    /// over the config and RUNNER_QUEUES).
    #[arg(long = "queue", short = 'q')]
    pub queues: Vec<String>,
    /// The plugins folder (wins over the config and RUNNER_PLUGINS_DIR).
    #[arg(long)]
    pub plugins_dir: Option<PathBuf>,
}

pub async fn run(args: ServeArgs, config_path: Option<PathBuf>) -> Result<ExitCode> {
    let mut config = super::load_config(config_path.as_deref())?;
    if !args.queues.is_empty() {
        config.set_queues(args.queues.iter().map(String::as_str)).map_err(|e| anyhow::anyhow!("--queue {e:#}"))?;
    }
    if let Some(dir) = args.plugins_dir {
        config.runner.plugins_dir = dir;
    }
    crate::daemon::serve(config, config_path, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
    }
}
