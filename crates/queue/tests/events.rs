//! Waiting for a job and reading a queue's events, against a real Redis: a
//! wait ends when the job finishes for good (not on a retry), answers at its
//! timeout with where the job stands, and knows no job it was not given; a
//! reader sees each event after the one it started from.

use jobrunner_queue::{Backoff, Completion, Connection, Failure, JobOptions, Keep, NewJob, Queue, State};
use std::time::Duration;
use testkit::redis::RedisServer;

const LEASE: Duration = Duration::from_secs(30);
const KEEP_ALL: Keep = Keep { count: None, age_ms: None };

async fn queue(redis: &RedisServer, name: &str) -> Queue {
    Queue::new(Connection::connect(&redis.url()).await.unwrap(), name).unwrap()
}

fn job(id: &str) -> NewJob {
    let options = JobOptions { attempts: Some(2), backoff: Some(Backoff::None), ..JobOptions::default() };
    NewJob { id: Some(id.into()), job_type: "noop".into(), payload: "{}".into(), options }
}

/// Whether a client of `redis` is blocked in an `XREAD` now.
fn a_read_is_blocked(redis: &RedisServer) -> bool {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut redis.connection()).unwrap();
    list.lines().any(|l| l.contains("cmd=xread") && l.contains("flags=b"))
}

#[tokio::test]
async fn a_wait_ends_when_the_job_finishes_for_good() {
    let redis = RedisServer::start();
    let q = queue(&redis, "waits").await;
    q.enqueue(job("a")).await.unwrap();
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move { q.wait("a", Duration::from_secs(30)).await })
    };
    testkit::wait_until("the wait to block on the events", Duration::from_secs(10), || a_read_is_blocked(&redis)).await;

    // The first attempt fails and is retried: the wait goes on.
    let first = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    q.fail(&first.id, &first.token, &Failure::Retry("flaky".into()), None, None).await.unwrap();
    let second = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    let done = Completion { result: Some(r#"{"sent":true}"#.into()), ..Completion::of(&second) };
    q.complete(&[done], KEEP_ALL).await.unwrap();

    let record = waiter.await.unwrap().unwrap().expect("the job");
    assert_eq!((record.state, record.attempts_made), (State::Completed, 2), "ended by the completion, not the retry");
    assert_eq!(record.result, Some(serde_json::json!({"sent": true})));

    // A finished job answers at once; so does a job that is not there.
    assert_eq!(q.wait("a", Duration::from_secs(30)).await.unwrap().unwrap().state, State::Completed);
    assert!(q.wait("never-enqueued", Duration::from_secs(30)).await.unwrap().is_none());
    assert!(q.wait("bad id with spaces", Duration::from_secs(1)).await.is_err());
}

#[tokio::test]
async fn a_wait_that_runs_out_says_where_the_job_stands() {
    let redis = RedisServer::start();
    let q = queue(&redis, "slow").await;
    q.enqueue(job("b")).await.unwrap();
    let record = q.wait("b", Duration::from_millis(200)).await.unwrap().expect("the job");
    assert_eq!(record.state, State::Waiting);

    // A job failed for good ends a wait too.
    let once = NewJob { options: JobOptions { attempts: Some(1), ..JobOptions::default() }, ..job("c") };
    q.enqueue(once).await.unwrap();
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move { q.wait("c", Duration::from_secs(30)).await })
    };
    let leased = q.fetch(2, LEASE).await.unwrap().jobs;
    let c = leased.iter().find(|l| l.id == "c").unwrap();
    q.fail(&c.id, &c.token, &Failure::Permanent("no such mailbox".into()), None, None).await.unwrap();
    let record = waiter.await.unwrap().unwrap().unwrap();
    assert_eq!(record.state, State::Failed);
    assert_eq!(record.errors.last().unwrap().error, "no such mailbox");
}

#[tokio::test]
async fn a_reader_sees_each_event_after_where_it_started() {
    let redis = RedisServer::start();
    let q = queue(&redis, "feed").await;
    q.enqueue(job("before")).await.unwrap();
    let mut reader = q.events_after(None).await.unwrap();
    assert!(reader.next(Duration::from_millis(50)).await.unwrap().is_empty(), "nothing new yet");
    q.enqueue(job("after")).await.unwrap();
    let events = reader.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].name.as_str(), events[0].job_ids()), ("added", vec!["after"]));

    // From an id: everything after it, again.
    let mut again = q.events_after(Some(reader.position())).await.unwrap();
    q.enqueue(job("third")).await.unwrap();
    let events = again.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(events[0].job_ids(), vec!["third"]);
    assert!(q.events_after(Some("not-an-id")).await.is_err());
}
