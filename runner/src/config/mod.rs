//! The operator's configuration: a TOML file with one section per plugin.
//!
//! Duties:
//! 1. parse the file, refusing unknown keys, and name the key and the
//!    problem when a value is wrong;
//! 2. apply defaults (limits, directories, the outbox);
//! 3. resolve secrets written as `env:NAME` from the runner's environment,
//!    so secrets can stay out of the file.
//!
//! ```toml
//! [runner]
//! plugins_dir = "plugins"
//! state_dir = ".runner"
//!
//! [mail]
//! sender = "Jobs <jobs@example.com>"
//! # outbox = ".runner/outbox"          # the default without [mail.smtp]
//! # [mail.smtp]
//! # host = "smtp.example.com"
//! # port = 587
//! # tls = "starttls"                   # "starttls", "tls" or "none"
//! # username = "jobs"
//! # password = "env:SMTP_PASSWORD"
//!
//! [plugins.webhook]
//! allowed_hosts = ["hooks.example.com", "*.example.org", "127.0.0.1:*"]
//! timeout = "30s"
//! memory = "64MiB"
//! [plugins.webhook.secrets]
//! signing_secret = "env:WEBHOOK_SECRET"
//! ```

mod queue;

use anyhow::{Context, Result, bail};
pub use jobrunner_bullmq::BullmqSection;
use jobrunner_host::mail::{Mailer, SmtpOptions, SmtpTls};
pub use jobrunner_host::settings::{
    DEFAULT_HTTP_RESPONSE_BYTES, DEFAULT_LOG_BYTES, DEFAULT_MAX_EMAILS, DEFAULT_MEMORY, DEFAULT_OUTPUT_BYTES,
    DEFAULT_TIMEOUT, Grants, Limits, PluginSettings,
};
pub use queue::{DEFAULT_CONCURRENCY, QueueSection};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub runner: RunnerSection,
    #[serde(default)]
    pub mail: MailSection,
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub redis: RedisSection,
    #[serde(default)]
    pub cache: CacheSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub queues: BTreeMap<String, QueueSection>,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginSection>,
    #[serde(default)]
    pub schedules: Vec<ScheduleSection>,
}

/// A recurring job the config declares; the daemon keeps Redis in step
/// with these at start and on reload (`daemon::schedules`).
///
/// ```toml
/// [[schedules]]
/// id = "nightly-warmup"
/// queue = "default"                 # the default
/// type = "cache-warmup"
/// payload = { entries = [{ key = "page:home", url = "https://www.example.com/", ttl_secs = 86400 }] }
/// cron = "0 3 * * *"                # or: every = "10m"
/// tz = "Europe/Paris"               # UTC by default
/// options = { attempts = 3 }        # job options, as a producer gives them
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    pub id: String,
    #[serde(default = "default_queue")]
    pub queue: String,
    #[serde(rename = "type")]
    pub job_type: String,
    #[serde(default)]
    pub payload: serde_json::Value,
    pub cron: Option<String>,
    pub tz: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    #[serde(default)]
    pub options: jobrunner_queue::JobOptions,
}

fn default_queue() -> String {
    "default".into()
}

impl ScheduleSection {
    /// Its queue, and the schedule as Redis keeps it (checked).
    pub fn to_schedule(&self) -> Result<(String, jobrunner_queue::Schedule)> {
        use jobrunner_queue::{Schedule, ScheduleSource, Timing};
        let key = |k: &str| format!("schedules.{}.{k}", self.id);
        jobrunner_job::check_job_id(&self.id).map_err(|e| anyhow::anyhow!("schedules: id `{}`: {e}", self.id))?;
        jobrunner_job::check_queue_name(&self.queue).map_err(|e| anyhow::anyhow!("{}: {e}", key("queue")))?;
        jobrunner_job::check_job_type(&self.job_type).map_err(|e| anyhow::anyhow!("{}: {e}", key("type")))?;
        let timing = match (&self.cron, self.every) {
            (Some(expr), None) => {
                Timing::Cron { expr: expr.clone(), tz: self.tz.clone().unwrap_or_else(|| "UTC".into()) }
            }
            (None, Some(every)) if self.tz.is_none() => Timing::Every { every_ms: every.as_millis() as u64 },
            (None, Some(_)) => bail!("{}: a time zone goes with `cron`, not with `every`", key("tz")),
            (Some(_), Some(_)) => bail!("schedules.{}: give `cron` or `every`, not both", self.id),
            (None, None) => bail!("schedules.{}: give `cron` (with `tz`) or `every`", self.id),
        };
        timing.validate().with_context(|| key(if self.cron.is_some() { "cron" } else { "every" }))?;
        self.options.validate().map_err(|e| anyhow::anyhow!("{}: {e}", key("options")))?;
        let payload = if self.payload.is_null() { serde_json::json!({}) } else { self.payload.clone() };
        let schedule = Schedule {
            id: self.id.clone(),
            job_type: self.job_type.clone(),
            payload,
            options: self.options.clone(),
            timing,
            source: ScheduleSource::Config,
        };
        Ok((self.queue.clone(), schedule))
    }
}

/// Where the plugins' cache lives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// A Redis of its own for the cache (plain, or `env:NAME`), so that
    /// no plugin's cache shares memory with the queues. None: the queues'.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    /// `redis://`, `rediss://`, or comma-separated cluster seeds. None:
    /// `runner serve` starts its own `redis-server` (see `daemon::embedded`).
    pub url: Option<String>,
    /// The port of the embedded Redis (default 6390; a free one if taken).
    pub embedded_port: Option<u16>,
    /// Start even though Redis's `maxmemory-policy` may evict queue keys
    /// (`allkeys-*`), and so lose jobs without a trace. Off: such a Redis
    /// is refused at start and makes `/ready` fail.
    #[serde(default)]
    pub allow_eviction: bool,
    /// The first part of every key the runner writes (BullMQ's `prefix`):
    /// runners, producers and dashboards of one prefix see only its
    /// queues, schedules, cache and sessions. None: `jr`.
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Where the API, `/health`, `/ready` and `/metrics` listen. Without a
    /// token, only a loopback address is accepted (the runner says so).
    pub bind: String,
    /// The bearer token for the API (plain or `env:NAME`). None: no
    /// authentication, and loopback only.
    pub token: Option<String>,
    /// A token that may only read (GET).
    pub read_only_token: Option<String>,
    /// The largest request body accepted.
    pub max_body: bytesize::ByteSize,
    /// How long a dashboard sign-in lasts.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure`: the dashboard is served over TLS
    /// (by a proxy in front). A request that says `X-Forwarded-Proto:
    /// https` gets a `Secure` cookie either way.
    pub secure_cookies: bool,
    /// Origins, besides the runner's own address, whose pages may send
    /// state-changing requests (`https://jobs.example.com`): the public
    /// address of a proxy that rewrites `Host`.
    pub origins: Vec<String>,
    /// Named users of the API and the dashboard, besides the tokens.
    pub users: Vec<UserSection>,
}

/// `[[http.users]]`: a person who signs in with a name and a password.
///
/// ```toml
/// [[http.users]]
/// name = "ana"
/// password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."   # `runner user hash`
/// role = "admin"                                          # or "read"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSection {
    pub name: String,
    /// Plain, or `env:NAME`.
    pub password_hash: String,
    pub role: UserRole,
}

/// What a named user may do: everything, or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    Admin,
    Read,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            bind: "127.0.0.1:8080".into(),
            token: None,
            read_only_token: None,
            max_body: bytesize::ByteSize::mib(16),
            session_ttl: Duration::from_secs(12 * 3600),
            secure_cookies: false,
            origins: Vec::new(),
            users: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerSection {
    /// Where `.wasm` plugins are loaded from.
    pub plugins_dir: PathBuf,
    /// Where the runner keeps its state: compile cache, outbox, embedded Redis data.
    pub state_dir: PathBuf,
    /// Cache compiled plugins on disk, so a restart does not recompile.
    pub compile_cache: bool,
    /// How long a job is leased before another runner may take it over;
    /// extended every third of it while the job runs.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// On SIGTERM, how long jobs in flight may finish before they are
    /// cancelled and put back on their queue.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for RunnerSection {
    fn default() -> Self {
        RunnerSection {
            plugins_dir: PathBuf::from("plugins"),
            state_dir: PathBuf::from(".runner"),
            compile_cache: true,
            lease: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSection {
    /// The sender for plugins that set none.
    pub sender: Option<String>,
    /// Where `.eml` files go when no SMTP server is configured
    /// (default: `<state_dir>/outbox`).
    pub outbox: Option<PathBuf>,
    pub smtp: Option<SmtpSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    pub host: String,
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    pub username: Option<String>,
    /// Plain, or `env:NAME`.
    pub password: Option<String>,
    #[serde(default = "default_smtp_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_smtp_timeout() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// The most plugin instances alive at once (sizes the pooling allocator).
    pub max_instances: u32,
    /// Pool slots beyond `max_instances` for instances made ahead of jobs,
    /// one per plugin version (`host::spare`); 0 turns them off.
    pub spare_instances: u32,
}

/// More spares than this would be more plugins than a runner serves.
const MAX_SPARE_INSTANCES: u32 = 1024;

impl Default for EngineSection {
    fn default() -> Self {
        let engine = jobrunner_host::EngineOptions::default();
        EngineSection { max_instances: engine.max_instances, spare_instances: engine.spare_slots }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    /// The file in the plugins folder this section is for (default:
    /// `NAME.wasm`). The section, and so every grant and secret in it,
    /// belongs to that file, whatever name the plugin gives itself.
    pub file: Option<String>,
    /// The file's SHA-256 (hex): set, any other content is refused.
    pub sha256: Option<String>,
    /// Hosts outgoing HTTP may reach: `host`, `host:port`, `*.domain`, `host:*`.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Special-purpose networks (loopback, private, link-local...) those
    /// hosts may resolve to: CIDR blocks, addresses, or `any`. None by
    /// default: an allowed name that resolves to 127.0.0.1 is refused.
    #[serde(default)]
    pub allowed_networks: Vec<String>,
    #[serde(default, with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    pub memory: Option<bytesize::ByteSize>,
    pub max_http_response_bytes: Option<bytesize::ByteSize>,
    pub max_log_bytes: Option<bytesize::ByteSize>,
    pub max_output_bytes: Option<bytesize::ByteSize>,
    /// `job` (the default: each job in a fresh instance) or `instance`
    /// (an instance that completed a job serves the next, up to
    /// `max_jobs_per_instance`; see `jobrunner_host::Isolation`).
    pub isolation: Option<IsolationSetting>,
    /// With `isolation = "instance"`: the most jobs one instance serves
    /// (default 1000).
    pub max_jobs_per_instance: Option<u32>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Plain values, or `env:NAME` to read the runner's environment.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// The cache namespace (default: the plugin's name).
    pub cache_namespace: Option<String>,
    /// What its cache writes may hold (default 32 MiB, 100,000 keys), and
    /// how long an entry may live (default 7 days; an entry without a TTL
    /// gets this one).
    pub cache_max_bytes: Option<bytesize::ByteSize>,
    pub cache_max_keys: Option<u64>,
    #[serde(default, with = "humantime_serde::option")]
    pub cache_max_ttl: Option<Duration>,
    /// The default sender for this plugin's email.
    pub sender: Option<String>,
    /// The From addresses it may choose (`name@example.com`, or
    /// `*@example.com`); none: it sends as `sender` only.
    #[serde(default)]
    pub senders: Vec<String>,
    /// The domains (and their subdomains) it may mail; none: any.
    #[serde(default)]
    pub recipient_domains: Vec<String>,
    /// The most emails one attempt may send (default 100).
    pub max_emails: Option<usize>,
    /// Follow-up jobs it may enqueue besides its own job types into the
    /// queue of the job it handles: `QUEUE:TYPE`, either side `*`.
    #[serde(default)]
    pub may_enqueue: Vec<String>,
}

/// `[plugins.NAME] isolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationSetting {
    Job,
    Instance,
}

impl PluginSection {
    /// How this plugin's jobs share instances.
    pub fn isolation(&self) -> jobrunner_host::Isolation {
        match self.isolation {
            Some(IsolationSetting::Instance) => jobrunner_host::Isolation::Instance {
                max_jobs_per_instance: self
                    .max_jobs_per_instance
                    .unwrap_or(jobrunner_host::settings::DEFAULT_MAX_JOBS_PER_INSTANCE),
            },
            _ => jobrunner_host::Isolation::Job,
        }
    }

    /// The file this section is for: `file`, or `NAME.wasm`.
    pub fn file_name(&self, name: &str) -> String {
        self.file.clone().unwrap_or_else(|| format!("{name}.wasm"))
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!(one_line(text, &e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.engine.max_instances == 0 {
            bail!("engine.max_instances: must be at least 1");
        }
        if self.engine.spare_instances > MAX_SPARE_INSTANCES {
            bail!(
                "engine.spare_instances: {} is more than {MAX_SPARE_INSTANCES} (one is kept per plugin version; 0 turns them off)",
                self.engine.spare_instances
            );
        }
        if self.runner.lease < Duration::from_secs(1) {
            bail!("runner.lease: must be at least 1s");
        }
        if let Some(p) = &self.redis.prefix {
            jobrunner_queue::connection::check_prefix(p).map_err(|e| anyhow::anyhow!("redis.prefix: {e}"))?;
        }
        for (name, q) in &self.queues {
            jobrunner_job::check_queue_name(name).map_err(|e| anyhow::anyhow!("queues.{name}: {e}"))?;
            if q.concurrency == 0 || q.concurrency > 10_000 {
                bail!("queues.{name}.concurrency: must be from 1 to 10000");
            }
            q.check_policy(name)?;
            if let Some(target) = &q.dead_letter {
                if target == name {
                    bail!("queues.{name}.dead_letter: a queue cannot be its own dead-letter queue");
                }
                if let Some(t) = self.queues.get(target) {
                    if t.bullmq.is_some() {
                        bail!(
                            "queues.{name}.dead_letter: `{target}` is BullMQ-backed; a dead-letter queue is a native one"
                        );
                    }
                    let keeps_all = jobrunner_queue::Keep { count: None, age_ms: None };
                    if t.keep_failed.as_ref().is_some_and(|k| k.to_keep() != Ok(keeps_all)) {
                        bail!(
                            "queues.{target}.keep_failed: `{target}` is the dead-letter queue of `{name}`, which keeps its letters until they are handled; leave keep_failed out or set it to \"all\""
                        );
                    }
                }
            }
            if let Some(b) = &q.bullmq {
                // BullMQ builds its keys as `prefix:name:…`, so neither may hold a `:`.
                if b.prefix.is_empty() || b.prefix.contains(':') {
                    bail!(
                        "queues.{name}.bullmq.prefix: must be non-empty and without `:` (BullMQ's default is `bull`)"
                    );
                }
                if let Some(n) = &b.name
                    && (n.is_empty() || n.contains(':'))
                {
                    bail!("queues.{name}.bullmq.name: must be non-empty and without `:`");
                }
                for (from, to) in &b.types {
                    jobrunner_job::check_job_type(to)
                        .map_err(|e| anyhow::anyhow!("queues.{name}.bullmq.types.{from}: {e}"))?;
                }
                if b.max_started_attempts == Some(0) {
                    bail!("queues.{name}.bullmq.max_started_attempts: must be at least 1");
                }
            }
        }
        let mut files: BTreeMap<String, &str> = BTreeMap::new();
        for (name, p) in &self.plugins {
            let key = |k: &str| format!("plugins.{name}.{k}");
            let file = p.file_name(name);
            if file.contains('/') || file.contains('\\') || !file.ends_with(".wasm") {
                bail!("{}: `{file}` must be a file name in the plugins folder, ending in .wasm", key("file"));
            }
            if let Some(other) = files.insert(file.clone(), name) {
                bail!("{}: `{file}` is plugins.{other}'s file already; a file has one section", key("file"));
            }
            if let Some(h) = &p.sha256
                && (h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()))
            {
                bail!("{}: `{h}` is not a SHA-256 in hex (64 characters)", key("sha256"));
            }
            if let Some(t) = p.timeout
                && t.is_zero()
            {
                bail!("{}: must be more than zero", key("timeout"));
            }
            if let Some(n) = p.max_jobs_per_instance {
                if p.isolation != Some(IsolationSetting::Instance) {
                    bail!(
                        "{}: applies only with isolation = \"instance\" (each job has an instance of its own otherwise)",
                        key("max_jobs_per_instance")
                    );
                }
                if n == 0 {
                    bail!("{}: must be at least 1", key("max_jobs_per_instance"));
                }
            }
            if let Some(m) = p.memory
                && m.as_u64() < (1 << 20)
            {
                bail!("{}: {m} is too small; a plugin needs at least 1 MiB", key("memory"));
            }
            for host in &p.allowed_hosts {
                jobrunner_host::http::HostPattern::parse(host).with_context(|| key("allowed_hosts"))?;
            }
            for (secret, value) in &p.secrets {
                resolve_secret(value).with_context(|| key(&format!("secrets.{secret}")))?;
            }
        }
        if self.http.bind.parse::<std::net::SocketAddr>().is_err() {
            bail!("http.bind: `{}` is not an address such as 127.0.0.1:8080", self.http.bind);
        }
        for (key, token) in [("http.token", &self.http.token), ("http.read_only_token", &self.http.read_only_token)] {
            if let Some(t) = token {
                let t = resolve_secret(t).with_context(|| key.to_string())?;
                if t.len() < 16 {
                    bail!("{key}: use at least 16 characters");
                }
            }
        }
        let mut user_names = std::collections::BTreeSet::new();
        for u in &self.http.users {
            let ok = !u.name.is_empty() && u.name.len() <= 64 && !u.name.contains([':', ' ']);
            if !ok {
                bail!("http.users: `{}` must be 1 to 64 characters, without spaces or `:`", u.name);
            }
            if !user_names.insert(u.name.as_str()) {
                bail!("http.users: `{}` is declared twice", u.name);
            }
        }
        for u in &self.http.users {
            let key = format!("http.users.{}.password_hash", u.name);
            let hash = resolve_secret(&u.password_hash).with_context(|| key.clone())?;
            crate::passwords::check_hash(&hash).context(key)?;
        }
        let mut schedule_ids = std::collections::BTreeSet::new();
        for s in &self.schedules {
            let (queue, _) = s.to_schedule()?;
            if self.queues.get(&queue).is_some_and(|q| q.bullmq.is_some()) {
                bail!(
                    "schedules.{}.queue: {queue} is kept in BullMQ's format; schedule its jobs with BullMQ's job schedulers",
                    s.id
                );
            }
            if !schedule_ids.insert((queue.clone(), s.id.clone())) {
                bail!("schedules: `{}` is declared twice for queue {queue}", s.id);
            }
        }
        if let Some(smtp) = &self.mail.smtp {
            if smtp.host.is_empty() {
                bail!("mail.smtp.host: must not be empty");
            }
            if let Some(p) = &smtp.password {
                resolve_secret(p).context("mail.smtp.password")?;
            }
            // Said at start rather than at the first email: a plugin with
            // neither its own sender nor the runner's could send nothing.
            if self.mail.sender.is_none() {
                let without: Vec<&str> =
                    self.plugins.iter().filter(|(_, p)| p.sender.is_none()).map(|(n, _)| n.as_str()).collect();
                if self.plugins.is_empty() || !without.is_empty() {
                    bail!(
                        "mail.sender: [mail.smtp] is set but no sender is{}; set [mail] sender = \"Name <address>\" (or a sender for each plugin)",
                        if without.is_empty() {
                            String::new()
                        } else {
                            format!(" (plugins without one: {})", without.join(", "))
                        }
                    );
                }
            }
        }
        Ok(())
    }

    /// The section bound to the plugin file `file_name` (by its `file` key,
    /// or by being `NAME.wasm`): its name and the pinned hash, if any.
    pub fn section_for_file(&self, file_name: &str) -> Option<(&str, Option<&str>)> {
        self.plugins
            .iter()
            .find(|(name, p)| p.file_name(name) == file_name)
            .map(|(name, p)| (name.as_str(), p.sha256.as_deref()))
    }

    /// The settings of the plugin in file `file_name`: its section's, or,
    /// with none bound to the file, the defaults and no grants at all,
    /// under the file's own name (never a section's, whatever the plugin
    /// calls itself).
    pub fn settings_for_file(&self, file_name: &str) -> Result<PluginSettings> {
        if let Some((name, _)) = self.section_for_file(file_name) {
            return self.plugin_settings(name);
        }
        Ok(PluginSettings::unbound(file_name))
    }

    /// The settings for plugin `name`; a plugin without a section gets the
    /// defaults and no grants (no hosts, no config, no secrets).
    pub fn plugin_settings(&self, name: &str) -> Result<PluginSettings> {
        let section = self.plugins.get(name).cloned().unwrap_or_default();
        let mut secrets = BTreeMap::new();
        for (k, v) in &section.secrets {
            secrets.insert(k.clone(), resolve_secret(v).with_context(|| format!("plugins.{name}.secrets.{k}"))?);
        }
        Ok(PluginSettings {
            name: name.to_string(),
            limits: Limits {
                timeout: section.timeout.unwrap_or(DEFAULT_TIMEOUT),
                memory_bytes: section.memory.map(|b| b.as_u64()).unwrap_or(DEFAULT_MEMORY),
                http_response_bytes: section
                    .max_http_response_bytes
                    .map(|b| b.as_u64())
                    .unwrap_or(DEFAULT_HTTP_RESPONSE_BYTES),
                log_bytes: section.max_log_bytes.map(|b| b.as_u64()).unwrap_or(DEFAULT_LOG_BYTES),
                output_bytes: section.max_output_bytes.map(|b| b.as_u64()).unwrap_or(DEFAULT_OUTPUT_BYTES),
                isolation: section.isolation(),
            },
            grants: Grants {
                allowed_hosts: section.allowed_hosts,
                allowed_networks: section.allowed_networks,
                config: section.config,
                secrets,
                cache_namespace: section.cache_namespace.unwrap_or_else(|| name.to_string()),
                cache_budget: {
                    let d = jobrunner_host::cache::Budget::default();
                    jobrunner_host::cache::Budget {
                        max_bytes: section.cache_max_bytes.map(|b| b.as_u64()).unwrap_or(d.max_bytes),
                        max_keys: section.cache_max_keys.unwrap_or(d.max_keys),
                        max_ttl: section.cache_max_ttl.unwrap_or(d.max_ttl),
                    }
                },
                sender: section.sender.or_else(|| self.mail.sender.clone()),
                senders: section.senders,
                recipient_domains: section.recipient_domains,
                max_emails: section.max_emails.unwrap_or(DEFAULT_MAX_EMAILS),
                may_enqueue: section.may_enqueue,
            },
        })
    }

    /// Applies the environment's overrides, which win over the file:
    /// `REDIS_URL`, `RUNNER_PLUGINS_DIR`, `RUNNER_STATE_DIR`, `RUNNER_HTTP_BIND`,
    /// `RUNNER_TOKEN`, `RUNNER_READ_TOKEN`, `RUNNER_QUEUES`
    /// (comma-separated, each `name` or `name:concurrency`).
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(url) = env("REDIS_URL").filter(|v| !v.is_empty()) {
            self.redis.url = Some(url);
        }
        if let Some(prefix) = env("RUNNER_REDIS_PREFIX").filter(|v| !v.is_empty()) {
            jobrunner_queue::connection::check_prefix(&prefix)
                .map_err(|e| anyhow::anyhow!("RUNNER_REDIS_PREFIX: {e}"))?;
            self.redis.prefix = Some(prefix);
        }
        if let Some(dir) = env("RUNNER_PLUGINS_DIR").filter(|v| !v.is_empty()) {
            self.runner.plugins_dir = PathBuf::from(dir);
        }
        if let Some(dir) = env("RUNNER_STATE_DIR").filter(|v| !v.is_empty()) {
            self.runner.state_dir = PathBuf::from(dir);
        }
        if let Some(bind) = env("RUNNER_HTTP_BIND").filter(|v| !v.is_empty()) {
            self.http.bind = bind;
        }
        if let Some(token) = env("RUNNER_TOKEN").filter(|v| !v.is_empty()) {
            self.http.token = Some(token);
        }
        if let Some(token) = env("RUNNER_READ_TOKEN").filter(|v| !v.is_empty()) {
            self.http.read_only_token = Some(token);
        }
        if let Some(list) = env("RUNNER_QUEUES").filter(|v| !v.is_empty()) {
            self.set_queues(list.split(',').map(str::trim).filter(|q| !q.is_empty())).context("RUNNER_QUEUES")?;
        }
        Ok(())
    }

    /// Replaces the consumed queues with `name` or `name:concurrency` items.
    pub fn set_queues<'a>(&mut self, items: impl Iterator<Item = &'a str>) -> Result<()> {
        let mut queues = BTreeMap::new();
        for item in items {
            // `NAME:N`, where a queue's name may hold `:` itself
            // (`whatsapp:webhook:5`): the concurrency is a number after the
            // last `:`; an item without one is a name alone.
            let (name, concurrency) = match item.rsplit_once(':') {
                Some((n, c)) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) => {
                    (n, c.parse().map_err(|_| anyhow::anyhow!("`{item}`: `{c}` is too large a concurrency"))?)
                }
                _ => (item, self.queues.get(item).map(|q| q.concurrency).unwrap_or(DEFAULT_CONCURRENCY)),
            };
            jobrunner_job::check_queue_name(name).map_err(|e| anyhow::anyhow!(e))?;
            if concurrency == 0 {
                bail!("`{item}`: concurrency must be at least 1");
            }
            // A queue declared in the file keeps what the file says of it
            // (BullMQ's, its bound) but for its concurrency.
            let declared = self.queues.get(name).cloned().unwrap_or_default();
            queues.insert(name.to_string(), QueueSection { concurrency, ..declared });
        }
        self.queues = queues;
        Ok(())
    }

    /// The queues to consume: as configured, or `default`.
    pub fn consumed_queues(&self) -> BTreeMap<String, QueueSection> {
        if self.queues.is_empty() {
            BTreeMap::from([("default".to_string(), QueueSection::default())])
        } else {
            self.queues.clone()
        }
    }

    /// The outbox folder used when no SMTP server is configured.
    pub fn outbox_dir(&self) -> PathBuf {
        self.mail.outbox.clone().unwrap_or_else(|| self.runner.state_dir.join("outbox"))
    }

    /// The key prefix: `[redis] prefix`, else `jr`.
    pub fn redis_prefix(&self) -> &str {
        self.redis.prefix.as_deref().unwrap_or(jobrunner_queue::connection::DEFAULT_PREFIX)
    }

    /// Connects to the Redis at `url`, its keys under the configured prefix.
    pub async fn connect_redis(&self, url: &str) -> Result<jobrunner_queue::Connection> {
        jobrunner_queue::Connection::connect(url).await?.with_prefix(self.redis_prefix())
    }

    /// The queues declared as BullMQ's, with their sections and policies.
    pub fn bullmq_queues(&self) -> Vec<(String, BullmqSection, jobrunner_queue::QueuePolicy)> {
        self.queues
            .iter()
            .filter_map(|(n, q)| q.bullmq.clone().map(|b| (n.clone(), b, q.policy_or_default())))
            .collect()
    }

    /// The policy of a queue the file declares; a queue it does not
    /// declare has the defaults. A dead-letter queue keeps every failed
    /// job: its letters stay until handled.
    pub fn queue_policy(&self, name: &str) -> jobrunner_queue::QueuePolicy {
        let mut policy = self.queues.get(name).map(QueueSection::policy_or_default).unwrap_or_default();
        if self.dead_letter_queues().contains(name) {
            policy.keep_failed = Some(jobrunner_queue::Keep { count: None, age_ms: None });
        }
        policy
    }

    /// The queues some queue sends its dead letters to.
    pub fn dead_letter_queues(&self) -> std::collections::BTreeSet<&str> {
        self.queues.values().filter_map(|q| q.dead_letter.as_deref()).collect()
    }

    /// The mailer the plugins' email goes through: the SMTP server of
    /// `[mail.smtp]` (its password resolved), or the outbox folder.
    pub fn mailer(&self) -> Result<Mailer> {
        match &self.mail.smtp {
            Some(s) => Mailer::smtp(&SmtpOptions {
                host: s.host.clone(),
                port: s.port,
                tls: s.tls,
                username: s.username.clone(),
                password: s.password.as_deref().map(resolve_secret).transpose().context("mail.smtp.password")?,
                timeout: s.timeout,
            }),
            None => Ok(Mailer::outbox(self.outbox_dir())),
        }
    }

    pub fn compile_cache_dir(&self) -> Option<PathBuf> {
        self.runner.compile_cache.then(|| self.runner.state_dir.join("compiled"))
    }

    /// The plugin host's options: the engine's pool and the compile cache.
    /// The daemon and `runner plugin compile` both build their host from
    /// them, so that what one compiles into the cache, the other finds
    /// (an entry is keyed by the engine's settings as well as the plugin).
    pub fn host_options(&self) -> jobrunner_host::HostOptions {
        jobrunner_host::HostOptions {
            engine: jobrunner_host::EngineOptions {
                max_instances: self.engine.max_instances,
                spare_slots: self.engine.spare_instances,
                ..Default::default()
            },
            compile_cache_dir: self.compile_cache_dir(),
        }
    }
}

/// toml's own message draws the offending line over several lines; an
/// operator's terminal and log want one: "line 2, column 11: invalid ...".
fn one_line(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            // The line itself names the key, which toml's message does not.
            let source = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("line {line}, column {column} (`{source}`): {message}")
        }
        None => message,
    }
}

/// `env:NAME` reads the environment; anything else is the value itself.
pub fn resolve_secret(value: &str) -> Result<String> {
    match value.strip_prefix("env:") {
        Some(var) => std::env::var(var).with_context(|| format!("environment variable {var} is not set")),
        None => Ok(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bullmq_queue_is_declared_checked_and_kept() {
        let mut c = Config::parse(
            "[queues.mail]\nconcurrency = 5\n[queues.mail.bullmq]\nname = \"emails\"\n[queues.mail.bullmq.types]\nsend-email = \"email\"\n",
        )
        .unwrap();
        let b = c.queues["mail"].bullmq.clone().unwrap();
        assert_eq!((b.prefix.as_str(), b.name.as_deref()), ("bull", Some("emails")));
        assert_eq!(b.types["send-email"], "email");
        assert!(b.metrics, "BullMQ's metrics are recorded unless turned off");
        // Naming it in RUNNER_QUEUES keeps it BullMQ's.
        c.set_queues(["mail:9"].into_iter()).unwrap();
        assert_eq!(c.queues["mail"].bullmq.as_ref(), Some(&b));
        let bad = |toml: &str| Config::parse(toml).unwrap_err().to_string();
        assert!(bad("[queues.m.bullmq]\nprefix = \"a:b\"\n").contains("queues.m.bullmq.prefix"));
        assert!(bad("[queues.m.bullmq]\nname = \"x:y\"\n").contains("queues.m.bullmq.name"));
        assert!(bad("[queues.m.bullmq.types]\n\"x\" = \"has space\"\n").contains("queues.m.bullmq.types.x"));
        assert!(bad("[queues.m.bullmq]\nmax_started_attempts = 0\n").contains("max_started_attempts"));
        assert!(bad("[queues.m.bullmq]\nprefx = \"b\"\n").contains("prefx"));
    }

    #[test]
    fn schedules_are_declared_and_checked() {
        let c = Config::parse(
            r#"
            [[schedules]]
            id = "nightly"
            type = "cache-warmup"
            payload = { entries = [] }
            cron = "0 3 * * *"
            tz = "Europe/Paris"
            options = { attempts = 2 }
            [[schedules]]
            id = "sessions"
            queue = "maintenance"
            type = "cleanup"
            every = "15m"
            "#,
        )
        .unwrap();
        let (q, s) = c.schedules[0].to_schedule().unwrap();
        assert_eq!((q.as_str(), s.options.attempts), ("default", Some(2)));
        assert_eq!(s.timing, jobrunner_queue::Timing::Cron { expr: "0 3 * * *".into(), tz: "Europe/Paris".into() });
        assert_eq!(s.source, jobrunner_queue::ScheduleSource::Config);
        let (q, s) = c.schedules[1].to_schedule().unwrap();
        assert_eq!((q.as_str(), s.timing), ("maintenance", jobrunner_queue::Timing::Every { every_ms: 900_000 }));
        assert_eq!(s.payload, serde_json::json!({}));

        let bad = |toml: &str| format!("{:#}", Config::parse(toml).unwrap_err());
        let one = "[[schedules]]\nid = \"x\"\ntype = \"t\"\n";
        assert!(bad(one).contains("give `cron` (with `tz`) or `every`"));
        assert!(bad(&format!("{one}cron = \"* * *\"\n")).contains("schedules.x.cron"));
        assert!(bad(&format!("{one}cron = \"0 3 * * *\"\ntz = \"Mars/Olympus\"\n")).contains("time zone"));
        assert!(bad(&format!("{one}every = \"1m\"\ntz = \"UTC\"\n")).contains("schedules.x.tz"));
        assert!(bad(&format!("{one}every = \"1m\"\n{one}every = \"2m\"\n")).contains("declared twice"));
        assert!(bad(&format!("{one}every = \"1m\"\nqueue = \"m\"\n[queues.m.bullmq]\n")).contains("BullMQ"));
        assert!(bad(&format!("{one}every = \"1m\"\nevery_ms = 5\n")).contains("every_ms"));
    }

    #[test]
    fn smtp_without_a_sender_is_refused_at_start() {
        let smtp = "[mail.smtp]\nhost = \"mail.example.com\"\n";
        let e = Config::parse(smtp).unwrap_err().to_string();
        assert!(e.contains("mail.sender") && e.contains("no sender"), "{e}");
        let e = Config::parse(&format!("{smtp}[plugins.email]\nsender = \"a@example.com\"\n[plugins.webhook]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("plugins without one: webhook"), "{e}");
        Config::parse(&format!("[mail]\nsender = \"jobs@example.com\"\n{smtp}")).unwrap();
        Config::parse(&format!("{smtp}[plugins.email]\nsender = \"a@example.com\"\n")).unwrap();
        // The outbox needs none: it reaches no mailbox.
        Config::parse("[plugins.email]\n").unwrap();
    }

    #[test]
    fn spare_instances_default_can_be_turned_off_and_are_bounded() {
        assert_eq!(Config::parse("").unwrap().engine.spare_instances, 32);
        let off = Config::parse("[engine]\nspare_instances = 0\n").unwrap();
        assert_eq!((off.engine.max_instances, off.engine.spare_instances), (1000, 0));
        let e = Config::parse("[engine]\nspare_instances = 5000\n").unwrap_err().to_string();
        assert!(e.contains("engine.spare_instances: 5000 is more than 1024"), "{e}");
    }

    #[test]
    fn full_config_parses_with_defaults() {
        let c = Config::parse(
            r#"
            [mail]
            sender = "Jobs <jobs@example.com>"
            [plugins.webhook]
            allowed_hosts = ["127.0.0.1:*"]
            timeout = "5s"
            memory = "32MiB"
            [plugins.webhook.config]
            region = "eu"
            [plugins.webhook.secrets]
            signing_secret = "s3cret"
            "#,
        )
        .unwrap();
        let s = c.plugin_settings("webhook").unwrap();
        assert_eq!(s.limits.timeout, Duration::from_secs(5));
        assert_eq!(s.limits.memory_bytes, 32 << 20);
        assert_eq!(s.limits.log_bytes, DEFAULT_LOG_BYTES);
        assert_eq!(s.grants.secrets["signing_secret"], "s3cret");
        assert_eq!(s.grants.cache_namespace, "webhook");
        assert_eq!(s.grants.sender.as_deref(), Some("Jobs <jobs@example.com>"));
        let other = c.plugin_settings("email").unwrap();
        assert!(other.grants.allowed_hosts.is_empty() && other.grants.secrets.is_empty());
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut c = Config::parse("[redis]\nurl = \"redis://file:6379\"\n[queues.a]\nconcurrency = 4\n").unwrap();
        let env = |k: &str| match k {
            "REDIS_URL" => Some("redis://env:6379".to_string()),
            "RUNNER_QUEUES" => Some("a, emails:20".to_string()),
            "RUNNER_STATE_DIR" => Some("/var/lib/runner".to_string()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.redis.url.as_deref(), Some("redis://env:6379"));
        assert_eq!(c.queues["a"].concurrency, 4);
        assert_eq!(c.queues["emails"].concurrency, 20);
        assert_eq!(c.runner.state_dir, PathBuf::from("/var/lib/runner"));
        let bad = |k: &str| (k == "RUNNER_QUEUES").then(|| "a:0".to_string());
        assert!(format!("{:#}", c.apply_env(bad).unwrap_err()).contains("RUNNER_QUEUES"));
        // A queue's name may hold `:`; the concurrency is a number after the last.
        let colons = |k: &str| (k == "RUNNER_QUEUES").then(|| "whatsapp:webhook:5, booking:reminder".to_string());
        c.apply_env(colons).unwrap();
        assert_eq!(c.queues["whatsapp:webhook"].concurrency, 5);
        assert_eq!(c.queues["booking:reminder"].concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(Config::default().consumed_queues().keys().collect::<Vec<_>>(), ["default"]);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::parse("[plugins.x]\ntimeout = \"soon\"\n").unwrap_err().to_string();
        assert!(e.contains("timeout"), "{e}");
        let e = Config::parse("[plugins.x]\ntimout = \"5s\"\n").unwrap_err().to_string();
        assert!(e.contains("timout"), "{e}");
        let e = format!("{:#}", Config::parse("[plugins.x]\nallowed_hosts = [\"http://a/b\"]\n").unwrap_err());
        assert!(e.contains("plugins.x.allowed_hosts"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[plugins.x.secrets]\nk = \"env:JOBRUNNER_SURELY_UNSET_VAR\"\n").unwrap_err()
        );
        assert!(e.contains("plugins.x.secrets.k") && e.contains("JOBRUNNER_SURELY_UNSET_VAR"), "{e}");
        let e = Config::parse("[plugins.x]\nmemory = \"10KiB\"\n").unwrap_err().to_string();
        assert!(e.contains("plugins.x.memory"), "{e}");
    }

    /// A section belongs to one file: `NAME.wasm` or its `file`; a file
    /// has one section; a file no section names gets no grants, whatever
    /// the plugin calls itself.
    #[test]
    fn sections_are_bound_to_files() {
        let c = Config::parse(
            "[mail]\nsender = \"jobs@example.com\"\n[plugins.webhook]\nfile = \"hooks.wasm\"\nallowed_hosts = [\"x.example.com\"]\n[plugins.email]\n",
        )
        .unwrap();
        assert_eq!(c.section_for_file("hooks.wasm"), Some(("webhook", None)));
        assert_eq!(c.section_for_file("email.wasm"), Some(("email", None)));
        assert_eq!(c.section_for_file("webhook.wasm"), None, "a section's name is not its file once `file` is set");
        let s = c.settings_for_file("hooks.wasm").unwrap();
        assert_eq!((s.name.as_str(), s.grants.allowed_hosts.len()), ("webhook", 1));
        let unbound = c.settings_for_file("webhook.wasm").unwrap();
        assert_eq!(unbound.name, "webhook.wasm");
        assert!(unbound.grants.allowed_hosts.is_empty() && unbound.grants.secrets.is_empty());
        assert_eq!(unbound.grants.sender, None, "not even the runner's default sender");
        assert_eq!(unbound.grants.cache_namespace, "webhook.wasm", "no section's namespace");
        for (toml, says) in [
            ("[plugins.a]\nfile = \"x.wasm\"\n[plugins.b]\nfile = \"x.wasm\"\n", "plugins.a's file already"),
            ("[plugins.a]\n[plugins.b]\nfile = \"a.wasm\"\n", "plugins.a's file already"),
            ("[plugins.a]\nfile = \"../x.wasm\"\n", "plugins.a.file"),
            ("[plugins.a]\nfile = \"x.so\"\n", "ending in .wasm"),
            ("[plugins.a]\nsha256 = \"abc\"\n", "plugins.a.sha256"),
        ] {
            let e = format!("{:#}", Config::parse(toml).unwrap_err());
            assert!(e.contains(says), "{toml}: {e}");
        }
    }
}
