"""Long answers at a real model's pace, on both paths: the local HTTP stack (local.server) with the
real anthropic SDK streaming from a fake Messages API that takes 1 s to its first token and writes
60 tokens a second (tests/fakes.py SlowModelAPI), DynamoDB Local for memory.

For answers of 200, 1,000 and 3,000 tokens: when the client first sees text and when it has the whole
answer. Synchronous: both at once, when the 200 arrives (or the answer is cut at the turn's
deadline). Asynchronous (`Prefer: respond-async`): the 202, then GET every POLL_SECONDS until done.
The model alone needs 1 s + tokens / 60 s; the last column is the time over that. The asynchronous
turns run side by side first (they hold the local server only for their short requests), then the
synchronous ones one by one (each holds it for its whole turn, as a Lambda environment would)."""

import threading
import time
import uuid

import httpx

from agent.budget import SYNC_MODEL_SECONDS
from agent.providers import AnthropicModel
from benchmarks.harness import Check, Section, handler_module, quiet_stdout, table
from local.dynamodb import free_port
from local.server import Limits, make_server
from tests.fakes import FIRST_TOKEN_SECONDS, TOKENS_PER_SECOND, SlowModelAPI, Text

ANSWER_TOKENS = (200, 1000, 3000)
POLL_SECONDS = 0.2
GIVE_UP_SECONDS = 120


def run(endpoint: str) -> Section:
    handler = handler_module(endpoint)
    server = make_server(handler.lambda_handler, free_port(), limits=Limits(throttling=None))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    original_model = handler.model
    try:
        with SlowModelAPI() as api, quiet_stdout(), httpx.Client(base_url=url, timeout=60) as client:
            api.script = [_asked_length]
            model = _model(api.url)
            handler.model = lambda: model
            results: dict = {}
            threads = [threading.Thread(target=lambda n=n: results.__setitem__(("async", n), _async(client, n)))
                       for n in ANSWER_TOKENS]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for tokens in ANSWER_TOKENS:
                results[("sync", tokens)] = _sync(client, tokens)
    finally:
        handler.model = original_model
        server.shutdown()
        server.server_close()
    rows = []
    for tokens in ANSWER_TOKENS:
        ideal = FIRST_TOKEN_SECONDS + tokens / TOKENS_PER_SECOND
        for path in ("sync", "async"):
            first, done, received, note = results[(path, tokens)]
            rows.append([f"{tokens:,}", "synchronous" if path == "sync" else "asynchronous", f"{first:.1f} s",
                         f"{done:.1f} s", f"{received:,} of {tokens:,}" + (f" ({note})" if note else ""),
                         f"{ideal:.1f} s", f"{done - ideal:+.1f} s" if received == tokens else ""])
    data = {f"slow model {path} {tokens} tokens, completion (s)": round(results[(path, tokens)][1], 2)
            for path in ("sync", "async") for tokens in ANSWER_TOKENS}
    return Section(
        title=f"Long answers at a real model's pace ({FIRST_TOKEN_SECONDS:g} s to the first token, "
              f"{TOKENS_PER_SECOND:g} tokens/s)",
        tables=[table(["answer (tokens)", "path", "first text seen", "whole answer", "tokens received",
                       "the model alone", "over the model"], rows)],
        notes=[
            "One run per cell: the fake model's pace dominates and is set by the clock, not by this "
            "machine. A synchronous turn shows nothing until its end; its model deadline "
            f"({SYNC_MODEL_SECONDS:g} s after the request enters the handler) cuts what a synchronous request "
            "cannot carry, and the answer says `truncated`. An asynchronous turn shows text about "
            "1 s after its first token (progress is written about once a second and polled every "
            f"{POLL_SECONDS:g} s) and carries answers of minutes.",
        ],
        data=data,
        checks=[
            Check("1,000 tokens at 60 tokens/s, synchronously, whole", f"{results[('sync', 1000)][2]:,} tokens",
                  "1,000 tokens", results[("sync", 1000)][2] == 1000),
            Check("3,000 tokens at 60 tokens/s, asynchronously, whole", f"{results[('async', 3000)][2]:,} tokens",
                  "3,000 tokens", results[("async", 3000)][2] == 3000),
        ],
    )


def _asked_length(request: dict) -> Text:
    """The fake model answers with as many tokens as the turn's message asks for ("<n> tokens please")."""
    return Text(int(request["messages"][-1]["content"].split()[0]))


def _model(api_url: str) -> AnthropicModel:
    import os

    os.environ["ANTHROPIC_BASE_URL"] = api_url
    return AnthropicModel(api_key="bench-key", model_id="claude-bench")


def _sync(client: httpx.Client, tokens: int) -> tuple[float, float, int, str]:
    started = time.monotonic()
    response = client.post(f"/sessions/{uuid.uuid4().hex}/messages", json={"message": f"{tokens} tokens please"},
                           headers={"X-Local-User": "bench-slow"})
    elapsed = time.monotonic() - started
    body = response.json()
    return elapsed, elapsed, len(body["reply"]) // 4, "truncated" if body.get("truncated") else ""


def _async(client: httpx.Client, tokens: int) -> tuple[float, float, int, str]:
    headers = {"X-Local-User": "bench-slow", "Prefer": "respond-async"}
    started = time.monotonic()
    accepted = client.post(f"/sessions/{uuid.uuid4().hex}/messages", json={"message": f"{tokens} tokens please"},
                           headers=headers)
    first = None
    while time.monotonic() - started < GIVE_UP_SECONDS:
        view = client.get(accepted.headers["location"], headers=headers).json()
        if first is None and view.get("reply"):
            first = time.monotonic() - started
        if view["status"] != "running":
            return first, time.monotonic() - started, len(view.get("reply", "")) // 4, (
                "truncated" if view.get("truncated") else "" if view["status"] == "done" else view["status"])
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"an asynchronous turn of {tokens} tokens did not finish in {GIVE_UP_SECONDS} s")
