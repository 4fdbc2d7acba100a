"""The job runner's queue client for Python: put jobs on a runner's queues,
read them back, wait for them and follow a queue's events, on redis-py
(`Queue`, `QueueEvents`) or redis.asyncio (`AsyncQueue`), with Redis or
Redis Cluster. It writes Redis only through the runner's own Lua scripts
(the package's copy), so a job it adds is exactly the job the runner's API
or Rust client would add.

    from jobrunner_client import Queue
    emails = Queue("emails", "redis://127.0.0.1:6379")
    job = emails.add("email", {"to": "ana@example.com", "template": "welcome"}, {"attempts": 5})
    print(emails.wait_until_finished(job.id, timeout=30))
"""

from .aio import AsyncQueue
from .core import Job, JobFailed, QueueFullError, WaitTimeout
from .options import MAX_ATTEMPTS, MAX_BULK, MAX_PRIORITY, InvalidJobError
from .queue import Queue, QueueEvents

__all__ = [
    "AsyncQueue",
    "InvalidJobError",
    "Job",
    "JobFailed",
    "MAX_ATTEMPTS",
    "MAX_BULK",
    "MAX_PRIORITY",
    "Queue",
    "QueueEvents",
    "QueueFullError",
    "WaitTimeout",
]
