//! The Debian package: built by `deploy/debian/build-deb.sh` from this
//! build of `runner` (`cargo xtask deb` packages the release build the
//! same way), installed on this machine with `dpkg -i`, its unit checked
//! by `systemd-analyze`, the installed binary started as the unit starts
//! it, with the installed config, serving a job; then purged.
//!
//! It installs a package system-wide, so it runs only when asked
//! (`JOBRUNNER_PACKAGE_TEST`, which `cargo xtask ci` sets) and as root.
//! systemd itself does not run here: the unit's sandbox is checked by
//! `systemd-analyze`, not exercised.

use crate::serve::{install, keep_all, queue};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Purges the package when the test ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "jobrunner"]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_debian_package_installs_passes_systemd_analyze_and_serves_a_job() {
    if std::env::var_os("JOBRUNNER_PACKAGE_TEST").is_none() {
        eprintln!(
            "skipped: installs a package on this machine; JOBRUNNER_PACKAGE_TEST=1 runs it (cargo xtask ci sets it)"
        );
        return;
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the package test installs with dpkg: run it as root");
    let work = tempfile::tempdir().unwrap();
    let script = testkit::workspace_root().join("deploy/debian/build-deb.sh");
    let built = Instant::now();
    let deb = run(
        script.to_str().unwrap(),
        &[env!("CARGO_BIN_EXE_runner"), env!("CARGO_PKG_VERSION"), work.path().join("out").to_str().unwrap()],
    );
    let deb = deb.trim();
    let size = std::fs::metadata(deb).unwrap().len();
    println!("built {deb} ({} KiB) in {:.1} s", size / 1024, built.elapsed().as_secs_f64());
    let fields = run("dpkg-deb", &["--field", deb]);
    assert!(fields.contains("Package: jobrunner") && fields.contains("Recommends: redis-server"), "{fields}");
    assert!(fields.contains("Depends: libc6 (>= "), "{fields}");
    let listing = run("dpkg-deb", &["--contents", deb]);
    for file in ["./usr/bin/runner", "./lib/systemd/system/jobrunner.service", "./etc/jobrunner/runner.toml"] {
        assert!(listing.contains(file), "{file} is not in the package:\n{listing}");
    }

    let _installed = Installed;
    run("dpkg", &["-i", deb]);
    let conffiles = run("dpkg-query", &["--showformat=${Conffiles}", "--show", "jobrunner"]);
    assert!(conffiles.contains("/etc/jobrunner/runner.toml"), "not a conffile: {conffiles}");
    assert!(std::path::Path::new("/etc/jobrunner/plugins").is_dir());
    let unit = "/lib/systemd/system/jobrunner.service";
    let verify = Command::new("systemd-analyze").args(["verify", unit]).output().unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "systemd-analyze verify failed: {said}");
    assert!(!said.contains("jobrunner.service:"), "systemd-analyze verify has a word on the unit: {said}");
    let security = Command::new("systemd-analyze").args(["security", "--offline=true", unit]).output().unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for jobrunner.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"))
        .parse()
        .unwrap();
    assert!(exposure <= 2.0, "the unit's sandbox weakened: exposure {exposure}\n{report}");
    println!("systemd-analyze verify: clean; security --offline: exposure {exposure} (0 best, 10 worst)");

    // The unit's own command line, with the installed config; only what
    // the unit would get from /etc/default/jobrunner (Redis) and from its
    // StateDirectory is pointed elsewhere.
    let text = std::fs::read_to_string(unit).unwrap();
    let exec: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line")
        .split_whitespace()
        .collect();
    assert_eq!(exec[0], "/usr/bin/runner");
    let redis = testkit::redis::RedisServer::start();
    install(work.path(), "noop_plugin", "noop.wasm");
    let log = work.path().join("serve.log");
    let mut child = Command::new(exec[0])
        .args(&exec[1..])
        .current_dir(work.path())
        .env("REDIS_URL", redis.url())
        .env("RUNNER_STATE_DIR", work.path().join("state"))
        .env("RUNNER_PLUGINS_DIR", work.path().join("plugins"))
        .env("RUNNER_HTTP_BIND", "127.0.0.1:0")
        .env_remove("RUNNER_QUEUES")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let q = queue(&redis.url(), "default").await;
    let job = jobrunner_queue::NewJob { id: None, job_type: "noop".into(), payload: "{}".into(), options: keep_all() };
    let id = q.enqueue(job).await.unwrap().id;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = q.get(&id).await.unwrap().unwrap();
        if r.state == jobrunner_queue::State::Completed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the installed runner did not serve the job: {r:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The container image's health check: `runner health` asks a probe.
    let addr = std::fs::read_to_string(work.path().join("state/http.addr")).unwrap();
    for probe in ["health", "ready"] {
        let url = format!("http://{}/{probe}", addr.trim());
        let asked = Command::new("/usr/bin/runner").args(["health", "--url", &url]).output().unwrap();
        assert!(asked.status.success(), "runner health --url {url}: {}", String::from_utf8_lossy(&asked.stderr));
    }
    let closed = format!("http://127.0.0.1:{}/health", testkit::free_port());
    let asked = Command::new("/usr/bin/runner").args(["health", "--url", &closed]).output().unwrap();
    let said = String::from_utf8_lossy(&asked.stderr);
    assert!(!asked.status.success() && said.contains("cannot reach") && said.trim().lines().count() == 1, "{said}");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "the installed runner exited {status} on SIGTERM");
    println!(
        "the installed /usr/bin/runner, started as the unit's ExecStart with /etc/jobrunner/runner.toml, served a job and stopped cleanly on SIGTERM"
    );
}
