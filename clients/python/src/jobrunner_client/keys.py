"""The Redis key layout of one queue, as the runner's `keys.rs` has it: every
key under the prefix (`jr` unless the runners' `[redis] prefix` says
otherwise) and the queue's hash tag, so a queue lives in one Redis Cluster
slot. tests/test_offline.py checks these lists against keys.rs."""

NAMES = (
    "meta", "wait", "delayed", "active", "completed", "failed", "specs", "attempts", "tokens",
    "created", "results", "errors", "logs", "progress", "stalls", "prios", "events", "rl",
    "schedules", "schedule_next", "groups", "gvt", "grl", "gscore", "idle", "unstarted", "dead",
    "parents", "notify", "waiting_children", "spawn", "kids", "vals", "fcounts", "stats", "runs",
)

PUSH_NAMES = ("meta", "wait", "active", "specs", "attempts", "tokens", "events", "gvt", "idle", "unstarted", "delayed")


class QueueKeys:
    def __init__(self, prefix: str, queue: str):
        self.key = lambda name: f"{prefix}:{{{queue}}}:{name}"
        self.all = [self.key(n) for n in NAMES]
        self.push = [self.key(n) for n in PUSH_NAMES]
        self.wake = self.key("wake")
        self.events = self.key("events")
        self.registry = f"{prefix}:queues"
