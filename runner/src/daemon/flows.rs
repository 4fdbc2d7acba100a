//! Keeps a queue's flows moving (the queue crate's `flow.rs` says how a
//! flow stays whole across crashes): relays the outcomes of the queue's
//! finished children to their parents as the queue's flow channel
//! announces them, and sweeps every few seconds for outcomes whose message
//! was missed and for plans of children that a producer left unfinished.
//! Outcomes and plans are kept in Redis, so whatever a stopped runner
//! leaves is picked up by the next sweep of any runner of the queue.
//! Also the plugins' reader of a parent's children (`flow.children`,
//! contract 0.2): `Children`.

use futures::StreamExt;
use futures::future::BoxFuture;
use jobrunner_bullmq::BullQueues;
use jobrunner_job::flow::ChildrenPage;
use jobrunner_queue::flow::SPAWN_GRACE;
use jobrunner_queue::{Connection, Queue};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest an outcome waits for its relay when no message says so (a
/// message lost while the subscription reconnected, a runner that died
/// between finishing a child and relaying it).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

pub async fn run(queue: Queue, stop: CancellationToken) {
    loop {
        // Subscribed before the sweep, so an outcome written between the
        // two is seen by the one or the other.
        let signals = match queue.flow_signals().await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(queue = queue.name(), error = %format!("{e:#}"), "cannot follow the queue's flow outcomes; sweeping instead");
                None
            }
        };
        sweep(&queue).await;
        let Some(mut signals) = signals else {
            tokio::select! {
                _ = tokio::time::sleep(SWEEP_EVERY) => continue,
                _ = stop.cancelled() => return,
            }
        };
        loop {
            tokio::select! {
                signal = signals.next() => match signal {
                    // Messages that came meanwhile are covered by this relay.
                    Some(()) => relay(&queue).await,
                    None => break,
                },
                _ = tokio::time::sleep(SWEEP_EVERY) => sweep(&queue).await,
                _ = stop.cancelled() => return,
            }
        }
    }
}

async fn relay(queue: &Queue) {
    if let Err(e) = queue.relay_outcomes().await {
        tracing::warn!(queue = queue.name(), error = %format!("{e:#}"), "cannot relay flow outcomes yet; trying again at the next sweep");
    }
}

async fn sweep(queue: &Queue) {
    match queue.flow_work_pending().await {
        Ok(false) => return,
        Ok(true) => {}
        Err(e) => {
            tracing::warn!(queue = queue.name(), error = %format!("{e:#}"), "cannot read the queue's flow work");
            return;
        }
    }
    relay(queue).await;
    match queue.resume_spawns(SPAWN_GRACE).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            queue = queue.name(),
            parents = n,
            "finished creating the children of flows a producer left midway"
        ),
        Err(e) => {
            tracing::warn!(queue = queue.name(), error = %format!("{e:#}"), "cannot create a flow's children yet; trying again at the next sweep")
        }
    }
}

/// Reads a parent's children for its plugin, from the native queue it is
/// in. A BullMQ-backed queue's parent is BullMQ's: its handler's outputs
/// are BullMQ's return values, read with BullMQ's `getChildrenValues`.
pub struct Children {
    pub connection: Connection,
    pub bull: Arc<BullQueues>,
}

impl jobrunner_host::flows::FlowReader for Children {
    fn children<'a>(
        &'a self,
        queue: &'a str,
        id: &'a str,
        from: u64,
        count: u64,
    ) -> BoxFuture<'a, anyhow::Result<Option<ChildrenPage>>> {
        Box::pin(async move {
            if self.bull.contains_key(queue) {
                anyhow::bail!(
                    "queue {queue} is BullMQ-backed: its flows are BullMQ's, and the runner reads no children there yet"
                );
            }
            Queue::new(self.connection.clone(), queue)?.children(id, from, count).await
        })
    }
}
