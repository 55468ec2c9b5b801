"""Context-window configuration: read and validated once, with documented defaults."""

import pytest

from agent.config import MAX_TURNS_LIMIT, MIN_PROMPT_TOKENS, ConfigError, Settings

BASE = {"SESSIONS_TABLE_NAME": "s", "LONG_TERM_TABLE_NAME": "l"}


def test_the_defaults_are_a_token_budget_of_half_the_context_window():
    settings = Settings.from_env(BASE)
    assert (settings.memory_strategy, settings.max_turns, settings.max_prompt_tokens) == ("token_budget", 20, 100_000)
    assert (settings.compaction_trigger_turns, settings.summary_max_tokens) == (20, 800)


def test_compaction_is_configured_by_its_trigger_and_summary_size():
    settings = Settings.from_env(BASE | {
        "MEMORY_STRATEGY": "compaction", "MEMORY_MAX_TURNS": "30", "MEMORY_COMPACTION_TRIGGER_TURNS": "12",
        "MEMORY_SUMMARY_MAX_TOKENS": "500", "MEMORY_MAX_PROMPT_TOKENS": "50000",
    })
    assert (settings.memory_strategy, settings.compaction_trigger_turns, settings.summary_max_tokens,
            settings.max_prompt_tokens) == ("compaction", 12, 500, 50_000)


@pytest.mark.parametrize("env, complaint", [
    ({"MEMORY_STRATEGY": "everything"}, "MEMORY_STRATEGY"),
    ({"MEMORY_MAX_TURNS": str(MAX_TURNS_LIMIT + 1)}, "MEMORY_MAX_TURNS"),
    ({"MEMORY_MAX_TURNS": "0"}, "MEMORY_MAX_TURNS"),
    ({"MEMORY_MAX_PROMPT_TOKENS": str(MIN_PROMPT_TOKENS - 1)}, "MEMORY_MAX_PROMPT_TOKENS"),
    ({"MEMORY_MAX_PROMPT_TOKENS": "250000"}, "MEMORY_MAX_PROMPT_TOKENS"),
    ({"MEMORY_MAX_PROMPT_TOKENS": "lots"}, "MEMORY_MAX_PROMPT_TOKENS"),
    ({"MEMORY_SUMMARY_MAX_TOKENS": "2000", "MODEL_MAX_OUTPUT_TOKENS": "1024"}, "MEMORY_SUMMARY_MAX_TOKENS"),
    ({"MODEL_MAX_OUTPUT_TOKENS": "100"}, "MODEL_MAX_OUTPUT_TOKENS"),
    ({"MEMORY_STRATEGY": "compaction", "MEMORY_COMPACTION_TRIGGER_TURNS": "21"}, "MEMORY_COMPACTION_TRIGGER_TURNS"),
    ({"MEMORY_STRATEGY": "compaction", "MEMORY_COMPACTION_TRIGGER_TURNS": "1"}, "MEMORY_COMPACTION_TRIGGER_TURNS"),
])
def test_a_bad_window_setting_stops_the_cold_start(env, complaint):
    with pytest.raises(ConfigError, match=complaint):
        Settings.from_env(BASE | env)


def test_the_fact_caps_have_documented_defaults_and_can_be_set():
    defaults = Settings.from_env(BASE)
    assert (defaults.max_facts, defaults.max_fact_value_chars, defaults.max_fact_bytes) == (200, 500, 65_536)
    custom = Settings.from_env(BASE | {"MEMORY_MAX_FACTS": "50", "MEMORY_MAX_FACT_VALUE_CHARS": "1000",
                                       "MEMORY_MAX_FACT_BYTES": "10000"})
    assert (custom.max_facts, custom.max_fact_value_chars, custom.max_fact_bytes) == (50, 1000, 10_000)


@pytest.mark.parametrize("env, complaint", [
    ({"MEMORY_MAX_FACTS": "0"}, "MEMORY_MAX_FACTS"),
    ({"MEMORY_MAX_FACT_VALUE_CHARS": "16001"}, "MEMORY_MAX_FACT_VALUE_CHARS"),
    ({"MEMORY_MAX_FACT_BYTES": "-1"}, "MEMORY_MAX_FACT_BYTES"),
])
def test_a_bad_fact_cap_stops_the_cold_start(env, complaint):
    with pytest.raises(ConfigError, match=complaint):
        Settings.from_env(BASE | env)


def test_the_bound_of_memory_max_turns_is_accepted():
    assert Settings.from_env(BASE | {"MEMORY_MAX_TURNS": str(MAX_TURNS_LIMIT)}).max_turns == MAX_TURNS_LIMIT
