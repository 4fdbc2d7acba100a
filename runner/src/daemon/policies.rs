//! The queues' policies (`[queues.NAME]`): written to each native queue's
//! `meta` in Redis at start and on reload, where the scripts apply them to
//! every producer's jobs (priority, group, attempts, backoff, failed-job
//! retention, rate limits), and kept here for what the runner applies
//! itself (a job's timeout, completed-job retention; `Shared::policy`).
//!
//! Every runner of a queue writes the same policy from the same config; a
//! runner started with a different one overwrites it (logged).
//! A BullMQ-backed queue's policy is its worker's options, set when the
//! worker starts: a change to it takes a restart (said in the log).

use super::Shared;
use crate::config::Config;
use anyhow::{Context, Result};
use jobrunner_queue::{Queue, QueuePolicy};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Writes the policies and `max_waiting` bounds of `config`'s consumed
/// queues and of their dead-letter queues (which keep every letter), and
/// keeps the consumed queues' policies in `shared` for the dispatchers.
pub async fn apply(shared: &Shared, config: &Config) -> Result<()> {
    let mut policies = BTreeMap::new();
    let mut queues = config.consumed_queues();
    for target in config.dead_letter_queues() {
        queues.entry(target.to_string()).or_default();
    }
    for (name, section) in queues {
        let policy = config.queue_policy(&name);
        if let Some(running) = shared.bull.get(&name) {
            if running.policy() != &policy {
                tracing::warn!(queue = %name, "the policy of a BullMQ-backed queue is its worker's options: the change takes effect at the next restart");
            }
            continue;
        }
        let queue = Queue::new(shared.connection.clone(), &name)?;
        let before = queue.policy().await.unwrap_or_default();
        queue.set_policy(&policy).await.with_context(|| format!("queues.{name}"))?;
        // The bound lives in Redis, so producers meet it too.
        queue
            .set_max_waiting(section.max_waiting.unwrap_or(0))
            .await
            .with_context(|| format!("queues.{name}.max_waiting"))?;
        if before != policy {
            tracing::info!(queue = %name, policy = %serde_json::to_string(&policy).unwrap_or_default(), "queue policy set");
        }
        policies.insert(name, Arc::new(policy));
    }
    *shared.policies.write().unwrap() = policies;
    Ok(())
}

impl Shared {
    /// The policy of a queue this runner consumes, as its config says.
    pub fn policy(&self, queue: &str) -> Arc<QueuePolicy> {
        self.policies.read().unwrap().get(queue).cloned().unwrap_or_default()
    }
}
