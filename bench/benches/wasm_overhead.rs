//! Per-job overhead of the wasm sandbox: a fresh store, instantiation from
//! the pre-linked component, the `handle` call and the teardown.
//!
//! - `instantiate+handle/noop_plugin`: nothing but the host's cost;
//! - `.../hostile_plugin`: its `echo`, a plugin with a real standard library
//!   and JSON in and out;
//! - `template/{rust,ts,python}`: the same handler (the plugin templates of
//!   `examples/`: config, log, cache get and set, progress, JSON output) in
//!   each language, so the cost of an embedded JavaScript engine or Python
//!   interpreter shows beside Rust's. The TypeScript and Python ones are
//!   built with their own tools, and left out, saying why, when those are
//!   missing here;
//! - `load-cached/...`: loading a plugin whose compiled code is in the
//!   compile cache (start-up, and a hot reload), per language; before it,
//!   three cold loads (compiling) per language are timed and printed.
//!
//! Run: `cargo bench -p bench --bench wasm_overhead`.

use criterion::{Criterion, criterion_group, criterion_main};
use jobrunner_host::cache::Cache;
use jobrunner_host::mail::Mailer;
use jobrunner_host::{HostOptions, Services};
use runner::{Config, Host, JobInput};
use std::path::PathBuf;
use testkit::guest::{self, Lang};

fn job(job_type: &str, payload: &str) -> JobInput {
    JobInput {
        id: "bench-job".into(),
        queue: "default".into(),
        job_type: job_type.into(),
        payload: payload.into(),
        attempt: 1,
        max_attempts: 3,
        enqueued_at_ms: 0,
        parent: None,
    }
}

fn host(compile_cache_dir: Option<PathBuf>) -> Host {
    Host::new(
        HostOptions { compile_cache_dir, ..HostOptions::default() },
        Services::new(Cache::memory(), Mailer::outbox(std::env::temp_dir())),
    )
    .unwrap()
}

/// (bench name, component, job type) of the template in each language built here.
fn templates() -> Vec<(&'static str, PathBuf, &'static str)> {
    let mut out = vec![("rust", testkit::wasm::path("plugin_template"), "plugin-template")];
    for (name, lang, dir) in
        [("ts", Lang::Js, "plugin-template-ts"), ("python", Lang::Python, "plugin-template-python")]
    {
        match guest::plugin(lang, dir) {
            Ok(path) => out.push((name, path, dir)),
            Err(why) => eprintln!("template/{name} left out: {why}"),
        }
    }
    out
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let host = host(None);
    let config = Config::default();
    let echo = r#"{"to":"a@example.com","n":1}"#;
    for (crate_name, job_type) in [("noop_plugin", "noop"), ("hostile_plugin", "echo")] {
        let path = testkit::wasm::path(crate_name);
        let (plugin, _) = rt.block_on(host.load_file(&path, |n| config.plugin_settings(n))).unwrap();
        let job = job(job_type, echo);
        // Sanity: the benchmark measures jobs that succeed.
        assert!(rt.block_on(plugin.run(&job)).outcome.is_success());
        c.bench_function(&format!("instantiate+handle/{crate_name}"), |b| {
            b.to_async(&rt).iter(|| plugin.run(&job));
        });
    }
    for (name, path, job_type) in templates() {
        let (plugin, _) = rt.block_on(host.load_file(&path, |n| config.plugin_settings(n))).unwrap();
        let job = job(job_type, r#"{"name":"Ada"}"#);
        let report = rt.block_on(plugin.run(&job));
        assert!(report.outcome.is_success(), "{name}: {:?}", report.outcome);
        c.bench_function(&format!("template/{name}"), |b| {
            b.to_async(&rt).iter(|| plugin.run(&job));
        });
    }
}

fn load_cached(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let host = host(Some(cache_dir.path().to_path_buf()));
    let config = Config::default();
    let mut group = c.benchmark_group("load-cached");
    group.sample_size(10);
    for (name, path, _) in templates() {
        let bytes = std::fs::read(&path).unwrap();
        // A cold compile takes seconds: too long for criterion's samples, so
        // three, each into an empty cache, are timed and printed.
        let mut cold: Vec<f64> = (0..3)
            .map(|_| {
                let empty = tempfile::tempdir().unwrap();
                let fresh = self::host(Some(empty.path().to_path_buf()));
                let started = std::time::Instant::now();
                rt.block_on(fresh.load(bytes.clone(), |n| config.plugin_settings(n))).unwrap();
                started.elapsed().as_secs_f64()
            })
            .collect();
        cold.sort_by(f64::total_cmp);
        eprintln!(
            "compile/{name}: {:.1} MiB, cold load (compile) median {:.2} s, min {:.2} s, max {:.2} s",
            bytes.len() as f64 / (1 << 20) as f64,
            cold[1],
            cold[0],
            cold[2]
        );
        // This load compiles and fills the cache; the measured ones hit it.
        rt.block_on(host.load(bytes.clone(), |n| config.plugin_settings(n))).unwrap();
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| host.load(bytes.clone(), |n| config.plugin_settings(n)));
        });
    }
    group.finish();
}

criterion_group!(benches, overhead, load_cached);
criterion_main!(benches);
