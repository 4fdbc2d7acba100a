//! `Host`: one engine and linker for every plugin; loads a plugin file
//! under the settings bound to it (compiled once, and cached on disk), and
//! describes it.

use crate::settings::PluginSettings;
use crate::state::{JobState, PluginContext, Services};
use crate::{
    CompileCache, CompileSource, EngineOptions, Plugin, compile_cache, contract, egress, engine, grants, http, plugin,
    spare,
};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wasmtime::component::Linker;

#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    pub engine: EngineOptions,
    /// Where compiled plugins are cached; none compiles every time.
    pub compile_cache_dir: Option<PathBuf>,
}

/// How a plugin version came to be loaded, for the API and the logs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadInfo {
    pub compile: CompileSource,
    #[serde(with = "humantime_serde")]
    pub compile_time: Duration,
}

pub struct Host {
    engine: Engine,
    linker: Arc<Linker<JobState>>,
    compile_cache: Option<CompileCache>,
    services: Arc<Services>,
    spare_slots: Arc<spare::SpareSlots>,
    _ticker: engine::EpochTicker,
}

impl Host {
    pub fn new(options: HostOptions, services: Services) -> Result<Host> {
        let engine = engine::build(&options.engine)?;
        let mut linker = Linker::<JobState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        // Every contract version's imports: each plugin links against the
        // version it exports.
        contract::add_to_linker(&mut linker)?;
        Ok(Host {
            _ticker: engine::EpochTicker::start(engine.clone()),
            engine,
            linker: Arc::new(linker),
            compile_cache: options.compile_cache_dir.map(CompileCache::new),
            services: Arc::new(services),
            spare_slots: Arc::new(spare::SpareSlots::new(options.engine.spare_slots)),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads a component file; see [`Host::load`].
    pub async fn load_file(
        &self,
        path: &Path,
        settings: impl Fn(&str) -> Result<PluginSettings>,
    ) -> Result<(Plugin, LoadInfo)> {
        let bytes = tokio::fs::read(path).await.with_context(|| format!("cannot read {}", path.display()))?;
        self.load(bytes, settings).await.with_context(|| format!("plugin {}", path.display()))
    }

    /// Compiles (or takes from the cache), links and describes a component,
    /// then gives it the settings the operator set for the name it gave.
    pub async fn load(
        &self,
        bytes: Vec<u8>,
        settings: impl Fn(&str) -> Result<PluginSettings>,
    ) -> Result<(Plugin, LoadInfo)> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let started = Instant::now();
        // Compiling takes seconds of CPU for a large plugin: off the async threads.
        let engine = self.engine.clone();
        let cache_dir = self.compile_cache.as_ref().map(|c| c.dir().to_path_buf());
        let hash = sha256.clone();
        let (component, compile) = tokio::task::spawn_blocking(move || match cache_dir {
            Some(dir) => CompileCache::new(dir).load_or_compile(&engine, &bytes, &hash),
            None => compile_cache::compile(&engine, &bytes).map(|c| (c, CompileSource::Compiled)),
        })
        .await
        .context("the compile task panicked")??;
        let compile_time = started.elapsed();
        let pre = plugin::link(&self.engine, &self.linker, &component)?;

        let probe = self.context(settings_for_describe(), &[])?;
        let description = Plugin::describe(&self.engine, &pre, probe).await?;
        let settings = settings(&description.name)?;
        let context = self.context(settings, &description.job_types)?;
        let plugin = Plugin::new(self.engine.clone(), pre, sha256, context, description, self.spare_slots.clone());
        Ok((plugin, LoadInfo { compile, compile_time }))
    }

    fn context(&self, settings: PluginSettings, job_types: &[String]) -> Result<Arc<PluginContext>> {
        crate::cache::check_namespace(&settings.grants.cache_namespace)
            .with_context(|| format!("plugins.{}.cache_namespace", settings.name))?;
        let allowed = settings
            .grants
            .allowed_hosts
            .iter()
            .map(|h| http::HostPattern::parse(h))
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("plugins.{}.allowed_hosts", settings.name))?;
        let networks = egress::NetPolicy::parse(&settings.grants.allowed_networks)
            .with_context(|| format!("plugins.{}.allowed_networks", settings.name))?;
        let rules = resolve_grants(&settings, job_types)?;
        Ok(Arc::new(PluginContext {
            name: settings.name,
            limits: settings.limits,
            grants: settings.grants,
            allowed_hosts: Arc::new(allowed),
            allowed_networks: Arc::new(networks),
            rules,
            services: self.services.clone(),
        }))
    }
}

/// The follow-up and email grants of `settings`, checked and resolved
/// (`grants`): a sender list that is not addresses or `*@domain`, or an
/// enqueue grant that is not `QUEUE:TYPE`, is a load error naming the key.
fn resolve_grants(settings: &PluginSettings, job_types: &[String]) -> Result<grants::PluginGrants> {
    let g = &settings.grants;
    let name = &settings.name;
    let may_enqueue = g
        .may_enqueue
        .iter()
        .map(|e| grants::EnqueueGrant::parse(e))
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("plugins.{name}.may_enqueue"))?;
    let mut senders = Vec::new();
    for s in &g.senders {
        let s = s.trim().to_ascii_lowercase();
        let ok = match s.strip_prefix("*@") {
            Some(domain) => !domain.is_empty() && !domain.contains(['@', '*']),
            None => crate::mail::address_of(&s).is_some_and(|a| a == s),
        };
        anyhow::ensure!(ok, "plugins.{name}.senders: `{s}` is not an address or `*@domain`");
        senders.push(s);
    }
    // With no list, the plugin may name only its default sender.
    if senders.is_empty()
        && let Some(address) = g.sender.as_deref().and_then(crate::mail::address_of)
    {
        senders.push(address);
    }
    Ok(grants::PluginGrants {
        own_types: job_types.to_vec(),
        may_enqueue,
        senders,
        recipient_domains: g
            .recipient_domains
            .iter()
            .map(|d| d.trim().trim_start_matches('.').to_ascii_lowercase())
            .collect(),
        max_emails: g.max_emails,
    })
}

/// `describe` runs before the plugin's name, hence its settings, is known:
/// it gets default limits and no grants at all.
fn settings_for_describe() -> PluginSettings {
    PluginSettings {
        name: "describe".into(),
        limits: crate::settings::Limits { timeout: plugin::DESCRIBE_TIMEOUT, ..Default::default() },
        grants: crate::settings::Grants { cache_namespace: "describe".into(), ..Default::default() },
    }
}
