//! What the HTTP API and the dashboard share: the state every handler
//! reads (`ApiState`), one error type with JSON bodies (`error`), the
//! authentication and cross-site guard before every route (`auth`), the
//! dashboard's sign-in sessions in Redis (`session`), and named users with
//! argon2id passwords (`users`).
//!
//! Architecture invariant: this module knows no route; `api` and
//! `dashboard` build on it, and `server` puts them together.

pub mod auth;
pub mod error;
pub mod session;
pub mod users;

use crate::metrics::Metrics;
use crate::registry::Registry;
use jobrunner_bullmq::{AnyQueue, BullQueues};
use jobrunner_queue::Connection;
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
    pub bull: Arc<BullQueues>,
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
    pub fn queue(&self, name: &str) -> error::ApiResult<AnyQueue> {
        AnyQueue::open(&self.connection, &self.bull, name).map_err(error::ApiError::bad)
    }

    /// Every queue's name, native and BullMQ-backed.
    pub async fn queue_names(&self) -> anyhow::Result<Vec<String>> {
        AnyQueue::names(&self.connection, &self.bull).await
    }
}
