//! What the host needs of the runner to serve `flow.children` (contract
//! 0.2): a parent's children, read from its queue. The host links no
//! Redis, so the runner gives it a reader over its queues
//! (`Services::with_flows`); without one (`runner exec`, which runs one job
//! outside any queue) the call answers an error saying so.

use futures::future::BoxFuture;
use jobrunner_job::flow::ChildrenPage;

pub trait FlowReader: Send + Sync {
    /// Up to `count` children of job `id` of `queue` from number `from`
    /// (1-based) on; none when that job is not a flow's parent.
    fn children<'a>(
        &'a self,
        queue: &'a str,
        id: &'a str,
        from: u64,
        count: u64,
    ) -> BoxFuture<'a, anyhow::Result<Option<ChildrenPage>>>;
}
