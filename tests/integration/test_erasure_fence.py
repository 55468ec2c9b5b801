"""What erasure must survive besides racing writes (tests/integration/test_erasure_race.py): TTL
deleting in the worst order, an index that lags, eventually consistent reads, and transactions
cancelled by conflicts."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from agent.observability import logger
from conftest import ISSUE_17, SESSIONS_TABLE, as_user
from fakes import captured_logs
from faults import TRANSACTION_CONFLICT
from memory.client import dynamodb_client
from memory.conversation import REGISTRY_PREFIX, SECONDS_PER_DAY, TURN_PREFIX, ConversationStore, session_key
from memory.turns import Turn, Usage, iso, new_turn_id
from test_erasure import items_of, say

TTL_SECONDS = 30 * SECONDS_PER_DAY  # SESSION_TTL_DAYS of the integration stack
INDEX_LAG_SECONDS = 60
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
    say(api, user, "keyed", "hello", **{"Idempotency-Key": "key-1"})
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


def test_erasure_finds_a_session_an_index_does_not_show_yet(api, user, handler, reliability):
    # Given an index that lags: any Query of an index misses the entries of the last minute
    def lagging_index(params, context, **_):
        context["index"] = params.get("IndexName")

    def hide_newest(parsed, context, **_):
        if context.get("index"):
            cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - INDEX_LAG_SECONDS))
            parsed["Items"] = [i for i in parsed.get("Items", []) if i.get("updated_at", {}).get("S", "") < cutoff]

    events = handler.dynamodb.meta.events
    events.register("provide-client-params.dynamodb.Query", lagging_index)
    events.register("after-call.dynamodb.Query", hide_newest)
    try:
        # And a session created a moment ago
        say(api, user, "new", "hello")
        # When the user asks to be forgotten at once
        assert api.delete("/me", headers=as_user(user)).status_code == 204
    finally:
        events.unregister("provide-client-params.dynamodb.Query", lagging_index)
        events.unregister("after-call.dynamodb.Query", hide_newest)
    # Then the session is gone all the same
    assert items_of(user) == []
    reliability("Erasure", f"`DELETE /me` right after a session's first turn, any index lagging {INDEX_LAG_SECONDS} s",
                "204; a Scan finds 0 items (sessions are found in the base table, read consistently)", 0)


def test_every_read_of_the_sessions_table_is_strongly_consistent(api, user, handler, reliability):
    reads = []

    def record(params, model, **_):
        if params.get("TableName") == SESSIONS_TABLE and model.name in ("Query", "GetItem", "Scan"):
            reads.append((model.name, params.get("ConsistentRead"), params.get("IndexName")))

    handler.dynamodb.meta.events.register("provide-client-params.dynamodb", record)
    try:
        # When a user talks, reads, lists, and erases one session then everything
        say(api, user, "a", "hello")
        say(api, user, "b", "hello", **{"Idempotency-Key": "key-1"})
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
    # Given a session, and another instance that writes into it at the delete's worst moment: after
    # the delete read the session's items, before it deleted them and took the fence down
    say(api, user, "s", "first")
    other = _backdoor()
    claim = {"Put": {"TableName": SESSIONS_TABLE, "Item": {
        "pk": {"S": session_key(user, "s")}, "sk": {"S": "IDEMPOTENCY#racing"}, "state": {"S": "running"},
        "expires_at": {"N": str(int(time.time()) + 60)}}}}
    hook = _once_on(handler.dynamodb, "before-send.dynamodb.BatchWriteItem", lambda: (
        other.append(_turn(user, 1, "s")), other.write_in_session(user, "s", [claim], create_session=True)))
    try:
        # When the session is deleted
        assert api.delete("/sessions/s", headers=as_user(user)).status_code == 204
    finally:
        handler.dynamodb.meta.events.unregister("before-send.dynamodb.BatchWriteItem", hook)
    # Then the fence had moved, the delete went round, and nothing of the session is left
    assert items_of(user) == []
    reliability("Erasure", "a turn and an idempotency claim written by another instance between the delete's "
                "read of the session and its deletes", "204; a Scan finds 0 items (the delete saw the "
                "fence move and went round)", 0)


def test_a_turn_after_the_delete_starts_a_new_listed_session(api, user, handler, reliability):
    # Given a session, and another instance whose turn lands just after the delete took the fence down
    say(api, user, "s", "first")
    other = _backdoor()
    hook = _once_on(handler.dynamodb, "after-call.dynamodb.DeleteItem", lambda: other.append(_turn(user, 1, "s")))
    try:
        assert api.delete("/sessions/s", headers=as_user(user)).status_code == 204
    finally:
        handler.dynamodb.meta.events.unregister("after-call.dynamodb.DeleteItem", hook)
    # Then the turn is a new session of that id, listed with exactly what it stores
    [listed] = api.get("/sessions", headers=as_user(user)).json()["sessions"]
    history = api.get("/sessions/s/messages", headers=as_user(user)).json()["messages"]
    assert listed["turns"] == 1 and [m["content"] for m in history if m["role"] == "user"] == ["turn 1"]
    reliability("Erasure", "a turn written by another instance just after a delete's last step",
                "it starts a new session of that id, listed with its 1 turn; nothing unlisted is stored", 0)


def _conflicts(cancelled_attempts: int | None):
    """A wire fault: every transaction is cancelled with TransactionConflict, as DynamoDB cancels the
    loser when concurrent turns meet on the session's registry entry; the first `cancelled_attempts`
    of each turn (told apart by its sort key), or all of them if None."""
    seen: dict[str, int] = {}

    def answer(request, **_):
        key = request.body.decode() if isinstance(request.body, bytes) else request.body
        turn_key = key[key.index(TURN_PREFIX):][:40] if TURN_PREFIX in key else key
        seen[turn_key] = seen.get(turn_key, 0) + 1
        if cancelled_attempts is None or seen[turn_key] <= cancelled_attempts:
            return TRANSACTION_CONFLICT
        return None

    return answer


def _append_concurrently(handler, user: str, fault) -> tuple[list[str], list[Turn], list[dict]]:
    turns = [_turn(f"{user}", n) for n in range(CONCURRENT_TURNS)]
    events = handler.dynamodb.meta.events
    events.register("before-send.dynamodb.TransactWriteItems", fault)
    try:
        with captured_logs(logger) as lines, ThreadPoolExecutor(CONCURRENT_TURNS) as pool:
            outcomes = list(pool.map(handler.memory.append, turns))
            logged = [line for line in lines() if line["message"] == "memory_write_suppressed"]
    finally:
        events.unregister("before-send.dynamodb.TransactWriteItems", fault)
    return outcomes, turns, logged


@ISSUE_17
def test_concurrent_turns_cancelled_by_conflicts_are_retried_and_stored_once(api, user, handler, reliability):
    # When 8 concurrent turns of one session each lose their first two transactions to a conflict
    outcomes, turns, logged = _append_concurrently(handler, user, _conflicts(2))
    # Then each is retried, and stored exactly once
    history = api.get("/sessions/busy/messages", headers=as_user(user)).json()["messages"]
    stored = sorted(m["content"] for m in history if m["role"] == "user")
    assert outcomes == ["ok"] * CONCURRENT_TURNS and not logged
    assert stored == sorted(f"turn {n}" for n in range(CONCURRENT_TURNS))
    assert api.get("/sessions", headers=as_user(user)).json()["sessions"][0]["turns"] == CONCURRENT_TURNS
    reliability("Memory faults", f"{CONCURRENT_TURNS} concurrent turns of one session, each transaction cancelled "
                "twice with TransactionConflict (wire fault)", "all retried: each stored exactly once, "
                "the session's count right", 0)


def test_turns_that_keep_conflicting_are_suppressed_and_counted(api, user, handler, reliability):
    # When every transaction of 8 concurrent turns is cancelled by a conflict, retries included
    outcomes, turns, logged = _append_concurrently(handler, user, _conflicts(None))
    # Then none is silently lost: each is reported suppressed and logged for the alarm's metric filter
    assert outcomes == ["suppressed"] * CONCURRENT_TURNS
    assert len(logged) == CONCURRENT_TURNS and {line["error"] for line in logged} == {"TransactionCanceledException"}
    assert api.get("/sessions/busy/messages", headers=as_user(user)).status_code == 404
    reliability("Memory faults", f"{CONCURRENT_TURNS} concurrent turns whose transactions always conflict",
                f"each answered with memory.write = suppressed and one memory_write_suppressed line "
                f"({CONCURRENT_TURNS} counted by the alarm's filter); none stored, none silently lost", 0)
