"""The alarm path, proven without AWS: the line the code logs on a suppressed memory write is
selected by the template's metric filter, whose metric the alarm watches; and the alarm drill
switch of the template makes the code emit exactly that line, then stops."""

import io
import json

import pytest
from botocore.exceptions import ClientError

from agent.config import Settings
from agent.observability import logger
from cloudwatch_filter import matches, parse
from memory.resilient import ResilientMemory
from memory.turns import Turn

SUPPRESSED_LINE = (
    '{"level":"WARNING","location":"_best_effort:75","message":"memory_write_suppressed",'
    '"timestamp":"2026-01-01 00:00:00,000+0000","service":"agent","session_id":"s1","error":"ClientError"}'
)
PATTERN = '{ $.message = "memory_write_suppressed" }'


# -- the evaluator itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        SUPPRESSED_LINE,
        '{"message": "memory_write_suppressed"}',
        '{"message":"memory_write_suppressed","nested":{"message":"other"}}',
    ],
)
def test_pattern_selects_json_events_whose_message_is_the_event(line):
    assert matches(PATTERN, line)


@pytest.mark.parametrize(
    "line",
    [
        '{"message": "memory_write_ok"}',
        '{"message": "memory_write_suppressed_later"}',  # equality is exact, not a prefix
        '{"message": "Memory_Write_Suppressed"}',  # and case-sensitive
        '{"msg": "memory_write_suppressed"}',  # a missing field never matches
        '{"nested": {"message": "memory_write_suppressed"}}',
        '{"message": ["memory_write_suppressed"]}',  # a list is not a string
        "WARNING memory_write_suppressed session_id=s1",  # plain text: no JSON pattern matches
        '["memory_write_suppressed"]',
        "",
    ],
)
def test_pattern_rejects_everything_else(line):
    assert not matches(PATTERN, line)


def test_evaluator_supports_nesting_numbers_wildcards_and_conjunction():
    event = '{"a": {"b": [{"c": "x-1"}]}, "n": 42, "s": "42", "level": "WARNING"}'

    assert matches('{ $.a.b[0].c = "x-1" }', event)
    assert matches('{ $.a.b[0].c = "x-*" }', event)
    assert not matches('{ $.a.b[1].c = "x-1" }', event)
    assert matches("{ $.n = 42 }", event)
    assert not matches("{ $.s = 42 }", event)  # a number matches numbers only
    assert not matches('{ $.n = "42" }', event)  # and a string strings only
    assert matches('{ $.level = "WARNING" && $.n = 42 }', event)
    assert not matches('{ $.level = "WARNING" && $.n = 41 }', event)


@pytest.mark.parametrize(
    "pattern",
    [
        '{ $.message != "x" }',
        '{ ($.message = "x") }',
        '{ $.a = "x" || $.b = "y" }',
        "ERROR",
        '{ $.a = "x\\"y" }',
    ],
)
def test_evaluator_refuses_syntax_it_cannot_judge(pattern):
    with pytest.raises(ValueError):
        parse(pattern)


# -- the template's filter, metric and alarm against the code's real log line ---------------------


# Stand-ins for ConversationStore: only `append` is reached on a write.
class FailingConversations:
    def append(self, turn, *_):
        error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
        raise ClientError(error, "TransactWriteItems")


class RecordingConversations:
    def __init__(self):
        self.turns = []

    def append(self, turn, *_):
        self.turns.append(turn)


def a_turn() -> Turn:
    return Turn(
        user_id="u1", session_id="s1", turn_id="0000000000001-abcd", created_at="2026-01-01T00:00:00Z"
    )


@pytest.fixture
def log_lines():
    """What the agent's own Powertools logger writes, one JSON line per event, as CloudWatch gets it."""
    stream = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(stream)
    yield lambda: stream.getvalue().splitlines()
    handler.setStream(previous)


def memory_with(conversations, **kwargs) -> ResilientMemory:
    return ResilientMemory(conversations=conversations, facts=None, logger=logger, max_turns=20, **kwargs)


def test_every_function_that_runs_turns_has_the_metric_filter_on_its_log_group(synth):
    # The API runs synchronous turns, the worker asynchronous ones: both log memory_write_suppressed.
    filtered = {f["Properties"]["LogGroupName"]["Ref"] for f in synth.resources("AWS::Logs::MetricFilter").values()}
    logging_to = {synth.function(handler)["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
                  for handler in ("agent.handler.lambda_handler", "agent.worker.lambda_handler")}
    assert filtered == logging_to and len(filtered) == 2


def test_metric_filter_in_template_selects_the_line_the_code_emits(synth, log_lines):
    # Given the template's metric filters
    filters = [f["Properties"] for f in synth.resources("AWS::Logs::MetricFilter").values()]
    assert {f["FilterPattern"] for f in filters} == {PATTERN}
    metric_filter = filters[0]

    # When a memory write fails in the real ResilientMemory with the agent's real logger
    result = memory_with(FailingConversations()).append(a_turn())

    # Then the write is suppressed, one line is logged, and the filter selects exactly that line
    assert result == "suppressed"
    (line,) = log_lines()
    event = json.loads(line)
    assert event["message"] == "memory_write_suppressed"
    assert (event["level"], event["service"]) == ("WARNING", "agent")
    assert (event["session_id"], event["error"]) == ("s1", "ClientError")
    assert matches(metric_filter["FilterPattern"], line)


def test_a_stored_write_logs_nothing_the_filter_counts(log_lines):
    assert memory_with(RecordingConversations()).append(a_turn()) == "ok"
    assert not any(matches(PATTERN, line) for line in log_lines())


def test_each_selected_line_adds_one_to_the_metric_the_alarm_watches(synth):
    transformations = [t for f in synth.resources("AWS::Logs::MetricFilter").values()
                       for t in f["Properties"]["MetricTransformations"]]
    alarm = synth.alarm()["Properties"]

    assert len(transformations) == 2
    for transformation in transformations:
        assert transformation == {
            "MetricName": "MemoryWriteSuppressed",
            "MetricNamespace": "AgentMemory",
            "MetricValue": "1",
        }
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AgentMemory", "MemoryWriteSuppressed")
    assert "Dimensions" not in alarm  # the filter's metric has none


# -- the alarm drill, end to end on this machine ---------------------------------------------------


def test_alarm_drill_from_the_template_suppresses_writes_until_it_ends(variant, log_lines):
    # Given the code's settings from a template synthesized with -c alarmDrillMinutes=15
    settings = Settings.from_env(variant.function_environment())
    assert settings.write_drill_until is not None
    store = RecordingConversations()
    now = [settings.write_drill_until - 60]
    memory = memory_with(store, write_drill_until=settings.write_drill_until, clock=lambda: now[0])

    # When ten turns are written during the drill
    results = [memory.append(a_turn()) for _ in range(10)]

    # Then every write is suppressed and counted: ten lines, the alarm's threshold in one period
    assert results == ["suppressed"] * 10
    assert store.turns == []
    assert sum(matches(PATTERN, line) for line in log_lines()) == 10

    # And once the drill's time is over, writes are stored again
    now[0] = settings.write_drill_until
    assert memory.append(a_turn()) == "ok"
    assert len(store.turns) == 1


def test_without_the_drill_context_no_write_is_ever_failed_on_purpose(synth):
    settings = Settings.from_env(synth.function_environment())
    assert "MEMORY_WRITE_DRILL_UNTIL" not in synth.function_environment()
    assert settings.write_drill_until is None
