"""Erasure against every write that can race it, across Lambda instances (OS processes) sharing one
DynamoDB Local: once DELETE answered 204 and the writers stopped, nothing it erased is left."""

import collections
import json
import os
import uuid

import pytest

from instances import invoke, run_instances
from local_stack import LONG_TERM_TABLE, SESSIONS_TABLE
from memory.client import dynamodb_client

pytestmark = pytest.mark.slow

# Each session is written and erased in its own slot of time, then left alone: a turn orphaned by a
# delete is not adopted again by a later turn of the same session, and shows in the final Scan.
SLOTS, SLOT_SECONDS = 6, 0.5
RACE_SECONDS = SLOTS * SLOT_SECONDS
SESSION = "s{slot}"


def appender(user: str, *, keyed: bool) -> tuple:
    post = ("POST", f"/sessions/{SESSION}/messages", user, {"message": "turn {n}"}, None)
    # With keys, every request is sent twice (a client's retry), and two instances share the keys.
    requests = [post] if not keyed else [post[:4] + ({"Idempotency-Key": "key-{n}"},)] * 2
    return ("during", RACE_SECONDS, SLOT_SECONDS, requests)


def deleter(user: str, *, erase_me: bool) -> tuple:
    delete = ("DELETE", "/me" if erase_me else f"/sessions/{SESSION}", user, None, None)
    return ("during", RACE_SECONDS, SLOT_SECONDS, [delete])


def stored(user: str) -> dict[str, list[dict]]:
    """Every item of the user, per table, found by a Scan (no key, no index can hide one)."""
    client = dynamodb_client()
    found = {}
    for table, attribute in ((SESSIONS_TABLE, "pk"), (LONG_TERM_TABLE, "user_id")):
        items, start = [], None
        while True:
            page = client.scan(TableName=table, ConsistentRead=True, **({"ExclusiveStartKey": start} if start else {}))
            items += page["Items"]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        found[table] = [i for i in items if user in i[attribute]["S"].split("#")]
    return found


def test_racing_deletes_leave_nothing_behind_and_listing_matches_storage(handler, reliability):
    # Given a user whose sessions five Lambda instances write and erase at once: plain turns, turns
    # with Idempotency-Keys (retried, shared between two instances), DELETE /sessions/{id} and DELETE /me
    user = f"race-{uuid.uuid4().hex[:10]}"
    made = run_instances(dict(os.environ), [
        appender(user, keyed=False),
        appender(user, keyed=True),
        appender(user, keyed=True),
        deleter(user, erase_me=False),
        deleter(user, erase_me=True),
    ])
    statuses = collections.Counter((method, status) for (method, *_), status, _ in made)
    assert all(status < 500 or body and json.loads(body)["error"] == "memory_unavailable"
               for _, status, body in made), statuses

    # When the writers have stopped, what GET /sessions lists is exactly what is stored: no turn of
    # an erased session outlived its listing entry
    turns = collections.Counter(item["pk"]["S"].rsplit("#SESSION#", 1)[1] for item in stored(user)[SESSIONS_TABLE]
                                if item["sk"]["S"].startswith("TURN#"))
    status, body = invoke(handler, ("GET", "/sessions", user, None, None))
    listed = {s["session_id"]: s["turns"] for s in json.loads(body)["sessions"]}
    assert status == 200 and set(turns) <= set(listed), (listed, turns, statuses)
    if not statuses[("DELETE", 503)]:  # a delete that gave up half way (503: retry) leaves its entry behind
        assert listed == turns, (listed, turns, statuses)
    # And a last DELETE /me leaves nothing of the user in either table (a Scan, not the API's view)
    assert invoke(handler, ("DELETE", "/me", user, None, None))[0] == 204
    left = stored(user)
    assert left == {SESSIONS_TABLE: [], LONG_TERM_TABLE: []}, left
    reliability("Erasure", f"5 Lambda instances (processes): {sum(statuses.values())} requests, "
                f"{statuses[('POST', 200)]} turns answered (2 of 3 writers with Idempotency-Keys, each request sent twice), racing "
                f"{statuses[('DELETE', 204)]} deletes answered 204 (DELETE /sessions/{{id}} and DELETE /me)",
                "listing = storage (no orphaned turn); after a last DELETE /me a Scan of both tables finds 0 items", 0)
