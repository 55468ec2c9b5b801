"""The compactor: folds older turns into the session summary, idempotently, off the request path."""

import importlib
import json
import os

import boto3

from aws_lambda_powertools import Logger

from agent.providers import ModelError
from agent.turn import run_turn
from compactor.logic import COMPACTED, NOT_DUE, SUPERSEDED, Compactor, process
from dynamodb_actions import recorded_actions
from fakes import ScriptedModel, captured_logs, text
from infra.tables import COMPACTOR_TABLE_ACTIONS
from memory.client import DYNAMODB_CONFIG
from memory.conversation import ConversationStore
from memory.keys import SUMMARY_SK, TURN_PREFIX, session_key
from memory.turns import Turn, Usage
from memory.window import CHARS_PER_TOKEN, WindowPolicy

TRIGGER, KEEP = 6, 3
logger = Logger(service="compactor-test")


class Counter:
    def __init__(self):
        self.counts: dict[str, float] = {}

    def add_metric(self, *, name, unit, value):
        self.counts[name] = self.counts.get(name, 0) + value


def stored_turns(conversations, count: int, session: str = "s1", first: int = 1) -> list[Turn]:
    turns = []
    for n in range(first, first + count):
        turn = Turn(
            user_id="u1", session_id=session, turn_id=f"{n:013d}-0000", created_at="2027-01-15T08:00:00.000+00:00",
            messages=[
                {"role": "user", "content": f"message {n}"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": f"toolu_{n}", "name": "remember",
                                                   "input": {"key": "k", "value": f"v{n}"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": "ok"}]},
                {"role": "assistant", "content": [{"type": "text", "text": f"reply {n}"}]},
            ],
            usage=Usage(100, 20),
        )
        conversations.append(turn)
        turns.append(turn)
    return turns


def sent_messages(call: dict) -> list[dict]:
    """The messages of the compactor's request, one JSON object a line after its heading."""
    return [json.loads(line) for line in call["messages"][0]["content"].split("New turns:\n")[1].splitlines()]


def compactor(conversations, model=None, **overrides) -> Compactor:
    return Compactor(**{
        "conversations": conversations, "model": model or ScriptedModel(*[text(f"summary {n}") for n in range(10)]),
        "trigger_turns": TRIGGER, "summary_max_tokens": 200, "max_input_tokens": 50_000, **overrides,
    })


def record(session: str, turn_id: str, event: str = "INSERT", sequence: str = "1") -> dict:
    keys = {"pk": {"S": session_key("u1", session)}, "sk": {"S": TURN_PREFIX + turn_id}}
    return {"eventName": event, "dynamodb": {"Keys": keys, "SequenceNumber": sequence}}


def test_below_the_trigger_nothing_is_summarised(conversations):
    # Given fewer uncovered turns than the trigger
    stored_turns(conversations, TRIGGER - 1)
    model = ScriptedModel()
    # When the compactor runs
    outcome = compactor(conversations, model).compact("u1", "s1")
    # Then the model is not called and there is no summary
    assert outcome == NOT_DUE and model.calls == []
    assert conversations.load_window("u1", "s1", limit=20)[0] is None


def test_at_the_trigger_the_oldest_turns_are_folded_and_the_newest_kept(conversations):
    # Given as many uncovered turns as the trigger
    turns = stored_turns(conversations, TRIGGER)
    model = ScriptedModel(text("they talked about v1 to v3"))
    # When the compactor runs
    outcome = compactor(conversations, model).compact("u1", "s1")
    # Then the oldest turns, all but the newest half, are summarised, one message a line, tool blocks without ids
    [call] = model.calls
    assert outcome == COMPACTED and call["tools"] == []
    assert [m["role"] for m in call["messages"]] == ["user"]
    sent = sent_messages(call)
    assert sent[0] == {"role": "user", "content": "message 1"}
    assert {"role": "assistant", "content": [{"tool": "remember", "input": {"key": "k", "value": "v3"}}]} in sent
    assert len(sent) == 4 * KEEP and {"role": "user", "content": "message 4"} not in sent
    # And the read path gets the summary and exactly the uncovered turns, in one Query
    summary, uncovered = conversations.load_window("u1", "s1", limit=20)
    assert (summary.text, summary.covered_through, summary.covered_turns) == (
        "they talked about v1 to v3", turns[KEEP - 1].turn_id, KEEP)
    assert summary.tokens == len("they talked about v1 to v3") // CHARS_PER_TOKEN + 1
    assert [t.turn_id for t in uncovered] == [t.turn_id for t in turns[KEEP:]]


def test_running_twice_neither_duplicates_nor_loses_coverage(conversations):
    # Given a session that was just compacted
    stored_turns(conversations, TRIGGER)
    model = ScriptedModel(text("first"), text("second"))
    compactor(conversations, model).compact("u1", "s1")
    # When the same stream record is delivered again
    outcome = compactor(conversations, model).compact("u1", "s1")
    # Then nothing changes
    assert outcome == NOT_DUE and len(model.calls) == 1
    summary, _ = conversations.load_window("u1", "s1", limit=20)
    assert (summary.text, summary.covered_turns) == ("first", KEEP)


def test_a_concurrent_run_loses_cleanly_to_the_one_that_wrote_first(conversations):
    # Given two compactors working on the same session at once: one finishes while the other summarises
    stored_turns(conversations, TRIGGER)
    winner = compactor(conversations, ScriptedModel(text("winner")))

    class Racing:
        def __init__(self):
            self.calls = []

        def complete(self, **call):
            self.calls.append(call)
            assert winner.compact("u1", "s1") == COMPACTED
            return text("loser")

    # When the slower one writes
    outcome = compactor(conversations, Racing()).compact("u1", "s1")
    # Then its write is refused and the coverage is the winner's, counted once
    assert outcome == SUPERSEDED
    summary, uncovered = conversations.load_window("u1", "s1", limit=20)
    assert (summary.text, summary.covered_turns, len(uncovered)) == ("winner", KEEP, TRIGGER - KEEP)


def test_a_backlog_is_folded_oldest_first_without_gaps(conversations):
    # Given far more uncovered turns than the trigger (the compactor was failing for a while)
    turns = stored_turns(conversations, 20)
    worker = compactor(conversations)
    # When it runs until nothing is due
    outcomes = []
    while (outcome := worker.compact("u1", "s1")) != NOT_DUE:
        outcomes.append(outcome)
    # Then every run advanced from where the last one stopped, up to the newest half-trigger
    summary, uncovered = conversations.load_window("u1", "s1", limit=20)
    assert outcomes == [COMPACTED] * 3
    assert (summary.covered_through, summary.covered_turns) == (turns[-KEEP - 1].turn_id, 20 - KEEP)
    assert [t.turn_id for t in uncovered] == [t.turn_id for t in turns[-KEEP:]]


def test_the_summary_is_held_to_its_size(conversations):
    # Given a model that ignores the requested length
    stored_turns(conversations, TRIGGER)
    compactor(conversations, ScriptedModel(text("x" * 5000)), summary_max_tokens=50).compact("u1", "s1")
    # Then the stored summary is cut to the size the read path budgets for
    summary, _ = conversations.load_window("u1", "s1", limit=20)
    assert len(summary.text) == 50 * CHARS_PER_TOKEN and summary.tokens == 50


def test_a_deleted_session_gets_no_summary_back(conversations):
    # Given a session deleted while its summary was being written
    stored_turns(conversations, TRIGGER)

    class DeletingModel:
        def complete(self, **_):
            conversations.delete("u1", "s1")
            return text("too late")

    # When the compactor writes
    outcome = compactor(conversations, DeletingModel()).compact("u1", "s1")
    # Then the summary is refused: the erased session stays erased
    assert outcome == SUPERSEDED
    assert conversations.load_window("u1", "s1", limit=20) == (None, [])


def test_a_failed_summary_is_logged_counted_and_retried_by_the_mapping(conversations):
    # Given a model that fails, and a batch with two new turns of the session and one of another
    stored_turns(conversations, TRIGGER)
    stored_turns(conversations, TRIGGER, session="s2")

    class Failing:
        def complete(self, **_):
            raise ModelError("overloaded", transient=True)

    metrics = Counter()
    records = [record("s1", "x", sequence="11"), record("s1", "y", sequence="12"), record("s2", "z", sequence="13")]
    # When the batch is processed
    with captured_logs(logger) as logs:
        response = process(records, compactor=compactor(conversations, Failing()), logger=logger, metrics=metrics)
    # Then every record of the failed sessions goes back to the mapping, and the failure is visible
    assert response == {"batchItemFailures": [{"itemIdentifier": n} for n in ("11", "12", "13")]}
    assert metrics.counts == {"CompactionFailed": 2}
    assert [(line["message"], line["error"]) for line in logs()] == [("compaction_failed", "ModelError")] * 2
    # And the read falls back to the turns, untouched
    assert conversations.load_window("u1", "s1", limit=20) == (None, conversations.load("u1", "s1", limit=20))


def test_only_new_turns_trigger_one_run_per_session(conversations):
    # Given a batch with two new turns of one session, an update, a removal and a non-turn item
    stored_turns(conversations, TRIGGER)
    model = ScriptedModel(text("once"))
    metrics = Counter()
    records = [
        record("s1", "a"), record("s1", "b"), record("s1", "c", event="MODIFY"), record("s9", "d", event="REMOVE"),
        {"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": session_key("u1", "s1")}, "sk": {"S": SUMMARY_SK}},
                                             "SequenceNumber": "9"}},
    ]
    # When the batch is processed
    response = process(records, compactor=compactor(conversations, model), logger=logger, metrics=metrics)
    # Then the session was compacted once and nothing failed
    assert response == {"batchItemFailures": []}
    assert len(model.calls) == 1 and metrics.counts == {"Compactions": 1}


def test_the_history_still_returns_every_turn_and_deletion_removes_the_summary(conversations):
    # Given a compacted session
    turns = stored_turns(conversations, TRIGGER)
    compactor(conversations).compact("u1", "s1")
    # Then the full history is unchanged, without the summary item
    history, _ = conversations.history("u1", "s1", limit=100)
    assert [t.turn_id for t in history] == [t.turn_id for t in turns]
    # And deleting the session deletes its summary too
    conversations.delete("u1", "s1")
    assert conversations.load_window("u1", "s1", limit=20) == (None, [])


def test_a_turn_with_compaction_sends_the_summary_and_the_uncovered_turns(memory, conversations):
    # Given a compacted session and the compaction strategy
    stored_turns(conversations, TRIGGER)
    compactor(conversations, ScriptedModel(text("the user likes v1 to v3"))).compact("u1", "s1")
    memory.window = WindowPolicy(strategy="compaction")
    model = ScriptedModel(text("hi"))
    # When a turn runs
    result = run_turn(memory=memory, model=model, user_id="u1", session_id="s1", message="and now?")
    # Then the prompt holds the summary in the system prompt and only the turns after it
    [call] = model.calls
    assert "the user likes v1 to v3" in call["system"]
    assert [m["content"] for m in call["messages"] if isinstance(m["content"], str)] == [
        "message 4", "message 5", "message 6", "and now?"]
    assert (result.context_summary, result.context_turns) == (True, 3)


def test_the_lambda_handler_compacts_from_a_stream_event(dynamodb, monkeypatch):
    # Given the compactor function's environment (moto is already active)
    monkeypatch.setitem(os.environ, "SESSIONS_TABLE_NAME", "sessions")
    monkeypatch.setitem(os.environ, "LONG_TERM_TABLE_NAME", "long-term")
    monkeypatch.setitem(os.environ, "MEMORY_STRATEGY", "compaction")
    monkeypatch.setitem(os.environ, "MEMORY_MAX_TURNS", "20")
    monkeypatch.setitem(os.environ, "MEMORY_COMPACTION_TRIGGER_TURNS", str(TRIGGER))
    monkeypatch.setitem(os.environ, "AGENT_MODEL_PROVIDER", "offline")
    handler = importlib.reload(importlib.import_module("compactor.handler"))
    stored_turns(handler.conversations, TRIGGER)
    # When the stream delivers the newest turn
    response = handler.lambda_handler({"Records": [record("s1", f"{TRIGGER:013d}-0000")]}, LambdaContext())
    # Then the offline model's summary is stored
    assert response == {"batchItemFailures": []}
    summary, _ = handler.conversations.load_window("u1", "s1", limit=20)
    assert summary.text.startswith("[offline model]") and summary.covered_turns == KEEP


class LambdaContext:
    function_name = "compactor"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:compactor"
    aws_request_id = "test"



def test_the_compactor_calls_exactly_its_grant(conversations, dynamodb, monkeypatch):
    # Given every DynamoDB call of two compactions, recorded as IAM actions (a transaction by its
    # items): one plain, one whose session another instance erases just as its summary lands
    stored_turns(conversations, TRIGGER)
    stored_turns(conversations, TRIGGER, session="s2")
    other = ConversationStore(client=boto3.client("dynamodb", config=DYNAMODB_CONFIG), table_name="sessions",
                              ttl_days=30)
    check = conversations.registry.check

    def erased_meanwhile(user_id, session_id, fence):
        if session_id == "s2":
            other.delete(user_id, session_id)
        check(user_id, session_id, fence)

    monkeypatch.setattr(conversations.registry, "check", erased_meanwhile)
    with recorded_actions(dynamodb) as actions:
        # When it compacts both
        assert compactor(conversations).compact("u1", "s1") == COMPACTED
        assert compactor(conversations).compact("u1", "s2") == SUPERSEDED
    # Then the second removed its summary again, and the calls are exactly the compactor's grant
    assert other.registry.fence("u1", "s2") is None
    assert [i for i in dynamodb.scan(TableName="sessions")["Items"] if i["pk"]["S"] == session_key("u1", "s2")] == []
    assert actions == set(COMPACTOR_TABLE_ACTIONS), actions
