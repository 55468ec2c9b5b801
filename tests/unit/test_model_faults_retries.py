"""The retry policy shared by the providers, and Bedrock's use of it (a fake Bedrock endpoint on
127.0.0.1 that answers in AWS's event-stream encoding, parsed by the real botocore)."""

import inspect
import time

import pytest

from agent.budget import SYNC_MODEL_SECONDS
from agent.providers import AnthropicModel, BedrockModel, DeadlineReached, ModelError, OfflineModel
from agent.providers.retries import MODEL_MAX_ATTEMPTS, with_retries
from agent.turn import TOOLS, run_turn
from fakes import Failure, ScriptedModel, SlowModelAPI, Text, provider_model, text, words

pytestmark = pytest.mark.waits  # retry backoffs and deadlines waited out

MESSAGE = {"system": "s", "messages": [{"role": "user", "content": "hi"}], "tools": []}
THROTTLED = Failure(429, "ThrottlingException")


@pytest.fixture
def bedrock(monkeypatch):
    with SlowModelAPI(first_token_seconds=0, tokens_per_second=1000) as api:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", api.url)
        yield BedrockModel(model_id="anthropic.claude-test"), api


def test_bedrock_throttling_is_retried_then_answered(bedrock):
    model, api = bedrock
    api.script = [THROTTLED, Text(3)]
    assert model.complete(**MESSAGE, deadline=time.monotonic() + SYNC_MODEL_SECONDS).content == [{"type": "text", "text": words(3)}]
    assert api.requests == 2


def test_bedrock_throttling_every_time_is_transient_after_the_last_attempt(bedrock):
    model, api = bedrock
    api.script = [THROTTLED]
    with pytest.raises(ModelError) as raised:
        model.complete(**MESSAGE, deadline=time.monotonic() + SYNC_MODEL_SECONDS)
    assert raised.value.transient is True
    assert api.requests == MODEL_MAX_ATTEMPTS


def test_a_bedrock_validation_error_is_not_retried(bedrock):
    model, api = bedrock
    api.script = [Failure(400, "ValidationException")]
    with pytest.raises(ModelError) as raised:
        model.complete(**MESSAGE, deadline=time.monotonic() + SYNC_MODEL_SECONDS)
    assert raised.value.transient is False and api.requests == 1


def test_no_attempt_starts_once_the_budget_is_spent():
    calls = []
    with pytest.raises(DeadlineReached) as raised:
        with_retries(lambda: calls.append(1), deadline=time.monotonic() - 1)
    assert calls == [] and raised.value.transient is True


def test_every_model_call_of_a_turn_shares_one_deadline(memory):
    model = ScriptedModel(text("hi"))
    before = time.monotonic()
    run_turn(memory=memory, model=model, user_id="u1", session_id="s1", message="hello")
    [call] = model.calls
    # The deadline counts from the turn's start: the memory read is inside it.
    assert before + SYNC_MODEL_SECONDS <= call["deadline"] <= time.monotonic() + SYNC_MODEL_SECONDS


@pytest.mark.parametrize("provider", ["anthropic", "bedrock"])
@pytest.mark.parametrize("tools, allow_tools, sent", [
    ([], True, {}),  # no tools (the compactor): neither tools nor tool_choice
    (TOOLS, True, {"tools": TOOLS, "tool_choice": {"type": "auto"}}),
    (TOOLS, False, {"tools": TOOLS, "tool_choice": {"type": "none"}}),  # the tool loop's last round
])
def test_tool_choice_is_sent_only_along_with_tools(monkeypatch, provider, tools, allow_tools, sent):
    # Given a provider whose API records each request's body
    with SlowModelAPI(first_token_seconds=0, tokens_per_second=1000) as api:
        model = provider_model(monkeypatch, api, provider)
        # When it is called with or without tools
        model.complete(**{**MESSAGE, "tools": tools}, allow_tools=allow_tools,
                       deadline=time.monotonic() + SYNC_MODEL_SECONDS)
    # Then the request holds tool_choice exactly when it holds tools
    [body] = api.bodies
    assert {key: body[key] for key in ("tools", "tool_choice") if key in body} == sent


@pytest.mark.parametrize("provider", [AnthropicModel, BedrockModel, OfflineModel])
def test_every_provider_is_given_its_deadline(provider):
    # No call may fall back on a budget of its own: the turn (or the compactor) says when it ends.
    assert inspect.signature(provider.complete).parameters["deadline"].default is inspect.Parameter.empty
