"""The benchmark harness counts and groups DynamoDB calls correctly (no timing is asserted)."""

import threading

from benchmarks.harness import Call, CallRecorder, Check, Section, percentile, sequential_groups
from benchmarks.run import _summary
from stores import LONG_TERM, SESSIONS


def call(started: float, ended: float, operation: str = "Query") -> Call:
    return Call(operation, {}, started, ended, {}, 1)


def test_overlapping_calls_are_one_sequential_step():
    # Given two reads that overlap and a write after both
    calls = [call(0.0, 2.0), call(0.5, 1.5), call(2.5, 3.0, "TransactWriteItems")]
    # When they are grouped
    groups = sequential_groups(calls)
    # Then the critical path has two steps: the reads together, then the write
    assert [[c.operation for c in g] for g in groups] == [["Query", "Query"], ["TransactWriteItems"]]


def test_the_recorder_sees_every_call_of_the_client_even_from_other_threads(dynamodb):
    # Given a recorder on the client
    with CallRecorder(dynamodb) as recorder:
        # When two queries run in parallel threads, then one write
        threads = [
            threading.Thread(target=dynamodb.query, kwargs={
                "TableName": table, "KeyConditionExpression": f"{key} = :k",
                "ExpressionAttributeValues": {":k": {"S": "u1"}}})
            for table, key in ((SESSIONS, "pk"), (LONG_TERM, "user_id"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        dynamodb.put_item(TableName=LONG_TERM, Item={"user_id": {"S": "u1"}, "fact_key": {"S": "k"}})
        calls = recorder.take()
    # Then all three are recorded, with their parameters, and the write comes last
    assert sorted(c.operation for c in calls[:2]) == ["Query", "Query"]
    assert calls[2].operation == "PutItem" and calls[2].params["TableName"] == LONG_TERM
    assert all(c.attempts == 1 for c in calls)
    # And nothing is recorded once the recorder is closed
    dynamodb.put_item(TableName=LONG_TERM, Item={"user_id": {"S": "u1"}, "fact_key": {"S": "j"}})
    assert recorder.take() == []


def test_percentile_is_a_value_that_occurred():
    samples = [float(n) for n in range(1, 101)]
    assert percentile(samples, 0.5) == 50.0 and percentile(samples, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0


def test_the_summary_puts_a_verdict_beside_every_target():
    sections = [Section("a", [], checks=[Check("ratio", "1.10", "<= 1.3", True)]),
                Section("b", [], checks=[Check("steps", "3", "2", False)])]
    summary = _summary(sections, elapsed=12.0)
    assert "| ratio | 1.10 | <= 1.3 | pass |" in summary
    assert "| steps | 3 | 2 | MISS |" in summary
    assert "2 of 2" not in summary and "1 of 2 met" in summary
