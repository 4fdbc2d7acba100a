//! `runner exec FILE.wasm --type TYPE --payload JSON`: one job, run locally
//! through the real host, with the outcome, the log, the emails and the
//! follow-up jobs printed. Exits 0 when the job completed, 1 when it did not.
//!
//! The cache is in memory unless `--redis` is given; email goes to the
//! outbox (or SMTP, when the config sets it); follow-up jobs are printed,
//! not enqueued.

use crate::cache::RedisCache;
use crate::config::{Config, PluginSettings};
use anyhow::{Context, Result, bail};
use clap::Args;
use jobrunner_host::cache::Cache;
use jobrunner_host::mail::Mailer;
use jobrunner_host::{Host, HostOptions, Services};
use jobrunner_job::{JobInput, Outcome, Report};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The plugin component (.wasm).
    pub file: PathBuf,
    /// The job type.
    #[arg(long = "type", short = 't')]
    pub job_type: String,
    /// The payload, as JSON text.
    #[arg(long, conflicts_with = "payload_file")]
    pub payload: Option<String>,
    /// Read the payload from a file.
    #[arg(long)]
    pub payload_file: Option<PathBuf>,
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long, default_value = "default")]
    pub queue: String,
    #[arg(long, default_value_t = 1)]
    pub attempt: u32,
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
    /// Allow outgoing HTTP to this host (repeatable), as in `allowed_hosts`.
    #[arg(long = "allow-host")]
    pub allow_hosts: Vec<String>,
    /// The config section to run the plugin under. Default: the one bound
    /// to the file (`file`, or `NAME.wasm`), else the one named as the
    /// plugin names itself (here you chose the file; `serve` never does
    /// the latter).
    #[arg(long = "plugin")]
    pub plugin: Option<String>,
    /// Allow those hosts to resolve to this special-purpose network (a CIDR
    /// block such as `127.0.0.0/8`, or `any`; repeatable), as in
    /// `allowed_networks`: loopback and private addresses are refused
    /// without it.
    #[arg(long = "allow-network")]
    pub allow_networks: Vec<String>,
    /// A config value for the plugin, KEY=VALUE (repeatable).
    #[arg(long = "set", value_parser = super::key_value)]
    pub config_values: Vec<(String, String)>,
    /// A secret for the plugin, KEY=VALUE or KEY=env:NAME (repeatable).
    #[arg(long = "secret", value_parser = super::key_value)]
    pub secrets: Vec<(String, String)>,
    /// Override the plugin's timeout, e.g. `5s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Override the plugin's memory cap, e.g. `32MiB`.
    #[arg(long)]
    pub memory: Option<bytesize::ByteSize>,
    /// Write emails here instead of the configured outbox.
    #[arg(long)]
    pub outbox: Option<PathBuf>,
    /// Use this Redis for the plugin's cache instead of an in-memory one.
    #[arg(long)]
    pub redis: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: ExecArgs, config_path: Option<&std::path::Path>) -> Result<ExitCode> {
    let config = match config_path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let payload = match (&args.payload, &args.payload_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
        (None, None) => bail!("give the payload with --payload JSON or --payload-file FILE"),
    };
    serde_json::from_str::<serde_json::Value>(&payload).context("--payload is not valid JSON")?;
    jobrunner_job::check_queue_name(&args.queue).map_err(anyhow::Error::msg)?;
    if args.attempt == 0 || args.max_attempts == 0 {
        bail!("--attempt and --max-attempts start at 1");
    }

    let cache = match &args.redis {
        Some(url) => {
            let conn = config.connect_redis(url).await.with_context(|| format!("--redis {url}"))?;
            Cache::new(RedisCache::new(conn))
        }
        None => Cache::memory(),
    };
    let mailer = match &args.outbox {
        Some(dir) => Mailer::outbox(dir.clone()),
        None => config.mailer()?,
    };
    let host = Host::new(
        HostOptions { engine: Default::default(), compile_cache_dir: config.compile_cache_dir() },
        Services::new(cache, mailer),
    )?;
    let file_name = args.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bound = config.section_for_file(&file_name).map(|(name, _)| name.to_string());
    let settings = |declared: &str| -> Result<PluginSettings> {
        let section = args.plugin.as_deref().or(bound.as_deref()).unwrap_or(declared);
        let mut s = config.plugin_settings(section)?;
        s.grants.allowed_hosts.extend(args.allow_hosts.iter().cloned());
        s.grants.allowed_networks.extend(args.allow_networks.iter().cloned());
        s.grants.config.extend(args.config_values.iter().cloned());
        for (k, v) in &args.secrets {
            s.grants
                .secrets
                .insert(k.clone(), crate::config::resolve_secret(v).with_context(|| format!("--secret {k}"))?);
        }
        if let Some(t) = args.timeout {
            s.limits.timeout = t;
        }
        if let Some(m) = args.memory {
            s.limits.memory_bytes = m.as_u64();
        }
        Ok(s)
    };
    let (plugin, load) = host.load_file(&args.file, settings).await?;
    let d = &plugin.description;
    if !d.job_types.contains(&args.job_type) {
        bail!("plugin {} does not handle type `{}`; it handles: {}", d.name, args.job_type, d.job_types.join(", "));
    }
    let job = JobInput {
        id: args.id.clone().unwrap_or_else(|| ulid::Ulid::new().to_string()),
        queue: args.queue.clone(),
        job_type: args.job_type.clone(),
        payload,
        attempt: args.attempt,
        max_attempts: args.max_attempts,
        enqueued_at_ms: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64,
        parent: None,
    };
    let report = plugin.run(&job).await;
    if args.json {
        let out = serde_json::json!({
            "plugin": d, "sha256": plugin.sha256, "load": load, "job": job, "report": report,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_human(&plugin, &load, &job, &report);
    }
    Ok(if report.outcome.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_human(plugin: &crate::Plugin, load: &jobrunner_host::LoadInfo, job: &JobInput, r: &Report) {
    let d = &plugin.description;
    println!(
        "plugin    {} {} (sha256 {}, {:?} in {})",
        d.name,
        d.version,
        &plugin.sha256[..12],
        load.compile,
        humantime::format_duration(Duration::from_millis(load.compile_time.as_millis() as u64))
    );
    println!(
        "job       {} type={} queue={} attempt {}/{}",
        job.id, job.job_type, job.queue, job.attempt, job.max_attempts
    );
    match &r.outcome {
        Outcome::Completed { output } => {
            println!("outcome   completed{}", output.as_ref().map(|o| format!(" output={o}")).unwrap_or_default())
        }
        Outcome::Fault(f) => {
            println!("outcome   fault ({}): {}", f.kind, f.message);
            if let Some(bt) = &f.backtrace {
                for line in bt.lines() {
                    println!("          {line}");
                }
            }
        }
        other => println!("outcome   {}", other.reason().unwrap_or_default()),
    }
    println!(
        "duration  {:.3} ms (instantiate {:.3} ms)",
        r.duration.as_secs_f64() * 1e3,
        r.instantiate.as_secs_f64() * 1e3
    );
    if let Some(p) = r.progress {
        println!("progress  {p}%");
    }
    if !r.log.is_empty() {
        println!("log{}:", if r.log_truncated { " (truncated)" } else { "" });
        for l in &r.log {
            println!(
                "  +{:>5}ms {:<5} {:<6} {}",
                l.at_ms,
                format!("{:?}", l.level).to_lowercase(),
                format!("{:?}", l.source).to_lowercase(),
                l.message
            );
        }
    }
    if !r.emails.is_empty() {
        println!("emails:");
        for e in &r.emails {
            println!(
                "  {} from {} to {}: {:?} -> {}",
                e.message_id,
                e.from,
                e.to.join(", "),
                e.subject,
                e.delivered_to
            );
        }
    }
    if !r.follow_ups.is_empty() {
        println!("follow-up jobs (printed, not enqueued):");
        for f in &r.follow_ups {
            let delay = f
                .delay_ms
                .map(|d| format!(" delay={}", humantime::format_duration(Duration::from_millis(d))))
                .unwrap_or_default();
            println!("  {} -> queue {} type {} id {}{}: {}", f.job_type, f.queue, f.job_type, f.id, delay, f.payload);
        }
    }
}
