//! The queue commands: `enqueue` (one job, or many from NDJSON with a
//! progress bar), `queues`, `jobs`, `job`, `retry`, `pause`, `resume` and
//! `schedule add|list|remove`. They talk to the daemon's Redis, and see the
//! queues the config declares as BullMQ's beside the native ones.

use crate::config::Config;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use jobrunner_bullmq::any_queue::AnyQueue;
use jobrunner_queue::{CancelAnswer, JobOptions, NewJob, Queue, Schedule, ScheduleSource, State, Timing};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e} (write e.g. 500ms, 30s, 10m)"))
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    pub queue: String,
    #[arg(value_name = "TYPE")]
    pub job_type: String,
    /// The payload, as JSON.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    pub payload: Option<String>,
    /// Enqueue every line of an NDJSON file: `{"payload": ..., "id"?: ..., "options"?: {...}}`.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Run no sooner than this, e.g. 500ms, 30s, 10m.
    #[arg(long, value_parser = duration)]
    pub delay: Option<Duration>,
    /// 0 to 4000; higher runs first.
    #[arg(long)]
    pub priority: Option<u32>,
    /// Attempts allowed in all.
    #[arg(long)]
    pub attempts: Option<u32>,
    /// The job id (enqueueing an existing id changes nothing).
    #[arg(long)]
    pub id: Option<String>,
    /// Wait for the job to finish (at most TIMEOUT, e.g. 30s; without one,
    /// as long as it takes): print its output and exit 0, or say why it
    /// failed and exit 1; exit 3 if it is still unfinished at the timeout.
    #[arg(long, value_name = "TIMEOUT", num_args = 0..=1, value_parser = duration, conflicts_with = "file")]
    pub wait: Option<Option<Duration>>,
}

fn options_from(args: &EnqueueArgs, base: JobOptions) -> JobOptions {
    let mut o = base;
    if let Some(d) = args.delay {
        o.delay_ms = d.as_millis() as u64;
    }
    if let Some(p) = args.priority {
        o.priority = Some(p);
    }
    if let Some(a) = args.attempts {
        o.attempts = Some(a);
    }
    o
}

/// The bulk file's lines.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    payload: serde_json::Value,
    id: Option<String>,
    #[serde(default)]
    options: Option<JobOptions>,
}

pub async fn enqueue(args: EnqueueArgs, config: &Config) -> Result<ExitCode> {
    let queue = super::open_queue(config, &args.queue).await?;
    if let Some(payload) = &args.payload {
        serde_json::from_str::<serde_json::Value>(payload).context("--payload is not valid JSON")?;
        // Checked before anything is enqueued, so a refused wait leaves no job behind.
        let waits_on = match (&args.wait, queue.native()) {
            (Some(timeout), Some(native)) => Some((native.clone(), *timeout)),
            (Some(_), None) => bail!(
                "--wait: queue {} is BullMQ-backed; wait with BullMQ's `job.waitUntilFinished`, or read the job with `runner job`",
                args.queue
            ),
            (None, _) => None,
        };
        let job = NewJob {
            id: args.id.clone(),
            job_type: args.job_type.clone(),
            payload: payload.clone(),
            options: options_from(&args, JobOptions::default()),
        };
        let e = queue.enqueue(job).await?;
        println!("{}", e.id);
        if !e.created {
            eprintln!("note: job {} existed already ({}); nothing was changed", e.id, e.state);
        }
        if let Some((native, timeout)) = waits_on {
            return wait_for(&native, &e.id, timeout).await;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let path = args.file.clone().expect("clap requires --payload or --file");
    let file = std::fs::File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let total = std::fs::metadata(&path)?.len();
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}").expect("a valid template"),
    );
    let (mut created, mut existed, mut batch, mut read) = (0u64, 0u64, Vec::new(), 0u64);
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        read += line.len() as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(&line).map_err(|e| anyhow!("{} line {}: {e}", path.display(), n + 1))?;
        batch.push(NewJob {
            id: l.id,
            job_type: args.job_type.clone(),
            payload: l.payload.to_string(),
            options: options_from(&args, l.options.unwrap_or_default()),
        });
        if batch.len() == 10_000 {
            let out = queue
                .enqueue_bulk(std::mem::take(&mut batch))
                .await
                .with_context(|| format!("before {} line {}", path.display(), n + 2))?;
            created += out.iter().filter(|e| e.created).count() as u64;
            existed += out.iter().filter(|e| !e.created).count() as u64;
            bar.set_position(read);
            bar.set_message(format!("{created} jobs"));
        }
    }
    let out = queue.enqueue_bulk(batch).await?;
    created += out.iter().filter(|e| e.created).count() as u64;
    existed += out.iter().filter(|e| !e.created).count() as u64;
    bar.finish_and_clear();
    println!(
        "enqueued {created} jobs to {}{}",
        args.queue,
        if existed > 0 { format!(" ({existed} existed already)") } else { String::new() }
    );
    Ok(ExitCode::SUCCESS)
}

/// How long one wait for the events runs before `enqueue --wait` without a
/// timeout waits again (each read of the events blocks at most 30 s).
const WAIT_ROUND: Duration = Duration::from_secs(3600);

/// `enqueue --wait`: waits for the job; prints its output (JSON) on stdout
/// and exits 0, or says why it failed on stderr and exits 1; exits 3 if it
/// has not finished within the timeout.
async fn wait_for(queue: &Queue, id: &str, timeout: Option<Duration>) -> Result<ExitCode> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let left = deadline.map_or(WAIT_ROUND, |d| d.saturating_duration_since(Instant::now()));
        let record = queue.wait(id, left).await?.ok_or_else(|| anyhow!("job {id} was removed while waited for"))?;
        match record.state {
            State::Completed => {
                println!("{}", record.result.unwrap_or(serde_json::Value::Null));
                return Ok(ExitCode::SUCCESS);
            }
            State::Failed => {
                let why = record.errors.last().map_or("no reason recorded", |e| e.error.as_str());
                eprintln!("job {id} failed after {} attempt(s): {why}", record.attempts_made);
                return Ok(ExitCode::from(1));
            }
            state if deadline.is_some_and(|d| Instant::now() >= d) => {
                let waited = humantime::format_duration(timeout.unwrap_or_default());
                eprintln!("job {id} is still {} after {waited}", state.as_str());
                return Ok(ExitCode::from(3));
            }
            _ => {}
        }
    }
}

#[derive(Debug, Args)]
pub struct QueuesArgs {
    #[arg(long)]
    pub json: bool,
}

pub async fn queues(args: QueuesArgs, config: &Config) -> Result<ExitCode> {
    let (conn, bull) = super::connect_all(config).await?;
    let mut rows = Vec::new();
    for name in AnyQueue::names(&conn, &bull).await? {
        let q = AnyQueue::open(&conn, &bull, &name)?;
        rows.push((name, q.backend(), q.counts().await?, q.policy().await?));
    }
    if args.json {
        let v: serde_json::Map<String, serde_json::Value> = rows
            .into_iter()
            .map(|(n, backend, c, policy)| {
                let mut v = serde_json::to_value(c).expect("counts serialise");
                v["backend"] = backend.into();
                v["policy"] = serde_json::to_value(policy).expect("a policy serialises");
                (n, v)
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{:<24} {:<7} {:>9} {:>9} {:>9} {:>10} {:>9} {:>16}",
            "QUEUE", "BACKEND", "WAITING", "DELAYED", "ACTIVE", "COMPLETED", "FAILED", "WAITING_CHILDREN"
        );
        for (n, backend, c, _) in &rows {
            let name = if c.paused { format!("{n} (paused)") } else { n.clone() };
            println!(
                "{name:<24} {backend:<7} {:>9} {:>9} {:>9} {:>10} {:>9} {:>16}",
                c.waiting, c.delayed, c.active, c.completed, c.failed, c.waiting_children
            );
        }
        // Each queue's policy, every value with where it came from.
        for (n, _, _, policy) in &rows {
            println!("\n{n}:");
            for (key, value, source) in policy.describe() {
                println!("  {key:<16} {value:<40} {source}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    pub queue: String,
    /// waiting, delayed, active, completed or failed.
    #[arg(long, default_value = "waiting")]
    pub state: String,
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    #[arg(long, default_value_t = 20)]
    pub limit: u64,
    #[arg(long)]
    pub json: bool,
}

pub async fn jobs(args: JobsArgs, config: &Config) -> Result<ExitCode> {
    let state = State::parse(&args.state)
        .ok_or_else(|| anyhow!("--state `{}`: use waiting, delayed, active, completed or failed", args.state))?;
    let queue = super::open_queue(config, &args.queue).await?;
    let page = queue.list(state, args.offset, args.limit).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(ExitCode::SUCCESS);
    }
    for j in &page {
        let last_error = j
            .errors
            .last()
            .map(|e| format!("  last error: {}", e.error.lines().next().unwrap_or("")))
            .unwrap_or_default();
        println!("{}  {}  attempts {}/{}{}", j.id, j.job_type, j.attempts_made, j.attempts_allowed(), last_error);
    }
    if page.len() as u64 == args.limit.clamp(1, 1000) {
        println!("(more: --offset {})", args.offset.saturating_add(page.len() as u64));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct JobArgs {
    pub queue: String,
    pub id: String,
}

pub async fn job(args: JobArgs, config: &Config) -> Result<ExitCode> {
    let queue = super::open_queue(config, &args.queue).await?;
    match queue.get(&args.id).await? {
        Some(j) => {
            println!("{}", serde_json::to_string_pretty(&j)?);
            Ok(ExitCode::SUCCESS)
        }
        None => bail!("no job `{}` in queue {}", args.id, args.queue),
    }
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    pub queue: String,
    #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
    pub id: Option<String>,
    /// Retry every failed job of the queue.
    #[arg(long)]
    pub all_failed: bool,
}

pub async fn retry(args: RetryArgs, config: &Config) -> Result<ExitCode> {
    let queue = super::open_queue(config, &args.queue).await?;
    if args.all_failed {
        println!("retried {} jobs", queue.retry_all_failed().await?);
        return Ok(ExitCode::SUCCESS);
    }
    let id = args.id.expect("clap requires an id or --all-failed");
    match queue.retry(&id).await?.as_str() {
        "retried" => {
            println!("{id} is waiting again");
            Ok(ExitCode::SUCCESS)
        }
        "missing" => bail!("no job `{id}` in queue {}", args.queue),
        state => bail!("job `{id}` is {state}, not failed"),
    }
}

pub async fn pause(name: &str, pause: bool, config: &Config) -> Result<ExitCode> {
    let queue = super::open_queue(config, name).await?;
    if pause {
        queue.pause().await?;
        println!("{name} paused");
    } else {
        queue.resume().await?;
        println!("{name} resumed");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create or replace a schedule.
    Add {
        queue: String,
        id: String,
        #[arg(value_name = "TYPE")]
        job_type: String,
        #[arg(long, default_value = "{}")]
        payload: String,
        /// A cron expression (5 fields, or 6 with seconds first).
        #[arg(long, conflicts_with = "every", required_unless_present = "every")]
        cron: Option<String>,
        /// The time zone of --cron, e.g. Europe/Paris.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// A fixed interval, e.g. 30s or 1h.
        #[arg(long, value_parser = duration)]
        every: Option<Duration>,
        #[arg(long)]
        attempts: Option<u32>,
    },
    /// List schedules (of one queue, or of all).
    List {
        queue: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a schedule.
    Remove { queue: String, id: String },
}

pub async fn schedule(cmd: ScheduleCommand, config: &Config) -> Result<ExitCode> {
    let conn = super::connect(config).await?;
    match cmd {
        ScheduleCommand::Add { queue, id, job_type, payload, cron, tz, every, attempts } => {
            if config.queues.get(&queue).is_some_and(|q| q.bullmq.is_some()) {
                bail!(
                    "queue {queue} is kept in BullMQ's format: schedule its jobs with BullMQ's job schedulers (upsertJobScheduler)"
                );
            }
            let payload: serde_json::Value = serde_json::from_str(&payload).context("--payload is not valid JSON")?;
            let timing = match (cron, every) {
                (Some(expr), _) => Timing::Cron { expr, tz },
                (None, Some(every)) => Timing::Every { every_ms: every.as_millis() as u64 },
                (None, None) => bail!("give --cron or --every"),
            };
            let mut options = JobOptions::default();
            if let Some(a) = attempts {
                options.attempts = Some(a);
            }
            let queue = Queue::new(conn, &queue)?;
            queue.check_not_from_config(&id).await?;
            let schedule = Schedule { id, job_type, payload, options, timing, source: ScheduleSource::Api };
            let info = queue.upsert_schedule(&schedule).await?;
            println!("{} next runs at {}", info.schedule.id, format_ms(info.next_run_ms));
        }
        ScheduleCommand::List { queue, json } => {
            let names = match queue {
                Some(q) => vec![q],
                None => Queue::names(&conn).await?,
            };
            let mut all = Vec::new();
            for n in names {
                for s in Queue::new(conn.clone(), &n)?.list_schedules().await? {
                    all.push((n.clone(), s));
                }
            }
            if json {
                let v: Vec<_> = all.iter().map(|(q, s)| serde_json::json!({"queue": q, "schedule": s})).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for (q, s) in all {
                    let when = match &s.schedule.timing {
                        Timing::Cron { expr, tz } => format!("cron `{expr}` ({tz})"),
                        Timing::Every { every_ms } => {
                            format!("every {}", humantime::format_duration(Duration::from_millis(*every_ms)))
                        }
                    };
                    println!(
                        "{q}  {}  {}  {when}  next {}",
                        s.schedule.id,
                        s.schedule.job_type,
                        format_ms(s.next_run_ms)
                    );
                }
            }
        }
        ScheduleCommand::Remove { queue, id } => {
            let q = Queue::new(conn, &queue)?;
            q.check_not_from_config(&id).await?;
            if !q.remove_schedule(&id).await? {
                bail!("no schedule `{id}` in queue {queue}");
            }
            println!("removed {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `runner cancel`: asks the runner running the job to stop it.
pub async fn cancel(name: &str, id: &str, config: &Config) -> Result<ExitCode> {
    let queue = super::open_queue(config, name).await?;
    let native = queue
        .native()
        .ok_or_else(|| anyhow!("queue {name} is BullMQ-backed: its jobs cannot be cancelled through the runner"))?;
    match native.cancel(id).await? {
        CancelAnswer::Requested { listeners } => {
            println!("cancel requested for job {id} ({listeners} runner(s) of queue {name} told)");
            Ok(ExitCode::SUCCESS)
        }
        CancelAnswer::NotRunning(state) => {
            bail!(
                "job {id} is {}; only a running job can be cancelled (remove a waiting or delayed one)",
                state.as_str()
            )
        }
        CancelAnswer::Missing => bail!("no job `{id}` in queue {name}"),
    }
}

fn format_ms(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
