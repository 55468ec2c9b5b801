"""Integration tests talk to AWS's DynamoDB Local over HTTP, through the local stack.

Every client reaches DynamoDB Local through local.strict_dynamodb, which cancels conflicting
transactions as DynamoDB does (DynamoDB Local alone never does): the tests in this process, the
local server's worker processes and the instances of instances.py are judged by the same proxy.

`api` and `base_url` are the local stack as `make dev` runs it: gunicorn with several worker
processes (Lambda instances), so concurrent requests race as in production. A test that reaches
into the handler in this process (the `handler` fixture: fault injection, scripted models) cannot
reach those processes: its `api` and `base_url` are one "instance" in this process instead."""

import os
import threading
import uuid

import pytest

from client import as_user, http_client
from local.dynamodb import embedded_dynamodb, free_port
from local.server import Limits, configure, make_server
from local.strict_dynamodb import strict_dynamodb
from local.tables import control_plane_client, ensure_tables
from local_stack import LONG_TERM_TABLE, SESSIONS_TABLE, STACK_ENV, local_server

SERVER_WORKERS = 4


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


@pytest.fixture(scope="session")
def server_url(tables, dynamodb_endpoint):
    # The HTTP tests burst (32 turns at once, schemathesis): the stage's throttle is off for them;
    # test_local_limits tries it on its own server.
    with local_server(dynamodb_endpoint, SERVER_WORKERS, LOCAL_THROTTLE="off") as server:
        yield server.url


@pytest.fixture(scope="session")
def in_process_url(handler):
    server = make_server(handler.lambda_handler, free_port(), limits=Limits(throttling=None))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def base_url(request):
    return request.getfixturevalue("in_process_url" if "handler" in request.fixturenames else "server_url")


@pytest.fixture
def api(base_url):
    with http_client(base_url, timeout=30) as client:
        yield client


@pytest.fixture
def user(api):
    """A fresh identity per test; everything it stored is erased afterwards."""
    user_id = f"user-{uuid.uuid4().hex[:12]}"
    yield user_id
    api.delete("/me", headers=as_user(user_id))
