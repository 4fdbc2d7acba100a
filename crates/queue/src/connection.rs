//! The connection to Redis: one server or a Redis Cluster, behind one type.
//!
//! - `redis://` and `rediss://` (TLS) URLs, with a password or an ACL user
//!   (`redis://user:pass@host:6379/0`), as the `redis` crate parses them;
//! - several URLs separated by commas are the seed nodes of a cluster.
//!
//! Both kinds reconnect by themselves with backoff: a command that fails
//! while Redis is away returns an error, and the next one reconnects. The
//! callers retry their loops; nothing here waits forever.
//!
//! A connection also carries the key prefix (`jr` unless `with_prefix`
//! says otherwise: `[redis] prefix`), so that every key built from it, by
//! queues, schedules, the runners' heartbeats, the cache and the
//! dashboard's sessions, is in the same namespace: two apps or
//! environments with their own prefixes share one Redis without seeing
//! each other.

use anyhow::{Context, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use std::time::Duration;

/// How long one command may take before it fails (and is retried by its
/// caller); long enough for a slow script, short enough that a worker
/// notices a dead server quickly.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The socket options of every connection to Redis.
///
/// - `TCP_NODELAY`: a command goes out at once rather than waiting for the
///   previous one's acknowledgement (Nagle), as every Redis client does.
/// - `TCP_USER_TIMEOUT` and keepalive: a connection whose packets go
///   unanswered (a runner cut off from Redis by the network, not by a
///   closed socket) is closed by the kernel within `DEAD_PEER`, so the
///   client reconnects and the runner rejoins as soon as the network
///   heals. Without them a command only times out (`RESPONSE_TIMEOUT`),
///   the socket stays, and after a long partition TCP's backoff between
///   retransmissions (up to two minutes) kept the runner away from a
///   Redis that was back; an idle pub/sub connection never noticed at all.
fn tcp_settings() -> redis::io::tcp::TcpSettings {
    use redis::io::tcp::socket2::TcpKeepalive;
    let keepalive =
        TcpKeepalive::new().with_time(Duration::from_secs(5)).with_interval(Duration::from_secs(2)).with_retries(3);
    redis::io::tcp::TcpSettings::default().set_nodelay(true).set_keepalive(keepalive).set_user_timeout(DEAD_PEER)
}

/// How long sent data or keepalive probes may go unacknowledged before the
/// kernel gives the connection up (`tcp_settings`).
const DEAD_PEER: Duration = Duration::from_secs(10);

/// `url` as connection info with `tcp_settings`.
fn info(url: &str) -> Result<redis::ConnectionInfo> {
    use redis::IntoConnectionInfo;
    Ok(url
        .into_connection_info()
        .with_context(|| format!("invalid Redis URL `{}`", redact(url)))?
        .set_tcp_settings(tcp_settings()))
}
/// The longest one blocking read (`XREAD BLOCK`) waits; a longer wait is a
/// loop of them, so a dead server is noticed within this plus the
/// response timeout.
pub(crate) const BLOCKING_READ_MAX: Duration = Duration::from_secs(30);

#[derive(Clone)]
enum Kind {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

#[derive(Clone)]
pub struct Connection {
    kind: Kind,
    /// The URLs it was opened with, naming the server(s) for caches keyed by it.
    target: std::sync::Arc<str>,
    /// A client for the first node, for pub/sub (which reaches every node
    /// of a cluster) and for blocking calls.
    first: redis::Client,
    /// The first part of every key: `jr` by default.
    prefix: std::sync::Arc<str>,
}

/// The key prefix when none is given.
pub const DEFAULT_PREFIX: &str = "jr";

/// Checks a key prefix: 1 to 64 letters, digits, `_`, `-`, `.` and `:`
/// (no braces, which would take over the queues' Redis Cluster hash tags,
/// and no spaces).
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.len() > 64 {
        return Err(format!("prefix `{prefix}`: 1 to 64 characters"));
    }
    if let Some(c) = prefix.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))) {
        return Err(format!(
            "prefix `{prefix}`: `{c}` is not allowed (letters, digits, `_`, `-`, `.` and `:` are; braces would break the queues' cluster hash tags)"
        ));
    }
    if prefix.ends_with(':') {
        return Err(format!("prefix `{prefix}`: the runner adds the `:` after it"));
    }
    Ok(())
}

impl Connection {
    pub async fn connect(url: &str) -> Result<Connection> {
        let urls: Vec<&str> = url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
        anyhow::ensure!(!urls.is_empty(), "no Redis URL given");
        let first =
            redis::Client::open(info(urls[0])?).with_context(|| format!("invalid Redis URL `{}`", redact(urls[0])))?;
        let kind = if urls.len() == 1 {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(6)
                .set_max_delay(Duration::from_secs(2));
            Kind::Single(
                ConnectionManager::new_with_config(first.clone(), config)
                    .await
                    .with_context(|| format!("cannot connect to Redis at {}", redact(urls[0])))?,
            )
        } else {
            let client =
                redis::cluster::ClusterClientBuilder::new(urls.iter().map(|u| info(u)).collect::<Result<Vec<_>>>()?)
                    .tcp_settings(tcp_settings())
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(6)
                    .build()
                    .context("invalid Redis Cluster URLs")?;
            Kind::Cluster(client.get_async_connection().await.context("cannot connect to the Redis Cluster")?)
        };
        Ok(Connection { kind, first, target: url.into(), prefix: DEFAULT_PREFIX.into() })
    }

    /// The same connection, its keys under `prefix` instead (checked).
    pub fn with_prefix(&self, prefix: &str) -> Result<Connection> {
        check_prefix(prefix).map_err(anyhow::Error::msg)?;
        Ok(Connection { prefix: prefix.into(), ..self.clone() })
    }

    /// The first part of every key this connection's users build.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A key in this connection's namespace: `PREFIX:rest`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    /// The server(s) this connection talks to, as given.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.kind, Kind::Cluster(_))
    }

    pub(crate) fn pubsub_client(&self) -> &redis::Client {
        &self.first
    }

    /// Runs a script with the given keys and arguments (on a cluster, the
    /// keys must share one slot). For stores beside the queues, such as the
    /// runner's cache; a queue's own state changes only through `Queue`.
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[Vec<u8>],
    ) -> redis::RedisResult<T> {
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(k);
        }
        for a in args {
            invocation.arg(a.as_slice());
        }
        match &self.kind {
            Kind::Single(c) => invocation.invoke_async(&mut c.clone()).await,
            Kind::Cluster(c) => invocation.invoke_async(&mut c.clone()).await,
        }
    }

    /// Runs one command.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match &self.kind {
            Kind::Single(c) => cmd.query_async(&mut c.clone()).await,
            Kind::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }

    pub(crate) async fn pipeline<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> redis::RedisResult<T> {
        match &self.kind {
            Kind::Single(c) => pipe.query_async(&mut c.clone()).await,
            Kind::Cluster(c) => pipe.query_async(&mut c.clone()).await,
        }
    }

    /// A new connection for blocking reads of up to `BLOCKING_READ_MAX`
    /// (a cluster's routes each read to the node that holds its key).
    pub(crate) async fn blocking(&self) -> Result<Blocking> {
        let timeout = BLOCKING_READ_MAX + RESPONSE_TIMEOUT;
        if self.is_cluster() {
            let urls: Vec<&str> = self.target.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
            let client =
                redis::cluster::ClusterClientBuilder::new(urls.iter().map(|u| info(u)).collect::<Result<Vec<_>>>()?)
                    .tcp_settings(tcp_settings())
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(timeout)
                    .build()
                    .context("invalid Redis Cluster URLs")?;
            let conn = client.get_async_connection().await.context("cannot connect to the Redis Cluster")?;
            Ok(Blocking::Cluster(conn))
        } else {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(timeout));
            let conn = self
                .first
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .with_context(|| format!("cannot connect to Redis at {}", redact(&self.target)))?;
            Ok(Blocking::Single(conn))
        }
    }

    /// Whether the server answers now.
    pub async fn ping(&self) -> bool {
        self.query::<String>(&redis::cmd("PING")).await.is_ok()
    }
}

/// A connection of its own for blocking reads (`XREAD BLOCK`): on the
/// shared, multiplexed connection such a read would hold up every other
/// command until it returned.
pub(crate) enum Blocking {
    Single(redis::aio::MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Blocking {
    pub(crate) async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match self {
            Blocking::Single(c) => cmd.query_async(c).await,
            Blocking::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

/// A URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_are_checked() {
        for good in ["jr", "staging", "app-1.jobs", "team:app"] {
            assert!(super::check_prefix(good).is_ok(), "{good}");
        }
        for bad in ["", "a{b}", "has space", "trailing:", &"x".repeat(65)] {
            assert!(super::check_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(super::redact("redis://app:s3cret@db:6379/0"), "redis://app:***@db:6379/0");
        assert_eq!(super::redact("redis://db:6379"), "redis://db:6379");
    }
}
