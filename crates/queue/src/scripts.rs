//! The queue's Lua scripts: one generated line, the default job options as
//! JSON (`DEFAULT_OPTS`), which apply where neither a job's spec nor its
//! queue's policy says, from `options::DEFAULTS` itself so that Lua and
//! Rust cannot disagree;
//! then `common.lua`, the shared prelude and the script's body. The lean
//! one-job enqueue (`push`) is `common.lua` and its body alone (it reads no
//! option). `redis::Script` sends them by hash
//! (EVALSHA) and loads them again after a server restart (NOSCRIPT), so a
//! restarted Redis needs nothing from us.

use crate::options::DEFAULTS;
use std::sync::LazyLock;

fn defaults_line() -> String {
    let json = serde_json::to_string(&DEFAULTS).expect("the default options serialize");
    // A Lua long string: the JSON needs no escaping (it holds no `]==]`).
    // Decoded only where a script needs it (a failure), not on every call.
    format!("local DEFAULT_OPTS = [==[{json}]==]\n")
}

macro_rules! script {
    ($file:literal) => {
        redis::Script::new(&format!(
            "{}{}\n{}\n{}",
            defaults_line(),
            include_str!("lua/common.lua"),
            include_str!("lua/prelude.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
}

pub struct Scripts {
    pub enqueue: redis::Script,
    pub fetch: redis::Script,
    pub complete: redis::Script,
    pub fail: redis::Script,
    pub extend: redis::Script,
    pub progress: redis::Script,
    pub admin: redis::Script,
    pub schedule: redis::Script,
    pub jobs: redis::Script,
    pub release: redis::Script,
    pub flow: redis::Script,
    /// The lean one-job enqueue: `common.lua` and its body, no prelude.
    pub push: redis::Script,
}

pub static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    enqueue: script!("enqueue.lua"),
    fetch: script!("fetch.lua"),
    complete: script!("complete.lua"),
    fail: script!("fail.lua"),
    extend: script!("extend.lua"),
    progress: script!("progress.lua"),
    admin: script!("admin.lua"),
    schedule: script!("schedule.lua"),
    jobs: script!("jobs.lua"),
    release: script!("release.lua"),
    flow: script!("flow.lua"),
    push: redis::Script::new(concat!(include_str!("lua/common.lua"), "\n", include_str!("lua/push.lua"))),
});
