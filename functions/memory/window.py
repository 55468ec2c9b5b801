"""Context windows: which stored turns, and which summary, go into the next prompt.

The store keeps every turn; only the prompt is cut, here, at read time. Every policy cuts between
whole turns and keeps only the newest run of well-formed ones, so a prompt never starts with an
assistant message or an orphaned tool_result and never splits a tool_use from its tool_result."""

import json
from dataclasses import dataclass

from .inert import inert_json
from .turns import Turn

STRATEGIES = ("last_k", "token_budget", "compaction")
# The default costs nothing more than last_k (the same one Query) and is the only one of the two
# that cannot overflow the context window; compaction also needs the stream and the compactor.
DEFAULT_STRATEGY = "token_budget"
# Claude's context window. Half of it for the prompt leaves room for the answer, for the tool loop
# and for the error of a chars/4 estimate (text that takes more tokens per character eats into it).
MODEL_CONTEXT_TOKENS = 200_000
DEFAULT_MAX_PROMPT_TOKENS = MODEL_CONTEXT_TOKENS // 2
CHARS_PER_TOKEN = 4
SUMMARY_HEADING = "Summary of the earlier part of this conversation (those turns are not shown):"
SUMMARY_OPEN, SUMMARY_CLOSE = "<conversation_summary>", "</conversation_summary>"


def estimate_tokens(text: str) -> int:
    """A cheap upper-leaning estimate (ceil of chars/4): no tokenizer, no API call."""
    return -(-len(text) // CHARS_PER_TOKEN)


def message_tokens(message: dict) -> int:
    # +1 for the separator between messages when the list is serialised.
    return estimate_tokens(json.dumps(message, ensure_ascii=False)) + 1


def turn_tokens(turn: Turn) -> int:
    """The turn's share of a prompt. The model's own output is counted by the usage stored with the
    turn, or by its size if that is larger (usage of 0 from an old or scripted turn)."""
    ours = sum(message_tokens(m) for m in turn.messages if m.get("role") != "assistant")
    models = sum(message_tokens(m) for m in turn.messages if m.get("role") == "assistant")
    return ours + max(models, turn.usage.output_tokens)


@dataclass(frozen=True)
class Summary:
    """A stored summary of the oldest turns of a session, up to and including `covered_through`."""

    text: str
    covered_through: str  # turn id of the newest turn it covers
    covered_turns: int
    tokens: int


def summary_prompt(summary: Summary) -> str:
    """The summary as it is appended to the system prompt: roles and tool blocks stay untouched. The
    model wrote it from what users said, so it is data, one inert JSON string in its block
    (memory.inert): nothing in it can close the block or open another, and nothing reads it back."""
    return f"{SUMMARY_HEADING}\n{SUMMARY_OPEN}\n{inert_json(summary.text)}\n{SUMMARY_CLOSE}"


def summary_tokens(summary: Summary) -> int:
    return estimate_tokens(summary_prompt(summary)) + 1  # +1: the blank line that joins it


def well_formed(messages: list[dict]) -> bool:
    """A turn the Messages API accepts inside a prompt: it opens with the user's own words, roles
    alternate, each tool_result answers exactly the tool_use blocks of the message before it, and
    it ends with an assistant message that calls no tool."""
    if not messages or len(messages) % 2:
        return False
    pending: set = set()  # tool_use ids the next user message must answer
    for index, message in enumerate(messages):
        role = "assistant" if index % 2 else "user"
        content = message.get("content")
        if message.get("role") != role or not content or not isinstance(content, (str, list)):
            return False
        blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
        if role == "user":
            if {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"} != pending:
                return False
            pending = set()
        else:
            pending = {b.get("id") for b in blocks if b.get("type") == "tool_use"}
    return not pending


def tool_safe(turns: list[Turn]) -> list[Turn]:
    """The newest run of well-formed turns: whole turns end to end always alternate correctly."""
    start = len(turns)
    while start and well_formed(turns[start - 1].messages):
        start -= 1
    return turns[start:]


@dataclass(frozen=True)
class Window:
    turns: list[Turn]
    summary: Summary | None = None

    @property
    def messages(self) -> list[dict]:
        return [m for turn in self.turns for m in turn.messages]


@dataclass(frozen=True)
class WindowPolicy:
    """MEMORY_STRATEGY and MEMORY_MAX_PROMPT_TOKENS. MEMORY_MAX_TURNS bounds the read, not this."""

    strategy: str = DEFAULT_STRATEGY
    max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS

    @property
    def uses_summary(self) -> bool:
        return self.strategy == "compaction"

    def fit(self, turns: list[Turn], summary: Summary | None, *, fixed_tokens: int) -> Window:
        """The window for a prompt whose other parts (system prompt, facts, tools, new message and
        the turn's own tool loop) take `fixed_tokens`. `turns` are oldest first, as read."""
        turns = tool_safe(turns)
        if self.strategy == "last_k":
            return Window(turns)
        room = self.max_prompt_tokens - fixed_tokens
        # A summary is bounded (MEMORY_SUMMARY_MAX_TOKENS) and stands for many turns: it goes first.
        if self.uses_summary and summary and summary_tokens(summary) <= room:
            room -= summary_tokens(summary)
        else:
            summary = None
        start = len(turns)
        while start:
            # Once per turn: it serialises every message of the turn (benchmarks/overhead.py).
            tokens = turn_tokens(turns[start - 1])
            if tokens > room:
                break
            start -= 1
            room -= tokens
        return Window(turns[start:], summary)
