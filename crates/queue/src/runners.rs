//! Runner heartbeats: each runner records itself in `PREFIX:runners`
//! (`jr:runners`) every few seconds, so the API can list the runners
//! connected to this Redis under the same prefix.

use crate::Connection;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The hash of heartbeats under a connection's prefix: runner id →
/// `RunnerInfo` as JSON.
pub fn key(conn: &Connection) -> String {
    conn.key("runners")
}
/// How often a runner says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A runner silent for this long is shown as gone, and its entry removed.
pub const GONE_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunnerInfo {
    pub id: String,
    pub hostname: String,
    pub pid: u32,
    pub version: String,
    pub started_at_ms: u64,
    pub last_seen_ms: u64,
    pub queues: Vec<String>,
    /// Per consumed queue, jobs running now against the concurrency
    /// allowed (absent from runners older than this field).
    #[serde(default)]
    pub slots: std::collections::BTreeMap<String, Slots>,
    /// The plugins this runner serves, so that a running job's plugin
    /// version can be told from its type.
    #[serde(default)]
    pub plugins: Vec<PluginBrief>,
    /// The jobs running on it, the longest-running first (a bounded
    /// number), as of the heartbeat.
    #[serde(default)]
    pub running: Vec<RunningJob>,
}

/// A job running on a runner, since when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningJob {
    pub queue: String,
    pub id: String,
    #[serde(rename = "type")]
    pub job_type: String,
    pub started_at_ms: u64,
}

/// A queue's slots on one runner, at its last heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slots {
    pub running: u64,
    pub concurrency: u32,
}

/// A plugin a runner serves: the operator's name, its version, its types;
/// and its figures on this runner since it started (a version no longer
/// loaded is listed too while the runner keeps its figures, with no types).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginBrief {
    pub name: String,
    pub version: String,
    pub job_types: Vec<String>,
    #[serde(default)]
    pub stats: crate::plugin_stats::PluginStats,
}

pub async fn beat(conn: &Connection, info: &mut RunnerInfo) -> Result<()> {
    info.last_seen_ms = crate::stats::now_ms();
    let _: i64 = conn
        .query(redis::cmd("HSET").arg(key(conn)).arg(&info.id).arg(serde_json::to_string(info)?))
        .await
        .context("heartbeat")?;
    Ok(())
}

pub async fn leave(conn: &Connection, id: &str) -> Result<()> {
    let _: i64 = conn.query(redis::cmd("HDEL").arg(key(conn)).arg(id)).await?;
    Ok(())
}

/// The runners seen recently; forgets those silent past `GONE_AFTER`.
pub async fn list(conn: &Connection) -> Result<Vec<RunnerInfo>> {
    let all: Vec<(String, String)> = conn.query(redis::cmd("HGETALL").arg(key(conn))).await.context("runners")?;
    let cutoff = crate::stats::now_ms().saturating_sub(GONE_AFTER.as_millis() as u64);
    let mut out = Vec::new();
    for (id, json) in all {
        match serde_json::from_str::<RunnerInfo>(&json) {
            Ok(r) if r.last_seen_ms >= cutoff => out.push(r),
            _ => {
                let _: i64 = conn.query(redis::cmd("HDEL").arg(key(conn)).arg(&id)).await?;
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}
