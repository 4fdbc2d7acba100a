//! `runner enqueue --wait` against a real Redis, the test standing in for
//! the runner that does the work: a completed job's output on stdout and
//! exit 0; a failed job's reason on stderr and exit 1; a job unfinished at
//! the timeout, exit 3.

use crate::{runner, runner_async, stderr, stdout};
use jobrunner_queue::{Completion, Connection, Consumer, Failure, Keep, Leased, Queue};
use std::time::Duration;
use testkit::redis::RedisServer;

const LEASE: Duration = Duration::from_secs(30);

/// Takes the next job of `q`, as a runner would.
async fn take(q: &Queue) -> Leased {
    let jobs = Consumer::new(q.clone()).next(1, LEASE, Duration::from_secs(30)).await.unwrap();
    jobs.into_iter().next().expect("a job within 30 s")
}

fn config(dir: &std::path::Path, redis: &RedisServer) {
    std::fs::write(dir.join("runner.toml"), format!("[redis]\nurl = \"{}\"\n", redis.url())).unwrap();
}

#[tokio::test]
async fn enqueue_waits_for_the_outcome() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &redis);
    let q = Queue::new(Connection::connect(&redis.url()).await.unwrap(), "mail").unwrap();
    let enqueue = |id: &'static str, wait: &'static [&'static str]| {
        let args =
            [&["enqueue", "mail", "email", "--payload", "{}", "--id", id, "--config", "runner.toml"], wait].concat();
        let dir = dir.path().to_path_buf();
        async move { runner_async(&dir, &args).await }
    };

    // Completed: the output, and exit 0.
    let worker = async {
        let job = take(&q).await;
        let done = Completion { result: Some(r#"{"sent":true}"#.into()), ..Completion::of(&job) };
        q.complete(&[done], Keep { count: None, age_ms: None }).await.unwrap();
    };
    let (out, ()) = tokio::join!(enqueue("ok-1", &["--wait", "30s"]), worker);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok-1\n{\"sent\":true}\n");

    // Failed: the reason, and exit 1 (no timeout given: as long as it takes).
    let worker = async {
        let job = take(&q).await;
        q.fail(&job.id, &job.token, &Failure::Permanent("mailbox full".into()), None, None).await.unwrap();
    };
    let (out, ()) = tokio::join!(enqueue("bad-1", &["--wait"]), worker);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("job bad-1 failed after 1 attempt(s): mailbox full"), "{}", stderr(&out));

    // Unfinished at the timeout: exit 3, saying where it stands.
    let out = enqueue("slow-1", &["--wait", "300ms"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("job slow-1 is still waiting after 300ms"), "{}", stderr(&out));
}

#[test]
fn a_wait_for_many_jobs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jobs.ndjson"), "{\"payload\":{}}\n").unwrap();
    let out = runner(dir.path(), &["enqueue", "mail", "email", "--file", "jobs.ndjson", "--wait"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--wait"), "{}", stderr(&out));
}
