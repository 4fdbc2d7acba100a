//! The Redis queue engine.
//!
//! **Delivery contract: at least once.** A job is handed to a worker under a
//! lease that the worker extends while the job runs. If the worker dies, the
//! lease expires and the job goes back through the retry policy (a stall
//! counts as a failed attempt), so no job is lost; it may run again, which
//! is why handlers see their attempt number and should be idempotent. It is
//! worse to lose a job than to run it twice. A worker whose lease expired can
//! never complete or fail the job afterwards: every ack carries the lease's
//! fencing token, and a stale token is refused.
//!
//! Layout:
//! - `connection`: one Redis or a Cluster, reconnecting by itself;
//! - `keys`: the key layout (one hash tag per queue);
//! - `scripts` and `lua/`: every state change, as one atomic script;
//! - `options`, `record`: what producers ask for, and what the queue says;
//! - `consumer`: waiting for work without polling, waking on time;
//! - `durability`: whether the server may evict jobs or lose them on restart;
//! - `schedule`: recurring jobs (cron with a time zone, or intervals).
//!
//! Architecture invariant: nothing outside this module builds a Redis
//! command for a queue; callers use `Queue`.

pub mod connection;
pub mod consumer;
pub mod durability;
pub mod keys;
pub mod options;
pub mod record;
pub mod runners;
pub mod schedule;
mod scripts;

pub use connection::Connection;
pub use consumer::Consumer;
pub use options::{Backoff, JobOptions, Keep};
pub use record::{AttemptError, Counts, JobRecord, Leased, Spec, State};
pub use schedule::{Schedule, ScheduleInfo, Timing};

use crate::job::{MAX_PAYLOAD_BYTES, check_job_id, check_job_type, check_queue_name};
use anyhow::{Context, Result, anyhow, bail, ensure};
use redis::Value;
use scripts::SCRIPTS;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most jobs one bulk enqueue takes. A bulk enqueue is one script call,
/// so that it lands whole or not at all (a failure midway through calls of
/// a thousand each left the earlier ones enqueued under ids the caller
/// never saw); at about 5 µs a job in Redis, 10,000 hold it for about
/// 50 ms. Larger loads go in several calls (as `runner enqueue --file`
/// does), each whole.
pub const MAX_BULK: usize = 10_000;

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// None: a new unique id (a ULID, so ids sort by creation time).
    pub id: Option<String>,
    pub job_type: String,
    /// JSON text.
    pub payload: String,
    pub options: JobOptions,
}

impl NewJob {
    /// Checks what can be checked without parsing the payload: the type,
    /// the payload's size, the options and the id. Every backend's enqueue
    /// calls it first.
    pub fn check(&self) -> Result<()> {
        check_job_type(&self.job_type).map_err(|e| anyhow!(e))?;
        if self.payload.len() > MAX_PAYLOAD_BYTES {
            bail!("payload of {} bytes is over the {MAX_PAYLOAD_BYTES} byte limit", self.payload.len());
        }
        self.options.validate().map_err(|e| anyhow!(e))?;
        if let Some(id) = &self.id {
            check_job_id(id).map_err(|e| anyhow!(e))?;
        }
        Ok(())
    }
}

/// An enqueue refused because the queue holds `max_waiting` jobs not yet
/// started (see `Queue::set_max_waiting`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFull {
    pub queue: String,
    pub waiting: u64,
    pub max: u64,
    pub adding: u64,
}

impl std::fmt::Display for QueueFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "queue `{}` is full: {} jobs are waiting, delayed or running, its max_waiting is {}, and this would add {}",
            self.queue, self.waiting, self.max, self.adding
        )
    }
}

impl std::error::Error for QueueFull {}

/// A script's refusal as `QueueFull`, or the error as it is.
fn full_or(queue: &str, e: redis::RedisError) -> anyhow::Error {
    if e.code() == Some("QUEUE_FULL") {
        let n: Vec<u64> = e.detail().unwrap_or("").split_whitespace().filter_map(|w| w.parse().ok()).collect();
        if let [waiting, max, adding, ..] = n[..] {
            return QueueFull { queue: queue.to_string(), waiting, max, adding }.into();
        }
    }
    anyhow::Error::from(e).context("enqueue")
}

/// What enqueueing one job did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Enqueued {
    pub id: String,
    /// False when a job with this id existed already (nothing was changed).
    pub created: bool,
    pub state: String,
}

/// What a consumer publishes on its own push channel when its registration
/// has ended (no job message is one word).
pub(crate) const END_OF_PUSHES: &str = "end";

/// A consumer as `fetch_as` registers it: its id and the channel its jobs
/// are published on.
pub(crate) struct IdleConsumer {
    pub id: String,
    pub channel: String,
    /// Whether its last fetch registered it (the next one ends that).
    pub registered: std::sync::atomic::AtomicBool,
}

/// What a fetch returned.
#[derive(Debug, Default)]
pub struct Fetched {
    pub jobs: Vec<Leased>,
    /// When the next delayed job is due or the next lease expires.
    pub next_due: Option<Duration>,
    /// Set when the queue's rate limit is reached: how long until it resets.
    pub rate_limited: Option<Duration>,
    /// Jobs whose lease had expired, found (and put back) by this fetch.
    pub stalled: u64,
}

/// How an attempt failed, as the queue records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    Retry(String),
    RetryAfter(Duration, String),
    Permanent(String),
}

/// The state after a failure was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    Waiting,
    Delayed {
        run_at_ms: u64,
    },
    Failed,
    /// The lease was stale: nothing was recorded.
    Stale,
}

/// A completed attempt, for `complete`.
#[derive(Debug, Clone)]
pub struct Completion {
    pub id: String,
    pub token: String,
    /// JSON text.
    pub result: Option<String>,
    pub progress: Option<u8>,
    /// JSON text (an array of log lines).
    pub log: Option<String>,
}

impl Completion {
    /// A plain completion of a leased job: no output, progress or log.
    pub fn of(leased: &Leased) -> Completion {
        Completion { id: leased.id.clone(), token: leased.token.clone(), result: None, progress: None, log: None }
    }
}

/// One queue. Cheap to clone (the dispatcher clones it for every job it
/// starts): all clones share one name, key set and connection.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<QueueInner>,
}

struct QueueInner {
    name: String,
    keys: keys::Keys,
    conn: Connection,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// How many jobs a `completed` event stands for: one, or a batch's `count`.
fn completions(fields: &[(String, String)]) -> u64 {
    if fields.first().is_none_or(|(_, v)| v != "completed") {
        return 0;
    }
    fields.iter().find(|(k, _)| k == "count").and_then(|(_, v)| v.parse().ok()).unwrap_or(1)
}

fn arg(s: impl ToString) -> Vec<u8> {
    s.to_string().into_bytes()
}

impl Queue {
    pub fn new(conn: Connection, name: &str) -> Result<Queue> {
        check_queue_name(name).map_err(|e| anyhow!(e))?;
        Ok(Queue { inner: Arc::new(QueueInner { name: name.to_string(), keys: keys::Keys::new(name), conn }) })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn connection(&self) -> &Connection {
        &self.inner.conn
    }

    pub(crate) fn wake_channel(&self) -> &str {
        &self.inner.keys.wake_channel
    }

    /// Checks a job and serialises its spec, without touching Redis.
    fn prepare(&self, job: &NewJob) -> Result<(String, String)> {
        job.check()?;
        let payload = serde_json::value::RawValue::from_string(job.payload.clone())
            .map_err(|e| anyhow!("payload is not valid JSON: {e}"))?;
        let id = job.id.clone().unwrap_or_else(|| ulid::Ulid::new().to_string());
        let spec = Spec { job_type: job.job_type.clone(), payload, opts: job.options.clone(), created_at: now_ms() };
        Ok((id, serde_json::to_string(&spec)?))
    }

    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        if job.id.is_some() || !job.options.starts_now_in_line() {
            return Ok(self.enqueue_bulk(vec![job]).await?.remove(0));
        }
        // The common case, a new job to start now in no group, goes through
        // the lean `push` script: what it writes is what `enqueue` would,
        // and at light load it starts the job sooner (`lua/push.lua`).
        let (id, spec) = self.prepare(&job)?;
        self.register().await?;
        let args = [arg(&self.inner.keys.wake_channel), arg(&id), arg(&spec)];
        let reply: i64 = self
            .inner
            .conn
            .invoke(&SCRIPTS.push, &self.inner.keys.push, &args)
            .await
            .map_err(|e| full_or(&self.inner.name, e))?;
        let state = match reply {
            1 => State::Waiting,
            3 => State::Active,
            other => bail!("enqueue: unexpected reply {other} from the push script"),
        };
        Ok(Enqueued { id, created: true, state: state.as_str().to_string() })
    }

    /// Enqueues up to `MAX_BULK` jobs in one script call: every job is
    /// checked before any is written, and they land together or not at all.
    /// An error therefore means none landed, but for one case no client can
    /// tell apart: the connection lost after Redis ran the call, when all
    /// did. Jobs with ids of the caller's make a retry safe either way (an
    /// id that exists is left as it is, and answered `created: false`).
    pub async fn enqueue_bulk(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        if jobs.len() > MAX_BULK {
            bail!("{} jobs in one bulk enqueue; at most {MAX_BULK}: split the load into several", jobs.len());
        }
        if jobs.is_empty() {
            return Ok(vec![]);
        }
        let prepared: Vec<(String, String, &NewJob)> = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| self.prepare(j).map(|(id, spec)| (id, spec, j)).with_context(|| format!("job {i}")))
            .collect::<Result<_>>()?;
        self.register().await?;
        // Ids made here (ULIDs: a millisecond clock and 80 random bits)
        // cannot exist yet, so the script need not look them up.
        let new_ids = prepared.iter().all(|(_, _, job)| job.id.is_none());
        // Jobs that all start now, at priority 0 and in no group go in the
        // short layout: id and spec only (`enqueue.lua`).
        let short = prepared.iter().all(|(_, _, job)| job.options.starts_now_in_line());
        let flags = u8::from(new_ids) + 2 * u8::from(short);
        let mut args = Vec::with_capacity(3 + prepared.len() * if short { 2 } else { 5 });
        args.extend([arg(&self.inner.keys.wake_channel), arg(prepared.len()), arg(flags)]);
        for (id, spec, job) in &prepared {
            args.extend([arg(id), arg(spec)]);
            if !short {
                args.extend([
                    arg(job.options.delay_ms),
                    arg(job.options.priority),
                    arg(job.options.group.as_deref().unwrap_or("")),
                ]);
            }
        }
        let replies: Vec<Value> = self
            .inner
            .conn
            .invoke(&SCRIPTS.enqueue, &self.inner.keys.all, &args)
            .await
            .map_err(|e| full_or(&self.inner.name, e))?;
        let mut out = Vec::with_capacity(prepared.len());
        // Per job: 1 created waiting, 2 created delayed, 3 created and
        // leased at once to an idle consumer, or the state of the job that
        // had the id already.
        for ((id, _, _), reply) in prepared.into_iter().zip(replies.iter()) {
            let (created, state) = match reply {
                Value::Int(1) => (true, State::Waiting.as_str().to_string()),
                Value::Int(2) => (true, State::Delayed.as_str().to_string()),
                Value::Int(3) => (true, State::Active.as_str().to_string()),
                other => (false, redis::from_redis_value_ref(other)?),
            };
            out.push(Enqueued { id, created, state });
        }
        ensure!(out.len() == jobs.len(), "enqueue: {} replies for {} jobs", out.len(), jobs.len());
        Ok(out)
    }

    /// Notes the queue's name in the registry of queues. An `SADD` on every
    /// enqueue would double the round trips of a single-job enqueue, so it is
    /// sent once a minute per server and queue (the minute bounds how long a
    /// Redis that lost its data goes without the name).
    async fn register(&self) -> Result<()> {
        type Seen = std::collections::HashMap<(String, String), std::time::Instant>;
        static SEEN: std::sync::LazyLock<std::sync::Mutex<Seen>> = std::sync::LazyLock::new(Default::default);
        let key = (self.inner.conn.target().to_string(), self.inner.name.clone());
        if SEEN.lock().unwrap().get(&key).is_some_and(|at| at.elapsed() < Duration::from_secs(60)) {
            return Ok(());
        }
        let _: i64 = self.inner.conn.query(redis::cmd("SADD").arg(keys::REGISTRY).arg(&self.inner.name)).await?;
        SEEN.lock().unwrap().insert(key, std::time::Instant::now());
        Ok(())
    }

    /// Takes up to `count` jobs under a lease of `lease`.
    pub async fn fetch(&self, count: usize, lease: Duration) -> Result<Fetched> {
        self.fetch_as(count, lease, None).await
    }

    /// As `fetch`, for a consumer that takes jobs handed off by enqueues:
    /// if the fetch comes back short, it is registered as idle, and the
    /// next enqueues lease their jobs to it on its push channel (see
    /// `Consumer`), until its next fetch or for `ttl`.
    pub(crate) async fn fetch_as(
        &self,
        count: usize,
        lease: Duration,
        idle: Option<(&IdleConsumer, Duration)>,
    ) -> Result<Fetched> {
        let mut args = vec![
            arg(count),
            arg(lease.as_millis().max(1)),
            arg(rand::random::<f64>()),
            arg(&self.inner.keys.wake_channel),
        ];
        if let Some((c, ttl)) = idle {
            let registered = if c.registered.load(std::sync::atomic::Ordering::Relaxed) { "1" } else { "0" };
            args.extend([arg(&c.id), arg(&c.channel), arg(ttl.as_millis()), arg(registered)]);
        }
        let reply: Vec<Value> =
            self.inner.conn.invoke(&SCRIPTS.fetch, &self.inner.keys.all, &args).await.context("fetch")?;
        let next: i64 = redis::from_redis_value_ref(&reply[0])?;
        let limited: i64 = redis::from_redis_value_ref(&reply[1])?;
        // Negative: the consumer was registered as idle (`-1 - stalls`).
        let stalled: i64 = redis::from_redis_value_ref(&reply[2])?;
        if let Some((c, _)) = idle {
            c.registered.store(stalled < 0, std::sync::atomic::Ordering::Relaxed);
        }
        let stalled = if stalled < 0 { (-1 - stalled) as u64 } else { stalled as u64 };
        // Three numbers, then four values per job: anything else is not a
        // reply of this script, and a job cut short would be leased unseen.
        ensure!(
            reply.len() >= 3 && (reply.len() - 3).is_multiple_of(4),
            "fetch: a reply of {} values is not 3 plus 4 per job",
            reply.len()
        );
        // The reply's values are taken, not copied: a job's id moves into
        // its `Leased`, and its spec is read from the reply's bytes.
        let mut values = reply.into_iter().skip(3);
        let mut jobs = Vec::with_capacity(values.len() / 4);
        while let (Some(id), Some(token), Some(attempt), Some(spec)) =
            (values.next(), values.next(), values.next(), values.next())
        {
            let spec = match &spec {
                Value::BulkString(bytes) => serde_json::from_slice(bytes),
                other => bail!("fetch: a job's spec is not a string: {other:?}"),
            };
            jobs.push(Leased {
                id: redis::from_redis_value(id)?,
                token: redis::from_redis_value::<i64>(token)?.to_string(),
                attempt: redis::from_redis_value(attempt)?,
                spec: spec.context("a job's stored spec is unreadable")?,
            });
        }
        Ok(Fetched {
            jobs,
            next_due: (next >= 0).then(|| Duration::from_millis(next as u64)),
            rate_limited: (limited > 0).then(|| Duration::from_millis(limited as u64)),
            stalled,
        })
    }

    /// Ends an idle consumer's registration, then publishes `END_OF_PUSHES`
    /// on its channel: a job handed off before the registration went was
    /// published there before that marker, so the consumer has every job
    /// that was leased to it once it sees the marker.
    pub(crate) async fn end_idle(&self, idle: &IdleConsumer) -> Result<()> {
        let _: i64 = self.inner.conn.query(redis::cmd("HDEL").arg(self.inner.keys.get("idle")).arg(&idle.id)).await?;
        let _: i64 = self.inner.conn.query(redis::cmd("PUBLISH").arg(&idle.channel).arg(END_OF_PUSHES)).await?;
        Ok(())
    }

    /// Reads a job that `enqueue` leased to an idle consumer and published
    /// on its channel: `token id spec`, attempt 1.
    pub(crate) fn pushed(message: &[u8]) -> Result<Leased> {
        let text = std::str::from_utf8(message).context("a pushed job is not UTF-8")?;
        let mut parts = text.splitn(3, ' ');
        let (Some(token), Some(id), Some(spec)) = (parts.next(), parts.next(), parts.next()) else {
            bail!("a pushed job is not `token id spec`: {}", text.chars().take(80).collect::<String>());
        };
        Ok(Leased {
            id: id.to_string(),
            token: token.to_string(),
            attempt: 1,
            spec: serde_json::from_str(spec).context("a pushed job's spec is unreadable")?,
        })
    }

    /// Completes leased jobs in one call, then trims the completed jobs to
    /// `keep`. Returns, per job, whether its lease was still current (false:
    /// refused; the lease expired and the job is someone else's now).
    pub async fn complete(&self, done: &[Completion], keep: Keep) -> Result<Vec<bool>> {
        self.complete_marking(done, keep, &[]).await
    }

    /// Records that leased jobs have started (id and token each), so that
    /// a stall of their leases spends their attempts: until then, a lease
    /// that expires goes back unspent, since its job never ran (a runner
    /// killed with jobs fetched ahead; `lua/common.lua`). Completing or
    /// failing a job marks it too. A mark with a stale token is ignored.
    pub async fn mark_started(&self, started: &[(String, String)]) -> Result<()> {
        self.complete_marking(&[], options::DEFAULT_KEEP_COMPLETED, started).await.map(drop)
    }

    /// `complete` and `mark_started` in one call: the runner sends its
    /// start marks with the completions it sends anyway.
    pub async fn complete_marking(
        &self,
        done: &[Completion],
        keep: Keep,
        started: &[(String, String)],
    ) -> Result<Vec<bool>> {
        if done.is_empty() && started.is_empty() {
            return Ok(vec![]);
        }
        // The short layout (id and token) when no job of the batch has a
        // result, progress or log to store: most jobs of a busy queue.
        let plain = done.iter().all(|c| c.result.is_none() && c.progress.is_none() && c.log.is_none());
        let width = if plain { 2 } else { 5 };
        let mut args = Vec::with_capacity(4 + done.len() * width);
        args.extend([
            arg(done.len()),
            arg(keep.count.map(|c| c as i64).unwrap_or(-1)),
            arg(keep.age_ms.unwrap_or(0)),
            arg(width),
        ]);
        for c in done {
            args.push(arg(&c.id));
            args.push(arg(&c.token));
            if !plain {
                args.push(c.result.clone().unwrap_or_default().into_bytes());
                args.push(arg(c.progress.map(i64::from).unwrap_or(-1)));
                args.push(c.log.clone().unwrap_or_default().into_bytes());
            }
        }
        if !started.is_empty() {
            args.reserve(1 + 2 * started.len());
            args.push(arg(started.len()));
            for (id, token) in started {
                args.extend([arg(id), arg(token)]);
            }
        }
        let reply: Vec<i64> =
            self.inner.conn.invoke(&SCRIPTS.complete, &self.inner.keys.all, &args).await.context("complete")?;
        Ok(reply.into_iter().map(|r| r == 1).collect())
    }

    /// Records a failed attempt; the queue retries or fails the job.
    pub async fn fail(
        &self,
        id: &str,
        token: &str,
        failure: &Failure,
        progress: Option<u8>,
        log: Option<String>,
    ) -> Result<AfterFailure> {
        let (kind, delay, message) = match failure {
            Failure::Retry(m) => ("retry", 0, m),
            Failure::RetryAfter(d, m) => ("retry_after", d.as_millis().max(1) as u64, m),
            Failure::Permanent(m) => ("permanent", 0, m),
        };
        let args = [
            arg(id),
            arg(token),
            arg(kind),
            arg(delay),
            arg(message),
            arg(rand::random::<f64>()),
            arg(&self.inner.keys.wake_channel),
            arg(progress.map(i64::from).unwrap_or(-1)),
            log.unwrap_or_default().into_bytes(),
        ];
        let (state, at): (String, u64) =
            self.inner.conn.invoke(&SCRIPTS.fail, &self.inner.keys.all, &args).await.context("fail")?;
        Ok(match state.as_str() {
            "waiting" => AfterFailure::Waiting,
            "delayed" => AfterFailure::Delayed { run_at_ms: at },
            "failed" => AfterFailure::Failed,
            _ => AfterFailure::Stale,
        })
    }

    /// Extends leases; returns, per job, whether it is still held.
    pub async fn extend(&self, leases: &[(String, String)], lease: Duration) -> Result<Vec<bool>> {
        if leases.is_empty() {
            return Ok(vec![]);
        }
        let mut args = vec![arg(lease.as_millis().max(1)), arg(leases.len())];
        for (id, token) in leases {
            args.push(arg(id));
            args.push(arg(token));
        }
        let reply: Vec<i64> =
            self.inner.conn.invoke(&SCRIPTS.extend, &self.inner.keys.all, &args).await.context("extend")?;
        Ok(reply.into_iter().map(|r| r == 1).collect())
    }

    /// Puts a leased job back on the queue without counting the attempt
    /// (graceful shutdown). False when the lease is stale.
    pub async fn release(&self, id: &str, token: &str) -> Result<bool> {
        let r: i64 = self
            .inner
            .conn
            .invoke(&SCRIPTS.release, &self.inner.keys.all, &[arg(id), arg(token), arg(&self.inner.keys.wake_channel)])
            .await
            .context("release")?;
        Ok(r == 1)
    }

    /// Records a running job's progress; false when the lease is stale.
    pub async fn progress(&self, id: &str, token: &str, percent: u8) -> Result<bool> {
        let r: i64 = self
            .inner
            .conn
            .invoke(&SCRIPTS.progress, &self.inner.keys.all, &[arg(id), arg(token), arg(percent.min(100))])
            .await?;
        Ok(r == 1)
    }

    async fn admin<T: redis::FromRedisValue>(&self, op: &str, extra: &[Vec<u8>]) -> Result<T> {
        let mut args = vec![arg(op), arg(&self.inner.keys.wake_channel)];
        args.extend_from_slice(extra);
        self.inner
            .conn
            .invoke(&SCRIPTS.admin, &self.inner.keys.all, &args)
            .await
            .with_context(|| format!("{op} on queue {}", self.inner.name))
    }

    /// Moves a failed job back to waiting with its attempts reset. Returns
    /// `retried`, or the job's state if it was not failed (`missing` if
    /// there is none).
    pub async fn retry(&self, id: &str) -> Result<String> {
        self.admin("retry", &[arg(id)]).await
    }

    /// Moves every failed job back to waiting; returns how many.
    pub async fn retry_all_failed(&self) -> Result<u64> {
        let mut total = 0;
        loop {
            let n: u64 = self.admin("retry_failed", &[arg(1000)]).await?;
            total += n;
            if n < 1000 {
                return Ok(total);
            }
        }
    }

    /// Removes a job in any state; returns the state it was in, or `missing`.
    pub async fn remove(&self, id: &str) -> Result<String> {
        self.admin("remove", &[arg(id)]).await
    }

    /// Runs a delayed job now. Returns `promoted`, or the job's state if it
    /// was not delayed (`missing` if there is none).
    pub async fn promote(&self, id: &str) -> Result<String> {
        self.admin("promote", &[arg(id)]).await
    }

    pub async fn pause(&self) -> Result<()> {
        self.register().await?;
        self.admin::<String>("pause", &[]).await.map(drop)
    }

    pub async fn resume(&self) -> Result<()> {
        self.admin::<String>("resume", &[]).await.map(drop)
    }

    /// Removes every waiting and delayed job; returns how many.
    pub async fn drain(&self) -> Result<u64> {
        let mut total = 0;
        loop {
            let n: u64 = self.admin("drain", &[arg(1000)]).await?;
            total += n;
            if n < 1000 {
                return Ok(total);
            }
        }
    }

    /// Removes completed or failed jobs that finished at least `age` ago, at
    /// most `limit`; returns how many.
    pub async fn clean(&self, state: State, age: Duration, limit: u64) -> Result<u64> {
        if !matches!(state, State::Completed | State::Failed) {
            bail!("clean takes completed or failed jobs, not {state}");
        }
        let mut total = 0;
        while total < limit {
            let batch = (limit - total).min(1000);
            let n: u64 = self.admin("clean", &[arg(state.as_str()), arg(age.as_millis()), arg(batch)]).await?;
            total += n;
            if n < batch {
                break;
            }
        }
        Ok(total)
    }

    /// At most `max` jobs are waiting, delayed or running at once: an
    /// enqueue that would pass it is refused whole (`QueueFull`), from
    /// producers and plugins alike. 0 removes the bound.
    pub async fn set_max_waiting(&self, max: u64) -> Result<()> {
        self.admin::<String>("max_waiting", &[arg(max)]).await.map(drop)
    }

    /// At most `max` jobs start per `window` (a `max` of 0 removes the limit).
    pub async fn set_rate_limit(&self, max: u64, window: Duration) -> Result<()> {
        if max > 0 && window.is_zero() {
            bail!("a rate limit needs a window longer than zero");
        }
        self.admin::<String>("rate_limit", &[arg(max), arg(window.as_millis().max(1))]).await.map(drop)
    }

    /// At most `max` jobs of one group start per `window` (0: no limit).
    pub async fn set_group_rate_limit(&self, max: u64, window: Duration) -> Result<()> {
        if max > 0 && window.is_zero() {
            bail!("a rate limit needs a window longer than zero");
        }
        self.admin::<String>("group_rate_limit", &[arg(max), arg(window.as_millis().max(1))]).await.map(drop)
    }

    pub async fn counts(&self) -> Result<Counts> {
        let mut pipe = redis::pipe();
        for state in State::ALL {
            pipe.cmd("ZCARD").arg(self.inner.keys.get(state.key_name()));
        }
        pipe.cmd("HGET").arg(self.inner.keys.get("meta")).arg("paused");
        let (w, d, a, c, f, paused): (u64, u64, u64, u64, u64, Option<String>) =
            self.inner.conn.pipeline(&pipe).await.context("counts")?;
        Ok(Counts {
            waiting: w,
            delayed: d,
            active: a,
            completed: c,
            failed: f,
            paused: paused.as_deref() == Some("1"),
        })
    }

    /// Jobs in a state, a page at a time: waiting in the order they will
    /// run, delayed soonest first, finished newest first. `offset` is the
    /// cursor; each page costs O(log n + limit), never a scan.
    pub async fn list(&self, state: State, offset: u64, limit: u64) -> Result<Vec<JobRecord>> {
        let limit = limit.clamp(1, 1000);
        // Redis ranges are signed 64-bit; no set is near this long, so a
        // larger offset is simply past the end (an empty page, not an error).
        let offset = offset.min(i64::MAX as u64 / 2);
        let cmd = if matches!(state, State::Completed | State::Failed) { "ZREVRANGE" } else { "ZRANGE" };
        let ids: Vec<String> = self
            .inner
            .conn
            .query(
                redis::cmd(cmd)
                    .arg(self.inner.keys.get(state.key_name()))
                    .arg(offset)
                    .arg(offset.saturating_add(limit - 1)),
            )
            .await
            .context("list")?;
        self.records(&ids).await
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        Ok(self.records(&[id.to_string()]).await?.pop())
    }

    /// Reads jobs by id, leaving out those that no longer exist.
    async fn records(&self, ids: &[String]) -> Result<Vec<JobRecord>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let args: Vec<Vec<u8>> = ids.iter().map(arg).collect();
        let reply: Vec<String> =
            self.inner.conn.invoke(&SCRIPTS.jobs, &self.inner.keys.all, &args).await.context("read jobs")?;
        let mut out = Vec::new();
        for (id, f) in ids.iter().zip(reply.chunks(10)) {
            let (Some(state), Ok(spec)) = (State::parse(&f[0]), serde_json::from_str::<Spec>(&f[1])) else {
                continue;
            };
            let result: Option<serde_json::Value> =
                if f[4].is_empty() { None } else { serde_json::from_str(&f[4]).ok() };
            out.push(JobRecord {
                id: id.clone(),
                queue: self.inner.name.clone(),
                state,
                job_type: spec.job_type,
                payload: serde_json::from_str(spec.payload.get()).unwrap_or_default(),
                options: spec.opts,
                attempts_made: f[2].parse().unwrap_or(0),
                // The `created` hash is only there for jobs enqueued before
                // it stopped being written (docs/queue-protocol.md).
                created_at: f[3].parse().unwrap_or(spec.created_at),
                state_since_or_until: f[9].parse::<f64>().ok().filter(|_| state != State::Waiting).map(|s| s as u64),
                progress: f[7].parse().ok(),
                result,
                errors: if f[5].is_empty() { vec![] } else { serde_json::from_str(&f[5]).unwrap_or_default() },
                log: if f[6].is_empty() { None } else { serde_json::from_str(&f[6]).ok() },
                stalls: f[8].parse().unwrap_or(0),
                bullmq: None,
            });
        }
        Ok(out)
    }

    /// Reads events after `after` (a stream id; "0" for the oldest kept, "$"
    /// is not accepted here), at most `count`.
    pub async fn events(&self, after: &str, count: usize) -> Result<Vec<(String, Vec<(String, String)>)>> {
        let start = if after == "0" { "-".to_string() } else { format!("({after}") };
        let reply: Vec<(String, Vec<(String, String)>)> = self
            .inner
            .conn
            .query(redis::cmd("XRANGE").arg(self.inner.keys.get("events")).arg(start).arg("+").arg("COUNT").arg(count))
            .await
            .context("events")?;
        Ok(reply)
    }

    /// Jobs completed in the last `window`, from the events stream.
    pub async fn completed_in(&self, window: Duration) -> Result<u64> {
        let since = SystemTime::now().duration_since(UNIX_EPOCH)?.saturating_sub(window).as_millis();
        let events: Vec<(String, Vec<(String, String)>)> = self
            .inner
            .conn
            .query(redis::cmd("XRANGE").arg(self.inner.keys.get("events")).arg(format!("{since}-0")).arg("+"))
            .await
            .context("throughput")?;
        Ok(events.iter().map(|(_, f)| completions(f)).sum())
    }

    /// Jobs completed in each of the last `minutes` minutes, oldest first,
    /// from the events stream (which keeps about the last 10,000 events).
    pub async fn completed_per_minute(&self, minutes: u64) -> Result<Vec<u64>> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
        let start = now.saturating_sub(minutes * 60_000);
        let events: Vec<(String, Vec<(String, String)>)> = self
            .inner
            .conn
            .query(redis::cmd("XRANGE").arg(self.inner.keys.get("events")).arg(format!("{start}-0")).arg("+"))
            .await
            .context("throughput")?;
        let mut buckets = vec![0u64; minutes as usize];
        for (id, fields) in events {
            let at: u64 = id.split('-').next().and_then(|t| t.parse().ok()).unwrap_or(0);
            let n = completions(&fields);
            if n > 0 && at >= start {
                // An event of this very millisecond (or a Redis clock a
                // little ahead) belongs to the newest minute.
                let i = (((at - start) / 60_000) as usize).min(buckets.len().saturating_sub(1));
                if let Some(b) = buckets.get_mut(i) {
                    *b += n;
                }
            }
        }
        Ok(buckets)
    }

    /// The id of the newest event, if any.
    pub async fn latest_event_id(&self) -> Result<Option<String>> {
        let last: Vec<(String, Vec<(String, String)>)> = self
            .inner
            .conn
            .query(redis::cmd("XREVRANGE").arg(self.inner.keys.get("events")).arg("+").arg("-").arg("COUNT").arg(1))
            .await?;
        Ok(last.into_iter().next().map(|(id, _)| id))
    }

    /// The ids an event names: its `id`, or for a batch (`completed` and
    /// `added` of several jobs) the space-separated `ids` when it has them.
    pub fn event_ids(fields: &[(String, String)]) -> Vec<&str> {
        let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        match field("ids") {
            Some(ids) => ids.split(' ').collect(),
            None => field("id").into_iter().collect(),
        }
    }

    /// The names of every queue that has been used.
    pub async fn names(conn: &Connection) -> Result<Vec<String>> {
        let mut names: Vec<String> = conn.query(redis::cmd("SMEMBERS").arg(keys::REGISTRY)).await?;
        names.sort();
        Ok(names)
    }
}
