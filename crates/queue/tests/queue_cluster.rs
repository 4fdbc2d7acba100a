//! The queue engine on a real Redis Cluster of three masters started by the
//! test: queues spread over the nodes, every script touches one slot, and
//! wake-ups published on one node reach a consumer connected to another.

use jobrunner_queue::{Completion, Connection, Consumer, JobOptions, Keep, NewJob, Queue};
use std::time::Duration;
use testkit::cluster::RedisCluster;

#[tokio::test]
async fn queues_spread_over_a_cluster_and_work_on_every_node() {
    let cluster = RedisCluster::start(3, 0);
    let conn = Connection::connect(&cluster.url()).await.unwrap();
    assert!(conn.is_cluster());
    let names: Vec<String> = (0..9).map(|i| format!("cq{i}")).collect();
    for name in &names {
        let q = Queue::new(conn.clone(), name).unwrap();
        let jobs = (0..50)
            .map(|i| NewJob {
                id: None,
                job_type: "noop".into(),
                payload: format!("{{\"i\":{i}}}"),
                options: JobOptions::default(),
            })
            .collect();
        q.enqueue_bulk(jobs).await.unwrap();
    }
    // The queues' keys landed on more than one master.
    let nodes_with_keys = cluster
        .ports
        .iter()
        .filter(|p| {
            let out = std::process::Command::new("redis-cli").args(["-p", &p.to_string(), "dbsize"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().unwrap_or(0) > 0
        })
        .count();
    assert!(nodes_with_keys >= 2, "the queues spread over the nodes ({nodes_with_keys})");

    for name in &names {
        let q = Queue::new(conn.clone(), name).unwrap();
        let consumer = Consumer::new(q.clone());
        let mut done = 0;
        while done < 50 {
            let batch = consumer.next(20, Duration::from_secs(30), Duration::from_secs(10)).await.unwrap();
            assert!(!batch.is_empty(), "queue {name} stalled at {done}");
            let acks: Vec<Completion> = batch.iter().map(Completion::of).collect();
            let ok = q.complete(&acks, Keep { count: None, age_ms: None }).await.unwrap();
            assert!(ok.iter().all(|b| *b));
            done += batch.len();
        }
        let c = q.counts().await.unwrap();
        assert_eq!((c.waiting, c.active, c.completed), (0, 0, 50), "{name}");
    }
    // A consumer waiting on one queue is woken by an enqueue that runs on
    // whichever node owns that queue's slot.
    let q = Queue::new(conn.clone(), "cq-wake").unwrap();
    let consumer = std::sync::Arc::new(Consumer::new(q.clone()));
    let c = consumer.clone();
    let waiter =
        tokio::spawn(async move { c.next(1, Duration::from_secs(30), Duration::from_secs(20)).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    q.enqueue(NewJob { id: None, job_type: "noop".into(), payload: "{}".into(), options: JobOptions::default() })
        .await
        .unwrap();
    let leased = waiter.await.unwrap();
    assert_eq!(leased.len(), 1);

    // A wait for a job reads its queue's events on the node that holds them,
    // whichever queue (and so node) it is.
    for name in &names {
        let q = Queue::new(conn.clone(), name).unwrap();
        let id = format!("{name}-waited");
        q.enqueue(NewJob {
            id: Some(id.clone()),
            job_type: "noop".into(),
            payload: "{}".into(),
            options: JobOptions::default(),
        })
        .await
        .unwrap();
        let waiting = {
            let (q, id) = (q.clone(), id.clone());
            tokio::spawn(async move { q.wait(&id, Duration::from_secs(30)).await })
        };
        let job = Consumer::new(q.clone()).next(1, Duration::from_secs(30), Duration::from_secs(10)).await.unwrap();
        q.complete(&[Completion::of(&job[0])], Keep { count: None, age_ms: None }).await.unwrap();
        let record = waiting.await.unwrap().unwrap().expect("the job");
        assert_eq!((record.id.as_str(), record.state), (id.as_str(), jobrunner_queue::State::Completed));
    }
}

/// A flow across queues in different slots of a cluster (on different
/// masters): each step is one script on one queue, so it needs nothing of
/// the cluster; the parent runs once its children, nested one level,
/// have finished, and reads their outputs; the flow signal published on
/// one node reaches a subscriber connected to another.
#[tokio::test]
async fn a_flow_spans_queues_on_different_masters() {
    use futures::StreamExt;
    let cluster = RedisCluster::start(3, 0);
    let conn = Connection::connect(&cluster.url()).await.unwrap();
    let names: Vec<String> = (0..3).map(|i| format!("flow{i}")).collect();
    let (top, mid, leaf) = (
        Queue::new(conn.clone(), &names[0]).unwrap(),
        Queue::new(conn.clone(), &names[1]).unwrap(),
        Queue::new(conn.clone(), &names[2]).unwrap(),
    );
    let mut signals = leaf.flow_signals().await.unwrap();
    let flow: jobrunner_queue::FlowJob = serde_json::from_value(serde_json::json!({
        "queue": "flow0", "id": "root", "type": "t", "children": [
            {"queue": "flow1", "id": "mid", "type": "t", "children": [
                {"queue": "flow2", "id": "a", "type": "t", "payload": {"n": 1}},
                {"queue": "flow2", "id": "b", "type": "t", "payload": {"n": 2}},
            ]},
            {"queue": "flow2", "id": "c", "type": "t", "payload": {"n": 3}},
        ],
    }))
    .unwrap();
    let added = jobrunner_queue::add_flow(&conn, flow).await.unwrap();
    assert_eq!((added.jobs, added.unfinished), (5, None));
    // Which master holds each queue: the one answering for its specs.
    let owner = |name: &str| {
        let key = jobrunner_queue::keys::Keys::new("jr", name).get("specs").to_string();
        cluster.ports.iter().position(|p| {
            let out =
                std::process::Command::new("redis-cli").args(["-p", &p.to_string(), "exists", &key]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim() == "1"
        })
    };
    let owners: std::collections::HashSet<Option<usize>> = names.iter().map(|n| owner(n)).collect();
    assert!(owners.len() >= 2 && !owners.contains(&None), "the flow's queues are on more than one master: {owners:?}");
    let complete = |q: Queue| async move {
        let leased = q.fetch(10, Duration::from_secs(30)).await.unwrap().jobs;
        let done: Vec<Completion> = leased
            .iter()
            .map(|l| Completion { result: Some(l.spec.payload.get().to_string()), ..Completion::of(l) })
            .collect();
        q.complete(&done, Keep { count: None, age_ms: None }).await.unwrap();
        leased.len()
    };
    assert_eq!(complete(leaf.clone()).await, 3);
    // The finished children announced themselves on their queue's channel.
    tokio::time::timeout(Duration::from_secs(10), signals.next()).await.unwrap().unwrap();
    assert_eq!(leaf.relay_outcomes().await.unwrap(), 3);
    assert_eq!(complete(mid.clone()).await, 1, "the middle parent runs once its two children are done");
    mid.relay_outcomes().await.unwrap();
    assert_eq!(complete(top.clone()).await, 1, "the root runs last");
    let page = top.children("root", 1, 10).await.unwrap().unwrap();
    assert_eq!(page.children.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["mid", "c"]);
    assert_eq!(page.children[1].value, Some(serde_json::json!({"n": 3})));
    let page = mid.children("mid", 1, 10).await.unwrap().unwrap();
    assert_eq!((page.counts.completed, page.counts.pending), (2, 0));
}
