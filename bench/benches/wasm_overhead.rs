//! Per-job overhead of the wasm sandbox: a fresh store, instantiation from
//! the pre-linked component, the `handle` call and the teardown, for the
//! no-op plugin (nothing but the host's cost) and for the hostile fixture's
//! `echo` (a plugin with a real standard library and JSON in and out).
//!
//! Run: `cargo bench -p bench --bench wasm_overhead`.

use criterion::{Criterion, criterion_group, criterion_main};
use runner::cache::{Cache, MemoryCache};
use runner::host::{HostOptions, Services};
use runner::mail::Mailer;
use runner::{Config, Host, JobInput};

fn job(job_type: &str) -> JobInput {
    JobInput {
        id: "bench-job".into(),
        queue: "default".into(),
        job_type: job_type.into(),
        payload: r#"{"to":"a@example.com","n":1}"#.into(),
        attempt: 1,
        max_attempts: 3,
        enqueued_at_ms: 0,
    }
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let host = Host::new(
        HostOptions::default(),
        Services {
            cache: Cache::Memory(MemoryCache::new()),
            mailer: Mailer::outbox(std::env::temp_dir()),
            metrics: None,
        },
    )
    .unwrap();
    let config = Config::default();
    for (crate_name, job_type) in [("noop_plugin", "noop"), ("hostile_plugin", "echo")] {
        let path = testkit::wasm::path(crate_name);
        let (plugin, _) = rt.block_on(host.load_file(&path, |n| config.plugin_settings(n))).unwrap();
        let job = job(job_type);
        // Sanity: the benchmark measures jobs that succeed.
        assert!(rt.block_on(plugin.run(&job)).outcome.is_success());
        c.bench_function(&format!("instantiate+handle/{crate_name}"), |b| {
            b.to_async(&rt).iter(|| plugin.run(&job));
        });
    }
}

criterion_group!(benches, overhead);
criterion_main!(benches);
