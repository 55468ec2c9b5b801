"""A turn is observed one way, whichever path runs it: the API's synchronous answer and the worker's
asynchronous one emit the same metrics (names and dimensions, which the dashboard graphs) and log
each kind of failure under the same event name (agent.observation)."""

import json
from dataclasses import asdict

import pytest

from agent.providers import ModelError
from fakes import ScriptedModel, captured_logs, text
from local.gateway import LocalContext, to_event
from memory.errors import MemoryUnavailable

FAILURES = {
    "the model rejects the request": ModelError("anthropic returned 401 authentication_error", transient=False),
    "the model is unavailable": ModelError("anthropic returned 529 overloaded_error", transient=True),
    "a memory read fails": MemoryUnavailable("ThrottlingException"),
    "a bug": RuntimeError("boom"),
}


class FailingModel:
    def __init__(self, error: Exception):
        self.error = error

    def complete(self, **_):
        raise self.error


@pytest.fixture
def functions(dynamodb, functions):
    """The API and worker modules, imported once moto is active."""
    return functions


def use_model(functions, monkeypatch, model):
    handler, worker = functions
    monkeypatch.setattr(handler, "model", lambda: model)
    monkeypatch.setattr(worker, "configured_model", lambda _: model)


def post(handler, session: str, headers: dict | None = None) -> dict:
    event = to_event("POST", f"/sessions/{session}/messages", {"x-local-user": "u1", **(headers or {})},
                     json.dumps({"message": "hello"}).encode(), "127.0.0.1")
    return handler.lambda_handler(event, LocalContext())


def sync_turn(functions, session: str) -> None:
    handler, _ = functions
    post(handler, session)


def async_turn(functions, session: str, monkeypatch) -> None:
    """Accepted by the API, then delivered to the worker Lambda, as Lambda's event queue would."""
    handler, worker = functions
    jobs = []
    monkeypatch.setattr(handler, "dispatch", jobs.append)
    assert post(handler, session, {"prefer": "respond-async"})["statusCode"] == 202
    worker.lambda_handler(asdict(jobs[0]), LocalContext())


def emitted_metrics(output: str) -> set[tuple[str, tuple]]:
    """(name, dimensions) of every metric in Powertools' EMF lines."""
    found = set()
    for line in output.splitlines():
        document = json.loads(line) if line.startswith("{") else {}
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            dimensions = tuple((name, document[name]) for names in directive["Dimensions"] for name in names)
            found |= {(metric["Name"], dimensions) for metric in directive["Metrics"]}
    return found


def error_events(lines: list[dict]) -> list[str]:
    return [line["message"] for line in lines if line["level"] == "ERROR"]


def test_an_async_turn_emits_the_metrics_of_a_sync_turn(functions, monkeypatch, capsys):
    # Given a model that answers
    use_model(functions, monkeypatch, ScriptedModel(text("hi", 120, 7), text("hi", 120, 7)))
    # When one turn runs synchronously and one asynchronously
    capsys.readouterr()
    sync_turn(functions, "sync")
    sync = emitted_metrics(capsys.readouterr().out)
    async_turn(functions, "async", monkeypatch)
    asynchronous = emitted_metrics(capsys.readouterr().out)
    # Then both emitted the same metrics, with the same dimensions: latency and tokens
    assert {name for name, _ in sync} == {"TurnLatency", "InputTokens", "OutputTokens"}
    assert asynchronous == sync


@pytest.mark.parametrize("failure", FAILURES)
def test_an_async_turn_logs_a_failure_under_the_event_of_a_sync_turn(functions, monkeypatch, failure):
    # Given a turn that fails
    use_model(functions, monkeypatch, FailingModel(FAILURES[failure]))
    handler, _ = functions
    # When it runs synchronously and asynchronously
    with captured_logs(handler.logger) as lines:
        sync_turn(functions, "sync")
        sync = error_events(lines())
    with captured_logs(handler.logger) as lines:
        async_turn(functions, "async", monkeypatch)
        asynchronous = error_events(lines())
    # Then both logged it under one event
    assert len(sync) == 1 and asynchronous == sync
