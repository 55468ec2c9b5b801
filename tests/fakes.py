"""Test doubles shared by unit and integration tests."""

import contextlib
import io
import json

from aws_lambda_powertools import Logger

from agent.providers import ModelResponse
from memory.turns import Usage


class ScriptedModel:
    """Returns the given responses in order and records every call it receives."""

    def __init__(self, *responses: ModelResponse):
        self.responses = list(responses)
        self.calls: list[dict] = []

    def complete(self, *, system, messages, tools, allow_tools=True, deadline=None) -> ModelResponse:
        self.calls.append({"system": system, "messages": messages, "allow_tools": allow_tools, "deadline": deadline})
        return self.responses.pop(0)


def text(reply: str, input_tokens: int = 10, output_tokens: int = 5) -> ModelResponse:
    return ModelResponse([{"type": "text", "text": reply}], "end_turn", Usage(input_tokens, output_tokens))


def tool_use(name: str, tool_input: dict, call_id: str = "toolu_1") -> ModelResponse:
    return ModelResponse(
        [{"type": "tool_use", "id": call_id, "name": name, "input": tool_input}], "tool_use", Usage(10, 5)
    )


@contextlib.contextmanager
def captured_logs(logger: Logger):
    """The JSON lines the real logger writes, caught in memory while the block runs."""
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    finally:
        logger.registered_handler.setStream(previous)
