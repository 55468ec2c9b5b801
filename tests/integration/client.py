"""The HTTP API as a test calls it: as a user, whose id the local gateway turns into the JWT claim
`sub` (the header X-Local-User), exactly where API Gateway's authorizer would put it."""

import http.client
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

ASYNC = {"Prefer": "respond-async"}
# The tests speak plain HTTP to 127.0.0.1 from hundreds of clients, and an httpx client not given an
# SSL context builds its own from the CA bundle (~37 ms of CPU each, whether it uses it or not).
SSL_CONTEXT = ssl.create_default_context()
POLL_SECONDS = 0.25
# A guard against a hang, not a timing claim: far above any turn here.
GIVE_UP_SECONDS = 120


def as_user(user_id: str) -> dict:
    return {"X-Local-User": user_id}


def http_client(base_url: str, *, timeout: float = 30) -> httpx.Client:
    """An httpx client of the local stack at `base_url`."""
    return httpx.Client(base_url=base_url, timeout=timeout, verify=SSL_CONTEXT)


def say(api: httpx.Client, user: str, session: str, message: str, *, idempotency_key: str | None = None
        ) -> httpx.Response:
    """One synchronous turn: `message` to `session`, as `user`."""
    headers = as_user(user) | ({"Idempotency-Key": idempotency_key} if idempotency_key else {})
    return api.post(f"/sessions/{session}/messages", json={"message": message}, headers=headers)


def send_all(base_url: str, user: str, targets: list[tuple[str, str]], headers: dict | None = None) -> list[httpx.Response]:
    """POSTs every (session, message) at once (with `headers`): the threads start together behind a barrier."""
    barrier = threading.Barrier(len(targets))

    def send(target):
        session, message = target
        with http_client(base_url, timeout=60) as client:
            barrier.wait()
            return client.post(f"/sessions/{session}/messages", json={"message": message},
                               headers=as_user(user) | (headers or {}))

    with ThreadPoolExecutor(len(targets)) as pool:
        return list(pool.map(send, targets))


def stored_turns(api, user, session="s") -> list[str]:
    response = api.get(f"/sessions/{session}/messages", headers=as_user(user))
    return [m["content"] for m in response.json()["messages"] if m["role"] == "user"] if response.status_code == 200 else []


def start(api, user, message="tell me a long story", session="s"):
    response = api.post(f"/sessions/{session}/messages", json={"message": message}, headers={**as_user(user), **ASYNC})
    assert response.status_code == 202, response.text
    return response


def poll(api, user, location: str) -> list[dict]:
    """Every view of the turn, until it is no longer running."""
    views, give_up = [], time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < give_up:
        views.append(api.get(location, headers=as_user(user)).json())
        if views[-1]["status"] != "running":
            return views
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"still running after {GIVE_UP_SECONDS} s")


def raw(url: str, request: bytes, *, half_close: bool = False) -> tuple[int, bytes]:
    """Sends bytes as they are; returns the status and the body of the answer, read as its headers
    frame it (not until the server closes: an open connection waits for its idle timeout)."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, answer.read()
