"""An offline OpenAI Agents SDK model (see examples/offline/__init__.py)."""

import json

from agents import Model, ModelResponse, Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

from . import decide


class OfflineModel(Model):
    def __init__(self, reply: str | None = None):
        self.calls = 0
        self.reply = reply  # if given, every answer (benchmarks)

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs,
                           tracing, **kwargs):
        self.calls += 1
        items = [{"role": "user", "content": input}] if isinstance(input, str) else input
        kind, value = ("text", self.reply) if self.reply else decide([said for item in items if (said := _said(item))])
        if kind == "tool":
            output = ResponseFunctionToolCall(type="function_call", id=f"fc_{self.calls}", call_id=f"call_{self.calls}",
                                              name="weather", arguments=json.dumps({"city": value}))
        else:
            output = ResponseOutputMessage(type="message", id=f"msg_{self.calls}", role="assistant", status="completed",
                                           content=[ResponseOutputText(type="output_text", text=value, annotations=[])])
        return ModelResponse(output=[output], usage=Usage(), response_id=None)

    def stream_response(self, *args, **kwargs):
        raise NotImplementedError


def _said(item: dict) -> tuple[str, str] | None:
    if item.get("type") == "function_call_output":
        return "tool_result", item["output"]
    if "role" not in item:
        return None
    content = item["content"]
    text = content if isinstance(content, str) else "".join(part.get("text", "") for part in content)
    return item["role"], text
