//! `runner serve` through the real binary: every job type completes; a
//! plugin swapped under load loses nothing; SIGTERM and `kill -9` under
//! load lose nothing; a bad config or a broken plugin is reported clearly.

use jobrunner_queue::{Connection, JobOptions, Keep, NewJob, Queue, State};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `runner serve` child process, killed if the test ends early.
pub(crate) struct Daemon {
    child: Option<Child>,
    log: PathBuf,
    state_dir: PathBuf,
}

impl Daemon {
    pub(crate) fn start(dir: &Path, redis_url: Option<&str>) -> Daemon {
        Self::start_with(dir, redis_url, &[])
    }

    /// As `start`, with extra environment for the daemon's process only.
    pub(crate) fn start_with(dir: &Path, redis_url: Option<&str>, env: &[(&str, &str)]) -> Daemon {
        let d = Self::spawn(dir, redis_url, env);
        // Plugins load in the background while the queues are consumed;
        // the tests start from a runner whose plugins are all in.
        d.wait_log("every plugin file loaded or refused", Duration::from_secs(120));
        d
    }

    /// Starts the daemon and returns once it consumes its queues, its
    /// plugins perhaps still loading.
    pub(crate) fn spawn(dir: &Path, redis_url: Option<&str>, env: &[(&str, &str)]) -> Daemon {
        Self::spawn_cmd(Command::new(env!("CARGO_BIN_EXE_runner")), dir, redis_url, env)
    }

    /// As `start_with`, on a host of `net` (in its network namespace).
    pub(crate) fn start_on(
        net: &testkit::netns::Network,
        host: &str,
        dir: &Path,
        redis_url: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        let d = Self::spawn_cmd(net.command(host, env!("CARGO_BIN_EXE_runner")), dir, Some(redis_url), env);
        d.wait_log("every plugin file loaded or refused", Duration::from_secs(120));
        d
    }

    /// Starts `cmd` (the runner, or a command that execs it) as `spawn`.
    fn spawn_cmd(mut cmd: Command, dir: &Path, redis_url: Option<&str>, env: &[(&str, &str)]) -> Daemon {
        let log = dir.join(format!("serve-{}.log", ulid::Ulid::new()));
        cmd.current_dir(dir)
            .args(["serve", "--config", "runner.toml"])
            .env_remove("RUNNER_QUEUES")
            .env("RUNNER_LOG", "info")
            .env("RUNNER_HTTP_BIND", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        cmd.envs(env.iter().copied());
        match redis_url {
            Some(url) => cmd.env("REDIS_URL", url),
            None => cmd.env_remove("REDIS_URL"),
        };
        let d = Daemon { child: Some(cmd.spawn().unwrap()), log, state_dir: dir.join(".runner") };
        d.wait_log("consuming", Duration::from_secs(60));
        d
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            assert!(Instant::now() < deadline, "no `{needle}` in the log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process still runs (it has not exited).
    pub(crate) fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Kills the process at once, as a crash would.
    pub(crate) fn kill_9(&mut self) {
        self.signal(libc::SIGKILL);
    }

    /// Resident memory of the runner process (VmRSS), in bytes.
    pub(crate) fn rss(&self) -> u64 {
        let pid = self.child.as_ref().expect("a running daemon").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        kb * 1024
    }

    /// The API's address (the daemon binds port 0 and writes where it listens).
    pub(crate) fn http_url(&self) -> String {
        self.wait_log("HTTP API listening", Duration::from_secs(30));
        format!("http://{}", std::fs::read_to_string(self.state_dir.join("http.addr")).unwrap().trim())
    }

    pub(crate) fn signal(&mut self, signal: i32) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // An embedded Redis left by a killed daemon.
        if let Ok(pid) = std::fs::read_to_string(self.state_dir.join("redis.pid"))
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            // SAFETY: the pid our own daemon recorded for its Redis.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

/// What most daemon tests start from: a Redis of their own, and a folder
/// holding `config` as `runner.toml` and `plugins` (fixture crate, file
/// name) in its plugins folder.
pub(crate) fn bed(config: &str, plugins: &[(&str, &str)]) -> (testkit::redis::RedisServer, tempfile::TempDir) {
    let redis = testkit::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runner.toml"), config).unwrap();
    for (plugin, as_name) in plugins {
        install(dir.path(), plugin, as_name);
    }
    (redis, dir)
}

/// `bed`, with `runner serve` started on it. Bind the three in this order
/// (`let (redis, dir, daemon)`), so that the daemon stops first.
pub(crate) fn serve_bed(
    config: &str,
    plugins: &[(&str, &str)],
) -> (testkit::redis::RedisServer, tempfile::TempDir, Daemon) {
    let (redis, dir) = bed(config, plugins);
    let daemon = Daemon::start(dir.path(), Some(&redis.url()));
    (redis, dir, daemon)
}

pub(crate) fn install(dir: &Path, plugin: &str, as_name: &str) {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::copy(testkit::wasm::path(plugin), dir.join("plugins").join(as_name)).unwrap();
}

pub(crate) async fn queue(url: &str, name: &str) -> Queue {
    Queue::new(Connection::connect(url).await.unwrap(), name).unwrap()
}

/// A config for a daemon on its own embedded Redis (on a free port).
pub(crate) fn embedded_config(dir: &Path, lease: &str, concurrency: usize) {
    let port = testkit::free_port();
    let toml = format!(
        "[runner]\nlease = \"{lease}\"\n[redis]\nembedded_port = {port}\n[queues.default]\nconcurrency = {concurrency}\n"
    );
    std::fs::write(dir.join("runner.toml"), toml).unwrap();
}

/// A queue on the embedded Redis of the daemon started in `dir`.
pub(crate) async fn embedded_queue(dir: &Path, name: &str) -> Queue {
    let url = std::fs::read_to_string(dir.join(".runner/redis.url")).unwrap();
    queue(url.trim(), name).await
}

pub(crate) fn keep_all() -> JobOptions {
    JobOptions { keep_completed: Some(Keep { count: None, age_ms: None }), ..Default::default() }
}

pub(crate) fn jobs(job_type: &str, payload: &str, n: usize) -> Vec<NewJob> {
    jobs_as(job_type, job_type, payload, n)
}

/// `n` jobs with ids `PREFIX-00000`, … that keep their records.
pub(crate) fn jobs_as(prefix: &str, job_type: &str, payload: &str, n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| NewJob {
            id: Some(format!("{prefix}-{i:05}")),
            job_type: job_type.into(),
            payload: payload.into(),
            options: keep_all(),
        })
        .collect()
}

/// The ids of the jobs a runner's log says it started, in order: it logs
/// `job{id=ID type=...}: ...: started` at debug
/// (`RUNNER_LOG=info,runner::daemon::dispatcher=debug`), one line a job.
pub(crate) fn started(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.ends_with(": started"))
        .filter_map(|l| Some(l.split("id=").nth(1)?.split([' ', '}']).next()?.to_string()))
        .collect()
}

/// Waits until the queue's counts satisfy `done`.
pub(crate) async fn wait_counts(
    q: &Queue,
    what: &str,
    timeout: Duration,
    done: impl Fn(&jobrunner_queue::Counts) -> bool,
) -> jobrunner_queue::Counts {
    let deadline = Instant::now() + timeout;
    loop {
        // An error is a Redis that a fault test has stopped: look again.
        let c = q.counts().await;
        if let Ok(c) = &c
            && done(c)
        {
            return c.clone();
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {c:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_type_completes_under_serve() {
    let redis = testkit::redis::RedisServer::start();
    let receiver = testkit::http::HttpRecorder::start().await;
    receiver.reply("/hooks/bookings", testkit::http::Reply::status(200));
    receiver.reply(
        "/api/vendors/v-77/contact",
        testkit::http::Reply::json(serde_json::json!({"name": "Lumen", "email": "lumen@example.com"})),
    );
    receiver.reply(
        "/api/clients/c-311/contact",
        testkit::http::Reply::json(serde_json::json!({"name": "Ana", "email": "ana@example.com"})),
    );
    receiver.reply("/api/conversations/conv-5521", testkit::http::Reply::json(serde_json::json!({"answered": false})));
    receiver.reply("/pages/home", testkit::http::Reply::status(200).body("home"));
    receiver.reply("/pages/pricing", testkit::http::Reply::status(200).body("pricing"));
    let dir = tempfile::tempdir().unwrap();
    let here = format!("127.0.0.1:{}", receiver.port);
    let examples = testkit::workspace_root().join("examples");
    std::fs::write(
        dir.path().join("runner.toml"),
        std::fs::read_to_string(examples.join("runner.toml")).unwrap().replace("127.0.0.1:8089", &here),
    )
    .unwrap();
    for p in [
        "email_plugin",
        "webhook_plugin",
        "vendor_notification_plugin",
        "response_reminder_plugin",
        "cache_warmup_plugin",
    ] {
        install(dir.path(), p, &format!("{p}.wasm"));
    }
    let _daemon = Daemon::start(dir.path(), Some(&redis.url()));
    for job_type in ["email", "webhook", "vendor-notification", "response-reminder", "cache-warmup"] {
        let payload = std::fs::read_to_string(examples.join(format!("payloads/{job_type}.json")))
            .unwrap()
            .replace("127.0.0.1:8089", &here);
        // Through the CLI, as an operator would.
        let out = Command::new(env!("CARGO_BIN_EXE_runner"))
            .current_dir(dir.path())
            .env("REDIS_URL", redis.url())
            .args(["enqueue", "default", job_type, "--payload", &payload, "--id", &format!("sample-{job_type}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("sample-{job_type}"));
    }
    let q = queue(&redis.url(), "default").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for job_type in ["email", "webhook", "vendor-notification", "response-reminder", "cache-warmup"] {
        loop {
            let j = q.get(&format!("sample-{job_type}")).await.unwrap().unwrap();
            if j.state == State::Completed {
                break;
            }
            assert!(j.state != State::Failed && Instant::now() < deadline, "{job_type}: {j:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The follow-up jobs of vendor-notification and response-reminder ran too.
    wait_counts(&q, "the follow-ups", Duration::from_secs(60), |c| {
        c.waiting + c.active + c.delayed <= 1 && c.failed == 0
    })
    .await;
    assert!(std::fs::read_dir(dir.path().join(".runner/outbox")).unwrap().count() >= 3, "the emails were written");
}

/// A runner starting with a small plugin and a large one, its compile
/// cache empty: it consumes at once, the small plugin's job completes while
/// the large one still compiles (and `/ready` names it), and the large
/// one's job, enqueued before the start with one attempt, waits for it and
/// completes on that attempt. The lease (3 s) is shorter than the compile:
/// the wait's extensions count for the run, which is not taken for a lease
/// gone unconfirmed and stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_load_in_the_background_and_jobs_wait_for_theirs() {
    let Some(ts) = testkit::guest::plugin_or_skip(testkit::guest::Lang::Js, "plugin-template-ts") else { return };
    let (redis, dir) =
        bed("[runner]\nlease = \"3s\"\n[queues.default]\nconcurrency = 4\n", &[("noop_plugin", "noop.wasm")]);
    std::fs::copy(&ts, dir.path().join("plugins/plugin-template-ts.wasm")).unwrap();
    let q = queue(&redis.url(), "default").await;
    let once = JobOptions { attempts: Some(1), ..keep_all() };
    let big = NewJob {
        id: Some("big".into()),
        job_type: "plugin-template-ts".into(),
        payload: r#"{"name":"Ada"}"#.into(),
        options: once.clone(),
    };
    let small = NewJob { id: Some("small".into()), job_type: "noop".into(), payload: "{}".into(), options: once };
    q.enqueue_bulk(vec![big, small]).await.unwrap();

    let daemon = Daemon::spawn(dir.path(), Some(&redis.url()), &[]);
    let http = reqwest::Client::new();
    let ready_url = format!("{}/ready", daemon.http_url());
    let deadline = Instant::now() + Duration::from_secs(120);
    while q.get("small").await.unwrap().unwrap().state != State::Completed {
        assert!(Instant::now() < deadline, "the small plugin's job did not complete:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The small plugin's job is done; the large plugin is still compiling.
    let r = http.get(&ready_url).send().await.unwrap();
    assert_eq!(r.status(), 503, "{}", daemon.log());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["plugins_loading"], serde_json::json!(["plugin-template-ts.wasm"]), "{body}");
    assert_ne!(q.get("big").await.unwrap().unwrap().state, State::Failed);

    let c = wait_counts(&q, "both jobs", Duration::from_secs(180), |c| c.completed + c.failed == 2).await;
    assert_eq!(c.failed, 0, "{:?}\n{}", q.get("big").await.unwrap(), daemon.log());
    let big = q.get("big").await.unwrap().unwrap();
    assert_eq!((big.state, big.attempts_made, big.errors.len()), (State::Completed, 1, 0));
    assert_eq!(big.result.unwrap()["message"], "Hello, Ada!");
    let r = http.get(&ready_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["plugins_loading"], serde_json::json!([]));
    assert!(daemon.log().contains("waiting for the plugins still loading"), "{}", daemon.log());
    assert!(!daemon.log().contains("stopping the job here"), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_swapped_under_load_loses_nothing() {
    let (redis, dir, daemon) = serve_bed("[queues.default]\nconcurrency = 20\n", &[("noop_plugin", "whoami.wasm")]);
    let q = queue(&redis.url(), "default").await;
    let mut all = jobs("whoami", "{}", 5000);
    let second_half = all.split_off(2500);
    q.enqueue_bulk(all).await.unwrap();
    wait_counts(&q, "a first thousand", Duration::from_secs(120), |c| c.completed >= 1000).await;
    // Replace the plugin in place while jobs run, as a copy would (not
    // atomically: the watcher must wait for the write to finish).
    std::fs::copy(testkit::wasm::path("hostile_plugin"), dir.path().join("plugins/whoami.wasm")).unwrap();
    daemon.wait_log("declared=hostile", Duration::from_secs(30));
    q.enqueue_bulk(second_half).await.unwrap();
    let c = wait_counts(&q, "all 5000", Duration::from_secs(180), |c| c.completed + c.failed == 5000).await;
    assert_eq!(c.failed, 0, "no job failed because of the swap");
    let by = |r: &jobrunner_queue::JobRecord| r.result.as_ref().unwrap()["by"].as_str().unwrap().to_string();
    assert_eq!(by(&q.get("whoami-00000").await.unwrap().unwrap()), "noop");
    // Every job enqueued after the swap ran the new version.
    for i in 2500..5000 {
        let r = q.get(&format!("whoami-{i:05}")).await.unwrap().unwrap();
        assert_eq!(by(&r), "hostile", "job {i}");
    }
}

/// Jobs that run several times longer than the lease keep it: the runner
/// extends the leases of its running jobs together (`daemon/leases.rs`),
/// so none stalls or runs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_longer_than_the_lease_keep_it() {
    let (redis, _dir, daemon) = serve_bed(
        "[runner]\nlease = \"1s\"\n[queues.default]\nconcurrency = 10\n",
        &[("hostile_plugin", "hostile.wasm")],
    );
    let q = queue(&redis.url(), "default").await;
    q.enqueue_bulk(jobs("sleep", r#"{"ms": 3500}"#, 5)).await.unwrap();
    let c = wait_counts(&q, "the sleepers", Duration::from_secs(60), |c| c.completed + c.failed == 5).await;
    assert_eq!(c.failed, 0, "{c:?}\n{}", daemon.log());
    for r in q.list(State::Completed, 0, 10).await.unwrap() {
        assert_eq!((r.attempts_made, r.stalls), (1, 0), "{} lost its lease\n{}", r.id, daemon.log());
    }
    assert!(!daemon.log().contains("lost the lease"), "{}", daemon.log());
}

/// A plugin's progress is written to its job while it runs (a reader of the
/// job and of the queue's events sees it move), and the value at the end
/// goes with the outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_seen_while_the_job_runs() {
    let (redis, _dir, daemon) = serve_bed("[plugins.hostile]\n", &[("hostile_plugin", "hostile.wasm")]);
    let q = queue(&redis.url(), "default").await;
    let mut events = q.events_after(None).await.unwrap();
    let payload = r#"{"steps": [10, 40, 65], "until": "go"}"#;
    let job =
        NewJob { id: Some("p1".into()), job_type: "progress".into(), payload: payload.into(), options: keep_all() };
    q.enqueue(job).await.unwrap();

    // The events tell of it moving, up to its latest value, while it runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut reported = Vec::new();
    while reported.last() != Some(&"65".to_string()) {
        assert!(std::time::Instant::now() < deadline, "progress seen: {reported:?}\n{}", daemon.log());
        for e in events.next(Duration::from_secs(5)).await.unwrap() {
            if e.name == "progress" && e.job_ids() == ["p1"] {
                reported.extend(e.fields.iter().filter(|(k, _)| k == "progress").map(|(_, v)| v.clone()));
            }
        }
    }
    assert!(reported.len() <= 3, "at most one write per report, fewer when they come fast: {reported:?}");
    let running = q.get("p1").await.unwrap().unwrap();
    assert_eq!((running.state, running.progress), (State::Active, Some(65)));

    // Let it finish: the progress stays with the outcome.
    let _: () = ::redis::cmd("SET").arg("jr:cache:{hostile}:k:go").arg("1").query(&mut redis.connection()).unwrap();
    let done = q.wait("p1", Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!((done.state, done.progress), (State::Completed, Some(65)), "{}", daemon.log());
    assert_eq!(done.result, Some(serde_json::json!({"released": true})));
}

/// `[[schedules]]` in the config: added at start and fired; the API and the
/// CLI may not change it; once the file drops it, a reload removes it, and
/// a schedule made through the API stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_follow_the_config() {
    let with = "[[schedules]]\nid = \"tick\"\ntype = \"noop\"\npayload = { from = \"config\" }\nevery = \"1s\"\n";
    let (redis, dir) = bed("", &[("noop_plugin", "noop.wasm")]);
    // The CLI reads the Redis URL from the config too.
    let config = format!("[redis]\nurl = \"{}\"\n", redis.url());
    std::fs::write(dir.path().join("runner.toml"), format!("{config}{with}")).unwrap();
    let daemon = Daemon::start(dir.path(), Some(&redis.url()));
    let q = queue(&redis.url(), "default").await;
    wait_counts(&q, "two ticks", Duration::from_secs(60), |c| c.completed >= 2).await;
    let stored = q.list_schedules().await.unwrap();
    let tick = stored.iter().find(|s| s.schedule.id == "tick").expect("the config's schedule");
    assert_eq!(tick.schedule.source, jobrunner_queue::ScheduleSource::Config);

    let out = crate::runner(dir.path(), &["schedule", "remove", "default", "tick", "--config", "runner.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(crate::stderr(&out).contains("comes from the config file"), "{}", crate::stderr(&out));
    let mine = jobrunner_queue::Schedule {
        id: "mine".into(),
        job_type: "noop".into(),
        payload: serde_json::json!({}),
        options: JobOptions::default(),
        timing: jobrunner_queue::Timing::Every { every_ms: 3_600_000 },
        source: jobrunner_queue::ScheduleSource::Api,
    };
    q.upsert_schedule(&mine).await.unwrap();

    // The file drops it: the reload removes it, and leaves the API's alone.
    std::fs::write(dir.path().join("runner.toml"), &config).unwrap();
    let has = |id: &str| -> bool {
        ::redis::cmd("HEXISTS").arg("jr:{default}:schedules").arg(id).query(&mut redis.connection()).unwrap()
    };
    testkit::wait_until("the reload to remove the schedule", Duration::from_secs(30), || !has("tick")).await;
    assert!(has("mine"), "{}", daemon.log());
    assert!(daemon.log().contains("schedule removed: the config no longer has it"), "{}", daemon.log());
}

/// `[queues.NAME]` policies, measured on jobs that run: a queue's timeout
/// stops a plugin that runs longer, its attempts and backoff shape the
/// retries of jobs that set none, a producer's own attempts win, and
/// `runner queues` shows each value with its source. An edit of the file
/// takes effect on reload, for the jobs that fail after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_policies_follow_the_config() {
    let (redis, dir) = bed("", &[("hostile_plugin", "hostile.wasm")]);
    let redis_line = format!("[redis]\nurl = \"{}\"\n", redis.url());
    let policy = |attempts: u32| {
        format!(
            "{redis_line}[queues.default]\nattempts = {attempts}\nbackoff = {{ type = \"fixed\", delay = \"20ms\" }}\ntimeout = \"300ms\"\nkeep_failed = \"all\"\n"
        )
    };
    std::fs::write(dir.path().join("runner.toml"), policy(2)).unwrap();
    let daemon = Daemon::start(dir.path(), Some(&redis.url()));
    let q = queue(&redis.url(), "default").await;
    let sleeper = |id: &str, options: JobOptions| NewJob {
        id: Some(id.into()),
        job_type: "sleep".into(),
        payload: r#"{"ms": 60000}"#.into(),
        options,
    };
    let ended = |id: &'static str| {
        let q = q.clone();
        async move {
            let r = q.wait(id, Duration::from_secs(60)).await.unwrap().unwrap();
            assert_eq!(r.state, State::Failed, "{id}: {r:?}");
            r
        }
    };
    // The daemon writes the policy before it consumes: a job enqueued once
    // it shows is under it.
    testkit::wait_until("the policy in Redis", Duration::from_secs(30), || {
        let p: Option<String> =
            ::redis::cmd("HGET").arg("jr:{default}:meta").arg("policy").query(&mut redis.connection()).unwrap();
        p.is_some()
    })
    .await;
    q.enqueue(sleeper("by-config", JobOptions::default())).await.unwrap();
    q.enqueue(sleeper("by-producer", JobOptions { attempts: Some(1), ..Default::default() })).await.unwrap();
    let r = ended("by-config").await;
    assert_eq!(r.attempts_made, 2, "the queue's attempts: {r:?}");
    assert!(
        r.errors.iter().all(|e| e.error.contains("300ms timeout")),
        "the queue's 300ms timeout stopped it: {:?}",
        r.errors
    );
    // The fixed backoff: the second attempt began no sooner than 20ms
    // after the first failed.
    assert!(r.errors[1].at >= r.errors[0].at + 20, "{:?}", r.errors);
    let e = r.effective.unwrap();
    assert_eq!((e.attempts.source, e.timeout_ms.value), (jobrunner_queue::Source::Config, Some(300)));
    assert_eq!(ended("by-producer").await.attempts_made, 1, "the producer's attempts win");

    let out = crate::runner(dir.path(), &["queues", "--config", "runner.toml"]);
    let text = crate::stdout(&out);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    let line = |key: &str| text.lines().find(|l| l.trim_start().starts_with(key)).unwrap_or_default().to_string();
    assert!(line("attempts").contains('2') && line("attempts").ends_with("config"), "{text}");
    assert!(line("timeout").contains("300ms") && line("timeout").ends_with("config"), "{text}");
    assert!(line("priority").ends_with("default"), "{text}");

    // Three attempts after the edit, for a job that fails after it.
    std::fs::write(dir.path().join("runner.toml"), policy(3)).unwrap();
    testkit::wait_until("the reload to write the new policy", Duration::from_secs(30), || {
        let p: Option<String> =
            ::redis::cmd("HGET").arg("jr:{default}:meta").arg("policy").query(&mut redis.connection()).unwrap();
        p.is_some_and(|p| p.contains("\"attempts\":3"))
    })
    .await;
    q.enqueue(sleeper("after-reload", JobOptions::default())).await.unwrap();
    assert_eq!(ended("after-reload").await.attempts_made, 3, "{}", daemon.log());
    assert!(daemon.log().contains("queue policy set"), "{}", daemon.log());
}

/// `[redis] prefix`: two runners on one Redis, each with its own prefix,
/// run only their own jobs; the CLI and the API of each see only its own
/// queues and runners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prefixes_share_one_redis() {
    let redis = testkit::redis::RedisServer::start();
    let bed_for = |prefix: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("runner.toml"),
            format!("[redis]\nurl = \"{}\"\nprefix = \"{prefix}\"\n", redis.url()),
        )
        .unwrap();
        install(dir.path(), "noop_plugin", "noop.wasm");
        dir
    };
    let (blue_dir, green_dir) = (bed_for("blue"), bed_for("green"));
    let blue = Daemon::start(blue_dir.path(), Some(&redis.url()));
    let green = Daemon::start(green_dir.path(), Some(&redis.url()));
    assert!(blue.log().contains("prefix=blue"), "{}", blue.log());

    let out = crate::runner_async(
        blue_dir.path(),
        &["enqueue", "default", "noop", "--payload", "{}", "--wait", "60s", "--config", "runner.toml"],
    )
    .await;
    assert!(out.status.success(), "{}", crate::stderr(&out));
    let conn = Connection::connect(&redis.url()).await.unwrap();
    let counts = |prefix: &'static str| {
        let conn = conn.clone();
        async move { Queue::new(conn.with_prefix(prefix).unwrap(), "default").unwrap().counts().await.unwrap() }
    };
    assert_eq!(counts("blue").await.completed, 1);
    assert_eq!(counts("green").await.completed, 0, "{}", green.log());
    assert_eq!(counts("jr").await.completed, 0);

    let listed = |dir: &Path| {
        let out = crate::runner(dir, &["queues", "--json", "--config", "runner.toml"]);
        serde_json::from_str::<serde_json::Value>(&crate::stdout(&out)).unwrap()
    };
    assert_eq!(listed(blue_dir.path())["default"]["completed"], 1);
    assert!(listed(green_dir.path()).get("default").is_none_or(|q| q["completed"] == 0));
    // Each sees only itself, once its first heartbeat has landed.
    for daemon in [&blue, &green] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let runners: serde_json::Value =
                reqwest::get(format!("{}/api/v1/runners", daemon.http_url())).await.unwrap().json().await.unwrap();
            let n = runners.as_array().map(Vec::len).unwrap_or(0);
            assert!(n <= 1, "each sees only itself: {runners}");
            if n == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "no heartbeat: {}", daemon.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `dead_letter`: a job whose attempts ran out under `runner serve` moves
/// to the dead-letter queue with its errors; `runner retry` sends it back
/// to its queue, where it runs (and fails) again and comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_fail_for_good_go_to_the_dead_letter_queue_and_back() {
    let (redis, dir) = bed("", &[("hostile_plugin", "hostile.wasm")]);
    let config = format!(
        "[redis]\nurl = \"{}\"\n[queues.default]\nattempts = 2\nbackoff = {{ type = \"none\" }}\ndead_letter = \"dead\"\n",
        redis.url()
    );
    std::fs::write(dir.path().join("runner.toml"), config).unwrap();
    let daemon = Daemon::start(dir.path(), Some(&redis.url()));
    let q = queue(&redis.url(), "default").await;
    let dead = queue(&redis.url(), "dead").await;
    let job = NewJob {
        id: Some("doomed".into()),
        job_type: "flaky".into(),
        payload: r#"{"fail_percent": 100}"#.into(),
        options: JobOptions::default(),
    };
    q.enqueue(job).await.unwrap();
    let letter = loop_until(&dead, "doomed's dead letter", |r| r.errors.len() == 2).await;
    assert_eq!(letter.state, State::Failed);
    assert_eq!(letter.errors[1].error, "flaky failure on attempt 2");
    let first_failure = letter.dead_letter.unwrap().failed_at;
    assert!(q.get("doomed").await.unwrap().is_none(), "moved out of its queue");
    // The dead-letter queue keeps every letter: its policy says so.
    let p = dead.policy().await.unwrap();
    assert_eq!(p.keep_failed, Some(Keep { count: None, age_ms: None }));

    let out = crate::runner(dir.path(), &["retry", "dead", "default:doomed", "--config", "runner.toml"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    let again = loop_until(&dead, "doomed's second dead letter", |r| {
        r.dead_letter.as_ref().is_some_and(|d| d.failed_at > first_failure)
    })
    .await;
    assert_eq!(again.errors.len(), 2, "its attempts began afresh: {:?}", again.errors);
    assert!(daemon.log().contains("moved to the dead-letter queue"), "{}", daemon.log());
}

/// Waits for `default:doomed` in `dead` to satisfy `done`.
async fn loop_until(
    dead: &Queue,
    what: &str,
    done: impl Fn(&jobrunner_queue::JobRecord) -> bool,
) -> jobrunner_queue::JobRecord {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(r) = dead.get("default:doomed").await.unwrap()
            && done(&r)
        {
            return r;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running job is cancelled wherever it runs: two runners share a queue,
/// each running one long job; a cancel request stops each on the runner
/// that holds it and records it failed, "cancelled", with no retry. A
/// waiting job cannot be cancelled, and both runners go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_is_cancelled_on_whichever_runner_holds_it() {
    let config = "[queues.default]\nconcurrency = 1\n[plugins.hostile]\ntimeout = \"10m\"\n";
    let (redis, a_dir) = bed(config, &[("hostile_plugin", "hostile.wasm")]);
    let b_dir = tempfile::tempdir().unwrap();
    std::fs::write(b_dir.path().join("runner.toml"), config).unwrap();
    install(b_dir.path(), "hostile_plugin", "hostile.wasm");
    let a = Daemon::start(a_dir.path(), Some(&redis.url()));
    let b = Daemon::start(b_dir.path(), Some(&redis.url()));
    let q = queue(&redis.url(), "default").await;
    for id in ["c1", "c2", "c3"] {
        let options = JobOptions { attempts: Some(3), ..keep_all() };
        let job =
            NewJob { id: Some(id.into()), job_type: "sleep".into(), payload: r#"{"ms": 600000}"#.into(), options };
        q.enqueue(job).await.unwrap();
    }
    // One job runs on each runner; the third waits.
    wait_counts(&q, "a job running on each runner", Duration::from_secs(60), |c| c.active == 2).await;
    let active: Vec<String> = q.list(State::Active, 0, 10).await.unwrap().into_iter().map(|r| r.id).collect();
    let waiting = ["c1", "c2", "c3"].into_iter().find(|id| !active.iter().any(|a| a == id)).unwrap();
    assert_eq!(q.cancel(waiting).await.unwrap(), jobrunner_queue::CancelAnswer::NotRunning(State::Waiting));

    for id in &active {
        let answer = q.cancel(id).await.unwrap();
        assert!(
            matches!(answer, jobrunner_queue::CancelAnswer::Requested { listeners } if listeners >= 1),
            "{answer:?}"
        );
    }
    // Each ends failed on its first attempt, long before its ten-minute sleep.
    for id in &active {
        let r = q.wait(id, Duration::from_secs(60)).await.unwrap().unwrap();
        assert_eq!((r.state, r.attempts_made), (State::Failed, 1), "{id}\n{}\n{}", a.log(), b.log());
        assert_eq!(r.errors.last().unwrap().error, "cancelled");
    }
    let told = |d: &Daemon| d.log().matches("cancel requested: stopping the job").count();
    assert_eq!((told(&a), told(&b)), (1, 1), "each runner stopped the job it held");
    // Both go on: the waiting job starts.
    wait_counts(&q, "the third job running", Duration::from_secs(60), |c| c.active == 1 && c.waiting == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_or_puts_back_every_job() {
    let (redis, _dir, mut daemon) = serve_bed(
        "[runner]\nshutdown_grace = \"1s\"\n[queues.default]\nconcurrency = 10\n",
        &[("hostile_plugin", "hostile.wasm")],
    );
    let q = queue(&redis.url(), "default").await;
    q.enqueue_bulk(jobs("noop", "{}", 100)).await.unwrap();
    q.enqueue_bulk(jobs("sleep", r#"{"ms": 20000}"#, 20)).await.unwrap();
    wait_counts(&q, "the quick jobs and ten sleepers", Duration::from_secs(60), |c| {
        c.completed == 100 && c.active == 10
    })
    .await;
    let status = daemon.signal(libc::SIGTERM);
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}\n{}", daemon.log());
    let c = q.counts().await.unwrap();
    assert_eq!((c.completed, c.active, c.waiting, c.failed), (100, 0, 20, 0), "nothing lost: {c:?}");
    // The cancelled jobs went back unspent.
    for r in q.list(State::Waiting, 0, 100).await.unwrap() {
        assert_eq!(r.attempts_made, 0, "{} kept its attempts", r.id);
    }
    assert!(daemon.log().contains("put back on the queue"));
}

/// SIGTERM in the middle of a drain of quick jobs: jobs finish in their
/// thousands a second, and each hands its completion to the queue's acker
/// and ends without waiting for Redis. Every job that finished must be
/// recorded as completed (the dispatcher closes the acker last): none is
/// left active under a lease to run again, and none went back with an
/// attempt spent. (The acker's task usually outlives an unclosed acker
/// long enough to send, so this catches completions lost outright more
/// surely than a close left out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_drain_records_every_finished_job() {
    let (redis, _dir, mut daemon) = serve_bed("[queues.default]\nconcurrency = 50\n", &[("noop_plugin", "noop.wasm")]);
    let q = queue(&redis.url(), "default").await;
    for chunk in jobs("noop", "{}", 50_000).chunks(jobrunner_queue::MAX_BULK) {
        q.enqueue_bulk(chunk.to_vec()).await.unwrap();
    }
    wait_counts(&q, "the drain under way", Duration::from_secs(60), |c| c.completed >= 2_000).await;
    let status = daemon.signal(libc::SIGTERM);
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}\n{}", daemon.log());
    let c = q.counts().await.unwrap();
    assert_eq!((c.active, c.failed, c.delayed), (0, 0, 0), "every finished job recorded: {c:?}\n{}", daemon.log());
    assert_eq!(c.completed + c.waiting, 50_000, "nothing lost: {c:?}");
    assert!(c.waiting > 0, "the SIGTERM came before the drain ended: {c:?}");
    for r in q.list(State::Waiting, 0, 1000).await.unwrap() {
        assert_eq!(r.attempts_made, 0, "{} kept its attempts", r.id);
    }
    assert!(!daemon.log().contains("could not record completions"), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_restart_completes_every_job() {
    let dir = tempfile::tempdir().unwrap();
    embedded_config(dir.path(), "2s", 10);
    install(dir.path(), "hostile_plugin", "hostile.wasm");
    let mut daemon = Daemon::start(dir.path(), None);
    let q = embedded_queue(dir.path(), "default").await;
    let mut batch = jobs("sleep", r#"{"ms": 30}"#, 400);
    for j in &mut batch {
        j.options.attempts = Some(10);
    }
    q.enqueue_bulk(batch).await.unwrap();
    wait_counts(&q, "some progress", Duration::from_secs(60), |c| c.completed >= 50).await;
    daemon.signal(libc::SIGKILL);
    // The embedded Redis outlived its runner; the next runner adopts it.
    let daemon2 = Daemon::start(dir.path(), None);
    daemon2.wait_log("adopting the embedded Redis", Duration::from_secs(10));
    let c = wait_counts(&q, "every job", Duration::from_secs(120), |c| c.completed + c.failed == 400).await;
    assert_eq!(c.failed, 0, "{c:?}");
    drop(daemon2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_and_a_broken_plugin_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[queues.default]\nconcurrency = 0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(dir.path())
        .args(["serve", "--config", "bad.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("queues.default.concurrency") && err.trim().lines().count() == 1, "{err}");

    let redis = testkit::redis::RedisServer::start();
    std::fs::write(dir.path().join("runner.toml"), "").unwrap();
    install(dir.path(), "noop_plugin", "noop.wasm");
    std::fs::write(dir.path().join("plugins/broken.wasm"), b"not a component").unwrap();
    let daemon = Daemon::start(dir.path(), Some(&redis.url()));
    assert!(daemon.log().contains("broken.wasm") && daemon.log().contains("not a valid WebAssembly component"));
    let q = queue(&redis.url(), "default").await;
    q.enqueue(NewJob { id: Some("a".into()), job_type: "noop".into(), payload: "{}".into(), options: keep_all() })
        .await
        .unwrap();
    wait_counts(&q, "the good plugin to serve", Duration::from_secs(30), |c| c.completed == 1).await;
    // A broken version hot-reloaded over a good one: the good one keeps serving.
    std::fs::write(dir.path().join("plugins/noop.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
    daemon.wait_log("exports none of", Duration::from_secs(10));
    q.enqueue(NewJob { id: Some("b".into()), job_type: "noop".into(), payload: "{}".into(), options: keep_all() })
        .await
        .unwrap();
    wait_counts(&q, "the old version to serve", Duration::from_secs(30), |c| c.completed == 2).await;
    // A job whose type no plugin handles is retried, then fails saying why.
    let mut o = keep_all();
    o.attempts = Some(1);
    q.enqueue(NewJob { id: Some("c".into()), job_type: "nobody".into(), payload: "{}".into(), options: o })
        .await
        .unwrap();
    wait_counts(&q, "the orphan job to fail", Duration::from_secs(30), |c| c.failed == 1).await;
    let r = q.get("c").await.unwrap().unwrap();
    assert!(r.errors[0].error.contains("no plugin handles type `nobody`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_serves_a_running_daemon() {
    let redis = testkit::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runner.toml"), "[http]\ntoken = \"env:E2E_TOKEN\"\n").unwrap();
    install(dir.path(), "noop_plugin", "noop.wasm");
    let daemon = Daemon::start_with(dir.path(), Some(&redis.url()), &[("E2E_TOKEN", "e2e-token-0123456789")]);
    let base = daemon.http_url();
    let http = reqwest::Client::new();
    let auth = "Bearer e2e-token-0123456789";
    let get = |path: &str| http.get(format!("{base}{path}")).header("authorization", auth).send();

    let r = http.get(format!("{base}/api/v1/queues")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(http.get(format!("{base}/health")).send().await.unwrap().status(), 200);
    let r = http
        .post(format!("{base}/api/v1/queues/default/jobs"))
        .header("authorization", auth)
        .json(&serde_json::json!({"type": "whoami", "payload": {}, "id": "api-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job: serde_json::Value = get("/api/v1/queues/default/jobs/api-1").await.unwrap().json().await.unwrap();
        if job["state"] == "completed" {
            assert_eq!(job["result"], serde_json::json!({"by": "noop"}));
            break;
        }
        assert!(Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"jobrunner_jobs_total{outcome="completed",queue="default",type="whoami"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("jobrunner_plugin_reloads_total{outcome=\"loaded\"} 1"));
    let ready = get("/ready").await.unwrap();
    assert_eq!(ready.status(), 200);
    let plugins: serde_json::Value = get("/api/v1/plugins").await.unwrap().json().await.unwrap();
    // No section is bound to `noop.wasm`: it goes by its file's name.
    assert_eq!((plugins[0]["name"].as_str(), plugins[0]["declared_name"].as_str()), (Some("noop.wasm"), Some("noop")));
    assert_eq!(plugins[0]["job_types"], serde_json::json!(["noop", "whoami", "clock"]));
    // Its grants, by name: an unbound file has none (a secret's value is
    // never shown: `Grants::shown` in the host).
    assert_eq!(plugins[0]["grants"]["secrets"], serde_json::json!([]));
    assert_eq!(plugins[0]["grants"]["allowed_hosts"], serde_json::json!([]));
    let runners: serde_json::Value = get("/api/v1/runners").await.unwrap().json().await.unwrap();
    assert_eq!(runners.as_array().unwrap().len(), 1);
}
