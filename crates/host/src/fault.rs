//! Turns whatever stopped a plugin into a `Fault` a person can act on: the
//! kind, a message in plain words, and the wasm backtrace with function names.

use jobrunner_job::{Fault, FaultKind};
use std::time::Duration;
use wasmtime::{Trap, WasmBacktrace};

/// Raised by the store's limiter when a plugin grows memory past its cap.
#[derive(Debug, thiserror::Error)]
#[error("the plugin tried to grow its memory to {desired} bytes; its cap is {cap} bytes")]
pub struct MemoryLimitExceeded {
    pub desired: usize,
    pub cap: usize,
}

/// Classifies an error from instantiating or calling a plugin.
///
/// `stderr` is what the guest wrote to stderr: a Rust panic prints its
/// message there before it traps with `unreachable`, and that message is
/// far more useful than the trap.
pub fn classify(error: &wasmtime::Error, timeout: Duration, stderr: &str) -> Fault {
    let backtrace = error.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
    if let Some(limit) = error.downcast_ref::<MemoryLimitExceeded>() {
        return Fault { kind: FaultKind::MemoryLimit, message: limit.to_string(), backtrace };
    }
    let (kind, message) = match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            (FaultKind::Timeout, format!("stopped after its {} timeout", humantime::format_duration(timeout)))
        }
        Some(Trap::StackOverflow) => {
            (FaultKind::StackOverflow, "the call stack overflowed (deep or endless recursion)".to_string())
        }
        Some(Trap::UnreachableCodeReached) if stderr.contains("panicked at") => {
            (FaultKind::Panic, panic_message(stderr))
        }
        Some(trap) => (FaultKind::Trap, format!("wasm trap: {trap}")),
        None => (FaultKind::Trap, format!("{error:#}")),
    };
    Fault { kind, message, backtrace }
}

/// The panic's own lines from stderr: "panicked at src/lib.rs:3:5:" and the
/// message after it, without the "note: run with RUST_BACKTRACE" hint.
fn panic_message(stderr: &str) -> String {
    let start = stderr.find("panicked at").unwrap_or(0);
    stderr[start..].lines().filter(|l| !l.starts_with("note:")).take(4).collect::<Vec<_>>().join(" ").trim().to_string()
}

/// The fault for a job that outlived its timeout while the guest was
/// waiting on the host (where epoch interruption cannot reach it).
pub fn timed_out_in_host(timeout: Duration) -> Fault {
    Fault {
        kind: FaultKind::Timeout,
        message: format!(
            "stopped after its {} timeout while waiting on a host call",
            humantime::format_duration(timeout)
        ),
        backtrace: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_message_keeps_location_and_text() {
        let stderr =
            "\nthread '<unnamed>' panicked at src/lib.rs:10:5:\nboom: bad state\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(panic_message(stderr), "panicked at src/lib.rs:10:5: boom: bad state");
    }

    #[test]
    fn memory_limit_is_recognised() {
        let e = wasmtime::Error::new(MemoryLimitExceeded { desired: 100, cap: 10 });
        let f = classify(&e, Duration::from_secs(1), "");
        assert_eq!(f.kind, FaultKind::MemoryLimit);
        assert!(f.message.contains("cap is 10 bytes"));
    }
}
