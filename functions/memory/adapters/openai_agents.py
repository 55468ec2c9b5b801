"""OpenAI Agents SDK: a `Session` (`pip install "durable-memory[openai-agents]"`).

    await Runner.run(agent, "hi", session=DurableSession(memory, user_id=..., session_id=...))

`get_items()` is the session's window (the last `max_turns` whole turns), never the whole session;
`get_items(limit)` its newest `limit` items, less any tool output whose call falls outside them.
`add_items` stores a turn as one item once it is whole (the input, the model's items and tool
outputs, the final message). `pop_item` takes back items of the turn in progress (what the runner's
retries do); a stored turn is final, so popping one raises NotImplementedError. Function calls and
their outputs map to tool_use / tool_result."""

import asyncio
import json
from typing import Any

try:
    from agents.items import TResponseInputItem
    from agents.memory import SessionSettings
except ImportError as error:  # pragma: no cover
    raise ImportError('the OpenAI Agents adapter needs its extra: pip install "durable-memory[openai-agents]"') from error

from ..resilient import ResilientMemory
from ..turns import Usage
from ._session import DEFAULT_MAX_TURNS, SessionLog

# Items that answer a call the model made; the rest of what has no role is the model's.
ANSWERS = ("mcp_approval_response",)


def _answers(item: dict) -> bool:
    return "role" not in item and (item.get("type", "").endswith("_output") or item.get("type") in ANSWERS)


class OpenAICodec:
    key = "openai"

    def role(self, item: dict) -> str:
        if "role" in item:
            return "assistant" if item["role"] == "assistant" else "user"
        return "user" if _answers(item) else "assistant"

    def blocks(self, item: dict) -> list[dict]:
        if "role" in item:
            return _text_blocks(item["content"])
        if item.get("type") == "function_call":
            return [{"type": "tool_use", "id": item["call_id"], "name": item["name"],
                     "input": _arguments(item["arguments"])}]
        if item.get("type") == "function_call_output":
            return [{"type": "tool_result", "tool_use_id": item["call_id"], "content": _text_blocks(item["output"])}]
        return []  # reasoning, hosted tools...: the message keeps them under "openai"

    def natives(self, role: str, blocks: list[dict]) -> list[dict]:
        items = []
        for block in blocks:
            if block["type"] == "text":
                items.append({"role": role, "content": block["text"]})
            elif block["type"] == "tool_use":
                items.append({"type": "function_call", "call_id": block["id"], "name": block["name"],
                              "arguments": json.dumps(block["input"], ensure_ascii=False)})
            elif block["type"] == "tool_result":
                content = block.get("content", "")
                output = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
                items.append({"type": "function_call_output", "call_id": block["tool_use_id"], "output": output})
        return items

    def dump(self, item: dict) -> Any:
        return item

    def load(self, dumped: Any) -> dict:
        return dumped

    def usage(self, items: list[dict]) -> Usage:
        return Usage()  # items carry no token counts


def _text_blocks(content: str | list) -> list[dict]:
    parts = [{"text": content}] if isinstance(content, str) else content
    return [{"type": "text", "text": part["text"]} for part in parts
            if part.get("type", "input_text") in ("input_text", "output_text", "text") and part.get("text")]


def _arguments(arguments: str) -> dict:
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class DurableSession:
    """The SDK's Session protocol on durable memory. DynamoDB calls run in a worker thread."""

    def __init__(self, memory: ResilientMemory, *, user_id: str, session_id: str, max_turns: int = DEFAULT_MAX_TURNS,
                 session_settings: SessionSettings | None = None):
        self.session_id = session_id
        self.session_settings = session_settings
        self.log = SessionLog(memory, OpenAICodec(), user_id=user_id, session_id=session_id, max_turns=max_turns)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """Raises MemoryUnavailable when the window cannot be read."""
        return await asyncio.to_thread(self._items, limit)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        await asyncio.to_thread(self.log.add, list(items))

    async def pop_item(self) -> TResponseInputItem | None:
        if self.log.pending:
            return self.log.pending.pop()
        if await self.get_items(limit=1):
            raise NotImplementedError("a stored turn is final: clear_session() erases the session")
        return None

    async def clear_session(self) -> None:
        await asyncio.to_thread(self.log.clear)

    def _items(self, limit: int | None) -> list[dict]:
        pending = list(self.log.pending)
        if limit is None:
            return self.log.window() + pending
        wanted = max(limit - len(pending), 0)
        # Every stored turn holds at least two items (the input and the answer).
        items = (self.log.window(turns=-(-wanted // 2)) if wanted else []) + pending
        items = items[max(len(items) - limit, 0):]
        while items and _answers(items[0]):
            items.pop(0)
        return items
