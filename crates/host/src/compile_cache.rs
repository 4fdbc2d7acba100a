//! Compiled plugins on disk, so a restart does not recompile them.
//!
//! The file name is the component's SHA-256 and the engine's compatibility
//! hash: a new wasmtime or different engine settings miss the cache rather
//! than load code compiled for another configuration.
//!
//! Loading compiled code is trusted (`Component::deserialize_file` is
//! unsafe): the cache lives in the runner's own state directory and holds
//! only what this runner wrote there. A file that fails to load is
//! recompiled and replaced.

use anyhow::{Context, Result};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct CompileCache {
    dir: PathBuf,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompileSource {
    Compiled,
    Cached,
}

impl CompileCache {
    pub fn new(dir: PathBuf) -> Self {
        CompileCache { dir }
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    fn path(&self, engine: &Engine, sha256: &str) -> PathBuf {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()))
    }

    pub fn load_or_compile(&self, engine: &Engine, bytes: &[u8], sha256: &str) -> Result<(Component, CompileSource)> {
        let path = self.path(engine, sha256);
        if path.exists() {
            // SAFETY: see the module comment; the file is this runner's own output.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, CompileSource::Cached)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "compile cache entry unusable; recompiling")
                }
            }
        }
        let component = compile(engine, bytes)?;
        if let Err(e) = self.store(&component, &path) {
            tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "cannot write the compile cache");
        }
        Ok((component, CompileSource::Compiled))
    }

    fn store(&self, component: &Component, path: &PathBuf) -> Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let bytes = component.serialize().map_err(anyhow::Error::from)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut tmp, &bytes)?;
        tmp.persist(path)?;
        Ok(())
    }
}

pub fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    Component::new(engine, bytes).map_err(anyhow::Error::from).context("not a valid WebAssembly component")
}
