//! Instances made ahead of their jobs (`host::spare`), through the real
//! host and real plugins: a spare serves exactly one job, as that job's
//! own (its queue, its whole timeout), and never takes a slot a job needs.

mod common;

use common::{completed, job, setup_with};
use jobrunner_host::EngineOptions;
use jobrunner_host::cache::Cache;
use jobrunner_job::{FaultKind, Outcome};
use serde_json::json;
use std::time::{Duration, Instant};

const LIMITS: &str = r#"
[plugins.hostile]
timeout = "1s"
memory = "16MiB"
"#;

fn engine(max_instances: u32, spare_slots: u32) -> EngineOptions {
    EngineOptions { max_instances, spare_slots, ..Default::default() }
}

fn setup(max_instances: u32, spare_slots: u32) -> common::Setup {
    setup_with(LIMITS, Cache::memory(), engine(max_instances, spare_slots))
}

#[tokio::test]
async fn a_spare_serves_exactly_one_job() {
    let s = setup(8, 4);
    let plugin = s.load("hostile_plugin").await;
    assert!(!plugin.has_spare(), "nothing is made ahead until asked");
    plugin.prepare().await;
    assert!(plugin.has_spare());
    // The counter lives in the guest's memory: 1 means the job had an
    // instance no job ran in before.
    let r = plugin.run(&job("count", json!({}))).await;
    assert_eq!(completed(&r.outcome), json!({"runs": 1}));
    assert!(!plugin.has_spare(), "the job took the spare");
    assert!(r.instantiate > Duration::ZERO, "the spare's instantiation is reported as the job's");
    assert!(r.duration >= r.instantiate);

    // Without a spare the job makes its own; with a new one, it takes that.
    let r = plugin.run(&job("count", json!({}))).await;
    assert_eq!(completed(&r.outcome), json!({"runs": 1}));
    for _ in 0..3 {
        plugin.prepare().await;
        plugin.prepare().await;
        let r = plugin.run(&job("count", json!({}))).await;
        assert_eq!(completed(&r.outcome), json!({"runs": 1}));
    }
}

#[tokio::test]
async fn a_spare_runs_its_job_as_the_jobs_own() {
    let s = setup(8, 4);
    let plugin = s.load("hostile_plugin").await;

    // Made before the job's queue was known: a follow-up without a queue
    // still goes to the job's.
    plugin.prepare().await;
    let mut j = job("enqueue", json!({"count": 1}));
    j.queue = "reports".into();
    let r = plugin.run(&j).await;
    assert!(r.outcome.is_success(), "{:?}", r.outcome);
    assert_eq!(r.follow_ups[0].queue, "reports");

    // Made longer ago than the plugin's timeout: the job's deadline runs
    // from the job's start, so a job well inside it completes...
    plugin.prepare().await;
    let made = Instant::now();
    while made.elapsed() < Duration::from_millis(1300) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = plugin.run(&job("sleep", json!({"ms": 300}))).await;
    assert!(r.outcome.is_success(), "{:?}", r.outcome);

    // ...and one that overruns it is still stopped at its timeout.
    plugin.prepare().await;
    let r = plugin.run(&job("loop", json!({}))).await;
    match &r.outcome {
        Outcome::Fault(f) => assert_eq!(f.kind, FaultKind::Timeout, "{}", f.message),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn spares_never_take_a_slot_a_job_needs() {
    // One slot for jobs and one for spares.
    let s = setup(1, 1);
    let noop = s.load("noop_plugin").await;
    let hostile = s.load("hostile_plugin").await;
    noop.prepare().await;
    assert!(noop.has_spare());
    // The spares' slot is taken: no second spare...
    hostile.prepare().await;
    assert!(!hostile.has_spare());
    // ...and a job still has its slot.
    let r = hostile.run(&job("count", json!({}))).await;
    assert_eq!(completed(&r.outcome), json!({"runs": 1}));
    // Once the spare is taken, its slot is free for another.
    assert!(noop.run(&job("noop", json!({}))).await.outcome.is_success());
    hostile.prepare().await;
    assert!(hostile.has_spare());
    assert!(hostile.run(&job("noop", json!({}))).await.outcome.is_success());
}

#[tokio::test]
async fn without_spare_slots_every_job_instantiates_its_own() {
    let s = setup(2, 0);
    let plugin = s.load("hostile_plugin").await;
    plugin.prepare().await;
    assert!(!plugin.has_spare());
    let r = plugin.run(&job("count", json!({}))).await;
    assert_eq!(completed(&r.outcome), json!({"runs": 1}));
}
