"""Several Lambda instances against one DynamoDB: each is its own OS process (spawned, so nothing is
shared but the database), imports agent.handler as a cold start would, and invokes
agent.handler.lambda_handler with API Gateway v2 events, without any HTTP server in between.

A script is ("during", seconds, slot_seconds, [requests]): the requests are sent in a loop until
`seconds` have passed since all instances started together (after their imports); in each request
"{slot}" becomes the number of the current slot of `slot_seconds` (every instance is in the same
slot at the same time: a shared schedule without any messages between them) and "{n}" the loop's
count. Each instance returns (request, status, body) per request it made."""

import json
import multiprocessing
import os
import time
import uuid

JOIN_SECONDS = 240


def api_event(method: str, path: str, user: str, body: dict | None = None, headers: dict | None = None) -> dict:
    """The HTTP API (payload 2.0) event of a request, with the JWT authorizer's claim `sub`."""
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **{k.lower(): v for k, v in (headers or {}).items()}},
        "requestContext": {
            "accountId": "local", "apiId": "local", "domainName": "127.0.0.1", "requestId": str(uuid.uuid4()),
            "routeKey": "$default", "stage": "$default", "timeEpoch": int(now * 1000),
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "instances"},
            "authorizer": {"jwt": {"claims": {"sub": user}, "scopes": None}},
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


class _Context:
    function_name, memory_limit_in_mb, aws_request_id = "agent", 1024, "local"
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:agent"

    def get_remaining_time_in_millis(self) -> int:
        return 25_000


def invoke(handler, request: tuple) -> tuple[int, str]:
    method, path, user, body, headers = request
    response = handler.lambda_handler(api_event(method, path, user, body, headers), _Context())
    return response["statusCode"], response.get("body") or ""


def _instance(env: dict, script: tuple, start, results) -> None:
    os.environ.update(env)
    from agent import handler  # this process's cold start

    _, seconds, slot_seconds, requests = script
    made = []
    start.wait()
    started, n = time.monotonic(), 0
    while (elapsed := time.monotonic() - started) < seconds:
        for request in requests:
            request = _filled(request, slot=int(elapsed // slot_seconds), n=n)
            made.append((request, *invoke(handler, request)))
        n += 1
    results.put((os.getpid(), made))


def _filled(value, **names):
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, (tuple, list)):
        return type(value)(_filled(v, **names) for v in value)
    if isinstance(value, dict):
        return {k: _filled(v, **names) for k, v in value.items()}
    return value


def run_instances(env: dict, scripts: list[tuple]) -> list[tuple]:
    """Runs each script in its own spawned process; returns every (request, status, body) made."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(len(scripts)), context.Queue()
    processes = [context.Process(target=_instance, args=(env, script, start, results)) for script in scripts]
    for process in processes:
        process.start()
    made = [results.get(timeout=JOIN_SECONDS) for _ in processes]
    for process in processes:
        process.join(JOIN_SECONDS)
        assert process.exitcode == 0, f"instance {process.pid} exited with {process.exitcode}"
    return [request for _, requests in made for request in requests]
