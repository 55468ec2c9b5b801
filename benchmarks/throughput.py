"""Throughput of the local stack under concurrency: the real HTTP server (local.server) in front of
the handler, the offline model, DynamoDB Local. A regression signal, not a capacity figure: client,
server, handler and DynamoDB Local share this machine's cores.

Each client keeps one HTTP connection and sends turns to a session of its own, back to back."""

import http.client
import json
import threading
import time
import uuid
from pathlib import Path

from benchmarks.harness import Section, handler_module, ms, percentile, quiet_stdout, table
from local.dynamodb import free_port
from local.server import Limits, make_server

CONCURRENCY = (1, 4, 16)
SECONDS_PER_LEVEL = 6.0
WARMUP_REQUESTS = 20
MESSAGE = "Tell me something about the weather in Paris."
PREVIOUS = Path(__file__).resolve().parent / "results" / "latest.json"


def run(endpoint: str) -> Section:
    handler = handler_module(endpoint)
    # Requests as fast as they go: the measure is the handler's, not the stage's throttle.
    server = make_server(handler.lambda_handler, free_port(), limits=Limits(throttling=None))
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rows, data = [], {}
    previous = _previous()
    try:
        with quiet_stdout():
            _load(port, "GET", "/health", clients=1, seconds=None, requests=WARMUP_REQUESTS)
            _load(port, "POST", None, clients=1, seconds=None, requests=WARMUP_REQUESTS)
            levels = [("GET /health (no memory)", "GET", "/health", 4)]
            levels += [(f"POST turn, {n} concurrent clients", "POST", None, n) for n in CONCURRENCY]
            for label, method, path, clients in levels:
                result = _load(port, method, path, clients=clients, seconds=SECONDS_PER_LEVEL)
                data[label] = result["per_second"]
                before = previous.get(label)
                rows.append([
                    label,
                    f"{result['per_second']:.0f}",
                    f"{before:.0f} ({result['per_second'] / before - 1:+.0%})" if before else "",
                    ms(percentile(result["latencies"], 0.5)),
                    ms(percentile(result["latencies"], 0.99)),
                    result["errors"],
                    result["crossed"],
                ])
    finally:
        server.shutdown()
        server.server_close()
    errors, crossed = sum(row[-2] for row in rows), sum(row[-1] for row in rows)
    return Section(
        title="Throughput of the local stack",
        tables=[table(["load", "requests/s", "previous run", "latency p50", "latency p99", "non-2xx",
                               "answered for another session"], rows)],
        notes=[
            f"{SECONDS_PER_LEVEL:.0f} s per row after {WARMUP_REQUESTS} warm-up requests; every request "
            "goes through `local.server` (HTTP -> API Gateway v2 event -> `lambda_handler`). 'previous "
            f"run' is the figure saved in benchmarks/results/latest.json by the last run, if any. "
            f"{'No request failed.' if not errors else f'{errors} requests failed.'} "
            f"{crossed} answers were for another client's session.",
            "The local server runs one invocation at a time, as one Lambda execution environment does "
            "(Powertools' resolver keeps the current event on the module-level `app`, local/server.py): "
            "more clients queue rather than run turns in parallel, so requests/s stays about flat and "
            "latency grows with them. The two columns on the right check that none failed and none was "
            "answered with another client's session.",
        ],
        data={"throughput": data},
    )


def _load(port: int, method: str, path: str | None, *, clients: int, seconds: float | None,
          requests: int | None = None) -> dict:
    """`clients` threads, each with its own connection (and session), until the time or count is up."""
    latencies, errors, crossed, lock = [], [0], [0], threading.Lock()
    deadline = time.perf_counter() + seconds if seconds else None
    user_id = f"bench-tp-{uuid.uuid4().hex[:8]}"

    def client(number: int):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        target = path or f"/sessions/load-{number}/messages"
        body = json.dumps({"message": MESSAGE}) if method == "POST" else None
        headers = {"X-Local-User": user_id, "Content-Type": "application/json"}
        sent = 0
        try:
            while (deadline and time.perf_counter() < deadline) or (requests and sent < requests):
                started = time.perf_counter()
                connection.request(method, target, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                elapsed = time.perf_counter() - started
                sent += 1
                other = method == "POST" and response.status == 200 and json.loads(answer)["session_id"] != target.split("/")[2]
                with lock:
                    latencies.append(elapsed)
                    errors[0] += response.status >= 300
                    crossed[0] += other
        finally:
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"per_second": len(latencies) / elapsed, "latencies": latencies, "errors": errors[0],
            "crossed": crossed[0]}


def _previous() -> dict:
    try:
        return json.loads(PREVIOUS.read_text())["throughput"]
    except (OSError, ValueError, KeyError):
        return {}
