//! Instances not serving a job: made ahead of their jobs ("spares"), or
//! kept after one for the plugin's next (`Idle`, under
//! `isolation = "instance"`); and the pool slots they may hold.
//!
//! Duties:
//! 1. hold at most one spare per plugin version: a fresh store with the
//!    plugin already instantiated in it, which the plugin's next job takes
//!    instead of instantiating (`Plugin::prepare` makes it,
//!    `Plugin::run_with_timeout` takes it);
//! 2. keep spares out of the slots jobs count on: the engine's pool has
//!    `EngineOptions::spare_slots` slots beyond `max_instances`, and a
//!    spare is made only while one of those is free, so a spare never
//!    makes a job's instantiation fail for want of a slot;
//! 3. hold a plugin's idle instances (`Idle`), each in one of those slots
//!    too: with none free, an instance is dropped after its job rather
//!    than kept, and the next job instantiates its own.
//!
//! Why: at light load a job's instantiation ran on caches gone cold in the
//! milliseconds since the last job, about 75 µs of the time from enqueue to
//! the handler (a tenth of it; docs/performance.md). Made right after the
//! previous job, it costs what it costs on a busy runner, off the next
//! job's path. A spare is still a store of its own that serves exactly one
//! job: nothing of one job is seen by another.

use crate::contract::Bindings;
use crate::state::JobState;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use wasmtime::Store;

/// The count of spares alive in one engine's pool, and its bound.
#[derive(Debug)]
pub struct SpareSlots {
    used: AtomicU32,
    limit: u32,
}

impl SpareSlots {
    pub fn new(limit: u32) -> SpareSlots {
        SpareSlots { used: AtomicU32::new(0), limit }
    }

    /// A slot for one spare, if one of the spares' slots is free.
    pub fn acquire(self: &Arc<Self>) -> Option<SpareSlot> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.limit).then_some(n + 1))
            .ok()
            .map(|_| SpareSlot(self.clone()))
    }
}

/// One of the spares' slots, given back when dropped.
#[derive(Debug)]
pub struct SpareSlot(Arc<SpareSlots>);

impl Drop for SpareSlot {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A store with its plugin instantiated, waiting for a job.
pub struct Spare {
    pub store: Store<JobState>,
    pub bindings: Bindings,
    /// How long its instantiation took: reported as its job's.
    pub instantiate: Duration,
    /// Its place among the spares' slots, until a job takes it (the job's
    /// instance then counts as any job's).
    pub slot: SpareSlot,
}

/// An instance that has completed `served` jobs of its plugin, its store
/// kept for the plugin's next job (`isolation = "instance"`).
pub struct Idle {
    pub store: Store<JobState>,
    pub bindings: Bindings,
    pub served: u32,
    /// Its place among the slots of instances not serving a job.
    pub slot: SpareSlot,
}
