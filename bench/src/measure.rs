//! The runner's side of every measure the harness takes. Each function is
//! one run: it starts from an empty Redis, starts the daemons it needs and
//! stops them before it returns.
//!
//! Jobs are enqueued with the runner's own queue API (what its HTTP API and
//! CLI call), and run by the release `runner` binary on real plugins:
//! - `noop`: nothing but the host's cost; its `clock` type reports when the
//!   handler started, by the wall clock, for the latency measures;
//! - `hostile`: a plugin with a real standard library, whose `sleep` holds a
//!   job in flight without holding a thread (the memory measure).

use crate::daemon::{Daemon, Setup};
use crate::redis_info;
use crate::stats::percentile;
use anyhow::{Context, Result, bail, ensure};
use futures::FutureExt;
use futures::future::BoxFuture;
use jobrunner_host::cache::{Budget, CacheStore};
use jobrunner_queue::{Connection, JobOptions, NewJob, Queue, State};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The queue every measure uses.
pub const QUEUE: &str = "bench";
/// The drains' queue keeps every completed job, as BullMQ does by default.
const KEEP_ALL: &str = "keep_completed = \"all\"\n";
/// Jobs per bulk call (BullMQ's side uses the same).
const BULK: usize = 1000;
/// Producers of the single-job enqueue measure (BullMQ's side uses the same).
const PRODUCERS: usize = 32;

/// What every run shares: the binary, the plugins and the Redis.
pub struct Bench {
    pub binary: PathBuf,
    pub redis: testkit::redis::RedisServer,
    pub noop: PathBuf,
    pub hostile: PathBuf,
    /// The five built-in plugins, for the start-up measure.
    pub builtins: Vec<PathBuf>,
    /// The TypeScript and Python templates, when built: the start-up
    /// measure loads them too (large guests compile for seconds).
    pub guests: Vec<PathBuf>,
    /// BullMQ-backed queues record BullMQ's per-minute metrics (their default).
    pub bullmq_metrics: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Enqueue {
    pub jobs_per_s: f64,
    /// What Redis holds per job once they all wait (`used_memory`, bytes).
    pub redis_bytes_per_job: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct Drain {
    pub jobs_per_s: f64,
    pub commands_per_job: f64,
    /// CPU the worker process used per job (µs): the runner, or BullMQ's
    /// Node process.
    pub worker_cpu_us: f64,
    /// CPU Redis used per job (µs).
    pub redis_cpu_us: f64,
}

/// A drain's clock and counters, read when the queue is resumed and again
/// when the last job is done. The harness's polling meanwhile is counted
/// and taken off Redis's command count, as BullMQ's side does with its own.
struct DrainWindow {
    started: Instant,
    calls: u64,
    worker_cpu: f64,
    redis_cpu: f64,
}

impl DrainWindow {
    fn open(redis: &testkit::redis::RedisServer, daemon: &Daemon) -> Result<DrainWindow> {
        Self::open_all(redis, std::slice::from_ref(daemon))
    }

    /// As `open`, the workers' CPU summed over several runner processes.
    fn open_all(redis: &testkit::redis::RedisServer, daemons: &[Daemon]) -> Result<DrainWindow> {
        let mut conn = redis.connection();
        Ok(DrainWindow {
            calls: redis_info::command_calls(&mut conn)?,
            worker_cpu: cpu_of(daemons)?,
            redis_cpu: redis_info::cpu_seconds(&mut conn)?,
            started: Instant::now(),
        })
    }

    /// The window's figures; `polls` is how many commands the harness's
    /// own waiting sent meanwhile, taken off the count with the `INFO`
    /// that read it first.
    fn close(self, redis: &testkit::redis::RedisServer, daemon: &Daemon, jobs: usize, polls: u64) -> Result<Drain> {
        self.close_all(redis, std::slice::from_ref(daemon), jobs, polls)
    }

    fn close_all(
        self,
        redis: &testkit::redis::RedisServer,
        daemons: &[Daemon],
        jobs: usize,
        polls: u64,
    ) -> Result<Drain> {
        let seconds = self.started.elapsed().as_secs_f64();
        let mut conn = redis.connection();
        let per_job = |total: f64| total / jobs as f64;
        let calls = redis_info::command_calls(&mut conn)?.saturating_sub(self.calls + polls + 1);
        Ok(Drain {
            jobs_per_s: jobs as f64 / seconds,
            commands_per_job: per_job(calls as f64),
            worker_cpu_us: per_job((cpu_of(daemons)? - self.worker_cpu) * 1e6),
            redis_cpu_us: per_job((redis_info::cpu_seconds(&mut conn)? - self.redis_cpu) * 1e6),
        })
    }
}

/// The CPU time of several runner processes, summed (seconds).
fn cpu_of(daemons: &[Daemon]) -> Result<f64> {
    daemons.iter().map(Daemon::cpu_seconds).sum()
}

/// A flow's fan-in: the time to add it, and its drain (per child).
#[derive(Debug, Clone, Copy)]
pub struct FanIn {
    pub add_ms: f64,
    pub drain: Drain,
}

#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The producer's side of it: the enqueue call's own round trip (the
    /// job starts on a publish that leaves Redis with the reply).
    pub enqueue_p50_ms: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub idle_bytes: u64,
    /// Peak VmRSS with every job in flight.
    pub in_flight_bytes: u64,
    /// Peak Pss with every job in flight (shared pages counted once).
    pub in_flight_pss_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct Startup {
    /// Spawn to `/ready` (every plugin loaded), compile cache empty.
    pub cold_ms: f64,
    /// The same, with the cache the cold start wrote.
    pub cached_ms: f64,
    /// Spawn to the first job completed (a no-op job waiting before the
    /// start), compile cache empty, then warm.
    pub first_job_cold_ms: f64,
    pub first_job_cached_ms: f64,
}

impl Bench {
    /// An empty Redis, and a connection to it.
    async fn fresh(&self) -> Result<Queue> {
        redis::cmd("FLUSHALL").exec(&mut self.redis.connection()).context("FLUSHALL")?;
        redis::cmd("CONFIG").arg("RESETSTAT").exec(&mut self.redis.connection()).context("CONFIG RESETSTAT")?;
        let conn = Connection::connect(&self.redis.url()).await?;
        Queue::new(conn, QUEUE)
    }

    async fn daemon(&self, dir: &tempfile::TempDir, concurrency: usize, plugins: &[PathBuf]) -> Result<Daemon> {
        self.daemon_on(dir, concurrency, plugins, false, "", "").await
    }

    /// As `daemon`, its queue native or BullMQ-backed, with lines added to
    /// the queue's section and sections added to the config.
    async fn daemon_on(
        &self,
        dir: &tempfile::TempDir,
        concurrency: usize,
        plugins: &[PathBuf],
        bullmq: bool,
        queue_extra: &str,
        extra: &str,
    ) -> Result<Daemon> {
        let url = self.redis.url();
        let queues = [(QUEUE, concurrency)];
        let mut d = Daemon::start(&Setup {
            binary: &self.binary,
            dir: dir.path(),
            redis_url: &url,
            queues: &queues,
            plugins,
            compile_cache: true,
            max_instances: Some(concurrency.max(1000) as u32),
            bullmq,
            bullmq_metrics: self.bullmq_metrics,
            queue_extra,
            extra,
            token: None,
        })?;
        d.wait_ready(Instant::now(), Duration::from_secs(120)).await?;
        Ok(d)
    }

    /// The set-up of a daemon on the bench queue (concurrency 10) with
    /// `plugins`, nothing else changed from the defaults but what is given.
    fn plain_setup<'a>(
        &'a self,
        dir: &'a Path,
        url: &'a str,
        plugins: &'a [PathBuf],
        compile_cache: bool,
        token: Option<&'a str>,
    ) -> Setup<'a> {
        Setup {
            binary: &self.binary,
            dir,
            redis_url: url,
            queues: &[(QUEUE, 10)],
            plugins,
            compile_cache,
            max_instances: None,
            bullmq: false,
            bullmq_metrics: true,
            queue_extra: "",
            extra: "",
            token,
        }
    }

    /// Enqueue throughput, jobs/s: bulk calls of 1000, or 32 producers
    /// sending one job at a time; and Redis's memory per waiting job.
    pub async fn enqueue(&self, bulk: bool, jobs: usize) -> Result<Enqueue> {
        let q = self.fresh().await?;
        let memory = redis_info::used_memory(&mut self.redis.connection())?;
        let started = Instant::now();
        if bulk {
            for chunk in (0..jobs).collect::<Vec<_>>().chunks(BULK) {
                q.enqueue_bulk(chunk.iter().map(|_| noop_job()).collect()).await?;
            }
        } else {
            let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut producers = tokio::task::JoinSet::new();
            for _ in 0..PRODUCERS {
                let (q, next) = (q.clone(), next.clone());
                producers.spawn(async move {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < jobs {
                        q.enqueue(noop_job()).await?;
                    }
                    anyhow::Ok(())
                });
            }
            while let Some(r) = producers.join_next().await {
                r??;
            }
        }
        let rate = jobs as f64 / started.elapsed().as_secs_f64();
        ensure!(q.counts().await?.waiting == jobs as u64, "not every job was enqueued");
        let grown = redis_info::used_memory(&mut self.redis.connection())? - memory;
        Ok(Enqueue { jobs_per_s: rate, redis_bytes_per_job: grown / jobs as f64 })
    }

    /// End-to-end drain: `jobs` no-op jobs wait in a paused queue; the
    /// clock starts when the queue is resumed and stops when the last one
    /// is recorded as completed. The queue keeps every completed job, as
    /// BullMQ does by default on its side.
    pub async fn drain(&self, concurrency: usize, jobs: usize) -> Result<Drain> {
        let plugins = std::slice::from_ref(&self.noop);
        self.drain_jobs(concurrency, jobs, plugins, "", |_| noop_job()).await
    }

    /// The drain of `jobs` jobs made by `make`, run by `plugins` under the
    /// config sections `extra`.
    async fn drain_jobs(
        &self,
        concurrency: usize,
        jobs: usize,
        plugins: &[PathBuf],
        extra: &str,
        make: impl Fn(usize) -> NewJob,
    ) -> Result<Drain> {
        self.drain_by(1, concurrency, jobs, plugins, extra, make).await
    }

    /// `drain` with `runners` runner processes on the one Redis, each at
    /// `concurrency`: how throughput grows with runners on this machine,
    /// and the CPU that Redis and the runners (summed) spend per job, from
    /// which `docs/performance.md` works out where one Redis saturates.
    pub async fn scale_drain(&self, runners: usize, concurrency: usize, jobs: usize) -> Result<Drain> {
        let plugins = std::slice::from_ref(&self.noop);
        self.drain_by(runners, concurrency, jobs, plugins, "", |_| noop_job()).await
    }

    /// `drain_jobs` with `runners` runner processes.
    async fn drain_by(
        &self,
        runners: usize,
        concurrency: usize,
        jobs: usize,
        plugins: &[PathBuf],
        extra: &str,
        make: impl Fn(usize) -> NewJob,
    ) -> Result<Drain> {
        let q = self.fresh().await?;
        let dirs = (0..runners).map(|_| tempfile::tempdir()).collect::<std::io::Result<Vec<_>>>()?;
        let mut daemons = Vec::new();
        for dir in &dirs {
            daemons.push(self.daemon_on(dir, concurrency, plugins, false, KEEP_ALL, extra).await?);
        }
        q.pause().await?;
        for chunk in (0..jobs).collect::<Vec<_>>().chunks(BULK) {
            q.enqueue_bulk(chunk.iter().map(|&i| make(i)).collect()).await?;
        }
        let window = DrainWindow::open_all(&self.redis, &daemons)?;
        q.resume().await?;
        let keys = jobrunner_queue::keys::Keys::new(jobrunner_queue::connection::DEFAULT_PREFIX, QUEUE);
        let sets = [keys.get("completed").to_string(), keys.get("failed").to_string()];
        let polls = wait_all_completed(&self.redis, &sets, jobs as u64, Duration::from_secs(900)).await?;
        let drain = window.close_all(&self.redis, &daemons, jobs, polls)?;
        for d in daemons {
            d.stop()?;
        }
        Ok(drain)
    }

    /// A fan-in: a flow of `children` no-op jobs under one no-op parent,
    /// all in the bench queue, added while the queue is paused (the add
    /// timed on its own), then drained as `drain` drains plain jobs: the
    /// clock stops when the parent, which runs last, has completed. Its
    /// figures are per child; beside a plain drain of as many jobs they
    /// give what a flow adds per child (the outbox, the relay, the
    /// parent's record of each outcome).
    pub async fn flow_fan_in(&self, concurrency: usize, children: usize) -> Result<FanIn> {
        let q = self.fresh().await?;
        let dir = tempfile::tempdir()?;
        let plugins = std::slice::from_ref(&self.noop);
        let daemon = self.daemon_on(&dir, concurrency, plugins, false, KEEP_ALL, "").await?;
        q.pause().await?;
        let kids: Vec<serde_json::Value> =
            (0..children).map(|_| serde_json::json!({"queue": QUEUE, "type": "noop"})).collect();
        let flow: jobrunner_queue::FlowJob =
            serde_json::from_value(serde_json::json!({"queue": QUEUE, "type": "noop", "children": kids}))?;
        let started = Instant::now();
        let added = jobrunner_queue::add_flow(q.connection(), flow).await?;
        let add_ms = started.elapsed().as_secs_f64() * 1e3;
        ensure!(added.unfinished.is_none(), "the flow was not added whole: {:?}", added.unfinished);
        let window = DrainWindow::open(&self.redis, &daemon)?;
        q.resume().await?;
        let keys = jobrunner_queue::keys::Keys::new(jobrunner_queue::connection::DEFAULT_PREFIX, QUEUE);
        let sets = [keys.get("completed").to_string(), keys.get("failed").to_string()];
        let polls = wait_all_completed(&self.redis, &sets, children as u64 + 1, Duration::from_secs(900)).await?;
        let drain = window.close(&self.redis, &daemon, children, polls)?;
        let parent = q.get(&added.id).await?.context("the flow's parent is gone")?;
        ensure!(parent.state == State::Completed, "the flow's parent ended {:?}", parent.state);
        daemon.stop()?;
        Ok(FanIn { add_ms, drain })
    }

    /// The drain of a plugin template in a guest language (`guest`): jobs
    /// of its type with a thousand different names, its config's greeting
    /// set, each job in an instance of its own (`reuse: None`) or in
    /// instances serving up to `reuse` jobs each (`isolation = "instance"`).
    pub async fn guest_drain(
        &self,
        guest: &Guest,
        reuse: Option<u32>,
        concurrency: usize,
        jobs: usize,
    ) -> Result<Drain> {
        let file = guest.wasm.file_name().context("a plugin without a file name")?.to_string_lossy();
        let mut extra = format!("\n[plugins.{}]\nfile = {file:?}\n", guest.job_type);
        if let Some(n) = reuse {
            extra.push_str(&format!("isolation = \"instance\"\nmax_jobs_per_instance = {n}\n"));
        }
        extra.push_str(&format!("[plugins.{}.config]\ngreeting = \"Hello\"\n", guest.job_type));
        let make = |i: usize| NewJob {
            id: None,
            job_type: guest.job_type.into(),
            payload: format!(r#"{{"name":"user-{}"}}"#, i % 1000),
            options: JobOptions::default(),
        };
        self.drain_jobs(concurrency, jobs, std::slice::from_ref(&guest.wasm), &extra, make).await
    }

    /// End-to-end drain of a BullMQ-backed queue: `jobs` no-op BullMQ jobs
    /// (added with BullMQ's `addBulk`, through its Rust port, and kept on
    /// completion as BullMQ does by default) wait in the paused queue; the
    /// clock starts when it is resumed and stops when BullMQ's completed set
    /// holds them all, as on BullMQ's side.
    pub async fn bullmq_drain(&self, concurrency: usize, jobs: usize) -> Result<Drain> {
        self.fresh().await?;
        let dir = tempfile::tempdir()?;
        let config = runner::Config::parse(&format!("[queues.{QUEUE}]\n[queues.{QUEUE}.bullmq]\n"))?;
        let queues = jobrunner_bullmq::open_all(config.bullmq_queues(), &self.redis.url()).await?;
        let q = queues.get(QUEUE).context("the BullMQ queue")?;
        q.pause().await?;
        let daemon = self.daemon_on(&dir, concurrency, std::slice::from_ref(&self.noop), true, "", "").await?;
        let keep_all = jobrunner_queue::options::Keep { count: None, age_ms: None };
        let opts = JobOptions { attempts: Some(1), keep_completed: Some(keep_all), ..JobOptions::default() };
        for chunk in (0..jobs).collect::<Vec<_>>().chunks(BULK) {
            q.enqueue(chunk.iter().map(|_| NewJob { options: opts.clone(), ..noop_job() }).collect()).await?;
        }
        let window = DrainWindow::open(&self.redis, &daemon)?;
        q.resume().await?;
        // BullMQ's own sets, as its side polls them (the runner keeps
        // every completed job, as BullMQ's worker does by default).
        let sets = [format!("bull:{QUEUE}:completed"), format!("bull:{QUEUE}:failed")];
        let polls = wait_all_completed(&self.redis, &sets, jobs as u64, Duration::from_secs(900)).await?;
        let drain = window.close(&self.redis, &daemon, jobs, polls)?;
        daemon.stop()?;
        Ok(drain)
    }

    /// From just before the enqueue call to the handler starting, at light
    /// load (a job every 5 ms), or for delayed jobs (random delays of 50 ms
    /// to 1.5 s, all enqueued at once) from when each was due.
    pub async fn timing(&self, delayed: bool, jobs: usize) -> Result<Timing> {
        let q = self.fresh().await?;
        let dir = tempfile::tempdir()?;
        let daemon = self.daemon(&dir, 10, std::slice::from_ref(&self.noop)).await?;
        // The producer is a task on the runtime's workers, as a service's
        // request handlers are, not `main`'s own thread (`block_on`): from
        // there every command crossed threads to the connection's writer
        // task and its reply back, and the second thread woken with each
        // reply competed for the two cores with the runner taking the job.
        // Time stamps inside Redis and the runner put the difference at
        // 30 to 90 µs of the latency (docs/performance.md).
        let (due, mut rtt) = tokio::spawn(produce(q.clone(), delayed, jobs)).await.context("the producer task")??;
        wait_completed(&q, jobs as u64, Duration::from_secs(120)).await?;
        let mut samples = Vec::with_capacity(jobs);
        for (id, due_us) in due {
            let r = q.get(&id).await?.with_context(|| format!("job {id} is gone"))?;
            let started = r.result.as_ref().and_then(|v| v["now_us"].as_u64()).context("no clock in the result")?;
            samples.push((started as f64 - due_us as f64) / 1e3);
        }
        daemon.stop()?;
        Ok(Timing {
            p50_ms: percentile(&mut samples, 50.0),
            p99_ms: percentile(&mut samples, 99.0),
            max_ms: percentile(&mut samples, 100.0),
            enqueue_p50_ms: percentile(&mut rtt, 50.0),
        })
    }

    /// Wall time and CPU time per job, in µs, of a guest template's
    /// handler in shared instances (`isolation = "instance"`), in this process, through
    /// `Plugin::run` and no queue. With one lane and the in-memory cache
    /// it is one job after another in one instance: the guest's engine, its
    /// bindings and the host's calls, without Redis or the daemon, the
    /// figure the levers of docs/plugin-authoring.md are compared on.
    /// `lanes` runs that many jobs at once (each lane a task with an
    /// instance of its own, on the runtime's threads); `cache` says what
    /// stands behind the plugin's cache (`GuestCache`). The CPU time is this
    /// process's (the host, the guest and the Redis client; not Redis).
    pub async fn guest_in_process(
        &self,
        guest: &Guest,
        jobs: usize,
        lanes: usize,
        cache: GuestCache,
    ) -> Result<GuestTime> {
        use jobrunner_host::cache::Cache;
        use jobrunner_host::{HostOptions, Services};
        let cache = match cache {
            GuestCache::Redis => {
                self.fresh().await?;
                Cache::new(runner::cache::RedisCache::new(Connection::connect(&self.redis.url()).await?))
            }
            GuestCache::Memory => Cache::memory(),
            GuestCache::Suspending => Cache::new(Suspending(jobrunner_host::cache::MemoryCache::new())),
        };
        let services = Services::new(cache, jobrunner_host::mail::Mailer::outbox(std::env::temp_dir()));
        let host = runner::Host::new(HostOptions::default(), services)?;
        let name = guest.job_type;
        let config = runner::Config::parse(&format!(
            "[plugins.{name}]\nisolation = \"instance\"\nmax_jobs_per_instance = 1000000\n\
             [plugins.{name}.config]\ngreeting = \"Hello\"\n"
        ))?;
        let (plugin, _) = host.load_file(&guest.wasm, |n| config.plugin_settings(n)).await?;
        let job = move |i: usize| runner::JobInput {
            id: format!("bench-{i}"),
            queue: QUEUE.into(),
            job_type: name.into(),
            payload: format!(r#"{{"name":"user-{}"}}"#, i % 1000),
            attempt: 1,
            max_attempts: 1,
            enqueued_at_ms: 0,
            parent: None,
        };
        if lanes == 1 {
            // The default: one job after another on this task.
            for i in 0..200 {
                let r = plugin.run(&job(i)).await;
                ensure!(r.outcome.is_success(), "a {name} job failed while warming up: {:?}", r.outcome);
            }
            let started = GuestStart::now()?;
            for i in 0..jobs {
                let r = plugin.run(&job(i)).await;
                ensure!(r.outcome.is_success(), "a {name} job failed: {:?}", r.outcome);
            }
            return started.per_job(jobs);
        }
        let plugin = std::sync::Arc::new(plugin);
        // Each lane runs `per_lane` jobs in its own instance; a first round
        // of 200 a lane is not timed (the engine's own start-up in a new
        // instance: the drains pay it once per instance).
        let run_lanes = |per_lane: usize| {
            let mut set = tokio::task::JoinSet::new();
            for lane in 0..lanes {
                let plugin = plugin.clone();
                set.spawn(async move {
                    for i in 0..per_lane {
                        let r = plugin.run(&job(lane * per_lane + i)).await;
                        ensure!(r.outcome.is_success(), "a {name} job failed: {:?}", r.outcome);
                        // A job whose calls never wait (the in-memory
                        // cache) would otherwise keep its thread until its
                        // lane is done.
                        tokio::task::yield_now().await;
                    }
                    anyhow::Ok(())
                });
            }
            set
        };
        let mut warm = run_lanes(200);
        while let Some(r) = warm.join_next().await {
            r??;
        }
        let per_lane = jobs / lanes;
        let started = GuestStart::now()?;
        let mut timed = run_lanes(per_lane);
        while let Some(r) = timed.join_next().await {
            r??;
        }
        started.per_job(per_lane * lanes)
    }

    /// Per-job cost of the sandbox, in µs: a fresh store, instantiation,
    /// `handle` and teardown of the no-op plugin, in this process.
    pub async fn wasm_overhead(&self, jobs: usize) -> Result<f64> {
        use jobrunner_host::cache::Cache;
        use jobrunner_host::{HostOptions, Services};
        let services = Services::new(Cache::memory(), jobrunner_host::mail::Mailer::outbox(std::env::temp_dir()));
        let host = runner::Host::new(HostOptions::default(), services)?;
        let config = runner::Config::default();
        let (plugin, _) = host.load_file(&self.noop, |n| config.plugin_settings(n)).await?;
        let job = runner::JobInput {
            id: "bench".into(),
            queue: QUEUE.into(),
            job_type: "noop".into(),
            payload: "{}".into(),
            attempt: 1,
            max_attempts: 1,
            enqueued_at_ms: 0,
            parent: None,
        };
        for _ in 0..1000 {
            plugin.run(&job).await;
        }
        let started = Instant::now();
        for _ in 0..jobs {
            let r = plugin.run(&job).await;
            ensure!(r.outcome.is_success(), "the no-op job failed: {:?}", r.outcome);
        }
        Ok(started.elapsed().as_secs_f64() * 1e6 / jobs as f64)
    }

    /// Resident memory of the daemon idle (its plugins loaded), and with
    /// `in_flight` jobs running at once (each sleeping in the host).
    pub async fn memory(&self, in_flight: usize) -> Result<Memory> {
        let q = self.fresh().await?;
        let dir = tempfile::tempdir()?;
        let daemon = self.daemon(&dir, in_flight, std::slice::from_ref(&self.hostile)).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let idle_bytes = daemon.rss()?;
        let jobs = (0..in_flight)
            .map(|_| NewJob {
                id: None,
                job_type: "sleep".into(),
                payload: r#"{"ms":4000}"#.into(),
                options: JobOptions::default(),
            })
            .collect();
        q.enqueue_bulk(jobs).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut in_flight_bytes, mut in_flight_pss_bytes) = (0, 0);
        loop {
            let c = q.counts().await?;
            if c.active == in_flight as u64 {
                // The peak while every job is in flight.
                in_flight_bytes = in_flight_bytes.max(daemon.rss()?);
                in_flight_pss_bytes = in_flight_pss_bytes.max(daemon.pss()?);
            } else if in_flight_bytes > 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("{} of {in_flight} jobs in flight after 30 s", c.active);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        wait_completed(&q, in_flight as u64, Duration::from_secs(60)).await?;
        daemon.stop()?;
        Ok(Memory { idle_bytes, in_flight_bytes, in_flight_pss_bytes })
    }

    /// Hot-reload swap time, ms, median of `swaps`: from writing a new
    /// plugin into the folder to the first job answered by it. The compile
    /// cache is off, so every swap compiles.
    pub async fn hot_reload(&self, swaps: usize) -> Result<f64> {
        let q = self.fresh().await?;
        let dir = tempfile::tempdir()?;
        let url = self.redis.url();
        let mut daemon = Daemon::start(&self.plain_setup(dir.path(), &url, &[], false, None))?;
        let target = daemon.plugins_dir.join("whoami.wasm");
        let versions = [(std::fs::read(&self.noop)?, "noop"), (std::fs::read(&self.hostile)?, "hostile")];
        std::fs::write(&target, &versions[0].0)?;
        daemon.wait_ready(Instant::now(), Duration::from_secs(60)).await?;
        served_by(&q, "noop").await?;
        let mut times = Vec::with_capacity(swaps);
        for i in 0..swaps {
            let (bytes, name) = &versions[(i + 1) % 2];
            let started = Instant::now();
            std::fs::write(&target, bytes)?;
            served_by(&q, name).await?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
        daemon.stop()?;
        Ok(percentile(&mut times, 50.0))
    }

    /// Enqueue over the HTTP API, jobs/s: `wrk` (one thread) against the
    /// release binary with the scripts in `bench/http/`: one job a request
    /// on 32 keep-alive connections, or 1000 a request on 2. The load
    /// generator, the runner and Redis share the machine's cores.
    pub async fn http(&self, bulk: bool) -> Result<f64> {
        const TOKEN: &str = "bench-token-0123456789abcdef";
        self.fresh().await?;
        let dir = tempfile::tempdir()?;
        let url = self.redis.url();
        let mut daemon = Daemon::start(&self.plain_setup(dir.path(), &url, &[], true, Some(TOKEN)))?;
        daemon.wait_ready(Instant::now(), Duration::from_secs(60)).await?;
        let (script, connections, path, per_request) = if bulk {
            ("post-bulk.lua", "2", format!("/api/v1/queues/{QUEUE}/jobs/bulk"), 1000.0)
        } else {
            ("post.lua", "32", format!("/api/v1/queues/{QUEUE}/jobs"), 1.0)
        };
        let script = testkit::workspace_root().join("bench/http").join(script);
        let out = std::process::Command::new("wrk")
            .args(["-t1", "-c", connections, "-d8s", "-s"])
            .arg(&script)
            .args(["-H", &format!("authorization: Bearer {TOKEN}")])
            .arg(format!("{}{path}", daemon.http))
            .output()
            .context("cannot run wrk (apt-get install wrk)")?;
        daemon.stop()?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(out.status.success(), "wrk failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
        let field = |name: &str| text.lines().find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()));
        let errors: u64 = field("error responses:").context("wrk's script printed no error count")?.parse()?;
        ensure!(errors == 0, "{errors} requests were answered with an error:\n{text}");
        ensure!(field("Non-2xx or 3xx responses:").is_none(), "some requests failed:\n{text}");
        let rate: f64 = field("Requests/sec:").with_context(|| format!("no rate in wrk's output:\n{text}"))?.parse()?;
        Ok(rate * per_request)
    }

    /// Start-up, ms, with the five built-in plugins, the no-op one and the
    /// guest templates: from spawning `runner serve` to the first job
    /// completed (a no-op job enqueued before the start: plugins load in the
    /// background, the smallest first, while the queue is consumed) and to
    /// `/ready` answering 200 (every plugin loaded); first with an empty
    /// compile cache, then again with the cache the first start wrote.
    pub async fn startup(&self) -> Result<Startup> {
        let dir = tempfile::tempdir()?;
        let url = self.redis.url();
        let mut plugins = self.builtins.clone();
        plugins.push(self.noop.clone());
        plugins.extend(self.guests.iter().cloned());
        let keys = jobrunner_queue::keys::Keys::new(jobrunner_queue::connection::DEFAULT_PREFIX, QUEUE);
        let mut times = [(0.0, 0.0); 2];
        for t in &mut times {
            let q = self.fresh().await?;
            q.enqueue(noop_job()).await?;
            let started = Instant::now();
            let mut d = Daemon::start(&self.plain_setup(dir.path(), &url, &plugins, true, None))?;
            let sets = [keys.get("completed").to_string(), keys.get("failed").to_string()];
            wait_all_completed(&self.redis, &sets, 1, Duration::from_secs(180)).await?;
            let first_job = started.elapsed().as_secs_f64() * 1e3;
            let ready = d.wait_ready(started, Duration::from_secs(180)).await?.as_secs_f64() * 1e3;
            *t = (ready, first_job);
            d.stop()?;
        }
        Ok(Startup {
            cold_ms: times[0].0,
            cached_ms: times[1].0,
            first_job_cold_ms: times[0].1,
            first_job_cached_ms: times[1].1,
        })
    }
}

/// The cache behind the `guest` measure's plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestCache {
    /// In this process's memory: a cache call never suspends the guest.
    Memory,
    /// The in-memory cache, but each call first yields to the runtime, so
    /// it suspends the guest once as a call to Redis does, without Redis:
    /// what a suspension itself costs, apart from the Redis client's work.
    Suspending,
    /// The runner's own Redis cache, on the harness's Redis: each cache
    /// call waits for Redis, as under `runner serve`.
    Redis,
}

impl GuestCache {
    pub fn parse(s: &str) -> Result<GuestCache> {
        match s {
            "memory" => Ok(GuestCache::Memory),
            "suspending" => Ok(GuestCache::Suspending),
            "redis" => Ok(GuestCache::Redis),
            other => bail!("--guest-cache {other}: memory, suspending or redis"),
        }
    }

    /// How the table names it.
    pub fn shown(self) -> &'static str {
        match self {
            GuestCache::Memory => "in-memory cache",
            GuestCache::Suspending => "in-memory cache, each call suspending the guest once",
            GuestCache::Redis => "Redis cache",
        }
    }
}

/// `GuestCache::Suspending`: the in-memory cache, each call behind a
/// `yield_now`.
struct Suspending(jobrunner_host::cache::MemoryCache);

/// `call`'s answer, given only after the task has yielded to the runtime
/// once, so that the guest that made the call is suspended as it is by a
/// call to Redis (`MemoryCache` has done the work by then: the cost
/// measured is the suspension's).
fn after_yield<'a, T: Send + 'a>(call: BoxFuture<'a, Result<T>>) -> BoxFuture<'a, Result<T>> {
    async move {
        tokio::task::yield_now().await;
        call.await
    }
    .boxed()
}

// `MemoryCache`'s own methods of these names answer at once; the trait's
// are called by path.
impl CacheStore for Suspending {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        after_yield(CacheStore::get(&self.0, ns, key))
    }

    fn set<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Duration,
        tags: &'a [String],
        budget: &'a Budget,
    ) -> BoxFuture<'a, Result<()>> {
        after_yield(CacheStore::set(&self.0, ns, key, value, ttl, tags, budget))
    }

    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        after_yield(CacheStore::delete(&self.0, ns, key))
    }

    fn invalidate_tag<'a>(&'a self, ns: &'a str, tag: &'a str) -> BoxFuture<'a, Result<u32>> {
        after_yield(CacheStore::invalidate_tag(&self.0, ns, tag))
    }
}

/// What the `guest` measure gives: µs a job of wall time, and of this
/// process's CPU time (user and system, all threads).
#[derive(Debug, Clone, Copy)]
pub struct GuestTime {
    pub wall_us: f64,
    pub cpu_us: f64,
}

/// When a `guest` measure's timed part began, on both clocks.
struct GuestStart {
    wall: Instant,
    cpu: f64,
}

impl GuestStart {
    fn now() -> Result<GuestStart> {
        Ok(GuestStart { wall: Instant::now(), cpu: crate::daemon::process_cpu_seconds("/proc/self/stat")? })
    }

    fn per_job(self, jobs: usize) -> Result<GuestTime> {
        let cpu = crate::daemon::process_cpu_seconds("/proc/self/stat")? - self.cpu;
        let n = jobs as f64;
        Ok(GuestTime { wall_us: self.wall.elapsed().as_secs_f64() * 1e6 / n, cpu_us: cpu * 1e6 / n })
    }
}

/// A plugin template built from a guest language, and its job type (also
/// the name of its config section).
pub struct Guest {
    pub wasm: PathBuf,
    pub job_type: &'static str,
}

/// Waits until a queue's completed set (`sets[0]`) holds `jobs` jobs (it
/// keeps them all in the drains), one `ZCARD` a poll and one more of the
/// failed set (`sets[1]`) while not done; returns how many commands that
/// sent, for the drain to take off Redis's count.
async fn wait_all_completed(
    redis: &testkit::redis::RedisServer,
    sets: &[String; 2],
    jobs: u64,
    timeout: Duration,
) -> Result<u64> {
    let client = redis::Client::open(redis.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let deadline = Instant::now() + timeout;
    let mut polls = 0;
    loop {
        polls += 1;
        let done: u64 = redis::cmd("ZCARD").arg(&sets[0]).query_async(&mut conn).await?;
        if done >= jobs {
            return Ok(polls);
        }
        polls += 1;
        let failed: u64 = redis::cmd("ZCARD").arg(&sets[1]).query_async(&mut conn).await?;
        ensure!(failed == 0, "{failed} job(s) failed; the runner's log says why");
        ensure!(Instant::now() < deadline, "{done} of {jobs} jobs completed after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn noop_job() -> NewJob {
    NewJob { id: None, job_type: "noop".into(), payload: "{}".into(), options: JobOptions::default() }
}

/// Enqueues the timing measure's `jobs` one at a time: each job's id and
/// when it is due (µs since the epoch), and each call's round trip (ms).
async fn produce(q: Queue, delayed: bool, jobs: usize) -> Result<(Vec<(String, u64)>, Vec<f64>)> {
    let mut due = Vec::with_capacity(jobs);
    let mut rtt = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let delay_ms = if delayed { rand::random_range(50..1500) } else { 0 };
        let sent = now_us();
        // The runner makes the id, as BullMQ's side lets BullMQ make its
        // own: a producer that names its jobs asks the script to look each
        // id up first.
        let job = q
            .enqueue(NewJob {
                id: None,
                job_type: "clock".into(),
                payload: "{}".into(),
                options: JobOptions { delay_ms, ..Default::default() },
            })
            .await?;
        rtt.push((now_us() - sent) as f64 / 1e3);
        due.push((job.id, sent + delay_ms * 1000));
        if !delayed {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok((due, rtt))
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

/// Waits until none of the queue's `jobs` is left to run. (Completed jobs
/// are counted by what is left, not by the completed set: retention keeps
/// the newest 1000 by default.)
async fn wait_completed(q: &Queue, jobs: u64, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let c = q.counts().await?;
        if c.failed > 0 {
            bail!("{} job(s) failed; the runner's log says why", c.failed);
        }
        let left = c.waiting + c.active + c.delayed;
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{left} of {jobs} jobs still to run after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs `whoami` jobs one after another until one is answered by `want`.
async fn served_by(q: &Queue, want: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in 0u64.. {
        ensure!(Instant::now() < deadline, "no job was answered by `{want}` within 60 s");
        let id = format!("probe-{}-{n}", ulid::Ulid::new());
        let job = NewJob {
            id: Some(id.clone()),
            job_type: "whoami".into(),
            payload: "{}".into(),
            options: JobOptions::default(),
        };
        q.enqueue(job).await?;
        loop {
            match q.get(&id).await? {
                Some(r) if r.state == State::Completed => {
                    if r.result.as_ref().and_then(|v| v["by"].as_str()) == Some(want) {
                        return Ok(());
                    }
                    break;
                }
                Some(r) if r.state == State::Failed => bail!("probe {id} failed"),
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
    unreachable!()
}
