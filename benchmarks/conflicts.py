"""Transaction conflicts under concurrent turns: 100 turns sent at once into one session of the local
stack (`python -m local.server` with 16 worker processes, Lambda instances), DynamoDB Local behind
local.strict_dynamodb, which refuses what DynamoDB would refuse. The refusals are the proxy's count;
a refused write the turn did not retry away shows as a turn answered `suppressed` and not stored."""

import collections
import os
import subprocess
import sys
import threading
import time
import uuid

import httpx

from benchmarks.harness import Check, Section, environment, table
from local.dynamodb import ROOT, free_port
from local.strict_dynamodb import REFUSALS_PATH, TRANSACTION_MS, WRITE_MS

TURNS = 100
INSTANCES = 16
START_SECONDS = 60


def run(endpoint: str) -> Section:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "local.server"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=os.environ | environment(endpoint) | {"PORT": str(port), "LOCAL_WORKERS": str(INSTANCES), "LOCAL_THROTTLE": "off",
                                                  "PYTHONPATH": "functions:."},
    )
    try:
        _wait_until_up(url, server)
        before = _refusals(endpoint)
        user = f"bench-conflicts-{uuid.uuid4().hex[:8]}"
        answers = _turns_at_once(url, user)
        refused = _refusals(endpoint) - before
        history = httpx.get(f"{url}/sessions/one/messages", params={"limit": TURNS},
                            headers={"X-Local-User": user}, timeout=60)
        stored = sum(m["role"] == "user" for m in history.json().get("messages", []))
    finally:
        server.terminate()
        server.wait(timeout=30)
    conflicts = sum(refused.values())
    rows = [[operation, count] for operation, count in sorted(refused.items())] or [["(none)", 0]]
    return Section(
        title="Transaction conflicts: 100 concurrent turns into one session",
        tables=[
            table(["refused by local.strict_dynamodb", "requests"], rows),
            table(["answer", "turns"], [[answer, count] for answer, count in sorted(answers.items())]),
        ],
        checks=[
            Check("TransactionConflict refusals per 100 concurrent turns into one session", str(conflicts), "0",
                  conflicts == 0),
            Check("turns stored of 100 sent at once into one session", str(stored), "100", stored == TURNS),
        ],
        notes=[f"{TURNS} turns sent at once (threads behind a barrier) to {INSTANCES} instances, the offline "
               f"model; DynamoDB Local behind local.strict_dynamodb (a transaction holds its items "
               f"{TRANSACTION_MS:g} ms, a single write {WRITE_MS:g} ms). A refusal is one request DynamoDB would have refused "
               "(TransactionCanceledException with TransactionConflict, or TransactionConflictException); "
               "the turn may have retried it."],
        data={"conflicts": {"refusals per 100 concurrent turns": conflicts, "stored of 100": stored}},
    )


def _turns_at_once(url: str, user: str) -> collections.Counter:
    barrier, answers, lock = threading.Barrier(TURNS), collections.Counter(), threading.Lock()

    def turn(n: int):
        barrier.wait()
        response = httpx.post(f"{url}/sessions/one/messages", json={"message": f"turn {n}"},
                              headers={"X-Local-User": user}, timeout=120)
        answer = response.json().get("memory", {}).get("write") if response.status_code == 200 else ""
        with lock:
            answers[f"{response.status_code} {answer}".strip()] += 1

    threads = [threading.Thread(target=turn, args=(n,)) for n in range(TURNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def _refusals(endpoint: str) -> collections.Counter:
    return collections.Counter(httpx.get(endpoint + REFUSALS_PATH, timeout=10).json())


def _wait_until_up(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"the local server did not start within {START_SECONDS} s")
