//! One queue's lease keeper: keeps the leases of the jobs running on this
//! dispatcher alive, and stops a job whose lease it cannot keep.
//!
//! Duties:
//! - hold the id and fencing token of each running job (`hold` returns a
//!   guard that lets go when the job ends, however it ends);
//! - every third of the lease, extend them all with one `extend` call per
//!   `MAX_BATCH` jobs;
//! - report a lease found taken (it expired and the job was handed out
//!   again): that attempt's outcome will be refused, so it is logged, the
//!   lease is no longer extended, and the job's `lost` token fires;
//! - note a lease found ended (no lease holds the job): most often a
//!   completion Redis recorded before the extension, whose guard goes as
//!   soon as the acker hears back, so nothing is said; if the job still
//!   runs when its lease would run out (it was put back or removed), it is
//!   stopped then, as below;
//! - fire a job's `lost` token when its lease has gone unconfirmed for
//!   `lease − lease/6` (Redis unreachable: the runner is cut off, or Redis
//!   is down): the dispatcher then stops the plugin, as a timeout does, so
//!   that no plugin goes on with a job that another runner is about to
//!   take. The keeper goes on trying to extend the lease: a job that had
//!   already finished, its completion waiting for Redis, keeps it if Redis
//!   comes back in time.
//!
//! Why one keeper rather than a timer task per job: a task per job cost a
//! spawn and an abort for every job, most of which end long before their
//! first extension is due, and a script call per job per tick for the
//! long ones.
//!
//! Why the stop comes a sixth of the lease early: the keeper counts an
//! extended lease from when the extension was *sent*, which is no later
//! than Redis's own count, so its deadline falls before Redis's. A lease
//! not yet extended counts from when its fetch came back, a network
//! transit after Redis set it (or, for a job handed over by an enqueue,
//! a moment more); the sixth (5 s of the default 30 s) covers that, a
//! dispatcher slow to poll, and clocks that run at slightly different
//! rates.

use jobrunner_queue::{LeaseState, Queue};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The most leases in one `extend` call (a long script blocks Redis).
const MAX_BATCH: usize = 1000;

/// How soon an extension that failed is tried again (at most a third of
/// the lease): often enough that a Redis back after a blip confirms the
/// leases before their deadline.
const RETRY: Duration = Duration::from_secs(1);

/// A job's id and fencing token.
type Lease = (String, String);

/// One held lease.
struct Entry {
    lease: Lease,
    /// When the last call that set or extended it in Redis was sent.
    confirmed: Instant,
    /// Fired when the lease is lost or about to run out unextended.
    lost: CancellationToken,
    /// Redis said no lease holds the job any more (`LeaseState::Ended`).
    ended: bool,
}

/// The leases held, each under a number of its own: the guard keeps only
/// that number, so holding a lease copies its id and token once, and
/// letting go hashes a number rather than two strings.
#[derive(Default)]
struct HeldSet {
    next: u64,
    leases: HashMap<u64, Entry>,
}

impl HeldSet {
    /// The earliest moment a held lease, not yet given up, runs out of
    /// its safe time.
    fn earliest(&self, safe: Duration) -> Option<Instant> {
        self.leases.values().filter(|e| !e.lost.is_cancelled()).map(|e| e.confirmed + safe).min()
    }
}

pub struct Leases {
    held: Arc<Mutex<HeldSet>>,
    keeper: tokio::task::JoinHandle<()>,
}

/// A running job's lease, extended until this is dropped.
pub struct Held {
    held: Arc<Mutex<HeldSet>>,
    key: u64,
    lost: CancellationToken,
}

impl Held {
    /// Resolves when the lease is lost, or about to run out because Redis
    /// cannot be reached to extend it: the job must stop.
    pub fn lost(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.lost.cancelled()
    }

    /// Whether `lost` has resolved already.
    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }
}

impl Leases {
    /// Starts the keeper; it stops when this is dropped.
    pub fn start(queue: Queue, lease: Duration, metrics: Arc<crate::metrics::Metrics>) -> Leases {
        let held = Arc::new(Mutex::new(HeldSet::default()));
        let keeper = tokio::spawn(keep(queue, lease, held.clone(), metrics));
        Leases { held, keeper }
    }

    /// Keeps a job's lease until the guard is dropped. `since`: when the
    /// fetch that leased it came back. The same job can be here twice, under two numbers, when
    /// its lease expired while it ran and this dispatcher took it again.
    pub fn hold(&self, id: &str, token: &str, since: Instant) -> Held {
        let mut set = self.held.lock().unwrap();
        let key = set.next;
        set.next += 1;
        let lost = CancellationToken::new();
        set.leases.insert(
            key,
            Entry { lease: (id.to_string(), token.to_string()), confirmed: since, lost: lost.clone(), ended: false },
        );
        Held { held: self.held.clone(), key, lost }
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held.lock().unwrap().leases.remove(&self.key);
    }
}

async fn keep(queue: Queue, lease: Duration, held: Arc<Mutex<HeldSet>>, metrics: Arc<crate::metrics::Metrics>) {
    // A job's lease runs from its fetch; the first extension after it
    // starts is at most a third of the lease later, leaving two thirds in
    // hand.
    let every = lease / 3;
    let safe = lease - lease / 6;
    let mut next_extend = Instant::now() + every;
    loop {
        let deadline = held.lock().unwrap().earliest(safe);
        tokio::select! {
            _ = tokio::time::sleep_until(next_extend.into()) => {
                let sent = Instant::now();
                // An extension that hangs (packets dropped on the way to
                // Redis) must not hold up the stops: it is given up at the
                // next deadline, and tried again.
                let deadline = held.lock().unwrap().earliest(safe);
                let extended = tokio::select! {
                    ok = extend(&queue, &held, lease, sent, &metrics) => ok,
                    _ = sleep_until(deadline) => false,
                };
                next_extend = if extended { sent + every } else { Instant::now() + RETRY.min(every) };
            }
            _ = sleep_until(deadline) => {}
        }
        stop_overdue(&queue, &held, safe, &metrics);
    }
}

/// Sleeps until `at`, or for ever with no `at`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Extends every held lease; false if Redis did not answer for all of
/// them.
async fn extend(
    queue: &Queue,
    held: &Mutex<HeldSet>,
    lease: Duration,
    sent: Instant,
    metrics: &crate::metrics::Metrics,
) -> bool {
    let (keys, leases): (Vec<u64>, Vec<Lease>) =
        held.lock().unwrap().leases.iter().map(|(k, e)| (*k, e.lease.clone())).unzip();
    let mut all = true;
    for (keys, batch) in keys.chunks(MAX_BATCH).zip(leases.chunks(MAX_BATCH)) {
        match queue.extend(batch, lease).await {
            Ok(verdicts) => {
                let mut set = held.lock().unwrap();
                for ((key, lease), verdict) in keys.iter().zip(batch).zip(verdicts) {
                    match verdict {
                        LeaseState::Held => {
                            if let Some(e) = set.leases.get_mut(key) {
                                e.confirmed = sent;
                            }
                        }
                        LeaseState::Ended => {
                            if let Some(e) = set.leases.get_mut(key) {
                                e.ended = true;
                            }
                        }
                        LeaseState::Taken => {
                            if let Some(e) = set.leases.remove(key) {
                                tracing::warn!(
                                    queue = queue.name(),
                                    id = %lease.0,
                                    "lost the lease (it expired and the job was taken again); stopping it here, and the outcome of this attempt will be refused"
                                );
                                metrics.lease_stops.with_label_values(&[queue.name(), "lost"]).inc();
                                e.lost.cancel();
                            }
                        }
                    }
                }
            }
            // Redis away: tried again in a second, with most of each lease
            // still left.
            Err(e) => {
                metrics.redis_errors.inc();
                tracing::warn!(queue = queue.name(), error = %format!("{e:#}"), "cannot extend leases");
                all = false;
            }
        }
    }
    all
}

/// Fires the `lost` token of each lease unconfirmed for `safe`.
fn stop_overdue(queue: &Queue, held: &Mutex<HeldSet>, safe: Duration, metrics: &crate::metrics::Metrics) {
    let now = Instant::now();
    let set = held.lock().unwrap();
    for e in set.leases.values().filter(|e| !e.lost.is_cancelled() && now >= e.confirmed + safe) {
        let unconfirmed_ms = now.duration_since(e.confirmed).as_millis() as u64;
        let (reason, why) = if e.ended {
            ("ended", "the job's lease ended in Redis (it was put back or removed) while it ran: stopping the job here")
        } else {
            (
                "unreachable",
                "cannot reach Redis to extend the lease before it runs out: stopping the job here (it will run again on the runner that takes it)",
            )
        };
        tracing::warn!(queue = queue.name(), id = %e.lease.0, unconfirmed_ms, "{why}");
        metrics.lease_stops.with_label_values(&[queue.name(), reason]).inc();
        e.lost.cancel();
    }
}
