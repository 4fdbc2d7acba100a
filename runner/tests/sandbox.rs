//! The sandbox holds: every way the hostile fixture misbehaves is stopped
//! or denied with the right reason, and never affects the next job.

mod common;

use common::{job, setup, setup_with};
use jobrunner_host::EngineOptions;
use jobrunner_host::cache::Cache;
use jobrunner_job::{FaultKind, LogSource, Outcome};
use serde_json::json;

const LIMITS: &str = r#"
[plugins.hostile]
timeout = "1s"
memory = "16MiB"
max_log_bytes = "4KiB"
"#;

fn fault(outcome: &Outcome) -> &jobrunner_job::Fault {
    match outcome {
        Outcome::Fault(f) => f,
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[tokio::test]
async fn an_endless_loop_is_stopped_and_its_slot_freed() {
    // Two instance slots only: if a stopped loop kept its slot, the later
    // jobs could not be instantiated.
    let s =
        setup_with(LIMITS, Cache::memory(), EngineOptions { max_instances: 2, spare_slots: 0, ..Default::default() });
    let plugin = s.load("hostile_plugin").await;
    for _ in 0..4 {
        let r = plugin.run(&job("loop", json!({}))).await;
        let f = fault(&r.outcome);
        assert_eq!(f.kind, FaultKind::Timeout);
        assert!(f.message.contains("1s timeout"), "{}", f.message);
        assert!(f.backtrace.as_deref().unwrap().contains("handle"), "backtrace names the function");
    }
    let r = plugin.run(&job("noop", json!({}))).await;
    assert_eq!(r.outcome, Outcome::Completed { output: None });
}

#[tokio::test]
async fn a_memory_bomb_hits_the_cap() {
    let s = setup(LIMITS);
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("alloc", json!({}))).await;
    let f = fault(&r.outcome);
    assert_eq!(f.kind, FaultKind::MemoryLimit);
    assert!(f.message.contains("its cap is 16777216 bytes"), "{}", f.message);
    assert!(f.backtrace.as_deref().unwrap().contains("malloc"));
    // The next job gets fresh memory.
    assert!(plugin.run(&job("noop", json!({}))).await.outcome.is_success());
}

#[tokio::test]
async fn a_stack_overflow_is_a_fault_with_the_recursing_function() {
    let s = setup(LIMITS);
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("recurse", json!({}))).await;
    let f = fault(&r.outcome);
    assert_eq!(f.kind, FaultKind::StackOverflow);
    assert!(f.backtrace.as_deref().unwrap().contains("hostile_plugin::recurse"));
    assert!(plugin.run(&job("noop", json!({}))).await.outcome.is_success());
}

#[tokio::test]
async fn a_panic_keeps_its_message_and_location() {
    let s = setup(LIMITS);
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("panic", json!({"why": "the ledger is gone"}))).await;
    let f = fault(&r.outcome);
    assert_eq!(f.kind, FaultKind::Panic);
    assert!(f.message.contains("deliberate panic: the ledger is gone"), "{}", f.message);
    assert!(f.message.contains("src/lib.rs"), "{}", f.message);
}

#[tokio::test]
async fn a_log_flood_is_truncated_not_fatal() {
    // 200,000 lines through the host's capture take about a second in a
    // debug build: this test is about truncation, not speed.
    let s = setup(&LIMITS.replace("timeout = \"1s\"", "timeout = \"30s\""));
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("log-flood", json!({}))).await;
    assert!(r.outcome.is_success(), "{:?}", r.outcome);
    assert!(r.log_truncated);
    let bytes: usize = r.log.iter().filter(|l| l.source == LogSource::Stdout).map(|l| l.message.len()).sum();
    assert!(bytes <= 4096, "{bytes} bytes kept");
    assert!(r.log.iter().any(|l| l.message.contains("log truncated")));
}

#[tokio::test]
async fn files_environment_and_arguments_are_absent() {
    let s = setup(LIMITS);
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("read-file", json!({"path": "/etc/passwd"}))).await;
    match &r.outcome {
        Outcome::Permanent { message } => assert!(message.contains("No such file"), "{message}"),
        other => panic!("reading a file must fail, got {other:?}"),
    }
    // SAFETY of the check: the test process surely has environment variables.
    assert!(std::env::vars().next().is_some());
    let r = plugin.run(&job("read-env", json!({}))).await;
    assert_eq!(r.outcome, Outcome::Completed { output: Some(json!({"vars": [], "args": [], "cwd": "/"})) });
}

#[tokio::test]
async fn a_host_call_that_outlives_the_timeout_is_cut() {
    let s = setup(LIMITS);
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("sleep", json!({"ms": 60_000}))).await;
    let f = fault(&r.outcome);
    assert_eq!(f.kind, FaultKind::Timeout);
    assert!(f.message.contains("waiting on a host call"), "{}", f.message);
}

/// Empty lines cost their overhead, so an endless flood of them is held
/// at the cap: what is kept, in memory and as stored, stays within it.
#[tokio::test]
async fn a_flood_of_empty_lines_is_held_at_the_cap() {
    let s = setup(LIMITS);
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("empty-lines", json!({}))).await;
    assert_eq!(fault(&r.outcome).kind, FaultKind::Timeout);
    assert!(r.log_truncated);
    let stored = serde_json::to_string(&r.log).unwrap().len();
    assert!(stored <= 4096 + 200, "{stored} bytes of log kept for a 4 KiB cap ({} lines)", r.log.len());
    assert!(r.log.iter().any(|l| l.message.contains("log truncated")));
}

/// An output over `max_output_bytes` fails the attempt and says why; one
/// within it is kept.
#[tokio::test]
async fn an_output_over_the_cap_fails_the_attempt() {
    let s = setup(&format!("{LIMITS}max_output_bytes = \"64KiB\"\n"));
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("big-output", json!({"bytes": 64 * 1024 + 1}))).await;
    let f = fault(&r.outcome);
    assert_eq!(f.kind, FaultKind::InvalidOutput);
    assert!(f.message.contains("65537 bytes, over the plugin's limit of 65536"), "{}", f.message);
    let r = plugin.run(&job("big-output", json!({"bytes": 64 * 1024}))).await;
    assert!(r.outcome.is_success(), "{:?}", r.outcome);
    // With no setting, the default of 1 MiB applies.
    let s = setup(LIMITS);
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("big-output", json!({"bytes": 2 << 20}))).await;
    assert!(fault(&r.outcome).message.contains("over the plugin's limit of 1048576"));
}

#[tokio::test]
async fn output_that_is_not_json_is_an_invalid_output() {
    let s = setup(LIMITS);
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("bad-output", json!({}))).await;
    assert_eq!(fault(&r.outcome).kind, FaultKind::InvalidOutput);
}

#[tokio::test]
async fn retry_after_and_echo_round_trip() {
    let s = setup(LIMITS);
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("retry-after", json!({}))).await;
    assert_eq!(
        r.outcome,
        Outcome::RetryAfter { delay: std::time::Duration::from_millis(1500), message: "come back later".into() }
    );
    let r = plugin.run(&job("echo", json!({"a": [1, "two"]}))).await;
    assert_eq!(r.outcome, Outcome::Completed { output: Some(json!({"a": [1, "two"]})) });
}

#[tokio::test]
async fn concurrent_jobs_do_not_see_each_other() {
    let s = setup(LIMITS);
    let plugin = std::sync::Arc::new(s.load("hostile_plugin").await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let p = plugin.clone();
        tasks.push(tokio::spawn(async move {
            let t = if i % 4 == 0 { "panic" } else { "echo" };
            (i, p.run(&job(t, json!({"i": i}))).await)
        }));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        if i % 4 == 0 {
            assert_eq!(fault(&r.outcome).kind, FaultKind::Panic);
        } else {
            assert_eq!(r.outcome, Outcome::Completed { output: Some(json!({"i": i})) });
        }
    }
}

#[tokio::test]
async fn a_component_without_the_handler_is_refused_with_its_exports() {
    let s = setup("");
    // A core module is not a component at all.
    let err = s.host.load(b"\0asm\x01\0\0\0".to_vec(), |n| s.config.plugin_settings(n)).await.unwrap_err();
    assert!(format!("{err:#}").contains("not a valid WebAssembly component"), "{err:#}");
    let err = s.host.load(b"garbage".to_vec(), |n| s.config.plugin_settings(n)).await.unwrap_err();
    assert!(format!("{err:#}").contains("not a valid WebAssembly component"), "{err:#}");
}
