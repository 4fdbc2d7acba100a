//! `runner serve`: the daemon that joins the queues and the plugin host.
//!
//! Duties:
//! 1. connect to Redis: the configured one, or an embedded `redis-server`
//!    (started again if it dies);
//! 2. load every plugin in the plugins folder, in the background and the
//!    smallest first, while the queues are already being
//!    consumed (a job whose plugin is still loading waits for it, unspent);
//!    and reload on change (`watcher`, `registry`): a broken version leaves
//!    the old one serving;
//! 3. write each queue's policy to Redis, at start and on reload
//!    (`policies`);
//! 4. run one dispatcher per consumed queue (`dispatcher`), and fire the
//!    queues' recurring schedules (kept in step with the config's
//!    `[[schedules]]` at start and on reload: `schedules`); a queue
//!    declared as BullMQ's runs BullMQ's own worker instead (`bull_worker`);
//! 5. on shutdown: stop fetching, let jobs in flight finish until the grace
//!    deadline, cancel and put back the rest, then stop the embedded Redis.
//!
//! Layout: `embedded` (the embedded Redis), `watcher` (the plugins
//! folder and the config file; the plugins themselves are in `registry`),
//! `dispatcher`, `dead_letters` (jobs that failed for good, moved to their
//! queue's dead-letter queue), `acker` (a queue's completions, batched), `leases` (the
//! leases of a queue's running jobs, extended in batches), `progress` (a
//! running job's progress, written as it moves), `cancels` (requests to
//! stop a running job), `running` (the jobs running here now, for the
//! metrics and the heartbeat), `plugin_stats` (each plugin version's
//! figures here, for the heartbeat and the Plugins page), `flows` (children's outcomes relayed to
//! their parents, flows left midway finished), `bull_worker`.

pub mod acker;
pub mod bull_worker;
pub mod cancels;
pub mod dead_letters;
pub mod dispatcher;
pub mod embedded;
pub mod flows;
pub mod leases;
pub mod plugin_stats;
pub mod policies;
pub mod progress;
pub mod running;
pub mod schedules;
pub mod watcher;

use crate::cache::RedisCache;
use crate::config::Config;
use crate::registry::Registry;
use anyhow::{Context, Result};
use jobrunner_host::cache::Cache;
use jobrunner_host::{Host, Services};
use jobrunner_queue::{Connection, Queue};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What every dispatcher shares.
pub struct Shared {
    pub registry: Arc<Registry>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub connection: Connection,
    pub lease: Duration,
    pub host: Host,
    pub config: RwLock<Arc<Config>>,
    /// The queues declared as BullMQ's (for follow-ups sent to them).
    pub bull: Arc<jobrunner_bullmq::BullQueues>,
    /// The consumed queues' policies, as the config says (`policies`).
    pub policies: RwLock<std::collections::BTreeMap<String, Arc<jobrunner_queue::QueuePolicy>>>,
    /// The jobs running here now.
    pub running: Arc<running::RunningJobs>,
    /// The figures of each plugin version run here, for the heartbeat.
    pub plugin_stats: Arc<plugin_stats::PluginStatsBook>,
}

/// The `.wasm` files directly in `dir`.
/// Loads `files` in the background, the smallest first: a small plugin
/// serves its jobs within a second while a large JavaScript or Python one
/// compiles for ten. One at a time: wasmtime compiles a component's
/// functions on every core already, and two compiles at once share one
/// pool of compile threads, where a small plugin's few functions would
/// queue behind a large one's thousands. The registry knows the files as
/// loading until each is done, so `/ready` names them and jobs wait.
fn load_plugins(shared: Arc<Shared>, config: Config, mut files: Vec<PathBuf>) -> tokio::task::JoinHandle<()> {
    files.sort_by_key(|f| (std::fs::metadata(f).map(|m| m.len()).unwrap_or(u64::MAX), f.clone()));
    shared.registry.begin_loading(&files);
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        for file in files {
            // A broken plugin is reported, not fatal: the others still serve.
            let _ = shared.registry.load(&shared.host, &config, &file).await;
        }
        tracing::info!(took_ms = started.elapsed().as_millis() as u64, "every plugin file loaded or refused");
    })
}

fn plugin_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "wasm")).collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Runs the daemon until `shutdown` resolves. `config_file` is watched for
/// changes to plugins' grants and limits.
pub async fn serve(config: Config, config_file: Option<PathBuf>, shutdown: impl Future<Output = ()>) -> Result<()> {
    let state_dir = config.runner.state_dir.clone();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))?;
    let embedded = match &config.redis.url {
        Some(_) => None,
        None => {
            let e = Arc::new(std::sync::Mutex::new(embedded::EmbeddedRedis::start(
                &state_dir,
                config.redis.embedded_port,
            )?));
            embedded::EmbeddedRedis::supervise(e.clone());
            Some(e)
        }
    };
    let url = match (&config.redis.url, &embedded) {
        (Some(url), _) => url.clone(),
        (None, Some(e)) => e.lock().unwrap().url.clone(),
        (None, None) => unreachable!("an embedded Redis was started"),
    };
    let connection = config.connect_redis(&url).await?;
    tracing::info!(redis = %jobrunner_queue::connection::redact(&url), cluster = connection.is_cluster(), prefix = %connection.prefix(), "connected to Redis");
    check_durability(&connection, config.redis.allow_eviction).await?;
    // The plugins' cache, on the queues' Redis or (`[cache] url`) its own.
    let cache_connection = match &config.cache.url {
        Some(url) => {
            let url = crate::config::resolve_secret(url).context("cache.url")?;
            let c = config.connect_redis(&url).await.context("cache.url")?;
            tracing::info!(redis = %jobrunner_queue::connection::redact(&url), "the plugins' cache has a Redis of its own");
            c
        }
        None => connection.clone(),
    };
    let bull = Arc::new(jobrunner_bullmq::open_all(config.bullmq_queues(), &url).await?);
    // The config's schedules, before any queue starts firing them.
    let made = schedules::reconcile(&connection, &config).await.context("[[schedules]]")?;
    tracing::info!(
        added = made.added,
        replaced = made.replaced,
        removed = made.removed,
        "schedules in step with the config"
    );

    let metrics = Arc::new(crate::metrics::Metrics::new());
    let host = Host::new(
        config.host_options(),
        Services::new(Cache::new(RedisCache::new(cache_connection).counted(metrics.clone())), config.mailer()?)
            .with_flows(Arc::new(flows::Children { connection: connection.clone(), bull: bull.clone() })),
    )?;
    // The API listens from the start, so `/health` and `/ready` answer while plugins load.
    let resolve = |t: &Option<String>| t.as_deref().map(crate::config::resolve_secret).transpose();
    let tokens = crate::web::auth::Tokens::new(
        resolve(&config.http.token)?.as_deref(),
        resolve(&config.http.read_only_token)?.as_deref(),
    )
    .with_users(crate::web::users::from_config(&config.http.users)?);
    let listener = crate::server::bind(&config.http.bind, tokens.required()).await?;
    std::fs::write(state_dir.join("http.addr"), listener.local_addr()?.to_string())?;
    let plugins_dir = config.runner.plugins_dir.clone();
    if !plugins_dir.exists() {
        std::fs::create_dir_all(&plugins_dir)
            .with_context(|| format!("cannot create the plugins folder {}", plugins_dir.display()))?;
        tracing::warn!(dir = %plugins_dir.display(), "the plugins folder was empty; created it");
    }
    // Absolute, so that the watcher's paths and the first scan's agree.
    let plugins_dir = plugins_dir.canonicalize().with_context(|| format!("cannot read {}", plugins_dir.display()))?;
    let shared = Arc::new(Shared {
        registry: Arc::new(Registry::new(Some(metrics.clone()))),
        metrics: metrics.clone(),
        connection: connection.clone(),
        lease: config.runner.lease,
        host,
        config: RwLock::new(Arc::new(config.clone())),
        bull: bull.clone(),
        policies: RwLock::default(),
        running: Arc::default(),
        plugin_stats: Arc::default(),
    });
    policies::apply(&shared, &config).await?;
    let loader = load_plugins(shared.clone(), config.clone(), plugin_files(&plugins_dir));

    let (_watcher, mut changes) = watcher::watch(&plugins_dir, config_file.as_deref())
        .with_context(|| format!("cannot watch {}", plugins_dir.display()))?;
    let reloader = {
        let shared = shared.clone();
        let config_file = config_file.clone();
        // The folder watched is the one the daemon started with; changing
        // `plugins_dir` takes a restart.
        let plugins_dir = plugins_dir.clone();
        tokio::spawn(async move {
            // Changes seen while the first loads run wait for them: a file
            // loaded from its new bytes must not be overwritten by its first
            // load finishing later with the old.
            shared.registry.wait_loading().await;
            while let Some(change) = changes.recv().await {
                match change {
                    watcher::Change::Plugins(files) => {
                        let config = shared.config.read().unwrap().clone();
                        let mut removed = false;
                        for file in files {
                            if file.exists() {
                                let _ = shared.registry.load(&shared.host, &config, &file).await;
                            } else {
                                shared.registry.remove(&file);
                                removed = true;
                            }
                        }
                        // A file refused for a job type the removed one
                        // served may load now.
                        if removed {
                            for file in shared.registry.not_serving().into_iter().filter(|f| f.exists()) {
                                let _ = shared.registry.load(&shared.host, &config, &file).await;
                            }
                        }
                    }
                    watcher::Change::Config => {
                        let Some(path) = &config_file else { continue };
                        let mut fresh = match Config::load(path) {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::error!(error = %format!("{e:#}"), "the changed config is invalid; keeping the previous one");
                                continue;
                            }
                        };
                        if let Err(e) = fresh.apply_env(|k| std::env::var(k).ok()) {
                            tracing::error!(error = %format!("{e:#}"), "the environment overrides are invalid");
                            continue;
                        }
                        tracing::info!(
                            "config changed: reloading plugins with their new grants and limits, and the queues' policies"
                        );
                        let fresh = Arc::new(fresh);
                        *shared.config.write().unwrap() = fresh.clone();
                        for file in plugin_files(&plugins_dir) {
                            let _ = shared.registry.load(&shared.host, &fresh, &file).await;
                        }
                        if let Err(e) = policies::apply(&shared, &fresh).await {
                            tracing::error!(error = %format!("{e:#}"), "could not write the queues' changed policies");
                        }
                        if let Err(e) = schedules::reconcile(&shared.connection, &fresh).await {
                            tracing::error!(error = %format!("{e:#}"), "could not bring the schedules in step with the changed config");
                        }
                    }
                }
            }
        })
    };

    let consumed: Vec<String> = config.consumed_queues().keys().cloned().collect();
    let api_state = Arc::new(crate::web::ApiState {
        connection: connection.clone(),
        registry: Some(shared.registry.clone()),
        metrics: metrics.clone(),
        consumed: consumed.clone(),
        tokens: Arc::new(tokens),
        bull: bull.clone(),
        redis_policy: crate::web::RedisPolicy {
            embedded: embedded.is_some(),
            allow_eviction: config.redis.allow_eviction,
        },
        web: crate::web::WebOptions {
            session_ttl: config.http.session_ttl,
            secure_cookies: config.http.secure_cookies,
            origins: config.http.origins.clone(),
        },
    });
    let stop_api = CancellationToken::new();
    let app = crate::server::app(api_state, config.http.max_body.as_u64() as usize);
    let api = {
        let stop = stop_api.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await {
                tracing::error!(error = %e, "the HTTP API stopped");
            }
        })
    };
    let heartbeat = tokio::spawn(heartbeat(shared.clone(), consumed, config.redis.allow_eviction));
    let stop_fetching = CancellationToken::new();
    let cancel_jobs = CancellationToken::new();
    let mut dispatchers = tokio::task::JoinSet::new();
    for (name, q) in config.consumed_queues() {
        if let Some(b) = bull.get(&name) {
            tracing::info!(queue = %name, bullmq = %format!("{}:{}", b.prefix(), b.bull_name()), concurrency = q.concurrency, "consuming");
            dispatchers.spawn(bull_worker::run(
                shared.clone(),
                b.clone(),
                url.clone(),
                q.concurrency,
                stop_fetching.clone(),
                cancel_jobs.clone(),
            ));
            continue;
        }
        let queue = Queue::new(connection.clone(), &name)?;
        tracing::info!(queue = %name, concurrency = q.concurrency, max_waiting = ?q.max_waiting, "consuming");
        dispatchers.spawn(dispatcher::run(
            shared.clone(),
            queue.clone(),
            q.concurrency,
            stop_fetching.clone(),
            cancel_jobs.clone(),
        ));
        dispatchers.spawn(dead_letters::run(shared.clone(), queue.clone(), stop_fetching.clone()));
        dispatchers.spawn(flows::run(queue.clone(), stop_fetching.clone()));
        dispatchers.spawn(fire_schedules(queue, stop_fetching.clone()));
    }

    shutdown.await;
    tracing::info!(grace = ?config.runner.shutdown_grace, "shutting down: no new jobs; waiting for jobs in flight");
    stop_fetching.cancel();
    reloader.abort();
    loader.abort();
    let drained =
        tokio::time::timeout(config.runner.shutdown_grace, async { while dispatchers.join_next().await.is_some() {} })
            .await;
    if drained.is_err() {
        tracing::warn!("grace period over: cancelling the jobs still running and putting them back");
        cancel_jobs.cancel();
        while dispatchers.join_next().await.is_some() {}
    }
    heartbeat.abort();
    let _ = jobrunner_queue::runners::leave(&connection, runner_id()).await;
    stop_api.cancel();
    let _ = api.await;
    if let Some(e) = &embedded {
        e.lock().unwrap().stop();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Refuses a Redis that may evict jobs (unless allowed), and says loudly
/// when it keeps nothing on disk. A Redis that will not say (an ACL
/// without `INFO`) is let through with a warning.
async fn check_durability(connection: &Connection, allow_eviction: bool) -> Result<()> {
    let d = match jobrunner_queue::durability::read(connection).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot read Redis's eviction policy and persistence; make sure it does not evict keys");
            return Ok(());
        }
    };
    if let Some(risk) = d.eviction_risk() {
        if !allow_eviction {
            anyhow::bail!("{risk}; or set `[redis] allow_eviction = true` to run anyway");
        }
        tracing::error!("{risk}; running anyway, as `[redis] allow_eviction` says");
    }
    if let Some(note) = d.eviction_note() {
        tracing::warn!("{note}");
    }
    if let Some(warning) = d.persistence_warning() {
        tracing::error!("{warning}");
    }
    tracing::info!(maxmemory_policy = %d.maxmemory_policy, aof = d.aof, rdb = ?d.rdb, "Redis durability");
    Ok(())
}

/// This process's id among the runners: host and pid (also kept with
/// each job it runs).
pub fn runner_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        format!("{host}:{}", std::process::id())
    })
}

/// Records this runner in `PREFIX:runners` every few seconds (with its
/// queues' slots in use and the plugins it serves, for the dashboard's
/// Busy page), and reads Redis's durability again: a Redis restarted (or
/// reconfigured) with an evicting policy is logged as an error the moment
/// it is seen (`/ready` fails then too).
async fn heartbeat(shared: Arc<Shared>, queues: Vec<String>, allow_eviction: bool) {
    let connection = shared.connection.clone();
    let id = runner_id().to_string();
    let mut info = jobrunner_queue::runners::RunnerInfo {
        hostname: id.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_default(),
        id,
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").into(),
        started_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64,
        last_seen_ms: 0,
        queues,
        ..Default::default()
    };
    let mut last = None;
    loop {
        let config = shared.config.read().unwrap().clone();
        info.slots = config
            .consumed_queues()
            .into_iter()
            .map(|(name, q)| {
                let running = shared.metrics.running.with_label_values(&[name.as_str()]).get().max(0) as u64;
                (name, jobrunner_queue::runners::Slots { running, concurrency: q.concurrency as u32 })
            })
            .collect();
        info.plugins = shared.plugin_stats.briefs(shared.registry.statuses());
        info.running = shared.running.longest();
        if let Err(e) = jobrunner_queue::runners::beat(&connection, &mut info).await {
            tracing::debug!(error = %format!("{e:#}"), "heartbeat failed");
        }
        if let Ok(d) = jobrunner_queue::durability::read(&connection).await
            && last.as_ref() != Some(&d)
        {
            if last.is_some() {
                tracing::warn!(maxmemory_policy = %d.maxmemory_policy, aof = d.aof, rdb = ?d.rdb, "Redis's durability changed");
            }
            for problem in [d.eviction_risk(), d.persistence_warning()].into_iter().flatten() {
                if last.is_some() {
                    let allowed = if allow_eviction { " (allowed by `[redis] allow_eviction`)" } else { "" };
                    tracing::error!("{problem}{allowed}");
                }
            }
            last = Some(d);
        }
        tokio::time::sleep(jobrunner_queue::runners::HEARTBEAT).await;
    }
}

/// Fires the queue's due schedule ticks, sleeping until the next one.
async fn fire_schedules(queue: Queue, stop: CancellationToken) {
    loop {
        let wait = match queue.fire_due_schedules().await {
            Ok((_, next)) => {
                next.unwrap_or(Duration::from_secs(1)).clamp(Duration::from_millis(1), Duration::from_secs(1))
            }
            Err(e) => {
                tracing::warn!(queue = queue.name(), error = %format!("{e:#}"), "cannot fire schedules");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}
