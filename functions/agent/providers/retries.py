"""The retry policy every provider shares: our retries, not the SDKs'."""

import itertools
import time
from collections.abc import Callable

from agent.providers.contract import DeadlineReached, ModelError, ModelResponse

# Our retries, not the SDK's: the SDK sleeps whatever retry-after says, however far past the budget.
# A retry waits retry-after (when the API sends one) or 0.5 s then 1 s, and is made only if the wait
# plus MIN_ATTEMPT_SECONDS still fits before the deadline; otherwise the failure is answered now.
# Only an attempt that wrote nothing is retried: once text has streamed, the tokens are spent and the
# answer ends with what was written (`truncated`), never with a second, billed, call.
MODEL_MAX_ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 0.5
MIN_ATTEMPT_SECONDS = 2.0


def with_retries(attempt: Callable[[], ModelResponse], deadline: float) -> ModelResponse:
    """Calls attempt() until it answers, a ModelError is not transient, or the budget is spent."""
    for number in itertools.count(1):
        if deadline - time.monotonic() <= 0:
            raise DeadlineReached()
        try:
            return attempt()
        except ModelError as failure:
            wait = failure.retry_after if failure.retry_after is not None else RETRY_BACKOFF_SECONDS * 2 ** (number - 1)
            if not failure.transient or number == MODEL_MAX_ATTEMPTS or (
                time.monotonic() + wait + MIN_ATTEMPT_SECONDS > deadline
            ):
                raise
            time.sleep(wait)
