"""The worker of asynchronous turns (functions/agent/async_turns.py): a Lambda function the API
Lambda invokes asynchronously with a turn's keys. Lambda's own event queue retries a failed
invocation and then hands the event to a dead-letter queue that an alarm watches."""

from collections.abc import Mapping

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.agent import budget
from infra.agent_function import METRICS_NAMESPACE, SERVICE_NAME, FunctionCode, python_function
from infra.monitoring import ALARM_PERIOD, SUPPRESSED_WRITE_METRIC, SUPPRESSED_WRITE_PATTERN

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
    """Exposes `function`, its `log_group`, the `dead_letters` queue and its `alarm`."""

    def __init__(self, scope: Construct, construct_id: str, *, code: FunctionCode, environment: Mapping[str, str]) -> None:
        super().__init__(scope, construct_id)

        self.function, self.log_group = python_function(
            self, handler=HANDLER, service=SERVICE_NAME, timeout=TIMEOUT, code=code, environment=environment
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
        self.function.configure_async_invoke(
            retry_attempts=RETRY_ATTEMPTS,
            max_event_age=MAX_EVENT_AGE,
            on_failure=destinations.SqsDestination(self.dead_letters),
        )
        # The worker's memory writes are best effort too: its suppressed writes count in the same
        # metric as the API's, so the one alarm on that metric sees both.
        logs.MetricFilter(
            self, "SuppressedWrites", log_group=self.log_group,
            filter_pattern=logs.FilterPattern.literal(SUPPRESSED_WRITE_PATTERN),
            metric_namespace=METRICS_NAMESPACE, metric_name=SUPPRESSED_WRITE_METRIC, metric_value="1",
        )
        self.alarm = self.dead_letters.metric_approximate_number_of_messages_visible(
            period=ALARM_PERIOD, statistic=cloudwatch.Stats.MAXIMUM
        ).create_alarm(
            self, "DeadLettersAlarm",
            alarm_description="Asynchronous turns whose worker failed after Lambda's retries: see the worker's logs.",
            threshold=1, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def grant_dispatch(self, grantee: iam.IGrantable) -> None:
        """The API Lambda may invoke the worker (this function only, any version)."""
        self.function.grant_invoke(grantee)
        Validations.of(grantee.grant_principal).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{Stack.of(self).get_logical_id(self.function.node.default_child)}.Arn>:*]",
                reason="lambda:InvokeFunction on the worker function and its versions, as grant_invoke writes it.",
            )
        )

    def watch(self, *, topic: sns.ITopic, dashboard: cloudwatch.Dashboard) -> None:
        """The dead-letter alarm notifies the alarm topic; the dashboard shows the worker."""
        action = cw_actions.SnsAction(topic)
        self.alarm.add_alarm_action(action)
        self.alarm.add_ok_action(action)
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Asynchronous turns (worker)",
                left=[self.function.metric_invocations(), self.function.metric_errors(),
                      self.function.metric_throttles()],
                right=[self.function.metric_duration(statistic="p99")],
            ),
            cloudwatch.AlarmWidget(title="Asynchronous turns dead-lettered", alarm=self.alarm),
        )
