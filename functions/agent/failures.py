"""How a failed turn is told: the synchronous answer and the asynchronous turn's status say the same."""

from dataclasses import dataclass
from http import HTTPStatus

from agent.providers import ModelError
from memory.errors import MemoryUnavailable


@dataclass(frozen=True)
class TurnFailure:
    status: HTTPStatus
    code: str
    message: str
    retry_after: int | None = None

    def body(self) -> dict:
        return {"error": self.code, "message": self.message}


MEMORY_UNAVAILABLE = TurnFailure(HTTPStatus.SERVICE_UNAVAILABLE, "memory_unavailable", "memory could not be read; retry later")
MODEL_REJECTED = TurnFailure(HTTPStatus.BAD_GATEWAY, "model_error", "the model rejected the request")
INTERNAL_ERROR = TurnFailure(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "something went wrong on our side")


def turn_failure(error: Exception) -> TurnFailure:
    if isinstance(error, MemoryUnavailable):
        return MEMORY_UNAVAILABLE
    if isinstance(error, ModelError):
        if not error.transient:
            return MODEL_REJECTED
        return TurnFailure(HTTPStatus.SERVICE_UNAVAILABLE, "model_unavailable", "the model is unavailable; retry later",
                           error.retry_after)
    return INTERNAL_ERROR
