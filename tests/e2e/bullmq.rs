//! BullMQ-backed queues through the real binary and real BullMQ: Node's
//! `bullmq` package (pinned in `tests/bullmq/`, installed here with `npm ci`)
//! adds jobs as apps do; the runner runs them through the real plugins;
//! BullMQ's own Node API then reads back each job's state, return value,
//! attempts, progress and log. A BullMQ Node worker and the runner share a
//! queue; a shutdown puts unfinished jobs back as BullMQ expects.

use crate::serve::{Daemon, bed, serve_bed};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `tests/bullmq/`, with its packages installed (once per test run).
///
/// The lock file leaves out the native msgpack add-ons of platforms this
/// machine's registry does not carry (BullMQ falls back to JavaScript
/// without them), so that `npm ci` accepts it here.
fn node_package() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = testkit::workspace_root().join("tests/bullmq");
        crate::npm_ci(&dir, "node_modules/bullmq/package.json");
        dir
    })
}

/// Runs `node bull.mjs COMMAND URL PREFIX QUEUE ARGS…` and returns its stdout.
async fn node(command: &str, url: &str, queue: &str, args: &[&str]) -> String {
    let dir = node_package();
    let out = tokio::process::Command::new("node")
        .current_dir(dir)
        .arg("bull.mjs")
        .args([command, url, "bull", queue])
        .args(args)
        .output()
        .await
        .expect("node runs");
    assert!(out.status.success(), "node bull.mjs {command}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Adds jobs (`[{name, data, opts}]`) with BullMQ's `queue.add`; their ids.
async fn add(url: &str, queue: &str, jobs: Value) -> Vec<String> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), jobs.to_string()).unwrap();
    serde_json::from_str(&node("add", url, queue, &[file.path().to_str().unwrap()]).await).unwrap()
}

/// Adds a flow (`{name, data, opts, children}`) with BullMQ's
/// `FlowProducer`, the root in `queue`; the root's id.
async fn add_flow(url: &str, queue: &str, tree: Value) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), tree.to_string()).unwrap();
    serde_json::from_str(&node("flow", url, queue, &[file.path().to_str().unwrap()]).await).unwrap()
}

/// Each job as BullMQ's Node API reads it, by id.
async fn inspect(url: &str, queue: &str, ids: &[String]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let args: Vec<&str> = chunk.iter().map(String::as_str).collect();
        for line in node("inspect", url, queue, &args).await.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            out.insert(v["id"].as_str().unwrap().to_string(), v);
        }
    }
    out
}

/// Waits until every job is completed or failed, by BullMQ's own reading.
async fn wait_finished(url: &str, queue: &str, ids: &[String], timeout: Duration) -> BTreeMap<String, Value> {
    let deadline = Instant::now() + timeout;
    // `inspect` reads a job's fields, then its state: a job that finished
    // between the two reads shows a finished state over the fields of its
    // last attempt still running, without `finishedOn`. Only a job whose
    // fields say it finished too counts.
    let finished = |j: &Value| (j["state"] == "completed" || j["state"] == "failed") && !j["finishedOn"].is_null();
    loop {
        let jobs = inspect(url, queue, ids).await;
        if jobs.values().all(finished) {
            return jobs;
        }
        let pending: Vec<_> = jobs.values().filter(|j| !finished(j)).collect();
        assert!(Instant::now() < deadline, "not finished in {timeout:?}: {pending:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn returned(j: &Value) -> Value {
    j["returnvalue"].clone()
}

/// The example config (its plugins pointed at `receiver`) with three
/// BullMQ-backed queues, and reminder emails sent to the BullMQ mail queue.
fn config(receiver: &str) -> String {
    let examples = testkit::workspace_root().join("examples");
    let base = std::fs::read_to_string(examples.join("runner.toml"))
        .unwrap()
        .replace("127.0.0.1:8089", receiver)
        .replace("ladder_hours =", "email_queue = \"mail\"\nladder_hours =")
        .replace(r#"may_enqueue = ["default:email"]"#, r#"may_enqueue = ["mail:email"]"#);
    let queues = r#"
[queues.mail]
concurrency = 8
[queues.mail.bullmq]
name = "emails"
[queues.mail.bullmq.types]
send-email = "email"

[queues.reminders]
concurrency = 2
[queues.reminders.bullmq]
[queues.reminders.bullmq.types]
remind-vendor = "response-reminder"

[queues.misc]
concurrency = 1
[queues.misc.bullmq]
max_started_attempts = 3
[queues.misc.bullmq.types]
warm-cache = "cache-warmup"
"#;
    format!("{base}{queues}")
}

fn email(to: &str) -> Value {
    json!({"to": to, "template": "booking_confirmation", "data": {
        "customer_name": "Ana", "booking_id": "B-1042", "service_name": "Photography",
        "vendor_name": "Lumen Studio", "date": "2026-12-05"}})
}

async fn api_get(base: &str, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_added_with_bullmq_run_through_the_plugins_and_read_back_in_bullmq() {
    let receiver = testkit::http::HttpRecorder::start().await;
    receiver.reply(
        "/api/vendors/v-77/contact",
        testkit::http::Reply::json(json!({"name": "Lumen", "email": "lumen@example.com"})),
    );
    receiver.reply("/api/conversations/conv-5521", testkit::http::Reply::json(json!({"answered": false})));
    receiver.reply("/pages/home", testkit::http::Reply::status(200).body("home"));
    receiver.reply("/pages/pricing", testkit::http::Reply::status(200).body("pricing"));
    let here = format!("127.0.0.1:{}", receiver.port);
    let (redis, dir) = bed(
        &config(&here),
        &[
            ("email_plugin", "email_plugin.wasm"),
            ("response_reminder_plugin", "response_reminder_plugin.wasm"),
            ("cache_warmup_plugin", "cache_warmup_plugin.wasm"),
            ("hostile_plugin", "hostile_plugin.wasm"),
        ],
    );
    let url = redis.url();

    // Priorities: added before any worker runs, so the runner (concurrency
    // 1 on this queue) finds them all waiting and must pick by priority.
    let priorities = [7, 1, 5, 3, 9, 2];
    let prioritized = add(
        &url,
        "misc",
        json!(
            priorities
                .iter()
                .map(|p| json!({"name": "sleep", "data": {"ms": 5}, "opts": {"priority": p}}))
                .collect::<Vec<_>>()
        ),
    )
    .await;

    let daemon = Daemon::start(dir.path(), Some(&url));

    // The seed systems' kinds, as an app adds them.
    let backoff = json!({"attempts": 3, "backoff": {"type": "exponential", "delay": 50}});
    let mut mail_jobs: Vec<Value> = (0..20)
        .map(|i| json!({"name": "send-email", "data": email(&format!("guest{i}@example.com")), "opts": backoff}))
        .collect();
    mail_jobs.push(json!({"name": "send-email", "data": email("not-an-address"), "opts": backoff}));
    let mail = add(&url, "emails", json!(mail_jobs)).await;
    let cache_payload: Value = serde_json::from_str(
        &std::fs::read_to_string(testkit::workspace_root().join("examples/payloads/cache-warmup.json"))
            .unwrap()
            .replace("127.0.0.1:8089", &here),
    )
    .unwrap();
    let misc = add(
        &url,
        "misc",
        json!([
            {"name": "fail-as", "data": {"as": "retry", "message": "vendor API answered 503"},
             "opts": {"attempts": 3, "backoff": {"type": "exponential", "delay": 50}}},
            {"name": "fail-as", "data": {"as": "permanent", "message": "no such vendor"}, "opts": {"attempts": 5}},
            {"name": "fail-as", "data": {"as": "retry-after", "delay_ms": 100, "message": "rate limited"}, "opts": {"attempts": 2}},
            {"name": "warm-cache", "data": cache_payload},
        ]),
    )
    .await;
    let reminders = add(
        &url,
        "reminders",
        json!([{"name": "remind-vendor", "data": {"vendor_id": "v-77", "client_id": "c-311",
                "conversation_id": "conv-5521", "step": 1}, "opts": {"delay": 300}}]),
    )
    .await;

    let mail_done = wait_finished(&url, "emails", &mail, Duration::from_secs(60)).await;
    let misc_done = wait_finished(&url, "misc", &misc, Duration::from_secs(60)).await;
    let reminder_done = wait_finished(&url, "reminders", &reminders, Duration::from_secs(60)).await;
    let prioritized_done = wait_finished(&url, "misc", &prioritized, Duration::from_secs(60)).await;

    // Emails: each sent once, its return value the plugin's output, its log
    // the plugin's; the bad address failed at once despite 3 attempts.
    for id in &mail[..20] {
        let j = &mail_done[id];
        assert_eq!(j["state"], "completed", "{j}");
        assert_eq!(j["attemptsStarted"], 1, "{j}");
        assert!(returned(j)["message_id"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
        assert!(j["logs"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("sending `")), "{j}");
        assert!(j["processedBy"].as_str().is_some_and(|p| p.starts_with("jobrunner@")), "{j}");
    }
    let bad = &mail_done[&mail[20]];
    assert_eq!((bad["state"].as_str(), bad["attemptsMade"].as_u64()), (Some("failed"), Some(1)), "{bad}");
    assert!(bad["failedReason"].as_str().unwrap().contains("not-an-address"), "{bad}");

    // Retry follows the job's attempts and backoff (50 + 100 ms at least).
    let retried = &misc_done[&misc[0]];
    assert_eq!((retried["state"].as_str(), retried["attemptsMade"].as_u64()), (Some("failed"), Some(3)), "{retried}");
    assert_eq!(retried["failedReason"], "vendor API answered 503");
    let took = retried["finishedOn"].as_u64().unwrap() - retried["timestamp"].as_u64().unwrap();
    assert!(took >= 150, "the backoff was applied: {took} ms");
    // Permanent: no further attempts.
    let permanent = &misc_done[&misc[1]];
    assert_eq!((permanent["state"].as_str(), permanent["attemptsStarted"].as_u64()), (Some("failed"), Some(1)));
    assert_eq!(permanent["failedReason"], "no such vendor");
    // Retry-after: delayed without spending an attempt, until the queue's
    // `max_started_attempts` (3) ends it.
    let waited = &misc_done[&misc[2]];
    assert_eq!(waited["state"], "failed", "{waited}");
    assert_eq!(waited["attemptsStarted"], 4, "{waited}");
    assert!(waited["failedReason"].as_str().unwrap().contains("started more than allowable limit"), "{waited}");
    let notes = waited["logs"].as_array().unwrap().iter().filter(|l| l.as_str().unwrap().contains("retry after 100ms"));
    assert_eq!(notes.count(), 3, "{waited}");
    // Progress reaches BullMQ's progress.
    let warmed = &misc_done[&misc[3]];
    assert_eq!((warmed["state"].as_str(), warmed["progress"].as_u64()), (Some("completed"), Some(100)), "{warmed}");

    // Priorities: run in BullMQ's order (lower first).
    let mut order: Vec<(u64, u64)> = prioritized
        .iter()
        .zip(priorities)
        .map(|(id, p)| (prioritized_done[id]["processedOn"].as_u64().unwrap(), p))
        .collect();
    order.sort();
    let ran: Vec<u64> = order.iter().map(|(_, p)| *p).collect();
    assert_eq!(ran, [1, 2, 3, 5, 7, 9]);

    // The delayed reminder ran no sooner than its delay; its follow-ups went
    // to the BullMQ queues as BullMQ jobs, named as the app names them.
    let r = &reminder_done[&reminders[0]];
    assert_eq!(r["state"], "completed", "{r}");
    assert!(r["processedOn"].as_u64().unwrap() >= r["timestamp"].as_u64().unwrap() + 300, "{r}");
    assert_eq!(returned(r)["sent"], json!(["reminder"]));
    let follow_email =
        wait_finished(&url, "emails", &["reminder.conv-5521.email.1".into()], Duration::from_secs(30)).await;
    let e = &follow_email["reminder.conv-5521.email.1"];
    assert_eq!((e["name"].as_str(), e["state"].as_str()), (Some("send-email"), Some("completed")), "{e}");
    let next = inspect(&url, "reminders", &["reminder.conv-5521.step.2".into()]).await;
    let n = &next["reminder.conv-5521.step.2"];
    assert_eq!(
        (n["name"].as_str(), n["state"].as_str(), n["data"]["step"].as_u64()),
        (Some("remind-vendor"), Some("delayed"), Some(2))
    );

    // One view: the API, the metrics, the dashboard and the CLI show the
    // BullMQ-backed queues beside the native ones.
    let base = daemon.http_url();
    let (_, queues) = api_get(&base, "/api/v1/queues").await;
    let mailq = queues.as_array().unwrap().iter().find(|q| q["name"] == "mail").expect("mail is listed");
    assert_eq!(mailq["backend"], "bullmq");
    assert!(mailq["completed"].as_u64().unwrap() >= 21, "{mailq}");
    assert_eq!(mailq["failed"], 1);
    let (status, rec) = api_get(&base, &format!("/api/v1/queues/mail/jobs/{}", mail[0])).await;
    assert_eq!(status, 200, "{rec}");
    assert_eq!((rec["type"].as_str(), rec["state"].as_str()), (Some("email"), Some("completed")));
    assert_eq!(rec["bullmq"]["name"], "send-email");
    let (_, failed) = api_get(&base, "/api/v1/queues/mail/jobs?state=failed").await;
    assert_eq!(failed["jobs"][0]["id"], mail[20].as_str());
    let (_, delayed) = api_get(&base, "/api/v1/queues/reminders/jobs?state=delayed").await;
    assert_eq!(delayed["jobs"][0]["id"], "reminder.conv-5521.step.2");
    // Enqueued through the runner's API, it is a BullMQ job like the app's.
    let created = reqwest::Client::new()
        .post(format!("{base}/api/v1/queues/mail/jobs"))
        .json(&json!({"type": "email", "payload": email("api@example.com"), "id": "from-the-api"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let api_job = wait_finished(&url, "emails", &["from-the-api".into()], Duration::from_secs(30)).await;
    assert_eq!(api_job["from-the-api"]["name"], "send-email");
    assert_eq!(api_job["from-the-api"]["state"], "completed");
    let bad = reqwest::Client::new()
        .post(format!("{base}/api/v1/queues/mail/jobs"))
        .json(&json!({"type": "email", "payload": {}, "id": "a:b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().await.unwrap().contains("may not be an integer or contain `:`"));
    let huge = json!({"type": "email", "payload": {"text": "x".repeat(2 << 20)}});
    let bad = reqwest::Client::new().post(format!("{base}/api/v1/queues/mail/jobs")).json(&huge).send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().await.unwrap().contains("byte limit"));
    let empty = reqwest::Client::new()
        .post(format!("{base}/api/v1/queues/mail/jobs/bulk"))
        .json(&json!({"jobs": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status().as_u16(), 201, "an empty bulk adds nothing and is no error");
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("jobrunner_queue_jobs{backend=\"bullmq\",queue=\"mail\",state=\"completed\"}")),
        "{metrics}"
    );
    assert!(metrics.contains("jobrunner_jobs_total{outcome=\"completed\",queue=\"mail\",type=\"email\"}"));
    let page = reqwest::get(format!("{base}/dashboard/queues/mail")).await.unwrap().text().await.unwrap();
    assert!(page.contains("A BullMQ queue") && page.contains(mail[0].as_str()), "{page}");
    let cli =
        crate::runner_async_env(dir.path(), &["queues", "--json", "--config", "runner.toml"], &[("REDIS_URL", &url)])
            .await;
    assert!(cli.status.success(), "{}", crate::stderr(&cli));
    let listed: Value = serde_json::from_str(&crate::stdout(&cli)).unwrap();
    assert_eq!(listed["mail"]["backend"], "bullmq");
    assert_eq!(listed["mail"]["failed"], 1);
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bullmq_worker_and_the_runner_share_a_queue_and_run_each_job_once() {
    let (redis, dir) =
        bed("[queues.shared]\nconcurrency = 10\n[queues.shared.bullmq]\n", &[("hostile_plugin", "hostile.wasm")]);
    let url = redis.url();
    // The Node worker first, then the runner: both wait for work.
    let ran_by_node = dir.path().join("node.ids");
    let mut worker = tokio::process::Command::new("node")
        .current_dir(node_package())
        .args(["bull.mjs", "work", &url, "bull", "shared", "10", ran_by_node.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut ready = String::new();
    use tokio::io::AsyncBufReadExt;
    tokio::io::BufReader::new(worker.stdout.take().unwrap()).read_line(&mut ready).await.unwrap();
    assert_eq!(ready.trim(), "ready");
    let daemon = Daemon::start(dir.path(), Some(&url));

    let n = 2000;
    let ids =
        add(&url, "shared", json!((0..n).map(|i| json!({"name": "whoami", "data": {"i": i}})).collect::<Vec<_>>()))
            .await;
    let done = wait_finished(&url, "shared", &ids, Duration::from_secs(120)).await;

    let node_ids: Vec<String> =
        std::fs::read_to_string(&ran_by_node).unwrap_or_default().lines().map(str::to_string).collect();
    let node_set: HashSet<&String> = node_ids.iter().collect();
    assert_eq!(node_set.len(), node_ids.len(), "the Node worker ran no job twice");
    let mut by_runner = 0;
    for id in &ids {
        let j = &done[id];
        assert_eq!(j["state"], "completed", "{j}");
        assert_eq!(j["attemptsStarted"], 1, "each job was started once: {j}");
        match returned(j)["by"].as_str() {
            Some("node") => assert!(node_set.contains(id), "{j}"),
            Some("hostile") => {
                assert!(!node_set.contains(id), "run by both: {j}");
                by_runner += 1;
            }
            other => panic!("who ran it? {other:?}: {j}"),
        }
    }
    assert_eq!(by_runner + node_ids.len(), n);
    assert!(by_runner > 0 && !node_ids.is_empty(), "both took part: runner {by_runner}, node {}", node_ids.len());
    drop(daemon);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(worker.id().unwrap() as i32, libc::SIGTERM) };
    let _ = worker.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_puts_unfinished_bullmq_jobs_back_in_wait() {
    let (redis, _dir, mut daemon) = serve_bed(
        "[runner]\nshutdown_grace = \"300ms\"\n[queues.slow]\nconcurrency = 2\n[queues.slow.bullmq]\n[plugins.hostile]\ntimeout = \"60s\"\n",
        &[("hostile_plugin", "hostile.wasm")],
    );
    let url = redis.url();
    let ids = add(&url, "slow", json!([{"name": "loop", "data": {}}, {"name": "loop", "data": {}}])).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !inspect(&url, "slow", &ids).await.values().all(|j| j["state"] == "active") {
        assert!(Instant::now() < deadline, "the jobs never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = daemon.signal(libc::SIGTERM);
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}\n{}", daemon.log());
    for (id, j) in inspect(&url, "slow", &ids).await {
        assert_eq!(j["state"], "waiting", "{id} went back: {j}");
        assert_eq!(j["attemptsMade"], 0, "{id} spent no attempt: {j}");
    }
    assert!(daemon.log().contains("moved back to wait"), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_hot_reload_apply_to_bullmq_queues_as_to_native_ones() {
    let (redis, dir, daemon) = serve_bed(
        "[queues.q]\nconcurrency = 20\n[queues.q.bullmq]\n[plugins.handler]\ntimeout = \"300ms\"\n",
        &[("hostile_plugin", "handler.wasm")],
    );
    let url = redis.url();

    // A job past its plugin's timeout is a failed attempt, retried under
    // the job's attempts.
    let looped = add(&url, "q", json!([{"name": "loop", "data": {}, "opts": {"attempts": 2}}])).await;
    let j = &wait_finished(&url, "q", &looped, Duration::from_secs(60)).await[&looped[0]];
    assert_eq!((j["state"].as_str(), j["attemptsMade"].as_u64()), (Some("failed"), Some(2)), "{j}");
    assert!(j["failedReason"].as_str().unwrap().contains("stopped after its 300ms timeout"), "{j}");

    // Swapped under load: every job runs, on the old version or the new.
    let whoami = |n: usize| json!((0..n).map(|i| json!({"name": "whoami", "data": {"i": i}})).collect::<Vec<_>>());
    let before = add(&url, "q", whoami(500)).await;
    std::fs::copy(testkit::wasm::path("noop_plugin"), dir.path().join("plugins/handler.wasm")).unwrap();
    // The section is the file's (`handler.wasm`), whichever plugin is in it.
    daemon.wait_log("declared=noop", Duration::from_secs(30));
    let after = add(&url, "q", whoami(500)).await;
    let done = wait_finished(&url, "q", &[before.clone(), after.clone()].concat(), Duration::from_secs(120)).await;
    for id in before.iter().chain(&after) {
        let j = &done[id];
        assert_eq!(j["state"], "completed", "no job lost to the swap: {j}");
        assert!(matches!(returned(j)["by"].as_str(), Some("hostile" | "noop")), "{j}");
    }
    for id in &after {
        assert_eq!(returned(&done[id])["by"], "noop", "added after the swap, run by the new version");
    }
    assert_eq!(returned(&done[&before[0]])["by"], "hostile");
}

/// A flow added by BullMQ's `FlowProducer` from Node runs through the
/// runner's plugins with BullMQ's semantics, read back from Node: the
/// parent runs after its children (one in another queue) and reads their
/// values; `failParentOnFailure` fails it; `ignoreDependencyOnFailure`
/// lets it run, the failure kept where BullMQ keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bullmq_flow_runs_through_the_plugins_with_bullmqs_semantics() {
    let (redis, _dir, _daemon) = serve_bed(
        "[queues.q]\nconcurrency = 8\n[queues.q.bullmq]\n[queues.other]\nconcurrency = 4\n[queues.other.bullmq]\n",
        &[("hostile_plugin", "handler.wasm")],
    );
    let url = redis.url();
    let root = add_flow(
        &url,
        "q",
        json!({"name": "echo", "data": {"report": 1}, "children": [
            {"name": "echo", "data": {"n": 1}},
            {"name": "echo", "data": {"n": 2}},
            {"name": "echo", "data": {"n": 3}, "queueName": "other"},
        ]}),
    )
    .await;
    let j = &wait_finished(&url, "q", std::slice::from_ref(&root), Duration::from_secs(60)).await[&root];
    assert_eq!((j["state"].as_str(), returned(j)), (Some("completed"), json!({"report": 1})), "{j}");
    let mut values: Vec<u64> =
        j["childrenValues"].as_object().unwrap().values().map(|v| v["n"].as_u64().unwrap()).collect();
    values.sort();
    assert_eq!(values, [1, 2, 3], "{j}");

    let doomed = add_flow(
        &url,
        "q",
        json!({"name": "echo", "data": {}, "children": [
            {"name": "fail-as", "data": {"as": "permanent", "message": "no such recipient"}, "opts": {"failParentOnFailure": true}},
        ]}),
    )
    .await;
    let j = &wait_finished(&url, "q", std::slice::from_ref(&doomed), Duration::from_secs(60)).await[&doomed];
    assert_eq!(j["state"], "failed", "{j}");
    assert!(j["failedReason"].as_str().unwrap_or_default().contains("child"), "{j}");

    let tolerant = add_flow(
        &url,
        "q",
        json!({"name": "echo", "data": {"ok": true}, "children": [
            {"name": "fail-as", "data": {"as": "permanent", "message": "bounced"}, "opts": {"ignoreDependencyOnFailure": true}},
            {"name": "echo", "data": {"n": 7}},
        ]}),
    )
    .await;
    let j = &wait_finished(&url, "q", std::slice::from_ref(&tolerant), Duration::from_secs(60)).await[&tolerant];
    assert_eq!((j["state"].as_str(), returned(j)), (Some("completed"), json!({"ok": true})), "{j}");
    assert_eq!(j["childrenValues"].as_object().map(|v| v.len()), Some(1), "{j}");
}

/// `[queues.NAME]` on a BullMQ-backed queue is its worker's options: the
/// limiter holds ten jobs of a "5/1s" rate to two windows at least,
/// `keep_completed` trims BullMQ's completed jobs that set no retention of
/// their own, and `timeout` stops the plugin; the API shows the policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bullmq_queues_policy_is_its_workers_options() {
    let (redis, _dir, daemon) = serve_bed(
        "[queues.q]\nconcurrency = 4\ntimeout = \"300ms\"\nkeep_completed = 2\nrate = \"5/1s\"\n[queues.q.bullmq]\n",
        &[("hostile_plugin", "handler.wasm")],
    );
    let url = redis.url();
    let base = daemon.http_url();

    let looped = add(&url, "q", json!([{"name": "loop", "data": {}}])).await;
    let j = &wait_finished(&url, "q", &looped, Duration::from_secs(60)).await[&looped[0]];
    assert_eq!(j["state"], "failed", "{j}");
    assert!(j["failedReason"].as_str().unwrap().contains("stopped after its 300ms timeout"), "{j}");

    let started = Instant::now();
    add(&url, "q", json!((0..10).map(|i| json!({"name": "whoami", "data": {"i": i}})).collect::<Vec<_>>())).await;
    let view = loop {
        let (status, view) = api_get(&base, "/api/v1/queues/q").await;
        assert_eq!(status, 200, "{view}");
        if view["waiting"] == 0 && view["active"] == 0 && view["delayed"] == 0 && view["completed"] != 0 {
            break view;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the jobs did not finish: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Five start in the first window at most, the rest in a later one.
    assert!(started.elapsed() >= Duration::from_secs(1), "ten jobs at 5/1s took {:?}", started.elapsed());
    assert_eq!(view["completed"], 2, "BullMQ kept the last two: {view}");
    assert_eq!(view["policy"]["rate"]["source"], "config", "{view}");
    assert_eq!(view["policy"]["keep_completed"]["value"], json!({"count": 2, "age_ms": null}), "{view}");
    assert_eq!(view["policy"]["attempts"]["source"], "default", "{view}");
}
