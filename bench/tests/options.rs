//! The harness refuses options it cannot run before it starts anything (a
//! Redis, a build of a guest), naming the option and what it takes.

use std::process::Command;

fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        // Without a backtrace the error is the one line a user sees.
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .expect("the harness runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?} was not refused: {stderr}");
    stderr
}

#[test]
fn the_guest_measure_refuses_a_cache_it_does_not_have() {
    let e = refused(&["--only", "guest", "--guest-cache", "disk"]);
    assert!(e.contains("--guest-cache disk: memory, suspending or redis"), "{e}");
}

#[test]
fn the_guest_measure_refuses_lanes_it_cannot_fill() {
    for lanes in ["0", "20001"] {
        let e = refused(&["--only", "guest", "--guest-lanes", lanes]);
        assert!(e.contains(&format!("--guest-lanes {lanes}: from 1 to 20000")), "{e}");
    }
}
