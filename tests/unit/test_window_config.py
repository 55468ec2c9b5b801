"""Context-window configuration: read and validated once, with documented defaults."""

import pytest

from agent.config import MIN_PROMPT_TOKENS, ConfigError, Settings

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
