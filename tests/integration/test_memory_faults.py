import time

from agent.observability import logger
from conftest import SESSIONS_TABLE, as_user
from fakes import ScriptedModel, captured_logs, text
from faults import SERVER_ERROR, THROTTLED, failing

READ_FAILURE_BOUND_SECONDS = 5


def say(api, user, session, message):
    return api.post(f"/sessions/{session}/messages", json={"message": message}, headers=as_user(user))


def history(api, user, session):
    return [m["content"] for m in api.get(f"/sessions/{session}/messages", headers=as_user(user)).json()["messages"]]


def test_a_failed_write_still_answers_and_says_so(api, user, handler):
    # Given a session with one stored turn
    say(api, user, "s", "before")
    before = history(api, user, "s")
    # When the turn's write fails at the wire
    with failing(handler.dynamodb, "PutItem", SERVER_ERROR, table=SESSIONS_TABLE), captured_logs(logger) as lines:
        response = say(api, user, "s", "during")
    # Then the reply arrives, marked suppressed, with exactly one WARNING line about it
    assert response.status_code == 200
    assert response.json()["memory"] == {"write": "suppressed"}
    suppressed = [line for line in lines() if line["message"] == "memory_write_suppressed"]
    assert len(suppressed) == 1
    assert suppressed[0]["level"] == "WARNING" and suppressed[0]["session_id"] == "s"
    assert suppressed[0]["error"] == "InternalServerError" and "during" not in str(suppressed[0])
    # And the history stored before is intact
    assert history(api, user, "s") == before


def test_a_failed_read_is_503_fast_and_never_calls_the_model(api, user, handler, monkeypatch):
    say(api, user, "s", "before")
    before = history(api, user, "s")
    model = ScriptedModel(text("must not be used"))
    monkeypatch.setattr(handler, "model", lambda: model)
    with failing(handler.dynamodb, "Query", THROTTLED) as attempts:
        started = time.monotonic()
        response = say(api, user, "s", "during")
        elapsed = time.monotonic() - started
    assert response.status_code == 503 and response.json()["error"] == "memory_unavailable"
    assert elapsed < READ_FAILURE_BOUND_SECONDS
    assert model.calls == [] and len(attempts) >= 1
    assert history(api, user, "s") == before
