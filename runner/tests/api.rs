//! The HTTP API through `app()` (no socket) against a real Redis: every
//! route, the JSON error shape for bad input, authentication, and the
//! OpenAPI document kept true to the router in both directions.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use jobrunner_queue::Connection;
use runner::server::app;
use runner::web::{ApiState, auth::Tokens};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

const ADMIN: &str = "admin-token-0123456789";
const READER: &str = "reader-token-0123456789";

struct Api {
    router: axum::Router,
    _redis: testkit::redis::RedisServer,
}

async fn api_with(tokens: Tokens, max_body: usize) -> Api {
    let redis = testkit::redis::RedisServer::start();
    let state = Arc::new(ApiState {
        connection: Connection::connect(&redis.url()).await.unwrap(),
        registry: None,
        metrics: Arc::new(runner::metrics::Metrics::new()),
        consumed: vec!["default".into()],
        tokens: Arc::new(tokens),
        bull: Default::default(),
        redis_policy: Default::default(),
        web: Default::default(),
    });
    Api { router: app(state, max_body), _redis: redis }
}

async fn api() -> Api {
    api_with(Tokens::default(), 1 << 20).await
}

impl Api {
    async fn call(&self, method: Method, uri: &str, body: Option<&str>, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Body::from(body.unwrap_or("").to_string())).unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None, None).await
    }

    async fn post(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        self.call(Method::POST, uri, Some(body), None).await
    }
}

fn assert_error(r: &(StatusCode, Value), status: StatusCode, contains: &str) {
    assert_eq!(r.0, status, "{}", r.1);
    let detail = r.1["detail"].as_str().unwrap_or_else(|| panic!("a JSON error body: {}", r.1));
    assert!(r.1["error"].is_string());
    assert!(detail.contains(contains), "`{detail}` should mention `{contains}`");
}

/// `GET /queues/{q}` shows the queue's policy in effect with each value's
/// source, and a job's record the options in effect with theirs; an
/// unknown queue is a 404.
#[tokio::test]
async fn a_queue_and_a_job_show_their_policy_and_where_each_value_came_from() {
    let api = api().await;
    let q = jobrunner_queue::Queue::new(Connection::connect(&api._redis.url()).await.unwrap(), "default").unwrap();
    let policy =
        jobrunner_queue::QueuePolicy { attempts: Some(5), rate: Some("20/1m".parse().unwrap()), ..Default::default() };
    q.set_policy(&policy).await.unwrap();
    let (status, view) = api.get("/api/v1/queues/default").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["policy"]["attempts"], json!({"value": 5, "source": "config"}));
    assert_eq!(view["policy"]["rate"], json!({"value": {"max": 20, "window_ms": 60000}, "source": "config"}));
    assert_eq!(view["policy"]["priority"], json!({"value": 0, "source": "default"}));

    let (status, made) =
        api.post("/api/v1/queues/default/jobs", r#"{"type":"noop","payload":{},"options":{"priority":3}}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_str().unwrap();
    let (_, all) = api.get("/api/v1/queues").await;
    assert_eq!(all[0]["policy"]["attempts"]["value"], 5, "{all}");
    let (_, job) = api.get(&format!("/api/v1/queues/default/jobs/{id}")).await;
    assert_eq!(job["options"], json!({"priority": 3}), "only what the producer set");
    assert_eq!(job["effective"]["priority"], json!({"value": 3, "source": "producer"}));
    assert_eq!(job["effective"]["attempts"], json!({"value": 5, "source": "config"}));
    assert_eq!(job["effective"]["timeout_ms"], json!({"value": null, "source": "default"}));

    assert_error(&api.get("/api/v1/queues/nowhere").await, StatusCode::NOT_FOUND, "nowhere");
    assert_error(&api.get("/api/v1/queues/bad%20name").await, StatusCode::BAD_REQUEST, "queue");
}

/// `?wait=` answers once the job finishes (here, completed by a worker the
/// test plays), or at its timeout with where the job stands; a bad wait is a
/// 400. The events stream sends each event with its id, name and fields.
#[tokio::test]
async fn a_producer_waits_for_its_job_and_follows_the_events() {
    use jobrunner_queue::{Completion, Consumer, Keep, Queue};
    use std::time::Duration;
    let a = api().await;
    let q = Queue::new(Connection::connect(&a._redis.url()).await.unwrap(), "emails").unwrap();

    // The events stream, opened before anything happens.
    let req = Request::builder().uri("/api/v1/queues/emails/events").body(Body::empty()).unwrap();
    let res = a.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut events = res.into_body();

    a.post("/api/v1/queues/emails/jobs", r#"{"type":"email","payload":{},"id":"w1"}"#).await;
    let worker = async {
        let job = Consumer::new(q.clone()).next(1, Duration::from_secs(30), Duration::from_secs(30)).await.unwrap();
        let done = Completion { result: Some(r#"{"sent":1}"#.into()), ..Completion::of(&job[0]) };
        q.complete(&[done], Keep { count: None, age_ms: None }).await.unwrap();
    };
    let (r, ()) = tokio::join!(a.get("/api/v1/queues/emails/jobs/w1?wait=30s"), worker);
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!((r.1["state"].as_str(), &r.1["result"]), (Some("completed"), &json!({"sent": 1})));

    // The stream told of both: added, then completed, each naming the job.
    let mut text = String::new();
    while !text.contains("event: completed") {
        let frame = events.frame().await.expect("the stream goes on").unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    let added = text.find("event: added").expect("the added event");
    assert!(added < text.find("event: completed").unwrap(), "{text}");
    assert!(text.contains(r#""id":"w1""#), "each event names its job: {text}");
    assert!(text.lines().any(|l| l.starts_with("id: ")), "each event has its stream id: {text}");

    // At the timeout: where it stands.
    a.post("/api/v1/queues/emails/jobs", r#"{"type":"email","payload":{},"id":"w2"}"#).await;
    let r = a.get("/api/v1/queues/emails/jobs/w2?wait=100ms").await;
    assert_eq!((r.0, r.1["state"].as_str()), (StatusCode::OK, Some("waiting")));

    assert_error(&a.get("/api/v1/queues/emails/jobs/w2?wait=soon").await, StatusCode::BAD_REQUEST, "wait");
    assert_error(&a.get("/api/v1/queues/emails/jobs/w2?wait=1h").await, StatusCode::BAD_REQUEST, "longer than");
    assert_error(&a.get("/api/v1/queues/emails/jobs/nope?wait=1s").await, StatusCode::NOT_FOUND, "nope");
    assert_error(&a.get("/api/v1/queues/emails/events?after=yesterday").await, StatusCode::BAD_REQUEST, "event id");
}

#[tokio::test]
async fn jobs_can_be_enqueued_listed_and_operated() {
    let a = api().await;
    let (s, v) =
        a.post("/api/v1/queues/emails/jobs", r#"{"type":"email","payload":{"to":"a@example.com"},"id":"e1"}"#).await;
    assert_eq!((s, v["id"].as_str(), v["created"].as_bool()), (StatusCode::CREATED, Some("e1"), Some(true)));
    let (s, v) = a.post("/api/v1/queues/emails/jobs", r#"{"type":"email","payload":{},"id":"e1"}"#).await;
    assert_eq!((s, v["created"].as_bool()), (StatusCode::OK, Some(false)), "an existing id changes nothing");
    let (s, v) = a
        .post(
            "/api/v1/queues/emails/jobs/bulk",
            r#"{"jobs":[{"type":"email","payload":1},{"type":"email","payload":2,"options":{"delay_ms":3600000}}]}"#,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["jobs"].as_array().unwrap().len(), 2);
    let delayed = v["jobs"][1]["id"].as_str().unwrap().to_string();

    let (_, queues) = a.get("/api/v1/queues").await;
    assert_eq!(queues[0]["name"], "emails");
    assert_eq!((queues[0]["waiting"].as_u64(), queues[0]["delayed"].as_u64()), (Some(2), Some(1)));
    let (_, page) = a.get("/api/v1/queues/emails/jobs?state=waiting&limit=1").await;
    assert_eq!(page["jobs"][0]["id"], "e1");
    assert_eq!(page["next_cursor"], 1);
    let (s, job) = a.get("/api/v1/queues/emails/jobs/e1").await;
    assert_eq!(
        (s, job["state"].as_str(), job["payload"]["to"].as_str()),
        (StatusCode::OK, Some("waiting"), Some("a@example.com"))
    );

    assert_error(&a.post("/api/v1/queues/emails/jobs/e1/retry", "").await, StatusCode::CONFLICT, "only a failed job");
    assert_error(&a.post("/api/v1/queues/emails/jobs/nope/retry", "").await, StatusCode::NOT_FOUND, "no job `nope`");
    let (s, v) = a.post(&format!("/api/v1/queues/emails/jobs/{delayed}/promote"), "").await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("waiting")));
    let (s, v) = a.post("/api/v1/queues/emails/pause", "").await;
    assert_eq!((s, v["paused"].as_bool()), (StatusCode::OK, Some(true)));
    assert_eq!(a.get("/api/v1/queues").await.1[0]["paused"], true);
    a.post("/api/v1/queues/emails/resume", "").await;
    let (s, v) = a.call(Method::DELETE, "/api/v1/queues/emails/jobs/e1", None, None).await;
    assert_eq!((s, v["removed_from"].as_str()), (StatusCode::OK, Some("waiting")));
    assert_error(&a.get("/api/v1/queues/emails/jobs/e1").await, StatusCode::NOT_FOUND, "no job `e1`");
    assert_eq!(a.post("/api/v1/queues/emails/retry-failed", "").await.1["retried"], 0);
    assert_eq!(a.post("/api/v1/queues/emails/clean", r#"{"state":"completed"}"#).await.1["removed"], 0);
}

#[tokio::test]
async fn bad_input_gets_a_clear_json_error() {
    let a = api_with(Tokens::default(), 2048).await;
    let enqueue = "/api/v1/queues/q/jobs";
    assert_error(&a.post(enqueue, "{not json").await, StatusCode::BAD_REQUEST, "");
    assert_error(
        &a.post(enqueue, r#"{"type":"t","payload":{},"options":{"atempts":3}}"#).await,
        StatusCode::BAD_REQUEST,
        "atempts",
    );
    assert_error(
        &a.post(enqueue, r#"{"type":"t","payload":{},"options":{"delay_ms":-5}}"#).await,
        StatusCode::BAD_REQUEST,
        "delay_ms",
    );
    assert_error(
        &a.post(enqueue, r#"{"type":"t","payload":{},"options":{"attempts":0}}"#).await,
        StatusCode::BAD_REQUEST,
        "attempts must be at least 1",
    );
    assert_error(&a.post(enqueue, r#"{"payload":{}}"#).await, StatusCode::BAD_REQUEST, "type");
    assert_error(
        &a.post("/api/v1/queues/a%7Bb%7D/jobs", r#"{"type":"t","payload":{}}"#).await,
        StatusCode::BAD_REQUEST,
        "queue name",
    );
    assert_error(
        &a.post(enqueue, r#"{"type":"t","payload":{},"id":"has space"}"#).await,
        StatusCode::BAD_REQUEST,
        "job id",
    );
    let big = format!(r#"{{"type":"t","payload":"{}"}}"#, "x".repeat(4096));
    assert_error(&a.post(enqueue, &big).await, StatusCode::PAYLOAD_TOO_LARGE, "");
    assert_error(&a.get("/api/v1/queues/q/jobs?state=lost").await, StatusCode::BAD_REQUEST, "state `lost`");
    assert_error(&a.get("/api/v1/queues/q/jobs?limit=0").await, StatusCode::BAD_REQUEST, "limit");
    // A cursor at the end of the range is an empty page, not an overflow.
    let (s, v) = a.get(&format!("/api/v1/queues/q/jobs?cursor={}", u64::MAX)).await;
    assert_eq!((s, v["jobs"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
    assert_error(
        &a.post("/api/v1/queues/q/clean", r#"{"state":"waiting"}"#).await,
        StatusCode::BAD_REQUEST,
        "completed or failed",
    );
    assert_error(&a.get("/api/v1/nowhere").await, StatusCode::NOT_FOUND, "no such route");
    let many = format!(r#"{{"jobs":[{}]}}"#, vec![r#"{"type":"t","payload":0}"#; 10_001].join(","));
    let wide = api_with(Tokens::default(), 1 << 20).await;
    assert_error(&wide.post("/api/v1/queues/q/jobs/bulk", &many).await, StatusCode::PAYLOAD_TOO_LARGE, "at most 10000");
}

/// Flows through the API: added whole (or refused whole, saying where),
/// a parent's children paged with their outcomes once the runner's relay
/// has told it, the counts and links on both records, and removal.
#[tokio::test]
async fn flows_are_added_paged_and_removed() {
    let api = api().await;
    let children: Vec<Value> =
        (0..5).map(|i| json!({"queue": "kids", "id": format!("k{i}"), "type": "noop", "payload": {"i": i}})).collect();
    let flow = json!({"queue": "parents", "id": "p1", "type": "report", "payload": {}, "children": children});
    let r = api.post("/api/v1/flows", &flow.to_string()).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!((r.1["id"].as_str(), r.1["jobs"].as_u64(), r.1["created"].as_bool()), (Some("p1"), Some(6), Some(true)));
    let again = api.post("/api/v1/flows", &flow.to_string()).await;
    assert_eq!((again.0, again.1["created"].as_bool()), (StatusCode::OK, Some(false)));

    let parent = api.get("/api/v1/queues/parents/jobs/p1").await;
    assert_eq!(parent.1["state"], "waiting_children");
    assert_eq!((parent.1["children"]["total"].as_u64(), parent.1["children"]["pending"].as_i64()), (Some(5), Some(5)));
    let child = api.get("/api/v1/queues/kids/jobs/k3").await;
    assert_eq!(child.1["parent"], json!({"queue": "parents", "id": "p1"}));
    let queue = api.get("/api/v1/queues/parents").await;
    assert_eq!(queue.1["waiting_children"].as_u64(), Some(1), "{}", queue.1);

    // Two children complete, and the relay tells the parent.
    let conn = Connection::connect(&api._redis.url()).await.unwrap();
    let kids = jobrunner_queue::Queue::new(conn, "kids").unwrap();
    let leased = kids.fetch(2, std::time::Duration::from_secs(30)).await.unwrap().jobs;
    let done: Vec<_> = leased
        .iter()
        .map(|l| jobrunner_queue::Completion {
            result: Some(r#"{"sent":true}"#.into()),
            ..jobrunner_queue::Completion::of(l)
        })
        .collect();
    kids.complete(&done, jobrunner_queue::DEFAULTS.keep_completed).await.unwrap();
    kids.relay_outcomes().await.unwrap();
    let page = api.get("/api/v1/queues/parents/jobs/p1/children?from=1&limit=3").await;
    assert_eq!(page.0, StatusCode::OK, "{}", page.1);
    assert_eq!(page.1["counts"]["completed"].as_u64(), Some(2));
    assert_eq!(
        page.1["children"][0],
        json!({"number": 1, "queue": "kids", "id": "k0", "state": "completed", "value": {"sent": true}})
    );
    assert_eq!(page.1["children"][2]["state"], "pending");
    assert_eq!(page.1["next"].as_u64(), Some(4));
    let rest = api.get("/api/v1/queues/parents/jobs/p1/children?from=4&limit=3").await;
    assert_eq!((rest.1["children"].as_array().map(Vec::len), &rest.1["next"]), (Some(2), &Value::Null));

    // Bad input: a JSON error saying what is wrong, nothing written.
    let bad = json!({"queue": "parents", "type": "report", "children": [{"queue": "kids", "type": "x", "options": {"attempts": 0}}]});
    assert_error(&api.post("/api/v1/flows", &bad.to_string()).await, StatusCode::BAD_REQUEST, "children[0]");
    assert_error(
        &api.post("/api/v1/flows", r#"{"queue": "parents", "type": "r", "kids": []}"#).await,
        StatusCode::BAD_REQUEST,
        "unknown field",
    );
    assert_error(&api.get("/api/v1/queues/kids/jobs/k0/children").await, StatusCode::NOT_FOUND, "no parent");
    assert_error(
        &api.get("/api/v1/queues/parents/jobs/p1/children?limit=5000").await,
        StatusCode::BAD_REQUEST,
        "limit",
    );

    let removed = api.call(Method::DELETE, "/api/v1/queues/parents/flows/p1", None, None).await;
    assert_eq!((removed.0, removed.1["removed"].as_u64()), (StatusCode::OK, Some(6)), "{}", removed.1);
    assert_eq!(api.get("/api/v1/queues/kids/jobs/k4").await.0, StatusCode::NOT_FOUND);
    assert_error(
        &api.call(Method::DELETE, "/api/v1/queues/parents/flows/p1", None, None).await,
        StatusCode::NOT_FOUND,
        "no job",
    );
}

#[tokio::test]
async fn tokens_are_required_and_read_only_tokens_only_read() {
    let a = api_with(Tokens::new(Some(ADMIN), Some(READER)), 1 << 20).await;
    assert_eq!(a.get("/health").await.0, StatusCode::OK, "liveness needs no token");
    assert_error(&a.get("/api/v1/queues").await, StatusCode::UNAUTHORIZED, "Bearer");
    assert_error(&a.call(Method::GET, "/api/v1/queues", None, Some("wrong-token")).await, StatusCode::UNAUTHORIZED, "");
    assert_error(&a.get("/metrics").await, StatusCode::UNAUTHORIZED, "");
    // A probe cannot send a token: `/ready` gives it the verdict alone,
    // and the details to a caller with one.
    let (s, ready) = a.get("/ready").await;
    assert_eq!((s, ready), (StatusCode::OK, json!({"ready": true})));
    let (s, ready) = a.call(Method::GET, "/ready", None, Some(READER)).await;
    assert_eq!((s, ready["redis"].as_bool()), (StatusCode::OK, Some(true)), "{ready}");
    assert!(ready["queues"].is_object(), "{ready}");
    assert_eq!(a.call(Method::GET, "/api/v1/queues", None, Some(READER)).await.0, StatusCode::OK);
    let body = r#"{"type":"t","payload":{}}"#;
    assert_error(
        &a.call(Method::POST, "/api/v1/queues/q/jobs", Some(body), Some(READER)).await,
        StatusCode::FORBIDDEN,
        "only read",
    );
    assert_eq!(a.call(Method::POST, "/api/v1/queues/q/jobs", Some(body), Some(ADMIN)).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn schedules_health_readiness_and_metrics() {
    let a = api().await;
    let body = r#"{"type":"cache-warmup","payload":{"entries":[]},"timing":{"kind":"cron","expr":"0 3 * * *","tz":"Europe/Paris"}}"#;
    let (s, v) = a.call(Method::PUT, "/api/v1/schedules/nightly?queue=pages", Some(body), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["schedule"]["next_run_ms"].as_u64().unwrap() > 0);
    assert_eq!(a.get("/api/v1/schedules").await.1[0]["schedule"]["id"], "nightly");
    assert_eq!(a.get("/api/v1/schedules/nightly?queue=pages").await.0, StatusCode::OK);
    let bad = r#"{"type":"t","timing":{"kind":"cron","expr":"0 3 * *","tz":"UTC"}}"#;
    assert_error(
        &a.call(Method::PUT, "/api/v1/schedules/x?queue=pages", Some(bad), None).await,
        StatusCode::BAD_REQUEST,
        "4 fields",
    );
    assert_eq!(a.call(Method::DELETE, "/api/v1/schedules/nightly?queue=pages", None, None).await.0, StatusCode::OK);
    assert_error(&a.get("/api/v1/schedules/nightly?queue=pages").await, StatusCode::NOT_FOUND, "no schedule");

    assert_eq!(a.get("/health").await.1["status"], "ok");
    let (s, ready) = a.get("/ready").await;
    assert_eq!((s, ready["redis"].as_bool()), (StatusCode::OK, Some(true)));
    assert!(ready["queues"]["default"].is_object());
    let (s, text) = a.get("/metrics").await;
    assert_eq!(s, StatusCode::OK);
    assert!(text.as_str().unwrap().contains("jobrunner_redis_errors_total"));

    // The signals to scale on: a queue's waiting jobs and the age of the
    // job next in line, read from Redis at scrape.
    let old = r#"{"type":"t","payload":{},"options":{"delay_ms":0}}"#;
    assert_eq!(a.call(Method::POST, "/api/v1/queues/backlog/jobs", Some(old), None).await.0, StatusCode::CREATED);
    let value = |text: &str, name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let latency = r#"jobrunner_queue_latency_seconds{backend="native",queue="backlog"}"#;
    // Nothing consumes the queue: the age grows with the clock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, text) = a.get("/metrics").await;
        let text = text.as_str().unwrap();
        assert_eq!(value(text, r#"jobrunner_queue_jobs{backend="native",queue="backlog",state="waiting"}"#), 1.0);
        let age = value(text, latency);
        assert!((0.0..60.0).contains(&age), "{age}");
        if age >= 1.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the waiting job's age stayed {age}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(a.get("/api/v1/plugins").await.1, json!([]));
    assert_eq!(a.get("/api/v1/runners").await.1, json!([]));
}

/// The routes as `api/mod.rs` (under `/api/v1`) and `server.rs` (the
/// probes) declare them: (method, path).
fn declared_routes() -> Vec<(String, String)> {
    let source = [include_str!("../src/api/mod.rs"), include_str!("../src/server.rs")].concat();
    let mut out = Vec::new();
    for line in source.lines().filter(|l| l.contains(".route(\"")) {
        let path = line.split('"').nth(1).unwrap();
        let full =
            if ["/health", "/ready", "/metrics"].contains(&path) { path.to_string() } else { format!("/api/v1{path}") };
        for m in ["get", "post", "put", "delete"] {
            if line.contains(&format!("{m}(")) {
                out.push((m.to_string(), full.clone()));
            }
        }
    }
    out.sort();
    out
}

fn documented_routes() -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(runner::api::system::OPENAPI).unwrap();
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for m in ops.as_object().unwrap().keys() {
            out.push((m.clone(), path.clone()));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn the_openapi_document_matches_the_router() {
    assert_eq!(declared_routes(), documented_routes(), "api/mod.rs, server.rs and api/openapi.json disagree");
    // And every documented operation reaches a handler (not the fallback).
    let a = api().await;
    for (m, path) in documented_routes() {
        let uri = path.replace("{queue}", "q").replace("{id}", "x");
        let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
        if path.ends_with("/events") {
            // A stream that never ends: its status says it reached its handler.
            let req = Request::builder().method(method).uri(&uri).body(Body::empty()).unwrap();
            let res = a.router.clone().oneshot(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{m} {path}");
            continue;
        }
        let (s, v) = a.call(method, &uri, Some("{}"), None).await;
        assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
        assert!(
            !(s == StatusCode::NOT_FOUND && v["detail"].as_str().unwrap_or("").contains("no such route")),
            "{m} {path}"
        );
    }
    let (s, doc) = a.get("/api/v1/openapi.json").await;
    assert_eq!((s, doc["openapi"].as_str()), (StatusCode::OK, Some("3.0.3")));
}
