"""Several Lambda instances against one DynamoDB: each is its own OS process (spawned, so nothing is
shared but the database), imports agent.handler as a cold start would, and invokes
agent.handler.lambda_handler with API Gateway v2 events, without any HTTP server in between.

A script is a list of steps: an API request, ("sleep", seconds) or ("repeat", n, [steps]). All
instances start their scripts together (after their imports), and each returns (request, status,
body) per request it made."""

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


def _instance(env: dict, script: list, start, results) -> None:
    os.environ.update(env)
    from agent import handler  # this process's cold start

    made = []
    start.wait()
    _run(handler, script, made)
    results.put((os.getpid(), made))


def _run(handler, script: list, made: list) -> None:
    for step in script:
        if step[0] == "sleep":
            time.sleep(step[1])
        elif step[0] == "repeat":
            for _ in range(step[1]):
                _run(handler, step[2], made)
        else:
            made.append((step, *invoke(handler, step)))


def run_instances(env: dict, scripts: list[list]) -> list[tuple]:
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
