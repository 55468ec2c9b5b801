"""The local stack the integration tests run against: its tables and environment, its server as
`make dev` starts it, and what a test does to the tables directly, beside the code under test."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import httpx

from client import http_client
from local.dynamodb import ROOT, free_port
from memory.client import dynamodb_client
from memory.keys import REGISTRY_PREFIX, TURN_PREFIX, registry_key, session_key

SESSIONS_TABLE, LONG_TERM_TABLE = "it-sessions", "it-long-term"
STACK_ENV = {"SESSIONS_TABLE_NAME": SESSIONS_TABLE, "LONG_TERM_TABLE_NAME": LONG_TERM_TABLE,
             "MEMORY_MAX_TURNS": "3", "AGENT_MODEL_PROVIDER": "offline"}
SERVER_START_SECONDS = 60


def start_server(env: dict, port: int) -> subprocess.Popen:
    """`python -m local.server` (what `make dev` runs) on `port`, up and answering /health. Its console
    is read as it is written, into `process.console`: a full pipe would stall the server."""
    process = subprocess.Popen(
        [sys.executable, "-m", "local.server"], cwd=ROOT, env=env | {"PORT": str(port)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    process.console = []
    process.reader = threading.Thread(target=lambda: process.console.extend(iter(process.stdout.readline, "")),
                                      daemon=True)
    process.reader.start()
    deadline = time.monotonic() + SERVER_START_SECONDS
    with http_client(f"http://127.0.0.1:{port}", timeout=2) as client:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.get("/health").status_code == 200:
                    return process
            except httpx.TransportError:
                time.sleep(0.2)
    process.kill()
    process.reader.join()
    raise RuntimeError(f"the local server did not start: {''.join(process.console)[-2000:]}")


def stop_server(process: subprocess.Popen, stop: signal.Signals = signal.SIGTERM) -> str:
    """SIGTERM (as a process manager sends it) or `stop`; returns the console output."""
    process.send_signal(stop)
    process.wait(timeout=30)
    process.reader.join()
    return "".join(process.console)


@contextlib.contextmanager
def local_server(dynamodb_endpoint: str, workers: int, **env: str):
    """The local server on the test tables with `workers` worker processes and `env` on top; yields
    its process: `url` to call, `console` (whole once the block is left)."""
    port = free_port()
    process = start_server(os.environ | STACK_ENV | {"AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
                                                     "LOCAL_WORKERS": str(workers), "PYTHONPATH": "functions:."} | env, port)
    process.url = f"http://127.0.0.1:{port}"
    try:
        yield process
    finally:
        stop_server(process)


def expire(user: str, session: str, *, oldest: int | None = None, prefix: str = "") -> None:
    """Sets expires_at in the past on the session's items (the `oldest` turns only, if given); when
    every item lapses, so does the registry's record of its newest turn (the entry itself lives on)."""
    client = dynamodb_client()
    keys = client.query(
        TableName=SESSIONS_TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": session_key(user, session)}},
        ProjectionExpression="pk, sk",
    )["Items"]
    keys = [key for key in keys if key["sk"]["S"].startswith(prefix)]
    turns = [key for key in keys if key["sk"]["S"].startswith(TURN_PREFIX)]
    for key in turns[:oldest] if oldest is not None else keys:
        client.update_item(TableName=SESSIONS_TABLE, Key=key, UpdateExpression="SET expires_at = :past",
                           ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 60)}})
    if oldest is None and not prefix:
        client.update_item(TableName=SESSIONS_TABLE, Key=registry_key(user, session),
                           UpdateExpression="SET turns_expire_at = :past",
                           ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 60)}})


def items_of(user: str) -> list[dict]:
    """Every item of `user` in both tables, read with Scan: not through the code under test."""
    client = dynamodb_client()
    sessions = client.get_paginator("scan").paginate(
        TableName=SESSIONS_TABLE,
        FilterExpression="begins_with(pk, :prefix) OR pk = :registry",
        ExpressionAttributeValues={":prefix": {"S": session_key(user, "")}, ":registry": {"S": REGISTRY_PREFIX + user}},
    )
    facts = client.get_paginator("query").paginate(
        TableName=LONG_TERM_TABLE,
        KeyConditionExpression="user_id = :user",
        ExpressionAttributeValues={":user": {"S": user}},
    )
    return [item for page in [*sessions, *facts] for item in page["Items"]]
