"""The memory the agent sees: reads fail fast, best-effort writes never fail the turn."""

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .conversation import ConversationStore
from .long_term import Fact, FactsLimitReached, FactStore, InvalidFact
from .turns import Turn
from .window import Summary, WindowPolicy

# Shared by every request of the process: the session window and the facts load side by side.
_READ_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="memory-read")


class WriteDrillFault(Exception):
    """Raised on purpose while the alarm drill is on, to prove the alarm path end to end."""


@dataclass(frozen=True)
class MemoryContext:
    turns: list[Turn]
    facts: list[Fact]  # most recently updated first
    summary: Summary | None = None


class ResilientMemory:
    def __init__(
        self,
        *,
        conversations: ConversationStore,
        facts: FactStore,
        logger,
        max_turns: int,
        window: WindowPolicy = WindowPolicy(),
        write_drill_until: float | None = None,
        clock=time.time,
    ):
        self.conversations = conversations
        self.facts = facts
        self._logger = logger
        self._max_turns = max_turns
        self.window = window
        self._write_drill_until = write_drill_until
        self._clock = clock

    def load(self, user_id: str, session_id: str) -> MemoryContext:
        """Raises MemoryUnavailable if either read fails: the turn is not answered without memory."""
        # The window is read on this thread while the pool reads the facts: the same two parallel
        # round trips with one thread hand-off instead of two (benchmarks/overhead.py).
        facts = _READ_POOL.submit(self.facts.all, user_id)
        if self.window.uses_summary:
            summary, turns = self.conversations.load_window(user_id, session_id, limit=self._max_turns)
        else:
            summary, turns = None, self.conversations.load(user_id, session_id, limit=self._max_turns)
        return MemoryContext(turns=turns, facts=facts.result(), summary=summary)

    def append(self, turn: Turn, also: tuple[dict, ...] = ()) -> str:
        """Stores the turn (and `also`, atomically); returns "ok", or "suppressed" after logging why it could not."""
        return self._best_effort(turn.session_id, self.conversations.append, turn, also)

    def remember(self, user_id: str, session_id: str, key: str, value: str) -> str:
        """Raises InvalidFact or FactsLimitReached: a refusal is an answer for the model, not a failed write."""
        return self._best_effort(session_id, self.facts.put, user_id, key, value)

    def forget(self, user_id: str, session_id: str, key: str) -> str:
        return self._best_effort(session_id, self.facts.delete, user_id, key)

    def _best_effort(self, session_id: str, write, *args) -> str:
        try:
            if self._write_drill_until and self._clock() < self._write_drill_until:
                raise WriteDrillFault("alarm drill in progress")
            write(*args)
        except (InvalidFact, FactsLimitReached):
            raise
        except Exception as error:  # any failure of a best-effort write is suppressed, visibly
            cause = error.__cause__ or error
            self._logger.warning(
                "memory_write_suppressed",
                extra={"session_id": session_id, "error": type(cause).__name__},
            )
            return "suppressed"
        return "ok"
