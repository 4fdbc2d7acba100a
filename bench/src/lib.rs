//! Benchmarks of the runner. Two kinds live here:
//!
//! - `benches/`: criterion micro-benchmarks of one part each (the wasm
//!   sandbox, the queue API, hot reload, delayed jobs, the HTTP API, the
//!   dashboard), run with `cargo bench -p bench`;
//! - the harness (`src/bin/harness.rs`, run with `cargo xtask bench`): the
//!   whole path through the real `runner` binary and a Redis of its own,
//!   side by side with BullMQ when asked (`--bullmq`).
//!
//! `docs/performance.md` says how to run them and what they measured.

/// BullMQ's side: its Node package, run by `bullmq/bench.mjs`.
pub mod bullmq;
/// `runner serve` as a child process: config, start-up, readiness, memory.
pub mod daemon;
/// The runner's side of every measure.
pub mod measure;
/// What Redis itself counts: commands run, memory.
pub mod redis_info;
/// The results table, as Markdown.
pub mod report;
/// Medians, percentiles and the min-to-max of repeated runs.
pub mod stats;
