"""The handler's model, pointed at a fake model API (tests/fakes.py SlowModelAPI) through the real
anthropic SDK or the real botocore."""

from fakes import SlowModelAPI, provider_model

# Behaviour-only tests run the fake ten times faster than a real model.
FAST = {"first_token_seconds": 0.1, "tokens_per_second": 600}


def attach(handler, monkeypatch, api: SlowModelAPI, provider: str):
    """The handler's model talks to `api`, as `provider` would to the real service."""
    model = provider_model(monkeypatch, api, provider)
    monkeypatch.setattr(handler, "model", lambda: model)
    return model
