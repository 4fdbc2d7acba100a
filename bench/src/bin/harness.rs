//! The benchmark harness: `cargo xtask bench [--bullmq]` builds what it
//! needs and runs this. It starts a Redis of its own on a free port, runs
//! every measure `--runs` times against the release `runner` binary (and,
//! with `--bullmq`, against BullMQ in the same run, the two sides' runs
//! taking turns, so drift in the machine hits both alike: `alternate`),
//! and prints one Markdown table of medians, spreads, ratios and targets,
//! also written to `target/bench/results.md`.

use anyhow::{Context, Result, bail};
use bench::bullmq::{BullMq, BullMqPython};
use bench::measure::{Bench, Drain, Enqueue, Guest, GuestCache, Timing};
use bench::report::{Better, Row, markdown};
use bench::stats::Runs;
use clap::Parser;
use std::path::PathBuf;
use testkit::guest::{self, Lang};

const MEASURES: &[&str] = &[
    "enqueue",
    "drain",
    "bullmq-drain",
    "template",
    "guest",
    "http",
    "latency",
    "delayed",
    "overhead",
    "flow",
    "scale",
    "memory",
    "reload",
    "startup",
];

/// Jobs the `guest` measure times in each run.
const GUEST_JOBS: usize = 20_000;

/// A percentile's name, how to read it from a run, and its bound.
type Percentile = (&'static str, fn(&Timing) -> f64, Option<f64>);

#[derive(Parser)]
#[command(about = "Measures the runner end to end, beside BullMQ when asked")]
struct Args {
    /// Runs of each measure (the table shows their median, min and max).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Jobs drained per run.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Concurrency levels of the drain measure.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50,100")]
    concurrency: Vec<usize>,
    /// Run BullMQ (the npm package, one Node worker) beside the runner.
    #[arg(long)]
    bullmq: bool,
    /// Only these measures (of enqueue, drain, bullmq-drain, template,
    /// guest, http, latency, delayed, overhead, flow, scale, memory,
    /// reload, startup). `scale` drains no-op jobs with 1, 2 and 3 runner
    /// processes on one Redis. `flow` drains a fan-in of 10,000 children beside a plain drain of
    /// as many jobs, at concurrency 50. `http`
    /// needs `wrk`. `bullmq-drain`
    /// drains a BullMQ-backed queue (BullMQ's jobs, the runner's plugins);
    /// `template` drains the TypeScript and Python plugin templates' jobs,
    /// beside BullMQ's Node and Python packages running the same handlers
    /// natively; `guest` times template jobs in shared instances in the
    /// harness's own process, without the daemon (by default one after
    /// another in one instance, with no Redis: `--guest-lanes`,
    /// `--guest-cache`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Jobs drained per run of the `scale` measure (1, 2 and 3 runner
    /// processes on one Redis, concurrency 50 each).
    #[arg(long, default_value_t = 50_000)]
    scale_jobs: usize,
    /// Jobs drained per run of the `template` measure.
    #[arg(long, default_value_t = 10_000)]
    template_jobs: usize,
    /// Concurrency of the `template` measure, on every side.
    #[arg(long, default_value_t = 50)]
    template_concurrency: usize,
    /// Which templates the `template` measure drains (ts, python).
    #[arg(long, value_delimiter = ',', default_value = "ts,python")]
    templates: Vec<String>,
    /// Jobs one instance serves in the `template` measure's runs with
    /// `isolation = "instance"`.
    #[arg(long, default_value_t = 1000)]
    max_jobs_per_instance: u32,
    /// Jobs the `guest` measure runs at once, each in an instance of its
    /// own, as tasks on the harness's runtime threads (one a core; 1: one
    /// after another in one instance).
    #[arg(long, default_value_t = 1)]
    guest_lanes: usize,
    /// The cache behind the `guest` measure's plugin: `memory`;
    /// `suspending` (the same, but each call suspends the guest once, as a
    /// call to Redis does: a suspension's own cost); or `redis` (the
    /// runner's own Redis cache, on the harness's Redis: each job's cache
    /// calls then wait for Redis, as under `runner serve`).
    #[arg(long, default_value = "memory")]
    guest_cache: String,
    /// Exit non-zero, naming each, when a target is missed.
    #[arg(long)]
    check: bool,
    /// BullMQ-backed queues without BullMQ's per-minute metrics (which the
    /// runner records by default, and BullMQ's Node worker does not).
    #[arg(long)]
    no_bullmq_metrics: bool,
    /// The runner binary (default: `runner` beside this one).
    #[arg(long)]
    runner: Option<PathBuf>,
    /// Where to write the table.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs a measure `runs` times on the runner and, given `bullmq`, as many
/// times on BullMQ, in turns: runner, BullMQ, runner, and so on. This
/// machine's speed drifts, by up to 2× from one stretch of minutes to the
/// next; runs in turns see the same stretches, where all of one side's runs
/// and then all of the other's could put the two in different ones and
/// skew the ratio either way.
async fn alternate<T, F, Fut, G, GFut>(
    runs: usize,
    mut runner: F,
    mut bullmq: Option<G>,
    pick: impl Fn(&T) -> f64,
) -> Result<(Vec<T>, Option<Vec<T>>)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
    G: FnMut() -> GFut,
    GFut: Future<Output = Result<T>>,
{
    let mut ours = Vec::with_capacity(runs);
    let mut theirs = bullmq.as_ref().map(|_| Vec::with_capacity(runs));
    for i in 0..runs {
        let r = runner().await.with_context(|| format!("runner, run {}", i + 1))?;
        eprintln!("  runner run {}: {}", i + 1, bench::stats::human(pick(&r)));
        ours.push(r);
        if let (Some(bullmq), Some(theirs)) = (bullmq.as_mut(), theirs.as_mut()) {
            let r = bullmq().await.with_context(|| format!("bullmq, run {}", i + 1))?;
            eprintln!("  bullmq run {}: {}", i + 1, bench::stats::human(pick(&r)));
            theirs.push(r);
        }
    }
    Ok((ours, theirs))
}

/// Runs a measure of the runner alone `runs` times and summarises a figure
/// of each.
async fn repeat<T, F, Fut>(runs: usize, f: F, pick: impl Fn(&T) -> f64) -> Result<(Runs, Vec<T>)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let none = None::<fn() -> std::future::Ready<Result<T>>>;
    let (all, _) = alternate(runs, f, none, &pick).await?;
    let values: Vec<f64> = all.iter().map(&pick).collect();
    Ok((Runs::of(&values), all))
}

/// A drain's rows: throughput (with the least ratio over BullMQ it must
/// reach, if any), Redis commands per job, and the CPU per job of the
/// worker process and of Redis, BullMQ's beside each. The CPU rows say
/// where a drain's time goes, which throughput alone hides: on 2 cores
/// the worker and Redis share the machine.
fn drain_rows(
    measure: String,
    of: String,
    runner: &[Drain],
    bullmq: Option<Vec<Drain>>,
    min_ratio: Option<f64>,
) -> [Row; 4] {
    // Each row: its name, unit, what it reads of a run, and which way is better.
    type Pick = fn(&Drain) -> f64;
    let runs = |all: &[Drain], pick: Pick| Runs::of(&all.iter().map(pick).collect::<Vec<_>>());
    let pickers: [(String, &str, Pick, Better); 4] = [
        (measure, "jobs/s", |d| d.jobs_per_s, Better::Higher),
        (format!("Redis commands per job, {of}"), "commands", |d| d.commands_per_job, Better::Lower),
        (
            format!("worker CPU per job (the runner / BullMQ's worker process), {of}"),
            "µs",
            |d| d.worker_cpu_us,
            Better::Lower,
        ),
        (format!("Redis CPU per job, {of}"), "µs", |d| d.redis_cpu_us, Better::Lower),
    ];
    let mut rows = pickers.map(|(name, unit, pick, better)| {
        let mut row = Row::new(name, unit, runs(runner, pick), better);
        row.bullmq = bullmq.as_ref().map(|b| runs(b, pick));
        row
    });
    rows[0].min_ratio = min_ratio;
    rows
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let version = |cmd: &str, arg: &str| {
        std::process::Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| format!("no {cmd}"))
    };
    format!("{cores} cores ({cpu}); {}; node {}", version("redis-server", "--version"), version("node", "--version"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    for m in &args.only {
        if !MEASURES.contains(&m.as_str()) {
            bail!("--only {m}: not a measure (one of {})", MEASURES.join(", "));
        }
    }
    if args.runs == 0 || args.jobs == 0 {
        bail!("--runs and --jobs must be at least 1");
    }
    if !(1..=GUEST_JOBS).contains(&args.guest_lanes) {
        bail!("--guest-lanes {}: from 1 to {GUEST_JOBS} (the jobs it runs)", args.guest_lanes);
    }
    let cache = GuestCache::parse(&args.guest_cache)?;
    let wanted = |m: &str| args.only.is_empty() || args.only.iter().any(|o| o == m);
    let binary = match &args.runner {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("runner"),
    };
    if !binary.exists() {
        bail!("no runner binary at {} (cargo build --release -p runner)", binary.display());
    }
    let redis = testkit::redis::RedisServer::start();
    let builtins = ["email", "webhook", "vendor_notification", "response_reminder", "cache_warmup"]
        .iter()
        .map(|p| testkit::wasm::path(&format!("{p}_plugin")))
        .collect();
    // The guest templates, for the start-up measure (built by their own
    // tools; left out, saying why, when those are missing).
    let mut guests = Vec::new();
    if wanted("startup") {
        for (lang, dir) in [(Lang::Js, "plugin-template-ts"), (Lang::Python, "plugin-template-python")] {
            match guest::plugin(lang, dir) {
                Ok(path) => guests.push(path),
                Err(why) => eprintln!("start-up: {dir} left out: {why}"),
            }
        }
    }
    let b = Bench {
        guests,
        binary,
        noop: testkit::wasm::path("noop_plugin"),
        hostile: testkit::wasm::path("hostile_plugin"),
        builtins,
        redis,
        bullmq_metrics: !args.no_bullmq_metrics,
    };
    let b = &b;
    let bull = if args.bullmq { Some(BullMq::prepare(&testkit::workspace_root(), &b.redis.url())?) } else { None };
    // BullMQ's Python package, for the Python template's comparison.
    let python_template = wanted("template") && args.templates.iter().any(|t| t == "python");
    let bull_py = if args.bullmq && python_template {
        Some(BullMqPython::prepare(&testkit::workspace_root(), &b.redis.url())?)
    } else {
        None
    };
    let runs = args.runs;
    let mut rows = Vec::new();
    // A measure that fails ends the run, but the table of those before it
    // is still written: a long run's figures are not lost to its last step.
    let measured: Result<()> = async {
        if wanted("enqueue") {
            for bulk in [false, true] {
                let n = if bulk { 100_000 } else { 50_000 };
                let name = if bulk { "enqueue, bulk (1000 a call)" } else { "enqueue, single (32 producers)" };
                eprintln!("{name}");
                let theirs = bull.as_ref().map(|bull| move || async move { bull.enqueue(&b.redis, bulk, n) });
                let (all, bull_all) = alternate(runs, || b.enqueue(bulk, n), theirs, |e| e.jobs_per_s).await?;
                let rate = |all: &[Enqueue]| Runs::of(&all.iter().map(|e| e.jobs_per_s).collect::<Vec<_>>());
                let mut row = Row::new(name, "jobs/s", rate(&all), Better::Higher);
                row.bullmq = bull_all.as_deref().map(rate);
                if bulk {
                    row.min_ratio = Some(7.0);
                }
                rows.push(row);
                if bulk {
                    // What every waiting job costs in Redis, once they are all in.
                    let bytes =
                        |all: &[Enqueue]| Runs::of(&all.iter().map(|e| e.redis_bytes_per_job).collect::<Vec<_>>());
                    let mut memory = Row::new(
                        "Redis memory per waiting job, after the bulk enqueue",
                        "bytes",
                        bytes(&all),
                        Better::Lower,
                    );
                    memory.bullmq = bull_all.as_deref().map(bytes);
                    rows.push(memory);
                }
            }
        }
        // A native queue, then a BullMQ-backed one (BullMQ's jobs, the
        // runner's plugins); BullMQ's own worker drains the same jobs beside each.
        for (measure, backed) in [("drain", false), ("bullmq-drain", true)] {
            if !wanted(measure) {
                continue;
            }
            for &c in &args.concurrency {
                let (what, of) = if backed {
                    ("BullMQ no-op jobs on a BullMQ-backed queue", format!("BullMQ-backed drain at concurrency {c}"))
                } else {
                    ("no-op jobs", format!("drain at concurrency {c}"))
                };
                eprintln!("drain {} {what} at concurrency {c}", args.jobs);
                let (bench, jobs) = (b, args.jobs);
                let run = || async move {
                    if backed { bench.bullmq_drain(c, jobs).await } else { bench.drain(c, jobs).await }
                };
                let theirs = bull.as_ref().map(|bull| move || async move { bull.drain(&bench.redis, c, jobs) });
                let (all, ball) = alternate(runs, run, theirs, |d| d.jobs_per_s).await?;
                let title = format!("drain {}k {what}, concurrency {c}", args.jobs / 1000);
                // The 3× target is the native queue's; a BullMQ-backed queue runs
                // BullMQ's own scripts, so it is reported beside BullMQ, untargeted.
                rows.extend(drain_rows(title, of, &all, ball, (!backed).then_some(3.0)));
            }
        }
        if wanted("template") {
            for lang in &args.templates {
                let (glang, dir, job_type, native) = match lang.as_str() {
                    "ts" => (Lang::Js, "plugin-template-ts", "plugin-template-ts", "BullMQ's Node package"),
                    "python" => {
                        (Lang::Python, "plugin-template-python", "plugin-template-python", "BullMQ's Python package")
                    }
                    other => bail!("--templates {other}: not a template (ts, python)"),
                };
                let wasm = guest::plugin(glang, dir).map_err(|e| anyhow::anyhow!("building {dir}: {e}"))?;
                let guest = Guest { wasm, job_type };
                let (c, jobs, reuse) = (args.template_concurrency, args.template_jobs, args.max_jobs_per_instance);
                eprintln!("drain {jobs} jobs of {dir} at concurrency {c}: isolation job, then instance; {native}");
                let guest = &guest;
                // Each runner run takes both isolations, one after the other,
                // so the two see the same stretch of the machine.
                let run = || async move {
                    let fresh = b.guest_drain(guest, None, c, jobs).await?;
                    let reused = b.guest_drain(guest, Some(reuse), c, jobs).await?;
                    eprintln!("    isolation job: {}", bench::stats::human(fresh.jobs_per_s));
                    anyhow::Ok((fresh, reused))
                };
                let (all, theirs) = match (lang.as_str(), &bull, &bull_py) {
                    ("ts", Some(bull), _) => {
                        let theirs = move || async move {
                            let d = bull.template_drain(&b.redis, c, jobs)?;
                            anyhow::Ok((d, d))
                        };
                        alternate(runs, run, Some(theirs), |(_, r): &(Drain, Drain)| r.jobs_per_s).await?
                    }
                    ("python", _, Some(py)) => {
                        let theirs = move || async move {
                            let d = py.template_drain(&b.redis, c, jobs)?;
                            anyhow::Ok((d, d))
                        };
                        alternate(runs, run, Some(theirs), |(_, r): &(Drain, Drain)| r.jobs_per_s).await?
                    }
                    _ => {
                        let none = None::<fn() -> std::future::Ready<Result<(Drain, Drain)>>>;
                        alternate(runs, run, none, |(_, r): &(Drain, Drain)| r.jobs_per_s).await?
                    }
                };
                let theirs: Option<Vec<Drain>> = theirs.map(|v| v.into_iter().map(|(d, _)| d).collect());
                let fresh: Vec<Drain> = all.iter().map(|(f, _)| *f).collect();
                let reused: Vec<Drain> = all.iter().map(|(_, r)| *r).collect();
                let of = |iso: &str| format!("{dir}, isolation = \"{iso}\", concurrency {c}");
                rows.extend(drain_rows(
                    format!("drain {}k {dir} jobs, isolation = \"job\", concurrency {c}", jobs / 1000),
                    of("job"),
                    &fresh,
                    theirs.clone(),
                    None,
                ));
                // The target: at least as fast as BullMQ running the handler natively.
                rows.extend(drain_rows(
                    format!(
                        "drain {}k {dir} jobs, isolation = \"instance\" ({reuse} jobs an instance), concurrency {c}",
                        jobs / 1000
                    ),
                    of("instance"),
                    &reused,
                    theirs,
                    Some(1.0),
                ));
            }
        }
        if wanted("guest") {
            for lang in &args.templates {
                let (glang, dir) = match lang.as_str() {
                    "ts" => (Lang::Js, "plugin-template-ts"),
                    "python" => (Lang::Python, "plugin-template-python"),
                    other => bail!("--templates {other}: not a template (ts, python)"),
                };
                let wasm = guest::plugin(glang, dir).map_err(|e| anyhow::anyhow!("building {dir}: {e}"))?;
                let guest = Guest { wasm, job_type: dir };
                let guest = &guest;
                let lanes = args.guest_lanes;
                eprintln!("{dir}: jobs in shared instances, in process, {lanes} at once ({})", cache.shown());
                let (wall, all) =
                    repeat(runs, || b.guest_in_process(guest, GUEST_JOBS, lanes, cache), |t| t.wall_us).await?;
                let cpu = Runs::of(&all.iter().map(|t| t.cpu_us).collect::<Vec<_>>());
                // The default's name stays as the docs show it; another
                // setting says what it changed.
                let (name, setting) = if (lanes, cache) == (1, GuestCache::Memory) {
                    let setting = "in process (in-memory cache, no queue)".to_string();
                    (format!("{dir}: a job in a shared instance, {setting}"), setting)
                } else {
                    let setting =
                        format!("{lanes} at once in shared instances, in process ({}, no queue)", cache.shown());
                    (format!("{dir}: wall time a job, {setting}"), setting)
                };
                rows.push(Row::new(name, "µs", wall, Better::Lower));
                // The harness's own CPU (host, guest, Redis client; not
                // Redis): on 2 cores the wall time hides where it goes.
                rows.push(Row::new(format!("{dir}: CPU of the process a job, {setting}"), "µs", cpu, Better::Lower));
            }
        }
        for (name, delayed, jobs) in [("latency", false, 1000), ("delayed", true, 1000)] {
            if !wanted(name) {
                continue;
            }
            let title =
                if delayed { "delayed-job lateness, default hz" } else { "enqueue-to-start latency, light load" };
            eprintln!("{title}");
            let theirs = bull.as_ref().map(|bull| move || async move { bull.timing(&b.redis, delayed, jobs) });
            let (all, ball) = alternate(runs, || b.timing(delayed, jobs), theirs, |t| t.p99_ms).await?;
            let percentiles: [Percentile; 2] = if delayed {
                [("p50", |t| t.p50_ms, None), ("p99", |t| t.p99_ms, Some(5.0))]
            } else {
                [("p50", |t| t.p50_ms, Some(0.5)), ("p99", |t| t.p99_ms, Some(2.0))]
            };
            for (p, pick, bound) in percentiles {
                let mut row = Row::new(
                    format!("{title}, {p}"),
                    "ms",
                    Runs::of(&all.iter().map(pick).collect::<Vec<_>>()),
                    Better::Lower,
                );
                row.bullmq = ball.as_ref().map(|v| Runs::of(&v.iter().map(pick).collect::<Vec<_>>()));
                row.bound = bound;
                rows.push(row);
            }
            if !delayed {
                // How much of it the producer's own round trip is: the job
                // leaves Redis with the enqueue's reply, so the rest is the
                // worker's side.
                let pick = |v: &[Timing]| Runs::of(&v.iter().map(|t| t.enqueue_p50_ms).collect::<Vec<_>>());
                let mut row = Row::new(
                    format!("{title}: of it, the enqueue call's round trip, p50"),
                    "ms",
                    pick(&all),
                    Better::Lower,
                );
                row.bullmq = ball.as_deref().map(pick);
                rows.push(row);
            }
        }
        if wanted("http") {
            for (bulk, name, bound) in [
                (false, "HTTP enqueue, one job a request (wrk, 32 connections)", 20e3),
                (true, "HTTP enqueue, 1000 jobs a request (wrk, 2 connections)", 100e3),
            ] {
                eprintln!("{name}");
                let (r, _) = repeat(runs, || b.http(bulk), |x| *x).await?;
                let mut row = Row::new(name, "jobs/s", r, Better::Higher);
                row.bound = Some(bound);
                rows.push(row);
            }
        }
        if wanted("overhead") {
            eprintln!("per-job wasm overhead");
            let (r, _) = repeat(runs, || b.wasm_overhead(20_000), |x| *x).await?;
            let mut row = Row::new("per-job wasm overhead, no-op plugin", "µs", r, Better::Lower);
            row.bound = Some(20.0);
            rows.push(row);
        }
        if wanted("flow") {
            const CHILDREN: usize = 10_000;
            eprintln!("flow fan-in of {CHILDREN} children, beside a plain drain of as many jobs, concurrency 50");
            // Each run takes both, one after the other, so the two see the
            // same stretch of the machine.
            let run = || async move {
                let plain = b.drain(50, CHILDREN).await?;
                let flow = b.flow_fan_in(50, CHILDREN).await?;
                anyhow::Ok((plain, flow))
            };
            let (_, all) = repeat(runs, run, |(_, f)| f.drain.jobs_per_s).await?;
            let rows_of =
                |name: &str, unit: &'static str, pick: &dyn Fn(&(Drain, bench::measure::FanIn)) -> f64, better| {
                    Row::new(name, unit, Runs::of(&all.iter().map(pick).collect::<Vec<_>>()), better)
                };
            rows.push(rows_of("flow: add 10,000 children", "ms", &|(_, f)| f.add_ms, Better::Lower));
            rows.push(rows_of(
                "flow: drain of 10,000 children and their parent, c50",
                "jobs/s",
                &|(_, f)| f.drain.jobs_per_s,
                Better::Higher,
            ));
            rows.push(rows_of(
                "plain drain of 10,000 jobs beside it, c50",
                "jobs/s",
                &|(p, _)| p.jobs_per_s,
                Better::Higher,
            ));
            rows.push(rows_of(
                "flow: Redis CPU added per child",
                "µs",
                &|(p, f)| f.drain.redis_cpu_us - p.redis_cpu_us,
                Better::Lower,
            ));
            rows.push(rows_of(
                "flow: runner CPU added per child",
                "µs",
                &|(p, f)| f.drain.worker_cpu_us - p.worker_cpu_us,
                Better::Lower,
            ));
            rows.push(rows_of(
                "flow: Redis commands added per child",
                "",
                &|(p, f)| f.drain.commands_per_job - p.commands_per_job,
                Better::Lower,
            ));
        }
        if wanted("scale") {
            for runners in 1..=3 {
                eprintln!("scale: {runners} runner processes, concurrency 50 each, {} jobs", args.scale_jobs);
                let (_, all) = repeat(runs, || b.scale_drain(runners, 50, args.scale_jobs), |d| d.jobs_per_s).await?;
                let of = |pick: fn(&Drain) -> f64| Runs::of(&all.iter().map(pick).collect::<Vec<_>>());
                let name =
                    |what: &str| format!("scale, {runners} runner{}: {what}", if runners > 1 { "s" } else { "" });
                rows.push(Row::new(name("drain, c50 each"), "jobs/s", of(|d| d.jobs_per_s), Better::Higher));
                rows.push(Row::new(name("Redis CPU per job"), "µs", of(|d| d.redis_cpu_us), Better::Lower));
                rows.push(Row::new(name("runners' CPU per job"), "µs", of(|d| d.worker_cpu_us), Better::Lower));
                rows.push(Row::new(name("Redis commands per job"), "", of(|d| d.commands_per_job), Better::Lower));
            }
        }
        if wanted("memory") {
            eprintln!("resident memory");
            let (_, all) = repeat(runs, || b.memory(1000), |m| m.in_flight_bytes as f64 / 1e6).await?;
            let idle = Runs::of(&all.iter().map(|m| m.idle_bytes as f64 / 1e6).collect::<Vec<_>>());
            rows.push(Row::new("resident memory, idle", "MB", idle, Better::Neither));
            let busy = Runs::of(&all.iter().map(|m| m.in_flight_bytes as f64 / 1e6).collect::<Vec<_>>());
            let mut row = Row::new("resident memory, 1000 jobs in flight", "MB", busy, Better::Lower);
            row.bound = Some(200.0);
            rows.push(row);
            let pss = Runs::of(&all.iter().map(|m| m.in_flight_pss_bytes as f64 / 1e6).collect::<Vec<_>>());
            rows.push(Row::new("proportional memory (Pss), 1000 jobs in flight", "MB", pss, Better::Lower));
        }
        if wanted("reload") {
            eprintln!("hot reload");
            let (r, _) = repeat(runs, || b.hot_reload(5), |x| *x).await?;
            let mut row = Row::new("hot reload, write to serving (compiling)", "ms", r, Better::Lower);
            row.bound = Some(1000.0);
            rows.push(row);
        }
        if wanted("startup") {
            eprintln!("start-up");
            let (_, all) = repeat(runs, || b.startup(), |s| s.first_job_cold_ms).await?;
            let n = 6 + b.guests.len();
            type Pick = fn(&bench::measure::Startup) -> f64;
            let picks: [(&str, Pick); 4] = [
                ("to the first job (a no-op job waiting), compile cache empty", |s| s.first_job_cold_ms),
                ("to the first job, compile cache warm", |s| s.first_job_cached_ms),
                ("to ready (every plugin loaded), compile cache empty", |s| s.cold_ms),
                ("to ready, compile cache warm", |s| s.cached_ms),
            ];
            for (what, pick) in picks {
                let runs = Runs::of(&all.iter().map(pick).collect::<Vec<_>>());
                rows.push(Row::new(format!("start-up with {n} plugins, {what}"), "ms", runs, Better::Neither));
            }
        }

        anyhow::Ok(())
    }
    .await;

    let table = format!("Machine: {}. Runs per measure: {runs}.\n\n{}", machine(), markdown(&rows));
    println!("{table}");
    let out = args.out.unwrap_or_else(|| testkit::workspace_root().join("target/bench/results.md"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, &table).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("written to {}", out.display());
    measured.context("a measure failed (the table holds the measures before it)")?;
    let missed: Vec<String> = rows.iter().filter_map(|r| r.missed()).collect();
    if args.check && !missed.is_empty() {
        bail!("{} target(s) missed:\n  {}", missed.len(), missed.join("\n  "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[tokio::test]
    async fn the_two_sides_runs_take_turns() {
        let order = RefCell::new(String::new());
        let side = |name: char, value: f64| {
            let order = &order;
            move || async move {
                order.borrow_mut().push(name);
                Ok(value)
            }
        };
        let (ours, theirs) = alternate(3, side('r', 1.0), Some(side('b', 2.0)), |x| *x).await.unwrap();
        assert_eq!(order.borrow().as_str(), "rbrbrb");
        assert_eq!((ours, theirs), (vec![1.0; 3], Some(vec![2.0; 3])));

        order.borrow_mut().clear();
        let (runs, all) = repeat(2, side('r', 5.0), |x| *x).await.unwrap();
        assert_eq!(order.borrow().as_str(), "rr");
        assert_eq!((runs.median, all), (5.0, vec![5.0; 2]));
    }
}
