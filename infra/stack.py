"""The stack only composes the constructs, wires the grants and prints the outputs."""

from pathlib import Path

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.agent_function import ARCHITECTURE, RUNTIME, AgentFunction, FunctionCode
from infra.api import AgentApi
from infra.auth import UserPoolAuth
from infra.compactor import Compactor
from infra.layer import DependencyLayer
from infra.model_access import ModelAccess
from infra.monitoring import Monitoring
from infra.settings import Settings
from infra.tables import API_TABLE_ACTIONS, WORKER_TABLE_ACTIONS, MemoryTables
from infra.worker import AsyncWorker

REPO_ROOT = Path(__file__).resolve().parent.parent
CODE_DIR = REPO_ROOT / "functions"
LAYER_DIR = REPO_ROOT / "layers" / "agent"


class AgentStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)

        tables = MemoryTables(self, "Memory")
        model = ModelAccess(self, "Model", provider=settings.model_provider, model_id=settings.model_id)
        layer = DependencyLayer(
            self, "Dependencies", requirements_dir=LAYER_DIR, runtime=RUNTIME, architecture=ARCHITECTURE
        )
        drill = {}
        if settings.memory_write_drill_until is not None:
            drill = {"MEMORY_WRITE_DRILL_UNTIL": str(settings.memory_write_drill_until)}
        environment = {
            "SESSIONS_TABLE_NAME": tables.sessions.table_name,
            "LONG_TERM_TABLE_NAME": tables.long_term.table_name,
            "MEMORY_STRATEGY": settings.memory_strategy,
            **model.environment,
        }
        code = FunctionCode(code_dir=CODE_DIR, layers=[layer.layer])
        worker = AsyncWorker(self, "Worker", code=code, environment={**environment, **drill},
                             reserved_concurrency=settings.worker_reserved_concurrency)
        tables.grant_data(worker.function, WORKER_TABLE_ACTIONS)
        model.grant_invoke(worker.function)
        # The alias's qualified name (`<function>:live`): Invoke accepts it as the FunctionName.
        agent = AgentFunction(self, "Agent", code=code, environment={
            **environment, **drill, "WORKER_FUNCTION_NAME": worker.alias.function_name})
        tables.grant_data(agent.function, API_TABLE_ACTIONS)
        model.grant_invoke(agent.function)
        worker.grant_dispatch(agent.function)

        # Every function's log group: a suppressed memory write is counted wherever it is logged.
        function_logs = {"Agent": agent.log_group, "Worker": worker.log_group}
        compactor = None
        if settings.memory_strategy == "compaction":
            compactor = Compactor(self, "Compactor", sessions=tables.sessions, code=code, environment=environment)
            tables.grant_compaction(compactor.function)
            model.grant_invoke(compactor.function)
            function_logs["Compactor"] = compactor.log_group

        if settings.jwt_issuer:
            issuer, audience = settings.jwt_issuer, list(settings.jwt_audience)
        else:
            auth = UserPoolAuth(self, "Auth", existing_pool_id=settings.user_pool_id)
            issuer, audience = auth.issuer, auth.audience
            CfnOutput(self, "UserPoolId", value=auth.user_pool.user_pool_id)
            CfnOutput(self, "UserPoolClientId", value=auth.client.user_pool_client_id)
        api = AgentApi(self, "Http", handler=agent.alias, jwt_issuer=issuer, jwt_audience=audience)

        monitoring = Monitoring(
            self,
            "Monitoring",
            function_logs=function_logs,
            function=agent.function,
            stage=api.stage,
            alarm_email=settings.alarm_email,
            worker=worker,
            compactor=compactor,
        )

        CfnOutput(self, "ApiUrl", value=api.url)
        CfnOutput(self, "AlarmTopicArn", value=monitoring.topic.topic_arn)
        CfnOutput(self, "SessionsTableName", value=tables.sessions.table_name)
        CfnOutput(self, "LongTermTableName", value=tables.long_term.table_name)
        CfnOutput(self, "DashboardName", value=monitoring.dashboard.dashboard_name)
        # Where to look when something fails (docs/DEPLOY.md, "Troubleshooting").
        CfnOutput(self, "AgentLogGroupName", value=agent.log_group.log_group_name)
        CfnOutput(self, "WorkerLogGroupName", value=worker.log_group.log_group_name)
        CfnOutput(self, "WorkerFunctionName", value=worker.function.function_name)
        CfnOutput(self, "AsyncTurnDeadLetterQueueUrl", value=worker.dead_letters.queue_url)
        if compactor is not None:
            CfnOutput(self, "CompactorLogGroupName", value=compactor.log_group.log_group_name)
            CfnOutput(self, "CompactionDeadLetterQueueUrl", value=compactor.dead_letters.queue_url)
        if model.secret is not None:
            CfnOutput(self, "AnthropicApiKeySecretArn", value=model.secret.secret_arn)
