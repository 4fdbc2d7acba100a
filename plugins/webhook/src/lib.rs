//! The webhook plugin (job type `webhook`).
//!
//! 1. builds the event body `{"id", "type", "created_at", "data"}`;
//! 2. signs it with HMAC-SHA256 over `"{timestamp}.{body}"` (`sign.rs`) using
//!    the endpoint's secret, and sends the timestamp, the signature and the
//!    job id as an idempotency key;
//! 3. classifies the answer (`classify.rs`): 2xx succeeds; 4xx is permanent
//!    except 408 and 429; 429 and 503 honour Retry-After; 5xx and timeouts retry.

// Off wasm, the handler is compiled only for its unit tests and is not
// exported, so parts of it are unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod classify;
mod sign;

use jobrunner_sdk::http::{HttpError, Request};
use jobrunner_sdk::{Failure, Job, Plugin, PluginInfo, log};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Header names, documented in the plugin's README for receivers.
pub const TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "x-webhook-signature";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    url: String,
    event: String,
    #[serde(default)]
    data: serde_json::Value,
    /// Selects the secret `endpoint.NAME`; without it, `signing_secret`.
    endpoint: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Per-request timeout in milliseconds (default 10 s).
    timeout_ms: Option<u64>,
}

struct WebhookPlugin;

impl Plugin for WebhookPlugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "webhook".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            job_types: vec!["webhook".into()],
        }
    }

    fn handle(job: Job) -> Result<Option<String>, Failure> {
        let p: Payload = jobrunner_sdk::payload(&job)?;
        let secret_name = match &p.endpoint {
            Some(name) => format!("endpoint.{name}"),
            None => "signing_secret".to_string(),
        };
        let secret = jobrunner_sdk::config::secret(&secret_name).ok_or_else(|| {
            Failure::Permanent(format!("no signing secret: set the secret `{secret_name}` for this plugin"))
        })?;
        let body = serde_json::json!({
            "id": job.id,
            "type": p.event,
            "created_at": job.enqueued_at,
            "data": p.data,
        })
        .to_string();
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let signature = sign::signature(secret.as_bytes(), timestamp, body.as_bytes());

        let mut request = Request::post(&p.url)
            .header("content-type", "application/json")
            .header("user-agent", concat!("jobrunner-webhook/", env!("CARGO_PKG_VERSION")))
            .header(TIMESTAMP_HEADER, &timestamp.to_string())
            .header(SIGNATURE_HEADER, &signature)
            .header(IDEMPOTENCY_HEADER, &job.id)
            .timeout(Duration::from_millis(p.timeout_ms.unwrap_or(10_000)))
            .body(body);
        for (name, value) in &p.headers {
            request = request.header(name, value);
        }
        log::info(&format!("POST {} (attempt {}/{})", p.url, job.attempt, job.max_attempts));

        let response = match request.send() {
            Ok(r) => r,
            Err(e @ (HttpError::Denied(_) | HttpError::InvalidUrl(_))) => {
                return Err(Failure::Permanent(e.to_string()));
            }
            Err(e) => return Err(Failure::Retry(e.to_string())),
        };
        log::info(&format!("answered {}", response.status));
        let now = SystemTime::now();
        match classify::classify(response.status, response.header("retry-after"), now) {
            classify::Verdict::Delivered => {
                Ok(Some(serde_json::json!({ "status": response.status, "attempt": job.attempt }).to_string()))
            }
            classify::Verdict::Retry => Err(Failure::Retry(describe(&response))),
            classify::Verdict::RetryAfter(delay) => Err(Failure::RetryAfter(jobrunner_sdk::RetryAfter {
                delay_ms: delay.as_millis() as u64,
                message: describe(&response),
            })),
            classify::Verdict::Permanent => Err(Failure::Permanent(describe(&response))),
        }
    }
}

/// The status and the start of the body, so the failure says what the receiver said.
fn describe(response: &jobrunner_sdk::http::Response) -> String {
    let text = response.text();
    let snippet: String = text.chars().take(200).collect();
    format!("receiver answered {}: {}", response.status, snippet.trim())
}

// The export exists only in the wasm build: natively the handler is
// compiled for unit tests, and exported names with `:` would not link.
#[cfg(target_arch = "wasm32")]
jobrunner_sdk::export_plugin!(WebhookPlugin);
