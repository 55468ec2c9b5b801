"""The worker of asynchronous turns (functions/agent/async_turns.py): a Lambda function the API
Lambda invokes asynchronously with a turn's keys. Lambda's own event queue retries a failed
invocation and then hands the event to a dead-letter queue (infra/monitoring.py alarms on it).

SnapStart, as the API function: without it, a cold worker pays the whole init (the model SDK, the
Powertools and botocore imports: seconds at 512 MB) before an asynchronous turn's first token. It is
invoked through its `live` alias, which carries the asynchronous invocation configuration: a
configuration on the unqualified function would not apply to invocations of the alias."""

from collections.abc import Mapping

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.agent import budget
from infra.agent_function import SERVICE_NAME, FunctionCode, python_function, snapstart_alias

HANDLER = "agent.worker.lambda_handler"
# The worker stops itself at its turn's deadline (budget.ASYNC_TURN_SECONDS, 5 minutes); the timeout
# adds room for a cold start and the last status write (budget.WORKER_TIMEOUT_SECONDS).
TIMEOUT = Duration.seconds(budget.WORKER_TIMEOUT_SECONDS)
# A failure before the worker claims the turn (DynamoDB unreachable) is worth two more tries; after
# the claim, a retry finds the turn claimed and does nothing, so retries never run a turn twice.
RETRY_ATTEMPTS = 2
# An event older than its turn's deadline could only find the turn failed already.
MAX_EVENT_AGE = Duration.seconds(budget.ASYNC_TURN_SECONDS)
DEAD_LETTER_RETENTION = Duration.days(14)


class AsyncWorker(Construct):
    """Exposes `function`, the `alias` it is invoked through, its `log_group` and the `dead_letters` queue."""

    def __init__(self, scope: Construct, construct_id: str, *, code: FunctionCode, environment: Mapping[str, str],
                 reserved_concurrency: int | None = None) -> None:
        super().__init__(scope, construct_id)

        # A reservation is also a cap: past it Lambda throttles the worker, and its own event queue keeps
        # retrying the turn until MAX_EVENT_AGE, then dead-letters it (docs/DEPLOY.md, "Concurrency").
        self.function, self.log_group = python_function(
            self, handler=HANDLER, service=SERVICE_NAME, timeout=TIMEOUT, code=code, environment=environment,
            snap_start=True, reserved_concurrent_executions=reserved_concurrency,
        )
        # Holds the failed events: a turn's keys (user id, session id, turn id), never its text.
        self.dead_letters = sqs.Queue(
            self, "DeadLetters", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        Validations.of(self.dead_letters).acknowledge(
            Acknowledgment(id="AwsSolutions-SQS3", reason="It is the on-failure destination of the worker's "
                           "asynchronous invocations; an alarm watches it.")
        )
        self.alias: lambda_.Alias = snapstart_alias(
            self, self.function, retry_attempts=RETRY_ATTEMPTS, max_event_age=MAX_EVENT_AGE,
            on_failure=destinations.SqsDestination(self.dead_letters),
        )

    def grant_dispatch(self, grantee: iam.IGrantable) -> None:
        """The API Lambda may invoke the worker's alias, and nothing else: no other version, not $LATEST."""
        iam.Grant.add_to_principal(grantee=grantee, actions=["lambda:InvokeFunction"],
                                   resource_arns=[self.alias.function_arn])
