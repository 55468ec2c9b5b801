"""Right to erasure, checked in the tables themselves: after DELETE /me not one item of the caller
is left (turns, registry entries, idempotency records, expired sessions, facts), and nobody else lost
anything."""


import pytest

from client import as_user, say
from local_stack import expire, items_of
from memory.keys import session_key

MANY = 30  # more than one BatchWriteItem of 25


@pytest.fixture
def neighbour(api, user):
    """A user whose id starts with the erased user's id: the likeliest to be hit by mistake."""
    neighbour = f"{user}-b"
    say(api, neighbour, "s", "mine")
    api.put("/memory/name", json={"value": "Bea"}, headers=as_user(neighbour))
    yield neighbour
    api.delete("/me", headers=as_user(neighbour))


def test_erasure_removes_every_item_of_the_caller_and_nothing_else(api, user, neighbour, reliability):
    # Given sessions with many turns, an idempotency record, an expired session, and many facts
    for n in range(MANY):
        say(api, user, "long", f"turn {n}")
    say(api, user, "keyed", "hello", idempotency_key="key-1")
    say(api, user, "old", "long ago")
    expire(user, "old")
    for n in range(MANY):
        api.put(f"/memory/fact-{n}", json={"value": f"value {n}"}, headers=as_user(user))
    neighbour_before = items_of(neighbour)
    stored = len(items_of(user))
    # When the user asks to be forgotten
    response = api.delete("/me", headers=as_user(user))
    # Then not one of their items is left in either table
    assert response.status_code == 204
    assert items_of(user) == []
    # And the API agrees, and a second erasure is harmless
    assert api.get("/sessions", headers=as_user(user)).json() == {"sessions": []}
    assert api.get("/memory", headers=as_user(user)).json() == {"facts": {}}
    assert api.delete("/me", headers=as_user(user)).status_code == 204
    # And the neighbour lost nothing
    assert items_of(neighbour) == neighbour_before
    reliability("Erasure", f"`DELETE /me` with {stored} items: {MANY}-turn session, idempotency record, "
                f"expired session, {MANY} facts", "204; a Scan of both tables finds 0 items of the user; "
                "a user whose id extends theirs keeps everything", 0)


def test_deleting_a_session_removes_every_item_of_it_and_only_it(api, user, reliability):
    # Given two sessions, one with an idempotency record
    say(api, user, "gone", "hello", idempotency_key="key-1")
    say(api, user, "gone", "again")
    say(api, user, "kept", "stay")
    kept = [item for item in items_of(user) if item["pk"]["S"] == session_key(user, "kept")]
    # When one session is deleted
    assert api.delete("/sessions/gone", headers=as_user(user)).status_code == 204
    # Then none of its items is left, and the other session is whole
    left = items_of(user)
    assert not [item for item in left if item.get("pk", {}).get("S") == session_key(user, "gone")]
    assert [item for item in left if item["pk"]["S"] == session_key(user, "kept")] == kept
    reliability("Erasure", "`DELETE /sessions/{id}` of a session with turns and an idempotency record",
                "204; 0 items of it left (turns, registry entry, idempotency record); the other session whole", 0)
