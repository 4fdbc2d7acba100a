//! The HTTP server: the router of the API (`/api/v1`), the probes
//! (`/health`, `/ready`, `/metrics`) and the dashboard (`/dashboard`),
//! behind one guard (`web::auth`) and one body limit; and binding it.
//!
//! Security: with a token configured every route but `/health` needs it;
//! without one the server listens on loopback only, answers only to
//! loopback names, and says so at start.

use crate::web::{ApiState, auth, error};
use crate::{api, dashboard};
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;

/// The whole router, so tests can call it without a socket.
pub fn app(state: Arc<ApiState>, max_body: usize) -> Router {
    Router::new()
        .nest("/api/v1", api::routes())
        .route("/health", get(api::system::health))
        .route("/ready", get(api::system::ready))
        .route("/metrics", get(api::system::metrics))
        .nest("/dashboard", dashboard::routes())
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
