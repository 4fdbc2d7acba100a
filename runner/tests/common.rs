//! Shared set-up for the host's tests: a real `Host` with a config given
//! as TOML, an outbox in a temporary folder, and jobs to feed it.

#![allow(dead_code)]

use jobrunner_host::cache::Cache;
use jobrunner_host::mail::Mailer;
use jobrunner_host::{EngineOptions, HostOptions, Services};
use runner::{Config, Host, JobInput, Outcome, Plugin};
use std::path::PathBuf;

pub struct Setup {
    pub host: Host,
    pub config: Config,
    pub dir: tempfile::TempDir,
}

impl Setup {
    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    /// Loads a built plugin by crate name (e.g. `webhook_plugin`).
    pub async fn load(&self, crate_name: &str) -> Plugin {
        let path = testkit::wasm::path(crate_name);
        let (plugin, _) = self.host.load_file(&path, |n| self.config.plugin_settings(n)).await.unwrap();
        plugin
    }
}

pub fn setup(config: &str) -> Setup {
    setup_with(config, Cache::memory(), EngineOptions { max_instances: 64, ..Default::default() })
}

pub fn setup_with(config: &str, cache: Cache, engine: EngineOptions) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(config).unwrap();
    let mailer =
        if config.mail.smtp.is_some() { config.mailer().unwrap() } else { Mailer::outbox(dir.path().join("outbox")) };
    let host = Host::new(
        HostOptions { engine, compile_cache_dir: Some(dir.path().join("compiled")) },
        Services::new(cache, mailer),
    )
    .unwrap();
    Setup { host, config, dir }
}

pub fn job(job_type: &str, payload: serde_json::Value) -> JobInput {
    JobInput {
        id: format!("job-{}", ulid::Ulid::new()),
        queue: "default".into(),
        job_type: job_type.into(),
        payload: payload.to_string(),
        attempt: 1,
        max_attempts: 3,
        enqueued_at_ms: 1_700_000_000_000,
        parent: None,
    }
}

pub fn completed(outcome: &Outcome) -> serde_json::Value {
    match outcome {
        Outcome::Completed { output } => output.clone().unwrap_or_default(),
        other => panic!("expected completion, got {other:?}"),
    }
}

pub fn permanent(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Permanent { message } => message.clone(),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}
