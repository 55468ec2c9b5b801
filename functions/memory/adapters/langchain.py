"""LangChain: a chat message history (`pip install "durable-memory[langchain]"`).

    RunnableWithMessageHistory(chain, lambda session_id: DurableChatMessageHistory(
        memory, user_id=..., session_id=session_id), ...)

`messages` is the session's window (the last `max_turns` whole turns), never the whole session;
`add_messages` stores a turn as one item once it is whole (the human message, any tool calls with
their tool messages, the answer). AI tool calls and tool messages map to tool_use / tool_result."""

from typing import Any, Sequence

try:
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage, message_to_dict, messages_from_dict
except ImportError as error:  # pragma: no cover
    raise ImportError('the LangChain adapter needs its extra: pip install "durable-memory[langchain]"') from error

from ..resilient import ResilientMemory
from ..turns import Usage
from ._session import DEFAULT_MAX_TURNS, SessionLog


class LangChainCodec:
    key = "langchain"

    def role(self, message: BaseMessage) -> str:
        return "assistant" if isinstance(message, AIMessage) else "user"

    def blocks(self, message: BaseMessage) -> list[dict]:
        if isinstance(message, ToolMessage):
            return [{"type": "tool_result", "tool_use_id": message.tool_call_id, "is_error": message.status == "error",
                     "content": _text_blocks(message.content)}]
        blocks = _text_blocks(message.content)
        if isinstance(message, AIMessage):
            blocks += [{"type": "tool_use", "id": call["id"], "name": call["name"], "input": call["args"]}
                       for call in message.tool_calls]
        return blocks

    def natives(self, role: str, blocks: list[dict]) -> list[BaseMessage]:
        texts = [block["text"] for block in blocks if block.get("type") == "text"]
        if role == "assistant":
            calls = [{"id": b["id"], "name": b["name"], "args": b["input"]} for b in blocks if b.get("type") == "tool_use"]
            return [AIMessage(content="".join(texts), tool_calls=calls)]
        messages: list[BaseMessage] = [
            ToolMessage(content=_text(block.get("content", "")), tool_call_id=block["tool_use_id"],
                        status="error" if block.get("is_error") else "success")
            for block in blocks if block.get("type") == "tool_result"
        ]
        return messages + ([HumanMessage(content="".join(texts))] if texts else [])

    def dump(self, message: BaseMessage) -> Any:
        return message_to_dict(message)

    def load(self, dumped: Any) -> BaseMessage:
        return messages_from_dict([dumped])[0]

    def usage(self, messages: list[BaseMessage]) -> Usage:
        usages = [m.usage_metadata or {} for m in messages if isinstance(m, AIMessage)]
        return Usage(sum(u.get("input_tokens", 0) for u in usages), sum(u.get("output_tokens", 0) for u in usages))


def _text_blocks(content: str | list) -> list[dict]:
    parts = [content] if isinstance(content, str) else content
    texts = [part if isinstance(part, str) else part.get("text") if part.get("type") == "text" else None for part in parts]
    return [{"type": "text", "text": text} for text in texts if text]


def _text(content: str | list) -> str:
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


class DurableChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat history on durable memory: a window to read, whole turns to store."""

    def __init__(self, memory: ResilientMemory, *, user_id: str, session_id: str, max_turns: int = DEFAULT_MAX_TURNS):
        self.session_id = session_id
        self.log = SessionLog(memory, LangChainCodec(), user_id=user_id, session_id=session_id, max_turns=max_turns)

    @property
    def messages(self) -> list[BaseMessage]:
        """The window, then the messages of a turn still in progress. Raises MemoryUnavailable."""
        return self.log.window() + self.log.pending

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        self.log.add(list(messages))

    def clear(self) -> None:
        self.log.clear()
