"""Compaction off the request path: the sessions stream, its filtered mapping with bounded retries
and a dead-letter destination, the compactor function and its alarm."""

import json

import pytest

from agent.config import Settings
from compactor.logic import new_turns_by_session
from infra import compactor as compactor_infra
from infra.settings import STRATEGIES
from memory import window
from memory.conversation import ConversationStore
from memory.keys import session_key
from memory.registry import Fence
from memory.turns import Turn, Usage
from synthesis import COMPACTOR_HANDLER


def mapping(synth) -> dict:
    return synth.one("AWS::Lambda::EventSourceMapping")["Properties"]


def filter_pattern(synth) -> dict:
    (criterion,) = mapping(synth)["FilterCriteria"]["Filters"]
    return json.loads(criterion["Pattern"])


def selects(pattern: dict, event: dict) -> bool:
    """Lambda event filtering for the syntax the stack uses: nested objects, lists of exact values
    and {"prefix": ...}. Anything else is refused, so this test cannot pass by not understanding."""
    for key, rule in pattern.items():
        if isinstance(rule, dict):
            if not isinstance(event.get(key), dict) or not selects(rule, event[key]):
                return False
            continue
        value = event.get(key)
        for option in rule:
            if isinstance(option, dict):
                assert set(option) == {"prefix"}, f"unsupported filter syntax {option}"
                if isinstance(value, str) and value.startswith(option["prefix"]):
                    break
            elif option == value:
                break
        else:
            return False
    return True


def test_the_compactor_reads_the_sessions_tables_stream_from_now_on(synth):
    sessions = synth.output_ref("SessionsTableName")
    properties = mapping(synth)

    assert properties["EventSourceArn"] == {"Fn::GetAtt": [sessions, "StreamArn"]}
    (function_id,) = [key for key, value in synth.resources("AWS::Lambda::Function").items()
                      if value["Properties"]["Handler"] == COMPACTOR_HANDLER]
    assert properties["FunctionName"] == {"Ref": function_id}
    assert properties["StartingPosition"] == "LATEST"
    assert synth.template["Resources"][sessions]["Properties"]["StreamSpecification"] == {"StreamViewType": "KEYS_ONLY"}


def dead_letters(synth) -> tuple[str, dict]:
    """The compactor's dead-letter queue (the worker of asynchronous turns has its own)."""
    ((queue_id, queue),) = [(k, v) for k, v in synth.resources("AWS::SQS::Queue").items()
                            if k.startswith("CompactorDeadLetters")]
    return queue_id, queue


def test_retries_are_bounded_then_records_go_to_the_dead_letter_queue(synth):
    properties = mapping(synth)
    queue_id, queue = dead_letters(synth)

    assert properties["MaximumRetryAttempts"] == 2
    assert properties["BisectBatchOnFunctionError"] is True
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["MaximumRecordAgeInSeconds"] == 3600
    assert properties["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}}
    assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_a_dead_lettered_compaction_alarms_the_topic(synth):
    queue_id, _ = dead_letters(synth)
    (alarm,) = [a["Properties"] for a in synth.resources("AWS::CloudWatch::Alarm").values()
                if a["Properties"].get("Dimensions", [{}])[0].get("Value") == {"Fn::GetAtt": [queue_id, "QueueName"]}]
    topic = {"Ref": synth.output_ref("AlarmTopicArn")}

    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["TreatMissingData"] == "ignore"  # test_stack_monitoring: it stays in ALARM while letters remain
    assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]


def test_the_function_has_time_for_a_full_batch_of_sessions(synth):
    function = synth.function(COMPACTOR_HANDLER)["Properties"]
    per_session = compactor_infra.SESSION_BUDGET.to_seconds()

    assert mapping(synth)["BatchSize"] == compactor_infra.BATCH_SIZE
    assert function["Timeout"] >= per_session * mapping(synth)["BatchSize"]
    assert (function["Runtime"], function["Architectures"]) == ("python3.14", ["arm64"])
    assert function["TracingConfig"] == {"Mode": "Active"}


def test_the_compactor_and_the_agent_read_the_same_memory_settings(synth):
    agent, compactor = synth.function_environment(), synth.function_environment(COMPACTOR_HANDLER)
    settings = Settings.from_env(compactor)

    assert settings.memory_strategy == Settings.from_env(agent).memory_strategy == "compaction"
    assert (settings.sessions_table, settings.max_turns) == (Settings.from_env(agent).sessions_table, 20)
    assert compactor["POWERTOOLS_SERVICE_NAME"] == "compactor"


def test_without_compaction_there_is_no_compactor(variant):
    assert Settings.from_env(variant.function_environment()).memory_strategy == "token_budget"
    assert not variant.resources("AWS::Lambda::EventSourceMapping")
    assert not [f for f in variant.resources("AWS::Lambda::Function").values()
                if f["Properties"]["Handler"] == COMPACTOR_HANDLER]


def test_the_stacks_strategies_are_the_codes():
    assert STRATEGIES == window.STRATEGIES


FENCE = Fence(generation="g1", mark=0)


class Recorder:
    """A DynamoDB client that turns every item the store writes into the stream record DynamoDB
    would deliver for the table's view type: keys and a sequence number, plus the new image only if
    the view type carries it."""

    def __init__(self, view_type: str):
        self.view_type = view_type
        self.records: list[dict] = []

    def transact_write_items(self, TransactItems):
        for item in TransactItems:
            for kind, request in item.items():
                if kind == "Put":
                    self._record("INSERT", request["Item"])
                elif kind == "Update":
                    self._record("MODIFY", request["Key"])

    def put_item(self, Item, **_):
        self._record("INSERT", Item)

    def update_item(self, Key, **_):
        self._record("MODIFY", Key)

    def batch_get_item(self, RequestItems):
        """The session's entry, of the generation FENCE names: its fence holds."""
        [(table, request)] = RequestItems.items()
        entry = {**request["Keys"][0], "gen": {"S": FENCE.generation}}
        return {"Responses": {table: [entry]}}

    def _record(self, event_name: str, item: dict) -> None:
        change = {"Keys": {"pk": item["pk"], "sk": item["sk"]}, "SequenceNumber": str(len(self.records) + 1),
                  "StreamViewType": self.view_type}
        if self.view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
            change["NewImage"] = item
        self.records.append({"eventName": event_name, "eventSource": "aws:dynamodb", "dynamodb": change})


@pytest.fixture
def stream_records(synth) -> list[dict]:
    """The stream records of a stored turn (its item and the session's registry entry) and a stored summary,
    as the template's sessions stream delivers them."""
    sessions = synth.template["Resources"][synth.output_ref("SessionsTableName")]
    recorder = Recorder(sessions["Properties"]["StreamSpecification"]["StreamViewType"])
    store = ConversationStore(client=recorder, table_name="sessions", ttl_days=30)
    turn = Turn(user_id="u1", session_id="s1", turn_id="0001800000000000-0000", created_at="2027-01-15T08:00:00Z",
                messages=[{"role": "user", "content": "hi"}], usage=Usage())
    store.append(turn, FENCE)
    summary = window.Summary(text="s", covered_through=turn.turn_id, covered_turns=1, tokens=1)
    assert store.save_summary("u1", "s1", summary, replaces=None, fence=FENCE)
    return recorder.records


def test_the_filter_selects_new_turns_and_never_the_compactors_own_writes(synth, stream_records):
    pattern = filter_pattern(synth)

    selected = [r["dynamodb"]["Keys"]["sk"]["S"] for r in stream_records if selects(pattern, r)]
    ignored = [r["dynamodb"]["Keys"]["sk"]["S"] for r in stream_records if not selects(pattern, r)]

    assert selected == ["TURN#0001800000000000-0000"]
    assert sorted(ignored) == ["SESSION#s1", "TURN~SUMMARY"]


def test_the_compactor_finds_its_sessions_in_records_of_the_streams_view_type(synth, stream_records):
    # Given the records the filter lets through, with only what the stream's view type carries
    selected = [r for r in stream_records if selects(filter_pattern(synth), r)]

    # Then the compactor's code finds the session to compact and the record to report on failure
    assert new_turns_by_session(selected) == {session_key("u1", "s1"): ["1"]}


def test_the_filter_evaluator_refuses_syntax_it_cannot_judge():
    with pytest.raises(AssertionError):
        selects({"eventName": [{"anything-but": "REMOVE"}]}, {"eventName": "INSERT"})
