"""The queue client on `redis.asyncio`: `AsyncQueue`, the same as `Queue`
(queue.py) with every call awaited."""

from __future__ import annotations

import time
import uuid
from typing import Any, List, Optional, Tuple

import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from . import core
from .core import Job, JobFailed, WaitTimeout
from .options import check_job_id, prepare
from .queue import BLOCK_MS


def _client(connection: Any) -> Tuple[Any, bool]:
    if isinstance(connection, (aredis.Redis, RedisCluster)):
        return connection, False
    if isinstance(connection, str):
        return aredis.Redis.from_url(connection), True
    return aredis.Redis(**(connection or {})), True


class AsyncQueue(core.QueueSetup):
    """One of the runner's queues, for asyncio code (see `Queue`)."""

    def __init__(self, name: str, connection: Any = None, prefix: str = "jr"):
        self._setup(name, prefix, *_client(connection))

    async def _register(self) -> None:
        if not self._register_due():
            return
        await self.client.sadd(self.keys.registry, self.name)
        self._registered_at = time.monotonic()

    async def add(self, job_type: str, payload: Any = None, opts: Optional[dict] = None) -> Job:
        p = prepare(job_type, payload, opts)
        await self._register()
        if p.id is None and p.plain:
            job_id = str(uuid.uuid4())
            try:
                r = await self._push(keys=self.keys.push, args=[self.keys.wake, job_id, p.spec])
            except ResponseError as e:
                raise core.full_or(self.name, e) from None
            if r in (1, 3):
                return Job(job_id, job_type, payload, opts or {}, True, "active" if r == 3 else "waiting")
        return (await self._call_enqueue([(job_type, payload, opts or {}, p)]))[0]

    async def add_bulk(self, jobs: List[dict]) -> List[Job]:
        prepared = core.prepare_bulk(jobs)
        if not prepared:
            return []
        await self._register()
        return await self._call_enqueue(prepared)

    async def _call_enqueue(self, prepared: list) -> List[Job]:
        args, ids = core.enqueue_args(self.keys, prepared)
        try:
            replies = await self._enqueue(keys=self.keys.all, args=args)
        except ResponseError as e:
            raise core.full_or(self.name, e) from None
        return core.made(prepared, ids, replies)

    async def get_job(self, job_id: str) -> Optional[Job]:
        check_job_id(job_id)
        found = core.records([job_id], await self._jobs(keys=self.keys.all, args=[job_id]))
        return found[0] if found else None

    async def get_job_counts(self) -> dict:
        pipe = self.client.pipeline(transaction=False)
        for state in ("wait", "delayed", "active", "completed", "failed", "waiting_children"):
            pipe.zcard(self.keys.key(state))
        pipe.hget(self.keys.key("meta"), "paused")
        return core.counts(await pipe.execute())

    async def wait_until_finished(self, job_id: str, timeout: Optional[float] = None) -> Any:
        check_job_id(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        last = await self.client.xrevrange(self.keys.events, "+", "-", count=1)
        after = last[0][0] if last else "0-0"
        while True:
            job = await self.get_job(job_id)
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
                reply = await self.client.xread({self.keys.events: after}, count=1000, block=block)
                if not reply:
                    continue
                entries = reply[0][1]
                after = entries[-1][0]
                if core.ends_wait(entries, job_id):
                    break

    async def close(self) -> None:
        if self._owned:
            await self.client.aclose()
