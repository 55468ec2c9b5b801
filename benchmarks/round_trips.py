"""DynamoDB round trips of a turn, counted with botocore's events on the handler's own client.

Calls that overlap in time ran in parallel; the number of non-overlapping steps is the number of
sequential round trips on the turn's critical path. Every read must end up in the answer: the
items of the window Query are the turns in the prompt, the facts Query's are the facts."""

import collections
import json
import uuid

from benchmarks.harness import (
    LONG_TERM_TABLE,
    SESSIONS_TABLE,
    CallRecorder,
    Check,
    Section,
    handler_module,
    invoke,
    quiet_stdout,
    sequential_groups,
    table,
    turn_event,
)
from memory.keys import REGISTRY_PREFIX

REPEATS = 15
HISTORY_TURNS = 5
FACTS = {"name": "Ada", "city": "Paris"}
READS = {"Query", "GetItem", "BatchGetItem", "Scan"}
TABLE_NAMES = {SESSIONS_TABLE: "sessions", LONG_TERM_TABLE: "long-term"}
# The reads side by side, the turn's write, then the confirm of its fence, which must follow the write
# (README: Data model): one step more than a bare read-then-write, the price of erasure without a
# transaction that concurrent turns would meet in.
TARGET_SEQUENTIAL = 3


def run(endpoint: str) -> Section:
    handler = handler_module(endpoint)
    user_id = f"bench-rt-{uuid.uuid4().hex[:8]}"
    for key, value in FACTS.items():
        handler.memory.facts.put(user_id, key, value)

    scenarios = {
        "turn, session with history and facts": lambda n: _say(handler, user_id, "history", "How are you?"),
        "first turn of a new session": lambda n: _say(handler, user_id, f"new-{n}", "Hello!"),
        "turn with an Idempotency-Key": lambda n: _say(handler, user_id, "history", "Once only, please.",
                                                        {"Idempotency-Key": f"key-{n}"}),
        "retry of that request (same key)": lambda n: _say(handler, user_id, "history", "Once only, please.",
                                                            {"Idempotency-Key": f"key-{n}"}),
        "turn that stores a fact (remember tool)": lambda n: _say(handler, user_id, "history",
                                                                  f"Remember that my city is Lyon {n}"),
    }
    with quiet_stdout():
        for _ in range(HISTORY_TURNS):
            _say(handler, user_id, "history", "Warming up the history.")
        results = {name: [] for name in scenarios}
        with CallRecorder(handler.dynamodb) as recorder:
            for n in range(REPEATS):
                for name, say in scenarios.items():
                    recorder.take()
                    body = say(n)
                    results[name].append((recorder.take(), body))

    rows, problems = [], []
    plain_steps = None
    for name, turns in results.items():
        patterns = collections.Counter(_pattern(calls) for calls, _ in turns)
        pattern, seen = patterns.most_common(1)[0]
        steps = collections.Counter(len(sequential_groups(calls)) for calls, _ in turns)
        usual_steps = steps.most_common(1)[0][0]
        calls = collections.Counter(len(calls) for calls, _ in turns).most_common(1)[0][0]
        attempts = sum(c.attempts for calls_, _ in turns for c in calls_) / len(turns)
        for calls_, body in turns:
            problems += [f"{name}: {p}" for p in _unused(calls_, body)]
        if plain_steps is None:
            plain_steps = (usual_steps, steps[usual_steps])
        rows.append([name, pattern, calls, usual_steps, f"{steps[usual_steps]}/{len(turns)}", f"{attempts:.1f}"])

    unused = sorted(set(problems))
    return Section(
        title="DynamoDB round trips per turn",
        tables=[table(["request", "calls, in order (∥ parallel, → then)", "calls", "sequential",
                       "turns with that many", "HTTP attempts per request"], rows)],
        checks=[
            Check("round trips, sequential on a turn's critical path", str(plain_steps[0]),
                  f"{TARGET_SEQUENTIAL} (reads in parallel, the write, its confirm)", plain_steps[0] == TARGET_SEQUENTIAL),
            Check("calls whose result is not used", str(len(unused)), "0", not unused),
        ],
        notes=[
            f"{REPEATS} requests of each kind, counted with botocore `before-call` / `after-call` events on "
            "the handler's client (`agent.handler.dynamodb`); the most frequent shape is shown. "
            "A read is used when every item it returned is in the answer's `context` (turns or facts) "
            "and none was read only to be filtered out; a write is used when it returns nothing "
            "nobody reads (no `ReturnValues`, no `ReturnConsumedCapacity`).",
            "The target is the plain turn (first row): its fence (BatchGetItem of the session's registry "
            "entry and the user's erasure mark), window and facts read side by side, the turn's PutItem, "
            "then the UpdateItem that confirms the fence and counts the turn. A first turn also registers "
            "the session and rereads the mark. An Idempotency-Key adds one step before the reads: the claim "
            "must be stored before the model runs, or two concurrent retries would both run the turn. A "
            "`remember` tool call checks the fence, writes its fact and rereads the mark during the tool loop.",
            *(f"- unused: {p}" for p in unused),
        ],
    )


def _say(handler, user_id: str, session_id: str, message: str, headers: dict | None = None) -> dict:
    response = invoke(handler, turn_event(user_id, session_id, message, headers))
    if response["statusCode"] != 200:
        raise RuntimeError(f"the turn failed: {response['statusCode']} {response['body'][:200]}")
    return json.loads(response["body"])


def _label(call) -> str:
    params = call.params
    if call.operation == "TransactWriteItems":
        return f"TransactWriteItems({len(params['TransactItems'])} items)"
    if call.operation == "BatchGetItem":
        return f"BatchGetItem({', '.join(TABLE_NAMES.get(name, name) for name in params['RequestItems'])})"
    return f"{call.operation}({TABLE_NAMES.get(params.get('TableName'), params.get('TableName'))})"


def _pattern(calls) -> str:
    return " → ".join(" ∥ ".join(_label(c) for c in group) for group in sequential_groups(calls))


def _unused(calls, body: dict) -> list[str]:
    """What was read or returned and never reached the answer."""
    problems = []
    read = collections.Counter()
    for call in calls:
        params = call.params
        if call.operation == "BatchGetItem":  # a fence (entry and mark), or a fact and its totals: read to write
            continue
        if call.operation in READS:
            table_name = TABLE_NAMES.get(params.get("TableName"), "other")
            read[table_name] += len(call.parsed.get("Items", []))
            if call.parsed.get("ScannedCount", 0) > call.parsed.get("Count", 0):
                problems.append(f"{_label(call)} read items only to filter them out")
            if table_name == "other":
                problems.append(f"{_label(call)}: a read the answer does not explain")
        registering = params.get("Key", {}).get("pk", {}).get("S", "").startswith(REGISTRY_PREFIX)  # returns the generation
        if (params.get("ReturnValues", "NONE") != "NONE" and not registering) or params.get(
                "ReturnConsumedCapacity", "NONE") != "NONE":
            problems.append(f"{_label(call)} asks for values nobody reads")
    context = body.get("context", {})
    if read and read["sessions"] != context.get("turns"):
        problems.append(f"{read['sessions']} turns read, {context.get('turns')} in the prompt")
    if read and read["long-term"] != context.get("facts"):
        problems.append(f"{read['long-term']} facts read, {context.get('facts')} in the prompt")
    return problems
