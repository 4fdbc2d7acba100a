//! One queue's completions, recorded in batches.
//!
//! Duties:
//! 1. take each finished job's completion from its task without making the
//!    task wait: the task ends as soon as it has handed the completion over;
//! 2. send whatever has gathered while its earlier calls were in flight (up
//!    to `MAX_CALLS` at once) as one `complete` script call: one round trip
//!    and one retention trim for the lot, rather than one of each per job,
//!    which was most of Redis's work per job at high rates. At light load a
//!    batch is a single job, sent at once: batching adds no waiting;
//! 3. log what Redis refused (the lease had expired, so another runner owns
//!    the job now) and what could not be sent (Redis away: the lease
//!    expires and the job runs again, at least once);
//! 4. on `close`, send everything handed to it before it returns, so that a
//!    shutdown does not leave finished jobs to run again.
//!
//! Why the job's task does not wait for the verdict: all it did with it was
//! log it, and waiting cost every job a oneshot channel and one more wake-up
//! and poll of its task after the round trip (the task, its store's future
//! inside, stayed alive for it).

use crate::queue::{Completion, Keep, Queue};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

/// The most completions in one script call (a long script blocks Redis).
const MAX_BATCH: usize = 256;
/// Calls in flight at once: while one waits for its reply, the next batch
/// gathers and goes. Two, not more: every call pays a fixed price in
/// Redis (its retention trim alone is over a dozen commands), and with four
/// in flight the batches at 20k jobs/s were a dozen jobs each, so that price
/// was paid per dozen jobs instead of per few dozen.
const MAX_CALLS: usize = 2;

struct Ack {
    done: Completion,
    keep: Keep,
}

pub struct Acker {
    tx: mpsc::UnboundedSender<Ack>,
    task: tokio::task::JoinHandle<()>,
}

impl Acker {
    /// Starts the acker's task; it ends when the `Acker` is closed.
    pub fn start(queue: Queue) -> Acker {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(queue, rx));
        Acker { tx, task }
    }

    /// Hands a completion over to be recorded; the acker logs the outcome.
    pub fn complete(&self, done: Completion, keep: Keep) {
        if let Err(e) = self.tx.send(Ack { done, keep }) {
            // Only after `close`, which takes the acker: cannot happen while
            // a job holds it, but say so rather than drop it silently.
            tracing::warn!(id = %e.0.done.id, "the acker has stopped; the job's lease will expire and it will run again");
        }
    }

    /// Records every completion handed over so far, then stops.
    pub async fn close(self) {
        drop(self.tx);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the acker's task failed; unrecorded jobs will run again when their leases expire");
        }
    }
}

async fn run(queue: Queue, mut rx: mpsc::UnboundedReceiver<Ack>) {
    let calls = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CALLS));
    let sending = TaskTracker::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // A call slot first, then whatever has gathered meanwhile.
        let slot = calls.clone().acquire_owned().await.expect("never closed");
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        let group = std::mem::take(&mut batch);
        let queue = queue.clone();
        sending.spawn(async move {
            send(&queue, group).await;
            drop(slot);
        });
    }
    // Closed: the calls still in flight finish before the acker is done.
    sending.close();
    sending.wait().await;
}

async fn send(queue: &Queue, mut batch: Vec<Ack>) {
    // Jobs of one batch may keep different retention settings: one call per
    // run of equal settings (almost always the whole batch).
    while !batch.is_empty() {
        let keep = batch[0].keep;
        let n = batch.iter().take_while(|a| a.keep == keep).count();
        let done: Vec<Completion> = batch.drain(..n).map(|a| a.done).collect();
        match queue.complete(&done, keep).await {
            Ok(verdicts) => {
                for (c, _) in done.iter().zip(verdicts).filter(|(_, kept)| !kept) {
                    tracing::warn!(
                        queue = queue.name(),
                        id = %c.id,
                        "completed, but the lease had expired: another runner owns the job now"
                    );
                }
            }
            Err(e) => tracing::warn!(
                queue = queue.name(),
                jobs = done.len(),
                first = %done[0].id,
                error = %format!("{e:#}"),
                "could not record completions; their leases will expire and the jobs run again"
            ),
        }
    }
}
