"""The memory the agent sees: reads fail fast, best-effort writes never fail the turn, and every
write is fenced against erasure (memory.registry)."""

import time
from collections.abc import Callable
from dataclasses import dataclass

from .conversation import ConversationStore
from .dynamo import POOL
from .errors import Erased
from .long_term import Fact, FactsLimitReached, FactStore, InvalidFact
from .outcomes import WRITE_SUPPRESSED_EVENT, WriteOutcome
from .registry import Fence
from .turns import Turn
from .window import Summary, WindowPolicy


class WriteDrillFault(Exception):
    """Raised on purpose while the alarm drill is on, to prove the alarm path end to end."""


@dataclass(frozen=True)
class MemoryContext:
    turns: list[Turn]
    facts: list[Fact]  # most recently updated first
    fence: Fence  # what every write of this turn is stamped with and confirmed against
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

    @property
    def registry(self):
        return self.conversations.registry

    def load(self, user_id: str, session_id: str) -> MemoryContext:
        """The session's fence (registering a new session), window and the user's facts, read side
        by side. Raises MemoryUnavailable if a read fails (the turn is not answered without memory),
        Erased if DELETE /me began while the session registered."""
        fence = POOL.submit(self.registry.open, user_id, session_id)
        facts = POOL.submit(self.facts.all, user_id)
        summary, turns = self.conversations.window(
            user_id, session_id, limit=self._max_turns, summary=self.window.uses_summary,
            fence=fence.result,
        )
        live = fence.result()
        return MemoryContext(turns=turns, facts=_current(facts.result(), live.mark), fence=live, summary=summary)

    def facts_of(self, user_id: str) -> list[Fact]:
        """The user's facts (GET /memory): those of the user's current erasure mark."""
        facts = POOL.submit(self.facts.all, user_id)
        mark = self.registry.mark(user_id)
        return _current(facts.result(), mark)

    def put_fact(self, user_id: str, key: str, value: str) -> None:
        """PUT /memory: not best effort, the caller asked for this write. Raises InvalidFact,
        FactsLimitReached, MemoryUnavailable, or Erased (DELETE /me ran meanwhile: nothing stored)."""
        mark = self.registry.mark(user_id)
        self.facts.put(user_id, key, value, mark=mark)
        self._confirm_fact(user_id, key, mark)

    def erase_user(self, user_id: str) -> None:
        """DELETE /me: moves the user's erasure mark first (every writer that read the old one now
        fails its confirm), then erases every session and fact of an older mark."""
        mark = self.registry.advance(user_id)
        self.conversations.erase_user(user_id, mark)
        self.facts.erase(user_id, before_mark=mark)

    def append(self, turn: Turn, fence: Fence | None = None, also: tuple[dict, ...] = ()) -> WriteOutcome:
        """Stores the turn (and `also`, atomically); returns "ok", or "suppressed" after logging why
        it could not. Raises Erased: a turn of an erased session is not a failed write."""
        return self._best_effort(turn.session_id, lambda: self.conversations.append(turn, fence, also))

    def remember(self, user_id: str, session_id: str, key: str, value: str, fence: Fence | None = None) -> WriteOutcome:
        """Stores a fact for a turn that read `fence` (None: read it now). Raises InvalidFact or
        FactsLimitReached (a refusal is an answer for the model, not a failed write), Erased when
        the session or the user was erased since: no tool runs for it then."""
        def write() -> None:
            mark = self._still(user_id, session_id, fence).mark
            self.facts.put(user_id, key, value, mark=mark)
            self._confirm_fact(user_id, key, mark)

        return self._best_effort(session_id, write)

    def forget(self, user_id: str, session_id: str, key: str, fence: Fence | None = None) -> WriteOutcome:
        def write() -> None:
            self._still(user_id, session_id, fence)
            self.facts.delete(user_id, key)

        return self._best_effort(session_id, write)

    def _still(self, user_id: str, session_id: str, fence: Fence | None) -> Fence:
        if fence is None:
            return self.registry.open(user_id, session_id)
        self.registry.check(user_id, session_id, fence)
        return fence

    def _confirm_fact(self, user_id: str, key: str, mark: int) -> None:
        """After a fact write: if DELETE /me moved the mark meanwhile, its sweep may have run before
        the write landed, so this writer deletes what it wrote and raises Erased."""
        if self.registry.mark(user_id) != mark:
            self.facts.discard(user_id, key, mark=mark)
            raise Erased()

    def _best_effort(self, session_id: str, write: Callable[[], object]) -> WriteOutcome:
        try:
            if self._write_drill_until and self._clock() < self._write_drill_until:
                raise WriteDrillFault("alarm drill in progress")
            write()
        except (InvalidFact, FactsLimitReached, Erased):
            raise
        except Exception as error:  # any failure of a best-effort write is suppressed, visibly
            cause = error.__cause__ or error
            self._logger.warning(
                WRITE_SUPPRESSED_EVENT,
                extra={"session_id": session_id, "error": type(cause).__name__},
            )
            return "suppressed"
        return "ok"


def _current(facts: list[Fact], mark: int) -> list[Fact]:
    return [fact for fact in facts if fact.mark == mark]
