//! The job runner: jobs from Redis queues, handled by sandboxed WebAssembly
//! plugins that implement the versioned contract in `wit/`.
//!
//! Layout:
//! - [`api`]: the HTTP API, health, readiness and metrics;
//! - [`config`]: the operator's TOML configuration, limits and grants;
//! - [`job`]: the version-free job, outcome and report types;
//! - [`host`]: the wasm host: engine, plugin loading, one store per job;
//! - [`cache`]: the plugins' cache (in memory, or in Redis);
//! - [`mail`]: email delivery (SMTP, or an outbox folder);
//! - [`queue`]: the Redis queue engine (at-least-once, leases, retries, schedules);
//! - [`bull`]: BullMQ-backed queues, through BullMQ's own protocol crate;
//! - [`any_queue`]: one view of native and BullMQ-backed queues;
//! - [`metrics`]: the Prometheus metrics of a runner;
//! - [`dashboard`]: the web dashboard, rendered on the server;
//! - [`daemon`]: `runner serve`: queues to plugins, hot reload, shutdown;
//! - [`cli`]: the `runner` command line.

pub mod any_queue;
pub mod api;
pub mod bull;
pub mod cache;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod host;
pub mod job;
pub mod mail;
pub mod metrics;
pub mod queue;

pub use config::Config;
pub use host::{Host, HostOptions, Plugin};
pub use job::{JobInput, Outcome, Report};
