//! 10,000 jobs through workers that fail at random, run past their leases,
//! and die mid-batch, against a real Redis. At the end the accounting is
//! exact: every job completed or failed after exactly its allowed attempts,
//! none lost, and none completed twice.

use jobrunner_queue::{Backoff, Completion, Connection, Consumer, Failure, JobOptions, Keep, NewJob, Queue, State};
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const JOBS: usize = 10_000;
const ATTEMPTS: u32 = 4;
const LEASE: Duration = Duration::from_millis(250);
const WORKERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_with_failures_and_deaths_lose_nothing() {
    let redis = testkit::redis::RedisServer::start();
    let q = Queue::new(Connection::connect(&redis.url()).await.unwrap(), "chaos").unwrap();
    let options = JobOptions {
        attempts: Some(ATTEMPTS),
        backoff: Some(Backoff::None),
        keep_completed: Some(Keep { count: None, age_ms: None }),
        keep_failed: Some(Keep { count: None, age_ms: None }),
        ..Default::default()
    };
    let jobs: Vec<NewJob> = (0..JOBS)
        .map(|i| NewJob {
            id: Some(format!("job-{i}")),
            job_type: "noop".into(),
            payload: "{}".into(),
            options: options.clone(),
        })
        .collect();
    q.enqueue_bulk(jobs).await.unwrap();

    // Accepted completions per job: the invariant is at most one each.
    let accepted: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let stale_refusals = Arc::new(Mutex::new(0u32));
    let deaths = Arc::new(Mutex::new(0u32));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (q, accepted, stale, deaths) = (q.clone(), accepted.clone(), stale_refusals.clone(), deaths.clone());
        workers.push(tokio::spawn(async move {
            let mut consumer = Consumer::new(q.clone());
            loop {
                let batch = consumer.next(20, LEASE, Duration::from_millis(300)).await.unwrap();
                if batch.is_empty() {
                    let c = q.counts().await.unwrap();
                    if c.waiting + c.delayed + c.active == 0 {
                        return;
                    }
                    continue;
                }
                let mut acks = Vec::new();
                for (i, l) in batch.iter().enumerate() {
                    let roll: f64 = rand::rng().random();
                    if roll < 0.01 {
                        // The worker dies: the rest of its batch is abandoned
                        // with the leases, and a new worker takes its place.
                        *deaths.lock().unwrap() += 1;
                        let _ = i;
                        consumer = Consumer::new(q.clone());
                        break;
                    } else if roll < 0.16 {
                        q.fail(&l.id, &l.token, &Failure::Retry("random failure".into()), None, None).await.unwrap();
                    } else if roll < 0.18 {
                        // Too slow: the lease runs out before the ack.
                        tokio::time::sleep(LEASE + Duration::from_millis(100)).await;
                        let ok = q.complete(&[ack(l)], Keep { count: None, age_ms: None }).await.unwrap()[0];
                        if ok {
                            *accepted.lock().unwrap().entry(l.id.clone()).or_default() += 1;
                        } else {
                            *stale.lock().unwrap() += 1;
                        }
                    } else {
                        acks.push(ack(l));
                    }
                }
                let results = q.complete(&acks, Keep { count: None, age_ms: None }).await.unwrap();
                let mut a = accepted.lock().unwrap();
                for (c, ok) in acks.iter().zip(results) {
                    if ok {
                        *a.entry(c.id.clone()).or_default() += 1;
                    } else {
                        *stale.lock().unwrap() += 1;
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let c = q.counts().await.unwrap();
    let accepted = accepted.lock().unwrap().clone();
    eprintln!(
        "chaos: {} completed, {} failed, {} worker deaths, {} stale acks refused, in {:?}",
        c.completed,
        c.failed,
        deaths.lock().unwrap(),
        stale_refusals.lock().unwrap(),
        started.elapsed()
    );
    assert_eq!((c.waiting, c.delayed, c.active), (0, 0, 0));
    assert_eq!(c.completed + c.failed, JOBS as u64, "nothing lost");
    assert!(accepted.values().all(|n| *n == 1), "nothing completed twice");
    assert_eq!(accepted.len() as u64, c.completed);
    assert!(*deaths.lock().unwrap() > 0, "the test did kill workers");
    let failed = q.list(State::Failed, 0, 1000).await.unwrap();
    assert_eq!(failed.len() as u64, c.failed);
    for f in failed {
        assert_eq!(f.attempts_made, ATTEMPTS, "{} failed after exactly its allowed attempts", f.id);
        assert_eq!(f.errors.len(), ATTEMPTS as usize);
    }
}

fn ack(l: &jobrunner_queue::Leased) -> Completion {
    Completion::of(l)
}
