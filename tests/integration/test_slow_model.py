"""Streamed model calls against a model API as slow as a real one (tests/fakes.py SlowModelAPI:
1 s to the first token, 60 tokens/s), through the local stack: the real anthropic SDK and the real
botocore. Tests about pace run at that pace; tests about behaviour alone run faster."""

import time

import pytest

from agent.providers import anthropic
from agent.turn import CUT_OFF_TEXT
from client import as_user, say
from fake_model import FAST, attach
from fakes import SlowModelAPI, Text, ToolCall, words

pytestmark = [pytest.mark.slow, pytest.mark.waits]  # a real model's pace, and deadlines waited out

PROVIDERS = ("anthropic", "bedrock")
SHORT_DEADLINE_SECONDS = 4.0


def stored_reply(api, user, session="s") -> str:
    messages = api.get(f"/sessions/{session}/messages", headers=as_user(user)).json()["messages"]
    return "".join(block["text"] for block in messages[-1]["content"] if block["type"] == "text")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_1000_token_answer_at_a_real_models_pace_comes_back_whole_from_one_request(
    api, user, handler, monkeypatch, reliability, provider
):
    # Given a model that takes 1 s to its first token and writes 60 tokens a second (Bedrock: the
    # same stream ten times faster; the pace claim is made once, on the Anthropic path)
    pace = {} if provider == "anthropic" else FAST
    with SlowModelAPI(**pace) as fake:
        attach(handler, monkeypatch, fake, provider)
        fake.script = [Text(1000)]
        # When a synchronous turn asks for a 1,000-token answer
        response = say(api, user, "s", "tell me a long story")
        # Then the whole answer comes back, from one model request, and is stored
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["reply"] == words(1000) and body["truncated"] is False
        assert fake.requests == 1
        assert stored_reply(api, user) == words(1000)
    reliability("Model faults", f"{provider}: a 1,000-token answer"
                + (" at 60 tokens/s after 1 s (a real model's pace)" if provider == "anthropic" else ", streamed"),
                "200 with the whole answer, synchronously, from 1 model request; stored")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_stall_mid_answer_ends_at_the_deadline_with_what_was_written(
    api, user, handler, monkeypatch, reliability, provider
):
    # Given a short turn deadline (the handler's, from the request's entry) and a model that writes 100 tokens, then stalls for good
    monkeypatch.setattr(handler, "SYNC_MODEL_SECONDS", SHORT_DEADLINE_SECONDS)
    with SlowModelAPI(**FAST) as fake:
        attach(handler, monkeypatch, fake, provider)
        fake.script = [Text(1000, stall_after=100)]
        # When a turn is sent
        started = time.monotonic()
        response = say(api, user, "s", "tell me a long story")
        elapsed = time.monotonic() - started
        # Then it answers 200 with the 100 tokens written, marked truncated, stored like any turn
        assert response.status_code == 200, response.text
        assert response.json()["reply"] == words(100) and response.json()["truncated"] is True
        assert stored_reply(api, user) == words(100)
        assert fake.requests == 1  # the tokens were spent: no second, billed, attempt
    reliability("Model faults", f"{provider}: the model stalls for good after 100 tokens "
                f"(deadline set to {SHORT_DEADLINE_SECONDS:g} s)",
                f"200 after {elapsed:.1f} s with the 100 tokens, `truncated`, stored; 1 request")


def test_a_stream_silent_past_the_stall_timeout_ends_the_answer_before_the_deadline(
    api, user, handler, monkeypatch, reliability
):
    # Given a 2 s stall timeout (the gap between two stream events) and a model that stalls mid-answer
    monkeypatch.setattr(anthropic, "STALL_SECONDS", 2)
    with SlowModelAPI(**FAST) as fake:
        attach(handler, monkeypatch, fake, "anthropic")
        fake.script = [Text(1000, stall_after=50)]
        # When a turn is sent
        response = say(api, user, "s", "tell me a long story")
        # Then the read timeout, not the turn's deadline, ends it: what was written, truncated
        assert response.status_code == 200, response.text
        assert response.json()["reply"] == words(50) and response.json()["truncated"] is True
    reliability("Model faults", "anthropic: no stream event for longer than the stall timeout (set to 2 s)",
                "200 with the 50 tokens written, `truncated`, stored; the turn's deadline not reached")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_rounds_work_on_the_streamed_api(api, user, handler, monkeypatch, reliability, provider):
    # Given a model that streams a `remember` call, then (after our tool result) a 120-token answer
    with SlowModelAPI(**({} if provider == "anthropic" else FAST)) as fake:
        attach(handler, monkeypatch, fake, provider)
        fake.script = [ToolCall("remember", {"key": "colour", "value": "teal"}), Text(120)]
        # When the turn runs
        response = say(api, user, "s", "remember that my colour is teal")
        # Then the fact is stored, the tool result went back to the model, and the answer is whole
        assert response.status_code == 200, response.text
        assert response.json()["reply"] == words(120) and fake.requests == 2
        assert api.get("/memory", headers=as_user(user)).json() == {"facts": {"colour": "teal"}}
        assert fake.bodies[1]["messages"][-1]["content"][0]["type"] == "tool_result"
    reliability("Model faults", f"{provider}: a streamed tool call, then a streamed answer",
                "200; the fact stored; 2 requests, the second with the tool result")


def test_a_deadline_between_tool_rounds_stores_a_well_formed_truncated_turn(api, user, handler, monkeypatch, reliability):
    # Given a tool round that uses up the turn's deadline before the final answer starts
    monkeypatch.setattr(handler, "SYNC_MODEL_SECONDS", SHORT_DEADLINE_SECONDS)
    with SlowModelAPI(first_token_seconds=SHORT_DEADLINE_SECONDS - 1, tokens_per_second=600) as fake:
        attach(handler, monkeypatch, fake, "anthropic")
        fake.script = [ToolCall("remember", {"key": "colour", "value": "teal"}), Text(50)]
        # When the turn runs
        response = say(api, user, "s", "remember that my colour is teal")
        # Then the spent round is kept: 200, truncated, and the next turn of the session still works
        assert response.status_code == 200, response.text
        assert response.json()["reply"] == CUT_OFF_TEXT and response.json()["truncated"] is True
    with SlowModelAPI(**FAST) as fake:
        attach(handler, monkeypatch, fake, "anthropic")
        fake.script = [Text(5)]
        assert say(api, user, "s", "and now?").json()["context"]["turns"] == 1
    reliability("Model faults", "anthropic: the deadline comes between a tool round and the final answer",
                "200 `truncated` with a cut-off note; the turn is stored well formed and the next turn sees it")
