//! The vendor-notification plugin (job type `vendor-notification`).
//!
//! 1. looks up the vendor's contact (cache first, then the app's API);
//! 2. suppresses a duplicate: the same kind, vendor, client and service
//!    within the configured window (`dedup_window_secs`, default 3600);
//! 3. fans out: an `email` job when the vendor has an address, a `webhook`
//!    job when it has a URL. Both carry de-duplicating job ids, so a retry
//!    of this job never notifies twice.

// Off wasm, the handler is compiled only for its unit tests and is not
// exported, so parts of it are unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use jobrunner_sdk::{Failure, Job, Plugin, PluginInfo, cache, log, queue};
use serde::Deserialize;

const DEFAULT_WINDOW_SECS: u64 = 3600;

#[derive(Debug, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Kind {
    CartAdd,
    WishlistAdd,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::CartAdd => "cart_add",
            Kind::WishlistAdd => "wishlist_add",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    kind: Kind,
    vendor_id: String,
    client_id: String,
    service_id: String,
}

/// The dedup key; also the stem of the follow-up job ids.
fn dedup_key(p: &Payload) -> String {
    format!("notified:{}:{}:{}:{}", p.kind.as_str(), p.vendor_id, p.client_id, p.service_id)
}

struct VendorNotification;

impl Plugin for VendorNotification {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "vendor-notification".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            job_types: vec!["vendor-notification".into()],
        }
    }

    fn handle(job: Job) -> Result<Option<String>, Failure> {
        let p: Payload = jobrunner_sdk::payload(&job)?;
        for (field, value) in [("vendor_id", &p.vendor_id), ("client_id", &p.client_id), ("service_id", &p.service_id)]
        {
            if value.is_empty() {
                return Err(Failure::Permanent(format!("`{field}` is empty")));
            }
        }
        let key = dedup_key(&p);
        if cache::get(&key).map_err(Failure::Retry)?.is_some() {
            log::info(&format!("suppressed: {key} was notified within the window"));
            return Ok(Some(serde_json::json!({"suppressed": true}).to_string()));
        }
        let contact = app_api::vendor_contact(&p.vendor_id)?;
        let window_secs =
            jobrunner_sdk::config::get("dedup_window_secs").and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_WINDOW_SECS);
        let email_queue = jobrunner_sdk::config::get("email_queue").unwrap_or_else(|| job.queue.clone());
        let webhook_queue = jobrunner_sdk::config::get("webhook_queue").unwrap_or_else(|| job.queue.clone());

        let mut channels = Vec::new();
        if let Some(email) = &contact.email {
            let payload = serde_json::json!({
                "to": email,
                "template": "vendor_interest",
                "data": {
                    "vendor_name": contact.name, "kind": p.kind.as_str(),
                    "client_id": p.client_id, "service_id": p.service_id,
                }
            });
            let options = queue::EnqueueOptions {
                job_id: Some(format!("{key}:email:{}", job.id)),
                ..jobrunner_sdk::default_enqueue_options()
            };
            queue::enqueue(&email_queue, "email", &payload.to_string(), &options).map_err(Failure::Retry)?;
            channels.push("email");
        }
        if let Some(url) = &contact.webhook_url {
            let payload = serde_json::json!({
                "url": url,
                "event": format!("vendor.{}", p.kind.as_str()),
                "data": {"vendor_id": p.vendor_id, "client_id": p.client_id, "service_id": p.service_id},
            });
            let options = queue::EnqueueOptions {
                job_id: Some(format!("{key}:webhook:{}", job.id)),
                ..jobrunner_sdk::default_enqueue_options()
            };
            queue::enqueue(&webhook_queue, "webhook", &payload.to_string(), &options).map_err(Failure::Retry)?;
            channels.push("webhook");
        }
        if channels.is_empty() {
            return Err(Failure::Permanent(format!(
                "vendor {} has neither an email address nor a webhook URL",
                p.vendor_id
            )));
        }
        cache::set(&key, b"1", Some(window_secs * 1000), &[format!("vendor:{}", p.vendor_id)])
            .map_err(Failure::Retry)?;
        log::info(&format!("notified vendor {} by {}", p.vendor_id, channels.join(" and ")));
        Ok(Some(serde_json::json!({"suppressed": false, "channels": channels}).to_string()))
    }
}

// The export exists only in the wasm build: natively the handler is
// compiled for unit tests, and exported names with `:` would not link.
#[cfg(target_arch = "wasm32")]
jobrunner_sdk::export_plugin!(VendorNotification);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_kinds_and_dedup_key() {
        let p: Payload =
            serde_json::from_str(r#"{"kind":"wishlist_add","vendor_id":"v1","client_id":"c1","service_id":"s1"}"#)
                .unwrap();
        assert_eq!(p.kind, Kind::WishlistAdd);
        assert_eq!(dedup_key(&p), "notified:wishlist_add:v1:c1:s1");
        assert!(
            serde_json::from_str::<Payload>(r#"{"kind":"purchase","vendor_id":"v","client_id":"c","service_id":"s"}"#)
                .is_err()
        );
    }
}
