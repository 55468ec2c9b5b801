"""A canned model, deterministic and network-free, for running the whole memory path without an API key."""

import json
import re
import time
from collections.abc import Iterator

from agent.prompt import read_facts
from agent.providers.contract import ModelResponse
from agent.providers.messages_api import read_stream
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
    "what is my X?" from the facts and "what did I say first?" from the history (README: The
    offline model). It streams its answer as a real model does, a token (CHARS_PER_TOKEN characters)
    at a time, `tokens_per_second` fast (0: as fast as it can), so a deadline cuts it the same way."""

    def __init__(self, tokens_per_second: float = 0):
        self._pause = 1 / tokens_per_second if tokens_per_second else 0

    def complete(self, *, system, messages, tools, deadline, allow_tools=True, on_text=None) -> ModelResponse:
        answer = self._answer(system, messages, allow_tools)
        return read_stream(lambda: (self._events(answer), lambda: None), deadline=deadline, on_text=on_text)

    def _answer(self, system: str, messages: list[dict], allow_tools: bool) -> ModelResponse:
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
        return _offline_text(f"I see {counted(len(said), 'earlier turn')} and {counted(len(facts), 'fact')}; {answer}",
                             usage)

    def _events(self, answer: ModelResponse) -> Iterator[dict]:
        """`answer` as the Messages API streams one: text a token at a time, a tool call's input whole."""
        yield {"type": "message_start", "message": {"usage": {"input_tokens": answer.usage.input_tokens}}}
        for index, block in enumerate(answer.content):
            if block["type"] == "text":
                yield {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
                for start in range(0, len(block["text"]), CHARS_PER_TOKEN):
                    if self._pause:  # sleep(0) would still hand the GIL over at every token
                        time.sleep(self._pause)
                    yield {"type": "content_block_delta", "index": index,
                           "delta": {"type": "text_delta", "text": block["text"][start:start + CHARS_PER_TOKEN]}}
            else:
                yield {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}}
                yield {"type": "content_block_delta", "index": index,
                       "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}}
            yield {"type": "content_block_stop", "index": index}
        yield {"type": "message_delta", "delta": {"stop_reason": answer.stop_reason},
               "usage": {"output_tokens": answer.usage.output_tokens}}
        yield {"type": "message_stop"}


def counted(number: int, noun: str) -> str:
    """"1 fact", "2 facts"."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


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

