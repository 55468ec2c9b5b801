"""Integration tests talk to AWS's DynamoDB Local over HTTP, through the local stack.

`api` and `base_url` are the local stack as `make dev` runs it: gunicorn with several worker
processes (Lambda instances), so concurrent requests race as in production. A test that reaches
into the handler in this process (the `handler` fixture: fault injection, scripted models) cannot
reach those processes: its `api` and `base_url` are one "instance" in this process instead."""

import os
import uuid

import httpx
import pytest

from client import as_user
from local.dynamodb import embedded_dynamodb, free_port
from local.server import configure, make_server
from local.tables import control_plane_client, ensure_tables
from local_stack import LONG_TERM_TABLE, SESSIONS_TABLE, STACK_ENV, start_server, stop_server

SERVER_WORKERS = 4


@pytest.fixture(scope="session")
def dynamodb_endpoint():
    with embedded_dynamodb(port=free_port(), data_dir=None) as (endpoint, _):
        yield endpoint


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
    env = os.environ | STACK_ENV | {"AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
                                    "LOCAL_WORKERS": str(SERVER_WORKERS), "PYTHONPATH": "functions:."}
    port = free_port()
    process = start_server(env, port)
    yield f"http://127.0.0.1:{port}"
    stop_server(process)


@pytest.fixture(scope="session")
def in_process_url(handler):
    import threading

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
    api.delete("/me", headers=as_user(user_id))
