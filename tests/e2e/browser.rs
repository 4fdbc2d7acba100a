//! The dashboard in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`) driven over WebDriver. A person signs in, finds a
//! failed job, clicks Retry and sees it complete. The screenshot is kept in
//! `target/test-artifacts/`.

use crate::serve::{Daemon, install};
use fantoccini::{ClientBuilder, Locator};
use jobrunner_queue::{Connection, JobOptions, NewJob, Queue, State};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "browser-token-0123456789";

struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_retries_a_failed_job_in_the_dashboard() {
    let redis = testkit::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runner.toml"), "[http]\ntoken = \"env:BROWSER_TOKEN\"\n").unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let daemon = Daemon::start_with(dir.path(), Some(&redis.url()), &[("BROWSER_TOKEN", TOKEN)]);
    let base = format!("http://{}", std::fs::read_to_string(dir.path().join(".runner/http.addr")).unwrap());

    // A job whose plugin is not deployed yet fails ("no plugin handles type")...
    let q = Queue::new(Connection::connect(&redis.url()).await.unwrap(), "default").unwrap();
    let options = JobOptions { attempts: Some(1), ..Default::default() };
    q.enqueue(NewJob { id: Some("signup-42".into()), job_type: "whoami".into(), payload: "{}".into(), options })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while q.get("signup-42").await.unwrap().unwrap().state != State::Failed {
        assert!(Instant::now() < deadline, "the job never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...then the plugin is deployed, and a person retries the job.
    install(dir.path(), "noop_plugin", "noop.wasm");
    daemon.wait_log("plugin loaded", Duration::from_secs(30));

    let port = testkit::free_port();
    let _driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (apt-get install chromium chromium-driver)"),
    );
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1280,900", format!("--user-data-dir={}", profile.path().display())]
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        match ClientBuilder::native().capabilities(caps.clone()).connect(&format!("http://127.0.0.1:{port}")).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot reach chromedriver: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };

    client.goto(&format!("{base}/dashboard")).await.unwrap();
    assert!(client.current_url().await.unwrap().as_str().ends_with("/dashboard/login"), "signed out: the sign-in page");
    client.find(Locator::Css("input[name=token]")).await.unwrap().send_keys(TOKEN).await.unwrap();
    client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::LinkText("default")).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::XPath("//a[starts-with(., 'failed')]")).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::LinkText("signup-42")).await.unwrap().click().await.unwrap();
    let state = client.wait().for_element(Locator::Id("state")).await.unwrap().text().await.unwrap();
    assert_eq!(state, "failed");
    client.find(Locator::XPath("//button[text()='Retry']")).await.unwrap().click().await.unwrap();

    // The page reloads itself when the job changes (server-sent events).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = match client.find(Locator::Id("state")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if state == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "the job page never showed the job completed (last: {state})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let result = client.find(Locator::Id("result")).await.unwrap().text().await.unwrap();
    assert!(result.contains("noop"), "{result}");
    let png = client.screenshot().await.unwrap();
    let artifacts = testkit::workspace_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("dashboard-retry.png"), png).unwrap();
    client.close().await.unwrap();
    assert_eq!(q.get("signup-42").await.unwrap().unwrap().state, State::Completed);
}
