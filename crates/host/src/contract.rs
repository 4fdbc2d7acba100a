//! Host-side bindings of each contract version, generated from `wit/`, and
//! the one face the rest of the host sees of them.
//!
//! A plugin built against 0.1 keeps working now that 0.2 exists: each
//! version gets its own module here, `link` picks the one a component
//! exports, and `Pre` and `Bindings` turn calls and answers into the
//! version-free types of `jobrunner-job`, so that nothing else in the host
//! names a version. The imports of every version are in one linker
//! (`Host::new`); `capabilities` implements each version's, over the same
//! code where the two agree.

use crate::state::JobState;
use anyhow::{Context, Result, bail};
use jobrunner_job::{JobInput, Outcome};
use std::time::Duration;
use wasmtime::Store;
use wasmtime::component::{Component, Linker};

/// One contract version's host bindings, and the export its plugins have.
macro_rules! contract_version {
    ($module:ident, $path:literal, $export:literal) => {
        pub mod $module {
            wasmtime::component::bindgen!({
                path: $path,
                world: "plugin",
                imports: { default: async | trappable },
                exports: { default: async },
            });

            /// The export a plugin of this version must have.
            pub const HANDLER_EXPORT: &str = $export;
        }
    };
}

contract_version!(v0_1, "../../wit/v0.1", "jobrunner:plugin/handler@0.1.0");
contract_version!(v0_2, "../../wit/v0.2", "jobrunner:plugin/handler@0.2.0");

/// A plugin's failure, of whichever version's `failure` type, as the
/// outcome it asks for (the variants are the same in every version).
macro_rules! failure_outcome {
    ($failure:path, $f:expr) => {{
        use $failure as Failure;
        match $f {
            Failure::Retry(message) => Outcome::Retry { message },
            Failure::RetryAfter(r) => {
                Outcome::RetryAfter { delay: Duration::from_millis(r.delay_ms), message: r.message }
            }
            Failure::Permanent(message) => Outcome::Permanent { message },
        }
    }};
}

/// A contract version the host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Version {
    #[serde(rename = "0.1")]
    V0_1,
    #[serde(rename = "0.2")]
    V0_2,
}

impl Version {
    /// Every version served, newest first.
    pub const ALL: [Version; 2] = [Version::V0_2, Version::V0_1];

    pub fn handler_export(self) -> &'static str {
        match self {
            Version::V0_1 => v0_1::HANDLER_EXPORT,
            Version::V0_2 => v0_2::HANDLER_EXPORT,
        }
    }

    /// Its package's version: `0.1.0`, `0.2.0`.
    pub fn package_version(self) -> &'static str {
        match self {
            Version::V0_1 => "0.1.0",
            Version::V0_2 => "0.2.0",
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Version::V0_1 => "0.1",
            Version::V0_2 => "0.2",
        })
    }
}

/// Adds every version's imports to the linker.
pub fn add_to_linker(linker: &mut Linker<JobState>) -> Result<()> {
    use wasmtime::component::HasSelf;
    v0_1::Plugin::add_to_linker::<JobState, HasSelf<JobState>>(linker, |s| s)?;
    v0_2::Plugin::add_to_linker::<JobState, HasSelf<JobState>>(linker, |s| s)?;
    Ok(())
}

/// A component linked against the version it exports, ready to instantiate.
pub enum Pre {
    V0_1(v0_1::PluginPre<JobState>),
    V0_2(v0_2::PluginPre<JobState>),
}

/// An instance of a plugin, of either version.
pub enum Bindings {
    V0_1(v0_1::Plugin),
    V0_2(v0_2::Plugin),
}

/// What `describe` answers, version-free.
pub struct Info {
    pub name: String,
    pub version: String,
    pub job_types: Vec<String>,
}

/// Links a component against the contract version it exports,
/// explaining any mismatch.
pub fn link(engine: &wasmtime::Engine, linker: &Linker<JobState>, component: &Component) -> Result<Pre> {
    let Some(version) =
        Version::ALL.into_iter().find(|v| component.get_export_index(None, v.handler_export()).is_some())
    else {
        let exports: Vec<String> =
            component.component_type().exports(engine).map(|(name, _)| name.to_string()).collect();
        let wanted: Vec<&str> = Version::ALL.iter().map(|v| v.handler_export()).collect();
        bail!(
            "the component exports none of {}; it exports: {}",
            wanted.join(", "),
            if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
        );
    };
    let pre = linker
        .instantiate_pre(component)
        .map_err(anyhow::Error::from)
        .context("the component imports something the runner does not provide")?;
    let mismatch = || format!("the component's `{}` does not match the contract {version}", version.handler_export());
    Ok(match version {
        Version::V0_1 => Pre::V0_1(v0_1::PluginPre::new(pre).map_err(anyhow::Error::from).with_context(mismatch)?),
        Version::V0_2 => Pre::V0_2(v0_2::PluginPre::new(pre).map_err(anyhow::Error::from).with_context(mismatch)?),
    })
}

impl Pre {
    pub fn version(&self) -> Version {
        match self {
            Pre::V0_1(_) => Version::V0_1,
            Pre::V0_2(_) => Version::V0_2,
        }
    }

    pub async fn instantiate(&self, store: &mut Store<JobState>) -> wasmtime::Result<Bindings> {
        Ok(match self {
            Pre::V0_1(pre) => Bindings::V0_1(pre.instantiate_async(store).await?),
            Pre::V0_2(pre) => Bindings::V0_2(pre.instantiate_async(store).await?),
        })
    }
}

impl Bindings {
    pub async fn describe(&self, store: &mut Store<JobState>) -> wasmtime::Result<Info> {
        Ok(match self {
            Bindings::V0_1(b) => {
                let i = b.jobrunner_plugin_handler().call_describe(store).await?;
                Info { name: i.name, version: i.version, job_types: i.job_types }
            }
            Bindings::V0_2(b) => {
                let i = b.jobrunner_plugin_handler().call_describe(store).await?;
                Info { name: i.name, version: i.version, job_types: i.job_types }
            }
        })
    }

    /// Calls `handle`: the output text, or the plugin's failure as an
    /// outcome. A trap is the error.
    pub async fn handle(
        &self,
        store: &mut Store<JobState>,
        job: JobInput,
    ) -> wasmtime::Result<std::result::Result<Option<String>, Outcome>> {
        match self {
            Bindings::V0_1(b) => {
                use v0_1::jobrunner::plugin::types::Job;
                let job = Job {
                    id: job.id,
                    queue: job.queue,
                    type_: job.job_type,
                    payload: job.payload,
                    attempt: job.attempt,
                    max_attempts: job.max_attempts,
                    enqueued_at: job.enqueued_at_ms,
                };
                let out = b.jobrunner_plugin_handler().call_handle(store, &job).await?;
                Ok(out.map_err(|f| failure_outcome!(v0_1::jobrunner::plugin::types::Failure, f)))
            }
            Bindings::V0_2(b) => {
                use v0_2::jobrunner::plugin::types::{Job, JobRef};
                let job = Job {
                    id: job.id,
                    queue: job.queue,
                    type_: job.job_type,
                    payload: job.payload,
                    attempt: job.attempt,
                    max_attempts: job.max_attempts,
                    enqueued_at: job.enqueued_at_ms,
                    parent: job.parent.map(|p| JobRef { queue: p.queue, id: p.id }),
                };
                let out = b.jobrunner_plugin_handler().call_handle(store, &job).await?;
                Ok(out.map_err(|f| failure_outcome!(v0_2::jobrunner::plugin::types::Failure, f)))
            }
        }
    }
}
