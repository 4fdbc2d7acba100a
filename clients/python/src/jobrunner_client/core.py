"""What the sync and asyncio queues share: the runner's scripts (the
package's copy of `crates/queue/src/lua/`, composed as the runner's
`scripts.rs` composes them), the enqueue call's arguments, and reading the
scripts' replies into jobs. Neither touches Redis here: `queue.py` and
`aio.py` make the calls, each in its own style."""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, List, Optional

from .keys import QueueKeys
from .options import InvalidJobError, MAX_BULK, Prepared, check_prefix, check_queue_name, prepare


class QueueFullError(Exception):
    """An add refused because the queue holds its `max_waiting` jobs."""

    def __init__(self, queue: str, detail: str):
        self.queue = queue
        self.waiting, self.max, self.adding = (int(x) for x in detail.split()[:3])
        super().__init__(
            f"queue `{queue}` is full: {self.waiting} jobs are waiting, delayed or running, "
            f"its max_waiting is {self.max}, and this would add {self.adding}"
        )


class WaitTimeout(TimeoutError):
    """`wait_until_finished` ran out of time before the job finished."""

    def __init__(self, job_id: str, state: str, seconds: float):
        self.job_id, self.state = job_id, state
        super().__init__(f"job {job_id} is still {state} after {seconds} s")


class JobFailed(Exception):
    """The job failed for good; `job` is its record."""

    def __init__(self, job: "Job"):
        self.job = job
        super().__init__(job.failed_reason or "failed")


def full_or(queue: str, e: Exception) -> Exception:
    m = re.search(r"QUEUE_FULL ([0-9 ]+)", str(e))
    return QueueFullError(queue, m.group(1)) if m else e


def _lua(name: str) -> str:
    try:
        return resources.files("jobrunner_client").joinpath("lua", name).read_text()
    except FileNotFoundError as e:
        raise RuntimeError(
            f"the queue scripts are missing ({name}): run `python scripts/copy_lua.py` in clients/python"
        ) from e


def script_texts() -> dict:
    common, prelude = _lua("common.lua"), _lua("prelude.lua")
    return {
        "enqueue": f"{common}\n{prelude}\n{_lua('enqueue.lua')}",
        "jobs": f"{common}\n{prelude}\n{_lua('jobs.lua')}",
        "push": f"{common}\n{_lua('push.lua')}",
    }


@dataclass
class Job:
    """One job as the queue holds it (from `add`, only what was given)."""

    id: str
    name: str
    data: Any
    opts: dict = field(default_factory=dict)
    #: From `add`: False when a job with its `jobId` was there already.
    created: Optional[bool] = None
    state: Optional[str] = None
    attempts_made: int = 0
    timestamp: int = 0
    progress: int = 0
    returnvalue: Any = None
    failed_reason: Optional[str] = None
    errors: List[dict] = field(default_factory=list)
    log: Any = None
    stalls: int = 0
    finished_on: Optional[int] = None
    delayed_until: Optional[int] = None
    group: Optional[str] = None
    dead_letter: Optional[dict] = None


class QueueSetup:
    """What `Queue` and `AsyncQueue` set up alike: the checked name and
    prefix, the keys, and the scripts registered on their client."""

    def _setup(self, name: str, prefix: str, client: Any, owned: bool) -> None:
        check_queue_name(name)
        check_prefix(prefix)
        self.name, self.prefix = name, prefix
        self.client, self._owned = client, owned
        self.keys = QueueKeys(prefix, name)
        texts = script_texts()
        self._enqueue = client.register_script(texts["enqueue"])
        self._push = client.register_script(texts["push"])
        self._jobs = client.register_script(texts["jobs"])
        self._registered_at = 0.0

    def _register_due(self) -> bool:
        return not self._registered_at or time.monotonic() - self._registered_at >= 60


def prepare_bulk(jobs: list) -> List[tuple]:
    if not isinstance(jobs, list):
        raise InvalidJobError("add_bulk takes a list of {name, data, opts}")
    if len(jobs) > MAX_BULK:
        raise InvalidJobError(f"{len(jobs)} jobs in one add_bulk; at most {MAX_BULK}: split the load into several")
    out = []
    for i, j in enumerate(jobs):
        try:
            out.append((j["name"], j.get("data"), j.get("opts") or {}, prepare(j["name"], j.get("data"), j.get("opts"))))
        except InvalidJobError as e:
            raise InvalidJobError(f"job {i}: {e}") from None
    return out


def enqueue_args(keys: QueueKeys, prepared: List[tuple]) -> tuple:
    """The enqueue script's arguments for prepared jobs, and their ids."""
    p: List[Prepared] = [x[3] for x in prepared]
    new_ids = all(x.id is None for x in p)
    short = all(x.plain for x in p)
    ids = [x.id if x.id is not None else str(uuid.uuid4()) for x in p]
    args: list = [keys.wake, len(p), (1 if new_ids else 0) + (2 if short else 0)]
    for i, x in enumerate(p):
        args += [ids[i], x.spec]
        if not short:
            args += [x.delay, x.priority, x.group]
    return args, ids


def made(prepared: List[tuple], ids: list, replies: list) -> List[Job]:
    out = []
    for (name, data, opts, _), job_id, r in zip(prepared, ids, replies):
        created = isinstance(r, int)
        state = {1: "waiting", 2: "delayed", 3: "active"}.get(r) if created else _text(r)
        out.append(Job(id=job_id, name=name, data=data, opts=opts, created=created, state=state))
    return out


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


# The `jobs` script's fields a job: state, spec, attempts, created, result,
# errors, log, progress, stalls, state score, group, a parent's children's
# counts (the runner's `lua/jobs.lua`).
JOB_FIELDS = 12


def records(ids: List[str], reply: list) -> List[Job]:
    """The `jobs` script's reply (the queue's policy, then `JOB_FIELDS` a job)."""
    out = []
    for i, job_id in enumerate(ids):
        f = [_text(v) for v in reply[1 + i * JOB_FIELDS : 1 + (i + 1) * JOB_FIELDS]]
        if not f or not f[0]:
            continue
        spec = json.loads(f[1])
        result = json.loads(f[4]) if f[4] else None
        errors = json.loads(f[5]) if f[5] else []
        state = f[0]
        last_error = errors[-1]["error"] if errors else None
        out.append(
            Job(
                id=job_id,
                name=spec["type"],
                data=spec["payload"],
                opts=spec.get("opts") or {},
                state=state,
                attempts_made=int(f[2] or 0),
                timestamp=spec.get("created_at", 0),
                progress=int(f[7]) if f[7] else 0,
                returnvalue=result if state == "completed" else None,
                failed_reason=(result or {}).get("failed_reason", last_error) if state == "failed" else last_error,
                errors=errors,
                log=json.loads(f[6]) if f[6] else None,
                stalls=int(f[8] or 0),
                finished_on=int(float(f[9])) if state in ("completed", "failed") else None,
                delayed_until=int(float(f[9])) if state == "delayed" else None,
                group=f[10] or None,
                dead_letter=spec.get("dead_letter"),
            )
        )
    return out


def counts(values: list) -> dict:
    waiting, delayed, active, completed, failed, waiting_children, paused = values
    return {
        "waiting": waiting,
        "delayed": delayed,
        "active": active,
        "completed": completed,
        "failed": failed,
        "waiting_children": waiting_children,
        "paused": _text(paused) == "1" if paused is not None else False,
    }


def ends_wait(entries: list, job_id: str) -> bool:
    """Whether events stream entries include the end of job `job_id`."""
    for _, fields in entries:
        e = event_fields(fields)
        if e.get("event") in ("completed", "failed", "removed") and job_id in job_ids(e):
            return True
    return False


def event_fields(fields: Any) -> dict:
    if isinstance(fields, dict):
        return {_text(k): _text(v) for k, v in fields.items()}
    return {_text(fields[i]): _text(fields[i + 1]) for i in range(0, len(fields), 2)}


def job_ids(e: dict) -> List[str]:
    if e.get("ids"):
        return e["ids"].split(" ")
    return [e["id"]] if e.get("id") and e["id"] != "*" else []
