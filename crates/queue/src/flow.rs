//! Flows: a tree of jobs where a parent runs only after its children have
//! finished, and reads what they returned. Children may live in other
//! queues, which a Redis Cluster keeps in other slots, so no one script
//! can write a whole flow or tell a parent in another queue that a child
//! is done. Each change is a script on one queue, and every step is safe
//! to repeat, so a crash between two leaves work that a runner finishes:
//!
//! 1. **Adding** (`add_flow`): the root is written first, waiting for its
//!    children (`waiting_children`), with the list of its children and
//!    their plan: the subtrees not yet created (`spawn`). From then on the
//!    flow exists whole: nothing of it can run before its children do.
//! 2. **Creating the children** (`spawn_all`): each parent's plan becomes
//!    jobs in their queues, a batch per queue, each linked to its parent
//!    (`parents`); then the plan goes. A child with children of its own is
//!    a parent in step 1's state, with its own plan. A step repeated finds
//!    its jobs (`repeat`); a job of the same id that is not this flow's is
//!    a failed child (`exists`). Plans older than a few seconds are the
//!    remains of a producer that died midway: the runners consuming the
//!    parent's queue finish them (`resume_spawns`).
//! 3. **Finishing a child** (the `complete`, `fail`, `fetch` and `admin`
//!    scripts): its outcome goes to its queue's outbox (`notify`) in the
//!    same script that finishes it, with a message on the queue's flow
//!    channel.
//! 4. **Relaying** (`relay_outcomes`): a runner of the child's queue moves
//!    the outbox to the parents' queues (`notify`, recording each child's
//!    outcome once, whatever the number of tries), then empties what it
//!    moved. The last child's outcome releases the parent to its queue's
//!    line; a failed child fails it, is ignored, or releases it at once,
//!    as the child's `on_failure` says.
//!
//! What a parent reads of its children is paged (`children`), in the order
//! they were given, for flows of thousands of children.

use crate::connection::Connection;
use crate::options::JobOptions;
use crate::queue::{Queue, arg, full_or, now_ms};
use crate::record::{ParentRef, Spec};
use crate::scripts::SCRIPTS;
use anyhow::{Context, Result, anyhow, bail, ensure};
use jobrunner_job::{MAX_PAYLOAD_BYTES, check_job_id, check_job_type, check_queue_name};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

pub use jobrunner_job::flow::{Child, ChildCounts, ChildState, ChildrenPage, MAX_FLOW_DEPTH, MAX_FLOW_JOBS, OnFailure};

/// Children created per script call (step 2): a call of 1000 holds Redis
/// for a few milliseconds.
const ADD_BATCH: usize = 1000;
/// Outcomes relayed per round (step 4).
const RELAY_BATCH: usize = 500;
/// A plan this old is taken to be left by a producer that died midway.
pub const SPAWN_GRACE: Duration = Duration::from_secs(5);

/// One job of a flow, with its children.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowJob {
    pub queue: String,
    /// None: a new unique id (a ULID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub job_type: String,
    /// The payload, kept as the producer wrote it (`{}` if none).
    #[serde(default = "empty_payload")]
    pub payload: Box<RawValue>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub options: JobOptions,
    /// For a child: what its failure does to its parent (default `fail`).
    /// The root has no parent, so none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
    /// Jobs that must finish before this one runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<FlowJob>,
}

fn empty_payload() -> Box<RawValue> {
    RawValue::from_string("{}".into()).expect("`{}` is JSON")
}

fn is_default(o: &JobOptions) -> bool {
    *o == JobOptions::default()
}

/// What `add_flow` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddedFlow {
    pub queue: String,
    /// The root's id.
    pub id: String,
    /// False when a job with the root's id existed already: nothing was
    /// added (but a plan that job left unfinished was finished).
    pub created: bool,
    /// Jobs in the flow, the root included.
    pub jobs: usize,
    /// Set when the root was written but some jobs below it could not be
    /// yet (a child's queue full, Redis lost midway): why. The flow is
    /// whole all the same: a runner consuming the root's queue creates
    /// the rest (`resume_spawns`), as does adding the same flow again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfinished: Option<String>,
}

/// The reference a child keeps to its parent (`parents`), with what its
/// failure does to it. `flow.lua` compares `queue` and `id`.
#[derive(Serialize, Deserialize)]
struct ParentLink {
    queue: String,
    id: String,
    on: OnFailure,
}

/// A parent's children not yet created, with the flow's creation time.
#[derive(Serialize, Deserialize)]
struct Plan {
    at: u64,
    children: Vec<FlowJob>,
}

/// One job for the `add` operation.
struct Node {
    id: String,
    spec: String,
    delay_ms: u64,
    priority: Option<u32>,
    group: Option<String>,
    parent: String,
    plan: String,
    refs: Vec<String>,
}

/// A child's outcome for the `notify` operation.
struct Outcome {
    parent: String,
    child_ref: String,
    status: String,
    body: String,
    on: OnFailure,
}

/// Checks a flow whole before anything is written, and gives every job
/// without an id a new one. Returns the number of jobs.
pub fn prepare(flow: &mut FlowJob) -> Result<usize> {
    if flow.on_failure.is_some() {
        bail!("the flow's root has no parent: `on_failure` is for children");
    }
    let mut seen = HashSet::new();
    let mut count = 0;
    check_job(flow, "the root", 0, &mut count, &mut seen)?;
    Ok(count)
}

fn check_job(
    job: &mut FlowJob,
    path: &str,
    depth: usize,
    count: &mut usize,
    seen: &mut HashSet<(String, String)>,
) -> Result<()> {
    let fail = |e: String| anyhow!("{path}: {e}");
    if depth > MAX_FLOW_DEPTH {
        bail!("{path}: the flow is deeper than {MAX_FLOW_DEPTH} levels");
    }
    *count += 1;
    if *count > MAX_FLOW_JOBS {
        bail!("the flow holds more than {MAX_FLOW_JOBS} jobs: split it");
    }
    check_queue_name(&job.queue).map_err(fail)?;
    check_job_type(&job.job_type).map_err(fail)?;
    if job.payload.get().len() > MAX_PAYLOAD_BYTES {
        return Err(fail(format!(
            "payload of {} bytes is over the {MAX_PAYLOAD_BYTES} byte limit",
            job.payload.get().len()
        )));
    }
    job.options.validate().map_err(|e| fail(e.to_string()))?;
    let id = match &job.id {
        Some(id) => {
            check_job_id(id).map_err(fail)?;
            id.clone()
        }
        None => {
            let id = ulid::Ulid::new().to_string();
            job.id = Some(id.clone());
            id
        }
    };
    if !seen.insert((job.queue.clone(), id.clone())) {
        bail!("{path}: job id {id} appears twice in queue {} in this flow", job.queue);
    }
    for (i, child) in job.children.iter_mut().enumerate() {
        check_job(child, &format!("{path} > children[{i}]"), depth + 1, count, seen)?;
    }
    Ok(())
}

fn node(job: &FlowJob, parent: Option<(&str, &str)>, at: u64) -> Result<Node> {
    let id = job.id.clone().context("a flow's job without an id (prepare gives each one)")?;
    let spec = Spec {
        job_type: job.job_type.clone(),
        payload: job.payload.clone(),
        opts: job.options.clone(),
        created_at: at,
        dead_letter: None,
        parent: parent.map(|(q, id)| ParentRef { queue: q.to_string(), id: id.to_string() }),
    };
    let link = match parent {
        Some((queue, pid)) => serde_json::to_string(&ParentLink {
            queue: queue.to_string(),
            id: pid.to_string(),
            on: job.on_failure.unwrap_or_default(),
        })?,
        None => String::new(),
    };
    let plan = if job.children.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&Plan { at, children: job.children.clone() })?
    };
    let refs = job.children.iter().map(|c| format!("{} {}", c.queue, c.id.as_deref().unwrap_or(""))).collect();
    Ok(Node {
        id,
        spec: serde_json::to_string(&spec)?,
        delay_ms: job.options.delay_ms,
        priority: job.options.priority,
        group: job.options.group.clone(),
        parent: link,
        plan,
        refs,
    })
}

/// Adds a flow: its root at once, waiting for its children, then every
/// job below it (module comment, steps 1 and 2). Checked whole first; an
/// error means nothing was added. A failure after the root was written
/// (Redis lost, a child's queue full) is no error: the flow is added, and
/// `unfinished` says why some of its jobs wait for a runner to create them.
pub async fn add_flow(conn: &Connection, mut flow: FlowJob) -> Result<AddedFlow> {
    let jobs = prepare(&mut flow)?;
    let root = Queue::new(conn.clone(), &flow.queue)?;
    root.register().await?;
    let at = now_ms();
    let id = flow.id.clone().context("the root without an id")?;
    let reply = root.add_nodes(&[node(&flow, None, at)?]).await?;
    let created = reply.first().is_some_and(|r| r != "exists" && r != "repeat");
    // A root that exists may be this very flow, added by a call whose
    // answer was lost: its plan, if any is left, is finished.
    let unfinished = spawn_all(conn, vec![(flow.queue.clone(), id.clone())]).await.err().map(|e| format!("{e:#}"));
    if let Some(why) = &unfinished {
        tracing::warn!(queue = %flow.queue, id = %id, error = %why, "a flow's root was added, but not every job below it yet");
    }
    Ok(AddedFlow { queue: flow.queue, id, created, jobs, unfinished })
}

/// Creates the children of the given parents from their plans, and theirs
/// below them (module comment, step 2). A parent whose plan is gone is
/// done already.
async fn spawn_all(conn: &Connection, mut work: Vec<(String, String)>) -> Result<()> {
    while let Some((queue_name, pid)) = work.pop() {
        let queue = Queue::new(conn.clone(), &queue_name)?;
        let plan: Option<String> = conn
            .query(redis::cmd("HGET").arg(queue.inner.keys.get("spawn")).arg(&pid))
            .await
            .context("read a flow's plan")?;
        let Some(plan) = plan else { continue };
        let plan: Plan = serde_json::from_str(&plan).with_context(|| format!("the plan of {queue_name}/{pid}"))?;
        let mut by_queue: BTreeMap<&str, Vec<&FlowJob>> = BTreeMap::new();
        for child in &plan.children {
            by_queue.entry(child.queue.as_str()).or_default().push(child);
        }
        let mut taken = Vec::new();
        for (child_queue, children) in by_queue {
            let target = Queue::new(conn.clone(), child_queue)?;
            target.register().await?;
            for batch in children.chunks(ADD_BATCH) {
                let nodes =
                    batch.iter().map(|c| node(c, Some((&queue_name, &pid)), plan.at)).collect::<Result<Vec<_>>>()?;
                let replies = target.add_nodes(&nodes).await?;
                for (child, reply) in batch.iter().zip(replies) {
                    let child_id = child.id.clone().unwrap_or_default();
                    if reply == "exists" {
                        taken.push(Outcome {
                            parent: pid.clone(),
                            child_ref: format!("{child_queue} {child_id}"),
                            status: "failed".into(),
                            body: format!(
                                "job id {child_id} exists already in queue {child_queue}, as a job not of this flow"
                            ),
                            on: child.on_failure.unwrap_or_default(),
                        });
                    } else if !child.children.is_empty() {
                        work.push((child_queue.to_string(), child_id));
                    }
                }
            }
        }
        if !taken.is_empty() {
            queue.notify(&taken).await?;
        }
        let _: i64 = queue.flow_op(vec![arg("spawned"), arg(&pid)]).await?;
    }
    Ok(())
}

/// Removes a job and every job of the flow below it; returns how many
/// jobs were removed. A job removed while a runner holds it is refused at
/// its ack. The job's own parent, if it has one, is told that it was
/// removed (and no longer waits for it).
pub async fn remove_flow(conn: &Connection, queue: &str, id: &str) -> Result<u64> {
    check_job_id(id).map_err(|e| anyhow!(e))?;
    let mut work = vec![(queue.to_string(), id.to_string(), true)];
    let mut removed = 0;
    while let Some((queue_name, job, tell)) = work.pop() {
        let queue = Queue::new(conn.clone(), &queue_name)?;
        let reply: Vec<redis::Value> =
            queue.flow_op(vec![arg("remove"), arg(&job), arg(if tell { "1" } else { "0" })]).await?;
        let mut reply = reply.into_iter();
        let existed: i64 = redis::from_redis_value(reply.next().context("flow remove: an empty reply")?)?;
        removed += existed as u64;
        for r in reply {
            let child_ref: String = redis::from_redis_value(r)?;
            if let Some((q, c)) = child_ref.split_once(' ') {
                work.push((q.to_string(), c.to_string(), false));
            }
        }
    }
    Ok(removed)
}

impl Queue {
    /// Runs one operation of `flow.lua` on this queue.
    async fn flow_op<T: redis::FromRedisValue>(&self, mut args: Vec<Vec<u8>>) -> Result<T> {
        args.insert(1, arg(&self.inner.keys.wake_channel));
        self.inner
            .conn
            .invoke(&SCRIPTS.flow, &self.inner.keys.all, &args)
            .await
            .map_err(|e| full_or(&self.inner.name, e))
            .with_context(|| format!("flow operation on queue {}", self.inner.name))
    }

    async fn add_nodes(&self, nodes: &[Node]) -> Result<Vec<String>> {
        let mut args = vec![arg("add"), arg(nodes.len())];
        for n in nodes {
            args.extend([
                arg(&n.id),
                arg(&n.spec),
                arg(n.delay_ms),
                n.priority.map(arg).unwrap_or_default(),
                arg(n.group.as_deref().unwrap_or("")),
                arg(&n.parent),
                arg(&n.plan),
                arg(n.refs.len()),
            ]);
            args.extend(n.refs.iter().map(arg));
        }
        let replies: Vec<String> = self.flow_op(args).await?;
        ensure!(replies.len() == nodes.len(), "flow add: {} replies for {} jobs", replies.len(), nodes.len());
        Ok(replies)
    }

    async fn notify(&self, outcomes: &[Outcome]) -> Result<()> {
        for batch in outcomes.chunks(RELAY_BATCH) {
            let mut args = vec![arg("notify"), arg(batch.len())];
            for o in batch {
                args.extend([arg(&o.parent), arg(&o.child_ref), arg(&o.status), arg(&o.body), arg(o.on.as_str())]);
            }
            let _: Vec<String> = self.flow_op(args).await?;
        }
        Ok(())
    }

    /// Moves the outcomes of this queue's finished flow children to their
    /// parents (module comment, step 4); returns how many. Safe to run
    /// from any number of runners at once: a parent records each child
    /// once.
    pub async fn relay_outcomes(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            // A scan from 0 may come back empty with a cursor to follow (a
            // hash emptied by earlier relays keeps its buckets a while):
            // the cursor is followed until a batch is read or it ends.
            let (mut cursor, mut entries) = (0u64, Vec::new());
            let mut seen = HashSet::new();
            loop {
                let (next, page): (u64, Vec<(String, String)>) = self
                    .inner
                    .conn
                    .query(
                        redis::cmd("HSCAN")
                            .arg(self.inner.keys.get("notify"))
                            .arg(cursor)
                            .arg("COUNT")
                            .arg(RELAY_BATCH),
                    )
                    .await
                    .context("read the flow outbox")?;
                // A scan may return an entry twice: kept once, in order.
                entries.extend(page.into_iter().filter(|(id, _)| seen.insert(id.clone())));
                if next == 0 || entries.len() >= RELAY_BATCH {
                    break;
                }
                cursor = next;
            }
            if entries.is_empty() {
                return Ok(total);
            }
            let mut by_parent_queue: BTreeMap<String, Vec<Outcome>> = BTreeMap::new();
            for (id, value) in &entries {
                let mut parts = value.splitn(3, '\n');
                let (Some(link), Some(status), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
                    tracing::error!(queue = self.name(), id = %id, "a flow outcome that cannot be read; dropped");
                    continue;
                };
                let Ok(link) = serde_json::from_str::<ParentLink>(link) else {
                    tracing::error!(queue = self.name(), id = %id, "a flow outcome with an unreadable parent; dropped");
                    continue;
                };
                by_parent_queue.entry(link.queue).or_default().push(Outcome {
                    parent: link.id,
                    child_ref: format!("{} {id}", self.name()),
                    status: status.to_string(),
                    body: body.to_string(),
                    on: link.on,
                });
            }
            for (parent_queue, outcomes) in &by_parent_queue {
                Queue::new(self.inner.conn.clone(), parent_queue)?.notify(outcomes).await?;
            }
            let mut args = vec![arg("outbox_done")];
            args.extend(entries.iter().map(|(id, _)| arg(id)));
            let _: i64 = self.flow_op(args).await?;
            total += entries.len();
        }
    }

    /// Finishes the plans of this queue's parents that have waited longer
    /// than `older_than` for their children to be created (module
    /// comment, step 2); returns how many parents it finished.
    pub async fn resume_spawns(&self, older_than: Duration) -> Result<usize> {
        #[derive(Deserialize)]
        struct At {
            at: u64,
        }
        let mut cursor = 0u64;
        let mut stale = Vec::new();
        loop {
            let (next, entries): (u64, Vec<(String, String)>) = self
                .inner
                .conn
                .query(redis::cmd("HSCAN").arg(self.inner.keys.get("spawn")).arg(cursor).arg("COUNT").arg(10))
                .await
                .context("read the flow plans")?;
            let now = now_ms();
            for (pid, plan) in entries {
                let at = serde_json::from_str::<At>(&plan).map(|a| a.at).unwrap_or(0);
                if now.saturating_sub(at) >= older_than.as_millis() as u64 {
                    stale.push((self.name().to_string(), pid));
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let n = stale.len();
        spawn_all(&self.inner.conn, stale).await?;
        Ok(n)
    }

    /// Whether any outcome or plan of a flow waits in this queue: what a
    /// runner's sweep looks at before doing more.
    pub async fn flow_work_pending(&self) -> Result<bool> {
        let mut pipe = redis::pipe();
        pipe.cmd("HLEN").arg(self.inner.keys.get("notify")).cmd("HLEN").arg(self.inner.keys.get("spawn"));
        let (outcomes, plans): (u64, u64) = self.inner.conn.pipeline(&pipe).await.context("flow work")?;
        Ok(outcomes + plans > 0)
    }

    /// A page of a parent's children, from number `from` (1-based) on, with
    /// their outcomes; `None` when the job is not a flow's parent (or is
    /// gone). Each page costs O(log n + limit).
    pub async fn children(&self, id: &str, from: u64, limit: u64) -> Result<Option<ChildrenPage>> {
        let limit = limit.clamp(1, 1000);
        let from = from.clamp(1, 9_999_999);
        let reply: Vec<String> = self.flow_op(vec![arg("children"), arg(id), arg(from), arg(limit)]).await?;
        let Some((counts, rest)) = reply.split_first() else { bail!("flow children: an empty reply") };
        if counts.is_empty() {
            return Ok(None);
        }
        let counts: ChildCounts = serde_json::from_str(counts).context("a parent's counts")?;
        let n = rest.len() / 3;
        let (refs, outcomes) = rest.split_at(2 * n);
        let mut children = Vec::with_capacity(n);
        for (pair, outcome) in refs.chunks(2).zip(outcomes) {
            let number: u64 = pair[0].parse().context("a child's number")?;
            let (queue, child) = pair[1].split_once(' ').context("a child's reference")?;
            let (status, body) = outcome.split_once(' ').unwrap_or((outcome.as_str(), ""));
            let (state, value, error) = match status {
                "" => (ChildState::Pending, None, None),
                "completed" => {
                    (ChildState::Completed, (!body.is_empty()).then(|| serde_json::from_str(body).ok()).flatten(), None)
                }
                "failed" => (ChildState::Failed, None, Some(body.to_string())),
                _ => (ChildState::Removed, None, None),
            };
            children.push(Child { number, queue: queue.to_string(), id: child.to_string(), state, value, error });
        }
        let next = (children.len() as u64 == limit && from + limit <= counts.total).then_some(from + limit);
        Ok(Some(ChildrenPage { counts, children, next }))
    }

    /// The ids of this queue's children that finished, as they finish (for
    /// runners, which relay their outcomes; on a connection of its own).
    /// The stream ends if the connection drops: subscribe again.
    pub async fn flow_signals(&self) -> Result<impl futures::Stream<Item = ()> + use<>> {
        use futures::StreamExt;
        let client = self.inner.conn.pubsub_client();
        let mut pubsub = client.get_async_pubsub().await.context("subscribe to flow outcomes")?;
        pubsub.subscribe(&self.inner.keys.flow_channel).await.context("subscribe to flow outcomes")?;
        Ok(pubsub.into_on_message().map(|_| ()))
    }
}
