//! What an operator asks of the Redis server behind the queues: its
//! version and mode (standalone, or a cluster and its nodes), memory used
//! and at its peak against `maxmemory`, the eviction policy, persistence,
//! clients, operations per second, and what share of its memory the
//! queues' keys hold. The dashboard's Redis page shows it.
//!
//! Everything but the share comes from one `INFO` per node. The share is
//! an estimate from a bounded sample (`SAMPLE_KEYS` random keys and their
//! `MEMORY USAGE`, two pipelined round trips), never a scan of the
//! keyspace: on a Redis with millions of keys a scan would cost seconds.
//! On a cluster it is not estimated (a random key would come from one
//! node only).

use super::Connection;
use anyhow::{Context, Result};
use redis::Value;

/// Keys sampled to estimate the queues' share of memory.
pub const SAMPLE_KEYS: usize = 200;

/// One Redis server (a cluster has several).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct NodeInfo {
    /// `host:port` of a cluster's node; None for a standalone server.
    pub address: Option<String>,
    /// `master` or `slave` (Redis's word for a replica).
    pub role: String,
    pub version: String,
    pub uptime_s: u64,
    pub used_memory: u64,
    pub used_memory_peak: u64,
    /// 0: no limit.
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    pub aof_enabled: bool,
    /// When the last snapshot was saved (seconds since the epoch); 0: never.
    pub rdb_last_save_s: u64,
    /// Writes since that snapshot.
    pub rdb_changes_since_last_save: u64,
    pub connected_clients: u64,
    pub blocked_clients: u64,
    pub ops_per_sec: u64,
    /// Keys in all databases.
    pub keys: u64,
    pub evicted_keys: u64,
}

impl NodeInfo {
    /// Used memory as a share of `maxmemory`, when there is a limit.
    pub fn memory_use(&self) -> Option<f64> {
        (self.maxmemory > 0).then(|| self.used_memory as f64 / self.maxmemory as f64)
    }
}

/// The queues' keys' share of memory, estimated from a sample.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct KeyShare {
    /// Keys sampled (fewer than `SAMPLE_KEYS` only on a small keyspace).
    pub sampled: usize,
    /// Of them, keys under one of the queues' prefixes.
    pub queue_keys: usize,
    /// Bytes of the sampled keys under the prefixes, and of all sampled.
    pub queue_bytes: u64,
    pub sampled_bytes: u64,
}

impl KeyShare {
    /// The estimated share of the keys' memory that the queues hold.
    pub fn fraction(&self) -> Option<f64> {
        (self.sampled_bytes > 0).then(|| self.queue_bytes as f64 / self.sampled_bytes as f64)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerInfo {
    pub cluster: bool,
    pub nodes: Vec<NodeInfo>,
    /// None on a cluster; the error when the server refused the sample
    /// (`MEMORY` or `RANDOMKEY` renamed away, as some managed services do).
    pub share: Option<Result<KeyShare, String>>,
}

/// Reads every node's `INFO`, and estimates the share of memory held by
/// keys starting with any of `prefixes` (each followed by `:`).
pub async fn read(conn: &Connection, prefixes: &[&str]) -> Result<ServerInfo> {
    let reply: Value = conn.query(&redis::cmd("INFO")).await.context("INFO")?;
    let mut nodes = match reply {
        Value::Map(per_node) => per_node
            .into_iter()
            .map(|(address, text)| {
                let address: String = redis::from_redis_value(address)?;
                let text: String = redis::from_redis_value(text)?;
                Ok(NodeInfo { address: Some(address), ..parse(&text) })
            })
            .collect::<Result<Vec<_>, redis::RedisError>>()?,
        other => vec![parse(&redis::from_redis_value::<String>(other)?)],
    };
    nodes.sort_by(|a, b| a.address.cmp(&b.address));
    let share =
        if conn.is_cluster() { None } else { Some(sample_share(conn, prefixes).await.map_err(|e| format!("{e:#}"))) };
    Ok(ServerInfo { cluster: conn.is_cluster(), nodes, share })
}

/// One node's `INFO` text.
fn parse(text: &str) -> NodeInfo {
    let field = |name: &str| -> Option<&str> {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim)
    };
    let number = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // `db0:keys=12,expires=0,avg_ttl=0`, one line per database.
    let keys = text
        .lines()
        .filter(|l| l.starts_with("db") && l.contains(":keys="))
        .filter_map(|l| l.split(":keys=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum();
    NodeInfo {
        address: None,
        role: field("role").unwrap_or("unknown").to_string(),
        version: field("redis_version").unwrap_or("unknown").to_string(),
        uptime_s: number("uptime_in_seconds"),
        used_memory: number("used_memory"),
        used_memory_peak: number("used_memory_peak"),
        maxmemory: number("maxmemory"),
        maxmemory_policy: field("maxmemory_policy").unwrap_or("unknown").to_string(),
        aof_enabled: field("aof_enabled") == Some("1"),
        rdb_last_save_s: number("rdb_last_save_time"),
        rdb_changes_since_last_save: number("rdb_changes_since_last_save"),
        connected_clients: number("connected_clients"),
        blocked_clients: number("blocked_clients"),
        ops_per_sec: number("instantaneous_ops_per_sec"),
        keys,
        evicted_keys: number("evicted_keys"),
    }
}

/// `SAMPLE_KEYS` random keys (repeats counted again, as a sample with
/// replacement is) and the memory each holds.
async fn sample_share(conn: &Connection, prefixes: &[&str]) -> Result<KeyShare> {
    let mut pipe = redis::pipe();
    for _ in 0..SAMPLE_KEYS {
        pipe.cmd("RANDOMKEY");
    }
    let keys: Vec<Option<Vec<u8>>> = conn.pipeline(&pipe).await.context("RANDOMKEY")?;
    let keys: Vec<Vec<u8>> = keys.into_iter().flatten().collect();
    if keys.is_empty() {
        return Ok(KeyShare::default());
    }
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("MEMORY").arg("USAGE").arg(k);
    }
    // A key that expired between the two calls answers nil.
    let sizes: Vec<Option<u64>> = conn.pipeline(&pipe).await.context("MEMORY USAGE")?;
    let mut share = KeyShare::default();
    for (key, size) in keys.iter().zip(sizes) {
        let Some(size) = size else { continue };
        share.sampled += 1;
        share.sampled_bytes += size;
        let ours = prefixes.iter().any(|p| key.strip_prefix(p.as_bytes()).is_some_and(|rest| rest.starts_with(b":")));
        if ours {
            share.queue_keys += 1;
            share.queue_bytes += size;
        }
    }
    Ok(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_of_an_info_text() {
        let text = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:42\r\n# Clients\r\nconnected_clients:3\r\nblocked_clients:1\r\n# Memory\r\nused_memory:1048576\r\nused_memory_peak:2097152\r\nmaxmemory:4194304\r\nmaxmemory_policy:noeviction\r\n# Persistence\r\naof_enabled:1\r\nrdb_last_save_time:1700000000\r\nrdb_changes_since_last_save:7\r\n# Stats\r\ninstantaneous_ops_per_sec:250\r\nevicted_keys:0\r\n# Replication\r\nrole:master\r\n# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0\r\ndb3:keys=5,expires=0,avg_ttl=0\r\n";
        let n = parse(text);
        assert_eq!(n.version, "7.0.15");
        assert_eq!((n.used_memory, n.used_memory_peak, n.maxmemory), (1 << 20, 2 << 20, 4 << 20));
        assert_eq!(n.memory_use(), Some(0.25));
        assert_eq!((n.connected_clients, n.blocked_clients, n.ops_per_sec, n.keys), (3, 1, 250, 15));
        assert!(n.aof_enabled);
        assert_eq!((n.rdb_last_save_s, n.rdb_changes_since_last_save), (1_700_000_000, 7));
        assert_eq!((n.role.as_str(), n.maxmemory_policy.as_str(), n.uptime_s), ("master", "noeviction", 42));
    }

    #[test]
    fn no_limit_means_no_share_of_it() {
        assert_eq!(parse("used_memory:10\r\nmaxmemory:0\r\n").memory_use(), None);
    }
}
