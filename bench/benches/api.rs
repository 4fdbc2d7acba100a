//! The enqueue endpoints over real HTTP: the router served on a loopback
//! socket, `reqwest` clients on keep-alive connections, a real Redis; the
//! client, the server and Redis share the machine's two cores.
//! - single: 32 callers each POST one job at a time, 20,000 in all;
//! - bulk: 4 callers POST 1000 jobs per request, 100,000 in all.
//!
//! Prints jobs per second for three runs of each. Run:
//! `cargo bench -p bench --bench api`.

use jobrunner_queue::Connection;
use runner::server::app;
use runner::web::{ApiState, auth::Tokens};
use std::sync::Arc;
use std::time::Instant;

const TOKEN: &str = "bench-token-0123456789";

/// `callers` tasks each POST `per_caller` bodies (made by `body(caller, i)`)
/// to `url`, one at a time; returns the time it took.
async fn post_many(
    http: &reqwest::Client,
    url: String,
    callers: usize,
    per_caller: usize,
    body: fn(usize, usize) -> String,
) -> std::time::Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                for i in 0..per_caller {
                    let r = http
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/json")
                        .body(body(c, i))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    r.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

async fn single(base: &str, http: &reqwest::Client, total: usize, callers: usize) -> f64 {
    let body = |c: usize, i: usize| format!(r#"{{"type":"email","payload":{{"to":"user{c}-{i}@example.com"}}}}"#);
    let took = post_many(http, format!("{base}/api/v1/queues/single/jobs"), callers, total / callers, body).await;
    total as f64 / took.as_secs_f64()
}

/// Jobs in one bulk request.
const PER_REQUEST: usize = 1000;

async fn bulk(base: &str, http: &reqwest::Client, total: usize, callers: usize) -> f64 {
    let body = |_: usize, _: usize| {
        format!(
            r#"{{"jobs":[{}]}}"#,
            vec![r#"{"type":"email","payload":{"to":"someone@example.com"}}"#; PER_REQUEST].join(",")
        )
    };
    let url = format!("{base}/api/v1/queues/bulk/jobs/bulk");
    let took = post_many(http, url, callers, total / callers / PER_REQUEST, body).await;
    total as f64 / took.as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let redis = testkit::redis::RedisServer::start();
    rt.block_on(async {
        let state = Arc::new(ApiState {
            connection: Connection::connect(&redis.url()).await.unwrap(),
            registry: None,
            metrics: Arc::new(runner::metrics::Metrics::new()),
            consumed: vec![],
            tokens: Arc::new(Tokens::new(Some(TOKEN), None)),
            bull: Default::default(),
            redis_policy: Default::default(),
            web: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app(state, 64 << 20)).await.unwrap() });
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        for run in 1..=3 {
            let s = single(&base, &http, 20_000, 32).await;
            let b = bulk(&base, &http, 100_000, 4).await;
            println!("run {run}: single-job endpoint {:.0} jobs/s; bulk endpoint {:.0} jobs/s", s, b);
        }
    });
}
