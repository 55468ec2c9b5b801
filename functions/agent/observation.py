"""How a turn is observed, one way on both of its paths (the API's synchronous answer and the worker's
asynchronous one): the metrics the dashboard graphs, and one log event per kind of failure."""

import time

from aws_lambda_powertools.metrics import MetricUnit

from agent.failures import TurnFailure, turn_failure
from agent.observability import logger, metrics
from agent.providers import ModelError
from agent.shared import INPUT_TOKENS_METRIC, OUTPUT_TOKENS_METRIC, TURN_LATENCY_METRIC
from agent.turn import TurnResult
from memory.errors import MemoryUnavailable

# The log event of each kind of failure (docs/DEPLOY.md, "Troubleshooting").
MODEL_FAILED_EVENT = "model_failed"
MEMORY_UNAVAILABLE_EVENT = "memory_unavailable"
UNHANDLED_ERROR_EVENT = "unhandled_error"


def turn_finished(result: TurnResult, *, started: float, metrics=metrics) -> None:
    """A turn answered: how long it took since `started` (time.perf_counter()) and the tokens it used."""
    metrics.add_metric(name=TURN_LATENCY_METRIC, unit=MetricUnit.Milliseconds,
                       value=(time.perf_counter() - started) * 1000)
    metrics.add_metric(name=INPUT_TOKENS_METRIC, unit=MetricUnit.Count, value=result.turn.usage.input_tokens)
    metrics.add_metric(name=OUTPUT_TOKENS_METRIC, unit=MetricUnit.Count, value=result.turn.usage.output_tokens)


def turn_failed(error: Exception, *, logger=logger, **fields) -> TurnFailure:
    """Logs a failed request under its kind's event (`fields` added) and returns how it is answered."""
    failure = turn_failure(error)
    if isinstance(error, ModelError):
        logger.error(MODEL_FAILED_EVENT, extra={**fields, "error": str(error), "transient": error.transient})
    elif isinstance(error, MemoryUnavailable):
        logger.error(MEMORY_UNAVAILABLE_EVENT, extra={**fields, "error": str(error)})
    else:
        logger.exception(UNHANDLED_ERROR_EVENT, extra=fields)
    return failure
