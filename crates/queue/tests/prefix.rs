//! Key prefixes (`[redis] prefix`) against a real `redis-server`: two
//! namespaces on one server see none of each other's queues, jobs,
//! schedules or runners, and every key a queue writes is under its own.

use jobrunner_queue::{Connection, JobOptions, NewJob, Queue, Schedule, ScheduleSource, Timing, runners};
use std::time::Duration;
use testkit::redis::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prefixes_share_a_redis_without_seeing_each_other() {
    let redis = RedisServer::start();
    let base = Connection::connect(&redis.url()).await.unwrap();
    assert_eq!(base.prefix(), "jr");
    let (blue, green) = (base.with_prefix("blue").unwrap(), base.with_prefix("green").unwrap());
    let (qb, qg) = (Queue::new(blue.clone(), "emails").unwrap(), Queue::new(green.clone(), "emails").unwrap());
    let job = NewJob {
        id: Some("one".into()),
        job_type: "noop".into(),
        payload: "{}".into(),
        options: JobOptions::default(),
    };
    qb.enqueue(job.clone()).await.unwrap();
    qb.upsert_schedule(&Schedule {
        id: "tick".into(),
        job_type: "noop".into(),
        payload: serde_json::json!({}),
        options: JobOptions::default(),
        timing: Timing::Every { every_ms: 3_600_000 },
        source: ScheduleSource::Api,
    })
    .await
    .unwrap();

    assert_eq!(Queue::names(&blue).await.unwrap(), ["emails"]);
    assert!(Queue::names(&green).await.unwrap().is_empty());
    assert_eq!(qg.counts().await.unwrap().waiting, 0);
    assert!(qg.get("one").await.unwrap().is_none());
    assert!(qg.fetch(10, Duration::from_secs(60)).await.unwrap().jobs.is_empty());
    assert!(qg.list_schedules().await.unwrap().is_empty());
    // The same id is a job of its own under the other prefix.
    assert!(qg.enqueue(job).await.unwrap().created);
    assert_eq!(qb.fetch(10, Duration::from_secs(60)).await.unwrap().jobs.len(), 1);

    let mut info = runners::RunnerInfo {
        id: "host:1".into(),
        hostname: "host".into(),
        pid: 1,
        version: "test".into(),
        started_at_ms: 0,
        last_seen_ms: 0,
        queues: vec!["emails".into()],
        ..Default::default()
    };
    runners::beat(&blue, &mut info).await.unwrap();
    assert_eq!(runners::list(&blue).await.unwrap().len(), 1);
    assert!(runners::list(&green).await.unwrap().is_empty());

    // Every key written is under one of the two prefixes; none under `jr`.
    let mut c = redis.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| k.starts_with("blue:") || k.starts_with("green:")), "{keys:?}");
    assert!(base.with_prefix("bad{tag}").is_err());
}
