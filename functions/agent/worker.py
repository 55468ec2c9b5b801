"""The worker Lambda of asynchronous turns (agent.async_turns): invoked asynchronously by the API
Lambda with a turn's keys, it runs the turn once and writes its status. A failure that escapes
(DynamoDB unreachable before the claim) fails the invocation, and Lambda retries it; after the
retries, the event goes to the dead-letter queue, and the status's deadline reports the turn failed."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from agent import snapstart, wiring
from agent.async_turns import Job, work
from agent.observability import logger, metrics
from agent.providers import configured_model
from agent.tracing import tracer

services = wiring.services(logger=logger)
settings, dynamodb, memory, statuses = services.settings, services.dynamodb, services.memory, services.statuses


def lambda_handler(event: dict, context: LambdaContext) -> dict | None:
    if snapstart.is_keep_alive(event):  # the schedule that keeps the SnapStart version Active
        return snapstart.KEPT_ALIVE
    return _work(event, context)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def _work(event: dict, context: LambdaContext) -> None:
    job = Job(user_id=event["user_id"], session_id=event["session_id"], turn_id=event["turn_id"])
    logger.append_keys(turn_id=job.turn_id)
    work(job, memory=memory, model=configured_model(settings), statuses=statuses, logger=logger,
         invocation=context.aws_request_id)
