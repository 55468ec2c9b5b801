"""Memory overhead of a turn: the handler's time with the offline model (model time excluded)
against the floor, a bare boto3 Query plus PutItem on the same table, side by side in one process.

Every iteration runs one handler turn and the floor, alternating which goes first, so drift of this
noisy 2-core machine and of DynamoDB Local hits both alike. Two references, replayed with bare boto3
in the same iterations, split the gap into steps: the turn's own two reads (in parallel) in place of
the floor's Query, then also the turn's own write (a TransactWriteItems) in place of the PutItem.
The second reference is the turn's DynamoDB calls without the handler; the rest is the handler's code."""

import copy
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3

from benchmarks.harness import (
    LONG_TERM_TABLE,
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
    table,
    turn_event,
)

ITERATIONS = 500
# Fills the window past MAX_TURNS, so that every measured Query returns a full window; warms pools.
WARMUP = MAX_TURNS + 20
TARGET_P50_RATIO = 1.3
MESSAGE = "Could you summarise what we discussed about the quarterly plan, in three short points?"
FACTS = {"name": "Ada", "city": "Paris", "favourite_colour": "green"}
REFERENCES = ("floor", "own_reads", "own_calls")
SERIES = ("turn", "model", *REFERENCES)


def run(endpoint: str) -> Section:
    from agent.providers import OfflineModel
    from memory.client import DYNAMODB_CONFIG
    from memory.keys import session_key

    handler = handler_module(endpoint)
    client = boto3.client("dynamodb", config=DYNAMODB_CONFIG)
    user_id, session_id = f"bench-overhead-{uuid.uuid4().hex[:8]}", "overhead"
    for key, value in FACTS.items():
        handler.memory.facts.put(user_id, key, value)
    floor = Floor(client, session_key(user_id, session_id))

    model = TimedModel(OfflineModel())
    original_model, handler.model = handler.model, lambda: model
    samples = {name: [] for name in SERIES}
    try:
        with CallRecorder(handler.dynamodb) as recorder, quiet_stdout():
            turn = _turn(handler, model, recorder, user_id, session_id)
            for iteration in range(WARMUP + ITERATIONS):
                if iteration % 2 == 0:
                    turn = _turn(handler, model, recorder, user_id, session_id)
                # The references replay the latest turn's calls: the same reads, a write of the same size.
                measured = floor.measure(turn["calls"], iteration)
                if iteration % 2 == 1:
                    turn = _turn(handler, model, recorder, user_id, session_id)
                if iteration >= WARMUP:
                    for name in SERIES:
                        samples[name].append(turn[name] if name in turn else measured[name])
    finally:
        handler.model = original_model
        floor.close()

    p50 = {name: percentile(values, 0.5) for name, values in samples.items()}
    p99 = {name: percentile(values, 0.99) for name, values in samples.items()}

    def row(label, name):
        return [label, ms(p50[name]), ms(p99[name])]

    def ratio_row(label, over, under):
        return [f"**{label}**", f"**{p50[over] / p50[under]:.2f}**", f"**{p99[over] / p99[under]:.2f}**"]

    ratio = p50["turn"] / p50["floor"]
    rows = [
        row("handler turn, model time excluded", "turn"),
        row("floor: bare boto3 Query + PutItem, same table", "floor"),
        ratio_row("ratio handler / floor", "turn", "floor"),
        row("step 1: the turn's three reads (fence, window and facts, in parallel) + the floor's PutItem", "own_reads"),
        row("step 2: the turn's own calls, bare: its three reads in parallel + its PutItem + its confirm", "own_calls"),
        ratio_row("ratio handler / its own calls (what the code adds)", "turn", "own_calls"),
        row("the offline model (excluded above)", "model"),
    ]
    reads_gap = p50["own_reads"] / p50["floor"] - 1
    write_gap = (p50["own_calls"] - p50["own_reads"]) / p50["floor"]
    code_gap = (p50["turn"] - p50["own_calls"]) / p50["floor"]
    return Section(
        title="Memory overhead of a turn",
        tables=[table(["per turn", "p50", "p99"], rows)],
        checks=[Check("memory overhead, p50 handler / floor", f"{ratio:.2f}", f"<= {TARGET_P50_RATIO}",
                      ratio <= TARGET_P50_RATIO)],
        notes=[
            f"{ITERATIONS} turns after {WARMUP} warm-up turns, on one session holding more than the "
            f"{MAX_TURNS}-turn window, and {len(FACTS)} long-term facts; every iteration runs a turn and "
            "the floor side by side, in alternating order, and the two steps in rotating order. The "
            "handler is the Lambda entry point (`agent.handler.lambda_handler`) called in process with an "
            "API Gateway event, X-Ray off as in the local stack. The floor reads the same window (`Limit` "
            f"{MAX_TURNS}, consistent) and writes an item of the same size as the turn's; the steps replay "
            "the parameters of the turn's own calls, recorded with botocore events.",
            f"Where the gap comes from, against the floor's p50: the fence and facts reads, although in "
            f"parallel with the window's, add {reads_gap:+.0%}; the confirm (UpdateItem of the session's "
            f"entry) after the PutItem adds {write_gap:+.0%}; the code (handler and memory library) adds {code_gap:+.0%}. "
            "The first two are DynamoDB Local's time on this machine: on 2 cores shared by the benchmark "
            "and DynamoDB Local (a JVM), two reads in flight barely overlap, as each costs CPU on both "
            "sides and the two botocore calls share one GIL; against DynamoDB over a network, where a "
            "read is mostly waiting, they would. The confirm follows the write by design: it is what lets "
            "erasure refuse a turn that read its context before it, without a transaction that concurrent "
            "turns would meet in (README: Data model). What stands in the way "
            f"of {TARGET_P50_RATIO}: the turn's own calls, bare, are already "
            f"{p50['own_calls'] / p50['floor']:.2f}x the floor on DynamoDB Local, and the code adds "
            f"{code_gap:+.0%} on top where the target leaves {TARGET_P50_RATIO - 1:+.0%} for everything.",
            "A profile of the turn (cProfile and pyinstrument, 300 turns) finds the code's time in "
            "Powertools (decorators, routing, request and response validation: about half of it with "
            "memory stubbed out), in the window's token estimate (`memory.window.fit` serialises every "
            "message of the window again: about a third) and in parsing the window's items into turns. "
            "None of it computes something unused; nothing was removed from the turn path.",
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
    return {"turn": elapsed - model.seconds, "model": model.seconds, "calls": recorder.take()}


class Floor:
    """The floor and the two steps, bare boto3, each writing keys of its own so none disturbs the session."""

    def __init__(self, client, pk: str):
        self._client = client
        self._pool = ThreadPoolExecutor(max_workers=2)
        self._floor_pk = {"S": f"{pk}-floor"}
        self._query = {
            "TableName": SESSIONS_TABLE,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ScanIndexForward": False,
            "Limit": MAX_TURNS,
            "ConsistentRead": True,
        }

    def measure(self, calls: list, iteration: int) -> dict:
        """Seconds of each reference, in an order that rotates with the iteration."""
        params = {(call.operation, call.params.get("TableName")): call.params for call in calls}
        window, facts = params["Query", SESSIONS_TABLE], params["Query", LONG_TERM_TABLE]
        fence = params["BatchGetItem", None]
        put = copy.deepcopy(params["PutItem", SESSIONS_TABLE]["Item"])
        put["pk"] = self._floor_pk
        # The confirm (the last UpdateItem of the turn) on a key of our own, without its condition.
        confirm = {name: value for name, value in params["UpdateItem", SESSIONS_TABLE].items()
                   if name != "ConditionExpression"}
        confirm["Key"] = {**confirm["Key"], "pk": self._floor_pk}
        confirm["ExpressionAttributeValues"] = {name: value for name, value in confirm["ExpressionAttributeValues"].items()
                                                if name not in (":gen", ":mark")}

        def floor():
            self._client.query(**self._query)
            self._put(put, f"TURN#floor-{iteration:08d}")

        def own_reads():
            self._reads(window, facts, fence)
            self._put(put, f"TURN#floor-reads-{iteration:08d}")

        def own_calls():
            self._reads(window, facts, fence)
            self._put(put, f"TURN#floor-own-{iteration:08d}")
            self._client.update_item(**confirm)

        references = dict(zip(REFERENCES, (floor, own_reads, own_calls)))
        order = REFERENCES[iteration % 3:] + REFERENCES[:iteration % 3]
        seconds = {}
        for name in order:
            started = time.perf_counter()
            references[name]()
            seconds[name] = time.perf_counter() - started
        return seconds

    def close(self) -> None:
        self._pool.shutdown()

    def _reads(self, window: dict, facts: dict, fence: dict) -> None:
        """As the handler reads (memory.resilient): the fence and the facts on pool threads, the window
        on this one."""
        pending = [self._pool.submit(self._client.query, **facts), self._pool.submit(self._client.batch_get_item, **fence)]
        self._client.query(**window)
        for read in pending:
            read.result()

    def _put(self, item: dict, sort_key: str) -> None:
        self._client.put_item(TableName=SESSIONS_TABLE, Item={**item, "sk": {"S": sort_key}})
