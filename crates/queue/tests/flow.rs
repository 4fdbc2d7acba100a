//! Flows against a real `redis-server`: parents that wait for children in
//! their own and other queues, nested flows, what a failed child does to
//! its parent, retries, removal, a producer cut short, a Redis restart,
//! outcomes delivered twice, and a fan-in of 10,000 children.

use jobrunner_queue::{
    ChildState, Completion, Connection, Failure, FlowJob, JobOptions, Keep, Leased, OnFailure, Queue, State, add_flow,
    remove_flow,
};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use testkit::redis::RedisServer;

const LEASE: Duration = Duration::from_secs(30);

async fn connect(redis: &RedisServer) -> Connection {
    Connection::connect(&redis.url()).await.unwrap()
}

/// A flow's job from JSON.
fn flow(json: serde_json::Value) -> FlowJob {
    serde_json::from_value(json).unwrap()
}

fn completion(l: &Leased, result: &str) -> Completion {
    Completion { result: Some(result.into()), ..Completion::of(l) }
}

/// Leases everything waiting in `q` and completes it, each with its own id
/// as its output; returns the ids.
async fn complete_all(q: &Queue) -> Vec<String> {
    let leased = q.fetch(1000, LEASE).await.unwrap().jobs;
    let done: Vec<Completion> = leased.iter().map(|l| completion(l, &format!("{{\"from\":\"{}\"}}", l.id))).collect();
    assert!(q.complete(&done, Keep { count: None, age_ms: None }).await.unwrap().iter().all(|ok| *ok));
    leased.into_iter().map(|l| l.id).collect()
}

async fn state(q: &Queue, id: &str) -> State {
    q.get(id).await.unwrap().unwrap_or_else(|| panic!("{id} exists")).state
}

#[tokio::test]
async fn a_parent_runs_after_its_children_in_any_queue_and_reads_their_outputs() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let (reports, sends) = (Queue::new(conn.clone(), "reports").unwrap(), Queue::new(conn.clone(), "sends").unwrap());
    // As JSON text, the way the API and the CLI take it: payloads are kept
    // as they were written.
    let text = r#"{
        "queue": "reports", "id": "campaign-1", "type": "report", "payload": {"campaign": 1},
        "children": [
            {"queue": "sends", "id": "to-ann", "type": "send", "payload": {"to": "ann"}},
            {"queue": "sends", "id": "to-bob", "type": "send", "payload": {"to": "bob"}},
            {"queue": "reports", "id": "audit", "type": "audit"}
        ]
    }"#;
    let added = add_flow(&conn, serde_json::from_str(text).unwrap()).await.unwrap();
    assert_eq!((added.id.as_str(), added.created, added.jobs), ("campaign-1", true, 4));
    assert_eq!(added.unfinished, None);
    assert_eq!(state(&reports, "campaign-1").await, State::WaitingChildren);
    assert_eq!(reports.counts().await.unwrap().waiting_children, 1);
    let child = sends.get("to-ann").await.unwrap().unwrap();
    assert_eq!(child.parent.as_ref().map(|p| (p.queue.as_str(), p.id.as_str())), Some(("reports", "campaign-1")));
    let listed = reports.list(State::WaitingChildren, 0, 10).await.unwrap();
    assert_eq!(listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["campaign-1"]);

    // Only the child in the parent's own queue is handed out there.
    assert_eq!(complete_all(&reports).await, ["audit"]);
    let mut sent = complete_all(&sends).await;
    sent.sort();
    assert_eq!(sent, ["to-ann", "to-bob"]);
    // Done, but not yet told: the outcomes wait in the children's outboxes.
    assert_eq!(state(&reports, "campaign-1").await, State::WaitingChildren);
    assert_eq!(sends.relay_outcomes().await.unwrap(), 2);
    assert_eq!(state(&reports, "campaign-1").await, State::WaitingChildren, "one child is still untold");
    assert_eq!(reports.relay_outcomes().await.unwrap(), 1);
    assert_eq!(state(&reports, "campaign-1").await, State::Waiting);
    assert_eq!(sends.relay_outcomes().await.unwrap(), 0, "an outbox once relayed is empty");

    let page = reports.children("campaign-1", 1, 10).await.unwrap().unwrap();
    assert_eq!((page.counts.total, page.counts.pending, page.counts.completed), (3, 0, 3));
    let seen: Vec<(u64, &str, &str, ChildState)> =
        page.children.iter().map(|c| (c.number, c.queue.as_str(), c.id.as_str(), c.state)).collect();
    assert_eq!(
        seen,
        [
            (1, "sends", "to-ann", ChildState::Completed),
            (2, "sends", "to-bob", ChildState::Completed),
            (3, "reports", "audit", ChildState::Completed)
        ]
    );
    assert_eq!(page.children[1].value, Some(serde_json::json!({"from": "to-bob"})));
    assert_eq!(page.next, None);
    let record = reports.get("campaign-1").await.unwrap().unwrap();
    assert_eq!(record.children.map(|c| c.completed), Some(3));

    // The parent runs like any job.
    let parent = reports.fetch(10, LEASE).await.unwrap().jobs;
    assert_eq!(parent.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["campaign-1"]);
    assert_eq!(parent[0].spec.payload.get(), r#"{"campaign": 1}"#, "the payload is kept as written");
    assert!(reports.children("to-ann", 1, 10).await.unwrap().is_none(), "not a parent: no children");
}

#[tokio::test]
async fn nested_flows_release_one_level_at_a_time() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let (top, mid, leaf) = (
        Queue::new(conn.clone(), "top").unwrap(),
        Queue::new(conn.clone(), "mid").unwrap(),
        Queue::new(conn.clone(), "leaf").unwrap(),
    );
    add_flow(
        &conn,
        flow(serde_json::json!({
            "queue": "top", "id": "root", "type": "t",
            "children": [{"queue": "mid", "id": "chunk", "type": "m", "children": [
                {"queue": "leaf", "id": "a", "type": "l"},
                {"queue": "leaf", "id": "b", "type": "l"},
            ]}],
        })),
    )
    .await
    .unwrap();
    assert_eq!(state(&mid, "chunk").await, State::WaitingChildren);
    assert!(mid.fetch(10, LEASE).await.unwrap().jobs.is_empty(), "a parent waits while its children run");
    assert_eq!(complete_all(&leaf).await.len(), 2);
    leaf.relay_outcomes().await.unwrap();
    assert_eq!(state(&mid, "chunk").await, State::Waiting);
    assert_eq!(state(&top, "root").await, State::WaitingChildren);
    assert_eq!(complete_all(&mid).await, ["chunk"]);
    mid.relay_outcomes().await.unwrap();
    assert_eq!(state(&top, "root").await, State::Waiting);
}

/// One parent with two children, the first of which fails for good with
/// `on_failure`; returns the parent's state after the failure is relayed
/// and after the second child completes.
async fn fail_first_child(conn: &Connection, name: &str, on_failure: OnFailure) -> (Queue, State, State) {
    let (parents, kids) = (
        Queue::new(conn.clone(), &format!("{name}-p")).unwrap(),
        Queue::new(conn.clone(), &format!("{name}-c")).unwrap(),
    );
    add_flow(
        conn,
        flow(serde_json::json!({
            "queue": parents.name(), "id": "p", "type": "p",
            "children": [
                {"queue": kids.name(), "id": "bad", "type": "c", "on_failure": on_failure},
                {"queue": kids.name(), "id": "good", "type": "c", "options": {"delay_ms": 60000}},
            ],
        })),
    )
    .await
    .unwrap();
    let bad = kids.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    assert_eq!(bad.id, "bad");
    kids.fail(&bad.id, &bad.token, &Failure::Permanent("boom".into()), None, None).await.unwrap();
    kids.relay_outcomes().await.unwrap();
    let after_failure = state(&parents, "p").await;
    kids.promote("good").await.unwrap();
    complete_all(&kids).await;
    kids.relay_outcomes().await.unwrap();
    let after_all = state(&parents, "p").await;
    (parents, after_failure, after_all)
}

#[tokio::test]
async fn a_failed_child_fails_its_parent_or_is_ignored_or_lets_it_run() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;

    let (parents, failed, later) = fail_first_child(&conn, "fail", OnFailure::Fail).await;
    assert_eq!((failed, later), (State::Failed, State::Failed));
    let record = parents.get("p").await.unwrap().unwrap();
    let reason = record.result.unwrap()["failed_reason"].as_str().unwrap().to_string();
    assert_eq!(reason, "child fail-c/bad failed: boom");
    assert_eq!(record.errors.last().map(|e| e.kind.as_str()), Some("child"));
    let page = parents.children("p", 1, 10).await.unwrap().unwrap();
    assert_eq!(page.children[0].error.as_deref(), Some("boom"));
    assert_eq!(page.children[1].state, ChildState::Completed, "the other child still ran and is recorded");

    let (parents, failed, later) = fail_first_child(&conn, "ignore", OnFailure::Ignore).await;
    assert_eq!((failed, later), (State::WaitingChildren, State::Waiting));
    let counts = parents.children("p", 1, 10).await.unwrap().unwrap().counts;
    assert_eq!((counts.failed, counts.completed, counts.pending), (1, 1, 0));

    let (parents, failed, later) = fail_first_child(&conn, "continue", OnFailure::Continue).await;
    assert_eq!((failed, later), (State::Waiting, State::Waiting));
    let page = parents.children("p", 1, 10).await.unwrap().unwrap();
    assert_eq!(page.children.iter().map(|c| c.state).collect::<Vec<_>>(), [ChildState::Failed, ChildState::Completed]);
    assert_eq!(parents.fetch(10, LEASE).await.unwrap().jobs.len(), 1, "released once, not again by the last child");
}

#[tokio::test]
async fn a_retried_child_and_outcomes_delivered_twice_count_once() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let (parents, kids) = (Queue::new(conn.clone(), "rp").unwrap(), Queue::new(conn.clone(), "rc").unwrap());
    add_flow(
        &conn,
        flow(serde_json::json!({
            "queue": "rp", "id": "p", "type": "p",
            "children": [
                {"queue": "rc", "id": "flaky", "type": "c", "options": {"attempts": 3, "backoff": {"type": "none"}}},
                {"queue": "rc", "id": "steady", "type": "c"},
            ],
        })),
    )
    .await
    .unwrap();
    let first = kids.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    assert_eq!(first.id, "flaky");
    kids.fail(&first.id, &first.token, &Failure::Retry("try again".into()), None, None).await.unwrap();
    assert_eq!(kids.relay_outcomes().await.unwrap(), 0, "a retry is no outcome");
    complete_all(&kids).await;
    // Two runners relaying at once: each outcome is recorded once.
    let (a, b) = tokio::join!(kids.relay_outcomes(), kids.relay_outcomes());
    assert!(a.unwrap() + b.unwrap() >= 2);
    let counts = parents.children("p", 1, 10).await.unwrap().unwrap().counts;
    assert_eq!((counts.completed, counts.pending), (2, 0));
    assert_eq!(parents.fetch(10, LEASE).await.unwrap().jobs.len(), 1);

    // The same outcome delivered again, as a relay cut short between its
    // two steps does, changes nothing: the parent is not released twice.
    let again: Vec<String> = raw_notify(&redis, "rp", &["p", "rc flaky", "completed", "{}", "fail"]);
    assert_eq!(again, ["repeat"]);
    let counts = parents.children("p", 1, 10).await.unwrap().unwrap().counts;
    assert_eq!((counts.completed, counts.pending), (2, 0));
    assert_eq!(parents.counts().await.unwrap().waiting, 0);
}

/// Runs `flow.lua`'s `notify` on `queue` as a runner's relay does.
fn raw_notify(redis: &RedisServer, queue: &str, outcome: &[&str]) -> Vec<String> {
    let script = redis::Script::new(&format!(
        "local DEFAULT_OPTS = '{{}}'\n{}\n{}\n{}",
        include_str!("../src/lua/common.lua"),
        include_str!("../src/lua/prelude.lua"),
        include_str!("../src/lua/flow.lua")
    ));
    let mut inv = script.prepare_invoke();
    for k in &jobrunner_queue::keys::Keys::new("jr", queue).all {
        inv.key(k);
    }
    inv.arg("notify").arg("jr:{rp}:wake").arg(1);
    for a in outcome {
        inv.arg(*a);
    }
    inv.invoke(&mut redis.connection()).unwrap()
}

#[tokio::test]
async fn removing_a_flow_removes_every_job_in_it_and_a_removed_child_is_not_waited_for() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let (parents, kids) = (Queue::new(conn.clone(), "xp").unwrap(), Queue::new(conn.clone(), "xc").unwrap());
    let tree = |id: &str| {
        flow(serde_json::json!({
            "queue": "xp", "id": id, "type": "p",
            "children": [
                {"queue": "xc", "id": format!("{id}-a"), "type": "c"},
                {"queue": "xc", "id": format!("{id}-b"), "type": "c", "children": [{"queue": "xc", "id": format!("{id}-b1"), "type": "c"}]},
            ],
        }))
    };
    add_flow(&conn, tree("one")).await.unwrap();
    add_flow(&conn, tree("two")).await.unwrap();
    assert_eq!(remove_flow(&conn, "xp", "one").await.unwrap(), 4);
    for id in ["one-a", "one-b", "one-b1"] {
        assert!(kids.get(id).await.unwrap().is_none(), "{id} went with its flow");
    }
    assert!(parents.get("one").await.unwrap().is_none());
    assert!(kids.get("two-a").await.unwrap().is_some(), "another flow is left alone");

    // Removing one child by hand: its parent stops waiting for it.
    kids.remove("two-a").await.unwrap();
    assert_eq!(remove_flow(&conn, "xc", "two-b").await.unwrap(), 2, "a sub-flow and its child");
    kids.relay_outcomes().await.unwrap();
    assert_eq!(state(&parents, "two").await, State::Waiting);
    let counts = parents.children("two", 1, 10).await.unwrap().unwrap().counts;
    assert_eq!((counts.removed, counts.pending), (2, 0));
}

#[tokio::test]
async fn a_child_id_taken_by_another_job_fails_the_parent() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let kids = Queue::new(conn.clone(), "tc").unwrap();
    kids.enqueue(jobrunner_queue::NewJob {
        id: Some("taken".into()),
        job_type: "c".into(),
        payload: "{}".into(),
        options: JobOptions::default(),
    })
    .await
    .unwrap();
    add_flow(
        &conn,
        flow(serde_json::json!({"queue": "tp", "id": "p", "type": "p", "children": [{"queue": "tc", "id": "taken", "type": "c"}]})),
    )
    .await
    .unwrap();
    let parents = Queue::new(conn.clone(), "tp").unwrap();
    let record = parents.get("p").await.unwrap().unwrap();
    assert_eq!(record.state, State::Failed);
    let reason = record.result.unwrap()["failed_reason"].as_str().unwrap().to_string();
    assert!(reason.contains("exists already in queue tc"), "{reason}");
    assert!(kids.get("taken").await.unwrap().unwrap().parent.is_none(), "the other job is left as it was");

    // Adding the same flow again (a producer retrying) adds nothing.
    let again = add_flow(
        &conn,
        flow(serde_json::json!({"queue": "tp", "id": "p", "type": "p", "children": [{"queue": "tc", "id": "other", "type": "c"}]})),
    )
    .await
    .unwrap();
    assert!(!again.created);
    assert!(kids.get("other").await.unwrap().is_none());
}

#[tokio::test]
async fn bad_flows_are_refused_before_anything_is_written() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    for (tree, expect) in [
        (serde_json::json!({"queue": "b", "type": "p", "on_failure": "ignore"}), "root has no parent"),
        (
            serde_json::json!({"queue": "b", "type": "p", "children": [{"queue": "b b", "type": "c"}]}),
            "children[0]: queue name",
        ),
        (
            serde_json::json!({"queue": "b", "type": "p", "children": [{"queue": "c", "id": "x", "type": "c"}, {"queue": "c", "id": "x", "type": "c"}]}),
            "appears twice",
        ),
        (
            serde_json::json!({"queue": "b", "type": "p", "children": [{"queue": "c", "type": "c", "options": {"priority": 99999}}]}),
            "children[0]",
        ),
    ] {
        let err = add_flow(&conn, flow(tree)).await.unwrap_err().to_string();
        assert!(err.contains(expect), "{err:?} should say {expect:?}");
    }
    let unknown = serde_json::from_value::<FlowJob>(serde_json::json!({"queue": "b", "type": "p", "kids": []}));
    assert!(unknown.unwrap_err().to_string().contains("unknown field"));
    assert!(Queue::names(&conn).await.unwrap().is_empty(), "nothing was written");
}

#[tokio::test]
async fn a_flow_cut_short_is_finished_by_a_sweep() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let kids = Queue::new(conn.clone(), "full").unwrap();
    // The children's queue is full: the root is written, its children
    // cannot be, and the producer gets the error.
    kids.set_max_waiting(1).await.unwrap();
    kids.enqueue(jobrunner_queue::NewJob {
        id: None,
        job_type: "c".into(),
        payload: "{}".into(),
        options: JobOptions::default(),
    })
    .await
    .unwrap();
    let tree = serde_json::json!({"queue": "sp", "id": "p", "type": "p", "children": [{"queue": "full", "id": "k1", "type": "c"}, {"queue": "full", "id": "k2", "type": "c"}]});
    let added = add_flow(&conn, flow(tree)).await.unwrap();
    let why = added.unfinished.expect("the flow says its jobs are not all created");
    assert!(why.contains("is full"), "{why}");
    let parents = Queue::new(conn.clone(), "sp").unwrap();
    assert_eq!(state(&parents, "p").await, State::WaitingChildren);
    assert!(parents.flow_work_pending().await.unwrap());
    assert_eq!(parents.resume_spawns(Duration::from_secs(3600)).await.unwrap(), 0, "too young to be left");

    // Room again: a runner's sweep finishes the flow.
    kids.set_max_waiting(0).await.unwrap();
    assert_eq!(parents.resume_spawns(Duration::ZERO).await.unwrap(), 1);
    assert!(!parents.flow_work_pending().await.unwrap());
    assert_eq!(kids.get("k2").await.unwrap().unwrap().parent.unwrap().id, "p");
    complete_all(&kids).await;
    kids.relay_outcomes().await.unwrap();
    assert_eq!(state(&parents, "p").await, State::Waiting);
}

#[tokio::test]
async fn a_flow_survives_a_redis_restart() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always", "--save", ""]);
    let conn = connect(&redis).await;
    let (parents, kids) = (Queue::new(conn.clone(), "ap").unwrap(), Queue::new(conn.clone(), "ac").unwrap());
    let children: Vec<serde_json::Value> =
        (0..20).map(|i| serde_json::json!({"queue": "ac", "id": format!("k{i}"), "type": "c"})).collect();
    add_flow(&conn, flow(serde_json::json!({"queue": "ap", "id": "p", "type": "p", "children": children})))
        .await
        .unwrap();
    let half = kids.fetch(10, LEASE).await.unwrap().jobs;
    let done: Vec<Completion> = half.iter().map(|l| completion(l, "1")).collect();
    kids.complete(&done, Keep { count: None, age_ms: None }).await.unwrap();
    redis.restart();
    // The connection comes back by itself; the outcomes written before the
    // restart are still in the outbox.
    let deadline = Instant::now() + Duration::from_secs(20);
    let relayed = loop {
        match kids.relay_outcomes().await {
            Ok(n) => break n,
            Err(e) => {
                assert!(Instant::now() < deadline, "no reconnection: {e:#}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(relayed, 10);
    assert_eq!(state(&parents, "p").await, State::WaitingChildren);
    complete_all(&kids).await;
    kids.relay_outcomes().await.unwrap();
    assert_eq!(state(&parents, "p").await, State::Waiting);
    let counts = parents.children("p", 1, 1).await.unwrap().unwrap().counts;
    assert_eq!((counts.completed, counts.pending), (20, 0));
}

#[tokio::test]
async fn a_finished_parent_trimmed_by_retention_takes_its_flow_with_it() {
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let (parents, kids) = (Queue::new(conn.clone(), "kp").unwrap(), Queue::new(conn.clone(), "kc").unwrap());
    add_flow(
        &conn,
        flow(serde_json::json!({"queue": "kp", "id": "p", "type": "p", "children": [{"queue": "kc", "id": "k", "type": "c"}]})),
    )
    .await
    .unwrap();
    complete_all(&kids).await;
    kids.relay_outcomes().await.unwrap();
    let p = parents.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    parents.complete(&[completion(&p, "{}")], Keep { count: Some(0), age_ms: None }).await.unwrap();
    assert!(parents.get("p").await.unwrap().is_none());
    let mut c = redis.connection();
    for key in ["kids", "vals", "fcounts", "spawn"] {
        let full = format!("jr:{{kp}}:{key}");
        let exists: bool = redis::cmd("EXISTS").arg(&full).query(&mut c).unwrap();
        assert!(!exists, "{full} is gone with the parent");
    }
}

/// A fan-in of 10,000 children in one queue completes its parent exactly
/// once, and its children read back in pages, in order, each once. The
/// time per child is printed (`cargo test -- --nocapture`); the figure in
/// docs/performance.md comes from the benchmark harness in release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_children_complete_their_parent_once() {
    const N: usize = 10_000;
    let redis = RedisServer::start();
    let conn = connect(&redis).await;
    let (parents, kids) = (Queue::new(conn.clone(), "fan").unwrap(), Queue::new(conn.clone(), "fan-kids").unwrap());
    let children: Vec<serde_json::Value> =
        (0..N).map(|i| serde_json::json!({"queue": "fan-kids", "type": "send", "payload": {"n": i}})).collect();
    let started = Instant::now();
    let added = add_flow(&conn, flow(serde_json::json!({"queue": "fan", "type": "report", "children": children})))
        .await
        .unwrap();
    let add_time = started.elapsed();
    assert_eq!(added.jobs, N + 1);

    // Two workers complete the children while a third relays.
    let started = Instant::now();
    let worker = |q: Queue| async move {
        loop {
            let leased = q.fetch(256, LEASE).await.unwrap().jobs;
            if leased.is_empty() {
                return;
            }
            let done: Vec<Completion> = leased.iter().map(|l| completion(l, l.spec.payload.get())).collect();
            q.complete(&done, Keep { count: Some(100), age_ms: None }).await.unwrap();
        }
    };
    let relay = {
        let kids = kids.clone();
        tokio::spawn(async move {
            let mut relayed = 0;
            while relayed < N {
                relayed += kids.relay_outcomes().await.unwrap();
                tokio::task::yield_now().await;
            }
            relayed
        })
    };
    tokio::join!(worker(kids.clone()), worker(kids.clone()));
    assert_eq!(relay.await.unwrap(), N);
    let run_time = started.elapsed();
    assert_eq!(parents.counts().await.unwrap().waiting, 1, "released once");
    assert_eq!(parents.fetch(10, LEASE).await.unwrap().jobs.len(), 1);

    let mut seen = HashSet::new();
    let mut from = 1;
    let mut pages = 0;
    loop {
        let page = parents.children(&added.id, from, 1000).await.unwrap().unwrap();
        assert_eq!((page.counts.completed, page.counts.pending), (N as u64, 0));
        for c in &page.children {
            assert_eq!(c.number as usize, seen.len() + 1, "in the order given");
            assert_eq!(c.value.as_ref().and_then(|v| v["n"].as_u64()), Some(c.number - 1));
            assert!(seen.insert(c.id.clone()));
        }
        pages += 1;
        match page.next {
            Some(next) => from = next,
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (N, 10));
    println!(
        "10,000 children: added in {add_time:?} ({:.1} µs a child); completed and relayed in {run_time:?} ({:.1} µs a child, debug build)",
        add_time.as_secs_f64() * 1e6 / N as f64,
        run_time.as_secs_f64() * 1e6 / N as f64
    );
}
