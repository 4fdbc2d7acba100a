//! The queue's Lua scripts, each the shared prelude followed by its body.
//! `redis::Script` sends them by hash (EVALSHA) and loads them again after
//! a server restart (NOSCRIPT), so a restarted Redis needs nothing from us.

use std::sync::LazyLock;

macro_rules! script {
    ($file:literal) => {
        redis::Script::new(concat!(include_str!("lua/prelude.lua"), "\n", include_str!(concat!("lua/", $file))))
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
});
