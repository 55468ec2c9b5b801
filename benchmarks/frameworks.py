"""Each agent framework's stock DynamoDB (or nearest) session backend against this library's adapter
for it, side by side on the same DynamoDB Local, through the real framework with an offline model.

Stock backends (requirements-bench.txt): LangChain's DynamoDBChatMessageHistory (langchain-community:
the whole message list in one item, read and rewritten every turn); for Strands, which ships File and
S3 session managers only, strands-session-dynamodb (Strands' own RepositorySessionManager over
DynamoDB: one item per message, indexed by the agent); the OpenAI Agents SDK has no DynamoDB session,
so its default SQLiteSession on a local file (no DynamoDB figures).

Each turn is what a Lambda does: a fresh agent (and history / session object) answers one question.
Its memory time is the time spent in the backend: constructing it, and every call the framework
makes into it (not the model, not the framework's own work). Sessions of 10, 100 and 1,000 turns are
written in bulk first, as each backend itself stores them (Strands' sliding-window offset included,
so its restore reads 40 messages, not all); then 9 turns each are measured at each
size, the two backends' turns alternating."""

import asyncio
import inspect
import itertools
import json
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import botocore.session
from botocore.exceptions import ClientError

from benchmarks.harness import Check, Section, table
from memory.client import DYNAMODB_CONFIG

SIZES = (10, 100, 1_000)
MEASURED_TURNS = 9
THREADS, TURNS_PER_THREAD = 16, 10
CONCURRENT = THREADS * TURNS_PER_THREAD
QUESTION = "Could you remind me what we decided about the venue, the budget and the date? " * 2
ANSWER = ("We settled on the garden venue, a budget of 4,000 euros and Saturday the 14th; the florist "
          "and the photographer are booked, the caterer still needs the final number of guests. ") * 6
REGION, CREDENTIALS = "us-east-1", {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
CAPACITY_OPERATIONS = READS | {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
ITEM_LIMIT_TURNS = 2_000  # past any single-item history's 400 KB wall at these turn sizes
STRANDS_WINDOW = 40  # SlidingWindowConversationManager's default window_size


class Meter:
    """Every DynamoDB call of the clients a botocore session makes: how many, and the capacity
    units DynamoDB reports (ReturnConsumedCapacity added to each data call)."""

    def __init__(self, endpoint: str):
        self.session = botocore.session.get_session()
        self.session.set_credentials(CREDENTIALS["aws_access_key_id"], CREDENTIALS["aws_secret_access_key"])
        self.session.register("provide-client-params.dynamodb", self._ask)
        self.session.register("after-call.dynamodb", self._add)
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self.take()

    def client(self):
        return self.session.create_client("dynamodb", region_name=REGION, endpoint_url=self.endpoint,
                                          config=DYNAMODB_CONFIG)

    def boto3(self) -> boto3.Session:
        return boto3.Session(botocore_session=self.session, region_name=REGION)

    def take(self) -> dict:
        with self._lock:
            totals, self.totals = getattr(self, "totals", None), {"requests": 0, "rcu": 0.0, "wcu": 0.0}
        return totals

    def _ask(self, params, model, **_):
        if model.name in CAPACITY_OPERATIONS:
            params["ReturnConsumedCapacity"] = "TOTAL"

    def _add(self, model, parsed, **_):
        consumed = parsed.get("ConsumedCapacity") or []
        units = sum(c.get("CapacityUnits", 0.0) for c in (consumed if isinstance(consumed, list) else [consumed]))
        with self._lock:
            self.totals["requests"] += 1
            self.totals["rcu" if model.name in READS else "wcu"] += units


class Stopwatch:
    """Time spent in a backend: its construction and the calls the framework makes into it."""

    def __init__(self):
        self.seconds = 0.0

    def call(self, function, *args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started

    def wrap(self, target, *names):
        for name in names:
            method = getattr(target, name)
            if inspect.iscoroutinefunction(method):
                async def timed(*args, _method=method, **kwargs):
                    started = time.perf_counter()
                    try:
                        return await _method(*args, **kwargs)
                    finally:
                        self.seconds += time.perf_counter() - started
            else:
                def timed(*args, _method=method, **kwargs):
                    return self.call(_method, *args, **kwargs)
            setattr(target, name, timed)
        return target


class Ours:
    """This library's adapter: one item per turn, the window read in one Query."""

    label = "durable-memory adapter"

    def __init__(self, endpoint: str, table: str):
        import durable_memory

        self.meter, self.table = Meter(endpoint), table
        self.client = self.meter.client()
        self.memory = durable_memory.connect(sessions_table=table, long_term_table=f"{table}-facts", client=self.client)
        self.user = f"bench-{uuid.uuid4().hex[:8]}"

    def seed(self, session: str, natives: list[list], codec) -> None:
        from durable_memory.adapters._session import encode
        from durable_memory.conversation import turn_item
        from durable_memory.dynamo import batch_write_all
        from durable_memory.turns import Turn

        turns = [Turn(self.user, session, f"{n:013d}-seed", "", encode(codec, turn)) for n, turn in enumerate(natives)]
        fence = self.memory.registry.open(self.user, session)
        batch_write_all(self.client, self.table, [{"PutRequest": {"Item": turn_item(
            t, expires_at=2**40, generation=fence.generation)}} for t in turns])

    def kept(self, session: str) -> int:
        turns, token = [], None
        while True:
            page, token = self.memory.conversations.history(self.user, session, limit=500, next_token=token)
            turns += page
            if not token:
                return len(turns)


def strands_natives(n: int) -> list[dict]:
    return [{"role": "user", "content": [{"text": f"{n}: {QUESTION}"}], "tracking_id": str(uuid.uuid4())},
            {"role": "assistant", "content": [{"text": ANSWER}], "tracking_id": str(uuid.uuid4()),
             "metadata": {"usage": {"inputTokens": 900, "outputTokens": 280, "totalTokens": 1180},
                          "metrics": {"latencyMs": 1}}}]


class StrandsOurs(Ours):
    def turn(self, session: str, text: str) -> float:
        from durable_memory.adapters.strands import DurableSessionManager

        watch = Stopwatch()
        manager = watch.call(DurableSessionManager, self.memory, user_id=self.user, session_id=session)
        return _strands_turn(watch, manager, text)

    def seed_turns(self, session: str, turns: int) -> None:
        from durable_memory.adapters.strands import StrandsCodec

        self.seed(session, [strands_natives(n) for n in range(turns)], StrandsCodec())


class StrandsStock:
    label = "strands-session-dynamodb (RepositorySessionManager)"

    def __init__(self, endpoint: str, table: str):
        self.meter, self.table = Meter(endpoint), table
        self.boto3 = self.meter.boto3()

    def manager(self, session: str):
        from strands_session_dynamodb import DynamoDBSessionManager

        return DynamoDBSessionManager(session_id=session, table_name=self.table, boto_session=self.boto3,
                                      endpoint_url=self.meter.endpoint)

    def turn(self, session: str, text: str) -> float:
        watch = Stopwatch()
        return _strands_turn(watch, watch.call(self.manager, session), text)

    def seed_turns(self, session: str, turns: int) -> None:
        """What a session of `turns` turns holds: its messages, and the agent's sliding-window offset
        (every turn past the window removed two messages from the front)."""
        from strands.types.session import SessionMessage
        from strands_agents_session.keys import message_sk, messages_pk

        manager = self.manager(session)
        _strands_turn(Stopwatch(), manager, "seed")  # creates the agent item as Strands does
        messages = [m for n in range(turns) for m in strands_natives(n)]
        manager.storage.put_batch([{"pk": messages_pk(session, "default"), "sk": message_sk(i),
                                    "data": json.dumps(SessionMessage.from_message(m, i).to_dict())}
                                   for i, m in enumerate(messages)])
        agent = manager.read_agent(session, "default")
        agent.conversation_manager_state["removed_message_count"] = max(0, len(messages) - STRANDS_WINDOW)
        manager.update_agent(session, agent)

    def kept(self, session: str) -> int:
        manager = self.manager(session)
        said = {m.message["content"][0].get("text") for m in manager.list_messages(session, "default")
                if m.message["role"] == "user"}
        return len(said & {f"c{t}-{i}" for t in range(THREADS) for i in range(TURNS_PER_THREAD)})


def _strands_turn(watch: Stopwatch, manager, text: str) -> float:
    from strands import Agent

    from offline.strands_model import OfflineModel

    watch.wrap(manager, "initialize", "append_message", "sync_agent", "redact_latest_message")
    Agent(model=OfflineModel(reply=ANSWER), callback_handler=None, session_manager=manager)(text)
    return watch.seconds


def langchain_natives(n: int) -> list:
    from langchain_core.messages import AIMessage, HumanMessage

    return [HumanMessage(f"{n}: {QUESTION}"), AIMessage(ANSWER, id=f"lc_run--{uuid.uuid4()}")]


def _langchain_turn(watch: Stopwatch, make_history, text: str) -> float:
    """What RunnableWithMessageHistory does around the model: history, its messages, add input + output."""
    from langchain_core.messages import HumanMessage

    from offline.langchain_model import OfflineChatModel

    history = watch.call(make_history)
    question = HumanMessage(text)
    reply = OfflineChatModel(reply=ANSWER).invoke(watch.call(lambda: history.messages) + [question])
    watch.call(history.add_messages, [question, reply])
    return watch.seconds


class LangChainOurs(Ours):
    def turn(self, session: str, text: str) -> float:
        from durable_memory.adapters.langchain import DurableChatMessageHistory

        return _langchain_turn(Stopwatch(), lambda: DurableChatMessageHistory(
            self.memory, user_id=self.user, session_id=session), text)

    def seed_turns(self, session: str, turns: int) -> None:
        from durable_memory.adapters.langchain import LangChainCodec

        self.seed(session, [langchain_natives(n) for n in range(turns)], LangChainCodec())


class LangChainStock:
    label = "DynamoDBChatMessageHistory (langchain-community)"

    def __init__(self, endpoint: str, table: str):
        self.meter, self.table = Meter(endpoint), table
        self.boto3 = self.meter.boto3()

    def history(self, session: str):
        from langchain_community.chat_message_histories import DynamoDBChatMessageHistory

        return DynamoDBChatMessageHistory(table_name=self.table, session_id=session, boto3_session=self.boto3,
                                          endpoint_url=self.meter.endpoint)

    def turn(self, session: str, text: str) -> float:
        return _langchain_turn(Stopwatch(), lambda: self.history(session), text)

    def seed_turns(self, session: str, turns: int) -> None:
        """The item `turns` turns leave; raises ClientError past DynamoDB's 400 KB item size."""
        from langchain_core.messages import messages_to_dict

        self.history(session).table.put_item(Item={
            "SessionId": session, "History": messages_to_dict([m for n in range(turns) for m in langchain_natives(n)])})

    def kept(self, session: str) -> int:
        return sum(m.type == "human" for m in self.history(session).messages)

    def fails_at(self) -> int:
        """The first turn whose write no longer fits DynamoDB's item size: a binary search over the
        item that many turns leave (what add_messages would write)."""
        fits, fails = 0, ITEM_LIMIT_TURNS
        while fails - fits > 1:
            middle = (fits + fails) // 2
            try:
                self.seed_turns("size-probe", middle)
                fits = middle
            except ClientError:
                fails = middle
        return fails


def openai_natives(n: int) -> list[dict]:
    return [{"role": "user", "content": f"{n}: {QUESTION}"},
            {"id": f"msg_{uuid.uuid4().hex}", "content": [{"annotations": [], "text": ANSWER, "type": "output_text"}],
             "role": "assistant", "status": "completed", "type": "message"}]


def _openai_turn(watch: Stopwatch, make_session, text: str) -> float:
    from agents import Agent, Runner

    from offline.openai_model import OfflineModel

    session = watch.wrap(watch.call(make_session), "get_items", "add_items", "pop_item", "clear_session")
    asyncio.run(Runner.run(Agent(name="bench", model=OfflineModel(reply=ANSWER)), text, session=session))
    return watch.seconds


class OpenAIOurs(Ours):
    def turn(self, session: str, text: str) -> float:
        from durable_memory.adapters.openai_agents import DurableSession

        return _openai_turn(Stopwatch(), lambda: DurableSession(self.memory, user_id=self.user, session_id=session),
                            text)

    def seed_turns(self, session: str, turns: int) -> None:
        from durable_memory.adapters.openai_agents import OpenAICodec

        self.seed(session, [openai_natives(n) for n in range(turns)], OpenAICodec())


class OpenAIStock:
    label = "SQLiteSession, a local file (no DynamoDB session exists)"
    meter = None

    def __init__(self, endpoint: str, table: str):
        self.path = Path(tempfile.mkdtemp(prefix="bench-sqlite-")) / "sessions.db"

    def session(self, session: str):
        from agents import SQLiteSession

        return SQLiteSession(session, db_path=self.path)

    def turn(self, session: str, text: str) -> float:
        return _openai_turn(Stopwatch(), lambda: self.session(session), text)

    def seed_turns(self, session: str, turns: int) -> None:
        asyncio.run(self.session(session).add_items([i for n in range(turns) for i in openai_natives(n)]))

    def kept(self, session: str) -> int:
        return sum(item.get("role") == "user" for item in asyncio.run(self.session(session).get_items()))


FRAMEWORKS = (("Strands Agents", StrandsStock, StrandsOurs), ("LangChain", LangChainStock, LangChainOurs),
              ("OpenAI Agents SDK", OpenAIStock, OpenAIOurs))


def run(endpoint: str) -> Section:
    import sys

    from local.server import configure
    from local.tables import control_plane_client, ensure_tables

    from agents import set_tracing_disabled

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))  # the offline models
    set_tracing_disabled(True)  # no trace export from the benchmark
    configure(endpoint)
    suffix = uuid.uuid4().hex[:8]
    ours_table, stock_table = f"bench-frameworks-{suffix}", f"bench-stock-{suffix}"
    admin = control_plane_client()
    ensure_tables(admin, sessions_table=ours_table, long_term_table=f"{ours_table}-facts")
    # LangChain's layout (strands-session-dynamodb creates its own table, PK / SK, on first use)
    admin.create_table(TableName=f"{stock_table}-langchain", BillingMode="PAY_PER_REQUEST",
                       AttributeDefinitions=[{"AttributeName": "SessionId", "AttributeType": "S"}],
                       KeySchema=[{"AttributeName": "SessionId", "KeyType": "HASH"}])
    admin.get_waiter("table_exists").wait(TableName=f"{stock_table}-langchain")
    rows, ratios, checks, data = [], [], [], {}
    for framework, stock_class, ours_class in FRAMEWORKS:
        stock_name = f"{stock_table}-{'langchain' if stock_class is LangChainStock else 'strands'}"
        backends = {"stock": stock_class(endpoint, stock_name), "ours": ours_class(endpoint, ours_table)}
        results = _measure(backends)
        rows += [[framework, backend.label, *_cells(results[kind])] for kind, backend in backends.items()]
        ratios.append([framework, *[_ratio(results["stock"]["sizes"].get(n), results["ours"]["sizes"].get(n))
                                    for n in SIZES]])
        data[framework] = results
    ours = [data[f]["ours"] for f, _, _ in FRAMEWORKS]
    checks.append(Check("every adapter keeps all 160 concurrent turns",
                        ", ".join(str(r["kept"]) for r in ours), f"{CONCURRENT} each",
                        all(r["kept"] == CONCURRENT for r in ours)))
    # From 100 turns on, the window is full (20 turns): what a turn reads stops growing.
    reads = [[(r["sizes"][n]["requests"], r["sizes"][n]["rcu"]) for n in (100, SIZES[-1])] for r in ours]
    flat = all(at_100 == at_1000 for at_100, at_1000 in reads)
    checks.append(Check("every adapter's DynamoDB requests and RCU per turn at 1,000 turns as at 100",
                        "equal" if flat else str(reads), "equal", flat))
    header = ["framework", "backend", f"memory ms per turn at 10 / 100 / 1,000 turns (median of {MEASURED_TURNS})",
              "DynamoDB requests per turn", "RCU per turn", "WCU per turn",
              f"concurrent turns kept of {CONCURRENT}", "fails at"]
    return Section(
        title="Agent frameworks: stock session backends against the durable-memory adapters",
        tables=[table(header, rows),
                table(["framework", "stock memory time / adapter's, at 10 turns", "at 100", "at 1,000"], ratios)],
        checks=checks,
        notes=[" ".join(__doc__.split("\n\n", 1)[1].split()),
               f"Requests and capacity per turn are means over the {MEASURED_TURNS} measured turns, at 10 / 100 / 1,000 turns "
               "(`ReturnConsumedCapacity` on every data call of the backend's clients). Concurrency: 16 threads "
               f"x {TURNS_PER_THREAD} turns, each with a fresh agent, into one new session; kept = questions "
               "the session holds afterwards (a turn that raised counts as not kept). `fails at`: the first "
               "turn that cannot be stored, for a ~1.3 KB turn; the adapters were tested to 3,000 turns "
               "(tests/integration/test_adapters.py) and store each turn as its own item."],
        data={"frameworks": data},
    )


def _measure(backends: dict) -> dict:
    """Per backend: at each size, memory time and DynamoDB work per turn; then the concurrent turns.
    The backends' turns alternate, so that both meet the same load on a shared machine."""
    results = {kind: {"sizes": {}, "fails_at": getattr(backend, "fails_at", lambda: None)()}
               for kind, backend in backends.items()}
    for size in SIZES:
        seeded = {}
        for kind, backend in backends.items():
            try:
                backend.seed_turns(f"scale-{size}", size)
                seeded[kind] = backend
                if backend.meter:
                    backend.meter.take()
            except ClientError as error:
                results[kind]["sizes"][size] = {"error": error.response["Error"]["Code"]}
        seconds = {kind: [] for kind in seeded}
        for n in range(MEASURED_TURNS):
            for kind, backend in seeded.items():
                seconds[kind].append(backend.turn(f"scale-{size}", f"question {n}"))
        for kind, backend in seeded.items():
            totals = backend.meter.take() if backend.meter else {}
            results[kind]["sizes"][size] = {"median_ms": statistics.median(seconds[kind]) * 1000,
                                            **{k: v / MEASURED_TURNS for k, v in totals.items()}}
    for kind, backend in backends.items():
        results[kind]["kept"], results[kind]["raised"] = _concurrent(backend)
    return results


def _concurrent(backend) -> tuple[int, int]:
    raised = itertools.count()

    def thread(t: int) -> None:
        for i in range(TURNS_PER_THREAD):
            try:
                backend.turn("concurrent", f"c{t}-{i}")
            except Exception:
                next(raised)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(thread, range(THREADS)))
    return backend.kept("concurrent"), next(raised)


def _cells(result: dict) -> list[str]:
    sizes = [result["sizes"][n] for n in SIZES]

    def each(key: str, form: str) -> str:
        return " / ".join("fails" if "error" in s else (form.format(s[key]) if key in s else "n/a") for s in sizes)

    raised = f" ({result['raised']} raised)" if result["raised"] else ""
    fails = f"turn {result['fails_at']:,} (item over 400 KB)" if result["fails_at"] else "no wall up to 1,000"
    return [each("median_ms", "{:.1f}"), each("requests", "{:.1f}"), each("rcu", "{:.1f}"), each("wcu", "{:.1f}"),
            f"{result['kept']}{raised}", fails]


def _ratio(stock: dict | None, ours: dict | None) -> str:
    if not stock or "error" in stock:
        return "stock fails"
    return f"{stock['median_ms'] / ours['median_ms']:.1f}x"
