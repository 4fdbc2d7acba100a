//! The job runner's sandboxed WebAssembly host: loads plugin components and
//! runs jobs in them, each in a fresh store with the limits and grants its
//! operator gave it.
//!
//! The host knows nothing of where jobs come from: it is given a
//! `JobInput` and returns a `Report` (outcome, log, follow-ups, emails).
//! Its outside services are the plugins' cache (a `cache::CacheStore`,
//! in memory here or the runner's Redis store), the mailer, and a reader
//! of flows' children (`flows::FlowReader`, the runner's).
//!
//! Layout:
//! - `host`: `Host`, which loads plugin files (compiled once, cached on
//!   disk) and describes them;
//! - `settings`: the limits and grants one plugin runs under;
//! - `engine`: the one `Engine` (pooling allocator, epoch interruption);
//! - `compile_cache`: compiled plugins on disk, keyed by content and engine;
//! - `contract`: bindings of each contract version in `wit/` (0.1 and
//!   0.2, served side by side), and the version-free face of them;
//! - `plugin`: linking, `describe`, and running one job in a fresh store;
//! - `spare`: a plugin's next instance, made ahead of its job;
//! - `state`: what a job's store holds, and its limits;
//! - `capabilities`: the host side of log, cache, queue, email, config and
//!   flow, for every version;
//! - `flows`: what the host needs of the runner to read flows' children;
//! - `http`: the `wasi:http` gate (allowed hosts, response cap);
//! - `stdio`: the job log, which also receives stdout and stderr;
//! - `fault`: traps, panics and limits turned into readable faults;
//! - `grants`: follow-up and email grants, parsed once per version;
//! - `egress`: where an HTTP request really goes (resolved, checked, connected);
//! - `cache`: the plugins' cache, checked, over a `CacheStore`;
//! - `mail`: email built with lettre, delivered by SMTP or to an outbox.
//!
//! Architecture invariant: one `Engine` and one `Linker` per `Host`; one
//! compiled, pre-linked component per plugin version; one `Store` per job,
//! never reused (a spare is made before its job, and serves that one job
//! only).

pub mod cache;
pub mod capabilities;
pub mod compile_cache;
pub mod contract;
pub mod egress;
pub mod engine;
pub mod fault;
pub mod flows;
pub mod grants;
mod host;
pub mod http;
pub mod mail;
pub mod plugin;
pub mod settings;
pub mod spare;
pub mod state;
pub mod stdio;

pub use compile_cache::{CompileCache, CompileSource};
pub use engine::EngineOptions;
pub use host::{Host, HostOptions, LoadInfo};
pub use jobrunner_job::{JobInput, Outcome, Report};
pub use plugin::{Description, Plugin};
pub use settings::{Grants, Isolation, Limits, PluginSettings};
pub use state::{OnProgress, Services};
