"""Asynchronous turns (`Prefer: respond-async`) through the local stack: the same worker code the
worker Lambda runs, in a thread of the process that accepted the turn (agent.async_turns), against a
model as slow as a real one (tests/fakes.py SlowModelAPI) and DynamoDB Local."""

import threading
import time

import pytest

from agent import async_turns
from agent.async_turns import Job, work
from agent.observability import logger
from client import ASYNC, GIVE_UP_SECONDS, POLL_SECONDS, as_user, poll, start
from fake_model import FAST, attach
from fakes import Failure, SlowModelAPI, Text, captured_logs, words
from faults import SERVER_ERROR, THROTTLED, failing


@pytest.mark.slow  # a real model's pace
@pytest.mark.waits
@pytest.mark.parametrize("provider", ("anthropic", "bedrock"))
def test_a_3000_token_answer_completes_asynchronously_with_progress_from_one_request(
    api, user, handler, monkeypatch, reliability, provider
):
    # Given a model at a real model's pace (Bedrock: the same stream ten times faster), and a 3,000-
    # token answer: 51 s of writing, far past what a synchronous request can carry
    with SlowModelAPI(**({} if provider == "anthropic" else FAST)) as fake:
        attach(handler, monkeypatch, fake, provider)
        fake.script = [Text(3000)]
        # When the turn is sent with Prefer: respond-async
        accepted = start(api, user)
        # Then 202 at once, with the turn's id and where to follow it
        body = accepted.json()
        assert body["status"] == "running" and body["session_id"] == "s"
        assert accepted.headers["location"] == f"/sessions/s/turns/{body['turn_id']}"
        views = poll(api, user, accepted.headers["location"])
        # And while it runs, the reply grows, each view a prefix of the answer
        partial = [v["reply"] for v in views if v["status"] == "running" and v["reply"]]
        assert len(set(partial)) >= 3
        assert all(words(3000).startswith(text) for text in partial)
        # And it ends done, with the whole answer and the synchronous answer's fields, from one request
        done = views[-1]
        assert done["status"] == "done", done
        assert done["reply"] == words(3000) and done["truncated"] is False
        assert done["turn_id"] == body["turn_id"] and done["memory"] == {"write": "ok"}
        assert set(done["context"]) == {"turns", "summary", "facts", "facts_omitted"}
        assert fake.requests == 1
    # And the turn is in the history once
    history = api.get("/sessions/s/messages", headers=as_user(user)).json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    reliability("Asynchronous turns", f"{provider}: a 3,000-token answer"
                + (" at 60 tokens/s (51 s of writing)" if provider == "anthropic" else ", streamed"),
                f"202 at once; {len(set(partial))} growing partial replies while running; done with the whole "
                "answer from 1 model request; stored once")


def test_another_user_and_an_unknown_turn_get_404(api, user, handler, monkeypatch, reliability):
    with SlowModelAPI(**FAST) as fake:
        attach(handler, monkeypatch, fake, "anthropic")
        location = start(api, user).headers["location"]
        poll(api, user, location)
    assert api.get(location, headers=as_user("someone-else")).status_code == 404
    assert api.get("/sessions/s/turns/1795545076862-85df7cd6", headers=as_user(user)).status_code == 404
    assert api.get("/sessions/s/turns/not-a-turn", headers=as_user(user)).status_code == 422
    reliability("Tenant isolation", "another user reads an asynchronous turn's status", "404, as for an unknown turn")


def test_a_second_delivery_of_the_same_turn_never_calls_the_model_again(api, user, handler, monkeypatch, reliability):
    # Given an accepted turn whose dispatch is held back, as Lambda holds an event it will deliver twice
    jobs: list[Job] = []
    monkeypatch.setattr(handler, "dispatch", jobs.append)
    with SlowModelAPI(**FAST) as fake:
        model = attach(handler, monkeypatch, fake, "anthropic")
        fake.script = [Text(300)]
        location = start(api, user).headers["location"]
        # When two workers get it at the same time
        workers = [threading.Thread(target=work, args=(jobs[0],),
                                    kwargs={"memory": handler.memory, "model": model, "statuses": handler.statuses,
                                            "logger": logger}) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        # And once more after it finished
        work(jobs[0], memory=handler.memory, model=model, statuses=handler.statuses, logger=logger)
        # Then the model was called once, one turn is stored, and the status is done
        assert fake.requests == 1
    assert api.get(location, headers=as_user(user)).json()["status"] == "done"
    assert len(api.get("/sessions/s/messages", headers=as_user(user)).json()["messages"]) == 2
    reliability("Asynchronous turns", "the same turn delivered to two workers at once, then a third time",
                "1 model request, 1 stored turn, status done")


def test_a_turn_whose_worker_died_is_failed_after_its_deadline(api, user, handler, monkeypatch, reliability):
    # Given a 1 s turn deadline, and a worker that never runs the turn (it died, or was never invoked)
    monkeypatch.setattr(async_turns, "ASYNC_TURN_SECONDS", 1)
    jobs: list[Job] = []
    monkeypatch.setattr(handler, "dispatch", jobs.append)
    location = start(api, user).headers["location"]
    # When the deadline has passed
    time.sleep(1.5)
    # Then the turn reads as failed, not running for ever
    view = api.get(location, headers=as_user(user)).json()
    assert (view["status"], view["error"]) == ("failed", "turn_timed_out")
    # And a delivery that comes after the deadline does not run it
    with SlowModelAPI(**FAST) as fake:
        model = attach(handler, monkeypatch, fake, "anthropic")
        work(jobs[0], memory=handler.memory, model=model, statuses=handler.statuses, logger=logger)
        assert fake.requests == 0
    reliability("Asynchronous turns", "the worker dies (deadline set to 1 s), then a late delivery arrives",
                "failed turn_timed_out after the deadline; the late delivery calls no model")


READ_FAULTS = {"throttled": THROTTLED, "server error": SERVER_ERROR}


@pytest.mark.parametrize("fault", READ_FAULTS)
def test_a_failed_memory_read_in_the_worker_fails_the_turn_fast(api, user, handler, monkeypatch, reliability, fault):
    with SlowModelAPI(**FAST) as fake:
        attach(handler, monkeypatch, fake, "anthropic")
        # When the worker's window read fails at the wire
        with failing(handler.dynamodb, "Query", READ_FAULTS[fault]):
            views = poll(api, user, start(api, user).headers["location"])
        # Then the turn fails as the synchronous path would answer, and the model is not called
        assert views[-1]["status"] == "failed"
        assert (views[-1]["error"], views[-1]["message"]) == ("memory_unavailable", "memory could not be read; retry later")
        assert fake.requests == 0
    reliability("Asynchronous turns", f"the worker's memory read: {fault}",
                "failed memory_unavailable (the synchronous 503's code and message); model not called")


def test_a_failed_append_in_the_worker_is_suppressed_and_the_turn_is_done(api, user, handler, monkeypatch, reliability):
    def turn_append(request):  # only the transaction that stores the turn
        return SERVER_ERROR if b'"TURN#' in request.body else None

    with SlowModelAPI(**FAST) as fake, captured_logs(logger) as lines:
        attach(handler, monkeypatch, fake, "anthropic")
        fake.script = [Text(50)]
        with failing(handler.dynamodb, "TransactWriteItems", turn_append):
            views = poll(api, user, start(api, user).headers["location"])
        # Then the answer is there, marked suppressed, and the same structured event was logged
        assert views[-1]["status"] == "done" and views[-1]["reply"] == words(50)
        assert views[-1]["memory"] == {"write": "suppressed"}
        assert [line for line in lines() if line["message"] == "memory_write_suppressed"]
    reliability("Asynchronous turns", "the worker's append of the turn fails",
                "done with the reply, memory.write = suppressed, memory_write_suppressed logged")


def test_a_model_failure_in_the_worker_fails_the_turn_with_the_synchronous_error(
    api, user, handler, monkeypatch, reliability
):
    with SlowModelAPI(**FAST) as fake:
        attach(handler, monkeypatch, fake, "anthropic")
        fake.script = [Failure(401, "authentication_error")]
        views = poll(api, user, start(api, user).headers["location"])
    assert (views[-1]["status"], views[-1]["error"]) == ("failed", "model_error")
    assert api.get("/sessions/s/messages", headers=as_user(user)).status_code == 404
    reliability("Asynchronous turns", "the model rejects the request (401)", "failed model_error; nothing stored")


def test_a_turn_no_worker_can_take_is_503_and_failed(api, user, handler, monkeypatch, reliability):
    def unavailable(job):
        raise ConnectionError("no route to Lambda")

    monkeypatch.setattr(handler, "dispatch", unavailable)
    response = api.post("/sessions/s/messages", json={"message": "hi"}, headers={**as_user(user), **ASYNC})
    assert response.status_code == 503 and response.json()["error"] == "worker_unavailable"
    reliability("Asynchronous turns", "the worker cannot be invoked", "503 worker_unavailable with Retry-After")


def test_erasing_the_session_while_its_turn_runs_leaves_nothing(api, user, handler, monkeypatch, reliability):
    workers: list[threading.Thread] = []

    def dispatch(job: Job) -> None:  # the same worker code, on a thread this test can wait for
        workers.append(threading.Thread(target=work, args=(job,), kwargs={
            "memory": handler.memory, "model": handler.model(), "statuses": handler.statuses, "logger": logger}))
        workers[-1].start()

    monkeypatch.setattr(handler, "dispatch", dispatch)
    # Given a turn at a real model's pace: 2,000 tokens take 34 s to write
    with SlowModelAPI() as fake, captured_logs(logger) as lines:
        attach(handler, monkeypatch, fake, "anthropic")
        fake.script = [Text(2000)]
        location = start(api, user).headers["location"]
        # When the session is deleted while the model is still writing
        while not api.get(location, headers=as_user(user)).json()["reply"]:
            time.sleep(POLL_SECONDS)
        assert api.delete("/sessions/s", headers=as_user(user)).status_code == 204
        # Then the worker's next progress write finds its turn gone: it closes the model's stream
        # (no tokens paid for nothing), logs turn_erased, and stores nothing
        workers[0].join()
        give_up = time.monotonic() + GIVE_UP_SECONDS
        while not fake.abandoned_streams and time.monotonic() < give_up:  # the model sees the close at its next token
            time.sleep(POLL_SECONDS)
        assert fake.abandoned_streams == 1 and fake.requests == 1
        logged = [line["message"] for line in lines()]
    assert "turn_erased" in logged and "memory_write_suppressed" not in logged
    assert api.get(location, headers=as_user(user)).status_code == 404
    assert api.get("/sessions/s/messages", headers=as_user(user)).status_code == 404
    assert api.get("/sessions", headers=as_user(user)).json() == {"sessions": []}
    reliability("Erasure", "DELETE /sessions/{id} while its asynchronous turn is being written (60 tokens/s)",
                "204; the worker's next progress write fails its condition: the model's stream is closed, "
                "turn_erased logged (not a suppressed write), nothing written back")


def test_a_retried_asynchronous_post_gets_the_same_turn(api, user, handler, monkeypatch, reliability):
    with SlowModelAPI(**FAST) as fake:
        attach(handler, monkeypatch, fake, "anthropic")
        fake.script = [Text(50)]
        # When an asynchronous POST is sent twice with one Idempotency-Key, and once more after it is done
        keyed = {**as_user(user), **ASYNC, "Idempotency-Key": "key-1"}
        first, second = (api.post("/sessions/s/messages", json={"message": "hi"}, headers=keyed) for _ in range(2))
        poll(api, user, first.headers["location"])
        third = api.post("/sessions/s/messages", json={"message": "hi"}, headers=keyed)
        # Then every answer names the same turn, which ran once
        assert {r.status_code for r in (first, second, third)} == {202}
        assert first.json() == second.json() == third.json() and fake.requests == 1
    history = api.get("/sessions/s/messages", headers=as_user(user)).json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    # And the same key for a synchronous request is another request: refused
    sync = api.post("/sessions/s/messages", json={"message": "hi"}, headers=as_user(user) | {"Idempotency-Key": "key-1"})
    assert sync.status_code == 422
    reliability("Idempotency", "an asynchronous POST retried with the same Idempotency-Key, during and after its turn",
                "202 with the same turn id every time; 1 model request, 1 turn stored; the key sent synchronously: 422")
