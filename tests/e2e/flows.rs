//! Flows through a running `runner serve` with a real plugin: a fan-in
//! whose children fail at random and retry, with the runner `kill -9`ed
//! midway and started again, completes its parent exactly once with every
//! child's outcome recorded; a child that fails for good fails its parent;
//! and a nested flow across three queues runs level by level.

use crate::serve::{Daemon, install, queue, wait_counts};
use jobrunner_queue::{ChildState, Connection, FlowJob, JobRecord, Queue, State, add_flow};
use std::time::{Duration, Instant};

const CONFIG: &str = "[runner]\nlease = \"2s\"\n\
    [queues.reports]\nconcurrency = 4\n\
    [queues.sends]\nconcurrency = 50\n\
    [queues.chunks]\nconcurrency = 4\n";

/// Waits until job `id` of `q` is in one of `states`.
async fn wait_state(q: &Queue, id: &str, states: &[State]) -> JobRecord {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(Some(r)) = q.get(id).await
            && states.contains(&r.state)
        {
            return r;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {id} to be one of {states:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many `completed` events of `q` name `id`.
async fn completions_of(q: &Queue, id: &str) -> usize {
    let events = q.events("0", 100_000).await.unwrap();
    events
        .iter()
        .filter(|(_, f)| f.first().is_some_and(|(_, v)| v == "completed"))
        .filter(|(_, f)| Queue::event_ids(f).contains(&id))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_in_survives_kill_9_and_completes_its_parent_once() {
    const CHILDREN: usize = 3000;
    let redis = testkit::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runner.toml"), CONFIG).unwrap();
    install(dir.path(), "hostile_plugin", "hostile.wasm");
    let conn = Connection::connect(&redis.url()).await.unwrap();
    // Retention trims a queue by the retention of the job completing, so
    // every job of the test keeps all: the end reads every child back.
    let keep_all = serde_json::json!({"keep_completed": {"count": null, "age_ms": null}, "keep_failed": {"count": null, "age_ms": null}});
    let mut child_options = keep_all.clone();
    child_options["attempts"] = 3.into();
    child_options["backoff"] = serde_json::json!({"type": "fixed", "delay_ms": 20});
    let children: Vec<serde_json::Value> = (0..CHILDREN)
        .map(|i| {
            serde_json::json!({"queue": "sends", "id": format!("send-{i:05}"), "type": "flaky",
                "payload": {"fail_percent": 20}, "options": child_options, "on_failure": "ignore"})
        })
        .collect();
    let fan_in: FlowJob = serde_json::from_value(serde_json::json!({
        "queue": "reports", "id": "report", "type": "echo", "payload": {"report": 1}, "options": keep_all, "children": children,
    }))
    .unwrap();
    assert_eq!(add_flow(&conn, fan_in).await.unwrap().jobs, CHILDREN + 1);
    let doomed: FlowJob = serde_json::from_value(serde_json::json!({
        "queue": "reports", "id": "doomed", "type": "echo", "options": keep_all,
        "children": [
            {"queue": "sends", "id": "bad", "type": "fail-as", "payload": {"as": "permanent", "message": "no such recipient"}, "options": keep_all},
            {"queue": "sends", "id": "fine", "type": "echo", "options": keep_all},
        ],
    }))
    .unwrap();
    add_flow(&conn, doomed).await.unwrap();
    let nested: FlowJob = serde_json::from_value(serde_json::json!({
        "queue": "reports", "id": "import", "type": "echo", "options": keep_all,
        "children": [{"queue": "chunks", "id": "chunk-1", "type": "echo", "options": keep_all, "children": [
            {"queue": "sends", "id": "row-1", "type": "echo", "payload": {"row": 1}, "options": keep_all},
            {"queue": "sends", "id": "row-2", "type": "echo", "payload": {"row": 2}, "options": keep_all},
        ]}],
    }))
    .unwrap();
    add_flow(&conn, nested).await.unwrap();

    let (reports, sends, chunks) =
        (queue(&redis.url(), "reports").await, queue(&redis.url(), "sends").await, queue(&redis.url(), "chunks").await);
    let mut daemon = Daemon::start(dir.path(), Some(&redis.url()));
    let at = wait_counts(&sends, "a third of the children", Duration::from_secs(300), |c| {
        c.completed + c.failed >= CHILDREN as u64 / 3
    })
    .await;
    println!("SIGKILL with {} children running, {} finished", at.active, at.completed + at.failed);
    daemon.kill_9();
    let _daemon = Daemon::start(dir.path(), Some(&redis.url()));

    let parent = wait_state(&reports, "report", &[State::Completed, State::Failed]).await;
    assert_eq!(parent.state, State::Completed, "{parent:?}");
    assert_eq!(parent.attempts_made, 1, "the parent ran once");
    assert_eq!(parent.result, Some(serde_json::json!({"report": 1})));
    assert_eq!(completions_of(&reports, "report").await, 1, "completed exactly once");
    let counts = parent.children.clone().unwrap();
    assert_eq!((counts.total, counts.pending, counts.completed + counts.failed), (CHILDREN as u64, 0, CHILDREN as u64));

    // Every child's outcome, as the parent recorded it, is the child's own.
    let mut from = 1;
    let mut seen = 0;
    while let Some(page) = reports.children("report", from, 1000).await.unwrap() {
        for c in &page.children {
            let own = sends.get(&c.id).await.unwrap().unwrap_or_else(|| panic!("child {} is lost", c.id));
            let expected = match own.state {
                State::Completed => ChildState::Completed,
                State::Failed => ChildState::Failed,
                other => panic!("child {} ended {other:?}", c.id),
            };
            assert_eq!(c.state, expected, "child {}", c.id);
            if own.state == State::Failed {
                assert_eq!(own.attempts_made, 3, "child {} failed after exactly its attempts", c.id);
            }
            seen += 1;
        }
        match page.next {
            Some(next) => from = next,
            None => break,
        }
    }
    assert_eq!(seen, CHILDREN);
    println!(
        "fan-in of {CHILDREN} children across a kill -9: {} completed, {} failed and ignored, parent completed once",
        counts.completed, counts.failed
    );

    let doomed = wait_state(&reports, "doomed", &[State::Failed, State::Completed]).await;
    assert_eq!(doomed.state, State::Failed);
    let reason = doomed.result.unwrap()["failed_reason"].as_str().unwrap().to_string();
    assert!(reason.starts_with("child sends/bad failed: "), "{reason}");
    assert!(reason.contains("no such recipient"), "{reason}");

    let import = wait_state(&reports, "import", &[State::Completed, State::Failed]).await;
    assert_eq!(import.state, State::Completed);
    let chunk = chunks.get("chunk-1").await.unwrap().unwrap();
    assert_eq!(chunk.state, State::Completed);
    assert!(chunk.state_since_or_until <= import.state_since_or_until, "the chunk finished before its parent");
    let rows = chunks.children("chunk-1", 1, 10).await.unwrap().unwrap();
    assert_eq!(
        rows.children.iter().map(|c| c.value.clone()).collect::<Vec<_>>(),
        [Some(serde_json::json!({"row": 1})), Some(serde_json::json!({"row": 2}))]
    );
}

/// `runner flow add | show | remove`: a flow from a file, shown with its
/// children, removed whole; a bad flow is a one-line error naming the job
/// at fault, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_commands_add_show_and_remove() {
    let redis = testkit::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runner.toml"), format!("[redis]\nurl = \"{}\"\n", redis.url())).unwrap();
    let flow = r#"{"queue": "reports", "id": "weekly", "type": "echo", "children": [
        {"queue": "sends", "id": "a", "type": "echo"}, {"queue": "sends", "id": "b", "type": "echo", "on_failure": "continue"}]}"#;
    std::fs::write(dir.path().join("flow.json"), flow).unwrap();
    let out = crate::runner_async(dir.path(), &["flow", "add", "flow.json", "--config", "runner.toml"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "weekly");

    let out = crate::runner_async(dir.path(), &["flow", "show", "reports", "weekly", "--config", "runner.toml"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["job"]["state"], "waiting_children");
    assert_eq!(shown["children"]["counts"]["total"], 2);
    assert_eq!(shown["children"]["children"][1]["id"], "b");

    let bad = r#"{"queue": "reports", "type": "echo", "children": [{"queue": "sends", "type": "echo", "on_failure": "sometimes"}]}"#;
    std::fs::write(dir.path().join("bad.json"), bad).unwrap();
    let out = crate::runner_async(dir.path(), &["flow", "add", "bad.json", "--config", "runner.toml"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bad.json is not a flow") && err.contains("sometimes"), "{err}");

    let out =
        crate::runner_async(dir.path(), &["flow", "remove", "reports", "weekly", "--config", "runner.toml"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "removed 3 jobs");
    let sends = queue(&redis.url(), "sends").await;
    assert_eq!(sends.counts().await.unwrap().waiting, 0);
    let out =
        crate::runner_async(dir.path(), &["flow", "remove", "reports", "weekly", "--config", "runner.toml"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job `weekly` in queue reports"));
}

/// Contract 0.2 through the daemon: a plugin's job asks for a flow (its
/// grant names the queue), the runner enqueues it when the job succeeds,
/// and the flow's parent, run by the same plugin, pages through its
/// children's outputs; one child's failure is ignored, as the flow says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_builds_a_flow_and_its_parent_reads_its_children() {
    let redis = testkit::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("runner.toml"),
        "[queues.default]\nconcurrency = 4\n[queues.fan]\nconcurrency = 8\n[plugins.hostile]\nmay_enqueue = [\"fan:*\"]\n",
    )
    .unwrap();
    install(dir.path(), "hostile_plugin", "hostile.wasm");
    let _daemon = Daemon::start(dir.path(), Some(&redis.url()));
    let default = queue(&redis.url(), "default").await;
    let fan = queue(&redis.url(), "fan").await;
    let asked = default
        .enqueue(jobrunner_queue::NewJob {
            id: Some("campaign".into()),
            job_type: "flow-out".into(),
            payload: r#"{"queue": "fan", "children": 50, "fail": 3, "on_failure": "ignore"}"#.into(),
            options: Default::default(),
        })
        .await
        .unwrap();
    let record = default.wait(&asked.id, Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(record.state, State::Completed, "{record:?}");
    let root = record.result.unwrap()["root"].as_str().unwrap().to_string();
    let parent = wait_state(&fan, &root, &[State::Completed, State::Failed]).await;
    assert_eq!(parent.state, State::Completed, "{parent:?}");
    assert_eq!(
        parent.result,
        Some(
            serde_json::json!({"parent": true, "total": 50, "completed": 49, "failed": 1, "seen": 50, "sum": 1222, "pages": 8})
        )
    );
    let child = fan.children(&root, 4, 1).await.unwrap().unwrap().children.remove(0);
    assert_eq!((child.state, child.error.as_deref()), (ChildState::Failed, Some("child 3 fails")));
    let own = fan.get(&child.id).await.unwrap().unwrap();
    assert_eq!(own.parent.map(|p| p.id), Some(root));
}

/// The campaign example (`examples/campaign-ts`, TypeScript, contract 0.2)
/// through `runner serve` beside the email plugin: a `campaign` job
/// enqueues one email per recipient under a report; one address is
/// invalid, its email fails for good and is ignored; the report runs once
/// every email is done and counts them from its children.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_campaign_example_reports_its_counts() {
    let Some(campaign) = testkit::guest::plugin_or_skip(testkit::guest::Lang::Js, "campaign-ts") else { return };
    let redis = testkit::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("runner.toml"),
        "[mail]\nsender = \"News <news@example.com>\"\n\
         [queues.campaigns]\nconcurrency = 2\n[queues.emails]\nconcurrency = 8\n\
         [plugins.campaign-ts]\nmay_enqueue = [\"emails:email\", \"campaigns:campaign-report\"]\n",
    )
    .unwrap();
    install(dir.path(), "email_plugin", "email.wasm");
    std::fs::copy(&campaign, dir.path().join("plugins/campaign-ts.wasm")).unwrap();
    let _daemon = Daemon::start(dir.path(), Some(&redis.url()));
    let campaigns = queue(&redis.url(), "campaigns").await;
    let mut recipients: Vec<String> = (0..30).map(|i| format!("guest{i}@example.com")).collect();
    recipients[7] = "not an address".into();
    let payload =
        serde_json::json!({"id": "spring", "subject": "Spring sale", "text": "20% off", "recipients": recipients});
    campaigns
        .enqueue(jobrunner_queue::NewJob {
            id: Some("spring".into()),
            job_type: "campaign".into(),
            payload: payload.to_string(),
            options: Default::default(),
        })
        .await
        .unwrap();
    let started = campaigns.wait("spring", Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(started.state, State::Completed, "{started:?}");
    assert_eq!(started.result.as_ref().unwrap()["report"], "campaign-spring");
    let report = wait_state(&campaigns, "campaign-spring", &[State::Completed, State::Failed]).await;
    assert_eq!(report.state, State::Completed, "{report:?}");
    let r = report.result.unwrap();
    assert_eq!((r["total"].as_u64(), r["sent"].as_u64(), r["failed"].as_u64()), (Some(30), Some(29), Some(1)), "{r}");
    assert_eq!(r["failures"][0]["id"], "campaign-spring-7", "{r}");
    // The emails were written to the outbox, one per good address.
    let outbox = dir.path().join(".runner/outbox");
    let sent = std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
    assert_eq!(sent, 29, "emails in {}", outbox.display());
}
