"""Where AWS is strict, the local stack is too: what API Gateway and Lambda refuse or cut short is
refused or cut short locally, with their answers, through the multi-process local server."""

import base64
import contextlib
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from agent import budget, routes
from client import ASYNC, GIVE_UP_SECONDS, POLL_SECONDS, as_user, http_client, poll, raw, say, start
from fakes import SlowModelAPI, Text, words
from local.gateway import Limits, Throttling
from local.tables import control_plane_client
from local_stack import SESSIONS_TABLE, items_of, local_server
from memory.conversation import ConversationStore
from memory.turns import Turn, iso, new_turn_id

# A Cognito id token is a JWT of 1-4 KB (its claims, groups, and the RS256 signature), sent as
# `Authorization: Bearer ...` on every request: it takes that much of API Gateway's header budget.
REALISTIC_TOKEN_BYTES = 4_000
# Sessions one DELETE /me cannot sweep within a function timeout of 2 s here, and how often it is retried.
MANY_SESSIONS = 600
MAX_ERASURE_ATTEMPTS = 40
LISTED_SESSIONS = 120
# An answer the worker writes for a few seconds, long enough to kill it mid-way.
LONG_ANSWER_TOKENS = 600
# A guard against a hang, not a timing claim: half-second polls for a fresh instance to answer.
REPLACEMENT_POLLS = 120


def bearer(size: int) -> dict:
    return {"Authorization": "Bearer " + base64.urlsafe_b64encode(os.urandom(size * 3 // 4)).decode()}


def test_two_identity_headers_are_refused_not_joined(server_url, reliability):
    # Given a request with two identities (the server would join them into "alice,bob")
    request = b"GET /memory HTTP/1.1\r\nHost: x\r\nX-Local-User: alice\r\nX-Local-User: bob\r\nConnection: close\r\n\r\n"
    status, body = raw(server_url, request)
    # Then it is API Gateway's 401: the handler never sees an identity
    assert (status, body) == (401, b'{"message": "Unauthorized"}')
    reliability("Local limits", "two X-Local-User headers", "401 from the gateway, no identity made of both")


def test_an_identity_with_a_comma_is_refused(api):
    response = api.get("/memory", headers=as_user("alice,bob"))
    assert response.status_code == 401 and response.json() == {"message": "Unauthorized"}


def test_a_real_tokens_size_fits_the_header_budget(api, user):
    response = api.get("/memory", headers=as_user(user) | bearer(REALISTIC_TOKEN_BYTES))
    assert response.status_code == 200 and response.json() == {"facts": {}}


@pytest.mark.parametrize("size", [10_300, 12_000])
def test_a_token_past_api_gateways_header_budget_is_refused(api, user, reliability, size):
    # API Gateway's quota: 10,240 bytes for the request line and header values together
    response = api.get("/memory", headers=as_user(user) | bearer(size))
    assert response.status_code == 431 and response.json() == {"message": "Request Header Fields Too Large"}
    reliability("Local limits", f"a {size:,}-byte token", "431 from the gateway, the handler not invoked")


@pytest.fixture(scope="module")
def make_dev(tables, dynamodb_endpoint):
    """`make dev`'s server as it starts: the deployed stage's throttle, API Gateway's and Lambda's timeouts."""
    with local_server(dynamodb_endpoint, 4) as server:
        yield server


@contextlib.contextmanager
def slow_turns(dynamodb_endpoint: str, seconds: float, **limits: str):
    """A server of one instance whose turns take `seconds` (a model that slow to its first token)."""
    with SlowModelAPI(first_token_seconds=seconds) as model, local_server(
            dynamodb_endpoint, 1, AGENT_MODEL_PROVIDER="anthropic", ANTHROPIC_API_KEY="test-key",
            ANTHROPIC_BASE_URL=model.url, **limits) as server:
        yield server


def children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(child) for child in out.split()}


def answered_again(client: httpx.Client) -> bool:
    """Whether the server answers /health again, once a fresh instance replaced the one that ended
    (a request reaching the ending one meanwhile gets 503, or a closed connection)."""
    for _ in range(REPLACEMENT_POLLS):
        try:
            if client.get("/health").status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    return False


def test_idle_connections_do_not_take_the_server_down(server_url, api, user, reliability):
    # Given more idle connections than the server has instances (each sends nothing)
    port = int(server_url.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
    try:
        # When a client sends a turn meanwhile
        response = say(api, user, "beside-idle", "hello")
        # Then it is answered
        assert response.status_code == 200, response.text
    finally:
        for sock in idle:
            sock.close()
    reliability("Local limits", "8 idle connections, then a turn", "the turn answered 200; the instances not held")


@pytest.mark.slow
def test_a_function_past_its_timeout_is_a_500_and_its_instance_ends(tables, dynamodb_endpoint, user, reliability):
    # Given turns slower than the function's timeout (set to 1.5 s here; deployed it is agent.budget's 25 s)
    with slow_turns(dynamodb_endpoint, 4, LOCAL_FUNCTION_TIMEOUT_SECONDS="1.5") as server:
        before = children(server.pid)
        with http_client(server.url, timeout=30) as client:
            # When a turn runs past it
            response = say(client, user, "slow", "hello")
            # Then API Gateway's answer for a function error, and the instance that ran it is replaced
            assert response.status_code == 500 and response.json() == {"message": "Internal Server Error"}
            assert answered_again(client)
    assert "Task timed out after 1.50 seconds" in "".join(server.console)
    assert children(server.pid).isdisjoint(before)
    reliability("Local limits", "a turn past the function timeout", "500 Internal Server Error; the instance replaced")


@pytest.mark.slow
def test_an_integration_past_api_gateways_timeout_is_a_504_and_the_function_goes_on(tables, dynamodb_endpoint, user,
                                                                                     reliability):
    # Given an integration timeout shorter than the turn (1.5 s here; deployed it is 29 s)
    with slow_turns(dynamodb_endpoint, 3, LOCAL_INTEGRATION_TIMEOUT_SECONDS="1.5") as server:
        with http_client(server.url, timeout=30) as client:
            response = say(client, user, "late", "hello")
            # Then API Gateway's 504, while the Lambda runs on and stores its turn
            # (AWS documents the status, INTEGRATION_TIMEOUT 504, not the body: the test reads the status)
            assert response.status_code == 504
            history = client.get("/sessions/late/messages", headers=as_user(user))
            assert history.status_code == 200 and history.json()["messages"][0]["content"] == "hello"
    reliability("Local limits", "a turn past API Gateway's integration timeout",
                "504; the function ran on and stored the turn, as deployed")


def test_the_default_limits_are_the_deployed_ones():
    limits = Limits.from_env({})
    assert limits.throttling == Throttling(routes.THROTTLE_RATE_PER_SECOND, routes.THROTTLE_BURST)
    assert limits.integration_timeout_seconds == budget.API_INTEGRATION_TIMEOUT_SECONDS
    assert limits.function_timeout_seconds == budget.SYNC_TURN_SECONDS


@pytest.mark.slow
def test_a_route_past_its_throttle_gets_429_across_all_instances(make_dev, user, reliability):
    # Given `make dev`'s four instances and the deployed stage's throttle (rate 10/s, burst 20)
    started = time.monotonic()
    with http_client(make_dev.url, timeout=30) as client, ThreadPoolExecutor(8) as pool:
        # When one route is asked 3 times its burst at once
        answers = list(pool.map(lambda _: client.get("/sessions", headers=as_user(user)), range(60)))
        elapsed = time.monotonic() - started
        # Then the bucket the instances share admits its burst and its rate, no more; the rest is 429
        admitted = [a for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code == 429]
        assert len(admitted) + len(refused) == 60
        assert len(admitted) <= routes.THROTTLE_BURST + routes.THROTTLE_RATE_PER_SECOND * elapsed + 1
        assert refused and all(a.json() == {"message": "Too Many Requests"} for a in refused)
        # And another route has its own bucket
        assert client.get("/memory", headers=as_user(user)).status_code == 200
    reliability("Local limits", "60 requests at once on one route, on the deployed throttle",
                f"{len(admitted)} admitted, {len(refused)} x 429 Too Many Requests; another route still admitted")


def test_a_request_over_lambdas_payload_quota_is_refused_by_the_gateway(api, user, reliability):
    # Given a body under API Gateway's 10 MB but an event over Lambda's 6 MB
    response = api.post("/sessions/big/messages", content=b'{"message": "' + b"x" * 7_000_000 + b'"}',
                        headers=as_user(user) | {"Content-Type": "application/json"})
    # Then the answer to a Lambda integration that fails, and the function never ran
    assert response.status_code == 500 and response.json() == {"message": "Internal Server Error"}
    assert api.get("/sessions/big/messages", headers=as_user(user)).status_code == 404
    reliability("Local limits", "a 7 MB body (over Lambda's 6 MB invocation payload)",
                "500 from the gateway, the function not invoked")


def seed_sessions(user: str, count: int) -> None:
    """`count` sessions of one turn each, written past the API (with the control plane's patient
    client: on a loaded machine, the data path's 1 s read timeout retries writes that landed)."""
    store = ConversationStore(client=control_plane_client(), table_name=SESSIONS_TABLE, ttl_days=30)

    def session(n: int) -> None:
        now = time.time()
        store.append(Turn(user, f"s{n}", new_turn_id(now), iso(now), [{"role": "user", "content": f"hello {n}"}]))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(session, range(count)))


@pytest.mark.slow
def test_the_session_list_comes_in_pages_that_hold_every_session_once(api, user, reliability):
    # Given a user with more sessions than a page holds
    seed_sessions(user, LISTED_SESSIONS)
    # When the list is read page by page
    pages, token = [], None
    while True:
        page = api.get("/sessions", params={"next_token": token} if token else {}, headers=as_user(user))
        assert page.status_code == 200, page.text
        pages.append(page.json())
        if not (token := pages[-1].get("next_token")):
            break
    # Then each page holds at most the default 50, newest first, and together they hold every session once
    listed = [s["session_id"] for p in pages for s in p["sessions"]]
    assert [len(p["sessions"]) for p in pages] == [50, 50, LISTED_SESSIONS - 100]
    assert sorted(listed) == sorted(f"s{n}" for n in range(LISTED_SESSIONS))
    updated = [s["updated_at"] for p in pages for s in p["sessions"]]
    assert updated == sorted(updated, reverse=True)
    # And a page past the maximum, or a token not issued by the API, is refused
    assert api.get("/sessions", params={"limit": 101}, headers=as_user(user)).status_code == 422
    forged = api.get("/sessions", params={"next_token": "bm90LWEtdG9rZW4"}, headers=as_user(user))
    assert forged.status_code == 400 and forged.json()["error"] == "bad_request"
    reliability("Local limits", f"GET /sessions of a user with {LISTED_SESSIONS} sessions",
                "pages of 50 with next_token, newest first, every session once; limit=101 422; a forged token 400")


def erase(client: httpx.Client, user: str) -> int:
    """DELETE /me's status, 0 for a connection an ending instance closed."""
    try:
        return client.delete("/me", headers=as_user(user)).status_code
    except httpx.TransportError:
        return 0


@pytest.mark.slow
def test_an_erasure_cut_short_by_the_function_timeout_is_finished_by_its_retry(tables, dynamodb_endpoint, user,
                                                                              reliability):
    # Given a user with more sessions than one DELETE /me can sweep within a short function timeout
    seed_sessions(user, MANY_SESSIONS)
    stored = len(items_of(user))
    with local_server(dynamodb_endpoint, 2, LOCAL_FUNCTION_TIMEOUT_SECONDS="2") as server, \
            http_client(server.url, timeout=30) as client:
        # When the erasure is cut short, and retried as a client retries a 5xx
        answers = [erase(client, user)]
        while answers[-1] != 204 and len(answers) < MAX_ERASURE_ATTEMPTS:
            time.sleep(0.5)
            answers.append(erase(client, user))
    # Then the retries finish it: not one item of the user is left
    assert answers[0] == 500 and answers[-1] == 204, answers
    assert items_of(user) == []
    reliability("Local limits", f"`DELETE /me` of {MANY_SESSIONS} sessions ({stored} items) with the function "
                "timeout set to 2 s", f"cut short ({answers[0]}), then {len(answers) - 1} retries: 204, "
                "0 items of the user left")


def poll_until(client: httpx.Client, user: str, location: str, wanted) -> dict:
    """The first view of the turn for which `wanted(view)` holds (a guard against a hang, no timing claim)."""
    give_up = time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < give_up:
        if wanted(view := client.get(location, headers=as_user(user)).json()):
            return view
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"not seen within {GIVE_UP_SECONDS} s")


def worker_function_processes(server) -> tuple[int, set[int]]:
    """The pid of the worker function's service, and those of its worker processes (instances)."""
    service = next(pid for pid in children(server.pid) if "local.lambda_service" in command_line(pid))
    return service, {pid for pid in children(service) if "spawn_main" in command_line(pid)}


def command_line(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline") as command:
        return command.read()


@pytest.mark.slow
def test_a_turn_no_worker_function_can_take_is_503_worker_unavailable(tables, dynamodb_endpoint, user, reliability):
    # Given `make dev`'s server whose worker function (Lambda's Invoke API, locally) is down
    with local_server(dynamodb_endpoint, 1) as server, http_client(server.url, timeout=30) as client:
        service, _ = worker_function_processes(server)
        os.kill(service, signal.SIGKILL)
        # When a turn is sent asynchronously
        response = client.post("/sessions/s/messages", json={"message": "hello"}, headers=as_user(user) | ASYNC)
    # Then the dispatch fails as deployed: 503 worker_unavailable, worth a retry
    assert response.status_code == 503 and response.json()["error"] == "worker_unavailable"
    assert response.headers["Retry-After"] == "1"
    reliability("Local limits", "an asynchronous turn while the worker function is down",
                "503 worker_unavailable with Retry-After, from the real dispatch (Lambda Invoke)")


@pytest.mark.slow
def test_a_worker_that_dies_mid_turn_hands_the_turn_to_the_next(tables, dynamodb_endpoint, user, reliability):
    # Given an asynchronous turn being written by the worker function's only instance
    with SlowModelAPI(first_token_seconds=0.1) as model, local_server(
            dynamodb_endpoint, 1, LOCAL_WORKER_INSTANCES="1", AGENT_MODEL_PROVIDER="anthropic",
            ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=model.url) as server, \
            http_client(server.url, timeout=30) as client:
        model.script = [Text(LONG_ANSWER_TOKENS)]
        location = start(client, user).headers["Location"]
        poll_until(client, user, location, lambda view: view.get("reply"))
        # When its process dies mid-answer
        _, (worker,) = worker_function_processes(server)
        os.kill(worker, signal.SIGKILL)
        # Then the invocation is delivered again to a fresh instance, which takes the turn over and finishes it
        views = poll(client, user, location)
    assert views[-1]["status"] == "done", views[-1]
    assert views[-1]["reply"] == words(LONG_ANSWER_TOKENS) and model.requests == 2
    assert "delivered again" in "".join(server.console)
    reliability("Local limits", "the worker's process killed mid-turn (SIGKILL)",
                "the invocation delivered again with its request id; the turn taken over and done, not "
                "running to its 5-minute deadline")
