"""What the adapters share: a framework's messages kept as the library's turns, without loss.

A turn is stored as Messages API messages (memory.turns.Turn), so that the library's window keeps
tool calls with their results and any reader (the HTTP history, another adapter) can read it. Each
adapter's codec maps its framework's messages to content blocks and back; where that plain form
cannot give back the framework's messages exactly (ids, metadata, blocks the Messages API has no
place for), the message also keeps them, as the framework serialises them, under the framework's
name. Reading prefers those; another framework's reader uses the plain blocks.

Frameworks add messages one or a few at a time. They are held here until they make a whole turn
(the user's message, the tool loop, the answer: memory.window.well_formed), then stored as one item
through ResilientMemory.append: best effort, a failed write logged as `memory_write_suppressed`."""

import itertools
import logging
import time
from typing import Any, Generic, Protocol, Sequence, TypeVar

from ..errors import SessionNotFound
from ..resilient import ResilientMemory
from ..turns import Turn, Usage, iso, new_turn_id
from ..window import well_formed

DEFAULT_MAX_TURNS = 20
log = logging.getLogger("durable_memory.adapters")

N = TypeVar("N")  # one message (or item) in the framework's own shape


class Codec(Protocol[N]):
    key: str  # the framework's name: where a message keeps its originals

    def role(self, native: N) -> str: ...  # "user" or "assistant"

    def blocks(self, native: N) -> list[dict]: ...  # Messages API content blocks, maybe none

    def natives(self, role: str, blocks: list[dict]) -> list[N]: ...  # the plain inverse of blocks

    def dump(self, native: N) -> Any: ...  # JSON-ready

    def load(self, dumped: Any) -> N: ...

    def usage(self, natives: list[N]) -> Usage: ...


def encode(codec: Codec[N], natives: Sequence[N]) -> list[dict]:
    """Messages API messages: consecutive natives of one role make one message."""
    messages = []
    for role, group in itertools.groupby(natives, key=codec.role):
        group = list(group)
        content = [block for native in group for block in codec.blocks(native)]
        message = {"role": role, "content": content}
        if codec.natives(role, content) != group:
            message[codec.key] = [codec.dump(native) for native in group]
        messages.append(message)
    return messages


def decode(codec: Codec[N], messages: list[dict]) -> list[N]:
    natives = []
    for message in messages:
        if codec.key in message:
            natives += [codec.load(dumped) for dumped in message[codec.key]]
        else:
            content = message["content"]
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            natives += codec.natives(message["role"], blocks)
    return natives


def starts_turn(codec: Codec[N], native: N) -> bool:
    """A user message that answers no tool call: the start of a turn."""
    return codec.role(native) == "user" and not any(b.get("type") == "tool_result" for b in codec.blocks(native))


class SessionLog(Generic[N]):
    """One session of one user as a framework sees it: the window of stored turns, then the
    messages of the turn in progress (`pending`, kept in this object until the turn is whole)."""

    def __init__(self, memory: ResilientMemory, codec: Codec[N], *, user_id: str, session_id: str, max_turns: int):
        self.memory = memory
        self.codec = codec
        self.user_id = user_id
        self.session_id = session_id
        self.max_turns = max_turns
        self.pending: list[N] = []
        self.last_write: str | None = None  # "ok", "suppressed" (logged) or "erased", once a turn is stored

    def window(self, turns: int | None = None) -> list[N]:
        """The newest stored turns (at most `turns`, at most max_turns), oldest first, as the memory's
        window policy keeps them (whole turns only): one Query. Raises MemoryUnavailable."""
        limit = min(turns or self.max_turns, self.max_turns)
        stored = self.memory.conversations.load(self.user_id, self.session_id, limit=limit)
        return decode(self.codec, self.memory.window.fit(stored, None, fixed_tokens=0).messages)

    def add(self, natives: Sequence[N]) -> None:
        if not natives:
            return
        if self.pending and starts_turn(self.codec, natives[0]):
            # The previous turn never got its answer (the model failed, a run was cut short): like
            # the HTTP API, memory keeps answered turns only.
            log.warning("memory_turn_unanswered", extra={"session_id": self.session_id, "messages": len(self.pending)})
            self.pending = []
        pending = [*self.pending, *natives]
        messages = encode(self.codec, pending)
        if not well_formed(messages):
            self.pending = pending
            return
        self.pending = []
        now = time.time()
        self.last_write = self.memory.append(Turn(
            user_id=self.user_id, session_id=self.session_id, turn_id=new_turn_id(now), created_at=iso(now),
            messages=messages, usage=self.codec.usage(pending),
        ))

    def clear(self) -> None:
        """Erases every stored turn of the session (a fence: see ConversationStore.delete)."""
        self.pending = []
        try:
            self.memory.conversations.delete(self.user_id, self.session_id)
        except SessionNotFound:
            pass
