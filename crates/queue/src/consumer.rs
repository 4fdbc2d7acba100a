//! Waiting for work without polling, and waking on time.
//!
//! A `Consumer` holds one pub/sub subscription to its queue's wake channel:
//! every enqueue, retry or resume publishes there, and the consumer fetches
//! within a round trip. When nothing is waiting, a fetch also says when the
//! next delayed job is due (or the next lease expires), and the consumer
//! sleeps until exactly then on its own timer. That is why delayed jobs
//! start on time whatever Redis's `hz`: a blocking Redis command's timeout
//! is only checked on Redis's clock ticks (100 ms apart at the default
//! `hz 10`), which is where other queues lose their precision.
//!
//! Hand-off: the same subscription listens on a channel of this consumer's
//! own. A fetch that comes back short of what it asked for (the queue is
//! drained) registers the consumer as idle, with the room it has left, and
//! an enqueue of one job then leases the job to it and publishes it there
//! (`enqueue.lua`): the job starts without a fetch's round trip, which was
//! half of the time from enqueue to start at light load. The consumer ends
//! its registration with `retire` before it goes, and takes what was
//! handed to it until then.
//!
//! A short fetch also means that another can only come back empty until
//! something is published after it (or its next due time comes), so the
//! next call waits for that first instead of spending a round trip on it.
//!
//! If the subscription drops (Redis restarted), the consumer re-polls and
//! resubscribes with backoff; `max_wait` bounds how long a lost wake-up can
//! delay a job. A job handed off is published only to a consumer that is
//! subscribed at that moment (`PUBLISH` says so); one lost with the
//! connection after that is recovered as any job whose worker died: its
//! lease expires and it is retried.

use crate::work::{END_OF_PUSHES, IdleConsumer};
use crate::{Leased, Queue};
use anyhow::Result;
use futures::StreamExt;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Resubscribe backoff after the connection drops.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(50);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);
/// The shortest sleep before re-fetching a job that is due "now": the
/// server's clock has millisecond resolution.
const MIN_SLEEP: Duration = Duration::from_millis(1);
/// How long past its caller's `max_wait` an idle registration holds: the
/// consumer fetches again within `max_wait`, renewing it, while it runs.
const IDLE_GRACE: Duration = Duration::from_secs(1);
/// The longest `retire` waits for its end marker to come back.
const RETIRE_WAIT: Duration = Duration::from_secs(2);

pub struct Consumer {
    queue: Queue,
    /// Its registration as an idle consumer; `None` on a Redis Cluster,
    /// where `PUBLISH` counts only the receivers on the node that runs the
    /// script, so it could not tell whether the consumer got a job.
    idle: Option<IdleConsumer>,
    inbox: Arc<Inbox>,
    subscriber: tokio::task::JoinHandle<()>,
    stalls: AtomicU64,
    /// Set by a fetch that drained the queue: what it saw, and so when the
    /// next fetch can find something.
    drained: Mutex<Option<Drained>>,
}

/// What the subscription brings: a count of wake-ups (so that a fetch can
/// tell whether any came after it was sent), the jobs handed to this
/// consumer, and the waiters to tell of either.
#[derive(Default)]
struct Inbox {
    wakes: AtomicU64,
    jobs: Mutex<VecDeque<Leased>>,
    /// `retire`'s end marker has come back.
    ended: AtomicBool,
    notify: Notify,
}

impl Inbox {
    fn wake(&self) {
        self.wakes.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    fn take(&self) -> Vec<Leased> {
        self.jobs.lock().unwrap().drain(..).collect()
    }
}

/// A fetch that came back short: the wake-ups counted before it was sent,
/// and when its next delayed job is due or its next lease expires.
struct Drained {
    wakes: u64,
    next_due: Option<Instant>,
}

impl Consumer {
    /// Subscribes to the queue's wake-ups and to its own channel (in the
    /// background).
    pub fn new(queue: Queue) -> Consumer {
        let inbox = Arc::new(Inbox::default());
        let idle = (!queue.connection().is_cluster()).then(|| {
            let id = format!("{:016x}", rand::random::<u64>());
            IdleConsumer { channel: format!("{}:{id}", queue.wake_channel()), id, registered: Default::default() }
        });
        let subscriber = tokio::spawn(subscribe(
            queue.connection().pubsub_client().clone(),
            queue.wake_channel().to_string(),
            idle.as_ref().map(|i| i.channel.clone()),
            inbox.clone(),
        ));
        Consumer { queue, idle, inbox, subscriber, stalls: Default::default(), drained: Mutex::new(None) }
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// The stalled jobs this consumer's fetches found since the last call.
    pub fn take_stalls(&self) -> u64 {
        self.stalls.swap(0, Ordering::Relaxed)
    }

    /// Wakes every waiting `next` call at once (for example, on shutdown or
    /// when a worker slot frees up).
    pub fn nudge(&self) {
        self.inbox.wake();
    }

    /// Takes up to `count` jobs under `lease`, waiting up to `max_wait` for
    /// them. Returns an empty batch when none came in time. Jobs handed to
    /// this consumer come first, however many (they are leased to it
    /// already).
    pub async fn next(&self, count: usize, lease: Duration, max_wait: Duration) -> Result<Vec<Leased>> {
        let deadline = Instant::now() + max_wait;
        let idle = self.idle.as_ref().map(|i| (i, max_wait + IDLE_GRACE));
        loop {
            // Registered before the fetch, so a wake-up that arrives while
            // the fetch is in flight is not missed.
            let notified = self.inbox.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wakes = self.inbox.wakes.load(Ordering::Acquire);
            let handed = self.inbox.take();
            if !handed.is_empty() {
                return Ok(handed);
            }

            // The last fetch drained the queue and nothing was published
            // since (a publish after it would have counted): wait for one,
            // for a job handed off, or for its next due time, then fetch.
            // A wake-up after the count was read also ends the wait,
            // through `notified`.
            let drained = self.drained.lock().unwrap().take();
            if let Some(d) = drained.filter(|d| d.wakes == wakes) {
                let until = d.next_due.map_or(deadline, |due| due.min(deadline));
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(until.into()) => {}
                }
                // Still drained if it was only a job handed off that ended
                // the wait: the next turn takes it, and waits again after.
                if Instant::now() < until && self.inbox.wakes.load(Ordering::Acquire) == wakes {
                    *self.drained.lock().unwrap() = Some(d);
                }
                continue;
            }

            let sent = Instant::now();
            let fetched = self.queue.fetch_as(count, lease, idle).await?;
            self.stalls.fetch_add(fetched.stalled, Ordering::Relaxed);
            if !fetched.jobs.is_empty() || !self.inbox.jobs.lock().unwrap().is_empty() {
                // Short of what was asked, and not held back by the rate
                // limit: nothing more is waiting.
                if fetched.jobs.len() < count && fetched.rate_limited.is_none() {
                    let next_due = fetched.next_due.map(|d| sent + d.max(MIN_SLEEP));
                    *self.drained.lock().unwrap() = Some(Drained { wakes, next_due });
                }
                let mut jobs = fetched.jobs;
                jobs.extend(self.inbox.take());
                return Ok(jobs);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(vec![]);
            }
            if let Some(limited) = fetched.rate_limited {
                // Wake-ups cannot help until the window resets.
                tokio::time::sleep(limited.min(deadline - now).max(MIN_SLEEP)).await;
                continue;
            }
            // Nothing waiting: drained too, so the next turn waits for a
            // wake-up, a job handed off or the next due time. The state
            // outlives this call: after a job handed off is returned, the
            // next call goes on waiting without a fetch.
            let next_due = fetched.next_due.map(|d| sent + d.max(MIN_SLEEP));
            *self.drained.lock().unwrap() = Some(Drained { wakes, next_due });
        }
    }

    /// Ends this consumer's registration as idle and returns the jobs that
    /// were handed to it and not yet taken: they are leased to it, so the
    /// caller runs them or puts them back. Call it before dropping a
    /// consumer that may have been registered (any that called `next`).
    pub async fn retire(&self) -> Result<Vec<Leased>> {
        let Some(idle) = &self.idle else { return Ok(vec![]) };
        self.inbox.ended.store(false, Ordering::Release);
        self.queue.end_idle(idle).await?;
        // The marker comes after any job published before the registration
        // went; with the subscription down, nothing could have been
        // published to it since it dropped.
        let ended = async {
            loop {
                let notified = self.inbox.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.inbox.ended.load(Ordering::Acquire) {
                    break;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(RETIRE_WAIT, ended).await.is_err() {
            tracing::warn!(
                queue = self.queue.name(),
                "no end marker on the consumer's channel in time; a job handed to it just now would be retried when its lease expires"
            );
        }
        Ok(self.inbox.take())
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

async fn subscribe(client: redis::Client, channel: String, own: Option<String>, inbox: Arc<Inbox>) {
    let mut backoff = RESUBSCRIBE_MIN;
    loop {
        if let Ok(mut pubsub) = client.get_async_pubsub().await
            && pubsub.subscribe(&channel).await.is_ok()
            && match &own {
                Some(own) => pubsub.subscribe(own).await.is_ok(),
                None => true,
            }
        {
            backoff = RESUBSCRIBE_MIN;
            // Anything published while we were away is unknown: look again.
            inbox.wake();
            let mut messages = pubsub.on_message();
            while let Some(m) = messages.next().await {
                if own.as_deref() != Some(m.get_channel_name()) {
                    inbox.wake();
                    continue;
                }
                let payload = m.get_payload_bytes();
                if payload == END_OF_PUSHES.as_bytes() {
                    inbox.ended.store(true, Ordering::Release);
                } else {
                    match Queue::pushed(payload) {
                        Ok(job) => inbox.jobs.lock().unwrap().push_back(job),
                        // Leased to this consumer but unreadable: its lease
                        // expires and it is retried, like a lost worker's.
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "a job handed to this runner is unreadable")
                        }
                    }
                }
                inbox.notify.notify_waiters();
            }
        }
        inbox.wake();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
    }
}
