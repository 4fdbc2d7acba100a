"""The queue client on redis-py, synchronous: `Queue` (add, add_bulk,
get_job, get_job_counts, wait_until_finished) and `QueueEvents` (a queue's
events as they happen). For asyncio, `aio.py` has the same on
`redis.asyncio`."""

from __future__ import annotations

import time
import uuid
from typing import Any, Iterator, List, Optional, Tuple

import redis
from redis.cluster import RedisCluster

from . import core
from .core import Job, JobFailed, WaitTimeout
from .keys import QueueKeys
from .options import check_job_id, check_prefix, check_queue_name, prepare

#: The longest one blocking read waits; a longer wait is a loop of them.
BLOCK_MS = 10000


def _client(connection: Any) -> Tuple[Any, bool]:
    if isinstance(connection, (redis.Redis, RedisCluster)):
        return connection, False
    if isinstance(connection, str):
        return redis.Redis.from_url(connection), True
    return redis.Redis(**(connection or {})), True


class Queue(core.QueueSetup):
    """One of the runner's queues, to put jobs on and read them back.

    `connection`: a `redis.Redis` or `RedisCluster` (left open by `close`),
    a URL, or the keyword arguments of `redis.Redis`. `prefix`: the runners'
    `[redis] prefix` (default `jr`)."""

    def __init__(self, name: str, connection: Any = None, prefix: str = "jr"):
        self._setup(name, prefix, *_client(connection))

    def _register(self) -> None:
        if not self._register_due():
            return
        self.client.sadd(self.keys.registry, self.name)
        self._registered_at = time.monotonic()

    def add(self, job_type: str, payload: Any = None, opts: Optional[dict] = None) -> Job:
        """Adds one job of `job_type` (the plugin job type that runs it).

        Options, all optional: `jobId` (an id of yours: adding it again
        changes nothing), `delay` (ms), `priority` (0 to 4000, **higher
        first**), `attempts`, `backoff` (`{"type": "fixed" | "exponential",
        "delay", "maxDelay", "jitter"}`), `timeout` (ms), `removeOnComplete`,
        `removeOnFail` (True, False, a count, or `{"count", "age"}` in
        seconds) and `group`. What is left out takes the queue's policy, then
        the runner's default. Checked before anything reaches Redis."""
        p = prepare(job_type, payload, opts)
        self._register()
        if p.id is None and p.plain:
            # The lean one-job script, as the runner's own single enqueue; it
            # answers 0 when the queue's policy gives jobs a priority or a group.
            job_id = str(uuid.uuid4())
            try:
                r = self._push(keys=self.keys.push, args=[self.keys.wake, job_id, p.spec])
            except redis.ResponseError as e:
                raise core.full_or(self.name, e) from None
            if r in (1, 3):
                return Job(job_id, job_type, payload, opts or {}, True, "active" if r == 3 else "waiting")
        return self._call_enqueue([(job_type, payload, opts or {}, p)])[0]

    def add_bulk(self, jobs: List[dict]) -> List[Job]:
        """Adds up to `MAX_BULK` jobs (`[{"name", "data", "opts"}]`) in one call: all or none."""
        prepared = core.prepare_bulk(jobs)
        if not prepared:
            return []
        self._register()
        return self._call_enqueue(prepared)

    def _call_enqueue(self, prepared: list) -> List[Job]:
        args, ids = core.enqueue_args(self.keys, prepared)
        try:
            replies = self._enqueue(keys=self.keys.all, args=args)
        except redis.ResponseError as e:
            raise core.full_or(self.name, e) from None
        return core.made(prepared, ids, replies)

    def get_job(self, job_id: str) -> Optional[Job]:
        """One job as the queue holds it, or None."""
        check_job_id(job_id)
        found = core.records([job_id], self._jobs(keys=self.keys.all, args=[job_id]))
        return found[0] if found else None

    def get_job_counts(self) -> dict:
        """Jobs per state, and whether the queue is paused."""
        pipe = self.client.pipeline(transaction=False)
        for state in ("wait", "delayed", "active", "completed", "failed", "waiting_children"):
            pipe.zcard(self.keys.key(state))
        pipe.hget(self.keys.key("meta"), "paused")
        return core.counts(pipe.execute())

    def wait_until_finished(self, job_id: str, timeout: Optional[float] = None) -> Any:
        """Waits for a job to finish: its return value once it completes;
        `JobFailed` once it fails for good (a retry goes on waiting);
        `WaitTimeout` after `timeout` seconds (None: as long as it takes)."""
        check_job_id(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        # The position first, then the job: an end between the two is in the stream.
        last = self.client.xrevrange(self.keys.events, "+", "-", count=1)
        after = last[0][0] if last else "0-0"
        while True:
            job = self.get_job(job_id)
            if job is None:
                raise LookupError(f"job {job_id} is not in queue {self.name} (never added, or removed)")
            if job.state == "completed":
                return job.returnvalue
            if job.state == "failed":
                raise JobFailed(job)
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise WaitTimeout(job_id, job.state, timeout)
                block = BLOCK_MS if left is None else max(1, min(BLOCK_MS, int(left * 1000)))
                reply = self.client.xread({self.keys.events: after}, count=1000, block=block)
                if not reply:
                    continue
                entries = reply[0][1]
                after = entries[-1][0]
                if core.ends_wait(entries, job_id):
                    break

    def close(self) -> None:
        """Ends the queue's connection (not a connection it was given)."""
        if self._owned:
            self.client.close()


class QueueEvents:
    """A queue's events as they happen, as BullMQ's `QueueEvents`: iterate
    it for `(event_name, {"jobId", ...fields}, event_id)`, once per job (a
    batch of completions is one `completed` per job). The runner's events
    carry no return value: read it with `get_job`. Blocking reads go on a
    connection of their own."""

    def __init__(self, name: str, connection: Any = None, prefix: str = "jr", last_event_id: str = "$"):
        check_queue_name(name)
        check_prefix(prefix)
        client, owned = _client(connection)
        # A connection of its own for blocking reads.
        if owned or isinstance(client, RedisCluster):
            self.client = client
        else:
            self.client = redis.Redis(connection_pool=redis.ConnectionPool(**client.connection_pool.connection_kwargs))
        self.key = QueueKeys(prefix, name).events
        if last_event_id == "$":
            last = self.client.xrevrange(self.key, "+", "-", count=1)
            last_event_id = last[0][0] if last else "0-0"
        self.after = last_event_id

    def read(self, block_ms: int = BLOCK_MS) -> List[tuple]:
        """The events after the last read, waiting up to `block_ms` for the first."""
        reply = self.client.xread({self.key: self.after}, count=1000, block=block_ms)
        out = []
        for entry_id, fields in (reply[0][1] if reply else []):
            self.after = entry_id
            e = core.event_fields(fields)
            name = e.pop("event", "")
            ids = core.job_ids(e) or ["*"]
            for k in ("id", "ids", "count"):
                e.pop(k, None)
            out.extend((name, {"jobId": i, **e}, core._text(entry_id)) for i in ids)
        return out

    def __iter__(self) -> Iterator[tuple]:
        while True:
            yield from self.read()

    def close(self) -> None:
        self.client.close()
