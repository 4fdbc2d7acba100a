//! The demo: the runner as a newcomer first sees it.
//!
//! 1. writes `target/demo/` with the five plugins and the example config,
//!    pointed at a local receiver that stands in for the app's API and its
//!    webhook endpoint;
//! 2. starts `runner serve` there, with its embedded Redis;
//! 3. enqueues the sample job of every type (`examples/payloads/`) with
//!    `runner enqueue`, waits for each, and shows what happened: each job's
//!    state and result, the emails in the outbox, the webhooks received;
//! 4. stops the runner with SIGTERM.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::http::{HttpRecorder, Reply};

const TYPES: &[(&str, &str)] = &[
    ("email", "email_plugin"),
    ("webhook", "webhook_plugin"),
    ("vendor-notification", "vendor_notification_plugin"),
    ("response-reminder", "response_reminder_plugin"),
    ("cache-warmup", "cache_warmup_plugin"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn runner(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(root().join("target/debug/runner"))
        .current_dir(dir)
        .args(args)
        .env_remove("REDIS_URL")
        .output()
        .map_err(|e| format!("cannot run the runner: {e}"))?;
    if !out.status.success() {
        return Err(format!("runner {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn run() -> Result<(), String> {
    tokio::runtime::Runtime::new().map_err(|e| e.to_string())?.block_on(demo())
}

async fn demo() -> Result<(), String> {
    let dir = root().join("target/demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("plugins")).map_err(|e| e.to_string())?;
    for (_, crate_name) in TYPES {
        let wasm = root().join(format!("target/wasm32-wasip2/release/{crate_name}.wasm"));
        std::fs::copy(&wasm, dir.join("plugins").join(format!("{crate_name}.wasm")))
            .map_err(|e| format!("{}: {e}", wasm.display()))?;
    }
    let receiver = HttpRecorder::start().await;
    receiver.reply("/hooks/bookings", Reply::status(200));
    receiver.reply("/api/vendors/v-77/contact", Reply::json(json!({"name": "Lumen Studio", "email": "lumen@example.com", "webhook_url": format!("http://127.0.0.1:{}/hooks/bookings", receiver.port)})));
    receiver.reply("/api/clients/c-311/contact", Reply::json(json!({"name": "Ana", "email": "ana@example.com"})));
    receiver.reply("/api/conversations/conv-5521", Reply::json(json!({"answered": false})));
    receiver.reply("/pages/home", Reply::status(200).body("<h1>Home</h1>"));
    receiver.reply("/pages/pricing", Reply::status(200).body("<h1>Pricing</h1>"));
    let here = format!("127.0.0.1:{}", receiver.port);
    let examples = root().join("examples");
    let config = std::fs::read_to_string(examples.join("runner.toml"))
        .map_err(|e| e.to_string())?
        .replace("127.0.0.1:8089", &here);
    std::fs::write(dir.join("runner.toml"), config).map_err(|e| e.to_string())?;

    println!("== starting `runner serve` in {} (embedded Redis, five plugins)", dir.display());
    let log = std::fs::File::create(dir.join("serve.log")).map_err(|e| e.to_string())?;
    let mut daemon = Command::new(root().join("target/debug/runner"))
        .current_dir(&dir)
        .args(["serve", "--config", "runner.toml"])
        .env_remove("REDIS_URL")
        .env("RUNNER_HTTP_BIND", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start the runner: {e}"))?;
    let result = drive(&dir, &receiver).await;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    println!("== stopped the runner; its log is {}", dir.join("serve.log").display());
    result
}

async fn drive(dir: &Path, receiver: &HttpRecorder) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join(".runner/redis.url").exists()
        || !std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default().contains("consuming")
    {
        if Instant::now() > deadline {
            return Err(format!("the runner did not start; see {}", dir.join("serve.log").display()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let examples = root().join("examples");
    let here = format!("127.0.0.1:{}", receiver.port);
    println!("== enqueueing one sample job of each type");
    for (job_type, _) in TYPES {
        let payload = std::fs::read_to_string(examples.join(format!("payloads/{job_type}.json")))
            .map_err(|e| e.to_string())?
            .replace("127.0.0.1:8089", &here);
        let id = format!("demo-{job_type}");
        runner(dir, &["enqueue", "default", job_type, "--payload", &payload, "--id", &id])?;
        println!("   runner enqueue default {job_type} --payload @examples/payloads/{job_type}.json --id {id}");
    }
    let api = std::fs::read_to_string(dir.join(".runner/http.addr")).unwrap_or_default();
    println!("== the HTTP API is at http://{api}/api/v1 (try /api/v1/queues, /metrics)");
    println!("== results");
    for (job_type, _) in TYPES {
        let id = format!("demo-{job_type}");
        let job: serde_json::Value = loop {
            let j: serde_json::Value =
                serde_json::from_str(&runner(dir, &["job", "default", &id])?).map_err(|e| e.to_string())?;
            if j["state"] == "completed" || j["state"] == "failed" || Instant::now() > deadline {
                break j;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let detail = if job["state"] == "completed" { job["result"].to_string() } else { job["errors"].to_string() };
        println!("   {job_type:<20} {:<10} {detail}", job["state"].as_str().unwrap_or("?"));
    }
    // Let the follow-up jobs (emails, webhooks) that the plugins enqueued finish.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    println!("== queues\n{}", runner(dir, &["queues"])?.trim_end());
    let outbox = dir.join(".runner/outbox");
    println!("== emails in {}", outbox.display());
    let mut emails: Vec<_> =
        std::fs::read_dir(&outbox).map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    emails.sort();
    for e in emails {
        let text = std::fs::read_to_string(&e).unwrap_or_default();
        let subject = text.lines().find(|l| l.starts_with("Subject:")).unwrap_or("").to_string();
        let to = text.lines().find(|l| l.starts_with("To:")).unwrap_or("").to_string();
        println!("   {}  {to}  {subject}", e.file_name().unwrap().to_string_lossy());
    }
    println!("== webhooks received by the local receiver");
    for r in receiver.requests().iter().filter(|r| r.method == "POST") {
        println!(
            "   POST {}  signature {}  idempotency-key {}",
            r.path,
            r.header("x-webhook-signature").unwrap_or("-"),
            r.header("idempotency-key").unwrap_or("-")
        );
    }
    Ok(())
}
