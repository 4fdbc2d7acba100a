//! BullMQ-backed queues: queues that apps fill with BullMQ (`queue.add(…)`
//! from Node, or BullMQ's Python and Elixir ports) and whose jobs the runner
//! hands to plugins.
//!
//! Duties:
//! 1. open a declared queue (`[queues.NAME.bullmq]`: prefix, BullMQ name,
//!    job-name mapping) through `bullmq-official`, the official Rust port,
//!    which runs the same Lua scripts as the Node library: nothing here
//!    writes BullMQ's protocol again;
//! 2. map a BullMQ job to what a plugin sees: its name selects the job type
//!    (through the mapping table, else as it is), its data is the payload,
//!    its id, attempt and timestamp fill the job input;
//! 3. read a queue (counts, pages of jobs, one job with its log) as the
//!    runner's own `Counts` and `JobRecord` (`record`), so that the API, the
//!    dashboard and the CLI show both kinds of queue alike;
//! 4. the operations: pause, resume, retry, promote, remove, retry failed,
//!    clean, and enqueue (from the API, or a plugin's follow-ups).
//!
//! The worker that consumes such a queue is the runner's
//! `daemon::bull_worker`, on BullMQ's own worker.
//!
//! Layout:
//! - [`section`]: the operator's `[queues.NAME.bullmq]`;
//! - [`queue`]: `BullQueue`, one declared queue opened (duties 1, 3 and 4);
//! - [`record`]: a BullMQ job as a `JobRecord`; the runner's options as
//!   BullMQ's (duty 2);
//! - [`any_queue`]: `AnyQueue`, native or BullMQ-backed behind one set of
//!   reads and operations;
//! - [`search`]: finding an `AnyQueue`'s jobs by type or payload field, a
//!   bounded, paged scan (the dashboard's queue page).
//!
//! Architecture invariant: nothing here writes BullMQ's protocol; every
//! change to a BullMQ queue goes through `bullmq-official`.

pub mod any_queue;
pub mod queue;
pub mod record;
pub mod search;
pub mod section;

pub use any_queue::AnyQueue;
pub use queue::{BullQueue, BullQueues, connection_options, follow_up_id, is_redis_error, open_all};
pub use section::BullmqSection;
