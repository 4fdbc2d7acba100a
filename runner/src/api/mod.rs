//! The HTTP API (`/api/v1`), health, readiness and Prometheus metrics.
//!
//! Layout: `error` (one error type, JSON bodies), `auth` (tokens, and the
//! cross-site and rebinding guard), `session` (the dashboard's sign-ins,
//! in Redis), `jobs` (queues and jobs), `system` (schedules, plugins,
//! runners, health, metrics, OpenAPI). `app()` builds the router, so tests
//! can call it without a socket.
//!
//! Security: with a token configured every route but `/health` needs it;
//! without one the server listens on loopback only, answers only to
//! loopback names, and says so at start. A state-changing request from a
//! page of another origin is refused. Request bodies are size-limited.
//! Plugins' secrets are never shown.

pub mod auth;
pub mod error;
pub mod jobs;
pub mod session;
pub mod system;

use crate::daemon::registry::Registry;
use crate::metrics::Metrics;
use crate::queue::Connection;
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;

pub struct ApiState {
    pub connection: Connection,
    pub registry: Option<Arc<Registry>>,
    pub metrics: Arc<Metrics>,
    /// The queues this runner consumes (for readiness).
    pub consumed: Vec<String>,
    /// For the dashboard's sign-in.
    pub tokens: Arc<auth::Tokens>,
    /// The queues the config declares as BullMQ's, shown beside the native ones.
    pub bull: Arc<crate::bull::BullQueues>,
    /// What `/ready` and the dashboard say of Redis's durability.
    pub redis_policy: RedisPolicy,
    /// Sessions, cookies and the origins trusted besides the runner's own.
    pub web: WebOptions,
}

/// The browser-facing settings (`[http]`).
#[derive(Debug, Clone)]
pub struct WebOptions {
    pub session_ttl: std::time::Duration,
    pub secure_cookies: bool,
    pub origins: Vec<String>,
}

impl Default for WebOptions {
    fn default() -> Self {
        let http = crate::config::HttpSection::default();
        WebOptions { session_ttl: http.session_ttl, secure_cookies: http.secure_cookies, origins: http.origins }
    }
}

/// How the runner treats the Redis it uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisPolicy {
    /// The runner started Redis itself (AOF on, no eviction).
    pub embedded: bool,
    /// `[redis] allow_eviction`: an evicting Redis is reported, not refused.
    pub allow_eviction: bool,
}

impl ApiState {
    /// The queue named `name`, native or BullMQ-backed; a bad name is a 400.
    pub fn queue(&self, name: &str) -> error::ApiResult<crate::any_queue::AnyQueue> {
        crate::any_queue::AnyQueue::open(&self.connection, &self.bull, name).map_err(error::ApiError::bad)
    }

    /// Every queue's name, native and BullMQ-backed.
    pub async fn queue_names(&self) -> anyhow::Result<Vec<String>> {
        crate::any_queue::AnyQueue::names(&self.connection, &self.bull).await
    }
}

pub fn app(state: Arc<ApiState>, max_body: usize) -> Router {
    let api = Router::new()
        .route("/queues", get(jobs::queues))
        .route("/queues/{queue}/jobs", post(jobs::enqueue).get(jobs::list))
        .route("/queues/{queue}/jobs/bulk", post(jobs::enqueue_bulk))
        .route("/queues/{queue}/jobs/{id}", get(jobs::get).delete(jobs::remove))
        .route("/queues/{queue}/jobs/{id}/retry", post(jobs::retry))
        .route("/queues/{queue}/jobs/{id}/promote", post(jobs::promote))
        .route("/queues/{queue}/retry-failed", post(jobs::retry_failed))
        .route("/queues/{queue}/clean", post(jobs::clean))
        .route("/queues/{queue}/pause", post(jobs::pause))
        .route("/queues/{queue}/resume", post(jobs::resume))
        .route("/schedules", get(system::list_schedules))
        .route("/schedules/{id}", get(system::get_schedule).put(system::put_schedule).delete(system::delete_schedule))
        .route("/plugins", get(system::plugins))
        .route("/runners", get(system::runners))
        .route("/openapi.json", get(system::openapi));
    Router::new()
        .nest("/api/v1", api)
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/metrics", get(system::metrics))
        .nest("/dashboard", crate::dashboard::routes())
        .fallback(|| async { error::ApiError::NotFound("no such route; see /api/v1/openapi.json".into()) })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Binds the API. Without a token, a non-loopback address is refused for
/// loopback on the same port, and the runner says so.
pub async fn bind(bind: &str, tokens_required: bool) -> Result<tokio::net::TcpListener> {
    let mut addr: SocketAddr = bind.parse().with_context(|| format!("http.bind `{bind}`"))?;
    if !tokens_required && !addr.ip().is_loopback() {
        tracing::warn!(requested = %addr, "no API token is configured: listening on loopback only (set RUNNER_TOKEN to listen on {addr})");
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    } else if !tokens_required {
        tracing::warn!(%addr, "no API token is configured: the API is open to anyone on this machine");
    }
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "HTTP API listening");
    Ok(listener)
}
