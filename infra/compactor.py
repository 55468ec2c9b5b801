"""The compactor: the sessions table's stream feeds new turns to a Lambda that keeps each session's
summary (functions/compactor/). It runs after the answers, never inside a turn."""

from collections.abc import Mapping

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.agent import budget
from functions.agent.shared import COMPACTOR_SERVICE as SERVICE_NAME
from functions.memory.keys import TURN_PREFIX
from infra.agent_function import FunctionCode, python_function

HANDLER = "compactor.handler.lambda_handler"
# Only new turns: a summary's own key (TURN~SUMMARY) and registry entries (SESSION#...) do not match the prefix.
TURN_INSERTS = {"eventName": lambda_.FilterRule.is_equal("INSERT"),
                "dynamodb": {"Keys": {"sk": {"S": lambda_.FilterRule.begins_with(TURN_PREFIX)}}}}
# Stream records per batch; the records of one session make one run, so at most this many runs.
BATCH_SIZE = 10
# Gathers a burst of turns into one batch; the summary is not on anyone's critical path.
BATCHING_WINDOW = Duration.seconds(5)
# Per session: two reads, one model call (a synchronous turn's model budget, its retries included)
# and one write.
SESSION_BUDGET = Duration.seconds(budget.SYNC_MODEL_SECONDS + budget.MEMORY_READ_SECONDS + budget.MEMORY_WRITE_SECONDS)
TIMEOUT = Duration.seconds(SESSION_BUDGET.to_seconds() * BATCH_SIZE)
# A failed session is tried again twice (bisected), then its records go to the dead-letter queue:
# its turns are safe and the read falls back to the budgeted window; the next turn triggers again.
RETRY_ATTEMPTS = 2
MAX_RECORD_AGE = Duration.hours(1)
DEAD_LETTER_RETENTION = Duration.days(14)


class Compactor(Construct):
    """Exposes `function`, its `log_group` and the `dead_letters` queue of the mapping."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        sessions: dynamodb.ITable,
        code: FunctionCode,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)

        self.function, self.log_group = python_function(
            self, handler=HANDLER, service=SERVICE_NAME, timeout=TIMEOUT, code=code, environment=environment
        )
        # Holds stream record pointers (shard, sequence numbers) of failed batches, no user data.
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        Validations.of(self.dead_letters).acknowledge(
            Acknowledgment(id="AwsSolutions-SQS3", reason="It is the dead-letter destination of the compactor's "
                           "event source mapping; an alarm watches it.")
        )
        self.function.add_event_source(
            sources.DynamoEventSource(
                sessions,
                starting_position=lambda_.StartingPosition.LATEST,
                filters=[lambda_.FilterCriteria.filter(TURN_INSERTS)],
                batch_size=BATCH_SIZE,
                max_batching_window=BATCHING_WINDOW,
                retry_attempts=RETRY_ATTEMPTS,
                bisect_batch_on_error=True,
                report_batch_item_failures=True,
                max_record_age=MAX_RECORD_AGE,
                on_failure=sources.SqsDlq(self.dead_letters),
            )
        )
