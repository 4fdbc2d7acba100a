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
//! If the subscription drops (Redis restarted), the consumer re-polls and
//! resubscribes with backoff; `max_wait` bounds how long a lost wake-up can
//! delay a job.

use crate::queue::{Leased, Queue};
use anyhow::Result;
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Resubscribe backoff after the connection drops.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(50);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);
/// The shortest sleep before re-fetching a job that is due "now": the
/// server's clock has millisecond resolution.
const MIN_SLEEP: Duration = Duration::from_millis(1);

pub struct Consumer {
    queue: Queue,
    wake: Arc<Notify>,
    subscriber: tokio::task::JoinHandle<()>,
    stalls: std::sync::atomic::AtomicU64,
}

impl Consumer {
    /// Subscribes to the queue's wake-ups (in the background).
    pub fn new(queue: Queue) -> Consumer {
        let wake = Arc::new(Notify::new());
        let subscriber = tokio::spawn(subscribe(
            queue.connection().pubsub_client().clone(),
            queue.wake_channel().to_string(),
            wake.clone(),
        ));
        Consumer { queue, wake, subscriber, stalls: Default::default() }
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// The stalled jobs this consumer's fetches found since the last call.
    pub fn take_stalls(&self) -> u64 {
        self.stalls.swap(0, std::sync::atomic::Ordering::Relaxed)
    }

    /// Wakes every waiting `next` call at once (for example, on shutdown or
    /// when a worker slot frees up).
    pub fn nudge(&self) {
        self.wake.notify_waiters();
    }

    /// Takes up to `count` jobs under `lease`, waiting up to `max_wait` for
    /// them. Returns an empty batch when none came in time.
    pub async fn next(&self, count: usize, lease: Duration, max_wait: Duration) -> Result<Vec<Leased>> {
        let deadline = Instant::now() + max_wait;
        loop {
            // Registered before the fetch, so a wake-up that arrives while
            // the fetch is in flight is not missed.
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let fetched = self.queue.fetch(count, lease).await?;
            self.stalls.fetch_add(fetched.stalled, std::sync::atomic::Ordering::Relaxed);
            if !fetched.jobs.is_empty() {
                return Ok(fetched.jobs);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(vec![]);
            }
            let remaining = deadline - now;
            if let Some(limited) = fetched.rate_limited {
                // Wake-ups cannot help until the window resets.
                tokio::time::sleep(limited.min(remaining).max(MIN_SLEEP)).await;
                continue;
            }
            let sleep = fetched.next_due.map_or(remaining, |d| d.min(remaining)).max(MIN_SLEEP);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

async fn subscribe(client: redis::Client, channel: String, wake: Arc<Notify>) {
    let mut backoff = RESUBSCRIBE_MIN;
    loop {
        if let Ok(mut pubsub) = client.get_async_pubsub().await
            && pubsub.subscribe(&channel).await.is_ok()
        {
            backoff = RESUBSCRIBE_MIN;
            // Anything published while we were away is unknown: look again.
            wake.notify_waiters();
            let mut messages = pubsub.on_message();
            while messages.next().await.is_some() {
                wake.notify_waiters();
            }
        }
        wake.notify_waiters();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
    }
}
