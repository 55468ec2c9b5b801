"""The Strands, LangChain and OpenAI Agents adapters, through the real frameworks (pinned in
requirements.txt) and their offline models, on DynamoDB Local: every guarantee of the library, as
each framework's users get it."""

import contextlib
import logging
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import durable_memory
from durable_memory.conversation import turn_item
from durable_memory.dynamo import batch_write_all
from durable_memory.keys import registry_key, session_key
from faults import THROTTLED, failing
from frameworks import FRAMEWORKS, LONG_TERM_TABLE, ROOT, SESSIONS_TABLE, answer

pytestmark = pytest.mark.slow

THREADS, TURNS_PER_THREAD = 16, 10
LONG_HISTORY, SHORT_HISTORY = 3_000, 30
WINDOW_TURNS = 20
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


@pytest.fixture(params=list(FRAMEWORKS))
def framework(request):
    return FRAMEWORKS[request.param]


@pytest.fixture
def client(tables):
    """The adapters' own DynamoDB client: faults injected into it reach nothing else."""
    return durable_memory.dynamodb_client()


@pytest.fixture
def memory(client):
    return durable_memory.connect(sessions_table=SESSIONS_TABLE, long_term_table=LONG_TERM_TABLE, client=client)


@pytest.fixture
def user(memory):
    user_id = f"user-{uuid.uuid4().hex[:12]}"
    yield user_id
    memory.erase_user(user_id)


def stored_turns(memory, user: str, session: str) -> list:
    turns, token = [], None
    with contextlib.suppress(durable_memory.SessionNotFound):
        while True:
            page, token = memory.conversations.history(user, session, limit=100, next_token=token)
            turns += page
            if not token:
                return turns
    return turns


def raw_items(user: str, session: str) -> list[dict]:
    """Everything under the session's partition key and its registry entry, read past the library."""
    client = durable_memory.dynamodb_client()
    items = client.query(TableName=SESSIONS_TABLE, KeyConditionExpression="pk = :pk", ConsistentRead=True,
                         ExpressionAttributeValues={":pk": {"S": session_key(user, session)}})["Items"]
    entry = client.get_item(TableName=SESSIONS_TABLE, Key=registry_key(user, session), ConsistentRead=True)
    return items + ([entry["Item"]] if "Item" in entry else [])


def test_a_conversation_goes_on_across_fresh_agents_in_new_processes(framework, user):
    # Given three turns, each answered by a fresh agent in a new process (a Lambda invocation each)
    def turn(text: str) -> str:
        run = subprocess.run([sys.executable, str(ROOT / "tests/integration/frameworks.py"), framework.name, user,
                              "chat", text], capture_output=True, text=True, timeout=120, check=True,
                             env=os.environ | {"PYTHONPATH": f"{ROOT / 'functions'}:{ROOT}"})
        return run.stdout.strip().splitlines()[-1]

    # When the user says hello, asks for the weather (a tool call), then what they said
    replies = [turn("Hello, I am Ada."), turn("What is the weather in Paris?"), turn("What did I tell you?")]
    # Then the weather came from the tool, and the third agent was given both earlier turns
    assert replies[1] == "It is sunny in Paris."
    assert replies[2] == "You said before: Hello, I am Ada. | What is the weather in Paris?"
    # And the tool call and its result are stored in their turn as tool_use / tool_result, ids paired
    weather = stored_turns(durable_memory.connect(sessions_table=SESSIONS_TABLE, long_term_table=LONG_TERM_TABLE),
                           user, "chat")[1].messages
    (tool_use,) = [b for b in weather[1]["content"] if b["type"] == "tool_use"]
    (tool_result,) = [b for b in weather[2]["content"] if b["type"] == "tool_result"]
    assert tool_use["name"] == "weather" and tool_use["input"] == {"city": "Paris"}
    assert tool_result["tool_use_id"] == tool_use["id"]


def test_the_framework_gets_back_exactly_what_it_stored(framework, memory, user):
    # Given two turns with tool calls, tool results and the framework's own ids and metadata
    turns = [framework.turn(1), framework.turn(2)]
    # When each is stored and a fresh adapter reads the session
    assert [framework.store(memory, user, "s", turn) for turn in turns] == ["ok", "ok"]
    # Then it gets every message back, equal to what was stored
    assert framework.window(memory, user, "s") == turns[0] + turns[1]


def test_a_turn_without_its_answer_is_not_stored(framework, memory, user):
    # Given a turn whose answer never comes (the model failed, the process ended)
    write = framework.store(memory, user, "s", framework.turn(1)[:-1])
    # Then nothing is stored: memory keeps answered turns, whole, as the HTTP API does
    assert write is None and stored_turns(memory, user, "s") == []


def test_a_window_never_splits_a_tool_call_from_its_result(framework, memory, user):
    # Given five stored turns, each with a tool call and its result
    for n in range(5):
        framework.store(memory, user, "s", framework.turn(n))
    # When an adapter reads a window of two turns
    window = framework.window(memory, user, "s", max_turns=2)
    # Then it holds the last two turns whole, starting with the user's question
    assert window == framework.turn(3) + framework.turn(4)
    assert framework.opens_with_a_question(window)


def test_sixteen_threads_of_ten_turns_into_one_session_keep_all_160(framework, memory, user):
    # Given 16 threads, each answering 10 turns with a fresh agent, all into one session
    def thread(t: int) -> list[str]:
        return [answer(framework.name, memory, user, "busy", f"note {t}-{i}") for i in range(TURNS_PER_THREAD)]

    with ThreadPoolExecutor(THREADS) as pool:
        replies = [reply for replies in pool.map(thread, range(THREADS)) for reply in replies]
    # Then every turn was answered and every one of the 160 is stored, whole
    assert len(replies) == THREADS * TURNS_PER_THREAD
    turns = stored_turns(memory, user, "busy")
    said = sorted(turn.messages[0]["content"][0]["text"] for turn in turns)
    assert said == sorted(f"note {t}-{i}" for t in range(THREADS) for i in range(TURNS_PER_THREAD))


@pytest.fixture(scope="module")
def histories(tables):
    """One session of 30 turns and one of 3,000, written in bulk (plain Messages API turns, which
    every adapter reads), plus an appended turn each, all of the session's generation (its fence)."""
    memory = durable_memory.connect(sessions_table=SESSIONS_TABLE, long_term_table=LONG_TERM_TABLE)
    user = f"user-{uuid.uuid4().hex[:12]}"
    for size in (SHORT_HISTORY, LONG_HISTORY):
        turns = [plain_turn(user, f"h{size}", n) for n in range(size - 1)]
        fence = memory.registry.open(user, f"h{size}")
        batch_write_all(durable_memory.dynamodb_client(), SESSIONS_TABLE, [{"PutRequest": {"Item": turn_item(
            t, expires_at=2**40, generation=fence.generation)}} for t in turns])
        assert memory.append(plain_turn(user, f"h{size}", size - 1), fence) == "ok"
    yield user
    memory.erase_user(user)


def plain_turn(user: str, session: str, n: int) -> durable_memory.Turn:
    return durable_memory.Turn(user_id=user, session_id=session, turn_id=f"{n:013d}-0000", created_at="",
                               messages=[{"role": "user", "content": [{"type": "text", "text": f"question {n}"}]},
                                         {"role": "assistant", "content": [{"type": "text", "text": f"answer {n}"}]}])


def test_reading_3000_turns_costs_what_reading_30_does(framework, client, memory, histories):
    # Given sessions of 30 and of 3,000 turns
    def read(size: int) -> tuple[list, list[tuple[str, int]]]:
        calls = []
        record = lambda model, parsed, **_: calls.append((model.name, parsed.get("ScannedCount", 0)))  # noqa: E731
        client.meta.events.register("after-call.dynamodb", record)
        try:
            return framework.window(memory, histories, f"h{size}", max_turns=WINDOW_TURNS), calls
        finally:
            client.meta.events.unregister("after-call.dynamodb", record)

    # When an adapter reads each
    short, short_calls = read(SHORT_HISTORY)
    long, long_calls = read(LONG_HISTORY)
    # Then each read is one Query of the window's 20 items and the read of the session's fence, whatever
    # the length of the history
    assert short_calls == long_calls == [("Query", WINDOW_TURNS), ("BatchGetItem", 0)]
    # And the window is the newest 20 turns
    assert len(long) == len(short) == 2 * WINDOW_TURNS


def test_turns_expire_after_30_days_and_erasing_the_session_and_the_user_leaves_nothing(framework, memory, user):
    # Given two sessions with turns, each turn expiring (TTL) 30 days after its write
    for session in ("one", "two"):
        framework.store(memory, user, session, framework.turn(1))
        (turn,) = [item for item in raw_items(user, session) if item["sk"]["S"].startswith("TURN#")]
        assert abs(int(turn["expires_at"]["N"]) - time.time() - 30 * 86_400) < 60
    # When one is cleared through the framework (Strands: the store) and then the user is erased
    framework.clear(memory, user, "one")
    cleared = raw_items(user, "one")
    memory.erase_user(user)
    # Then no item of either session is left, registry entries included, and the adapter reads nothing
    assert cleared == [] and raw_items(user, "two") == []
    assert framework.window(memory, user, "two") == []


def test_a_throttled_write_is_suppressed_and_logged_and_the_answer_still_comes(framework, client, memory, user,
                                                                              caplog):
    # Given every write of the memory's client throttled
    with contextlib.ExitStack() as faults, caplog.at_level(logging.WARNING, logger="durable_memory"):
        for operation in WRITES:
            faults.enter_context(failing(client, operation, THROTTLED))
        # When a turn is answered
        reply = answer(framework.name, memory, user, "s", "Hello, I am Ada.")
    # Then the agent answered, the write was logged as memory_write_suppressed, and nothing is stored
    assert reply == "Nice to meet you."
    (event,) = [r for r in caplog.records if r.getMessage() == "memory_write_suppressed"]
    assert (event.levelname, event.session_id, event.error) == ("WARNING", "s", "ProvisionedThroughputExceededException")
    assert stored_turns(memory, user, "s") == []


def test_a_failed_read_raises_before_the_model_is_asked(framework, client, memory, user):
    # Given a stored turn, and reads of the memory's client throttled
    framework.store(memory, user, "s", framework.turn(1))
    with failing(client, "Query", THROTTLED):
        # When a turn starts, then it fails with MemoryUnavailable: no answer without its memory
        with pytest.raises(durable_memory.MemoryUnavailable):
            answer(framework.name, memory, user, "s", "Hello?")
    assert len(stored_turns(memory, user, "s")) == 1


def test_any_adapter_reads_a_turn_another_framework_stored(memory, user):
    # Given a Strands turn with a tool call
    FRAMEWORKS["strands"].store(memory, user, "s", FRAMEWORKS["strands"].turn(1))
    # When LangChain and the OpenAI Agents SDK read the session
    langchain = FRAMEWORKS["langchain"].window(memory, user, "s")
    openai = FRAMEWORKS["openai_agents"].window(memory, user, "s")
    # Then they get the tool call and its result in their own shapes
    assert langchain[1].tool_calls == [{"name": "weather", "args": {"city": "city1"}, "id": "t1", "type": "tool_call"}]
    assert langchain[2].tool_call_id == "t1" and "sunny" in langchain[2].content
    assert [item.get("type", item.get("role")) for item in openai] == [
        "user", "assistant", "function_call", "function_call_output", "assistant"]
    assert openai[2]["call_id"] == openai[3]["call_id"] == "t1"


def test_the_readme_example_runs_offline(framework, tables):
    # When the framework's example runs as the README says, on the DynamoDB Local of these tests
    run = subprocess.run([sys.executable, str(ROOT / "examples" / f"{framework.example}.py")], capture_output=True,
                         text=True, timeout=120, check=True, env=os.environ | {"PYTHONPATH": f"{ROOT}"})
    # Then its third fresh agent remembered the first two turns
    assert run.stdout.splitlines()[-1] == "You said before: Hello, I am Ada. | What is the weather in Paris?"
