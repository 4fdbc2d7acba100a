//! One queue's lease keeper: keeps the leases of the jobs running on this
//! dispatcher alive.
//!
//! Duties:
//! - hold the id and fencing token of each running job (`hold` returns a
//!   guard that lets go when the job ends, however it ends);
//! - every third of the lease, extend them all with one `extend` call per
//!   `MAX_BATCH` jobs;
//! - report a lease found lost (it expired and the job was handed out
//!   again): that attempt's outcome will be refused, so it is logged, and
//!   the lease is no longer extended.
//!
//! Why one keeper rather than a timer task per job: a task per job cost a
//! spawn and an abort for every job, most of which end long before their
//! first extension is due, and a script call per job per tick for the
//! long ones.

use jobrunner_queue::Queue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most leases in one `extend` call (a long script blocks Redis).
const MAX_BATCH: usize = 1000;

/// A job's id and fencing token.
type Lease = (String, String);

/// The leases held, each under a number of its own: the guard keeps only
/// that number, so holding a lease copies its id and token once, and
/// letting go hashes a number rather than two strings.
#[derive(Default)]
struct HeldSet {
    next: u64,
    leases: HashMap<u64, Lease>,
}

pub struct Leases {
    held: Arc<Mutex<HeldSet>>,
    keeper: tokio::task::JoinHandle<()>,
}

/// A running job's lease, extended until this is dropped.
pub struct Held {
    held: Arc<Mutex<HeldSet>>,
    key: u64,
}

impl Leases {
    /// Starts the keeper; it stops when this is dropped.
    pub fn start(queue: Queue, lease: Duration) -> Leases {
        let held = Arc::new(Mutex::new(HeldSet::default()));
        let keeper = tokio::spawn(keep(queue, lease, held.clone()));
        Leases { held, keeper }
    }

    /// Keeps a job's lease until the guard is dropped. The same job can be
    /// here twice, under two numbers, when its lease expired while it ran
    /// and this dispatcher took it again.
    pub fn hold(&self, id: &str, token: &str) -> Held {
        let mut set = self.held.lock().unwrap();
        let key = set.next;
        set.next += 1;
        set.leases.insert(key, (id.to_string(), token.to_string()));
        Held { held: self.held.clone(), key }
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

async fn keep(queue: Queue, lease: Duration, held: Arc<Mutex<HeldSet>>) {
    // A job's lease runs from its fetch; the first tick after it starts is
    // at most a third of the lease later, leaving two thirds in hand.
    let mut ticks = tokio::time::interval(lease / 3);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let (keys, leases): (Vec<u64>, Vec<Lease>) =
            held.lock().unwrap().leases.iter().map(|(k, l)| (*k, l.clone())).unzip();
        for (keys, batch) in keys.chunks(MAX_BATCH).zip(leases.chunks(MAX_BATCH)) {
            match queue.extend(batch, lease).await {
                Ok(verdicts) => {
                    for ((key, lost), _) in keys.iter().zip(batch).zip(verdicts).filter(|(_, kept)| !kept) {
                        tracing::warn!(
                            queue = queue.name(),
                            id = %lost.0,
                            "lost the lease (it expired); the outcome of this attempt will be refused"
                        );
                        held.lock().unwrap().leases.remove(key);
                    }
                }
                // Redis away: tried again next tick, with a third of each
                // lease still left.
                Err(e) => tracing::warn!(queue = queue.name(), error = %format!("{e:#}"), "cannot extend leases"),
            }
        }
    }
}
