//! The HTTP API (`/api/v1`), health, readiness and Prometheus metrics.
//!
//! Layout: `jobs` (queues and jobs), `flows` (flows of jobs), `system` (schedules, plugins,
//! runners, health, metrics, OpenAPI); `routes()` lists them, and
//! `openapi.json` documents them (a test keeps the two equal). What they
//! share with the dashboard (state, errors, authentication) is `web`; the
//! router that serves both is `server::app`.
//!
//! Security: with a token configured every route but `/health` needs it;
//! without one the server listens on loopback only, answers only to
//! loopback names, and says so at start. A state-changing request from a
//! page of another origin is refused. Request bodies are size-limited.
//! Plugins' secrets are never shown.

pub mod flows;
pub mod jobs;
pub mod system;

use crate::web::ApiState;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

/// The routes under `/api/v1`.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/queues", get(jobs::queues))
        .route("/queues/{queue}", get(jobs::get_queue))
        .route("/queues/{queue}/jobs", post(jobs::enqueue).get(jobs::list))
        .route("/queues/{queue}/jobs/bulk", post(jobs::enqueue_bulk))
        .route("/queues/{queue}/jobs/{id}", get(jobs::get).delete(jobs::remove))
        .route("/queues/{queue}/jobs/{id}/retry", post(jobs::retry))
        .route("/queues/{queue}/jobs/{id}/promote", post(jobs::promote))
        .route("/queues/{queue}/jobs/{id}/cancel", post(jobs::cancel))
        .route("/queues/{queue}/jobs/{id}/children", get(flows::children))
        .route("/queues/{queue}/flows/{id}", axum::routing::delete(flows::remove))
        .route("/flows", post(flows::add))
        .route("/queues/{queue}/events", get(jobs::events))
        .route("/queues/{queue}/retry-failed", post(jobs::retry_failed))
        .route("/queues/{queue}/clean", post(jobs::clean))
        .route("/queues/{queue}/pause", post(jobs::pause))
        .route("/queues/{queue}/resume", post(jobs::resume))
        .route("/schedules", get(system::list_schedules))
        .route("/schedules/{id}", get(system::get_schedule).put(system::put_schedule).delete(system::delete_schedule))
        .route("/plugins", get(system::plugins))
        .route("/runners", get(system::runners))
        .route("/openapi.json", get(system::openapi))
}
