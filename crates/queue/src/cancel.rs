//! Cancelling a running job. The request goes out on the queue's cancel
//! channel (`jr:{Q}:cancel`), which every runner of the queue listens to;
//! the one running the job stops its plugin and records it failed for
//! good, with the reason "cancelled" (no retry). Pub/sub reaches every
//! node of a cluster, so the runner holding the job hears it wherever it
//! is connected.
//!
//! Only a running job is cancelled: a waiting or delayed one is removed
//! instead (`Queue::remove`), a finished one has nothing left to stop.

use crate::queue::Queue;
use crate::record::State;
use anyhow::{Context, Result, anyhow};
use futures::{Stream, StreamExt};

/// What a cancel request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelAnswer {
    /// The job is running: the request went out, heard by this many
    /// runners of the queue (the one holding the job among them, unless it
    /// finished meanwhile).
    Requested { listeners: u64 },
    /// The job is not running: it is in this state.
    NotRunning(State),
    /// No such job.
    Missing,
}

/// The reason recorded for a cancelled job.
pub const CANCELLED: &str = "cancelled";

impl Queue {
    /// Asks the runner running job `id` to stop it (see the module's comment).
    pub async fn cancel(&self, id: &str) -> Result<CancelAnswer> {
        jobrunner_job::check_job_id(id).map_err(|e| anyhow!(e))?;
        let Some(record) = self.get(id).await? else { return Ok(CancelAnswer::Missing) };
        if record.state != State::Active {
            return Ok(CancelAnswer::NotRunning(record.state));
        }
        let listeners: u64 = self
            .inner
            .conn
            .query(redis::cmd("PUBLISH").arg(&self.inner.keys.cancel_channel).arg(id))
            .await
            .context("publish the cancel request")?;
        Ok(CancelAnswer::Requested { listeners })
    }

    /// The ids of this queue's jobs whose cancellation is asked for, as the
    /// requests come (for runners; on a connection of its own). The stream
    /// ends if the connection drops: subscribe again.
    pub async fn cancel_requests(&self) -> Result<impl Stream<Item = String> + use<>> {
        let client = self.inner.conn.pubsub_client();
        let mut pubsub = client.get_async_pubsub().await.context("subscribe to cancel requests")?;
        pubsub.subscribe(&self.inner.keys.cancel_channel).await.context("subscribe to cancel requests")?;
        Ok(pubsub.into_on_message().filter_map(|m| futures::future::ready(m.get_payload::<String>().ok())))
    }
}
