//! `runner flow`: add a flow from a JSON file (or standard input), show a
//! flow's parent with its children a page at a time, and remove a flow.

use super::load_config;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use jobrunner_queue::{FlowJob, Queue};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// Add a flow: a JSON tree of jobs (`queue`, `type`, `payload`,
    /// `options`, `id`, `on_failure`, `children`); prints the root's id.
    Add {
        /// The JSON file, or `-` for standard input.
        file: PathBuf,
    },
    /// Show a flow's parent as JSON, with its children's counts and a
    /// page of its children.
    Show(ShowArgs),
    /// Remove a job and every job of the flow below it.
    Remove { queue: String, id: String },
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    pub queue: String,
    pub id: String,
    /// The first child to show, from 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub from: u64,
    /// Children per page (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub limit: u64,
}

pub async fn run(cmd: FlowCommand, config_path: Option<&Path>) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let conn = super::connect(&config).await?;
    match cmd {
        FlowCommand::Add { file } => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).context("read the flow from standard input")?;
                s
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?
            };
            let flow: FlowJob =
                serde_json::from_str(&text).with_context(|| format!("{} is not a flow", file.display()))?;
            refuse_bullmq(&config, &flow)?;
            let added = jobrunner_queue::add_flow(&conn, flow).await?;
            if !added.created {
                eprintln!("a job {} exists already in queue {}: nothing was added", added.id, added.queue);
            }
            if let Some(why) = &added.unfinished {
                eprintln!(
                    "added, but not every job yet ({why}); a runner consuming queue {} creates the rest",
                    added.queue
                );
            }
            println!("{}", added.id);
            Ok(ExitCode::SUCCESS)
        }
        FlowCommand::Show(args) => {
            let queue = Queue::new(conn, &args.queue)?;
            let Some(job) = queue.get(&args.id).await? else { bail!("no job `{}` in queue {}", args.id, args.queue) };
            let children = queue.children(&args.id, args.from, args.limit).await?;
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({"job": job, "children": children}))?);
            Ok(ExitCode::SUCCESS)
        }
        FlowCommand::Remove { queue, id } => match jobrunner_queue::remove_flow(&conn, &queue, &id).await? {
            0 => bail!("no job `{id}` in queue {queue}"),
            n => {
                println!("removed {n} jobs");
                Ok(ExitCode::SUCCESS)
            }
        },
    }
}

/// Flows are the native queues'; a queue the config declares as BullMQ's
/// takes BullMQ's FlowProducer.
fn refuse_bullmq(config: &crate::config::Config, job: &FlowJob) -> Result<()> {
    if config.queues.get(&job.queue).is_some_and(|q| q.bullmq.is_some()) {
        bail!("queue {} is BullMQ-backed: add flows to it with BullMQ's FlowProducer", job.queue);
    }
    job.children.iter().try_for_each(|c| refuse_bullmq(config, c))
}
