"""A canned model, deterministic and network-free, for running the whole memory path without an API key."""

import json
import re

from agent.prompt import read_facts
from agent.providers.contract import ModelResponse
from memory.turns import Usage
from memory.window import CHARS_PER_TOKEN

REMEMBER = re.compile(r"remember (?:that )?my (?P<key>[\w ]+?) is (?P<value>.+?)[.!]?$", re.IGNORECASE)
FORGET = re.compile(r"forget my (?P<key>[\w ]+?)[.!]?$", re.IGNORECASE)
RECALL = re.compile(r"what(?:'s| is) my (?P<key>[\w ]+?)\??$", re.IGNORECASE)
FIRST = re.compile(r"what did i (?:say|tell you) first\??$", re.IGNORECASE)


def fact_key(phrase: str) -> str:
    return re.sub(r"\W+", "_", phrase.strip().lower())


class OfflineModel:
    """Deterministic and network-free, for running the whole memory path without an API key.

    It reads what the prompt holds (earlier turns in the messages, facts in the system prompt's
    facts block), turns "remember (that) my X is Y" / "forget my X" into real tool calls, and answers
    "what is my X?" from the facts and "what did I say first?" from the history."""

    def complete(self, *, system, messages, tools, deadline, allow_tools=True, on_text=None) -> ModelResponse:
        last = messages[-1]["content"]
        usage = Usage(
            input_tokens=(len(system) + len(json.dumps(messages))) // CHARS_PER_TOKEN,
            output_tokens=0,
        )
        if isinstance(last, list) and last[0].get("type") == "tool_result":
            return _offline_text("done: " + "; ".join(block["content"] for block in last), usage)
        facts = read_facts(system)
        call = _offline_tool_call(last.strip(), len(messages)) if allow_tools else None
        if call:
            return ModelResponse(content=[call], stop_reason="tool_use", usage=usage)
        said = [m["content"] for m in messages[:-1] if m["role"] == "user" and isinstance(m["content"], str)]
        if recall := RECALL.match(last.strip()):
            answer = f"your {recall['key']} is {facts.get(fact_key(recall['key']), 'something I do not know yet')}."
        elif FIRST.match(last.strip()):
            answer = f"you first said: {said[0][:200]}" if said else "this is the first thing you said here."
        else:
            answer = f"you said: {last[:200]}"
        earlier = len(said)
        return _offline_text(f"I see {earlier} earlier turns and {len(facts)} facts; {answer}", usage)


def _offline_tool_call(text: str, position: int) -> dict | None:
    if match := REMEMBER.match(text):
        name, tool_input = "remember", {"key": fact_key(match["key"]), "value": match["value"]}
    elif match := FORGET.match(text):
        name, tool_input = "forget", {"key": fact_key(match["key"])}
    else:
        return None
    return {"type": "tool_use", "id": f"toolu_offline_{position}", "name": name, "input": tool_input}


def _offline_text(text: str, usage: Usage) -> ModelResponse:
    text = f"[offline model] {text}"
    return ModelResponse(
        content=[{"type": "text", "text": text}],
        stop_reason="end_turn",
        usage=Usage(usage.input_tokens, len(text) // CHARS_PER_TOKEN),
    )

