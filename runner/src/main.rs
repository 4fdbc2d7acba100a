//! The `runner` binary: parses the command line, sets up logging, runs the
//! command, and turns an error into one line on stderr and exit code 2.

use clap::Parser;
use std::process::ExitCode;

// A busy runner allocates and frees many small objects per job (a store,
// its tables, futures, Redis frames), from tokio's threads at once; glibc's
// allocator was a quarter of the daemon's time in the profile, mimalloc a
// small fraction of that. It is built without transparent huge pages (see
// `Cargo.toml`), which kept freed memory resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = runner::cli::Cli::parse();
    // A command whose reader goes away (`runner jobs | head`) ends as `ls`
    // and `grep` do, by SIGPIPE: Rust ignores that signal, so printing to
    // the closed pipe failed and `println!` panicked. Sockets are not
    // affected (they write with MSG_NOSIGNAL). The daemon keeps Rust's way:
    // its output is its log, and a log reader that goes away must not stop
    // it.
    if !matches!(cli.command, runner::cli::Command::Serve(_)) {
        // SAFETY: `signal` only sets the disposition; SIG_DFL is a valid one.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // The daemon says what it does; one-shot commands only warn.
    let default_level = if matches!(cli.command, runner::cli::Command::Serve(_)) { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNNER_LOG").unwrap_or_else(|_| default_level.into());
    // Colour only for a person at a terminal; files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if cli.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    match runner::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` joins the context chain into one line: "plugin x.wasm: cannot read ...".
            // Some library errors span lines (a debug-printed byte array);
            // an operator's terminal and log want exactly one.
            let message = format!("{e:#}");
            let one_line: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            eprintln!("error: {}", one_line.join(" "));
            ExitCode::from(2)
        }
    }
}
