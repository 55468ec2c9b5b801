"""Idempotency-Key on POST /sessions/{id}/messages: a retry gets the first answer back."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent.observability import logger
from agent.providers import ModelError
from agent.turn import run_turn
from client import as_user, say, send_all, stored_turns
from fakes import ScriptedModel, captured_logs, text
from faults import SERVER_ERROR, failing, recording


class BlockingModel:
    """Answers only once `release` is set, so a test can act while a turn is running."""

    def __init__(self, reply: str):
        self.reply, self.calls = reply, 0
        self.entered, self.release = threading.Event(), threading.Event()

    def complete(self, **_):
        self.calls += 1
        self.entered.set()
        assert self.release.wait(10)
        return text(self.reply)


@pytest.fixture
def model(handler, monkeypatch):
    """A model that can answer exactly once: a second call would fail the test with a 500."""
    scripted = ScriptedModel(text("the one and only answer"))
    monkeypatch.setattr(handler, "model", lambda: scripted)
    return scripted


def test_a_retry_gets_the_same_reply_without_a_second_model_call_or_turn(api, user, model, reliability):
    # Given a turn sent with an Idempotency-Key
    first = say(api, user, "s", "hello", idempotency_key="key-1")
    # When it is retried with the same key
    retry = say(api, user, "s", "hello", idempotency_key="key-1")
    # Then the retry gets the same answer, the model was called once, one turn is stored
    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    assert len(model.calls) == 1 and stored_turns(api, user) == ["hello"]
    reliability("Idempotency", "the same POST retried with the same key",
                "200, the same reply and turn_id; one model call; one stored turn")


def test_a_new_key_is_a_new_turn(api, user, handler, monkeypatch, reliability):
    monkeypatch.setattr(handler, "model", lambda: ScriptedModel(text("an answer")))
    first = say(api, user, "s", "hello", idempotency_key="key-1")
    second = say(api, user, "s", "hello", idempotency_key="key-2")
    assert first.json()["turn_id"] != second.json()["turn_id"]
    assert stored_turns(api, user) == ["hello", "hello"]
    reliability("Idempotency", "the same message with a new key", "a new turn, stored")


def test_a_retry_while_the_first_is_running_gets_409(api, user, handler, reliability):
    # Given a first request inside its turn, waiting for the model. It runs the handler's own path
    # in a thread: the local server runs one invocation at a time, as one Lambda environment does,
    # while in AWS the retry would be served by another environment at the same time.
    model = BlockingModel("finally")

    def first_turn(claim):
        return run_turn(memory=handler.memory, model=model, user_id=user, session_id="s", message="slow",
                        records=(claim,))

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(handler.idempotency.turn, user, "s", "key-1", "slow", first_turn)
        assert model.entered.wait(10)
        # When the client retries with the same key
        retry = say(api, user, "s", "slow", idempotency_key="key-1")
        # Then the retry is told to come back, and does not run the turn
        assert retry.status_code == 409 and retry.json()["error"] == "turn_in_progress"
        assert retry.headers["retry-after"] == "1"
        model.release.set()
        result = first.result()
    # And once the first is done, the retry gets its answer
    again = say(api, user, "s", "slow", idempotency_key="key-1")
    assert again.status_code == 200
    assert (again.json()["turn_id"], again.json()["reply"]) == (result.turn.turn_id, "finally")
    assert model.calls == 1 and stored_turns(api, user) == ["slow"]
    reliability("Idempotency", "a retry while the first request is still running",
                "409 turn_in_progress with Retry-After 1; after it, the stored reply")


def test_concurrent_retries_run_the_turn_once(api, user, model, base_url, reliability):
    # When eight copies of one request arrive at once
    responses = send_all(base_url, user, [("s", "once")] * 8, headers={"Idempotency-Key": "key-1"})
    # Then each gets either the one answer or a 409, and the turn ran and was stored once
    answers = {r.json()["turn_id"] for r in responses if r.status_code == 200}
    assert {r.status_code for r in responses} <= {200, 409} and len(answers) == 1
    assert len(model.calls) == 1 and stored_turns(api, user) == ["once"]
    reliability("Idempotency", "8 copies of one request at once",
                f"{sum(r.status_code == 200 for r in responses)} x 200 (one turn_id), "
                f"{sum(r.status_code == 409 for r in responses)} x 409; one model call, one stored turn")


def test_a_key_reused_with_another_message_is_422(api, user, handler, monkeypatch, reliability):
    monkeypatch.setattr(handler, "model", lambda: ScriptedModel(text("an answer")))
    say(api, user, "s", "hello", idempotency_key="key-1")
    response = say(api, user, "s", "something else", idempotency_key="key-1")
    assert response.status_code == 422 and response.json()["error"] == "idempotency_key_reused"
    assert stored_turns(api, user) == ["hello"]
    reliability("Idempotency", "the same key with a different message", "422 idempotency_key_reused; nothing stored")


MALFORMED_KEYS = {"with a space": "has space", "256 characters": "x" * 256, "non-ASCII": "clé"}


@pytest.mark.parametrize("name", MALFORMED_KEYS)
def test_a_malformed_key_is_422(api, user, name, reliability):
    response = api.post("/sessions/s/messages", json={"message": "hi"},
                        headers=as_user(user) | {"Idempotency-Key": MALFORMED_KEYS[name].encode()})
    assert response.status_code == 422 and stored_turns(api, user) == []
    reliability("Idempotency", f"a malformed key: {name}", "422 validation_error; nothing stored")


def test_without_the_header_no_extra_dynamodb_call_is_made(api, user, handler, reliability):
    # Given a session that exists
    say(api, user, "s", "first")
    # When a turn is sent without, then with, an Idempotency-Key
    with recording(handler.dynamodb) as without:
        say(api, user, "s", "plain")
    with recording(handler.dynamodb) as with_key:
        say(api, user, "s", "keyed", idempotency_key="key-1")
    # Then without it the turn makes exactly its own calls: its fence, window and facts read side by
    # side, the turn's PutItem and the fence's confirm; with it, one claim (PutItem) more, and the
    # turn goes with its record in one transaction
    assert sorted(without) == ["BatchGetItem", "PutItem", "Query", "Query", "UpdateItem"]
    assert sorted(with_key) == ["BatchGetItem", "PutItem", "Query", "Query", "TransactWriteItems", "UpdateItem"]
    reliability("Idempotency", "a turn without the header",
                "no extra DynamoDB call: BatchGetItem + 2 Query, PutItem, UpdateItem (with a key: + 1 PutItem, "
                "and the turn's PutItem becomes a TransactWriteItems with its record)")


def test_a_failed_idempotency_record_never_fails_the_turn(api, user, model, handler, reliability):
    # When the claim cannot be written
    with failing(handler.dynamodb, "PutItem", SERVER_ERROR, times=2), captured_logs(logger) as lines:
        response = say(api, user, "s", "hello", idempotency_key="key-1")
    # Then the turn is answered and stored anyway, and the failure is logged like any memory write
    assert response.status_code == 200 and response.json()["memory"] == {"write": "ok"}
    [line] = [line for line in lines() if line["message"] == "memory_write_suppressed"]
    assert line["record"] == "idempotency" and line["error"] == "InternalServerError"
    # And the record stored with the turn still answers a retry
    assert say(api, user, "s", "hello", idempotency_key="key-1").json() == response.json()
    assert len(model.calls) == 1 and stored_turns(api, user) == ["hello"]
    reliability("Idempotency", "the idempotency claim fails (HTTP 500)",
                "200, turn stored, one memory_write_suppressed line; a retry still gets the stored reply")


def test_a_failed_turn_releases_its_key(api, user, handler, monkeypatch, reliability):
    class Overloaded:
        def complete(self, **_):
            raise ModelError("overloaded", transient=True)

    # Given a first attempt that failed in the model
    monkeypatch.setattr(handler, "model", lambda: Overloaded())
    assert say(api, user, "s", "hello", idempotency_key="key-1").status_code == 503
    # When the client retries with the same key
    monkeypatch.setattr(handler, "model", lambda: ScriptedModel(text("better now")))
    retry = say(api, user, "s", "hello", idempotency_key="key-1")
    # Then the turn runs, and is stored once
    assert retry.status_code == 200 and retry.json()["reply"] == "better now"
    assert stored_turns(api, user) == ["hello"]
    reliability("Idempotency", "a retry after the first attempt failed (model 503)",
                "the key was released: the retry runs the turn, stored once")


def test_a_suppressed_append_releases_its_key(api, user, handler, monkeypatch, reliability):
    monkeypatch.setattr(handler, "model", lambda: ScriptedModel(text("first"), text("second")))
    with failing(handler.dynamodb, "TransactWriteItems", SERVER_ERROR):
        assert say(api, user, "s", "hello", idempotency_key="key-1").json()["memory"] == {"write": "suppressed"}
    retry = say(api, user, "s", "hello", idempotency_key="key-1")
    assert retry.json()["memory"] == {"write": "ok"} and stored_turns(api, user) == ["hello"]
    reliability("Idempotency", "a retry after the first answer's append was suppressed",
                "the key was released: the retry runs and stores the turn, once")
