"""The request and response shapes of the HTTP API, validated at the edge."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.turn import FACT_KEY_PATTERN, MAX_FACT_VALUE_CHARS

SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
# 16,000 characters is ~4,000 tokens: a long message, and with the tool loop's blocks a turn stays
# far below DynamoDB's 400 KB item limit (at most 4 bytes per character: 64 KB for the message).
MAX_MESSAGE_CHARS = 16_000
# Checked before the body is parsed: JSON escapes (\uXXXX) may take six bytes per character.
MAX_BODY_BYTES = 6 * MAX_MESSAGE_CHARS + 1024
HISTORY_PAGE_MAX = 100
# memory.turns.new_turn_id: milliseconds since the epoch, then 8 random hex digits.
TURN_ID_PATTERN = r"^[0-9]{13}-[0-9a-f]{8}$"


class TurnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    message: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]

    @field_validator("message")
    @classmethod
    def not_blank(cls, message: str) -> str:
        if not message.strip():
            raise ValueError("message must not be blank")
        return message


class FactRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    value: Annotated[str, Field(min_length=1, max_length=MAX_FACT_VALUE_CHARS)]


FACT_KEY = FACT_KEY_PATTERN.pattern


class TurnContext(BaseModel):
    turns: int
    summary: bool
    facts: int


class TurnMemory(BaseModel):
    write: Literal["ok", "suppressed"]


class TurnAnswer(BaseModel):
    """A turn's answer. `truncated`: the turn's deadline came while the model was writing; `reply`
    is what it had written, and that is what was stored."""

    session_id: str
    reply: str
    turn_id: str
    context: TurnContext
    memory: TurnMemory
    truncated: bool


class TurnAccepted(BaseModel):
    session_id: str
    turn_id: str
    status: Literal["running"]


class TurnState(BaseModel):
    """An asynchronous turn. running: `reply` is the text so far (refreshed about once a second);
    done: the fields of TurnAnswer; failed: `error` and `message`, as the synchronous answer's error."""

    session_id: str
    turn_id: str
    status: Literal["running", "done", "failed"]
    reply: str
    context: TurnContext | None = None
    memory: TurnMemory | None = None
    truncated: bool | None = None
    error: str | None = None
    message: str | None = None
