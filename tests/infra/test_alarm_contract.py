"""The alarm path, proven without AWS: the line the code logs on a suppressed memory write is
kept by Lambda's log-level filter and selected by the template's metric filter, whose metric the
alarm watches; and the alarm drill switch of the template makes the real handler emit exactly that
line, then stops."""

import io
import json
import os
import re
import subprocess
import sys
from datetime import datetime

import pytest
from botocore.exceptions import ClientError

from agent.config import Settings
from agent.observability import logger
from cloudwatch_filter import matches, parse
from memory.resilient import ResilientMemory
from memory.turns import Turn
from synthesis import REPO_ROOT

SUPPRESSED_LINE = (
    '{"level":"WARNING","location":"_best_effort:75","message":"memory_write_suppressed",'
    '"timestamp":"2026-01-01T00:00:00.000+00:00","service":"agent","session_id":"s1","error":"ClientError"}'
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


def metric_filters(synthesized) -> dict[str, dict]:
    """Log group id -> the metric filter on it."""
    found = synthesized.resources("AWS::Logs::MetricFilter").values()
    return {f["Properties"]["LogGroupName"]["Ref"]: f["Properties"] for f in found}


def test_every_functions_log_group_counts_suppressed_writes(synth, variant):
    # A suppressed write is counted wherever it is logged: no function's log group is left out.
    for synthesized in (synth, variant):
        filters = metric_filters(synthesized)
        log_groups = [f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
                      for f in synthesized.resources("AWS::Lambda::Function").values()]
        assert sorted(filters) == sorted(log_groups)
        assert {f["FilterPattern"] for f in filters.values()} == {PATTERN}


def test_metric_filter_in_template_selects_the_line_the_code_emits(synth, log_lines):
    # Given the template's metric filter on the agent's log group
    agent_logs = synth.function()["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    metric_filter = metric_filters(synth)[agent_logs]
    assert metric_filter["FilterPattern"] == PATTERN

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
    alarm = synth.alarm()["Properties"]

    for metric_filter in metric_filters(synth).values():
        assert metric_filter["MetricTransformations"] == [{
            "MetricName": "MemoryWriteSuppressed",
            "MetricNamespace": "AgentMemory",
            "MetricValue": "1",
        }]
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


# -- the real handler, as Lambda runs it and filters its output ------------------------------------

# Lambda's log levels, lowest first; Python's logging names WARN "WARNING" and FATAL "CRITICAL".
LAMBDA_LOG_LEVELS = {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3, "WARNING": 3, "ERROR": 4, "FATAL": 5, "CRITICAL": 5}
RFC_3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")

# One drill turn through the real handler module, in a fresh interpreter (the handler reads its
# configuration once, at import) on moto: the log lines land on stdout, as in Lambda.
DRILL_TURN = """
import boto3, json, sys
from moto import mock_aws
with mock_aws():
    from local.tables import ensure_tables
    from memory.client import DYNAMODB_CONFIG
    import os
    ensure_tables(boto3.client("dynamodb", config=DYNAMODB_CONFIG),
                  sessions_table=os.environ["SESSIONS_TABLE_NAME"], long_term_table=os.environ["LONG_TERM_TABLE_NAME"])
    from agent import handler
    from local.server import LocalContext, to_event
    event = to_event("POST", "/sessions/drill/messages", {"X-Local-User": "u1"}, b'{"message": "drill 1"}', "127.0.0.1")
    print(json.dumps(handler.lambda_handler(event, LocalContext())), file=sys.stderr)
"""


def lambda_keeps(line: str, application_log_level: str) -> bool:
    """Lambda's JSON log-level filter: a line's `level` counts only with an RFC 3339 `timestamp`;
    a line without either is read as INFO."""
    try:
        event = json.loads(line)
    except ValueError:
        event = None
    level = "INFO"
    if isinstance(event, dict) and str(event.get("level", "")).upper() in LAMBDA_LOG_LEVELS:
        timestamp = event.get("timestamp")
        if isinstance(timestamp, str) and RFC_3339.fullmatch(timestamp):
            level = event["level"].upper()
    return LAMBDA_LOG_LEVELS[level] >= LAMBDA_LOG_LEVELS[application_log_level]


def test_lambda_filter_model_reads_lines_without_a_valid_timestamp_as_info():
    warning = '{"level": "WARNING", "message": "m", "timestamp": "%s"}'
    assert lambda_keeps(warning % "2026-01-01T00:00:00.000+00:00", "WARN")
    assert not lambda_keeps(warning % "2026-01-01 00:00:00,000+0000", "WARN")  # Powertools' default format
    assert not lambda_keeps('{"_aws": {"Timestamp": 1}}', "WARN")  # an EMF metric line has no level
    assert lambda_keeps('{"_aws": {"Timestamp": 1}}', "INFO")


def test_every_function_keeps_info_logs_so_metric_lines_and_warnings_reach_cloudwatch(synth, variant):
    # EMF metric lines carry no level (INFO to Lambda): above INFO, every metric of the dashboard
    # would be dropped, and a WARNING line without its RFC 3339 timestamp too.
    for synthesized in (synth, variant):
        for function in synthesized.resources("AWS::Lambda::Function").values():
            config = function["Properties"]["LoggingConfig"]
            assert (config["LogFormat"], config["ApplicationLogLevel"]) == ("JSON", "INFO")


def test_a_drill_turn_through_the_real_handler_logs_a_line_lambda_keeps_and_the_filter_counts(variant):
    # Given the agent's environment from a template synthesized with -c alarmDrillMinutes=15, with the
    # offline model (the model is not on this path) and the log level Lambda derives from the template
    function = variant.function()["Properties"]
    level = function["LoggingConfig"]["ApplicationLogLevel"]
    environment = {
        **{k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL_DYNAMODB"},
        **variant.function_environment(),
        "AGENT_MODEL_PROVIDER": "offline", "AGENT_MODEL_ID": "offline",
        "AWS_LAMBDA_LOG_LEVEL": level, "PYTHONPATH": f"{REPO_ROOT / 'functions'}:{REPO_ROOT}",
    }
    assert "MEMORY_WRITE_DRILL_UNTIL" in environment

    # When one turn runs through the real handler
    run = subprocess.run([sys.executable, "-c", DRILL_TURN], env=environment, cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    response = json.loads(run.stderr.strip().splitlines()[-1])

    # Then the turn is answered, its write suppressed, and exactly one line says so
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["memory"] == {"write": "suppressed"}
    lines = [line for line in run.stdout.splitlines() if '"memory_write_suppressed"' in line]
    assert len(lines) == 1, run.stdout
    (line,) = lines
    # And its timestamp is RFC 3339, so Lambda keeps it at the template's level and at any up to WARN
    timestamp = json.loads(line)["timestamp"]
    assert RFC_3339.fullmatch(timestamp), timestamp
    assert datetime.fromisoformat(timestamp).utcoffset() is not None
    for application_level in ("TRACE", "DEBUG", "INFO", "WARN", level):
        assert lambda_keeps(line, application_level), application_level
    # And the metric filter on the agent's log group counts it
    assert matches(metric_filters(variant)[function["LoggingConfig"]["LogGroup"]["Ref"]]["FilterPattern"], line)


def test_every_powertools_logger_of_the_functions_writes_rfc_3339_timestamps():
    # Given every Logger the Lambda code builds (a new function's own Logger included)
    built = [(path.name, line.strip()) for path in (REPO_ROOT / "functions").rglob("*.py")
             for line in path.read_text().splitlines() if re.search(r"\bLogger\(", line)]
    assert built, "no Powertools Logger found: has the code moved?"

    # Then each asks for RFC 3339 timestamps
    assert [entry for entry in built if "use_rfc3339=True" not in entry[1]] == []
