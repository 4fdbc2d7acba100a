//! A job-runner plugin: handles jobs of type `plugin-template`.
//!
//! Build:  cargo build --target wasm32-wasip2 --release
//! Check:  runner plugin check target/wasm32-wasip2/release/plugin_template.wasm
//! Run:    runner exec target/wasm32-wasip2/release/plugin_template.wasm \
//!             --type plugin-template --payload '{"name": "Ada"}'

// Off wasm, the handler is compiled only for its unit tests and is not
// exported, so parts of it are unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

wit_bindgen::generate!({
    world: "plugin",
    path: "../../wit/v0.2",
});

use exports::jobrunner::plugin::handler::Guest;
use jobrunner::plugin::types::{Failure, Job, PluginInfo};
use jobrunner::plugin::{config, log};

/// The payload this plugin expects. Unknown fields are refused, so a typo
/// in a producer fails loudly instead of being ignored.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    name: String,
}

struct Handler;

impl Guest for Handler {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "plugin-template".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            job_types: vec!["plugin-template".into()],
        }
    }

    fn handle(job: Job) -> Result<Option<String>, Failure> {
        // A payload that does not parse will never parse: fail permanently.
        let payload: Payload =
            serde_json::from_str(&job.payload).map_err(|e| Failure::Permanent(format!("invalid payload: {e}")))?;
        if payload.name.trim().is_empty() {
            return Err(Failure::Permanent("`name` is empty".into()));
        }
        // Config values come from the runner's config: [plugins.NAME.config].
        let greeting = config::get("greeting").unwrap_or_else(|| "Hello".into());
        let message = format!("{greeting}, {}!", payload.name);
        log::write(log::Level::Info, &format!("attempt {} of {}: {message}", job.attempt, job.max_attempts));
        log::progress(100);
        // Anything transient (a server that is down) would be
        // `Err(Failure::Retry(..))`, and the runner retries with backoff.
        Ok(Some(serde_json::json!({ "message": message }).to_string()))
    }
}

// The export exists only in the wasm build: natively the handler is
// compiled for unit tests, and exported names with `:` would not link.
#[cfg(target_arch = "wasm32")]
export!(Handler);
