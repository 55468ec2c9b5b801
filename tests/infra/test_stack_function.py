"""The agent function: runtime, budget, logging, tracing, SnapStart alias and its environment."""

import json
import time

import aws_cdk.aws_lambda as lambda_
from synthesis import REPO_ROOT, alias_of

from agent.config import Settings
from agent.snapstart import KEEP_ALIVE_EVENT
from infra import agent_function
from infra.settings import Settings as DeploySettings


def newest_python_runtime() -> str:
    pythons = [r.name for r in lambda_.Runtime.ALL if r.family == lambda_.RuntimeFamily.PYTHON]
    return max(pythons, key=lambda name: tuple(int(part) for part in name.removeprefix("python").split(".")))


def test_function_runs_the_newest_python_on_arm64_with_the_layer(synth):
    function = synth.function()["Properties"]
    layer_id = next(iter(synth.resources("AWS::Lambda::LayerVersion")))
    layer = synth.template["Resources"][layer_id]["Properties"]

    assert function["Runtime"] == newest_python_runtime() == "python3.14"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == "agent.handler.lambda_handler"
    assert function["Layers"] == [{"Ref": layer_id}]
    assert (layer["CompatibleRuntimes"], layer["CompatibleArchitectures"]) == (["python3.14"], ["arm64"])


def test_code_asset_is_the_functions_folder_without_bytecode_or_framework_adapters(synth):
    code_key = synth.function()["Properties"]["Code"]["S3Key"]
    staged = synth.outdir / f"asset.{code_key.removesuffix('.zip')}"

    assert (staged / "agent" / "handler.py").is_file()
    assert (staged / "memory" / "schema.py").is_file()
    assert not list(staged.rglob("__pycache__")) and not list(staged.rglob("*.pyc"))
    # The memory library's Strands / LangChain / OpenAI adapters need frameworks no function has.
    assert (REPO_ROOT / "functions" / "memory" / "adapters" / "strands.py").is_file()
    assert not (staged / "memory" / "adapters").exists()


def test_whole_turn_budget_fits_inside_the_api_integration_timeout(synth):
    from functions.agent import budget

    function = synth.function()["Properties"]
    integration = synth.one("AWS::ApiGatewayV2::Integration")["Properties"]
    # The model's deadline and the best-effort write end before the function's timeout
    assert budget.SYNC_MODEL_SECONDS + budget.MEMORY_WRITE_SECONDS + budget.OVERHEAD_SECONDS == function["Timeout"] == 25
    assert integration["TimeoutInMillis"] == 29_000
    assert function["Timeout"] * 1000 < integration["TimeoutInMillis"] <= 30_000
    assert function["MemorySize"] == agent_function.MEMORY_SIZE_MB
    # Everything before the model, counted from the request's entry, fails before the model's deadline
    assert budget.PRE_MODEL_SECONDS < budget.SYNC_MODEL_SECONDS
    # And each of those steps fails within its share: attempts x (connect + read), plus <= 1 s of backoff
    from agent.providers import anthropic
    from memory import client

    assert anthropic.SECRET_ATTEMPTS * (anthropic.SECRET_CONNECT_SECONDS + anthropic.SECRET_READ_SECONDS) + 1 \
        <= budget.SECRET_READ_SECONDS
    assert client.MAX_ATTEMPTS * (client.CONNECT_TIMEOUT_SECONDS + client.READ_TIMEOUT_SECONDS) + 1 \
        <= min(budget.MEMORY_READ_SECONDS, budget.MEMORY_WRITE_SECONDS)


def test_logs_are_json_into_a_log_group_with_retention_and_tracing_is_active(synth):
    function = synth.function()["Properties"]
    log_group_id = function["LoggingConfig"]["LogGroup"]["Ref"]
    log_group = synth.template["Resources"][log_group_id]["Properties"]

    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    assert function["LoggingConfig"]["ApplicationLogLevel"] == "INFO"
    assert log_group["RetentionInDays"] == 30
    assert function["TracingConfig"] == {"Mode": "Active"}


def test_snapstart_applies_to_published_versions_and_each_function_is_invoked_through_its_alias(synth):
    integration = synth.one("AWS::ApiGatewayV2::Integration")["Properties"]
    agent_alias = alias_of(synth, "agent.handler.lambda_handler")[0]
    for handler in ("agent.handler.lambda_handler", "agent.worker.lambda_handler"):
        alias_id, alias, version = alias_of(synth, handler)
        assert synth.function(handler)["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
        assert alias["Properties"]["Name"] == "live"
        assert version["DeletionPolicy"] == "Delete"  # an old version's snapshot is not kept cached
    assert "SnapStart" not in synth.function("compactor.handler.lambda_handler")["Properties"]
    assert integration["IntegrationUri"] == {"Ref": agent_alias}
    for permission in synth.resources("AWS::Lambda::Permission").values():
        assert permission["Properties"]["FunctionName"] == {"Ref": agent_alias}


def test_a_schedule_keeps_each_snapstart_alias_active(synth):
    # Given the schedules of the template
    schedules = [s["Properties"] for s in synth.resources("AWS::Scheduler::Schedule").values()]
    # Then each SnapStart alias is invoked with the keep-alive event well within 14 days
    aliases = {alias_of(synth, h)[0] for h in ("agent.handler.lambda_handler", "agent.worker.lambda_handler")}
    assert {s["Target"]["Arn"]["Ref"] for s in schedules} == aliases
    for schedule in schedules:
        assert schedule["State"] == "ENABLED" and schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert schedule["ScheduleExpression"] == "rate(1 day)"
        assert json.loads(schedule["Target"]["Input"]) == KEEP_ALIVE_EVENT


def test_environment_is_what_the_code_reads_at_cold_start(synth):
    # Given the function's environment from the template
    env = synth.function_environment()

    # When the code's own configuration reads it
    settings = Settings.from_env(env)

    # Then it validates, and names the stack's tables, secret and model
    assert settings.sessions_table == f"resolved-{synth.output_ref('SessionsTableName')}"
    assert settings.long_term_table == f"resolved-{synth.output_ref('LongTermTableName')}"
    assert settings.anthropic_secret_arn == f"resolved-{synth.output_ref('AnthropicApiKeySecretArn')}"
    assert settings.anthropic_api_key is None  # never a plaintext key in the environment
    assert (settings.provider, settings.model_id) == ("anthropic", "claude-sonnet-4-5")
    assert (settings.session_ttl_days, settings.max_turns) == (30, 20)
    assert env["POWERTOOLS_SERVICE_NAME"] == "agent"
    assert env["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"  # no reply text in X-Ray
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "AgentMemory"


def test_bedrock_variant_has_no_secret_and_names_an_inference_profile(variant):
    env = variant.function_environment()
    settings = Settings.from_env(env)

    assert settings.provider == "bedrock"
    assert settings.model_id == "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert "ANTHROPIC_API_KEY_SECRET_ARN" not in env
    assert not variant.resources("AWS::SecretsManager::Secret")


def test_alarm_drill_context_sets_the_end_of_the_drill_minutes_from_synth_time(variant):
    until = int(variant.function_environment()["MEMORY_WRITE_DRILL_UNTIL"])
    # The session's synth ran within the last few minutes, with -c alarmDrillMinutes=15.
    assert 0 < until - time.time() <= 15 * 60


class FakeNode:
    def __init__(self, **context):
        self.context = context

    def try_get_context(self, key):
        return self.context.get(key)


def test_drill_minutes_become_epoch_seconds_from_now():
    settings = DeploySettings.from_context(FakeNode(alarmDrillMinutes="15"), now=1_700_000_000.5)
    assert settings.memory_write_drill_until == 1_700_000_000 + 15 * 60
    assert DeploySettings.from_context(FakeNode()).memory_write_drill_until is None
