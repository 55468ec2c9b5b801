"""An offline LangChain chat model (see examples/offline/__init__.py)."""

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from . import decide


class OfflineChatModel(BaseChatModel):
    reply: str | None = None  # if given, every answer (benchmarks)

    @property
    def _llm_type(self) -> str:
        return "offline"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        kind, value = ("text", self.reply) if self.reply else decide([_said(message) for message in messages])
        if kind == "tool":
            reply = AIMessage("", tool_calls=[{"id": f"call-{len(messages)}", "name": "weather", "args": {"city": value}}])
        else:
            reply = AIMessage(value)
        return ChatResult(generations=[ChatGeneration(message=reply)])


def _said(message) -> tuple[str, str]:
    kind = {"human": "user", "ai": "assistant"}.get(message.type, "tool_result" if isinstance(message, ToolMessage) else "other")
    return kind, message.text
