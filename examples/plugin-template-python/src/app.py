"""A job-runner plugin in Python: handles jobs of type `plugin-template-python`.

Build:  pip install -r requirements.txt && python build.py
Check:  runner plugin check dist/plugin-template-python.wasm
Run:    runner exec dist/plugin-template-python.wasm --type plugin-template-python --payload '{"name": "Ada"}'

It greets `name` and shows each capability of the contract: the job's log
and progress, the cache, config, email, follow-up jobs and outgoing HTTP.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import cache, config, email, log, queue
from wit_world.imports.jobrunner_plugin_types import (
    Failure_Permanent,
    Failure_Retry,
    Job,
    PluginInfo,
)

import jobrunner_http

NAME = "plugin-template-python"
VERSION = "0.1.0"
FIELDS = {"name", "email", "notify_url", "again_in_ms"}


def permanent(message: str) -> Err:
    """A failure no retry can fix: raise it to end the job."""
    return Err(Failure_Permanent(message))


def parse_payload(text: str) -> dict:
    try:
        payload = json.loads(text)
    except ValueError as e:
        raise permanent(f"invalid payload: {e}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str) or not payload["name"].strip():
        raise permanent("invalid payload: `name` must be a non-empty string")
    # Unknown fields are refused, so a typo in a producer fails loudly.
    unknown = sorted(set(payload) - FIELDS)
    if unknown:
        raise permanent(f"invalid payload: unknown field `{unknown[0]}`")
    again = payload.get("again_in_ms")
    if again is not None and (not isinstance(again, int) or isinstance(again, bool) or again < 0):
        raise permanent("invalid payload: `again_in_ms` must be a whole number of milliseconds")
    return payload


class Handler(exports.Handler):
    def describe(self) -> PluginInfo:
        return PluginInfo(name=NAME, version=VERSION, job_types=[NAME])

    # Raising `Err(Failure_...)` ends the job with that failure; any other
    # exception is a fault, which the runner retries with backoff.
    def handle(self, job: Job) -> str | None:
        p = parse_payload(job.payload)

        # Config values come from the runner's config: [plugins.NAME.config].
        greeting = config.get("greeting") or "Hello"
        message = f"{greeting}, {p['name']}!"
        log.write(log.Level.INFO, f"attempt {job.attempt} of {job.max_attempts}: {message}")

        # The cache is this plugin's own; entries expire and can be dropped by tag.
        key = f"greeted:{p['name']}"
        before = cache.get(key)
        times = (int(before.decode()) if before else 0) + 1
        cache.set(key, str(times).encode(), 86_400_000, ["greetings"])
        log.progress(25)

        if p.get("email"):
            msg = email.Message(
                from_=None,
                to=[p["email"]],
                cc=[],
                bcc=[],
                reply_to=None,
                subject=message,
                text=message + "\n",
                html=None,
                headers=[],
            )
            try:
                message_id = email.send(msg)
            except Err as e:
                # `invalid`: the message is wrong; `transient`: try again later.
                if isinstance(e.value, email.SendError_Invalid):
                    raise permanent(f"email: {e.value.value}") from None
                raise Err(Failure_Retry(f"email: {e.value.value}")) from None
            log.write(log.Level.INFO, f"emailed {p['email']}: {message_id}")
        log.progress(50)

        if p.get("notify_url"):
            try:
                response = jobrunner_http.request(
                    "POST",
                    p["notify_url"],
                    [("content-type", "application/json")],
                    json.dumps({"message": message}).encode(),
                )
            except jobrunner_http.HttpError as e:
                raise (Err(Failure_Retry(str(e))) if e.transient else permanent(str(e))) from None
            if not 200 <= response.status < 300:
                why = f"notify answered {response.status}"
                raise Err(Failure_Retry(why)) if response.status >= 500 or response.status == 429 else permanent(why)
        log.progress(75)

        if "again_in_ms" in p:
            # Enqueued only if this attempt succeeds, so a retry does not fan out twice.
            options = queue.EnqueueOptions(
                delay_ms=int(p["again_in_ms"]), priority=None, job_id=f"{job.id}-again", max_attempts=None, group=None
            )
            follow_up = queue.enqueue(job.queue, NAME, json.dumps({"name": p["name"]}), options)
            log.write(log.Level.INFO, f"follow-up {follow_up} in {p['again_in_ms']} ms")
        log.progress(100)
        return json.dumps({"message": message, "times": times}, separators=(",", ":"))
