//! Throughput of the queue engine through its API, against a local
//! `redis-server` started by the benchmark (on the same machine):
//! - bulk enqueue (`enqueue_bulk`, 1000 jobs per call: each call is one
//!   script call, whole or not at all);
//! - fetch + ack (`fetch` 100 and `complete` 100, four callers at once).
//!
//! Printed first: the Redis commands per job (from INFO commandstats,
//! counting the commands scripts run) and the round trips per job.
//!
//! Run: `cargo bench -p bench --bench queue`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jobrunner_queue::{Completion, Connection, JobOptions, Keep, NewJob, Queue};
use std::time::{Duration, Instant};

const BATCH: usize = 100;
const CALLERS: usize = 4;
/// Jobs per `enqueue_bulk` call.
const BULK: usize = 1000;

/// Enqueues `jobs` in calls of `BULK`.
async fn enqueue_all(q: &Queue, jobs: Vec<NewJob>) {
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        q.enqueue_bulk(jobs.by_ref().take(BULK).collect()).await.unwrap();
    }
}

fn jobs(n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| NewJob {
            id: None,
            job_type: "noop".into(),
            payload: format!("{{\"i\":{i}}}"),
            options: JobOptions::default(),
        })
        .collect()
}

async fn drain(q: &Queue, n: usize) {
    let per = n / CALLERS;
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move {
                let mut done = 0;
                while done < per {
                    let batch = q.fetch(BATCH.min(per - done), Duration::from_secs(60)).await.unwrap().jobs;
                    let acks: Vec<Completion> = batch.iter().map(Completion::of).collect();
                    q.complete(&acks, Keep { count: Some(1000), age_ms: None }).await.unwrap();
                    done += batch.len();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn total_calls(redis: &testkit::redis::RedisServer) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(&mut redis.connection()).unwrap();
    info.lines()
        .filter_map(|l| l.split("calls=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum()
}

fn queue_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let redis = testkit::redis::RedisServer::start();
    let conn = rt.block_on(Connection::connect(&redis.url())).unwrap();

    // Commands per job, measured once over 10,000 jobs.
    {
        let q = Queue::new(conn.clone(), "count").unwrap();
        let before = total_calls(&redis);
        rt.block_on(enqueue_all(&q, jobs(10_000)));
        let mid = total_calls(&redis);
        rt.block_on(drain(&q, 10_000));
        let after = total_calls(&redis);
        eprintln!(
            "redis commands per job: enqueue {:.2}, fetch+ack {:.2}, total {:.2} (round trips per job: {:.3})",
            (mid - before) as f64 / 10_000.0,
            (after - mid) as f64 / 10_000.0,
            (after - before) as f64 / 10_000.0,
            (10_000.0 / BULK as f64 + 2.0 * 10_000.0 / BATCH as f64) / 10_000.0,
        );
    }

    let mut g = c.benchmark_group("queue");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    let n = 20_000;
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("enqueue_bulk", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let q = Queue::new(conn.clone(), &format!("bulk{i}")).unwrap();
                let batch = jobs(n);
                let started = Instant::now();
                rt.block_on(enqueue_all(&q, batch));
                total += started.elapsed();
                rt.block_on(q.drain()).unwrap();
            }
            total
        })
    });
    g.bench_function("fetch_and_ack", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let q = Queue::new(conn.clone(), &format!("drain{i}")).unwrap();
                rt.block_on(enqueue_all(&q, jobs(n)));
                let started = Instant::now();
                rt.block_on(drain(&q, n));
                total += started.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, queue_benches);
criterion_main!(benches);
