"""Configuration from the environment, read and validated once per cold start."""

import os
from dataclasses import dataclass

from agent.providers import DEFAULT_MAX_OUTPUT_TOKENS
from agent.shared import DEFAULT_MAX_TURNS, DEFAULT_MODEL_IDS, DEFAULT_SESSION_TTL_DAYS, PROVIDERS
from memory.long_term import DEFAULT_MAX_BYTES, DEFAULT_MAX_FACTS, DEFAULT_MAX_VALUE_CHARS
from memory.window import DEFAULT_MAX_PROMPT_TOKENS, DEFAULT_STRATEGY, MODEL_CONTEXT_TOKENS, STRATEGIES

# Room for the largest message (16,000 characters: ~4,000 tokens, more with JSON escapes), the tool
# loop's reserve (agent.turn: 6,144) and the system prompt with the tools: less could not hold a turn.
MIN_PROMPT_TOKENS = 16_000
# K, the turns read per prompt: at about 400 tokens a turn, 500 fill the largest prompt budget
# (200,000 tokens), so more could only read turns the budget drops. The window read pages past
# DynamoDB's 1 MB (memory.conversation), so K turns of any size up to here are read whole.
MAX_TURNS_LIMIT = 500
# Well under the model's answer limit (MODEL_MAX_OUTPUT_TOKENS): a summary is never cut off.
DEFAULT_SUMMARY_MAX_TOKENS = 800
# Claude Sonnet 4.5 writes at most 64,000 tokens per answer; below 256 a plain reply gets cut off.
MIN_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS = 256, 64_000
# A value as long as the longest message: with 4 bytes per character, a fact item stays far below
# DynamoDB's 400 KB limit.
MAX_FACT_VALUE_CHARS = 16_000


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    sessions_table: str
    long_term_table: str
    session_ttl_days: int
    max_turns: int
    memory_strategy: str
    max_prompt_tokens: int
    compaction_trigger_turns: int
    summary_max_tokens: int
    max_facts: int
    max_fact_value_chars: int
    max_fact_bytes: int
    provider: str
    model_id: str
    max_output_tokens: int
    anthropic_api_key: str | None
    anthropic_secret_arn: str | None
    write_drill_until: float | None
    # The worker Lambda of asynchronous turns; unset (make dev, tests): a thread of this process.
    worker_function: str | None = None
    # How fast the offline model writes its answer; 0 (unset): as fast as it can (tests). `make dev`
    # sets 40, a real model's pace, so the reply can be watched growing and a deadline cutting it.
    offline_tokens_per_second: float = 0

    @classmethod
    def from_env(cls, env=os.environ) -> "Settings":
        provider = env.get("AGENT_MODEL_PROVIDER", "offline")
        if provider not in PROVIDERS:
            raise ConfigError(f"AGENT_MODEL_PROVIDER must be one of {PROVIDERS}, not {provider!r}")
        max_turns = _positive_int(env, "MEMORY_MAX_TURNS", DEFAULT_MAX_TURNS)
        if max_turns > MAX_TURNS_LIMIT:
            raise ConfigError(f"MEMORY_MAX_TURNS must be from 1 to {MAX_TURNS_LIMIT}")
        settings = cls(
            sessions_table=_required(env, "SESSIONS_TABLE_NAME"),
            long_term_table=_required(env, "LONG_TERM_TABLE_NAME"),
            session_ttl_days=_positive_int(env, "SESSION_TTL_DAYS", DEFAULT_SESSION_TTL_DAYS),
            max_turns=max_turns,
            memory_strategy=env.get("MEMORY_STRATEGY", DEFAULT_STRATEGY),
            max_prompt_tokens=_positive_int(env, "MEMORY_MAX_PROMPT_TOKENS", DEFAULT_MAX_PROMPT_TOKENS),
            compaction_trigger_turns=_positive_int(env, "MEMORY_COMPACTION_TRIGGER_TURNS", max_turns),
            summary_max_tokens=_positive_int(env, "MEMORY_SUMMARY_MAX_TOKENS", DEFAULT_SUMMARY_MAX_TOKENS),
            max_facts=_positive_int(env, "MEMORY_MAX_FACTS", DEFAULT_MAX_FACTS),
            max_fact_value_chars=_positive_int(env, "MEMORY_MAX_FACT_VALUE_CHARS", DEFAULT_MAX_VALUE_CHARS),
            max_fact_bytes=_positive_int(env, "MEMORY_MAX_FACT_BYTES", DEFAULT_MAX_BYTES),
            provider=provider,
            model_id=env.get("AGENT_MODEL_ID") or DEFAULT_MODEL_IDS[provider],
            max_output_tokens=_positive_int(env, "MODEL_MAX_OUTPUT_TOKENS", DEFAULT_MAX_OUTPUT_TOKENS),
            anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
            anthropic_secret_arn=env.get("ANTHROPIC_API_KEY_SECRET_ARN") or None,
            write_drill_until=float(env["MEMORY_WRITE_DRILL_UNTIL"])
            if env.get("MEMORY_WRITE_DRILL_UNTIL")
            else None,
            worker_function=env.get("WORKER_FUNCTION_NAME") or None,
            offline_tokens_per_second=_pace(env, "OFFLINE_MODEL_TOKENS_PER_SECOND"),
        )
        if provider == "anthropic" and not (settings.anthropic_api_key or settings.anthropic_secret_arn):
            raise ConfigError("the anthropic provider needs ANTHROPIC_API_KEY or ANTHROPIC_API_KEY_SECRET_ARN")
        if not MIN_OUTPUT_TOKENS <= settings.max_output_tokens <= MAX_OUTPUT_TOKENS:
            raise ConfigError(f"MODEL_MAX_OUTPUT_TOKENS must be from {MIN_OUTPUT_TOKENS} to {MAX_OUTPUT_TOKENS}")
        _check_window(settings)
        return settings


def _check_window(settings: Settings) -> None:
    if settings.memory_strategy not in STRATEGIES:
        raise ConfigError(f"MEMORY_STRATEGY must be one of {STRATEGIES}, not {settings.memory_strategy!r}")
    if not MIN_PROMPT_TOKENS <= settings.max_prompt_tokens <= MODEL_CONTEXT_TOKENS:
        raise ConfigError(f"MEMORY_MAX_PROMPT_TOKENS must be from {MIN_PROMPT_TOKENS} to {MODEL_CONTEXT_TOKENS}")
    if settings.summary_max_tokens > settings.max_output_tokens:
        raise ConfigError("MEMORY_SUMMARY_MAX_TOKENS must be at most MODEL_MAX_OUTPUT_TOKENS, the model's answer limit")
    if settings.max_fact_value_chars > MAX_FACT_VALUE_CHARS:
        raise ConfigError(f"MEMORY_MAX_FACT_VALUE_CHARS must be at most {MAX_FACT_VALUE_CHARS}")
    # The window read (MEMORY_MAX_TURNS) must reach back to the summary, or turns fall in between.
    if settings.memory_strategy == "compaction" and not 2 <= settings.compaction_trigger_turns <= settings.max_turns:
        raise ConfigError("MEMORY_COMPACTION_TRIGGER_TURNS must be from 2 to MEMORY_MAX_TURNS")


def _required(env, name: str) -> str:
    if not env.get(name):
        raise ConfigError(f"{name} must be set")
    return env[name]


def _positive_int(env, name: str, default: int) -> int:
    raw = env.get(name, str(default))
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name} must be a positive integer, not {raw!r}")
    return int(raw)


def _pace(env, name: str) -> float:
    raw = env.get(name) or "0"
    try:
        pace = float(raw)
    except ValueError:
        pace = -1
    if not 0 <= pace < float("inf"):
        raise ConfigError(f"{name} must be a number of tokens per second, 0 or more, not {raw!r}")
    return pace
