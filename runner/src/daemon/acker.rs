//! One queue's completions, recorded in batches.
//!
//! Each job's dispatcher task hands its completion to the acker and waits
//! for the verdict (was the lease still ours?). The acker sends whatever has
//! gathered while its earlier calls were in flight (up to `MAX_CALLS` at
//! once) as one `complete` script call: one round trip and one retention trim for the lot, rather than one
//! of each per job, which was most of Redis's work per job at high rates.
//! At light load a batch is a single job, sent at once: batching adds no
//! waiting.

use crate::queue::{Completion, Keep, Queue};
use tokio::sync::{mpsc, oneshot};

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
    reply: oneshot::Sender<Result<bool, String>>,
}

#[derive(Clone)]
pub struct Acker {
    tx: mpsc::UnboundedSender<Ack>,
}

impl Acker {
    /// Starts the acker's task; it ends when the last `Acker` is dropped.
    pub fn start(queue: Queue) -> Acker {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(queue, rx));
        Acker { tx }
    }

    /// Records a completion. `Ok(false)`: the lease had expired, and the
    /// completion was refused.
    pub async fn complete(&self, done: Completion, keep: Keep) -> anyhow::Result<bool> {
        let (reply, verdict) = oneshot::channel();
        self.tx.send(Ack { done, keep, reply }).map_err(|_| anyhow::anyhow!("the acker has stopped"))?;
        verdict.await.map_err(|_| anyhow::anyhow!("the acker has stopped"))?.map_err(anyhow::Error::msg)
    }
}

async fn run(queue: Queue, mut rx: mpsc::UnboundedReceiver<Ack>) {
    let calls = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CALLS));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // A call slot first, then whatever has gathered meanwhile.
        let slot = calls.clone().acquire_owned().await.expect("never closed");
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let group = std::mem::take(&mut batch);
        let queue = queue.clone();
        tokio::spawn(async move {
            send(&queue, group).await;
            drop(slot);
        });
    }
}

async fn send(queue: &Queue, mut batch: Vec<Ack>) {
    // Jobs of one batch may keep different retention settings: one call per
    // run of equal settings (almost always the whole batch).
    while !batch.is_empty() {
        let keep = batch[0].keep;
        let n = batch.iter().take_while(|a| a.keep == keep).count();
        let (done, replies): (Vec<Completion>, Vec<_>) = batch.drain(..n).map(|a| (a.done, a.reply)).unzip();
        match queue.complete(&done, keep).await {
            Ok(verdicts) => {
                for (reply, ok) in replies.into_iter().zip(verdicts) {
                    let _ = reply.send(Ok(ok));
                }
            }
            Err(e) => {
                let message = format!("{e:#}");
                for reply in replies {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}
