"""A small blocking HTTP client over `wasi:http`, for Python plugins.

Python's own `urllib` and sockets find no network in the sandbox: the
runner lends outgoing HTTP only through `wasi:http/outgoing-handler`, and
only to the hosts the operator allowed for the plugin. This wraps that
interface in one call, `request(...)`, and turns its error codes into an
`HttpError` that says whether trying again could help.
"""

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world.imports import outgoing_handler, streams
from wit_world.imports import wasi_http_types as http

READ_CHUNK = 64 * 1024
# blocking-write-and-flush takes at most 4096 bytes at a time.
WRITE_CHUNK = 4096

METHODS = {
    "GET": http.Method_Get,
    "HEAD": http.Method_Head,
    "POST": http.Method_Post,
    "PUT": http.Method_Put,
    "DELETE": http.Method_Delete,
    "PATCH": http.Method_Patch,
    "OPTIONS": http.Method_Options,
}

TIMEOUTS = (
    http.ErrorCode_ConnectionTimeout,
    http.ErrorCode_ConnectionReadTimeout,
    http.ErrorCode_ConnectionWriteTimeout,
    http.ErrorCode_HttpResponseTimeout,
    http.ErrorCode_DnsTimeout,
)


class HttpError(Exception):
    """Why a request got no response. `kind` is one of invalid-url, denied,
    timeout, too-large and transport; only timeout and transport are worth
    another attempt."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind

    @property
    def transient(self) -> bool:
        return self.kind in ("timeout", "transport")

    def __str__(self) -> str:
        prefix = {
            "invalid-url": "invalid URL",
            "denied": "request denied by the runner",
            "timeout": "timed out",
            "too-large": "response too large",
            "transport": "transport error",
        }[self.kind]
        return f"{prefix}: {self.args[0]}"


@dataclass
class Response:
    status: int
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _error(code: object, url: str) -> HttpError:
    if isinstance(code, http.ErrorCode_HttpRequestDenied):
        return HttpError("denied", f"{url} is not on this plugin's allowed hosts")
    if isinstance(code, TIMEOUTS):
        return HttpError("timeout", type(code).__name__.removeprefix("ErrorCode_"))
    if isinstance(code, http.ErrorCode_HttpResponseBodySize):
        return HttpError("too-large", "the runner's response cap was reached")
    return HttpError("transport", type(code).__name__.removeprefix("ErrorCode_"))


def request(
    method: str,
    url: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    timeout_ms: int = 10_000,
) -> Response:
    """Sends one request and reads the whole response."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise HttpError("invalid-url", f"unsupported scheme `{parts.scheme}`")
    if not parts.netloc:
        raise HttpError("invalid-url", f"{url}: no host")
    if method.upper() not in METHODS:
        raise HttpError("invalid-url", f"unsupported method `{method}`")

    try:
        fields = http.Fields.from_list([(k, v.encode()) for k, v in (headers or [])])
    except Err as e:
        raise HttpError("invalid-url", f"bad header: {e.value}") from None
    req = http.OutgoingRequest(fields)
    req.set_method(METHODS[method.upper()]())
    req.set_scheme(http.Scheme_Https() if parts.scheme == "https" else http.Scheme_Http())
    req.set_authority(parts.netloc)
    req.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))

    outgoing = req.body()
    with outgoing.write() as stream:
        for start in range(0, len(body), WRITE_CHUNK):
            stream.blocking_write_and_flush(body[start : start + WRITE_CHUNK])
    http.OutgoingBody.finish(outgoing, None)

    options = http.RequestOptions()
    nanos = timeout_ms * 1_000_000
    # The runner may refuse to set a timeout; the job's own timeout still holds.
    for set_timeout in (options.set_connect_timeout, options.set_first_byte_timeout, options.set_between_bytes_timeout):
        try:
            set_timeout(nanos)
        except Err:
            pass

    try:
        future = outgoing_handler.handle(req, options)
    except Err as e:
        raise _error(e.value, url) from None
    with future:
        with future.subscribe() as ready:
            ready.block()
        result = future.get()
    if result is None or isinstance(result, Err):
        raise HttpError("transport", "the response was already taken")
    if isinstance(result.value, Err):
        raise _error(result.value.value, url)
    assert isinstance(result.value, Ok)
    incoming = result.value.value
    with incoming:
        status = incoming.status()
        with incoming.headers() as fields:
            response_headers = fields.entries()
        chunks = []
        with incoming.consume() as incoming_body:
            with incoming_body.stream() as stream:
                while True:
                    try:
                        chunks.append(stream.blocking_read(READ_CHUNK))
                    except Err as e:
                        if isinstance(e.value, streams.StreamError_Closed):
                            break
                        raise HttpError("transport", "the response body broke off") from None
    return Response(status=status, headers=response_headers, body=b"".join(chunks))
