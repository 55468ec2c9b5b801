"""Configuration from the environment, read and validated once per cold start."""

import os
from dataclasses import dataclass

PROVIDERS = ("anthropic", "bedrock", "offline")
DEFAULT_MODEL_IDS = {
    "anthropic": "claude-sonnet-4-5",
    "bedrock": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "offline": "offline",
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    sessions_table: str
    long_term_table: str
    session_ttl_days: int
    max_turns: int
    provider: str
    model_id: str
    anthropic_api_key: str | None
    anthropic_secret_arn: str | None
    write_drill_until: float | None

    @classmethod
    def from_env(cls, env=os.environ) -> "Settings":
        provider = env.get("AGENT_MODEL_PROVIDER", "offline")
        if provider not in PROVIDERS:
            raise ConfigError(f"AGENT_MODEL_PROVIDER must be one of {PROVIDERS}, not {provider!r}")
        settings = cls(
            sessions_table=_required(env, "SESSIONS_TABLE_NAME"),
            long_term_table=_required(env, "LONG_TERM_TABLE_NAME"),
            session_ttl_days=_positive_int(env, "SESSION_TTL_DAYS", 30),
            max_turns=_positive_int(env, "MEMORY_MAX_TURNS", 20),
            provider=provider,
            model_id=env.get("AGENT_MODEL_ID") or DEFAULT_MODEL_IDS[provider],
            anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
            anthropic_secret_arn=env.get("ANTHROPIC_API_KEY_SECRET_ARN") or None,
            write_drill_until=float(env["MEMORY_WRITE_DRILL_UNTIL"])
            if env.get("MEMORY_WRITE_DRILL_UNTIL")
            else None,
        )
        if provider == "anthropic" and not (settings.anthropic_api_key or settings.anthropic_secret_arn):
            raise ConfigError("the anthropic provider needs ANTHROPIC_API_KEY or ANTHROPIC_API_KEY_SECRET_ARN")
        return settings


def _required(env, name: str) -> str:
    if not env.get(name):
        raise ConfigError(f"{name} must be set")
    return env[name]


def _positive_int(env, name: str, default: int) -> int:
    raw = env.get(name, str(default))
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name} must be a positive integer, not {raw!r}")
    return int(raw)
