"""Strands Agents: a session manager an `Agent` takes (`pip install "durable-memory[strands]"`).

    agent = Agent(model=..., session_manager=DurableSessionManager(memory, user_id=..., session_id=...))

A new Agent starts from the session's window (the last `max_turns` whole turns, never a tool use
without its result); each turn it completes is stored as one item. It persists the conversation, not
`agent.state`. One agent per session manager."""

import base64
import copy
import json
from typing import Any

try:
    from strands.session.session_manager import SessionManager
    from strands.types.content import Message
    from strands.types.exceptions import SessionException
    from strands.types.session import decode_bytes_values, encode_bytes_values
except ImportError as error:  # pragma: no cover
    raise ImportError('the Strands adapter needs its extra: pip install "durable-memory[strands]"') from error

from ..resilient import ResilientMemory
from ..turns import Usage
from ._session import DEFAULT_MAX_TURNS, SessionLog


class StrandsCodec:
    """Bedrock Converse content blocks <-> Messages API content blocks."""

    key = "strands"

    def role(self, message: Message) -> str:
        return message["role"]

    def blocks(self, message: Message) -> list[dict]:
        return [block for content in message["content"] for block in _to_blocks(content)]

    def natives(self, role: str, blocks: list[dict]) -> list[Message]:
        return [{"role": role, "content": [content for block in blocks for content in _from_block(block)]}]

    def dump(self, message: Message) -> Any:
        return encode_bytes_values(message)

    def load(self, dumped: Any) -> Message:
        return decode_bytes_values(dumped)

    def usage(self, messages: list[Message]) -> Usage:
        usages = [m.get("metadata", {}).get("usage", {}) for m in messages]
        return Usage(sum(u.get("inputTokens", 0) for u in usages), sum(u.get("outputTokens", 0) for u in usages))


def _to_blocks(content: dict) -> list[dict]:
    if "text" in content:
        return [{"type": "text", "text": content["text"]}]
    if "toolUse" in content:
        use = content["toolUse"]
        return [{"type": "tool_use", "id": use["toolUseId"], "name": use["name"], "input": use["input"]}]
    if "toolResult" in content:
        result = content["toolResult"]
        return [{"type": "tool_result", "tool_use_id": result["toolUseId"], "is_error": result.get("status") == "error",
                 "content": [block for inner in result["content"] for block in _to_blocks(inner)]}]
    if "json" in content:  # inside a tool result
        return [{"type": "text", "text": json.dumps(content["json"], ensure_ascii=False)}]
    if "image" in content and "bytes" in content["image"]["source"]:
        image = content["image"]
        return [{"type": "image", "source": {"type": "base64", "media_type": f"image/{image['format']}",
                                             "data": base64.b64encode(image["source"]["bytes"]).decode()}}]
    if "reasoningText" in content.get("reasoningContent", {}):
        reasoning = content["reasoningContent"]["reasoningText"]
        return [{"type": "thinking", "thinking": reasoning["text"], "signature": reasoning.get("signature", "")}]
    return []  # no Messages API counterpart: the message keeps it under "strands"


def _from_block(block: dict) -> list[dict]:
    kind = block.get("type")
    if kind == "text":
        return [{"text": block["text"]}]
    if kind == "tool_use":
        return [{"toolUse": {"toolUseId": block["id"], "name": block["name"], "input": block["input"]}}]
    if kind == "tool_result":
        inner = block.get("content", [])
        inner = [{"type": "text", "text": inner}] if isinstance(inner, str) else inner
        return [{"toolResult": {"toolUseId": block["tool_use_id"],
                                "status": "error" if block.get("is_error") else "success",
                                "content": [content for b in inner for content in _from_block(b)]}}]
    if kind == "image" and block["source"].get("type") == "base64":
        return [{"image": {"format": block["source"]["media_type"].removeprefix("image/"),
                           "source": {"bytes": base64.b64decode(block["source"]["data"])}}}]
    if kind == "thinking":
        reasoning = {"text": block["thinking"], **({"signature": block["signature"]} if block.get("signature") else {})}
        return [{"reasoningContent": {"reasoningText": reasoning}}]
    return []


class DurableSessionManager(SessionManager):
    """Restores an agent's conversation from the session's window and stores each turn it
    completes as one item; concurrent agents on one session each store their own turns."""

    def __init__(self, memory: ResilientMemory, *, user_id: str, session_id: str, max_turns: int = DEFAULT_MAX_TURNS):
        self.session_id = session_id
        self.log = SessionLog(memory, StrandsCodec(), user_id=user_id, session_id=session_id, max_turns=max_turns)
        self._agent_id: str | None = None

    def initialize(self, agent, **kwargs: Any) -> None:
        """Raises MemoryUnavailable when the window cannot be read: no turn without its memory."""
        if self._agent_id not in (None, agent.agent_id):
            raise SessionException("one agent per DurableSessionManager")
        self._agent_id = agent.agent_id
        window = self.log.window()
        if window:
            agent.messages = window

    def append_message(self, message: Message, agent, **kwargs: Any) -> None:
        # A copy: the agent may edit its own list later (conversation managers trim tool results).
        self.log.add([copy.deepcopy(message)])

    def redact_latest_message(self, redact_message: Message, agent, **kwargs: Any) -> None:
        if not self.log.pending:
            raise SessionException("only a message of the turn in progress can be redacted: stored turns are final")
        self.log.pending[-1] = copy.deepcopy(redact_message)

    def sync_agent(self, agent, **kwargs: Any) -> None:
        """Nothing: the conversation is stored turn by turn, and agent.state is not kept."""
