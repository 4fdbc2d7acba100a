//! One view of every queue: a native queue or a BullMQ-backed one, behind
//! the reads and operations the API, the dashboard and the CLI use, so that
//! both kinds are listed, counted, paged and operated on alike.
//!
//! What only one kind has (schedules, per-group rate limits, the events
//! stream are native) is reached through `native()`.

use crate::queue::{BullQueue, BullQueues};
use anyhow::Result;
use jobrunner_queue::stats::{Finished, History};
use jobrunner_queue::{Connection, Counts, EffectivePolicy, Enqueued, JobRecord, NewJob, Queue, State};
use std::time::Duration;

#[derive(Clone)]
pub enum AnyQueue {
    // Boxed: a native queue carries its 35 keys, a BullMQ one two handles.
    Native(Box<Queue>),
    Bull(BullQueue),
}

impl AnyQueue {
    /// The queue named `name`: the BullMQ-backed one if the config declares
    /// it, else the native one (refused if the name is not a valid one).
    pub fn open(connection: &Connection, bull: &BullQueues, name: &str) -> Result<AnyQueue> {
        Ok(match bull.get(name) {
            Some(b) => AnyQueue::Bull(b.clone()),
            None => AnyQueue::Native(Box::new(Queue::new(connection.clone(), name)?)),
        })
    }

    /// Every queue's name: the native ones Redis knows, and the declared
    /// BullMQ-backed ones, sorted.
    pub async fn names(connection: &Connection, bull: &BullQueues) -> Result<Vec<String>> {
        let mut names = Queue::names(connection).await?;
        names.extend(bull.keys().cloned());
        names.sort();
        names.dedup();
        Ok(names)
    }

    pub fn name(&self) -> &str {
        match self {
            AnyQueue::Native(q) => q.name(),
            AnyQueue::Bull(b) => b.name(),
        }
    }

    /// `native` or `bullmq`.
    pub fn backend(&self) -> &'static str {
        match self {
            AnyQueue::Native(_) => "native",
            AnyQueue::Bull(_) => "bullmq",
        }
    }

    pub fn native(&self) -> Option<&Queue> {
        match self {
            AnyQueue::Native(q) => Some(q),
            AnyQueue::Bull(_) => None,
        }
    }

    /// The queue's policy in effect, each value with its source: a native
    /// queue's as the runners last wrote it to Redis, a BullMQ-backed
    /// one's as this process's config declares it.
    pub async fn policy(&self) -> Result<EffectivePolicy> {
        match self {
            AnyQueue::Native(q) => Ok(q.policy().await?.effective()),
            AnyQueue::Bull(b) => Ok(b.policy().effective()),
        }
    }

    pub async fn counts(&self) -> Result<Counts> {
        match self {
            AnyQueue::Native(q) => q.counts().await,
            AnyQueue::Bull(b) => b.counts().await,
        }
    }

    /// Jobs completed in the last minute (for a BullMQ-backed queue, in the
    /// newest minute of BullMQ's metrics).
    pub async fn completed_last_minute(&self) -> Result<u64> {
        match self {
            AnyQueue::Native(q) => q.completed_in(Duration::from_secs(60)).await,
            AnyQueue::Bull(b) => b.completed_recently().await,
        }
    }

    /// Jobs finished for good, in total and per minute and hour. A native
    /// queue's is one small hash; a BullMQ-backed one reads the newest
    /// `minutes` of its per-minute metrics (`stats::HOURS * 60` for the
    /// whole week; its hours before those read as zero).
    pub async fn history(&self, minutes: u64) -> Result<History> {
        match self {
            AnyQueue::Native(q) => q.history().await,
            AnyQueue::Bull(b) => b.history(minutes).await,
        }
    }

    /// Jobs finished for good so far (the live chart's rate is its change
    /// from one second to the next).
    pub async fn finished_total(&self) -> Result<Finished> {
        match self {
            AnyQueue::Native(q) => q.finished_total().await,
            AnyQueue::Bull(b) => b.finished_total().await,
        }
    }

    /// How far behind the queue is: the age of the waiting job next in
    /// line, since it was enqueued or became due (zero when none waits).
    pub async fn latency(&self, counts: &Counts) -> Result<Duration> {
        if counts.waiting == 0 {
            return Ok(Duration::ZERO);
        }
        let head = self.list(State::Waiting, 0, 1).await?;
        let now = jobrunner_queue::stats::now_ms();
        Ok(head
            .first()
            .map_or(Duration::ZERO, |j| Duration::from_millis(now.saturating_sub(j.created_at + j.options.delay_ms))))
    }

    pub async fn list(&self, state: State, offset: u64, limit: u64) -> Result<Vec<JobRecord>> {
        match self {
            AnyQueue::Native(q) => q.list(state, offset, limit).await,
            AnyQueue::Bull(b) => b.list(state, offset, limit).await,
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        match self {
            AnyQueue::Native(q) => q.get(id).await,
            AnyQueue::Bull(b) => b.get(id).await,
        }
    }

    pub async fn enqueue_bulk(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        match self {
            AnyQueue::Native(q) => q.enqueue_bulk(jobs).await,
            AnyQueue::Bull(b) => b.enqueue(jobs).await,
        }
    }

    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        match self {
            AnyQueue::Native(q) => q.enqueue(job).await,
            AnyQueue::Bull(b) => Ok(b.enqueue(vec![job]).await?.remove(0)),
        }
    }

    /// Answers `retried`, `missing`, or the state the job is in.
    pub async fn retry(&self, id: &str) -> Result<String> {
        match self {
            AnyQueue::Native(q) => q.retry(id).await,
            AnyQueue::Bull(b) => b.retry(id).await,
        }
    }

    /// Answers `promoted`, `missing`, or the state the job is in.
    pub async fn promote(&self, id: &str) -> Result<String> {
        match self {
            AnyQueue::Native(q) => q.promote(id).await,
            AnyQueue::Bull(b) => b.promote(id).await,
        }
    }

    /// Answers the state the job was removed from, or `missing` (or, for a
    /// BullMQ job a worker holds, `locked`).
    pub async fn remove(&self, id: &str) -> Result<String> {
        match self {
            AnyQueue::Native(q) => q.remove(id).await,
            AnyQueue::Bull(b) => b.remove(id).await,
        }
    }

    pub async fn retry_all_failed(&self) -> Result<u64> {
        match self {
            AnyQueue::Native(q) => q.retry_all_failed().await,
            AnyQueue::Bull(b) => b.retry_all_failed().await,
        }
    }

    pub async fn clean(&self, state: State, age: Duration, limit: u64) -> Result<u64> {
        match self {
            AnyQueue::Native(q) => q.clean(state, age, limit).await,
            AnyQueue::Bull(b) => b.clean(state, age, limit).await,
        }
    }

    pub async fn pause(&self) -> Result<()> {
        match self {
            AnyQueue::Native(q) => q.pause().await,
            AnyQueue::Bull(b) => b.pause().await,
        }
    }

    pub async fn resume(&self) -> Result<()> {
        match self {
            AnyQueue::Native(q) => q.resume().await,
            AnyQueue::Bull(b) => b.resume().await,
        }
    }
}
