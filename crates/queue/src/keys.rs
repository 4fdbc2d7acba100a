//! The Redis key layout of one queue. Every key carries the queue's name as
//! a hash tag, `{NAME}`, so a queue lives in one Redis Cluster slot and each
//! script, which always declares all of these keys, touches one slot. Every
//! key starts with the connection's prefix (`jr` by default; see
//! `connection.rs`).
//!
//! See `docs/queue-protocol.md` for what each key holds.

/// The names of the fixed keys, in the order the scripts expect them
/// (then seven of the flows', then the counts of finished jobs behind the
/// dashboard's charts and the runs of completed jobs; `lua/prelude.lua`
/// says what each holds).
pub const NAMES: [&str; 36] = [
    "meta",
    "wait",
    "delayed",
    "active",
    "completed",
    "failed",
    "specs",
    "attempts",
    "tokens",
    "created",
    "results",
    "errors",
    "logs",
    "progress",
    "stalls",
    "prios",
    "events",
    "rl",
    "schedules",
    "schedule_next",
    "groups",
    "gvt",
    "grl",
    "gscore",
    "idle",
    "unstarted",
    "dead",
    "parents",
    "notify",
    "waiting_children",
    "spawn",
    "kids",
    "vals",
    "fcounts",
    "stats",
    "runs",
];

/// The keys of the lean one-job enqueue (`lua/push.lua`), in its order:
/// only the ones it touches.
pub const PUSH_NAMES: [&str; 11] =
    ["meta", "wait", "active", "specs", "attempts", "tokens", "events", "gvt", "idle", "unstarted", "delayed"];

#[derive(Debug, Clone)]
pub struct Keys {
    pub all: Vec<String>,
    /// `PUSH_NAMES`, in that order.
    pub push: Vec<String>,
    /// The pub/sub channel that wakes idle workers of this queue.
    pub wake_channel: String,
    /// The pub/sub channel of requests to cancel a running job (its id).
    pub cancel_channel: String,
    /// The pub/sub channel a flow's child that finished announces itself
    /// on (its id), for a runner to relay its outcome to its parent.
    pub flow_channel: String,
}

impl Keys {
    /// The keys of `queue` under `prefix` (`jr` unless the operator set
    /// another).
    pub fn new(prefix: &str, queue: &str) -> Keys {
        let key = |n: &&str| format!("{prefix}:{{{queue}}}:{n}");
        Keys {
            all: NAMES.iter().map(key).collect(),
            push: PUSH_NAMES.iter().map(key).collect(),
            wake_channel: format!("{prefix}:{{{queue}}}:wake"),
            cancel_channel: format!("{prefix}:{{{queue}}}:cancel"),
            flow_channel: format!("{prefix}:{{{queue}}}:flows"),
        }
    }

    pub fn get(&self, name: &str) -> &str {
        let i = NAMES.iter().position(|n| *n == name).expect("a known key name");
        &self.all[i]
    }
}

/// The set of queue names under a prefix (`jr:queues`), kept so that
/// `runner queues` can list them without scanning the keyspace.
pub fn registry(prefix: &str) -> String {
    format!("{prefix}:queues")
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_share_the_hash_tag() {
        let k = super::Keys::new("jr", "emails");
        assert_eq!(k.get("wait"), "jr:{emails}:wait");
        assert_eq!(super::Keys::new("staging", "emails").get("meta"), "staging:{emails}:meta");
        assert!(k.all.iter().all(|key| key.contains("{emails}")));
        // The lean enqueue's keys are some of the same keys.
        assert!(k.push.iter().all(|key| k.all.contains(key)));
        assert_eq!(k.push.len(), super::PUSH_NAMES.len());
        assert_eq!(k.wake_channel, "jr:{emails}:wake");
        // The scripts make the flow channel from the `meta` key's name.
        assert_eq!(k.flow_channel, format!("{}flows", k.get("meta").strip_suffix("meta").unwrap()));
    }

    /// The names a script's key table gives `KEYS[1]`, `KEYS[2]`, ... in
    /// order (`name = KEYS[i]`, as the scripts write them).
    fn lua_key_table(script: &str) -> Vec<String> {
        let mut found: Vec<(usize, String)> = script
            .split(',')
            .flat_map(|part| part.split('{'))
            .filter_map(|part| {
                let (name, rest) = part.split_once("= KEYS[")?;
                let index = rest.split(']').next()?.parse().ok()?;
                Some((index, name.trim().to_string()))
            })
            .collect();
        found.sort();
        assert!(found.iter().enumerate().all(|(i, (n, _))| *n == i + 1), "KEYS indexes with a gap: {found:?}");
        found.into_iter().map(|(_, name)| name).collect()
    }

    /// The scripts name their keys by position: the order Rust passes them
    /// in (`NAMES`, `PUSH_NAMES`) is the order the Lua key tables expect.
    #[test]
    fn the_scripts_key_tables_are_in_the_order_rust_passes_the_keys() {
        assert_eq!(lua_key_table(include_str!("lua/prelude.lua")), super::NAMES);
        assert_eq!(lua_key_table(include_str!("lua/push.lua")), super::PUSH_NAMES);
    }
}
