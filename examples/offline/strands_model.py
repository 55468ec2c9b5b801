"""An offline Strands model (see examples/offline/__init__.py)."""

import json

from strands.models import Model

from . import decide


class OfflineModel(Model):
    def __init__(self, reply: str | None = None):
        self.calls = 0
        self.reply = reply  # if given, every answer (benchmarks)

    def update_config(self, **config):
        pass

    def get_config(self):
        return {}

    def structured_output(self, output_model, prompt, system_prompt=None, **kwargs):
        raise NotImplementedError

    async def stream(self, messages, tool_specs=None, system_prompt=None, **kwargs):
        self.calls += 1
        kind, value = ("text", self.reply) if self.reply else decide(
            [said for message in messages for block in message["content"] if (said := _said(message["role"], block))])
        yield {"messageStart": {"role": "assistant"}}
        if kind == "tool":
            start = {"toolUse": {"toolUseId": f"tooluse-{self.calls}", "name": "weather"}}
            yield {"contentBlockStart": {"start": start}}
            yield {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps({"city": value})}}}}
        else:
            yield {"contentBlockStart": {"start": {}}}
            yield {"contentBlockDelta": {"delta": {"text": value}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "tool_use" if kind == "tool" else "end_turn"}}
        yield {"metadata": {"usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
                            "metrics": {"latencyMs": 1}}}


def _said(role: str, block: dict) -> tuple[str, str] | None:
    if "toolResult" in block:
        return "tool_result", " ".join(c.get("text", "") for c in block["toolResult"]["content"])
    return (role, block["text"]) if "text" in block else None
