"""A turn: one user message and everything the agent loop added to answer it."""

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


@dataclass(frozen=True)
class Turn:
    user_id: str
    session_id: str
    turn_id: str
    created_at: str
    # Messages API shape: the user message first, then every assistant and tool_result message
    # of the tool loop, ending with the assistant's answer.
    messages: list[dict] = field(default_factory=list)
    usage: Usage = Usage()


def new_turn_id(now: float) -> str:
    """Sorts by arrival time; the random suffix keeps concurrent turns of one session apart."""
    return f"{int(now * 1000):013d}-{secrets.token_hex(4)}"


def iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).isoformat(timespec="milliseconds")
