//! Dead letters against a real `redis-server`: a job whose attempts ran
//! out moves to the dead-letter queue with its errors, once however often
//! the move is repeated, stays there untrimmed, and a retry sends it back
//! to its queue with its attempts afresh. Retention of the queue it failed
//! in leaves it alone until it has moved.

use jobrunner_queue::{AfterFailure, Connection, Failure, JobOptions, Keep, NewJob, Queue, QueuePolicy, State};
use std::time::Duration;
use testkit::redis::RedisServer;

const LEASE: Duration = Duration::from_secs(600);

async fn fail_for_good(q: &Queue, id: &str) {
    q.enqueue(NewJob {
        id: Some(id.into()),
        job_type: "noop".into(),
        payload: r#"{"n":1}"#.into(),
        options: JobOptions::default(),
    })
    .await
    .unwrap();
    let l = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    let after = q.fail(&l.id, &l.token, &Failure::Retry(format!("{id} broke")), None, None).await.unwrap();
    assert_eq!(after, AfterFailure::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_failed_for_good_moves_and_comes_back_on_retry() {
    let redis = RedisServer::start();
    let conn = Connection::connect(&redis.url()).await.unwrap();
    let (q, dead) = (Queue::new(conn.clone(), "orders").unwrap(), Queue::new(conn, "orders-dead").unwrap());
    // No failed job kept here at all: the one bound for the dead-letter
    // queue stays until it has moved all the same.
    q.set_policy(&QueuePolicy {
        attempts: Some(1),
        keep_failed: Some(Keep { count: Some(0), age_ms: None }),
        dead_letter: Some("orders-dead".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    fail_for_good(&q, "o-1").await;
    fail_for_good(&q, "o-2").await;
    assert_eq!(q.dead_letters_pending().await.unwrap(), 2);
    assert_eq!(q.get("o-1").await.unwrap().unwrap().state, State::Failed, "kept until moved");

    assert_eq!(q.move_dead_letters(&dead).await.unwrap(), 2);
    assert_eq!(q.move_dead_letters(&dead).await.unwrap(), 0, "a repeat moves nothing");
    assert!(q.get("o-1").await.unwrap().is_none(), "gone from its queue");
    let letter = dead.get("orders:o-1").await.unwrap().expect("the dead letter");
    assert_eq!(letter.state, State::Failed);
    assert_eq!(letter.payload, serde_json::json!({"n": 1}));
    assert_eq!(letter.errors.last().unwrap().error, "o-1 broke");
    let from = letter.dead_letter.clone().unwrap();
    assert_eq!((from.queue.as_str(), from.id.as_str()), ("orders", "o-1"));
    assert_eq!(dead.counts().await.unwrap().failed, 2);

    // Back into its queue, attempts afresh; gone from the dead letters.
    assert_eq!(dead.retry("orders:o-1").await.unwrap(), "retried");
    let back = q.get("o-1").await.unwrap().unwrap();
    assert_eq!((back.state, back.attempts_made), (State::Waiting, 0));
    assert!(dead.get("orders:o-1").await.unwrap().is_none());
    // Failing again, it goes back to the dead letters.
    let l = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    q.fail(&l.id, &l.token, &Failure::Retry("again".into()), None, None).await.unwrap();
    assert_eq!(q.move_dead_letters(&dead).await.unwrap(), 1);
    assert_eq!(dead.get("orders:o-1").await.unwrap().unwrap().errors.last().unwrap().error, "again");

    // Retry all: every letter home.
    assert_eq!(dead.retry_all_failed().await.unwrap(), 2);
    assert_eq!(dead.counts().await.unwrap().failed, 0);
    assert_eq!(q.counts().await.unwrap().waiting, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_or_retried_job_is_not_moved() {
    let redis = RedisServer::start();
    let conn = Connection::connect(&redis.url()).await.unwrap();
    let (q, dead) = (Queue::new(conn.clone(), "a").unwrap(), Queue::new(conn, "a-dead").unwrap());
    q.set_policy(&QueuePolicy { attempts: Some(1), dead_letter: Some("a-dead".into()), ..Default::default() })
        .await
        .unwrap();
    fail_for_good(&q, "x").await;
    fail_for_good(&q, "gone").await;
    // An operator removes one before the move: it is let go; the other
    // moves.
    q.remove("gone").await.unwrap();
    assert_eq!(q.move_dead_letters(&dead).await.unwrap(), 1);
    assert_eq!(dead.counts().await.unwrap().failed, 1);
    assert_eq!(q.dead_letters_pending().await.unwrap(), 0);
    // A retry in its own queue before the move keeps it there.
    fail_for_good(&q, "y").await;
    assert_eq!(q.retry("y").await.unwrap(), "retried");
    assert_eq!(q.move_dead_letters(&dead).await.unwrap(), 0);
    assert_eq!(q.get("y").await.unwrap().unwrap().state, State::Waiting);
    assert!(q.move_dead_letters(&q).await.is_err(), "not into itself");
}

/// A retried letter's job can fail for good again before the retry has
/// removed the old letter (a quick handler, no backoff): the new letter
/// takes the old one's place, and the retry's removal leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_again_before_its_retry_finished_keeps_its_new_letter() {
    let redis = RedisServer::start();
    let conn = Connection::connect(&redis.url()).await.unwrap();
    let (q, dead) = (Queue::new(conn.clone(), "orders").unwrap(), Queue::new(conn, "orders-dead").unwrap());
    let policy = QueuePolicy { attempts: Some(1), dead_letter: Some("orders-dead".into()), ..Default::default() };
    q.set_policy(&policy).await.unwrap();
    fail_for_good(&q, "o-1").await;
    assert_eq!(q.move_dead_letters(&dead).await.unwrap(), 1);
    let first = dead.get("orders:o-1").await.unwrap().unwrap().dead_letter.unwrap().failed_at;

    // The retry's first step (the job back in its queue) without its
    // second (the old letter removed): the job fails for good again.
    let back = q.enqueue(NewJob {
        id: Some("o-1".into()),
        job_type: "noop".into(),
        payload: r#"{"n":1}"#.into(),
        options: JobOptions::default(),
    });
    assert!(back.await.unwrap().created);
    // A later failure: its time must differ from the first's.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let l = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    q.fail(&l.id, &l.token, &Failure::Retry("broke again".into()), None, None).await.unwrap();
    assert_eq!(q.move_dead_letters(&dead).await.unwrap(), 1, "moved, not dropped as a repeat");
    assert!(q.get("o-1").await.unwrap().is_none());
    let letter = dead.get("orders:o-1").await.unwrap().unwrap();
    assert_eq!(letter.errors.last().unwrap().error, "broke again");
    assert!(letter.dead_letter.as_ref().unwrap().failed_at > first);

    // The retry now removes only the letter it read, which is gone: the new
    // letter stays, and retrying it sends the job home once more.
    assert_eq!(dead.remove_dead_letter("orders:o-1", first).await.unwrap(), "newer");
    assert!(dead.get("orders:o-1").await.unwrap().is_some(), "the new letter stays");
    assert_eq!(dead.retry("orders:o-1").await.unwrap(), "retried");
    assert!(dead.get("orders:o-1").await.unwrap().is_none());
    assert_eq!(q.get("o-1").await.unwrap().unwrap().state, State::Waiting);
}
