"""Suppressed memory writes become a metric, an alarm and an e-mail; plus one dashboard."""

from collections.abc import Mapping

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.agent.shared import (AGENT_SERVICE, COMPACTOR_SERVICE, INPUT_TOKENS_METRIC, METRICS_NAMESPACE,
                                    OUTPUT_TOKENS_METRIC, SUPPRESSED_WRITES_ALARM_MINUTES,
                                    SUPPRESSED_WRITES_ALARM_THRESHOLD, TURN_LATENCY_METRIC)
from functions.memory.outcomes import WRITE_SUPPRESSED_EVENT
from infra.compactor import Compactor
from infra.worker import AsyncWorker

# The structured event the memory library logs on a failed, suppressed write (one JSON line).
SUPPRESSED_WRITE_PATTERN = f'{{ $.message = "{WRITE_SUPPRESSED_EVENT}" }}'
SUPPRESSED_WRITE_METRIC = "MemoryWriteSuppressed"
ALARM_PERIOD = Duration.minutes(SUPPRESSED_WRITES_ALARM_MINUTES)
ALARM_EVALUATION_PERIODS = 1
DASHBOARD_PERIOD = Duration.minutes(5)
# SQS reports a queue's metrics only while the queue is active, and stops for one that sees no API call
# for hours, letters or not (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-monitoring-using-cloudwatch.html,
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html).
# Treated as not breaching, that silence would clear the alarm (and e-mail "OK") with the failed work
# still queued; treated as breaching, an empty idle queue would fire it. "ignore" keeps the state the
# last data point set: ALARM while letters remain, OK once the queue was read empty (reading it is
# activity, so its 0 is reported):
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-missing-data
DEAD_LETTER_MISSING_DATA = cloudwatch.TreatMissingData.IGNORE
CLOUDWATCH = iam.ServicePrincipal("cloudwatch.amazonaws.com")
# What a publisher needs of an encrypted topic's key (SNS encrypts the message with a data key):
# https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html
TOPIC_KEY_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey*"]
# The encryption context SNS sends with each of those calls: the topic's ARN.
SNS_TOPIC_CONTEXT_KEY = "aws:sns:topicArn"
ALARM_TOPIC_SUFFIX = "alarms"


class Monitoring(Construct):
    """Exposes the `alarm`, its `topic` and the `dashboard`. `function_logs` names every function's
    log group (a new function adds one entry)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_logs: Mapping[str, logs.ILogGroup],
        function: lambda_.IFunction,
        stage: apigwv2.HttpStage,
        alarm_email: str | None,
        worker: AsyncWorker,
        compactor: Compactor | None = None,
    ) -> None:
        super().__init__(scope, construct_id)

        # Each function logs into its own log group; all their filters feed the one metric (no
        # dimension), so the alarm counts suppressed writes together, whichever function logged them.
        for name, log_group in function_logs.items():
            logs.MetricFilter(
                self,
                f"SuppressedWrites{name}",
                log_group=log_group,
                filter_pattern=logs.FilterPattern.literal(SUPPRESSED_WRITE_PATTERN),
                metric_namespace=METRICS_NAMESPACE,
                metric_name=SUPPRESSED_WRITE_METRIC,
                metric_value="1",
            )
        suppressed = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=SUPPRESSED_WRITE_METRIC,
            statistic=cloudwatch.Stats.SUM,
            period=ALARM_PERIOD,
        )
        self.topic = self._alarm_topic(alarm_email)
        self.alarm = self._alarm(
            suppressed,
            "SuppressedWritesAlarm",
            name="memory-writes-suppressed",
            description="Memory writes are failing: answers are served but turns are not stored.",
            threshold=SUPPRESSED_WRITES_ALARM_THRESHOLD,
            # No suppressed-write line, no data point: the healthy state.
            missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

        # An asynchronous turn whose worker failed after Lambda's retries: the client sees it `failed`
        # once its deadline passed; someone should look at the worker's logs.
        self.worker_alarm = self._dead_letter_alarm(
            worker.dead_letters,
            "WorkerDeadLettersAlarm",
            name="async-turns-dead-lettered",
            description="Asynchronous turns whose worker failed after Lambda's retries: see the worker's logs.",
        )

        # A session whose compaction failed after every retry: its turns are safe, its prompt falls
        # back to the budgeted window, and someone should look at the compactor's logs.
        self.compaction_alarm = None
        if compactor is not None:
            self.compaction_alarm = self._dead_letter_alarm(
                compactor.dead_letters,
                "CompactionDeadLettersAlarm",
                name="compactions-dead-lettered",
                description="Compactions failed after their retries: see the compactor's compaction_failed logs.",
            )

        self.dashboard = self._dashboard(function=function, stage=stage, worker=worker.function)

    def _alarm_topic(self, alarm_email: str | None) -> sns.Topic:
        """An encrypted topic that this stack's alarms, and only they, may publish to."""
        stack = Stack.of(self)
        # Named, so that the key policy can name the topic's ARN without depending on the topic (the
        # topic depends on the key), and the alarms named after the stack (`_alarm`), so that the topic
        # policy can name them without depending on them (they depend on the topic).
        topic_name = f"{stack.stack_name}-{ALARM_TOPIC_SUFFIX}"
        topic_arn = stack.format_arn(service="sns", resource=topic_name, arn_format=ArnFormat.NO_RESOURCE_NAME)
        # SNS's AWS managed key cannot be used by CloudWatch alarms (its key policy is fixed), so the
        # topic gets a customer managed key: https://repost.aws/knowledge-center/cloudwatch-configure-alarm-sns
        key = kms.Key(
            self,
            "TopicKey",
            description="Encrypts the agent's alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # When an alarm publishes, SNS asks KMS for a data key on CloudWatch's behalf, with the
        # encryption context {"aws:sns:topicArn": <topic ARN>} on every GenerateDataKey and Decrypt:
        # the documented way to scope a key to one topic (kms:EncryptionContext:context-key,
        # https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html; SNS's own example,
        # https://docs.aws.amazon.com/gamelift/latest/flexmatchguide/queue-notification-sns-sse.html).
        # aws:SourceAccount and aws:SourceArn are documented on the sns:Publish request (the topic
        # policy below uses them), not on these KMS calls: a key condition on them could refuse every
        # alarm, and the e-mail would silently never leave.
        key.add_to_resource_policy(iam.PolicyStatement(
            principals=[CLOUDWATCH], actions=TOPIC_KEY_ACTIONS, resources=["*"],
            conditions={"StringEquals": {f"kms:EncryptionContext:{SNS_TOPIC_CONTEXT_KEY}": topic_arn}},
        ))
        topic = sns.Topic(self, "AlarmTopic", topic_name=topic_name, master_key=key, enforce_ssl=True)
        # enforce_ssl creates a topic policy, and a topic policy replaces SNS's default one: without
        # this statement no alarm could publish ("no resource-based policy allows SNS:Publish").
        own_alarms = {
            "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
            "ArnLike": {"aws:SourceArn": stack.format_arn(
                service="cloudwatch", resource="alarm", resource_name=f"{stack.stack_name}-*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )},
        }
        topic.add_to_resource_policy(iam.PolicyStatement(
            principals=[CLOUDWATCH], actions=["sns:Publish"], resources=[topic.topic_arn], conditions=own_alarms
        ))
        if alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        return topic

    def _alarm(
        self, metric: cloudwatch.IMetric, construct_id: str, *, name: str, description: str, threshold: int,
        missing_data: cloudwatch.TreatMissingData,
    ) -> cloudwatch.Alarm:
        """An alarm named `<stack>-<name>` that e-mails through the topic when it fires and when it clears."""
        alarm = metric.create_alarm(
            self,
            construct_id,
            alarm_name=f"{Stack.of(self).stack_name}-{name}",
            alarm_description=description,
            threshold=threshold,
            evaluation_periods=ALARM_EVALUATION_PERIODS,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=missing_data,
        )
        action = cw_actions.SnsAction(self.topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        # The first OK notification comes minutes after the deploy: the topic policy must be in place.
        alarm.node.add_dependency(self.topic.node.find_child("Policy"))
        return alarm

    def _dead_letter_alarm(self, queue: sqs.IQueue, construct_id: str, *, name: str, description: str):
        """Fires on the first message in a dead-letter queue (each one is work that failed for good) and
        stays in ALARM while any is left, whether or not SQS still reports the queue's metrics."""
        metric = queue.metric_approximate_number_of_messages_visible(period=ALARM_PERIOD,
                                                                     statistic=cloudwatch.Stats.MAXIMUM)
        return self._alarm(metric, construct_id, name=name, description=description, threshold=1,
                           missing_data=DEAD_LETTER_MISSING_DATA)

    def _dashboard(self, *, function: lambda_.IFunction, stage: apigwv2.HttpStage,
                   worker: lambda_.IFunction) -> cloudwatch.Dashboard:
        def agent_metric(name: str, statistic: str, service: str = AGENT_SERVICE) -> cloudwatch.Metric:
            # Powertools' EMF metrics carry the service name as their only dimension.
            return cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=name,
                dimensions_map={"service": service},
                statistic=statistic,
                period=DASHBOARD_PERIOD,
                label=f"{name} {statistic}",
            )

        dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(24))
        dashboard.add_widgets(
            cloudwatch.AlarmWidget(
                title=f"Suppressed memory writes (alarm at >= {SUPPRESSED_WRITES_ALARM_THRESHOLD} / "
                f"{SUPPRESSED_WRITES_ALARM_MINUTES} min)",
                alarm=self.alarm,
            ),
            # Every turn, synchronous or asynchronous (agent.observation): the latencies of both.
            cloudwatch.GraphWidget(
                title="Turn latency (ms)",
                left=[agent_metric(TURN_LATENCY_METRIC, s) for s in ("p50", "p90", "p99")],
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Errors",
                left=[
                    function.metric_errors(period=DASHBOARD_PERIOD),
                    function.metric_throttles(period=DASHBOARD_PERIOD),
                    stage.metric_server_error(period=DASHBOARD_PERIOD),
                    stage.metric_client_error(period=DASHBOARD_PERIOD),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Model tokens",
                left=[agent_metric(name, cloudwatch.Stats.SUM) for name in (INPUT_TOKENS_METRIC, OUTPUT_TOKENS_METRIC)],
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Asynchronous turns (worker)",
                left=[worker.metric_invocations(period=DASHBOARD_PERIOD), worker.metric_errors(period=DASHBOARD_PERIOD),
                      worker.metric_throttles(period=DASHBOARD_PERIOD)],
                right=[worker.metric_duration(statistic="p99", period=DASHBOARD_PERIOD)],
            ),
            cloudwatch.AlarmWidget(title="Asynchronous turns dead-lettered", alarm=self.worker_alarm),
        )
        if self.compaction_alarm is not None:
            dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="Compactions",
                    left=[agent_metric(name, cloudwatch.Stats.SUM, COMPACTOR_SERVICE)
                          for name in ("Compactions", "CompactionFailed")],
                ),
                cloudwatch.AlarmWidget(title="Compactions dead-lettered", alarm=self.compaction_alarm),
            )
        return dashboard
