//! The plugin SDK: everything a Rust job handler needs, generated once from
//! the contract in `wit/v0.2` so that each plugin does not repeat it. (A
//! plugin built against 0.1 keeps running: the runner serves both.)
//!
//! Layout:
//! - the generated bindings (`jobrunner::plugin::*`, `exports::...`) and the
//!   [`export_plugin!`] macro that registers a type implementing [`Plugin`];
//! - [`payload`]: parse a job's JSON payload, with bad input a permanent failure;
//! - [`flow_job`]: one job of a flow for `queue::enqueue_flow`, and
//!   `flow::children` for a parent reading its children;
//! - [`log`]: log lines and progress for the current job;
//! - [`http`]: a small blocking HTTP client over `wasi:http`.
//!
//! A plugin looks like this:
//!
//! ```ignore
//! struct Hello;
//! impl jobrunner_sdk::Plugin for Hello {
//!     fn describe() -> jobrunner_sdk::PluginInfo { ... }
//!     fn handle(job: jobrunner_sdk::Job) -> Result<Option<String>, jobrunner_sdk::Failure> { ... }
//! }
//! jobrunner_sdk::export_plugin!(Hello);
//! ```

wit_bindgen::generate!({
    world: "plugin",
    path: "../../wit/v0.2",
    pub_export_macro: true,
    export_macro_name: "export_plugin",
    default_bindings_module: "jobrunner_sdk",
});

pub mod http;
pub mod log;

pub use exports::jobrunner::plugin::handler::Guest as Plugin;
pub use jobrunner::plugin::types::{ChildCounts, Failure, Job, JobRef, PluginInfo, RetryAfter};
pub use jobrunner::plugin::{cache, config, email, flow, queue};

/// Parses the job's payload as `T`. A payload that does not parse is the
/// producer's mistake, so retrying cannot help: it is a permanent failure
/// whose message says what is wrong.
pub fn payload<T: serde::de::DeserializeOwned>(job: &Job) -> Result<T, Failure> {
    parse_payload(&job.payload)
}

/// The body of [`payload`], apart so that it can be tested off-wasm.
pub fn parse_payload<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Failure> {
    serde_json::from_str(text).map_err(|e| Failure::Permanent(format!("invalid payload: {e}")))
}

/// Reads a config value the operator must set, or fails permanently naming it:
/// no retry fixes a missing setting.
pub fn required_config(key: &str) -> Result<String, Failure> {
    config::get(key).ok_or_else(|| Failure::Permanent(format!("config value `{key}` is not set for this plugin")))
}

/// Options with every field unset: the queue's defaults apply.
pub fn default_enqueue_options() -> queue::EnqueueOptions {
    queue::EnqueueOptions { delay_ms: None, priority: None, job_id: None, max_attempts: None, group: None }
}

/// One job of a flow, for `queue::enqueue_flow`: `parent` is the index in
/// the list of its parent (none for the root, the first); a child's
/// failure fails its parent.
pub fn flow_job(queue: &str, job_type: &str, payload: String, parent: Option<u32>) -> queue::FlowJob {
    queue::FlowJob {
        queue: queue.into(),
        job_type: job_type.into(),
        payload,
        options: default_enqueue_options(),
        parent,
        on_failure: queue::OnFailure::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct P {
        #[allow(dead_code)]
        a: u32,
    }

    #[test]
    fn bad_payload_is_permanent_and_says_why() {
        match parse_payload::<P>("{\"a\": \"x\"}") {
            Err(Failure::Permanent(m)) => assert!(m.contains("invalid payload"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse_payload::<P>("{\"a\": 3}").is_ok());
    }
}
