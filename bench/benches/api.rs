//! The enqueue endpoints over real HTTP: the router served on a loopback
//! socket, `reqwest` clients on keep-alive connections, a real Redis; the
//! client, the server and Redis share the machine's two cores.
//! - single: 32 callers each POST one job at a time, 20,000 in all;
//! - bulk: 4 callers POST 1000 jobs per request, 100,000 in all.
//!
//! Prints jobs per second for three runs of each. Run:
//! `cargo bench -p bench --bench api`.

use runner::api::{ApiState, app, auth::Tokens};
use runner::queue::Connection;
use std::sync::Arc;
use std::time::Instant;

const TOKEN: &str = "bench-token-0123456789";

async fn single(base: &str, http: &reqwest::Client, total: usize, callers: usize) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let (http, url) = (http.clone(), format!("{base}/api/v1/queues/single/jobs"));
            tokio::spawn(async move {
                for i in 0..total / callers {
                    let body = format!(r#"{{"type":"email","payload":{{"to":"user{c}-{i}@example.com"}}}}"#);
                    let r = http
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/json")
                        .body(body)
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
    total as f64 / started.elapsed().as_secs_f64()
}

async fn bulk(base: &str, http: &reqwest::Client, total: usize, callers: usize) -> f64 {
    let per_request = 1000;
    let body: String = format!(
        r#"{{"jobs":[{}]}}"#,
        vec![r#"{"type":"email","payload":{"to":"someone@example.com"}}"#; per_request].join(",")
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (http, url, body) = (http.clone(), format!("{base}/api/v1/queues/bulk/jobs/bulk"), body.clone());
            tokio::spawn(async move {
                for _ in 0..total / callers / per_request {
                    let r = http
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/json")
                        .body(body.clone())
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
    total as f64 / started.elapsed().as_secs_f64()
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
