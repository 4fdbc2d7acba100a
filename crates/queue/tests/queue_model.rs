//! Model-based test: random sequences of operations run against the real
//! queue (on a real Redis) and against a small in-memory model of the state
//! machine; after every step the counts agree, and after every sequence
//! each job's state and attempts agree.

use jobrunner_queue::{AfterFailure, Backoff, Completion, Connection, Failure, JobOptions, Keep, NewJob, Queue, State};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const MAX_ATTEMPTS: u32 = 2;

#[derive(Debug, Clone)]
enum Op {
    Enqueue { priority: u32, delayed: bool },
    Fetch(usize),
    Complete(usize),
    StaleAck(usize),
    Fail { pick: usize, permanent: bool },
    Retry(usize),
    Remove(usize),
    Promote(usize),
    Pause,
    Resume,
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
    ]
}

#[derive(Debug, Clone)]
struct Job {
    state: State,
    priority: u32,
    seq: u64,
    attempts: u32,
    token: Option<String>,
}

#[derive(Default)]
struct Model {
    jobs: BTreeMap<String, Job>,
    paused: bool,
    seq: u64,
    next_id: usize,
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
                Job { state: State::Delayed, priority: *priority, seq: 0, attempts: 0, token: None },
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
                let c = Completion { id: id.clone(), token, result: None, progress: None, log: None };
                assert_eq!(q.complete(&[c], Keep { count: None, age_ms: None }).await.unwrap(), vec![true]);
                m.jobs.get_mut(&id).unwrap().state = State::Completed;
            }
        }
        Op::StaleAck(pick) => {
            if let Some(id) = m.pick(Some(State::Active), *pick) {
                let c = Completion { id, token: "0".into(), result: None, progress: None, log: None };
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
                m.jobs.remove(&id);
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
    }
}

static CASE: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

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
                let expect = (m.count(State::Waiting), m.count(State::Delayed), m.count(State::Active), m.count(State::Completed), m.count(State::Failed), m.paused);
                assert_eq!((c.waiting, c.delayed, c.active, c.completed, c.failed, c.paused), expect, "after {op:?}");
            }
            for (id, j) in &m.jobs {
                let r = q.get(id).await.unwrap().unwrap();
                assert_eq!((r.state, r.attempts_made), (j.state, j.attempts), "job {id}");
            }
        });
    }
}
