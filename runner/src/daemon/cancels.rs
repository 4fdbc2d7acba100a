//! Cancel requests for one queue's running jobs on this runner.
//!
//! 1. Each job registers a token while it runs (`register`; the guard lets
//!    go when the job ends).
//! 2. A listener on the queue's cancel channel (`Queue::cancel_requests`)
//!    fires the token of the job a request names, if it runs here: every
//!    runner of the queue hears every request, and the others have no such
//!    job.
//! 3. The job's task then stops the plugin and records the job failed, with
//!    the reason "cancelled" and no retry (`dispatcher::run_job`).
//!
//! A job fetched ahead but not started when the request comes is not
//! running, and is not cancelled: the request is for a running job.

use futures::StreamExt;
use jobrunner_queue::Queue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub(crate) struct Cancels {
    running: Mutex<HashMap<String, CancellationToken>>,
}

/// A running job's registration; its token fires on a cancel request.
pub(crate) struct Registered<'a> {
    cancels: &'a Cancels,
    id: String,
    pub token: CancellationToken,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.cancels.running.lock().unwrap().remove(&self.id);
    }
}

impl Cancels {
    pub(crate) fn register(&self, id: &str) -> Registered<'_> {
        let token = CancellationToken::new();
        self.running.lock().unwrap().insert(id.to_string(), token.clone());
        Registered { cancels: self, id: id.to_string(), token }
    }

    /// Fires job `id`'s token; false if it does not run here.
    fn fire(&self, id: &str) -> bool {
        self.running.lock().unwrap().get(id).map(CancellationToken::cancel).is_some()
    }
}

/// Listens for the queue's cancel requests until aborted, subscribing again
/// (after a second) whenever the subscription is lost. The first
/// subscription is made before this returns, so that the dispatcher runs
/// no job here before requests for it can be heard.
pub(crate) async fn listen(queue: Queue, cancels: Arc<Cancels>) -> JoinHandle<()> {
    let subscribe = |queue: Queue| async move {
        let requests = queue.cancel_requests().await;
        if let Err(e) = &requests {
            tracing::warn!(queue = queue.name(), error = %format!("{e:#}"), "cannot listen for cancel requests; trying again");
        }
        requests.ok()
    };
    let mut requests = subscribe(queue.clone()).await;
    tokio::spawn(async move {
        loop {
            if let Some(stream) = requests.take() {
                let mut stream = std::pin::pin!(stream);
                while let Some(id) = stream.next().await {
                    if cancels.fire(&id) {
                        tracing::info!(queue = queue.name(), job = %id, "cancel requested: stopping the job");
                    }
                }
                tracing::warn!(queue = queue.name(), "the cancel requests' subscription ended; subscribing again");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            requests = subscribe(queue.clone()).await;
        }
    })
}
