"""The Python plugin template's handler (examples/plugin-template-python/src/app.py),
written as a BullMQ Python processor would be: the same checks, config, log,
cache read and write, four progress reports and JSON out, each through what
a BullMQ user has for it. The harness drains jobs through it beside the
runner draining the same jobs through the compiled template.

What each step is on this side (as in bench/bullmq/template.mjs):
- config: a dict in the process;
- log: `job.log`, BullMQ's per-job log, one Redis call a line;
- cache: `GET`, then `SET ... PX` on the same Redis under the plugin's
  namespace (the runner's cache write also keeps a budget and a tag index);
- progress: `job.updateProgress`, one Redis call and event each;
- output: the returned dict, stored by BullMQ as the return value.
"""

NAME = "plugin-template-python"
CONFIG = {"greeting": "Hello"}
FIELDS = {"name", "email", "notify_url", "again_in_ms"}


class PermanentFailure(Exception):
    pass


def parse_payload(payload) -> dict:
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str) or not payload["name"].strip():
        raise PermanentFailure("invalid payload: `name` must be a non-empty string")
    unknown = sorted(set(payload) - FIELDS)
    if unknown:
        raise PermanentFailure(f"invalid payload: unknown field `{unknown[0]}`")
    again = payload.get("again_in_ms")
    if again is not None and (not isinstance(again, int) or isinstance(again, bool) or again < 0):
        raise PermanentFailure("invalid payload: `again_in_ms` must be a whole number of milliseconds")
    return payload


def processor(redis):
    """The processor, given a redis-py asyncio client for the cache."""

    async def process(job, token):
        p = parse_payload(job.data)
        greeting = CONFIG.get("greeting") or "Hello"
        message = f"{greeting}, {p['name']}!"
        await job.log(f"attempt {job.attemptsMade + 1} of {job.opts.get('attempts', 1)}: {message}")

        key = f"cache:{NAME}:greeted:{p['name']}"
        before = await redis.get(key)
        times = (int(before) if before else 0) + 1
        await redis.set(key, str(times), px=86_400_000)
        await job.updateProgress(25)
        # The template's email, HTTP and follow-up steps run only when the
        # payload asks for them; the benchmark's payloads do not.
        await job.updateProgress(50)
        await job.updateProgress(75)
        await job.updateProgress(100)
        return {"message": message, "times": times}

    return process
