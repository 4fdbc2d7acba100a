//! The version-free values of flows (parents that run after their
//! children): what a child's failure does to its parent, what a parent
//! reads of its children, and a flow a plugin asks for. The queue crate
//! stores and reads them; the host hands them across every contract
//! version that has flows.

use serde::{Deserialize, Serialize};

/// The most jobs one flow holds, its root included.
pub const MAX_FLOW_JOBS: usize = 100_000;
/// The deepest a flow goes: the root is at depth 0.
pub const MAX_FLOW_DEPTH: usize = 32;

/// A job, by queue and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRef {
    pub queue: String,
    pub id: String,
}

/// What a child's failure (for good) does to its parent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// The parent fails for good, naming the child (BullMQ's
    /// `failParentOnFailure`). Its other children still run.
    #[default]
    Fail,
    /// The parent waits for its other children and then runs, the failure
    /// recorded among its children's outcomes (`ignoreDependencyOnFailure`).
    Ignore,
    /// The parent runs at once, the failure recorded; children still
    /// running then are recorded as they finish (`continueParentOnFailure`).
    Continue,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Fail => "fail",
            OnFailure::Ignore => "ignore",
            OnFailure::Continue => "continue",
        }
    }
}

/// A parent's children counted by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildCounts {
    pub total: u64,
    /// Not finished yet (or finished, with the outcome still on its way).
    pub pending: i64,
    #[serde(default)]
    pub completed: u64,
    #[serde(default)]
    pub failed: u64,
    /// Removed before they finished: the parent no longer waits for them.
    #[serde(default)]
    pub removed: u64,
}

/// Where a child stands, as its parent knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    Pending,
    Completed,
    Failed,
    Removed,
}

/// One child, as its parent reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Child {
    /// Its place among its parent's children, from 1.
    pub number: u64,
    pub queue: String,
    pub id: String,
    pub state: ChildState,
    /// A completed child's output (none if it returned nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// A failed child's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A page of a parent's children.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildrenPage {
    pub counts: ChildCounts,
    pub children: Vec<Child>,
    /// The `from` of the next page, if there is one.
    pub next: Option<u64>,
}

/// A flow a plugin asked for: enqueued, as follow-ups are, when its
/// attempt succeeds. The first job is the root; each other names its
/// parent by its index in `jobs`, which comes before it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlowFollowUp {
    pub jobs: Vec<FlowFollowUpJob>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlowFollowUpJob {
    pub job: crate::FollowUp,
    /// The parent's index in the flow's `jobs`; none for the root.
    pub parent: Option<usize>,
    pub on_failure: OnFailure,
}
