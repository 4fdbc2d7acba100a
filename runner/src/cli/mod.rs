//! The `runner` command line.
//!
//! Layout: `serve` (the daemon), `exec` (one job, locally), `plugin`
//! (`check`, `new`, with `templates`), `queues` (enqueue, inspect and operate the queues),
//! `flow` (add, show and remove flows of jobs),
//! `user` (a named user's password hash), `health` (a probe asked, for
//! a container's health check).
//! Each command returns an exit code; an error is printed by `main` as one line.

mod exec;
mod flow;
mod health;
mod plugin;
mod queues;
mod serve;
mod templates;
mod user;

use crate::config::Config;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "runner", version, about = "A job runner whose handlers are sandboxed WebAssembly plugins")]
pub struct Cli {
    /// The runner's config file (TOML).
    #[arg(long, short = 'c', global = true, env = "RUNNER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true, env = "RUNNER_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: consume the queues and run their jobs in plugins.
    Serve(serve::ServeArgs),
    /// Run one job through a plugin, locally, and print what happened.
    Exec(Box<exec::ExecArgs>),
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Enqueue a job (or many, from an NDJSON file); prints the job id.
    Enqueue(queues::EnqueueArgs),
    /// Show every queue with its jobs per state.
    Queues(queues::QueuesArgs),
    /// List a queue's jobs in one state, a page at a time.
    Jobs(queues::JobsArgs),
    /// Show one job as JSON, with its state.
    Job(queues::JobArgs),
    /// Retry a failed job, or every failed job of a queue.
    Retry(queues::RetryArgs),
    /// Pause a queue: its jobs wait until it is resumed.
    Pause { queue: String },
    /// Resume a paused queue.
    Resume { queue: String },
    /// Stop a running job: the runner running it records it failed
    /// ("cancelled"), with no retry.
    Cancel { queue: String, id: String },
    /// Flows: jobs that run after their children (add, show, remove).
    #[command(subcommand)]
    Flow(flow::FlowCommand),
    /// Manage recurring schedules.
    #[command(subcommand)]
    Schedule(queues::ScheduleCommand),
    /// Named users of the API and the dashboard.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Ask a running runner's /health (or /ready): exit 0 if it answers
    /// 200 (a container's health check).
    Health(health::HealthArgs),
}

/// The config from `--config` (or none), with the environment's overrides.
pub fn load_config(path: Option<&std::path::Path>) -> Result<Config> {
    let mut config = match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    config.apply_env(|k| std::env::var(k).ok())?;
    Ok(config)
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let config_path = cli.config.clone();
    match cli.command {
        Command::Serve(args) => serve::run(args, config_path).await,
        Command::Exec(args) => exec::run(*args, config_path.as_deref()).await,
        Command::Plugin(cmd) => plugin::run(cmd, config_path.as_deref()).await,
        Command::Enqueue(args) => queues::enqueue(args, &load_config(config_path.as_deref())?).await,
        Command::Queues(args) => queues::queues(args, &load_config(config_path.as_deref())?).await,
        Command::Jobs(args) => queues::jobs(args, &load_config(config_path.as_deref())?).await,
        Command::Job(args) => queues::job(args, &load_config(config_path.as_deref())?).await,
        Command::Retry(args) => queues::retry(args, &load_config(config_path.as_deref())?).await,
        Command::Pause { queue } => queues::pause(&queue, true, &load_config(config_path.as_deref())?).await,
        Command::Resume { queue } => queues::pause(&queue, false, &load_config(config_path.as_deref())?).await,
        Command::Cancel { queue, id } => queues::cancel(&queue, &id, &load_config(config_path.as_deref())?).await,
        Command::Flow(cmd) => flow::run(cmd, config_path.as_deref()).await,
        Command::Schedule(cmd) => queues::schedule(cmd, &load_config(config_path.as_deref())?).await,
        Command::User(cmd) => user::run(cmd),
        Command::Health(args) => health::run(args).await,
    }
}

/// Parses `KEY=VALUE`.
pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

/// The daemon's Redis: `REDIS_URL` (or the config's), else the embedded
/// one that `runner serve` recorded in the state directory.
fn redis_url(config: &Config) -> Result<String> {
    match &config.redis.url {
        Some(url) => Ok(url.clone()),
        None => {
            let file = crate::daemon::embedded::url_file(&config.runner.state_dir);
            std::fs::read_to_string(&file).map(|s| s.trim().to_string()).with_context(|| {
                format!(
                    "no Redis to talk to: set REDIS_URL, or start `runner serve` (which runs its own Redis and records it in {})",
                    file.display()
                )
            })
        }
    }
}

/// Connects to the daemon's Redis (see `redis_url`).
pub(crate) async fn connect(config: &Config) -> Result<jobrunner_queue::Connection> {
    config.connect_redis(&redis_url(config)?).await
}

/// Connects, and opens the queues the config declares as BullMQ's, so that
/// the queue commands see them beside the native ones.
pub(crate) async fn connect_all(
    config: &Config,
) -> Result<(jobrunner_queue::Connection, jobrunner_bullmq::BullQueues)> {
    let url = redis_url(config)?;
    let conn = config.connect_redis(&url).await?;
    let bull = jobrunner_bullmq::open_all(config.bullmq_queues(), &url).await?;
    Ok((conn, bull))
}

/// The queue `name`, native or BullMQ-backed as the config declares it.
pub(crate) async fn open_queue(config: &Config, name: &str) -> Result<jobrunner_bullmq::any_queue::AnyQueue> {
    let (conn, bull) = connect_all(config).await?;
    jobrunner_bullmq::any_queue::AnyQueue::open(&conn, &bull, name)
}
