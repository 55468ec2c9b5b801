"""The local stack: embedded DynamoDB, the tables, and the agent's handler behind an HTTP server.

Each request becomes an API Gateway HTTP API (payload 2.0) event for the very same handler; the
`X-Local-User` header becomes the JWT claim `sub`, exactly where the authorizer would put it."""

import base64
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from local.dynamodb import ROOT, embedded_dynamodb

DATA_DIR = ROOT / ".local-data"
LOCAL_DEFAULTS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "SESSIONS_TABLE_NAME": "agent-sessions",
    "LONG_TERM_TABLE_NAME": "agent-long-term",
    "POWERTOOLS_SERVICE_NAME": "agent",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "AgentMemory",
}
MAX_REQUEST_BYTES = 10 * 1024 * 1024


class LocalServer(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of clients got connection resets.
    request_queue_size = 128


@dataclass(frozen=True)
class LocalContext:
    """The parts of the Lambda context that Powertools reads."""

    function_name: str = "agent-local"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:agent-local"
    aws_request_id: str = "local"


def to_event(method: str, target: str, headers: dict, body: bytes, source_ip: str) -> dict:
    url = urlsplit(target)
    lowered = {k.lower(): v for k, v in headers.items()}
    user = lowered.pop("x-local-user", None)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path,
        "rawQueryString": url.query,
        "headers": lowered,
        "queryStringParameters": dict(parse_qsl(url.query)) or None,
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


def make_server(handler, port: int, after_response=None) -> ThreadingHTTPServer:
    """after_response(event, result), if given, runs once the reply is sent: outside its latency."""
    # Powertools' resolver keeps the event it resolves on the router class: right for Lambda, where an
    # execution environment runs one invocation at a time, but concurrent threads read each other's
    # event (another request's body, path, even identity). So this process is one environment:
    # connections are accepted concurrently, invocations run one at a time.
    invocation = threading.Lock()

    class Adapter(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes; with Nagle on, the body waits for the client's
        # delayed ACK of the headers: ~40 ms added to every keep-alive request (benchmarks/throughput.py).
        disable_nagle_algorithm = True

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST_BYTES:
                self._reply(413, {"Content-Type": "application/json"},
                            b'{"error": "payload_too_large", "message": "the body is too large"}')
                return
            body = self.rfile.read(length)
            event = to_event(self.command, self.path, dict(self.headers), body, self.client_address[0])
            with invocation:
                result = handler(event, LocalContext(aws_request_id=event["requestContext"]["requestId"]))
            payload = result.get("body") or ""
            raw = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
            self._reply(result["statusCode"], result.get("headers") or {}, raw)
            if after_response:
                after_response(event, result)

        def _reply(self, status: int, headers: dict, raw: bytes):
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, *args):  # the handler's JSON logs say what happened
            pass

    return LocalServer(("127.0.0.1", port), Adapter)


def turn_stream(compactor_handler):
    """What the sessions table's stream and the compactor's event source mapping do in AWS: each
    stored turn's INSERT record goes to the compactor Lambda's handler, after the reply."""
    from memory.conversation import TURN_PREFIX, session_key

    def after_response(event: dict, result: dict) -> None:
        body = json.loads(result.get("body") or "{}") if result["statusCode"] == 200 else {}
        if body.get("memory", {}).get("write") != "ok" or "turn_id" not in body:
            return
        user = event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
        keys = {"pk": {"S": session_key(user, body["session_id"])}, "sk": {"S": TURN_PREFIX + body["turn_id"]}}
        record = {"eventName": "INSERT", "dynamodb": {"Keys": keys, "SequenceNumber": body["turn_id"]}}
        compactor_handler({"Records": [record]}, LocalContext(function_name="compactor-local"))

    return after_response


def configure(endpoint: str) -> None:
    """The environment the deployed Lambda would have, pointed at the local DynamoDB."""
    for name, value in LOCAL_DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    os.environ.setdefault("AGENT_MODEL_PROVIDER", "anthropic" if os.environ.get("ANTHROPIC_API_KEY") else "offline")


def serve(endpoint: str, port: int) -> None:
    configure(endpoint)
    from agent import handler  # imported after configure: it reads the environment at import
    from local.tables import ensure_tables
    from memory.client import dynamodb_client

    ensure_tables(
        dynamodb_client(),
        sessions_table=os.environ["SESSIONS_TABLE_NAME"],
        long_term_table=os.environ["LONG_TERM_TABLE_NAME"],
    )
    after_response = None
    if handler.settings.memory_strategy == "compaction":
        from compactor import handler as compactor

        after_response = turn_stream(compactor.lambda_handler)
    server = make_server(handler.lambda_handler, port, after_response)
    print(json.dumps({"message": "local_stack_ready", "url": f"http://127.0.0.1:{port}",
                      "dynamodb": endpoint, "model": os.environ["AGENT_MODEL_PROVIDER"]}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main() -> None:
    port = int(os.environ.get("PORT", "3000"))
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        serve(os.environ["AWS_ENDPOINT_URL_DYNAMODB"], port)
        return
    dynamodb_port = int(os.environ.get("DYNAMODB_LOCAL_PORT", "8000"))
    with embedded_dynamodb(port=dynamodb_port, data_dir=DATA_DIR) as (endpoint, kind):
        print(json.dumps({"message": "dynamodb_started", "kind": kind, "endpoint": endpoint}), flush=True)
        serve(endpoint, port)


if __name__ == "__main__":
    sys.exit(main())
