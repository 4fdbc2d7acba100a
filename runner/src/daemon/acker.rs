//! One queue's completions and start marks, recorded in batches.
//!
//! Duties:
//! 1. take each finished job's completion from its task without making the
//!    task wait: the task ends as soon as it has handed the completion over;
//! 2. send whatever has gathered while its earlier calls were in flight (up
//!    to `MAX_CALLS` at once) as one `complete` script call: one round trip
//!    and one retention trim for the lot, rather than one of each per job,
//!    which was most of Redis's work per job at high rates. At light load a
//!    batch is a single job, sent at once: batching adds no waiting;
//! 3. say in Redis which leased jobs have started (start marks), so that
//!    only a job that ran spends an attempt when its lease stalls: a job
//!    still running `MARK_WAIT` after its start is marked, riding on the
//!    next completion call or, with none, in a call of marks alone (a job
//!    that ends sooner is marked by its completion, at no cost);
//! 4. never drop a completion: while Redis errors, keep it, with its lease
//!    still held (and so extended), and send it again with its token until
//!    Redis records it or refuses it (the lease was lost), and log which;
//!    only on `close`, past `GIVE_UP` of trying, are the rest given up
//!    (logged: those jobs run again);
//! 5. on `close`, send everything handed to it before it returns, so that a
//!    shutdown does not leave finished jobs to run again.
//!
//! Why the job's task does not wait for the verdict: all it did with it was
//! log it, and waiting cost every job a oneshot channel and one more wake-up
//! and poll of its task after the round trip (the task, its store's future
//! inside, stayed alive for it).

use crate::daemon::leases::Held;
use jobrunner_queue::{Completion, Keep, Queue, State};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

/// The most completions in one script call (a long script blocks Redis).
const MAX_BATCH: usize = 256;
/// Calls in flight at once: while one waits for its reply, the next batch
/// gathers and goes. Two, not more: every call pays a fixed price in
/// Redis (its retention trim alone is over a dozen commands), and with four
/// in flight the batches at 20k jobs/s were a dozen jobs each, so that price
/// was paid per dozen jobs instead of per few dozen.
const MAX_CALLS: usize = 2;
/// How long a job runs before its start mark goes. Most jobs end sooner,
/// and their completion marks them, so marks cost nothing at light load
/// and little under it. A job that takes its runner down within this
/// window of starting comes back unspent, which the queue bounds
/// (`MAX_UNSTARTED_STALLS` in `lua/fetch.lua`); and a job marked has run
/// for this long, whatever its runner did next.
const MARK_WAIT: Duration = Duration::from_millis(10);
/// Between two tries of a call that Redis failed: doubling from the first
/// to the last, then steady.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// After `close`, how long completions that Redis keeps refusing to take
/// are still tried: a shutdown cannot wait for ever, and by then their
/// leases have expired unless Redis came back.
const GIVE_UP: Duration = Duration::from_secs(30);

/// A completion handed over, with the hold on its lease.
struct Ack {
    done: Completion,
    keep: Keep,
    /// Extended until the completion is recorded or refused.
    held: Option<Held>,
}

enum Note {
    Started {
        id: String,
        token: String,
    },
    /// The job's lease ended otherwise (failure recorded, released): its
    /// start mark, if still waiting, need not go.
    Settled {
        token: String,
    },
    Done(Box<Ack>),
}

pub struct Acker {
    tx: mpsc::UnboundedSender<Note>,
    task: tokio::task::JoinHandle<()>,
    closing: Arc<OnceLock<Instant>>,
    counts: Arc<Counts>,
}

/// What the acker holds and how its calls went, for logs and tests.
#[derive(Default)]
struct Counts {
    /// Completions handed over and not yet recorded, refused or given up.
    unrecorded: AtomicU64,
    /// Calls that Redis failed (each tried again).
    failed_calls: AtomicU64,
}

impl Acker {
    /// Starts the acker's task; it ends when the `Acker` is closed.
    pub fn start(queue: Queue) -> Acker {
        let (tx, rx) = mpsc::unbounded_channel();
        let closing = Arc::new(OnceLock::new());
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn(run(queue, rx, closing.clone(), counts.clone()));
        Acker { tx, task, closing, counts }
    }

    /// Completions handed over and not yet recorded (or refused).
    pub fn unrecorded(&self) -> u64 {
        self.counts.unrecorded.load(Ordering::Relaxed)
    }

    /// Calls that Redis failed so far (each was tried again).
    pub fn failed_calls(&self) -> u64 {
        self.counts.failed_calls.load(Ordering::Relaxed)
    }

    /// Notes that a leased job has started running.
    pub fn started(&self, id: &str, token: &str) {
        let _ = self.tx.send(Note::Started { id: id.to_string(), token: token.to_string() });
    }

    /// Notes that a job's lease ended without a completion.
    pub fn settled(&self, token: &str) {
        let _ = self.tx.send(Note::Settled { token: token.to_string() });
    }

    /// Hands a completion over to be recorded, with the hold on its lease
    /// (kept until Redis has answered); the acker logs the outcome.
    pub fn complete(&self, done: Completion, keep: Keep, held: Option<Held>) {
        self.counts.unrecorded.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.tx.send(Note::Done(Box::new(Ack { done, keep, held }))) {
            // Only after `close`, which takes the acker: cannot happen while
            // a job holds it, but say so rather than drop it silently.
            if let Note::Done(a) = e.0 {
                tracing::warn!(id = %a.done.id, "the acker has stopped; the job's lease will expire and it will run again");
            }
        }
    }

    /// Records every completion handed over so far, then stops.
    pub async fn close(self) {
        let _ = self.closing.set(Instant::now());
        drop(self.tx);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the acker's task failed; unrecorded jobs will run again when their leases expire");
        }
    }
}

/// Start marks not sent yet, in the order their jobs started. A job that
/// ends first is forgotten: its outcome marks it.
#[derive(Default)]
struct Marks {
    /// Token, id, and when the job started.
    queue: VecDeque<(String, String, Instant)>,
    /// Tokens in `queue`, less the forgotten ones.
    pending: HashSet<String>,
}

impl Marks {
    fn add(&mut self, id: String, token: String) {
        self.pending.insert(token.clone());
        self.queue.push_back((token, id, Instant::now()));
    }

    fn forget(&mut self, token: &str) {
        self.pending.remove(token);
    }

    /// When the oldest mark is due, if any is waiting.
    fn due(&mut self) -> Option<Instant> {
        while let Some((token, _, at)) = self.queue.front() {
            if self.pending.contains(token) {
                return Some(*at + MARK_WAIT);
            }
            self.queue.pop_front();
        }
        None
    }

    /// The marks of jobs that have run `MARK_WAIT`, as (id, token).
    fn take_due(&mut self) -> Vec<(String, String)> {
        let now = Instant::now();
        let mut out = Vec::new();
        while let Some((_, _, at)) = self.queue.front()
            && *at + MARK_WAIT <= now
        {
            let (token, id, _) = self.queue.pop_front().expect("a front");
            if self.pending.remove(&token) {
                out.push((id, token));
            }
        }
        out
    }
}

async fn run(
    queue: Queue,
    mut rx: mpsc::UnboundedReceiver<Note>,
    closing: Arc<OnceLock<Instant>>,
    counts: Arc<Counts>,
) {
    let calls = Arc::new(tokio::sync::Semaphore::new(MAX_CALLS));
    let sending = TaskTracker::new();
    let mut inbox = Vec::with_capacity(MAX_BATCH);
    let mut marks = Marks::default();
    'gather: loop {
        // A call slot first, then whatever has gathered meanwhile.
        let slot = calls.clone().acquire_owned().await.expect("never closed");
        let (batch, started) = loop {
            let due = marks.due();
            tokio::select! {
                n = rx.recv_many(&mut inbox, MAX_BATCH) => {
                    // Closed, and every job has ended: their completions
                    // are all in, and marks still waiting are moot.
                    if n == 0 {
                        break 'gather;
                    }
                    let mut batch = Vec::new();
                    for note in inbox.drain(..) {
                        match note {
                            Note::Started { id, token } => marks.add(id, token),
                            Note::Settled { token } => marks.forget(&token),
                            Note::Done(ack) => {
                                marks.forget(&ack.done.token);
                                batch.push(*ack);
                            }
                        }
                    }
                    if !batch.is_empty() {
                        break (batch, marks.take_due());
                    }
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    let due = marks.take_due();
                    if !due.is_empty() {
                        break (Vec::new(), due);
                    }
                }
            }
        };
        let (queue, closing, counts) = (queue.clone(), closing.clone(), counts.clone());
        sending.spawn(async move {
            send(&queue, batch, started, &closing, &counts).await;
            drop(slot);
        });
    }
    // Closed: the calls still in flight finish before the acker is done.
    sending.close();
    sending.wait().await;
}

async fn send(
    queue: &Queue,
    mut batch: Vec<Ack>,
    mut started: Vec<(String, String)>,
    closing: &OnceLock<Instant>,
    counts: &Counts,
) {
    // Jobs of one batch may keep different retention settings: one call per
    // run of equal settings (almost always the whole batch). The start
    // marks go with the first.
    if batch.is_empty() {
        send_retrying(queue, &[], jobrunner_queue::options::DEFAULT_KEEP_COMPLETED, &started, closing, counts).await;
        return;
    }
    while !batch.is_empty() {
        let keep = batch[0].keep;
        let n = batch.iter().take_while(|a| a.keep == keep).count();
        let (done, held): (Vec<Completion>, Vec<Option<Held>>) = batch.drain(..n).map(|a| (a.done, a.held)).unzip();
        send_retrying(queue, &done, keep, &started, closing, counts).await;
        counts.unrecorded.fetch_sub(done.len() as u64, Ordering::Relaxed);
        started.clear();
        // Recorded or given up: the leases are let go only now.
        drop(held);
    }
}

/// One `complete` call, tried again while Redis fails it (see duty 4).
async fn send_retrying(
    queue: &Queue,
    done: &[Completion],
    keep: Keep,
    started: &[(String, String)],
    closing: &OnceLock<Instant>,
    counts: &Counts,
) {
    let mut wait = RETRY_FIRST;
    let mut failures = 0u32;
    loop {
        match queue.complete_marking(done, keep, started).await {
            Ok(verdicts) => {
                if failures > 0 && !done.is_empty() {
                    tracing::info!(
                        queue = queue.name(),
                        jobs = done.len(),
                        tries = failures + 1,
                        "recorded completions after Redis failed them"
                    );
                }
                for (c, _) in done.iter().zip(verdicts).filter(|(_, kept)| !kept) {
                    refused(queue, c, failures > 0).await;
                }
                return;
            }
            Err(e) => {
                failures += 1;
                counts.failed_calls.fetch_add(1, Ordering::Relaxed);
                if closing.get().is_some_and(|at| at.elapsed() > GIVE_UP) {
                    if !done.is_empty() {
                        tracing::error!(
                            queue = queue.name(),
                            jobs = done.len(),
                            first = %done[0].id,
                            error = %format!("{e:#}"),
                            "shutting down and still cannot record completions; these jobs will run again when their leases expire"
                        );
                    }
                    return;
                }
                // The first failure and then one in ten, not every 2 s.
                if failures % 10 == 1 && !done.is_empty() {
                    tracing::warn!(
                        queue = queue.name(),
                        jobs = done.len(),
                        first = %done[0].id,
                        tries = failures,
                        error = %format!("{e:#}"),
                        "cannot record completions yet; keeping them, with their leases, and trying again"
                    );
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}

/// A completion Redis refused. After a failed try, the first call may have
/// been recorded and only its reply lost: the job's state tells which.
async fn refused(queue: &Queue, c: &Completion, retried: bool) {
    if retried
        && let Ok(Some(r)) = queue.get(&c.id).await
        && r.state == State::Completed
    {
        tracing::info!(queue = queue.name(), id = %c.id, "the job is completed (an earlier try landed and its reply was lost, or another runner finished it)");
        return;
    }
    tracing::warn!(queue = queue.name(), id = %c.id, "completed, but the lease had expired: another runner owns the job now");
}
