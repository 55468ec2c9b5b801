"""Every memory operation of a turn under every wire fault, against DynamoDB Local.

Expected outcomes:
- session window read fails  -> 503 memory_unavailable within 5 s, the model is not called
- long-term facts read fails -> the same: a turn without the user's facts is not answered
- turn append fails          -> 200, memory.write = "suppressed", one memory_write_suppressed line
- remember / forget fails    -> the model gets a tool error, the turn goes on and is stored
and after every fault, everything stored before it is intact."""

import time

import boto3
import pytest

from agent.observability import logger
from client import as_user, say
from fakes import ScriptedModel, captured_logs, text, tool_use
from faults import (
    SERVER_ERROR,
    THROTTLED,
    connection_reset,
    failing,
    partial_batch,
    read_timeout,
    resetting_endpoint,
    unresponsive_endpoint,
)
from local_stack import LONG_TERM_TABLE, SESSIONS_TABLE
from memory.client import DYNAMODB_CONFIG, dynamodb_client
from memory.conversation import ConversationStore
from memory.long_term import FactStore
from memory.resilient import ResilientMemory

READ_FAILURE_BOUND_SECONDS = 5
FAULTS = {
    "throttling": THROTTLED,
    "HTTP 500": SERVER_ERROR,
    "connection reset": connection_reset,
    "read timeout": read_timeout,
}
# The error a memory_write_suppressed line names, per fault: botocore's exception for the error code.
LOGGED_ERRORS = {
    "throttling": "ProvisionedThroughputExceededException",
    "HTTP 500": "InternalServerError",
    "connection reset": "ConnectionClosedError",
    "read timeout": "ReadTimeoutError",
}


def snapshot(api, user) -> list:
    """Everything the user has stored: every session's messages and every fact."""
    sessions = api.get("/sessions", headers=as_user(user)).json()["sessions"]
    stored = [
        (s["session_id"], m["role"], str(m["content"]))
        for s in sessions
        for m in api.get(f"/sessions/{s['session_id']}/messages", headers=as_user(user)).json()["messages"]
    ]
    return stored + sorted(api.get("/memory", headers=as_user(user)).json()["facts"].items())


def lost(before: list, after: list) -> int:
    return sum(1 for item in before if item not in after)


@pytest.fixture
def stored(api, user):
    """Given a user with a session of two turns and two facts."""
    say(api, user, "s", "first")
    say(api, user, "s", "second")
    api.put("/memory/city", json={"value": "Paris"}, headers=as_user(user))
    api.put("/memory/name", json={"value": "Ada"}, headers=as_user(user))
    return snapshot(api, user)


@pytest.fixture
def backdoor(handler):
    """A client of the same DynamoDB Local that no fault hook touches."""
    return dynamodb_client()


READS = {"session window": SESSIONS_TABLE, "long-term facts": LONG_TERM_TABLE}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("read", READS)
def test_a_failed_read_is_503_fast_and_the_model_is_not_called(
    api, user, handler, monkeypatch, stored, reliability, read, fault
):
    model = ScriptedModel(text("must not be used"))
    monkeypatch.setattr(handler, "model", lambda: model)
    # When the read fails at the wire
    with failing(handler.dynamodb, "Query", FAULTS[fault], table=READS[read]) as attempts:
        started = time.monotonic()
        response = say(api, user, "s", "during")
        elapsed = time.monotonic() - started
    # Then 503 memory_unavailable within the bound, after the client's bounded attempts
    assert response.status_code == 503 and response.json()["error"] == "memory_unavailable"
    assert elapsed < READ_FAILURE_BOUND_SECONDS
    assert model.calls == [] and len(attempts) == 2
    # And nothing stored before is lost
    after = snapshot(api, user)
    assert after == stored
    reliability("Memory faults", f"{read} read: {fault}",
                f"503 memory_unavailable after {len(attempts)} attempts, {elapsed:.1f} s; model not called",
                lost(stored, after))


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failed_append_still_answers_and_says_so(api, user, handler, stored, reliability, fault):
    # When the turn's write fails at the wire
    with failing(handler.dynamodb, "PutItem", FAULTS[fault], table=SESSIONS_TABLE), captured_logs(logger) as lines:
        response = say(api, user, "s", "during")
    # Then the reply arrives, marked suppressed, with exactly one WARNING line about it
    assert response.status_code == 200 and response.json()["reply"]
    assert response.json()["memory"] == {"write": "suppressed"}
    [line] = [line for line in lines() if line["message"] == "memory_write_suppressed"]
    assert line["level"] == "WARNING" and line["session_id"] == "s" and "during" not in str(line)
    assert line["error"] == LOGGED_ERRORS[fault]
    # And the history stored before is intact, without a partial turn
    after = snapshot(api, user)
    assert after == stored
    # And the next turn, once the fault is gone, is stored again
    assert say(api, user, "s", "after").json()["memory"] == {"write": "ok"}
    reliability("Memory faults", f"turn append: {fault}",
                "200 with the reply, memory.write = suppressed, one memory_write_suppressed line",
                lost(stored, after))


# A fact and the user's totals change in one transaction (memory.long_term).
TOOL_WRITES = {
    "remember": ("TransactWriteItems", tool_use("remember", {"key": "city", "value": "Rome"})),
    "forget": ("TransactWriteItems", tool_use("forget", {"key": "city"})),
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("tool", TOOL_WRITES)
def test_a_failed_tool_write_is_a_tool_error_and_the_turn_goes_on(
    api, user, handler, monkeypatch, stored, reliability, tool, fault
):
    operation, call = TOOL_WRITES[tool]
    model = ScriptedModel(call, text("I could not change that, sorry"))
    monkeypatch.setattr(handler, "model", lambda: model)
    # When the tool's write fails at the wire
    with failing(handler.dynamodb, operation, FAULTS[fault], table=LONG_TERM_TABLE), captured_logs(logger) as lines:
        response = say(api, user, "s", f"please {tool} my city")
    # Then the model was told, as a tool error, and the turn was answered and stored
    [result] = model.calls[1]["messages"][-1]["content"]
    assert result["is_error"] is True and "unavailable" in result["content"]
    assert response.status_code == 200 and response.json()["memory"] == {"write": "ok"}
    assert len([line for line in lines() if line["message"] == "memory_write_suppressed"]) == 1
    # And the fact is unchanged, the earlier history intact
    after = snapshot(api, user)
    assert ("city", "Paris") in after and lost(stored, after) == 0
    reliability("Memory faults", f"`{tool}` tool write: {fault}",
                "the model gets a tool error; 200, turn stored; the fact unchanged", lost(stored, after))


def test_an_unconfirmed_turn_is_not_kept(api, user, handler, stored, reliability):
    # When the turn is written but the confirm of its fence (the session entry's update) fails
    with failing(handler.dynamodb, "UpdateItem", SERVER_ERROR, table=SESSIONS_TABLE), captured_logs(logger) as lines:
        response = say(api, user, "s", "during")
    # Then the answer says suppressed, and the turn (maybe of an erased session) was removed again
    assert response.status_code == 200 and response.json()["memory"] == {"write": "suppressed"}
    assert len([line for line in lines() if line["message"] == "memory_write_suppressed"]) == 1
    after = snapshot(api, user)
    assert after == stored
    reliability("Memory faults", "turn append: the confirm (UpdateItem of the session entry) fails",
                "200, memory.write = suppressed; the turn is removed again: only confirmed turns are kept",
                lost(stored, after))


SOCKETS = {"accepts and never answers": unresponsive_endpoint, "resets the connection": resetting_endpoint}


@pytest.mark.parametrize("socket", SOCKETS)
def test_a_real_socket_that_fails_is_503_within_the_bound(api, user, handler, monkeypatch, stored, reliability, socket):
    model = ScriptedModel(text("must not be used"))
    monkeypatch.setattr(handler, "model", lambda: model)
    with SOCKETS[socket]() as url:
        # Given the session store behind a socket that misbehaves, with the production client config
        broken = boto3.client("dynamodb", endpoint_url=url, config=DYNAMODB_CONFIG)
        monkeypatch.setattr(handler, "memory", ResilientMemory(
            conversations=ConversationStore(client=broken, table_name=SESSIONS_TABLE, ttl_days=30),
            facts=FactStore(client=handler.dynamodb, table_name=LONG_TERM_TABLE),
            logger=logger,
            max_turns=3,
        ))
        # When a turn is sent
        started = time.monotonic()
        response = say(api, user, "s", "during")
        elapsed = time.monotonic() - started
    # Then the client's own timeouts and attempts bound the wait
    assert response.status_code == 503 and response.json()["error"] == "memory_unavailable"
    assert elapsed < READ_FAILURE_BOUND_SECONDS and model.calls == []
    monkeypatch.undo()
    after = snapshot(api, user)
    reliability("Memory faults", f"session window read: a real socket that {socket}",
                f"503 memory_unavailable in {elapsed:.1f} s; model not called", lost(stored, after))


def test_a_batch_with_unprocessed_items_is_finished_by_the_next_rounds(api, user, handler, backdoor, stored, reliability):
    # When DynamoDB processes only the first request of the session delete's first batch
    with failing(handler.dynamodb, "BatchWriteItem", partial_batch(backdoor, processed=1), times=1):
        response = api.delete("/sessions/s", headers=as_user(user))
    # Then the unprocessed rest is retried and the session is gone
    assert response.status_code == 204
    assert api.get("/sessions/s/messages", headers=as_user(user)).status_code == 404
    assert api.get("/sessions", headers=as_user(user)).json() == {"sessions": []}
    reliability("Memory faults", "session delete: BatchWriteItem leaves items unprocessed once",
                "unprocessed items retried; 204, every item gone")


def test_an_erasure_that_keeps_failing_is_503_and_its_retry_finishes_it(api, user, handler, backdoor, stored, reliability):
    # Given more than one batch of items: 30 turns in one session
    for n in range(30):
        say(api, user, "long", f"turn {n}")
    # When every BatchWriteItem processes only its first request
    with failing(handler.dynamodb, "BatchWriteItem", partial_batch(backdoor, processed=1)):
        response = api.delete("/me", headers=as_user(user))
    # Then the erasure says it did not finish
    assert response.status_code == 503 and response.json()["error"] == "memory_unavailable"
    # And its retry, once the fault is gone, finds what is left and erases it
    assert api.delete("/me", headers=as_user(user)).status_code == 204
    assert snapshot(api, user) == []
    assert api.get("/sessions/long/messages", headers=as_user(user)).status_code == 404
    reliability("Erasure", "`DELETE /me` while every BatchWriteItem leaves items unprocessed",
                "503; the retried DELETE /me erases every remaining item (the registry entry, the fence, is deleted last)")
