//! `isolation = "instance"` through the real host and a real plugin: an
//! instance that completed a job serves the plugin's next one, up to
//! `max_jobs_per_instance`; one whose job did not complete goes with it;
//! what a job produced never reaches the next job's report; and instances
//! are never shared between plugins. The counter of the hostile fixture's
//! `count` lives in the guest's memory: it says which job of its instance
//! a job was.

mod common;

use common::{completed, job, setup_with};
use jobrunner_host::cache::Cache;
use jobrunner_host::{EngineOptions, Isolation};
use jobrunner_job::{FaultKind, Outcome};
use serde_json::json;

const REUSE: &str = r#"
[plugins.hostile]
timeout = "1s"
memory = "16MiB"
isolation = "instance"
max_jobs_per_instance = 3
"#;

fn engine(spare_slots: u32) -> EngineOptions {
    EngineOptions { max_instances: 8, spare_slots, ..Default::default() }
}

async fn count(plugin: &runner::Plugin) -> (u64, u32) {
    let r = plugin.run(&job("count", json!({}))).await;
    let runs = completed(&r.outcome)["runs"].as_u64().unwrap();
    (runs, r.instance_job)
}

#[tokio::test]
async fn an_instance_serves_jobs_up_to_its_bound() {
    let s = setup_with(REUSE, Cache::memory(), engine(4));
    let plugin = s.load("hostile_plugin").await;
    assert_eq!(plugin.limits().isolation, Isolation::Instance { max_jobs_per_instance: 3 });
    // Three jobs in one instance, its memory kept; then a fresh one.
    let seen: Vec<(u64, u32)> = futures_seq(&plugin, 7).await;
    assert_eq!(seen, [(1, 1), (2, 2), (3, 3), (1, 1), (2, 2), (3, 3), (1, 1)]);
    assert_eq!(plugin.idle_instances(), 1, "the last instance waits for the next job");
    // While an instance is idle, no spare is made beside it.
    plugin.prepare().await;
    assert!(!plugin.has_spare());
}

async fn futures_seq(plugin: &runner::Plugin, n: usize) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(count(plugin).await);
    }
    out
}

#[tokio::test]
async fn a_job_that_does_not_complete_takes_its_instance_with_it() {
    let s = setup_with(REUSE, Cache::memory(), engine(4));
    let plugin = s.load("hostile_plugin").await;
    let failures = [
        ("fail-as", json!({"as": "retry", "message": "again"})),
        ("fail-as", json!({"as": "permanent", "message": "no"})),
        ("fail-as", json!({"as": "retry-after", "message": "later"})),
        ("panic", json!({"why": "test"})),
        ("loop", json!({})),
        ("alloc", json!({})),
        ("bad-output", json!({})),
    ];
    for (job_type, payload) in failures {
        assert_eq!(count(&plugin).await, (1, 1), "before {job_type}");
        assert_eq!(count(&plugin).await, (2, 2), "before {job_type}");
        let r = plugin.run(&job(job_type, payload)).await;
        assert!(!r.outcome.is_success(), "{job_type}: {:?}", r.outcome);
        assert_eq!(r.instance_job, 3, "{job_type} ran in the reused instance");
        assert_eq!(plugin.idle_instances(), 0, "{job_type}: its instance was dropped");
        // The next job starts in a fresh instance: nothing of the failed
        // job's state is left.
        assert_eq!(count(&plugin).await, (1, 1), "after {job_type}");
        // Start the next round from a fresh instance too.
        let _ = plugin.run(&job("fail-as", json!({"as": "permanent", "message": "reset"}))).await;
    }
    let r = plugin.run(&job("loop", json!({}))).await;
    match &r.outcome {
        Outcome::Fault(f) => assert_eq!(f.kind, FaultKind::Timeout, "{}", f.message),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn what_a_job_produced_does_not_reach_the_next_jobs_report() {
    // The log flood takes a while on a busy machine: a longer timeout.
    let config = format!("{}may_enqueue = [\"*:noop\"]\n", REUSE.replace("\"1s\"", "\"20s\""));
    let s = setup_with(&config, Cache::memory(), engine(4));
    let plugin = s.load("hostile_plugin").await;

    // A job whose log overflows its cap, with follow-ups in its queue.
    let mut flood = job("log-flood", json!({}));
    flood.queue = "first".into();
    let r = plugin.run(&flood).await;
    assert!(r.outcome.is_success(), "{:?}", r.outcome);
    assert!(r.log_truncated);
    let mut fork = job("enqueue", json!({"count": 2}));
    fork.queue = "first".into();
    let r = plugin.run(&fork).await;
    assert_eq!((r.instance_job, r.follow_ups.len()), (2, 2));
    assert!(r.follow_ups.iter().all(|f| f.queue == "first"));
    assert!(!r.log_truncated, "the log's cap is the job's own");

    // The third job in the same instance: another queue, nothing carried over.
    let mut next = job("enqueue", json!({"count": 1}));
    next.queue = "second".into();
    let r = plugin.run(&next).await;
    assert_eq!(r.instance_job, 3);
    assert_eq!(r.follow_ups.len(), 1, "only its own follow-up");
    assert_eq!(r.follow_ups[0].queue, "second", "the default queue is this job's");
    assert!(r.progress.is_none());
    assert!(r.log.iter().all(|l| !l.message.contains("flood line")), "{:?}", r.log);
    assert!(r.emails.is_empty());
}

/// A plugin that leaves host resources open (here timers) cannot pile them
/// up across the jobs of a shared instance: past a small bound the
/// instance is dropped, and its store closes them.
#[tokio::test]
async fn an_instance_holding_many_host_resources_is_not_kept() {
    let s = setup_with(REUSE, Cache::memory(), engine(4));
    let plugin = s.load("hostile_plugin").await;
    assert_eq!(count(&plugin).await, (1, 1));
    // A few left open: within the bound, the instance is kept.
    let r = plugin.run(&job("leak", json!({"count": 4}))).await;
    assert!(r.outcome.is_success(), "{:?}", r.outcome);
    // Its third job; the second `count` (the leak job counts nothing).
    assert_eq!(count(&plugin).await, (2, 3), "kept, with its few open resources");
    // Many: the instance goes with its job.
    let r = plugin.run(&job("leak", json!({"count": 500}))).await;
    assert!(r.outcome.is_success(), "{:?}", r.outcome);
    assert_eq!(plugin.idle_instances(), 0, "dropped, closing what it held");
    assert_eq!(count(&plugin).await, (1, 1));
}

#[tokio::test]
async fn instances_are_never_shared_between_plugins_or_versions() {
    let s = setup_with(REUSE, Cache::memory(), engine(8));
    // The same file loaded twice: two plugin versions, as a reload makes.
    let first = s.load("hostile_plugin").await;
    let second = s.load("hostile_plugin").await;
    assert_eq!(count(&first).await, (1, 1));
    assert_eq!(count(&first).await, (2, 2));
    assert_eq!(count(&second).await, (1, 1), "the second version has instances of its own");
    assert_eq!(count(&first).await, (3, 3));
    // The same file under another operator's name with the default
    // isolation: a fresh instance every job, whatever the other does.
    let path = testkit::wasm::path("hostile_plugin");
    let (other, _) = s
        .host
        .load_file(&path, |_| {
            let config = runner::Config::parse("[plugins.other]\nfile = \"x.wasm\"\n").unwrap();
            config.plugin_settings("other")
        })
        .await
        .unwrap();
    assert_eq!(other.limits().isolation, Isolation::Job);
    for _ in 0..3 {
        assert_eq!(count(&other).await, (1, 1));
    }
    assert_eq!(other.idle_instances(), 0);
}

#[tokio::test]
async fn idle_instances_hold_only_the_slots_set_aside_for_them() {
    // One slot beyond the jobs' for instances not serving a job.
    let s = setup_with(REUSE, Cache::memory(), engine(1));
    let plugin = s.load("hostile_plugin").await;
    // Two jobs at once (each sleeping in the host, so both instances are
    // alive together): both complete, one instance is kept.
    let naps = [job("sleep", json!({"ms": 100})), job("sleep", json!({"ms": 100}))];
    let (a, b) = tokio::join!(plugin.run(&naps[0]), plugin.run(&naps[1]));
    assert!(a.outcome.is_success() && b.outcome.is_success(), "{:?} {:?}", a.outcome, b.outcome);
    assert_eq!((a.instance_job, b.instance_job), (1, 1), "two instances");
    assert_eq!(plugin.idle_instances(), 1, "one slot for idle instances: the other was dropped");
    // No slot left for a spare, and the jobs' slots are all free for jobs.
    let noop = s.load("noop_plugin").await;
    noop.prepare().await;
    assert!(!noop.has_spare(), "the idle instance holds the one spare slot");
    let jobs: Vec<_> = (0..8).map(|_| job("noop", json!({}))).collect();
    for r in futures::future::join_all(jobs.iter().map(|j| noop.run(j))).await {
        assert!(r.outcome.is_success(), "{:?}", r.outcome);
    }
    // Taking the idle instance gives its slot back.
    assert_eq!(count(&plugin).await.1, 2);
}

#[test]
fn the_config_says_when_instances_are_shared() {
    let c = runner::Config::parse("[plugins.a]\nisolation = \"instance\"\n").unwrap();
    assert_eq!(
        c.plugin_settings("a").unwrap().limits.isolation,
        Isolation::Instance { max_jobs_per_instance: jobrunner_host::settings::DEFAULT_MAX_JOBS_PER_INSTANCE }
    );
    let c = runner::Config::parse("[plugins.a]\nisolation = \"job\"\n").unwrap();
    assert_eq!(c.plugin_settings("a").unwrap().limits.isolation, Isolation::Job);
    assert_eq!(runner::Config::default().plugin_settings("a").unwrap().limits.isolation, Isolation::Job);
    for (text, want) in [
        ("[plugins.a]\nmax_jobs_per_instance = 5\n", "applies only with isolation = \"instance\""),
        ("[plugins.a]\nisolation = \"instance\"\nmax_jobs_per_instance = 0\n", "at least 1"),
        ("[plugins.a]\nisolation = \"process\"\n", "isolation"),
    ] {
        let e = format!("{:#}", runner::Config::parse(text).unwrap_err());
        assert!(e.contains(want), "{text}: {e}");
        assert!(e.contains("plugins.a") || e.contains("isolation"), "{text}: {e}");
    }
}
