//! Soak: a million jobs through `runner serve` at concurrency 200, fed by a
//! producer that keeps a backlog of about 20,000, as a busy service would.
//!
//! What must hold: the runner's resident memory stays flat once warm (no
//! leak per job), and Redis's memory stays bounded by the retention
//! settings (completed jobs are trimmed as they finish). The samples are
//! printed (run with `--nocapture`) and reported in `docs/reliability.md`.

use crate::serve::{queue, serve_bed};
use jobrunner_queue::{JobOptions, NewJob};
use std::time::{Duration, Instant};

const JOBS: u64 = 1_000_000;
const BACKLOG: u64 = 20_000;
/// Samples are taken every this many jobs done.
const EVERY: u64 = 100_000;

fn used_memory(redis: &testkit::redis::RedisServer) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query(&mut redis.connection()).unwrap();
    info.lines().find_map(|l| l.strip_prefix("used_memory:")).unwrap().trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_jobs_at_concurrency_200_keep_memory_flat() {
    let (redis, _dir, daemon) = serve_bed("[queues.soak]\nconcurrency = 200\n", &[("noop_plugin", "noop.wasm")]);
    let q = queue(&redis.url(), "soak").await;
    let redis_before = used_memory(&redis);
    let started = Instant::now();
    let (mut enqueued, mut next_sample) = (0u64, EVERY);
    // (jobs done, runner RSS, Redis used_memory)
    let mut samples: Vec<(u64, u64, u64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(1500);
    loop {
        let c = q.counts().await.unwrap();
        assert_eq!(c.failed, 0, "no job fails: {c:?}");
        let left = c.waiting + c.active + c.delayed;
        let done = enqueued - left;
        if done >= next_sample {
            samples.push((done, daemon.rss(), used_memory(&redis)));
            next_sample += EVERY;
        }
        if done == JOBS {
            break;
        }
        if left < BACKLOG && enqueued < JOBS {
            let n = (BACKLOG * 2 - left).min(JOBS - enqueued);
            let mut jobs = Vec::with_capacity(n as usize);
            for _ in 0..n {
                jobs.push(NewJob {
                    id: None,
                    job_type: "noop".into(),
                    payload: "{}".into(),
                    options: JobOptions::default(),
                });
            }
            for chunk in jobs.chunks(1000) {
                q.enqueue_bulk(chunk.to_vec()).await.unwrap();
            }
            enqueued += n;
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(Instant::now() < deadline, "the soak stalled: {c:?}, {done} done");
    }
    let seconds = started.elapsed().as_secs_f64();
    let redis_after = used_memory(&redis);
    for (done, rss, mem) in &samples {
        println!(
            "soak: {done:>7} done, runner RSS {:.1} MB, Redis used_memory {:.1} MB",
            *rss as f64 / 1e6,
            *mem as f64 / 1e6
        );
    }
    println!(
        "soak: {JOBS} jobs in {seconds:.0} s ({:.0} jobs/s); Redis {:.1} MB before, {:.1} MB after",
        JOBS as f64 / seconds,
        redis_before as f64 / 1e6,
        redis_after as f64 / 1e6
    );
    // Flat: from the second sample on (the first includes warm-up: pools,
    // caches, the allocator's arenas), the runner grows by under a quarter.
    let warm = samples[1].1;
    let peak = samples.iter().skip(1).map(|s| s.1).max().unwrap();
    assert!(peak <= warm + warm / 4, "the runner's memory grew from {warm} to {peak} bytes");
    // Bounded: once drained, what is left is what retention keeps (1000
    // completed jobs, the capped events stream), a few MB, not a million jobs.
    assert!(redis_after < redis_before + (32 << 20), "Redis kept {} bytes after the soak", redis_after - redis_before);
    let c = q.counts().await.unwrap();
    assert!(c.completed <= 1000, "retention keeps the newest 1000 completed jobs: {c:?}");
}
