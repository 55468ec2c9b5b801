"""The request and response shapes of the HTTP API, validated at the edge."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.turn import FACT_KEY_PATTERN, MAX_FACT_VALUE_CHARS

SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
# 16,000 characters is ~4,000 tokens: a long message, and with the tool loop's blocks a turn stays
# far below DynamoDB's 400 KB item limit (at most 4 bytes per character: 64 KB for the message).
MAX_MESSAGE_CHARS = 16_000
# Checked before the body is parsed: JSON escapes (\uXXXX) may take six bytes per character.
MAX_BODY_BYTES = 6 * MAX_MESSAGE_CHARS + 1024
HISTORY_PAGE_MAX = 100


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


class ErrorBody(BaseModel):
    """Every error answer. The agent's own carry `error`, a stable code; API Gateway's (no route, no
    valid token, throttled) have only `message`."""

    error: str = Field(default=None, description="a stable code, e.g. not_found; absent when API Gateway answers")
    message: str = Field(description="for humans; never echoes what was sent")
