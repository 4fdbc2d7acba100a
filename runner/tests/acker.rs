//! The daemon's acker against a real `redis-server`: completions handed
//! over are recorded by the time it closes, kept while Redis is down, and
//! start marks go out on their own when no completion carries them.

use jobrunner_queue::{Completion, Connection, JobOptions, Keep, Leased, NewJob, Queue};
use runner::daemon::acker::Acker;
use std::time::Duration;
use testkit::redis::RedisServer;

const LEASE: Duration = Duration::from_secs(30);
const KEEP_ALL: Keep = Keep { count: None, age_ms: None };

async fn queue(redis: &RedisServer, name: &str) -> Queue {
    Queue::new(Connection::connect(&redis.url()).await.unwrap(), name).unwrap()
}

/// Enqueues `n` plain jobs into an empty queue and leases them all.
async fn lease_plain(q: &Queue, n: usize) -> Vec<Leased> {
    let job = || NewJob { id: None, job_type: "noop".into(), payload: "{}".into(), options: JobOptions::default() };
    q.enqueue_bulk((0..n).map(|_| job()).collect()).await.unwrap();
    let leased = q.fetch(n, LEASE).await.unwrap().jobs;
    assert_eq!(leased.len(), n, "every job enqueued is leased");
    leased
}

fn done(l: &Leased) -> Completion {
    Completion {
        id: l.id.clone(),
        token: l.token.clone(),
        result: Some("{\"ok\":true}".into()),
        progress: Some(100),
        log: None,
        run: None,
    }
}

/// The daemon's acker takes completions without making the job wait; its
/// `close` (the dispatcher's last step on shutdown) returns only once every
/// completion handed to it is recorded, so none is left to run again.
#[tokio::test]
async fn a_closed_acker_has_recorded_every_completion_handed_to_it() {
    let redis = RedisServer::start();
    let q = queue(&redis, "acks").await;
    let leased = lease_plain(&q, 600).await;
    let acker = Acker::start(q.clone());
    for (i, l) in leased.iter().enumerate() {
        // Plain ones first, then ones with a result: the first batch goes in
        // the short layout, the later ones in the long.
        let c = if i < 300 { Completion { result: None, progress: None, ..done(l) } } else { done(l) };
        acker.complete(c, KEEP_ALL, None);
    }
    acker.close().await;
    let c = q.counts().await.unwrap();
    assert_eq!((c.completed, c.active), (600, 0), "every completion recorded by the time close returns");
}

/// Completions handed over while Redis is down, or while its writes are
/// paused, are kept and sent again until Redis takes them, not dropped
/// (which left each job to stall and run again, or fail though it had
/// succeeded).
#[tokio::test]
async fn the_acker_keeps_completions_while_redis_is_down() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always", "--save", ""]);
    let q = queue(&redis, "acks-down").await;
    let leased = lease_plain(&q, 400).await;
    let (now, later) = leased.split_at(300);
    let acker = Acker::start(q.clone());
    redis.stop();
    for l in now {
        acker.complete(done(l), KEEP_ALL, None);
    }
    // It has tried, failed, and tried again while Redis was away.
    testkit::wait_until("the acker to fail twice", Duration::from_secs(20), || acker.failed_calls() >= 2).await;
    assert_eq!(acker.unrecorded(), 300);
    redis.restart();
    // Writes paused a moment: held, not dropped.
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(300).arg("WRITE").query(&mut redis.connection()).unwrap();
    for l in later {
        acker.complete(done(l), KEEP_ALL, None);
    }
    acker.close().await;
    let c = q.counts().await.unwrap();
    assert_eq!((c.completed, c.active), (400, 0), "every completion recorded once Redis came back");
}

/// The daemon's acker marks a started job in Redis within milliseconds
/// even when no completion comes to carry the mark.
#[tokio::test]
async fn the_acker_sends_start_marks_on_their_own_when_no_completion_comes() {
    let redis = RedisServer::start();
    let q = queue(&redis, "marks").await;
    let leased = lease_plain(&q, 3).await;
    let unstarted =
        || -> u64 { ::redis::cmd("HLEN").arg("jr:{marks}:unstarted").query(&mut redis.connection()).unwrap() };
    assert_eq!(unstarted(), 3);
    let acker = Acker::start(q.clone());
    acker.started(&leased[0].id, &leased[0].token);
    acker.started(&leased[1].id, &leased[1].token);
    testkit::wait_until("the start marks", Duration::from_secs(5), || unstarted() == 1).await;
    acker.close().await;
}
