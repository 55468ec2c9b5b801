"""Model faults: the real anthropic SDK (AnthropicModel) against a fake Messages API on 127.0.0.1,
through the local stack. Retries are bounded by the turn's model budget; then 503 (transient, with
Retry-After when the API gave one) or 502 (not worth retrying); nothing of the turn is stored."""

import time

import pytest

from agent.providers import AnthropicModel
from agent.providers.retries import MODEL_MAX_ATTEMPTS
from client import as_user, say
from fakes import Failure, SlowModelAPI, Text, words
from local.dynamodb import free_port

pytestmark = pytest.mark.waits  # retry backoffs and deadlines waited out

# Memory read (4 s) and overhead on top of the model's budget: agent/budget.py.
MEMORY_READ_AND_OVERHEAD_SECONDS = 5
TEST_MODEL_BUDGET_SECONDS = 3.0


def error(status: int, error_type: str, headers: dict | None = None, error_code: str | None = None):
    return Failure(status, error_type, tuple((headers or {}).items()), error_code)


OK = Text(6)
HANG = Text(6, stall_after=0)


def rate_limited(seconds: int):
    return error(429, "rate_limit_error", {"retry-after": str(seconds)})


OVERLOADED = error(529, "overloaded_error")
SERVER_ERROR = error(500, "api_error")
UNAUTHORIZED = error(401, "authentication_error")
SPEND_LIMIT = error(429, "rate_limit_error", error_code="enforced_spend_limit_reached")


@pytest.fixture
def fake_api(handler, monkeypatch):
    """The handler's model is AnthropicModel, talking to a fake Messages API that answers at once."""
    with SlowModelAPI(first_token_seconds=0, tokens_per_second=1000) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        model = AnthropicModel(api_key="test-key", model_id="claude-test")
        monkeypatch.setattr(handler, "model", lambda: model)
        yield api


def nothing_stored(api, user) -> bool:
    return (
        api.get("/sessions/s/messages", headers=as_user(user)).status_code == 404
        and api.get("/sessions", headers=as_user(user)).json() == {"sessions": []}
    )


# name, script, expected status, expected error code, expected Retry-After, expected requests
CASES = [
    ("429 with retry-after 1 s, then success", [rate_limited(1), OK], 200, None, None, 2),
    ("500, then success", [SERVER_ERROR, OK], 200, None, None, 2),
    ("529 overloaded, then success", [OVERLOADED, OK], 200, None, None, 2),
    ("429 with retry-after 1 s, every time", [rate_limited(1)], 503, "model_unavailable", "1", MODEL_MAX_ATTEMPTS),
    ("429 with retry-after 60 s (past the budget)", [rate_limited(60)], 503, "model_unavailable", "60", 1),
    ("529 overloaded, every time", [OVERLOADED], 503, "model_unavailable", None, MODEL_MAX_ATTEMPTS),
    ("500, every time", [SERVER_ERROR], 503, "model_unavailable", None, MODEL_MAX_ATTEMPTS),
    ("401 invalid API key", [UNAUTHORIZED], 502, "model_error", None, 1),
    ("429 monthly spend limit reached", [SPEND_LIMIT], 502, "model_error", None, 1),
]


@pytest.mark.parametrize("name,script,status,code,retry_after,requests", CASES, ids=[c[0] for c in CASES])
def test_model_faults_are_retried_within_the_budget_then_answered_clearly(
    api, user, fake_api, reliability, name, script, status, code, retry_after, requests
):
    # Given a Messages API that answers as scripted
    fake_api.script = list(script)
    # When a turn is sent
    response = say(api, user, "s", "hello")
    # Then the turn gets the expected answer, after exactly the expected number of attempts
    assert response.status_code == status, response.text
    assert fake_api.requests == requests
    if status == 200:
        assert response.json()["reply"] == words(6)
        assert response.json()["memory"] == {"write": "ok"}
    else:
        assert response.json()["error"] == code
        assert response.headers.get("retry-after") == retry_after
        # And nothing of the failed turn is stored
        assert nothing_stored(api, user)
    outcome = f"{status}" + (f" {code}" if code else " with the reply") + (f", Retry-After {retry_after}" if retry_after else "")
    reliability("Model faults", f"Anthropic: {name}", f"{outcome}; {requests} request(s) made" + ("; nothing stored" if code else ""))


def test_a_model_that_never_answers_ends_within_the_budget(api, user, handler, fake_api, monkeypatch, reliability):
    # Given a short model budget (the handler's, from the request's entry) and a Messages API that never answers
    monkeypatch.setattr(handler, "SYNC_MODEL_SECONDS", TEST_MODEL_BUDGET_SECONDS)
    fake_api.script = [HANG]
    # When a turn is sent
    started = time.monotonic()
    response = say(api, user, "s", "hello")
    elapsed = time.monotonic() - started
    # Then it is a 503 inside the turn's budget, not a gateway timeout, and nothing is stored
    assert response.status_code == 503 and response.json()["error"] == "model_unavailable"
    assert elapsed < TEST_MODEL_BUDGET_SECONDS + MEMORY_READ_AND_OVERHEAD_SECONDS
    assert fake_api.requests == 1 and nothing_stored(api, user)
    reliability("Model faults", f"Anthropic: read timeout (model budget set to {TEST_MODEL_BUDGET_SECONDS:g} s)",
                f"503 model_unavailable after {elapsed:.1f} s, 1 request (no time left to retry); nothing stored")


def test_an_unreachable_model_is_503(api, user, handler, monkeypatch, reliability):
    # Given an API endpoint where nothing listens
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{free_port()}")
    model = AnthropicModel(api_key="test-key", model_id="claude-test")
    monkeypatch.setattr(handler, "model", lambda: model)
    # When a turn is sent
    response = say(api, user, "s", "hello")
    # Then 503 after bounded retries, and nothing is stored
    assert response.status_code == 503 and response.json()["error"] == "model_unavailable"
    assert nothing_stored(api, user)
    reliability("Model faults", "Anthropic: connection refused", f"503 model_unavailable after {MODEL_MAX_ATTEMPTS} attempts; nothing stored")
