//! The dashboard in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`) driven over WebDriver. A person signs in, finds a
//! failed job, clicks Retry and sees it complete; watches a long job on the
//! Busy page and cancels it there; reads the Redis page. Screenshots (each
//! page at 1400 and 375 px, none wider than the window) are kept in
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

/// The text of the element, or "" while the page does not show it.
async fn text_or_empty(client: &fantoccini::Client, locator: Locator<'_>) -> String {
    match client.find(locator).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
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
    // (The test fixture: it answers `whoami`, and its `progress` jobs run
    // until a cache key is set, for the Busy page below.)
    install(dir.path(), "hostile_plugin", "hostile.wasm");
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
        let state = text_or_empty(&client, Locator::Id("state")).await;
        if state == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "the job page never showed the job completed (last: {state})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let result = client.find(Locator::Id("result")).await.unwrap().text().await.unwrap();
    assert!(result.contains("hostile"), "{result}");
    let png = client.screenshot().await.unwrap();
    let artifacts = testkit::workspace_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("dashboard-retry.png"), png).unwrap();

    // A long job runs (it waits for a cache key that nobody sets) with its
    // progress at 65%. The Busy page lists this runner and the job, with
    // how long it has run once a heartbeat has seen it.
    let payload = r#"{"steps": [10, 40, 65], "until": "never"}"#;
    let options = JobOptions { attempts: Some(1), ..Default::default() };
    q.enqueue(NewJob { id: Some("resize-7".into()), job_type: "progress".into(), payload: payload.into(), options })
        .await
        .unwrap();
    client.find(Locator::LinkText("Busy")).await.unwrap().click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = text_or_empty(&client, Locator::Css("#running")).await;
        let runners = text_or_empty(&client, Locator::Css("#runners")).await;
        if running.contains("resize-7") && !running.contains("just started") && runners.contains("default: 1 / ") {
            break;
        }
        if Instant::now() > deadline {
            let job = q.get("resize-7").await.unwrap();
            panic!("the Busy page never showed the job running:\n{runners}\n{running}\n{job:?}\n{}", daemon.log());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        client.refresh().await.unwrap();
    }
    let bar = client.find(Locator::Css("#running [role=progressbar]")).await.unwrap();
    assert_eq!(bar.attr("aria-valuenow").await.unwrap().as_deref(), Some("65"));
    client.set_window_size(1400, 900).await.unwrap();
    std::fs::write(artifacts.join("dashboard-busy-running-1400.png"), client.screenshot().await.unwrap()).unwrap();
    // Cancel, from the Busy page, and back to it: the job is gone from it,
    // failed for good as cancelled.
    client
        .find(Locator::XPath("//table[@id='running']//button[text()='Cancel']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let cancelled = q.wait("resize-7", Duration::from_secs(30)).await.unwrap().unwrap();
    assert_eq!(cancelled.state, State::Failed, "{}", daemon.log());
    assert!(client.current_url().await.unwrap().as_str().ends_with("/dashboard/busy"));
    client.refresh().await.unwrap();
    client.wait().for_element(Locator::Id("no-running")).await.unwrap();

    // The Redis page names the server.
    client.find(Locator::LinkText("Redis")).await.unwrap().click().await.unwrap();
    let version = client.wait().for_element(Locator::Id("redis-version")).await.unwrap().text().await.unwrap();
    assert!(version.chars().next().is_some_and(|c| c.is_ascii_digit()), "a version: {version}");

    // The overview's live chart draws jobs as they finish (JavaScript, from
    // the live stream's totals each second).
    client.goto(&format!("{base}/dashboard")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    loop {
        let drawn = client.execute("return document.querySelectorAll('#live svg rect').length", vec![]).await.unwrap();
        // A few seconds' bars, for the screenshot the README shows.
        if drawn.as_i64().unwrap_or(0) >= 5 {
            client.set_window_size(1400, 900).await.unwrap();
            let png = client.screenshot().await.unwrap();
            std::fs::write(artifacts.join("dashboard-overview-live-1400.png"), png).unwrap();
            break;
        }
        assert!(Instant::now() < deadline, "the live chart never drew five seconds of jobs finishing");
        n += 1;
        let job = NewJob {
            id: Some(format!("live-{n}")),
            job_type: "whoami".into(),
            payload: "{}".into(),
            options: JobOptions::default(),
        };
        q.enqueue(job).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The totals count the jobs that finished since the page loaded.
    let totals = client.find(Locator::Id("totals")).await.unwrap().text().await.unwrap();
    let completed_today: u64 = totals.split_whitespace().nth(2).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(totals.starts_with("Today") && completed_today >= 5, "{totals}");

    // The Plugins page: the hostile plugin's figures from the heartbeats
    // (its attempts, percentiles and peak memory), and its grants.
    client.find(Locator::LinkText("Plugins")).await.unwrap().click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let row = loop {
        let row = text_or_empty(&client, Locator::Css("section.plugin tr[data-version]")).await;
        // Version, runners (1), attempts (at least the retried job's), ...
        let attempts: u64 = row.split_whitespace().nth(2).and_then(|a| a.parse().ok()).unwrap_or(0);
        if attempts >= 1 && row.contains("iB") {
            break row;
        }
        assert!(Instant::now() < deadline, "the Plugins page never showed the plugin's figures: {row}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        client.refresh().await.unwrap();
    };
    assert!(row.contains('%'), "{row}");
    let grants = client.find(Locator::Css("dl.grants")).await.unwrap().text().await.unwrap();
    assert!(grants.contains("HTTP hosts") && grants.contains("Secrets"), "{grants}");

    // A queue's failed jobs filtered by type, selected all at once (with
    // the page's "select all" box) and removed together.
    for i in 0..3 {
        let options = JobOptions { attempts: Some(1), ..Default::default() };
        let job =
            NewJob { id: Some(format!("orphan-{i}")), job_type: "nobody-serves".into(), payload: "{}".into(), options };
        q.enqueue(job).await.unwrap();
    }
    for i in 0..3 {
        let id = format!("orphan-{i}");
        assert_eq!(q.wait(&id, Duration::from_secs(30)).await.unwrap().unwrap().state, State::Failed);
    }
    client.goto(&format!("{base}/dashboard/queues/default?state=failed&type=nobody-serves")).await.unwrap();
    let rows = client.find_all(Locator::Css("#jobs input[name=ids]")).await.unwrap();
    assert_eq!(rows.len(), 3, "the three failed jobs of that type only");
    for (width, name) in [(1400u32, "queue-1400"), (375, "queue-375")] {
        client.set_window_size(width, 900).await.unwrap();
        std::fs::write(artifacts.join(format!("dashboard-{name}.png")), client.screenshot().await.unwrap()).unwrap();
    }
    client.set_window_size(1400, 900).await.unwrap();
    client.find(Locator::Id("select-all")).await.unwrap().click().await.unwrap();
    client.find(Locator::XPath("//form[@id='bulk']//button[text()='Remove']")).await.unwrap().click().await.unwrap();
    let notice = client.wait().for_element(Locator::Id("bulk-notice")).await.unwrap().text().await.unwrap();
    assert_eq!(notice, "remove: 3 jobs.");
    for i in 0..3 {
        assert!(q.get(&format!("orphan-{i}")).await.unwrap().is_none());
    }

    for (page, path) in [
        ("busy", "/dashboard/busy"),
        ("redis", "/dashboard/redis"),
        ("overview", "/dashboard"),
        ("plugins", "/dashboard/plugins"),
        ("queue", "/dashboard/queues/default?state=completed"),
        ("job", "/dashboard/queues/default/jobs/signup-42"),
    ] {
        client.goto(&format!("{base}{path}")).await.unwrap();
        for width in [1400u32, 375] {
            client.set_window_size(width, 900).await.unwrap();
            // Nothing wider than the window: tables scroll inside their box.
            let overflow = client
                .execute("return document.documentElement.scrollWidth - window.innerWidth", vec![])
                .await
                .unwrap();
            assert!(overflow.as_i64().unwrap_or(1) <= 0, "{page} at {width} px overflows by {overflow}");
            let png = client.screenshot().await.unwrap();
            std::fs::write(artifacts.join(format!("dashboard-{page}-{width}.png")), png).unwrap();
        }
    }
    client.close().await.unwrap();
    assert_eq!(q.get("signup-42").await.unwrap().unwrap().state, State::Completed);
}
