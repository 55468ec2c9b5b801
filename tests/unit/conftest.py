import importlib
import sys

import boto3
import pytest
from moto import mock_aws

import agent
from agent.observability import logger
from local.tables import ensure_tables
from memory.client import DYNAMODB_CONFIG
from memory.conversation import ConversationStore
from memory.long_term import FactStore
from memory.resilient import ResilientMemory
from stores import LONG_TERM, SESSIONS, Clock


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def dynamodb(monkeypatch):
    # moto is active before any client of the code under test exists, and no endpoint left by
    # the local stack's tests may send these clients past it.
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", config=DYNAMODB_CONFIG)
        ensure_tables(client, sessions_table=SESSIONS, long_term_table=LONG_TERM)
        yield client


@pytest.fixture
def conversations(dynamodb, clock):
    return ConversationStore(client=dynamodb, table_name=SESSIONS, ttl_days=30, clock=clock)


@pytest.fixture
def facts(dynamodb, clock):
    return FactStore(client=dynamodb, table_name=LONG_TERM, clock=clock)


@pytest.fixture
def memory(conversations, facts, clock):
    return ResilientMemory(conversations=conversations, facts=facts, logger=logger, max_turns=3, clock=clock)


@pytest.fixture
def functions(monkeypatch):
    """The API and worker modules, imported as Lambda's init imports them, with the unit tests' table
    names, and forgotten afterwards: a client one of them built here (on moto, say) must never serve
    a later test that imports them with its own environment."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    for name, value in {"SESSIONS_TABLE_NAME": SESSIONS, "LONG_TERM_TABLE_NAME": LONG_TERM,
                        "AGENT_MODEL_PROVIDER": "offline"}.items():
        monkeypatch.setenv(name, value)
    for name in ("handler", "worker"):
        monkeypatch.setitem(sys.modules, f"agent.{name}", None)  # put back (or removed) on teardown
        monkeypatch.setattr(agent, name, None, raising=False)
        del sys.modules[f"agent.{name}"]
        delattr(agent, name)
    return importlib.import_module("agent.handler"), importlib.import_module("agent.worker")
