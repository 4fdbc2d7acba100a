//! The one wasmtime `Engine` of the process, and the clock that lets it
//! stop runaway plugins.
//!
//! - Epoch interruption: a thread advances the engine's epoch every
//!   `EPOCH_TICK`. At each tick a running plugin yields to the async
//!   runtime (so an endless loop cannot hold a worker thread), and one past
//!   its timeout traps (`Trap::Interrupt`); see `plugin::new_store`. Its
//!   instance is torn down and its pool slot freed with the store.
//! - The pooling allocator: instances, memories and stacks come from
//!   pre-reserved pools, with copy-on-write memory images, so a job's
//!   instantiation is a few microseconds rather than a round of mmaps; a
//!   used slot is reset by copying back only the pages its job dirtied
//!   (PAGEMAP_SCAN, where the kernel has it) rather than by `madvise`.

use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy, WasmBacktraceDetails,
};

/// The environment variable that turns on wasmtime's perf map (`perfmap`).
pub const PROFILER_VAR: &str = "JOBRUNNER_WASM_PROFILER";

/// Timeout resolution, and the longest a plugin runs before it yields to
/// the other jobs on its thread: a plugin overruns its timeout by at most
/// one tick, and a job queued behind a spinning plugin waits at most one.
/// Each tick costs one thread wake-up (a thousand a second, nothing).
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Core instances one component may need: a Rust component has its main
/// module and a few adapter shims; a JS or Python one a few more.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;

/// Per slot, the most linear memory kept resident between jobs (only the
/// pages a job touched are, so a small plugin keeps a few hundred KB).
const KEEP_RESIDENT: usize = 16 << 20;
const KEEP_RESIDENT_TABLES: usize = 64 << 10;
/// Slots whose memory is given back to the kernel together, when slots
/// are reset by `madvise` (no PAGEMAP_SCAN).
const DECOMMIT_BATCH: usize = 16;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The most plugin instances alive at once for jobs (and `describe`).
    pub max_instances: u32,
    /// The largest linear memory any plugin may have (the pool's slot size).
    pub max_memory_bytes: u64,
    /// Slots beyond `max_instances` for instances made ahead of jobs (one
    /// per plugin version, `host::spare`), so that those never take a job's
    /// slot. Plugins beyond this many run without one.
    pub spare_slots: u32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { max_instances: 1000, max_memory_bytes: 4 << 30, spare_slots: 32 }
    }
}

pub fn build(options: &EngineOptions) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Function names come from the name section; DWARF is not needed.
    config.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64));
    config.wasm_backtrace_details(WasmBacktraceDetails::Disable);
    // Plugin authors and we profile plugins with Linux `perf`: with
    // `JOBRUNNER_WASM_PROFILER=perfmap` wasmtime writes /tmp/perf-PID.map,
    // naming each compiled wasm function for `perf report`. Off by default:
    // the map grows with every plugin loaded.
    if std::env::var_os(PROFILER_VAR).is_some_and(|v| v == "perfmap") {
        config.profiler(ProfilingStrategy::PerfMap);
        tracing::info!("{PROFILER_VAR}=perfmap: wasm functions are named in /tmp/perf-{}.map", std::process::id());
    }

    let n = options.max_instances.saturating_add(options.spare_slots);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_stacks(n)
        .max_memory_size(options.max_memory_bytes as usize)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_tables_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(2);
    // Resetting a slot for its next job: by default wasmtime `madvise`s a
    // used memory away, which costs a system call, a TLB shootdown across
    // cores and a page fault on every page the next job touches: at
    // thousands of jobs a second that was the largest cost of a job in the
    // profile. Where the kernel has PAGEMAP_SCAN (Linux 6.7+), wasmtime can
    // find the pages a job dirtied and copy back just those, keeping them
    // resident; without it, keep-resident would `memset` the whole region
    // every time, so it is only turned on with the scan.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT_TABLES);
        // No batching then: a reset whose scan found every dirty page still
        // queues an empty region to decommit, for each memory and table,
        // and with batches of 16 every job took the shared queue's lock and
        // every fifth or so paid a `process_madvise` of empty regions
        // (strace: 3,937 calls for 20,000 no-op jobs; none with a batch of
        // one, whose empty region costs no system call). Real decommits are
        // rare here: only a job that dirtied more than `KEEP_RESIDENT`.
        pool.decommit_batch_size(1);
    } else {
        // Every reset decommits: in batches, one TLB flush per batch.
        pool.decommit_batch_size(DECOMMIT_BATCH);
    }
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(anyhow::Error::from).context("cannot create the wasm engine")
}

/// Advances the engine's epoch until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker { stop, thread: Some(thread) }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
