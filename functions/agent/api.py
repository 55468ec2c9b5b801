"""The request and response shapes of the HTTP API, validated at the edge."""

import json
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from memory.long_term import DEFAULT_MAX_VALUE_CHARS, VALUE_RULE
from memory.outcomes import WriteOutcome

# Path parameter patterns are anchored: pydantic's (Rust) regex searches, and `$` there is the end
# of the text, not a newline. A fact key's is memory.long_term.FACT_KEY, anchored, with its length (agent.handler).
SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
# 16,000 characters is ~4,000 tokens: a long message, and with the tool loop's blocks a turn stays
# far below DynamoDB's 400 KB item limit (at most 4 bytes per character: 64 KB for the message).
MAX_MESSAGE_CHARS = 16_000
# Checked before the body is parsed: JSON escapes (\uXXXX) may take six bytes per character.
MAX_BODY_BYTES = 6 * MAX_MESSAGE_CHARS + 1024
HISTORY_PAGE_MAX = 100
# GET /sessions: a page of a user's sessions (a few hundred bytes each), far under Lambda's 6 MB result.
SESSIONS_PAGE_DEFAULT, SESSIONS_PAGE_MAX = 50, 100
# No field of the API is a number this long; Python refuses to convert past 4,300 digits anyway,
# with a message about its own internals.
MAX_JSON_INTEGER_DIGITS = 100
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
    """The value's length and characters are checked by the fact store, for the API and the model's
    `remember` alike (memory.long_term: MEMORY_MAX_FACT_VALUE_CHARS)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    value: Annotated[str, Field(min_length=1, description=(
        f"{VALUE_RULE}; at most MEMORY_MAX_FACT_VALUE_CHARS characters ({DEFAULT_MAX_VALUE_CHARS} by default)"))]


def json_object(body: str) -> dict:
    """Every request body is one JSON object: Powertools would take the first element of an array
    for the model and silently drop the rest."""
    value = json.loads(body, parse_int=_bounded_int)
    if not isinstance(value, dict):
        raise _invalid_body("the body must be a JSON object")
    return value


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_JSON_INTEGER_DIGITS:
        raise _invalid_body(f"a number in the body has more than {MAX_JSON_INTEGER_DIGITS} digits")
    return int(digits)


def _invalid_body(message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "invalid_body", "loc": ("body",), "msg": message}])


class ErrorBody(BaseModel):
    """Every error answer. The agent's own carry `error`, a stable code; API Gateway's (no route, no
    valid token, throttled) have only `message`."""

    error: str = Field(default=None, description="a stable code, e.g. not_found; absent when API Gateway answers")
    message: str = Field(description="for humans; never echoes what was sent")


class TurnContext(BaseModel):
    turns: int
    summary: bool
    facts: int
    facts_omitted: int


class TurnMemory(BaseModel):
    write: WriteOutcome


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
