//! Three runner hosts and their Redis, each in a network namespace of its
//! own on one bridge (`testkit::netns`), under load:
//! - one runner cut off from Redis mid-job (a partition: its packets
//!   dropped, nothing refused), still able to reach the outside world: it
//!   stops its plugins before their leases run out, the others take its
//!   jobs, nothing is lost, and it rejoins alone when the network heals;
//! - each runner sent SIGTERM and started again in turn: no job lost or
//!   failed, and the dip in throughput;
//! - 50 ms more per round trip and 1% of packets lost between the runners
//!   and Redis: every job completes on its first attempt, no lease is
//!   lost; throughput and latency beside the plain network's.
//!
//! The test reaches Redis over its Unix socket, as a console on Redis's
//! host would, so that no fault between the hosts is in its own way. The
//! figures the tests print (`--nocapture`) are what `docs/reliability.md`
//! reports.

use crate::faults::EventTail;
use crate::serve::{Daemon, install, jobs_as as jobs, started, wait_counts};
use jobrunner_queue::{Connection, Queue, State};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use testkit::netns::Network;

const RUNNERS: [&str; 3] = ["r1", "r2", "r3"];

/// A `redis-server` on host `redis`, on port 6379 of its address and on a
/// Unix socket for the test.
struct HostRedis {
    child: Child,
    socket: PathBuf,
}

impl HostRedis {
    fn start(net: &Network, dir: &Path) -> HostRedis {
        let socket = dir.join("redis.sock");
        let child = net
            .command("redis", "redis-server")
            .args(["--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly"])
            .args(["yes", "--appendfsync", "everysec", "--unixsocketperm", "700", "--dir"])
            .arg(dir)
            .arg("--unixsocket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "redis-server did not come up on {}", socket.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        HostRedis { child, socket }
    }

    fn unix_url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }
}

impl Drop for HostRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The network, its Redis, a folder per runner host with `config` and the
/// hostile fixture, and the test's own queue.
struct Bed {
    redis: HostRedis,
    queue: Queue,
    dirs: Vec<tempfile::TempDir>,
    // Dropped last: the processes in its namespaces go first.
    net: Network,
}

async fn bed(extra_hosts: &[&str], config: &str) -> Option<Bed> {
    if !testkit::netns::available() {
        return None;
    }
    let mut hosts = vec!["redis"];
    hosts.extend(extra_hosts);
    hosts.extend(RUNNERS);
    let net = Network::new(&hosts);
    let redis_dir = tempfile::tempdir().unwrap();
    let redis = HostRedis::start(&net, redis_dir.path());
    let mut dirs = vec![redis_dir];
    for _ in RUNNERS {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("runner.toml"), config).unwrap();
        install(dir.path(), "hostile_plugin", "hostile.wasm");
        dirs.push(dir);
    }
    let queue = Queue::new(Connection::connect(&redis.unix_url()).await.unwrap(), "default").unwrap();
    Some(Bed { redis, queue, dirs, net })
}

impl Bed {
    fn dir(&self, runner: usize) -> &Path {
        self.dirs[runner + 1].path()
    }

    fn start(&self, runner: usize, redis_url: &str) -> Daemon {
        Daemon::start_on(
            &self.net,
            RUNNERS[runner],
            self.dir(runner),
            redis_url,
            &[("RUNNER_LOG", "info,runner::daemon::dispatcher=debug")],
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_cut_off_from_redis_stops_its_jobs_and_rejoins_when_the_network_heals() {
    // Fewer jobs than the runners' 12 slots: the two runners left have
    // slots free to take the cut one's jobs as soon as their leases run out.
    const JOBS: usize = 8;
    let config = "[runner]\nlease = \"4s\"\n[queues.default]\nconcurrency = 4\nattempts = 3\n\
                  [plugins.hostile]\ntimeout = \"60s\"\nallowed_hosts = [\"10.0.0.2:8080\"]\nallowed_networks = [\"10.0.0.2/32\"]\n";
    let Some(bed) = bed(&["api"], config).await else { return };
    // The outside world the plugins reach (an API they call), on a host
    // of its own that the partition does not touch.
    let api = testkit::http::HttpRecorder::start_on(bed.net.listen("api", 8080));
    let url = format!("redis://{}:6379/", bed.net.host("redis").ip);
    let mut daemons: Vec<Daemon> = (0..3).map(|i| bed.start(i, &url)).collect();
    // Each job beats 100 times, 100 ms apart: 10 s of side effects, well
    // past the lease, so that a plugin that went on after its lease ran
    // out would still be beating when another runner took its job.
    let beat = r#"{"url": "http://10.0.0.2:8080/beat", "beats": 100, "every_ms": 100}"#;
    bed.queue.enqueue_bulk(jobs("a", "beat", beat, JOBS)).await.unwrap();
    // Mid-job: every job under way; the runner with the most is cut off.
    let counts = || daemons.iter().map(|d| started(&d.log()).len()).collect::<Vec<_>>();
    testkit::wait_until("every job to start", Duration::from_secs(60), || counts().iter().sum::<usize>() >= JOBS).await;
    let held = counts();
    let v = (0..3).max_by_key(|&i| held[i]).unwrap();
    let name = RUNNERS[v];
    let cut_at = Instant::now();
    bed.net.cut(name, "redis");
    println!("{name} cut off from Redis while it ran {} of the {JOBS} jobs", held[v]);
    // It stops each of its running jobs before the lease runs out.
    daemons[v].wait_log("stopping the job here", Duration::from_secs(30));
    let stopped_after = cut_at.elapsed();
    let c = wait_counts(&bed.queue, "every job, one runner cut off", Duration::from_secs(180), |c| {
        c.completed + c.failed == JOBS as u64
    })
    .await;
    assert_eq!(c.failed, 0, "{c:?}");
    let log = daemons[v].log();
    let stops = log.matches("stopping the job here").count();
    assert_eq!(stops, held[v], "{name} stopped {stops} of its {} jobs:\n{log}", held[v]);
    // Who ran what: each beat names its job and the run that made it. The
    // run cut off beat no more once the next run had begun: each job's
    // runs' beats come one run after another, never interleaved.
    let beats: Vec<(String, String)> = api
        .requests()
        .iter()
        .filter_map(|r| {
            let parts: Vec<&str> = r.path.trim_start_matches("/beat/").split('/').collect();
            (parts.len() == 3).then(|| (parts[0].to_string(), parts[1].to_string()))
        })
        .collect();
    let mut rerun = 0;
    for id in (0..JOBS).map(|i| format!("a-{i:05}")) {
        let r = bed.queue.get(&id).await.unwrap().unwrap_or_else(|| panic!("job {id} is lost"));
        assert_eq!(r.state, State::Completed, "job {id}: {r:?}");
        let mut runs: Vec<&str> = vec![];
        for (_, run) in beats.iter().filter(|(j, _)| *j == id) {
            if runs.last() != Some(&run.as_str()) {
                assert!(!runs.contains(&run.as_str()), "job {id}: run {run} beat again after another run had begun");
                runs.push(run);
            }
        }
        rerun += usize::from(runs.len() > 1);
    }
    assert_eq!(rerun, held[v], "each of the cut-off runner's jobs ran again elsewhere, once");
    println!(
        "{name} stopped its {stops} running jobs {:.1} s after the cut (lease 4 s); they ran again on the other two; all {JOBS} completed, none failed, no attempt overlapped another",
        stopped_after.as_secs_f64()
    );
    // The network heals; the runner, never restarted, takes jobs again.
    bed.net.heal(name, "redis");
    let healed_at = Instant::now();
    assert!(daemons[v].alive(), "{name} exited");
    let before = started(&daemons[v].log()).len();
    bed.queue
        .enqueue_bulk(jobs("b", "beat", r#"{"url": "http://10.0.0.2:8080/beat", "beats": 3, "every_ms": 10}"#, 200))
        .await
        .unwrap();
    testkit::wait_until("the healed runner to take jobs again", Duration::from_secs(120), || {
        started(&daemons[v].log()).len() > before
    })
    .await;
    let rejoined = healed_at.elapsed();
    let c = wait_counts(&bed.queue, "the second batch", Duration::from_secs(120), |c| {
        c.completed + c.failed == JOBS as u64 + 200
    })
    .await;
    assert_eq!(c.failed, 0, "{c:?}");
    println!("healed: {name} took jobs again {:.1} s later, without a restart", rejoined.as_secs_f64());
    for d in &mut daemons {
        d.signal(libc::SIGTERM);
    }
}

/// Completed jobs per second, sampled every `every` until `total` are
/// done: returns the samples (seconds since the start, rate).
async fn sample_rate(q: &Queue, total: u64, every: Duration, timeout: Duration) -> Vec<(f64, f64)> {
    let start = Instant::now();
    let mut last = (start, q.counts().await.unwrap().completed);
    let mut rates = vec![];
    loop {
        tokio::time::sleep(every).await;
        let c = q.counts().await.unwrap();
        let now = Instant::now();
        rates.push((
            now.duration_since(start).as_secs_f64(),
            (c.completed - last.1) as f64 / (now - last.0).as_secs_f64(),
        ));
        last = (now, c.completed);
        if c.completed + c.failed >= total {
            return rates;
        }
        assert!(start.elapsed() < timeout, "timed out: {c:?}");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_and_fails_nothing() {
    const JOBS: u64 = 6000;
    let config = "[runner]\nshutdown_grace = \"10s\"\n[queues.default]\nconcurrency = 8\n";
    let Some(bed) = bed(&[], config).await else { return };
    let url = format!("redis://{}:6379/", bed.net.host("redis").ip);
    let mut daemons: Vec<Option<Daemon>> = (0..3).map(|i| Some(bed.start(i, &url))).collect();
    for chunk in jobs("j", "sleep", r#"{"ms": 40}"#, JOBS as usize).chunks(1000) {
        bed.queue.enqueue_bulk(chunk.to_vec()).await.unwrap();
    }
    let mut tail = EventTail::new();
    // The restarts run beside the sampling.
    let sampler = {
        let q = bed.queue.clone();
        tokio::spawn(async move { sample_rate(&q, JOBS, Duration::from_millis(500), Duration::from_secs(300)).await })
    };
    let t0 = Instant::now();
    wait_counts(&bed.queue, "a steady pace", Duration::from_secs(60), |c| c.completed >= 800).await;
    let mut windows = vec![];
    for i in 0..3 {
        let from = t0.elapsed().as_secs_f64();
        let status = daemons[i].take().unwrap().signal(libc::SIGTERM);
        assert!(status.success(), "runner {} exited {status}", RUNNERS[i]);
        daemons[i] = Some(bed.start(i, &url));
        windows.push((from, t0.elapsed().as_secs_f64()));
        println!("{} restarted in {:.1} s", RUNNERS[i], windows[i].1 - windows[i].0);
        let done = bed.queue.counts().await.unwrap().completed;
        wait_counts(&bed.queue, "progress after a restart", Duration::from_secs(60), |c| c.completed >= done + 300)
            .await;
    }
    let rates = sampler.await.unwrap();
    tail.poll(&bed.queue).await;
    let c = bed.queue.counts().await.unwrap();
    assert_eq!((c.completed, c.failed, c.waiting, c.active), (JOBS, 0, 0, 0), "{c:?}");
    for id in (0..JOBS).map(|i| format!("j-{i:05}")) {
        let r = bed.queue.get(&id).await.unwrap().unwrap_or_else(|| panic!("job {id} is lost"));
        assert_eq!(r.attempts_made, 1, "job {id} spent an attempt on a restart: {r:?}");
        assert_eq!(tail.completed.get(&id), Some(&1), "job {id} completed exactly once");
    }
    // The pace while a runner restarted, against the pace outside those
    // windows (the first and last samples, ramping up and draining, left out).
    let inside = |t: f64| windows.iter().any(|(a, b)| t >= *a && t <= *b + 0.5);
    let body = &rates[1..rates.len().saturating_sub(1)];
    let steady = median(body.iter().filter(|(t, _)| !inside(*t)).map(|(_, r)| *r).collect());
    let during = median(body.iter().filter(|(t, _)| inside(*t)).map(|(_, r)| *r).collect());
    let lowest = body.iter().filter(|(t, _)| inside(*t)).map(|(_, r)| *r).fold(f64::INFINITY, f64::min);
    println!(
        "rolling restart of 3 runners under {JOBS} jobs of 40 ms: all completed, none failed, each once, no attempt spent; \
         {steady:.0} jobs/s steady (median of 0.5 s samples), {during:.0} jobs/s while one restarted (median), lowest {lowest:.0}"
    );
    for d in daemons.iter_mut().flatten() {
        d.signal(libc::SIGTERM);
    }
}

/// What `slow_network` measures of one network.
struct Pace {
    jobs_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Three runners on `url`: a batch of short jobs (throughput), then single
/// jobs at 50 a second (each one's time from enqueue to completion, by
/// the test's and Redis's clocks, one machine's), then jobs longer than
/// the lease, each lease extended over the network four times. Every job
/// must complete on its first attempt, and no runner may lose or give up
/// a lease.
async fn pace_over(bed: &Bed, url: &str, tag: &str) -> Pace {
    const BATCH: usize = 2000;
    const SINGLES: usize = 200;
    let mut daemons: Vec<Daemon> = (0..3).map(|i| bed.start(i, url)).collect();
    let base = bed.queue.counts().await.unwrap().completed;
    let started_at = Instant::now();
    for chunk in jobs(&format!("{tag}b"), "sleep", r#"{"ms": 20}"#, BATCH).chunks(500) {
        bed.queue.enqueue_bulk(chunk.to_vec()).await.unwrap();
    }
    let done =
        wait_counts(&bed.queue, "the batch", Duration::from_secs(300), |c| c.completed >= base + BATCH as u64).await;
    let jobs_per_s = BATCH as f64 / started_at.elapsed().as_secs_f64();
    // Singles, paced by the producer (load, not a wait on the runner).
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    for job in jobs(&format!("{tag}s"), "sleep", r#"{"ms": 20}"#, SINGLES) {
        ticks.tick().await;
        bed.queue.enqueue(job).await.unwrap();
    }
    // Longer than the lease (6 s): each held through four extensions.
    bed.queue.enqueue_bulk(jobs(&format!("{tag}l"), "sleep", r#"{"ms": 8000}"#, 6)).await.unwrap();
    let total = done.completed + (SINGLES + 6) as u64;
    let c = wait_counts(&bed.queue, "the singles and the long jobs", Duration::from_secs(300), |c| {
        c.completed + c.failed >= total
    })
    .await;
    assert_eq!(c.failed, 0, "{c:?}");
    let mut latencies = vec![];
    for (prefix, n) in [("b", BATCH), ("s", SINGLES), ("l", 6)] {
        for id in (0..n).map(|i| format!("{tag}{prefix}-{i:05}")) {
            let r = bed.queue.get(&id).await.unwrap().unwrap();
            assert_eq!((r.state, r.attempts_made), (State::Completed, 1), "job {id}: {r:?}");
            if prefix == "s" {
                latencies.push(r.state_since_or_until.unwrap().saturating_sub(r.created_at) as f64);
            }
        }
    }
    for d in &mut daemons {
        let log = d.log();
        assert!(
            !log.contains("lost the lease") && !log.contains("stopping the job here"),
            "a lease was lost over the {tag} network:\n{log}"
        );
        d.signal(libc::SIGTERM);
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    Pace { jobs_per_s, p50_ms: pct(0.5), p99_ms: pct(0.99) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_lossy_network_completes_every_job_and_keeps_its_leases() {
    // A lease of 6 s, a fifth of the default, so that the long jobs'
    // leases are extended over the slow network several times each.
    let config = "[runner]\nlease = \"6s\"\n[queues.default]\nconcurrency = 20\n";
    let Some(bed) = bed(&[], config).await else { return };
    let plain = pace_over(&bed, &format!("redis://{}:6379/", bed.net.host("redis").ip), "p").await;
    // 25 ms each way through a relay on Redis's host (50 ms more per
    // round trip), and 1% of packets lost each way between each runner
    // and Redis.
    let _relay =
        testkit::netns::DelayRelay::start(&bed.net, "redis", 6380, bed.redis.socket.clone(), Duration::from_millis(25));
    for r in RUNNERS {
        bed.net.lossy(r, "redis", 1);
    }
    let slow = pace_over(&bed, &format!("redis://{}:6380/", bed.net.host("redis").ip), "x").await;
    for (name, p) in [("plain network", &plain), ("50 ms more per round trip, 1% loss each way", &slow)] {
        println!(
            "{name}: 2000 jobs of 20 ms on 3 runners (c20 each) at {:.0} jobs/s; single jobs at 50/s: enqueue to completion p50 {:.0} ms, p99 {:.0} ms; 6 jobs of 8 s under a 6 s lease kept it; every job completed on its first attempt",
            p.jobs_per_s, p.p50_ms, p.p99_ms
        );
    }
}
