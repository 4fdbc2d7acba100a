//! Hot-reload swap time: from writing a new version of a plugin into the
//! plugins folder to the first job served by that version, through the real
//! daemon (watcher, debounce, compile, link, describe, swap) and a real
//! Redis. Alternates two small plugins that answer `whoami` differently,
//! with the compile cache off so that every swap compiles.
//!
//! Run: `cargo bench -p bench --bench hot_reload`.

use criterion::{Criterion, criterion_group, criterion_main};
use jobrunner_queue::{Connection, JobOptions, NewJob, Queue, State};
use runner::Config;
use std::time::{Duration, Instant};

fn hot_reload(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let redis = testkit::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let versions = [
        (std::fs::read(testkit::wasm::path("noop_plugin")).unwrap(), "noop"),
        (std::fs::read(testkit::wasm::path("hostile_plugin")).unwrap(), "hostile"),
    ];
    std::fs::write(plugins.join("whoami.wasm"), &versions[0].0).unwrap();
    let mut config = Config::default();
    config.redis.url = Some(redis.url());
    config.runner.plugins_dir = plugins.clone();
    config.runner.state_dir = dir.path().join("state");
    // A new plugin is always compiled; the disk cache would hide that here,
    // where the same two versions alternate.
    config.runner.compile_cache = false;
    config.http.bind = "127.0.0.1:0".into();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = rt.spawn(runner::daemon::serve(config, None, async {
        let _ = stop_rx.await;
    }));
    let q = rt.block_on(async { Queue::new(Connection::connect(&redis.url()).await.unwrap(), "default").unwrap() });

    // Runs `whoami` jobs one after another until one is answered by `want`.
    let served_by = |want: &'static str| {
        let q = q.clone();
        async move {
            for n in 0u64.. {
                let id = format!("probe-{}-{n}", ulid::Ulid::new());
                q.enqueue(NewJob {
                    id: Some(id.clone()),
                    job_type: "whoami".into(),
                    payload: "{}".into(),
                    options: JobOptions::default(),
                })
                .await
                .unwrap();
                loop {
                    let r = q.get(&id).await.unwrap();
                    match r {
                        Some(r) if r.state == State::Completed => {
                            if r.result.as_ref().and_then(|v| v["by"].as_str()) == Some(want) {
                                return;
                            }
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                }
            }
        }
    };
    rt.block_on(served_by("noop"));

    let mut g = c.benchmark_group("hot_reload");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    let mut next = 1;
    g.bench_function("write_to_serving", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (bytes, name) = &versions[next];
                let started = Instant::now();
                std::fs::write(plugins.join("whoami.wasm"), bytes).unwrap();
                rt.block_on(served_by(name));
                total += started.elapsed();
                next = 1 - next;
            }
            total
        })
    });
    g.finish();
    let _ = stop_tx.send(());
    rt.block_on(daemon).unwrap().unwrap();
}

criterion_group!(benches, hot_reload);
criterion_main!(benches);
