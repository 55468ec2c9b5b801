"""Every dependency of a synchronous turn hangs in turn, on a real socket that accepts and never
answers, and the function still answers inside its timeout, with the answer and the log line that say
which one failed. Lambda ends an invocation at the function's timeout, so an answer that comes later
is no answer: the invocation runs here under that same limit (agent.budget.SYNC_TURN_SECONDS)."""

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from agent import budget
from agent.observability import logger
from agent.providers import AnthropicModel
from agent.providers.anthropic import secrets_client
from fakes import SlowModelAPI, Text, captured_logs
from faults import hanging, unresponsive_endpoint
from instances import _Context, api_event

pytestmark = pytest.mark.waits  # each turn runs until a deadline or a hang's timeout

FUNCTION_TIMEOUT_SECONDS = budget.SYNC_TURN_SECONDS
CLAIM = b'"state": {"S": "running"}'  # the idempotency claim's PutItem, not the turn's
TURN = b'{"S": "TURN#'  # the turn's PutItem, not a claim's
STALLED = Text(6, stall_after=0)  # the model's stream opens, then never sends an event


def invoke(handler, user: str, headers: dict | None = None) -> tuple[int, dict, list[dict]]:
    """One turn through the Lambda handler, ended at the function's timeout as Lambda would end it:
    (status, body, the log lines it wrote)."""
    event = api_event("POST", "/sessions/s/messages", user, {"message": "hello"}, headers)
    with captured_logs(logger) as lines, ThreadPoolExecutor(1) as pool:
        response = pool.submit(handler.lambda_handler, event, _Context()).result(timeout=FUNCTION_TIMEOUT_SECONDS)
        return response["statusCode"], json.loads(response["body"]), lines()


def logged(lines: list[dict], message: str) -> list[dict]:
    return [line for line in lines if line.get("message") == message]


@pytest.fixture
def hung():
    with unresponsive_endpoint() as url:
        yield url


def test_a_hanging_idempotency_claim_is_suppressed_and_the_turn_answered(handler, user, hung):
    with hanging(handler.dynamodb, "PutItem", hung, when=lambda body: CLAIM in body):
        status, body, lines = invoke(handler, user, {"Idempotency-Key": "k-claim"})
    assert status == 200 and body["memory"] == {"write": "ok"}
    assert [line["record"] for line in logged(lines, "memory_write_suppressed")] == ["idempotency"]


def test_a_hanging_memory_read_is_503_memory_unavailable(handler, user, hung):
    with hanging(handler.dynamodb, "Query", hung):
        status, body, lines = invoke(handler, user)
    assert (status, body["error"]) == (503, "memory_unavailable")
    assert logged(lines, "memory_unavailable")


def test_a_hanging_append_is_suppressed_and_the_turn_answered(handler, user, hung):
    with hanging(handler.dynamodb, "PutItem", hung, when=lambda body: TURN in body):
        status, body, lines = invoke(handler, user)
    assert status == 200 and body["memory"] == {"write": "suppressed"}
    assert logged(lines, "memory_write_suppressed")


def test_a_hanging_secret_read_is_503_model_unavailable(handler, user, hung, monkeypatch):
    # Given the anthropic provider, whose key is read from Secrets Manager behind a hanging socket
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", hung)
    secrets_client.cache_clear()
    monkeypatch.setattr(handler, "settings", replace(
        handler.settings, provider="anthropic", anthropic_api_key=None,
        anthropic_secret_arn="arn:aws:secretsmanager:us-east-1:000000000000:secret:hung-key"))
    try:
        status, body, lines = invoke(handler, user, {"Idempotency-Key": "k-secret"})
    finally:
        secrets_client.cache_clear()
    assert (status, body["error"]) == (503, "model_unavailable")
    assert [line["error"] for line in logged(lines, "model_failed")] == ["the model's API key could not be read"]


@pytest.mark.slow
def test_a_model_that_never_answers_is_503_at_the_turns_deadline(handler, user, monkeypatch):
    with SlowModelAPI() as api:
        api.script = [STALLED]
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        model = AnthropicModel(api_key="test-key", model_id="claude-test")
        monkeypatch.setattr(handler, "model", lambda: model)
        status, body, lines = invoke(handler, user, {"Idempotency-Key": "k-model"})
    assert (status, body["error"]) == (503, "model_unavailable")
    assert logged(lines, "model_failed")


@pytest.mark.slow
def test_the_worst_200_claim_and_append_hang_around_an_answer_cut_at_the_deadline(handler, user, hung, monkeypatch):
    # Given a claim and an append that hang, around a model still writing at the turn's deadline
    with (SlowModelAPI() as api, hanging(handler.dynamodb, "PutItem", hung, when=lambda body: CLAIM in body),
          hanging(handler.dynamodb, "TransactWriteItems", hung)):
        api.script = [Text(5_000)]
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        model = AnthropicModel(api_key="test-key", model_id="claude-test")
        monkeypatch.setattr(handler, "model", lambda: model)
        status, body, lines = invoke(handler, user, {"Idempotency-Key": "k-worst"})
    # Then what was written is the answer, inside the timeout, and both failed writes are logged
    assert status == 200 and body["truncated"] is True and body["memory"] == {"write": "suppressed"}
    assert len(logged(lines, "memory_write_suppressed")) == 2
