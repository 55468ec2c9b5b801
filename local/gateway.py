"""What API Gateway's HTTP API does in front of the Lambda, as a WSGI application.

Each request becomes an API Gateway HTTP API (payload 2.0) event for the very same handler; the
`X-Local-User` header becomes the JWT claim `sub`, exactly where the authorizer would put it. Where
API Gateway itself answers (no route, no identity on a protected route, a request over its quotas),
this answers as it does: `{"message": "..."}`, and the Lambda is never invoked."""

import base64
import functools
import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

# API Gateway HTTP API quotas (not adjustable): 10 MB payload; 10,240 bytes for the request line
# and the header values together.
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_REQUEST_LINE_AND_HEADERS_BYTES = 10_240


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
    the request's latency, in the same process: as a stream-triggered Lambda would, later."""

    def __init__(self, handler, routes: list[Route], after_response=None):
        self.handler, self.routes, self.after_response = handler, routes, after_response

    def __call__(self, environ: dict, start_response):
        method = environ["REQUEST_METHOD"]
        # The raw target: %2F in a path segment stays inside that segment, as API Gateway routes it.
        target = environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
        headers = _headers(environ)
        path = urlsplit(target).path
        route = next((r for r in self.routes if r.method == method and r.pattern.fullmatch(path)), None)
        refuse = functools.partial(_gateway_error, start_response, method)
        if _request_line_and_headers_bytes(method, target, headers) > MAX_REQUEST_LINE_AND_HEADERS_BYTES:
            return refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        if route is None:
            return refuse(HTTPStatus.NOT_FOUND)
        if route.protected and not _one_identity(headers.get("x-local-user")):
            return refuse(HTTPStatus.UNAUTHORIZED)
        body = _read_body(environ)
        if body is None:
            return refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        declared = environ.get("CONTENT_LENGTH")
        if declared and len(body) < int(declared):
            # The client gave up before sending its whole body: nothing to invoke for.
            return refuse(HTTPStatus.BAD_REQUEST)

        event = to_event(method, target, headers, body, environ.get("REMOTE_ADDR", "127.0.0.1"))
        result = self.handler(event, LocalContext(aws_request_id=event["requestContext"]["requestId"]))
        payload = result.get("body") or ""
        raw = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        reply_headers = [(k, v) for k, v in (result.get("headers") or {}).items() if k.lower() != "content-length"]
        start_response(_status_line(result["statusCode"]), [*reply_headers, ("Content-Length", str(len(raw)))])
        return _Reply(raw, lambda: self.after_response(event, result) if self.after_response else None)


class _Reply(list):
    """A WSGI body whose close() (called by the server once the body is sent) runs `then`."""

    def __init__(self, raw: bytes, then):
        super().__init__([raw])
        self.then = then

    def close(self):
        self.then()


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


def gateway_message(reason: str) -> bytes:
    """API Gateway's own error body."""
    return json.dumps({"message": reason}).encode()


def _gateway_error(start_response, method: str, status: HTTPStatus):
    raw = gateway_message(status.phrase)
    start_response(_status_line(status), [("Content-Type", "application/json"), ("Content-Length", str(len(raw)))])
    return [] if method == "HEAD" else [raw]
