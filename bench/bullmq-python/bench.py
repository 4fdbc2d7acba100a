"""The BullMQ Python side of the benchmark harness (`cargo xtask bench --bullmq`).

Duties: drain jobs through template.py's handler with one BullMQ Python
worker against the Redis the harness started, measured as the harness
measures the runner and bench/bullmq/bench.mjs measures BullMQ's Node
package, and print the result as one line of JSON.

    python bench.py <redis-url> template <jobs> <concurrency>
"""

import asyncio
import json
import resource
import sys
import time

import redis.asyncio as aioredis
from bullmq import Queue, Worker

import template

QUEUE = "bench"


async def command_calls(r) -> int:
    stats = await r.info("commandstats")
    return sum(v["calls"] for v in stats.values())


async def redis_cpu(r) -> float:
    info = await r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def own_cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


async def drain(url: str, jobs: int, concurrency: int) -> dict:
    r = aioredis.from_url(url)
    queue = Queue(QUEUE, {"connection": url})
    # A thousand names, so that cache reads find entries (as on every side).
    for i in range(0, jobs, 1000):
        batch = [
            {"name": template.NAME, "data": {"name": f"user-{j % 1000}"}} for j in range(i, min(jobs, i + 1000))
        ]
        await queue.addBulk(batch)
    calls = await command_calls(r)
    cpu, rcpu = own_cpu(), await redis_cpu(r)
    started = time.perf_counter()
    worker = Worker(QUEUE, template.processor(aioredis.from_url(url)), {"connection": url, "concurrency": concurrency})
    # Done when BullMQ's completed set holds them all; each poll is one
    # command, taken off the count, as on the other sides.
    polls = 0
    while True:
        polls += 1
        if await r.zcard(f"bull:{QUEUE}:completed") >= jobs:
            break
        polls += 1
        failed = await r.zcard(f"bull:{QUEUE}:failed")
        if failed:
            raise SystemExit(f"{failed} job(s) failed")
        await asyncio.sleep(0.005)
    seconds = time.perf_counter() - started
    commands = await command_calls(r) - calls - polls - 1
    used = own_cpu() - cpu
    redis_used = await redis_cpu(r) - rcpu
    await worker.close(force=True)
    return {
        "jobs_per_s": jobs / seconds,
        "commands_per_job": commands / jobs,
        "worker_cpu_us": used * 1e6 / jobs,
        "redis_cpu_us": redis_used * 1e6 / jobs,
    }


def main() -> int:
    url, mode, jobs, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if mode != "template":
        print(f"unknown mode: {mode}", file=sys.stderr)
        return 2
    result = asyncio.run(drain(url, jobs, concurrency))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
