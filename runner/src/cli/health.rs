//! `runner health`: asks a running runner's `/health` (or any of its
//! probes) and exits 0 if it answers 200, 1 otherwise, saying why in one
//! line. It is the health check of the container image, which is built
//! from scratch and so has no `curl` to ask with.

use anyhow::{Context, Result, bail};
use http_body_util::Empty;
use std::process::ExitCode;
use std::time::Duration;

/// How long the whole check may take: a probe that hangs is a failure.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// The probe to ask (`/health`, `/ready`), plain HTTP.
    #[arg(long, default_value = "http://127.0.0.1:8080/health")]
    pub url: String,
}

pub async fn run(args: HealthArgs) -> Result<ExitCode> {
    let status = tokio::time::timeout(TIMEOUT, ask(&args.url))
        .await
        .with_context(|| format!("{} did not answer within {TIMEOUT:?}", args.url))??;
    if status != 200 {
        bail!("{} answered {status}", args.url);
    }
    Ok(ExitCode::SUCCESS)
}

/// The status `url` answers a GET with.
async fn ask(url: &str) -> Result<u16> {
    let parsed = url::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    if parsed.scheme() != "http" {
        bail!("`{url}`: only http:// (the probes are served on the runner's own address)");
    }
    let host = parsed.host_str().with_context(|| format!("`{url}` names no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    // An IPv6 address is written in brackets (`[::1]`), which a socket
    // address does not take.
    let stream = match parsed.host() {
        Some(url::Host::Ipv6(ip)) => tokio::net::TcpStream::connect((ip, port)).await,
        _ => tokio::net::TcpStream::connect((host, port)).await,
    }
    .with_context(|| format!("cannot reach {url}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let request = http::Request::get(path)
        .header(http::header::HOST, format!("{host}:{port}"))
        .body(Empty::<bytes::Bytes>::new())?;
    let response = sender.send_request(request).await.with_context(|| format!("no answer from {url}"))?;
    Ok(response.status().as_u16())
}
