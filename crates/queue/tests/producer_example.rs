//! The example producer (`examples/producer/`) against a real Redis: what
//! it enqueues lands with the options it gives, and run again, its own id
//! de-duplicates while the bulk adds new jobs.

#[path = "../../../examples/producer/src/main.rs"]
#[allow(dead_code)]
mod producer;

use jobrunner_queue::{Backoff, Connection, Queue, State};
use testkit::redis::RedisServer;

#[tokio::test]
async fn the_example_producer_enqueues_what_it_says() {
    let redis = RedisServer::start();
    let first = producer::produce(&redis.url(), "emails", 4).await.unwrap();
    assert_eq!(first.len(), 5);
    assert!(first.iter().all(|e| e.created));
    assert_eq!(first[0].id, "booking-B-1042");

    let q = Queue::new(Connection::connect(&redis.url()).await.unwrap(), "emails").unwrap();
    let job = q.get("booking-B-1042").await.unwrap().expect("the job with the app's id");
    assert_eq!((job.state, job.job_type.as_str()), (State::Waiting, "email"));
    assert_eq!((job.options.priority, job.options.attempts), (Some(10), Some(5)));
    assert_eq!(job.options.group.as_deref(), Some("vendor-lumen"));
    assert!(matches!(job.options.backoff, Some(Backoff::Exponential { delay_ms: 1000, .. })));
    assert_eq!(job.payload["data"]["booking_id"], "B-1042");

    let again = producer::produce(&redis.url(), "emails", 2).await.unwrap();
    assert!(!again[0].created, "the app's id de-duplicates");
    assert!(again[1..].iter().all(|e| e.created));
    assert_eq!(q.counts().await.unwrap().waiting, 7);
}
