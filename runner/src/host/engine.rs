//! The one wasmtime `Engine` of the process, and the clock that lets it
//! stop runaway plugins.
//!
//! - Epoch interruption: a thread advances the engine's epoch every
//!   `EPOCH_TICK`; each store's deadline is its timeout in ticks, and a
//!   plugin past it traps (`Trap::Interrupt`) even inside an endless loop.
//!   Its instance is torn down and its pool slot freed with the store.
//! - The pooling allocator: instances, memories and stacks come from
//!   pre-reserved pools, with copy-on-write memory images, so a job's
//!   instantiation is a few microseconds rather than a round of mmaps.

use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, WasmBacktraceDetails};

/// Timeout resolution: a plugin overruns its timeout by at most one tick.
/// Shorter ticks cost a thread wake-up each; 10 ms is imperceptible for jobs.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances one component may need: a Rust component has its main
/// module and a few adapter shims; a JS or Python one a few more.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The most plugin instances alive at once.
    pub max_instances: u32,
    /// The largest linear memory any plugin may have (the pool's slot size).
    pub max_memory_bytes: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { max_instances: 1000, max_memory_bytes: 4 << 30 }
    }
}

pub fn build(options: &EngineOptions) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Function names come from the name section; DWARF is not needed.
    config.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64));
    config.wasm_backtrace_details(WasmBacktraceDetails::Disable);

    let n = options.max_instances;
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

/// The deadline, in ticks, for a timeout (at least one tick).
pub fn ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64
}
