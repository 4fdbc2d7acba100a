//! Moves a queue's jobs that failed for good to its dead-letter queue
//! (`[queues.NAME] dead_letter`; the queue crate's `dead_letter.rs` says
//! how a move stays safe across crashes): at once when a `failed` event
//! says one may be due, and in a sweep every few seconds for any left by a
//! runner that died midway. Follows the policy as it is after a reload.

use super::Shared;
use jobrunner_queue::{EventReader, Queue};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest a job bound for the dead-letter queue waits for its move
/// when no event says so (a stall found by another runner's fetch, a move
/// cut short by a crash).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

pub async fn run(shared: Arc<Shared>, queue: Queue, stop: CancellationToken) {
    let mut reader: Option<EventReader> = None;
    loop {
        let Some(to) = shared.policy(queue.name()).dead_letter.clone() else {
            reader = None;
            tokio::select! {
                _ = tokio::time::sleep(SWEEP_EVERY) => continue,
                _ = stop.cancelled() => return,
            }
        };
        // The reader starts before the sweep, so a failure between the two
        // is seen by the one or the other.
        if reader.is_none() {
            reader = queue.events_after(None).await.ok();
        }
        sweep(&queue, &to).await;
        let woken = match &mut reader {
            Some(r) => tokio::select! {
                events = r.next(SWEEP_EVERY) => events,
                _ = stop.cancelled() => return,
            },
            None => tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => Ok(vec![]),
                _ = stop.cancelled() => return,
            },
        };
        if let Err(e) = woken {
            tracing::warn!(queue = queue.name(), error = %format!("{e:#}"), "cannot follow the queue's events for dead letters; sweeping instead");
            reader = None;
        }
    }
}

/// Moves every job waiting to move, a batch at a time.
async fn sweep(queue: &Queue, to: &str) {
    let target = match Queue::new(queue.connection().clone(), to) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(queue = queue.name(), dead_letter = to, error = %format!("{e:#}"), "bad dead-letter queue");
            return;
        }
    };
    loop {
        match queue.move_dead_letters(&target).await {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(queue = queue.name(), dead_letter = to, error = %format!("{e:#}"), "cannot move dead letters yet; trying again");
                return;
            }
        }
    }
}
