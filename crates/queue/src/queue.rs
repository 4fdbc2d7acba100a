//! `Queue`: one queue's handle, and the producer's side of it: enqueue one
//! job (`push` when it can, else `enqueue`) or a bulk of jobs in one script
//! call, each checked against the queue's `max_waiting` before it writes.

use crate::connection::Connection;
use crate::keys;
use crate::options::JobOptions;
use crate::record::{Spec, State};
use crate::scripts::SCRIPTS;
use anyhow::{Context, Result, anyhow, bail, ensure};
use jobrunner_job::{MAX_PAYLOAD_BYTES, check_job_id, check_job_type, check_queue_name};
use redis::Value;
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
pub(crate) fn full_or(queue: &str, e: redis::RedisError) -> anyhow::Error {
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

/// One queue. Cheap to clone (the dispatcher clones it for every job it
/// starts): all clones share one name, key set and connection.
#[derive(Clone)]
pub struct Queue {
    pub(crate) inner: Arc<QueueInner>,
}

pub(crate) struct QueueInner {
    pub(crate) name: String,
    pub(crate) keys: keys::Keys,
    pub(crate) conn: Connection,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// How many jobs a `completed` event stands for: one, or a batch's `count`.
pub(crate) fn completions(fields: &[(String, String)]) -> u64 {
    if fields.first().is_none_or(|(_, v)| v != "completed") {
        return 0;
    }
    fields.iter().find(|(k, _)| k == "count").and_then(|(_, v)| v.parse().ok()).unwrap_or(1)
}

pub(crate) fn arg(s: impl ToString) -> Vec<u8> {
    s.to_string().into_bytes()
}

impl Queue {
    pub fn new(conn: Connection, name: &str) -> Result<Queue> {
        check_queue_name(name).map_err(|e| anyhow!(e))?;
        Ok(Queue {
            inner: Arc::new(QueueInner { name: name.to_string(), keys: keys::Keys::new(conn.prefix(), name), conn }),
        })
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
        let spec = Spec {
            job_type: job.job_type.clone(),
            payload,
            opts: job.options.clone(),
            created_at: now_ms(),
            dead_letter: None,
            parent: None,
        };
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
            // The queue's policy gives its jobs a priority or a group,
            // which only `enqueue` applies; nothing was written.
            0 => return Ok(self.enqueue_bulk(vec![job]).await?.remove(0)),
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
                    job.options.priority.map(arg).unwrap_or_default(),
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
    pub(crate) async fn register(&self) -> Result<()> {
        type Seen = std::collections::HashMap<(String, String), std::time::Instant>;
        static SEEN: std::sync::LazyLock<std::sync::Mutex<Seen>> = std::sync::LazyLock::new(Default::default);
        let key = (format!("{} {}", self.inner.conn.target(), self.inner.conn.prefix()), self.inner.name.clone());
        if SEEN.lock().unwrap().get(&key).is_some_and(|at| at.elapsed() < Duration::from_secs(60)) {
            return Ok(());
        }
        let _: i64 = self
            .inner
            .conn
            .query(redis::cmd("SADD").arg(keys::registry(self.inner.conn.prefix())).arg(&self.inner.name))
            .await?;
        SEEN.lock().unwrap().insert(key, std::time::Instant::now());
        Ok(())
    }
}
