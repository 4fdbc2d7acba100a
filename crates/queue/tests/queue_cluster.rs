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
