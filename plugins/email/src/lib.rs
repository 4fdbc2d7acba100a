//! The email plugin (job type `email`).
//!
//! 1. parses the payload: recipients, and either a template with data or raw text/html;
//! 2. validates every address (an invalid one is a permanent failure);
//! 3. renders the template's subject, text and HTML parts (`render.rs`);
//! 4. hands the message to the runner's mailer: a rejected message is
//!    permanent, a transport error is retried.

// Off wasm, the handler is compiled only for its unit tests and is not
// exported, so parts of it are unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod message;
mod render;

use jobrunner_sdk::email::{self, SendError};
use jobrunner_sdk::{Failure, Job, Plugin, PluginInfo, log};

struct EmailPlugin;

impl Plugin for EmailPlugin {
    fn describe() -> PluginInfo {
        PluginInfo { name: "email".into(), version: env!("CARGO_PKG_VERSION").into(), job_types: vec!["email".into()] }
    }

    fn handle(job: Job) -> Result<Option<String>, Failure> {
        let payload: message::Payload = jobrunner_sdk::payload(&job)?;
        let brand = jobrunner_sdk::config::get("brand_name");
        let message = message::build(payload, brand.as_deref()).map_err(Failure::Permanent)?;
        log::info(&format!(
            "sending `{}` to {} recipient(s)",
            message.subject,
            message.to.len() + message.cc.len() + message.bcc.len()
        ));
        let recipients = message.to.len();
        match email::send(&message) {
            Ok(message_id) => Ok(Some(serde_json::json!({ "message_id": message_id, "to": recipients }).to_string())),
            Err(SendError::Invalid(reason)) => Err(Failure::Permanent(reason)),
            Err(SendError::Transient(reason)) => Err(Failure::Retry(reason)),
        }
    }
}

// The export exists only in the wasm build: natively the handler is
// compiled for unit tests, and exported names with `:` would not link.
#[cfg(target_arch = "wasm32")]
jobrunner_sdk::export_plugin!(EmailPlugin);
