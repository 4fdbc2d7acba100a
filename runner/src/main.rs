//! The `runner` binary: parses the command line, sets up logging, runs the
//! command, and turns an error into one line on stderr and exit code 2.

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = runner::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RUNNER_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
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
