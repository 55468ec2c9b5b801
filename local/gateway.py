"""What API Gateway's HTTP API and Lambda do in front of the handler, as a WSGI application.

Each request becomes an API Gateway HTTP API (payload 2.0) event for the very same handler; the
`X-Local-User` header becomes the JWT claim `sub`, exactly where the authorizer would put it. Where
API Gateway itself answers (no route, no identity on a protected route, a request over its quotas or
its route's throttle, an integration past its timeout), this answers as it does: `{"message": "..."}`.
Where Lambda refuses (an invocation payload over its quota, a function past its timeout), this answers
as API Gateway then does. The limits and the AWS pages they come from: README, Local limits."""

import base64
import functools
import json
import multiprocessing
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

from agent import budget, routes

# API Gateway HTTP API quotas (not adjustable): 10 MB payload; 10,240 bytes for the request line
# and the header values together; 30 s at most for an integration, and the stack sets 29 s
# (agent.budget). https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_REQUEST_LINE_AND_HEADERS_BYTES = 10_240
# Lambda: "For synchronous invocations, the maximum payload size is 6 MB", the event in and the
# result out. https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html
MAX_INVOCATION_PAYLOAD_BYTES = 6 * 1024 * 1024
# How often a request waiting for its instance looks whether that instance has ended.
INSTANCE_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Throttling:
    """A route's token bucket: `rate` requests a second, bursts of `burst` (routes.py, as deployed)."""

    rate: float = routes.THROTTLE_RATE_PER_SECOND
    burst: int = routes.THROTTLE_BURST


@dataclass(frozen=True)
class Limits:
    """What is enforced around one invocation; `throttling` None: no throttle (tests that burst)."""

    integration_timeout_seconds: float = budget.API_INTEGRATION_TIMEOUT_SECONDS
    function_timeout_seconds: float = budget.SYNC_TURN_SECONDS
    throttling: Throttling | None = Throttling()

    @classmethod
    def from_env(cls, env) -> "Limits":
        """`make dev`'s limits are the deployed ones; LOCAL_THROTTLE=off or RATE/BURST,
        LOCAL_INTEGRATION_TIMEOUT_SECONDS and LOCAL_FUNCTION_TIMEOUT_SECONDS change them."""
        throttle = env.get("LOCAL_THROTTLE", "")
        if throttle == "off":
            throttling = None
        elif throttle:
            rate, burst = throttle.split("/")
            throttling = Throttling(float(rate), int(burst))
        else:
            throttling = Throttling()
        return cls(
            integration_timeout_seconds=float(env.get("LOCAL_INTEGRATION_TIMEOUT_SECONDS", cls.integration_timeout_seconds)),
            function_timeout_seconds=float(env.get("LOCAL_FUNCTION_TIMEOUT_SECONDS", cls.function_timeout_seconds)),
            throttling=throttling,
        )


class Throttle:
    """API Gateway's throttle: a token bucket per route. Its state is shared memory made before the
    server forks, so every worker process (instance) draws from the same buckets, as requests to
    the one deployed stage do."""

    def __init__(self, settings: Throttling, routes_count: int):
        self._rate, self._burst = settings.rate, settings.burst
        # Per route: the tokens left, and when they were counted (0: never, the bucket is full).
        self._buckets = multiprocessing.RawArray("d", [float(settings.burst), 0.0] * routes_count)
        self._lock = multiprocessing.Lock()

    def admit(self, route: int) -> bool:
        with self._lock:
            now = time.monotonic()  # one clock for every process of the machine
            tokens, counted = self._buckets[2 * route], self._buckets[2 * route + 1]
            if counted:
                tokens = min(self._burst, tokens + (now - counted) * self._rate)
            admitted = tokens >= 1
            self._buckets[2 * route], self._buckets[2 * route + 1] = tokens - admitted, now
            return admitted


class InstanceEnded(Exception):
    """The instance timed out on an earlier invocation and is gone."""


class Instance:
    """One Lambda execution environment: one invocation at a time (the handler keeps the request it
    resolves on its class, as Lambda lets it). An invocation still running at the function's timeout
    ends the environment: `end()` (the server's worker process exits, and a fresh one takes its
    place), or, given no `end` (one instance inside a test process, where nothing can stop a
    thread), the instance waits for the handler to return."""

    def __init__(self, handler, function_timeout_seconds: float, end: Callable[[], None] | None = None):
        self._handler, self._function_timeout, self._end = handler, function_timeout_seconds, end
        self._free = threading.Semaphore(1)
        self._ending = threading.Lock()
        self.ended = threading.Event()

    def invoke(self, event: dict, context, wait_seconds: float) -> tuple[dict | None, BaseException | None]:
        """(result, None), (None, the handler's exception), or (None, None) if it did not return within
        `wait_seconds` (it goes on, until it returns or its function timeout ends the instance).
        Raises InstanceEnded."""
        while not self._free.acquire(timeout=INSTANCE_POLL_SECONDS):
            if self.ended.is_set():
                raise InstanceEnded()
        if self.ended.is_set():
            raise InstanceEnded()
        outcome: dict = {}
        returned = threading.Event()
        timeout = threading.Timer(self._function_timeout, self._time_out, [returned, context.aws_request_id])
        timeout.daemon = True

        def run() -> None:
            try:
                outcome["result"] = self._handler(event, context)
            except BaseException as error:  # Lambda reports an unhandled error; so does this
                outcome["error"] = error
            timeout.cancel()
            if not self.ended.is_set():
                self._free.release()
            returned.set()

        timeout.start()
        # A daemon thread: an instance that ended must not wait for it to exit.
        threading.Thread(target=run, daemon=True, name="invocation").start()
        if not returned.wait(wait_seconds) and wait_seconds >= self._function_timeout:
            self._time_out(returned, context.aws_request_id)  # now, before the caller answers
        return outcome.get("result"), outcome.get("error")

    def _time_out(self, returned: threading.Event, request_id: str) -> None:
        with self._ending:
            if returned.is_set() or self._end is None or self.ended.is_set():
                return
            self.ended.set()
        # Lambda's own log line for it.
        print(f"{request_id} Task timed out after {self._function_timeout:.2f} seconds", file=sys.stderr, flush=True)
        self._end()


@dataclass(frozen=True)
class LocalContext:
    """The parts of the Lambda context that Powertools reads."""

    function_name: str = "agent-local"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:agent-local"
    aws_request_id: str = "local"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    protected: bool


def routes_of(protected: Iterable[str], public: Iterable[str]) -> list[Route]:
    """API Gateway's route table from route keys ("GET /sessions/{session_id}"): the protected ones
    are behind the JWT authorizer (agent/routes.py, which infra/api.py deploys)."""
    return [Route(method, _path_pattern(path), is_protected)
            for keys, is_protected in ((protected, True), (public, False))
            for method, path in (key.split(" ") for key in keys)]


def _path_pattern(path: str) -> re.Pattern:
    # A {parameter} is one path segment, as in API Gateway's routes.
    return re.compile("".join(r"[^/]+" if part.startswith("{") else re.escape(part)
                              for part in re.split(r"(\{[^}]+\})", path)))


def to_event(method: str, target: str, headers: dict, body: bytes, source_ip: str) -> dict:
    url = urlsplit(target)
    lowered = {k.lower(): v for k, v in headers.items()}
    user = lowered.pop("x-local-user", None)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    # API Gateway joins a repeated query parameter's values with commas.
    query: dict[str, str] = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path,
        "rawQueryString": url.query,
        "headers": lowered,
        "queryStringParameters": query or None,
        "requestContext": {
            "accountId": "local",
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "http": {
                "method": method,
                "path": url.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
            "authorizer": {"jwt": {"claims": {"sub": user} if user else {}, "scopes": None}},
        },
        "body": text or None,
        "isBase64Encoded": encoded,
    }


class Gateway:
    """The WSGI application: `handler(event, context)` is the Lambda's handler; `after_response(event,
    result)`, if given, runs once the reply is sent (the WSGI server calls `close()` then), outside
    the request's latency, in the same process: as a stream-triggered Lambda would, later. `end`:
    how this process's instance ends at a function timeout (Instance)."""

    def __init__(self, handler, routes: list[Route], after_response=None, *, limits: Limits = Limits(),
                 end: Callable[[], None] | None = None):
        self.routes, self.after_response, self.limits = routes, after_response, limits
        self.instance = Instance(handler, limits.function_timeout_seconds, end)
        self.throttle = Throttle(limits.throttling, len(routes)) if limits.throttling else None

    def __call__(self, environ: dict, start_response):
        method = environ["REQUEST_METHOD"]
        # The raw target: %2F in a path segment stays inside that segment, as API Gateway routes it.
        target = environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
        headers = _headers(environ)
        path = urlsplit(target).path
        route = next((n for n, r in enumerate(self.routes) if r.method == method and r.pattern.fullmatch(path)), None)
        refuse = functools.partial(self._gateway_error, start_response, method)
        if _request_line_and_headers_bytes(method, target, headers) > MAX_REQUEST_LINE_AND_HEADERS_BYTES:
            return refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        if route is None:
            return refuse(HTTPStatus.NOT_FOUND)
        if self.throttle and not self.throttle.admit(route):
            return refuse(HTTPStatus.TOO_MANY_REQUESTS)
        if self.routes[route].protected and not _one_identity(headers.get("x-local-user")):
            return refuse(HTTPStatus.UNAUTHORIZED)
        body = _read_body(environ)
        if body is None:
            return refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        declared = environ.get("CONTENT_LENGTH")
        if declared and len(body) < int(declared):
            # The client gave up before sending its whole body: nothing to invoke for.
            return refuse(HTTPStatus.BAD_REQUEST)

        event = to_event(method, target, headers, body, environ.get("REMOTE_ADDR", "127.0.0.1"))
        if _payload_bytes(event) > MAX_INVOCATION_PAYLOAD_BYTES:
            # Lambda refuses the invocation (API_Invoke: RequestTooLargeException). No AWS page states
            # what the HTTP API then answers; its documented answer to a Lambda integration that fails
            # is 500 {"message":"Internal Server Error"} (http-api-troubleshooting-lambda.html), so that.
            return refuse(HTTPStatus.INTERNAL_SERVER_ERROR)
        status, result = self._invoke(event)
        if status:
            return refuse(status)
        payload = result.get("body") or ""
        raw = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        reply_headers = [(k, v) for k, v in (result.get("headers") or {}).items() if k.lower() != "content-length"]
        start_response(_status_line(result["statusCode"]), [*reply_headers, ("Content-Length", str(len(raw)))])
        return _Reply(raw, lambda: self.after_response(event, result) if self.after_response else None)

    def _gateway_error(self, start_response, method: str, status: HTTPStatus):
        raw = gateway_message(status.phrase)
        start_response(_status_line(status), [("Content-Type", "application/json"), ("Content-Length", str(len(raw)))])
        if self.instance.ended.is_set():  # the client's next request must reach another instance
            _close_connection(start_response)
        return _Reply(b"" if method == "HEAD" else raw, None)

    def _invoke(self, event: dict) -> tuple[HTTPStatus | None, dict]:
        """The handler's result, or the status API Gateway answers instead. A function error (an
        unhandled exception, the function's timeout, a result over Lambda's payload quota) is API
        Gateway's 500 `Internal Server Error`:
        https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-troubleshooting-lambda.html
        An integration past API Gateway's timeout is its 504, while the function goes on:
        https://repost.aws/knowledge-center/api-gateway-504-errors"""
        limits = self.limits
        try:
            result, error = self.instance.invoke(
                event, LocalContext(aws_request_id=event["requestContext"]["requestId"]),
                min(limits.integration_timeout_seconds, limits.function_timeout_seconds))
        except InstanceEnded:
            # Lambda would start another environment; a request queued on this one is left unserved.
            return HTTPStatus.SERVICE_UNAVAILABLE, {}
        if error is not None:
            print(f"{event['requestContext']['requestId']} unhandled {type(error).__name__}: {error}",
                  file=sys.stderr, flush=True)
            return HTTPStatus.INTERNAL_SERVER_ERROR, {}
        if result is None:
            if limits.integration_timeout_seconds < limits.function_timeout_seconds:
                return HTTPStatus.GATEWAY_TIMEOUT, {}
            return HTTPStatus.INTERNAL_SERVER_ERROR, {}
        if _payload_bytes(result) > MAX_INVOCATION_PAYLOAD_BYTES:
            return HTTPStatus.INTERNAL_SERVER_ERROR, {}
        return None, result


class _Reply(list):
    """A WSGI body whose close() (called by the server once the body is sent) runs `then`."""

    def __init__(self, raw: bytes, then: Callable[[], None] | None):
        super().__init__([raw])
        self.then = then

    def close(self):
        if self.then:
            self.then()


def _close_connection(start_response) -> None:
    """Has gunicorn close the connection after this answer: it drops a Connection header set by the
    application, and its start_response is a method of its response, which can be told to close."""
    close = getattr(getattr(start_response, "__self__", None), "force_close", None)
    if close:
        close()


def _headers(environ: dict) -> dict:
    # WSGI servers join a repeated header's values with commas, as API Gateway does.
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers


def _one_identity(user: str | None) -> bool:
    """A request carries one token, so one identity: the server joins a repeated header's values with
    commas (RFC 9110, section 5.3), and a comma is in no Cognito `sub` (a UUID)."""
    return bool(user) and "," not in user


def _request_line_and_headers_bytes(method: str, target: str, headers: dict) -> int:
    return len(method) + len(target) + len("HTTP/1.1") + sum(len(v.encode("latin-1", "replace")) for v in headers.values())


def _read_body(environ: dict) -> bytes | None:
    """The whole body (chunked or not), or None when it is over API Gateway's payload quota."""
    declared = environ.get("CONTENT_LENGTH")
    if declared and int(declared) > MAX_BODY_BYTES:
        return None
    stream = environ["wsgi.input"]
    if declared:
        return stream.read(int(declared))
    if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return b""
    body = stream.read(MAX_BODY_BYTES + 1)
    return None if len(body) > MAX_BODY_BYTES else body


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _payload_bytes(payload: dict) -> int:
    """The size of an invocation's event or result as JSON, non-ASCII escaped (\\uXXXX), as Python's
    json.dumps writes it by default: 12 bytes for an emoji, not its 4 bytes of UTF-8."""
    return len(json.dumps(payload))


def gateway_message(reason: str) -> bytes:
    """The body of an answer the gateway gives itself: {"message": <the status's reason phrase>}. AWS
    documents this body for 500 only (http-api-troubleshooting-lambda.html); for 429 it states the
    status and its phrase (http-api-throttling.html), for the others the status: clients read the
    status, never this text."""
    return json.dumps({"message": reason}).encode()

