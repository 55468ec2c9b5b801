"""Lambda's Invoke API for the worker function of asynchronous turns, on the local stack.

The API's instances hand a turn to the worker as deployed (agent.async_turns): `Invoke` with
`InvocationType=Event` of WORKER_FUNCTION_NAME, here at AWS_ENDPOINT_URL_LAMBDA, this service. It
answers 202 and queues the event, as Lambda does, and runs it in a worker process of its own: one
execution environment, one invocation at a time. A worker process that dies during an invocation is
replaced, and the event is delivered again with the same request id, as Lambda retries an
asynchronous invocation whose runtime failed (it waits a minute first, this does not):
https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html
When this service is down, dispatching fails and the API answers 503 worker_unavailable, as deployed.

    python -m local.lambda_service PORT   (local.server starts it beside DynamoDB Local)"""

import contextlib
import json
import multiprocessing
import os
import queue
import re
import signal
import sys
import threading
import traceback
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FUNCTION_NAME = "agent-worker-local"
DEFAULT_INSTANCES = 2
INVOKE_PATH = re.compile(rf"/2015-03-31/functions/{FUNCTION_NAME}(:[^/]+)?/invocations")


def _environment(connection) -> None:
    """A worker process: its cold start, then one invocation at a time until it dies (or the service
    does: Ctrl-C reaches the service, which ends its worker processes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from agent import worker
    from local.gateway import LocalContext

    while True:
        request_id, event = connection.recv()
        try:
            worker.lambda_handler(event, LocalContext(function_name=FUNCTION_NAME, aws_request_id=request_id))
        except Exception:  # as Lambda logs a function error
            traceback.print_exc()
        connection.send(request_id)


class WorkerFunction:
    """The worker function's event queue and its execution environments (worker processes)."""

    def __init__(self, instances: int):
        self._events: queue.Queue = queue.Queue()
        self._processes = multiprocessing.get_context("spawn")
        for _ in range(instances):
            threading.Thread(target=self._run_environments, daemon=True).start()

    def invoke(self, event: dict) -> str:
        request_id = str(uuid.uuid4())
        self._events.put((request_id, event))
        return request_id

    def _run_environments(self) -> None:
        """One environment after another: a worker process starts when an event needs it (a cold
        start, as Lambda starts an environment for an invocation) and runs events until it dies; the
        event it held is delivered again, to the next one."""
        while True:
            request_id, event = self._events.get()
            mine, theirs = self._processes.Pipe()
            process = self._processes.Process(target=_environment, args=(theirs,), daemon=True)
            process.start()
            theirs.close()  # so that its death reads as the end of the pipe here
            while True:
                mine.send((request_id, event))
                try:
                    mine.recv()
                except EOFError:
                    print(f"{request_id} worker instance ended during the invocation: delivered again",
                          file=sys.stderr, flush=True)
                    self._events.put((request_id, event))
                    break
                request_id, event = self._events.get()
            process.join()


def serve(port: int, instances: int) -> None:
    function = WorkerFunction(instances)

    class Invoke(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not INVOKE_PATH.fullmatch(self.path.split("?")[0]):
                return self._answer(HTTPStatus.NOT_FOUND, {"Type": "User", "message": "Function not found"})
            if self.headers.get("X-Amz-Invocation-Type") != "Event":
                return self._answer(HTTPStatus.BAD_REQUEST, {"Type": "User", "message": "only Event invocations here"})
            request_id = function.invoke(json.loads(body or b"{}"))
            self._answer(HTTPStatus.ACCEPTED, None, request_id)

        def _answer(self, status: HTTPStatus, body: dict | None, request_id: str = "") -> None:
            raw = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("x-amzn-RequestId", request_id or str(uuid.uuid4()))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args):  # the worker's JSON logs say what happened
            pass

    with ThreadingHTTPServer(("127.0.0.1", port), Invoke) as server:
        print(f"worker function on http://127.0.0.1:{port}: {instances} instances", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # ends the worker processes on the way out
    with contextlib.suppress(KeyboardInterrupt):
        serve(int(sys.argv[1]), int(os.environ.get("LOCAL_WORKER_INSTANCES", DEFAULT_INSTANCES)))
