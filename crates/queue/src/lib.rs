//! The job runner's Redis queue, and the Rust client for apps that put
//! jobs on it.
//!
//! **Delivery contract: at least once.** A job is handed to a worker under a
//! lease that the worker extends while the job runs. If the worker dies, the
//! lease expires and the job goes back through the retry policy (a stall
//! counts as a failed attempt), so no job is lost; it may run again, which
//! is why handlers see their attempt number and should be idempotent. It is
//! worse to lose a job than to run it twice. A worker whose lease expired can
//! never complete or fail the job afterwards: every ack carries the lease's
//! fencing token, and a stale token is refused.
//!
//! # Producing jobs
//!
//! ```no_run
//! use jobrunner_queue::{Connection, JobOptions, NewJob, Queue};
//!
//! # async fn produce() -> anyhow::Result<()> {
//! // One server, or several comma-separated URLs for a Redis Cluster.
//! let conn = Connection::connect("redis://127.0.0.1:6379").await?;
//! let emails = Queue::new(conn, "emails")?;
//! let job = NewJob {
//!     // A given id de-duplicates: a second enqueue under it changes nothing.
//!     id: Some("welcome-42".into()),
//!     job_type: "send-email".into(),
//!     payload: r#"{"to":"ann@example.com"}"#.into(),
//!     options: JobOptions { delay_ms: 60_000, priority: Some(5), ..Default::default() },
//! };
//! let enqueued = emails.enqueue(job).await?;
//! // Wait (up to two minutes) for a runner to finish it: its record says
//! // how it ended and what it returned, or where it stands.
//! if let Some(record) = emails.wait(&enqueued.id, std::time::Duration::from_secs(120)).await? {
//!     println!("{} is {:?}: {:?}", record.id, record.state, record.result);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Every option is checked before anything reaches Redis; a bad one is an
//! error saying which and why. `enqueue_bulk` puts up to [`MAX_BULK`] jobs
//! on in one script call, whole or not at all. A queue with a `max_waiting`
//! refuses jobs past it with [`QueueFull`]. `examples/producer/` in the
//! repository is a whole program, run against a runner.
//!
//! # Layout
//! - [`connection`]: one Redis or a Cluster, reconnecting by itself;
//! - [`keys`]: the key layout (one hash tag per queue);
//! - `scripts` and `lua/`: every state change, as one atomic script;
//! - [`queue`]: `Queue` and the producer's side (enqueue, bulk, `max_waiting`);
//! - [`work`]: the worker's side (fetch under a lease, complete, fail, extend);
//! - [`events`]: a queue's events as they happen, and waiting for a job
//!   to finish (`Queue::wait`);
//! - [`cancel`]: asking the runner running a job to stop it;
//! - [`flow`]: flows, parents that wait for their children (in any
//!   queue) and read their outputs;
//! - [`dead_letter`]: moving jobs that failed for good to a dead-letter
//!   queue, and back;
//! - [`admin`]: the operator's side (retry, remove, pause, clean, rate
//!   limits) and the reads (counts, pages, one job, events);
//! - [`options`], [`record`]: what producers ask for, and what the queue says;
//! - [`policy`]: a queue's defaults for its jobs, its rate limits, and
//!   where a job's group comes from (`[queues.NAME]` in the runner's config);
//! - [`consumer`]: waiting for work without polling, waking on time;
//! - [`durability`]: whether the server may evict jobs or lose them on restart;
//! - [`server_info`]: the server's version, mode, memory, clients and load,
//!   and the queues' share of its memory (the dashboard's Redis page);
//! - [`schedule`]: recurring jobs (cron with a time zone, or intervals);
//! - [`stats`]: jobs finished for good, in total and per minute and hour
//!   (the dashboard's totals and history charts);
//! - [`runners`]: the runners' heartbeats (`jr:runners`), and
//!   [`plugin_stats`], the figures of each plugin version they carry.
//!
//! The wire protocol (keys, scripts, events) is in `docs/queue-protocol.md`,
//! for clients in other languages.
//!
//! Architecture invariant: nothing outside this crate builds a Redis
//! command for a queue; callers use `Queue`. The crate links no wasmtime
//! and no HTTP server.

pub mod admin;
pub mod cancel;
pub mod connection;
pub mod consumer;
pub mod dead_letter;
pub mod durability;
pub mod events;
pub mod flow;
pub mod keys;
pub mod options;
pub mod plugin_stats;
pub mod policy;
pub mod queue;
pub mod record;
pub mod runners;
pub mod schedule;
mod scripts;
pub mod server_info;
pub mod stats;
pub mod work;

pub use cancel::CancelAnswer;
pub use connection::Connection;
pub use consumer::Consumer;
pub use events::{Event, EventReader};
pub use flow::{AddedFlow, Child, ChildCounts, ChildState, ChildrenPage, FlowJob, OnFailure, add_flow, remove_flow};
pub use options::{Backoff, DEFAULTS, JobOptions, Keep};
pub use policy::{EffectiveOptions, EffectivePolicy, QueuePolicy, Rate, Source, Sourced};
pub use queue::{Enqueued, MAX_BULK, NewJob, Queue, QueueFull};
pub use record::{AttemptError, Counts, DeadLetter, JobRecord, Leased, ParentRef, Run, Spec, State};
pub use schedule::{Schedule, ScheduleInfo, ScheduleSource, Timing};
pub use work::{AfterFailure, Completion, Failure, Fetched, LeaseState, RunMark};

/// The name checks a queue applies, for producers that check early.
pub use jobrunner_job::{MAX_PAYLOAD_BYTES, check_job_id, check_job_type, check_queue_name};
