"""A job's options, checked before anything reaches Redis (as the runner's
`options.rs` and `jobrunner-job` check them), and written as the runner's
spec stores them: only what the producer set, so that the queue's policy
(`[queues.NAME]` in the runners' config) fills the rest.

The names follow BullMQ's Python port where it has the option (`jobId`,
`delay`, `attempts`, `backoff`, `removeOnComplete`, `removeOnFail`), with
one difference a BullMQ user must know: `priority` runs **higher first**
(0 to 4000), where BullMQ's 1 runs first."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Optional

MAX_PRIORITY = 4000
MAX_ATTEMPTS = 1000
MAX_DELAY_MS = 366 * 24 * 3600 * 1000
MAX_PAYLOAD_BYTES = 1 << 20
#: The most jobs one `add_bulk` takes: one script call, whole or not at all.
MAX_BULK = 10000

KNOWN = ("jobId", "delay", "priority", "attempts", "backoff", "timeout", "removeOnComplete", "removeOnFail", "group")


class InvalidJobError(ValueError):
    """A producer's mistake, found before anything reached Redis."""


def _check_name(what: str, name: Any, limit: int, ok) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidJobError(f"{what} is empty")
    if len(name.encode()) > limit:
        raise InvalidJobError(f"{what} is longer than {limit} characters")
    for c in name:
        if not ok(c):
            raise InvalidJobError(f"{what} `{name}` contains `{c}`, which is not allowed")


def _alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def _graphic(c: str) -> bool:
    return "!" <= c <= "~" and c not in "{}"


def check_queue_name(name: Any) -> None:
    _check_name("queue name", name, 128, lambda c: _alnum(c) or c in "-_.:")


def check_job_type(name: Any) -> None:
    _check_name("job type", name, 128, lambda c: _alnum(c) or c in "-_.:/")


def check_job_id(name: Any) -> None:
    _check_name("job id", name, 256, _graphic)


def check_prefix(prefix: Any) -> None:
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", prefix) or prefix.endswith(":"):
        raise InvalidJobError(f"prefix `{prefix}`: 1 to 64 letters, digits, `_`, `-`, `.` and `:`, not ending in `:`")


def _whole(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


def _keep(name: str, v: Any) -> dict:
    # BullMQ: True removes at once, False keeps all, a number keeps that
    # many, {"count", "age"} (age in seconds) bounds both.
    if v is True:
        return {"count": 0, "age_ms": None}
    if v is False:
        return {"count": None, "age_ms": None}
    if _whole(v):
        return {"count": v, "age_ms": None}
    if isinstance(v, dict):
        unknown = [k for k in v if k not in ("count", "age")]
        if unknown:
            raise InvalidJobError(f"{name}: unknown key `{unknown[0]}` (count, age)")
        if "count" in v and not _whole(v["count"]):
            raise InvalidJobError(f"{name}.count must be a whole number")
        if "age" in v and not _whole(v["age"]):
            raise InvalidJobError(f"{name}.age must be whole seconds")
        return {"count": v.get("count"), "age_ms": v["age"] * 1000 if "age" in v else None}
    raise InvalidJobError(f"{name} must be True, False, a count or {{count, age}}")


def _backoff(b: Any) -> dict:
    if _whole(b):
        return {"type": "fixed", "delay_ms": b}
    if not isinstance(b, dict):
        raise InvalidJobError("backoff must be a delay in ms or {type, delay}")
    unknown = [k for k in b if k not in ("type", "delay", "maxDelay", "jitter")]
    if unknown:
        raise InvalidJobError(f"backoff: unknown key `{unknown[0]}` (type, delay, maxDelay, jitter)")
    kind = b.get("type")
    if kind == "none":
        return {"type": "none"}
    if not _whole(b.get("delay")):
        raise InvalidJobError("backoff.delay must be whole milliseconds")
    if kind == "fixed":
        if "maxDelay" in b or "jitter" in b:
            raise InvalidJobError("backoff: a fixed backoff takes a delay only")
        return {"type": "fixed", "delay_ms": b["delay"]}
    if kind == "exponential":
        jitter = b.get("jitter", 0)
        if not isinstance(jitter, (int, float)) or not 0 <= jitter <= 1:
            raise InvalidJobError("backoff.jitter must be from 0 to 1")
        if "maxDelay" in b and not _whole(b["maxDelay"]):
            raise InvalidJobError("backoff.maxDelay must be whole milliseconds")
        return {"type": "exponential", "delay_ms": b["delay"], "max_delay_ms": b.get("maxDelay", 0), "jitter": jitter}
    raise InvalidJobError(f"backoff.type `{kind}`: use fixed, exponential or none")


@dataclass
class Prepared:
    """A checked job: its spec as JSON and the enqueue script's arguments
    (`''` where the producer set nothing, for the queue's policy to fill)."""

    id: Optional[str]
    spec: str
    delay: int
    priority: str
    group: str
    plain: bool


def prepare(job_type: str, payload: Any, opts: Optional[dict] = None) -> Prepared:
    opts = {} if opts is None else opts
    check_job_type(job_type)
    if not isinstance(opts, dict):
        raise InvalidJobError("options must be a dict")
    unknown = [k for k in opts if k not in KNOWN]
    if unknown:
        raise InvalidJobError(f"unknown option `{unknown[0]}` ({', '.join(KNOWN)})")
    try:
        data = json.dumps({} if payload is None else payload, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise InvalidJobError(f"the payload is not JSON: {e}") from e
    size = len(data.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidJobError(f"payload of {size} bytes is over the {MAX_PAYLOAD_BYTES} byte limit")
    o: dict = {}
    if "jobId" in opts:
        check_job_id(opts["jobId"])
    if "delay" in opts:
        if not _whole(opts["delay"]):
            raise InvalidJobError("delay must be whole milliseconds")
        if opts["delay"] > MAX_DELAY_MS:
            raise InvalidJobError("delay must be at most a year")
        if opts["delay"] > 0:
            o["delay_ms"] = opts["delay"]
    if "priority" in opts:
        if not _whole(opts["priority"]) or opts["priority"] > MAX_PRIORITY:
            raise InvalidJobError(f"priority must be from 0 to {MAX_PRIORITY} (higher runs first)")
        o["priority"] = opts["priority"]
    if "attempts" in opts:
        a = opts["attempts"]
        if not _whole(a) or a < 1:
            raise InvalidJobError("attempts must be at least 1")
        if a > MAX_ATTEMPTS:
            raise InvalidJobError(f"attempts must be at most {MAX_ATTEMPTS}")
        o["attempts"] = a
    if "backoff" in opts:
        o["backoff"] = _backoff(opts["backoff"])
    if "timeout" in opts:
        if not _whole(opts["timeout"]) or opts["timeout"] < 1:
            raise InvalidJobError("timeout must be more than zero milliseconds")
        o["timeout_ms"] = opts["timeout"]
    if "removeOnComplete" in opts:
        o["keep_completed"] = _keep("removeOnComplete", opts["removeOnComplete"])
    if "removeOnFail" in opts:
        o["keep_failed"] = _keep("removeOnFail", opts["removeOnFail"])
    group = ""
    if "group" in opts:
        g = opts["group"]
        group = g.get("id") if isinstance(g, dict) else g
        _check_name("group", group, 256, _graphic)
        o["group"] = group
    spec = (
        f'{{"type":{json.dumps(job_type)},"payload":{data},'
        f'"opts":{json.dumps(o, separators=(",", ":"))},"created_at":{int(time.time() * 1000)}}}'
    )
    return Prepared(
        id=opts.get("jobId"),
        spec=spec,
        delay=o.get("delay_ms", 0),
        priority="" if "priority" not in o else str(o["priority"]),
        group=group,
        plain="delay_ms" not in o and "priority" not in o and group == "",
    )
