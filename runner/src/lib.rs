//! The job runner: jobs from Redis queues, handled by sandboxed WebAssembly
//! plugins that implement the versioned contract in `wit/`.
//!
//! This crate puts the workspace's libraries together into the `runner`
//! binary: the queue (`jobrunner-queue`), the host (`jobrunner-host`) and
//! BullMQ-backed queues (`jobrunner-bullmq`), all over the version-free job
//! (`jobrunner-job`).
//!
//! Layout, each module using only those above it:
//! - [`passwords`]: named users' password hashes (argon2id);
//! - [`config`]: the operator's TOML configuration, limits and grants;
//! - [`metrics`]: the Prometheus metrics of a runner;
//! - [`cache`]: the plugins' cache store in Redis;
//! - [`registry`]: job type → plugin, swapped whole on reload;
//! - [`web`]: what the API and the dashboard share (state, errors, auth);
//! - [`api`]: the HTTP API's routes;
//! - [`dashboard`]: the web dashboard, rendered on the server;
//! - [`server`]: the router of both, and binding it;
//! - [`daemon`]: `runner serve`: queues to plugins, hot reload, shutdown;
//! - [`cli`]: the `runner` command line.

pub mod api;
pub mod cache;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod metrics;
pub mod passwords;
pub mod registry;
pub mod server;
pub mod web;

pub use config::Config;
pub use jobrunner_host::{Host, HostOptions, Plugin};
pub use jobrunner_job::{JobInput, Outcome, Report};
