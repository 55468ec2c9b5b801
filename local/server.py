"""The local stack: DynamoDB Local, the tables, and the agent's handler behind API Gateway's stand-in
(local.gateway) on gunicorn.

Lambda runs one invocation at a time per execution environment and many environments at once, so
does this: LOCAL_WORKERS pre-forked workers, each one "Lambda instance" invoking the handler for one
request at a time (local.gateway.Instance). Powertools' resolver keeps the event it resolves on its
class, so one invocation at a time per process is also what the handler needs. API Gateway, not
the function, holds the clients' connections: each worker reads and answers them on threads
(gunicorn's gthread), so idle or slow clients hold a thread, never the instance, and idle ones are
closed after a few seconds."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import gunicorn.util
from gunicorn.app.base import BaseApplication

from agent import routes
from agent.shared import AGENT_SERVICE, METRICS_NAMESPACE
from local.dynamodb import ROOT, PortInUse, embedded_dynamodb, free_port, listening_socket
from local.gateway import (MAX_REQUEST_LINE_AND_HEADERS_BYTES, Gateway, Limits, LocalContext,  # noqa: F401 (benchmarks)
                           gateway_message, routes_of, to_event)

LOCAL_DEFAULTS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "SESSIONS_TABLE_NAME": "agent-sessions",
    "LONG_TERM_TABLE_NAME": "agent-long-term",
    "POWERTOOLS_SERVICE_NAME": AGENT_SERVICE,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    # The deployed function starts from a SnapStart snapshot (infra/agent_function.py); the local
    # instances are forked from one initialised handler, and its init preloads what a snapshot holds
    # (agent.wiring.services). Without it each instance imported the model SDK in its first turn,
    # which on a busy machine spent the turn's whole deadline.
    "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
}
DEFAULT_WORKERS = 4  # enough for two turns to race on a laptop's cores
# Connections a worker reads and answers at once; one of them at a time invokes the handler.
CONNECTION_THREADS = 8
# gunicorn kills a worker whose main loop is silent for this long (a handler running long does not
# silence it: the function timeout ends that instance, local.gateway.Instance).
WORKER_TIMEOUT_SECONDS = 60
# Ctrl-C waits this long for requests in flight.
GRACEFUL_STOP_SECONDS = 5
ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s %(M)sms"
WORKER_FUNCTION_START_SECONDS = 30


def _json_error(sock, status_int, reason, mesg):
    """What gunicorn answers to a request it cannot parse, in API Gateway's shape instead of HTML."""
    raw = gateway_message(reason)
    head = f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
    gunicorn.util.write_nonblock(sock, (head + f"Content-Length: {len(raw)}\r\n\r\n").encode("latin-1") + raw)


# gunicorn has no hook for its parse-error page: its own writer is replaced, in this process only.
gunicorn.util.write_error = _json_error


class Instances(BaseApplication):
    """gunicorn, configured in code, serving an app built in this process before the fork: each
    worker starts from the same initialised handler, as SnapStart restores a snapshot."""

    def __init__(self, app, *, sock: socket.socket, workers: int, banner: str):
        self.app, self.sock, self.workers, self.banner = app, sock, workers, banner
        super().__init__()

    def load_config(self):
        settings = {
            "bind": [f"fd://{self.sock.fileno()}"],
            "workers": self.workers,
            "worker_class": "gthread",
            "threads": CONNECTION_THREADS,
            "timeout": WORKER_TIMEOUT_SECONDS,
            "graceful_timeout": GRACEFUL_STOP_SECONDS,
            "accesslog": "-",
            "access_log_format": ACCESS_LOG_FORMAT,
            "errorlog": "-",
            "loglevel": "warning",
            # API Gateway's quota is 10,240 bytes for the request line and headers together
            # (local.gateway checks it); gunicorn's per-header cap must not refuse earlier. Its
            # request line stops at 8,190 bytes whatever the setting (414, a known difference).
            "limit_request_line": 0,
            "limit_request_field_size": MAX_REQUEST_LINE_AND_HEADERS_BYTES,
            "when_ready": lambda _: print(self.banner, flush=True),
            "on_exit": lambda _: print("agent stopped", flush=True),
            "worker_exit": _exit_ended_instance,
        }
        for name, value in settings.items():
            self.cfg.set(name, value)

    def load(self):
        return self.app


def end_this_instance() -> None:
    """Ends this worker process as Lambda ends an environment whose invocation timed out: gunicorn
    stops it (answering what it has read) and starts a fresh one."""
    os.kill(os.getpid(), signal.SIGTERM)


def _exit_ended_instance(_arbiter, worker) -> None:
    # Without waiting for the timed-out handler's threads, which may never return.
    if worker.wsgi.instance.ended.is_set():
        sys.stdout.flush()
        os._exit(1)


class _QuietHandler(WSGIRequestHandler):
    def get_environ(self):
        environ = super().get_environ()
        environ["RAW_URI"] = self.path  # as gunicorn gives it: the target before percent-decoding
        return environ

    def log_message(self, *args):  # the handler's JSON logs say what happened
        pass


class _InProcessServer(WSGIServer):
    # socketserver's default listen backlog is 5: a burst of clients got connection resets.
    request_queue_size = 128


def make_server(handler, port: int, after_response=None, *, limits: Limits = Limits()) -> WSGIServer:
    """One "Lambda instance" in this process, for tests that patch the handler here (fault
    injection, scripted models): a gunicorn worker is another process, which no patch reaches."""
    server = _InProcessServer(("127.0.0.1", port), _QuietHandler)
    server.set_app(gateway(handler, after_response, limits=limits))
    return server


def gateway(lambda_handler, after_response=None, **options) -> Gateway:
    """API Gateway's stand-in in front of `lambda_handler`, with the routes the stack deploys."""
    return Gateway(lambda_handler, routes_of(routes.PROTECTED, routes.PUBLIC), after_response, **options)


def turn_stream(compactor_handler):
    """What the sessions table's stream and the compactor's event source mapping do in AWS: each
    stored turn's INSERT record goes to the compactor Lambda's handler, after the reply."""
    from memory.keys import TURN_PREFIX, session_key

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


@contextlib.contextmanager
def worker_function():
    """The worker function of asynchronous turns behind Lambda's Invoke API (local.lambda_service),
    where the API's instances dispatch turns as deployed: WORKER_FUNCTION_NAME at
    AWS_ENDPOINT_URL_LAMBDA (boto3 honours it)."""
    from local.lambda_service import FUNCTION_NAME

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "local.lambda_service", str(port)], cwd=ROOT)
    deadline = time.monotonic() + WORKER_FUNCTION_START_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            break
        time.sleep(0.1)
    os.environ |= {"WORKER_FUNCTION_NAME": FUNCTION_NAME, "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{port}"}
    try:
        yield
    finally:
        process.terminate()
        process.wait()


def serve(endpoint: str, sock: socket.socket, workers: int) -> None:
    configure(endpoint)
    with worker_function():
        _serve(endpoint, sock, workers)


def _serve(endpoint: str, sock: socket.socket, workers: int) -> None:
    from agent import handler  # imported after configure: it reads the environment at import
    from local.tables import control_plane_client, ensure_tables

    ensure_tables(control_plane_client(), sessions_table=os.environ["SESSIONS_TABLE_NAME"],
                  long_term_table=os.environ["LONG_TERM_TABLE_NAME"])
    after_response = None
    if handler.settings.memory_strategy == "compaction":
        from compactor import handler as compactor

        after_response = turn_stream(compactor.lambda_handler)
    app = gateway(handler.lambda_handler, after_response, limits=Limits.from_env(os.environ), end=end_this_instance)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    banner = (
        f"agent listening on {url}: {workers} instances, DynamoDB at {endpoint}, "
        f"model {os.environ['AGENT_MODEL_PROVIDER']} (Ctrl-C to stop)\n"
        f"  try: curl -s -XPOST {url}/sessions/hello/messages -H 'X-Local-User: alice' "
        f"-d '{{\"message\": \"hello\"}}'\n"
        f"  or:  make chat"
    )
    Instances(app, sock=sock, workers=workers, banner=banner).run()


def main() -> None:
    port = int(os.environ.get("PORT", "3000"))
    workers = int(os.environ.get("LOCAL_WORKERS", str(DEFAULT_WORKERS)))
    # The console shows one access line per request; EMF metric blobs only matter to CloudWatch.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    # gunicorn stops on SIGINT and SIGTERM alike, then exits through the `with` below, which stops
    # DynamoDB Local; a SIGTERM arriving before gunicorn runs takes the same way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        sock = listening_socket(port, "PORT", "PORT={port} make dev")
        if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
            serve(os.environ["AWS_ENDPOINT_URL_DYNAMODB"], sock, workers)
            return
        dynamodb_port = int(os.environ.get("DYNAMODB_LOCAL_PORT", "8000"))
        data_dir = ROOT / os.environ.get("LOCAL_DATA_DIR", ".local-data")
        with embedded_dynamodb(port=dynamodb_port, data_dir=data_dir) as (endpoint, kind):
            print(f"{kind} on {endpoint}", flush=True)
            serve(endpoint, sock, workers)
    except PortInUse as busy:
        sys.exit(str(busy))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
