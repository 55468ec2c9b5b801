"""Compaction on DynamoDB Local: real stream records replayed into the compactor, and the local
stack running the compactor after each reply."""

import dataclasses
import threading
import uuid

import boto3
import pytest
from botocore.config import Config

from agent.observability import logger
from agent.providers import OfflineModel
from client import as_user, http_client
from compactor.logic import Compactor, process
from local.dynamodb import free_port
from local.server import Limits, make_server, turn_stream
from local.tables import create_table_request
from memory.conversation import ConversationStore
from memory.resilient import ResilientMemory
from memory.schema import SESSIONS
from memory.turns import Turn, Usage
from memory.window import WindowPolicy

TRIGGER, KEEP = 4, 2


class Counter:
    def __init__(self):
        self.counts: dict[str, float] = {}

    def add_metric(self, *, name, unit, value):
        self.counts[name] = self.counts.get(name, 0) + value


@pytest.fixture
def streamed_table(handler, dynamodb_endpoint):
    """A sessions table with a stream, as the infra builds it; dropped afterwards."""
    name = f"it-stream-{uuid.uuid4().hex[:8]}"
    # Table administration is slower than the data path's 1 s read timeout allows.
    admin = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, config=Config(read_timeout=30))
    request = create_table_request(name, SESSIONS) | {
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}}
    stream_arn = admin.create_table(**request)["TableDescription"]["LatestStreamArn"]
    admin.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2})
    yield name, stream_arn, boto3.client("dynamodbstreams", endpoint_url=dynamodb_endpoint)
    admin.delete_table(TableName=name)


def stream_records(streams, stream_arn: str) -> list[dict]:
    records = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            records += page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return records


def a_turn(n: int) -> Turn:
    return Turn(user_id="u1", session_id="s1", turn_id=f"{n:013d}-0000", created_at="2027-01-15T08:00:00.000+00:00",
                messages=[{"role": "user", "content": f"message {n}"},
                          {"role": "assistant", "content": [{"type": "text", "text": f"reply {n}"}]}],
                usage=Usage(10, 3))


def test_stream_records_replayed_into_the_compactor_fold_each_turn_once(handler, streamed_table):
    # Given turns written to a table with a stream
    name, stream_arn, streams = streamed_table
    store = ConversationStore(client=handler.dynamodb, table_name=name, ttl_days=30)
    for n in range(1, 9):
        store.append(a_turn(n))
    records = stream_records(streams, stream_arn)
    compactor = Compactor(conversations=store, model=OfflineModel(), trigger_turns=TRIGGER,
                          summary_max_tokens=200, max_input_tokens=16_000)
    metrics = Counter()
    # When the stream's records are replayed into the compactor one by one, as the mapping would
    for record in records:
        assert process([record], compactor=compactor, logger=logger, metrics=metrics) == {"batchItemFailures": []}
    summary, uncovered = store.load_window("u1", "s1", limit=20)
    # Then the summary covers the oldest turns exactly once and the newest stay verbatim
    assert [t.turn_id for t in uncovered] == [a_turn(n).turn_id for n in (7, 8)]
    assert (summary.covered_through, summary.covered_turns) == (a_turn(6).turn_id, 6)
    # And replaying the whole stream again (at-least-once delivery) changes nothing
    assert process(records, compactor=compactor, logger=logger, metrics=metrics) == {"batchItemFailures": []}
    assert store.load_window("u1", "s1", limit=20) == (summary, uncovered)
    # And the summary's own write put a record on the stream that the compactor ignores
    assert any(r["dynamodb"]["Keys"]["sk"]["S"] == "TURN~SUMMARY" for r in stream_records(streams, stream_arn))
    # And it took two runs: the records are read after all eight turns landed, so the first run
    # already finds a backlog (turns 1-4 folded) and the second folds 5-6
    assert metrics.counts == {"Compactions": 2}


@pytest.fixture
def compacting_stack(handler, monkeypatch):
    """The local stack with MEMORY_STRATEGY=compaction: the compactor runs after each reply."""
    from compactor import handler as compactor

    monkeypatch.setattr(handler, "memory", ResilientMemory(
        conversations=handler.memory.conversations, facts=handler.memory.facts, logger=logger, max_turns=6,
        window=WindowPolicy(strategy="compaction")))
    monkeypatch.setattr(compactor, "conversations", handler.memory.conversations)
    monkeypatch.setattr(compactor, "settings", dataclasses.replace(
        compactor.settings, memory_strategy="compaction", compaction_trigger_turns=TRIGGER))
    server = make_server(handler.lambda_handler, free_port(), turn_stream(compactor.lambda_handler),
                         limits=Limits(throttling=None))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with http_client(f"http://127.0.0.1:{server.server_address[1]}", timeout=30) as client:
        yield client
    server.shutdown()
    server.server_close()


def test_the_local_stack_compacts_after_each_reply_and_keeps_the_whole_history(compacting_stack, user):
    api = compacting_stack
    # When a conversation passes the trigger
    contexts = []
    for n in range(8):
        response = api.post("/sessions/long/messages", json={"message": f"turn {n}"}, headers=as_user(user))
        assert response.status_code == 200, response.text
        contexts.append(response.json()["context"])
    # Then from the turn after the first compaction on, the prompt holds a summary and few turns
    assert [c["summary"] for c in contexts] == [False] * TRIGGER + [True] * (8 - TRIGGER)
    assert max(c["turns"] for c in contexts[TRIGGER:]) < TRIGGER
    # And nothing is deleted: the history still has every message
    history = api.get("/sessions/long/messages", headers=as_user(user)).json()["messages"]
    assert [m["content"] for m in history if m["role"] == "user"] == [f"turn {n}" for n in range(8)]
    # And deleting the session takes the summary with it
    assert api.delete("/sessions/long", headers=as_user(user)).status_code == 204
    first = api.post("/sessions/long/messages", json={"message": "again"}, headers=as_user(user)).json()
    assert first["context"] == {"turns": 0, "summary": False, "facts": 0, "facts_omitted": 0}
