"""The retry policy shared by the providers, and Bedrock's use of it (botocore Stubber, no network)."""

import io
import json
import time

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from agent.providers import MODEL_BUDGET_SECONDS, MODEL_MAX_ATTEMPTS, BedrockModel, ModelError, with_retries
from agent.turn import run_turn
from fakes import ScriptedModel, text

MESSAGE = {"system": "s", "messages": [{"role": "user", "content": "hi"}], "tools": []}


def bedrock_answer(reply: str) -> dict:
    raw = json.dumps({"content": [{"type": "text", "text": reply}], "stop_reason": "end_turn",
                      "usage": {"input_tokens": 3, "output_tokens": 2}}).encode()
    return {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json"}


@pytest.fixture
def bedrock():
    model = BedrockModel(model_id="anthropic.claude-test")
    with Stubber(model._client) as stubber:
        yield model, stubber


def test_bedrock_throttling_is_retried_then_answered(bedrock):
    model, stubber = bedrock
    stubber.add_client_error("invoke_model", service_error_code="ThrottlingException", http_status_code=429)
    stubber.add_response("invoke_model", bedrock_answer("hello"))
    assert model.complete(**MESSAGE).content == [{"type": "text", "text": "hello"}]
    stubber.assert_no_pending_responses()


def test_bedrock_throttling_every_time_is_transient_after_the_last_attempt(bedrock):
    model, stubber = bedrock
    for _ in range(MODEL_MAX_ATTEMPTS):
        stubber.add_client_error("invoke_model", service_error_code="ThrottlingException", http_status_code=429)
    with pytest.raises(ModelError) as raised:
        model.complete(**MESSAGE)
    assert raised.value.transient is True
    stubber.assert_no_pending_responses()


def test_a_bedrock_validation_error_is_not_retried(bedrock):
    model, stubber = bedrock
    stubber.add_client_error("invoke_model", service_error_code="ValidationException", http_status_code=400)
    with pytest.raises(ModelError) as raised:
        model.complete(**MESSAGE)
    assert raised.value.transient is False


def test_no_attempt_starts_once_the_budget_is_spent():
    calls = []
    with pytest.raises(ModelError) as raised:
        with_retries(calls.append, deadline=time.monotonic() - 1)
    assert calls == [] and raised.value.transient is True


def test_an_attempt_gets_at_most_what_is_left_of_the_budget():
    timeouts = []
    with_retries(lambda timeout: timeouts.append(timeout) or "answer", deadline=time.monotonic() + 2)
    [timeout] = timeouts
    assert 0 < timeout <= 2


def test_every_model_call_of_a_turn_shares_one_deadline(memory):
    model = ScriptedModel(text("hi"))
    before = time.monotonic()
    run_turn(memory=memory, model=model, user_id="u1", session_id="s1", message="hello")
    [call] = model.calls
    assert before + MODEL_BUDGET_SECONDS <= call["deadline"] <= time.monotonic() + MODEL_BUDGET_SECONDS
