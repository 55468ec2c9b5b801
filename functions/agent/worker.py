"""The worker Lambda of asynchronous turns (agent.async_turns): invoked asynchronously by the API
Lambda with a turn's keys, it runs the turn once and writes its status. A failure that escapes
(DynamoDB unreachable before the claim) fails the invocation, and Lambda retries it; after the
retries, the event goes to the dead-letter queue, and the status's deadline reports the turn failed."""

import os

from aws_lambda_powertools.utilities.typing import LambdaContext

from agent import snapstart
from agent.async_turns import Job, work
from agent.config import OnFirstUse, Settings, memory_from
from agent.observability import logger, metrics
from agent.providers import configured_model, preload
from agent.tracing import tracer
from memory.client import dynamodb_client
from memory.turn_status import TurnStatusStore

settings = Settings.from_env()
dynamodb = OnFirstUse(dynamodb_client)
if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":  # into the snapshot (agent.handler)
    preload(settings)
    dynamodb.build()
memory = memory_from(settings, client=dynamodb, logger=logger)
statuses = TurnStatusStore(client=dynamodb, table_name=settings.sessions_table, conversations=memory.conversations)


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
    work(job, memory=memory, model=configured_model(settings), statuses=statuses, logger=logger)
