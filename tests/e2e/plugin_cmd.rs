//! `runner plugin check`, `compile` and `new`, through the binary.

use crate::{assert_cli_error, runner, stderr, stdout};

#[test]
fn check_describes_a_good_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = testkit::wasm::path("webhook_plugin");
    let out = runner(dir.path(), &["plugin", "check", wasm.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ok: webhook 0.1.0"), "{text}");
    assert!(text.contains("job types: webhook"));
    assert!(text.contains("contract:  jobrunner:plugin/handler@0.2.0 (version 0.2)"), "{text}");
    // A plugin built against 0.1 is still served, and said to be.
    let wasm = testkit::wasm::path("noop_plugin");
    let out = runner(dir.path(), &["plugin", "check", "--json", wasm.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (json["contract"].as_str(), json["plugin"]["contract"].as_str()),
        (Some("jobrunner:plugin/handler@0.1.0"), Some("0.1"))
    );
}

#[test]
fn check_names_what_does_not_match() {
    let dir = tempfile::tempdir().unwrap();
    // The smallest valid component: no imports, no exports.
    std::fs::write(dir.path().join("empty.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
    assert_cli_error(
        &runner(dir.path(), &["plugin", "check", "empty.wasm"]),
        "exports none of jobrunner:plugin/handler@0.2.0, jobrunner:plugin/handler@0.1.0; it exports: nothing",
    );
    // A core module is not a component.
    std::fs::write(dir.path().join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    assert_cli_error(&runner(dir.path(), &["plugin", "check", "core.wasm"]), "not a valid WebAssembly component");
}

#[test]
fn new_writes_a_plugin_that_builds_checks_and_runs() {
    testkit::wasm::build_all();
    let dir = tempfile::tempdir().unwrap();
    let out = runner(dir.path(), &["plugin", "new", "greeter"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let crate_dir = dir.path().join("greeter");
    assert!(crate_dir.join("wit/world.wit").exists());

    // Build it the way its README says, sharing this workspace's target
    // folder so its dependencies are not compiled again.
    let target = testkit::workspace_root().join("target");
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--quiet", "--target", "wasm32-wasip2", "--release"])
        .status()
        .unwrap();
    assert!(status.success(), "the new plugin builds");
    let wasm = target.join("wasm32-wasip2/release/greeter.wasm");
    let out = runner(dir.path(), &["plugin", "check", wasm.to_str().unwrap()]);
    assert!(stdout(&out).starts_with("ok: greeter 0.1.0"), "{}{}", stdout(&out), stderr(&out));
    let out =
        runner(dir.path(), &["exec", wasm.to_str().unwrap(), "--type", "greeter", "--payload", r#"{"name":"Ada"}"#]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(r#"output={"message":"Hello, Ada!"}"#), "{}", stdout(&out));

    // Refusals: a bad name, and a folder that is not empty.
    assert_cli_error(&runner(dir.path(), &["plugin", "new", "Bad_Name"]), "plugin name `Bad_Name`");
    assert_cli_error(&runner(dir.path(), &["plugin", "new", "greeter"]), "already exists");
}

/// `plugin new --lang ts|python` writes a plugin of its own (its `wit/`, its
/// build script) that builds with that language's tools, checks and runs.
fn new_guest_plugin_builds_checks_and_runs(lang: testkit::guest::Lang, flag: &str) {
    use testkit::guest::{self, Lang};
    // The tools come from the shared install; without them, skip (or fail
    // when they are required).
    let ready = match lang {
        Lang::Js => guest::node_modules(),
        Lang::Python => guest::python(),
    };
    if let Err(why) = ready {
        assert!(!guest::required(), "{flag} tools: {why}");
        eprintln!("skipped: no {flag} tools here: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = format!("greeter-{flag}");
    let out = runner(dir.path(), &["plugin", "new", &name, "--lang", flag]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("dist/{name}.wasm")), "{}", stdout(&out));
    let plugin_dir = dir.path().join(&name);
    if lang == Lang::Js {
        // What `npm install` would fetch, taken from the examples' install.
        std::os::unix::fs::symlink(guest::node_modules().unwrap(), plugin_dir.join("node_modules")).unwrap();
    }
    let wasm = guest::build(lang, &plugin_dir).unwrap_or_else(|e| panic!("the new {flag} plugin builds: {e}"));

    let out = runner(dir.path(), &["plugin", "check", wasm.to_str().unwrap()]);
    assert!(stdout(&out).starts_with(&format!("ok: {name} 0.1.0")), "{}{}", stdout(&out), stderr(&out));
    let out = runner(dir.path(), &["exec", wasm.to_str().unwrap(), "--type", &name, "--payload", r#"{"name":"Ada"}"#]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(r#"output={"message":"Hello, Ada!","times":1}"#), "{}", stdout(&out));
}

#[test]
fn new_typescript_plugin_builds_checks_and_runs() {
    new_guest_plugin_builds_checks_and_runs(testkit::guest::Lang::Js, "ts");
}

#[test]
fn new_python_plugin_builds_checks_and_runs() {
    new_guest_plugin_builds_checks_and_runs(testkit::guest::Lang::Python, "python");
}

#[test]
fn compile_fills_the_cache_serve_reads() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::write(dir.path().join("runner.toml"), format!("[runner]\nstate_dir = {:?}\n", state)).unwrap();
    let noop = testkit::wasm::path("noop_plugin");
    let webhook = testkit::wasm::path("webhook_plugin");
    let files = [noop.to_str().unwrap(), webhook.to_str().unwrap()];
    let mut args = vec!["--config", "runner.toml", "plugin", "compile"];
    args.extend(files);
    let out = runner(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("noop 0.1.0: compiled in"), "{text}");
    assert!(text.contains("webhook 0.1.0: compiled in"), "{text}");
    let cached = std::fs::read_dir(state.join("compiled")).unwrap().count();
    assert_eq!(cached, 2, "one entry per plugin");
    // Again: both are found in the cache, as `serve` with this config finds them.
    let text = stdout(&runner(dir.path(), &args));
    assert_eq!(text.matches("already in the cache").count(), 2, "{text}");

    // A file that is not a plugin fails, named, and the others still compile.
    std::fs::write(dir.path().join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let hostile = testkit::wasm::path("hostile_plugin");
    let out =
        runner(dir.path(), &["--config", "runner.toml", "plugin", "compile", "core.wasm", hostile.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("core.wasm"), "{}", stderr(&out));
    assert!(stdout(&out).contains("hostile"), "{}", stdout(&out));

    // With the cache turned off there is nothing to fill: one line, exit 1.
    std::fs::write(dir.path().join("off.toml"), "[runner]\ncompile_cache = false\n").unwrap();
    assert_cli_error(
        &runner(dir.path(), &["--config", "off.toml", "plugin", "compile", files[0]]),
        "the compile cache is off",
    );
}
