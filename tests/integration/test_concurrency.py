"""Concurrent turns: every successful turn is stored exactly once, in arrival order, nothing is lost,
nothing is 5xx.

Through the local stack, 32 clients at once: the local server's worker processes (Lambda instances)
run them several at a time, racing in DynamoDB as concurrent environments do in AWS. The last test
runs 32 turns at once in threads, past the resolver, against DynamoDB Local: more at once than the
local server has workers."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent.providers import OfflineModel
from agent.turn import run_turn
from client import as_user, send_all

CONCURRENT_TURNS = 32


def history(api, user, session) -> list[dict]:
    return api.get(f"/sessions/{session}/messages", headers=as_user(user)).json()["messages"]


def test_concurrent_turns_on_one_session_are_all_stored_once_in_arrival_order(api, user, base_url, reliability):
    # Given a session with one turn
    api.post("/sessions/busy/messages", json={"message": "before"}, headers=as_user(user))
    messages = [f"concurrent {n}" for n in range(CONCURRENT_TURNS)]
    # When 32 turns arrive at once
    responses = send_all(base_url, user, [("busy", m) for m in messages])
    # Then every one is answered and stored, none with a server error
    assert [r.status_code for r in responses] == [200] * CONCURRENT_TURNS
    assert all(r.json()["memory"] == {"write": "ok"} for r in responses)
    # And the history holds each exactly once, in the order the turns arrived (their turn ids)
    stored = history(api, user, "busy")
    said = [m["content"] for m in stored if m["role"] == "user"]
    arrival = [message for _, message in sorted(zip((r.json()["turn_id"] for r in responses), messages))]
    assert said == ["before", *arrival]
    assert [m["created_at"] for m in stored] == sorted(m["created_at"] for m in stored)
    # And no update of the session's registry entry was lost
    [session] = api.get("/sessions", headers=as_user(user)).json()["sessions"]
    assert session["turns"] == CONCURRENT_TURNS + 1
    lost = CONCURRENT_TURNS + 1 - len(said)
    reliability("Concurrency", f"{CONCURRENT_TURNS} concurrent turns on one session",
                f"{CONCURRENT_TURNS} x 200; each stored once, in arrival order; turn count {session['turns']}", lost)


@pytest.mark.slow
def test_concurrent_turns_on_many_sessions_are_all_stored_once(api, user, base_url, reliability):
    sessions = [f"s{n}" for n in range(CONCURRENT_TURNS)]
    # When 32 turns arrive at once, one per session
    responses = send_all(base_url, user, [(s, f"hello {s}") for s in sessions])
    # Then each is answered, and each session holds exactly its own turn
    assert [r.status_code for r in responses] == [200] * CONCURRENT_TURNS
    stored = {s: [m["content"] for m in history(api, user, s) if m["role"] == "user"] for s in sessions}
    assert stored == {s: [f"hello {s}"] for s in sessions}
    listed = api.get("/sessions", headers=as_user(user)).json()["sessions"]
    assert sorted(s["session_id"] for s in listed) == sorted(sessions)
    lost = sum(1 for s in sessions if stored[s] != [f"hello {s}"])
    reliability("Concurrency", f"{CONCURRENT_TURNS} concurrent turns on {CONCURRENT_TURNS} sessions",
                f"{CONCURRENT_TURNS} x 200; each session holds exactly its turn; all listed", lost)


def test_concurrent_turns_racing_in_the_store_are_all_stored_once(api, user, handler, reliability):
    barrier = threading.Barrier(CONCURRENT_TURNS)

    def turn(n):
        barrier.wait()
        return run_turn(memory=handler.memory, model=OfflineModel(), user_id=user, session_id="race",
                        message=f"racing {n}")

    # When 32 turns of one session run at once, each with its own load, model call and append
    with ThreadPoolExecutor(CONCURRENT_TURNS) as pool:
        results = list(pool.map(turn, range(CONCURRENT_TURNS)))
    # Then every append succeeded, and each turn is stored once, ordered by arrival
    assert [r.write for r in results] == ["ok"] * CONCURRENT_TURNS
    said = [m["content"] for m in history(api, user, "race") if m["role"] == "user"]
    assert said == [r.turn.messages[0]["content"] for r in sorted(results, key=lambda r: r.turn.turn_id)]
    # And the session's turn count lost no update
    [session] = api.get("/sessions", headers=as_user(user)).json()["sessions"]
    assert session["turns"] == CONCURRENT_TURNS
    reliability("Concurrency", f"{CONCURRENT_TURNS} turns of one session racing in DynamoDB (threads, past the resolver)",
                f"{CONCURRENT_TURNS} appends ok; each stored once, in arrival order; turn count {session['turns']}",
                CONCURRENT_TURNS - len(said))
