"""Context windows: what loading a turn's window costs as the history grows, for each strategy, next
to a single-item history (the layout of LangChain's DynamoDBChatMessageHistory: the whole message
list in one item, rewritten on every turn) as the baseline.

Histories of 10 to 10,000 turns are written straight into DynamoDB Local with BatchWriteItem (the
model plays no part in a load's cost). Each load is the read path's session-window half: the
strategy's one Query (ConversationStore.load, or .load_window for compaction) and the window cut.

`make bench` calls run(endpoint); `PYTHONPATH=functions:. python -m benchmarks.window` runs it alone
on an embedded DynamoDB Local and saves benchmarks/results/window.md."""

import json
import math
import random
import time
import uuid
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from agent.turn import TOOLS, fixed_tokens, system_prompt
from benchmarks import harness
from local.tables import create_table_request
from memory.client import DYNAMODB_CONFIG
from memory.conversation import ConversationStore, turn_item
from memory.dynamo import batch_write_all
from memory.schema import SESSIONS
from memory.turns import Turn, Usage
from memory.window import STRATEGIES, Summary, WindowPolicy, estimate_tokens

HISTORY_SIZES = (10, 100, 1_000, 10_000)
LOADS = 200
# K = 10: the 10-turn history already fills the window, so 10 and 10,000 turns compare full windows
# (with the deployed K = 20, a load's cost grows up to 20 turns and is flat from there on).
MAX_TURNS = 10
TRIGGER = 10  # compaction: a summary is written each time 10 turns are uncovered; 5 stay verbatim
KEEP = TRIGGER // 2
SUMMARY_TOKENS_PER_TURN, SUMMARY_MAX_TOKENS = 40, 800
ITEM_LIMIT_BYTES = 400 * 1024
RATIO_TARGET = 1.2
NEW_MESSAGE = {"role": "user", "content": "What did we settle on for the venue, in the end?"}
WORDS = ("venue budget guests date menu music speech train hotel ticket invoice colour theme "
         "garden rain plan maybe agreed call friday deposit list photos cake florist").split()
RESULTS = Path(__file__).resolve().parent / "results"


def run(endpoint: str) -> str:
    """The benchmark against the DynamoDB at `endpoint`: a markdown table and its checks."""
    credentials = {"region_name": "us-east-1", "aws_access_key_id": "local", "aws_secret_access_key": "local"}
    # Seeding and table administration get patient timeouts; the measured loads use the real config.
    admin = boto3.client("dynamodb", endpoint_url=endpoint, config=Config(read_timeout=60), **credentials)
    measured = boto3.client("dynamodb", endpoint_url=endpoint, config=DYNAMODB_CONFIG, **credentials)
    meter = Meter(measured)
    suffix = uuid.uuid4().hex[:8]
    turns_table, baseline_table = f"bench-window-{suffix}", f"bench-langchain-{suffix}"
    _create(admin, create_table_request(turns_table, SESSIONS))
    _create(admin, {"TableName": baseline_table, "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": "SessionId", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "SessionId", "KeyType": "HASH"}]})
    try:
        writer = ConversationStore(client=admin, table_name=turns_table, ttl_days=30)
        seeded = {size: _seed(admin, turns_table, writer, size) for size in HISTORY_SIZES}
        store = ConversationStore(client=measured, table_name=turns_table, ttl_days=30)
        rows = {(strategy, size): _loads(store, meter, strategy, seeded[size])
                for strategy in STRATEGIES for size in HISTORY_SIZES}
        baseline, fails_at = _baseline(admin, measured, meter, baseline_table)
    finally:
        admin.delete_table(TableName=turns_table)
        admin.delete_table(TableName=baseline_table)
    return _report(rows, baseline, fails_at)


class Meter:
    """Bytes on the wire and read capacity of every call the measured client makes."""

    def __init__(self, client):
        self.bytes = self.capacity = 0
        client.meta.events.register("provide-client-params.dynamodb.*", self._ask_for_capacity)
        client.meta.events.register("after-call.dynamodb.*", self._count)

    def reset(self) -> None:
        self.bytes = self.capacity = 0

    def _ask_for_capacity(self, params, **_):
        params["ReturnConsumedCapacity"] = "TOTAL"

    def _count(self, http_response, parsed, **_):
        self.bytes += len(http_response.content)
        consumed = parsed.get("ConsumedCapacity", {})  # a list for the batch calls (one entry per table)
        self.capacity += sum(entry.get("CapacityUnits", 0) for entry in (consumed if isinstance(consumed, list) else [consumed]))


def synthetic_turn(session: str, n: int, rng: random.Random) -> Turn:
    """~1.2 KB: a user message, every fifth turn a `remember` tool round, and the answer."""
    def say(low, high):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))

    messages = [{"role": "user", "content": say(15, 100)}]
    if n % 5 == 0:
        call = {"type": "tool_use", "id": f"toolu_{n:05d}", "name": "remember", "input": {"key": "venue", "value": say(2, 6)}}
        messages += [{"role": "assistant", "content": [call]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "remembered venue"}]}]
    reply = say(40, 200)
    messages.append({"role": "assistant", "content": [{"type": "text", "text": reply}]})
    return Turn(user_id="bench", session_id=session, turn_id=f"{1_800_000_000_000 + n:013d}-{n:08x}",
                created_at="2027-01-15T08:00:00.000+00:00", messages=messages,
                usage=Usage(2_000, estimate_tokens(reply)))


def item_bytes(value) -> int:
    """DynamoDB's item size: attribute names plus values (3 bytes per list or map element)."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("S", "N"):
        text = next(iter(value.values()))
        return len(text.encode()) if "S" in value else math.ceil(len(text) / 2) + 1
    if isinstance(value, dict) and "L" in value:
        return 3 + sum(1 + item_bytes(element) for element in value["L"])
    if isinstance(value, dict) and "M" in value:
        return 3 + sum(1 + len(name.encode()) + item_bytes(element) for name, element in value["M"].items())
    return sum(len(name.encode()) + item_bytes(element) for name, element in value.items())


def _seed(admin, table: str, store: ConversationStore, size: int) -> dict:
    """A session of `size` turns, plus the summary compaction would have left (covering all but
    the newest KEEP turns once TRIGGER turns were reached). A turn's text is seeded by its distance
    from the end: the newest turns are the same in every history, so rows differ by layout only."""
    session = f"history-{size}"
    turns = [synthetic_turn(session, n, random.Random(size - n)) for n in range(1, size + 1)]
    expires_at = int(time.time()) + 30 * 86_400
    fence = store.registry.open("bench", session)
    items = [turn_item(turn, expires_at=expires_at, generation=fence.generation) for turn in turns]
    batch_write_all(admin, table, [{"PutRequest": {"Item": item}} for item in items[:-1]])
    store.append(turns[-1], fence)
    if size >= TRIGGER:
        covered = size - KEEP
        tokens = min(SUMMARY_TOKENS_PER_TURN * covered, SUMMARY_MAX_TOKENS)
        words = random.Random(covered)
        text = " ".join(words.choice(WORDS) for _ in range(tokens))[: tokens * 4]
        summary = Summary(text=text, covered_through=turns[covered - 1].turn_id, covered_turns=covered,
                          tokens=estimate_tokens(text))
        assert store.save_summary("bench", session, summary, replaces=None, fence=fence)
    return {"session": session, "written": sum(map(item_bytes, items)) / size}


def _loads(store: ConversationStore, meter: Meter, strategy: str, seeded: dict) -> dict:
    policy = WindowPolicy(strategy=strategy)
    fixed = fixed_tokens(NEW_MESSAGE)
    latencies, window = [], None
    meter.reset()
    for _ in range(LOADS):
        started = time.perf_counter()
        if policy.uses_summary:
            summary, turns = store.load_window("bench", seeded["session"], limit=MAX_TURNS)
        else:
            summary, turns = None, store.load("bench", seeded["session"], limit=MAX_TURNS)
        window = policy.fit(turns, summary, fixed_tokens=fixed)
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "bytes": meter.bytes / LOADS, "capacity": meter.capacity / LOADS, **_percentiles(latencies),
        "prompt": _prompt_tokens(system_prompt({}, window.summary), window.messages),
        "written": seeded["written"], "note": f"{len(window.turns)} turns" + (" + summary" if window.summary else ""),
    }


def _baseline(admin, measured, meter: Meter, table: str) -> tuple[dict, int]:
    """One item per session holding every message, rewritten (PutItem) on every turn, until
    DynamoDB refuses it; loads (GetItem, LangChain's default eventually consistent read) measured
    at the history sizes it can still hold."""
    messages, rows, n = [], {}, 0
    while True:
        n += 1
        turn = synthetic_turn("baseline", n, random.Random(n))
        messages += turn.messages
        item = {"SessionId": {"S": "baseline"}, "History": {"L": [_langchain_message(m) for m in messages]}}
        try:
            admin.put_item(TableName=table, Item=item)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ValidationException":
                raise
            return rows, n
        if n in HISTORY_SIZES:
            latencies = []
            meter.reset()
            for _ in range(LOADS):
                started = time.perf_counter()
                loaded = measured.get_item(TableName=table, Key={"SessionId": {"S": "baseline"}})
                json.loads(json.dumps(loaded["Item"]["History"]))  # the client parses the whole list
                latencies.append((time.perf_counter() - started) * 1000)
            rows[n] = {"bytes": meter.bytes / LOADS, "capacity": meter.capacity / LOADS, **_percentiles(latencies),
                       "prompt": _prompt_tokens(system_prompt({}), messages), "written": item_bytes(item),
                       "note": f"all {n} turns"}


def _langchain_message(message: dict) -> dict:
    kind = "human" if message["role"] == "user" else "ai"
    content = message["content"] if isinstance(message["content"], str) else json.dumps(message["content"])
    return {"M": {"type": {"S": kind}, "data": {"M": {"content": {"S": content}, "type": {"S": kind}}}}}


def _prompt_tokens(system: str, history: list[dict]) -> int:
    messages = json.dumps(history + [NEW_MESSAGE], ensure_ascii=False)
    return estimate_tokens(system) + estimate_tokens(json.dumps(TOOLS)) + estimate_tokens(messages)


def _percentiles(latencies: list[float]) -> dict:
    return {"p50": harness.percentile(latencies, 0.5), "p99": harness.percentile(latencies, 0.99)}


def _create(admin, request: dict) -> None:
    admin.create_table(**request)
    admin.get_waiter("table_exists").wait(TableName=request["TableName"], WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})


def _report(rows: dict, baseline: dict, fails_at: int) -> str:
    header = ["strategy", "turns", "bytes read / load", "RCU / load", "p50 ms", "p99 ms", "prompt tokens",
              "bytes written / turn", "window"]
    lines = []
    for (strategy, size), row in rows.items():
        lines.append(_row(f"`{strategy}`", size, row))
    for size in HISTORY_SIZES:
        if size in baseline:
            lines.append(_row("single item (LangChain)", size, baseline[size]))
        else:
            lines.append(["single item (LangChain)", f"{size:,}", "—", "—", "—", "—", "—", "—",
                          f"**cannot be stored**: the item passes 400 KB at turn {fails_at:,}"])
    checks = []
    for strategy in STRATEGIES:
        small, large = rows[(strategy, HISTORY_SIZES[0])], rows[(strategy, HISTORY_SIZES[-1])]
        ratios = large["bytes"] / small["bytes"], large["capacity"] / small["capacity"]
        checks.append([f"`{strategy}`: load at 10,000 turns ÷ at 10 turns", f"bytes ×{ratios[0]:.2f}, RCU ×{ratios[1]:.2f}",
                       f"≤ ×{RATIO_TARGET}", "pass" if max(ratios) <= RATIO_TARGET else "MISS"])
    checks.append(["single item: largest history it can hold", f"{fails_at - 1:,} turns", "shown", "—"])
    hundred, large = rows[("compaction", 100)], rows[("compaction", HISTORY_SIZES[-1])]
    summary_growth = (
        f"`compaction` from 100 to 10,000 turns: bytes ×{large['bytes'] / hundred['bytes']:.2f}, RCU "
        f"×{large['capacity'] / hundred['capacity']:.2f}. Between 10 and 100 turns its summary grows "
        f"({SUMMARY_TOKENS_PER_TURN} tokens per covered turn assumed) to its cap of {SUMMARY_MAX_TOKENS} tokens "
        "(MEMORY_SUMMARY_MAX_TOKENS), and the read counts in whole 4 KB units; from there on the load is flat."
    )
    notes = (
        f"K = {MAX_TURNS} turns read per load (MEMORY_MAX_TURNS), compaction trigger {TRIGGER} ({KEEP} kept "
        f"verbatim), the default budget (100,000 tokens); {LOADS} loads per row; turns of ~1.2 KB, one in five "
        "with a tool round; the newest turns are the same in every history. Our loads are strongly consistent Queries (ConsistentRead, so a turn sees the one "
        "before it); the baseline's GetItem is LangChain's default, eventually consistent (half the RCU per byte). "
        "Bytes read are the response bodies on the wire; RCU is DynamoDB Local's ConsumedCapacity. Prompt tokens "
        "are chars/4 of system prompt, tools, window and a new message. `last_k` and `token_budget` read the same "
        "items: the budget does not bind at this size, it only guarantees the ceiling."
    )
    return "\n\n".join([harness.table(header, lines), harness.table(["check", "measured", "wanted", "verdict"], checks), notes,
                        summary_growth])


def _row(label: str, size: int, row: dict) -> list[str]:
    return [label, f"{size:,}", f"{row['bytes']:,.0f}", f"{row['capacity']:.1f}", f"{row['p50']:.1f}",
            f"{row['p99']:.1f}", f"{row['prompt']:,}", f"{row['written']:,.0f}", row["note"]]


def main() -> None:
    from local.dynamodb import embedded_dynamodb, free_port

    started = time.perf_counter()
    with embedded_dynamodb(port=free_port(), data_dir=None) as (endpoint, kind):
        report = run(endpoint)
    elapsed = time.perf_counter() - started
    text = f"# Context windows\n\n{kind}, {elapsed:.0f} s in all.\n\n{report}\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "window.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
