//! Live progress: a plugin's `log.progress` written to its job while it
//! runs, so that `runner job`, the API, the dashboard and the queue's
//! events stream see it move.
//!
//! 1. Nothing is spent on a job that reports no progress: the writer task
//!    starts at its first report.
//! 2. Nothing is written live in a job's first 250 ms: most jobs end
//!    sooner, and their progress rides on the outcome (item 3). Writing
//!    each short job's first report cost a Redis script a job: a tenth of
//!    the TypeScript template's Redis time, for a value nobody could have
//!    watched (docs/performance.md).
//! 3. Then at most one write every 250 ms; the latest value wins, and
//!    values in between are dropped (a progress bar wants the newest).
//! 4. The value at the end still rides on the job's outcome: `finish`
//!    stops the writer and waits for a write in flight, so no live write
//!    lands after the outcome is recorded.
//!
//! Native jobs are written with `Queue::progress` (refused for a lease that
//! has ended); BullMQ-backed ones with BullMQ's own `updateProgress`.

use futures::FutureExt;
use futures::future::BoxFuture;
use jobrunner_host::OnProgress;
use jobrunner_queue::{Leased, Queue};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The least time between two writes of one job's progress, and from a
/// job's start to its first: four a second follow a progress bar closely,
/// and a plugin reporting in a tight loop costs Redis four small scripts a
/// second, not thousands.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(250);

/// No value waiting to be written (progress is 0 to 100).
const NONE: u8 = u8::MAX;

/// One running job's progress, between its plugin and Redis.
pub(crate) struct LiveProgress {
    inner: Arc<Inner>,
}

/// Writes one value of the job's progress.
type Write = Box<dyn Fn(u8) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

struct Inner {
    latest: AtomicU8,
    writing: AtomicBool,
    wake: Notify,
    ended: CancellationToken,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// When the job started: no live write before `MIN_INTERVAL` after.
    started: Instant,
    id: String,
    write: Write,
}

impl LiveProgress {
    /// For a native job, under its lease.
    pub(crate) fn native(queue: &Queue, leased: &Leased) -> LiveProgress {
        let (queue, id, token) = (queue.clone(), leased.id.clone(), leased.token.clone());
        Self::new(
            &leased.id,
            Box::new(move |percent| {
                let (queue, id, token) = (queue.clone(), id.clone(), token.clone());
                async move { queue.progress(&id, &token, percent).await.map(drop) }.boxed()
            }),
        )
    }

    pub(crate) fn new(id: &str, write: Write) -> LiveProgress {
        LiveProgress {
            inner: Arc::new(Inner {
                latest: AtomicU8::new(NONE),
                writing: AtomicBool::new(false),
                wake: Notify::new(),
                ended: CancellationToken::new(),
                writer: Mutex::new(None),
                started: Instant::now(),
                id: id.to_string(),
                write,
            }),
        }
    }

    /// The job's run has ended: stops the writer, after the write in
    /// flight (if any) has landed.
    pub(crate) async fn finish(self) {
        self.inner.ended.cancel();
        let writer = self.inner.writer.lock().unwrap().take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
    }

    /// What the host calls at each `log.progress`.
    pub(crate) fn sink(&self) -> OnProgress {
        let inner = self.inner.clone();
        Arc::new(move |percent| inner.report(percent))
    }
}

impl Drop for LiveProgress {
    /// Dropped without `finish` (the job was cancelled): the writer stops.
    fn drop(&mut self) {
        self.inner.ended.cancel();
    }
}

impl Inner {
    fn report(self: &Arc<Self>, percent: u8) {
        self.latest.store(percent, Ordering::Relaxed);
        if !self.writing.swap(true, Ordering::AcqRel) {
            *self.writer.lock().unwrap() = Some(tokio::spawn(self.clone().write_while_running()));
        }
        self.wake.notify_one();
    }

    async fn write_while_running(self: Arc<Self>) {
        tokio::select! {
            biased;
            _ = self.ended.cancelled() => return,
            _ = tokio::time::sleep_until(self.started + MIN_INTERVAL) => {}
        }
        loop {
            tokio::select! {
                biased;
                _ = self.ended.cancelled() => return,
                _ = self.wake.notified() => {}
            }
            let percent = self.latest.swap(NONE, Ordering::Relaxed);
            if percent != NONE
                && let Err(e) = (self.write)(percent).await
            {
                // The final value still goes with the outcome.
                tracing::debug!(job = %self.id, error = %format!("{e:#}"), "could not write the job's progress");
            }
            tokio::select! {
                biased;
                _ = self.ended.cancelled() => return,
                _ = tokio::time::sleep(MIN_INTERVAL) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `LiveProgress` whose writes are recorded.
    fn recorded() -> (LiveProgress, Arc<Mutex<Vec<u8>>>) {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = written.clone();
        let live = LiveProgress::new(
            "j1",
            Box::new(move |p| {
                sink.lock().unwrap().push(p);
                async { Ok(()) }.boxed()
            }),
        );
        (live, written)
    }

    /// A job that ends within its first interval writes nothing live.
    #[tokio::test(start_paused = true)]
    async fn a_short_job_writes_nothing_live() {
        let (live, written) = recorded();
        let report = live.sink();
        report(25);
        report(50);
        tokio::time::sleep(MIN_INTERVAL / 2).await;
        report(100);
        live.finish().await;
        assert!(written.lock().unwrap().is_empty());
    }

    /// A longer job's progress is written once its first interval has
    /// passed, then at most once an interval, the newest value each time.
    #[tokio::test(start_paused = true)]
    async fn a_long_job_writes_the_newest_value_each_interval() {
        let (live, written) = recorded();
        let report = live.sink();
        report(10);
        report(20);
        tokio::time::sleep(MIN_INTERVAL + Duration::from_millis(1)).await;
        assert_eq!(*written.lock().unwrap(), [20]);
        report(30);
        report(40);
        tokio::time::sleep(MIN_INTERVAL / 2).await;
        assert_eq!(*written.lock().unwrap(), [20], "no second write within the interval");
        tokio::time::sleep(MIN_INTERVAL).await;
        assert_eq!(*written.lock().unwrap(), [20, 40]);
        live.finish().await;
    }
}
