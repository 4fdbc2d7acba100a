//! What the operator grants one plugin, resolved and ready for the host:
//! the limits it runs under (`Limits`) and what it may reach (`Grants`).
//! The runner's config builds these; the host only reads them.

use crate::cache::Budget;
use std::collections::BTreeMap;
use std::time::Duration;

/// Limits applied when the operator sets none. A job handler that needs
/// more says so in its config; the defaults keep one bad job small.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MEMORY: u64 = 64 << 20;
pub const DEFAULT_HTTP_RESPONSE_BYTES: u64 = 4 << 20;
pub const DEFAULT_LOG_BYTES: u64 = 64 << 10;
/// A job's output is stored whole as its result, and retention keeps up
/// to a thousand of them per queue: 1 MiB each at most by default.
pub const DEFAULT_OUTPUT_BYTES: u64 = 1 << 20;

/// The most emails one attempt sends unless the operator says otherwise.
pub const DEFAULT_MAX_EMAILS: usize = 100;

/// With `isolation = "instance"`, the most jobs one instance serves before
/// it is dropped, unless the operator says otherwise: bounds what a slow
/// leak in the guest's heap can grow to.
pub const DEFAULT_MAX_JOBS_PER_INSTANCE: u32 = 1000;

/// How a plugin's jobs share its instances.
///
/// `Job` (the default): every job gets an instance of its own, in a fresh
/// store, so nothing of one job is seen by another. `Instance`: an
/// instance that completed a job serves the plugin's next one, up to
/// `max_jobs_per_instance` jobs, and is dropped after any job that did not
/// complete (a fault, a trap, a timeout, a limit, or a failure the plugin
/// returned). Only jobs of the same plugin version share an instance; its
/// grants are the plugin's whatever the job. What carries over is the
/// guest's own memory: its globals and heap (docs/plugin-authoring.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "isolation")]
pub enum Isolation {
    #[default]
    Job,
    Instance {
        max_jobs_per_instance: u32,
    },
}

impl Isolation {
    /// How many jobs one instance may serve: 1 for `Job`.
    pub fn jobs_per_instance(self) -> u32 {
        match self {
            Isolation::Job => 1,
            Isolation::Instance { max_jobs_per_instance } => max_jobs_per_instance.max(1),
        }
    }
}

/// The limits one plugin runs under.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Limits {
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub memory_bytes: u64,
    pub http_response_bytes: u64,
    pub log_bytes: u64,
    pub output_bytes: u64,
    #[serde(flatten)]
    pub isolation: Isolation,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: DEFAULT_TIMEOUT,
            memory_bytes: DEFAULT_MEMORY,
            http_response_bytes: DEFAULT_HTTP_RESPONSE_BYTES,
            log_bytes: DEFAULT_LOG_BYTES,
            output_bytes: DEFAULT_OUTPUT_BYTES,
            isolation: Isolation::Job,
        }
    }
}

/// What one plugin is granted, resolved and ready for the host.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub allowed_hosts: Vec<String>,
    pub allowed_networks: Vec<String>,
    pub config: BTreeMap<String, String>,
    /// Resolved values: never logged, never shown by the API.
    pub secrets: BTreeMap<String, String>,
    pub cache_namespace: String,
    pub cache_budget: Budget,
    pub sender: Option<String>,
    pub senders: Vec<String>,
    pub recipient_domains: Vec<String>,
    pub max_emails: usize,
    pub may_enqueue: Vec<String>,
}

impl Grants {
    /// What the API and the dashboard show of these grants: the names of
    /// its config values and secrets, never their values.
    pub fn shown(&self) -> GrantsShown {
        let mut senders: Vec<String> = self.sender.iter().cloned().collect();
        senders.extend(self.senders.iter().filter(|s| Some(*s) != self.sender.as_ref()).cloned());
        GrantsShown {
            allowed_hosts: self.allowed_hosts.clone(),
            allowed_networks: self.allowed_networks.clone(),
            config: self.config.keys().cloned().collect(),
            secrets: self.secrets.keys().cloned().collect(),
            cache_namespace: self.cache_namespace.clone(),
            cache_budget: self.cache_budget,
            senders,
            recipient_domains: self.recipient_domains.clone(),
            max_emails: self.max_emails,
            may_enqueue: self.may_enqueue.clone(),
        }
    }
}

/// A plugin's grants as shown to operators (`Grants::shown`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GrantsShown {
    pub allowed_hosts: Vec<String>,
    pub allowed_networks: Vec<String>,
    /// The names of its config values.
    pub config: Vec<String>,
    /// The names of its secrets.
    pub secrets: Vec<String>,
    pub cache_namespace: String,
    pub cache_budget: Budget,
    /// The addresses (or `*@domain`) it may send from.
    pub senders: Vec<String>,
    pub recipient_domains: Vec<String>,
    pub max_emails: usize,
    /// `queue:type` pairs it may enqueue to, beyond its own types.
    pub may_enqueue: Vec<String>,
}

/// The resolved settings of one plugin.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    pub name: String,
    pub limits: Limits,
    pub grants: Grants,
}

impl PluginSettings {
    /// A plugin file no section is bound to: named by its file, default
    /// limits, no grants, and a cache namespace no section's can be (a
    /// section's default is its name, which has no `.wasm`).
    pub fn unbound(file_name: &str) -> PluginSettings {
        let namespace: String = file_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
            .take(64)
            .collect();
        PluginSettings {
            name: file_name.to_string(),
            limits: Limits::default(),
            grants: Grants {
                cache_namespace: namespace,
                cache_budget: Budget::default(),
                max_emails: DEFAULT_MAX_EMAILS,
                ..Default::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_shown_by_name_never_by_value() {
        let grants = Grants {
            allowed_hosts: vec!["api.example.com".into()],
            config: [("api_base_url".to_string(), "https://api.example.com".to_string())].into(),
            secrets: [("api_token".to_string(), "t0ken-value".to_string())].into(),
            sender: Some("noreply@example.com".into()),
            senders: vec!["noreply@example.com".into(), "*@example.org".into()],
            may_enqueue: vec!["emails:send".into()],
            ..Default::default()
        };
        let shown = grants.shown();
        let json = serde_json::to_string(&shown).unwrap();
        assert!(json.contains("api_token") && json.contains("api_base_url"), "{json}");
        assert!(!json.contains("t0ken-value") && !json.contains("https://api.example.com"), "{json}");
        assert_eq!(shown.senders, ["noreply@example.com", "*@example.org"], "the default sender once");
        assert_eq!(shown.may_enqueue, ["emails:send"]);
    }
}
