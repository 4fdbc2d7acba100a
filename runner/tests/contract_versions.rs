//! Contract versions side by side: one host serves a plugin built against
//! 0.1 (the `noop` fixture, built from `wit/v0.1` for good) and one built
//! against 0.2 (the `hostile` fixture, through the SDK), each under its own
//! bindings; what 0.2 adds: a job's parent, flows a plugin asks for
//! (checked against its grants, enqueued only on success), and a parent
//! reading its children from a real queue.

mod common;

use common::{completed, job, setup, setup_with};
use jobrunner_host::cache::Cache;
use jobrunner_host::contract::Version;
use jobrunner_host::{EngineOptions, Services};
use jobrunner_queue::{Completion, Connection, FlowJob, Keep, Queue, add_flow};
use runner::Outcome;
use std::sync::Arc;
use std::time::Duration;

const GRANTED: &str = "[plugins.hostile]\nmay_enqueue = [\"fan:*\"]\n";

#[tokio::test]
async fn a_0_1_plugin_and_a_0_2_plugin_run_side_by_side() {
    let s = setup(GRANTED);
    let old = s.load("noop_plugin").await;
    let new = s.load("hostile_plugin").await;
    assert_eq!((old.description.contract, new.description.contract), (Version::V0_1, Version::V0_2));
    assert_eq!(completed(&old.run(&job("whoami", serde_json::json!({}))).await.outcome)["by"], "noop");
    // 0.2 gives a flow's child its parent.
    let mut child = job("whose-child", serde_json::json!({}));
    child.parent = Some(jobrunner_job::flow::JobRef { queue: "reports".into(), id: "weekly".into() });
    assert_eq!(completed(&new.run(&child).await.outcome), serde_json::json!({"queue": "reports", "id": "weekly"}));
    assert_eq!(completed(&new.run(&job("whose-child", serde_json::json!({}))).await.outcome), serde_json::Value::Null);
}

#[tokio::test]
async fn a_flow_a_plugin_asks_for_is_checked_against_its_grants_and_reported_on_success() {
    let s = setup(GRANTED);
    let plugin = s.load("hostile_plugin").await;
    let report = plugin.run(&job("flow-out", serde_json::json!({"queue": "fan", "children": 3}))).await;
    let out = completed(&report.outcome);
    assert_eq!(report.flows.len(), 1);
    let flow = &report.flows[0];
    assert_eq!(out["root"], flow.jobs[0].job.id.as_str());
    let shape: Vec<(&str, &str, Option<usize>)> =
        flow.jobs.iter().map(|j| (j.job.queue.as_str(), j.job.job_type.as_str(), j.parent)).collect();
    assert_eq!(
        shape,
        [("fan", "gather", None), ("fan", "echo", Some(0)), ("fan", "echo", Some(0)), ("fan", "echo", Some(0))]
    );
    assert_eq!(flow.jobs[2].job.payload["n"], 1);

    // A queue the operator did not grant: refused, and the job says why.
    let report = plugin.run(&job("flow-out", serde_json::json!({"queue": "elsewhere", "children": 1}))).await;
    match &report.outcome {
        Outcome::Permanent { message } => {
            assert!(message.contains("job 0") && message.contains("elsewhere"), "{message}")
        }
        other => panic!("expected the flow refused, got {other:?}"),
    }
    assert!(report.flows.is_empty());
}

#[tokio::test]
async fn outside_a_runner_a_parent_is_told_no_flows_are_read() {
    let s = setup(GRANTED);
    let plugin = s.load("hostile_plugin").await;
    match plugin.run(&job("gather", serde_json::json!({}))).await.outcome {
        Outcome::Retry { message } => assert!(message.contains("reads no flows"), "{message}"),
        other => panic!("expected a retry saying why, got {other:?}"),
    }
}

/// The runner's reader over a real queue: the parent pages through its
/// children (7 at a time) and sums their outputs.
#[tokio::test]
async fn a_parent_reads_its_children_from_its_queue() {
    let redis = testkit::redis::RedisServer::start();
    let conn = Connection::connect(&redis.url()).await.unwrap();
    let children: Vec<serde_json::Value> =
        (0..20).map(|i| serde_json::json!({"queue": "fan", "type": "echo", "payload": {"n": i}})).collect();
    let flow: FlowJob =
        serde_json::from_value(serde_json::json!({"queue": "fan", "id": "p", "type": "gather", "children": children}))
            .unwrap();
    add_flow(&conn, flow).await.unwrap();
    let q = Queue::new(conn.clone(), "fan").unwrap();
    let leased = q.fetch(100, Duration::from_secs(30)).await.unwrap().jobs;
    let done: Vec<Completion> = leased
        .iter()
        .map(|l| Completion { result: Some(l.spec.payload.get().to_string()), ..Completion::of(l) })
        .collect();
    q.complete(&done, Keep { count: None, age_ms: None }).await.unwrap();
    q.relay_outcomes().await.unwrap();

    let reader = runner::daemon::flows::Children { connection: conn, bull: Default::default() };
    let services = Services::new(Cache::memory(), jobrunner_host::mail::Mailer::outbox(std::env::temp_dir()))
        .with_flows(Arc::new(reader));
    let s = setup_with(GRANTED, Cache::memory(), EngineOptions { max_instances: 8, ..Default::default() });
    let host = runner::Host::new(
        jobrunner_host::HostOptions {
            engine: EngineOptions { max_instances: 8, ..Default::default() },
            compile_cache_dir: None,
        },
        services,
    )
    .unwrap();
    let path = testkit::wasm::path("hostile_plugin");
    let (plugin, _) = host.load_file(&path, |n| s.config.plugin_settings(n)).await.unwrap();
    let mut parent = job("gather", serde_json::json!({}));
    (parent.queue, parent.id) = ("fan".into(), "p".into());
    let out = completed(&plugin.run(&parent).await.outcome);
    assert_eq!(
        out,
        serde_json::json!({"parent": true, "total": 20, "completed": 20, "failed": 0, "seen": 20, "sum": 190, "pages": 3})
    );
    // A job that is no flow's parent reads none.
    let out = completed(&plugin.run(&job("gather", serde_json::json!({}))).await.outcome);
    assert_eq!(out, serde_json::json!({"parent": false}));
}

/// Follow-ups and flows together hold at most `MAX_FOLLOW_UP_BYTES` of
/// payloads an attempt: a plugin enqueueing again and again within its own
/// memory cap is refused past it, saying why, and nothing of it is kept.
#[tokio::test]
async fn an_attempts_follow_ups_are_bounded_in_bytes() {
    let s = setup(GRANTED);
    let plugin = s.load("hostile_plugin").await;
    let big = "x".repeat(1_000_000);
    let limit = jobrunner_host::capabilities::MAX_FOLLOW_UP_BYTES / 1_000_000;
    let report = plugin.run(&job("enqueue", serde_json::json!({"count": limit + 2, "payload": big}))).await;
    match &report.outcome {
        Outcome::Permanent { message } => assert!(message.contains("more than 32 MiB of payloads"), "{message}"),
        other => panic!("expected the follow-ups refused past the bound, got {other:?}"),
    }
    assert!(report.follow_ups.is_empty() && report.flows.is_empty());
    // Under the bound, the same calls go through.
    let report = plugin.run(&job("enqueue", serde_json::json!({"count": limit - 2, "payload": big}))).await;
    assert_eq!(report.follow_ups.len(), limit - 2, "{:?}", report.outcome);
}
