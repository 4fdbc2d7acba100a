//! Runner heartbeats: each runner records itself in `PREFIX:runners`
//! (`jr:runners`) every few seconds, so the API can list the runners
//! connected to this Redis under the same prefix.

use crate::Connection;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The hash of heartbeats under a connection's prefix: runner id →
/// `RunnerInfo` as JSON.
pub fn key(conn: &Connection) -> String {
    conn.key("runners")
}
/// How often a runner says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A runner silent for this long is shown as gone, and its entry removed.
pub const GONE_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunnerInfo {
    pub id: String,
    pub hostname: String,
    pub pid: u32,
    pub version: String,
    pub started_at_ms: u64,
    pub last_seen_ms: u64,
    pub queues: Vec<String>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub async fn beat(conn: &Connection, info: &mut RunnerInfo) -> Result<()> {
    info.last_seen_ms = now_ms();
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
    let cutoff = now_ms().saturating_sub(GONE_AFTER.as_millis() as u64);
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
