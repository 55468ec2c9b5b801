"""What every model provider is: complete(system, messages, tools, deadline) -> ModelResponse, and
the failures it may raise. Plain types: the providers, the turn and the compactor all depend on it."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from memory.turns import Usage

# The longest answer a model call may write (MODEL_MAX_OUTPUT_TOKENS): an asynchronous turn has
# minutes for it (agent.budget); a synchronous one is cut by its deadline first, never by this.
DEFAULT_MAX_OUTPUT_TOKENS = 8192
# stop_reason of an answer cut short: by the turn's deadline, or by a stream that failed after text.
CUT_BY_DEADLINE, CUT_BY_STREAM_FAILURE = "deadline", "stream_failure"


@dataclass(frozen=True)
class ModelResponse:
    content: list[dict]
    stop_reason: str
    usage: Usage
    truncated: bool = False


class ModelError(Exception):
    """The model failed after its retries. `transient` failures are worth a retry by the client."""

    def __init__(self, message: str, *, transient: bool, retry_after: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class DeadlineReached(ModelError):
    """The turn's deadline came before the model wrote any text."""

    def __init__(self):
        super().__init__("the turn's model budget is spent", transient=True)


class AnswerStopped(ModelError):
    """`on_text` stopped the answer: nobody will read it (its turn was erased). Never retried."""

    def __init__(self):
        super().__init__("the answer was stopped by its reader", transient=False)



class Model(Protocol):
    def complete(
        self,
        *,
        system: str,
        messages: list[dict],
        tools: list[dict],
        deadline: float,
        allow_tools: bool = True,
        on_text: Callable[[str], None] | None = None,
    ) -> ModelResponse:
        """`tools` may be empty (then no tool may be called); `allow_tools` False switches given tools
        off for this answer. `deadline` is a time.monotonic() value: the answer ends there.
        `on_text(delta)` sees the answer's text as it is written."""
        ...
