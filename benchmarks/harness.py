"""What every benchmark shares: the handler wired to the one DynamoDB Local, events, statistics.

A benchmark module exposes `run(endpoint) -> Section`; benchmarks.run prints and saves the sections."""

import contextlib
import io
import json
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass, field

from agent.shared import DEFAULT_MAX_TURNS
from local.server import LocalContext, configure, to_event

SESSIONS_TABLE = "bench-sessions"
LONG_TERM_TABLE = "bench-long-term"
# The deployed function's K, the most turns read into a prompt; so is ours.
MAX_TURNS = DEFAULT_MAX_TURNS


@dataclass(frozen=True)
class Check:
    """One target, as the issue states it, and whether this run met it."""

    name: str
    measured: str
    target: str
    passed: bool

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "MISS"


@dataclass
class Section:
    title: str
    tables: list[str]
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Figures a later run compares itself with (saved in benchmarks/results/latest.json).
    data: dict = field(default_factory=dict)

    def markdown(self) -> str:
        parts = [f"## {self.title}", *self.tables]
        if self.checks:
            parts.append(table(["target", "measured", "wanted", "verdict"],
                               [[c.name, c.measured, c.target, c.verdict] for c in self.checks]))
        parts += self.notes
        return "\n\n".join(parts)


def environment(endpoint: str) -> dict[str, str]:
    """The local stack's environment (local.server.configure), on the benchmark's own tables."""
    return {
        "SESSIONS_TABLE_NAME": SESSIONS_TABLE,
        "LONG_TERM_TABLE_NAME": LONG_TERM_TABLE,
        "MEMORY_MAX_TURNS": str(MAX_TURNS),
        "AGENT_MODEL_PROVIDER": "offline",
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
    }


def handler_module(endpoint: str):
    """agent.handler in this process, pointed at `endpoint`, tables created. Imported once."""
    os.environ.update(environment(endpoint))
    configure(endpoint)
    from agent import handler
    from local.tables import ensure_tables

    ensure_tables(handler.dynamodb, sessions_table=SESSIONS_TABLE, long_term_table=LONG_TERM_TABLE)
    return handler


class TimedModel:
    """The offline model, timed, so that a turn's time can be measured without the model's."""

    def __init__(self, model):
        self._model = model
        self._local = threading.local()

    def complete(self, **kwargs):
        started = time.perf_counter()
        try:
            return self._model.complete(**kwargs)
        finally:
            self._local.seconds = self.seconds + time.perf_counter() - started

    @property
    def seconds(self) -> float:
        return getattr(self._local, "seconds", 0.0)

    def reset(self) -> None:
        self._local.seconds = 0.0


@dataclass(frozen=True)
class Call:
    operation: str
    params: dict
    started: float  # the API call was made (before botocore builds the request)
    ended: float  # its response was parsed
    parsed: dict
    attempts: int


class CallRecorder:
    """Every DynamoDB call of a client, seen through botocore's events: before-call and after-call
    (one of each per API call, whatever its retries) count them; before-parameter-build marks when
    the call was made, so that the time botocore spends building it counts as the call's."""

    def __init__(self, client):
        self.calls: list[Call] = []
        self.before_calls = 0
        self._lock = threading.Lock()
        self._events = client.meta.events
        self._hooks = [
            ("before-parameter-build.dynamodb", self._made),
            ("before-call.dynamodb", self._before_call),
            ("after-call.dynamodb", self._after_call),
        ]

    def __enter__(self):
        for event, hook in self._hooks:
            self._events.register(event, hook, unique_id=f"bench-{event}-{id(self)}")
        return self

    def __exit__(self, *exc):
        for event, _ in self._hooks:
            self._events.unregister(event, unique_id=f"bench-{event}-{id(self)}")

    def take(self) -> list[Call]:
        """The calls completed since the last take, in the order they were made."""
        with self._lock:
            calls, self.calls = self.calls, []
            if self.before_calls != len(calls):
                raise RuntimeError(f"{self.before_calls} calls started but {len(calls)} answered")
            self.before_calls = 0
        return sorted(calls, key=lambda call: call.started)

    def _made(self, params, context, **_):
        context["bench_started"] = time.perf_counter()
        context["bench_params"] = dict(params)

    def _before_call(self, **_):
        with self._lock:
            self.before_calls += 1

    def _after_call(self, model, parsed, context, **_):
        attempts = parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
        call = Call(model.name, context["bench_params"], context["bench_started"], time.perf_counter(),
                    parsed, attempts)
        with self._lock:
            self.calls.append(call)


def sequential_groups(calls: list[Call]) -> list[list[Call]]:
    """Calls that overlap in time ran in parallel; each group of overlapping calls is one step of
    the critical path, so len(groups) is the number of sequential round trips."""
    groups: list[list[Call]] = []
    for call in sorted(calls, key=lambda c: c.started):
        if groups and call.started < max(c.ended for c in groups[-1]):
            groups[-1].append(call)
        else:
            groups.append([call])
    return groups


def turn_event(user_id: str, session_id: str, message: str, headers: dict | None = None) -> dict:
    body = json.dumps({"message": message}).encode()
    headers = {"X-Local-User": user_id, "Content-Type": "application/json", "Host": "127.0.0.1", **(headers or {})}
    return to_event("POST", f"/sessions/{session_id}/messages", headers, body, "127.0.0.1")


def invoke(handler, event: dict) -> dict:
    return handler.lambda_handler(event, LocalContext(aws_request_id=event["requestContext"]["requestId"]))


@contextlib.contextmanager
def quiet_stdout():
    """Powertools prints one EMF metrics line per request; keep it out of the report, not out of the cost."""
    with contextlib.redirect_stdout(io.StringIO()) as sink, _no_empty_metrics_warning():
        yield sink


@contextlib.contextmanager
def _no_empty_metrics_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        yield


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile: p99 of 300 samples is the 297th smallest, a value that occurred."""
    ordered = sorted(samples)
    rank = math.ceil(fraction * len(ordered) - 1e-9)  # 0.99 * 100 is 99.00000000000001 in floats
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
