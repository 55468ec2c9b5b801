"""A 500-turn conversation with tool calls through the local stack, on the offline model: no prompt
is ever invalid for the Messages API or over the token budget."""

import dataclasses
import json
import random
import threading

import pytest

from agent.observability import logger
from agent.providers import OfflineModel
from client import as_user, http_client
from local.dynamodb import free_port
from local.server import Limits, make_server, turn_stream
from memory.resilient import ResilientMemory
from memory.window import WindowPolicy, estimate_tokens
from prompt_rules import api_problems

pytestmark = pytest.mark.slow

TURNS = 500  # 25 compactions: the summary is rebuilt on itself 25 times, the window slides 12 times its length
BUDGET = 16_000  # the smallest budget the configuration accepts: it binds often
MAX_TURNS, TRIGGER = 40, 20


class CheckedOfflineModel:
    """The offline model, behind a check of every prompt it is sent. Its tool_use ids are made
    unique, as the real API's are (the offline model numbers them by position, which repeats)."""

    def __init__(self):
        self.offline = OfflineModel()
        self.problems: list[str] = []
        self.prompts = 0
        self.largest = 0
        self.with_summary = 0
        self.calls = 0

    def complete(self, *, system, messages, tools, allow_tools=True, deadline=None, on_text=None):
        self.prompts += 1
        size = (estimate_tokens(system) + estimate_tokens(json.dumps(tools))
                + estimate_tokens(json.dumps(messages, ensure_ascii=False)))
        self.largest = max(self.largest, size)
        self.with_summary += "Summary of the earlier part" in system
        self.problems += api_problems(messages) + ([f"{size} tokens"] if size > BUDGET else [])
        response = self.offline.complete(system=system, messages=messages, tools=tools, allow_tools=allow_tools,
                                         deadline=deadline)
        for block in response.content:
            if block["type"] == "tool_use":
                self.calls += 1
                block["id"] = f"toolu_checked_{self.calls}"
        return response


def message(n: int, rng: random.Random) -> str:
    """A mix: small talk, facts remembered and forgotten (real tool calls), recalls, long pastes."""
    if n % 7 == 3:
        return f"remember that my fact {n % 50} is value {n}"
    if n % 11 == 5:
        return f"forget my fact {(n - 4) % 50}"
    if n % 13 == 0:
        return f"what is my fact {n % 50}?"
    return f"turn {n}: " + "lorem ipsum " * rng.choice((2, 20, 100, 400, 1000))


@pytest.fixture
def checked_stack(handler, monkeypatch):
    from compactor import handler as compactor

    model = CheckedOfflineModel()
    monkeypatch.setattr(handler, "model", lambda: model)
    monkeypatch.setattr(handler, "memory", ResilientMemory(
        conversations=handler.memory.conversations, facts=handler.memory.facts, logger=logger,
        max_turns=MAX_TURNS, window=WindowPolicy(strategy="compaction", max_prompt_tokens=BUDGET)))
    monkeypatch.setattr(compactor, "conversations", handler.memory.conversations)
    monkeypatch.setattr(compactor, "settings", dataclasses.replace(
        compactor.settings, memory_strategy="compaction", compaction_trigger_turns=TRIGGER,
        max_prompt_tokens=BUDGET))
    server = make_server(handler.lambda_handler, free_port(), turn_stream(compactor.lambda_handler),
                         limits=Limits(throttling=None))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with http_client(f"http://127.0.0.1:{server.server_address[1]}", timeout=30) as client:
        yield client, model
    server.shutdown()
    server.server_close()


# 500 turns one after another, each holding its transaction's items as long as DynamoDB does
# (local.strict_dynamodb, 20 ms).
def test_five_hundred_turns_never_send_an_invalid_or_over_budget_prompt(checked_stack, user):
    api, model = checked_stack
    rng = random.Random(4)
    # When a 500-turn conversation with tool calls runs through the local stack
    contexts = []
    for n in range(TURNS):
        response = api.post("/sessions/marathon/messages", json={"message": message(n, rng)}, headers=as_user(user))
        assert response.status_code == 200, response.text
        contexts.append(response.json()["context"])
    # Then no prompt broke the Messages API's rules or the budget
    assert model.problems == []
    assert model.largest <= BUDGET
    # And the run exercised what it claims to: tool calls, summaries, and a budget that bound
    assert model.calls > TURNS // 10 and model.with_summary > TURNS * 0.9
    assert min(c["turns"] for c in contexts[TRIGGER:]) < TRIGGER // 2 <= max(c["turns"] for c in contexts)
    assert api.get("/memory", headers=as_user(user)).json()["facts"]
    # And every turn is still stored
    seen, token = 0, None
    while True:
        page = api.get("/sessions/marathon/messages", params={"limit": 100} | ({"next_token": token} if token else {}),
                       headers=as_user(user)).json()
        seen += sum(1 for m in page["messages"] if m["role"] == "user" and isinstance(m["content"], str))
        if not (token := page["next_token"]):
            break
    assert seen == TURNS
