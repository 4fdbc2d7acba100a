//! The worker's side of a `Queue`: fetch jobs under a lease (or be handed
//! them as an idle consumer), then complete, fail, extend, release or report
//! progress, each refused when the lease's token is stale.

use crate::options::{self, Keep};
use crate::queue::{Queue, arg};
use crate::record::Leased;
use crate::scripts::SCRIPTS;
use anyhow::{Context, Result, bail, ensure};
use redis::Value;
use std::time::Duration;

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

/// What `extend` found of one lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Held with this token, and extended.
    Held,
    /// Another lease holds the job: this one expired and the job was
    /// handed out again. This attempt's outcome will be refused.
    Taken,
    /// No lease holds the job: it finished (a completion Redis recorded
    /// before this call), went back to wait, or was removed.
    Ended,
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
    /// When the attempt started and where it ran, kept with the job.
    pub run: Option<RunMark>,
}

impl Completion {
    /// A plain completion of a leased job: no output, progress, log or run.
    pub fn of(leased: &Leased) -> Completion {
        Completion {
            id: leased.id.clone(),
            token: leased.token.clone(),
            result: None,
            progress: None,
            log: None,
            run: None,
        }
    }
}

/// An attempt's start and the runner it ran on, as a job keeps them for
/// the dashboard (its duration and its timeline): `STARTED_MS RUNNER` in
/// Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMark(String);

impl RunMark {
    pub fn new(started_ms: u64, runner: &str) -> RunMark {
        RunMark(format!("{started_ms} {runner}"))
    }
}

impl Queue {
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
        // The short layout (id, token and run) when no job of the batch
        // has a result, progress or log to store: most jobs of a busy
        // queue. A job without a run sends an empty one.
        let plain = done.iter().all(|c| c.result.is_none() && c.progress.is_none() && c.log.is_none());
        let width = if plain { 3 } else { 6 };
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
            args.push(c.run.as_ref().map(|r| arg(&r.0)).unwrap_or_default());
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
        self.fail_run(id, token, failure, progress, log, None).await
    }

    /// `fail`, keeping the attempt's start and runner in its error entry.
    pub async fn fail_run(
        &self,
        id: &str,
        token: &str,
        failure: &Failure,
        progress: Option<u8>,
        log: Option<String>,
        run: Option<&RunMark>,
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
            run.map(|r| arg(&r.0)).unwrap_or_default(),
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

    /// Extends leases; returns, per job, what it found of its lease.
    pub async fn extend(&self, leases: &[(String, String)], lease: Duration) -> Result<Vec<LeaseState>> {
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
        Ok(reply
            .into_iter()
            .map(|r| match r {
                1 => LeaseState::Held,
                0 => LeaseState::Taken,
                _ => LeaseState::Ended,
            })
            .collect())
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
}
