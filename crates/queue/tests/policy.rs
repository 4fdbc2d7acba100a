//! A queue's policy against a real `redis-server`: the defaults it gives
//! jobs whose producers set nothing (attempts, backoff, priority, failed-job
//! retention), the producer's own values winning, groups read from the
//! payload with their rate, the queue's rate, and a changed policy taking
//! effect on the next failure.

use jobrunner_queue::{
    AfterFailure, Backoff, Connection, Failure, JobOptions, Keep, NewJob, Queue, QueuePolicy, Rate, Source, State,
};
use std::time::Duration;
use testkit::redis::RedisServer;

const LEASE: Duration = Duration::from_secs(600);

async fn queue(redis: &RedisServer, name: &str) -> Queue {
    Queue::new(Connection::connect(&redis.url()).await.unwrap(), name).unwrap()
}

fn job(id: &str, payload: &str, options: JobOptions) -> NewJob {
    NewJob { id: Some(id.into()), job_type: "noop".into(), payload: payload.into(), options }
}

/// Fails a leased job once, as a plugin's retryable error.
async fn fail(q: &Queue, l: &jobrunner_queue::Leased) -> AfterFailure {
    q.fail(&l.id, &l.token, &Failure::Retry("boom".into()), None, None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_fills_what_the_producer_left_unset_and_the_producer_wins() {
    let redis = RedisServer::start();
    let q = queue(&redis, "policed").await;
    q.set_policy(&QueuePolicy {
        attempts: Some(2),
        backoff: Some(Backoff::None),
        priority: Some(7),
        ..Default::default()
    })
    .await
    .unwrap();
    // `own` sets the built-in defaults explicitly: they are its producer's
    // word, so they beat the queue's. Enqueued first, it runs second.
    let own = JobOptions { attempts: Some(3), priority: Some(0), ..Default::default() };
    q.enqueue(job("own", "{}", own)).await.unwrap();
    // Without an id: the lean one-job path, which hands a queue with a
    // default priority to the full enqueue.
    let plain = q.enqueue(NewJob { id: None, ..job("x", "{}", JobOptions::default()) }).await.unwrap();
    assert!(plain.created);

    let record = q.get(&plain.id).await.unwrap().unwrap();
    let e = record.effective.clone().unwrap();
    assert_eq!((e.attempts.value, e.attempts.source), (2, Source::Config));
    assert_eq!((e.priority.value, e.priority.source), (7, Source::Config));
    assert_eq!(e.keep_failed.source, Source::Default);
    assert_eq!(record.attempts_allowed(), 2);
    let e = q.get("own").await.unwrap().unwrap().effective.unwrap();
    assert_eq!((e.attempts.value, e.attempts.source), (3, Source::Producer));
    assert_eq!((e.priority.value, e.priority.source), (0, Source::Producer));

    // The queue's priority puts the later job first.
    let first = q.fetch(1, LEASE).await.unwrap().jobs;
    assert_eq!(first[0].id, plain.id);
    let second = q.fetch(1, LEASE).await.unwrap().jobs;
    assert_eq!(second[0].id, "own");

    // Two attempts for the job that set none, three for the one that did.
    assert_eq!(fail(&q, &first[0]).await, AfterFailure::Waiting);
    assert_eq!(fail(&q, &second[0]).await, AfterFailure::Waiting);
    for _ in 0..2 {
        let again = q.fetch(2, LEASE).await.unwrap().jobs;
        for l in &again {
            fail(&q, l).await;
        }
    }
    let plain_end = q.get(&plain.id).await.unwrap().unwrap();
    assert_eq!((plain_end.state, plain_end.attempts_made), (State::Failed, 2));
    let own_end = q.get("own").await.unwrap().unwrap();
    assert_eq!((own_end.state, own_end.attempts_made), (State::Failed, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_policy_takes_effect_at_the_next_failure() {
    let redis = RedisServer::start();
    let q = queue(&redis, "changing").await;
    let fixed = |ms| QueuePolicy { backoff: Some(Backoff::Fixed { delay_ms: ms }), ..Default::default() };
    q.set_policy(&fixed(200_000)).await.unwrap();
    q.enqueue(job("a", "{}", JobOptions::default())).await.unwrap();
    let l = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    let before = now_ms();
    let AfterFailure::Delayed { run_at_ms } = fail(&q, &l).await else { panic!("a backoff delays the retry") };
    // The script's clock is Redis's; both are this machine's.
    let delay = run_at_ms.saturating_sub(before);
    assert!((199_000..=201_000).contains(&delay), "the queue's 200 s backoff, not {delay} ms");

    q.promote("a").await.unwrap();
    q.set_policy(&fixed(500_000)).await.unwrap();
    assert_eq!(q.policy().await.unwrap(), fixed(500_000));
    let l = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    let before = now_ms();
    let AfterFailure::Delayed { run_at_ms } = fail(&q, &l).await else { panic!("a backoff delays the retry") };
    let delay = run_at_ms.saturating_sub(before);
    assert!((499_000..=501_000).contains(&delay), "the changed 500 s backoff, not {delay} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_come_from_the_payload_and_share_their_rate() {
    let redis = RedisServer::start();
    let q = queue(&redis, "vendors").await;
    q.set_policy(&QueuePolicy {
        group_from: Some("/vendor/id".into()),
        group_rate: Some(Rate { max: 1, window_ms: 600_000 }),
        ..Default::default()
    })
    .await
    .unwrap();
    // Numbers and strings alike; a payload without the field runs in no
    // group; a producer's own group wins over the payload's.
    let jobs = vec![
        job("v1-a", r#"{"vendor":{"id":1}}"#, JobOptions::default()),
        job("v1-b", r#"{"vendor":{"id":1}}"#, JobOptions::default()),
        job("v2-a", r#"{"vendor":{"id":"2"}}"#, JobOptions::default()),
        job("none", r#"{"other":true}"#, JobOptions::default()),
        job("own", r#"{"vendor":{"id":1}}"#, JobOptions { group: Some("mine".into()), ..Default::default() }),
    ];
    q.enqueue_bulk(jobs).await.unwrap();
    let group = |id: &'static str| {
        let q = q.clone();
        async move { q.get(id).await.unwrap().unwrap().effective.unwrap().group }
    };
    let g = group("v1-a").await;
    assert_eq!((g.value.as_deref(), g.source), (Some("1"), Source::Config));
    assert_eq!(group("v2-a").await.value.as_deref(), Some("2"));
    assert_eq!(group("none").await.value, None);
    let g = group("own").await;
    assert_eq!((g.value.as_deref(), g.source), (Some("mine"), Source::Producer));

    // One job per vendor per window: the second of vendor 1 waits it out.
    let fetched = q.fetch(10, LEASE).await.unwrap().jobs;
    let mut ids: Vec<&str> = fetched.iter().map(|l| l.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["none", "own", "v1-a", "v2-a"]);
    assert_eq!(q.get("v1-b").await.unwrap().unwrap().state, State::Delayed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_rate_and_retention_come_and_go_with_the_policy() {
    let redis = RedisServer::start();
    let q = queue(&redis, "limited").await;
    let limited = QueuePolicy {
        rate: Some(Rate { max: 2, window_ms: 600_000 }),
        attempts: Some(1),
        keep_failed: Some(Keep { count: Some(1), age_ms: None }),
        ..Default::default()
    };
    q.set_policy(&limited).await.unwrap();
    q.enqueue_bulk((0..5).map(|i| job(&format!("j{i}"), "{}", JobOptions::default())).collect()).await.unwrap();
    let first = q.fetch(10, LEASE).await.unwrap();
    assert_eq!(first.jobs.len(), 2, "two per window");
    assert!(first.rate_limited.is_none());
    assert!(q.fetch(10, LEASE).await.unwrap().rate_limited.is_some());
    // One attempt each, and one failed job kept.
    for l in &first.jobs {
        assert_eq!(fail(&q, l).await, AfterFailure::Failed);
    }
    assert_eq!(q.counts().await.unwrap().failed, 1);

    // The rate goes with the policy that had it.
    q.set_policy(&QueuePolicy { attempts: Some(1), ..Default::default() }).await.unwrap();
    assert_eq!(q.fetch(10, LEASE).await.unwrap().jobs.len(), 3);
    let effective = q.policy().await.unwrap().effective();
    assert_eq!((effective.rate.value, effective.rate.source), (None, Source::Default));
    assert_eq!(effective.attempts.source, Source::Config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_policy_is_refused_before_anything_is_written() {
    let redis = RedisServer::start();
    let q = queue(&redis, "strict").await;
    let e = q.set_policy(&QueuePolicy { attempts: Some(0), ..Default::default() }).await.unwrap_err().to_string();
    assert!(e.contains("attempts"), "{e}");
    assert_eq!(q.policy().await.unwrap(), QueuePolicy::default());
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}
