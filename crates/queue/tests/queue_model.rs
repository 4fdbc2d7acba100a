//! Model-based test: random sequences of operations run against the real
//! queue (on a real Redis) and against a small in-memory model of the state
//! machine; after every step the counts agree, and after every sequence
//! each job's state and attempts agree, and each flow parent's counts of
//! its children's outcomes.

use jobrunner_queue::{
    AfterFailure, Backoff, Completion, Connection, Failure, FlowJob, JobOptions, Keep, NewJob, OnFailure, Queue, State,
    add_flow,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const MAX_ATTEMPTS: u32 = 2;

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        priority: u32,
        delayed: bool,
    },
    Fetch(usize),
    Complete(usize),
    StaleAck(usize),
    Fail {
        pick: usize,
        permanent: bool,
    },
    Retry(usize),
    Remove(usize),
    Promote(usize),
    Pause,
    Resume,
    /// A flow: a parent with 1 to 3 children, in this queue, each child's
    /// failure doing `on` (0 fail, 1 ignore, 2 continue) to the parent.
    AddFlow {
        children: usize,
        on: usize,
    },
    /// A runner relays the finished children's outcomes to their parents.
    Relay,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..3, any::<bool>()).prop_map(|(priority, delayed)| Op::Enqueue { priority, delayed }),
        3 => (1usize..4).prop_map(Op::Fetch),
        2 => any::<usize>().prop_map(Op::Complete),
        1 => any::<usize>().prop_map(Op::StaleAck),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, permanent)| Op::Fail { pick, permanent }),
        1 => any::<usize>().prop_map(Op::Retry),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => any::<usize>().prop_map(Op::Promote),
        1 => Just(Op::Pause),
        1 => Just(Op::Resume),
        2 => (1usize..4, 0usize..3).prop_map(|(children, on)| Op::AddFlow { children, on }),
        2 => Just(Op::Relay),
    ]
}

#[derive(Debug, Clone)]
struct Job {
    state: State,
    priority: u32,
    seq: u64,
    attempts: u32,
    token: Option<String>,
    /// A flow's child not finished yet: its parent, and what its failure
    /// does to it.
    parent: Option<(String, OnFailure)>,
}

/// A flow parent's children by outcome, as the parent has recorded them.
#[derive(Debug, Default, Clone, PartialEq)]
struct Kids {
    pending: i64,
    completed: u64,
    failed: u64,
    removed: u64,
}

#[derive(Default)]
struct Model {
    jobs: BTreeMap<String, Job>,
    paused: bool,
    seq: u64,
    next_id: usize,
    flows: BTreeMap<String, Kids>,
    /// Finished children's outcomes not yet relayed, in the order they
    /// finished: (parent, on failure, status).
    outbox: Vec<(String, OnFailure, &'static str)>,
}

impl Model {
    fn ids_in(&self, state: State) -> Vec<String> {
        self.jobs.iter().filter(|(_, j)| j.state == state).map(|(id, _)| id.clone()).collect()
    }

    fn pick(&self, state: Option<State>, n: usize) -> Option<String> {
        let ids: Vec<String> = match state {
            Some(s) => self.ids_in(s),
            None => self.jobs.keys().cloned().collect(),
        };
        (!ids.is_empty()).then(|| ids[n % ids.len()].clone())
    }

    fn make_waiting(&mut self, id: &str) {
        self.seq += 1;
        let j = self.jobs.get_mut(id).unwrap();
        j.state = State::Waiting;
        j.seq = self.seq;
    }

    fn count(&self, s: State) -> u64 {
        self.jobs.values().filter(|j| j.state == s).count() as u64
    }

    /// A job that finished (or was removed): a flow's child tells its parent.
    fn finished(&mut self, id: &str, status: &'static str) {
        if let Some((parent, on)) = self.jobs.get_mut(id).and_then(|j| j.parent.take()) {
            self.outbox.push((parent, on, status));
        }
    }

    /// The relay, in the order the children finished: the outbox is a
    /// small hash, which Redis keeps as a listpack and scans in insertion
    /// order, so the parents it releases join the line in that order.
    fn relay(&mut self) -> usize {
        let outcomes = std::mem::take(&mut self.outbox);
        for (parent, on, status) in &outcomes {
            let Some(kids) = self.flows.get_mut(parent) else { continue };
            kids.pending -= 1;
            match *status {
                "completed" => kids.completed += 1,
                "failed" => kids.failed += 1,
                _ => kids.removed += 1,
            }
            let pending = kids.pending;
            if self.jobs.get(parent).is_none_or(|p| p.state != State::WaitingChildren) {
                continue;
            }
            match (*status, on) {
                ("failed", OnFailure::Fail) => self.jobs.get_mut(parent).unwrap().state = State::Failed,
                ("failed", OnFailure::Continue) => self.make_waiting(parent),
                _ if pending <= 0 => self.make_waiting(parent),
                _ => {}
            }
        }
        outcomes.len()
    }
}

fn options() -> JobOptions {
    JobOptions {
        attempts: Some(MAX_ATTEMPTS),
        backoff: Some(Backoff::None),
        keep_completed: Some(Keep { count: None, age_ms: None }),
        keep_failed: Some(Keep { count: None, age_ms: None }),
        ..Default::default()
    }
}

const LEASE: Duration = Duration::from_secs(600);

async fn step(q: &Queue, m: &mut Model, op: &Op) {
    match op {
        Op::Enqueue { priority, delayed } => {
            m.next_id += 1;
            let id = format!("m{:03}", m.next_id);
            let mut o = options();
            o.priority = Some(*priority);
            o.delay_ms = if *delayed { 3_600_000 } else { 0 };
            q.enqueue(NewJob { id: Some(id.clone()), job_type: "t".into(), payload: "{}".into(), options: o })
                .await
                .unwrap();
            m.jobs.insert(
                id.clone(),
                Job { state: State::Delayed, priority: *priority, seq: 0, attempts: 0, token: None, parent: None },
            );
            if !*delayed {
                m.make_waiting(&id);
            }
        }
        Op::Fetch(n) => {
            let got = q.fetch(*n, LEASE).await.unwrap().jobs;
            let mut expect: Vec<(u32, u64, String)> = if m.paused {
                vec![]
            } else {
                m.jobs
                    .iter()
                    .filter(|(_, j)| j.state == State::Waiting)
                    .map(|(id, j)| (j.priority, j.seq, id.clone()))
                    .collect()
            };
            expect.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            expect.truncate(*n);
            let got_ids: Vec<String> = got.iter().map(|l| l.id.clone()).collect();
            let expect_ids: Vec<String> = expect.into_iter().map(|e| e.2).collect();
            assert_eq!(got_ids, expect_ids, "fetch order");
            for l in got {
                let j = m.jobs.get_mut(&l.id).unwrap();
                j.attempts += 1;
                assert_eq!(l.attempt, j.attempts);
                j.state = State::Active;
                j.token = Some(l.token);
            }
        }
        Op::Complete(pick) => {
            if let Some(id) = m.pick(Some(State::Active), *pick) {
                let token = m.jobs[&id].token.clone().unwrap();
                let c = Completion { id: id.clone(), token, result: None, progress: None, log: None, run: None };
                assert_eq!(q.complete(&[c], Keep { count: None, age_ms: None }).await.unwrap(), vec![true]);
                m.jobs.get_mut(&id).unwrap().state = State::Completed;
                m.finished(&id, "completed");
            }
        }
        Op::StaleAck(pick) => {
            if let Some(id) = m.pick(Some(State::Active), *pick) {
                let c = Completion { id, token: "0".into(), result: None, progress: None, log: None, run: None };
                assert_eq!(q.complete(&[c], Keep { count: None, age_ms: None }).await.unwrap(), vec![false]);
            }
        }
        Op::Fail { pick, permanent } => {
            if let Some(id) = m.pick(Some(State::Active), *pick) {
                let token = m.jobs[&id].token.clone().unwrap();
                let f = if *permanent { Failure::Permanent("p".into()) } else { Failure::Retry("r".into()) };
                let after = q.fail(&id, &token, &f, None, None).await.unwrap();
                if *permanent || m.jobs[&id].attempts >= MAX_ATTEMPTS {
                    assert_eq!(after, AfterFailure::Failed);
                    m.jobs.get_mut(&id).unwrap().state = State::Failed;
                    m.finished(&id, "failed");
                } else {
                    assert_eq!(after, AfterFailure::Waiting);
                    m.make_waiting(&id);
                }
            }
        }
        Op::Retry(pick) => {
            if let Some(id) = m.pick(Some(State::Failed), *pick) {
                assert_eq!(q.retry(&id).await.unwrap(), "retried");
                m.jobs.get_mut(&id).unwrap().attempts = 0;
                m.make_waiting(&id);
            }
        }
        Op::Remove(pick) => {
            if let Some(id) = m.pick(None, *pick) {
                assert_eq!(q.remove(&id).await.unwrap(), m.jobs[&id].state.as_str());
                m.finished(&id, "removed");
                m.jobs.remove(&id);
                m.flows.remove(&id);
            }
        }
        Op::Promote(pick) => {
            if let Some(id) = m.pick(Some(State::Delayed), *pick) {
                assert_eq!(q.promote(&id).await.unwrap(), "promoted");
                m.make_waiting(&id);
            }
        }
        Op::Pause => {
            q.pause().await.unwrap();
            m.paused = true;
        }
        Op::Resume => {
            q.resume().await.unwrap();
            m.paused = false;
        }
        Op::AddFlow { children, on } => {
            m.next_id += 1;
            let pid = format!("m{:03}", m.next_id);
            let on = [OnFailure::Fail, OnFailure::Ignore, OnFailure::Continue][*on];
            let kids: Vec<serde_json::Value> = (0..*children)
                .map(|i| {
                    serde_json::json!({"queue": q.name(), "id": format!("{pid}c{i}"), "type": "t",
                        "options": options(), "on_failure": on})
                })
                .collect();
            let flow: FlowJob = serde_json::from_value(
                serde_json::json!({"queue": q.name(), "id": pid, "type": "t", "options": options(), "children": kids}),
            )
            .unwrap();
            assert_eq!(add_flow(q.connection(), flow).await.unwrap().unfinished, None);
            let job =
                |parent| Job { state: State::WaitingChildren, priority: 0, seq: 0, attempts: 0, token: None, parent };
            m.jobs.insert(pid.clone(), job(None));
            m.flows.insert(pid.clone(), Kids { pending: *children as i64, ..Kids::default() });
            for i in 0..*children {
                let id = format!("{pid}c{i}");
                m.jobs.insert(id.clone(), job(Some((pid.clone(), on))));
                m.make_waiting(&id);
            }
        }
        Op::Relay => {
            assert_eq!(q.relay_outcomes().await.unwrap(), m.relay(), "outcomes relayed");
        }
    }
}

static CASE: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_queue_matches_its_model(ops in proptest::collection::vec(op(), 1..40)) {
        static REDIS: std::sync::OnceLock<testkit::redis::RedisServer> = std::sync::OnceLock::new();
        let redis = REDIS.get_or_init(testkit::redis::RedisServer::start);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let name = format!("model{}", CASE.fetch_add(1, Ordering::Relaxed));
            let q = Queue::new(Connection::connect(&redis.url()).await.unwrap(), &name).unwrap();
            let mut m = Model::default();
            for op in &ops {
                step(&q, &mut m, op).await;
                let c = q.counts().await.unwrap();
                let expect = (m.count(State::Waiting), m.count(State::Delayed), m.count(State::Active), m.count(State::Completed), m.count(State::Failed), m.count(State::WaitingChildren), m.paused);
                assert_eq!((c.waiting, c.delayed, c.active, c.completed, c.failed, c.waiting_children, c.paused), expect, "after {op:?}");
            }
            for (id, j) in &m.jobs {
                let r = q.get(id).await.unwrap().unwrap();
                assert_eq!((r.state, r.attempts_made), (j.state, j.attempts), "job {id}");
            }
            for (id, kids) in &m.flows {
                let c = q.children(id, 1, 10).await.unwrap().unwrap().counts;
                let real = Kids { pending: c.pending, completed: c.completed, failed: c.failed, removed: c.removed };
                assert_eq!(&real, kids, "the children of {id}");
            }
        });
    }
}
