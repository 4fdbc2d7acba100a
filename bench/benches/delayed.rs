//! How late delayed jobs start, at Redis's default `hz 10`: 300 jobs with
//! random delays from 50 ms to 1.5 s, taken by one waiting `Consumer`; the
//! lateness of each is the time it was handed out minus the time it was due
//! (its enqueue time plus its delay, both by this process's clock). Prints
//! p50, p99 and the maximum, for three runs.
//!
//! Not a criterion benchmark: what matters is the distribution, not a mean.
//! Run: `cargo bench -p bench --bench delayed`.

use jobrunner_queue::{Connection, Consumer, JobOptions, NewJob, Queue};
use rand::Rng;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const JOBS: usize = 300;

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

async fn run(redis: &testkit::redis::RedisServer, round: usize) -> Vec<f64> {
    let q = Queue::new(Connection::connect(&redis.url()).await.unwrap(), &format!("delayed{round}")).unwrap();
    let consumer = Consumer::new(q.clone());
    let mut due_us = std::collections::HashMap::new();
    for i in 0..JOBS {
        let delay = rand::rng().random_range(50..1500u64);
        let id = format!("d{i}");
        let before = now_us();
        q.enqueue(NewJob {
            id: Some(id.clone()),
            job_type: "noop".into(),
            payload: "{}".into(),
            options: JobOptions { delay_ms: delay, ..Default::default() },
        })
        .await
        .unwrap();
        // Due at enqueue time plus the delay; the enqueue's midpoint is the
        // best estimate of when the server stamped it.
        due_us.insert(id, (before + now_us()) / 2 + delay * 1000);
    }
    let mut late_ms = Vec::new();
    while late_ms.len() < JOBS {
        for job in consumer.next(50, Duration::from_secs(60), Duration::from_secs(5)).await.unwrap() {
            let at = now_us();
            late_ms.push((at as f64 - due_us[&job.id] as f64) / 1000.0);
        }
    }
    late_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    late_ms
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Redis as installed: the default hz (10).
    let redis = testkit::redis::RedisServer::start();
    let hz: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("hz").query(&mut redis.connection()).unwrap();
    println!("redis hz {}", hz[1]);
    for round in 0..3 {
        let late = rt.block_on(run(&redis, round));
        let p = |q: f64| late[((late.len() - 1) as f64 * q).round() as usize];
        println!(
            "run {}: lateness p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, min {:.2} ms ({} jobs)",
            round + 1,
            p(0.5),
            p(0.99),
            late[late.len() - 1],
            late[0],
            late.len()
        );
    }
}
