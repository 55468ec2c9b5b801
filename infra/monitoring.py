"""Suppressed memory writes become a metric, an alarm and an e-mail; plus one dashboard."""

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.agent_function import METRICS_NAMESPACE, SERVICE_NAME
from infra.compactor import SERVICE_NAME as COMPACTOR_SERVICE_NAME
from infra.compactor import Compactor

# The structured event the memory library logs on a failed, suppressed write (one JSON line).
SUPPRESSED_WRITE_PATTERN = '{ $.message = "memory_write_suppressed" }'
SUPPRESSED_WRITE_METRIC = "MemoryWriteSuppressed"
# A few failed writes are noise (a throttle, a blip); 10 in 5 minutes means memory is being lost.
ALARM_THRESHOLD = 10
ALARM_PERIOD = Duration.minutes(5)
ALARM_EVALUATION_PERIODS = 1
DASHBOARD_PERIOD = Duration.minutes(5)


class Monitoring(Construct):
    """Exposes the `alarm`, its `topic` and the `dashboard`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        log_group: logs.ILogGroup,
        function: lambda_.IFunction,
        stage: apigwv2.HttpStage,
        alarm_email: str | None,
        compactor: Compactor | None = None,
    ) -> None:
        super().__init__(scope, construct_id)

        metric_filter = logs.MetricFilter(
            self,
            "SuppressedWrites",
            log_group=log_group,
            filter_pattern=logs.FilterPattern.literal(SUPPRESSED_WRITE_PATTERN),
            metric_namespace=METRICS_NAMESPACE,
            metric_name=SUPPRESSED_WRITE_METRIC,
            metric_value="1",
        )
        suppressed = metric_filter.metric(statistic=cloudwatch.Stats.SUM, period=ALARM_PERIOD)
        self.alarm = suppressed.create_alarm(
            self,
            "SuppressedWritesAlarm",
            alarm_description="Memory writes are failing: answers are served but turns are not stored.",
            threshold=ALARM_THRESHOLD,
            evaluation_periods=ALARM_EVALUATION_PERIODS,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            # No suppressed-write line at all is the healthy state.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

        # SNS's AWS managed key cannot be used by CloudWatch alarms (its key policy is fixed),
        # so the topic gets a customer managed key that CloudWatch may use.
        key = kms.Key(
            self,
            "TopicKey",
            description="Encrypts the agent's alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(self, "AlarmTopic", master_key=key, enforce_ssl=True)
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        action = cw_actions.SnsAction(self.topic)
        self.alarm.add_alarm_action(action)
        self.alarm.add_ok_action(action)

        # A session whose compaction failed after every retry: its turns are safe, its prompt falls
        # back to the budgeted window, and someone should look at the compactor's logs.
        self.compaction_alarm = None
        if compactor is not None:
            self.compaction_alarm = compactor.dead_letters.metric_approximate_number_of_messages_visible(
                period=ALARM_PERIOD, statistic=cloudwatch.Stats.MAXIMUM
            ).create_alarm(
                self,
                "CompactionDeadLettersAlarm",
                alarm_description="Compactions failed after their retries: see the compactor's compaction_failed logs.",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            self.compaction_alarm.add_alarm_action(action)
            self.compaction_alarm.add_ok_action(action)

        self.dashboard = self._dashboard(function=function, stage=stage)

    def _dashboard(self, *, function: lambda_.IFunction, stage: apigwv2.HttpStage) -> cloudwatch.Dashboard:
        def agent_metric(name: str, statistic: str, service: str = SERVICE_NAME) -> cloudwatch.Metric:
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
                title="Suppressed memory writes (alarm at >= 10 / 5 min)", alarm=self.alarm
            ),
            cloudwatch.GraphWidget(
                title="Turn latency (ms)",
                left=[agent_metric("TurnLatency", s) for s in ("p50", "p90", "p99")],
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
                left=[agent_metric(name, cloudwatch.Stats.SUM) for name in ("InputTokens", "OutputTokens")],
            ),
        )
        if self.compaction_alarm is not None:
            dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="Compactions",
                    left=[agent_metric(name, cloudwatch.Stats.SUM, COMPACTOR_SERVICE_NAME)
                          for name in ("Compactions", "CompactionFailed")],
                ),
                cloudwatch.AlarmWidget(title="Compactions dead-lettered", alarm=self.compaction_alarm),
            )
        return dashboard
