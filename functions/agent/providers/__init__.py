"""Model providers behind one interface (agent.providers.contract): Claude through Anthropic's API or
Amazon Bedrock, or a canned offline model; configured_model() builds the configured one.

The SDKs are imported inside the provider that needs them: a cold start pays only for its own."""

import functools

from agent.providers.anthropic import AnthropicModel, key_from_secret, secrets_client
from agent.providers.bedrock import BedrockModel
from agent.providers.contract import (DEFAULT_MAX_OUTPUT_TOKENS, AnswerStopped, DeadlineReached, Model, ModelError,
                                      ModelResponse)
from agent.providers.offline import OfflineModel

__all__ = ["DEFAULT_MAX_OUTPUT_TOKENS", "AnswerStopped", "AnthropicModel", "BedrockModel", "DeadlineReached", "Model",
           "ModelError", "ModelResponse", "OfflineModel", "configured_model", "preload"]


def configured_model(settings) -> Model:
    """The model of agent.config.Settings, built on first use: a process imports only its provider's
    SDK, keeps one client, and reads the API key secret through a 5-minute cache."""
    if settings.provider == "offline":
        return OfflineModel(tokens_per_second=settings.offline_tokens_per_second)
    if settings.provider == "bedrock":
        return _bedrock_model(settings.model_id, settings.max_output_tokens)
    return _anthropic_model(settings.anthropic_api_key or key_from_secret(settings.anthropic_secret_arn),
                            settings.model_id, settings.max_output_tokens)


@functools.cache
def _bedrock_model(model_id: str, max_output_tokens: int) -> Model:
    return BedrockModel(model_id=model_id, max_output_tokens=max_output_tokens)


@functools.lru_cache(maxsize=1)  # a rotated key replaces the client
def _anthropic_model(api_key: str, model_id: str, max_output_tokens: int) -> Model:
    return AnthropicModel(api_key=api_key, model_id=model_id, max_output_tokens=max_output_tokens)


def preload(settings) -> None:
    """What a SnapStart init puts into its snapshot: the provider's SDK and clients, never the key (a
    key read before the snapshot would outlive its rotation in every restored environment)."""
    if settings.provider == "anthropic":
        import anthropic  # noqa: F401  (~1 s of imports, paid once per version instead of per environment)

        if settings.anthropic_secret_arn:
            secrets_client()
    elif settings.provider == "bedrock":
        _bedrock_model(settings.model_id, settings.max_output_tokens)
