"""The compactor Lambda: stream records of new turns in, session summaries out.

The event source mapping on the sessions table's stream delivers only INSERTs of turn items (filter:
sk prefix TURN#; the summary's own key does not match it). Failed sessions come back as batch item
failures: the mapping retries them a bounded number of times, then hands them to its on-failure
destination. No turn ever waits for this function."""

import functools

from aws_lambda_powertools import Logger, Metrics

from agent.config import Settings
from agent.observability import NAMESPACE
from agent.providers import AnthropicModel, BedrockModel, Model, OfflineModel
from compactor.logic import Compactor, process
from memory.client import dynamodb_client
from memory.conversation import ConversationStore

SERVICE = "compactor"
SECRET_CACHE_SECONDS = 300

logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)
settings = Settings.from_env()
conversations = ConversationStore(
    client=dynamodb_client(), table_name=settings.sessions_table, ttl_days=settings.session_ttl_days
)


def model() -> Model:
    """The agent's model settings; the SDK is imported on first use, as in the agent."""
    if settings.provider == "offline":
        return OfflineModel()
    if settings.provider == "bedrock":
        return _bedrock_model()
    if settings.anthropic_api_key:
        return _anthropic_model(settings.anthropic_api_key)
    from aws_lambda_powertools.utilities import parameters

    return _anthropic_model(parameters.get_secret(settings.anthropic_secret_arn, max_age=SECRET_CACHE_SECONDS))


@functools.cache
def _bedrock_model() -> Model:
    return BedrockModel(model_id=settings.model_id)


@functools.lru_cache(maxsize=1)
def _anthropic_model(api_key: str) -> Model:
    return AnthropicModel(api_key=api_key, model_id=settings.model_id)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    compactor = Compactor(
        conversations=conversations,
        model=model(),
        trigger_turns=settings.compaction_trigger_turns,
        summary_max_tokens=settings.summary_max_tokens,
        max_input_tokens=settings.max_prompt_tokens,
    )
    return process(event["Records"], compactor=compactor, logger=logger, metrics=metrics)
