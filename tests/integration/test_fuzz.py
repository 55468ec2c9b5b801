"""Hostile input: schemathesis against the OpenAPI document the resolver serves, and hand-made abuse.
Whatever arrives, the answer is never a 5xx, and nobody's stored data changes."""

import json
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from agent.api import MAX_BODY_BYTES, MAX_MESSAGE_CHARS
from agent.turn import MAX_TOOL_ROUNDS
from memory.long_term import DEFAULT_MAX_VALUE_CHARS as MAX_FACT_VALUE_CHARS
from client import as_user
from fakes import ScriptedModel, text, tool_use
from faults import recording
from local_stack import SESSIONS_TABLE
from memory.client import dynamodb_client
from memory.keys import TURN_PREFIX, session_key

# Per operation and mode: 9 operations x 2 modes x 20 = at most 360 requests, a few seconds.
FUZZ_EXAMPLES = 20
DYNAMODB_ITEM_LIMIT_BYTES = 400 * 1024


@pytest.fixture
def bystander(api, user):
    """Another user with a session and a fact, who must come out of every test untouched."""
    other = f"{user}-bystander"
    api.post("/sessions/s/messages", json={"message": "private"}, headers=as_user(other))
    api.put("/memory/secret", json={"value": "42"}, headers=as_user(other))
    yield lambda: (
        [m["content"] for m in api.get("/sessions/s/messages", headers=as_user(other)).json()["messages"]],
        api.get("/memory", headers=as_user(other)).json(),
    )
    api.delete("/me", headers=as_user(other))


@pytest.mark.slow
@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_server_error(api, user, base_url, bystander, reliability, mode):
    # Given the OpenAPI document the Powertools resolver generates, and a bystander's data
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    before = bystander()
    server_errors = []
    # When every operation gets generated requests, valid or not, as one user
    for result in schema.get_all_operations():
        operation = result.ok()
        inputs = [operation.path_parameters, operation.query, operation.headers, operation.body]
        if mode == schemathesis.GenerationMode.NEGATIVE and not any(inputs):
            continue  # nothing to get wrong
        statuses = Counter()

        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case):
            response = case.call(base_url=base_url, headers=as_user(user), timeout=30)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                server_errors.append((operation.label, response.status_code, response.text[:200]))

        fuzz()
        spread = ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
        reliability("Hostile input", f"schemathesis, {mode.value} cases: {operation.label}", spread)
    # Then no request got a server error, and the bystander's data is unchanged
    assert server_errors == []
    assert bystander() == before


def post(api, user, body: bytes, content_type="application/json", path="/sessions/s/messages", **headers):
    return api.post(path, content=body, headers=as_user(user) | {"Content-Type": content_type} | headers)


# name, request, expected status (None: any 4xx or 200, never 5xx)
HAND_MADE = [
    ("JSON null body", lambda api, u: post(api, u, b"null"), 422),
    ("message is an object", lambda api, u: post(api, u, b'{"message": {"text": "hi"}}'), 422),
    ("message is a list", lambda api, u: post(api, u, b'{"message": ["hi"]}'), 422),
    ("message is true", lambda api, u: post(api, u, b'{"message": true}'), 422),
    ("identity smuggled in the body", lambda api, u: post(api, u, b'{"message": "hi", "sub": "root"}'), 422),
    ("duplicate JSON keys", lambda api, u: post(api, u, b'{"message": "a", "message": "b"}'), None),
    ("JSON nested 40,000 deep", lambda api, u: post(api, u, b'{"message": ' + b"[" * 40_000 + b"]" * 40_000 + b"}"), 400),
    ("NUL and control characters in the message", lambda api, u: post(api, u, b'{"message": "a\\u0000b\\u0007c"}'), 200),
    ("UTF-8 BOM before the JSON", lambda api, u: post(api, u, b'\xef\xbb\xbf{"message": "hi"}'), None),
    ("overlong UTF-8 encoding", lambda api, u: post(api, u, b'{"message": "\xc0\xaf"}'), 400),
    ("body sent as a form (curl -d)", lambda api, u: post(api, u, b'{"message": "hi"}', "application/x-www-form-urlencoded"), 200),
    ("body sent as text/plain", lambda api, u: post(api, u, b'{"message": "hi"}', "text/plain"), 200),
    ("body larger than the cap, in emoji", lambda api, u: post(api, u, json.dumps({"message": "😀" * (MAX_MESSAGE_CHARS + 1)}, ensure_ascii=False).encode()), 413),
    ("5 MB body", lambda api, u: post(api, u, b"x" * 5_000_000), 413),
    ("Idempotency-Key of 8 KB", lambda api, u: post(api, u, b'{"message": "hi"}', **{"Idempotency-Key": "k" * 8192}), 422),
    ("identity of 3,000 characters", lambda api, u: api.get("/memory", headers={"X-Local-User": "u" * 3000}), 401),
    ("identity with control characters", lambda api, u: api.get("/memory", headers={"X-Local-User": "a\tb"}), 401),
    ("limit=abc", lambda api, u: api.get("/sessions/s/messages?limit=abc", headers=as_user(u)), 422),
    ("limit=-1", lambda api, u: api.get("/sessions/s/messages?limit=-1", headers=as_user(u)), 422),
    ("limit=1000000", lambda api, u: api.get("/sessions/s/messages?limit=1000000", headers=as_user(u)), 422),
    ("next_token that is not ours", lambda api, u: api.get("/sessions/s/messages?next_token=%%%", headers=as_user(u)), 400),
    ("next_token of 5 KB", lambda api, u: api.get("/sessions/s/messages?next_token=" + "A" * 5000, headers=as_user(u)), 422),
    ("fact value over the cap", lambda api, u: api.put("/memory/k", json={"value": "v" * (MAX_FACT_VALUE_CHARS + 1)}, headers=as_user(u)), 422),
    ("fact key with a slash", lambda api, u: api.put("/memory/a%2Fb", json={"value": "v"}, headers=as_user(u)), 422),
    ("fact key with a #", lambda api, u: api.put("/memory/a%23b", json={"value": "v"}, headers=as_user(u)), 422),
    ("unsupported method", lambda api, u: api.patch("/sessions/s/messages", headers=as_user(u)), 404),
    ("path traversal", lambda api, u: api.get("/sessions/..%2F..%2Fme/messages", headers=as_user(u)), 422),
]


@pytest.mark.parametrize("name,send,status", HAND_MADE, ids=[case[0] for case in HAND_MADE])
def test_hand_made_abuse_is_never_a_server_error(api, user, bystander, reliability, name, send, status):
    before = bystander()
    response = send(api, user)
    assert response.status_code < 500, response.text
    if status is not None:
        assert response.status_code == status, response.text
    if response.status_code >= 400:  # the agent's error, or API Gateway's own (no route: {"message"})
        assert set(response.json()) in ({"error", "message"}, {"message"})
        assert api.get("/sessions", headers=as_user(user)).json() == {"sessions": []}
    assert bystander() == before
    outcome = f"{response.status_code}" + (f" {response.json().get('error', 'from API Gateway')}"
                                           if response.status_code >= 400 else "")
    reliability("Hostile input", name, outcome + ("; nothing stored" if response.status_code >= 400 else ""))


def test_an_oversized_body_is_refused_before_any_dynamodb_call(api, user, handler, reliability):
    # When a body over the cap arrives
    with recording(handler.dynamodb) as operations:
        response = post(api, user, b'{"message": "' + b"x" * MAX_BODY_BYTES + b'"}')
    # Then it is 413, and DynamoDB was never asked anything
    assert response.status_code == 413 and operations == []
    reliability("Hostile input", f"body of {MAX_BODY_BYTES + 15:,} bytes (just over the cap)",
                "413 payload_too_large before any DynamoDB call")


def test_the_largest_turn_stays_far_below_the_dynamodb_item_limit(api, user, handler, monkeypatch, reliability):
    # Given the longest message in the most expensive characters, and a model that uses every
    # tool round with the longest values and answers with a long reply
    message = "\U0001f600" * MAX_MESSAGE_CHARS
    rounds = [tool_use("remember", {"key": f"k{n}", "value": "\U0001f600" * MAX_FACT_VALUE_CHARS}, f"t{n}")
              for n in range(MAX_TOOL_ROUNDS - 1)]
    monkeypatch.setattr(handler, "model", lambda: ScriptedModel(*rounds, text("\U0001f600" * 4096)))
    # When the turn is stored
    response = api.post("/sessions/big/messages", json={"message": message}, headers=as_user(user))
    assert response.status_code == 200 and response.json()["memory"] == {"write": "ok"}
    # Then its item is far below DynamoDB's 400 KB
    item = dynamodb_client().query(
        TableName=SESSIONS_TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :turn)",
        ExpressionAttributeValues={":pk": {"S": session_key(user, "big")}, ":turn": {"S": TURN_PREFIX}},
    )["Items"][0]
    size = sum(len(name.encode()) + len(next(iter(value.values())).encode()) for name, value in item.items())
    assert size < DYNAMODB_ITEM_LIMIT_BYTES / 2
    reliability("Hostile input", f"largest turn: {MAX_MESSAGE_CHARS:,} emoji, {MAX_TOOL_ROUNDS - 1} tool rounds, long reply",
                f"stored; item {size / 1024:.0f} KB of DynamoDB's 400 KB")
