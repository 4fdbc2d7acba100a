//! Bad input, generated: proptest throws bodies, queue names, ids and
//! query strings at the HTTP API (against a real Redis), and return values
//! at the host (through a real plugin that returns whatever it is told).
//!
//! What must hold for every input: no panic, no hang, no 5xx; a refusal is
//! a 4xx with a JSON body that says what is wrong; a job the API accepted
//! can be read back (nothing is lost); a guest's return value becomes an
//! outcome, never a crash of the host.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use jobrunner_job::{FaultKind, Outcome};
use jobrunner_queue::Connection;
use proptest::prelude::*;
use runner::server::app;
use runner::web::{ApiState, auth::Tokens};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

/// One Redis and one router for all the cases of this file.
struct Api {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    _redis: testkit::redis::RedisServer,
}

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let redis = testkit::redis::RedisServer::start();
        let connection = rt.block_on(Connection::connect(&redis.url())).unwrap();
        let state = Arc::new(ApiState {
            connection,
            registry: None,
            metrics: Arc::new(runner::metrics::Metrics::new()),
            consumed: vec!["default".into()],
            tokens: Arc::new(Tokens::default()),
            bull: Default::default(),
            redis_policy: Default::default(),
            web: Default::default(),
        });
        // A small body limit, so that oversized bodies are generated too.
        Api { router: app(state, 64 * 1024), rt, _redis: redis }
    })
}

impl Api {
    fn call(&self, method: Method, uri: &str, body: Option<String>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Body::from(body.unwrap_or_default())).unwrap();
        let router = self.router.clone();
        self.rt.block_on(async move {
            let res = tokio::time::timeout(Duration::from_secs(10), router.oneshot(req))
                .await
                .expect("the API answered within 10 s")
                .unwrap();
            let status = res.status();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        })
    }
}

/// Any answer is a success or a clear refusal; never a server error.
fn assert_clear(what: &str, (status, body): &(StatusCode, Value)) {
    assert!(!status.is_server_error(), "{what}: {status} {body}");
    if status.is_client_error() {
        assert!(
            body["error"].is_string() && body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}: a 4xx with a JSON body saying what is wrong, got {status} {body}"
        );
    }
}

/// Names and ids: mostly odd characters, sometimes plain ones.
fn odd_name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z]{1,12}", ".{0,40}", "[\\{\\}:/%?#\\x00-\\x1f \u{202e}\u{fffd}]{1,20}", "[a-z]{300,600}",]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,30}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Options: the right keys with wrong values, wrong keys, wrong shapes.
fn options() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("delay_ms"),
        Just("priority"),
        Just("attempts"),
        Just("backoff"),
        Just("timeout_ms"),
        Just("keep_completed"),
        Just("keep_failed"),
        Just("group"),
        Just("nonsense"),
    ];
    prop_oneof![json_value(), prop::collection::btree_map(key, json_value(), 0..5).prop_map(|m| json!(m))]
}

/// A job body: well-formed with odd parts, or anything at all.
fn job_body() -> impl Strategy<Value = String> {
    let job = (odd_name(), json_value(), prop::option::of(odd_name()), prop::option::of(options()));
    prop_oneof![
        4 => job.prop_map(|(t, payload, id, options)| {
            let mut v = json!({"type": t, "payload": payload});
            if let Some(id) = id {
                v["id"] = json!(id);
            }
            if let Some(o) = options {
                v["options"] = o;
            }
            v.to_string()
        }),
        1 => json_value().prop_map(|v| v.to_string()),
        1 => ".{0,200}",
        1 => (1usize..200_000).prop_map(|n| format!(r#"{{"type":"t","payload":"{}"}}"#, "x".repeat(n))),
    ]
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn enqueue_answers_clearly_and_keeps_what_it_accepts(queue in odd_name(), body in job_body()) {
        let a = api();
        let uri = format!("/api/v1/queues/{}/jobs", encode(&queue));
        let r = a.call(Method::POST, &uri, Some(body.clone()));
        assert_clear(&format!("POST {uri} {body:.200}"), &r);
        if r.0.is_success() {
            let id = r.1["id"].as_str().expect("an accepted job has an id").to_string();
            let back = a.call(Method::GET, &format!("/api/v1/queues/{}/jobs/{}", encode(&queue), encode(&id)), None);
            prop_assert_eq!(back.0, StatusCode::OK, "the accepted job {} can be read back: {}", id, back.1);
        }
    }

    #[test]
    fn bulk_answers_clearly_and_is_all_or_nothing(queue in "bulk-[a-z]{1,8}", bodies in prop::collection::vec(job_body(), 0..20)) {
        let a = api();
        let body = format!(r#"{{"jobs":[{}]}}"#, bodies.join(","));
        let uri = format!("/api/v1/queues/{queue}/jobs/bulk");
        let before = a.call(Method::GET, "/api/v1/queues", None);
        let r = a.call(Method::POST, &uri, Some(body.clone()));
        assert_clear(&format!("POST {uri} {body:.200}"), &r);
        if r.0.is_success() {
            for j in r.1["jobs"].as_array().expect("the accepted jobs") {
                let id = j["id"].as_str().unwrap();
                let back = a.call(Method::GET, &format!("/api/v1/queues/{queue}/jobs/{}", encode(id)), None);
                prop_assert_eq!(back.0, StatusCode::OK, "bulk job {} can be read back", id);
            }
        } else {
            // A refused bulk request enqueues none of its jobs.
            let after = a.call(Method::GET, "/api/v1/queues", None);
            let count = |v: &Value| v.as_array().and_then(|qs| qs.iter().find(|q| q["name"] == queue.as_str()).map(|q| q["counts"]["waiting"].as_u64().unwrap_or(0)));
            prop_assert_eq!(count(&before.1), count(&after.1));
        }
    }

    #[test]
    fn reads_and_operations_answer_clearly(queue in odd_name(), id in odd_name(), query in ".{0,60}", op in 0usize..7, body in job_body()) {
        let a = api();
        let (q, i) = (encode(&queue), encode(&id));
        let (method, uri, body) = match op {
            0 => (Method::GET, format!("/api/v1/queues/{q}/jobs?{}", encode(&query).replace("%3D", "=").replace("%26", "&")), None),
            1 => (Method::GET, format!("/api/v1/queues/{q}/jobs/{i}"), None),
            2 => (Method::DELETE, format!("/api/v1/queues/{q}/jobs/{i}"), None),
            3 => (Method::POST, format!("/api/v1/queues/{q}/jobs/{i}/retry"), None),
            4 => (Method::POST, format!("/api/v1/queues/{q}/jobs/{i}/promote"), None),
            5 => (Method::POST, format!("/api/v1/queues/{q}/clean"), Some(body)),
            _ => (Method::PUT, format!("/api/v1/schedules/{i}"), Some(body)),
        };
        let r = a.call(method.clone(), &uri, body);
        assert_clear(&format!("{method} {uri}"), &r);
    }
}

#[test]
fn known_bad_inputs_get_their_own_message() {
    let a = api();
    let cases: &[(&str, &str, &str)] = &[
        ("/api/v1/queues/q/jobs", "{not json", "JSON"),
        ("/api/v1/queues/q/jobs", r#"{"type":"t"}"#, "payload"),
        ("/api/v1/queues/q/jobs", r#"{"type":"t","payload":{},"options":{"attempts":-1}}"#, "attempts"),
        ("/api/v1/queues/q/jobs", r#"{"type":"t","payload":{},"options":{"delay_ms":"soon"}}"#, "delay_ms"),
        ("/api/v1/queues/q/jobs", r#"{"type":"t","payload":{},"options":{"colour":"red"}}"#, "colour"),
        ("/api/v1/queues/q/jobs", r#"{"type":"","payload":{}}"#, "type"),
    ];
    for (uri, body, mention) in cases {
        let r = a.call(Method::POST, uri, Some(body.to_string()));
        assert!(r.0.is_client_error(), "{body}: {} {}", r.0, r.1);
        let detail = r.1["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(mention), "{body}: `{detail}` should mention `{mention}`");
    }
    let huge = format!(r#"{{"type":"t","payload":"{}"}}"#, "x".repeat(100 * 1024));
    let r = a.call(Method::POST, "/api/v1/queues/q/jobs", Some(huge));
    assert_eq!(r.0, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.1);
    assert!(r.1["detail"].is_string());
}

/// The host and one loaded `hostile` plugin, for the return-value fuzzer.
fn plugin() -> &'static (tokio::runtime::Runtime, common::Setup, runner::Plugin) {
    static P: OnceLock<(tokio::runtime::Runtime, common::Setup, runner::Plugin)> = OnceLock::new();
    P.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let s = common::setup("");
        let p = rt.block_on(s.load("hostile_plugin"));
        (rt, s, p)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Whatever a guest returns (any output text, any failure with any
    /// message and delay) becomes the matching outcome.
    #[test]
    fn a_guest_return_value_becomes_an_outcome(
        kind in prop_oneof![Just("ok"), Just("retry"), Just("retry-after"), Just("permanent")],
        output in prop::option::of(prop_oneof![".{0,100}", json_value().prop_map(|v| v.to_string())]),
        message in ".{0,300}",
        delay_ms in any::<u64>(),
    ) {
        let (rt, _, p) = plugin();
        let job = common::job("fail-as", json!({"as": kind, "output": output, "message": message, "delay_ms": delay_ms}));
        let report = rt.block_on(p.run(&job));
        match (kind, &report.outcome) {
            ("ok", Outcome::Completed { output: got }) => {
                let want: Option<Value> = output.as_deref().map(|o| serde_json::from_str(o).unwrap());
                prop_assert_eq!(got, &want);
            }
            ("ok", Outcome::Fault(f)) => {
                prop_assert_eq!(f.kind, FaultKind::InvalidOutput);
                prop_assert!(output.as_deref().is_some_and(|o| serde_json::from_str::<Value>(o).is_err()), "{f}");
            }
            ("retry", Outcome::Retry { message: m }) => prop_assert_eq!(m, &message),
            ("retry-after", Outcome::RetryAfter { delay, message: m }) => {
                prop_assert_eq!(delay.as_millis(), u128::from(delay_ms));
                prop_assert_eq!(m, &message);
            }
            ("permanent", Outcome::Permanent { message: m }) => prop_assert_eq!(m, &message),
            (k, other) => prop_assert!(false, "{k} gave {other:?}"),
        }
    }
}
