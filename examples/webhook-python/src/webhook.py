"""The webhook plugin (job type `webhook`) in Python: the same behaviour as
the Rust plugin in plugins/webhook, which its README documents.

1. builds the event body `{"created_at", "data", "id", "type"}`, with keys
   sorted and no spaces, byte for byte what the Rust plugin sends;
2. signs `"{timestamp}.{body}"` with HMAC-SHA256 using the endpoint's
   secret, and sends the timestamp, the signature and the job id as an
   idempotency key;
3. classifies the answer: 2xx delivered; 408 retry; 429 and 503 retry after
   their Retry-After (at most a day) or with backoff; other 4xx permanent;
   anything else retry.
"""

import hashlib
import hmac
import json
import time
from email.utils import parsedate_to_datetime

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, log
from wit_world.imports.jobrunner_plugin_types import (
    Failure_Permanent,
    Failure_Retry,
    Failure_RetryAfter,
    Job,
    PluginInfo,
    RetryAfter,
)

import jobrunner_http

VERSION = "0.1.0"
MAX_RETRY_AFTER_MS = 24 * 3600 * 1000
FIELDS = {"url", "event", "data", "endpoint", "headers", "timeout_ms"}


def permanent(message: str) -> Err:
    return Err(Failure_Permanent(message))


def canonical_json(value: object) -> str:
    """JSON with keys sorted and no whitespace: what serde_json writes for the Rust plugin."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_payload(text: str) -> dict:
    try:
        p = json.loads(text)
    except ValueError as e:
        raise permanent(f"invalid payload: {e}") from None
    if not isinstance(p, dict):
        raise permanent("invalid payload: expected an object")
    for key in p:
        if key not in FIELDS:
            raise permanent(f"invalid payload: unknown field `{key}`")
    for key in ("url", "event"):
        if key not in p:
            raise permanent(f"invalid payload: missing field `{key}`")
        if not isinstance(p[key], str):
            raise permanent(f"invalid payload: `{key}` must be a string")
    if p.get("endpoint") is not None and not isinstance(p["endpoint"], str):
        raise permanent("invalid payload: `endpoint` must be a string")
    headers = p.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise permanent("invalid payload: `headers` must be an object of strings")
    timeout = p.get("timeout_ms", 10_000)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0:
        raise permanent("invalid payload: `timeout_ms` must be a whole number of milliseconds")
    return {**p, "headers": headers, "timeout_ms": timeout, "data": p.get("data")}


def parse_retry_after(value: str, now: float) -> int | None:
    """Milliseconds to wait: seconds, or an HTTP date (one in the past is no delay)."""
    value = value.strip()
    if value.isdigit():
        return int(value) * 1000
    try:
        at = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0, int((at - now) * 1000))


def sign(secret: str, timestamp: int, body: str) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return "v1=" + mac.hexdigest()


class Handler(exports.Handler):
    def describe(self) -> PluginInfo:
        return PluginInfo(name="webhook", version=VERSION, job_types=["webhook"])

    def handle(self, job: Job) -> str | None:
        p = check_payload(job.payload)
        endpoint = p.get("endpoint")
        secret_name = f"endpoint.{endpoint}" if endpoint is not None else "signing_secret"
        secret = config.secret(secret_name)
        if secret is None:
            raise permanent(f"no signing secret: set the secret `{secret_name}` for this plugin")
        body = canonical_json({"id": job.id, "type": p["event"], "created_at": job.enqueued_at, "data": p["data"]})
        timestamp = int(time.time())
        headers = [
            ("content-type", "application/json"),
            ("user-agent", f"jobrunner-webhook/{VERSION}"),
            ("x-webhook-timestamp", str(timestamp)),
            ("x-webhook-signature", sign(secret, timestamp, body)),
            ("idempotency-key", job.id),
            *p["headers"].items(),
        ]
        log.write(log.Level.INFO, f"POST {p['url']} (attempt {job.attempt}/{job.max_attempts})")
        try:
            response = jobrunner_http.request("POST", p["url"], headers, body.encode(), p["timeout_ms"])
        except jobrunner_http.HttpError as e:
            raise (Err(Failure_Retry(str(e))) if e.transient else permanent(str(e))) from None
        log.write(log.Level.INFO, f"answered {response.status}")

        status = response.status
        described = f"receiver answered {status}: {response.text()[:200].strip()}"
        if 200 <= status <= 299:
            return canonical_json({"status": status, "attempt": job.attempt})
        if status in (429, 503):
            retry_after = response.header("retry-after")
            delay = parse_retry_after(retry_after, time.time()) if retry_after is not None else None
            if delay is None:
                raise Err(Failure_Retry(described))
            raise Err(Failure_RetryAfter(RetryAfter(delay_ms=min(delay, MAX_RETRY_AFTER_MS), message=described)))
        if status == 408 or not 400 <= status <= 499:
            raise Err(Failure_Retry(described))
        raise permanent(described)
