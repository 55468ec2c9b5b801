"""Memory overhead of a turn: the handler's time with the offline model (model time excluded)
against the floor, a bare boto3 Query plus PutItem on the same table, side by side in one process.

Every iteration runs one handler turn and the floor, alternating which goes first, so drift of this
noisy 2-core machine and of DynamoDB Local hits both alike. Two references, measured in the same
iterations, say where a gap comes from: the floor with the turn's own write (a TransactWriteItems)
in place of the PutItem, and the floor with the turn's own reads (window and facts, in parallel)."""

import copy
import time
import uuid

import boto3

from benchmarks.harness import (
    MAX_TURNS,
    SESSIONS_TABLE,
    CallRecorder,
    Check,
    Section,
    TimedModel,
    handler_module,
    invoke,
    ms,
    percentile,
    quiet_stdout,
    sequential_groups,
    table,
    turn_event,
)

ITERATIONS = 500
# Fills the window past MAX_TURNS, so that every measured Query returns a full window; warms pools.
WARMUP = MAX_TURNS + 20
TARGET_P50_RATIO = 1.3
MESSAGE = "Could you summarise what we discussed about the quarterly plan, in three short points?"
FACTS = {"name": "Ada", "city": "Paris", "favourite_colour": "green"}
SERIES = ("turn", "dynamodb", "code", "model", "floor", "own_write", "own_reads")


def run(endpoint: str) -> Section:
    from agent.providers import OfflineModel
    from memory.client import DYNAMODB_CONFIG
    from memory.conversation import session_key

    handler = handler_module(endpoint)
    client = boto3.client("dynamodb", config=DYNAMODB_CONFIG)
    user_id, session_id = f"bench-overhead-{uuid.uuid4().hex[:8]}", "overhead"
    for key, value in FACTS.items():
        handler.memory.facts.put(user_id, key, value)
    floor = Floor(client, handler.memory, user_id, session_id, session_key(user_id, session_id))

    model = TimedModel(OfflineModel())
    original_model, handler.model = handler.model, lambda: model
    samples = {name: [] for name in SERIES}
    try:
        with CallRecorder(handler.dynamodb) as recorder, quiet_stdout():
            turn = _turn(handler, model, recorder, user_id, session_id)
            for iteration in range(WARMUP + ITERATIONS):
                if iteration % 2 == 0:
                    turn = _turn(handler, model, recorder, user_id, session_id)
                # The floor writes a copy of the latest turn's item: the same size, another key.
                measured = floor.measure(turn["write"], iteration)
                if iteration % 2 == 1:
                    turn = _turn(handler, model, recorder, user_id, session_id)
                if iteration >= WARMUP:
                    for name in SERIES:
                        samples[name].append(turn[name] if name in turn else measured[name])
    finally:
        handler.model = original_model

    p50 = {name: percentile(values, 0.5) for name, values in samples.items()}
    p99 = {name: percentile(values, 0.99) for name, values in samples.items()}

    def row(label, name):
        return [label, ms(p50[name]), ms(p99[name])]

    ratio, ratio99 = p50["turn"] / p50["floor"], p99["turn"] / p99["floor"]
    rows = [
        row("handler turn, model time excluded", "turn"),
        row("- of which DynamoDB calls on the critical path", "dynamodb"),
        row("- of which the rest (routing, validation, prompt, JSON, logs, metrics)", "code"),
        row("floor: bare boto3 Query + PutItem, same table", "floor"),
        ["**ratio handler / floor**", f"**{ratio:.2f}**", f"**{ratio99:.2f}**"],
        row("reference: the floor's Query + the turn's TransactWriteItems", "own_write"),
        row("reference: the turn's two reads (in parallel) + the floor's PutItem", "own_reads"),
        row("the offline model (excluded above)", "model"),
    ]
    write_gap = (p50["own_write"] - p50["floor"]) / p50["floor"]
    reads_gap = (p50["own_reads"] - p50["floor"]) / p50["floor"]
    code_gap = p50["code"] / p50["floor"]
    return Section(
        title="Memory overhead of a turn",
        tables=[table(["per turn", "p50", "p99"], rows)],
        checks=[Check("memory overhead, p50 handler / floor", f"{ratio:.2f}", f"<= {TARGET_P50_RATIO}",
                      ratio <= TARGET_P50_RATIO)],
        notes=[
            f"{ITERATIONS} turns after {WARMUP} warm-up turns, on one session holding more than the "
            f"{MAX_TURNS}-turn window, and {len(FACTS)} long-term facts; every iteration runs a turn and "
            "the floor side by side, in alternating order. The handler is the Lambda entry point "
            "(`agent.handler.lambda_handler`) called in process with an API Gateway event, X-Ray off as "
            f"in the local stack. The floor reads the same window (the same Query, `Limit` {MAX_TURNS}, "
            "consistent) and writes an item of the same size as the turn's.",
            f"Where the gap comes from, against the floor's p50: the turn's TransactWriteItems in place "
            f"of a PutItem adds {write_gap:+.0%}; the second read (the facts table, in parallel with the "
            f"window) adds {reads_gap:+.0%}; the handler's own code adds {code_gap:+.0%}. The first two "
            "are DynamoDB Local's server time, which on this machine shares the two cores with the "
            "benchmark: two reads in flight at once are not free here, as they are against DynamoDB "
            "over a network. The write is a transaction by design (the turn, its session's META item "
            "for `GET /sessions` and, with an Idempotency-Key, the replay record must be stored together "
            "or not at all); a PutItem-only turn would give that up.",
        ],
    )


def _turn(handler, model, recorder, user_id: str, session_id: str) -> dict:
    recorder.take()
    model.reset()
    started = time.perf_counter()
    response = invoke(handler, turn_event(user_id, session_id, MESSAGE))
    elapsed = time.perf_counter() - started
    if response["statusCode"] != 200 or '"write":"ok"' not in response["body"].replace(" ", ""):
        raise RuntimeError(f"the turn failed: {response['statusCode']} {response['body'][:200]}")
    calls = recorder.take()
    dynamodb = sum(max(c.ended for c in group) - min(c.started for c in group) for group in sequential_groups(calls))
    turn_seconds = elapsed - model.seconds
    return {
        "turn": turn_seconds,
        "dynamodb": dynamodb,
        "code": turn_seconds - dynamodb,
        "model": model.seconds,
        "write": next(c for c in calls if c.operation == "TransactWriteItems").params["TransactItems"],
    }


class Floor:
    """The floor and the two references, each on keys of its own so none disturbs the session."""

    def __init__(self, client, memory, user_id: str, session_id: str, pk: str):
        self._client, self._memory = client, memory
        self._user_id, self._session_id = user_id, session_id
        self._floor_pk = {"S": f"{pk}-floor"}
        self._query = {
            "TableName": SESSIONS_TABLE,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ScanIndexForward": False,
            "Limit": MAX_TURNS,
            "ConsistentRead": True,
        }

    def measure(self, write: list[dict], iteration: int) -> dict:
        put = copy.deepcopy(write[0]["Put"])
        put["Item"].update(pk=self._floor_pk, sk={"S": f"TURN#floor-{iteration:08d}"})

        started = time.perf_counter()
        self._client.query(**self._query)
        self._client.put_item(TableName=SESSIONS_TABLE, Item=put["Item"])
        floor = time.perf_counter() - started

        own_write = copy.deepcopy(write)
        for item in own_write:
            action = next(iter(item.values()))
            action.get("Item", action.get("Key"))["pk"] = self._floor_pk
        own_write[0]["Put"]["Item"]["sk"] = {"S": f"TURN#floor-tx-{iteration:08d}"}
        started = time.perf_counter()
        self._client.query(**self._query)
        self._client.transact_write_items(TransactItems=own_write)
        with_own_write = time.perf_counter() - started

        put["Item"]["sk"] = {"S": f"TURN#floor-reads-{iteration:08d}"}
        started = time.perf_counter()
        self._memory.load(self._user_id, self._session_id)
        self._client.put_item(TableName=SESSIONS_TABLE, Item=put["Item"])
        with_own_reads = time.perf_counter() - started
        return {"floor": floor, "own_write": with_own_write, "own_reads": with_own_reads}
