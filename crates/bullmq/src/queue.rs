//! `BullQueue`: one declared BullMQ queue, opened through `bullmq-official`;
//! its reads as the runner's `Counts` and `JobRecord`, its operations, and
//! enqueue (from the API, or a plugin's follow-ups).

use crate::record;
use crate::section::BullmqSection;
use anyhow::{Context, Result};
use bullmq::options::RedisConnectionOptions;
use bullmq::redis_connection::RedisConnection;
use bullmq::{JobState, QueueOptions};
use jobrunner_queue::stats::{Finished, History, Point};
use jobrunner_queue::{Counts, Enqueued, JobRecord, NewJob, QueuePolicy, State};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The BullMQ connection options for the runner's Redis URL: one server, or
/// comma-separated seeds of a cluster (as `queue::Connection` reads it).
pub fn connection_options(url: &str) -> RedisConnectionOptions {
    let urls: Vec<&str> = url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    if urls.len() > 1 {
        RedisConnectionOptions::new().cluster_nodes(urls)
    } else {
        RedisConnectionOptions::new().url(url)
    }
}

/// A plugin's follow-up job id as a BullMQ job id: each `:` becomes `.`
/// (`reminder:c1:step:2` is `reminder.c1.step.2`), the same every time, so
/// that a re-run's follow-ups still de-duplicate.
pub fn follow_up_id(id: &str) -> String {
    id.replace(':', ".")
}

/// One declared BullMQ queue, opened.
#[derive(Clone)]
pub struct BullQueue {
    /// The runner's name for it (API paths, metrics, the dashboard).
    name: String,
    decl: Arc<BullmqSection>,
    /// The part of `[queues.NAME]`'s policy BullMQ has a place for: the
    /// worker's limiter and retention (the config refuses the rest).
    policy: Arc<QueuePolicy>,
    queue: Arc<bullmq::Queue>,
}

/// The declared BullMQ queues by the runner's name for them.
pub type BullQueues = BTreeMap<String, BullQueue>;

/// Opens every queue the config declares as BullMQ's, on one connection.
pub async fn open_all(declared: Vec<(String, BullmqSection, QueuePolicy)>, url: &str) -> Result<BullQueues> {
    if declared.is_empty() {
        return Ok(BTreeMap::new());
    }
    let options = connection_options(url);
    if options.is_cluster()
        && let Some((name, _, _)) = declared.iter().find(|(_, b, _)| !b.prefix.starts_with('{'))
    {
        anyhow::bail!(
            "queues.{name}.bullmq.prefix: on Redis Cluster a BullMQ queue needs a hash-tagged prefix such as `{{bull}}` (and its producers the same prefix), so that all of its keys share a slot"
        );
    }
    let connection = RedisConnection::new_managed_only(&options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to Redis for the BullMQ queues: {e}"))?;
    let mut out = BTreeMap::new();
    for (name, decl, policy) in declared {
        let bull_name = decl.name.clone().unwrap_or_else(|| name.clone());
        let queue =
            bullmq::Queue::with_connection(&bull_name, connection.clone(), QueueOptions::new().prefix(&decl.prefix))
                .await
                .map_err(|e| anyhow::anyhow!("queues.{name}: cannot open BullMQ queue `{bull_name}`: {e}"))?;
        out.insert(
            name.clone(),
            BullQueue { name, decl: Arc::new(decl), policy: Arc::new(policy), queue: Arc::new(queue) },
        );
    }
    Ok(out)
}

/// A BullMQ error as an `anyhow` one, kept whole so that callers can tell
/// Redis being away (`is_redis_error`) from a refusal.
fn err(e: bullmq::Error) -> anyhow::Error {
    anyhow::Error::new(e)
}

/// Whether an error is Redis failing (rather than the input being wrong).
pub fn is_redis_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<redis::RedisError>().is_some()
            || matches!(
                c.downcast_ref::<bullmq::Error>(),
                Some(bullmq::Error::Redis(_) | bullmq::Error::ConnectionClosed)
            )
    })
}

impl BullQueue {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue's name in BullMQ.
    pub fn bull_name(&self) -> &str {
        self.queue.name()
    }

    pub fn prefix(&self) -> &str {
        &self.decl.prefix
    }

    pub fn decl(&self) -> &BullmqSection {
        &self.decl
    }

    pub fn policy(&self) -> &QueuePolicy {
        &self.policy
    }

    /// The plugin job type for a BullMQ job name.
    pub fn job_type<'a>(&'a self, job_name: &'a str) -> &'a str {
        self.decl.job_type(job_name)
    }

    /// The BullMQ job name for a plugin job type (`BullmqSection::job_name`).
    pub fn job_name<'a>(&'a self, job_type: &'a str) -> &'a str {
        self.decl.job_name(job_type)
    }

    /// Where its jobs live, for their records.
    fn place(&self) -> record::Place<'_> {
        record::Place { name: &self.name, bull_name: self.bull_name(), decl: &self.decl }
    }

    pub async fn counts(&self) -> Result<Counts> {
        let c = self.queue.get_job_counts().await.map_err(err).context("BullMQ job counts")?;
        Ok(Counts {
            // Waiting, to the runner, is everything that will run without a
            // delay: BullMQ keeps those in wait, paused and prioritized.
            waiting: c.waiting + c.paused + c.prioritized,
            delayed: c.delayed,
            active: c.active,
            completed: c.completed,
            failed: c.failed,
            // A flow's parents, as the runner's own flows keep them.
            waiting_children: c.waiting_children,
            paused: self.queue.is_paused().await.map_err(err)?,
        })
    }

    /// Jobs completed in the newest closed minute of BullMQ's metrics
    /// (recorded by the runner's workers, and by BullMQ workers with
    /// `metrics` set).
    pub async fn completed_recently(&self) -> Result<u64> {
        let m = self.queue.get_metrics("completed", 0, 0).await.map_err(err)?;
        Ok(m.data.first().copied().unwrap_or(0))
    }

    /// Jobs completed and failed since BullMQ's metrics began (its
    /// metrics' counts), for the live chart.
    pub async fn finished_total(&self) -> Result<Finished> {
        let completed = self.queue.get_metrics("completed", 0, 0).await.map_err(err)?;
        let failed = self.queue.get_metrics("failed", 0, 0).await.map_err(err)?;
        Ok(Finished { completed: completed.meta.count, failed: failed.meta.count })
    }

    /// Jobs completed and failed, in total and per minute and hour, from
    /// BullMQ's metrics (kept by the runner's workers for 7 days, and by
    /// BullMQ workers with `metrics` set for as long as they say), reading
    /// the newest `minutes` of its per-minute points. BullMQ counts every
    /// job moved to completed or failed, which is the runner's "finished
    /// for good" too.
    pub async fn history(&self, minutes: u64) -> Result<History> {
        let end = minutes.saturating_sub(1).min(i64::MAX as u64) as i64;
        let completed = self.queue.get_metrics("completed", 0, end).await.map_err(err)?;
        let failed = self.queue.get_metrics("failed", 0, end).await.map_err(err)?;
        Ok(history_of(&completed, &failed, jobrunner_queue::stats::now_ms()))
    }

    /// A page of jobs in one state, in the order the runner's own queues
    /// list them: next to run first, most recently finished first.
    pub async fn list(&self, state: State, offset: u64, limit: u64) -> Result<Vec<JobRecord>> {
        let limit = limit.clamp(1, 1000) as i64;
        let offset = offset.min(i64::MAX as u64 / 2) as i64;
        // BullMQ keeps the runner's one `waiting` state in two structures;
        // they are paged through one after the other.
        let segments: &[&str] = match state {
            State::Waiting => &["waiting", "prioritized"],
            State::Delayed => &["delayed"],
            State::Active => &["active"],
            State::Completed => &["completed"],
            State::Failed => &["failed"],
            State::WaitingChildren => &["waiting-children"],
        };
        let asc = !matches!(state, State::Completed | State::Failed);
        let mut out = Vec::new();
        let (mut skip, mut want) = (offset, limit);
        for seg in segments {
            if want == 0 {
                break;
            }
            let jobs =
                self.queue.get_jobs(&[seg], skip, skip + want - 1, asc).await.map_err(err).context("BullMQ jobs")?;
            if jobs.is_empty() {
                // This segment ends before `skip`: the rest of the offset
                // falls into the next one.
                let len = self.segment_len(seg).await?;
                skip = (skip - len).max(0);
                continue;
            }
            want -= jobs.len() as i64;
            skip = 0;
            out.extend(jobs.iter().map(|j| record::to_record(&self.place(), j, state, None)));
        }
        Ok(out)
    }

    async fn segment_len(&self, seg: &str) -> Result<i64> {
        let c = self.queue.get_job_counts().await.map_err(err)?;
        Ok(match seg {
            "waiting" => c.waiting + c.paused,
            "prioritized" => c.prioritized,
            _ => 0,
        } as i64)
    }

    /// One job with its log, or `None` when there is no such job.
    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        let Some(job) = self.queue.get_job(id).await.map_err(err).context("BullMQ job")? else { return Ok(None) };
        let Some(state) = self.state(id).await? else { return Ok(None) };
        let (log, _) = self.queue.get_job_logs(id, 0, -1, true).await.map_err(err)?;
        Ok(Some(record::to_record(&self.place(), &job, state, Some(log))))
    }

    async fn state(&self, id: &str) -> Result<Option<State>> {
        Ok(match self.queue.get_job_state(id).await.map_err(err)? {
            JobState::Waiting | JobState::Prioritized => Some(State::Waiting),
            JobState::WaitingChildren => Some(State::WaitingChildren),
            JobState::Active => Some(State::Active),
            JobState::Delayed => Some(State::Delayed),
            JobState::Completed => Some(State::Completed),
            JobState::Failed => Some(State::Failed),
            _ => None,
        })
    }

    /// The job's state name, or `missing`: what the operations answer
    /// when they cannot act.
    async fn state_name(&self, id: &str) -> Result<String> {
        Ok(self.state(id).await?.map(|s| s.as_str().to_string()).unwrap_or_else(|| "missing".into()))
    }

    /// Retries a failed job; answers `retried`, or the state it is in.
    pub async fn retry(&self, id: &str) -> Result<String> {
        let state = self.state_name(id).await?;
        if state != "failed" {
            return Ok(state);
        }
        let Some(mut job) = self.queue.get_job(id).await.map_err(err)? else { return Ok("missing".into()) };
        job.retry("failed", None).await.map_err(err).context("BullMQ retry")?;
        Ok("retried".into())
    }

    /// Runs a delayed job now; answers `promoted`, or the state it is in.
    pub async fn promote(&self, id: &str) -> Result<String> {
        let state = self.state_name(id).await?;
        if state != "delayed" {
            return Ok(state);
        }
        let Some(job) = self.queue.get_job(id).await.map_err(err)? else { return Ok("missing".into()) };
        job.promote().await.map_err(err).context("BullMQ promote")?;
        Ok("promoted".into())
    }

    /// Removes a job; answers the state it was removed from, `missing`, or
    /// `locked` when a worker holds it.
    pub async fn remove(&self, id: &str) -> Result<String> {
        let state = self.state_name(id).await?;
        if state == "missing" {
            return Ok(state);
        }
        Ok(if self.queue.remove(id).await.map_err(err)? { state } else { "locked".into() })
    }

    /// Moves every failed job back to waiting; answers how many there were.
    pub async fn retry_all_failed(&self) -> Result<u64> {
        let failed = self.queue.get_failed_count().await.map_err(err)?;
        self.queue.retry_jobs("failed", 1000, None).await.map_err(err).context("BullMQ retry failed")?;
        Ok(failed)
    }

    /// Removes finished jobs older than `older_than`; answers how many.
    pub async fn clean(&self, state: State, older_than: std::time::Duration, limit: u64) -> Result<u64> {
        let limit = u32::try_from(limit).unwrap_or(0); // 0: no limit, in BullMQ
        let removed = self
            .queue
            .clean(older_than.as_millis() as u64, limit, state.as_str())
            .await
            .map_err(err)
            .context("BullMQ clean")?;
        Ok(removed.len() as u64)
    }

    pub async fn pause(&self) -> Result<()> {
        self.queue.pause().await.map_err(err)
    }

    pub async fn resume(&self) -> Result<()> {
        self.queue.resume().await.map_err(err)
    }

    /// Adds jobs as BullMQ jobs (one bulk call), named by `job_name`, with
    /// their options mapped (see `record::to_bull_options`). A job whose id
    /// exists already is left as it is (`created: false`), as BullMQ does.
    pub async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        if jobs.is_empty() {
            return Ok(vec![]);
        }
        let mut bulk = Vec::with_capacity(jobs.len());
        let mut out = Vec::with_capacity(jobs.len());
        for j in jobs {
            j.check()?;
            let data: serde_json::Value = serde_json::from_str(&j.payload).context("payload is not valid JSON")?;
            let opts = record::to_bull_options(&j.id, &j.options, &self.policy)?;
            let existed = match &j.id {
                Some(id) => self.queue.get_job(id).await.map_err(err)?.is_some(),
                None => false,
            };
            let state = if j.options.delay_ms > 0 { "delayed" } else { "waiting" };
            out.push(Enqueued { id: String::new(), created: !existed, state: state.into() });
            bulk.push(bullmq::BulkJob::with_options(self.job_name(&j.job_type), data, opts));
        }
        let added = self.queue.add_bulk(bulk).await.map_err(err).context("BullMQ add")?;
        for (e, job) in out.iter_mut().zip(&added) {
            e.id = job.id().to_string();
        }
        Ok(out)
    }
}

/// The runner's history of a BullMQ queue from its two metrics. BullMQ
/// closes a minute's point when a job finishes in a later minute: its
/// `data[i]` is of the minute `i + 1` before the one of `prev_ts`, and the
/// jobs counted since (`count - prev_count`) are of `prev_ts`'s minute.
fn history_of(completed: &bullmq::types::Metrics, failed: &bullmq::types::Metrics, now_ms: u64) -> History {
    let mut h = History::empty(now_ms);
    h.total.completed = completed.meta.count;
    h.total.failed = failed.meta.count;
    let per_minute = |m: &bullmq::types::Metrics| {
        let mut out = BTreeMap::new();
        if m.meta.prev_ts == 0 {
            return out;
        }
        let current = m.meta.prev_ts / 60_000;
        out.insert(current, m.meta.count.saturating_sub(m.meta.prev_count));
        for (i, n) in m.data.iter().enumerate() {
            if let Some(minute) = current.checked_sub(i as u64 + 1) {
                out.insert(minute, *n);
            }
        }
        out
    };
    let add = |points: &mut [Point], span_ms: u64, minutes: &BTreeMap<u64, u64>, failed: bool| {
        let Some(first) = points.first().map(|p| p.at_ms) else { return };
        for (minute, n) in minutes {
            let at = minute * 60_000;
            if at < first {
                continue;
            }
            if let Some(p) = points.get_mut(((at - first) / span_ms) as usize) {
                if failed { p.finished.failed += n } else { p.finished.completed += n }
            }
        }
    };
    let (c, f) = (per_minute(completed), per_minute(failed));
    add(&mut h.minutes, 60_000, &c, false);
    add(&mut h.minutes, 60_000, &f, true);
    add(&mut h.hours, 3_600_000, &c, false);
    add(&mut h.hours, 3_600_000, &f, true);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use bullmq::types::{Metrics, MetricsMeta};

    #[test]
    fn bullmq_metrics_read_as_minutes_and_hours() {
        let now = 500 * 3_600_000 + 10 * 60_000 + 1_000;
        let minute = now / 60_000;
        // Three jobs in the minute under way; the closed minutes before it
        // had 4, 0 and 6; an hour and a half ago, 8.
        let mut data = vec![4, 0, 6];
        data.resize(90, 0);
        data.push(8);
        let completed = Metrics {
            meta: MetricsMeta { count: 1_000, prev_ts: now - 500, prev_count: 997 },
            count: data.len() as u64,
            data,
        };
        let failed = Metrics {
            meta: MetricsMeta { count: 2, prev_ts: (minute - 5) * 60_000, prev_count: 1 },
            data: vec![],
            count: 0,
        };
        let h = history_of(&completed, &failed, now);
        assert_eq!(h.total.completed, 1_000);
        assert_eq!(h.total.failed, 2);
        let last = |i: usize| h.minutes[h.minutes.len() - 1 - i].finished;
        assert_eq!(last(0).completed, 3);
        assert_eq!(last(1).completed, 4);
        assert_eq!(last(3).completed, 6);
        assert_eq!(last(5).failed, 1);
        assert_eq!(h.last_hour().completed, 13);
        // The 8 of 91 minutes ago is in the hour before the last but one.
        let hours: u64 = h.hours.iter().map(|p| p.finished.completed).sum();
        assert_eq!(hours, 21);
        assert_eq!(h.hours[h.hours.len() - 2].finished.completed + h.hours[h.hours.len() - 1].finished.completed, 13);
    }
}
