"""The handler's model, pointed at a fake model API (tests/fakes.py SlowModelAPI) through the real
anthropic SDK or the real botocore."""

from agent.providers import AnthropicModel, BedrockModel
from fakes import SlowModelAPI

# Behaviour-only tests run the fake ten times faster than a real model.
FAST = {"first_token_seconds": 0.1, "tokens_per_second": 600}


def attach(handler, monkeypatch, api: SlowModelAPI, provider: str):
    """The handler's model talks to `api`, as `provider` would to the real service."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", api.url)
    model = (AnthropicModel(api_key="test-key", model_id="claude-test") if provider == "anthropic"
             else BedrockModel(model_id="anthropic.claude-test"))
    monkeypatch.setattr(handler, "model", lambda: model)
    return model
