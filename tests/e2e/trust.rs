//! The edges where a runner must keep its promises (issue: trust):
//! - a job with one attempt whose runner is killed before it ran is run,
//!   not failed: over bulk enqueues, lean single enqueues and hand-offs
//!   to an idle runner;
//! - a Redis that may evict jobs is refused at start, and `/ready` says
//!   what Redis does with data;
//! - a named user's password is hashed from standard input, never the
//!   command line.

use crate::serve::{Daemon, install, queue};
use jobrunner_queue::{JobOptions, Keep, NewJob, Queue, State};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::http::HttpRecorder;

/// Options of a job with one attempt, kept whatever its end.
fn one_attempt() -> JobOptions {
    JobOptions {
        attempts: Some(1),
        keep_completed: Some(Keep { count: None, age_ms: None }),
        keep_failed: Some(Keep { count: None, age_ms: None }),
        ..Default::default()
    }
}

/// An `http-get` job that tells `recorder` it ran, under its own path.
fn reporting(recorder: &HttpRecorder, tag: &str) -> NewJob {
    NewJob {
        id: None,
        job_type: "http-get".into(),
        payload: serde_json::json!({"url": recorder.url(&format!("/ran/{tag}"))}).to_string(),
        options: one_attempt(),
    }
}

async fn wait_done(q: &Queue, total: u64) -> jobrunner_queue::Counts {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let c = q.counts().await.unwrap();
        if c.completed + c.failed >= total && c.active == 0 && c.waiting == 0 {
            return c;
        }
        assert!(Instant::now() < deadline, "not every job ended: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `kill -9` under load, jobs with `attempts: 1`: each job either
/// completed, or failed with "stalled" after a run that really happened
/// (its runner logged that it started it, or its plugin reported to the
/// recorder, before its runner died). Jobs the runner had fetched ahead,
/// or that an enqueue had handed to it while it was idle, and that it
/// never started, come back and run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_before_it_ran_spends_no_attempt() {
    const BULK: usize = 6000;
    const KILLS: usize = 3;
    let redis = testkit::redis::RedisServer::start();
    let recorder = HttpRecorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("runner.toml"),
        format!(
            "[runner]\nlease = \"2s\"\n[queues.default]\nconcurrency = 20\n[plugins.hostile]\nallowed_hosts = [\"127.0.0.1:{}\"]\nallowed_networks = [\"127.0.0.0/8\"]\n",
            recorder.port
        ),
    )
    .unwrap();
    install(dir.path(), "hostile_plugin", "hostile.wasm");
    let q = queue(&redis.url(), "default").await;

    // Bulk: ids given, so the recorder's path names each job.
    let bulk: Vec<NewJob> = (0..BULK)
        .map(|i| {
            let id = format!("bulk-{i:05}");
            NewJob { id: Some(id.clone()), ..reporting(&recorder, &id) }
        })
        .collect();
    for chunk in bulk.chunks(1000) {
        q.enqueue_bulk(chunk.to_vec()).await.unwrap();
    }
    // Single enqueues throughout (the lean `push`; handed off at once when
    // the runner is idle): their ids are the ones `push` makes.
    let singles = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let producer = {
        let (q, singles, stop) = (q.clone(), singles.clone(), stop.clone());
        let template = reporting(&recorder, "single");
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.is_cancelled() {
                // The tag in the path is the enqueue's own order: the id
                // comes back from the enqueue, after the job may have run.
                let tag = format!("single-{n:05}");
                let job = NewJob {
                    payload: template.payload.replace("/ran/single", &format!("/ran/{tag}")),
                    ..template.clone()
                };
                if let Ok(e) = q.enqueue(job).await {
                    singles.lock().unwrap().push((e.id, tag));
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    // Two kills while the bulk drains (jobs fetched ahead), then one while
    // only the singles come, each handed off to the idle runner.
    let mut targets = [1500u64, 3500].into_iter();
    // The dispatcher logs each job it starts (at debug), before it marks it.
    let env = [("RUNNER_LOG", "info,runner::daemon::dispatcher=debug")];
    let mut logs = String::new();
    for kill in 0..KILLS {
        let mut daemon = Daemon::start_with(dir.path(), Some(&redis.url()), &env);
        let target = match targets.next() {
            Some(t) => t,
            None => {
                wait_done(&q, BULK as u64).await;
                let c = q.counts().await.unwrap();
                c.completed + c.failed + 200
            }
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let c = q.counts().await.unwrap();
            if c.completed + c.failed >= target {
                println!("kill {}: SIGKILL with {} active, {} done", kill + 1, c.active, c.completed + c.failed);
                break;
            }
            assert!(Instant::now() < deadline, "no progress before kill {}: {c:?}", kill + 1);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        daemon.kill_9();
        logs.push_str(&daemon.log());
    }
    let daemon = Daemon::start_with(dir.path(), Some(&redis.url()), &env);
    let c = q.counts().await.unwrap();
    let more = c.completed + c.failed + 200;
    let deadline = Instant::now() + Duration::from_secs(120);
    while {
        let c = q.counts().await.unwrap();
        c.completed + c.failed < more
    } {
        assert!(Instant::now() < deadline, "the singles stopped after the last restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    producer.await.unwrap();
    let singles = singles.lock().unwrap().clone();
    let c = wait_done(&q, (BULK + singles.len()) as u64).await;

    logs.push_str(&daemon.log());
    let reported: HashSet<String> =
        recorder.requests().into_iter().filter_map(|r| r.path.strip_prefix("/ran/").map(str::to_string)).collect();
    let started: HashSet<String> = crate::serve::started(&logs).into_iter().collect();
    let all = bulk.iter().map(|j| (j.id.clone().unwrap(), j.id.clone().unwrap())).chain(singles.iter().cloned());
    let (mut completed, mut failed, mut came_back) = (0, 0, 0);
    for (id, tag) in all {
        let r = q.get(&id).await.unwrap().unwrap_or_else(|| panic!("job {id} is lost"));
        match r.state {
            State::Completed => {
                completed += 1;
                // A lease that expired unstarted, given back.
                came_back += u64::from(r.stalls > 0);
            }
            State::Failed => {
                failed += 1;
                assert_eq!(r.errors.len(), 1, "{id}: {:?}", r.errors);
                assert_eq!(r.errors[0].kind, "stalled", "{id}: {:?}", r.errors);
                assert!(
                    started.contains(id.as_str()) || reported.contains(&tag),
                    "job {id} failed `stalled` but never started"
                );
            }
            other => panic!("job {id} ended {other:?}"),
        }
    }
    println!(
        "{} jobs ({} single), {KILLS} kills: {completed} completed ({came_back} after a lease that expired unstarted), {failed} failed after a run, 0 failed without running",
        BULK + singles.len(),
        singles.len()
    );
    assert_eq!(completed + failed, c.completed + c.failed);
    assert!(came_back > 0, "no kill caught a job fetched ahead: the test did not test the path");
}

/// A plugin that enqueues two copies of itself on every run (each run well
/// within its limits) cannot grow its queue without end: with
/// `max_waiting`, its follow-ups are refused once the queue is full, its
/// attempts fail saying so, and producers get a 429 with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_is_held_at_max_waiting() {
    const MAX: u64 = 200;
    let redis = testkit::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runner.toml"), format!("[queues.default]\nconcurrency = 4\nmax_waiting = {MAX}\n"))
        .unwrap();
    install(dir.path(), "hostile_plugin", "hostile.wasm");
    let daemon = Daemon::start(dir.path(), Some(&redis.url()));
    let q = queue(&redis.url(), "default").await;
    let mut opts = one_attempt();
    opts.attempts = Some(2);
    opts.backoff = Some(jobrunner_queue::Backoff::Fixed { delay_ms: 10 });
    q.enqueue(NewJob { id: Some("fork-0".into()), job_type: "fork".into(), payload: "{}".into(), options: opts })
        .await
        .unwrap();
    // Jobs not finished, read in one transaction (a job moving between
    // states between two reads would be counted twice).
    let unfinished = || -> u64 {
        let (w, d, a): (u64, u64, u64) = redis::pipe()
            .atomic()
            .cmd("ZCARD")
            .arg("jr:{default}:wait")
            .cmd("ZCARD")
            .arg("jr:{default}:delayed")
            .cmd("ZCARD")
            .arg("jr:{default}:active")
            .query(&mut redis.connection())
            .unwrap();
        w + d + a
    };
    // Until some runs have been refused, the queue never passes its bound.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = unfinished();
        assert!(n <= MAX, "past the bound: {n}");
        let c = q.counts().await.unwrap();
        if c.failed >= 20 {
            break;
        }
        assert!(Instant::now() < deadline, "no run was refused: {c:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let failed = q.list(State::Failed, 0, 5).await.unwrap();
    let reason = &failed[0].errors.last().unwrap().error;
    assert!(reason.contains("queue `default` is full") && reason.contains("max_waiting is 200"), "{reason}");
    // A producer is told the same, with 429, once the queue is full.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = http
            .post(format!("{}/api/v1/queues/default/jobs", daemon.http_url()))
            .json(&serde_json::json!({"type": "noop", "payload": {}}))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"], "queue_full");
            assert!(body["detail"].as_str().unwrap().contains("is full"), "{body}");
            break;
        }
        assert_eq!(r.status(), 201);
        assert!(Instant::now() < deadline, "the queue never filled up");
    }
    assert!(unfinished() <= MAX);
}

/// A Redis whose `maxmemory-policy` may evict queue keys is refused at
/// start with the reason and the way out; allowed, it runs, and `/ready`
/// reports the risk. The embedded Redis is safe, and `/ready` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_may_evict_jobs_is_refused_or_reported() {
    let redis = testkit::redis::RedisServer::start_with_maxmemory("64mb", "allkeys-lru");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runner.toml"), "").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(dir.path())
        .args(["serve", "--config", "runner.toml"])
        .env("REDIS_URL", redis.url())
        .env("RUNNER_HTTP_BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("maxmemory-policy is `allkeys-lru`") && err.contains("allow_eviction = true"),
        "the refusal names the policy and the override: {err}"
    );

    std::fs::write(dir.path().join("runner.toml"), "[redis]\nallow_eviction = true\n").unwrap();
    let daemon = Daemon::start(dir.path(), Some(&redis.url()));
    assert!(daemon.log().contains("running anyway"), "{}", daemon.log());
    assert!(daemon.log().contains("keeps nothing on disk"), "{}", daemon.log());
    let ready: serde_json::Value =
        reqwest::get(format!("{}/ready", daemon.http_url())).await.unwrap().json().await.unwrap();
    let d = &ready["redis_durability"];
    assert_eq!((d["maxmemory_policy"].as_str(), d["may_evict_jobs"].as_bool()), (Some("allkeys-lru"), Some(true)));
    assert_eq!(d["aof"], false);
    assert!(d["warnings"].as_array().unwrap().len() >= 2, "{d}");
    drop(daemon);

    // The embedded Redis: AOF on, no eviction.
    let dir = tempfile::tempdir().unwrap();
    crate::serve::embedded_config(dir.path(), "30s", 1);
    let daemon = Daemon::start(dir.path(), None);
    let r = reqwest::get(format!("{}/ready", daemon.http_url())).await.unwrap();
    assert_eq!(r.status(), 200);
    let ready: serde_json::Value = r.json().await.unwrap();
    let d = &ready["redis_durability"];
    assert_eq!((d["embedded"].as_bool(), d["aof"].as_bool()), (Some(true), Some(true)), "{d}");
    assert_eq!((d["maxmemory_policy"].as_str(), d["may_evict_jobs"].as_bool()), (Some("noeviction"), Some(false)));
    assert_eq!(d["warnings"], serde_json::json!([]));
}

/// The embedded Redis has a password, kept where only the runner's user
/// can read it, and found there by the CLI; a client without it is
/// refused, and it shows neither in the log nor in the process list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_redis_has_a_password_only_the_runners_user_reads() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    crate::serve::embedded_config(dir.path(), "30s", 1);
    let daemon = Daemon::start(dir.path(), None);
    let state = dir.path().join(".runner");
    for file in ["redis.url", "redis.conf"] {
        let mode = std::fs::metadata(state.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is readable by its owner only");
    }
    let url = std::fs::read_to_string(state.join("redis.url")).unwrap();
    let parsed = url::Url::parse(url.trim()).unwrap();
    let password = parsed.password().expect("the URL carries the password").to_string();
    assert_eq!(password.len(), 64, "256 random bits");
    let bare = format!("redis://127.0.0.1:{}/", parsed.port().unwrap());
    let mut conn = redis::Client::open(bare).unwrap().get_connection().unwrap();
    let err = redis::cmd("PING").query::<String>(&mut conn).unwrap_err();
    assert!(err.to_string().contains("NOAUTH"), "{err}");
    let mut conn = redis::Client::open(url.trim()).unwrap().get_connection().unwrap();
    assert_eq!(redis::cmd("PING").query::<String>(&mut conn).unwrap(), "PONG");
    // The CLI finds it.
    let out = crate::runner(dir.path(), &["queues"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    assert!(!daemon.log().contains(&password), "the password is not logged");
    let pid = std::fs::read_to_string(state.join("redis.pid")).unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(&password), "the password is not in the process list");
}

/// GETs `/api/v1/plugins` of a daemon with no token.
async fn plugin_statuses(daemon: &Daemon) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        reqwest::get(format!("{}/api/v1/plugins", daemon.http_url())).await.unwrap().json().await.unwrap();
    v.as_array().unwrap().clone()
}

/// A plugin is who the operator says, not who it says: a section, with its
/// grants and secrets, belongs to its file (`NAME.wasm`, or `file`), so the
/// same component under another file name gets none of them; a file that
/// claims job types another file serves is refused, at start and on hot
/// reload, until that file goes; a `sha256` pin refuses any other content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_is_who_the_operator_says_not_who_it_says() {
    let redis = testkit::redis::RedisServer::start();
    let recorder = HttpRecorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let grants = format!(
        "[plugins.hostile]\nallowed_hosts = [\"127.0.0.1:{}\"]\nallowed_networks = [\"127.0.0.0/8\"]\n",
        recorder.port
    );
    std::fs::write(dir.path().join("runner.toml"), &grants).unwrap();
    // The hostile component, under a file name no section is for: it says
    // it is `hostile`, and gets nothing of `[plugins.hostile]`.
    install(dir.path(), "hostile_plugin", "impostor.wasm");
    let daemon = Daemon::start(dir.path(), Some(&redis.url()));
    // The log says why it has no grants, and how to give it the section.
    assert!(daemon.log().contains(r#"add `file = "impostor.wasm"` to the section"#), "{}", daemon.log());
    let q = queue(&redis.url(), "default").await;
    let get = |id: &str| NewJob {
        id: Some(id.into()),
        job_type: "http-get".into(),
        payload: serde_json::json!({"url": recorder.url("/x")}).to_string(),
        options: one_attempt(),
    };
    q.enqueue(get("by-impostor")).await.unwrap();
    let r = wait_ended(&q, "by-impostor").await;
    assert_eq!(r.state, State::Failed);
    assert!(r.errors[0].error.contains("not on this plugin's allowed hosts"), "{:?}", r.errors);
    assert_eq!(recorder.requests().len(), 0);
    let statuses = plugin_statuses(&daemon).await;
    assert_eq!(
        (statuses[0]["name"].as_str(), statuses[0]["declared_name"].as_str()),
        (Some("impostor.wasm"), Some("hostile"))
    );

    // The rightful file, hot-reloaded in: it claims the job types the
    // impostor serves, and is refused, saying so.
    install(dir.path(), "hostile_plugin", "hostile.wasm");
    daemon.wait_log("claims job types another plugin serves", Duration::from_secs(30));
    let statuses = plugin_statuses(&daemon).await;
    let refused = statuses.iter().find(|s| s["file"].as_str().unwrap().ends_with("/hostile.wasm")).unwrap();
    assert!(refused["last_error"].as_str().unwrap().contains("`http-get` (served by"), "{refused}");
    // The impostor removed, the rightful file loads, with its grants.
    std::fs::remove_file(dir.path().join("plugins/impostor.wasm")).unwrap();
    daemon.wait_log("plugin=hostile declared=hostile", Duration::from_secs(30));
    q.enqueue(get("by-hostile")).await.unwrap();
    assert_eq!(wait_ended(&q, "by-hostile").await.state, State::Completed);
    assert_eq!(recorder.requests().len(), 1);
    drop(daemon);

    // A pinned hash: other content is refused; the right one loads.
    let sha = |crate_name: &str| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(testkit::wasm::path(crate_name)).unwrap()))
    };
    std::fs::remove_file(dir.path().join("plugins/hostile.wasm")).unwrap();
    install(dir.path(), "noop_plugin", "hostile.wasm");
    std::fs::write(dir.path().join("runner.toml"), format!("{grants}sha256 = \"{}\"\n", sha("hostile_plugin")))
        .unwrap();
    let daemon = Daemon::start(dir.path(), Some(&redis.url()));
    daemon.wait_log("that plugins.hostile.sha256 pins", Duration::from_secs(30));
    install(dir.path(), "hostile_plugin", "hostile.wasm");
    daemon.wait_log("plugin=hostile declared=hostile", Duration::from_secs(30));
}

/// Waits until job `id` has finished, and returns it.
async fn wait_ended(q: &Queue, id: &str) -> jobrunner_queue::JobRecord {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(r) = q.get(id).await.unwrap()
            && matches!(r.state, State::Completed | State::Failed)
        {
            return r;
        }
        assert!(Instant::now() < deadline, "job {id} never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `[cache] url` puts the plugins' cache on a Redis of its own: a plugin's
/// entry lands there, and nothing of it in the queues' Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_may_live_on_a_redis_of_its_own() {
    let queues = testkit::redis::RedisServer::start();
    let cache = testkit::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runner.toml"), format!("[cache]\nurl = \"{}\"\n", cache.url())).unwrap();
    install(dir.path(), "hostile_plugin", "hostile.wasm");
    let daemon = Daemon::start(dir.path(), Some(&queues.url()));
    assert!(daemon.log().contains("the plugins' cache has a Redis of its own"), "{}", daemon.log());
    let q = queue(&queues.url(), "default").await;
    let set = NewJob {
        id: Some("c1".into()),
        job_type: "cache".into(),
        payload: r#"{"key": "where", "set": "here", "ttl_ms": 60000}"#.into(),
        options: one_attempt(),
    };
    q.enqueue(set).await.unwrap();
    assert_eq!(wait_ended(&q, "c1").await.state, State::Completed);
    let key = "jr:cache:{hostile.wasm}:k:where";
    let on = |r: &testkit::redis::RedisServer| -> Option<String> {
        redis::cmd("GET").arg(key).query(&mut r.connection()).unwrap()
    };
    assert_eq!(on(&cache).as_deref(), Some("here"));
    assert_eq!(on(&queues), None);
}

/// `runner user hash` reads the password from standard input (never the
/// command line) and prints an argon2id hash that a config accepts; a short
/// password is refused in one line.
#[test]
fn a_named_users_password_is_hashed_from_standard_input() {
    use std::io::Write;
    let hash_of = |password: &str| {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
            .current_dir(dir.path())
            .args(["user", "hash"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = hash_of("a-long-enough-password\n");
    assert!(out.status.success(), "{}", crate::stderr(&out));
    let hash = crate::stdout(&out).trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(runner::passwords::verify(&hash, "a-long-enough-password"));
    let config = format!("[[http.users]]\nname = \"ana\"\npassword_hash = \"{hash}\"\nrole = \"admin\"\n");
    runner::Config::parse(&config).unwrap();
    let e = format!("{:#}", runner::Config::parse(&config.replace("$argon2id$", "$argon2i$")).unwrap_err());
    assert!(e.contains("http.users.ana.password_hash") && e.contains("not argon2id"), "{e}");

    crate::assert_cli_error(&hash_of("short\n"), "fewer than 12 characters");
}
