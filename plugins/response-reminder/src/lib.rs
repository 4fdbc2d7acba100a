//! The response-reminder plugin (job type `response-reminder`).
//!
//! The app enqueues step 1 when a client writes to a vendor, delayed by the
//! first rung of the ladder (8 h by default). Each step:
//! 1. stops at once if the vendor has answered (the app's cache flag, or the API);
//! 2. enqueues the reminder email to the vendor;
//! 3. schedules the next step by enqueueing itself, delayed by the gap to the
//!    next rung, under the job id `reminder:{conversation}:step:{n}` so that
//!    a step is never scheduled twice;
//! 4. at the last step, also enqueues the alternative-vendor recommendation
//!    email to the client.
//!
//! Config: `ladder_hours` (hours since the client wrote, comma-separated;
//! default `8,24,48,168`), `alternatives_url` (with `{vendor_id}` and
//! `{conversation_id}` placeholders), `email_queue`.

// Off wasm, the handler is compiled only for its unit tests and is not
// exported, so parts of it are unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod ladder;

use jobrunner_sdk::{Failure, Job, Plugin, PluginInfo, log, queue};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    vendor_id: String,
    client_id: String,
    conversation_id: String,
    #[serde(default = "first_step")]
    step: u32,
}

fn first_step() -> u32 {
    1
}

struct ResponseReminder;

impl Plugin for ResponseReminder {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "response-reminder".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            job_types: vec!["response-reminder".into()],
        }
    }

    fn handle(job: Job) -> Result<Option<String>, Failure> {
        let p: Payload = jobrunner_sdk::payload(&job)?;
        let ladder = ladder::Ladder::parse(jobrunner_sdk::config::get("ladder_hours").as_deref())
            .map_err(|e| Failure::Permanent(format!("config `ladder_hours`: {e}")))?;
        if p.step == 0 || p.step as usize > ladder.len() {
            return Err(Failure::Permanent(format!("step {} is outside the ladder of {} steps", p.step, ladder.len())));
        }
        if app_api::conversation_answered(&p.conversation_id)? {
            log::info(&format!("vendor answered conversation {}: stopping", p.conversation_id));
            return Ok(Some(serde_json::json!({"stopped": true, "step": p.step}).to_string()));
        }

        let vendor = app_api::vendor_contact(&p.vendor_id)?;
        let email_queue = jobrunner_sdk::config::get("email_queue").unwrap_or_else(|| job.queue.clone());
        let mut sent = Vec::new();
        if let Some(address) = &vendor.email {
            let reminder = serde_json::json!({
                "to": address,
                "template": "response_reminder",
                "data": {
                    "vendor_name": vendor.name, "conversation_id": p.conversation_id,
                    "step": p.step, "hours_waiting": ladder.hours_at(p.step),
                }
            });
            let options = queue::EnqueueOptions {
                job_id: Some(format!("reminder:{}:email:{}", p.conversation_id, p.step)),
                ..jobrunner_sdk::default_enqueue_options()
            };
            queue::enqueue(&email_queue, "email", &reminder.to_string(), &options).map_err(Failure::Retry)?;
            sent.push("reminder");
        } else {
            log::warn(&format!("vendor {} has no email address: no reminder sent", p.vendor_id));
        }

        let next = match ladder.delay_after(p.step) {
            Some(delay) => {
                let payload = serde_json::json!({
                    "vendor_id": p.vendor_id, "client_id": p.client_id,
                    "conversation_id": p.conversation_id, "step": p.step + 1,
                });
                let options = queue::EnqueueOptions {
                    delay_ms: Some(delay.as_millis() as u64),
                    job_id: Some(format!("reminder:{}:step:{}", p.conversation_id, p.step + 1)),
                    ..jobrunner_sdk::default_enqueue_options()
                };
                queue::enqueue(&job.queue, &job.type_, &payload.to_string(), &options).map_err(Failure::Retry)?;
                Some(p.step + 1)
            }
            None => {
                let client = app_api::client_contact(&p.client_id)?;
                match &client.email {
                    Some(address) => {
                        let template = jobrunner_sdk::config::get("alternatives_url")
                            .unwrap_or_else(|| "https://example.com/vendors/{vendor_id}/alternatives".into());
                        let browse_url = template
                            .replace("{vendor_id}", &p.vendor_id)
                            .replace("{conversation_id}", &p.conversation_id);
                        let email = serde_json::json!({
                            "to": address,
                            "template": "alternative_vendors",
                            "data": {"client_name": client.name, "vendor_name": vendor.name, "browse_url": browse_url}
                        });
                        let options = queue::EnqueueOptions {
                            job_id: Some(format!("reminder:{}:alternatives", p.conversation_id)),
                            ..jobrunner_sdk::default_enqueue_options()
                        };
                        queue::enqueue(&email_queue, "email", &email.to_string(), &options).map_err(Failure::Retry)?;
                        sent.push("alternatives");
                    }
                    None => log::warn(&format!("client {} has no email address", p.client_id)),
                }
                None
            }
        };
        log::info(&format!("step {} of {}: sent {:?}, next step {:?}", p.step, ladder.len(), sent, next));
        Ok(Some(serde_json::json!({"stopped": false, "step": p.step, "sent": sent, "next_step": next}).to_string()))
    }
}

// The export exists only in the wasm build: natively the handler is
// compiled for unit tests, and exported names with `:` would not link.
#[cfg(target_arch = "wasm32")]
jobrunner_sdk::export_plugin!(ResponseReminder);
