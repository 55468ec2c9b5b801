"""The compactor Lambda: stream records of new turns in, session summaries out.

The event source mapping on the sessions table's stream delivers only INSERTs of turn items (filter:
sk prefix TURN#; the summary's own key does not match it). Failed sessions come back as batch item
failures: the mapping retries them a bounded number of times, then hands them to its on-failure
destination. No turn ever waits for this function."""

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics

from agent import wiring
from agent.providers import configured_model
from agent.shared import COMPACTOR_SERVICE as SERVICE
from agent.shared import METRICS_NAMESPACE
from compactor.logic import Compactor, process

# RFC 3339 timestamps: without one, Lambda's log-level filter reads a line as INFO whatever its level.
logger = Logger(service=SERVICE, use_rfc3339=True)
metrics = Metrics(service=SERVICE, namespace=METRICS_NAMESPACE)
services = wiring.services(logger=logger)
settings = services.settings
# Its client is built by the first batch, not at import (agent.wiring.OnFirstUse): the module's import
# stays near `import boto3` (benchmarks/cold_start.py). This function has no SnapStart.
conversations = services.memory.conversations


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    compactor = Compactor(
        conversations=conversations,
        model=configured_model(settings),
        trigger_turns=settings.compaction_trigger_turns,
        summary_max_tokens=settings.summary_max_tokens,
        max_input_tokens=settings.max_prompt_tokens,
    )
    return process(event["Records"], compactor=compactor, logger=logger, metrics=metrics)
