"""TTL: DynamoDB deletes expired items days late, so every read must skip items whose expires_at has
passed. Here they are never deleted at all (DynamoDB Local does not run TTL): the reads must cope."""

import hashlib

import pytest

from agent.idempotency import IDEMPOTENCY_PREFIX
from client import as_user, say
from fakes import ScriptedModel, text
from local_stack import SESSIONS_TABLE, expire
from memory.client import dynamodb_client
from memory.keys import session_key


def said(api, user, session, **params) -> list[str]:
    page = api.get(f"/sessions/{session}/messages", params=params, headers=as_user(user)).json()
    return [m["content"] for m in page["messages"] if m["role"] == "user"]


def test_expired_turns_are_neither_in_the_window_nor_in_the_history(api, user, handler, monkeypatch, reliability):
    # Given a session whose two oldest turns have expired but are still stored
    for message in ("old 1", "old 2", "live"):
        say(api, user, "s", message)
    expire(user, "s", oldest=2)
    model = ScriptedModel(text("ok"))
    monkeypatch.setattr(handler, "model", lambda: model)
    # When the history is read and a new turn is sent
    history = said(api, user, "s")
    response = say(api, user, "s", "new")
    # Then neither shows the expired turns
    assert history == ["live"]
    assert response.json()["context"]["turns"] == 1
    assert "old" not in str(model.calls[0]["messages"])
    reliability("TTL", "the two oldest turns of a session expired, not yet deleted",
                "absent from the history and from the model's window")


def test_a_page_of_only_expired_turns_does_not_hide_the_live_ones(api, user, reliability):
    # Given five expired turns before two live ones
    for n in range(7):
        say(api, user, "s", f"turn {n}")
    expire(user, "s", oldest=5)
    # When the history is read two at a time
    pages, token = [], None
    while True:
        page = api.get("/sessions/s/messages", params={"limit": 2} | ({"next_token": token} if token else {}),
                       headers=as_user(user))
        assert page.status_code == 200, page.text
        pages += [m["content"] for m in page.json()["messages"] if m["role"] == "user"]
        token = page.json()["next_token"]
        if not token:
            break
    # Then the live turns are all there: a first page of expired turns does not end the history with a 404
    assert pages == ["turn 5", "turn 6"]
    reliability("TTL", "history paged 2 at a time, the 5 oldest turns expired",
                "200 with the 2 live turns (a page of only expired turns is no 404)")


def test_a_wholly_expired_session_is_gone(api, user, reliability):
    say(api, user, "s", "long ago")
    expire(user, "s")
    assert api.get("/sessions", headers=as_user(user)).json() == {"sessions": []}
    assert api.get("/sessions/s/messages", headers=as_user(user)).status_code == 404
    assert say(api, user, "s", "hello again").json()["context"]["turns"] == 0
    reliability("TTL", "every item of a session expired, not yet deleted",
                "not listed; history 404; a new turn starts from an empty window")


@pytest.mark.parametrize("state", ["done", "running"])
def test_an_expired_idempotency_record_is_no_record(api, user, handler, monkeypatch, reliability, state):
    monkeypatch.setattr(handler, "model", lambda: ScriptedModel(text("first"), text("second")))
    first = say(api, user, "s", "hello", idempotency_key="key-1")
    if state == "running":  # a claim left behind by a turn that died
        dynamodb_client().update_item(
            TableName=SESSIONS_TABLE,
            Key={"pk": {"S": session_key(user, "s")}, "sk": {"S": IDEMPOTENCY_PREFIX + hashlib.sha256(b"key-1").hexdigest()}},
            UpdateExpression="SET #state = :running", ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":running": {"S": "running"}},
        )
    expire(user, "s", prefix="IDEMPOTENCY#")
    # When the key is used again after its record expired
    again = say(api, user, "s", "hello", idempotency_key="key-1")
    # Then it is a new turn, neither a replay nor a 409
    assert again.status_code == 200 and again.json()["turn_id"] != first.json()["turn_id"]
    assert said(api, user, "s") == ["hello", "hello"]
    reliability("TTL", f"an expired `{state}` idempotency record", "ignored: the key runs a new turn")
