//! Dashboard pages with one million jobs in a queue: the overview, the
//! queue's first page of waiting jobs, and a page 900,000 jobs deep, each
//! rendered through the real router against a real Redis. Every listing is
//! a page of a sorted set, so the depth should not matter.
//!
//! Run: `cargo bench -p bench --bench dashboard`.

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use jobrunner_queue::{Connection, JobOptions, NewJob, Queue};
use runner::server::app;
use runner::web::{ApiState, auth::Tokens};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const JOBS: usize = 1_000_000;

fn dashboard(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let redis = testkit::redis::RedisServer::start();
    let connection = rt.block_on(Connection::connect(&redis.url())).unwrap();
    let q = Queue::new(connection.clone(), "big").unwrap();
    rt.block_on(async {
        for chunk in 0..(JOBS / 100_000) {
            let jobs = (0..100_000)
                .map(|i| NewJob {
                    id: Some(format!("job-{:07}", chunk * 100_000 + i)),
                    job_type: "email".into(),
                    payload: r#"{"to":"someone@example.com","template":"verify_email"}"#.into(),
                    options: JobOptions::default(),
                })
                .collect();
            q.enqueue_bulk(jobs).await.unwrap();
        }
    });
    assert_eq!(rt.block_on(q.counts()).unwrap().waiting, JOBS as u64);
    let state = Arc::new(ApiState {
        connection,
        registry: None,
        metrics: Arc::new(runner::metrics::Metrics::new()),
        consumed: vec!["big".into()],
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
        ("queue_first_page", "/dashboard/queues/big?state=waiting"),
        ("queue_page_900k_deep", "/dashboard/queues/big?state=waiting&cursor=900000"),
        ("job", "/dashboard/queues/big/jobs/job-0500000"),
    ] {
        g.bench_function(name, |b| b.to_async(&rt).iter(|| page(uri)));
    }
    g.finish();
}

criterion_group!(benches, dashboard);
criterion_main!(benches);
