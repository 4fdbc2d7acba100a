//! `runner exec` on every plugin's sample payload, with local servers
//! standing in for the receivers the samples point at.

use crate::{assert_cli_error, runner, runner_async, stderr, stdout};
use serde_json::{Value, json};
use testkit::http::{HttpRecorder, Reply};

/// The address the samples and the example config point at.
const SAMPLE_RECEIVER: &str = "127.0.0.1:8089";

fn examples() -> std::path::PathBuf {
    testkit::workspace_root().join("examples")
}

/// Writes the example config and a sample payload into `dir`, pointed at `server`.
fn prepare(dir: &std::path::Path, server: &HttpRecorder, job_type: &str) -> (String, String) {
    let here = format!("127.0.0.1:{}", server.port);
    let config = std::fs::read_to_string(examples().join("runner.toml")).unwrap().replace(SAMPLE_RECEIVER, &here);
    let payload = std::fs::read_to_string(examples().join(format!("payloads/{job_type}.json")))
        .unwrap()
        .replace(SAMPLE_RECEIVER, &here);
    std::fs::write(dir.join("runner.toml"), config).unwrap();
    let file = format!("{job_type}.json");
    std::fs::write(dir.join(&file), payload).unwrap();
    ("runner.toml".into(), file)
}

async fn receiver() -> HttpRecorder {
    let server = HttpRecorder::start().await;
    server.reply("/hooks/bookings", Reply::status(200));
    server
        .reply("/api/vendors/v-77/contact", Reply::json(json!({"name": "Lumen Studio", "email": "lumen@example.com"})));
    server.reply("/api/clients/c-311/contact", Reply::json(json!({"name": "Ana", "email": "ana@example.com"})));
    server.reply("/api/conversations/conv-5521", Reply::json(json!({"answered": false})));
    server.reply("/pages/home", Reply::status(200).body("<h1>Home</h1>"));
    server.reply("/pages/pricing", Reply::status(200).body("<h1>Pricing</h1>"));
    server
}

#[tokio::test]
async fn every_plugin_completes_its_sample_payload() {
    let server = receiver().await;
    for (job_type, crate_name) in [
        ("email", "email_plugin"),
        ("webhook", "webhook_plugin"),
        ("vendor-notification", "vendor_notification_plugin"),
        ("response-reminder", "response_reminder_plugin"),
        ("cache-warmup", "cache_warmup_plugin"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (config, payload) = prepare(dir.path(), &server, job_type);
        let wasm = testkit::wasm::path(crate_name);
        let out = runner_async(
            dir.path(),
            &[
                "exec",
                wasm.to_str().unwrap(),
                "--type",
                job_type,
                "--payload-file",
                &payload,
                "--config",
                &config,
                "--json",
            ],
        )
        .await;
        assert!(out.status.success(), "{job_type}: {}\n{}", stdout(&out), stderr(&out));
        let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(report["report"]["outcome"]["status"], "completed", "{job_type}: {report:#}");
        match job_type {
            "email" => {
                let eml = dir.path().join(".runner/outbox");
                assert_eq!(std::fs::read_dir(eml).unwrap().count(), 1, "one .eml in the outbox");
            }
            "vendor-notification" | "response-reminder" => {
                assert!(!report["report"]["follow_ups"].as_array().unwrap().is_empty());
            }
            "cache-warmup" => assert_eq!(report["report"]["outcome"]["output"]["warmed"], 2),
            _ => {}
        }
    }
    let hooks = server.requests().iter().filter(|r| r.path == "/hooks/bookings").count();
    assert_eq!(hooks, 1);
}

#[tokio::test]
async fn human_output_and_exit_code_for_a_failed_job() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = testkit::wasm::path("hostile_plugin");
    let out = runner(dir.path(), &["exec", wasm.to_str().unwrap(), "--type", "panic", "--payload", r#"{"why":"e2e"}"#]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("outcome   fault (panic): panicked at"), "{text}");
    assert!(text.contains("deliberate panic: e2e"), "{text}");
    assert!(text.contains("hostile_plugin.wasm!"), "the backtrace names functions: {text}");

    let out = runner(dir.path(), &["exec", wasm.to_str().unwrap(), "--type", "enqueue", "--payload", r#"{"count":2}"#]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("follow-up jobs (printed, not enqueued):"));
}

#[test]
fn bad_input_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = testkit::wasm::path("noop_plugin");
    let w = wasm.to_str().unwrap();
    assert_cli_error(
        &runner(dir.path(), &["exec", w, "--type", "noop", "--payload", "{not json"]),
        "--payload is not valid JSON",
    );
    assert_cli_error(
        &runner(dir.path(), &["exec", w, "--type", "mail", "--payload", "{}"]),
        "does not handle type `mail`; it handles: noop",
    );
    assert_cli_error(
        &runner(dir.path(), &["exec", "missing.wasm", "--type", "noop", "--payload", "{}"]),
        "cannot read missing.wasm",
    );
    assert_cli_error(
        &runner(dir.path(), &["exec", w, "--type", "noop", "--payload", "{}", "--queue", "a b"]),
        "queue name `a b`",
    );
    std::fs::write(dir.path().join("bad.toml"), "[plugins.noop]\ntimeout = \"soon\"\n").unwrap();
    assert_cli_error(
        &runner(dir.path(), &["exec", w, "--type", "noop", "--payload", "{}", "--config", "bad.toml"]),
        "timeout",
    );
    std::fs::write(dir.path().join("not.wasm"), b"hello").unwrap();
    assert_cli_error(
        &runner(dir.path(), &["exec", "not.wasm", "--type", "noop", "--payload", "{}"]),
        "not a valid WebAssembly component",
    );
}

/// A reader that goes away (`runner exec … | head`) ends the command as it
/// ends `ls`: by SIGPIPE, with no panic and no backtrace.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let wasm = testkit::wasm::path("noop_plugin");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(dir.path())
        .args(["exec", wasm.to_str().unwrap(), "--type", "noop", "--payload", "{}"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the runner has even loaded the plugin.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    const SIGPIPE: i32 = 13;
    assert_eq!(out.status.signal(), Some(SIGPIPE), "{:?}: {err}", out.status);
}

/// The samples that reach a network or a secret need the operator's grant
/// (least privilege): with no config each fails at once, permanently, with
/// a reason naming what to give it, and reaches nothing.
#[test]
fn network_samples_with_no_config_name_the_grant_they_need() {
    let dir = tempfile::tempdir().unwrap();
    for (job_type, crate_name, needs) in [
        ("webhook", "webhook_plugin", "set the secret `signing_secret`"),
        ("vendor-notification", "vendor_notification_plugin", "config value `api_base_url` is not set"),
        ("response-reminder", "response_reminder_plugin", "config value `api_base_url` is not set"),
        ("cache-warmup", "cache_warmup_plugin", "is not on this plugin's allowed hosts"),
    ] {
        let wasm = testkit::wasm::path(crate_name);
        let sample = examples().join(format!("payloads/{job_type}.json"));
        let out = runner(
            dir.path(),
            &["exec", wasm.to_str().unwrap(), "--type", job_type, "--payload-file", sample.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(1), "{job_type}: {}", stderr(&out));
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(text.contains("permanent") && text.contains(needs), "{job_type}: {text}");
    }
}

/// With no config file at all, the email sample goes to the outbox as
/// `jobrunner@localhost`, and the runner says so; the operator's sender
/// replaces it once set.
#[test]
fn the_email_sample_needs_no_config_in_outbox_mode() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = testkit::wasm::path("email_plugin");
    let sample = examples().join("payloads/email.json");
    let out = runner(
        dir.path(),
        &["exec", wasm.to_str().unwrap(), "--type", "email", "--payload-file", sample.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("no sender is configured"), "{}", stderr(&out));
    let outbox: Vec<_> =
        std::fs::read_dir(dir.path().join(".runner/outbox")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(outbox.len(), 1);
    let eml = std::fs::read_to_string(&outbox[0]).unwrap();
    assert!(eml.lines().any(|l| l == "From: jobrunner@localhost"), "{eml}");
}
