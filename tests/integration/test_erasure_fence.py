"""What erasure must survive besides racing writes (tests/integration/test_erasure_race.py): TTL
deleting in the worst order, an index that lags, eventually consistent reads, and writers that read
their fence before the delete landing in the middle of it."""

import time
from concurrent.futures import ThreadPoolExecutor

from agent.observability import logger
from client import as_user, say
from fakes import captured_logs
from local_stack import SESSIONS_TABLE, items_of
from memory.client import dynamodb_client
from memory.conversation import ConversationStore
from memory.errors import Erased
from memory.keys import REGISTRY_PREFIX
from memory.registry import SECONDS_PER_DAY
from memory.turn_status import TurnStatusStore
from memory.turns import Turn, Usage, iso, new_turn_id

TTL_SECONDS = 30 * SECONDS_PER_DAY  # SESSION_TTL_DAYS of the integration stack
CONCURRENT_TURNS = 8


def age(user: str, seconds: int) -> None:
    """Every item of the user becomes `seconds` older: its expiry times move that much into the past."""
    client = dynamodb_client()
    for item in items_of(user):
        times = [name for name in ("expires_at", "turns_expire_at") if name in item]
        if times:
            client.update_item(
                TableName=SESSIONS_TABLE, Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression="SET " + ", ".join(f"{name} = :{name}" for name in times),
                ExpressionAttributeValues={f":{name}": {"N": str(int(item[name]["N"]) - seconds)} for name in times},
            )


def ttl_sweep_in_the_worst_order(user: str) -> int:
    """DynamoDB's TTL deletes expired items days late and in no order. The worst order for erasure:
    first the items it finds sessions through (registry entries), then only half of the
    rest; the others are still to come. Returns how many expired items it left."""
    now = int(time.time())
    expired = [item for item in items_of(user) if int(item.get("expires_at", {"N": "inf"})["N"]) <= now]
    expired.sort(key=lambda item: not item["pk"]["S"].startswith(REGISTRY_PREFIX))
    late = expired[len(expired) // 2 + 1:]
    client = dynamodb_client()
    for item in expired[:len(expired) // 2 + 1]:
        client.delete_item(TableName=SESSIONS_TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
    return len(late)


def test_ttl_in_the_worst_order_leaves_nothing_erasure_cannot_find(api, user, reliability):
    # Given sessions with turns and an idempotency record, all of them expired (written a TTL ago)
    for n in range(4):
        say(api, user, "old", f"turn {n}")
    say(api, user, "keyed", "hello", idempotency_key="key-1")
    age(user, TTL_SECONDS + 1)
    # And TTL deleting in the worst order: whatever erasure finds sessions through first, then half
    late = ttl_sweep_in_the_worst_order(user)
    assert late and api.get("/sessions", headers=as_user(user)).json() == {"sessions": []}
    # When the user asks to be forgotten
    assert api.delete("/me", headers=as_user(user)).status_code == 204
    # Then the items TTL had not deleted yet are gone too
    assert items_of(user) == []
    reliability("Erasure", f"TTL in the worst order: every item of 2 sessions expired, the ones erasure finds "
                f"sessions through deleted first, {late} expired items left for TTL to delete later",
                "`DELETE /me` 204; a Scan finds 0 items (the registry entry outlives its session's items "
                "by 30 days)", 0)


def test_erasure_finds_a_session_an_eventually_consistent_read_does_not_show_yet(api, user, handler, reliability):
    # Given reads that lag unless they are strongly consistent (as eventually consistent reads and
    # every GSI may): such a Query does not show yet anything written a moment before it
    def stale_unless_consistent(params, context, **_):
        context["stale"] = not params.get("ConsistentRead")

    def hide_newest(parsed, context, **_):
        if context.get("stale"):
            parsed["Items"], parsed["Count"] = [], 0

    events = handler.dynamodb.meta.events
    events.register("provide-client-params.dynamodb.Query", stale_unless_consistent)
    events.register("after-call.dynamodb.Query", hide_newest)
    try:
        # And a session created a moment ago
        say(api, user, "new", "hello")
        # When the user asks to be forgotten at once
        assert api.delete("/me", headers=as_user(user)).status_code == 204
    finally:
        events.unregister("provide-client-params.dynamodb.Query", stale_unless_consistent)
        events.unregister("after-call.dynamodb.Query", hide_newest)
    # Then the session is gone all the same
    assert items_of(user) == []
    reliability("Erasure", "`DELETE /me` right after a session's first turn, with reads that are not strongly "
                "consistent lagging behind it",
                "204; a Scan finds 0 items (sessions are found by a strongly consistent read)", 0)


def test_every_read_of_the_sessions_table_is_strongly_consistent(api, user, handler, reliability):
    reads = []

    def record(params, model, **_):
        if params.get("TableName") == SESSIONS_TABLE and model.name in ("Query", "GetItem", "Scan"):
            reads.append((model.name, params.get("ConsistentRead"), params.get("IndexName")))
        elif model.name == "BatchGetItem" and SESSIONS_TABLE in params["RequestItems"]:
            reads.append((model.name, params["RequestItems"][SESSIONS_TABLE].get("ConsistentRead"), None))

    handler.dynamodb.meta.events.register("provide-client-params.dynamodb", record)
    try:
        # When a user talks, reads, lists, and erases one session then everything
        say(api, user, "a", "hello")
        say(api, user, "b", "hello", idempotency_key="key-1")
        assert api.get("/sessions/a/messages", headers=as_user(user)).status_code == 200
        assert api.get("/sessions", headers=as_user(user)).status_code == 200
        assert api.delete("/sessions/a", headers=as_user(user)).status_code == 204
        assert api.delete("/me", headers=as_user(user)).status_code == 204
    finally:
        handler.dynamodb.meta.events.unregister("provide-client-params.dynamodb", record)
    # Then every read of the sessions table was consistent, none through an index
    assert reads and all(consistent is True and index is None for _, consistent, index in reads), reads
    reliability("Erasure", "every read of the sessions table by turns, history, listing and both deletes",
                f"{len(reads)} reads, all ConsistentRead, none through an index (read-your-writes)", 0)


def _turn(user: str, n: int, session: str = "busy") -> Turn:
    now = time.time()
    return Turn(user_id=user, session_id=session, turn_id=new_turn_id(now), created_at=iso(now),
                messages=[{"role": "user", "content": f"turn {n}"}, {"role": "assistant", "content": "ok"}],
                usage=Usage(1, 1))


def _backdoor() -> ConversationStore:
    """Another Lambda instance's store: its own client, which no hook of the handler's client touches."""
    return ConversationStore(client=dynamodb_client(), table_name=SESSIONS_TABLE, ttl_days=30)


def _once_on(client, event: str, action):
    """Runs `action` the first time `event` fires on `client`; returns the hook, to unregister."""
    done = []

    def hook(**_):
        if not done:
            done.append(action())

    client.meta.events.register(event, hook)
    return hook


def test_writes_landing_inside_a_delete_are_erased_with_it(api, user, handler, reliability):
    # Given a session, and another instance whose turn and async status read the session's fence
    # before the delete, and write at its worst moment: after it read the session's items, before it
    # deleted them
    say(api, user, "s", "first")
    other = _backdoor()
    fence = other.registry.open(user, "s")
    statuses = TurnStatusStore(client=other._client, table_name=SESSIONS_TABLE, conversations=other)
    refused = []

    def write_late() -> None:
        for write in (lambda: other.append(_turn(user, 1, "s"), fence),
                      lambda: statuses.start(user, "s", "racing", "hello", deadline=int(time.time()) + 60, fence=fence)):
            try:
                write()
            except Erased:
                refused.append(write)

    hook = _once_on(handler.dynamodb, "after-call.dynamodb.Query", write_late)
    try:
        # When the session is deleted
        assert api.delete("/sessions/s", headers=as_user(user)).status_code == 204
    finally:
        handler.dynamodb.meta.events.unregister("after-call.dynamodb.Query", hook)
    # Then both writers learnt it from their confirm and removed what they wrote: nothing is left
    assert len(refused) == 2
    assert items_of(user) == []
    reliability("Erasure", "a turn and an async status written by another instance between the delete's read "
                "of the session and its deletes, both with the fence they read before the delete",
                "204; both writers' confirms fail and they remove what they wrote; a Scan finds 0 items", 0)


def test_a_turn_after_the_delete_starts_a_new_listed_session(api, user, handler, reliability):
    # Given a session, and another instance whose turn lands just after the delete dropped the session's entry
    say(api, user, "s", "first")
    other = _backdoor()
    hook = _once_on(handler.dynamodb, "after-call.dynamodb.BatchWriteItem", lambda: other.append(_turn(user, 1, "s")))
    try:
        assert api.delete("/sessions/s", headers=as_user(user)).status_code == 204
    finally:
        handler.dynamodb.meta.events.unregister("after-call.dynamodb.BatchWriteItem", hook)
    # Then the turn is a new session of that id, listed with exactly what it stores
    [listed] = api.get("/sessions", headers=as_user(user)).json()["sessions"]
    history = api.get("/sessions/s/messages", headers=as_user(user)).json()["messages"]
    assert listed["turns"] == 1 and [m["content"] for m in history if m["role"] == "user"] == ["turn 1"]
    reliability("Erasure", "a turn written by another instance just after a delete's last step",
                "it starts a new session of that id, listed with its 1 turn; nothing unlisted is stored", 0)


def test_concurrent_turns_of_one_session_meet_in_no_transaction(api, user, handler, reliability):
    # Given every call the handler's client makes
    calls = []

    def record(model, **_):
        calls.append(model.name)

    handler.dynamodb.meta.events.register("provide-client-params.dynamodb", record)
    try:
        # When 8 turns of one session are stored at once
        turns = [_turn(user, n) for n in range(CONCURRENT_TURNS)]
        with captured_logs(logger) as lines, ThreadPoolExecutor(CONCURRENT_TURNS) as pool:
            outcomes = list(pool.map(handler.memory.append, turns))
            logged = [line for line in lines() if line["message"] == "memory_write_suppressed"]
    finally:
        handler.dynamodb.meta.events.unregister("provide-client-params.dynamodb", record)
    # Then none of them used a transaction (DynamoDB cancels those that meet on an item), all are
    # stored once, and the session's count is right
    assert "TransactWriteItems" not in calls and "TransactGetItems" not in calls
    assert outcomes == ["ok"] * CONCURRENT_TURNS and not logged
    history = api.get("/sessions/busy/messages", headers=as_user(user)).json()["messages"]
    assert sorted(m["content"] for m in history if m["role"] == "user") == sorted(
        f"turn {n}" for n in range(CONCURRENT_TURNS))
    assert api.get("/sessions", headers=as_user(user)).json()["sessions"][0]["turns"] == CONCURRENT_TURNS
    reliability("Memory faults", f"{CONCURRENT_TURNS} concurrent turns of one session",
                "single-item writes only (PutItem of the turn, UpdateItem of the entry): no transaction for "
                "DynamoDB to cancel; each stored exactly once, the session's count right", 0)
