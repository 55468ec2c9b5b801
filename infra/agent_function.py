"""The agent's API Lambda: code, runtime, budget, logs, tracing and the SnapStart alias."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from constructs import Construct

from functions.agent import budget
from functions.agent.shared import AGENT_SERVICE as SERVICE_NAME
from functions.agent.shared import DEFAULT_MAX_TURNS, DEFAULT_SESSION_TTL_DAYS, METRICS_NAMESPACE
from functions.agent.snapstart import KEEP_ALIVE_EVENT

# The newest Python runtime aws-cdk-lib offers; arm64 (Graviton) costs ~20% less per GB-s.
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
HANDLER = "agent.handler.lambda_handler"
# The framework adapters of the memory library are for agents built on those frameworks, not for
# these functions (the layer has no framework either).
CODE_EXCLUDES = ["__pycache__", "*.pyc", "memory/adapters"]

# Time budget of one synchronous turn, derived in functions/agent/budget.py: API Gateway's 29 s
# integration timeout, less 4 s for a cold start or SnapStart restore, is the function's 25 s.
API_INTEGRATION_TIMEOUT = Duration.seconds(budget.API_INTEGRATION_TIMEOUT_SECONDS)
TIMEOUT = Duration.seconds(budget.SYNC_TURN_SECONDS)

# The turn waits on the network (DynamoDB, the model), so CPU buys little; the imports use 87 MB
# of resident memory (measured). 512 MB leaves room for long histories and costs half of 1 GB.
MEMORY_SIZE_MB = 512

# Long enough to investigate an alarm or a user's report; logs do not pile up cost for ever.
LOG_RETENTION = logs.RetentionDays.ONE_MONTH

# SnapStart: measured on this project's machine (docs/DEPLOY.md, median of 9 fresh processes),
# importing anthropic + botocore + Powertools' event handler takes 1.0 s with cached bytecode and
# 2.6 s without. A layer lives on Lambda's read-only /opt and cannot be precompiled for
# Python 3.14 on a build machine with another Python, so every plain cold start pays the 2.6 s
# (more at 512 MB's fraction of a vCPU). SnapStart runs that once per published version and
# restores the snapshot instead: enabled, on the "live" alias that the API invokes.
ALIAS_NAME = "live"
# A SnapStart version not invoked for 14 days goes Inactive, and its next invocation fails
# (SnapStartNotReadyException) until Lambda has made it Active again:
# https://docs.aws.amazon.com/lambda/latest/dg/snapstart-troubleshooting.html. A schedule invokes
# each alias daily (13 missed runs before the 14 days), which also wakes a version that Lambda made
# Inactive when it recycled its environments, before a user meets it. EventBridge Scheduler, which
# AWS recommends over scheduled rules (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-rule-schedule.html);
# the handlers answer the event at once (agent.snapstart).
KEEP_ALIVE_INTERVAL = Duration.days(1)


@dataclass(frozen=True)
class FunctionCode:
    """What every function of the stack runs: the functions/ folder and the dependency layer."""

    code_dir: Path
    layers: list[lambda_.ILayerVersion]


def python_function(
    scope: Construct,
    *,
    handler: str,
    service: str,
    timeout: Duration,
    code: FunctionCode,
    environment: Mapping[str, str],
    snap_start: bool = False,
    **props,
) -> tuple[lambda_.Function, logs.LogGroup]:
    """One of the stack's Python functions (in `scope`, as Logs, Role and Function): the shared code
    asset and layer, arm64, JSON logs with retention, X-Ray, and a role that holds only its grants.
    With `snap_start`, its published versions are snapshots (invoke them through `snapstart_alias`)."""
    if snap_start:
        props |= {
            "snap_start": lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS,
            # A replaced version is deleted, so no snapshot of old code stays cached (and billed).
            "current_version_options": lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
        }
    log_group = logs.LogGroup(scope, "Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY)
    # An explicit role without AWS managed policies: the stack grants exactly what is used.
    role = iam.Role(scope, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    log_group.grant_write(role)
    Validations.of(role).acknowledge(
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="X-Ray active tracing (xray:PutTraceSegments, xray:PutTelemetryRecords) and, for a "
            "stream consumer, dynamodb:ListStreams support no resource-level permissions. No data "
            "action has a wildcard resource.",
        )
    )
    function = lambda_.Function(
        scope,
        "Function",
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        handler=handler,
        code=lambda_.Code.from_asset(str(code.code_dir), exclude=CODE_EXCLUDES),
        layers=code.layers,
        memory_size=MEMORY_SIZE_MB,
        timeout=timeout,
        role=role,
        environment={"SESSION_TTL_DAYS": str(DEFAULT_SESSION_TTL_DAYS), "MEMORY_MAX_TURNS": str(DEFAULT_MAX_TURNS),
                     "POWERTOOLS_SERVICE_NAME": service, "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                     # Traces keep timings, not return values: those hold replies and users' facts.
                     "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
                     **environment},
        log_group=log_group,
        logging_format=lambda_.LoggingFormat.JSON,
        application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
        system_log_level_v2=lambda_.SystemLogLevel.WARN,
        tracing=lambda_.Tracing.ACTIVE,
        **props,
    )
    return function, log_group


class AgentFunction(Construct):
    """Exposes `function` (for metrics and grants) and `alias` (what the API invokes)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: FunctionCode,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)

        self.function, self.log_group = python_function(
            self, handler=HANDLER, service=SERVICE_NAME, timeout=TIMEOUT, code=code, environment=environment,
            snap_start=True,
        )
        self.alias = snapstart_alias(self, self.function)


def snapstart_alias(scope: Construct, function: lambda_.Function, **alias_props) -> lambda_.Alias:
    """The alias (in `scope`, as Alias and KeepAlive) through which a SnapStart function is invoked:
    it points at the current published version, and a schedule keeps that version Active."""
    alias = lambda_.Alias(scope, "Alias", alias_name=ALIAS_NAME, version=function.current_version, **alias_props)
    Validations.of(function).acknowledge(
        Acknowledgment(
            id="Annotation::@aws-cdk/aws-lambda:snapStartRequirePublish",
            reason="current_version publishes a version whenever code or configuration "
            "changes, and every invocation goes to that version, through the alias.",
        )
    )
    scheduler.Schedule(
        scope,
        "KeepAlive",
        description=f"Invokes the {ALIAS_NAME} alias so that its SnapStart version never goes Inactive",
        schedule=scheduler.ScheduleExpression.rate(KEEP_ALIVE_INTERVAL),
        target=scheduler_targets.LambdaInvoke(alias, input=scheduler.ScheduleTargetInput.from_object(KEEP_ALIVE_EVENT)),
    )
    return alias
