"""The write protocol under DynamoDB's transaction-conflict rules (local.strict_dynamodb), through the
HTTP contract only: many Lambda instances (the local server's worker processes) writing into one
session, or one user, at once, and erasure racing them; what is stored is read back through the API
or found by a Scan of both tables.

Issue 17: each failed on the protocol before it (every write moved one registry item per session
inside its transaction, which DynamoDB cancels when concurrent writes meet there)."""

import collections
import contextlib
import json
import threading
import time

import httpx
import pytest

from client import ASYNC, as_user, http_client, poll, send_all, start, stored_turns
from local_stack import LONG_TERM_TABLE, SESSIONS_TABLE, local_server
from fakes import SlowModelAPI, Text
from memory.client import dynamodb_client
from memory.keys import IDEMPOTENCY_PREFIX, REGISTRY_SK_PREFIX, TURN_PREFIX, session_key
from memory.long_term import USAGE_KEY
from memory.registry import ERASING, Registry, generation_of, mark_of

pytestmark = pytest.mark.slow

INSTANCES = 16
ERASED = "409 session_erased"  # a turn that raced the erasure of its session or user
# How long the writers of a race write before the delete; how long erasure may take to settle after.
RACE_SECONDS = 2.0
SETTLE_SECONDS = 15.0
# 8 s at a real model's pace: it ends about 6 s after the delete that follows its first progress
# write, so a worker that hangs up within seconds of the delete cuts it short.
LONG_ANSWER_TOKENS = 480
GIVE_UP_SECONDS = 120
# A model that answers at once and writes 600 tokens a second: a 3,000-token answer streams for 5 s,
# and short answers of turns sent together come back together, so their writes meet.
AT_ONCE = {"first_token_seconds": 0, "tokens_per_second": 600}


@pytest.fixture(scope="module")
def instances_url(tables, dynamodb_endpoint):
    """The local server with 16 worker processes (Lambda instances) and the offline model. These tests
    are about the write protocol, not the limits: writers burst (no throttle), and an erasure racing
    16 writers on a loaded machine may take longer than the function's timeout, so both are lifted
    here (test_local_limits tries the throttle, and an erasure cut short by the timeout, then retried)."""
    with local_server(dynamodb_endpoint, INSTANCES, LOCAL_THROTTLE="off", LOCAL_FUNCTION_TIMEOUT_SECONDS="300",
                      LOCAL_INTEGRATION_TIMEOUT_SECONDS="300") as server:
        yield server.url


@contextlib.contextmanager
def slow_model_server(dynamodb_endpoint: str, answer, *, workers: int, pace: dict):
    """The local server whose model is a SlowModelAPI answering `answer(request body)`."""
    with SlowModelAPI(**pace) as model, local_server(dynamodb_endpoint, workers, LOCAL_THROTTLE="off",
                                                      AGENT_MODEL_PROVIDER="anthropic", ANTHROPIC_API_KEY="test-key",
                                                      ANTHROPIC_BASE_URL=model.url) as server:
        model.script = [answer]
        yield model, server


def streaming(client: httpx.Client, user: str, message: str) -> str:
    """Starts an asynchronous turn; returns its Location once its reply has begun to be stored."""
    location = start(client, user, message).headers["location"]
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while not client.get(location, headers=as_user(user)).json().get("reply") and time.monotonic() < deadline:
        time.sleep(0.1)
    return location


def outcome(response: httpx.Response) -> str:
    """"200 ok", "200 suppressed", "202", "409 session_erased", "503 memory_unavailable", ..."""
    body = response.json() if response.content else {}
    detail = body.get("memory", {}).get("write") if response.status_code == 200 else body.get("error", "")
    return f"{response.status_code} {detail}".strip()


def traces_of(user: str) -> list[dict]:
    """Every item of both tables with the user's id in its key or in any string attribute (a Scan)."""
    client, found = dynamodb_client(), []
    for table in (SESSIONS_TABLE, LONG_TERM_TABLE):
        start_key = None
        while True:
            page = client.scan(TableName=table, ConsistentRead=True, **({"ExclusiveStartKey": start_key} if start_key else {}))
            found += [item for item in page["Items"] if any(user in value.get("S", "") for value in item.values())]
            start_key = page.get("LastEvaluatedKey")
            if not start_key:
                break
    return found


def settled_traces_of(user: str, keep=lambda items: []) -> list[dict]:
    """traces_of(user), less `keep(items)`, once that is empty, or after SETTLE_SECONDS."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        items = traces_of(user)
        kept = keep(items)
        left = [item for item in items if item not in kept]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.5)


def after_the_mark(user: str):
    """keep() for settled_traces_of: what requests wrote that read the user's memory after DELETE /me
    moved their erasure mark, and so are new (DESIGN: no turn that read its context before the delete
    stores anything after it). A request sent before the delete may begin after it, as one waiting
    for a Lambda instance does: sessions registered under the current mark, items of their live
    generation, facts of the current mark and the totals beside them."""

    def keep(items: list[dict]) -> list[dict]:
        mark = Registry(client=dynamodb_client(), table_name=SESSIONS_TABLE, ttl_days=1).mark(user)
        current = [item for item in items if mark_of(item) == mark and ERASING not in item]
        facts = [item for item in current if "fact_key" in item]
        entries = [item for item in current if "fact_key" not in item
                   and item["sk"]["S"].startswith(REGISTRY_SK_PREFIX)]
        live = {session_key(user, entry["sk"]["S"].removeprefix(REGISTRY_SK_PREFIX)): generation_of(entry)
                for entry in entries}
        written = [item for item in items if "gen" in item and live.get(item["pk"]["S"]) == generation_of(item)]
        # A done idempotency record is written in its turn's transaction: of its turn's era.
        turns = {item["sk"]["S"].removeprefix(TURN_PREFIX) for item in written
                 if item["sk"]["S"].startswith(TURN_PREFIX)}
        records = [item for item in items if item.get("sk", {}).get("S", "").startswith(IDEMPOTENCY_PREFIX)
                   and item.get("turn_id", {}).get("S") in turns]
        totals = [item for item in items if item.get("fact_key", {}).get("S") == USAGE_KEY] if facts else []
        return facts + entries + written + records + totals

    return keep


def kinds(items: list[dict]) -> dict[str, int]:
    """How many of each kind: TURN, SESSION (registry), IDEMPOTENCY, ..., fact."""
    return dict(collections.Counter("fact" if "fact_key" in item else item["sk"]["S"].split("#")[0] for item in items))


def test_64_concurrent_turns_into_one_session_from_16_instances_are_all_stored(instances_url, api, user):
    # When 64 turns are sent at once into one session, to 16 instances
    responses = send_all(instances_url, user, [("one", f"turn {n}") for n in range(64)])
    # Then each answers 200 with memory.write ok, and the history holds all 64
    answers, stored = collections.Counter(map(outcome, responses)), stored_turns(api, user, "one")
    assert answers == {"200 ok": 64} and len(stored) == 64, f"{answers}; {len(stored)} of 64 stored"


def test_8_sessions_of_8_concurrent_turns_are_all_stored(instances_url, api, user):
    # When 8 turns into each of 8 sessions are sent at once
    responses = send_all(instances_url, user, [(f"s{s}", f"turn {n}") for s in range(8) for n in range(8)])
    # Then all 64 are answered 200 ok, and each session holds its 8
    answers = collections.Counter(map(outcome, responses))
    stored = {f"s{s}": len(stored_turns(api, user, f"s{s}")) for s in range(8)}
    assert answers == {"200 ok": 64} and set(stored.values()) == {8}, f"{answers}; stored per session {stored}"


def test_16_requests_with_one_idempotency_key_at_once_store_one_turn(instances_url, api, user):
    # When 16 requests with the same Idempotency-Key are sent at once, to 16 instances
    responses = send_all(instances_url, user, [("keyed", "hello")] * 16, headers={"Idempotency-Key": "one-key"})
    # Then one turn is stored, every 200 is the same answer, every other answer is 409 turn_in_progress
    answers = collections.Counter(map(outcome, responses))
    replies = {(r.json()["reply"], r.json()["turn_id"]) for r in responses if r.status_code == 200}
    stored = stored_turns(api, user, "keyed")
    assert len(stored) == 1 and len(replies) == 1 and set(answers) <= {"200 ok", "409 turn_in_progress"}, (
        f"{len(stored)} turns stored; {len(replies)} different replies; {answers}")


def test_turns_beside_a_running_asynchronous_turn_are_all_stored(dynamodb_endpoint, api, user):
    # Given an asynchronous turn whose answer streams for about 5 s, its progress stored as it grows
    def answer(body):
        return Text(3000) if "long story" in json.dumps(body["messages"][-1]) else Text(5)

    with (slow_model_server(dynamodb_endpoint, answer, workers=8, pace=AT_ONCE) as (_, server),
          http_client(server.url, timeout=60) as client):
        location = streaming(client, user, "tell me a long story")
        # When 8 plain turns are sent into the same session meanwhile
        responses = send_all(server.url, user, [("s", f"beside {n}") for n in range(8)])
        done = poll(client, user, location)[-1]
    # Then all 8 are stored with memory.write ok, and so is the asynchronous turn
    answers = collections.Counter(map(outcome, responses))
    stored = stored_turns(api, user, "s")
    assert answers == {"200 ok": 8} and done.get("memory") == {"write": "ok"} and len(stored) == 9, (
        f"{answers}; the asynchronous turn {done['status']} {done.get('memory')}; {len(stored)} of 9 stored")


WRITERS = {  # four of each: (message, extra headers) of the turns they send, one after another
    "sync": ("hello", {}),
    "keyed": ("hello with a key", {"Idempotency-Key": "key-{writer}-{n}"}),
    "async": ("hello later", ASYNC),
    "remember": ("remember that my name is Ada Lovelace", {}),
}


def test_erasing_a_user_while_16_writers_write_leaves_nothing(instances_url, user):
    # Given 16 writers sending turns into the user's sessions: plain, keyed, asynchronous, and turns
    # that store a fact ("remember that ...")
    stop, made = threading.Event(), []

    def write(kind: str, writer: int):
        message, headers = WRITERS[kind]
        with http_client(instances_url, timeout=60) as client:
            n = 0
            while not stop.is_set():
                extra = {name: value.format(writer=writer, n=n) for name, value in headers.items()}
                response = client.post(f"/sessions/w{writer % 4}/messages", json={"message": message},
                                       headers=as_user(user) | extra)
                made.append((kind, response, time.monotonic()))
                n += 1

    writers = [threading.Thread(target=write, args=(kind, 4 * k + n)) for k, kind in enumerate(WRITERS) for n in range(4)]
    for writer in writers:
        writer.start()
    time.sleep(RACE_SECONDS)
    # When DELETE /me is sent while their last turns run (none is sent after it)
    stop.set()
    deleted = httpx.delete(f"{instances_url}/me", headers=as_user(user), timeout=GIVE_UP_SECONDS)
    erased_at = time.monotonic()
    for writer in writers:
        writer.join()
    # Then it answers 204; no writer got anything but 200 ok, 202 or session_erased
    answers = collections.Counter((kind, outcome(response)) for kind, response, _ in made)
    # And once erasure settled, nothing of the user is in either table but what requests that began
    # after the delete moved the user's erasure mark wrote; no turn answered before the 204 is stored
    # unless it began after that
    left = settled_traces_of(user, keep=after_the_mark(user))
    answered = {r.json()["turn_id"] for _, r, at in made if r.status_code == 200 and at < erased_at}
    outlived = answered & {item["sk"]["S"].removeprefix("TURN#") for item in left if "sk" in item}
    figures = (f"DELETE /me {outcome(deleted)}; {len(left)} items left {kinds(left)}; {len(outlived)} of "
               f"{len(answered)} turns answered before it stored; the writers' answers {dict(answers)}")
    assert deleted.status_code == 204, figures
    assert {answer for _, answer in answers} <= {"200 ok", "202", ERASED}, figures
    assert not left and not outlived, figures


def test_erasing_a_user_never_gives_up_under_their_own_steady_turns(instances_url, user):
    # Given 3 clients of the user sending turns back to back
    stop, made = threading.Event(), []

    def loop(n: int):
        with http_client(instances_url, timeout=60) as client:
            while not stop.is_set():
                made.append(outcome(client.post(f"/sessions/steady-{n}/messages", json={"message": "again"},
                                                headers=as_user(user))))

    loopers = [threading.Thread(target=loop, args=(n,)) for n in range(3)]
    for looper in loopers:
        looper.start()
    try:
        # When DELETE /me is sent 10 times meanwhile
        with http_client(instances_url, timeout=GIVE_UP_SECONDS) as client:
            time.sleep(0.5)
            deletes = collections.Counter(client.delete("/me", headers=as_user(user)).status_code for _ in range(10))
    finally:
        stop.set()
        for looper in loopers:
            looper.join()
    # Then every one answers 204
    assert deletes == {204: 10}, f"DELETE /me: {dict(deletes)}; the clients' turns: {dict(collections.Counter(made))}"


def test_erasing_a_session_stops_its_streaming_asynchronous_turn_and_leaves_nothing(dynamodb_endpoint, user):
    # Given an asynchronous turn whose model is streaming an 8-second answer at a real model's pace
    with (slow_model_server(dynamodb_endpoint, lambda _: Text(LONG_ANSWER_TOKENS), workers=2, pace={}) as (model, server),
          http_client(server.url, timeout=60) as client):
        streaming(client, user, "tell me a long story")
        # When its session is deleted
        asked = time.monotonic()
        deleted = client.delete("/sessions/s", headers=as_user(user))
        answered = time.monotonic()
        while model.open_streams and time.monotonic() < answered + GIVE_UP_SECONDS:
            time.sleep(0.1)
        streamed_on = time.monotonic() - answered
        # And the turn has ended
        left = settled_traces_of(user)
    logged = [json.loads(line) for line in "".join(server.console).splitlines() if line.startswith("{")]
    suppressed = [line for line in logged if line.get("message") == "memory_write_suppressed"]
    figures = (f"DELETE {outcome(deleted)} in {answered - asked:.1f} s; the model streamed on for {streamed_on:.1f} s "
               f"after it ({model.abandoned_streams} stream abandoned, {model.requests} model requests); "
               f"{len(left)} items left {kinds(left)}; {len(suppressed)} memory_write_suppressed logged")
    # Then the delete answered 204, and the worker hung up on the model within seconds (before the
    # answer's end), calling it no more
    assert deleted.status_code == 204, figures
    assert (model.abandoned_streams, model.requests) == (1, 1), figures
    # And nothing of the session is left, and no memory_write_suppressed was logged for it (an erased
    # session is not a failed write: the alarm must not count it)
    assert not left and not suppressed, figures
