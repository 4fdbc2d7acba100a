//! Dashboard pages with one million jobs waiting in a queue, 100,000
//! completed (each with its run) and 10,000 failed, and a runner's
//! heartbeat with its plugin's figures: every page, rendered through the
//! real router against a real Redis. Every listing is a page of a sorted
//! set, so the depth should not matter; a filtered listing reads at most
//! 2,000 jobs (the case measured matches none, so it reads them all); the
//! charts read each queue's bounded `stats` hash. The target (issue 34):
//! every page under 50 ms.
//!
//! Run: `cargo bench -p bench --bench dashboard`.

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use jobrunner_queue::plugin_stats::{Ended, PluginStats};
use jobrunner_queue::runners::{PluginBrief, RunnerInfo, RunningJob};
use jobrunner_queue::{Completion, Connection, Failure, JobOptions, NewJob, Queue, RunMark};
use runner::server::app;
use runner::web::{ApiState, auth::Tokens};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const JOBS: usize = 1_000_000;
const COMPLETED: usize = 100_000;
const FAILED: usize = 10_000;

fn dashboard(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let redis = testkit::redis::RedisServer::start();
    let connection = rt.block_on(Connection::connect(&redis.url())).unwrap();
    let q = Queue::new(connection.clone(), "big").unwrap();
    rt.block_on(async {
        // In bulks of the most one call takes (`MAX_BULK`).
        let bulk = jobrunner_queue::MAX_BULK;
        for chunk in 0..(JOBS / bulk) {
            let jobs = (0..bulk)
                .map(|i| NewJob {
                    id: Some(format!("job-{:07}", chunk * bulk + i)),
                    job_type: "email".into(),
                    payload: r#"{"to":"someone@example.com","template":"verify_email"}"#.into(),
                    options: JobOptions::default(),
                })
                .collect();
            q.enqueue_bulk(jobs).await.unwrap();
        }
    });
    // Finished jobs: leased from a queue of their own (the big one stays
    // at a million waiting), completed in batches with their runs, and
    // some failed for good.
    let done = Queue::new(connection.clone(), "done").unwrap();
    rt.block_on(async {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let options = JobOptions { attempts: Some(1), ..Default::default() };
        let keep = jobrunner_queue::Keep { count: None, age_ms: None };
        for chunk in 0..((COMPLETED + FAILED) / 1_000) {
            let jobs = (0..1_000)
                .map(|i| NewJob {
                    id: Some(format!("done-{:06}", chunk * 1_000 + i)),
                    job_type: "email".into(),
                    payload: r#"{"to":"someone@example.com","template":"verify_email"}"#.into(),
                    options: options.clone(),
                })
                .collect();
            done.enqueue_bulk(jobs).await.unwrap();
            let leased = done.fetch(1_000, Duration::from_secs(60)).await.unwrap().jobs;
            let run = RunMark::new(now - 40, "bench:1");
            if chunk * 1_000 < COMPLETED {
                let acks: Vec<_> =
                    leased.iter().map(|l| Completion { run: Some(run.clone()), ..Completion::of(l) }).collect();
                done.complete(&acks, keep).await.unwrap();
            } else {
                for l in &leased {
                    let failure = Failure::Permanent("mailbox full".into());
                    done.fail_run(&l.id, &l.token, &failure, None, None, Some(&run)).await.unwrap();
                }
            }
        }
        // A runner's heartbeat, with its plugin's figures and 200 running jobs.
        let mut stats = PluginStats { memory_cap: 64 << 20, ..Default::default() };
        for i in 0..10_000u64 {
            stats.record(
                Ended::Completed,
                Duration::from_micros(300 + i % 5_000),
                Some(Duration::from_micros(90)),
                2 << 20,
                now,
            );
        }
        let mut info = RunnerInfo {
            id: "bench:1".into(),
            hostname: "bench".into(),
            pid: 1,
            queues: vec!["big".into(), "done".into()],
            plugins: vec![PluginBrief {
                name: "email".into(),
                version: "1.0.0".into(),
                job_types: vec!["email".into()],
                stats,
            }],
            running: (0..200)
                .map(|i| RunningJob {
                    queue: "big".into(),
                    id: format!("job-{i:07}"),
                    job_type: "email".into(),
                    started_at_ms: now,
                })
                .collect(),
            ..Default::default()
        };
        jobrunner_queue::runners::beat(&connection, &mut info).await.unwrap();
    });
    assert_eq!(rt.block_on(q.counts()).unwrap().waiting, JOBS as u64);
    let finished = rt.block_on(done.counts()).unwrap();
    assert_eq!((finished.completed, finished.failed), (COMPLETED as u64, FAILED as u64));
    let state = Arc::new(ApiState {
        connection,
        registry: None,
        metrics: Arc::new(runner::metrics::Metrics::new()),
        consumed: vec!["big".into(), "done".into()],
        tokens: Arc::new(Tokens::default()),
        bull: Default::default(),
        redis_policy: Default::default(),
        web: Default::default(),
    });
    let router = app(state, 1 << 20);
    let page = |uri: &'static str| {
        let router = router.clone();
        async move {
            let res = router.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
            assert!(res.status().is_success(), "{uri}: {}", res.status());
            res.into_body().collect().await.unwrap().to_bytes().len()
        }
    };
    let mut g = c.benchmark_group("dashboard_1m_jobs");
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(5));
    for (name, uri) in [
        ("overview", "/dashboard"),
        ("overview_7_days", "/dashboard?span=week"),
        ("queue_first_page", "/dashboard/queues/big?state=waiting"),
        ("queue_page_900k_deep", "/dashboard/queues/big?state=waiting&cursor=900000"),
        ("queue_completed", "/dashboard/queues/done?state=completed"),
        ("queue_filtered_2000_read", "/dashboard/queues/big?state=waiting&field=template&value=none"),
        ("job", "/dashboard/queues/big/jobs/job-0500000"),
        ("job_completed", "/dashboard/queues/done/jobs/done-050000"),
        ("busy", "/dashboard/busy"),
        ("plugins", "/dashboard/plugins"),
        ("redis", "/dashboard/redis"),
    ] {
        g.bench_function(name, |b| b.to_async(&rt).iter(|| page(uri)));
    }
    g.finish();
}

criterion_group!(benches, dashboard);
criterion_main!(benches);
