//! A Rust app's producer: puts booking-confirmation emails on a runner's
//! queue with the queue crate alone (no wasmtime, no HTTP). With a runner
//! consuming the queue (`runner serve --config examples/runner.toml`, whose
//! embedded Redis writes its URL, password included, to
//! `.runner/redis.url`):
//!
//! ```sh
//! cargo run -p producer-example -- "$(cat .runner/redis.url)" default 3
//! ```
//!
//! It enqueues one job under an id of its own (enqueue it twice: the second
//! changes nothing), a bulk of N in one call, and prints where they stand.

use anyhow::{Context, Result};
use jobrunner_queue::{Backoff, Connection, Enqueued, JobOptions, NewJob, Queue};
use serde_json::json;

fn email(booking: &str) -> String {
    json!({
        "to": "ana@example.com",
        "template": "booking_confirmation",
        "data": { "customer_name": "Ana", "booking_id": booking, "service_name": "Wedding photography",
                  "vendor_name": "Lumen Studio", "date": "2026-12-05" }
    })
    .to_string()
}

/// Enqueues the jobs this example shows; returns what each enqueue did.
pub async fn produce(redis_url: &str, queue: &str, bulk: usize) -> Result<Vec<Enqueued>> {
    let conn = Connection::connect(redis_url).await?;
    let queue = Queue::new(conn, queue)?;

    // One job with options: an id of the app's (de-duplicates), a priority,
    // five attempts with exponential backoff, and a group (jobs are shared
    // fairly between groups, and a group may have its own rate limit).
    let options = JobOptions {
        priority: Some(10),
        attempts: Some(5),
        backoff: Some(Backoff::Exponential { delay_ms: 1000, max_delay_ms: 60_000, jitter: 0.2 }),
        group: Some("vendor-lumen".into()),
        ..JobOptions::default()
    };
    let one = NewJob { id: Some("booking-B-1042".into()), job_type: "email".into(), payload: email("B-1042"), options };
    let mut done = vec![queue.enqueue(one).await.context("enqueue")?];

    // A bulk: one script call, whole or not at all.
    let jobs = (0..bulk)
        .map(|i| NewJob {
            id: None,
            job_type: "email".into(),
            payload: email(&format!("B-2{i:03}")),
            options: JobOptions::default(),
        })
        .collect();
    done.extend(queue.enqueue_bulk(jobs).await.context("bulk enqueue")?);

    for e in &done {
        let state = queue.get(&e.id).await?.map(|r| r.state.as_str().to_string()).unwrap_or_else(|| "gone".into());
        println!("{} {} (now {state})", e.id, if e.created { "enqueued" } else { "was there already" });
    }
    let c = queue.counts().await?;
    println!(
        "{}: {} waiting, {} delayed, {} active, {} completed",
        queue.name(),
        c.waiting,
        c.delayed,
        c.active,
        c.completed
    );
    Ok(done)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let queue = args.next().unwrap_or_else(|| "default".into());
    let bulk = args.next().map(|n| n.parse()).transpose().context("the bulk size must be a number")?.unwrap_or(3);
    produce(&url, &queue, bulk).await.map(drop)
}
