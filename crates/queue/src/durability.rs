//! What the Redis server will do with the queues' data: whether it may
//! evict queue keys when it is full (and so drop jobs without a trace), and
//! whether a restart keeps them (append-only file or snapshots).
//!
//! The daemon reads this at start (refusing a Redis that may evict jobs,
//! unless the operator allows it) and with every heartbeat (logging a
//! change); `/ready` and the dashboard show it.
//!
//! Read from `INFO`, which managed Redis services leave on when they rename
//! `CONFIG`; only the snapshot schedule needs `CONFIG GET save`, and is
//! "unknown" without it. On a Redis Cluster, every node answers, and the
//! worst answer counts.

use super::Connection;
use anyhow::{Context, Result, bail};
use redis::Value;

/// What one Redis (or the worst node of a cluster) does with data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Durability {
    /// `maxmemory-policy`.
    pub maxmemory_policy: String,
    /// `maxmemory` in bytes; 0: no limit (the policy then never applies).
    pub maxmemory: u64,
    /// The append-only file is on.
    pub aof: bool,
    /// Snapshots are scheduled (`save` is not empty); None: unknown.
    pub rdb: Option<bool>,
}

impl Durability {
    /// Why this Redis may drop queue keys, if it may: with an `allkeys-*`
    /// policy, a full Redis evicts any key, a queue's job hashes included.
    /// (`volatile-*` evicts only keys with a time to live; of the queue's,
    /// only a rate limit's window counter has one, so it may let a queue
    /// start up to a window of jobs early, which `eviction_note` says.)
    pub fn eviction_risk(&self) -> Option<String> {
        self.maxmemory_policy.starts_with("allkeys-").then(|| {
            format!(
                "Redis's maxmemory-policy is `{}`: when it is full it evicts any key, jobs included, and they are lost without a trace; set it to `noeviction` (or a `volatile-*` policy)",
                self.maxmemory_policy
            )
        })
    }

    /// A milder note on a `volatile-*` policy.
    pub fn eviction_note(&self) -> Option<String> {
        self.maxmemory_policy.starts_with("volatile-").then(|| {
            format!(
                "Redis's maxmemory-policy is `{}`: it evicts only keys with a time to live, which queue data has not; a queue's rate-limit window may be reset early",
                self.maxmemory_policy
            )
        })
    }

    /// Said when neither the append-only file nor snapshots are on: a
    /// restart of Redis loses every job.
    pub fn persistence_warning(&self) -> Option<String> {
        (!self.aof && self.rdb == Some(false)).then(|| {
            "Redis keeps nothing on disk (no append-only file, no snapshots): a restart of Redis loses every job; turn on `appendonly yes`".to_string()
        })
    }
}

/// Reads the server's eviction policy and persistence.
pub async fn read(conn: &Connection) -> Result<Durability> {
    let memory = per_node(conn.query(redis::cmd("INFO").arg("memory")).await.context("INFO memory")?)?;
    let persistence = per_node(conn.query(redis::cmd("INFO").arg("persistence")).await.context("INFO persistence")?)?;
    // `CONFIG` may be renamed away; the snapshot schedule is then unknown.
    let save: Option<Vec<String>> = match conn.query::<Value>(redis::cmd("CONFIG").arg("GET").arg("save")).await {
        Ok(v) => Some(config_values(v)),
        Err(_) => None,
    };
    let mut worst: Option<Durability> = None;
    for (i, info) in memory.iter().enumerate() {
        let field = |text: &str, name: &str| -> Option<String> {
            text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(|v| v.trim().to_string())
        };
        let policy = field(info, "maxmemory_policy").unwrap_or_else(|| "unknown".into());
        let maxmemory = field(info, "maxmemory").and_then(|v| v.parse().ok()).unwrap_or(0);
        let aof = persistence.get(i).and_then(|p| field(p, "aof_enabled")).is_some_and(|v| v == "1");
        let rdb = save.as_ref().map(|s| s.iter().any(|v| !v.trim().is_empty()));
        let node = Durability { maxmemory_policy: policy, maxmemory, aof, rdb };
        worst = Some(match worst {
            None => node,
            Some(w) => {
                let rank = |d: &Durability| {
                    (d.eviction_risk().is_some() as u8) * 4
                        + (d.persistence_warning().is_some() as u8) * 2
                        + d.eviction_note().is_some() as u8
                };
                if rank(&node) > rank(&w) { node } else { w }
            }
        });
    }
    match worst {
        Some(d) => Ok(d),
        None => bail!("INFO returned no node's answer"),
    }
}

/// An `INFO` reply: one text, or (from a cluster) one per node.
fn per_node(v: Value) -> Result<Vec<String>> {
    Ok(match v {
        Value::Map(nodes) => nodes.into_iter().map(|(_, v)| redis::from_redis_value(v)).collect::<Result<_, _>>()?,
        other => vec![redis::from_redis_value(other)?],
    })
}

/// `CONFIG GET save`'s values, from one node or many.
fn config_values(v: Value) -> Vec<String> {
    match v {
        Value::Array(items) => {
            // [name, value] pairs, flat; or one array per node.
            items.into_iter().skip(1).step_by(2).flat_map(config_values).collect()
        }
        Value::Map(pairs) => pairs.into_iter().flat_map(|(_, v)| config_values(v)).collect(),
        other => redis::from_redis_value::<String>(other).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::Durability;

    fn d(policy: &str, aof: bool, rdb: Option<bool>) -> Durability {
        Durability { maxmemory_policy: policy.into(), maxmemory: 1 << 30, aof, rdb }
    }

    #[test]
    fn allkeys_policies_may_drop_jobs() {
        assert!(d("allkeys-lru", true, None).eviction_risk().is_some());
        assert!(d("allkeys-random", true, None).eviction_risk().unwrap().contains("`allkeys-random`"));
        assert!(d("noeviction", true, None).eviction_risk().is_none());
        assert!(d("volatile-lru", true, None).eviction_risk().is_none());
        assert!(d("volatile-lru", true, None).eviction_note().is_some());
    }

    #[test]
    fn no_persistence_is_warned_of_only_when_known() {
        assert!(d("noeviction", false, Some(false)).persistence_warning().is_some());
        assert!(d("noeviction", false, None).persistence_warning().is_none());
        assert!(d("noeviction", true, Some(false)).persistence_warning().is_none());
        assert!(d("noeviction", false, Some(true)).persistence_warning().is_none());
    }
}
