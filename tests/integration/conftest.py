"""Integration tests talk to AWS's DynamoDB Local over HTTP, through the local stack."""

import os
import threading
import time
import uuid

import httpx
import pytest

from local.dynamodb import embedded_dynamodb, free_port
from local.server import configure, make_server
from memory.client import dynamodb_client
from memory.conversation import registry_key, session_key

SESSIONS_TABLE, LONG_TERM_TABLE = "it-sessions", "it-long-term"


@pytest.fixture(scope="session")
def dynamodb_endpoint():
    with embedded_dynamodb(port=free_port(), data_dir=None) as (endpoint, _):
        yield endpoint


@pytest.fixture(scope="session")
def handler(dynamodb_endpoint):
    os.environ.update(SESSIONS_TABLE_NAME=SESSIONS_TABLE, LONG_TERM_TABLE_NAME=LONG_TERM_TABLE,
                      MEMORY_MAX_TURNS="3", AGENT_MODEL_PROVIDER="offline")
    configure(dynamodb_endpoint)
    from agent import handler
    from local.tables import ensure_tables

    ensure_tables(dynamodb_client(), sessions_table=SESSIONS_TABLE, long_term_table=LONG_TERM_TABLE)
    return handler


@pytest.fixture(scope="session")
def base_url(handler):
    server = make_server(handler.lambda_handler, free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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
