//! The reference apps' configs (`examples/apps/APP/runner.toml`) loaded into
//! `runner serve` as they are, and their options measured on jobs that run,
//! not read back: the 20-per-minute queue starts 20 and holds the rest; the
//! backoff between attempts is the policy's (read from the `retrying`
//! events, the job promoted past each wait so the test need not sit it
//! out); retention keeps its count; a cron schedule fires (its next time
//! moved to now, a short clock); a timeout stops a plugin that runs longer
//! (10 minutes made 600 ms in the copy, the one change to a file); and
//! priorities order the work (the order a runner of concurrency 1 starts
//! the jobs in).

use crate::serve::{Daemon, install, wait_counts};
use jobrunner_queue::{JobOptions, NewJob, Queue, State};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The environment the apps' configs read their secrets from.
fn secrets(dir: &Path) -> Vec<(String, String)> {
    vec![
        ("SMTP_PASSWORD".into(), "not-used-by-these-tests".into()),
        ("WEBHOOK_SIGNING_SECRET".into(), "whsec_test_only".into()),
        ("RUNNER_ADMIN_TOKEN".into(), "admin-token-for-the-app-tests-0123".into()),
        // The app's was `admin123`; the runner asks for 12 characters or more.
        ("BULL_BOARD_PASSWORD_HASH".into(), password_hash(dir, "a longer board password")),
    ]
}

/// `runner user hash`, as an operator makes the CRM's Bull Board password
/// into its `[[http.users]]` hash.
fn password_hash(dir: &Path, password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(dir)
        .args(["user", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A folder holding the app's `runner.toml` (through `change`, which is
/// the identity but where a test says) and `plugins` in its plugins folder.
fn app_dir(app: &str, change: impl Fn(String) -> String, plugins: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let file = testkit::workspace_root().join("examples/apps").join(app).join("runner.toml");
    std::fs::write(dir.path().join("runner.toml"), change(std::fs::read_to_string(file).unwrap())).unwrap();
    for (plugin, as_name) in plugins {
        install(dir.path(), plugin, as_name);
    }
    dir
}

fn start(dir: &Path, redis: &testkit::redis::RedisServer, extra: &[(&str, &str)]) -> Daemon {
    let env = secrets(dir);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(extra);
    Daemon::start_with(dir, Some(&redis.url()), &all)
}

async fn queue(redis: &testkit::redis::RedisServer, name: &str) -> Queue {
    crate::serve::queue(&redis.url(), name).await
}

fn job(id: &str, job_type: &str, payload: &str, options: JobOptions) -> NewJob {
    NewJob { id: Some(id.into()), job_type: job_type.into(), payload: payload.into(), options }
}

/// The delays of a job's retries, as its `retrying` events give them,
/// promoting the job past each so that the test need not wait them out;
/// returns once the job has failed for good.
async fn retry_delays(q: &Queue, id: &str) -> (Vec<u64>, jobrunner_queue::JobRecord) {
    let mut events = q.events_after(None).await.unwrap();
    q.enqueue(job(id, "flaky", r#"{"fail_percent": 100}"#, JobOptions::default())).await.unwrap();
    let mut delays = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        for e in events.next(Duration::from_millis(200)).await.unwrap() {
            if e.job_ids() != [id] {
                continue;
            }
            let field = |k: &str| e.fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            match e.name.as_str() {
                "retrying" => {
                    delays.push(field("delay_ms").unwrap().parse().unwrap());
                    // Past the wait: the delay is what is measured here.
                    while q.promote(id).await.unwrap() != "promoted" {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                "failed" => return (delays, q.get(id).await.unwrap().unwrap()),
                _ => {}
            }
        }
        assert!(Instant::now() < deadline, "{id} did not fail for good; delays so far {delays:?}");
    }
}

/// Moves a schedule's next tick to now (the short clock) and returns the
/// job the runner fires for it.
async fn fire_now(
    redis: &testkit::redis::RedisServer,
    q: &Queue,
    schedule: &str,
    daemon: &Daemon,
) -> jobrunner_queue::JobRecord {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let key = format!("jr:{{{}}}:schedule_next", q.name());
    let _: i64 = ::redis::cmd("ZADD").arg(key).arg(now).arg(schedule).query(&mut redis.connection()).unwrap();
    let tick = format!("sched:{schedule}:{now}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(fired) = q.get(&tick).await.unwrap() {
            return fired;
        }
        assert!(Instant::now() < deadline, "{schedule} did not fire: {}", daemon.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The order a runner of concurrency 1 starts a queue's jobs in, as its
/// log says (`job{id=ID ...}: ...: started`, at debug): the queue is paused
/// while they are enqueued (after the runner has written its policy), then
/// resumed. (Not the order of the `completed` events: a runner sends two
/// batches of completions at once, which Redis may take in either order.)
async fn order_of_work(app: &str, queue_name: &str, jobs: Vec<NewJob>) -> Vec<String> {
    let redis = testkit::redis::RedisServer::start();
    let dir = app_dir(app, |c| c, &[("noop_plugin", "noop.wasm")]);
    let q = queue(&redis, queue_name).await;
    q.pause().await.unwrap();
    let concurrency = format!("{queue_name}:1");
    let daemon =
        start(dir.path(), &redis, &[("RUNNER_QUEUES", &concurrency), ("RUNNER_LOG", "info,runner::daemon=debug")]);
    let n = jobs.len() as u64;
    q.enqueue_bulk(jobs).await.unwrap();
    q.resume().await.unwrap();
    wait_counts(&q, "every job done", Duration::from_secs(90), |c| c.completed == n).await;
    daemon
        .log()
        .lines()
        .filter(|l| l.ends_with(": started"))
        .filter_map(|l| Some(l.split("id=").nth(1)?.split([' ', '}']).next()?.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_crm_queue_options_take_effect() {
    let redis = testkit::redis::RedisServer::start();
    // The short clock: the import queue's 10 minutes as 600 ms.
    let dir = app_dir(
        "whatsapp-crm",
        |c| c.replace("timeout = \"10m\"", "timeout = \"600ms\""),
        &[("noop_plugin", "noop.wasm"), ("hostile_plugin", "hostile.wasm")],
    );
    let daemon = start(dir.path(), &redis, &[]);

    // 20 a minute: 25 jobs, 20 run, 5 wait for the next minute.
    let messages = queue(&redis, "messages").await;
    let began = Instant::now();
    let jobs = (0..25).map(|i| job(&format!("m{i}"), "noop", "{}", JobOptions::default())).collect();
    messages.enqueue_bulk(jobs).await.unwrap();
    wait_counts(&messages, "20 messages", Duration::from_secs(90), |c| c.completed == 20).await;
    // The runner is told the window's wait by the queue: it fetches again
    // only when the minute is up, so within it none of the rest start.
    let c = messages.counts().await.unwrap();
    assert!(began.elapsed() < Duration::from_secs(60), "the check spans less than the window");
    assert_eq!((c.completed, c.waiting, c.active), (20, 5, 0), "{c:?}");

    // Exponential from 5 s: 5 s, then 10 s; three attempts on `webhooks`.
    let webhooks = queue(&redis, "webhooks").await;
    let (delays, failed) = retry_delays(&webhooks, "hook-1").await;
    assert_eq!(delays, [5000, 10_000]);
    assert_eq!((failed.state, failed.attempts_made), (State::Failed, 3));

    // The last 100 completed kept.
    let notifications = queue(&redis, "notifications").await;
    let jobs = (0..105).map(|i| job(&format!("n{i}"), "noop", "{}", JobOptions::default())).collect();
    notifications.enqueue_bulk(jobs).await.unwrap();
    let c = wait_counts(&notifications, "105 notifications done", Duration::from_secs(90), |c| {
        c.waiting + c.active + c.delayed == 0 && c.completed <= 100 && c.completed > 0
    })
    .await;
    assert_eq!(c.completed, 100);
    assert!(notifications.get("n104").await.unwrap().is_some() && notifications.get("n0").await.unwrap().is_none());

    // The import timeout stops a plugin that runs longer; one attempt.
    let imports = queue(&redis, "imports").await;
    imports.enqueue(job("import-1", "sleep", r#"{"ms": 60000}"#, JobOptions::default())).await.unwrap();
    let r = imports.wait("import-1", Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!((r.state, r.attempts_made), (State::Failed, 1), "{r:?}");
    assert!(r.errors[0].error.contains("600ms timeout"), "{:?}", r.errors);

    // The daily snapshot fires when its time comes (moved to now).
    let analytics = queue(&redis, "analytics").await;
    let schedules = analytics.list_schedules().await.unwrap();
    let mut ids: Vec<&str> = schedules.iter().map(|s| s.schedule.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["analytics-daily", "analytics-monthly", "analytics-weekly"]);
    let fired = fire_now(&redis, &analytics, "analytics-daily", &daemon).await;
    assert_eq!(
        (fired.job_type.as_str(), &fired.payload),
        ("analytics-snapshot", &serde_json::json!({"period": "daily"}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_crm_priorities_order_the_work() {
    // Bull's priority p (1 first) is the runner's 11 - p (higher first).
    let bull = [7u32, 1, 10, 3];
    let jobs = bull
        .iter()
        .map(|p| job(&format!("p{p}"), "noop", "{}", JobOptions { priority: Some(11 - p), ..Default::default() }))
        .collect();
    assert_eq!(order_of_work("whatsapp-crm", "messages", jobs).await, ["p1", "p3", "p7", "p10"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_saas_queue_options_take_effect() {
    let redis = testkit::redis::RedisServer::start();
    let dir = app_dir("whatsapp-saas", |c| c, &[("hostile_plugin", "hostile.wasm")]);
    let _daemon = start(dir.path(), &redis, &[]);
    // QUEUE_RETRY_ATTEMPTS=3, exponential from 1 s, on a queue named with `:`.
    let webhooks = queue(&redis, "whatsapp:webhook").await;
    let (delays, failed) = retry_delays(&webhooks, "wh-1").await;
    assert_eq!(delays, [1000, 2000]);
    assert_eq!(failed.attempts_made, 3);

    // The email queue's priority 5 runs before a job that asks for less.
    let jobs = vec![
        job("later", "noop", "{}", JobOptions { priority: Some(1), ..Default::default() }),
        job("queue-default", "noop", "{}", JobOptions::default()),
        job("urgent", "noop", "{}", JobOptions { priority: Some(9), ..Default::default() }),
    ];
    assert_eq!(order_of_work("whatsapp-saas", "notification:email", jobs).await, ["urgent", "queue-default", "later"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oes_email_queue_options_take_effect() {
    let redis = testkit::redis::RedisServer::start();
    let dir = app_dir("oes", |c| c, &[("hostile_plugin", "hostile.wasm")]);
    let _daemon = start(dir.path(), &redis, &[]);
    let emails = queue(&redis, "emails").await;
    let (delays, failed) = retry_delays(&emails, "mail-1").await;
    assert_eq!(delays, [2000, 4000], "exponential from 2 s");
    assert_eq!(failed.attempts_made, 3);

    // Verification emails (priority 10) before the default 5.
    let jobs = vec![
        job("newsletter", "noop", "{}", JobOptions::default()),
        job("verify", "noop", "{}", JobOptions { priority: Some(10), ..Default::default() }),
    ];
    assert_eq!(order_of_work("oes", "emails", jobs).await, ["verify", "newsletter"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engreene_jobs_and_schedules_take_effect() {
    let redis = testkit::redis::RedisServer::start();
    let dir = app_dir("engreene", |c| c, &[("hostile_plugin", "hostile.wasm")]);
    let daemon = start(dir.path(), &redis, &[]);
    let q = queue(&redis, "default").await;
    // Exponential from 1 s with a jitter of 0.2: each delay at most the
    // step's, and no less than four fifths of it.
    let (delays, failed) = retry_delays(&q, "job-1").await;
    assert_eq!(delays.len(), 2);
    assert!((800..=1000).contains(&delays[0]) && (1600..=2000).contains(&delays[1]), "{delays:?}");
    assert_eq!(failed.attempts_made, 3);

    // Both schedules are there; the hourly clean-up fires when due.
    let mut ids: Vec<String> = q.list_schedules().await.unwrap().into_iter().map(|s| s.schedule.id).collect();
    ids.sort();
    assert_eq!(ids, ["cache-warmup", "cleanup-expired-sessions"]);
    let fired = fire_now(&redis, &q, "cleanup-expired-sessions", &daemon).await;
    assert_eq!(fired.job_type, "cleanup_expired_sessions");
}
