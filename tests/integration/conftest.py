"""Integration tests talk to AWS's DynamoDB Local over HTTP, through the local stack.

Every client reaches DynamoDB Local through local.strict_dynamodb, which cancels conflicting
transactions as DynamoDB does (DynamoDB Local alone never does): the tests in this process, the
local server's worker processes and the instances of instances.py are judged by the same proxy.

`api` and `base_url` are the local stack as `make dev` runs it: gunicorn with several worker
processes (Lambda instances), so concurrent requests race as in production. A test that reaches
into the handler in this process (the `handler` fixture: fault injection, scripted models) cannot
reach those processes: its `api` and `base_url` are one "instance" in this process instead."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest

from local.dynamodb import ROOT, embedded_dynamodb, free_port
from local.server import configure, make_server
from local.strict_dynamodb import strict_dynamodb
from local.tables import control_plane_client, ensure_tables
from memory.client import dynamodb_client
from memory.conversation import registry_key, session_key

SESSIONS_TABLE, LONG_TERM_TABLE = "it-sessions", "it-long-term"
STACK_ENV = {"SESSIONS_TABLE_NAME": SESSIONS_TABLE, "LONG_TERM_TABLE_NAME": LONG_TERM_TABLE,
             "MEMORY_MAX_TURNS": "3", "AGENT_MODEL_PROVIDER": "offline"}
SERVER_WORKERS = 4
SERVER_START_SECONDS = 60
# What fails under DynamoDB's conflict rules until the write protocol of issue 17 lands.
ISSUE_17 = pytest.mark.xfail(strict=False, reason="issue 17: write protocol")


@pytest.fixture(scope="session")
def strict_proxy():
    """DynamoDB Local behind the strict proxy: `endpoint` is the proxy, `upstream` DynamoDB Local."""
    with embedded_dynamodb(port=free_port(), data_dir=None) as (upstream, _), strict_dynamodb(upstream) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def dynamodb_endpoint(strict_proxy):
    return strict_proxy.endpoint


@pytest.fixture(scope="session")
def tables(dynamodb_endpoint):
    os.environ.update(STACK_ENV)
    configure(dynamodb_endpoint)
    ensure_tables(control_plane_client(), sessions_table=SESSIONS_TABLE, long_term_table=LONG_TERM_TABLE)


@pytest.fixture(scope="session")
def handler(tables):
    from agent import handler

    return handler


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
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
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


@pytest.fixture(scope="session")
def server_url(tables, dynamodb_endpoint):
    with local_server(dynamodb_endpoint, SERVER_WORKERS) as server:
        yield server.url


@pytest.fixture(scope="session")
def in_process_url(handler):
    server = make_server(handler.lambda_handler, free_port())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def base_url(request):
    return request.getfixturevalue("in_process_url" if "handler" in request.fixturenames else "server_url")


@pytest.fixture
def api(base_url):
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture
def user(api):
    """A fresh identity per test; everything it stored is erased afterwards."""
    user_id = f"user-{uuid.uuid4().hex[:12]}"
    yield user_id
    api.delete("/me", headers={"X-Local-User": user_id})


def as_user(user_id: str) -> dict:
    return {"X-Local-User": user_id}


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
    turns = [key for key in keys if key["sk"]["S"].startswith("TURN#")]
    for key in turns[:oldest] if oldest is not None else keys:
        client.update_item(TableName=SESSIONS_TABLE, Key=key, UpdateExpression="SET expires_at = :past",
                           ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 60)}})
    if oldest is None and not prefix:
        client.update_item(TableName=SESSIONS_TABLE, Key=registry_key(user, session),
                           UpdateExpression="SET turns_expire_at = :past",
                           ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 60)}})
